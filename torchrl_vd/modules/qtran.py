"""QTRAN networks (Son et al., ICML 2019, Sec. 3): the joint action-value Q_jt and the value V.

QTRAN does not mix utilities: it learns an *unrestricted* joint action-value Q(h, z, a; θ^q) by TD and
a state value V(h, z; θ^v), and ties the per-agent utilities to them with the regularisers L_opt and
L_nopt (see :class:`~torchrl_vd.objectives.qtran.QTranLoss`). Both networks here follow pymarl's
``qtran_paper`` architecture (pymarl src/modules/mixers/qtran.py, src/learners/qtran_learner.py):

* Q_jt(h, z, a) = head([z, Σ_i enc([h_i, onehot(a_i), onehot(i)])]), enc = Linear-ReLU-Linear of width
  ``encoder_dim`` (default ``embed_dim``; pymarl: its input width H + A), head = 2 hidden layers of
  ``embed_dim`` (ReLU) and a linear output;
* V(z) = 2 hidden layers of ``embed_dim`` (ReLU) and a linear output, on the centralized information.

h_i is each agent's hidden representation ``[*B, n, H]``; which tensor that is (the agents' hidden
features with gradient — pymarl's ``mac.hidden_states`` —, their observations or their detached
utilities) is the loss's choice (``QTranLoss(features=...)``). pymarl relies on the agent id inside the
agents' inputs; our encoder can append the agent id itself (``agent_id=True``) so that Q_jt can tell
(a_1, a_2) = (x, y) from (y, x) when the agents' features are the same (a shared, summed encoder is
otherwise permutation invariant).

Because the encoder sees one agent at a time, every (agent, own action) pair is encoded once per
sample (``encode``: ``[*B, n, A, D]``) and any set of joint actions is scored from those encodings by
a gather and a sum; QTRAN-alt's counterfactual values Q_jt(τ, u_i, u_−i) for all i and u_i are then
a single head call (:meth:`QTranJointQ.counterfactual`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear-ReLU-Linear-ReLU-Linear: a QTRAN head with 2 hidden layers (pymarl's ``QTranBase``)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
    )


def _flat_state(state: torch.Tensor | None, state_shape: tuple, owner: str, batch: torch.Size | None = None):
    """``[*B, *state_shape] -> [*B, S]`` with a clear error when z is missing or mis-shaped.

    ``batch`` (``*B``) is checked when given, else read off the leading dimensions of ``state``.
    """
    if state is None:
        raise ValueError(
            f"{owner} conditions on the centralized state z but got none: the data needs a 'state' entry "
            "(make_env adds one; else loss.set_keys(state=...))."
        )
    if batch is None:
        batch = state.shape[: max(state.ndim - len(state_shape), 0)]
    if tuple(state.shape[len(batch):]) != state_shape or state.shape[: len(batch)] != batch:
        raise ValueError(
            f"{owner} expects state [*B={list(batch)}, *{list(state_shape)}], got {list(state.shape)}. "
            "Build it with state_shape=describe_env(env).state_shape."
        )
    return state.reshape(*batch, math.prod(state_shape))


class QTranJointQ(nn.Module):
    """Unrestricted joint action-value Q(h, z, a; θ^q) (Son et al. 2019, Sec. 3), pymarl's ``qtran_paper`` network.

    Args:
        n_agents: number of agents n.
        n_actions: size A of each agent's action set.
        state_shape: shape of the centralized information z.
        feature_dim: size H of each agent's hidden representation h_i.
        embed_dim: width of the head's two hidden layers (pymarl ``mixing_embed_dim``: 64).
        agent_id: append a one-hot agent id to each agent's encoder input (pymarl: no).
        encoder_dim: width of the encoder (``None``: ``embed_dim``; pymarl: its input width H + A).

    Examples:
        >>> import torch
        >>> q = QTranJointQ(n_agents=2, n_actions=3, state_shape=(4,), feature_dim=5)
        >>> state, h = torch.randn(8, 4), torch.randn(8, 2, 5)
        >>> q(state, h, torch.zeros(8, 2, dtype=torch.long)).shape  # one joint action per sample
        torch.Size([8, 1])
        >>> q(state, h, torch.zeros(8, 6, 2, dtype=torch.long)).shape  # K = 6 joint actions per sample
        torch.Size([8, 6, 1])
        >>> q.counterfactual(state, h, torch.zeros(8, 2, dtype=torch.long)).shape  # [*B, n, A]
        torch.Size([8, 2, 3])
    """

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        state_shape: Sequence[int] | int,
        feature_dim: int,
        *,
        embed_dim: int = 64,
        agent_id: bool = True,
        encoder_dim: int | None = None,
    ):
        super().__init__()
        for name, v in (("n_agents", n_agents), ("n_actions", n_actions), ("feature_dim", feature_dim),
                        ("embed_dim", embed_dim)):
            if int(v) < 1:
                raise ValueError(f"{name} must be a positive integer, got {v}.")
        self.n_agents, self.n_actions, self.feature_dim = int(n_agents), int(n_actions), int(feature_dim)
        self.embed_dim, self.agent_id = int(embed_dim), bool(agent_id)
        self.encoder_dim = self.embed_dim if encoder_dim is None else int(encoder_dim)
        if self.encoder_dim < 1:
            raise ValueError(f"encoder_dim must be a positive integer, got {encoder_dim}.")
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        enc_in = self.feature_dim + self.n_actions + (self.n_agents if self.agent_id else 0)
        # enc([h_i, onehot(u_i), onehot(i)]): pymarl's action_encoding, width encoder_dim (pymarl: its input
        # width rnn_hidden + A ≈ 64 + A; with small h_i such as matrix-game observations that is too narrow)
        D = self.encoder_dim
        self.encoder = nn.Sequential(nn.Linear(enc_in, D), nn.ReLU(), nn.Linear(D, D))
        self.head = _mlp(math.prod(self.state_shape) + D, self.embed_dim, 1)
        self.register_buffer("_eye_a", torch.eye(self.n_actions), persistent=False)
        self.register_buffer("_eye_n", torch.eye(self.n_agents), persistent=False)

    def encode(self, agent_features: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
        """enc([h_i, onehot(u), onehot(i)]) for every agent i and own action u: ``[*B, n, A, D]``.

        Dead agents (``alive [*B, n]`` False) get a zero encoding: they drop out of the sum over agents.
        """
        n, A, H = self.n_agents, self.n_actions, self.feature_dim
        if agent_features.ndim < 2 or agent_features.shape[-2:] != (n, H):
            raise ValueError(
                f"QTranJointQ was built for n_agents={n}, feature_dim={H} and expects agent features "
                f"[*B, {n}, {H}], got {list(agent_features.shape)}."
            )
        # The first layer on [h_i, onehot(u), onehot(i)] is W_h h_i + W_u[:, u] + W_i[:, i] + b: applied
        # term by term (same values as the concatenated input) so its cost is O(n (H + A) D), not the
        # O(n A (H + A + n) D) of an [*B, n, A, H + A + n] input, which is quadratic in n.
        first, rest = self.encoder[0], self.encoder[1:]
        w_h, w_u = first.weight[:, :H], first.weight[:, H : H + A]  # [D, H], [D, A]
        pre = F.linear(agent_features, w_h, first.bias).unsqueeze(-2) + w_u.T  # [*B, n, 1, D] + [A, D] -> [*B, n, A, D]
        if self.agent_id:
            pre = pre + first.weight[:, H + A :].T.unsqueeze(-2)  # + W_i[:, i]: [n, 1, D]
        enc = rest(pre)  # [*B, n, A, D]
        if alive is not None:
            enc = enc * alive.reshape(*agent_features.shape[:-2], n, 1, 1).to(enc.dtype)  # [*B, n, A, D]
        return enc

    def _score(self, state: torch.Tensor | None, batch: torch.Size, summed: torch.Tensor) -> torch.Tensor:
        """head([z, Σ_i enc_i]): ``state [*B, *S]``, ``summed [*B, *K, D]`` -> ``[*B, *K, 1]``."""
        z = _flat_state(state, self.state_shape, type(self).__name__, batch)  # [*B, S]
        n_k = summed.ndim - 1 - len(batch)
        # head's first layer on [z, x] = W_z z + W_x x + b: W_z z once per sample, broadcast over the K
        # joint actions (K = n·A counterfactuals for QTRAN-alt, and |z| grows with n: O(n) instead of O(n²)).
        first, rest = self.head[0], self.head[1:]
        S = z.shape[-1]
        from_z = F.linear(z, first.weight[:, :S], first.bias).reshape(*batch, *([1] * n_k), -1)  # [*B, 1.., D]
        return rest(from_z + F.linear(summed, first.weight[:, S:]))  # [*B, *K, D] -> [*B, *K, 1]

    def forward(
        self,
        state: torch.Tensor | None,
        agent_features: torch.Tensor,
        actions: torch.Tensor,
        alive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Q_jt(h, z, a) for one or several joint actions per sample.

        Args:
            state: z ``[*B, *state_shape]``.
            agent_features: h_i ``[*B, n, H]``.
            actions: joint actions ``[*B, *K, n]`` (int); ``*K`` may be empty (one joint action).
            alive: optional ``[*B, n]`` bool; dead agents' actions do not change Q_jt.

        Returns:
            ``[*B, *K, 1]``.
        """
        enc = self.encode(agent_features, alive)  # [*B, n, A, D]
        batch, (n, A, D) = enc.shape[:-3], enc.shape[-3:]
        if actions.shape[: len(batch)] != batch or actions.shape[-1] != n:
            raise ValueError(
                f"QTranJointQ expects joint actions [*B={list(batch)}, *K, n={n}], got {list(actions.shape)}."
            )
        n_k = actions.ndim - 1 - len(batch)
        src = enc.reshape(*batch, *([1] * n_k), n, A, D).expand(*actions.shape[:-1], n, A, D)  # [*B, *K, n, A, D]
        idx = actions.long().reshape(*actions.shape, 1, 1).expand(*actions.shape, 1, D)  # [*B, *K, n, 1, D]
        summed = src.gather(-2, idx).squeeze(-2).sum(-2)  # [*B, *K, n, D] -> [*B, *K, D]: Σ_i enc(h_i, a_i)
        return self._score(state, batch, summed)  # [*B, *K, 1]

    def counterfactual(
        self,
        state: torch.Tensor | None,
        agent_features: torch.Tensor,
        actions: torch.Tensor,
        alive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """QTRAN-alt's counterfactual joint values Q_jt(τ, u_i, u_−i) for every agent i and own action u_i.

        The other agents keep their actions ``actions [*B, n]``: out[..., i, u] = Q_jt(h, z, a with
        a_i := u). Equal to ``forward`` on the ``[*B, n, A, n]`` counterfactual joint actions, computed
        from one encoder pass: Σ_{j≠i} enc_j(a_j) + enc_i(u) = Σ_j enc_j(a_j) − enc_i(a_i) + enc_i(u).

        Returns:
            ``[*B, n, A]``.
        """
        enc = self.encode(agent_features, alive)  # [*B, n, A, D]
        batch, n, D = enc.shape[:-3], enc.shape[-3], enc.shape[-1]
        if actions.shape != (*batch, n):
            raise ValueError(f"counterfactual expects taken actions [*B={list(batch)}, n={n}], got {list(actions.shape)}.")
        taken = enc.gather(-2, actions.long().reshape(*batch, n, 1, 1).expand(*batch, n, 1, D))  # [*B, n, 1, D]
        others = taken.sum(-3, keepdim=True) - taken  # [*B, n, 1, D]: Σ_{j≠i} enc_j(a_j)
        return self._score(state, batch, others + enc).squeeze(-1)  # [*B, n, A, D] -> [*B, n, A]


class QTranV(nn.Module):
    """State value V(h, z; θ^v) of QTRAN's condition (Son et al. 2019, Theorem 1: Σ_i Q_i − Q_jt + V = 0 at the
    greedy joint action, ≥ 0 elsewhere), on the centralized information z.

    V(z) = Linear-ReLU-Linear-ReLU-Linear with 2 hidden layers of ``embed_dim`` (pymarl's V(s)).

    Args:
        state_shape: shape of z.
        embed_dim: hidden width (pymarl: 64).

    Examples:
        >>> import torch
        >>> QTranV(state_shape=(4,))(torch.randn(8, 4)).shape  # state [*B, *S] -> [*B, 1]
        torch.Size([8, 1])
    """

    def __init__(self, state_shape: Sequence[int] | int, *, embed_dim: int = 64):
        super().__init__()
        if int(embed_dim) < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim}.")
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        self.embed_dim = int(embed_dim)
        self.net = _mlp(math.prod(self.state_shape), self.embed_dim, 1)

    def forward(self, state: torch.Tensor | None) -> torch.Tensor:
        """``state [*B, *state_shape] -> [*B, 1]``."""
        return self.net(_flat_state(state, self.state_shape, type(self).__name__))  # [*B, S] -> [*B, 1]


__all__ = ["QTranJointQ", "QTranV"]
