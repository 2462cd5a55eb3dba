"""QMIX mixer (Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation", Eq. 5: ∂Q_tot/∂Q_i ≥ 0)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from torchrl_vd.modules.mixers.base import Mixer


def hypernetwork(in_dim: int, out_dim: int, layers: int, embed: int) -> nn.Module:
    """f_hyper: state z -> mixing parameters θ_mix (1 linear layer, or 2 with a ReLU between)."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    if layers == 2:
        return nn.Sequential(nn.Linear(in_dim, embed), nn.ReLU(), nn.Linear(embed, out_dim))
    raise ValueError(f"hypernet_layers must be 1 or 2, got {layers}.")


class QMixer(Mixer):
    """Q_tot = f_mix(Q_1, ..., Q_n; θ_mix(z)) with ``|weights|`` so ∂Q_tot/∂Q_i ≥ 0.

    Two mixing layers: ``h = ELU(Q·|W1(z)| + b1(z))``, ``Q_tot = h·|W2(z)| + V(z)`` where the weights
    come from hypernetworks of the state z and V(z) = Linear-ReLU-Linear is the state bias
    (pymarl's architecture: src/modules/mixers/qmix.py, defaults in src/config/algs/qmix.yaml).

    Args:
        n_agents: number of agents n.
        state_shape: shape of the centralized information z.
        mixing_embed_dim: width of the mixing layer.
        hypernet_layers: 1 or 2 layers per weight hypernetwork.
        hypernet_embed: hidden width of 2-layer hypernetworks.
        init_scale: None (default): torch's default initialisation (pymarl's). A number: every hypernetwork
            layer (W1, b1, W2, V) gets an orthogonal weight of gain ``init_scale`` and a zero bias, JaxMARL's
            ``MIXER_INIT_SCALE`` (0.001 for SMAX, baselines/QLearning/qmix_rnn.py ``MixingNetwork``): the
            mixing weights start near 0 whatever the state's scale (SMAX's world state holds raw positions up
            to ~32, which torch's default initialisation turns into mixing weights of tens).

    Examples:
        >>> import torch
        >>> mixer = QMixer(n_agents=2, state_shape=(4,), mixing_embed_dim=8, hypernet_embed=16)
        >>> chosen, state = torch.randn(64, 2, 1, requires_grad=True), torch.randn(64, 4)
        >>> q_tot = mixer(chosen, state)  # [B, n, 1], [B, *S] -> [B, 1]
        >>> q_tot.shape
        torch.Size([64, 1])
        >>> (grad,) = torch.autograd.grad(q_tot.sum(), chosen)
        >>> bool((grad >= 0).all())  # monotonic: ∂Q_tot/∂Q_i ≥ 0 for every agent, state and input
        True
        >>> raised = chosen.detach() + torch.tensor([[[1.0], [0.0]]])  # raise agent 1's utility only
        >>> bool((mixer(raised, state) >= q_tot).all())
        True
    """

    def __init__(
        self,
        n_agents: int,
        state_shape: Sequence[int] | int,
        mixing_embed_dim: int = 32,
        hypernet_layers: int = 2,
        hypernet_embed: int = 64,
        init_scale: float | None = None,
    ):
        super().__init__(n_agents, state_shape)
        if mixing_embed_dim < 1 or hypernet_embed < 1:
            raise ValueError("mixing_embed_dim and hypernet_embed must be positive.")
        if init_scale is not None and not float(init_scale) > 0:
            raise ValueError(f"init_scale must be None (torch's default init) or > 0, got {init_scale}.")
        self.embed_dim = int(mixing_embed_dim)
        s = self.state_dim
        self.hyper_w1 = hypernetwork(s, n_agents * self.embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_b1 = nn.Linear(s, self.embed_dim)
        self.hyper_w2 = hypernetwork(s, self.embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_v = nn.Sequential(nn.Linear(s, self.embed_dim), nn.ReLU(), nn.Linear(self.embed_dim, 1))
        self.init_scale = None if init_scale is None else float(init_scale)
        self._scale_init()

    def _scale_init(self) -> None:
        """With ``init_scale``: orthogonal hypernetwork weights of that gain and zero biases (JaxMARL's)."""
        if self.init_scale is None:
            return
        for net in (self.hyper_w1, self.hyper_b1, self.hyper_w2, self.hyper_v):
            for layer in net.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(layer.weight, gain=self.init_scale)
                    nn.init.zeros_(layer.bias)

    def reset_parameters(self) -> None:
        """Re-initialise every hypernetwork layer as a new mixer is (torch's default, then ``init_scale``)."""
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self._scale_init()

    def mix(self, utilities: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        batch = utilities.shape[:-1]
        # monotonicity (Rashid et al. 2018, Eq. 5: ∂Q_tot/∂Q_i ≥ 0): |W| on every weight that multiplies a Q_i
        w1 = self.hyper_w1(state).abs().view(*batch, self.n_agents, self.embed_dim)  # [*B, n, E]
        w2 = self.hyper_w2(state).abs()  # [*B, E]
        b1 = self.hyper_b1(state)  # [*B, E]
        # Σ_i Q_i W1[i, :] and Σ_e h_e W2[e] as products and sums, not [*B] batches of 1-row matrix products: the same
        # sums (in another order, so float rounding differs), cheaper under torch.vmap (benchmarks/RESULTS.md §17.2)
        hidden = F.elu((utilities.unsqueeze(-1) * w1).sum(-2) + b1)  # [*B, n, 1] * [*B, n, E] -> [*B, E]
        q_tot = (hidden * w2).sum(-1, keepdim=True)  # [*B, E] -> [*B, 1]
        return q_tot + self.hyper_v(state)  # [*B, 1]
