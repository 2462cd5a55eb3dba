"""Resuming a run: its saved config, and which settings may change when it continues.

A checkpoint continues the run it was written by. Settings that only steer how the run goes on (how long, how
often it evaluates or checkpoints, how it logs, where it runs, the step size) may change on resume; settings that
shape the networks, the data or the algorithm may not: they are refused by name, before anything is built,
instead of surfacing as a failed ``load_state_dict`` of mismatched networks.
"""

from __future__ import annotations

import json
from pathlib import Path

RESUMABLE = frozenset({
    "frames", "eval_every", "eval_episodes", "igm_eval", "igm_max_joint_actions", "igm_max_states",
    "checkpoint_every", "progress", "loggers", "threads", "device", "collector", "num_workers", "lr", "grad_clip",
    "on_non_finite", "out_dir", "resume",
})
"""``TrainConfig`` fields a resumed run may change (everything else must equal the saved run's)."""


def config_for_resume(run_dir: str | Path):
    """The config saved in ``run_dir``'s checkpoint, with ``resume`` and ``out_dir`` pointing at it.

    A run stopped (killed) before its first checkpoint has only its config.json: that config is returned,
    and ``train()`` starts the run again from frame 0 (with a warning).
    """
    from torchrl_vd.train.checkpoint import load_checkpoint
    from torchrl_vd.train.config import TrainConfig

    state = load_checkpoint(run_dir, missing_ok=(Path(run_dir) / "config.json").exists())
    if state is None:
        try:
            d = json.loads((Path(run_dir) / "config.json").read_text())
        except ValueError as err:
            raise ValueError(f"{run_dir} has no checkpoint and its config.json is unreadable ({err}); start the "
                             "run again in a new directory (--out).") from None
    else:
        d = dict(state["config"])
    d.update(resume=str(run_dir), out_dir=str(run_dir))
    return TrainConfig.from_dict(d)


def resume_problems(saved: dict, cfg) -> list[str]:
    """The settings of ``cfg`` that differ from the run it resumes (``saved``: the checkpoint's config) and may
    not change on resume, each named with what the run holds and the fix."""
    current = _plain(cfg.to_dict())
    saved = _plain(saved)
    problems = []
    for name, value in current.items():
        if name in RESUMABLE or name not in saved or saved[name] == value:
            continue
        problems.append(f"{name} is {saved[name]!r} in this run ({cfg.resume}), not {value!r}; resume keeps it — "
                        f"start a new run with --out to change it")
    return problems


def _plain(d: dict) -> dict:
    """JSON's view of a config (tuples and lists alike), so that saved and current values compare equal."""
    return json.loads(json.dumps(d, default=str))


__all__ = ["RESUMABLE", "config_for_resume", "resume_problems"]
