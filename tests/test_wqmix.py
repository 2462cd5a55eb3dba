"""Weighted QMIX (CW-QMIX, OW-QMIX): equality with the reference learner (oxwhirl/wqmix, ported in
tests/_ref_wqmix.py), the weighting by hand, target construction, IGM of Q_tot, registration, and the
published outcome on the QTRAN matrix game."""

import pytest
import torch
from _matrix import ADAM, PAYOFF, train_matrix
from _pymarl import cast_and_perturb_targets, copy_into, episode_batch, make_agent, make_mac, max_grad_gap, to_tensordict
from _ref_wqmix import MaxQLearner, QMixerCentralFF, learner_pairs
from _ref_wqmix import QMixer as RefQMixer
from tensordict import TensorDict
from torchrl.objectives import SoftUpdate

import torchrl_vd as vd
from torchrl_vd import CentralQMixer, GRUAgent, MLPAgent, QMixer, VDNMixer, WeightedQMixLoss
from torchrl_vd.igm import all_joint_actions
from torchrl_vd.objectives.common import total_loss
from torchrl_vd.testing import identity_agent, random_batch
from torchrl_vd.train.algos import algorithms

# ------------------------------------------------------------------------------ equality with the reference
N, A, F, S, H = 3, 4, 5, 7, 16  # agents, actions, obs dim, state dim, agent width
EMBED, HYPER, CENTRAL = 8, 12, 16  # QMIX mixing width, hypernet width, Q̂* width
GAMMA = 0.9
TOL = {torch.float32: (1e-6, 1e-6), torch.float64: (1e-12, 1e-12)}  # (|Δloss| rel, |Δgrad| rel)


def reference_and_ours(kind: str, weighting: str, dtype, seed: int = 0, sizes=(EMBED, HYPER, CENTRAL)):
    """The reference learner (targets perturbed away from the online nets) and our loss with the same weights."""
    torch.manual_seed(seed)
    embed, hyper, central = sizes
    ref = MaxQLearner(make_mac(kind, N, A, F, H), RefQMixer(N, S, embed, hyper), make_mac(kind, N, A, F, H),
                      QMixerCentralFF(N, S, central), hysteretic_qmix=weighting == "ow", gamma=GAMMA)
    cast_and_perturb_targets([ref.mac.agent, ref.mixer, ref.central_mac.agent, ref.central_mixer],
                             [ref.target_mac.agent, ref.target_mixer, ref.target_central_mac.agent,
                              ref.target_central_mixer], dtype)
    loss = WeightedQMixLoss(make_agent(kind, N, A, F, H),
                            QMixer(N, (S,), mixing_embed_dim=embed, hypernet_embed=hyper),
                            CentralQMixer(N, (S,), embed_dim=central), make_agent(kind, N, A, F, H),
                            weighting=weighting).to(dtype)
    loss.make_value_estimator(gamma=GAMMA)
    copy_into(learner_pairs(loss, ref, target=False))
    copy_into(learner_pairs(loss, ref, target=True))
    return ref, loss


REFERENCE_SIZES = (32, 64, 256)  # cw_qmix.yaml: mixing_embed_dim, hypernet_embed, central_mixing_embed_dim


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind, sizes", [("mlp", (EMBED, HYPER, CENTRAL)), ("gru", (EMBED, HYPER, CENTRAL)),
                                         ("gru", REFERENCE_SIZES)], ids=["mlp", "gru", "gru-reference-sizes"])
@pytest.mark.parametrize("weighting", ["cw", "ow"])
def test_loss_and_gradients_equal_the_reference(weighting, kind, sizes, dtype):
    """Same weights, same padded episodes (terminated and cut, action masks, zero avail on padding):
    loss_td = qmix_loss, loss_central = central_loss, loss = their sum, and every online parameter's
    gradient equal to float rounding (figures printed with -s)."""
    ref, loss = reference_and_ours(kind, weighting, dtype, sizes=sizes)
    batch = episode_batch(6, 5, N, A, F, S, seed=1, dtype=dtype)
    out = loss(to_tensordict(batch))
    total_loss(out).backward()
    out = {**out, "loss": total_loss(out)}
    r_loss, r_qmix, r_central, ws = ref.loss(batch)
    r_loss.backward()
    valid = to_tensordict(batch)["mask"]
    w_valid = ws[..., 0][valid]
    assert (w_valid == 1.0).any() and (w_valid < 1.0).any()  # both weights occur on valid steps
    rel, grad_rel = TOL[dtype]
    gaps = {k: abs(out[k].item() - r.item()) for k, r in (("loss", r_loss), ("loss_td", r_qmix), ("loss_central", r_central))}
    grad_gap = max_grad_gap(learner_pairs(loss, ref, target=False))
    print(f"{weighting}-qmix {kind} {sizes} {dtype}: max|Δloss| = {max(gaps.values()):.2e} (loss {r_loss.item():.4f}), "
          f"max|Δgrad| = {grad_gap:.2e}")
    for k, r in (("loss", r_loss), ("loss_td", r_qmix), ("loss_central", r_central)):
        assert out[k].item() == pytest.approx(r.item(), rel=rel)
    assert grad_gap <= grad_rel * max(1.0, r_loss.item())
    assert out["weight_mean"].item() == pytest.approx(w_valid.mean().item(), rel=1e-6)


# ------------------------------------------------------------------------------------- by hand
# 2 agents, 2 actions, identity agents: the observations are the utilities.
#   QMIX utilities Q_1 = [1, 0], Q_2 = [0, 2] -> û* = (0, 1);  Q_tot = Q_1 + Q_2 (VDN mixer)
#   Q̂*: its own identity agents, VDN-summed; the *target* central agents double: Q̄*(s, û*) = 2 (1 + 2) = 6
# Terminal transitions, so y = r.
UTIL = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
ACTIONS = [[0, 1], [1, 0], [0, 0], [1, 1]]
REWARDS = [0.0, 7.0, 5.0, -1.0]  # Q_tot(u) = [3, 0, 1, 2]
ALPHA = 0.1


def hand_loss(weighting, **kwargs):
    loss = WeightedQMixLoss(identity_agent(), VDNMixer(2), VDNMixer(2), identity_agent(), weighting=weighting,
                            alpha=ALPHA, **kwargs)
    loss.make_value_estimator(gamma=0.5)
    with torch.no_grad():
        loss.target_central_agent_params["net", "0", "weight"].mul_(2.0)
    return loss


def hand_batch(actions=ACTIONS, rewards=REWARDS, terminated=True, next_util=UTIL, mask=None, alive=None):
    B = len(actions)
    agents = {"observation": UTIL.expand(B, 2, 2).clone(), "action": torch.tensor(actions)}
    if mask is not None:
        agents["action_mask"] = mask.expand(B, 2, 2).clone()
    if alive is not None:
        agents["alive"] = alive.expand(B, 2).clone()
    return TensorDict(
        {
            "agents": agents,
            "next": {
                "agents": {"observation": next_util.expand(B, 2, 2).clone()},
                "reward": torch.tensor(rewards).reshape(B, 1),
                "done": torch.full((B, 1), terminated),
                "terminated": torch.full((B, 1), terminated),
            },
        },
        [B],
    )


@pytest.mark.parametrize(
    "weighting, weights",
    [
        # CW: w = 1 iff u = û* = (0, 1) or y > Q̄*(s, û*) = 6
        #   (0,1): û* -> 1;  (1,0): 7 > 6 -> 1;  (0,0): 5 ≤ 6 -> α;  (1,1): −1 ≤ 6 -> α
        ("cw", [1.0, 1.0, ALPHA, ALPHA]),
        # OW: w = 1 iff Q_tot(u) < y:  3 < 0 no;  0 < 7 yes;  1 < 5 yes;  2 < −1 no
        ("ow", [ALPHA, 1.0, 1.0, ALPHA]),
    ],
)
def test_weights_equal_hand_computation(weighting, weights):
    out = hand_loss(weighting)(hand_batch())
    sq = [9.0, 49.0, 16.0, 9.0]  # (Q_tot − y)² = (3 − 0)², (0 − 7)², (1 − 5)², (2 + 1)²
    assert out["loss_td"].item() == pytest.approx(sum(w * e for w, e in zip(weights, sq)) / 4)
    assert out["weight_mean"].item() == pytest.approx(sum(weights) / 4)
    # L_central: online Q̂*(s, u) = Σ_i Q̂_i(u_i) = [3, 0, 1, 2] (identity central agents): unweighted
    assert out["loss_central"].item() == pytest.approx(sum(sq) / 4)
    assert set(out.keys()) == {"loss_td", "loss_central", "weight_mean"}  # the objective: loss_td + loss_central
    per_sample = [hand_loss(weighting)(hand_batch([a], [r]))["weight_mean"].item() for a, r in zip(ACTIONS, REWARDS)]
    assert per_sample == pytest.approx(weights)


def test_central_q_values_and_joint_q_values():
    """Q̂* (online central networks) and Q_tot on every joint action: here both Q_1(u_1) + Q_2(u_2)."""
    loss, td = hand_loss("cw"), hand_batch([[0, 0]], [0.0])
    expected = [[1.0, 3.0], [0.0, 2.0]]  # [u_1, u_2]
    assert loss.central_q_values(td, all_joint_actions(2, 2)).reshape(2, 2).tolist() == expected  # [1, 4] -> [2, 2]
    assert vd.check_igm(loss, td).joint_q[0].tolist() == expected


def test_cw_greedy_action_honours_mask_and_dead_agents():
    # agent 2 may not take action 1: û* = (0, 0), Q̄*(s, û*) = 2 (1 + 0) = 2, so (0, 0) with r = −5 is "greedy"
    mask = torch.tensor([[True, True], [True, False]])
    assert hand_loss("cw")(hand_batch([[0, 0]], [-5.0], mask=mask))["weight_mean"].item() == pytest.approx(1.0)
    assert hand_loss("cw")(hand_batch([[0, 0]], [-5.0]))["weight_mean"].item() == pytest.approx(ALPHA)
    # a dead agent's action does not decide u = û*; its utility is 0 for both mixers (Q̄*(s, û*) = 2 (1 + 0))
    alive = torch.tensor([True, False])
    for a2 in (0, 1):
        out = hand_loss("cw")(hand_batch([[0, a2]], [-5.0], alive=alive))
        assert out["weight_mean"].item() == pytest.approx(1.0)
    assert hand_loss("cw")(hand_batch([[1, 0]], [1.5], alive=alive))["weight_mean"].item() == pytest.approx(ALPHA)
    assert hand_loss("cw")(hand_batch([[1, 0]], [2.5], alive=alive))["weight_mean"].item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "double_q, y",
    [
        # next utilities Q'_1 = [0, 1], Q'_2 = [3, 0]: online û*' = (1, 0) -> Q̄*(s', û*') = 2 (1 + 3) = 8
        (True, 1.0 + 0.5 * 8.0),
        # without double Q, û*' is the *target QMIX agents'* argmax (here swapped: [1, 0], [0, 3] -> (0, 1)),
        # evaluated by the target Q̂*: 2 (0 + 0) = 0
        (False, 1.0),
    ],
)
def test_target_is_target_central_q_at_greedy_action_of_q_tot(double_q, y):
    loss = hand_loss("ow", double_q=double_q)
    with torch.no_grad():
        loss.target_agent_net_params["net", "0", "weight"].copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    td = hand_batch([[0, 1]], [1.0], terminated=False, next_util=torch.tensor([[0.0, 1.0], [3.0, 0.0]]))
    out = loss(td)
    assert out["loss_central"].item() == pytest.approx((3.0 - y) ** 2)  # Q̂*(s, (0, 1)) = 1 + 2 = 3
    assert td["td_error"].item() == pytest.approx(abs(3.0 - y))  # |Q_tot − y|, Q_tot = 3


def test_without_central_agent_the_central_loss_does_not_train_the_agents():
    torch.manual_seed(0)
    loss = WeightedQMixLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)), CentralQMixer(2, (8,), embed_dim=16), lambda_qmix=0.0)
    out = loss(random_batch(batch=32))
    total_loss(out).backward()
    assert out["loss_central"] > 0 and out["loss_td"].item() == 0.0  # λ_qmix = 0
    assert all(p.grad is None or not p.grad.any() for p in loss.agent_net.parameters())
    assert any(p.grad is not None and p.grad.any() for p in loss.central_mixer.parameters())


# ------------------------------------------------------------------------------------- plumbing
def test_central_networks_have_targets_that_soft_update_moves():
    torch.manual_seed(0)
    loss = WeightedQMixLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)), CentralQMixer(2, (8,), embed_dim=16), MLPAgent(2, 3, 4))
    assert {"target_central_mixer_params", "target_central_agent_params"} <= set(dict(loss.named_children()))
    updater = SoftUpdate(loss, tau=0.5)
    before = loss.target_central_mixer_params.clone()
    with torch.no_grad():
        loss.central_mixer.net[0].weight.add_(1.0)
    updater.step()
    moved = loss.target_central_mixer_params["net", "0", "weight"] - before["net", "0", "weight"]
    assert torch.allclose(moved, torch.full_like(moved, 0.5))


def test_options_are_validated():
    agent, mixer = MLPAgent(2, 3, 4), QMixer(2, (8,))
    with pytest.raises(ValueError, match=r"weighting must be one of \('cw', 'ow'\)"):
        WeightedQMixLoss(agent, mixer, CentralQMixer(2, (8,)), weighting="max")
    with pytest.raises(ValueError, match="alpha"):
        WeightedQMixLoss(agent, mixer, CentralQMixer(2, (8,)), alpha=0.0)
    with pytest.raises(ValueError, match="n_agents=3"):
        WeightedQMixLoss(agent, mixer, CentralQMixer(3, (8,)))
    with pytest.raises(ValueError, match="central_agent"):
        WeightedQMixLoss(agent, mixer, CentralQMixer(2, (8,)), MLPAgent(2, 4, 4))
    with pytest.raises(TypeError, match="central_mixer"):
        WeightedQMixLoss(agent, mixer, torch.nn.Linear(2, 1))


def test_registered_builders():
    specs = algorithms()
    info = vd.describe_env(vd.make_env("matrix/qtran", num_envs=2))
    for algo, weighting in (("cw-qmix", "cw"), ("ow-qmix", "ow")):
        cfg = vd.TrainConfig(algo=algo, env="matrix/qtran", mixer_kwargs={"mixing_embed_dim": 8, "central_embed_dim": 16},
                             loss_kwargs={"alpha": 0.5})
        loss = specs[algo].parts(cfg, info).loss_module
        assert (loss.weighting, loss.alpha, loss.mixer.embed_dim, loss.central_mixer.embed_dim) == (weighting, 0.5, 8, 16)
        assert loss.has_central_agent and loss.central_agent is not loss.agent_net
    with pytest.raises(ValueError, match="Unknown cw-qmix loss option 'weighting'.*alpha"):  # the algo names it
        vd.TrainConfig(algo="cw-qmix", loss_kwargs={"weighting": "ow"})


# ------------------------------------------------------------------------------------------- IGM
@pytest.mark.parametrize("weighting", ["cw", "ow"])
def test_q_tot_is_monotonic_so_igm_holds(weighting):
    torch.manual_seed(0)
    loss = WeightedQMixLoss(MLPAgent(3, 4, 5), QMixer(3, (9,)), CentralQMixer(3, (9,), embed_dim=16), MLPAgent(3, 4, 5),
                            weighting=weighting)
    td = random_batch(n_agents=3, n_actions=4, obs_dim=5, batch=32, state_dim=9, action_mask=True)
    assert vd.check_igm(loss, td).holds.all()


# -------------------------------------------------------------------------------------- the matrix game
# tests/_matrix.py with Adam at lr 2e-3 (tests/test_qtran.py's optimiser), 500 updates, reference network sizes.
# Measured greedy payoff, seeds 0-4: QMIX 0, 0, 0, 0, 8; CW-QMIX 8, 8, 8, 8, 8; OW-QMIX 8, 8, 8, 8, 8.
# (With the references' RMSprop at lr 5e-4: CW and OW 8 on all five seeds after 400 updates; QMIX after
# 1000 updates 8, 0, 0, 0, 8.)
UPDATES = 500
Q_STAR_TOL = 1.0  # max|Q̂* − payoff| measured ≤ 0.60 (CW 0.07, 0.20, 0.17, 0.03, 0.05; OW 0.60, 0.06, 0.31, 0.09, 0.09)


def matrix_outcome(algo, seed, out_dir):
    """Greedy payoff, and for Weighted QMIX max|Q̂* − payoff| over the 9 joint actions."""
    greedy, payoff, report, result = train_matrix(algo, seed, out_dir, updates=UPDATES, optim=ADAM)
    assert report.holds.all()  # Q_tot is monotonic: its greedy joint action is the agents'
    q_star_err = float("nan")
    if algo != "qmix":
        q_star = result.loss_module.central_q_values(result.env.reset()[:1], all_joint_actions(2, 3))
        q_star_err = (q_star.reshape(3, 3) - PAYOFF).abs().max().item()  # [1, 9] -> [3, 3]
    print(f"{algo} seed {seed}: greedy {greedy} payoff {payoff}, Q_tot {report.joint_q[0].flatten().round(decimals=2).tolist()}, "
          f"max|Q̂* − payoff| {q_star_err:.2f}")
    return payoff, q_star_err


@pytest.mark.parametrize("algo", ["cw-qmix", "ow-qmix"])
def test_weighted_qmix_solves_the_matrix_game(algo, tmp_path):
    """(A, A) = 8 where QMIX, in the same setting, settles for 0; the unrestricted Q̂* learns the payoff."""
    payoff, q_star_err = matrix_outcome(algo, 0, tmp_path)
    assert payoff == 8.0 and q_star_err < Q_STAR_TOL


def test_qmix_settles_for_zero_in_the_same_setting(tmp_path):
    assert matrix_outcome("qmix", 0, tmp_path)[0] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["cw-qmix", "ow-qmix", "qmix"])
def test_weighted_qmix_solves_the_matrix_game_in_most_seeds(algo, tmp_path):
    outcomes = [matrix_outcome(algo, s, tmp_path / str(s)) for s in range(5)]
    solved = sum(p == 8.0 for p, _ in outcomes)
    if algo == "qmix":
        assert solved <= 1, outcomes
    else:
        assert solved >= 4 and all(e < Q_STAR_TOL for _, e in outcomes), outcomes
