"""Training a suite's runs through Ray: one Ray task per run, on one core each, locally or on a cluster.

A local Ray instance with ``os.cpu_count()`` CPUs (``--workers`` CPUs when given) is started unless
``RAY_ADDRESS`` names a cluster (as the trainer's Ray collector does) or Ray is already initialized in this
process. On a cluster, OUT should be on a filesystem every node shares: a finished run's
:data:`MIRRORED_FILES` are copied back to the driver anyway, so results are complete without one, but
resuming from a checkpoint needs the checkpoint where the run is resumed. Ray is imported inside the
functions only (``pip install 'torchrl-vd[reproduce]'``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torchrl_vd.reproduce.spec import RunSpec

MIRRORED_FILES = ("summary.json", "metrics.csv", "config.json")
"""What a Ray task sends back to the driver: everything the results table and the curves read."""


def execute(job: dict) -> dict:
    """Ray task body: train one run (fresh from ``job['config']``, or resumed from ``job['run_dir']``'s
    checkpoint up to ``job['frames']``) with one torch thread; returns its summary, the host, the wall
    time and the text of ``MIRRORED_FILES`` (for a driver on another machine)."""
    import torch

    torch.set_num_threads(1)
    import torchrl_vd as vd

    t0 = time.perf_counter()
    if job["action"] == "resume":
        cfg = vd.train_config_for_resume(job["run_dir"]).with_overrides({"frames": job["frames"], "progress": False})
    else:
        cfg = vd.TrainConfig.from_dict(job["config"])
    result = vd.train(cfg)
    run_dir = Path(job["run_dir"])
    files = {name: (run_dir / name).read_text() for name in MIRRORED_FILES if (run_dir / name).exists()}
    return {"summary": result.summary, "files": files, "host": socket.gethostname(),
            "wall_s": time.perf_counter() - t0}


def mirror_files(run_dir: Path, files: dict[str, str]) -> None:
    """Make this machine's copies of a finished run's returned files equal to the worker's: a no-op on
    the same machine or a shared filesystem, the run's results on a driver that does not share one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = run_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


FAILURE_FILE = "failure.txt"  # a failed run's whole error, beside its files (the log shows its last line)


def keep_failure(run_dir: Path, error: str) -> Path:
    """Write a failed run's whole error (the worker's traceback, chained exceptions included) into its run
    directory; the next plan resumes the run from its last checkpoint and a success removes the file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FAILURE_FILE
    path.write_text(re.sub(r"\x1b\[[0-9;]*m", "", error).rstrip() + "\n")  # without Ray's colour codes
    return path


def init_ray(workers: int | None) -> bool:
    """Connect to ``RAY_ADDRESS``'s cluster, or start a local Ray with ``workers`` (default: all) CPUs;
    nothing if Ray is already initialized. True when this call initialized Ray (so it shuts it down)."""
    try:
        import ray
    except ImportError as err:
        raise ImportError("torchrl-vd reproduce dispatches runs through Ray: "
                          "pip install 'torchrl-vd[reproduce]'") from err
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        from torchrl_vd.train.threads import ray_workers_at_normal_priority

        ray_workers_at_normal_priority()
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


def dispatch(todo: list[tuple[RunSpec, str]], workers: int | None, log: Callable[[str], None]) -> dict[str, str]:
    """Run each ``(run, action)`` as one Ray task (``num_cpus=1``), at most ``workers`` at a time when
    given; returns ``{run_dir: error}`` for the runs that failed (the others carry on)."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=0)(execute)
    pending, in_flight, failures, done = list(todo), {}, {}, 0
    cap = workers or len(todo)
    while pending or in_flight:
        while pending and len(in_flight) < cap:
            run, action = pending.pop(0)
            if action == "restart":
                shutil.rmtree(run.run_dir, ignore_errors=True)
            job = {"action": action, "run_dir": str(run.run_dir), "frames": run.entry.frames,
                   "config": run.config.to_dict()}
            in_flight[remote.remote(job)] = (run, action)
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        run, action = in_flight.pop(ready[0])
        done += 1
        try:
            out = ray.get(ready[0])
        except ray.exceptions.RayError as err:
            failures[str(run.run_dir)] = str(err).strip().splitlines()[-1]
            where = keep_failure(run.run_dir, str(err))
            log(f"[{done}/{len(todo)}] FAILED {run.label} ({action}): {failures[str(run.run_dir)]} (traceback: {where})")
            continue
        mirror_files(run.run_dir, out["files"])
        (run.run_dir / FAILURE_FILE).unlink(missing_ok=True)
        log(f"[{done}/{len(todo)}] {action} {run.label}: {out['summary']['frames']} frames in {out['wall_s']:.1f} s "
            f"on {out['host']}")
    return failures


__all__ = ["FAILURE_FILE", "MIRRORED_FILES", "dispatch", "execute", "init_ray", "keep_failure", "mirror_files"]
