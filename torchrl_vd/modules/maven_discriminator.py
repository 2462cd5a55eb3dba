"""MAVEN's variational posterior q_υ(z | σ(τ)) (Mahajan et al. 2019: the MI term L_MI via its bound L_V)."""

from __future__ import annotations

import torch
from torch import nn

from torchrl_vd.modules.gru_agent import gru_gates
from torchrl_vd.modules.maven_agent import _time_major


class MavenDiscriminator(nn.Module):
    """q_υ(z | σ(τ)) on the per-step ``[softmax(Q_1), ..., softmax(Q_n), s_t]`` (σ: Boltzmann policies).

    ``recurrent=True`` (authors' ``rnn_discrim``, the REFERENCE m-step setting): ``g_t = GRU(x_t, g_{t-1})``
    aggregates the trajectory and ``logits_t = MLP(g_t)`` is the posterior given the trajectory up to t;
    :class:`MavenLoss` scores it where each episode (segment) ends. ``recurrent=False`` (the authors'
    other variant): ``logits_t = MLP(x_t)`` from the step alone, scored at every step. The MLP is the
    authors' ``Discrim``: ``layers`` hidden layers ``Linear(·, hidden)-ReLU`` then ``Linear(hidden, noise_dim)``
    (authors' ``discrim_layers``: 2 in their m-step config ``noise_qmix_parallel.yaml``, 1 in ``noisemix_episode.yaml``).

    Args:
        n_agents, n_actions: sizes of σ (per-agent Boltzmann policies).
        state_dim: size of the (flattened) state s.
        noise_dim: number of z classes.
        hidden: GRU and MLP width (authors' ``discrim_size`` and ``rnn_agg_size``: 32).
        recurrent: aggregate over the trajectory with a GRU.
        layers: hidden layers of the MLP (authors' ``discrim_layers``).
    """

    def __init__(
        self, n_agents: int, n_actions: int, state_dim: int, noise_dim: int, hidden: int = 32, recurrent: bool = True,
        layers: int = 2,
    ):
        super().__init__()
        self.n_agents, self.n_actions, self.state_dim = int(n_agents), int(n_actions), int(state_dim)
        self.noise_dim, self.hidden, self.recurrent = int(noise_dim), int(hidden), bool(recurrent)
        in_dim = self.n_agents * self.n_actions + self.state_dim
        self.rnn = nn.GRUCell(in_dim, self.hidden) if self.recurrent else None
        self.vmappable = False  # True: the GRU cell in plain tensor ops (gru_gates), for torch.vmap (population.py)
        if int(layers) < 1:
            raise ValueError(f"MavenDiscriminator needs at least one hidden layer, got layers={layers}.")
        widths = [self.hidden if self.recurrent else in_dim] + [self.hidden] * int(layers)
        hidden_layers = [m for i, o in zip(widths[:-1], widths[1:]) for m in (nn.Linear(i, o), nn.ReLU())]
        self.head = nn.Sequential(*hidden_layers, nn.Linear(self.hidden, self.noise_dim))

    def forward(
        self, policies: torch.Tensor, state: torch.Tensor, is_init: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``policies [B, T, n, A]``, ``state [B, T, *S]``, ``is_init [B, T(, 1)]`` -> logits ``[B, T, Z]``.

        Transition batches ([B, n, A], ``[B, *S]``) are treated as length-1 sequences. The GRU restarts
        at every ``is_init`` step (a new episode, hence a new z) and at each sequence's first step.
        """
        seq = policies.ndim == 4
        policies = _time_major(policies, seq)  # [B, T, n, A]
        B, T = policies.shape[:2]
        state = (state if seq else state.unsqueeze(1)).reshape(B, T, -1)  # [B, T, S]
        x = torch.cat((policies.flatten(-2), state.to(policies.dtype)), -1)  # [B, T, n*A + S]
        if self.recurrent:
            init = None if is_init is None else _time_major(is_init, seq).reshape(B, T, 1).bool()
            g, gs = x.new_zeros(B, self.hidden), []
            for t in range(T):
                if init is not None:
                    g = g.masked_fill(init[:, t], 0.0)
                if self.vmappable:  # nn.GRUCell has no vmap batching rule (a slow per-sample fallback)
                    rnn = self.rnn
                    g = gru_gates(nn.functional.linear(x[:, t], rnn.weight_ih, rnn.bias_ih),
                                  nn.functional.linear(g, rnn.weight_hh, rnn.bias_hh), g)  # [B, hidden]
                else:
                    g = self.rnn(x[:, t], g)  # [B, hidden]
                gs.append(g)
            x = torch.stack(gs, 1)  # [B, T, hidden]
        logits = self.head(x)  # [B, T, Z]
        return logits if seq else logits.squeeze(1)


__all__ = ["MavenDiscriminator"]
