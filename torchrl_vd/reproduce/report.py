"""A suite's outcome: the table rows (:func:`aggregate`), the curves (:func:`plot_task`), RESULTS.md and
results.json (:func:`write_results`), and the plan printed by ``--dry-run`` (:func:`format_plan`).

Per (task, algo): the mean over seeds ± the 95% Student-t interval, and the IQM with a 95% percentile
bootstrap interval (:func:`torchrl_vd.reproduce.stats.iqm_interval`; Agarwal et al., NeurIPS 2021). The
verdict compares our mean with the reference interval ``value ± ci``: within, above or below.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from torchrl_vd.reproduce.planning import ACTIONS, finished
from torchrl_vd.reproduce.references import Reference, format_number, resolve_reference, verdict
from torchrl_vd.reproduce.spec import CURVE_AXES, RunSpec, Suite
from torchrl_vd.reproduce.stats import iqm_interval
from torchrl_vd.train.run_files import read_metric_columns
from torchrl_vd.train.stats import t_interval

_num = format_number


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
        walls = [cumulative_time(read_metric_columns(r.run_dir).get("time", [0.0]))[-1] for r in done]
        wall, wall_half = t_interval(walls) if walls else (math.nan, math.nan)
        rows.append({
            "task": e.task, "algo": e.algo, "seeds_done": len(per_seed), "seeds_planned": len(e.seeds),
            "frames": e.frames, "per_seed": per_seed, "mean": mean, "ci95": half, "iqm": iqm_value,
            "iqm_low": iqm_low, "iqm_high": iqm_high, "iqm_backend": backend, "scale": e.scale,
            "reference": dataclasses.asdict(ref), "verdict": verdict(mean, ref),
            "wall_s": wall, "wall_ci95": wall_half, "frames_per_s": e.frames / wall if walls and wall > 0 else math.nan,
        })
    return rows


def cumulative_time(times: list[float]) -> list[float]:
    """metrics.csv's ``time`` (seconds since the process started training) made cumulative over resumed segments:
    each restart (a smaller value than the row before) continues from where the previous segment ended.

    Examples:
        >>> cumulative_time([1.0, 2.0, 3.5, 0.5, 1.5])  # resumed after the third row
        [1.0, 2.0, 3.5, 4.0, 5.0]
    """
    out, offset, last = [], 0.0, 0.0
    for t in times:
        if t < last:
            offset += last
        out.append(offset + t)
        last = t
    return out


def _points(run_dir: Path, y: str, x: str) -> np.ndarray:
    """``[(x, y)]`` of one run's metrics.csv. ``y``: a column, or ``"eval"`` (its greedy win rate where logged, else
    its greedy return); ``x``: ``"frames"`` or ``"wall_s"`` (cumulative training time)."""
    m = read_metric_columns(run_dir)
    if y == "eval":
        won = [v for v in m.get("eval_win_rate", []) if not math.isnan(v)]
        y = "eval_win_rate" if won else "eval_return"
    xs = cumulative_time(m.get("time", [])) if x == "wall_s" else m.get("frames", [])
    return np.array([(a, b) for a, b in zip(xs, m.get(y, [])) if not math.isnan(b)]).reshape(-1, 2)


def _mean_curve(runs: list[RunSpec], scale: float, y: str = "train_return", x: str = "frames"):
    """``(grid, mean, half, n)``: the finished runs' ``y`` against ``x`` (:func:`_points`) on a common grid (up to
    the shortest run), times ``scale``, averaged over seeds with its 95% t half-width (None for one seed); None
    without runs."""
    curves = [c for c in (_points(r.run_dir, y, x) for r in runs) if len(c)]
    if not curves:
        return None
    end = min(c[-1, 0] for c in curves)
    grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
    grid = grid[(grid <= end) & (grid >= max(c[0, 0] for c in curves))]
    ys = np.stack([np.interp(grid, c[:, 0], c[:, 1]) for c in curves]) * scale  # [seeds, points]
    half = np.array([t_interval(col)[1] for col in ys.T]) if len(curves) > 1 else None
    return grid, ys.mean(0), half, len(curves)


def curve_table(suite: Suite, runs: list[RunSpec]) -> dict:
    """results.json's curves: per (task, algo) and x axis of ``suite.curves``, the greedy evaluation's
    ``{"x", "mean", "ci95", "n"}`` over the finished seeds (ci95 None for one seed)."""
    out = {}
    for e in suite.entries:
        done = [r for r in runs if r.entry is e and finished(r)]
        for x in suite.curves:
            curve = _mean_curve(done, e.scale, "eval", x)
            if curve is not None:
                grid, mean, half, n = curve
                out.setdefault(f"{e.task} {e.algo}", {})[x] = {
                    "x": grid.tolist(), "mean": mean.tolist(), "ci95": None if half is None else half.tolist(), "n": n}
    return out


def plot_task(task: str, suite: Suite, runs: list[RunSpec], rows: list[dict], out: Path) -> Path:
    """Learning curves of every algo on ``task``, averaged over the finished seeds with a shaded 95% t-interval
    band: the ε-greedy train_return against frames with each algo's reference as a horizontal line (and its
    interval band), or, for a suite with ``curves``, the greedy evaluation (win rate where logged, else return)
    against each of its x axes, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("eval", x) for x in suite.curves] or [("train_return", "frames")]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    for ax, (y, x) in zip(axes[0], panels):
        for i, e in enumerate(e for e in suite.entries if e.task == task):
            color = f"C{i % 10}"
            curve = _mean_curve([r for r in runs if r.entry is e and finished(r)], e.scale, y, x)
            if curve is not None:
                grid, mean, half, n = curve
                scaled = f", x{e.scale:g}" if e.scale != 1 else ""
                ax.plot(grid, mean, color=color, label=f"{e.algo} (n={n}{scaled})")
                if half is not None:
                    ax.fill_between(grid, mean - half, mean + half, color=color, alpha=0.2)
            ref = next(r["reference"] for r in rows if r["task"] == task and r["algo"] == e.algo)
            if ref["value"] is not None:
                ax.axhline(ref["value"], color=color, ls="--", lw=1, label=f"{e.algo} reference")
                if not math.isnan(ref["ci"]) and ref["ci"] > 0:
                    ax.axhspan(ref["value"] - ref["ci"], ref["value"] + ref["ci"], color=color, alpha=0.1)
        ax.set_xlabel(CURVE_AXES[x])
        ax.set_ylabel("greedy evaluation (win rate, else return)" if y == "eval"
                      else "train return (ε-greedy), mean over seeds")
        ax.set_title(f"{suite.name}: {task}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _header_lines(suite: Suite, rows: list[dict], planned: list[tuple[RunSpec, str, str]], info: dict) -> list[str]:
    """RESULTS.md's title, what the run was (date, command, machine, load, wall time) and how to read the table."""
    backend = rows[0]["iqm_backend"] if rows else "n/a"
    iqm_kind = ("rliable get_interval_estimates (stratified bootstrap, percentile)" if backend == "rliable"
                else "stratified bootstrap over seeds in numpy (reproduce.iqm_interval), percentile")
    return [
        f"# Reproduction: suite `{suite.name}`",
        "",
        suite.description,
        "",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- machine: `{info['uname']}`, {info['cores']} cores; Ray: {info['ray']}",
        f"- load average (/proc/loadavg) at start: `{info['load_start']}`; at end: `{info['load_end']}`",
        f"- total wall time: {info['wall_s']:.1f} s",
        "- this invocation: " + ", ".join(f"{a} {sum(1 for _, x, _ in planned if x == a)}" for a in ACTIONS),
        f"- metric: `{suite.metric.name}`: {suite.metric.description}, times the entry's scale",
        "- mean ± 95% CI: Student-t interval over seeds; "
        f"IQM [95% CI]: {iqm_kind}",
        "- verdict: our mean within / above / below the reference interval (value ± ci)",
        "",
    ]


def _reference_line(row: dict) -> str:
    """One line of RESULTS.md's references section."""
    ref = row["reference"]
    return (f"- {row['task']} {row['algo']}: {Reference(**ref).cell()} ({ref['ci_kind'] or 'no interval'}); "
            f"units: {ref['units']}; scale applied to ours: {row['scale']}; source: {ref['source']}")


def write_results(suite: Suite, rows: list[dict], planned: list[tuple[RunSpec, str, str]], failures: dict,
                  info: dict, suite_dir: Path) -> Path:
    """RESULTS.md (and results.json) in ``suite_dir``: the table, per-seed values, what this invocation
    did, machine, load at start/end, wall time and the exact command."""
    lines = _header_lines(suite, rows, planned, info) + [
        "| task | algo | seeds | frames | mean ± 95% CI | IQM [95% CI] | reference | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['algo']} | {r['seeds_done']}/{r['seeds_planned']} | {r['frames']} | "
            f"{_num(r['mean'])} ± {_num(r['ci95'])} | "
            f"{_num(r['iqm'])} [{_num(r['iqm_low'])}, {_num(r['iqm_high'])}] | "
            f"{Reference(**r['reference']).cell()} | {r['verdict']} |")
    if suite.curves:
        lines += ["", "## Wall-clock", "", "Training wall-clock per run (metrics.csv `time`, summed over resumed "
                  "segments; the env's start-up and compilation not included), mean ± 95% CI over seeds; frames/s at "
                  "that mean. Greedy-evaluation curves against " + " and ".join(CURVE_AXES[x] for x in suite.curves)
                  + " with their 95% CI bands: `curves_<task>.png`, and as numbers in results.json (`curves`).", "",
                  "| task | algo | wall-clock s | frames/s |", "|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['algo']} | {_num(r['wall_s'])} ± {_num(r['wall_ci95'])} | "
                  f"{_num(r['frames_per_s'])} |" for r in rows]
    lines += ["", "## References", ""]
    lines += [_reference_line(r) for r in rows if r["reference"]["value"] is not None or r["reference"]["source"]]
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
         "curves": curve_table(suite, [r for r, _, _ in planned]) if suite.curves else {},
         "runs": [{"task": r.entry.task, "algo": r.entry.algo, "seed": r.seed, "run_dir": str(r.run_dir),
                   "action": a, "error": failures.get(str(r.run_dir))} for r, a, _ in planned]},
        indent=2, default=str))
    return path


def format_plan(suite: Suite, planned: list[tuple[RunSpec, str, str]], suite_dir: Path) -> str:
    """The ``--dry-run`` text: per entry its seeds, frames and resolved reference (value ± ci, its kind,
    units and source), then what a real invocation would do with each of its runs, and why."""
    counts = ", ".join(f"{a} {sum(1 for _, x, _ in planned if x == a)}" for a in ACTIONS)
    lines = [f"suite {suite.name}: {suite.description}",
             f"metric: {suite.metric.name}: {suite.metric.description}",
             f"runs in {suite_dir}: {len(planned)} ({counts}); dry run: nothing is trained or written", ""]
    for e in suite.entries:
        ref = resolve_reference(e.reference, e.task, e.algo)
        lines.append(f"{e.task} {e.algo}: seeds {','.join(map(str, e.seeds))} x {e.frames} frames"
                     + (f", our metric x{e.scale:g}" if e.scale != 1 else ""))
        if ref.value is None:
            lines.append(f"  reference: {ref.cell()}" + (f"; source: {ref.source}" if ref.source else ""))
        else:
            lines.append(f"  reference: {ref.cell()} ({ref.ci_kind or 'no interval'}); units: {ref.units}; "
                         f"source: {ref.source}")
        for run, action, reason in planned:
            if run.entry is e:
                lines.append(f"  seed{run.seed}: {action} ({reason})")
    return "\n".join(lines)


__all__ = ["aggregate", "format_plan", "plot_task", "write_results"]
