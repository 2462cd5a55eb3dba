"""PQN-VDN (Gallici et al. 2025; JaxMARL's pqn_vdn_rnn.py / pqn_vdn_ff.py): the network, the λ-returns and the loss
equal a float64 port of JaxMARL's code (tests/_ref_pqn.py) on identical weights and random rollouts with episode
ends inside, time limits and action masks; the schedule (K epochs × M minibatches per rollout, RAdam, LR and ε
formulas); the matrix-game outcome; resume, many seeds and the config's refusals."""

from __future__ import annotations

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
