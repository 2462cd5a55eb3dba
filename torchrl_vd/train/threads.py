"""Scheduling on this machine: torch's thread count (OpenMP threads spin-wait: on 2 loaded cores, 2 threads made
VMAS stepping 4-15x slower than 1, benchmarks/RESULTS.md §0), when a child process may be forked, running
a function beside this process, and the priority of the Ray workers a local Ray instance starts."""

from __future__ import annotations

import os
import threading
from typing import Callable

import torch


def set_default_threads(threads: int = 0) -> int:
    """1 torch thread on machines with ≤ 2 cores (2 threads: 4–15x slower under load, RESULTS.md §0), else as asked
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


def thread_count() -> int:
    """Threads of this process, native ones included (Linux: /proc/self/task; JAX, OpenMP and other native
    pools start threads Python's ``threading`` does not list), else Python's own count."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


#: Threads once torch is imported: importing torch 2.13 starts one idle native thread besides the main one (every
#: torch process, e.g. a DataLoader forking its workers, has it). At most 2, so that threads another library had
#: already started when this module was imported (JAX run first) never count as safe.
TORCH_IMPORT_THREADS = min(thread_count(), 2)


def fork_is_safe(device: str = "cpu") -> bool:
    """Whether this process may ``fork`` a child that runs Python and torch: the platform forks, no thread runs
    beyond the main one and those importing torch starts, Python or native (a lock another thread holds at the
    fork stays locked in the child forever: e.g. JAX's thread pool once SMAX has run, or OpenMP workers with
    several torch threads), and no CUDA context exists (CUDA does not survive a fork). A forked child starts
    from this process's imported modules, where a spawned one imports torch, torchrl and the simulator again
    (3-7 s of CPU here)."""
    return (hasattr(os, "fork") and threading.active_count() == 1 and thread_count() <= TORCH_IMPORT_THREADS
            and str(device).startswith("cpu") and not torch.cuda.is_initialized())


def beside(fn: Callable[[], object]) -> Callable[[], None]:
    """Run ``fn()`` in a forked child while this process goes on; returns ``wait()``, which joins the child.

    Where forking is not safe (:func:`fork_is_safe`), ``fn()`` runs here and now and ``wait()`` does nothing.
    ``wait()`` raises ``RuntimeError`` if the child failed (its traceback went to stderr), so the caller can
    run ``fn()`` again in this process to get the exception itself.
    """
    if not fork_is_safe():
        fn()
        return lambda: None
    pid = os.fork()
    if pid == 0:  # the child: run fn, never return into the caller's code
        code = 0
        try:
            fn()
        except BaseException:  # noqa: BLE001 - report and leave with a failure status, whatever it was
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)

    def wait() -> None:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the forked child failed (exit status {os.waitstatus_to_exitcode(status)})")

    return wait
