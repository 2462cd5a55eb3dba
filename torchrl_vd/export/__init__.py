"""Finished runs in other tools' result formats (``torchrl-vd export``).

* ``marl_eval.py``: marl-eval's raw-results JSON (``--format marl-eval``; :func:`write_marl_eval`).

Reads run directories through :mod:`torchrl_vd.train.run_files` only: no torch is imported.
"""

from torchrl_vd.export.marl_eval import describe, find_run_dirs, marl_eval_data, read_run, write_marl_eval

FORMATS = {"marl-eval": write_marl_eval}
"""``torchrl-vd export --format NAME`` -> ``writer(paths, out) -> data``."""

__all__ = ["FORMATS", "describe", "find_run_dirs", "marl_eval_data", "read_run", "write_marl_eval"]
