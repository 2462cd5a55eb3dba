"""Recurrent per-agent utilities Q(h_i, a_i; θ_i) on each agent's observation history (pymarl's ``RNNAgent``).

:class:`GRUAgent` encodes each agent's input with an MLP, carries a GRU state over the episode and reads the
utilities off it; :meth:`GRUAgent.evaluate` unrolls stored sequences, resetting at episode starts. The GRU runs
either as torch's fused ``nn.GRU`` (the fast default) or as a loop of the cell equations in plain tensor ops
(:func:`gru_gates`, ``_GRULayer.unrolled``), which ``torch.vmap`` can run over stacked parameters when many
seeds train in one process. Kept apart from agents.py (the feed-forward agents and the :class:`AgentNet`
contract) because the unroll strategies and the vmap switch are the recurrent agent's own machinery.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn

from torchrl_vd.keys import ACTION_VALUE, GROUP, IS_INIT, LAST_ACTION, NEXT, OBSERVATION, RNN_HIDDEN
from torchrl_vd.modules.agents import AgentNet, _linear


def gru_gates(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from its two affine parts (torch's ``nn.GRU``/``nn.GRUCell`` equations, Cho et al. 2014):
    ``gi = W_i x + b_i`` and ``gh = W_h h + b_h`` ``[..., 3H]`` (gate order r, z, n), ``h [..., H]``:

        r = σ(gi_r + gh_r),  z = σ(gi_z + gh_z),  ñ = tanh(gi_n + r ⊙ gh_n),  h' = (1 − z) ⊙ ñ + z ⊙ h

    Plain tensor ops, so ``torch.vmap`` runs it (it has no batching rule for ``aten::gru``)."""
    i_r, i_z, i_n = gi.chunk(3, dim=-1)  # 3 x [..., H]
    h_r, h_z, h_n = gh.chunk(3, dim=-1)  # 3 x [..., H]
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


class _GRULayer(nn.Module):
    """One GRU layer over agent-batched sequences: ``x [K, L, n, E]``, ``h0 [K, n, H]`` -> ``[K, L, n, H]``.

    Shared parameters run every agent as a row of one ``nn.GRU`` call: torch's fused loop over time
    is 1.2-1.6x faster (forward+backward) than a Python loop over ``nn.GRUCell`` steps and 2-3x
    faster than a hand-written cell on a 1-thread CPU (benchmarks/bench_gru.py). Per-agent parameters
    run one ``nn.GRU`` per agent.

    ``vmappable=True`` runs the same GRU as :meth:`unrolled`, a Python loop of the cell equations in
    plain tensor ops: ``torch.vmap`` has no batching rule for ``nn.GRU`` (``aten::gru``), and many seeds
    in one process (train/population.py) run the agents under ``vmap`` over stacked parameters.
    """

    def __init__(self, n_agents: int, in_features: int, hidden_size: int, share_params: bool):
        super().__init__()
        self.n_agents, self.hidden_size, self.share_params = n_agents, hidden_size, share_params
        self.vmappable = False
        if share_params:
            self.gru = nn.GRU(in_features, hidden_size, batch_first=True)
        else:
            self.grus = nn.ModuleList(nn.GRU(in_features, hidden_size, batch_first=True) for _ in range(n_agents))

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        if self.vmappable:
            return self.unrolled(x, h0)
        K, L, n, E = x.shape
        if self.share_params:
            rows = x.transpose(1, 2).reshape(K * n, L, E)  # [K*n, L, E]: one row per (sequence, agent)
            y, _ = self.gru(rows, h0.reshape(1, K * n, self.hidden_size))  # [K*n, L, H]
            return y.reshape(K, n, L, self.hidden_size).transpose(1, 2)  # [K, L, n, H]
        ys = [gru(x[:, :, i], h0[:, i].unsqueeze(0))[0] for i, gru in enumerate(self.grus)]  # n x [K, L, H]
        return torch.stack(ys, dim=2)  # [K, L, n, H]

    def _weights(self) -> tuple[torch.Tensor, ...]:
        """``(W_ih [n?, 3H, E], b_ih [n?, 3H], W_hh [n?, 3H, H], b_hh [n?, 3H])``: the ``nn.GRU`` weights, with a
        leading agent dimension for per-agent parameters (rows in torch's gate order r, z, n)."""
        names = ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
        if self.share_params:
            return tuple(getattr(self.gru, name) for name in names)
        return tuple(torch.stack([getattr(gru, name) for gru in self.grus]) for name in names)  # [n, ...] each

    def unrolled(self, x: torch.Tensor, h0: torch.Tensor, is_init: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` as a loop over time of the GRU cell (:func:`gru_gates`, torch's ``nn.GRU`` equations).

        ``x [K, L, n, E]``, ``h0 [K, n, H]``, optional ``is_init [K, L]`` (h is zeroed before step t where
        ``is_init[:, t]``) -> ``[K, L, n, H]``. Equal to the fused call to float rounding
        (tests/test_vectorized_seeds.py); no data-dependent control flow, so ``torch.vmap`` runs it.
        """
        w_ih, b_ih, w_hh, b_hh = self._weights()
        if self.share_params:
            gi = torch.nn.functional.linear(x, w_ih, b_ih)  # [K, L, n, 3H]: the input part of every step at once
        else:
            gi = torch.einsum("klne,nge->klng", x, w_ih) + b_ih  # [K, L, n, 3H]
        h, ys = h0, []
        for t in range(x.shape[1]):
            if is_init is not None:
                h = h.masked_fill(is_init[:, t, None, None], 0.0)  # [K, n, H]: episode starts from zero
            if self.share_params:
                gh = torch.nn.functional.linear(h, w_hh, b_hh)  # [K, n, 3H]
            else:
                gh = torch.einsum("knh,ngh->kng", h, w_hh) + b_hh  # [K, n, 3H]
            h = gru_gates(gi[:, t], gh, h)  # [K, n, H]
            ys.append(h)
        return torch.stack(ys, dim=1)  # [K, L, n, H]

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step for any batch: ``x [*B, n, E]``, ``h [*B, n, H]`` -> ``h' [*B, n, H]``."""
        n, E = x.shape[-2:]
        y = self(x.reshape(-1, 1, n, E), h.reshape(-1, n, self.hidden_size))  # [K, 1, n, H]
        return y.reshape(h.shape)


class GRUAgent(AgentNet):
    """Recurrent utility Q(h_i, a_i; θ_i) on agent i's observation history h_i (QMIX's DRQN agent, Rashid et al. 2018).

    pymarl's ``RNNAgent``: ``x = MLP(o_i [, onehot(a_i^{t-1})] [, onehot(i)])`` → GRU (width
    ``hidden[-1]``) → linear → Q(h_i, ·). With ``hidden=(64,)`` the MLP is one 64-unit layer; with
    ``(128, 64)`` it is one 128-unit layer and the GRU has 64 units; every entry before the last adds
    one ReLU layer.

    Tensordict layout (docs/CONTRACT.md keys, ``group="agents"``):

    * ``("agents", "rnn_hidden")`` ``[*B, n, H]``: the hidden state *entering* the step (h^{t-1}; zeros
      at an episode start). The policy writes the hidden state after the step to
      ``("next", "agents", "rnn_hidden")``; ``step_mdp`` (the collector) carries it to the next step,
      as with torchrl's ``GRUModule``. A stored sequence therefore starts from
      ``td["agents", "rnn_hidden"][:, 0]``, the state the collecting policy had there.
    * ``"is_init"`` ``[*B, 1]`` (``InitTracker``): episode starts; the hidden state is reset to zero
      there (also in the middle of a stored sequence).
    * ``("agents", "last_action")`` ``[*B, n, A]`` (``last_action=True`` only): one-hot of each agent's
      previous action, zeros at an episode start. The :class:`LastAction` env transform writes it
      from the action the env actually received, so it is in the collected data at both the root
      (a^{t-1}, the input of step t) and under ``"next"`` (a^t, the input of step t+1), and the
      replay sample has both for every step.

    ``torchrl_vd.agent_transforms(agent, env)`` returns ``[InitTracker(), TensorDictPrimer(rnn_hidden),
    (LastAction())]``; ``train()`` appends them to the collection and evaluation envs.

    Args:
        n_agents, n_actions, obs_dim: sizes (``obs_dim`` without the optional extra inputs).
        hidden: layer sizes; the last is the GRU width H.
        share_params: one network for all agents (θ_i = θ) or one per agent.
        agent_id: append a one-hot agent id to the input.
        last_action: append the one-hot previous action to the input.
        activation: activation class of the input MLP.

    Examples:
        >>> import torch
        >>> agent = GRUAgent(n_agents=2, n_actions=3, obs_dim=4, hidden=(16,))
        >>> obs = torch.randn(5, 7, 2, 4)  # [B, T, n, F]
        >>> is_init = torch.zeros(5, 7, 1, dtype=torch.bool); is_init[:, 3] = True  # reset at t=3
        >>> q, q_next = agent.evaluate(obs, obs.roll(-1, 1), is_init=is_init)
        >>> q.shape, q_next.shape
        (torch.Size([5, 7, 2, 3]), torch.Size([5, 7, 2, 3]))
        >>> q1, h1 = agent(obs[:, 0])  # one step from a zero hidden state
        >>> torch.allclose(q1, q[:, 0], atol=1e-6), h1.shape
        (True, torch.Size([5, 2, 16]))
    """

    is_recurrent = True
    _CALL_COST = 40  # one extra GRU call ≈ this many sequence-steps of work (CPU, see _unroll)

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        obs_dim: int,
        hidden: Sequence[int] = (64,),
        *,
        share_params: bool = True,
        agent_id: bool = False,
        last_action: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__(n_agents, n_actions, obs_dim)
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"GRUAgent needs at least one positive hidden size (the GRU width), got {hidden}.")
        self.share_params, self.agent_id, self.last_action = bool(share_params), bool(agent_id), bool(last_action)
        self.hidden_size = hidden[-1]
        in_f = obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)
        sizes = [in_f, *(hidden[:-1] or hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [_linear(n_agents, a, b, share_params), activation()]
        self.encoder = nn.Sequential(*layers)
        self.rnn = _GRULayer(n_agents, sizes[-1], self.hidden_size, share_params)
        self.head = _linear(n_agents, self.hidden_size, n_actions, share_params)
        self.feature_size = self.hidden_size  # h_i = the GRU state (pymarl's mac.hidden_states)
        self.register_buffer("_eye", torch.eye(n_agents), persistent=False)

    @property
    def vmappable(self) -> bool:
        """Whether the GRU runs as a loop of cell steps without data-dependent branches (``_GRULayer.unrolled``),
        which ``torch.vmap`` can run: many seeds in one process set it (train/population.py); the default, False,
        keeps the faster fused ``nn.GRU`` calls. Both compute the same values to float rounding."""
        return self.rnn.vmappable

    @vmappable.setter
    def vmappable(self, value: bool) -> None:
        self.rnn.vmappable = bool(value)

    # ------------------------------------------------------------------ building blocks
    def _encode(self, obs: torch.Tensor, last_action: torch.Tensor | None) -> torch.Tensor:
        """GRU inputs ``[*B, n, E]`` from observations ``[*B, n, F]`` (+ previous action, + agent id)."""
        self.check_obs(obs)
        parts = [obs]
        if self.last_action:
            if last_action is None:
                raise ValueError(
                    "GRUAgent(last_action=True) needs the previous actions [*B, n, A]: the env needs "
                    "torchrl_vd.agent_transforms(agent, env) (LastAction writes ('agents', 'last_action')), and "
                    "callers of evaluate() pass them with **agent.extra_inputs(td)."
                )
            parts.append(last_action.to(obs.dtype))
        if self.agent_id:
            parts.append(self._eye.expand(*obs.shape[:-2], self.n_agents, self.n_agents))  # [*B, n, n]
        return self.encoder(torch.cat(parts, dim=-1) if len(parts) > 1 else obs)

    def _start(self, hidden: torch.Tensor | None, is_init: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Hidden state entering a step ``[*B, n, H]``: ``hidden`` (zeros if None), zero where ``is_init``.

        ``like`` is any ``[*B, n, ·]`` tensor of the step (its shape, dtype and device are used).
        """
        shape = (*like.shape[:-1], self.hidden_size)
        if hidden is None:
            return like.new_zeros(shape)
        if hidden.shape != shape:
            raise ValueError(f"Expected a hidden state {list(shape)} ([*B, n_agents, H]), got {list(hidden.shape)}.")
        if is_init is None:
            return hidden
        return hidden.masked_fill(is_init.reshape(*shape[:-2], 1, 1).bool(), 0.0)  # [*B, 1] -> [*B, 1, 1]

    def _unroll(self, x: torch.Tensor, h0: torch.Tensor, is_init: torch.Tensor | None) -> torch.Tensor:
        """Hidden states h^t [B, T, n, H] of inputs ``x [B, T, n, E]`` from ``h0`` [B, n, H], zeroed at ``is_init``.

        No episode start after t=0 (the common case): one fused ``nn.GRU`` call over the sequence.
        Otherwise one of two exact strategies, whichever the cost model below finds cheaper:

        * *segments*: cut the time axis at every step where some sequence starts an episode and run
          one call per segment, zeroing the rows that reset (cheap when resets are synchronised, e.g.
          fixed-horizon envs: B·T row-steps plus one call per distinct reset time);
        * *split*: cut each sequence into its trajectories, pad them to a common length and run them
          as independent sequences from zero in one call (cheap for many short or staggered
          episodes: K·L row-steps; the GRU is causal, so trailing padding never reaches a valid output).

        ``_CALL_COST``: one extra call costs about as much as 40 sequence-steps on a 1-thread CPU
        (benchmarks/bench_gru.py times both strategies; the model picks the faster one there).
        """
        B, T, n, _ = x.shape
        if self.vmappable:  # one cell step per t, resets masked in (no branch on the data: torch.vmap runs it)
            return self.rnn.unrolled(x, h0, is_init)  # [B, T, n, H]
        if is_init is not None:
            h0 = h0.masked_fill(is_init[:, 0, None, None], 0.0)  # [B, n, H]
        if is_init is None or T == 1 or not bool(is_init[:, 1:].any()):
            return self.rnn(x, h0)  # [B, T, n, H]
        starts = is_init.clone()
        starts[:, 0] = True  # [B, T]: every row starts a trajectory at t=0
        flat = starts.reshape(-1)  # [B*T]
        traj = flat.long().cumsum(0) - 1  # [B*T] trajectory id of each step
        first = flat.nonzero().squeeze(-1)  # [K] flat index of each trajectory's first step
        pos = torch.arange(B * T, device=x.device) - first[traj]  # [B*T] step within its trajectory
        K, L = first.numel(), int(pos.max()) + 1
        cuts = (is_init[:, 1:].any(0).nonzero().squeeze(-1) + 1).tolist()  # times where some row resets
        if B * T + self._CALL_COST * len(cuts) < K * L:
            h, ys = h0, []
            for s, e in zip([0, *cuts], [*cuts, T]):
                if s > 0:
                    h = h.masked_fill(is_init[:, s, None, None], 0.0)  # the rows that start an episode at s
                ys.append(self.rnn(x[:, s:e], h))  # [B, e-s, n, H]
                h = ys[-1][:, -1]
            return torch.cat(ys, dim=1)  # [B, T, n, H]
        padded = x.new_zeros(K, L, *x.shape[2:]).index_put((traj, pos), x.reshape(B * T, *x.shape[2:]))  # [K,L,n,E]
        row_first = traj[torch.arange(B, device=x.device) * T]  # [B] trajectory that starts at t=0 of row b
        h_init = h0.new_zeros(K, n, self.hidden_size).index_put((row_first,), h0)  # [K, n, H]; later ones: 0
        y = self.rnn(padded, h_init)  # [K, L, n, H]
        return y[traj, pos].reshape(B, T, n, self.hidden_size)

    # ------------------------------------------------------------------ public calls
    def forward(
        self,
        obs: torch.Tensor,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``obs [*B, n, F]``, ``hidden [*B, n, H]`` (zeros if None), ``is_init [*B, 1]``
        -> ``(Q(h^t, ·) [*B, n, A], h^t [*B, n, H])``. The hidden state is zeroed where ``is_init``."""
        x = self._encode(obs, last_action)  # [*B, n, E]
        h = self.rnn.step(x, self._start(hidden, is_init, x))  # [*B, n, H]
        return self.head(h), h

    def unroll(
        self,
        obs: torch.Tensor,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence: ``obs [B, T, n, F]`` from ``hidden [B, n, H]`` at t=0 (zeros if None), resetting
        to zero at every ``is_init [B, T, 1]`` -> ``(Q [B, T, n, A], h [B, T, n, H])``."""
        if obs.ndim != 4:
            raise ValueError(f"unroll expects observations [B, T, n_agents, obs_dim], got {list(obs.shape)}.")
        init = None if is_init is None else is_init.reshape(obs.shape[:2]).bool()  # [B, T]
        h = self._unroll(self._encode(obs, last_action), self._start(hidden, None, obs[:, 0]), init)
        return self.head(h), h

    def evaluate(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        need_current: bool = True,
        need_next: bool = True,
        last_action: torch.Tensor | None = None,
        next_last_action: torch.Tensor | None = None,
        features: bool = False,
    ) -> tuple:
        """``(Q(h^t, ·), Q(h^{t+1}, ·))`` ``[*B, n, A]`` of sequences ``[B, T, n, F]`` or single steps ``[B, n, F]``.

        Sequences unroll from the stored ``hidden`` at t=0, resetting where ``is_init``. Q(h^{t+1})
        is one more GRU step from h^t on ``next_obs[t]``; where ``next_obs[t]`` equals ``obs[t+1]``
        inside the same episode that is exactly Q(h^{t+1}) of the unroll and is reused, so extra steps
        are computed only at the slice end, before episode resets (truncation: the final observation)
        and before padding. Single steps take one step from ``hidden`` (zeros if None).
        ``last_action``/``next_last_action`` ``[*B, n, A]`` are required with ``last_action=True``.
        ``features=True``: each step is a pair ``(Q [*B, n, A], h [*B, n, H])`` with h the GRU state h^t / h^{t+1}.
        """
        if not (need_current or need_next):
            return ((None, None), (None, None)) if features else (None, None)
        if obs.ndim < 4:  # single steps [*B, n, F]
            q, h = self(obs, hidden, is_init, last_action)
            h_next = self.rnn.step(self._encode(next_obs, next_last_action), h) if need_next else None  # [*B, n, H]
            q_next = self.head(h_next) if need_next else None
            if features:
                return ((q, h) if need_current else (None, None)), (q_next, h_next)
            return (q if need_current else None), q_next
        q, h = self.unroll(obs, hidden, is_init, last_action)  # [B, T, n, A], [B, T, n, H]
        if not need_next:
            return ((q, h), (None, None)) if features else (q, None)
        B, T = obs.shape[:2]
        # Steps whose h^{t+1} is not the unroll's next state: the last one, episode starts, other inputs.
        same = (next_obs[:, :-1] == obs[:, 1:]).flatten(2).all(-1)  # [B, T-1]
        if self.last_action:
            same = same & (next_last_action[:, :-1] == last_action[:, 1:]).flatten(2).all(-1)
        if is_init is not None:
            same = same & ~is_init.reshape(B, T)[:, 1:].bool()
        extra = torch.cat((~same, same.new_ones(B, 1)), dim=1)  # [B, T] (out of place: torch.vmap runs it)
        def shifted(x: torch.Tensor) -> torch.Tensor:  # [B, T, ...]: the unroll's own next step (last one repeated)
            return torch.cat((x[:, 1:], x[:, -1:]), dim=1)

        if self.vmappable:  # the extra step at every t, then a select: no data-dependent shapes under torch.vmap
            h_new = self.rnn.step(self._encode(next_obs, next_last_action), h)  # [B, T, n, H]
            pick = extra[:, :, None, None]  # [B, T, 1, 1]

            def merge(x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
                return torch.where(pick, new, shifted(x))  # [B, T, n, ·]
        else:  # the extra step only where it is needed
            idx = extra.nonzero(as_tuple=True)  # ([K], [K])
            nla = None if next_last_action is None else next_last_action[idx]
            h_new = self.rnn.step(self._encode(next_obs[idx], nla), h[idx])  # [K, n, H]

            def merge(x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
                return shifted(x).index_put(idx, new)  # [B, T, n, ·]
        q_next = merge(q, self.head(h_new))  # [B, T, n, A]
        if features:
            return ((q, h) if need_current else (None, None)), (q_next, merge(h, h_new))
        return (q if need_current else None), q_next

    # ------------------------------------------------------------------ torchrl plumbing
    def policy_module(self, group: str = GROUP) -> TensorDictModule:
        """One step of collection: reads ``(group, "observation")``, ``(group, "rnn_hidden")``, ``"is_init"``
        (and ``(group, "last_action")``), writes ``(group, "action_value")`` and ``("next", group, "rnn_hidden")``."""
        return self._step_module(group)

    def _step_module(self, group: str, *inputs: NestedKey) -> TensorDictModule:
        """:meth:`forward` as a ``TensorDictModule``: reads the observation, hidden state and ``"is_init"``, then
        ``inputs`` (a subclass's extra forward arguments), then (``last_action=True``) the previous actions."""
        in_keys = [(group, OBSERVATION), (group, RNN_HIDDEN), IS_INIT, *inputs]
        if self.last_action:
            in_keys.append((group, LAST_ACTION))
        out_keys = [(group, ACTION_VALUE), (NEXT, group, RNN_HIDDEN)]
        return TensorDictModule(self, in_keys=in_keys, out_keys=out_keys)

    def extra_inputs(self, td: TensorDictBase, group: str = GROUP) -> dict:
        """``last_action``/``next_last_action`` from a batch (``last_action=True``), else nothing."""
        if not self.last_action:
            return {}
        key = (group, LAST_ACTION)
        return {"last_action": td.get(key, None), "next_last_action": td.get((NEXT, *key), None)}  # forward kwargs
