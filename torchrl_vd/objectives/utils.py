"""Target-network updaters that stay drop-in replacements for torchrl's.

:class:`FusedSoftUpdate` is torchrl's ``SoftUpdate`` (same constructor, same ``init_``/``step``/
``state_dict`` contract, found by the same ``target_<name>_params`` names) with one change: ``step``
is a single fused ``torch._foreach_lerp_`` over flat lists of the target and source tensors.

Why: torchrl's ``TargetNetUpdater.step`` walks the ``_sources``/``_targets`` TensorDicts on every
call (``items()``, ``get(f"target_{key}")``, a nested ``lerp_`` that rebuilds and re-locks
TensorDicts): a sizeable share of a small gradient step, for a few tensors whose maths (one lerp each)
is negligible fused (benchmarks/RESULTS.md §2). The flat
lists are built once, after ``init_`` selected the distinct target/source pairs, from the very
tensors torchrl would update, so the result is the same Polyak average θ̄ ← (1 − τ) θ̄ + τ θ.
"""

from __future__ import annotations

import torch
from torchrl.objectives import SoftUpdate


class FusedSoftUpdate(SoftUpdate):
    """``SoftUpdate`` whose ``step`` is one ``torch._foreach_lerp_`` (θ̄ ← θ̄ + τ (θ − θ̄)).

    Same arguments as torchrl's ``SoftUpdate`` (``eps`` or ``tau``). The tensor lists are taken at
    construction; if the loss module's parameters are later replaced (e.g. ``loss.to(other_device)``
    after building the updater), call :meth:`init_` again, as with torchrl's updaters.

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, VDNMixer, MixingQLoss
        >>> from torchrl_vd.objectives.utils import FusedSoftUpdate
        >>> loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
        >>> updater = FusedSoftUpdate(loss, tau=0.5)
        >>> with torch.no_grad():
        ...     _ = loss.agent_net_params.apply(lambda p: p.add_(1.0))
        >>> updater.step()
        >>> w, w_bar = loss.agent_net_params["net", "0", "weight"], loss.target_agent_net_params["net", "0", "weight"]
        >>> torch.allclose(w_bar, w - 0.5)
        True
    """

    def init_(self) -> None:
        super().init_()
        self._flat_targets: list[torch.Tensor] = []
        self._flat_sources: list[torch.Tensor] = []
        for key, source in self._sources.items(True, True):
            key = key if isinstance(key, tuple) else (key,)
            target = self._targets.get(("target_" + key[0], *key[1:]))
            self._flat_targets.append(target.data)
            self._flat_sources.append(source.data)

    @torch.no_grad()
    def step(self) -> None:
        if not self.initialized:
            raise RuntimeError(f"{type(self).__name__} must be initialized (init_()) before calling step().")
        if self._flat_targets:
            torch._foreach_lerp_(self._flat_targets, self._flat_sources, 1.0 - self.eps)


__all__ = ["FusedSoftUpdate"]
