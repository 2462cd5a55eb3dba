"""Reproduction harness (issue #14): run a named suite through Ray, continue it where it stopped, and
compare the outcome with published numbers.

    torchrl-vd reproduce quick                           # tiny smoke suite (under a minute on 2 cores)
    torchrl-vd reproduce mpe --out runs/reproduce        # MARLlib's MPE table: 8 (task, algo) x 4 seeds x 2M frames
    torchrl-vd reproduce vmas --seeds 0-4 --workers 16
    python -m torchrl_vd.reproduce vmas --quick          # a smoke pass of a long suite, in OUT/vmas-quick

The suites (tasks, algorithms, config overrides, seeds, frames, references) are plain data in
``torchrl_vd/reproduce_suites.py``.

* **Layout**: ``OUT/<suite>/<task>/<algo>/seed<k>/`` is one ``train()`` run directory ('/' in a task
  name becomes '_'); ``OUT/<suite>/RESULTS.md`` (the table, machine, load, wall time, command),
  ``OUT/<suite>/results.json`` (the same numbers, per seed too) and ``OUT/<suite>/curves_<task>.png``.
* **Ray**: one Ray task per run (``num_cpus=1``, one torch thread), so a suite spreads over every
  core of every machine. A local Ray instance with ``os.cpu_count()`` CPUs (``--workers`` CPUs when
  given) is started unless ``RAY_ADDRESS`` names a cluster, as the trainer's Ray collector does, or
  Ray is already initialized in this process. On a cluster, ``OUT`` should be on a filesystem every
  node shares: a finished run's summary.json, metrics.csv and config.json are copied back to the
  driver anyway, so results are complete without one, but resuming from a checkpoint needs the
  checkpoint where the run is resumed.
* **Resume**: rerunning the command skips runs whose summary.json reached the target frames,
  resumes runs that have a checkpoint (``train_config_for_resume`` + the target frames) and starts
  the missing ones. A run whose checkpoint already holds the target frames but has no summary.json
  (stopped during its final evaluation) cannot be resumed by the trainer and is retrained. A run
  directory whose config.json differs from the suite's config (an edited suite) is an error, never
  silently reused.
* **Statistics**: per (task, algo), the mean over seeds ± the 95% t-interval, and the IQM with a 95%
  percentile bootstrap interval (rliable's ``get_interval_estimates`` when rliable is installed, else
  a stratified bootstrap over seeds in numpy; RESULTS.md says which). The verdict compares our mean
  with the reference interval ``value ± ci``: within, above or below.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import datetime
import difflib
import json
import math
import os
import re
import shlex
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from torchrl_vd import reproduce_suites
from torchrl_vd.train.config import SEEDS_FORMS, parse_seeds  # noqa: F401 (reproduce --seeds)
from torchrl_vd.train.stats import t_interval

if TYPE_CHECKING:
    from torchrl_vd import TrainConfig

RESUME_IGNORED_KEYS = ("frames", "out_dir", "resume", "progress")  # config keys a suite may differ in from a run
MIRRORED_FILES = ("summary.json", "metrics.csv", "config.json")  # what a Ray task sends back to the driver


# ================================================================================== statistics
def iqm(scores) -> float:
    """Interquartile mean: the mean after cutting ``int(0.25 n)`` values from each end (rliable's
    ``aggregate_iqm``, i.e. ``scipy.stats.trim_mean(x, 0.25)`` over all scores)."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean()) if x.size else math.nan


def iqm_interval(scores, reps: int = 5_000, confidence: float = 0.95, seed: int = 0,
                 backend: str = "auto") -> tuple[float, float, float, str]:
    """IQM of ``scores`` (``[runs]`` or ``[runs, tasks]``) and its percentile bootstrap interval.

    The bootstrap is stratified: each rep resamples the runs of every task (column) with replacement.
    ``backend``: ``rliable`` (its ``get_interval_estimates``), ``numpy`` (the same resampling here), or
    ``auto`` (rliable when installed). Returns ``(iqm, low, high, backend used)``.
    """
    x = np.asarray(scores, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    if backend == "auto":
        try:
            from rliable import library  # noqa: F401

            backend = "rliable"
        except ImportError:
            backend = "numpy"
    if x.shape[0] == 0:
        return math.nan, math.nan, math.nan, backend
    if backend == "rliable":
        from rliable import library as rly
        from rliable import metrics as rly_metrics

        with warnings.catch_warnings():  # arch deprecates the random_state that rliable passes it
            warnings.filterwarnings("ignore", category=FutureWarning, message="random_state is deprecated")
            point, ci = rly.get_interval_estimates(
                {"x": x}, lambda s: np.array([rly_metrics.aggregate_iqm(s)]), reps=reps,
                confidence_interval_size=confidence, random_state=np.random.RandomState(seed))
        return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0]), backend
    if backend != "numpy":
        raise ValueError(f"backend must be 'auto', 'rliable' or 'numpy' (got {backend!r}).")
    rng = np.random.default_rng(seed)
    n, tasks = x.shape
    idx = rng.integers(0, n, size=(reps, n, tasks))  # run indices, drawn per task
    resampled = np.take_along_axis(np.broadcast_to(x, (reps, n, tasks)), idx, axis=1)  # [reps, n, tasks]
    flat = np.sort(resampled.reshape(reps, -1), axis=1)
    cut = int(0.25 * flat.shape[1])
    boot = flat[:, cut:flat.shape[1] - cut].mean(axis=1)  # [reps]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return iqm(x), float(low), float(high), backend


# ===================================================================================== metrics
def _summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def final_eval_win_rate(run_dir: Path) -> float:
    """summary.json's ``final_eval_win_rate``: the greedy policy's share of battles won at the end (SMAX)."""
    return float(_summary(run_dir).get("final_eval_win_rate", math.nan))


def final_eval_return(run_dir: Path) -> float:
    """summary.json's ``final_eval_return``: the greedy policy's mean return at the end of training."""
    return float(_summary(run_dir)["final_eval_return"])


def last_logged(run_dir: Path, column: str = "train_return", n: int = 10) -> float:
    """Mean of the last ``n`` logged (non-empty) values of ``column`` in metrics.csv (all of them if fewer)."""
    from torchrl_vd.train.plot import read_metrics

    values = [v for v in read_metrics(run_dir).get(column, []) if not math.isnan(v)]
    return float(np.mean(values[-n:])) if values else math.nan


def _eval_returns(run_dir: Path) -> list[float]:
    """The greedy evaluation returns logged during training (metrics.csv ``eval_return``, non-empty rows)."""
    from torchrl_vd.train.plot import read_metrics

    return [v for v in read_metrics(run_dir).get("eval_return", []) if not math.isnan(v)]


def _eval_curve(run_dir: Path) -> dict[int, float]:
    """frames -> greedy evaluation return, for every evaluation logged during training (metrics.csv)."""
    from torchrl_vd.train.plot import read_metrics

    m = read_metrics(run_dir)
    return {int(f): v for f, v in zip(m.get("frames", []), m.get("eval_return", [])) if not math.isnan(v)}


def best_eval_step_returns(run_dirs: list[Path]) -> list[float]:
    """EPyMARL's "maximum return" (Papoudakis et al. 2021, Sec. 4): "the evaluation timestep during training
    in which the algorithm achieves the highest average evaluation returns across [the] seeds"; each seed's
    evaluation return at that timestep (the frames every seed logged; NaN for all when there is none)."""
    curves = [_eval_curve(d) for d in run_dirs]
    common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if not common:
        return [math.nan] * len(run_dirs)
    best = max(common, key=lambda f: float(np.mean([c[f] for c in curves])))  # first of equal means
    return [c[best] for c in curves]


def mean_eval_return(run_dir: Path) -> float:
    """The mean of every greedy evaluation return logged during training (EPyMARL's "average return")."""
    values = _eval_returns(run_dir)
    return float(np.mean(values)) if values else math.nan


@dataclass(frozen=True)
class Metric:
    """How one finished run becomes one number (``value(run_dir)``), and what that number means."""

    name: str
    description: str
    value: Callable[[Path], float] | None
    across_seeds: Callable[[list[Path]], list[float]] | None = None
    """When set, the per-seed values depend on every seed's run (e.g. a timestep chosen on the seeds' mean)."""

    def per_seed(self, run_dirs: list[Path]) -> list[float]:
        """One value per run directory, in order."""
        if self.across_seeds is not None:
            return self.across_seeds(list(run_dirs))
        return [self.value(d) for d in run_dirs]


METRICS = {
    "final_eval_return": Metric(
        "final_eval_return", "greedy evaluation return at the end of training (summary.json final_eval_return)",
        final_eval_return),
    "last10_train_return": Metric(
        "last10_train_return", "mean of the last 10 logged train_return values of metrics.csv (ε-greedy "
        "episodes; MARLlib's convention)", last_logged),
    "final_eval_win_rate": Metric(
        "final_eval_win_rate", "greedy win rate at the end of training (summary.json final_eval_win_rate: the share "
        "of the evaluation envs' battles won)", final_eval_win_rate),
    "epymarl_max_return": Metric(
        "epymarl_max_return", "EPyMARL's maximum return: each seed's greedy evaluation return (metrics.csv "
        "eval_return, every eval_every frames) at the evaluation timestep whose mean over the seeds is highest",
        None, best_eval_step_returns),
    "mean_eval_return": Metric(
        "mean_eval_return", "mean of the greedy evaluation returns logged during training (metrics.csv "
        "eval_return; EPyMARL's average return)", mean_eval_return),
}


# =================================================================================== references
@dataclass(frozen=True)
class Reference:
    """A resolved reference: ``value ± ci`` (None when nothing is published or the file is pending)."""

    value: float | None
    ci: float
    ci_kind: str
    units: str
    source: str
    note: str = ""

    def cell(self) -> str:
        """The table's reference cell."""
        if self.value is None:
            return self.note or "—"
        return f"{_num(self.value)} ± {_num(self.ci)}"


NO_REFERENCE = Reference(None, math.nan, "", "", "", "none published")


def resolve_reference(spec: dict | None, task: str, algo: str) -> Reference:
    """The entry's reference: none, a published constant, or rows of a results CSV/JSON file.

    From a file, the rows whose ``task``/``algo`` match (the spec's ``task``/``algo`` keys if given, else
    the entry's) give ``value ± ci`` (one row with a ``ci`` column) or the mean ± 95% t-interval of
    ``value`` over the rows (one per seed). A missing file or row gives a pending reference.
    """
    if spec is None:
        return NO_REFERENCE
    units, source = spec.get("units", ""), spec.get("source", "")
    if "file" not in spec:
        return Reference(float(spec["value"]), float(spec.get("ci", math.nan)), spec.get("ci_kind", ""), units, source)
    path = Path(spec["file"])
    path = path if path.is_absolute() else reproduce_suites.REPO_ROOT / path
    if not path.exists():
        return Reference(None, math.nan, "", units, source, f"pending ({spec['file']} missing)")
    want_task, want_algo = spec.get("task", task), spec.get("algo", algo)
    rows = [r for r in _read_records(path) if str(r.get("task")) == want_task and str(r.get("algo")) == want_algo]
    if not rows:
        return Reference(None, math.nan, "", units, source, f"pending (no {want_task}/{want_algo} row in {path.name})")
    if len(rows) == 1 and rows[0].get("ci") not in (None, ""):
        return Reference(float(rows[0]["value"]), float(rows[0]["ci"]), spec.get("ci_kind", "± from the file"),
                         units, source)
    mean, half = t_interval([float(r["value"]) for r in rows])
    return Reference(mean, half, spec.get("ci_kind", f"95% t-interval over {len(rows)} rows (seeds)"), units, source)


def _read_records(path: Path) -> list[dict]:
    """A CSV file's rows or a JSON file's list of records (or ``{"rows": [...]}``) as dicts."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        return list(data["rows"] if isinstance(data, dict) else data)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def verdict(mean: float, ref: Reference) -> str:
    """``within`` / ``above`` / ``below`` the reference interval ``value ± ci`` (a nan ci counts as 0)."""
    if ref.value is None:
        return "no reference"
    if math.isnan(mean):
        return "no runs"
    half = 0.0 if math.isnan(ref.ci) else ref.ci
    if mean > ref.value + half:
        return "above"
    if mean < ref.value - half:
        return "below"
    return "within"


# ======================================================================================== suites
@dataclass(frozen=True)
class Entry:
    """One (task, algo) of a suite: its config overrides, seeds, frames, unit scale and reference spec."""

    task: str
    algo: str
    overrides: dict
    seeds: tuple[int, ...]
    frames: int
    scale: float
    reference: dict | None


@dataclass(frozen=True)
class Suite:
    """A suite ready to run: ``name`` is its directory under OUT (``<suite>-quick`` for ``--quick``)."""

    name: str
    description: str
    metric: Metric
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: the entry, the seed, its run directory and its complete ``TrainConfig``."""

    entry: Entry
    seed: int
    run_dir: Path
    config: TrainConfig

    @property
    def label(self) -> str:
        return f"{self.entry.task} {self.entry.algo} seed{self.seed}"


ENTRY_KEYS = {"task", "algo", "overrides", "seeds", "frames", "scale", "reference"}


def load_suite(name: str, quick: bool = False, seeds: list[int] | None = None,
               tasks: list[str] | None = None, algos: list[str] | None = None, frames: int | None = None) -> Suite:
    """The named suite from ``reproduce_suites.SUITES``, as its ``--quick`` version and/or with ``seeds``
    replacing every entry's seeds and ``frames`` every entry's frame budget (a shorter study than the
    reference's: the results table prints each entry's frames), and only the entries whose task is in ``tasks``
    and whose algorithm is in ``algos`` (None: all); an unknown suite, task or algorithm is an error naming the
    valid ones."""
    if frames is not None and int(frames) < 1:
        raise ValueError(f"frames must be >= 1 (got {frames}).")
    suites = reproduce_suites.SUITES
    if name not in suites:
        close = difflib.get_close_matches(name, list(suites), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown suite {name!r}.{hint} Suites: {', '.join(sorted(suites))}.")
    raw = copy.deepcopy(suites[name])
    if raw["metric"] not in METRICS:
        raise ValueError(f"Suite {name!r}: unknown metric {raw['metric']!r}; metrics: {', '.join(sorted(METRICS))}.")
    shrink = raw.get("quick") if quick else None
    entries = []
    for i, e in enumerate(raw["entries"]):
        missing, unknown = ENTRY_KEYS - set(e) - {"scale", "reference"}, set(e) - ENTRY_KEYS
        if missing or unknown:
            raise ValueError(f"Suite {name!r} entry {i}: missing keys {sorted(missing)}, unknown keys "
                             f"{sorted(unknown)}; an entry has {sorted(ENTRY_KEYS)}.")
        overrides, entry_frames, entry_seeds = dict(e["overrides"]), int(e["frames"]), e["seeds"]
        if shrink:
            overrides.update(shrink.get("overrides", {}))
            entry_frames, entry_seeds = int(shrink["frames"]), shrink["seeds"]
        entries.append(Entry(e["task"], e["algo"], overrides, tuple(int(s) for s in (seeds or entry_seeds)),
                             int(frames) if frames is not None else entry_frames,
                             float(e.get("scale", 1.0)), e.get("reference")))
    for label, wanted, have in (("task", tasks, [e.task for e in entries]), ("algo", algos, [e.algo for e in entries])):
        unknown = sorted(set(wanted or ()) - set(have))
        if unknown:
            raise ValueError(f"Suite {name!r} has no {label} {', '.join(map(repr, unknown))}; its {label}s: "
                             f"{', '.join(dict.fromkeys(have))}.")
    entries = [e for e in entries if (not tasks or e.task in tasks) and (not algos or e.algo in algos)]
    dirs = [(_slug(e.task), _slug(e.algo)) for e in entries]
    if len(set(dirs)) != len(dirs):
        raise ValueError(f"Suite {name!r}: two entries share a run directory {dirs}; (task, algo) must be unique.")
    return Suite(f"{name}-quick" if shrink else name, raw["description"], METRICS[raw["metric"]], tuple(entries))


def _slug(name: str) -> str:
    """A path component for a task/algo name: '/', spaces and other unsafe characters become '_'."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "_"


def suite_runs(suite: Suite, out: Path) -> list[RunSpec]:
    """Every run of ``suite`` with its directory ``out/<suite>/<task>/<algo>/seed<k>`` and its config:
    the env family's and the algo's presets (``TrainConfig.preset``), then the entry's overrides, then
    env/seed/frames/out_dir (one torch thread, quiet)."""
    import torchrl_vd as vd

    runs = []
    for e in suite.entries:
        base = vd.TrainConfig.preset(e.algo, e.task, **{**e.overrides, "frames": e.frames})  # valid at its budget
        for seed in e.seeds:
            run_dir = (out / suite.name / _slug(e.task) / _slug(e.algo) / f"seed{seed}").resolve()
            cfg = base.with_overrides({"env": e.task, "seed": seed, "frames": e.frames, "out_dir": str(run_dir),
                                       "progress": False, "threads": 1})
            runs.append(RunSpec(e, seed, run_dir, cfg))
    return runs


# ====================================================================================== planning
def finished(run: RunSpec) -> dict | None:
    """The run's summary.json if it reached the target frames, else None (a run stopped by a signal
    writes one too, with the frames it reached: it is finished only if those are the target's)."""
    summary = _summary(run.run_dir)
    if summary is None or int(summary.get("frames", 0)) < run.entry.frames:
        return None
    return summary


def plan(runs: list[RunSpec]) -> list[tuple[RunSpec, str, str]]:
    """``(run, action, reason)`` per run; action is ``skip`` (finished), ``resume`` (a checkpoint below the
    target frames), ``restart`` (a directory that cannot be resumed: cleared, trained again) or ``start``.

    A run directory to skip or resume whose config.json differs from the suite's config is an error
    naming the runs and keys (the suite was edited after those runs: delete them or use another --out).
    """
    out, stale = [], []
    for run in runs:
        summary = _summary(run.run_dir)
        if finished(run):
            action, reason = "skip", f"summary.json at {summary['frames']} frames"
        elif (run.run_dir / "checkpoint.pt").exists():
            if summary is not None:
                action, reason = "resume", f"summary.json at {summary['frames']} frames" + (
                    " (interrupted)" if summary.get("interrupted") else "")
            elif _last_logged_frames(run.run_dir) >= run.entry.frames:
                action, reason = "restart", "checkpoint at the target frames but no summary.json"
            else:
                action, reason = "resume", f"checkpoint, metrics.csv at {_last_logged_frames(run.run_dir)} frames"
        elif run.run_dir.exists():
            action, reason = "restart", "directory without checkpoint or summary"
        else:
            action, reason = "start", "no run directory"
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
    from torchrl_vd.train.plot import read_metrics

    try:
        frames = read_metrics(run_dir).get("frames", [])
    except FileNotFoundError:
        return 0
    return int(frames[-1]) if frames else 0


def _config_diff(run: RunSpec) -> list[str]:
    """Keys whose value in the run's config.json differs from the suite's config (ignoring frames and
    paths, and fields that only one of them has: a TrainConfig field added since the run was made)."""
    path = run.run_dir / "config.json"
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    wanted = json.loads(json.dumps(run.config.to_dict()))  # tuples -> lists, as config.json holds them
    keys = sorted((set(saved) & set(wanted)) - set(RESUME_IGNORED_KEYS))
    return [f"{k}={saved.get(k)!r} (suite: {wanted.get(k)!r})" for k in keys if saved.get(k) != wanted.get(k)]


# ====================================================================================== dispatch
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
            log(f"[{done}/{len(todo)}] FAILED {run.label} ({action}): {failures[str(run.run_dir)]}")
            continue
        mirror_files(run.run_dir, out["files"])
        log(f"[{done}/{len(todo)}] {action} {run.label}: {out['summary']['frames']} frames in {out['wall_s']:.1f} s "
            f"on {out['host']}")
    return failures


# ===================================================================================== aggregate
def _num(x: float) -> str:
    """4 significant digits, 'n/a' for nan."""
    return "n/a" if x is None or math.isnan(x) else f"{x:.4g}"


def aggregate(suite: Suite, runs: list[RunSpec], reps: int = 5_000, iqm_backend: str = "auto") -> list[dict]:
    """One row per entry: seeds done/planned, per-seed metric values (times the entry's scale), mean ±
    95% t-interval, IQM with its bootstrap interval (``iqm_interval``'s ``backend``), the resolved
    reference and the verdict."""
    rows = []
    for e in suite.entries:
        mine = [r for r in runs if r.entry is e]
        done = [r for r in mine if finished(r)]
        per_seed = {r.seed: v * e.scale for r, v in zip(done, suite.metric.per_seed([r.run_dir for r in done]))}
        values = [v for v in per_seed.values() if not math.isnan(v)]
        mean, half = t_interval(values)
        iqm_value, iqm_low, iqm_high, backend = iqm_interval(values, reps=reps, backend=iqm_backend)
        ref = resolve_reference(e.reference, e.task, e.algo)
        rows.append({
            "task": e.task, "algo": e.algo, "seeds_done": len(per_seed), "seeds_planned": len(e.seeds),
            "frames": e.frames, "per_seed": per_seed, "mean": mean, "ci95": half, "iqm": iqm_value,
            "iqm_low": iqm_low, "iqm_high": iqm_high, "iqm_backend": backend, "scale": e.scale,
            "reference": dataclasses.asdict(ref), "verdict": verdict(mean, ref),
        })
    return rows


def plot_task(task: str, suite: Suite, runs: list[RunSpec], rows: list[dict], out: Path) -> Path:
    """Learning curves of every algo on ``task``: train_return (times the entry's scale) averaged over the
    finished seeds on a common frame grid, a shaded 95% t-interval band, and each algo's reference as a
    horizontal line with its interval band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from torchrl_vd.train.plot import read_metrics

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, e in enumerate(x for x in suite.entries if x.task == task):
        color = f"C{i % 10}"
        curves = []
        for r in (r for r in runs if r.entry is e and finished(r)):
            m = read_metrics(r.run_dir)
            pts = [(f, v) for f, v in zip(m.get("frames", []), m.get("train_return", [])) if not math.isnan(v)]
            if pts:
                curves.append(np.array(pts))
        if curves:
            end = min(c[-1, 0] for c in curves)
            grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
            grid = grid[grid <= end]
            ys = np.stack([np.interp(grid, c[:, 0], c[:, 1]) for c in curves]) * e.scale  # [seeds, points]
            mean = ys.mean(0)
            scaled = f", x{e.scale:g}" if e.scale != 1 else ""
            ax.plot(grid, mean, color=color, label=f"{e.algo} (n={len(curves)}{scaled})")
            if len(curves) > 1:
                half = np.array([t_interval(col)[1] for col in ys.T])
                ax.fill_between(grid, mean - half, mean + half, color=color, alpha=0.2)
        ref = next(r["reference"] for r in rows if r["task"] == task and r["algo"] == e.algo)
        if ref["value"] is not None:
            ax.axhline(ref["value"], color=color, ls="--", lw=1, label=f"{e.algo} reference")
            if not math.isnan(ref["ci"]) and ref["ci"] > 0:
                ax.axhspan(ref["value"] - ref["ci"], ref["value"] + ref["ci"], color=color, alpha=0.1)
    ax.set_xlabel("frames")
    ax.set_ylabel("train return (ε-greedy), mean over seeds")
    ax.set_title(f"{suite.name}: {task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def write_results(suite: Suite, rows: list[dict], planned: list[tuple[RunSpec, str, str]], failures: dict,
                  info: dict, suite_dir: Path) -> Path:
    """RESULTS.md (and results.json) in ``suite_dir``: the table, per-seed values, what this invocation
    did, machine, load at start/end, wall time and the exact command."""
    backend = rows[0]["iqm_backend"] if rows else "n/a"
    iqm_kind = ("rliable get_interval_estimates (stratified bootstrap, percentile)" if backend == "rliable"
                else "stratified bootstrap over seeds in numpy (reproduce.iqm_interval), percentile")
    lines = [
        f"# Reproduction: suite `{suite.name}`",
        "",
        suite.description,
        "",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- machine: `{info['uname']}`, {info['cores']} cores; Ray: {info['ray']}",
        f"- load average (/proc/loadavg) at start: `{info['load_start']}`; at end: `{info['load_end']}`",
        f"- total wall time: {info['wall_s']:.1f} s",
        "- this invocation: " + ", ".join(f"{a} {sum(1 for _, x, _ in planned if x == a)}"
                                           for a in ("skip", "resume", "restart", "start")),
        f"- metric: `{suite.metric.name}`: {suite.metric.description}, times the entry's scale",
        "- mean ± 95% CI: Student-t interval over seeds; "
        f"IQM [95% CI]: {iqm_kind}",
        "- verdict: our mean within / above / below the reference interval (value ± ci)",
        "",
        "| task | algo | seeds | frames | mean ± 95% CI | IQM [95% CI] | reference | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['algo']} | {r['seeds_done']}/{r['seeds_planned']} | {r['frames']} | "
            f"{_num(r['mean'])} ± {_num(r['ci95'])} | "
            f"{_num(r['iqm'])} [{_num(r['iqm_low'])}, {_num(r['iqm_high'])}] | "
            f"{Reference(**r['reference']).cell()} | {r['verdict']} |")
    lines += ["", "## References", ""]
    for r in rows:
        ref = r["reference"]
        if ref["value"] is not None or ref["source"]:
            lines.append(f"- {r['task']} {r['algo']}: {Reference(**ref).cell()} ({ref['ci_kind'] or 'no interval'}); "
                         f"units: {ref['units']}; scale applied to ours: {r['scale']}; source: {ref['source']}")
    lines += ["", "## Per seed", "", "| task | algo | seed | value | action | reason |", "|---|---|---|---|---|---|"]
    for run, action, reason in planned:
        row = next(r for r in rows if r["task"] == run.entry.task and r["algo"] == run.entry.algo)
        value = row["per_seed"].get(run.seed)
        status = f"FAILED: {failures[str(run.run_dir)]}" if str(run.run_dir) in failures else reason
        shown = _num(value) if value is not None else "missing"
        lines.append(f"| {run.entry.task} | {run.entry.algo} | {run.seed} | {shown} | {action} | {status} |")
    lines.append("")
    path = suite_dir / "RESULTS.md"
    path.write_text("\n".join(lines))
    (suite_dir / "results.json").write_text(json.dumps(
        {"suite": suite.name, "metric": suite.metric.name, **info, "rows": rows,
         "runs": [{"task": r.entry.task, "algo": r.entry.algo, "seed": r.seed, "run_dir": str(r.run_dir),
                   "action": a, "error": failures.get(str(r.run_dir))} for r, a, _ in planned]},
        indent=2, default=str))
    return path


# ==================================================================================== the harness
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


def run_suite(name: str, out: str | Path = "runs/reproduce", *, quick: bool = False, seeds: list[int] | None = None,
              tasks: list[str] | None = None, algos: list[str] | None = None, frames: int | None = None,
              workers: int | None = None, command: str | None = None, iqm_backend: str = "auto",
              log: Callable[[str], None] = print) -> SuiteReport:
    """Plan, run (through Ray) and aggregate the suite ``name`` under ``out``; see the module docstring.

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
    failures, ray_info = {}, "not needed (every run finished)"
    if todo:
        import ray

        started = init_ray(workers)
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            ray_info = (f"{len(nodes)} node(s), {ray.cluster_resources().get('CPU', 0):g} CPUs"
                        + (f", at most {workers} runs at a time" if workers else ""))
            failures = dispatch(todo, workers, log)
        finally:
            if started:
                ray.shutdown()
    rows = aggregate(suite, runs, iqm_backend=iqm_backend)
    suite_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_task(task, suite, runs, rows, suite_dir / f"curves_{_slug(task)}.png")
             for task in dict.fromkeys(e.task for e in suite.entries)]
    wall = time.perf_counter() - t0
    info = {"date": date, "command": command or f"run_suite({name!r}, out={str(out)!r}, quick={quick}, "
                                                   f"seeds={seeds}, workers={workers})",
            "uname": " ".join(os.uname()), "cores": os.cpu_count(), "ray": ray_info, "load_start": load_start,
            "load_end": _loadavg(), "wall_s": wall}
    results = write_results(suite, rows, planned, failures, info, suite_dir)
    log(f"wrote {results}")
    return SuiteReport(suite, planned, failures, rows, results, plots, wall)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``reproduce`` command line: SUITE [--quick] [--out DIR] [--seeds ...] [--workers N]."""
    p.add_argument("suite", help=f"suite name ({', '.join(sorted(reproduce_suites.SUITES))})")
    p.add_argument("--quick", action="store_true", help="the suite's short smoke version (in OUT/<suite>-quick)")
    p.add_argument("--out", default="runs/reproduce", help="output root (default: runs/reproduce)")
    p.add_argument("--seeds", default=None, help=f"replace every entry's seeds: {SEEDS_FORMS}")
    p.add_argument("--tasks", default=None, help="only these tasks of the suite, comma-separated (default: all)")
    p.add_argument("--algos", default=None, help="only these algorithms, comma-separated (default: all)")
    p.add_argument("--frames", type=int, default=None,
                   help="replace every entry's frame budget (a shorter study; use a fresh --out)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs at a time (local Ray: its CPUs; default: every core, or the whole cluster)")
    return p


def run_from_args(args: argparse.Namespace, prog: str) -> int:
    """Run the parsed command line; 0 when every run succeeded, 1 when some failed."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1 (got {args.workers}).")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    algos = [a.strip() for a in args.algos.split(",") if a.strip()] if args.algos else None
    command = shlex.join([*shlex.split(prog), args.suite, *(["--quick"] if args.quick else []), "--out", args.out,
                          *(["--seeds", args.seeds] if args.seeds is not None else []),
                          *(["--tasks", args.tasks] if args.tasks else []), *(["--algos", args.algos] if args.algos else []),
                          *(["--frames", str(args.frames)] if args.frames is not None else []),
                          *(["--workers", str(args.workers)] if args.workers is not None else [])])
    try:
        report = run_suite(args.suite, args.out, quick=args.quick, seeds=seeds, tasks=tasks, algos=algos,
                           frames=args.frames, workers=args.workers, command=command)
    except KeyboardInterrupt:
        print(f"interrupted: rerun `{command}` to continue (finished runs are kept, runs resume from their last "
              "checkpoint)", file=sys.stderr)
        return 130
    return 1 if report.failures else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m torchrl_vd.reproduce SUITE ...``."""
    p = add_arguments(argparse.ArgumentParser(prog="python -m torchrl_vd.reproduce",
                                              description=__doc__.split("\n")[0]))
    args = p.parse_args(argv)
    try:
        return run_from_args(args, p.prog)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from torchrl_vd import reproduce as _module  # this module under its importable name, for Ray's workers

    sys.exit(_module.main())
