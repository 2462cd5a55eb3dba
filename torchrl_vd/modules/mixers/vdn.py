"""VDN mixer (Sunehag et al. 2018; seed §"Linear Value Decomposition")."""

from __future__ import annotations

import torch

from torchrl_vd.modules.mixers.base import Mixer


class VDNMixer(Mixer):
    """Q(h, a) = Σ_i Q(h_i, a_i; θ_i) — linear decomposition, IGM by construction."""

    needs_state = False

    def __init__(self, n_agents: int, state_shape=()):
        super().__init__(n_agents, state_shape)

    def mix(self, utilities: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return utilities.sum(-1, keepdim=True)  # [*B, n] -> [*B, 1]
