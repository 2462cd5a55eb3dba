"""Independent Q-learning: every agent learns its own utility from the reward, with no mixer (Tan 1993).

The baseline every value-decomposition method is compared with: EPyMARL/pymarl's ``QLearner`` with ``mixer: None``
(uoe-agents/epymarl ``src/learners/q_learner.py``, ``src/config/algs/iql.yaml``), BenchMARL's and JaxMARL's IQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl_vd.keys import GROUP, REWARD
from torchrl_vd.objectives.batch import Batch, _next
from torchrl_vd.objectives.common import ValueDecompositionLoss


class IQLLoss(ValueDecompositionLoss):
    """L(θ) = Σ_{b, i} m_{b,i} (Q_i(h_i, a_i; θ) − y_i)² / Σ_{b, i} m_{b,i}, with per-agent targets

        y_i = r_(i) + γ (1 − terminated) Q̄_i(h'_i, a*_i),   a*_i = argmax_a Q_i(h'_i, a)  (double Q; else Q̄_i's argmax),

    the mean over the valid (sample, agent) pairs m (padding, burn-in and dead agents excluded): EPyMARL's QLearner
    with no mixer, whose TD errors are per agent and averaged over time steps and agents. ``r_(i)`` is the team
    reward broadcast to every agent (``rewards="team"``, EPyMARL's ``common_reward``) or agent i's own reward
    (``rewards="individual"``, read at ``("next", group, "reward")``; EPyMARL ``common_reward: False``, XuanCe's IQL).
    TD(λ) runs per agent over the time axis of sequence batches.

    Args:
        local_value_network: the agents (see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`).

    Keyword Args:
        rewards: ``"team"`` or ``"individual"``.
        others: see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`.

    Returns (forward): ``loss``; writes ``td_error`` ``[*B]`` = the mean over the sample's valid agents of ``|Q_i − y_i|``
    (the priority of the sample).

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent
        >>> from torchrl_vd.objectives.iql import IQLLoss
        >>> from torchrl_vd.testing import random_batch
        >>> loss = IQLLoss(MLPAgent(2, 3, 4))
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=8)
        >>> out = loss(td)
        >>> sorted(out.keys()), td["td_error"].shape
        (['loss'], torch.Size([8]))
    """

    @dataclass
    class _AcceptedKeys(ValueDecompositionLoss._AcceptedKeys):
        """The base class's keys, plus:

        Attributes:
            agent_reward: each agent's own reward under ``"next"`` ``[*B, n, 1]`` (``rewards="individual"``).
                Default ``("agents", "reward")``.
        """

        agent_reward: NestedKey = (GROUP, REWARD)

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys

    def __init__(self, local_value_network: nn.Module, *, rewards: Literal["team", "individual"] = "team", **kwargs):
        if rewards not in ("team", "individual"):
            raise ValueError(f"rewards must be 'team' or 'individual', got {rewards!r}.")
        self.rewards = rewards
        super().__init__(local_value_network, **kwargs)

    def use_group(self, group: str) -> "IQLLoss":
        super().use_group(group)
        self.set_keys(agent_reward=(group, self.tensor_keys.agent_reward[-1]))
        return self

    def _extra_in_keys(self) -> list[NestedKey]:
        return [_next(self.tensor_keys.agent_reward)] if self.rewards == "individual" else []

    def agent_rewards(self, b: Batch) -> torch.Tensor | None:
        """Each agent's own reward ``[*B, n]`` (``rewards="individual"``), else None (the team reward is used)."""
        if self.rewards == "team":
            return None
        key = _next(self.tensor_keys.agent_reward)
        reward = b.td.get(key, None)
        if reward is None:
            raise KeyError(f"IQLLoss(rewards='individual') reads each agent's own reward at {key!r}, which the batch "
                           f"lacks (this env gives a team reward only): use rewards='team', or point "
                           f"set_keys(agent_reward=...) at the per-agent rewards.")
        return reward.reshape(*b.valid.shape, -1)  # [*B, n, 1] -> [*B, n]

    def _losses(self, b: Batch):
        q, q_next = self.online_utilities(b, need_next=self.double_q)  # [*B, n, A] each (q_next: no grad)
        chosen = self.gather(q, b.action).squeeze(-1)  # [*B, n, 1] -> [*B, n]
        with torch.no_grad():
            next_chosen = self.next_target_utilities(b, q_next)[2].squeeze(-1)  # [*B, n, 1] -> [*B, n]
            y = self.td_target(b, next_chosen, self.agent_rewards(b))  # [*B, n]
        mask = b.valid.unsqueeze(-1).expand_as(chosen)  # [*B, n]: valid steps ...
        if b.alive is not None:
            mask = mask & b.alive.bool()  # ... of agents still playing
        mask = mask.to(chosen.dtype)
        dist = self.distance(chosen, y) * mask  # [*B, n]
        if b.weight is not None:
            dist = dist * b.weight.reshape(*b.valid.shape, 1)  # [*B] -> [*B, 1]
        loss = dist.sum() / mask.sum().clamp_min(1.0)
        td_error = ((chosen - y).detach().abs() * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)  # [*B]
        return {"loss": loss}, td_error

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Independent learners have no joint value: the IGM check does not apply (``NotImplementedError``)."""
        raise NotImplementedError("IQLLoss learns no joint value Q(h, z, a): the IGM check does not apply to it.")


__all__ = ["IQLLoss"]
