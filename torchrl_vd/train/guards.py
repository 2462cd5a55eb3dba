"""What guards a running training loop: SIGINT/SIGTERM become a checkpoint-and-stop, non-finite env data an error."""

from __future__ import annotations

import signal
import threading

import torch
from tensordict import TensorDictBase


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current batch and stops."""

    def __init__(self):
        self.requested = False
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def check_finite(batch: TensorDictBase, frames_before: int) -> None:
    """Refuse NaN/inf rewards or observations from the env, naming the env index and step where they appeared."""
    for key in (("next", "reward"), ("next", "agents", "observation"), ("next", "state")):
        x = batch.get(key, None)
        if x is not None and x.is_floating_point() and not torch.isfinite(x).all():
            env_idx, t = (~torch.isfinite(x)).nonzero()[0, :2].tolist()
            raise ValueError(
                f"Non-finite {'/'.join(key[1:])} from env {env_idx} at step {t} of the batch starting at frame "
                f"{frames_before} (value {x[env_idx, t].flatten()[~torch.isfinite(x[env_idx, t].flatten())][0].item()}); "
                "not training on it. Check the environment (or its reward function) at that step."
            )


__all__ = ["StopSignal", "check_finite"]
