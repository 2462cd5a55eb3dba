"""Fault injection into checkpoint writes, for the kill tests (tests/test_faults.py).

:func:`die_in_checkpoint_write` patches this process's ``torchrl_vd.train.checkpoint`` so that its N-th
checkpoint write SIGKILLs the process at one stage of :func:`~torchrl_vd.train.checkpoint.write_checkpoint_file`:

* ``write``: the temp file half written (SIGKILL once its first 4 KiB are on disk);
* ``written``: the temp file complete (flushed, fsynced and closed), not yet renamed;
* ``linked``: the previous checkpoint kept as checkpoint.prev.pt, the new one not yet renamed into place.

Call it only in a process that is meant to die (the tests' forked training child): it patches module
globals for the rest of the process's life.
"""

from __future__ import annotations

import os
import signal

from torchrl_vd.train import checkpoint as ckpt_mod

STAGES = ("write", "written", "linked")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _DyingFile:
    """The temp file of the fatal write: every call goes to the real file; ``write`` dies after 4 KiB at stage
    ``write``, leaving the ``with`` block (flushed, fsynced, closed) dies at stage ``written``."""

    def __init__(self, path, stage: str):
        self.f, self.stage, self.written = open(path, "wb"), stage, 0

    def write(self, b) -> int:
        n = self.f.write(b)
        self.written += n
        if self.stage == "write" and self.written > 4096:
            self.f.flush()
            _die()
        return n

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()
        if self.stage == "written" and exc[0] is None:
            _die()


class _DyingOs:
    """``os`` as checkpoint.py sees it during the fatal write: renaming the temp file into place dies first."""

    def __init__(self, temp_path):
        self.temp_path = str(temp_path)

    def replace(self, src, dst):
        if str(src) == self.temp_path:
            _die()
        return os.replace(src, dst)

    def __getattr__(self, name):
        return getattr(os, name)


def die_in_checkpoint_write(fault: str) -> None:
    """``fault`` = ``"STAGE:N"`` (``STAGE`` in :data:`STAGES`, N ≥ 1; ``"STAGE"`` alone means N = 1): SIGKILL this
    process at ``STAGE`` of its N-th checkpoint write from now on."""
    stage, _, n = fault.partition(":")
    if stage not in STAGES:
        raise ValueError(f"unknown checkpoint fault stage {stage!r}; one of {STAGES}")
    target, writes = int(n or 1), 0
    open_for_write = ckpt_mod._open_for_write

    def open_and_maybe_die(path):
        nonlocal writes
        writes += 1  # one _open_for_write per write_checkpoint_file
        if writes != target:
            return open_for_write(path)
        if stage == "linked":
            ckpt_mod.os = _DyingOs(path)
            return open_for_write(path)
        return _DyingFile(path, stage)

    ckpt_mod._open_for_write = open_and_maybe_die
