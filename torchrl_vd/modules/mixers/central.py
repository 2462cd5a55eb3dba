"""Weighted QMIX's unrestricted joint action-value Q̂* (Rashid et al., "Weighted QMIX: Expanding
Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement Learning", NeurIPS 2020).

Q̂*(s, u) is not constrained to be monotonic in the agents' utilities: it is a plain feed-forward
network on the state and the utilities of the taken actions, with a state value head. It gives the
weighted QMIX loss its target, and (CW-QMIX) tells which joint actions are the best ones
(:class:`~torchrl_vd.objectives.weighted.WeightedQMixLoss`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from torchrl_vd.modules.mixers.base import Mixer


class CentralQMixer(Mixer):
    """Q̂*(s, u) = f([z, Q_1(u_1), ..., Q_n(u_n)]) + V(z), no monotonicity constraint.

    The reference's ``central_mixer: "ff"`` (oxwhirl/wqmix ``src/modules/mixers/qmix_central_no_hyper.py``,
    ``QMixerCentralFF``): f = three hidden layers of ``embed_dim`` units with ReLU and a linear output,
    on the state concatenated (state first) with the n utilities (``central_action_embed: 1``: one
    utility per agent); V(z) = Linear-ReLU-Linear of width ``embed_dim`` replaces the output bias.

    Args:
        n_agents: number of agents n.
        state_shape: shape of the centralized information z.

    Keyword Args:
        embed_dim: width of every hidden layer (reference ``central_mixing_embed_dim``: 256,
            ``src/config/algs/cw_qmix.yaml`` and ``ow_qmix.yaml``).

    Examples:
        >>> import torch
        >>> mixer = CentralQMixer(3, (8,), embed_dim=16)
        >>> mixer(torch.randn(5, 3, 1), torch.randn(5, 8)).shape  # utilities [*B, n, 1], state [*B, *S]
        torch.Size([5, 1])
    """

    monotonic = False

    def __init__(self, n_agents: int, state_shape: Sequence[int] | int, *, embed_dim: int = 256):
        super().__init__(n_agents, state_shape)
        if int(embed_dim) < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim}.")
        self.embed_dim = int(embed_dim)
        e, s = self.embed_dim, self.state_dim
        self.net = nn.Sequential(
            nn.Linear(s + self.n_agents, e), nn.ReLU(), nn.Linear(e, e), nn.ReLU(), nn.Linear(e, e), nn.ReLU(),
            nn.Linear(e, 1),
        )
        self.v = nn.Sequential(nn.Linear(s, e), nn.ReLU(), nn.Linear(e, 1))

    def mix(self, utilities: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        x = torch.cat((state, utilities), dim=-1)  # [*B, S + n]
        return self.net(x) + self.v(state)  # [*B, 1]


__all__ = ["CentralQMixer"]
