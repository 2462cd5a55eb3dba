"""Our `mpe-xuance` runs beside XuanCe's published per-seed curves at equal environment steps.

XuanCe (agi-brain/xuance-benchmarks, ``MPE/simple_spread_v3/<algo>/results/seed_*/learning_curve.csv``) logs a
greedy test return every 100k steps; the per-seed values up to 1M steps are in
``benchmarks/reference/xuance_simple_spread_curves.csv``. Our suite evaluates greedily every 100k frames too
(``eval_return`` of metrics.csv, 16 episodes). One env step is one joint step on both sides (a "frame" here).
Units: XuanCe's ``avg_return`` is the mean over the 3 agents of each agent's episode return; ours is the team
return (sum over agents), so ours / 3 is printed (checked against a random policy: docs/RESULTS-real-tasks.md).

    python benchmarks/mpe_xuance_curves.py RUNS_ROOT [--plot curves.png] [--markdown]

RUNS_ROOT: a ``torchrl-vd reproduce mpe-xuance`` output (``RUNS_ROOT/<task>/<algo>/seed<k>/metrics.csv``, the
task's ``/`` written as ``_``).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from torchrl_vd.train.stats import t_interval

ROOT = Path(__file__).resolve().parent.parent
CURVES = ROOT / "benchmarks" / "reference" / "xuance_simple_spread_curves.csv"
TASK = "pettingzoo/simple_spread_v3"
ALGOS = ("vdn", "qmix", "ow-qmix", "iql")  # the reference CSV names XuanCe's runs by our algorithm names
N_AGENTS = 3


def xuance_curves() -> dict:
    """{xuance algo: {step: [value of each seed]}}."""
    out = defaultdict(lambda: defaultdict(list))
    with CURVES.open() as f:
        for r in csv.DictReader(f):
            if r["task"] == TASK:
                out[r["algo"]][int(r["step"])].append(float(r["value"]))
    return out


def our_curves(runs_root: Path) -> dict:
    """{our algo: {frames: [eval_return / 3 of each seed]}} from every seed's metrics.csv."""
    out = defaultdict(lambda: defaultdict(list))
    for metrics in sorted(runs_root.glob(f"{TASK.replace('/', '_')}/*/seed*/metrics.csv")):
        algo = metrics.parent.parent.name
        with metrics.open() as f:
            for r in csv.DictReader(f):
                if r["eval_return"] not in ("", "nan"):
                    out[algo][int(r["frames"])].append(float(r["eval_return"]) / N_AGENTS)
    return out


def cell(values: list[float]) -> str:
    if not values:
        return "—"
    mean, half = t_interval(values)
    return f"{mean:.2f} ± {half:.2f} ({len(values)})" if len(values) > 1 else f"{mean:.2f} (1)"


def table(ours: dict, theirs: dict, markdown: bool) -> str:
    lines = []
    head = ["algo", "steps", "ours (seeds)", "XuanCe (seeds)", "ours − XuanCe"]
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        lines.append("  ".join(f"{h:>18}" for h in head))
    for algo in ALGOS:
        for step in sorted(ours.get(algo, {})):
            mine, ref = ours[algo][step], theirs.get(algo, {}).get(step, [])
            diff = f"{sum(mine) / len(mine) - sum(ref) / len(ref):+.2f}" if mine and ref else "—"
            row = [algo, f"{step:,}", cell(mine), cell(ref), diff]
            lines.append("| " + " | ".join(row) + " |" if markdown else "  ".join(f"{c:>18}" for c in row))
    return "\n".join(lines)


def plot(ours: dict, theirs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ALGOS), figsize=(4 * len(ALGOS), 3.2), sharey=True)
    for ax, algo in zip(axes, ALGOS):
        for label, curves, color in (("torchrl_vd", ours.get(algo, {}), "C0"), ("XuanCe", theirs.get(algo, {}), "C1")):
            steps = [s for s in sorted(curves) if s <= max(ours.get(algo, {0: 0}))]
            if not steps:
                continue
            means = [sum(curves[s]) / len(curves[s]) for s in steps]
            ax.plot(steps, means, color=color, label=f"{label} ({max(len(curves[s]) for s in steps)} seeds)")
            ax.fill_between(steps, [min(curves[s]) for s in steps], [max(curves[s]) for s in steps], color=color,
                            alpha=0.2)
        ax.set_title(f"simple_spread {algo}")
        ax.set_xlabel("env steps")
    axes[0].set_ylabel("greedy return per agent (mean, band: seeds' min..max)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs_root", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    ours, theirs = our_curves(args.runs_root), xuance_curves()
    if not ours:
        raise SystemExit(f"no metrics.csv under {args.runs_root}/{TASK.replace('/', '_')}/<algo>/seed*/")
    print(table(ours, theirs, args.markdown))
    if args.plot:
        plot(ours, theirs, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
