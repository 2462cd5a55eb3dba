"""Running a suite end to end: plan, train what is missing through Ray, aggregate, write the report.

:func:`run_suite` is what ``torchrl-vd reproduce SUITE`` does; :func:`dry_run` is ``--dry-run``: the same
plan and the resolved references, printed, with nothing trained or written.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torchrl_vd.reproduce.planning import plan
from torchrl_vd.reproduce.ray_tasks import dispatch, init_ray
from torchrl_vd.reproduce.report import aggregate, format_plan, plot_task, write_results
from torchrl_vd.reproduce.spec import RunSpec, Suite, load_suite, slug, suite_runs


@dataclass
class SuiteReport:
    """What ``run_suite`` did: the plan per run, the failures, the table rows and the files written."""

    suite: Suite
    planned: list[tuple[RunSpec, str, str]]
    failures: dict[str, str]
    rows: list[dict]
    results_md: Path
    plots: list[Path]
    wall_s: float


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def _train_missing(todo: list[tuple[RunSpec, str]], workers: int | None,
                   log: Callable[[str], None]) -> tuple[dict[str, str], str]:
    """Train ``todo`` through Ray (started here unless it runs already); ``(failures, what Ray was)``."""
    if not todo:
        return {}, "not needed (every run finished)"
    import ray

    started = init_ray(workers)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        ray_info = (f"{len(nodes)} node(s), {ray.cluster_resources().get('CPU', 0):g} CPUs"
                    + (f", at most {workers} runs at a time" if workers else ""))
        return dispatch(todo, workers, log), ray_info
    finally:
        if started:
            ray.shutdown()


def run_suite(name: str, out: str | Path = "runs/reproduce", *, quick: bool = False, seeds: list[int] | None = None,
              tasks: list[str] | None = None, algos: list[str] | None = None, frames: int | None = None,
              workers: int | None = None, command: str | None = None, iqm_backend: str = "auto",
              log: Callable[[str], None] = print) -> SuiteReport:
    """Plan, run (through Ray) and aggregate the suite ``name`` under ``out`` (``OUT/<suite>/``: one run
    directory per (task, algo, seed), RESULTS.md, results.json and ``curves_<task>.png``).

    ``iqm_backend``: ``auto`` (rliable when installed), ``rliable`` or ``numpy`` (``iqm_interval``).
    """
    t0, load_start = time.perf_counter(), _loadavg()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    suite = load_suite(name, quick=quick, seeds=seeds, tasks=tasks, algos=algos, frames=frames)
    suite_dir = Path(out).resolve() / suite.name
    runs = suite_runs(suite, Path(out))
    planned = plan(runs)
    todo = [(run, action) for run, action, _ in planned if action != "skip"]
    log(f"suite {suite.name}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run")
    failures, ray_info = _train_missing(todo, workers, log)
    rows = aggregate(suite, runs, iqm_backend=iqm_backend)
    suite_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_task(task, suite, runs, rows, suite_dir / f"curves_{slug(task)}.png")
             for task in dict.fromkeys(e.task for e in suite.entries)]
    wall = time.perf_counter() - t0
    info = {"date": date, "command": command or f"run_suite({name!r}, out={str(out)!r}, quick={quick}, "
                                                   f"seeds={seeds}, workers={workers})",
            "uname": " ".join(os.uname()), "cores": os.cpu_count(), "ray": ray_info, "load_start": load_start,
            "load_end": _loadavg(), "wall_s": wall}
    results = write_results(suite, rows, planned, failures, info, suite_dir)
    log(f"wrote {results}")
    return SuiteReport(suite, planned, failures, rows, results, plots, wall)


def dry_run(name: str, out: str | Path = "runs/reproduce", *, quick: bool = False, seeds: list[int] | None = None,
            tasks: list[str] | None = None, algos: list[str] | None = None, frames: int | None = None,
            log: Callable[[str], None] = print) -> list[tuple[RunSpec, str, str]]:
    """What ``run_suite`` would do, without Ray, training or writing anything: logs every entry's runs
    (task, algo, seeds, frames, what would be trained, resumed or skipped) and resolved reference; returns
    the plan. An edited suite's stale run directories are the same error as in ``run_suite``."""
    suite = load_suite(name, quick=quick, seeds=seeds, tasks=tasks, algos=algos, frames=frames)
    planned = plan(suite_runs(suite, Path(out)))
    log(format_plan(suite, planned, Path(out).resolve() / suite.name))
    return planned


__all__ = ["SuiteReport", "dry_run", "run_suite"]
