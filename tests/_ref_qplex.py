"""Test helper: QPLEX's reference loss, ported minimally from wjh720/QPLEX (commit 6c0a7ba).

Licence: Apache License 2.0 (``pymarl-master/LICENSE``, pymarl's). A re-statement for testing, not a
copy of the files:

* ``DMAQSIWeight`` — ``pymarl-master/src/modules/mixers/dmaq_si_weight.py`` (adv_hypernet_layers 1-3);
* ``DMAQer`` — ``pymarl-master/src/modules/mixers/dmaq_general.py``;
* ``DMAQLearner.loss`` — ``pymarl-master/src/learners/dmaq_qatten_learner.py`` ``sub_train`` up to
  ``loss.backward()`` (l.43-166) with ``mixer: "dmaq"``, both ``double_q`` branches.

One K-head network per head and per extractor (``nn.ModuleList``), two mixer calls per Q_tot
(``is_v=True`` then the advantage call), ``-9999999`` on illegal actions: as in the reference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from _pymarl import MAC, Pair, _get, agent_pairs, learner_inputs


def _mlp(in_dim: int, out_dim: int, layers: int, embed: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    mods, d = [], in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, embed), nn.ReLU()]
        d = embed
    return nn.Sequential(*mods, nn.Linear(d, out_dim))


class DMAQSIWeight(nn.Module):
    def __init__(self, n_agents, n_actions, state_dim, num_kernel, adv_hypernet_layers, adv_hypernet_embed):
        super().__init__()
        self.n_agents, self.num_kernel = n_agents, num_kernel
        self.state_dim, self.action_dim = state_dim, n_agents * n_actions
        args = (adv_hypernet_layers, adv_hypernet_embed)
        self.key_extractors = nn.ModuleList(_mlp(state_dim, 1, *args) for _ in range(num_kernel))
        self.agents_extractors = nn.ModuleList(_mlp(state_dim, n_agents, *args) for _ in range(num_kernel))
        self.action_extractors = nn.ModuleList(_mlp(state_dim + self.action_dim, n_agents, *args) for _ in range(num_kernel))

    def forward(self, states, actions):
        states = states.reshape(-1, self.state_dim)
        actions = actions.reshape(-1, self.action_dim)
        data = torch.cat([states, actions], dim=1)
        heads = []
        for k_ext, a_ext, u_ext in zip(self.key_extractors, self.agents_extractors, self.action_extractors):
            x_key = torch.abs(k_ext(states)).repeat(1, self.n_agents) + 1e-10
            heads.append(x_key * torch.sigmoid(a_ext(states)) * torch.sigmoid(u_ext(data)))
        return torch.stack(heads, dim=1).view(-1, self.num_kernel, self.n_agents).sum(dim=1)


class DMAQer(nn.Module):
    def __init__(self, n_agents, n_actions, state_dim, *, hypernet_embed, num_kernel, adv_hypernet_layers,
                 adv_hypernet_embed, is_minus_one=True, weighted_head=True):
        super().__init__()
        self.n_agents, self.state_dim = n_agents, state_dim
        self.action_dim = n_agents * n_actions
        self.is_minus_one, self.weighted_head = is_minus_one, weighted_head
        self.hyper_w_final = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents))
        self.V = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents))
        self.si_weight = DMAQSIWeight(n_agents, n_actions, state_dim, num_kernel, adv_hypernet_layers, adv_hypernet_embed)

    def calc_adv(self, agent_qs, states, actions, max_q_i):
        states = states.reshape(-1, self.state_dim)
        actions = actions.reshape(-1, self.action_dim)
        agent_qs = agent_qs.view(-1, self.n_agents)
        max_q_i = max_q_i.view(-1, self.n_agents)
        adv_q = (agent_qs - max_q_i).view(-1, self.n_agents).detach()
        adv_w_final = self.si_weight(states, actions).view(-1, self.n_agents)
        if self.is_minus_one:
            return torch.sum(adv_q * (adv_w_final - 1.0), dim=1)
        return torch.sum(adv_q * adv_w_final, dim=1)

    def forward(self, agent_qs, states, actions=None, max_q_i=None, is_v=False):
        bs = agent_qs.size(0)
        states = states.reshape(-1, self.state_dim)
        agent_qs = agent_qs.view(-1, self.n_agents)
        w_final = torch.abs(self.hyper_w_final(states)).view(-1, self.n_agents) + 1e-10
        v = self.V(states).view(-1, self.n_agents)
        if self.weighted_head:
            agent_qs = w_final * agent_qs + v
        if not is_v:
            max_q_i = max_q_i.view(-1, self.n_agents)
            if self.weighted_head:
                max_q_i = w_final * max_q_i + v
        y = agent_qs.view(-1, self.n_agents).sum(dim=-1) if is_v else self.calc_adv(agent_qs, states, actions, max_q_i)
        return y.view(bs, -1, 1)


class DMAQLearner:
    """The reference learner's networks: online and (deep-copied) target MAC and mixer."""

    def __init__(self, mac: MAC, mixer: DMAQer, *, double_q: bool = True, gamma: float = 0.99):
        self.mac, self.mixer = mac, mixer
        self.target_mac, self.target_mixer = copy.deepcopy(mac), copy.deepcopy(mixer)
        self.double_q, self.gamma = double_q, gamma

    def loss(self, batch: dict) -> torch.Tensor:
        """``sub_train``'s loss (l.43-166)."""
        rewards, actions, terminated, mask, avail_actions = learner_inputs(batch)
        actions_onehot = batch["actions_onehot"][:, :-1]
        n_actions = avail_actions.shape[-1]

        mac_out = self.mac.unroll(batch)
        chosen_action_qvals = torch.gather(mac_out[:, :-1], dim=3, index=actions).squeeze(3)
        x_mac_out = mac_out.clone().detach()
        x_mac_out[avail_actions == 0] = -9999999
        max_action_qvals, _ = x_mac_out[:, :-1].max(dim=3)

        target_mac_out = self.target_mac.unroll(batch)[:, 1:]
        target_mac_out[avail_actions[:, 1:] == 0] = -9999999

        if self.double_q:
            mac_out_detach = mac_out.clone().detach()
            mac_out_detach[avail_actions == 0] = -9999999
            cur_max_actions = mac_out_detach[:, 1:].max(dim=3, keepdim=True)[1]
            target_chosen_qvals = torch.gather(target_mac_out, 3, cur_max_actions).squeeze(3)
            target_max_qvals = target_mac_out.max(dim=3)[0]
            cur_max_actions_onehot = torch.zeros(cur_max_actions.squeeze(3).shape + (n_actions,), dtype=mac_out.dtype)
            cur_max_actions_onehot = cur_max_actions_onehot.scatter_(3, cur_max_actions, 1)
        else:
            target_max_qvals = target_mac_out.max(dim=3)[0]

        ans_chosen = self.mixer(chosen_action_qvals, batch["state"][:, :-1], is_v=True)
        ans_adv = self.mixer(chosen_action_qvals, batch["state"][:, :-1], actions=actions_onehot,
                             max_q_i=max_action_qvals, is_v=False)
        chosen_action_qvals = ans_chosen + ans_adv
        if self.double_q:
            target_chosen = self.target_mixer(target_chosen_qvals, batch["state"][:, 1:], is_v=True)
            target_adv = self.target_mixer(target_chosen_qvals, batch["state"][:, 1:], actions=cur_max_actions_onehot,
                                           max_q_i=target_max_qvals, is_v=False)
            target_max_qvals = target_chosen + target_adv
        else:
            target_max_qvals = self.target_mixer(target_max_qvals, batch["state"][:, 1:], is_v=True)

        targets = rewards + self.gamma * (1 - terminated) * target_max_qvals
        td_error = chosen_action_qvals - targets.detach()
        mask = mask.expand_as(td_error)
        return ((td_error * mask) ** 2).sum() / mask.sum()


def _heads_pairs(ours, ref_list: nn.ModuleList, layers: int, prefix: str) -> list[Pair]:
    """Our stacked ``_HeadMLPs`` <-> the reference's list of per-head networks."""
    seq = [m if isinstance(m, nn.Sequential) else nn.Sequential(m) for m in ref_list]  # layers == 1: a Linear
    lin = [[m for m in s if isinstance(m, nn.Linear)] for s in seq]  # [K][layers]
    pairs = [
        (f"{prefix}.first.weight", ours.first.weight, lambda a: torch.cat([_get(ls[0].weight, a) for ls in lin], 0)),
        (f"{prefix}.first.bias", ours.first.bias, lambda a: torch.cat([_get(ls[0].bias, a) for ls in lin], 0)),
    ]
    for j, layer in enumerate(ours.rest, start=1):
        pairs.append((f"{prefix}.rest.{j}.weight", layer.weight,
                      lambda a, j=j: torch.stack([_get(ls[j].weight, a).T for ls in lin], 0)))
        pairs.append((f"{prefix}.rest.{j}.bias", layer.bias, lambda a, j=j: torch.stack([_get(ls[j].bias, a) for ls in lin], 0)))
    assert len(ours.rest) == layers - 1
    return pairs


def mixer_pairs(ours, ref: DMAQer, layers: int, prefix: str) -> list[Pair]:
    """torchrl_vd ``QPlexMixer`` <-> reference ``DMAQer``."""
    table = []
    for o, r in ((ours.hyper_w, ref.hyper_w_final), (ours.hyper_b, ref.V)):
        table += [(o[0].weight, r[0].weight), (o[0].bias, r[0].bias), (o[2].weight, r[2].weight), (o[2].bias, r[2].bias)]
    pairs = [(f"{prefix}.{i}", o, lambda a, r=r: _get(r, a)) for i, (o, r) in enumerate(table)]
    si = ref.si_weight
    for name, ref_list in (("key", si.key_extractors), ("agents", si.agents_extractors), ("action", si.action_extractors)):
        pairs += _heads_pairs(getattr(ours, name), ref_list, layers, f"{prefix}.{name}")
    return pairs


def learner_pairs(loss, ref: DMAQLearner, layers: int, *, target: bool) -> list[Pair]:
    """Every network of a ``QPlexLoss`` (online or target copies) paired with the reference learner's."""
    get = loss.target if target else (lambda name: getattr(loss, name))
    mac, mixer = (ref.target_mac, ref.target_mixer) if target else (ref.mac, ref.mixer)
    pre = "target_" if target else ""
    return agent_pairs(get("agent_net"), mac.agent, pre + "agent") + mixer_pairs(get("mixer"), mixer, layers, pre + "mixer")
