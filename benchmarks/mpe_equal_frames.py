"""Our MPE runs beside MARLlib's published curves at an equal number of environment steps (issue #14).

MARLlib's full budget is 2M steps x 4 seeds per (task, algo): about 1.5 h per run on one quiet core here,
so this compares at the frames our runs reached instead. MARLlib's per-seed curve files (results/mpe_cooperative
at commit 306629c, ``step,reward`` every 10k steps: the mean training episode reward of that 10k-step
iteration) are copied into ``benchmarks/reference/marllib_mpe_curves.csv``. At budget F, MARLlib's figure is
its logged reward at step F; ours is the mean training return (``train_return`` of metrics.csv, ε-greedy, ε =
0.05 after 50k frames on both sides) over the batches of the last 10k frames up to F. Both are converted to one
unit with reproduce_suites.py's rule (our team reward T, MARLlib's M: simple_spread M = 3T − 112.5,
speaker_listener M = 2T) and printed in both.

    python benchmarks/mpe_equal_frames.py RUNS_ROOT [--frames 100000]

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--frames", type=int, default=100_000)
    args = p.parse_args()
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
