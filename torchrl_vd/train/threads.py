"""Scheduling on this machine: torch's thread count (PERF-NOTES: OpenMP spin-waits on 2 loaded cores cost
4-15x) and the priority of the Ray workers a local Ray instance starts."""

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


def ray_workers_at_normal_priority() -> None:
    """Make the Ray instance started next run its workers at niceness 0, as the driver, not Ray's default 15.

    Ray's raylet renices every worker to ``RAY_worker_niceness`` (default 15). Training runs and collectors
    are the work itself, not background chores: at niceness 15 any other process on the machine starves them
    (measured on 2 cores at load ~11: two ``torchrl-vd reproduce`` runs got ~10% CPU each while un-niced
    processes got 55-70%). A value the user exported is kept; a cluster joined through ``RAY_ADDRESS`` keeps
    its own setting (the variable is read by each node's raylet when it starts)."""
    os.environ.setdefault("RAY_worker_niceness", "0")
