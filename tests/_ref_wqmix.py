"""Test helper: Weighted QMIX's reference loss, ported minimally from oxwhirl/wqmix (commit 350e989).

Licence: oxwhirl/wqmix ships no licence file; it is "Based on PyMARL" (its README), oxwhirl/pymarl
being Apache License 2.0. This is a re-statement for testing, not a copy of the files:

* ``QMixer`` — ``src/modules/mixers/qmix.py`` (hypernet_layers=2);
* ``QMixerCentralFF`` — ``src/modules/mixers/qmix_central_no_hyper.py`` (central_action_embed=1);
* ``max_q_loss`` — ``src/learners/max_q_learner.py`` ``MAXQLearner.train`` up to ``loss.backward()``
  (l.72-175), for ``central_mixer: "ff"``, ``central_loss: 1`` (a separate central MAC) and
  ``double_q: True`` (the learner raises otherwise).

Parameters of the learner's networks, the forward order, the masks (``filled``, post-termination),
the ``-9999999`` fill of illegal actions and the weighting are kept as in the reference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from _pymarl import MAC, Pair, _get, agent_pairs, learner_inputs


class QMixer(nn.Module):
    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hypernet_embed: int):
        super().__init__()
        self.n_agents, self.state_dim, self.embed_dim = n_agents, state_dim, embed_dim
        self.hyper_w_1 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                       nn.Linear(hypernet_embed, embed_dim * n_agents))
        self.hyper_w_final = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                           nn.Linear(hypernet_embed, embed_dim))
        self.hyper_b_1 = nn.Linear(state_dim, embed_dim)
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs, states):
        bs = agent_qs.size(0)
        states = states.reshape(-1, self.state_dim)
        agent_qs = agent_qs.view(-1, 1, self.n_agents)
        w1 = torch.abs(self.hyper_w_1(states)).view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b_1(states).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(agent_qs, w1) + b1)
        w_final = torch.abs(self.hyper_w_final(states)).view(-1, self.embed_dim, 1)
        v = self.V(states).view(-1, 1, 1)
        return (torch.bmm(hidden, w_final) + v).view(bs, -1, 1)


class QMixerCentralFF(nn.Module):
    def __init__(self, n_agents: int, state_dim: int, embed_dim: int):
        super().__init__()
        self.n_agents, self.state_dim = n_agents, state_dim
        e = embed_dim
        self.net = nn.Sequential(nn.Linear(n_agents + state_dim, e), nn.ReLU(), nn.Linear(e, e), nn.ReLU(),
                                 nn.Linear(e, e), nn.ReLU(), nn.Linear(e, 1))
        self.V = nn.Sequential(nn.Linear(state_dim, e), nn.ReLU(), nn.Linear(e, 1))

    def forward(self, agent_qs, states):
        bs = agent_qs.size(0)
        states = states.reshape(-1, self.state_dim)
        agent_qs = agent_qs.reshape(-1, self.n_agents)
        y = self.net(torch.cat([states, agent_qs], dim=1)) + self.V(states)
        return y.view(bs, -1, 1)


class MaxQLearner:
    """The reference learner's networks: online and (deep-copied) target MAC, mixer, central MAC and mixer."""

    def __init__(self, mac: MAC, mixer: QMixer, central_mac: MAC, central_mixer: QMixerCentralFF, *,
                 w: float = 0.1, hysteretic_qmix: bool = False, gamma: float = 0.99):
        self.mac, self.mixer, self.central_mac, self.central_mixer = mac, mixer, central_mac, central_mixer
        self.target_mac, self.target_mixer = copy.deepcopy(mac), copy.deepcopy(mixer)
        self.target_central_mac, self.target_central_mixer = copy.deepcopy(central_mac), copy.deepcopy(central_mixer)
        self.w, self.hysteretic_qmix, self.gamma = w, hysteretic_qmix, gamma

    def loss(self, batch: dict):
        """``(loss, qmix_loss, central_loss, ws)`` (MAXQLearner.train l.72-175)."""
        rewards, actions, terminated, mask, avail_actions = learner_inputs(batch)

        mac_out = self.mac.unroll(batch)
        chosen_action_qvals = torch.gather(mac_out[:, :-1], dim=3, index=actions).squeeze(3)

        target_mac_out = self.target_mac.unroll(batch)  # computed by the reference, unused by its targets
        target_mac_out[avail_actions == 0] = -9999999

        mac_out_detach = mac_out.clone().detach()
        mac_out_detach[avail_actions == 0] = -9999999
        _, cur_max_actions = mac_out_detach.max(dim=3, keepdim=True)

        central_mac_out = self.central_mac.unroll(batch).unsqueeze(-1)  # [B, T+1, n, A, 1] (central_action_embed 1)
        central_chosen_action_qvals_agents = torch.gather(
            central_mac_out[:, :-1], dim=3, index=actions.unsqueeze(4)).squeeze(3)
        central_target_mac_out = self.target_central_mac.unroll(batch).unsqueeze(-1)
        central_target_mac_out[avail_actions == 0] = -9999999
        central_target_max_agent_qvals = torch.gather(
            central_target_mac_out, 3, cur_max_actions.unsqueeze(4)).squeeze(3)

        chosen_action_qvals = self.mixer(chosen_action_qvals, batch["state"][:, :-1])
        target_max_qvals = self.target_central_mixer(central_target_max_agent_qvals[:, 1:], batch["state"][:, 1:])
        targets = rewards + self.gamma * (1 - terminated) * target_max_qvals

        td_error = chosen_action_qvals - targets.detach()
        mask = mask.expand_as(td_error)
        masked_td_error = td_error * mask

        central_chosen_action_qvals = self.central_mixer(central_chosen_action_qvals_agents, batch["state"][:, :-1])
        central_td_error = central_chosen_action_qvals - targets.detach()
        central_loss = ((central_td_error * mask) ** 2).sum() / mask.sum()

        ws = torch.ones_like(td_error) * self.w
        if self.hysteretic_qmix:  # OW-QMIX
            ws = torch.where(td_error < 0, torch.ones_like(td_error), ws)
        else:  # CW-QMIX
            is_max_action = (actions == cur_max_actions[:, :-1]).min(dim=2)[0]
            max_action_qtot = self.target_central_mixer(central_target_max_agent_qvals[:, :-1], batch["state"][:, :-1])
            qtot_larger = targets > max_action_qtot
            ws = torch.where(is_max_action | qtot_larger, torch.ones_like(td_error), ws)
        qmix_loss = (ws.detach() * (masked_td_error ** 2)).sum() / mask.sum()
        return qmix_loss + central_loss, qmix_loss, central_loss, ws


def qmixer_pairs(ours: nn.Module, ref: QMixer, prefix: str) -> list[Pair]:
    """torchrl_vd ``QMixer(hypernet_layers=2)`` <-> reference ``QMixer``."""
    table = []
    for o, r in ((ours.hyper_w1, ref.hyper_w_1), (ours.hyper_w2, ref.hyper_w_final), (ours.hyper_v, ref.V)):
        table += [(o[0].weight, r[0].weight), (o[0].bias, r[0].bias), (o[2].weight, r[2].weight), (o[2].bias, r[2].bias)]
    table += [(ours.hyper_b1.weight, ref.hyper_b_1.weight), (ours.hyper_b1.bias, ref.hyper_b_1.bias)]
    return [(f"{prefix}.{i}", o, lambda attr, r=r: _get(r, attr)) for i, (o, r) in enumerate(table)]


def central_pairs(ours: nn.Module, ref: QMixerCentralFF, prefix: str) -> list[Pair]:
    """torchrl_vd ``CentralQMixer`` <-> reference ``QMixerCentralFF``."""
    table = [(ours.net[i].weight, ref.net[i].weight) for i in (0, 2, 4, 6)]
    table += [(ours.net[i].bias, ref.net[i].bias) for i in (0, 2, 4, 6)]
    table += [(ours.v[i].weight, ref.V[i].weight) for i in (0, 2)] + [(ours.v[i].bias, ref.V[i].bias) for i in (0, 2)]
    return [(f"{prefix}.{i}", o, lambda attr, r=r: _get(r, attr)) for i, (o, r) in enumerate(table)]


def learner_pairs(loss, ref: MaxQLearner, *, target: bool) -> list[Pair]:
    """Every network of a ``WeightedQMixLoss`` (online or target copies) paired with the reference learner's."""
    get = loss.target if target else (lambda name: getattr(loss, name))
    pre = "target_" if target else ""
    r = (lambda name: getattr(ref, f"target_{name}")) if target else (lambda name: getattr(ref, name))
    return (agent_pairs(get("agent_net"), r("mac").agent, pre + "agent")
            + qmixer_pairs(get("mixer"), r("mixer"), pre + "mixer")
            + agent_pairs(get("central_agent"), r("central_mac").agent, pre + "central_agent")
            + central_pairs(get("central_mixer"), r("central_mixer"), pre + "central_mixer"))
