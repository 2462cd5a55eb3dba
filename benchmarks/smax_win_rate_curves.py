"""Greedy win rate vs frames on SMAX: our `reproduce smax` runs beside JaxMARL's own QMIX (jaxmarl_qmix_reference.py).

    python benchmarks/smax_win_rate_curves.py OURS_SUITE_DIR JAXMARL_CSV [JAXMARL_CSV ...] --out PNG

OURS_SUITE_DIR is the suite's folder (``OUT/smax``): every ``*/qmix/seed*/metrics.csv`` gives its ``eval_win_rate``
rows; each JaxMARL CSV gives ``test_returned_won_episode`` per ``env_steps``. Prints the mean over seeds at each
evaluation step for both and draws both means with a band from the lowest to the highest seed.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from torchrl_vd.train.plot import save_curves  # noqa: E402
from torchrl_vd.train.run_files import read_metric_columns  # noqa: E402


def ours(suite_dir: Path) -> list[dict[int, float]]:
    runs = sorted(suite_dir.glob("*/qmix/seed*/metrics.csv"))
    out = []
    for path in runs:
        m = read_metric_columns(path.parent)
        out.append({int(f): v for f, v in zip(m["frames"], m.get("eval_win_rate", [])) if not math.isnan(v)})
    return out


def jaxmarl(paths: list[Path]) -> list[dict[int, float]]:
    return [{int(r["env_steps"]): float(r["test_returned_won_episode"]) for r in csv.DictReader(open(p))}
            for p in paths]


def summary(curves: list[dict[int, float]]) -> list[tuple[int, float, float, float]]:
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return [(s, sum(c[s] for c in curves) / len(curves), min(c[s] for c in curves), max(c[s] for c in curves))
            for s in steps]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", type=Path)
    p.add_argument("jaxmarl", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    sides = {f"torchrl-vd QMIX ({len(ours(a.ours))} seeds)": summary(ours(a.ours)),
             f"JaxMARL qmix_rnn.py ({len(a.jaxmarl)} seeds)": summary(jaxmarl(a.jaxmarl))}
    for label, rows in sides.items():
        print(label)
        print("| frames | mean win rate | lowest seed | highest seed |\n|---|---|---|---|")
        for s, mean, low, high in rows:
            print(f"| {s:,} | {mean:.3f} | {low:.3f} | {high:.3f} |")
    save_curves({k: [(s, m) for s, m, _, _ in v] for k, v in sides.items()}, a.out, xlabel="frames (env steps)",
                ylabel="greedy win rate", title="SMAX 3m, QMIX (GRU 64, lr 5e-4): ours vs JaxMARL's own",
                bands={k: [(s, lo, hi) for s, _, lo, hi in v] for k, v in sides.items()},
                styles={k: {"marker": "o"} for k in sides}, ylim=(0, 1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
