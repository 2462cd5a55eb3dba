"""torch's thread count for this machine (PERF-NOTES: OpenMP spin-waits on 2 loaded cores cost 4-15x)."""

from __future__ import annotations

import os

import torch


def set_default_threads(threads: int = 0) -> int:
    """1 torch thread on machines with ≤ 2 cores (2 threads measured 4–15x slower under load), else as asked
    (0 = torch's default)."""
    if threads <= 0:
        threads = 1 if (os.cpu_count() or 1) <= 2 else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads
