"""Learning-curve figures from run directories (metrics.csv): return vs frames, evaluation points."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_metrics(run_dir: str | Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats (empty cells -> nan)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a torchrl-vd run directory?")
    cols: dict[str, list[float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
                except ValueError:
                    cols.setdefault(k, []).append(math.nan)
    return cols


def plot_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Overlay the training return (line) and greedy evaluations (markers) of several runs into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, run in enumerate(run_dirs):
        m = read_metrics(run)
        color = f"C{i % 10}"
        label = Path(run).name
        pts = [(f, r) for f, r in zip(m.get("frames", []), m.get("train_return", [])) if not math.isnan(r)]
        if pts:
            ax.plot(*zip(*pts), color=color, alpha=0.8, label=f"{label} (train, ε-greedy)")
        ev = [(f, r) for f, r in zip(m.get("frames", []), m.get("eval_return", [])) if not math.isnan(r)]
        if ev:
            ax.plot(*zip(*ev), "o--", color=color, label=f"{label} (greedy eval)")
    ax.set_xlabel("frames")
    ax.set_ylabel("episode return")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
