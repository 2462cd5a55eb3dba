"""A float64 numpy port of JaxMARL's PQN-VDN maths, for equality tests (tests/test_pqn.py).

Ported from FLAIROx/JaxMARL @ c793d095618c6d3edfb5632802348f57b70a4b94 (last change to the maths: 050d3c8,
2024-12-13), ``baselines/QLearning/pqn_vdn_rnn.py``: ``QNetwork.__call__`` with ``ScannedRNN`` (flax GRUCell),
``_compute_targets`` / ``_get_target`` (a reverse ``lax.scan``) and ``_loss_fn``; ``pqn_vdn_ff.py``: the targets
before the epochs and the minibatch loss. Layout as JaxMARL's: time first, then agents, then envs
(``(T, N, E, ...)``); ``jax.lax.scan(reverse=True)`` is a reversed Python loop, ``stop_gradient`` needs nothing
here. Flax parameters are taken from the torch modules under test (``params_of``).
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------------------------- QNetwork
def batch_norm(x, p, train):
    """flax nn.BatchNorm(use_running_average=not train) over every axis but the last (its batch statistics:
    mean and biased variance; ε 1e-5)."""
    if train:
        axes = tuple(range(x.ndim - 1))
        mean, var = x.mean(axes), x.var(axes)
    else:
        mean, var = p["mean"], p["var"]
    return (x - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def layer_norm(x, p):
    """flax nn.LayerNorm() (ε 1e-6)."""
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_cell(p, h, x):
    """flax nn.GRUCell: r, z = σ(W_i x + b_i + W_h h); n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));
    h' = (1 − z) ⊙ n + z ⊙ h."""
    r = sigmoid(x @ p["ir"]["kernel"] + p["ir"]["bias"] + h @ p["hr"]["kernel"])
    z = sigmoid(x @ p["iz"]["kernel"] + p["iz"]["bias"] + h @ p["hz"]["kernel"])
    n = np.tanh(x @ p["in"]["kernel"] + p["in"]["bias"] + r * (h @ p["hn"]["kernel"] + p["hn"]["bias"]))
    return (1.0 - z) * n + z * h


def qnetwork(p, hidden, x, dones, *, norm_type, norm_input, train, rnn=True):
    """QNetwork.__call__: x (T, B, F), dones (T, B), hidden (B, H) -> (hidden, q (T, B, A)); ff: x (B, F) -> q."""
    if norm_input:
        x = batch_norm(x, p["input_norm"], train)
    for layer in p["layers"]:
        x = x @ layer["dense"]["kernel"] + layer["dense"]["bias"]
        if norm_type == "layer_norm":
            x = layer_norm(x, layer["norm"])
        elif norm_type == "batch_norm":
            x = batch_norm(x, layer["norm"], train)
        x = np.maximum(x, 0.0)
    if rnn:
        ys = []
        for t in range(x.shape[0]):  # ScannedRNN: reset where dones, then the cell
            hidden = np.where(dones[t][:, None], 0.0, hidden)
            hidden = gru_cell(p["gru"], hidden, x[t])
            ys.append(hidden)
        x = np.stack(ys)
    q = x @ p["head"]["kernel"] + p["head"]["bias"]
    return (hidden, q) if rnn else q


# ---------------------------------------------------------------------------------------------- targets, loss
def compute_targets(last_q, q_vals, reward, done, gamma, lam):
    """``_compute_targets``: last_q (B,), q_vals (T, N, B, A) already masked, reward / done (T, B) -> (T, B)."""
    lambda_returns = reward[-1] + gamma * (1 - done[-1]) * last_q
    last_q = q_vals[-1].max(-1).sum(0)  # sum over agents
    carry, out = (lambda_returns, last_q), []
    for t in reversed(range(q_vals.shape[0] - 1)):  # lax.scan(_get_target, ..., xs[:-1], reverse=True)
        rew, q, d = reward[t], q_vals[t], done[t]
        returns, next_q = carry
        target_bootstrap = rew + gamma * (1 - d) * next_q
        delta = returns - next_q
        returns = target_bootstrap + gamma * lam * delta
        returns = (1 - d) * returns + d * rew
        next_q = q.max(-1).sum(0)
        carry = (returns, next_q)
        out.append(returns)
    targets = np.stack(out[::-1]) if out else np.zeros((0, *lambda_returns.shape))
    return np.concatenate([targets, lambda_returns[None]])


def rnn_loss(q_vals, avail, action, reward, done, gamma, lam):
    """pqn_vdn_rnn ``_loss_fn`` after the forward: q_vals (L, N, b, A) of the train-mode network, avail (L, N, b, A),
    action (L, N, b), reward / done (L, b) -> (loss, targets (L-1, b), vdn chosen (L-1, b))."""
    valid_q = q_vals - (1 - avail) * 1e10
    last_q = valid_q[-1].max(-1).sum(0)
    target = compute_targets(last_q, valid_q[:-1], reward[:-1], done[:-1], gamma, lam)  # (L-1, b)
    chosen = np.take_along_axis(q_vals, action[..., None], axis=-1).squeeze(-1)  # (L, N, b)
    vdn = chosen.sum(1)[:-1]  # (L-1, b)
    return np.mean((vdn - target) ** 2), target, vdn


def ff_targets(q_vals, last_q_vals, avail, last_avail, reward, done, gamma, lam):
    """pqn_vdn_ff, before the epochs: rollout Q (T, N, E, A), Q at last_obs (N, E, A) -> targets (T, E)."""
    last_q = (last_q_vals - (1 - last_avail) * 1e10).max(-1).sum(0)  # (E,)
    if q_vals.shape[0] == 1:  # NUM_STEPS == 1: standard one-step Q-learning
        return (reward[-1] + (1 - done[-1]) * gamma * last_q)[None]
    return compute_targets(last_q, q_vals - (1 - avail) * 1e10, reward, done, gamma, lam)


def ff_loss(q_vals, action, target):
    """pqn_vdn_ff ``_loss_fn``: q_vals (N, B, A) of the train-mode network, action (N, B), target (B,)."""
    chosen = np.take_along_axis(q_vals, action[..., None], axis=-1).squeeze(-1)  # (N, B)
    return np.mean((chosen.sum(0) - target) ** 2)


# ---------------------------------------------------------------------------------------------- torch -> flax
def params_of(agent) -> dict:
    """The flax parameter tree of a torchrl_vd PQN agent (float64 numpy): kernels ``[in, out]``; the GRU's torch
    gate rows (r, z, n) split per gate, torch's redundant hidden r/z biases folded into the input biases."""
    def t(x):
        return x.detach().double().numpy().copy()

    def norm(m):
        if not hasattr(m, "weight"):
            return None
        d = {"scale": t(m.weight), "bias": t(m.bias)}
        if hasattr(m, "running_mean"):
            d.update(mean=t(m.running_mean), var=t(m.running_var))
        return d

    body = agent.body if hasattr(agent, "body") else agent.encoder
    mods = list(body.layers)
    p = {"layers": [{"dense": {"kernel": t(mods[i].weight).T, "bias": t(mods[i].bias)}, "norm": norm(mods[i + 1])}
                    for i in range(0, len(mods), 3)],
         "input_norm": norm(body.input_norm), "head": {"kernel": t(agent.head.weight).T, "bias": t(agent.head.bias)}}
    if hasattr(agent, "rnn"):
        gru = agent.rnn.gru
        w_ih, w_hh, b_ih, b_hh = (t(x) for x in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0))
        H = w_hh.shape[1]
        g = {}
        for k, gate in enumerate("rzn"):
            rows = slice(k * H, (k + 1) * H)
            bias = b_ih[rows] + (b_hh[rows] if gate != "n" else 0.0)
            g[f"i{gate}"] = {"kernel": w_ih[rows].T, "bias": bias}
            g[f"h{gate}"] = {"kernel": w_hh[rows].T, **({"bias": b_hh[rows]} if gate == "n" else {})}
        p["gru"] = g
    return p


# ---------------------------------------------------------------------------------------------- optax.radam
def radam_steps(grads, lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0):
    """The parameter changes of ``optax.radam(lr)`` for a sequence of gradients (google-deepmind/optax
    ``optax/_src/transform.py`` ``scale_by_radam``, then ``scale_by_learning_rate``)."""
    ro_inf = 2.0 / (1.0 - b2) - 1.0
    mu, nu, out = 0.0, 0.0, []
    for count, g in enumerate(grads, start=1):
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g * g
        b2t = b2 ** count
        ro = ro_inf - 2 * count * b2t / (1 - b2t)
        mu_hat, nu_hat = mu / (1 - b1 ** count), nu / (1 - b2t)
        if ro >= threshold:
            r = np.sqrt((ro - 4.0) * (ro - 2.0) * ro_inf / ((ro_inf - 4.0) * (ro_inf - 2.0) * ro))
            update = r * mu_hat / (np.sqrt(nu_hat + eps_root) + eps)
        else:
            update = mu_hat
        out.append(-lr * update)
    return out
