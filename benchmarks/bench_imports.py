"""What starting costs: ``import torchrl_vd``, ``torchrl-vd --help`` and ``torchrl-vd train --help`` beside
``import torch`` and ``import torchrl``, each a fresh interpreter, interleaved (every round runs each command once,
in a rotated order), best and median of N.

    python benchmarks/bench_imports.py [--rounds 7]

Wall seconds and CPU seconds (``getrusage`` of the child; the more stable basis on a shared box) per command, with the
load average before the first round and after the last. ``python -c pass`` is the interpreter's own start.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import torch": ["-c", "import torch"],
    "import torchrl": ["-c", "import torchrl"],
    "import torchrl_vd": ["-c", "import torchrl_vd"],
    "torchrl-vd --help": ["-m", "torchrl_vd", "--help"],
    "torchrl-vd train --help": ["-m", "torchrl_vd", "train", "--help"],
}


def timed(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh interpreter running ``args``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    names = list(COMMANDS)
    runs = {name: [] for name in names}
    load0 = os.getloadavg()[0]
    for r in range(a.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotated: each goes first in turn
            runs[name].append(timed(COMMANDS[name]))
    print(f"{a.rounds} rounds, load {load0:.2f} before, {os.getloadavg()[0]:.2f} after; {sys.executable}\n")
    print("| command | wall s best | wall s median | CPU s best | CPU s median |")
    print("|---|---|---|---|---|")
    for name in names:
        walls, cpus = [w for w, _ in runs[name]], [c for _, c in runs[name]]
        print(f"| `{name}` | {min(walls):.3f} | {statistics.median(walls):.3f} | {min(cpus):.3f} | "
              f"{statistics.median(cpus):.3f} |")


if __name__ == "__main__":
    main()
