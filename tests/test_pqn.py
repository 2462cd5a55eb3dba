"""PQN-VDN (Gallici et al. 2025; JaxMARL's pqn_vdn_rnn.py / pqn_vdn_ff.py): the network, the λ-returns and the loss
equal a float64 port of JaxMARL's code (tests/_ref_pqn.py) on identical weights and random rollouts with episode
ends inside, time limits and action masks; the schedule (K epochs × M minibatches per rollout, RAdam, LR and ε
formulas); the matrix-game outcome; resume, many seeds and the config's refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives.utils import ValueEstimators

import _ref_pqn as ref
from torchrl_vd.modules.pqn_agent import PQNAgent, PQNRecurrentAgent, batch_statistics
from torchrl_vd.objectives.pqn import PQNVDNLoss
from torchrl_vd.train.learner import time_limits_as_terminal

N, A, F, H = 3, 4, 5, 8  # agents, actions, observation size, hidden width


def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.ascontiguousarray(x)).to(dtype)


def _with_ids(obs):
    """JaxMARL's preprocessed observation: the one-hot agent id appended (CTRolloutManager). obs (..., N, E, F)."""
    eye = np.broadcast_to(np.eye(N)[:, None, :], (*obs.shape[:-1], N))
    return np.concatenate([obs, eye], axis=-1)


def _randomise_norms(agent, rng):
    """Non-trivial norm parameters and running averages, so that every one of them matters."""
    with torch.no_grad():
        for m in agent.modules():
            if hasattr(m, "running_mean") or isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(_t(rng.uniform(0.5, 1.5, m.weight.shape)))
                m.bias.copy_(_t(rng.normal(0, 0.3, m.bias.shape)))
            if hasattr(m, "running_mean"):
                m.running_mean.copy_(_t(rng.normal(0, 0.5, m.running_mean.shape)))
                m.running_var.copy_(_t(rng.uniform(0.5, 2.0, m.running_var.shape)))


def rollout(T, E, seed, *, memory_last_done=True):
    """A random rollout in JaxMARL's layout (time, agents, envs): episode ends (terminations and time limits) inside,
    action masks, legal actions; plus the same data in torchrl_vd's [E, T] tensordict (``td``)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T + 1, N, E, F))  # obs[T]: the observation after the rollout (JaxMARL's last_obs)
    term = rng.random((T, E)) < 0.15
    trunc = ~term & (rng.random((T, E)) < 0.15)
    done = term | trunc  # JaxMARL's done["__all__"]: a time limit is an episode end like any other
    avail = rng.random((T + 1, N, E, A)) > 0.4
    avail[..., 0] = True
    action = np.argmax(rng.random((T, N, E, A)) * avail[:T], axis=-1)  # legal actions
    reward = rng.normal(size=(T, E))
    last_done = np.concatenate([rng.random((1, E)) < (0.3 if memory_last_done else 0.0), done[:-1]])  # (T, E)
    h0 = rng.normal(size=(N, E, H))
    final = rng.normal(size=(T, N, E, F))  # the true last observation of an episode (JaxMARL shows the reset one)
    next_obs = np.where(done[:, None, :, None], final, obs[1:])  # (T, N, E, F)

    def ours(x):  # (T, N, E, ...) -> [E, T, N, ...]
        return np.moveaxis(x, 2, 0)

    td = TensorDict({
        "agents": {"observation": _t(ours(obs[:T])), "action": torch.as_tensor(ours(action)),
                   "action_mask": torch.as_tensor(ours(avail[:T])),
                   "rnn_hidden": _t(np.broadcast_to(np.moveaxis(h0, 1, 0)[:, None], (E, T, N, H)))},
        "is_init": torch.as_tensor(last_done.T[..., None]),
        "next": {"agents": {"observation": _t(ours(next_obs)), "action_mask": torch.as_tensor(ours(avail[1:]))},
                 "reward": _t(reward.T[..., None]), "done": torch.as_tensor(done.T[..., None]),
                 "terminated": torch.as_tensor(term.T[..., None]), "truncated": torch.as_tensor(trunc.T[..., None])},
    }, [E, T])
    return dict(obs=obs, done=done, avail=avail, action=action, reward=reward, last_done=last_done, h0=h0), td


def _loss(agent, gamma, lam, **kw):
    loss = PQNVDNLoss(agent, **kw)
    loss.make_value_estimator(ValueEstimators.TDLambda, gamma=gamma, lmbda=lam)
    return loss


# ---------------------------------------------------------------------------------------------- (b) the network
@pytest.mark.parametrize("norm, norm_input", [("layer_norm", False), ("batch_norm", True), ("none", True)])
def test_the_feed_forward_network_is_jaxmarls_qnetwork(norm, norm_input):
    """Dense → norm → ReLU (the norm after the Dense, before the ReLU), the input BatchNorm, the head; BatchNorm on
    the batch's statistics in the gradient steps (moving its running averages as flax does) and on the running
    averages elsewhere."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    agent = PQNAgent(N, A, F, hidden=(H, 6), norm=norm, norm_input=norm_input).double()
    _randomise_norms(agent, rng)
    obs = rng.normal(size=(N, 7, F))  # (agents, batch, F): JaxMARL's layout
    ours = lambda x: _t(x.swapaxes(0, 1))  # noqa: E731  [B, N, F]
    p = ref.params_of(agent)
    expect = ref.qnetwork(p, None, _with_ids(obs), None, norm_type=norm, norm_input=norm_input, train=False, rnn=False)
    assert np.abs(agent(ours(obs)).detach().numpy().swapaxes(0, 1) - expect).max() < 1e-12
    flat = _with_ids(obs).reshape(-1, F + N)  # the gradient step flattens the agents into the batch
    expect = ref.qnetwork(p, None, flat, None, norm_type=norm, norm_input=norm_input, train=True, rnn=False)
    with batch_statistics(agent):
        got = agent(ours(obs)).detach().numpy().swapaxes(0, 1).reshape(-1, A)
    assert np.abs(got - expect).max() < 1e-12
    for bn, mean in zip(agent.norm_layers(), [flat.mean(0)] if norm_input else []):  # flax: 0.99 r + 0.01 batch
        assert np.abs(bn.running_mean.numpy() - (0.99 * p["input_norm"]["mean"] + 0.01 * mean)).max() < 1e-12
        assert np.abs(bn.running_var.numpy() - (0.99 * p["input_norm"]["var"] + 0.01 * flat.var(0))).max() < 1e-12


def test_the_recurrent_network_is_jaxmarls_with_its_scanned_gru():
    """The SMAX network: input BatchNorm, Dense-BatchNorm-ReLU layers, a GRU (flax's GRUCell) reset at episode
    starts, the head; unrolled from the stored hidden state."""
    data, td = rollout(6, 5, seed=1)
    torch.manual_seed(0)
    agent = PQNRecurrentAgent(N, A, F, hidden=(H, H), norm="batch_norm", norm_input=True).double()
    _randomise_norms(agent, np.random.default_rng(2))
    p = ref.params_of(agent)
    x = _with_ids(data["obs"][:6]).reshape(6, N * 5, F + N)  # (T, N*E, F+N), agent-major as JaxMARL's reshape
    dones = np.repeat(data["last_done"][:, None, :], N, axis=1).reshape(6, N * 5)
    for train in (False, True):
        _, expect = ref.qnetwork(p, data["h0"].reshape(N * 5, H), x, dones, norm_type="batch_norm", norm_input=True,
                                 train=train)
        with batch_statistics(agent) if train else _nothing():
            q, _ = agent.unroll(td["agents", "observation"], td["agents", "rnn_hidden"][:, 0], td["is_init"])
        got = q.detach().numpy().transpose(1, 2, 0, 3).reshape(6, N * 5, A)  # [E, T, N, A] -> (T, N*E, A)
        assert np.abs(got - expect).max() < 1e-10, train


def test_flax_initialisation():
    """LeCun-normal Dense kernels truncated at 2σ (variance 1/fan_in), zero biases, orthogonal GRU gates."""
    torch.manual_seed(0)
    agent = PQNRecurrentAgent(N, A, 300, hidden=(400, 64))
    w = agent.encoder.layers[0].weight  # [400, 300 + N]
    fan_in = w.shape[1]
    assert abs(w.std().item() * fan_in ** 0.5 - 1.0) < 0.01
    assert w.abs().max().item() <= 2 / 0.87962566103423978 / fan_in ** 0.5 + 1e-7
    assert all((m.bias == 0).all() for m in agent.modules() if isinstance(m, torch.nn.Linear))
    w_hh = agent.rnn.gru.weight_hh_l0  # [3H, H]: one orthogonal [H, H] per gate
    for gate in w_hh.detach().chunk(3):
        assert torch.allclose(gate @ gate.T, torch.eye(64), atol=1e-5)
    assert (agent.rnn.gru.bias_hh_l0 == 0).all() and (agent.rnn.gru.bias_ih_l0 == 0).all()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------------------------- (a) JaxMARL's loss
@pytest.mark.parametrize("gamma, lam, seed", [(0.99, 0.85, 0), (0.9, 0.0, 1), (0.95, 1.0, 2), (0.99, 0.5, 3)])
def test_the_recurrent_loss_equals_jaxmarls(gamma, lam, seed):
    """pqn_vdn_rnn ``_loss_fn`` on a window of L steps: one train-mode forward from the stored hidden state, the
    λ-returns of its stop-gradient Q-values (legal actions only, Σ over agents of the per-agent maxima), the last
    step only bootstrapping, mean (Σ_i Q_i(chosen) − G)². Time limits end episodes as JaxMARL's done does."""
    L, E = 7, 6
    data, td = rollout(L, E, seed)
    torch.manual_seed(seed)
    agent = PQNRecurrentAgent(N, A, F, hidden=(H, H), norm="batch_norm", norm_input=True).double()
    _randomise_norms(agent, np.random.default_rng(seed + 10))
    p = ref.params_of(agent)
    x = _with_ids(data["obs"][:L]).reshape(L, N * E, F + N)
    dones = np.repeat(data["last_done"][:, None, :], N, axis=1).reshape(L, N * E)
    _, q = ref.qnetwork(p, data["h0"].reshape(N * E, H), x, dones, norm_type="batch_norm", norm_input=True, train=True)
    expect, target, vdn = ref.rnn_loss(q.reshape(L, N, E, A), data["avail"][:L], data["action"], data["reward"],
                                       data["done"].astype(float), gamma, lam)
    loss = _loss(agent, gamma, lam, train_last_step=False)
    batch = time_limits_as_terminal(td)  # terminated = terminated | truncated: JaxMARL's done
    out = loss(batch)
    assert abs(out["loss"].item() - expect) < 1e-10 * max(1.0, expect)
    err = batch["td_error"][:, :-1].numpy().T  # (L-1, E)
    assert np.abs(err - np.abs(vdn - target)).max() < 1e-9
    bn = agent.norm_layers()[0]  # the input BatchNorm's running averages moved once, as flax's mutable update
    assert np.abs(bn.running_mean.numpy() - (0.99 * p["input_norm"]["mean"] + 0.01 * x.reshape(-1, F + N).mean(0))
                  ).max() < 1e-12


@pytest.mark.parametrize("gamma, lam, T", [(0.9, 0.3, 6), (0.99, 0.0, 5), (0.9, 1.0, 4), (0.9, 0.3, 1)])
def test_the_feed_forward_targets_and_loss_equal_jaxmarls(gamma, lam, T):
    """pqn_vdn_ff: targets from the rollout-time Q-values (running averages) once before the epochs, the one-step
    target for NUM_STEPS = 1; then each minibatch of shuffled (t, env) pairs: the train-mode forward against them."""
    E = 8
    data, td = rollout(T, E, seed=T)
    torch.manual_seed(0)
    agent = PQNAgent(N, A, F, hidden=(H, 6), norm="batch_norm", norm_input=True).double()
    _randomise_norms(agent, np.random.default_rng(5))
    p = ref.params_of(agent)
    forward = lambda o, train: ref.qnetwork(p, None, _with_ids(o), None, norm_type="batch_norm",  # noqa: E731
                                            norm_input=True, train=train, rnn=False)
    expect = ref.ff_targets(forward(data["obs"][:T], False), forward(data["obs"][T], False), data["avail"][:T],
                            data["avail"][T], data["reward"], data["done"].astype(float), gamma, lam)  # (T, E)
    loss = _loss(agent, gamma, lam)
    batch = loss.value_targets(time_limits_as_terminal(td))
    assert np.abs(batch["value_target"].squeeze(-1).numpy().T - expect).max() < 1e-10
    pairs = np.random.default_rng(0).permutation(T * E)[: max(2, T * E // 3)]  # one minibatch of (t, env) pairs
    t_idx, e_idx = pairs // E, pairs % E
    mb_obs = _with_ids(data["obs"][t_idx, :, e_idx].swapaxes(0, 1))  # (N, B, F+N)
    q = forward(data["obs"][t_idx, :, e_idx].swapaxes(0, 1), True)
    mb_loss = ref.ff_loss(q, data["action"][t_idx, :, e_idx].T, expect[t_idx, e_idx])
    assert mb_obs.shape[1] == len(pairs)
    got = loss(batch[torch.as_tensor(e_idx), torch.as_tensor(t_idx)])["loss"].item()
    assert abs(got - mb_loss) < 1e-10 * max(1.0, mb_loss)


def test_the_lambda_returns_are_torchrls_td_lambda_and_jaxmarls_recursion():
    """The closed form G_t = r_t + γ(1 − d_t)[(1 − λ)V_{t+1} + λG_{t+1}] (G = r at an episode end, the last step
    bootstrapping) is JaxMARL's scan and torchrl's TD(λ) alike, to float64 rounding."""
    from torchrl.objectives.value.functional import td_lambda_return_estimate

    rng = np.random.default_rng(7)
    T, E = 9, 5
    q = rng.normal(size=(T, N, E, A))
    reward, done, last_q = rng.normal(size=(T, E)), (rng.random((T, E)) < 0.3).astype(float), rng.normal(size=E)
    g = ref.compute_targets(last_q, q, reward, done, 0.97, 0.6)
    v_next = np.concatenate([q[1:].max(-1).sum(1), last_q[None]])  # V_{t+1} (T, E)
    closed = np.zeros((T, E))
    nxt = last_q
    for t in reversed(range(T)):
        closed[t] = reward[t] + 0.97 * (1 - done[t]) * (v_next[t] if t == T - 1 else 0.4 * v_next[t] + 0.6 * nxt)
        nxt = closed[t]
    assert np.abs(g - closed).max() < 1e-12
    d = _t(done.T[..., None]).bool()
    torchrl = td_lambda_return_estimate(0.97, 0.6, _t(v_next.T[..., None]), _t(reward.T[..., None]), d, d)
    assert np.abs(torchrl.squeeze(-1).numpy().T - g).max() < 1e-12


def test_torch_radam_takes_optaxs_steps():
    """RAdam as JaxMARL's ``optax.radam`` (tests/_ref_pqn.py): the unrectified steps first (ρ_t < 5, the first five),
    then the rectified ones; torch puts ε inside the bias correction (train/learner.py ``make_optimizer``), so the
    steps agree to about ε / sqrt(v̂) relative."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=6) for _ in range(40)]
    p = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.RAdam([p], lr=1e-3)
    got = []
    for g in grads:
        before = p.detach().clone()
        p.grad = _t(g)
        opt.step()
        got.append((p.detach() - before).numpy())
    expect = ref.radam_steps(grads, 1e-3)
    for t, (a, b) in enumerate(zip(got, expect)):
        assert np.allclose(a, b, rtol=1e-6, atol=1e-12), t
    mu = 0.0
    for t, g in enumerate(grads[:6], start=1):
        mu = 0.9 * mu + 0.1 * g
        plain = -1e-3 * mu / (1 - 0.9 ** t)  # SGD with bias-corrected momentum: the unrectified step
        assert np.allclose(got[t - 1], plain, rtol=1e-12) == (t <= 5), t  # rectified from step 6 (ρ_6 = 5.99)


# ---------------------------------------------------------------------------------------------- training
import torchrl_vd as vd  # noqa: E402
from torchrl_vd.train.algos import get_algo  # noqa: E402
from torchrl_vd.train.config import ConfigError  # noqa: E402

VDN_FIT = torch.tensor([[-6.22, -4.89, -4.89], [-4.89, -3.56, -3.56], [-4.89, -3.56, -3.56]])  # test_train.py
TIMING = {"fps", "time", "collect_time", "update_time", "cpu_time", "rss_mb"}


def pqn_cfg(out, **kw):
    """A small PQN-VDN run on the m-step game (episodes of 4 steps inside every rollout of 8)."""
    base = dict(algo="pqn-vdn", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=8 * 8 * 6,
                frames_per_batch=64, hidden=(16,), eval_episodes=2, progress=False, out_dir=str(out),
                checkpoint_every=0, loss_kwargs={"num_minibatches": 4, "num_epochs": 2})
    base.update(kw)
    return vd.TrainConfig(**base)


def gru_kw(**kw):
    return dict(agent="gru", loss_kwargs={"num_minibatches": 4, "num_epochs": 2, "memory_window": 3,
                                          "norm": "batch_norm", "norm_input": True}, **kw)


def csv_rows(run_dir):
    import csv

    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_pqn_vdn_reaches_vdns_additive_fit_of_the_qtran_game(tmp_path):
    """Uniform exploration on the QTRAN game (Son et al. 2019, Table 1), one-step episodes (G = r): Σ_i Q_i is VDN's
    least-squares additive fit, whose greedy joint action lies in the {B, C}² block and pays exactly 0 (the game's
    optimum, 8, is not additive). The matrix preset (128 envs × 4 steps, 4 minibatches, decaying LR), 40 updates;
    two seeds in one process reach the same outcome as the lone run. Measured max |Σ_i Q_i − fit|: 0.28, 0.57, 0.29
    alone (seeds 0-2), 0.15 and 0.28 vectorized (seeds 0, 1)."""
    common = dict(algo="pqn-vdn", env="matrix/qtran", frames=512 * 40, eps_start=1.0, eps_end=1.0, progress=False,
                  eval_episodes=4, igm_eval=False)
    lone = vd.train(vd.TrainConfig(**common, seed=0, out_dir=str(tmp_path / "lone")))
    many = vd.train(vd.TrainConfig(**common, seeds=(0, 1), out_dir=str(tmp_path / "many")))
    tables = []
    for run in (lone, *many.runs):
        report = vd.check_igm(run.loss_module, run.env.reset()[:1])
        tables.append(report.joint_q[0])
        assert (tables[-1] - VDN_FIT).abs().max() < 0.65, tables[-1]
        assert report.holds.all()  # Σ_i Q_i: IGM by construction
        assert run.summary["final_eval_return"] == 0.0
        assert run.summary["updates"] == 40 * 4 * 4  # 40 rollouts x 4 epochs x 4 minibatches
    assert (tables[0] - tables[1]).abs().max() < 0.6  # seed 0 vectorized vs alone


def test_each_rollout_gets_k_epochs_of_m_minibatches_and_the_schedules_are_jaxmarls(tmp_path):
    """Per rollout K × M gradient steps; ε(u) = linear(1 → 0.05 over eps_decay × U updates) at u updates done, held
    within a rollout; LR(k) = lr + (1e-10 − lr) · k / (K·M·U) at gradient step k (optax.linear_schedule)."""
    cfg = pqn_cfg(tmp_path, lr=1e-3, eps_start=1.0, eps_end=0.05,
                  loss_kwargs={"num_epochs": 3, "num_minibatches": 4, "eps_decay": 0.5, "lr_linear_decay": True})
    run = vd.train(cfg)
    U, KM = 6, 12
    assert [r["updates"] for r in run.metrics] == [KM * (u + 1) for u in range(U)]
    eps = [1.0 + (0.05 - 1.0) * min(u, 3) / 3 for u in range(1, U + 1)]  # after update u: ε of the next rollout
    assert [r["eps"] for r in run.metrics] == pytest.approx(eps, abs=1e-12)
    # the learner on its own: the LR each gradient step used
    from torchrl_vd.train.population import build_population

    pop = build_population([cfg])
    learner = pop.make_learner(time_steps=8)
    assert learner.epsilon(0) == 1.0 and learner.epsilon(3 * 64) == pytest.approx(0.05)
    used = []
    real_step = learner.optimizer.step
    learner.optimizer.step = lambda: (used.append(learner.optimizer.param_groups[0]["lr"]), real_step())[1]
    batch = vd.make_env(cfg.env, num_envs=8, seed=0, **cfg.env_kwargs).rollout(8, break_when_any_done=False)
    for _ in range(2):
        learner.add(batch.unsqueeze(0))
        assert len(learner.update(cfg.updates_per_batch)) == KM  # updates_per_batch is not read
    total = KM * U
    assert used == pytest.approx([1e-3 + (1e-10 - 1e-3) * k / total for k in range(2 * KM)], rel=1e-12)
    assert learner.optimizer.state_dict()["state"][0]["step"].item() == 2 * KM


def test_the_recurrent_learner_trains_on_a_memory_window_of_the_previous_rollout(tmp_path):
    """The window = the last memory_window steps of the previous rollout + the new one (JaxMARL's memory); minibatches
    of whole windows over E/M envs."""
    from torchrl_vd.train.population import build_population

    cfg = pqn_cfg(tmp_path, **gru_kw())
    pop = build_population([cfg])
    learner = pop.make_learner(time_steps=8)
    env = vd.make_env(cfg.env, num_envs=8, seed=0, **cfg.env_kwargs)
    from torchrl.envs import InitTracker, TransformedEnv

    env = TransformedEnv(env, InitTracker())
    first = env.rollout(8, break_when_any_done=False)
    first.set(("agents", "rnn_hidden"), torch.randn(8, 8, 2, 16))  # [E, T, n, H]: m-step's 2 agents
    learner.add(first.unsqueeze(0))
    assert learner.data.shape == (8, 8)
    second = first.clone()
    second["next", "reward"] += 1.0
    learner.add(second.unsqueeze(0))
    assert learner.data.shape == (8, 11)  # 3 + 8 steps
    assert torch.equal(learner.data[:, :3]["next", "reward"], first[:, -3:]["next", "reward"])
    assert torch.equal(learner.data[:, 3:]["next", "reward"], second["next", "reward"])
    samples = list(learner.minibatches())
    assert len(samples) == 2 * 4 and all(s.shape == (2, 11) for s in samples)
    assert learner.state_dict()["replay_buffer"]["data"].shape == (8, 3)


# ---------------------------------------------------------------------------------------------- resume, many seeds
class _Killed(Exception):
    pass


def _killed_after_first_checkpoint(monkeypatch):
    """The next run dies right after its first checkpoint (every seed's) is on disk, before any later row, as a
    kill -9 would."""
    import importlib

    loop = importlib.import_module("torchrl_vd.train.loop")  # (torchrl_vd.train is also the function)
    real = loop.Training._checkpoint

    def checkpoint_then_die(self):
        real(self)
        monkeypatch.setattr(loop.Training, "_checkpoint", real)
        raise _Killed
    monkeypatch.setattr(loop.Training, "_checkpoint", checkpoint_then_die)


@pytest.mark.parametrize("variant", ["ff", "rnn"])
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, variant):
    """Killed right after its checkpoint at frame 192 (of 384), then resumed: the same metrics.csv and the same
    final networks, bitwise. The checkpoint holds RAdam's moments and step, the gradient-step count the LR schedule
    reads, the recurrent window and BatchNorm's running averages."""
    kw = dict(checkpoint_every=192, eval_every=128, lr=1e-3, loss_kwargs={"num_minibatches": 4, "num_epochs": 2,
                                                                          "lr_linear_decay": True})
    if variant == "rnn":
        kw.update(gru_kw(), checkpoint_every=192, eval_every=128, lr=1e-3)
        kw["loss_kwargs"]["lr_linear_decay"] = True
    full = vd.train(pqn_cfg(tmp_path / "full", **kw))
    _killed_after_first_checkpoint(monkeypatch)
    with pytest.raises(_Killed):
        vd.train(pqn_cfg(tmp_path / "part", **kw))
    assert len(csv_rows(tmp_path / "part")) == 3
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")))
    assert csv_rows(tmp_path / "full") == csv_rows(tmp_path / "part")
    a, b = full.loss_module.state_dict(), resumed.loss_module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from torchrl_vd.train.evaluation import evaluate_run

    assert evaluate_run(tmp_path / "part")["eval_return"] == resumed.summary["final_eval_return"]  # torchrl-vd eval


def _stacked_learner(cfg, out):
    from test_vectorized_seeds import collected  # noqa: F401  (the collector's layout of random play)
    from torchrl_vd.train.population import SeedStack, build_seed_parts, seed_config

    runs = [seed_config(cfg, k, out) for k in cfg.seeds]
    parts, seed_parts, info = build_seed_parts(runs)
    stack = SeedStack([p.loss_module for p in seed_parts], parts.loss_module)
    learner = get_algo("pqn-vdn").make_learner(cfg, stack.template, {}, time_steps=8, stack=stack)
    return stack, learner


@pytest.mark.parametrize("variant", ["ff", "rnn"])
def test_changing_one_seed_leaves_the_others_bitwise_unchanged(tmp_path, variant):
    """Three seeds in one process (BatchNorm under torch.vmap included): seed 0's data or parameters changed, seeds
    1 and 2 see bitwise the same returns, losses, gradients and networks after two rollouts of updates."""
    from test_vectorized_seeds import collected

    extra = gru_kw() if variant == "rnn" else {"loss_kwargs": {"num_minibatches": 4, "num_epochs": 2,
                                                               "norm": "batch_norm", "norm_input": True}}
    cfg = pqn_cfg(tmp_path, seeds=(0, 1, 2), **extra)
    batch = collected(cfg, 3)  # [N, E, T]
    if variant == "rnn":
        batch = batch.exclude(("agents", "last_action"), ("next", "agents", "last_action"))
    results = {}
    for case in ("base", "data", "params"):
        stack, learner = _stacked_learner(cfg, tmp_path)
        b = batch.clone()
        if case == "data":
            b["next", "reward"][0].mul_(-3.0).add_(1.0)
            b["agents", "observation"][0].add_(0.5)
        if case == "params":
            with torch.no_grad():
                for p in learner.params:
                    p[0].add_(0.1)
        torch.manual_seed(123)
        losses = []
        for _ in range(2):
            learner.add(b)
            losses += learner.update()
        after = {k: v.clone() for k, v in stack.template.state_dict().items()}
        results[case] = (torch.stack(losses), after)
    base_loss, base_after = results["base"]
    for case in ("data", "params"):
        loss, after = results[case]
        assert not torch.equal(loss[:, 0], base_loss[:, 0])
        assert torch.equal(loss[:, 1:], base_loss[:, 1:])
        assert all(torch.equal(after[k][1:], base_after[k][1:]) for k in after if after[k].ndim)


@pytest.mark.parametrize("variant", ["ff", "rnn"])
def test_one_seed_is_a_lone_run_and_the_vectorized_path_matches_it(tmp_path, variant):
    """``seeds=(k,)`` is a lone run (bitwise); the vectorized path at N = 1 draws the same shuffles and follows the
    same data (uniform exploration), its losses equal to float rounding (vmapped kernels sum in another order)."""
    from pathlib import Path

    from torchrl_vd.train.loop import Training
    from torchrl_vd.train.population import seed_config

    kw = dict(eps_start=1.0, eps_end=1.0, **(gru_kw() if variant == "rnn" else {}))
    plain = vd.train(pqn_cfg(tmp_path / "plain", seed=4, **kw))
    one = vd.train(pqn_cfg(tmp_path / "one", seeds=(4,), **kw))
    assert csv_rows(tmp_path / "plain") == csv_rows(tmp_path / "one" / "seed_4")
    cfg = pqn_cfg(tmp_path / "vec", seeds=(4,), **kw)
    run = seed_config(cfg, 4, Path(cfg.out_dir))
    vec = Training([run], [Path(run.out_dir)], stacked=True).run()[0]
    p_rows, v_rows = csv_rows(tmp_path / "plain"), csv_rows(tmp_path / "vec" / "seed_4")
    assert [r["train_return"] for r in p_rows] == [r["train_return"] for r in v_rows]
    for p, v in zip(p_rows, v_rows):
        assert abs(float(p["loss"]) - float(v["loss"])) <= 1e-4 * abs(float(p["loss"])), (p, v)
    a, b = plain.loss_module.state_dict(), vec.loss_module.state_dict()
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) < 1e-4
    assert one.runs[0].summary["final_eval_return"] == plain.summary["final_eval_return"]


def test_a_resumed_vectorized_run_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    kw = dict(seeds=(0, 5), checkpoint_every=192, eval_every=128, **gru_kw())
    vd.train(pqn_cfg(tmp_path / "full", **kw))
    _killed_after_first_checkpoint(monkeypatch)
    with pytest.raises(_Killed):
        vd.train(pqn_cfg(tmp_path / "part", **kw))
    assert [len(csv_rows(tmp_path / "part" / f"seed_{seed}")) for seed in (0, 5)] == [3, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "starting again from frame 0"
        vd.train(vd.train_config_for_resume(str(tmp_path / "part")))
    for seed in (0, 5):
        assert csv_rows(tmp_path / "full" / f"seed_{seed}") == csv_rows(tmp_path / "part" / f"seed_{seed}")


# ---------------------------------------------------------------------------------------------- configs
def test_configs_pqn_cannot_run_are_refused_naming_the_fix():
    with pytest.raises(ConfigError) as err:  # recurrent: the envs are split into minibatches
        vd.TrainConfig(algo="pqn-vdn", env="vmas/balance", agent="gru", num_envs=10, frames_per_batch=40)
    assert "loss.num_minibatches (16) must divide num_envs (10): the recurrent variant splits the envs into " \
           "minibatches; set loss.num_minibatches=10 or num_envs=16" in str(err.value)
    with pytest.raises(ConfigError, match=r"must divide frames_per_batch \(600\): the feed-forward variant splits "
                                          r"the rollout into minibatches; set loss.num_minibatches=15 or "
                                          r"frames_per_batch=400"):
        vd.TrainConfig(algo="pqn-vdn", env="vmas/balance", num_envs=100, frames_per_batch=600)
    with pytest.raises(ConfigError) as err:  # replay-buffer options: each named with what stands in for it
        vd.TrainConfig(algo="pqn-vdn", env="vmas/balance", buffer_size=5000, updates_per_batch=8, target_update=0.01,
                       eps_frames=10_000)
    text = str(err.value)
    for part in ("buffer_size=5000 does not apply to 'pqn-vdn': PQN keeps no replay buffer",
                 "updates_per_batch=8 does not apply to 'pqn-vdn': each rollout gets loss.num_epochs x "
                 "loss.num_minibatches gradient steps", "target_update=0.01 does not apply to 'pqn-vdn': PQN has no "
                 "target network", "eps_frames=10000 does not apply to 'pqn-vdn': ε anneals over loss.eps_decay"):
        assert part in text, text
    with pytest.raises(ConfigError, match="loss.memory_window .3. belongs to the recurrent variant"):
        vd.TrainConfig(algo="pqn-vdn", env="matrix/qtran", loss_kwargs={"memory_window": 3})
    with pytest.raises(ConfigError, match="shared by all agents.*set share_params=True"):
        vd.TrainConfig(algo="pqn-vdn", env="matrix/qtran", share_params=False)
    with pytest.raises(ConfigError, match="supports collector in \\['single', 'async'\\]"):
        vd.TrainConfig(algo="pqn-vdn", env="matrix/qtran", collector="multi")
    with pytest.raises(ConfigError, match="Unknown pqn-vdn loss option 'num_epoch'. Did you mean 'num_epochs'"):
        vd.TrainConfig(algo="pqn-vdn", env="matrix/qtran", loss_kwargs={"num_epoch": 2})


def test_the_presets_are_jaxmarls_and_the_replay_fields_of_the_families_stay_out():
    smax = vd.TrainConfig(algo="pqn-vdn", env="smax/3m")  # pqn_vdn_rnn_smax.yaml
    assert (smax.agent, smax.hidden, smax.num_envs, smax.frames_per_batch, smax.optimizer, smax.lr, smax.grad_clip,
            smax.gamma, smax.td_lambda, smax.eps_end, smax.reward_scale) == \
        ("gru", (512, 512), 128, 128 * 128, "radam", 2.5e-4, 1.0, 0.99, 0.85, 0.01, 10.0)
    assert smax.loss_kwargs == {"norm": "batch_norm", "norm_input": True, "memory_window": 4, "lr_linear_decay": True}
    import dataclasses

    default = {f.name: f.default for f in dataclasses.fields(vd.TrainConfig)}
    for name in get_algo("pqn-vdn").not_used:  # the smax family's replay settings (learning_starts 10k, ...) are not
        assert getattr(smax, name) == default[name], name
    mpe = vd.TrainConfig(algo="pqn-vdn", env="pettingzoo/simple_spread_v3")  # pqn_vdn_ff_mpe.yaml
    assert (mpe.agent, mpe.hidden, mpe.num_envs, mpe.frames_per_batch, mpe.lr, mpe.gamma, mpe.td_lambda,
            mpe.eps_end, mpe.bootstrap_time_limits) == ("mlp", (256, 256), 256, 4096, 5e-4, 0.9, 0.3, 0.1, False)
    saved = vd.TrainConfig.from_dict(smax.to_dict())  # a run's config read back: every field given, all fine
    assert saved.to_dict() == smax.to_dict()
