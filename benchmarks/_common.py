"""Shared helpers of the benchmark scripts: thread setup, timing, medians, markdown tables, JSON results.

Every benchmark runs with one torch thread (benchmarks/RESULTS.md §0: on a loaded 2-core box 2 threads
were 4-15x slower)
and compares variants only through ratios measured in the same run: variants are interleaved round by
round and each figure is the median over rounds.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# Team reward "mean" makes our reward scale equal to BenchMARL's (its QMIX averages the agents' rewards).
BALANCE_KWARGS = {"n_agents": 4, "max_steps": 100, "team_reward": "mean"}


def setup(threads: int = 1) -> None:
    """1 torch thread, torchrl's info logs and user warnings off (they would interleave with the tables)."""
    os.environ.setdefault("RL_WARNINGS", "False")
    torch.set_num_threads(threads)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("torchrl").setLevel(logging.WARNING)


def machine() -> dict:
    """What the figures were measured on."""
    info = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for mod in ("torchrl", "tensordict", "vmas"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # a version we cannot read is reported as missing, never fatal
            info[mod] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sync(device="cpu") -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously: a timer read without this measures the
    launches, not the work); nothing to wait for on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device="cpu") -> str:
    """The card's name for a CUDA device (``torch.cuda.get_device_name``), else the CPU's."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return _cpu_name()


def median(xs: Iterable[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, rotating the order each round; all measurements per variant."""
    names = list(variants)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            out[n].append(variants[n]())
    return out


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats printed with 3 significant digits (or as integers when large)."""

    def fmt(v):
        if isinstance(v, float):
            if v != v:
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict) -> Path:
    """benchmarks/results/<name>.json (git-ignored) with the machine description and the command line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def run_worker(cmd: list[str], timeout: float = 1800) -> dict:
    """Run a worker subprocess that prints one JSON line prefixed ``RESULT `` as its last such line."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RL_WARNINGS="False")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def emit(result: dict) -> None:
    """A worker's result line (read by :func:`run_worker`)."""
    print("RESULT " + json.dumps(result, default=float), flush=True)
