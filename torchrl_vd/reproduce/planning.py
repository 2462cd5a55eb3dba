"""What a suite still has to do: skip, resume, restart or start each run, from what its directory holds.

A rerun of a suite continues where the last one stopped: a finished run (summary.json at the target frames)
is skipped, a run with a checkpoint resumes, a directory that cannot be resumed is cleared and trained
again, and a missing run starts. A run directory made with another config than the suite's (an edited
suite) is an error, never silently reused. Reads the run directories only (``torchrl_vd.train.run_files``).
"""

from __future__ import annotations

import json
from pathlib import Path

from torchrl_vd.reproduce.spec import RunSpec
from torchrl_vd.train.run_files import read_config, read_metric_columns, read_summary

RESUME_IGNORED_KEYS = ("frames", "out_dir", "resume", "progress")
"""Config keys a suite may differ in from a run it skips or resumes."""

ACTIONS = ("skip", "resume", "restart", "start")
"""What :func:`plan` may do with a run, in the order the reports count them."""


def finished(run: RunSpec) -> dict | None:
    """The run's summary.json if it reached the target frames, else None (a run stopped by a signal
    writes one too, with the frames it reached: it is finished only if those are the target's)."""
    summary = read_summary(run.run_dir)
    if summary is None or int(summary.get("frames", 0)) < run.entry.frames:
        return None
    return summary


def _action(run: RunSpec) -> tuple[str, str]:
    """``(action, reason)`` for one run, from its directory (see :func:`plan`)."""
    summary = read_summary(run.run_dir)
    if finished(run):
        return "skip", f"summary.json at {summary['frames']} frames"
    if (run.run_dir / "checkpoint.pt").exists():
        if summary is not None:
            return "resume", f"summary.json at {summary['frames']} frames" + (
                " (interrupted)" if summary.get("interrupted") else "")
        logged = _last_logged_frames(run.run_dir)
        if logged >= run.entry.frames:
            # the trainer resumes only below the target: a run killed during its final evaluation starts again
            return "restart", "checkpoint at the target frames but no summary.json"
        return "resume", f"checkpoint, metrics.csv at {logged} frames"
    if run.run_dir.exists():
        return "restart", "directory without checkpoint or summary"
    return "start", "no run directory"


def plan(runs: list[RunSpec]) -> list[tuple[RunSpec, str, str]]:
    """``(run, action, reason)`` per run; action is ``skip`` (finished), ``resume`` (a checkpoint below the
    target frames), ``restart`` (a directory that cannot be resumed: cleared, trained again) or ``start``.

    A run directory to skip or resume whose config.json differs from the suite's config is an error
    naming the runs and keys (the suite was edited after those runs: delete them or use another --out).
    """
    out, stale = [], []
    for run in runs:
        action, reason = _action(run)
        if action in ("skip", "resume"):
            diff = _config_diff(run)
            if diff:
                stale.append(f"{run.run_dir}: {', '.join(diff)}")
        out.append((run, action, reason))
    if stale:
        raise ValueError("Run directories hold runs made with a different config than the suite's (edited suite?); "
                         "delete them or choose another --out:\n  " + "\n  ".join(stale))
    return out


def _last_logged_frames(run_dir: Path) -> int:
    """The frames column's last value in metrics.csv (0 without one)."""
    try:
        frames = read_metric_columns(run_dir).get("frames", [])
    except FileNotFoundError:
        return 0
    return int(frames[-1]) if frames else 0


def _config_diff(run: RunSpec) -> list[str]:
    """Keys whose value in the run's config.json differs from the suite's config (ignoring frames and
    paths, and fields that only one of them has: a TrainConfig field added since the run was made)."""
    saved = read_config(run.run_dir)
    if saved is None:
        return []
    wanted = json.loads(json.dumps(run.config.to_dict()))  # tuples -> lists, as config.json holds them
    keys = sorted((set(saved) & set(wanted)) - set(RESUME_IGNORED_KEYS))
    return [f"{k}={saved.get(k)!r} (suite: {wanted.get(k)!r})" for k in keys if saved.get(k) != wanted.get(k)]


__all__ = ["ACTIONS", "RESUME_IGNORED_KEYS", "finished", "plan"]
