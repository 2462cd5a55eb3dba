"""Test helper: the pymarl side of the reference-equality tests (tests/test_wqmix.py, tests/test_qplex.py,
tests/test_qtran.py).

A minimal re-statement, for testing only, of what the reference learners of oxwhirl/wqmix and
wjh720/QPLEX build on — both are forks of oxwhirl/pymarl (Apache License 2.0; oxwhirl/wqmix ships no
licence file of its own, wjh720/QPLEX ships pymarl's Apache-2.0 LICENSE) — and of pymarl's own QTRAN
(oxwhirl/pymarl @c971afd, Apache-2.0: ``src/modules/mixers/qtran.py`` ``QTranBase`` with
``qtran_arch: qtran_paper``, ``network_size: small``, and ``src/learners/qtran_learner.py``'s
``qtran_base`` loss):

* the agents ``RNNAgent`` (fc1 → GRUCell → fc2) and ``FFAgent`` (fc1 → fc2 → fc3), pymarl
  ``src/modules/agents/rnn_agent.py`` / ``ff_agent.py``;
* ``BasicMAC``'s per-step inputs [o_i, onehot(u_i^{t-1}), onehot(i)] and its unroll over an episode batch
  from a zero hidden state (``src/controllers/basic_controller.py``, ``central_basic_controller.py``);
* the episode batch layout [B, T+1] (``filled``, ``terminated``, ``avail_actions`` zero on padding) and
  the learners' mask ``filled[:, :-1]`` with steps after a termination zeroed.

Plus the bridge to this library: the same episodes as a torchrl_vd [B, T] TensorDict, and the
parameter correspondence between the reference modules and ours (weights copied one way, gradients
compared the other).
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional as F

from torchrl_vd import GRUAgent, MLPAgent

# (our tensor, build(attr) -> the same tensor from the reference's parameters' ``attr``: "data" / "grad")
Pair = tuple[str, torch.Tensor, Callable[[str], torch.Tensor]]


def _get(p: torch.Tensor, attr: str) -> torch.Tensor:
    x = getattr(p, attr)
    return torch.zeros_like(p) if x is None else x


# ---------------------------------------------------------------------------------------------- agents
class RNNAgent(nn.Module):
    def __init__(self, input_shape: int, hidden: int, n_actions: int):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(input_shape, hidden)
        self.rnn = nn.GRUCell(hidden, hidden)
        self.fc2 = nn.Linear(hidden, n_actions)

    def forward(self, inputs, h):
        h = self.rnn(F.relu(self.fc1(inputs)), h.reshape(-1, self.hidden))
        return self.fc2(h), h


class FFAgent(nn.Module):
    def __init__(self, input_shape: int, hidden: int, n_actions: int):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(input_shape, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_actions)

    def forward(self, inputs, h):
        h = F.relu(self.fc2(F.relu(self.fc1(inputs))))
        return self.fc3(h), h


class MAC:
    """pymarl's BasicMAC / CentralBasicMAC forward over a whole episode batch: ``[B, T+1, n, A]``."""

    def __init__(self, agent: nn.Module, n_agents: int, *, last_action: bool, agent_id: bool):
        self.agent, self.n_agents, self.last_action, self.agent_id = agent, n_agents, last_action, agent_id

    def inputs(self, batch: dict, t: int) -> torch.Tensor:
        bs = batch["obs"].shape[0]
        parts = [batch["obs"][:, t]]
        if self.last_action:
            onehot = batch["actions_onehot"]
            parts.append(torch.zeros_like(onehot[:, t]) if t == 0 else onehot[:, t - 1])
        if self.agent_id:
            parts.append(torch.eye(self.n_agents, dtype=batch["obs"].dtype).unsqueeze(0).expand(bs, -1, -1))
        return torch.cat([x.reshape(bs * self.n_agents, -1) for x in parts], dim=1)

    def unroll(self, batch: dict) -> torch.Tensor:
        return self.unroll_hidden(batch)[0]

    def unroll_hidden(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mac_out [B, T+1, n, A], mac.hidden_states stacked [B, T+1, n, H])`` (qtran_learner l.40-49)."""
        bs, T1 = batch["obs"].shape[:2]
        h = batch["obs"].new_zeros(bs * self.n_agents, self.agent.hidden)
        outs, hs = [], []
        for t in range(T1):
            q, h = self.agent(self.inputs(batch, t), h)
            outs.append(q.view(bs, self.n_agents, -1))
            hs.append(h)
        hidden = torch.stack(hs, dim=1)  # [bs*n, T+1, H]
        return torch.stack(outs, dim=1), hidden.reshape(bs, self.n_agents, T1, -1).transpose(1, 2)


def make_mac(kind: str, n_agents: int, n_actions: int, obs_dim: int, hidden: int) -> MAC:
    """``"gru"``: RNNAgent on [o, last action, id]; ``"mlp"``: FFAgent on [o, id]."""
    if kind == "gru":
        return MAC(RNNAgent(obs_dim + n_actions + n_agents, hidden, n_actions), n_agents, last_action=True, agent_id=True)
    return MAC(FFAgent(obs_dim + n_agents, hidden, n_actions), n_agents, last_action=False, agent_id=True)


def make_agent(kind: str, n_agents: int, n_actions: int, obs_dim: int, hidden: int) -> nn.Module:
    """Ours with the architecture of ``make_mac(kind, ...)`` (:func:`agent_pairs` maps the weights):
    ``"gru"``: ``GRUAgent(hidden=(H,))`` on [o, last action, id]; ``"mlp"``: ``MLPAgent(hidden=(H, H))`` on [o, id]."""
    if kind == "gru":
        return GRUAgent(n_agents, n_actions, obs_dim, hidden=(hidden,), agent_id=True, last_action=True)
    return MLPAgent(n_agents, n_actions, obs_dim, hidden=(hidden, hidden), agent_id=True)


def cast_and_perturb_targets(online: list[nn.Module], targets: list[nn.Module], dtype: torch.dtype) -> None:
    """Cast a reference learner's networks to ``dtype`` and move its target copies away from the online ones
    (+ 0.1 N(0, 1) per parameter), so that a loss using the wrong copy shows."""
    with torch.no_grad():
        for m in [*online, *targets]:
            m.to(dtype)
        for m in targets:  # θ̄ ≠ θ
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))


def agent_pairs(ours: nn.Module, ref: nn.Module, prefix: str) -> list[Pair]:
    """torchrl_vd ``GRUAgent(hidden=(H,))`` / ``MLPAgent(hidden=(H, H))`` (shared params) <-> RNNAgent / FFAgent."""
    if isinstance(ref, RNNAgent):
        gru = ours.rnn.gru
        table = [(ours.encoder[0].weight, ref.fc1.weight), (ours.encoder[0].bias, ref.fc1.bias),
                 (gru.weight_ih_l0, ref.rnn.weight_ih), (gru.weight_hh_l0, ref.rnn.weight_hh),
                 (gru.bias_ih_l0, ref.rnn.bias_ih), (gru.bias_hh_l0, ref.rnn.bias_hh),
                 (ours.head.weight, ref.fc2.weight), (ours.head.bias, ref.fc2.bias)]
    else:
        table = [(ours.net[i].weight, fc.weight) for i, fc in ((0, ref.fc1), (2, ref.fc2), (4, ref.fc3))]
        table += [(ours.net[i].bias, fc.bias) for i, fc in ((0, ref.fc1), (2, ref.fc2), (4, ref.fc3))]
    return [(f"{prefix}.{i}", o, lambda attr, r=r: _get(r, attr)) for i, (o, r) in enumerate(table)]


# ----------------------------------------------------------------------------------------------- QTRAN
class QTranBase(nn.Module):
    """pymarl's QTranBase, ``qtran_paper`` architecture, ``network_size: small``."""

    def __init__(self, n_agents: int, n_actions: int, state_dim: int, hidden: int, embed_dim: int):
        super().__init__()
        self.n_agents, self.n_actions, self.state_dim = n_agents, n_actions, state_dim
        ae_input = hidden + n_actions
        self.Q = nn.Sequential(nn.Linear(state_dim + ae_input, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim),
                               nn.ReLU(), nn.Linear(embed_dim, 1))
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim), nn.ReLU(),
                               nn.Linear(embed_dim, 1))
        self.action_encoding = nn.Sequential(nn.Linear(ae_input, ae_input), nn.ReLU(), nn.Linear(ae_input, ae_input))

    def forward(self, states, actions_onehot, hidden_states):
        """``states [bs, ts, S]``, ``actions_onehot [bs, ts, n, A]``, ``hidden_states [bs, ts, n, H]`` -> (Q, V) [bs*ts, 1]."""
        bs, ts = states.shape[:2]
        states = states.reshape(bs * ts, self.state_dim)
        actions = actions_onehot.reshape(bs * ts, self.n_agents, self.n_actions)
        hidden_states = hidden_states.reshape(bs * ts, self.n_agents, -1)
        x = torch.cat([hidden_states, actions], dim=2)
        enc = self.action_encoding(x.reshape(bs * ts * self.n_agents, -1)).reshape(bs * ts, self.n_agents, -1)
        enc = enc.sum(dim=1)  # sum across agents
        return self.Q(torch.cat([states, enc], dim=1)), self.V(states)


class QTranLearner:
    """pymarl's QTRAN learner (``qtran_base``): online and (deep-copied) target MAC and mixer."""

    def __init__(self, mac: MAC, mixer: QTranBase, *, gamma: float, double_q: bool = True, opt_loss: float = 1.0,
                 nopt_min_loss: float = 0.1):
        import copy

        self.mac, self.mixer = mac, mixer
        self.target_mac, self.target_mixer = copy.deepcopy(mac), copy.deepcopy(mixer)
        self.gamma, self.double_q, self.opt_loss, self.nopt_min_loss = gamma, double_q, opt_loss, nopt_min_loss

    def loss(self, batch: dict):
        """``(loss, td_loss, opt_loss, nopt_loss)`` (QLearner.train l.33-136, mixer qtran_base)."""
        rewards, actions, terminated, mask, avail_actions = learner_inputs(batch)
        bs, T1 = batch["obs"].shape[:2]
        n, A = self.mixer.n_agents, self.mixer.n_actions

        mac_out, mac_hidden_states = self.mac.unroll_hidden(batch)
        chosen_action_qvals = torch.gather(mac_out[:, :-1], dim=3, index=actions).squeeze(3)
        target_mac_out, target_mac_hidden_states = self.target_mac.unroll_hidden(batch)
        target_mac_out[avail_actions == 0] = -9999999
        mac_out_maxs = mac_out.clone()
        mac_out_maxs[avail_actions == 0] = -9999999
        target_max_actions = target_mac_out.max(dim=3, keepdim=True)[1]
        max_actions_qvals, max_actions_current = mac_out_maxs[:, :].max(dim=3, keepdim=True)

        # -- TD loss --
        joint_qs, vs = self.mixer(batch["state"][:, :-1], batch["actions_onehot"][:, :-1], mac_hidden_states[:, :-1])
        zeros = mac_out.new_zeros(bs, T1, n, A)
        max_actions_current_onehot = zeros.scatter(3, max_actions_current, 1)
        max_actions_onehot = max_actions_current_onehot if self.double_q else zeros.scatter(3, target_max_actions, 1)
        target_joint_qs, _ = self.target_mixer(batch["state"][:, 1:], max_actions_onehot[:, 1:],
                                               target_mac_hidden_states[:, 1:])
        td_targets = rewards.reshape(-1, 1) + self.gamma * (1 - terminated.reshape(-1, 1)) * target_joint_qs
        td_error = joint_qs - td_targets.detach()
        td_loss = ((td_error * mask.reshape(-1, 1)) ** 2).sum() / mask.sum()
        # -- Opt loss --
        max_joint_qs, _ = self.mixer(batch["state"][:, :-1], max_actions_current_onehot[:, :-1], mac_hidden_states[:, :-1])
        opt_error = max_actions_qvals[:, :-1].sum(dim=2).reshape(-1, 1) - max_joint_qs.detach() + vs
        opt_loss = ((opt_error * mask.reshape(-1, 1)) ** 2).sum() / mask.sum()
        # -- Nopt loss --
        nopt_values = chosen_action_qvals.sum(dim=2).reshape(-1, 1) - joint_qs.detach() + vs
        nopt_error = nopt_values.clamp(max=0)
        nopt_loss = ((nopt_error * mask.reshape(-1, 1)) ** 2).sum() / mask.sum()

        loss = td_loss + self.opt_loss * opt_loss + self.nopt_min_loss * nopt_loss
        return loss, td_loss, opt_loss, nopt_loss


def qtran_pairs(loss, ref: QTranLearner, *, target: bool) -> list[Pair]:
    """``QTranLoss`` (agents, ``QTranJointQ(agent_id=False, encoder_dim=H + A)``, ``QTranV``) <-> the learner."""
    get = loss.target if target else (lambda name: getattr(loss, name))
    pre = "target_" if target else ""
    mac, mixer = (ref.target_mac, ref.target_mixer) if target else (ref.mac, ref.mixer)
    jq = get("joint_q")
    table = [(jq.encoder[i], mixer.action_encoding[i]) for i in (0, 2)] + [(jq.head[i], mixer.Q[i]) for i in (0, 2, 4)]
    if not target:  # V has no target copy in ours; pymarl's target V is computed and unused
        table += [(loss.v_net.net[i], mixer.V[i]) for i in (0, 2, 4)]
    pairs = [(o.weight, r.weight) for o, r in table] + [(o.bias, r.bias) for o, r in table]
    return (agent_pairs(get("agent_net"), mac.agent, pre + "agent")
            + [(f"{pre}qtran.{i}", o, lambda attr, r=r: _get(r, attr)) for i, (o, r) in enumerate(pairs)])


# --------------------------------------------------------------------------------------------- batches
def episode_batch(B: int, T: int, n: int, A: int, F_: int, S: int, *, seed: int, dtype=torch.float32) -> dict:
    """Random padded episodes in pymarl's layout [B, T+1]: lengths 1..T, terminated or cut at T.

    Step L (one past the last filled step) holds the final observation, state and legal actions, as
    pymarl's runner stores them; later steps are zero (``avail_actions`` too).
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T  # one full-length episode
    obs = torch.randn(B, T + 1, n, F_, generator=g, dtype=dtype)
    state = torch.randn(B, T + 1, S, generator=g, dtype=dtype)
    avail = torch.rand(B, T + 1, n, A, generator=g) > 0.3
    avail[torch.arange(B), :, :, torch.randint(A, (B,), generator=g)] = True  # at least one legal action
    logits = torch.rand(B, T + 1, n, A, generator=g).masked_fill(~avail, -1.0)
    actions = logits.argmax(-1, keepdim=True)  # [B, T+1, n, 1]
    reward = torch.randn(B, T + 1, 1, generator=g, dtype=dtype)
    t = torch.arange(T + 1).expand(B, T + 1)
    filled = (t < lengths[:, None]).unsqueeze(-1)  # [B, T+1, 1]
    terminal = (torch.rand(B, generator=g) < 0.7) | (lengths < T)  # full-length episodes may be cut (not terminated)
    terminated = ((t == lengths[:, None] - 1) & terminal[:, None]).unsqueeze(-1)  # [B, T+1, 1]
    recorded = (t <= lengths[:, None])[..., None, None]  # [B, T+1, 1, 1]
    obs, avail = obs * recorded, avail & recorded
    state = state * recorded[..., 0]
    actions = actions.masked_fill(~filled.unsqueeze(-1), 0)
    reward = reward * filled
    return {
        "obs": obs, "state": state, "avail_actions": avail.to(torch.int64), "actions": actions,
        "actions_onehot": F.one_hot(actions.squeeze(-1), A).to(dtype), "reward": reward,
        "terminated": terminated.to(dtype), "filled": filled.to(dtype), "lengths": lengths,
    }


def learner_mask(batch: dict) -> torch.Tensor:
    """The learners' ``mask``: filled[:, :-1] with every step after a termination zeroed [B, T, 1]."""
    terminated = batch["terminated"][:, :-1]
    mask = batch["filled"][:, :-1].clone()
    mask[:, 1:] = mask[:, 1:] * (1 - terminated[:, :-1])
    return mask


def learner_inputs(batch: dict) -> tuple[torch.Tensor, ...]:
    """The first lines of every learner's ``train``: ``(rewards, actions, terminated)`` [B, T, ·] (the last
    step dropped), the learners' ``mask`` [B, T, 1] and ``avail_actions`` [B, T+1, n, A]."""
    rewards = batch["reward"][:, :-1]
    actions = batch["actions"][:, :-1]
    terminated = batch["terminated"][:, :-1]
    return rewards, actions, terminated, learner_mask(batch), batch["avail_actions"]


def to_tensordict(batch: dict) -> TensorDict:
    """The same episodes as a torchrl_vd sequence batch [B, T] (torchrl_vd.keys names, ``mask`` = the learners' mask)."""
    B, T1 = batch["obs"].shape[:2]
    T = T1 - 1
    action = batch["actions"][:, :T, :, 0]  # [B, T, n]
    onehot = batch["actions_onehot"]  # [B, T+1, n, A]
    last = torch.cat((torch.zeros_like(onehot[:, :1]), onehot[:, : T - 1]), dim=1)  # [B, T, n, A] u^{t-1}
    terminated = batch["terminated"][:, :T].bool()  # [B, T, 1]
    t = torch.arange(T).expand(B, T)
    done = terminated | (t == batch["lengths"][:, None] - 1).unsqueeze(-1)  # [B, T, 1]
    is_init = (t == 0).unsqueeze(-1)  # [B, T, 1]
    avail = batch["avail_actions"].bool()
    return TensorDict(
        {
            "agents": {"observation": batch["obs"][:, :T], "action": action, "action_mask": avail[:, :T],
                       "last_action": last},
            "state": batch["state"][:, :T],
            "is_init": is_init,
            "mask": learner_mask(batch)[..., 0].bool(),  # [B, T]
            "next": {
                "agents": {"observation": batch["obs"][:, 1:], "action_mask": avail[:, 1:], "last_action": onehot[:, :T]},
                "state": batch["state"][:, 1:],
                "reward": batch["reward"][:, :T],
                "done": done,
                "terminated": terminated,
            },
        },
        [B, T],
    )


def copy_into(pairs: list[Pair]) -> None:
    """Write the reference's weights into ours (in place, so target copies bound to tensors see them)."""
    with torch.no_grad():
        for _, ours, build in pairs:
            ours.copy_(build("data"))


def max_grad_gap(pairs: list[Pair]) -> float:
    """max |∂L_ours/∂θ − ∂L_ref/∂θ| over the paired online parameters."""
    return max((_get(ours, "grad") - build("grad")).abs().max().item() for _, ours, build in pairs)
