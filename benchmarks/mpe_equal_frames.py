"""Our MPE runs beside MARLlib's published curves at an equal number of environment steps.

MARLlib's full budget is 2M steps x 4 seeds per (task, algo): about 1.5 h per run on one quiet core here,
so this compares at the frames our runs reached instead. MARLlib's per-seed curve files (results/mpe_cooperative
at commit 306629c, ``step,reward`` every 10k steps: the mean training episode reward of that 10k-step
iteration) are copied into ``benchmarks/reference/marllib_mpe_curves.csv``. At budget F, MARLlib's figure is
its logged reward at step F; ours is the mean training return (``train_return`` of metrics.csv, ε-greedy, ε =
0.05 after 50k frames on both sides) over the batches of the last 10k frames up to F. Both are converted to one
unit with torchrl_vd/reproduce/suites.py's rule (our team reward T, MARLlib's M: simple_spread M = 3T − 112.5,
speaker_listener M = 2T) and printed in both.

    python benchmarks/mpe_equal_frames.py RUNS_ROOT [--frames 100000] [--plot curves.png]

``--plot``: one panel per task up to ``--frames``, in our units: each of our runs' training return averaged over
10k-frame windows (MARLlib's logging interval) and MARLlib's per-algorithm mean over its seeds with the band of
its seeds' min..max.

RUNS_ROOT: a ``torchrl-vd reproduce mpe`` output (``RUNS_ROOT/mpe/<task>/<algo>/seed<k>/metrics.csv``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CURVES = ROOT / "benchmarks" / "reference" / "marllib_mpe_curves.csv"
TASKS = {"pettingzoo/simple_spread_v3": ("simple_spread", 3, -112.5),
         "pettingzoo/simple_speaker_listener_v4": ("simple_speaker_listener", 2, 0.0)}


def marllib_at(frames: int) -> dict:
    """{(task, algo): [M of each MARLlib seed at step ``frames``]} (the logged step nearest to ``frames``)."""
    rows = defaultdict(dict)
    with CURVES.open() as f:
        for r in csv.DictReader(f):
            rows[(r["task"], r["algo"], r["run"])][int(r["step"])] = float(r["reward"])
    out = defaultdict(list)
    for (task, algo, _), curve in rows.items():
        step = min(curve, key=lambda s: abs(s - frames))
        out[(task, algo)].append(curve[step])
    return out


def ours_at(metrics: Path, frames: int, window: int = 10_000) -> float | None:
    """Mean ``train_return`` over the batches whose frame count lies in (frames - window, frames]."""
    with metrics.open() as f:
        values = [float(r["train_return"]) for r in csv.DictReader(f)
                  if frames - window < int(r["frames"]) <= frames and r["train_return"] not in ("", "nan")]
    return statistics.fmean(values) if values else None


def marllib_curves() -> dict:
    """{(task, algo): {step: [M of each seed]}} from MARLlib's curve files."""
    out = defaultdict(lambda: defaultdict(list))
    with CURVES.open() as f:
        for r in csv.DictReader(f):
            out[(r["task"], r["algo"])][int(r["step"])].append(float(r["reward"]))
    return out


def plot(runs: Path, frames: int, path: Path, window: int = 10_000) -> None:
    """Our curves beside MARLlib's, one panel per task, in our units T (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    theirs = marllib_curves()
    fig, axes = plt.subplots(1, len(TASKS), figsize=(6 * len(TASKS), 4), squeeze=False)
    colors = {"vdn": "tab:blue", "qmix": "tab:orange", "qtran": "tab:green", "qtran-alt": "tab:red"}
    for ax, (task, (name, agents, offset)) in zip(axes[0], TASKS.items()):
        for algo in ("vdn", "qmix"):
            curve = theirs.get((name, algo), {})
            steps = sorted(s for s in curve if s <= frames)
            if steps:
                to_t = [[(m - offset) / agents for m in curve[s]] for s in steps]
                ax.plot(steps, [statistics.fmean(v) for v in to_t], "--", color=colors[algo],
                        label=f"MARLlib {algo} (mean of {len(to_t[0])} seeds)")
                ax.fill_between(steps, [min(v) for v in to_t], [max(v) for v in to_t], color=colors[algo], alpha=0.12)
        base = runs / "mpe" / task.replace("/", "_")
        for algo_dir in sorted(base.iterdir()) if base.exists() else []:
            for metrics in sorted(algo_dir.glob("seed*/metrics.csv")):
                with metrics.open() as f:
                    rows = [(int(r["frames"]), float(r["train_return"])) for r in csv.DictReader(f)
                            if r["train_return"] not in ("", "nan") and int(r["frames"]) <= frames]
                ends = range(window, (rows[-1][0] if rows else 0) + 1, window)
                xs = [e for e in ends if any(e - window < f_ <= e for f_, _ in rows)]
                ys = [statistics.fmean(v for f_, v in rows if e - window < f_ <= e) for e in xs]
                ax.plot(xs, ys, color=colors.get(algo_dir.name, "black"), lw=1.2,
                        label=f"ours {algo_dir.name} {metrics.parent.name}")
        ax.set_title(f"{name}: training return (ε-greedy), our units")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("team reward summed over agents (T)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--plot", type=Path, default=None, help="also draw the curves to this PNG")
    args = p.parse_args()
    if args.plot:
        plot(args.runs, args.frames, args.plot)
    ref = marllib_at(args.frames)
    print(f"| task | algo | ours: per seed (T) | ours: mean T | ours in MARLlib's M | MARLlib @ {args.frames:,}: "
          f"per seed (M) | MARLlib: mean M | MARLlib in our T |")
    print("|---|---|---|---|---|---|---|---|")
    for task, (name, agents, offset) in TASKS.items():
        base = args.runs / "mpe" / task.replace("/", "_")
        for algo_dir in sorted(base.iterdir()) if base.exists() else []:
            ours = [ours_at(m, args.frames) for m in sorted(algo_dir.glob("seed*/metrics.csv"))]
            ours = [v for v in ours if v is not None]
            if not ours:
                continue
            t = statistics.fmean(ours)
            theirs = ref.get((name, algo_dir.name), [])
            m = statistics.fmean(theirs) if theirs else float("nan")
            print(f"| {name} | {algo_dir.name} | {', '.join(f'{v:.1f}' for v in ours)} | {t:.1f} | "
                  f"{agents * t + offset:.1f} | {', '.join(f'{v:.1f}' for v in theirs) or '—'} | "
                  f"{m:.1f} | {(m - offset) / agents:.1f} |")


if __name__ == "__main__":
    main()
