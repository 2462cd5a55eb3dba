"""PQN-VDN: VDN trained on λ-returns of the online network, with no target network and no replay buffer
(Gallici et al. 2025, "Simplifying Deep Temporal Difference Learning", Sec. 4 and App. B: PQN-VDN).

The loss of FLAIROx/JaxMARL ``baselines/QLearning/pqn_vdn_rnn.py`` and ``pqn_vdn_ff.py`` (``_loss_fn``,
``_compute_targets``); the schedule around it (rollouts, epochs, minibatches, RAdam, ε and LR) is the trainer's
(train/pqn_learner.py).
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl_vd.modules.pqn_agent import batch_statistics
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss


class PQNVDNLoss(ValueDecompositionLoss):
    """L(θ) = mean_{valid t} (Σ_i Q_i(h_{i,t}, a_{i,t}; θ) − G_t)²  (no ½, as JaxMARL's), with λ-returns of the
    online network, stop-gradient:

        G_t = r_t + γ (1 − term_t) [(1 − λ) V_{t+1} + λ G_{t+1}]   within an episode,
        G_t = r_t + γ (1 − term_t) V_{t+1}                           at the last step or where ``done`` cuts it,
        V_{t+1} = Σ_i max_{a ∈ legal} Q_i(h_{i,t+1}, a; θ)            (dead agents contribute 0),

    the TD(λ) recursion of torchrl's ``TDLambdaEstimator`` (``make_value_estimator(TDLambda, gamma=, lmbda=)``; TD0
    and TD1 too). JaxMARL stores ``done["__all__"]``, time limits included, and cuts every return there
    (G_t = r_t): pass terminated = done for that (the trainer's ``bootstrap_time_limits=False``, this algorithm's
    preset); with a separate ``terminated`` the return bootstraps through a time limit from the true final
    observation.

    Where the targets come from:

    * **given**: a batch holding ``value_target`` ``[*B, 1]`` (:meth:`value_targets`, once per rollout) trains on it:
      JaxMARL's feed-forward variant, whose targets come from the rollout-time Q-values before the epochs;
    * **recomputed** (no ``value_target``): from the same forward as the prediction, under ``no_grad``, as
      JaxMARL's recurrent variant does in every gradient step. V_{t+1} is read off that forward at step t+1
      where step t+1 continues step t (its observation is step t's next one; no reset of a recurrent agent);
      elsewhere (the sequence's last step, a time limit, a break between two stored pieces) one more step on the
      next observation runs, BatchNorm on its running averages. Time runs along the last batch dimension (a
      flat batch [B] is one trajectory, torchrl's convention).

    The forward that is trained runs the network's BatchNorm layers on the batch's statistics over the valid
    steps (:func:`~torchrl_vd.modules.pqn_agent.batch_statistics`, flax's ``train=True``), so every call moves
    their running averages, as each of JaxMARL's gradient steps does.

    Args:
        local_value_network: the agents (see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`), e.g.
            :class:`~torchrl_vd.modules.pqn_agent.PQNAgent` / ``PQNRecurrentAgent``.

    Keyword Args:
        train_last_step: ``False``: the last step of each sequence only bootstraps the returns of the earlier
            ones (its value V_{T-1} comes from the forward itself) and is not trained: JaxMARL's recurrent
            variant (its loss covers t < L − 1). ``True`` (default): every valid step is trained.
        others: see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`; ``delay_value`` must stay False
            (PQN has no target network) and ``double_q`` has nothing to select.

    Masks (ours, on top of JaxMARL's): padded / masked steps give no loss and no BatchNorm statistics, dead agents'
    utilities are zero in Σ_i Q_i and in V, illegal actions never reach the max.

    Returns (forward): ``loss``; writes ``td_error`` ``[*B]`` = ``|Σ_i Q_i − G|``.

    Examples:
        >>> import torch
        >>> from torchrl.objectives.utils import ValueEstimators
        >>> from torchrl_vd.modules.pqn_agent import PQNAgent
        >>> from torchrl_vd.testing import random_batch
        >>> loss = PQNVDNLoss(PQNAgent(2, 3, 4, hidden=(8,)))
        >>> loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.9, lmbda=0.3)
        PQNVDNLoss(...)
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=(5, 6))  # [B, T] sequences
        >>> out = loss(td)
        >>> torch.allclose(out["loss"], td["td_error"].pow(2).mean())  # the mean squared error, no 1/2
        True
    """

    def __init__(self, local_value_network: nn.Module, *, train_last_step: bool = True, **kwargs):
        if kwargs.get("delay_value", False):
            raise ValueError("PQNVDNLoss has no target network (PQN learns from the online network's λ-returns): "
                             "leave delay_value=False.")
        kwargs.update(delay_value=False, double_q=False)
        self.train_last_step = bool(train_last_step)
        super().__init__(local_value_network, **kwargs)

    def _extra_in_keys(self) -> list[NestedKey]:
        return [self.tensor_keys.value_target]

    # ------------------------------------------------------------------ the loss
    def _losses(self, b: Batch):
        y = b.td.get(self.tensor_keys.value_target, None)
        with batch_statistics(self.agent_net, b.valid):
            q, h = self.forward_utilities(b)  # [*B, n, A] (with grad), hidden states of recurrent agents
        chosen = self.zero_dead(self.gather(q, b.action), b.alive)  # [*B, n, 1]
        q_tot = chosen.sum(-2)  # [*B, 1]: VDN, Q_tot = Σ_i Q_i
        trained = b
        if y is None:
            if not self.train_last_step:
                trained = _last_step_bootstraps(b)
            with torch.no_grad():
                y = self.td_target(trained, self.next_values(b, q.detach(), h))  # [*B, 1]
        else:
            y = y.reshape(q_tot.shape).to(q_tot.dtype)  # [*B, 1]
        loss_td, td_error = self.td_loss(q_tot, y, trained)
        return {"loss": loss_td}, td_error

    @torch.no_grad()
    def value_targets(self, td: TensorDictBase) -> TensorDictBase:
        """Write the λ-returns G ``[*B, 1]`` of ``td`` at ``value_target`` (in place) and return it: the targets of
        every later call on (a part of) ``td``, from the network as it is now, on BatchNorm's running averages
        (JaxMARL's feed-forward variant: the rollout-time Q-values, before the epochs)."""
        b = self.read_batch(td)
        q, h = self.forward_utilities(b)  # [*B, n, A]
        td.set(self.tensor_keys.value_target, self.td_target(b, self.next_values(b, q, h)))  # [*B, 1]
        return td

    # ------------------------------------------------------------------ values
    def forward_utilities(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(Q(h_t, ·) [*B, n, A], h_t [*B, n, H] or None)``: one forward over the batch (recurrent agents unroll
        sequences [B, T] from their stored hidden state, resetting at ``is_init``; flat batches take one step
        from it)."""
        agent = self.agent_net
        if not agent.is_recurrent:
            return agent(b.obs), None
        last = agent.extra_inputs(b.td, self.group).get("last_action")
        if b.obs.ndim == 4:  # sequences [B, T, n, F]
            return agent.unroll(b.obs, b.hidden, b.is_init, last)
        return agent(b.obs, b.hidden, b.is_init, last)

    def team_value(self, q: torch.Tensor, mask: torch.Tensor | None, alive: torch.Tensor | None) -> torch.Tensor:
        """V = Σ_i max_{legal a} Q_i(·, a), dead agents 0: ``q [*B, n, A]`` -> ``[*B, 1]``."""
        best = self.masked(q, mask).max(-1).values  # [*B, n]
        if alive is not None:
            best = best * alive.to(best.dtype)
        return best.sum(-1, keepdim=True)  # [*B, 1]

    def next_values(self, b: Batch, q: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """V_{t+1} ``[*B, 1]`` (no grad): from ``q`` at step t+1 where it continues step t, else one more step on the
        next observation (on BatchNorm's running averages) where the return reads it (not terminated, valid, not
        a last step that is not trained), zero elsewhere. Those steps are few and taken alone; under many seeds'
        ``torch.vmap`` (``agent.vmappable``) every step takes one and a select keeps the needed ones."""
        time = b.valid.ndim - 1  # the time axis: the last batch dimension
        cont = self.continues(b)  # [*B]
        need = b.valid & ~cont & ~b.terminated.reshape(b.valid.shape)  # [*B]
        if not self.train_last_step:
            need = _without_last(need, time)
        v_next = self.team_value(_shift(q, time), b.next_action_mask, b.next_alive)  # [*B, 1]
        v_next = v_next.masked_fill(~cont.unsqueeze(-1), 0.0)
        if getattr(self.agent_net, "vmappable", False):  # no data-dependent shapes under torch.vmap
            v_all = self.team_value(self._step_next(b, h, None), b.next_action_mask, b.next_alive)  # [*B, 1]
            return torch.where(need.unsqueeze(-1), v_all, v_next)
        if bool(need.any()):
            v_extra = self.team_value(self._step_next(b, h, need), _rows(b.next_action_mask, need),
                                      _rows(b.next_alive, need))  # [K, 1]
            v_next = v_next.index_put(need.nonzero(as_tuple=True), v_extra)
        return v_next

    def continues(self, b: Batch) -> torch.Tensor:
        """``[*B]`` bool: step t+1 of the batch continues step t (its observation is step t's next one, and a recurrent
        agent's unroll carried h_t into it: a sequence batch, no reset at t+1, the same previous action)."""
        agent, time = self.agent_net, b.valid.ndim - 1
        T = b.valid.shape[-1]
        if T < 2 or (agent.is_recurrent and b.obs.ndim != 4):
            return torch.zeros_like(b.valid)
        same = (b.next_obs.narrow(time, 0, T - 1) == b.obs.narrow(time, 1, T - 1)).flatten(time + 1).all(-1)
        if agent.is_recurrent:
            if b.is_init is not None:
                same = same & ~b.is_init.reshape(b.valid.shape)[..., 1:].bool()
            extra = agent.extra_inputs(b.td, self.group)
            if extra.get("last_action") is not None:
                same = same & (extra["next_last_action"][:, :-1] == extra["last_action"][:, 1:]).flatten(2).all(-1)
        return torch.cat((same, torch.zeros_like(same.narrow(time, 0, 1))), dim=time)  # [*B]

    def _step_next(self, b: Batch, h: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor:
        """Q at the next observation of the steps ``rows`` ``[*B]`` marks, ``[K, n, A]`` (None: of every step,
        ``[*B, n, A]``); recurrent agents take one step from h_t."""
        agent = self.agent_net
        pick = (lambda x: x) if rows is None else (lambda x: None if x is None else x[rows])  # noqa: E731
        if not agent.is_recurrent:
            return agent(pick(b.next_obs))
        nxt = agent.extra_inputs(b.td, self.group).get("next_last_action")
        return agent(pick(b.next_obs), pick(h), None, pick(nxt))[0]

    # ------------------------------------------------------------------ IGM
    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_tot(h, a) = Σ_i Q_i(h_i, a_i) ``[*B, K]`` for joint actions ``[K, n]`` or ``[*B, K, n]`` (running
        averages)."""
        b, q = self.eval_utilities(td)  # q: [*B, n, A]
        chosen, _, _ = self.joint_inputs(q, joint_actions, None, b.alive)  # [*B, K, n, 1]
        return chosen.sum(-2).squeeze(-1)  # [*B, K]


def _shift(x: torch.Tensor, time: int) -> torch.Tensor:
    """``x`` at t+1 along ``time`` (the last step repeated; it is never read there)."""
    return torch.cat((x.narrow(time, 1, x.shape[time] - 1), x.narrow(time, x.shape[time] - 1, 1)), dim=time)


def _without_last(flags: torch.Tensor, time: int) -> torch.Tensor:
    """``flags`` ``[*B]`` with the last step along ``time`` False."""
    keep = torch.ones_like(flags)
    keep.narrow(time, flags.shape[time] - 1, 1).fill_(False)
    return flags & keep


def _last_step_bootstraps(b: Batch) -> Batch:
    """``b`` whose last step only bootstraps (JaxMARL's recurrent variant): not valid for the loss, and the returns
    end one step earlier, at T − 2, whose target is r + γ (1 − term) V_{T-1} (a ``done`` there, no λ-mixing)."""
    time = b.valid.ndim - 1
    T = b.valid.shape[-1]
    done = b.done.clone()
    if T >= 2:
        done.narrow(time, T - 2, 1).fill_(True)
    return dataclasses.replace(b, valid=_without_last(b.valid, time), done=done)


def _rows(x: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[rows]


__all__ = ["PQNVDNLoss"]
