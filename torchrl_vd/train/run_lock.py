"""One writer per run directory: a lock held while a process trains into it.

Two processes writing one run directory (two ``--resume`` of the same run, or a resume while the first run still
trains) would interleave metrics rows and write checkpoints from two histories. :class:`RunLock` takes an
exclusive ``flock`` on ``<run dir>/.lock`` (the file keeps the holder's pid and host for the message); the kernel
releases it when the holder exits, however it exits, so a lock left by a killed process is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = ".lock"


class RunDirectoryLocked(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """The exclusive lock on a run directory (created if needed); ``release()`` or process exit frees it."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise RunDirectoryLocked(
                f"{self.path.parent} is being written by {holder}; a second writer would interleave its metrics and "
                "checkpoints. Wait for that run to finish (or stop it), or train into another directory (--out)."
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


__all__ = ["LOCK_FILE", "RunDirectoryLocked", "RunLock"]
