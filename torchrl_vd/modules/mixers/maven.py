"""MAVEN's mixer (Mahajan et al. 2019): QMIX whose hypernetworks read [s, z]."""

from __future__ import annotations

from typing import Sequence

import torch

from torchrl_vd.modules.mixers.qmix import QMixer


class MavenMixer(QMixer):
    """QMIX on the state augmented with the latent: Q_tot = f_mix(Q_1..Q_n; θ_mix([s, z])).

    For a fixed z this is a monotonic mixer (Mahajan et al. 2019: "fixing z gives a monotonic approximation"), so IGM
    holds per z. Call with the concatenated ``[s, z]`` (:meth:`condition` builds it):
    ``mixer(chosen [*B, n, 1], condition(state, noise)) -> [*B, 1]``.

    Args:
        n_agents: number of agents n.
        state_shape: shape of the env state s.
        noise_dim: size of z.
        **qmix_kwargs: :class:`QMixer` options (mixing_embed_dim, hypernet_layers, hypernet_embed).
    """

    def __init__(self, n_agents: int, state_shape: Sequence[int] | int, noise_dim: int, **qmix_kwargs):
        env_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        env_dim = int(torch.Size(env_shape).numel())
        super().__init__(n_agents, (env_dim + int(noise_dim),), **qmix_kwargs)
        self.env_state_shape, self.noise_dim = env_shape, int(noise_dim)

    def condition(self, state: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``[s, z]``: ``state [*B, *S]``, ``noise [*B, Z]`` -> ``[*B, S + Z]``."""
        batch = noise.shape[:-1]
        return torch.cat((state.reshape(*batch, -1), noise.to(state.dtype)), -1)


__all__ = ["MavenMixer"]
