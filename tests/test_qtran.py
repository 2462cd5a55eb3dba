"""QTRAN / QTRAN-alt: each loss term against a hand computation, the detaching of Q_jt, masks, dead
agents, the counterfactual network, IGM, and the published outcome of the QTRAN matrix game."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from tensordict import TensorDict

import torchrl_vd as vd
from torchrl_vd import MLPAgent, QTranJointQ, QTranLoss, QTranV
from torchrl_vd.envs.matrix import NAMED_PAYOFFS
from torchrl_vd.testing import identity_agent, random_batch
from torchrl_vd.objectives.common import total_loss
from torchrl_vd.train.algos import algorithms

# ---------------------------------------------------------------------------------------------------
# Fixed networks for hand computations: 2 agents, 2 actions.
#   utilities (= observations, identity agent): Q_1 = [1, 0], Q_2 = [0.5, 2]  -> a* = (0, 1)
#   Q_jt (hand-set weights) = T = [[1, 4], [-2, 5]],  V = 0.5
# ---------------------------------------------------------------------------------------------------
UTIL = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
T = torch.tensor([[1.0, 4.0], [-2.0, 5.0]])
V0 = 0.5
ACTIONS = [[0, 0], [1, 1], [0, 1], [1, 0]]
REWARDS = [1.0, 2.0, 3.0, 4.0]
TERMINATED = [True, False, True, False]
GAMMA = 0.5


def table_joint_q(table):
    """A QTranJointQ whose output is ``table[a_1, a_2]`` for any features and state (weights set by hand).

    Encoder unit k = 2i + u fires iff agent i took u (ReLU(onehot(u) + onehot(i) − 1)); the sum over
    agents is the indicator of the joint action; head unit j = 2 a_1 + a_2 fires iff both indicators
    are on; the output layer reads ``table``.
    """
    q = QTranJointQ(2, 2, state_shape=(1,), feature_dim=2, embed_dim=4)
    with torch.no_grad():
        for p in q.parameters():
            p.zero_()
        enc1, enc2 = q.encoder[0], q.encoder[2]  # input [h (2), onehot(u) (2), onehot(i) (2)]
        for i in range(2):
            for u in range(2):
                enc1.weight[2 * i + u, 2 + u] = 1.0
                enc1.weight[2 * i + u, 4 + i] = 1.0
                enc1.bias[2 * i + u] = -1.0
        enc2.weight.copy_(torch.eye(4))
        h1, h2, out = q.head[0], q.head[2], q.head[4]  # head input [z (1), Σ_i enc (4)]
        for a1 in range(2):
            for a2 in range(2):
                h1.weight[2 * a1 + a2, 1 + a1] = 1.0  # agent 1 took a1
                h1.weight[2 * a1 + a2, 1 + 2 + a2] = 1.0  # agent 2 took a2
                h1.bias[2 * a1 + a2] = -1.0
        h2.weight.copy_(torch.eye(4))
        out.weight.copy_(table.reshape(1, 4))
    return q


def const_v(v0=V0):
    v = QTranV(state_shape=(1,), embed_dim=2)
    with torch.no_grad():
        for p in v.parameters():
            p.zero_()
        v.net[4].bias.fill_(v0)
    return v


def make_loss(variant="base", **kwargs):
    loss = QTranLoss(identity_agent(), table_joint_q(T), const_v(), variant=variant, **kwargs)
    loss.make_value_estimator(gamma=GAMMA)
    return loss


def hand_batch(actions=ACTIONS, rewards=REWARDS, terminated=TERMINATED, mask=None, next_mask=None, alive=None):
    B = len(actions)
    obs = UTIL.expand(B, 2, 2).clone()  # [B, n, F]: utilities Q_1 = [1, 0], Q_2 = [0.5, 2]
    agents = {"observation": obs, "action": torch.tensor(actions)}
    next_agents = {"observation": obs.clone()}
    if mask is not None:
        agents["action_mask"] = mask
    if next_mask is not None:
        next_agents["action_mask"] = next_mask
    if alive is not None:
        agents["alive"] = alive
    return TensorDict(
        {
            "agents": agents,
            "state": torch.ones(B, 1),
            "next": {
                "agents": next_agents,
                "state": torch.ones(B, 1),
                "reward": torch.tensor(rewards).reshape(B, 1),
                "done": torch.tensor(terminated).reshape(B, 1),
                "terminated": torch.tensor(terminated).reshape(B, 1),
            },
        },
        [B],
    )


def test_hand_set_joint_q_is_the_table():
    q = table_joint_q(T)
    joint = torch.tensor(ACTIONS).unsqueeze(0)  # [1, K=4, n]
    out = q(torch.ones(1, 1), UTIL.unsqueeze(0), joint).squeeze(-1)  # [1, 4]
    assert out[0].tolist() == pytest.approx([T[a1, a2].item() for a1, a2 in ACTIONS])
    assert const_v()(torch.ones(3, 1)).squeeze(-1).tolist() == pytest.approx([V0] * 3)


# --------------------------------------------------------------------------------------- QTRAN-base
def test_base_terms_equal_hand_computation():
    loss = make_loss("base")
    td = hand_batch()
    out = loss(td)
    # L_td: a*' = online argmax of next utilities = (0, 1), target Q_jt(a*') = T[0, 1] = 4
    #   y = r + γ(1 − term)·4 = [1, 2 + 2, 3, 4 + 2] = [1, 4, 3, 6]; Q_jt(a) = [1, 5, 4, −2]
    #   (Q_jt − y)² = [0, 1, 1, 64] -> mean 16.5
    assert out["loss_td"].item() == pytest.approx(16.5)
    assert td["td_error"].tolist() == pytest.approx([0.0, 1.0, 1.0, 8.0])
    # L_opt at a* = (0, 1): (Q_1(0) + Q_2(1) − Q_jt(0, 1) + V)² = (1 + 2 − 4 + 0.5)² = 0.25
    assert out["loss_opt"].item() == pytest.approx(0.25)
    # L_nopt: m = Σ Q_i(a_i) − Q_jt(a) + V per taken joint action
    #   (0,0): 1.5 − 1 + 0.5 = 1.0 -> 0     (1,1): 2 − 5 + 0.5 = −2.5 -> 6.25
    #   (0,1): 3 − 4 + 0.5 = −0.5 -> 0.25   (1,0): 0.5 + 2 + 0.5 = 3.0 -> 0    mean 1.625
    assert out["loss_nopt"].item() == pytest.approx(0.1 * 1.625)  # reported weighted: λ_nopt · L_nopt
    assert total_loss(out).item() == pytest.approx(16.5 + 1.0 * 0.25 + 0.1 * 1.625)


@pytest.mark.parametrize("i, m, expected", [(0, 1.0, 0.0), (1, -2.5, 6.25), (2, -0.5, 0.25), (3, 3.0, 0.0)])
def test_base_nopt_clamps_at_zero(i, m, expected):
    """min(0, m)²: m > 0 costs nothing, m < 0 costs m²."""
    out = make_loss("base")(hand_batch([ACTIONS[i]], [REWARDS[i]], [TERMINATED[i]]))
    assert out["loss_nopt"].item() / 0.1 == pytest.approx(expected) == pytest.approx(min(0.0, m) ** 2)


@pytest.mark.parametrize(
    "double_q, expected",
    [
        # target agents see swapped utilities (agent 1 [0, 1], agent 2 [2, 0.5]); target Q_jt = T + 1
        # double: online a*' = (0, 1) -> T̄ = 5 -> y = [1, 4.5, 3, 6.5] -> [0, .25, 1, 72.25] -> 18.375
        (True, 18.375),
        # plain: target a*' = (1, 0) -> T̄ = −1 -> y = [1, 1.5, 3, 3.5] -> [0, 12.25, 1, 30.25] -> 10.875
        (False, 10.875),
    ],
)
def test_td_target_uses_target_joint_q_and_double_q_selection(double_q, expected):
    loss = make_loss("base", double_q=double_q)
    with torch.no_grad():
        loss.target_agent_net_params["net", "0", "weight"].copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        loss.target_joint_q_params["head", "4", "bias"].add_(1.0)
    assert loss(hand_batch())["loss_td"].item() == pytest.approx(expected)


# ---------------------------------------------------------------------------------------- QTRAN-alt
def test_alt_nopt_min_equals_hand_computation():
    loss = make_loss("alt")
    per_sample = [loss(hand_batch([a], [r], [t]))["loss_nopt"].item() / loss.lambda_nopt
                  for a, r, t in zip(ACTIONS, REWARDS, TERMINATED)]
    # D_i(u) = Q_i(u) + Q_−i(a_−i) − T[u, a_−i] + V; per sample (1/2) Σ_i (min_u D_i(u))²
    # (0,0): agent 1 D = [1.0, 3.0] -> min 1.0 (> 0: still penalised, no clamp); agent 2 [1.0, −0.5] -> 0.25
    # (1,1): agent 1 [−0.5, −2.5] -> 6.25;  agent 2 [3.0, −2.5] -> 6.25
    # (0,1): agent 1 [−0.5, −2.5] -> 6.25;  agent 2 [1.0, −0.5] -> 0.25
    # (1,0): agent 1 [1.0, 3.0] -> 1.0;     agent 2 [3.0, −2.5] -> 6.25
    assert per_sample == pytest.approx([0.625, 6.25, 3.25, 3.625])
    out = loss(hand_batch())
    assert out["loss_nopt"].item() == pytest.approx(0.1 * 13.75 / 4)
    assert out["loss_td"].item() == pytest.approx(16.5)  # L_td and L_opt are QTRAN-base's
    assert out["loss_opt"].item() == pytest.approx(0.25)
    assert total_loss(out).item() == pytest.approx(16.5 + 0.25 + 0.1 * 13.75 / 4)


def test_counterfactual_network_equals_explicit_joint_actions():
    torch.manual_seed(0)
    n, A, B = 3, 4, 5
    q = QTranJointQ(n, A, state_shape=(6,), feature_dim=7, embed_dim=16)
    state, h, act = torch.randn(B, 6), torch.randn(B, n, 7), torch.randint(A, (B, n))
    alive = torch.tensor([[True, False, True]]).expand(B, n)
    cf = act[:, None, None, :].repeat(1, n, A, 1)  # [B, n, A, n]: agent i's action := u
    for i in range(n):
        cf[:, i, :, i] = torch.arange(A)
    for a in (None, alive):
        expected = q(state, h, cf, a).squeeze(-1)  # [B, n, A]
        assert torch.allclose(q.counterfactual(state, h, act, a), expected, atol=1e-5)
    # a dead agent's action does not change Q_jt
    out = q.counterfactual(state, h, act, alive)
    assert torch.allclose(out[:, 1], out[:, 1, :1].expand(B, A), atol=1e-5)


@pytest.mark.parametrize("agent_id", [True, False])
def test_joint_q_equals_the_concatenated_input_networks(agent_id):
    """The split first layers (linear-in-n cost) give the values of pymarl's layout: encoder on
    [h_i, onehot(u), onehot(i)] and head on [z, Σ_i enc_i], written out here by hand."""
    torch.manual_seed(1)
    n, A, H, S, B = 4, 3, 5, 6, 7
    q = QTranJointQ(n, A, state_shape=(S,), feature_dim=H, embed_dim=8, agent_id=agent_id)
    state, h, act = torch.randn(B, S), torch.randn(B, n, H), torch.randint(A, (B, n))
    parts = [h, torch.eye(A)[act]] + ([torch.eye(n).expand(B, n, n)] if agent_id else [])
    enc = q.encoder(torch.cat(parts, -1))  # [B, n, D]: each agent's taken action
    expected = q.head(torch.cat((state, enc.sum(1)), -1))  # [B, 1]
    assert torch.allclose(q(state, h, act), expected, atol=1e-5)
    all_u = torch.cat([h.unsqueeze(2).expand(B, n, A, H), torch.eye(A).expand(B, n, A, A)]
                      + ([torch.eye(n).unsqueeze(1).expand(B, n, A, n)] if agent_id else []), -1)
    assert torch.allclose(q.encode(h), q.encoder(all_u), atol=1e-5)  # [B, n, A, D]


# --------------------------------------------------------------------------- masks and dead agents
@pytest.mark.parametrize("variant, nopt", [("base", 0.0), ("alt", 1.0)])
def test_greedy_actions_honour_action_masks(variant, nopt):
    mask = torch.tensor([[[True, True], [True, False]]])  # agent 2 may not take action 1
    td = hand_batch([[0, 0]], [1.0], [False], mask=mask, next_mask=mask.clone())
    out = make_loss(variant)(td)
    # a*' = (0, 0) within the mask -> y = 1 + 0.5·T[0, 0] = 1.5; Q_jt(0, 0) = 1 -> 0.25  (unmasked: 4.0)
    assert out["loss_td"].item() == pytest.approx(0.25)
    # a* = (0, 0): (1 + 0.5 − 1 + 0.5)² = 1.0  (unmasked a* = (0, 1): 0.25)
    assert out["loss_opt"].item() == pytest.approx(1.0)
    # base m = 1.0 -> 0; alt: agent 1 D = [1.0, 3.0] -> 1.0, agent 2 D = [1.0, (−0.5 illegal)] -> 1.0
    assert out["loss_nopt"].item() == pytest.approx(0.1 * nopt)


@pytest.mark.parametrize("variant", ["base", "alt"])
def test_dead_agents_contribute_nothing(variant):
    """A dead agent's stored action and observation change no loss term and no gradient."""
    alive = torch.tensor([[True, False]])
    outs, grads = [], []
    for a2, obs2 in ((0, [0.5, 2.0]), (1, [3.0, -1.0])):
        loss = make_loss(variant)
        td = hand_batch([[1, a2]], [1.0], [True], alive=alive)
        td["agents", "observation"][0, 1] = torch.tensor(obs2)
        out = loss(td)
        total_loss(out).backward()
        outs.append(torch.stack([out[k] for k in ("loss_td", "loss_opt", "loss_nopt")]))
        grads.append(torch.cat([p.grad.flatten() for p in loss.parameters() if p.grad is not None]))
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    # by hand (agent 2 counts 0): Q_jt = 0 without agent 2's encoding; a*_1 = 0
    # L_opt = (Q_1(0) − 0 + V)² = 1.5²; base L_nopt: m = Q_1(1) − 0 + V = 0.5 > 0 -> 0;
    # alt: agent 1 D = [1.5, 0.5] -> 0.25, the dead agent's term is 0 -> (0.25 + 0) / 2
    assert outs[0][1].item() == pytest.approx(2.25)
    assert outs[0][2].item() == pytest.approx(0.1 * {"base": 0.0, "alt": 0.125}[variant])  # λ_nopt · L_nopt


# ----------------------------------------------------------------------------------------- IGM
def test_joint_q_values_and_check_igm_on_hand_networks():
    loss = make_loss("base")
    td = hand_batch()
    report = vd.check_igm(loss, td)
    assert torch.allclose(report.joint_q, T.expand(4, 2, 2))  # Q_jt of every joint action, every sample
    assert report.local_argmax.tolist() == [[0, 1]] * 4  # agents' greedy joint action a*
    assert report.joint_argmax.tolist() == [[1, 1]] * 4  # Q_jt's argmax: IGM fails here by 5 − 4
    assert not report.holds.any() and report.gap.tolist() == pytest.approx([1.0] * 4)
    per_sample = loss.joint_q_values(td, torch.tensor(ACTIONS).expand(4, 4, 2))  # [*B, K, n] -> [*B, K]
    assert per_sample[0].tolist() == pytest.approx([1.0, 5.0, 4.0, -2.0])


def test_igm_gap_of_an_evaluation_counts_the_violating_states():
    """The evaluation's IGM gap (``igm_violation_rate``, ``igm_value_gap`` in metrics.csv) on a rollout
    [N=2, T=2] with the hand networks (Q_jt = T = [[1, 4], [−2, 5]]): utilities UTIL give local (0, 1),
    Q_jt 4 < max 5 (a violation, gap 1); utilities OTHER give local (1, 1) = Q_jt's argmax (holds). Valid
    states: env 0 [UTIL, OTHER], env 1 [OTHER] (its second step lies after its episode's end and counts
    for nothing, though it violates): rate 1/3, gap 1/3."""
    from torchrl_vd.train.evaluation import igm_gap

    other = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    obs = torch.stack((torch.stack((UTIL, other)), torch.stack((other, UTIL))))  # [N=2, T=2, n, F]
    roll = TensorDict({"agents": {"observation": obs}, "state": torch.ones(2, 2, 1)}, [2, 2])
    valid = torch.tensor([[True, True], [True, False]])
    out = igm_gap(make_loss("base", features="obs"), roll, valid)
    assert out == pytest.approx({"igm_violation_rate": 1 / 3, "igm_value_gap": 1 / 3})
    no_joint_value = type("NoJoint", (), {"local_q_values": lambda self, td: torch.zeros(2, 2, 2, 2),
                                          "joint_q_values": lambda self, td, a: (_ for _ in ()).throw(NotImplementedError)})
    assert all(math.isnan(v) for v in igm_gap(no_joint_value(), roll, valid).values())


@pytest.mark.parametrize("mixer", ["vdn", "qmix"])
def test_monotonic_mixers_log_no_igm_violation(mixer):
    """VDN and QMIX: ∂Q_tot/∂Q_i ≥ 0, so the local greedy actions attain max Q_tot on every state (IGM; Rashid
    et al. 2018, Eq. 4-5): the evaluation's violation rate is 0 and its value gap 0 to float rounding, on 48
    random states with action masks (3 agents, 4 actions: all 64 joint actions enumerated)."""
    from torchrl_vd.train.evaluation import igm_gap

    torch.manual_seed(0)
    td = random_batch(n_agents=3, n_actions=4, obs_dim=5, batch=(8, 6), state_dim=7, action_mask=True)
    net = vd.VDNMixer(3) if mixer == "vdn" else vd.QMixer(3, (7,))
    out = igm_gap(vd.MixingQLoss(MLPAgent(3, 4, 5), net), td, torch.ones(8, 6, dtype=torch.bool))
    assert out["igm_violation_rate"] == 0.0 and out["igm_value_gap"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------- detaching
# (L_opt, L_nopt) of the networks and batch below, seed 0: measured on CPU (float32, repeated runs agree bitwise),
# rounded to 6 digits; rel 1e-5 leaves room for another BLAS's summation order only. L_opt is the same term in both
# variants (only L_nopt differs), and λ_opt, λ_nopt weight the terms without changing them.
OPT_NOPT = {
    ("base", "mlp", "obs"): (0.534154, 0.314864), ("base", "mlp", "utilities"): (0.908071, 0.163273),
    ("base", "gru", "obs"): (0.371185, 0.0808937), ("base", "gru", "utilities"): (0.193919, 0.221852),
    ("alt", "mlp", "obs"): (0.534154, 0.443685), ("alt", "mlp", "utilities"): (0.908071, 0.322075),
    ("alt", "gru", "obs"): (0.371185, 0.167462), ("alt", "gru", "utilities"): (0.193919, 0.360720),
}


@pytest.mark.parametrize("variant", ["base", "alt"])
@pytest.mark.parametrize("agent_kind, features", [("mlp", "obs"), ("mlp", "utilities"), ("gru", "obs"), ("gru", "utilities")])
def test_opt_and_nopt_never_move_joint_q(variant, agent_kind, features):
    """Seed's parameter split: ∂L_opt/∂θ^q = ∂L_nopt/∂θ^q = 0 (Q_jt detached there), ∂L_td/∂θ_i =
    ∂L_td/∂θ^v = 0 (features detached) — for MLP and recurrent agents (sequence batches [B, T]),
    both feature choices, with action masks."""
    torch.manual_seed(0)
    agent = MLPAgent(3, 4, 5, hidden=(8,)) if agent_kind == "mlp" else vd.GRUAgent(3, 4, 5, hidden=(8,))
    joint_q = QTranJointQ(3, 4, (15,), QTranLoss.feature_dim(agent, features), embed_dim=8)
    loss = QTranLoss(agent, joint_q, QTranV((15,), embed_dim=8), variant=variant, features=features)
    td = random_batch(n_agents=3, n_actions=4, obs_dim=5, batch=32 if agent_kind == "mlp" else (4, 8), action_mask=True)
    groups = {"agent": list(agent.parameters()), "joint_q": list(joint_q.parameters()), "v": list(loss.v_net.parameters())}

    def grads(lambda_opt, lambda_nopt):
        loss.lambda_opt, loss.lambda_nopt = 1.0, 1.0
        terms = tuple(loss(td)[k].item() for k in ("loss_opt", "loss_nopt"))  # unweighted (λ = 1)
        assert terms == pytest.approx(OPT_NOPT[variant, agent_kind, features], rel=1e-5)
        loss.lambda_opt, loss.lambda_nopt = lambda_opt, lambda_nopt
        out = loss(td)
        loss.zero_grad(set_to_none=True)
        total_loss(out).backward()
        return {k: [p.grad for p in ps] for k, ps in groups.items()}

    def moved(g):
        return {k: any(x is not None and x.abs().sum() > 0 for x in gs) for k, gs in g.items()}

    td_only = grads(0.0, 0.0)
    assert moved(td_only) == {"agent": False, "joint_q": True, "v": False}  # L_td moves θ^q only
    for with_reg in (grads(1.0, 0.0), grads(0.0, 1.0)):  # + L_opt, + L_nopt
        assert moved(with_reg) == {"agent": True, "joint_q": True, "v": True}
        assert all(torch.equal(a, b) for a, b in zip(td_only["joint_q"], with_reg["joint_q"]))  # not θ^q


# ---------------------------------------------------------------------------------- registration
def test_registered_builders_size_networks_from_the_env():
    specs = algorithms()
    info = vd.describe_env(vd.make_env("matrix/qtran", num_envs=2))
    for algo, variant in (("qtran", "base"), ("qtran-alt", "alt")):
        cfg = vd.TrainConfig(algo=algo, env="matrix/qtran", mixer_kwargs={"embed_dim": 16},
                             loss_kwargs={"lambda_nopt": 0.2})
        loss = specs[algo].parts(cfg, info).loss_module
        assert (loss.variant, loss.lambda_opt, loss.lambda_nopt) == (variant, 1.0, 0.2)
        assert (loss.joint_q.embed_dim, loss.v_net.embed_dim, loss.joint_q.n_actions) == (16, 16, 3)
    with pytest.raises(ValueError, match="Unknown qtran loss option 'variant'.*lambda_nopt"):  # the algo names it
        vd.TrainConfig(algo="qtran", loss_kwargs={"variant": "alt"})


# ----------------------------------------------------------------------------- the matrix game
PAYOFF = torch.tensor(NAMED_PAYOFFS["qtran"], dtype=torch.float32)
# Uniform exploration (ε = 1 throughout, as for the QTRAN paper's matrix game: Son et al. 2019, Table 1), one-step
# game so the TD target is r.
MATRIX = dict(env="matrix/qtran", num_envs=256, frames_per_batch=256, frames=256 * 50, updates_per_batch=20,
              batch_size=256, lr=2e-3, eps_start=1.0, eps_end=1.0, target_update=100, hidden=(32,),
              eval_episodes=4, progress=False)


# QTRAN's Q_jt reads the agents' observations here (features="obs"). Seeds 0-4 of this setting
# (benchmarks/bench_qtran_features.py, docs/PRESETS.md): features="obs" solves 5/5 for QTRAN and QTRAN-alt; the
# default hidden features (pymarl's, L_td training the agents) 4/5 (QTRAN; seed 0 ends at (C, C) with IGM
# violated) and 3/5 (QTRAN-alt; seeds 0 and 4 miss). test_default_hidden_features_in_most_seeds holds those.
MATRIX_QTRAN = {"loss_kwargs": {"features": "obs"}}


def train_matrix(algo, seed, out_dir, extra=None):
    """Train on the QTRAN game; return (greedy joint action, its payoff, max |Q − payoff|, IGM report).
    ``extra``: TrainConfig fields (default: QTRAN's Q_jt on observations, MATRIX_QTRAN)."""
    extra = (MATRIX_QTRAN if algo.startswith("qtran") else {}) if extra is None else extra
    result = vd.train(vd.TrainConfig(algo=algo, seed=seed, out_dir=str(out_dir), **MATRIX, **extra))
    report = vd.check_igm(result.loss_module, result.env.reset()[:1])
    greedy = tuple(report.local_argmax[0].tolist())
    assert result.summary["final_eval_return"] == pytest.approx(PAYOFF[greedy].item())  # the greedy policy
    # the run's own IGM gap: the game has one state, so the evaluation's rate is check_igm's verdict there
    assert result.summary["final_igm_violation_rate"] == float(not report.holds[0])
    assert result.summary["final_igm_value_gap"] == pytest.approx(report.gap[0].item(), rel=1e-5, abs=1e-6)
    return greedy, PAYOFF[greedy].item(), (report.joint_q[0] - PAYOFF).abs().max().item(), report


def check_qtran_solves(algo, seeds, tmp_path, min_success, extra=None):
    results = [train_matrix(algo, s, tmp_path / f"{algo}-{s}", extra) for s in seeds]
    summary = [(g, p, round(e, 3)) for g, p, e, _ in results]
    solved = [p == 8.0 and e < 0.5 and bool(r.holds.all()) for _, p, e, r in results]
    print(f"{algo}: (greedy, payoff, max|Q_jt − payoff|) per seed = {summary}")  # pytest -s / -rP
    assert sum(solved) >= min_success, f"{algo}: (greedy, payoff, max|Q_jt − payoff|) per seed = {summary}"


@pytest.mark.parametrize("algo", ["qtran", "qtran-alt"])
def test_qtran_solves_the_matrix_game(algo, tmp_path):
    """Greedy (A, A) = 8, Q_jt reproduces the payoff (< 0.5 per entry) and IGM holds."""
    check_qtran_solves(algo, [0], tmp_path, min_success=1)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["qtran", "qtran-alt"])
def test_qtran_solves_the_matrix_game_in_most_seeds(algo, tmp_path):
    check_qtran_solves(algo, range(5), tmp_path, min_success=4)


@pytest.mark.slow
@pytest.mark.parametrize("algo, min_success", [("qtran", 4), ("qtran-alt", 3)])
def test_default_hidden_features_in_most_seeds(algo, min_success, tmp_path):
    """The reference-faithful default (Q_jt on the agents' hidden features, pymarl) on seeds 0-4: as measured."""
    check_qtran_solves(algo, range(5), tmp_path, min_success=min_success, extra={})


@pytest.mark.parametrize("algo", ["vdn", "qmix"])
def test_vdn_and_qmix_fail_the_matrix_game(algo, tmp_path):
    """As published: monotonic decompositions settle in the {B, C}² block (greedy payoff 0)."""
    greedy, payoff, _, report = train_matrix(algo, 0, tmp_path / algo)
    assert payoff == 0.0 and 0 not in greedy
    assert bool(report.holds.all())  # monotonic: IGM by construction (train_matrix: the run logged rate 0 too)
    if algo == "vdn":  # the least-squares additive fit: row mean + column mean − grand mean
        expected = PAYOFF.mean(1, keepdim=True) + PAYOFF.mean(0, keepdim=True) - PAYOFF.mean()
    else:  # −8 (the mean of 8 and four −12s) on row and column A, 0 on the {B, C}² block
        expected = torch.tensor([[-8.0, -8.0, -8.0], [-8.0, 0.0, 0.0], [-8.0, 0.0, 0.0]])
    # the QTRAN paper's tables (Son et al. 2019, Table 1), within the noise of ε = 1 data at lr 2e-3 (measured ≤ 0.5)
    assert (report.joint_q[0] - expected).abs().max().item() < 1.0


@settings(max_examples=40, deadline=None)
@given(
    table=st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    v0=st.floats(-5, 5),
    util=st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    actions=st.tuples(st.integers(0, 1), st.integers(0, 1)),
)
def test_l_nopt_is_zero_iff_the_qtran_inequality_holds(table, v0, util, actions):
    """Seed §QTRAN: m = Σ_i Q_i(a_i) − Q_jt(a) + V ≥ 0 ⇔ L_nopt = min(0, m)² = 0 (random networks' outputs)."""
    tab = torch.tensor(table).view(2, 2)
    loss = QTranLoss(identity_agent(), table_joint_q(tab), const_v(v0))
    loss.make_value_estimator(gamma=GAMMA)
    td = hand_batch(actions=[list(actions)], rewards=[0.0], terminated=[True])
    td["agents", "observation"] = torch.tensor(util).view(1, 2, 2)  # utilities Q_i(·) = o_i
    m = float(util[actions[0]] + util[2 + actions[1]] - tab[actions].item() + v0)
    l_nopt = loss(td)["loss_nopt"].item() / loss.lambda_nopt
    if m >= 1e-4:
        assert l_nopt == 0.0
    elif m <= -1e-4:
        assert l_nopt == pytest.approx(m * m, rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------- equality with pymarl's QTRAN
# pymarl @c971afd: QTranBase (qtran_paper, small) on the agents' hidden states, qtran_learner's qtran_base loss
# (port: tests/_pymarl.py). Ours: QTranLoss(features="hidden") with QTranJointQ(agent_id=False, encoder_dim=H + A).
RN, RA, RF, RS, RH, RE = 3, 4, 5, 7, 16, 8  # agents, actions, obs dim, state dim, agent width, Q_jt/V width
RGAMMA = 0.9
RTOL = {torch.float32: (1e-6, 1e-6), torch.float64: (1e-12, 1e-12)}  # (|Δloss| rel, |Δgrad| rel)


def qtran_reference_and_ours(kind, dtype, double_q, seed=0):
    """pymarl's learner (targets perturbed away from the online nets) and our loss with the same weights."""
    from _pymarl import QTranBase, QTranLearner, cast_and_perturb_targets, copy_into, make_agent, make_mac, qtran_pairs

    torch.manual_seed(seed)
    ref = QTranLearner(make_mac(kind, RN, RA, RF, RH), QTranBase(RN, RA, RS, RH, RE), gamma=RGAMMA, double_q=double_q)
    cast_and_perturb_targets([ref.mac.agent, ref.mixer], [ref.target_mac.agent, ref.target_mixer], dtype)
    agent = make_agent(kind, RN, RA, RF, RH)
    joint_q = QTranJointQ(RN, RA, (RS,), QTranLoss.feature_dim(agent), embed_dim=RE, agent_id=False,
                          encoder_dim=RH + RA)
    loss = QTranLoss(agent, joint_q, QTranV((RS,), embed_dim=RE), double_q=double_q).to(dtype)
    loss.make_value_estimator(gamma=RGAMMA)
    copy_into(qtran_pairs(loss, ref, target=False))
    copy_into(qtran_pairs(loss, ref, target=True))
    return ref, loss


def _agent_grad(params):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind, double_q", [("mlp", True), ("gru", True), ("gru", False)],
                         ids=["mlp", "gru", "gru-no-double-q"])
def test_loss_and_gradients_equal_pymarl_qtran(kind, double_q, dtype):
    """Same weights, same padded episodes (terminated and cut, action masks, zero avail on padding):
    loss_td, loss_opt, loss_nopt and loss equal pymarl's td_loss, opt_loss, nopt_loss and their weighted
    sum; every online parameter's gradient equal to float rounding, first from L_td alone (the agents'
    gradient through their hidden features, nonzero: L_td trains the agents), then from the whole loss
    (figures printed with -s)."""
    from _pymarl import episode_batch, max_grad_gap, qtran_pairs, to_tensordict

    ref, loss = qtran_reference_and_ours(kind, dtype, double_q)
    batch = episode_batch(6, 5, RN, RA, RF, RS, seed=1, dtype=dtype)
    td = to_tensordict(batch)
    rel, grad_rel = RTOL[dtype]
    pairs = qtran_pairs(loss, ref, target=False)
    agent_params = list(loss.agent_net.parameters())

    # L_td alone: λ_opt = λ_nopt = 0 on both sides
    loss.lambda_opt = loss.lambda_nopt = 0.0
    ref.opt_loss = ref.nopt_min_loss = 0.0
    out = loss(td)
    total_loss(out).backward()
    r_loss, r_td, _, _ = ref.loss(batch)
    r_loss.backward()
    td_grad_gap = max_grad_gap(pairs)
    ours_norm = _agent_grad(agent_params).norm().item()
    ref_norm = _agent_grad(list(ref.mac.agent.parameters())).norm().item()
    assert out["loss_td"].item() == pytest.approx(r_td.item(), rel=rel)
    assert td_grad_gap <= grad_rel * max(1.0, r_td.item())
    assert ours_norm == pytest.approx(ref_norm, rel=max(rel, 1e-6)) and ours_norm > 1e-3  # L_td trains the agents

    # the whole objective, pymarl's weights (opt_loss 1, nopt_min_loss 0.1)
    loss.zero_grad(set_to_none=True)
    for m in (ref.mac.agent, ref.mixer):
        m.zero_grad(set_to_none=True)
    loss.lambda_opt, loss.lambda_nopt = 1.0, 0.1
    ref.opt_loss, ref.nopt_min_loss = 1.0, 0.1
    out = loss(td)
    total_loss(out).backward()
    r_loss, r_td, r_opt, r_nopt = ref.loss(batch)
    r_loss.backward()
    grad_gap = max_grad_gap(pairs)
    out = {**out, "loss": total_loss(out), "loss_nopt": out["loss_nopt"] / 0.1}  # pymarl reports nopt unweighted
    terms = (("loss", r_loss), ("loss_td", r_td), ("loss_opt", r_opt), ("loss_nopt", r_nopt))
    gaps = {k: abs(out[k].item() - r.item()) for k, r in terms}
    print(f"qtran {kind} double_q={double_q} {dtype}: max|Δloss| = {max(gaps.values()):.2e} (loss {r_loss.item():.4f}, "
          f"nopt {r_nopt.item():.4f}), max|Δgrad| = {grad_gap:.2e}; L_td alone: max|Δgrad| = {td_grad_gap:.2e}, "
          f"agent grad-norm ours {ours_norm:.6f} pymarl {ref_norm:.6f}")
    for k, r in terms:
        assert out[k].item() == pytest.approx(r.item(), rel=rel, abs=1e-12)
    assert r_nopt.item() > 0  # the clamp is active on some valid steps
    assert grad_gap <= grad_rel * max(1.0, r_loss.item())
