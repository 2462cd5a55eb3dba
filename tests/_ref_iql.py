"""Test helper: EPyMARL's ``QLearner`` with ``mixer: None`` (independent Q-learning), its loss lines only.

A re-statement for testing of uoe-agents/epymarl @cbc38c09 ``src/learners/q_learner.py`` (Apache License 2.0)
``train`` up to the loss, on pymarl's episode batch layout (tests/_pymarl.py): the agents' chosen utilities, the
target agents' values at the online (double Q) or target argmax over the legal actions, the team reward broadcast
to every agent (``common_reward``) or each agent's own reward, and the mean of the squared TD errors over the
valid (episode, step, agent) entries.
"""

from __future__ import annotations

import copy

import torch
from _pymarl import MAC, agent_pairs, learner_mask


class IndependentQLearner:
    def __init__(self, mac: MAC, *, gamma: float, double_q: bool = True):
        self.mac, self.target_mac, self.gamma, self.double_q = mac, copy.deepcopy(mac), gamma, double_q

    def loss(self, batch: dict, rewards: torch.Tensor | None = None) -> torch.Tensor:
        """``rewards``: per-agent [B, T+1, N] (``common_reward: False``); None: the batch's team reward [B, T+1, 1]."""
        rewards = (batch["reward"] if rewards is None else rewards)[:, :-1]
        actions = batch["actions"][:, :-1]
        terminated = batch["terminated"][:, :-1]
        mask = learner_mask(batch)
        avail_actions = batch["avail_actions"]
        mac_out = self.mac.unroll(batch)  # [B, T+1, N, A]
        chosen_action_qvals = torch.gather(mac_out[:, :-1], dim=3, index=actions).squeeze(3)  # [B, T, N]
        target_mac_out = self.target_mac.unroll(batch)[:, 1:]  # [B, T, N, A]
        target_mac_out[avail_actions[:, 1:] == 0] = -9999999
        if self.double_q:
            mac_out_detach = mac_out.clone().detach()
            mac_out_detach[avail_actions == 0] = -9999999
            cur_max_actions = mac_out_detach[:, 1:].max(dim=3, keepdim=True)[1]
            target_max_qvals = torch.gather(target_mac_out, 3, cur_max_actions).squeeze(3)
        else:
            target_max_qvals = target_mac_out.max(dim=3)[0]
        n_agents = chosen_action_qvals.shape[-1]
        if rewards.shape[-1] == 1:  # common_reward: the team reward for every agent
            rewards = rewards.expand(-1, -1, n_agents)
        targets = rewards + self.gamma * (1 - terminated) * target_max_qvals
        td_error = chosen_action_qvals - targets.detach()
        mask = mask.expand_as(td_error)
        masked_td_error = td_error * mask
        return (masked_td_error**2).sum() / mask.sum()


def learner_pairs(loss, ref: IndependentQLearner, *, target: bool):
    agent = loss.target("agent_net") if target else loss.agent_net
    return agent_pairs(agent, (ref.target_mac if target else ref.mac).agent, ("target_" if target else "") + "agent")
