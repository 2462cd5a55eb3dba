"""Finished runs as marl-eval's raw-results JSON (``torchrl-vd export ... --format marl-eval``).

marl-eval (github.com/instadeepai/marl-eval; Gorsane et al., "Towards a Standardised Performance Evaluation
Protocol for Cooperative MARL", NeurIPS 2022) reads one nested dictionary, documented in its README ("Data
Structure for Raw Experiment data") and written by its own ``marl_eval/json_tools/json_logger.py`` and by
BenchMARL's ``JsonWriter`` (``benchmarl/experiment/logger.py``)::

    {env: {task: {algo: {"seed_<s>": {
        "absolute_metrics": {"return": [...], ...},
        "step_0": {"step_count": <env frames>, "return": [...], ...},   # one per evaluation, in time order
        ...}}}}}

What a torchrl-vd run becomes:

* ``env`` / ``task``: the two halves of ``TrainConfig.env`` (``vmas/balance`` -> ``vmas``, ``balance``);
  ``algo``: ``TrainConfig.algo``; ``seed_<s>``: ``TrainConfig.seed``. Every key lower-case (marl-eval
  lower-cases them on reading).
* ``step_<i>``: the i-th greedy evaluation (i = 0, 1, ...: marl-eval's ``JsonLogger`` counts evaluations so),
  from metrics.csv's evaluation rows (6 significant digits), plus the final evaluation of summary.json when it
  is not one of them (``eval_every`` not dividing ``frames``; when it is, summary.json's digits replace the
  row's); ``step_count`` is the env frames at that evaluation.
* ``return``: the evaluation's mean greedy return over the run's ``eval_episodes`` episodes, as a one-element
  list. Runs keep each evaluation's mean (metrics.csv ``eval_return``), not its episodes; marl-eval's own
  ``JsonLogger`` writes a metric the same way (``{key: [value]}``), and marl-eval averages each list before it
  aggregates, so every mean, IQM and interval over runs is the same as from the episodes. Only its min-max
  normalisation sees the evaluations' means where BenchMARL's files give it single episodes.
* ``win_rate``: the greedy win rate (metrics.csv ``eval_win_rate``), for envs that mark won episodes (SMAX).
* ``absolute_metrics``: the final greedy evaluation (summary.json ``final_eval_return``,
  ``final_eval_win_rate``): the policy training ended with. BenchMARL writes the best single evaluation
  episode seen during training instead; marl-eval's protocol asks for the best policy re-evaluated on ten
  times the episodes. Neither is recorded by a run, so the last policy is what is written.

marl-eval reads an environment as a complete grid: ``create_matrices_for_rliable`` takes the task, algorithm,
seed and step keys of the environment's first run and looks them up in every other one. So the export refuses,
naming the runs and the fix, what would break that or mislabel a run: a path that holds no run, an unfinished
run, two runs with the same (env, task, algo, seed), seeds of one (task, algo) trained with different configs,
evaluations at different frames, and an environment whose tasks lack an algorithm or seed another one has.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from torchrl_vd.train.run_files import atomic_write_text, read_config, read_metric_columns, read_summary

EXECUTION_KEYS = ("seed", "seeds", "out_dir", "resume", "progress", "threads", "device", "loggers",
                  "checkpoint_every", "igm_eval", "igm_max_joint_actions", "igm_max_states")
"""TrainConfig fields the seeds of one (task, algo) may differ in: where and how a run was executed and logged,
not what was trained."""

METRICS = {"return": ("eval_return", "final_eval_return"), "win_rate": ("eval_win_rate", "final_eval_win_rate")}
"""marl-eval metric -> (metrics.csv evaluation column, summary.json final value). ``win_rate`` only where the
env marks won episodes (the column exists)."""


@dataclass(frozen=True)
class ExportedRun:
    """One finished run read for the export: its keys in the JSON, its evaluations and its final evaluation."""

    run_dir: Path
    env: str
    task: str
    algo: str
    seed: int
    steps: tuple[tuple[int, dict[str, float]], ...]
    """``(env frames, {metric: value})`` per evaluation, in time order."""
    absolute: dict[str, float]
    """The final greedy evaluation, ``{metric: value}``."""
    config: dict


def is_run_dir(path: Path) -> bool:
    """A torchrl-vd run directory holds config.json and metrics.csv (a ``--seeds`` parent holds no metrics.csv)."""
    return (path / "config.json").is_file() and (path / "metrics.csv").is_file()


def find_run_dirs(paths) -> list[Path]:
    """The run directories named by ``paths``: each a run directory itself, or a folder holding runs at any depth
    (a suite's output ``OUT/<suite>``, a ``--seeds`` run's ``out_dir``); in order, each once."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: give a run directory or a folder of runs "
                                    "(e.g. a reproduction suite's OUT/<suite>).")
        below = [path] if is_run_dir(path) else sorted(
            p.parent for p in path.rglob("metrics.csv") if is_run_dir(p.parent))
        if not below:
            raise ValueError(f"{path} is not a torchrl-vd run directory (config.json + metrics.csv) and holds none; "
                             "give a run's --out directory, a --seeds run's directory or a suite's OUT/<suite>.")
        found.update((p.resolve(), None) for p in below)
    return list(found)


def _finite(value, run_dir: Path, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{run_dir}: {what} is {value}; marl-eval's JSON holds finite numbers only (a diverged "
                         "run? leave it out of the export).")
    return value


def read_run(run_dir: str | Path) -> ExportedRun:
    """One finished run: its keys, every greedy evaluation of metrics.csv and the final one of summary.json."""
    run_dir = Path(run_dir)
    config, summary = read_config(run_dir), read_summary(run_dir)
    if config is None:
        raise ValueError(f"{run_dir} has no config.json: not a torchrl-vd run directory.")
    if summary is None:
        raise ValueError(f"{run_dir} has no summary.json: the run has not finished. Finish it "
                         f"(`torchrl-vd train --resume {run_dir}`) or leave it out of the export.")
    if summary.get("interrupted"):
        raise ValueError(f"{run_dir} was stopped at {summary.get('frames')} of {config.get('frames')} frames; "
                         f"finish it (`torchrl-vd train --resume {run_dir}`) or leave it out of the export.")
    env, sep, task = str(config["env"]).partition("/")
    if not sep or not task:
        raise ValueError(f"{run_dir}: env {config['env']!r} is not 'family/task'; cannot name its marl-eval "
                         "environment and task.")
    columns = read_metric_columns(run_dir)
    metrics = {m: keys for m, keys in METRICS.items() if keys[0] in columns}
    frames = columns.get("frames", [])
    steps = []
    for i, f in enumerate(frames):
        if not math.isnan(columns["eval_return"][i]):
            steps.append((int(f), {m: _finite(columns[col][i], run_dir, f"metrics.csv {col} at frame {int(f)}")
                                   for m, (col, _) in metrics.items()}))
    absolute = {m: _finite(summary.get(final, math.nan), run_dir, f"summary.json {final}")
                for m, (_, final) in metrics.items()}
    if steps and steps[-1][0] == int(summary["frames"]):  # the final evaluation is metrics.csv's last: its digits
        steps[-1] = (steps[-1][0], dict(absolute))            # in full, as summary.json holds them
    else:  # eval_every does not divide frames (or is 0): the final evaluation is summary.json's only
        steps.append((int(summary["frames"]), dict(absolute)))
    return ExportedRun(run_dir, env.lower(), task.lower(), str(config["algo"]).lower(), int(config["seed"]),
                       tuple(steps), absolute, config)


def _label(run: ExportedRun) -> str:
    return f"{run.env}/{run.task} {run.algo} seed {run.seed} ({run.run_dir})"


def _check_seeds(runs: list[ExportedRun]) -> None:
    """The seeds of one (env, task, algo): distinct seeds, one config, evaluations at the same frames."""
    by_seed: dict[int, ExportedRun] = {}
    for run in runs:
        if run.seed in by_seed:
            raise ValueError(f"Two runs of {run.env}/{run.task} {run.algo} seed {run.seed}: {by_seed[run.seed].run_dir} "
                             f"and {run.run_dir}; export one of them.")
        by_seed[run.seed] = run
    first = runs[0]
    for run in runs[1:]:
        keys = sorted((set(first.config) | set(run.config)) - set(EXECUTION_KEYS))
        diff = [f"{k}={first.config.get(k)!r} vs {run.config.get(k)!r}" for k in keys
                if first.config.get(k) != run.config.get(k)]
        if diff:
            raise ValueError(f"{_label(first)} and {_label(run)} would be two seeds of one experiment but were "
                             f"trained with different configs ({'; '.join(diff)}); export them separately.")
        if [f for f, _ in run.steps] != [f for f, _ in first.steps]:
            raise ValueError(f"The seeds of {first.env}/{first.task} {first.algo} were evaluated at different "
                             f"frames: seed {first.seed} at {[f for f, _ in first.steps]}, seed {run.seed} at "
                             f"{[f for f, _ in run.steps]}; marl-eval averages seeds step by step. Train every seed "
                             "with the same frames, frames_per_batch and eval_every.")


def _check_environment(env: str, groups: dict[tuple[str, str], list[ExportedRun]]) -> None:
    """One environment is a complete grid: every task has every algorithm, every (task, algo) the same seeds,
    evaluation frames and metrics (marl-eval looks up the first run's keys in all the others)."""
    tasks = sorted({t for t, _ in groups})
    algos = sorted({a for _, a in groups})
    missing = [f"{t} {a}" for t in tasks for a in algos if (t, a) not in groups]
    if missing:
        raise ValueError(f"marl-eval needs every algorithm on every task of an environment; {env} has tasks {tasks} "
                         f"and algorithms {algos} but no runs of: {', '.join(missing)}. Add those runs or export "
                         "the tasks separately.")
    (t0, a0), ref = next(iter(groups.items()))
    ref_seeds, ref_frames = sorted(r.seed for r in ref), [f for f, _ in ref[0].steps]
    for (task, algo), runs in groups.items():
        seeds, frames = sorted(r.seed for r in runs), [f for f, _ in runs[0].steps]
        where = f"{env}/{task} {algo} vs {env}/{t0} {a0}"
        if seeds != ref_seeds:
            raise ValueError(f"marl-eval needs the same seeds for every (task, algorithm) of an environment: {where}: "
                             f"seeds {seeds} vs {ref_seeds}. Export the seeds they share, or run the missing ones.")
        if frames != ref_frames:
            raise ValueError(f"marl-eval plots an environment's runs on one frame axis, but {where} were evaluated at "
                             f"{frames} vs {ref_frames}. Train them with the same frames, frames_per_batch and "
                             "eval_every, or export them separately.")
        if set(runs[0].absolute) != set(ref[0].absolute):
            raise ValueError(f"{where}: metrics {sorted(runs[0].absolute)} vs {sorted(ref[0].absolute)}.")


def _run_entry(run: ExportedRun) -> dict:
    """``{"absolute_metrics": ..., "step_0": ..., ...}``: absolute metrics first and steps in time order, as
    BenchMARL's JsonWriter writes them (marl-eval reads the steps in insertion order)."""
    entry = {"absolute_metrics": {m: [v] for m, v in run.absolute.items()}}
    for i, (frames, values) in enumerate(run.steps):
        entry[f"step_{i}"] = {"step_count": frames, **{m: [v] for m, v in values.items()}}
    return entry


def marl_eval_data(paths) -> dict:
    """marl-eval's raw-results dictionary of the finished runs under ``paths`` (run directories or folders of
    runs), checked as this module's docstring says. Environments, tasks and algorithms sorted, seeds ascending.

    Examples:
        >>> marl_eval_data(["no/such/run"])
        Traceback (most recent call last):
        ...
        FileNotFoundError: no/such/run does not exist: give a run directory or a folder of runs (e.g. a reproduction suite's OUT/<suite>).
    """
    runs = [read_run(d) for d in find_run_dirs(paths)]
    groups: dict[str, dict[tuple[str, str], list[ExportedRun]]] = {}
    for run in runs:
        groups.setdefault(run.env, {}).setdefault((run.task, run.algo), []).append(run)
    data: dict = {}
    for env in sorted(groups):
        by_key = {k: sorted(v, key=lambda r: r.seed) for k, v in sorted(groups[env].items())}
        for members in by_key.values():
            _check_seeds(members)
        _check_environment(env, by_key)
        for (task, algo), members in by_key.items():
            data.setdefault(env, {}).setdefault(task, {})[algo] = {f"seed_{r.seed}": _run_entry(r) for r in members}
    return data


def describe(data: dict) -> str:
    """One line per environment of a marl-eval dictionary: its tasks, algorithms, seeds and evaluations."""
    lines = []
    for env, tasks in data.items():
        algos = next(iter(tasks.values()))
        seeds = next(iter(algos.values()))
        steps = sum(1 for k in next(iter(seeds.values())) if k.startswith("step_"))
        lines.append(f"{env}: tasks {', '.join(tasks)}; algorithms {', '.join(algos)}; {len(seeds)} seeds "
                     f"({', '.join(s.removeprefix('seed_') for s in seeds)}); {steps} evaluations each")
    return "\n".join(lines)


def write_marl_eval(paths, out: str | Path) -> dict:
    """Write :func:`marl_eval_data` of ``paths`` to ``out`` (JSON, atomically; parent folders made) and return it.

    Read it with marl-eval: ``data_process_pipeline(raw_data=json.load(f), metrics_to_normalize=["return"])``,
    then ``create_matrices_for_rliable(processed, environment_name=..., metrics_to_normalize=["return"])``.
    """
    data = marl_eval_data(paths)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return data


__all__ = ["EXECUTION_KEYS", "METRICS", "ExportedRun", "describe", "find_run_dirs", "is_run_dir", "marl_eval_data",
           "read_run", "write_marl_eval"]
