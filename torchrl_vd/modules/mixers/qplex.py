"""QPLEX's duplex dueling mixer (Wang et al., "QPLEX: Duplex Dueling Multi-Agent Q-Learning", ICLR 2021).

QPLEX reformulates IGM on advantages: with V_i(τ) = max_{u_i} Q_i(τ, u_i) and A_i(τ, u_i) =
Q_i(τ, u_i) − V_i(τ) ≤ 0 (zero at each agent's greedy action),

    Q_tot(τ, u) = Σ_i V_i(τ) + Σ_i λ_i(τ, u) A_i(τ, u_i),   λ_i(τ, u) > 0,

is maximised exactly by the agents' greedy actions (the advantage term is ≤ 0 and 0 there), for any
positive λ — and every IGM-consistent Q_tot can be written this way (IGM-complete). Two parts:

* transformation: each utility is mapped to Q_i = w_i(s) Q_i + b_i(s) with w_i > 0, so the
  ordering of each agent's actions (hence V_i and the greedy action) is kept;
* dueling: λ_i(s, u) from multi-head attention over the state and the joint action (the
  reference's ``dmaq_si_weight``), λ_i = Σ_k ``|key_k(s)|`` · σ(agent_k(s))_i · σ(action_k(s, u))_i.

Reference: wjh720/QPLEX ``pymarl-master/src/modules/mixers/dmaq_general.py`` (``DMAQer``) and
``dmaq_si_weight.py`` (``DMAQ_SI_Weight``); defaults from ``src/config/algs/qplex.yaml``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from torchrl_vd.modules.agents import PerAgentLinear

EPS = 1e-10  # added to |w_i| and |key_k| by the reference (dmaq_general.py l.68, dmaq_si_weight.py l.70)


class _HeadMLPs(nn.Module):
    """K independent MLPs with the same sizes run together: ``x [*B, in] -> [*B, K, out]``.

    Equal to K separate ``Linear-ReLU-...-Linear`` networks (the reference's ``nn.ModuleList`` of one
    ``nn.Sequential`` per attention head) but evaluated in ``layers`` calls instead of K·layers: the
    first layers of all heads are one ``nn.Linear(in, K·h)`` (rows ``k·h:(k+1)·h`` are head k's), the
    others a :class:`PerAgentLinear` with one weight per head. Initialised like ``nn.Linear`` per head.
    """

    def __init__(self, n_heads: int, in_dim: int, out_dim: int, layers: int, embed: int):
        super().__init__()
        sizes = [in_dim, *([embed] * (layers - 1)), out_dim]
        self.n_heads = n_heads
        self.first = nn.Linear(in_dim, n_heads * sizes[1])
        self.rest = nn.ModuleList(PerAgentLinear(n_heads, a, b) for a, b in zip(sizes[1:-1], sizes[2:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x).unflatten(-1, (self.n_heads, -1))  # [*B, K*h] -> [*B, K, h]
        for layer in self.rest:
            h = layer(F.relu(h))  # [*B, K, h] -> [*B, K, h']
        return h


class QPlexMixer(nn.Module):
    """Q_tot(s, u) = Σ_i Q_i(u_i) + Σ_i (λ_i(s, u) − 1) · sg[A_i(u_i)]  (QPLEX, reference ``DMAQer``).

    With the transformation (``weighted_head``) Q_i(u_i) := w_i(s) Q_i(u_i) + b_i(s), w_i = ``|W(s)|`` + 1e-10,
    and A_i(u_i) = Q_i(u_i) − Q_i(ū_i) with ū_i each agent's greedy action (both transformed), this
    is the paper's Σ_i V_i + Σ_i λ_i A_i written as in the reference learner (dmaq_qatten_learner.py
    l.120-123: ``ans_chosen + ans_adv``, the first term ``is_v=True``, the second the advantage
    term). As in the reference (dmaq_general.py l.42), the advantages are detached (sg): the
    advantage term trains the λ network only; the agents and the transformation learn through
    Σ_i Q_i(u_i). ``is_minus_one=False`` weighs the advantages by λ_i instead of λ_i − 1 (Q_tot =
    Σ_i Q_i + Σ_i λ_i A_i, reference option).

    Call: ``mixer(chosen [*B, n, 1], greedy [*B, n, 1], state [*B, *S], actions [*B, n]) -> [*B, 1]``
    where ``chosen`` are the utilities of ``actions`` and ``greedy`` the agents' max utilities V_i.

    Args:
        n_agents: number of agents n.
        n_actions: size A of each agent's action set (λ reads the one-hot joint action).
        state_shape: shape of the centralized information z.

    Keyword Args (defaults: wjh720/QPLEX ``src/config/algs/qplex.yaml`` l.22-28):
        hypernet_embed: hidden width of the transformation's w(s) and b(s) networks (64).
        num_kernel: number of attention heads K of λ (10).
        adv_hypernet_layers: layers of each key / agent / action network of λ (3).
        adv_hypernet_embed: hidden width of those networks (64).
        weighted_head: apply the transformation w_i(s) Q_i + b_i(s) (True).
        is_minus_one: weigh the advantages by λ_i − 1 (True) or λ_i.

    Examples:
        >>> import torch
        >>> mixer = QPlexMixer(3, 4, (8,), num_kernel=2, adv_hypernet_embed=16)
        >>> q = torch.randn(5, 3, 4)  # utilities [*B, n, A]
        >>> u = torch.randint(4, (5, 3))  # joint actions [*B, n]
        >>> mixer(q.gather(-1, u.unsqueeze(-1)), q.max(-1, keepdim=True).values, torch.randn(5, 8), u).shape
        torch.Size([5, 1])
    """

    monotonic = False

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        state_shape: Sequence[int] | int,
        *,
        hypernet_embed: int = 64,
        num_kernel: int = 10,
        adv_hypernet_layers: int = 3,
        adv_hypernet_embed: int = 64,
        weighted_head: bool = True,
        is_minus_one: bool = True,
    ):
        super().__init__()
        for name, v in (("n_agents", n_agents), ("n_actions", n_actions), ("hypernet_embed", hypernet_embed),
                        ("num_kernel", num_kernel), ("adv_hypernet_layers", adv_hypernet_layers),
                        ("adv_hypernet_embed", adv_hypernet_embed)):
            if int(v) < 1:
                raise ValueError(f"{name} must be a positive integer, got {v}.")
        self.n_agents, self.n_actions = int(n_agents), int(n_actions)
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        self.state_dim = math.prod(self.state_shape)
        self.num_kernel = int(num_kernel)
        self.weighted_head, self.is_minus_one = bool(weighted_head), bool(is_minus_one)
        n, s, he, ae, layers = self.n_agents, self.state_dim, int(hypernet_embed), int(adv_hypernet_embed), int(adv_hypernet_layers)
        # transformation (reference hyper_w_final and V)
        self.hyper_w = nn.Sequential(nn.Linear(s, he), nn.ReLU(), nn.Linear(he, n))
        self.hyper_b = nn.Sequential(nn.Linear(s, he), nn.ReLU(), nn.Linear(he, n))
        # λ's attention heads (reference key_extractors, agents_extractors, action_extractors)
        self.key = _HeadMLPs(self.num_kernel, s, 1, layers, ae)
        self.agents = _HeadMLPs(self.num_kernel, s, n, layers, ae)
        self.action = _HeadMLPs(self.num_kernel, s + n * self.n_actions, n, layers, ae)

    def _flat_state(self, state: torch.Tensor | None, batch: torch.Size) -> torch.Tensor:
        if state is None:
            raise ValueError(
                "QPlexMixer conditions on the centralized state z but got none: the data needs a 'state' "
                "entry (make_env adds one; else loss.set_keys(state=...))."
            )
        if tuple(state.shape[len(batch):]) != self.state_shape or state.shape[: len(batch)] != batch:
            raise ValueError(
                f"QPlexMixer expects state [*B={list(batch)}, *{list(self.state_shape)}], got {list(state.shape)}. "
                "Build it with state_shape=describe_env(env).state_shape."
            )
        return state.reshape(*batch, self.state_dim)  # [*B, S]

    def lambda_weights(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """λ_i(s, u) = Σ_k (``|key_k(s)|`` + 1e-10) σ(agent_k(s))_i σ(action_k([s, onehot(u)]))_i > 0.

        ``state [*B, S]`` (flattened), ``actions [*B, n]`` (int) -> ``[*B, n]`` (reference
        ``DMAQ_SI_Weight.forward``, dmaq_si_weight.py l.59-80).
        """
        # one-hot by comparison with the action ids: F.one_hot reads the actions' min and max back to the host
        # on CPU to check their range (a sync per call); actions are validated as they enter the replay buffer
        ids = torch.arange(self.n_actions, device=actions.device)  # [A]
        onehot = (actions.long().unsqueeze(-1) == ids).flatten(-2).to(state.dtype)  # [*B, n, A] -> [*B, n*A]
        key = self.key(state).abs() + EPS  # [*B, K, 1]
        agents = torch.sigmoid(self.agents(state))  # [*B, K, n]
        action = torch.sigmoid(self.action(torch.cat((state, onehot), dim=-1)))  # [*B, K, n]
        return (key * agents * action).sum(-2)  # [*B, K, n] -> [*B, n]

    def forward(
        self, chosen: torch.Tensor, greedy: torch.Tensor, state: torch.Tensor | None, actions: torch.Tensor
    ) -> torch.Tensor:
        n = self.n_agents
        if chosen.ndim < 2 or chosen.shape[-2:] != (n, 1) or greedy.shape != chosen.shape:
            raise ValueError(
                f"QPlexMixer was built for n_agents={n} and expects chosen and greedy utilities [*B, {n}, 1], "
                f"got {list(chosen.shape)} and {list(greedy.shape)}."
            )
        batch = chosen.shape[:-2]
        if actions.shape != (*batch, n):
            raise ValueError(f"QPlexMixer expects joint actions [*B={list(batch)}, n={n}], got {list(actions.shape)}.")
        z = self._flat_state(state, batch)  # [*B, S]
        q, q_greedy = chosen.squeeze(-1), greedy.squeeze(-1)  # [*B, n]
        if self.weighted_head:
            w = self.hyper_w(z).abs() + EPS  # [*B, n] w_i(s) > 0 keeps each agent's action ordering
            b = self.hyper_b(z)  # [*B, n]
            q, q_greedy = w * q + b, w * q_greedy + b
        adv = (q - q_greedy).detach()  # [*B, n] A_i ≤ 0, stop-gradient (reference dmaq_general.py l.42)
        lam = self.lambda_weights(z, actions)  # [*B, n]
        q_sum = q.sum(-1, keepdim=True)  # [*B, 1] Σ_i Q_i(u_i) (the reference's is_v=True call)
        a_tot = (adv * (lam - 1.0 if self.is_minus_one else lam)).sum(-1, keepdim=True)  # [*B, 1]
        return q_sum + a_tot


__all__ = ["QPlexMixer"]
