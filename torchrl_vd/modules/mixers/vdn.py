"""VDN mixer (Sunehag et al. 2018: Q_tot = Σ_i Q_i, the linear value decomposition)."""

from __future__ import annotations

import torch

from torchrl_vd.modules.mixers.base import Mixer


class VDNMixer(Mixer):
    """Q(h, a) = Σ_i Q(h_i, a_i; θ_i) — linear decomposition, IGM by construction.

    Examples:
        >>> import torch
        >>> mixer = VDNMixer(n_agents=3)
        >>> chosen = torch.tensor([[[1.0], [2.5], [-0.5]], [[0.0], [4.0], [1.0]]])  # [B=2, n=3, 1]
        >>> mixer(chosen).tolist()  # the state is ignored: Q_tot = Σ_i Q_i per sample
        [[3.0], [5.0]]
    """

    needs_state = False

    def __init__(self, n_agents: int, state_shape=()):
        super().__init__(n_agents, state_shape)

    def mix(self, utilities: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return utilities.sum(-1, keepdim=True)  # [*B, n] -> [*B, 1]
