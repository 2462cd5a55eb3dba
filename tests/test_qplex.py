"""QPLEX: equality with the reference learner (wjh720/QPLEX, ported in tests/_ref_qplex.py), the duplex
dueling formula and its gradients by hand, IGM on random networks, registration, and the published
outcome on the QTRAN matrix game (optimal joint action, payoff table reproduced)."""

import pytest
import torch
from _matrix import PAYOFF, RMSPROP, train_matrix
from _pymarl import cast_and_perturb_targets, copy_into, episode_batch, make_agent, make_mac, max_grad_gap, to_tensordict
from _ref_qplex import DMAQer, DMAQLearner, learner_pairs

import torchrl_vd as vd
from torchrl_vd import GRUAgent, MLPAgent, QPlexLoss, QPlexMixer
from torchrl_vd.testing import random_batch
from torchrl_vd.train.algos import algorithms

# ------------------------------------------------------------------------------ equality with the reference
N, A, F, S, H = 3, 4, 5, 7, 16  # agents, actions, obs dim, state dim, agent width
MIXER = dict(hypernet_embed=12, num_kernel=4, adv_hypernet_embed=10)
GAMMA = 0.9
TOL = {torch.float32: (1e-6, 1e-6), torch.float64: (1e-12, 1e-12)}  # (|Δloss| rel, |Δgrad| rel)


def reference_and_ours(kind, double_q, layers, dtype, is_minus_one=True, seed=0, sizes=MIXER):
    """The reference learner (targets perturbed away from the online nets) and our loss with the same weights."""
    torch.manual_seed(seed)
    ref = DMAQLearner(make_mac(kind, N, A, F, H),
                      DMAQer(N, A, S, adv_hypernet_layers=layers, is_minus_one=is_minus_one, **sizes),
                      double_q=double_q, gamma=GAMMA)
    cast_and_perturb_targets([ref.mac.agent, ref.mixer], [ref.target_mac.agent, ref.target_mixer], dtype)
    mixer = QPlexMixer(N, A, (S,), adv_hypernet_layers=layers, is_minus_one=is_minus_one, **sizes)
    loss = QPlexLoss(make_agent(kind, N, A, F, H), mixer, double_q=double_q).to(dtype)
    loss.make_value_estimator(gamma=GAMMA)
    copy_into(learner_pairs(loss, ref, layers, target=False))
    copy_into(learner_pairs(loss, ref, layers, target=True))
    return ref, loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["mlp", "gru"])
@pytest.mark.parametrize("double_q", [True, False], ids=["double", "single"])
def test_loss_and_gradients_equal_the_reference(double_q, kind, dtype):
    """Same weights (reference default adv_hypernet_layers=3), same padded episodes (terminated and
    cut, action masks, zero avail on padding): loss and every online parameter's gradient equal to
    float rounding (figures printed with -s)."""
    ref, loss = reference_and_ours(kind, double_q, 3, dtype)
    batch = episode_batch(6, 5, N, A, F, S, seed=1, dtype=dtype)
    out = loss(to_tensordict(batch))
    out["loss"].backward()
    r_loss = ref.loss(batch)
    r_loss.backward()
    pairs = learner_pairs(loss, ref, 3, target=False)
    grad_gap = max_grad_gap(pairs)
    print(f"qplex {kind} double_q={double_q} {dtype}: max|Δloss| = {abs(out['loss'].item() - r_loss.item()):.2e} "
          f"(loss {r_loss.item():.4f}), max|Δgrad| = {grad_gap:.2e}")
    rel, grad_rel = TOL[dtype]
    assert out["loss"].item() == pytest.approx(r_loss.item(), rel=rel)
    assert grad_gap <= grad_rel * max(1.0, r_loss.item())
    # every part of the mixer is trained, the λ heads included
    assert all(build("grad").abs().sum() > 0 for name, _, build in pairs if name.startswith("mixer"))


REFERENCE_SIZES = dict(hypernet_embed=64, num_kernel=10, adv_hypernet_embed=64)  # qplex.yaml l.22-26


@pytest.mark.parametrize("layers, is_minus_one, sizes", [(1, True, MIXER), (2, True, MIXER), (3, False, MIXER),
                                                         (3, True, REFERENCE_SIZES)])
def test_other_reference_options_equal_the_reference(layers, is_minus_one, sizes):
    """adv_hypernet_layers 1 and 2 (qplex_sc2.yaml uses 1), is_minus_one=False, and the reference's
    sizes (10 heads of width 64), float64, GRU agents."""
    ref, loss = reference_and_ours("gru", True, layers, torch.float64, is_minus_one=is_minus_one, sizes=sizes)
    batch = episode_batch(6, 5, N, A, F, S, seed=2, dtype=torch.float64)
    out = loss(to_tensordict(batch))
    out["loss"].backward()
    r_loss = ref.loss(batch)
    r_loss.backward()
    assert out["loss"].item() == pytest.approx(r_loss.item(), rel=1e-12)
    assert max_grad_gap(learner_pairs(loss, ref, layers, target=False)) <= 1e-12 * max(1.0, r_loss.item())


# ------------------------------------------------------------------------------------- the formula
def test_mixer_equals_the_duplex_dueling_formula_and_its_gradient_paths():
    """Q_tot = Σ_i (w_i Q_i + b_i) + Σ_i (λ_i − 1) w_i (Q_i − V_i), with the advantages detached:
    ∂Q_tot/∂Q_i = w_i, ∂Q_tot/∂V_i = 0; at the greedy joint action Q_tot = Σ_i (w_i V_i + b_i)."""
    torch.manual_seed(0)
    mixer = QPlexMixer(3, 4, (6,), num_kernel=2, adv_hypernet_embed=8, hypernet_embed=8).double()
    state = torch.randn(5, 6, dtype=torch.float64)
    q = torch.randn(5, 3, 4, dtype=torch.float64)
    u = torch.randint(4, (5, 3))
    chosen = q.gather(-1, u.unsqueeze(-1)).requires_grad_()  # [B, n, 1]
    greedy = q.max(-1, keepdim=True).values.requires_grad_()  # [B, n, 1]
    out = mixer(chosen, greedy, state, u)  # [B, 1]
    w = mixer.hyper_w(state).abs() + 1e-10  # [B, n]
    b = mixer.hyper_b(state)
    lam = mixer.lambda_weights(state, u)  # [B, n]
    assert (lam > 0).all()
    expected = (w * chosen[..., 0] + b).sum(-1) + ((lam - 1) * w * (chosen - greedy)[..., 0]).sum(-1)
    assert torch.allclose(out[:, 0], expected, atol=1e-12)
    out.sum().backward()
    assert torch.allclose(chosen.grad[..., 0], w.detach(), atol=1e-12) and greedy.grad is None
    u_star = q.argmax(-1)  # [B, n]
    at_greedy = mixer(q.gather(-1, u_star.unsqueeze(-1)), greedy.detach(), state, u_star)
    assert torch.allclose(at_greedy[:, 0], (w * greedy.detach()[..., 0] + b).sum(-1), atol=1e-12)


def test_lambda_heads_equal_separate_per_head_networks():
    """The stacked heads (one matmul per layer) are K independent MLPs, as the reference's ModuleList."""
    torch.manual_seed(0)
    mixer = QPlexMixer(2, 3, (4,), num_kernel=3, adv_hypernet_layers=3, adv_hypernet_embed=5)
    x = torch.randn(7, 4)
    heads = mixer.agents
    for k in range(3):
        h = torch.relu(x @ heads.first.weight[5 * k : 5 * (k + 1)].T + heads.first.bias[5 * k : 5 * (k + 1)])
        h = torch.relu(h @ heads.rest[0].weight[k] + heads.rest[0].bias[k])
        assert torch.allclose(heads(x)[:, k], h @ heads.rest[1].weight[k] + heads.rest[1].bias[k], atol=1e-6)


def test_options_are_validated():
    with pytest.raises(ValueError, match="num_kernel must be a positive integer"):
        QPlexMixer(2, 3, (4,), num_kernel=0)
    with pytest.raises(TypeError, match="QPlexMixer"):
        QPlexLoss(MLPAgent(2, 3, 4), vd.QMixer(2, (4,)))
    with pytest.raises(ValueError, match=r"\(n_agents, n_actions\)=\(2, 4\)"):
        QPlexLoss(MLPAgent(2, 3, 4), QPlexMixer(2, 4, (8,)))
    loss = QPlexLoss(MLPAgent(2, 3, 4), QPlexMixer(2, 3, (5,)))
    with pytest.raises(ValueError, match=r"QPlexMixer expects state \[\*B=\[8\], \*\[5\]\]"):
        loss(random_batch(batch=8))


def test_registered_builder():
    info = vd.describe_env(vd.make_env("matrix/qtran", num_envs=2))
    cfg = vd.TrainConfig(algo="qplex", env="matrix/qtran", mixer_kwargs={"num_kernel": 4, "adv_hypernet_layers": 1})
    loss = algorithms()["qplex"].parts(cfg, info).loss_module
    assert isinstance(loss, QPlexLoss) and loss.mixer.num_kernel == 4 and len(loss.mixer.key.rest) == 0
    assert (loss.mixer.n_agents, loss.mixer.n_actions, loss.double_q) == (2, 3, True)


# ------------------------------------------------------------------------------------------- IGM
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_igm_holds_for_random_networks(kind):
    """λ > 0 and A_i ≤ 0 (0 at the greedy actions): the agents' greedy joint action maximises Q_tot."""
    torch.manual_seed(0)
    agent = MLPAgent(3, 4, 5) if kind == "mlp" else GRUAgent(3, 4, 5, hidden=(8,))
    loss = QPlexLoss(agent, QPlexMixer(3, 4, (9,)))
    td = random_batch(n_agents=3, n_actions=4, obs_dim=5, batch=32 if kind == "mlp" else (4, 8), state_dim=9,
                      action_mask=True)
    report = vd.check_igm(loss, td)
    assert report.enumerated and report.holds.all()


# -------------------------------------------------------------------------------------- the matrix game
# The reference's own matrix-game run (wjh720/QPLEX README: qplex.yaml, epsilon_finish=1.0) trains with
# uniform exploration and pymarl's RMSprop at lr 5e-4, as tests/_matrix.py does (reference QPlexMixer sizes).
# Measured (greedy payoff, max|Q_tot − payoff|, mean|Q_tot − payoff|) per seed 0-4:
#   1000 updates: 8 for every seed; max 2.38, 1.03, 4.37, 9.38 (not fitted yet), 0.74; mean 0.80, 0.39, 0.65, 4.39, 0.22
#   3000 updates: 8 for every seed; max 1.58, 0.70, 0.29, 1.60, 0.39;                mean 0.61, 0.20, 0.18, 0.51, 0.14


def check_solves(seed, tmp_path, updates):
    greedy, payoff, report, _ = train_matrix("qplex", seed, tmp_path, updates=updates, optim=RMSPROP)
    err = (report.joint_q[0] - PAYOFF).abs()  # [3, 3]
    print(f"qplex seed {seed}, {updates} updates: greedy {greedy} payoff {payoff}, max|Q_tot − payoff| "
          f"{err.max():.2f}, mean {err.mean():.2f}")
    assert report.holds.all()  # IGM by construction, also after training
    return payoff, err


def test_qplex_solves_the_matrix_game(tmp_path):
    """Greedy (A, A) = 8, and Q_tot close to the payoff (IGM-complete: QPLEX can represent it exactly).

    QMIX in this setting (RMSprop, 1000 updates) reaches 8 on seeds 0 and 4 only (0 on 1-3); in
    tests/test_qtran.py's (Adam 2e-3) it settles for 0, where QPLEX's training diverges (measured).
    """
    payoff, err = check_solves(0, tmp_path, 1000)
    assert payoff == 8.0 and err.mean() < 1.0  # measured 0.80 (max 2.38): the λ fit is still improving


@pytest.mark.slow
def test_qplex_solves_the_matrix_game_and_reproduces_the_payoff_in_most_seeds(tmp_path):
    results = [check_solves(s, tmp_path / str(s), 3000) for s in range(5)]
    solved = [p == 8.0 and e.max() < 2.0 for p, e in results]  # measured max errors ≤ 1.60
    assert sum(solved) >= 4, [(p, round(e.max().item(), 2)) for p, e in results]


def _preset_run(seed: int, tmp_path) -> float:
    """QPLEX with nothing set but the data (uniform exploration, 50k frames): its (matrix, qplex) preset, wjh720/QPLEX's
    own matrix-game run (docs/PRESETS.md), does the rest."""
    cfg = vd.TrainConfig(algo="qplex", env="matrix/qtran", eps_start=1.0, eps_end=1.0, frames=50_000, seed=seed,
                         eval_episodes=4, igm_eval=False, progress=False, out_dir=str(tmp_path / f"preset{seed}"))
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.target_update) == ("rmsprop", 5e-4, 32, 200)
    return vd.train(cfg).summary["final_eval_return"]


def test_the_matrix_preset_reaches_the_optimum(tmp_path):
    """Measured at 50k frames, seeds 0-2: 8, 8, 8 with the preset; 0, 0, 0 with the TrainConfig defaults."""
    assert _preset_run(0, tmp_path) == 8.0


@pytest.mark.slow
def test_the_matrix_preset_reaches_the_optimum_in_most_seeds(tmp_path):
    assert sum(_preset_run(s, tmp_path) == 8.0 for s in range(3)) >= 2
