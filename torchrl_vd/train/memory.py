"""What a run will hold in memory, checked against what the machine has before anything large is allocated.

The replay buffer (``LazyTensorStorage``) allocates its whole capacity at the first collected batch, and a
checkpoint copies the filled part of it while it is written; a buffer larger than the machine's memory would
otherwise be found by the OOM killer mid-run. :func:`check_memory` estimates those bytes from the env's own
specs (one transition as the collector writes it) and refuses a run that cannot fit, naming the setting to lower.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from torchrl_vd.keys import NEXT, RNN_HIDDEN

WARN_SHARE = 0.8
"""Warn when the estimate exceeds this share of the available memory."""


@dataclass
class MemoryEstimate:
    """Bytes a run holds: its replay buffer(s), their copy while a checkpoint is written, one collected batch."""

    transition: int  # bytes of one stored transition (one env step of one env)
    buffer: int
    checkpoint_copy: int
    batch: int

    @property
    def total(self) -> int:
        return self.buffer + self.checkpoint_copy + self.batch


def estimate_memory(env, cfg, n_seeds: int, seq_len: int) -> MemoryEstimate:
    """The estimate for ``cfg`` on ``env`` (the joint env of ``n_seeds`` seeds) with sequences of ``seq_len``."""
    fake = env.fake_tensordict()  # one step of every env, as the collector writes it: [N*E]
    kept = [x for key, x in fake.items(True, True)  # the buffer drops recurrent agents' next hidden state
            if not (isinstance(key, tuple) and key[0] == NEXT and key[-1] == RNN_HIDDEN)]
    per_row = sum(x.numel() * x.element_size() for x in kept) // max(fake.numel(), 1)
    stored = max(1, cfg.buffer_size // seq_len) * seq_len * n_seeds  # transitions the buffer holds
    return MemoryEstimate(per_row, per_row * stored, per_row * stored, per_row * cfg.frames_per_batch * n_seeds)


def available_memory() -> int | None:
    """Bytes this process can still take: /proc/meminfo's MemAvailable, capped by its cgroup's limit (None when
    the machine does not say)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass  # no /proc/meminfo (not Linux): the cgroup limit below, if any, is all we know
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass  # no cgroup v2 memory files: /proc/meminfo, if read, is all we know
    return min(found) if found else None


def accelerator_memory(device) -> int | None:
    """Free bytes on a CUDA ``device`` (``torch.cuda.mem_get_info``); None for other devices."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(dev)[0])


def check_memory(env, cfg, n_seeds: int, seq_len: int) -> MemoryEstimate:
    """Refuse (``MemoryError``) a run whose estimate exceeds the available memory, naming the bytes and the
    setting to lower; warn when it takes most of it. On a GPU the buffer, its checkpoint copy and the batch all
    live in the GPU's memory (``cfg.device``), so that is the memory they are checked against."""
    est = estimate_memory(env, cfg, n_seeds, seq_len)
    on_gpu = accelerator_memory(cfg.device)
    free = available_memory() if on_gpu is None else on_gpu
    if free is None:
        return est
    where = "the machine" if on_gpu is None else f"the GPU ({cfg.device})"
    seeds = f" x {n_seeds} seeds" if n_seeds > 1 else ""
    what = (f"the replay buffer of buffer_size={cfg.buffer_size} transitions{seeds} ({_gb(est.buffer)} at "
            f"{est.transition} bytes per transition), its copy while a checkpoint is written ({_gb(est.checkpoint_copy)}) "
            f"and a collected batch ({_gb(est.batch)}): {_gb(est.total)}")
    if est.total > free:
        most = max(1, int(cfg.buffer_size * (WARN_SHARE * free - est.batch) / max(est.buffer + est.checkpoint_copy, 1)))
        raise MemoryError(f"This run would need {what}, but {where} has {_gb(free)} available. Lower buffer_size "
                          f"(at most about {most} here){' or run fewer seeds per process' if n_seeds > 1 else ''}.")
    if est.total > WARN_SHARE * free:
        warnings.warn(f"This run will take most of the memory: {what} of {_gb(free)} available; other processes "
                      "may push it into the OOM killer (lower buffer_size to leave room).", RuntimeWarning,
                      stacklevel=3)
    return est


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


__all__ = ["MemoryEstimate", "accelerator_memory", "available_memory", "check_memory", "estimate_memory"]
