"""Reproduction harness: run a named suite through Ray, continue it where it stopped, and compare the outcome
with published numbers (``torchrl-vd reproduce SUITE``, ``python -m torchrl_vd.reproduce SUITE``).

Modules, one job each:

* ``suites.py``: the suites as plain data (tasks, algorithms, config overrides, seeds, frames, references);
* ``spec.py``: a suite checked and selected (``load_suite``), its runs and their directories (``suite_runs``);
* ``planning.py``: skip, resume, restart or start each run, from what its directory holds (``plan``);
* ``ray_tasks.py``: one Ray task per run (``init_ray``, ``dispatch``, ``execute``, ``mirror_files``);
* ``metrics.py``: how one run becomes one number (``METRICS``);
* ``stats.py``: the IQM and its bootstrap interval (the mean's t-interval is ``torchrl_vd.train.stats``);
* ``references.py``: published numbers (``resolve_reference``, ``verdict``) and the reference files of
  ``references/`` (package data);
* ``report.py``: the table rows, curves, RESULTS.md / results.json and the ``--dry-run`` plan;
* ``run.py``: ``run_suite`` and ``dry_run``; ``cli.py``: the command line (imports no torch, numpy or Ray).

How a suite runs:

* **Layout**: ``OUT/<suite>/<task>/<algo>/seed<k>/`` is one ``train()`` run directory ('/' in a task
  name becomes '_'); ``OUT/<suite>/RESULTS.md`` (the table, machine, load, wall time, command),
  ``OUT/<suite>/results.json`` (the same numbers, per seed too) and ``OUT/<suite>/curves_<task>.png``.
* **Ray**: one Ray task per run (``num_cpus=1``, one torch thread), so a suite spreads over every
  core of every machine; a local instance unless ``RAY_ADDRESS`` names a cluster (ray_tasks.py).
* **Resume**: rerunning the command skips runs whose summary.json reached the target frames,
  resumes runs that have a checkpoint (``train_config_for_resume`` + the target frames) and starts
  the missing ones. A run whose checkpoint already holds the target frames but has no summary.json
  (stopped during its final evaluation) cannot be resumed by the trainer and is retrained. A run
  directory whose config.json differs from the suite's config (an edited suite) is an error, never
  silently reused.
* **Statistics**: per (task, algo), the mean over seeds ± the 95% t-interval, and the IQM with a 95%
  percentile bootstrap interval (rliable's ``get_interval_estimates`` when rliable is installed, else
  a stratified bootstrap over seeds in numpy; RESULTS.md says which), after Agarwal et al., "Deep
  Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021). The verdict compares
  our mean with the reference interval ``value ± ci``: within, above or below.

The public names below are attributes of this package, imported from their module on first use, so that
importing the package (and its command line) stays as light as ``suites.py``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "torchrl_vd.train.config": ("SEEDS_FORMS", "parse_seeds"),
    "torchrl_vd.train.stats": ("t_interval",),
    "torchrl_vd.reproduce.stats": ("iqm", "iqm_interval"),
    "torchrl_vd.reproduce.metrics": ("METRICS", "Metric", "best_eval_step_returns", "final_eval_return",
                                     "final_eval_win_rate", "last_logged", "mean_eval_return"),
    "torchrl_vd.reproduce.references": ("NO_REFERENCE", "Reference", "reference_file", "resolve_reference",
                                        "verdict"),
    "torchrl_vd.reproduce.spec": ("Entry", "RunSpec", "Suite", "load_suite", "suite_runs"),
    "torchrl_vd.reproduce.planning": ("finished", "plan"),
    "torchrl_vd.reproduce.ray_tasks": ("MIRRORED_FILES", "dispatch", "execute", "init_ray", "mirror_files"),
    "torchrl_vd.reproduce.report": ("aggregate", "format_plan", "plot_task", "write_results"),
    "torchrl_vd.reproduce.run": ("SuiteReport", "dry_run", "run_suite"),
    "torchrl_vd.reproduce.cli": ("add_arguments", "main", "run_from_args"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    """A public name, imported from its module the first time it is asked for."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
