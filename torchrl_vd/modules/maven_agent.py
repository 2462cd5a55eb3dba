"""MAVEN's z-conditioned agent (Mahajan et al., NeurIPS 2019; authors' ``noise_rnn_agent``).

A shared latent z (one-hot of size ``noise_dim``) is drawn once per episode and conditions the whole
value function, so that *fixing z gives a monotonic approximation* of Q* (Mahajan et al. 2019): Q_i(τ_i, ·; z) =
W(z, i) · h_i, with h_i a :class:`GRUAgent` trunk and W(z, i) a hypernetwork of z and the agent id.
z is read from the root key ``"noise"`` ``[*B, noise_dim]`` (see ``torchrl_vd.envs.transforms.NoiseTransform``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from torchrl_vd.keys import GROUP, NOISE
from torchrl_vd.modules.gru_agent import GRUAgent


def _time_major(x: torch.Tensor | None, seq: bool) -> torch.Tensor | None:
    """Add a length-1 time axis at dim 1 to transition batches ([B, ...] -> [B, 1, ...])."""
    return x if (x is None or seq) else x.unsqueeze(1)


class MavenAgent(GRUAgent):
    """Q_i(τ_i, ·; z) = W(z, i) · h_i: a :class:`GRUAgent` trunk with a z- and id-conditioned output layer.

    ``h_i`` is the GRU trunk of :class:`GRUAgent` (same inputs, hidden-state keys, env transforms and
    fused unroll); its linear head is replaced by ``W(z, i)`` [A, H], produced by one linear
    hypernetwork of ``[z, onehot(i)]`` (authors' ``hyper_noise_fc1``), so different z's read different
    utilities off the same history features. Q has no bias, as in the authors' agent.

    Args:
        n_agents, n_actions, obs_dim: sizes.
        noise_dim: size of the one-hot latent z.
        hidden: trunk sizes, the last is the GRU width H (pymarl: ``(64,)``).
        **gru_kwargs: :class:`GRUAgent` options (``share_params``, ``agent_id``, ``last_action``, ``activation``).

    Call shapes: ``forward(obs [*B, n, F], hidden [*B, n, H], is_init [*B, 1], noise [*B, Z])`` ->
    ``(q [*B, n, A], next_hidden [*B, n, H])`` (one step, used by the collection policy);
    :meth:`evaluate` unrolls [B, T] sequences for the losses and also takes ``noise``/``next_noise``.

    Examples:
        >>> import torch
        >>> agent = MavenAgent(n_agents=2, n_actions=3, obs_dim=4, noise_dim=5, hidden=(16,))
        >>> obs, z = torch.randn(6, 7, 2, 4), torch.eye(5)[torch.randint(5, (6, 1))].expand(6, 7, 5)
        >>> q, q_next = agent.evaluate(obs, obs.roll(-1, 1), noise=z, next_noise=z)
        >>> q.shape
        torch.Size([6, 7, 2, 3])
        >>> q1, h1 = agent(obs[:, 0], noise=z[:, 0])  # one step from a zero hidden state
        >>> torch.allclose(q1, q[:, 0], atol=1e-5)
        True
    """

    def __init__(
        self, n_agents: int, n_actions: int, obs_dim: int, noise_dim: int, hidden: Sequence[int] = (64,), **gru_kwargs
    ):
        super().__init__(n_agents, n_actions, obs_dim, hidden=hidden, **gru_kwargs)
        if int(noise_dim) < 1:
            raise ValueError(f"noise_dim must be a positive integer, got {noise_dim}.")
        self.noise_dim = int(noise_dim)
        self.head = nn.Identity()  # the trunk now yields h; the utilities are W(z, i) · h (z_head)
        self.hyper_w = nn.Linear(self.noise_dim + n_agents, n_actions * self.hidden_size)  # W(z, i)

    def z_head(self, h: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Q_i = W(z, i) · h_i: ``h [*B, n, H]``, ``noise [*B, Z]`` -> ``[*B, n, A]``."""
        if noise is None or noise.shape[-1] != self.noise_dim or noise.shape[:-1] != h.shape[:-2]:
            got = None if noise is None else list(noise.shape)
            raise ValueError(
                f"MavenAgent needs the episode's latent z [*B={list(h.shape[:-2])}, noise_dim={self.noise_dim}], "
                f"got {got}. Collect with the NoiseTransform (AlgoParts.env_transforms of algo 'maven') so that "
                "'noise' is stored."
            )
        n = self.n_agents
        z = noise.to(h.dtype).unsqueeze(-2).expand(*h.shape[:-2], n, self.noise_dim)  # [*B, n, Z]
        ids = self._eye.expand(*h.shape[:-2], n, n)  # [*B, n, n]
        w = self.hyper_w(torch.cat((z, ids), -1))  # [*B, n, A*H]
        w = w.view(*h.shape[:-1], self.n_actions, self.hidden_size)  # [*B, n, A, H]
        return (w * h.unsqueeze(-2)).sum(-1)  # [*B, n, A, H] · [*B, n, 1, H] -> [*B, n, A] (cheaper than bmm here)

    def forward(
        self,
        obs: torch.Tensor,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``(Q(h^t, ·; z) [*B, n, A], h^t [*B, n, H])`` (hidden zeroed where ``is_init``)."""
        _, h = super().forward(obs, hidden, is_init, last_action)  # trunk only (head is the identity)
        return self.z_head(h, noise), h

    def evaluate(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        next_noise: torch.Tensor | None = None,
        need_current: bool = True,
        need_next: bool = True,
        last_action: torch.Tensor | None = None,
        next_last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(Q(τ_t, ·; z), Q(τ_{t+1}, ·; z'))`` ``[*B, n, A]`` for transitions [B] or sequences [B, T].

        The trunk unrolls from ``hidden`` (the stored state at each sequence's first step; zeros if
        ``None``), resetting where ``is_init`` (:meth:`GRUAgent.unroll`). The next-step utilities take
        one more GRU step on ``next_obs`` from h_t for every step at once, which is exact at episode
        ends and truncations too.
        """
        if not (need_current or need_next):
            return None, None
        if obs.ndim < 4:  # single steps [B, n, F]
            _, h = super().forward(obs, hidden, is_init, last_action)  # [B, n, H]
        else:
            _, h = self.unroll(obs, hidden, is_init, last_action)  # [B, T, n, H]
        q = self.z_head(h, noise) if need_current else None
        q_next = None
        if need_next:
            _, h_next = super().forward(next_obs, h, None, next_last_action)  # one step from h_t: [*B, n, H]
            q_next = self.z_head(h_next, next_noise)
        return q, q_next

    def policy_module(self, group: str = GROUP) -> TensorDictModule:
        """Reads obs, hidden, ``is_init``, the episode's z (``"noise"``) and, with ``last_action``, the
        previous actions; writes ``(group, "action_value")`` and ``("next", group, "rnn_hidden")``."""
        return self._step_module(group, NOISE)


__all__ = ["MavenAgent"]
