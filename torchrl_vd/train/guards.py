"""What guards a running training loop: SIGINT/SIGTERM become a checkpoint-and-stop; non-finite env data, losses,
gradients or weights an error that names the quantity and where it appeared, before anything non-finite is
applied, logged or checkpointed."""

from __future__ import annotations

import signal
import threading

import torch
from tensordict import TensorDictBase

from torchrl_vd.keys import GROUP, NEXT, OBSERVATION, REWARD, STATE


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
    for key in ((NEXT, REWARD), (NEXT, GROUP, OBSERVATION), (NEXT, STATE)):
        x = batch.get(key, None)
        if x is not None and x.is_floating_point() and not torch.isfinite(x).all():
            env_idx, t = (~torch.isfinite(x)).nonzero()[0, :2].tolist()
            raise ValueError(
                f"Non-finite {'/'.join(key[1:])} from env {env_idx} at step {t} of the batch starting at frame "
                f"{frames_before} (value {x[env_idx, t].flatten()[~torch.isfinite(x[env_idx, t].flatten())][0].item()}); "
                "not training on it. Check the environment (or its reward function) at that step."
            )


class NonFiniteUpdate(FloatingPointError):
    """A gradient step whose loss or gradient is not finite (NaN or inf); nothing of it was applied."""


def describe_non_finite(learner, loss: torch.Tensor, norm: torch.Tensor, sample: TensorDictBase) -> str:
    """What was not finite in a refused gradient step: the loss (which seeds), else the first parameter whose
    gradient is, and the size of the Q-values and TD targets behind it (one seed: its utilities on the sample)."""
    step = f"gradient step {learner.updates + 1}"
    bad_seeds = (~torch.isfinite(loss)).reshape(-1).nonzero().reshape(-1).tolist()
    if loss.ndim and loss.numel() > 1:
        bad_seeds = sorted(set(bad_seeds) | set((~torch.isfinite(norm)).reshape(-1).nonzero().reshape(-1).tolist()))
        step += f" (seed index {', '.join(map(str, bad_seeds))} of the stacked seeds)"
    if not torch.isfinite(loss).all():
        what = f"loss ({_first_bad(loss)})"
    else:
        names = [n for n, p in learner.loss.named_parameters() if p.grad is not None]
        grads = [p.grad for p in learner.loss.parameters() if p.grad is not None]
        bad = [n for n, g in zip(names, grads) if not torch.isfinite(g).all()]
        what = (f"gradient of {bad[0]}" + (f" and {len(bad) - 1} other parameters" if len(bad) > 1 else "")
                if bad else f"gradient norm ({_first_bad(norm)}: the gradients overflow when squared and summed)")
    return f"non-finite {what} at {step}{_q_scale(learner, sample)}"


def _q_scale(learner, sample: TensorDictBase) -> str:
    """``; max |Q| = ..., max |reward| = ...`` for one seed's sample (empty for stacked seeds or on failure)."""
    if getattr(learner, "stack", None) is not None:
        return ""
    try:
        with torch.no_grad():
            q = learner.loss.local_q_values(sample)  # [*B, n, A]
        q = q[q > torch.finfo(q.dtype).min]  # illegal actions are masked to the lowest float
        reward = sample.get((NEXT, REWARD))
        return (f"; max |Q| on the minibatch {q.abs().max().item():.3g}, max |learning reward| "
                f"{reward.abs().max().item():.3g}")
    except Exception:  # a diagnosis must never hide the error it explains
        return ""


def _first_bad(x: torch.Tensor) -> str:
    flat = x.reshape(-1)
    bad = flat[~torch.isfinite(flat)]
    return str(bad[0].item()) if bad.numel() else "finite"


def non_finite_weights(params) -> list[str]:
    """Names of parameters holding NaN/inf (checked before a checkpoint may overwrite the last good one)."""
    return [name for name, p in params if not torch.isfinite(p).all()]


__all__ = ["NonFiniteUpdate", "StopSignal", "check_finite", "describe_non_finite", "non_finite_weights"]
