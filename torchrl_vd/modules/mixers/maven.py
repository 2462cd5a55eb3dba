"""MAVEN's networks (Mahajan et al., NeurIPS 2019; seed §MaVEN, REFERENCE.md "MAVEN").

A shared latent z (one-hot of size ``noise_dim``) is drawn once per episode from a hierarchical
policy π_z(z | s_0) and conditions the whole value function, so that *fixing z gives a monotonic
approximation* of Q* (seed) and each z is one mode of committed joint exploration:

* :class:`MavenAgent` — :class:`GRUAgent` trunk h_i; the output layer W(z, i) comes from a hypernetwork
  of z and the agent id: Q_i(τ_i, ·; z) = W(z, i) · h_i (authors' ``noise_rnn_agent``).
* :class:`MavenMixer` — QMIX whose state input is [s, z].
* :class:`MavenDiscriminator` — the variational posterior q_υ(z | σ(τ)): a GRU over the per-step
  [softmax(Q_1), ..., softmax(Q_n), s] (σ = per-agent Boltzmann policies) with logits over z.
* :func:`make_z_policy` — π_z(z | s_0) as a ``ProbabilisticTensorDictSequential`` with a
  ``OneHotCategorical``: ``set_exploration_type(RANDOM)`` samples z, ``DETERMINISTIC`` takes its mode.
* :class:`NoiseTransform` — the torchrl ``Transform`` that draws z at every (partial) reset from π_z
  given s_0 and copies it forward on every step, so z lives in the tensordict (and the replay buffer)
  for the whole episode.

Keys: ``"noise"`` [*B, noise_dim] (float one-hot z) and ``"noise_state0"`` [*B, S] (the s_0 it was
drawn from, kept for the z-policy's REINFORCE update), both at the root and mirrored under ``"next"``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F
from torchrl.data import Composite, OneHot, Unbounded
from torchrl.envs.transforms import Transform
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import OneHotCategorical

from torchrl_vd.modules.agents import GROUP, GRUAgent
from torchrl_vd.modules.mixers.qmix import QMixer

NOISE_KEY = "noise"
NOISE_STATE0_KEY = "noise_state0"


# --------------------------------------------------------------------------------------------------
# z-conditioned agents
# --------------------------------------------------------------------------------------------------


def _time_major(x: torch.Tensor | None, seq: bool) -> torch.Tensor | None:
    """Add a length-1 time axis at dim 1 to transition batches ([B, ...] -> [B, 1, ...])."""
    return x if (x is None or seq) else x.unsqueeze(1)


class MavenAgent(GRUAgent):
    """Q_i(τ_i, ·; z) = W(z, i) · h_i: a :class:`GRUAgent` trunk with a z- and id-conditioned output layer.

    ``h_i`` is the GRU trunk of :class:`GRUAgent` (same inputs, hidden-state keys, env transforms and
    fused unroll); its linear head is replaced by ``W(z, i)`` [A, H], produced by one linear
    hypernetwork of ``[z, onehot(i)]`` (authors' ``hyper_noise_fc1``), so different z's read different
    utilities off the same history features. Q has no bias, as in the authors' agent.

    Args:
        n_agents, n_actions, obs_dim: sizes.
        noise_dim: size of the one-hot latent z.
        hidden: trunk sizes, the last is the GRU width H (pymarl: ``(64,)``).
        **gru_kwargs: :class:`GRUAgent` options (``share_params``, ``agent_id``, ``last_action``).

    Call shapes: ``forward(obs [*B, n, F], hidden [*B, n, H], is_init [*B, 1], noise [*B, Z])`` ->
    ``(q [*B, n, A], next_hidden [*B, n, H])`` (one step, used by the collection policy);
    :meth:`evaluate` unrolls [B, T] sequences for the losses and also takes ``noise``/``next_noise``.

    Examples:
        >>> import torch
        >>> agent = MavenAgent(n_agents=2, n_actions=3, obs_dim=4, noise_dim=5, hidden=(16,))
        >>> obs, z = torch.randn(6, 7, 2, 4), torch.eye(5)[torch.randint(5, (6, 1))].expand(6, 7, 5)
        >>> q, q_next = agent.evaluate(obs, obs.roll(-1, 1), noise=z, next_noise=z)
        >>> q.shape
        torch.Size([6, 7, 2, 3])
        >>> q1, h1 = agent(obs[:, 0], noise=z[:, 0])  # one step from a zero hidden state
        >>> torch.allclose(q1, q[:, 0], atol=1e-5)
        True
    """

    def __init__(
        self, n_agents: int, n_actions: int, obs_dim: int, noise_dim: int, hidden: Sequence[int] = (64,), **gru_kwargs
    ):
        super().__init__(n_agents, n_actions, obs_dim, hidden=hidden, **gru_kwargs)
        if int(noise_dim) < 1:
            raise ValueError(f"noise_dim must be a positive integer, got {noise_dim}.")
        self.noise_dim = int(noise_dim)
        self.head = nn.Identity()  # the trunk now yields h; the utilities are W(z, i) · h (z_head)
        self.hyper_w = nn.Linear(self.noise_dim + n_agents, n_actions * self.hidden_size)  # W(z, i)

    def z_head(self, h: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Q_i = W(z, i) · h_i: ``h [*B, n, H]``, ``noise [*B, Z]`` -> ``[*B, n, A]``."""
        if noise is None or noise.shape[-1] != self.noise_dim or noise.shape[:-1] != h.shape[:-2]:
            got = None if noise is None else list(noise.shape)
            raise ValueError(
                f"MavenAgent needs the episode's latent z [*B={list(h.shape[:-2])}, noise_dim={self.noise_dim}], "
                f"got {got}. Collect with the NoiseTransform (AlgoParts.env_transforms of algo 'maven') so that "
                "'noise' is stored."
            )
        n = self.n_agents
        z = noise.to(h.dtype).unsqueeze(-2).expand(*h.shape[:-2], n, self.noise_dim)  # [*B, n, Z]
        ids = self._eye.expand(*h.shape[:-2], n, n)  # [*B, n, n]
        w = self.hyper_w(torch.cat((z, ids), -1))  # [*B, n, A*H]
        w = w.view(*h.shape[:-1], self.n_actions, self.hidden_size)  # [*B, n, A, H]
        return (w * h.unsqueeze(-2)).sum(-1)  # [*B, n, A, H] · [*B, n, 1, H] -> [*B, n, A] (3x faster than bmm here)

    def forward(
        self,
        obs: torch.Tensor,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``(Q(h^t, ·; z) [*B, n, A], h^t [*B, n, H])`` (hidden zeroed where ``is_init``)."""
        _, h = super().forward(obs, hidden, is_init, last_action)  # trunk only (head is the identity)
        return self.z_head(h, noise), h

    def evaluate(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        next_noise: torch.Tensor | None = None,
        need_current: bool = True,
        need_next: bool = True,
        last_action: torch.Tensor | None = None,
        next_last_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(Q(τ_t, ·; z), Q(τ_{t+1}, ·; z'))`` [*B, n, A] for transitions [B] or sequences [B, T].

        The trunk unrolls from ``hidden`` (the stored state at each sequence's first step; zeros if
        ``None``), resetting where ``is_init`` (:meth:`GRUAgent.unroll`). The next-step utilities take
        one more GRU step on ``next_obs`` from h_t for every step at once, which is exact at episode
        ends and truncations too.
        """
        if not (need_current or need_next):
            return None, None
        if obs.ndim < 4:  # single steps [B, n, F]
            _, h = super().forward(obs, hidden, is_init, last_action)  # [B, n, H]
        else:
            _, h = self.unroll(obs, hidden, is_init, last_action)  # [B, T, n, H]
        q = self.z_head(h, noise) if need_current else None
        q_next = None
        if need_next:
            _, h_next = super().forward(next_obs, h, None, next_last_action)  # one step from h_t: [*B, n, H]
            q_next = self.z_head(h_next, next_noise)
        return q, q_next

    def policy_module(self, group: str = GROUP) -> TensorDictModule:
        """Reads obs, hidden, ``is_init``, the episode's z (``"noise"``) and, with ``last_action``, the
        previous actions; writes ``(group, "action_value")`` and ``("next", group, "rnn_hidden")``."""
        in_keys = [(group, "observation"), (group, "rnn_hidden"), "is_init", NOISE_KEY]
        if self.last_action:
            in_keys.append((group, "last_action"))
        out_keys = [(group, "action_value"), ("next", group, "rnn_hidden")]
        return TensorDictModule(self, in_keys=in_keys, out_keys=out_keys)


# --------------------------------------------------------------------------------------------------
# z-conditioned mixer
# --------------------------------------------------------------------------------------------------


class MavenMixer(QMixer):
    """QMIX on the state augmented with the latent: Q_tot = f_mix(Q_1..Q_n; θ_mix([s, z])).

    For a fixed z this is a monotonic mixer (seed: "fixing z gives a monotonic approximation"), so IGM
    holds per z. Call with the concatenated ``[s, z]`` (:meth:`condition` builds it):
    ``mixer(chosen [*B, n, 1], condition(state, noise)) -> [*B, 1]``.

    Args:
        n_agents: number of agents n.
        state_shape: shape of the env state s.
        noise_dim: size of z.
        **qmix_kwargs: :class:`QMixer` options (mixing_embed_dim, hypernet_layers, hypernet_embed).
    """

    def __init__(self, n_agents: int, state_shape: Sequence[int] | int, noise_dim: int, **qmix_kwargs):
        env_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        env_dim = int(torch.Size(env_shape).numel())
        super().__init__(n_agents, (env_dim + int(noise_dim),), **qmix_kwargs)
        self.env_state_shape, self.noise_dim = env_shape, int(noise_dim)

    def condition(self, state: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``[s, z]``: ``state [*B, *S]``, ``noise [*B, Z]`` -> ``[*B, S + Z]``."""
        batch = noise.shape[:-1]
        return torch.cat((state.reshape(*batch, -1), noise.to(state.dtype)), -1)


# --------------------------------------------------------------------------------------------------
# variational discriminator q(z | σ(τ))
# --------------------------------------------------------------------------------------------------


class MavenDiscriminator(nn.Module):
    """q_υ(z | σ(τ)) on the per-step ``[softmax(Q_1), ..., softmax(Q_n), s_t]`` (σ: Boltzmann policies).

    ``recurrent=True`` (authors' ``rnn_discrim``, the REFERENCE m-step setting): ``g_t = GRU(x_t, g_{t-1})``
    aggregates the trajectory and ``logits_t = MLP(g_t)`` is the posterior given the trajectory up to t;
    :class:`MavenLoss` scores it where each episode (segment) ends. ``recurrent=False`` (the authors'
    other variant): ``logits_t = MLP(x_t)`` from the step alone, scored at every step. The MLP is the
    authors' ``Discrim``: ``Linear(·, hidden)-ReLU-Linear(hidden, noise_dim)``.

    Args:
        n_agents, n_actions: sizes of σ (per-agent Boltzmann policies).
        state_dim: size of the (flattened) state s.
        noise_dim: number of z classes.
        hidden: GRU and MLP width (authors' ``discrim_size``: 32).
        recurrent: aggregate over the trajectory with a GRU.
    """

    def __init__(
        self, n_agents: int, n_actions: int, state_dim: int, noise_dim: int, hidden: int = 32, recurrent: bool = True
    ):
        super().__init__()
        self.n_agents, self.n_actions, self.state_dim = int(n_agents), int(n_actions), int(state_dim)
        self.noise_dim, self.hidden, self.recurrent = int(noise_dim), int(hidden), bool(recurrent)
        in_dim = self.n_agents * self.n_actions + self.state_dim
        self.rnn = nn.GRUCell(in_dim, self.hidden) if self.recurrent else None
        self.head = nn.Sequential(
            nn.Linear(self.hidden if self.recurrent else in_dim, self.hidden), nn.ReLU(),
            nn.Linear(self.hidden, self.noise_dim),
        )

    def forward(
        self, policies: torch.Tensor, state: torch.Tensor, is_init: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``policies [B, T, n, A]``, ``state [B, T, *S]``, ``is_init [B, T(, 1)]`` -> logits ``[B, T, Z]``.

        Transition batches ([B, n, A], [B, *S]) are treated as length-1 sequences. The GRU restarts
        at every ``is_init`` step (a new episode, hence a new z) and at each sequence's first step.
        """
        seq = policies.ndim == 4
        policies = _time_major(policies, seq)  # [B, T, n, A]
        B, T = policies.shape[:2]
        state = (state if seq else state.unsqueeze(1)).reshape(B, T, -1)  # [B, T, S]
        x = torch.cat((policies.flatten(-2), state.to(policies.dtype)), -1)  # [B, T, n*A + S]
        if self.recurrent:
            init = None if is_init is None else _time_major(is_init, seq).reshape(B, T, 1).bool()
            g, gs = x.new_zeros(B, self.hidden), []
            for t in range(T):
                if init is not None:
                    g = g.masked_fill(init[:, t], 0.0)
                g = self.rnn(x[:, t], g)  # [B, hidden]
                gs.append(g)
            x = torch.stack(gs, 1)  # [B, T, hidden]
        logits = self.head(x)  # [B, T, Z]
        return logits if seq else logits.squeeze(1)


# --------------------------------------------------------------------------------------------------
# hierarchical z-policy π_z(z | s_0) and the per-episode noise transform
# --------------------------------------------------------------------------------------------------


class ZPolicyNet(nn.Module):
    """Logits of π_z(z | s_0): ``Linear(S,128)-ReLU-Linear(128,Z)`` (authors'), or all zeros (uniform).

    Args:
        state_shape: shape of s_0 (flattened inside).
        noise_dim: number of z classes.
        learned: ``False`` gives the uniform z-policy (no parameters).
        hidden: width of the hidden layer (authors': 128).
    """

    def __init__(self, state_shape: Sequence[int] | int, noise_dim: int, *, learned: bool = True, hidden: int = 128):
        super().__init__()
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        self.state_dim = int(torch.Size(self.state_shape).numel())
        self.noise_dim, self.learned = int(noise_dim), bool(learned)
        self.net = (
            nn.Sequential(nn.Linear(self.state_dim, hidden), nn.ReLU(), nn.Linear(hidden, self.noise_dim))
            if self.learned
            else None
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """``state [*B, *S]`` -> logits ``[*B, Z]``."""
        s = state.flatten(state.ndim - len(self.state_shape)).float() if self.state_shape else state.float()  # [*B, S]
        if self.net is None:
            return s.new_zeros(*s.shape[:-1], self.noise_dim)  # uniform
        return self.net(s)


def make_z_policy(
    state_shape: Sequence[int] | int,
    noise_dim: int,
    *,
    learned: bool = True,
    hidden: int = 128,
    state_key: NestedKey = "state",
    noise_key: NestedKey = NOISE_KEY,
) -> ProbabilisticTensorDictSequential:
    """π_z(z | s_0) as a probabilistic tensordict module: ``state_key`` -> ``noise_key`` (one-hot).

    The distribution is torchrl's ``OneHotCategorical`` on :class:`ZPolicyNet` logits. Selection follows
    ``set_exploration_type``: ``RANDOM`` (and no context: the default here) samples z, ``DETERMINISTIC``
    takes the mode (the z-policy's greedy z; for the uniform policy that is z = 0). ``.get_dist(td)``
    gives the distribution for the REINFORCE update (seed: L_RL).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.envs.utils import ExplorationType, set_exploration_type
        >>> pi = make_z_policy(state_shape=3, noise_dim=4)
        >>> td = TensorDict(state=torch.zeros(5, 3), batch_size=[5])
        >>> pi(td)["noise"].shape
        torch.Size([5, 4])
        >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
        ...     z = pi(td)["noise"]
        >>> bool((z == z[0]).all())  # the mode: the same z for the same s_0
        True
    """
    net = ZPolicyNet(state_shape, noise_dim, learned=learned, hidden=hidden)
    return ProbabilisticTensorDictSequential(
        TensorDictModule(net, in_keys=[state_key], out_keys=["noise_logits"]),
        ProbabilisticTensorDictModule(
            in_keys={"logits": "noise_logits"},
            out_keys=[noise_key],
            distribution_class=OneHotCategorical,
            default_interaction_type=InteractionType.RANDOM,
        ),
    )


class NoiseTransform(Transform):
    """Keeps MAVEN's per-episode latent z in the tensordict: drawn at reset, copied forward on step.

    On reset, z ~ π_z(· | s_0) for the environments being reset (the others keep theirs: torchrl
    merges a partial reset's output only where ``_reset`` is set), written to ``noise_key`` as a
    float one-hot [*B, noise_dim], together with s_0 at ``state0_key``. On every step both are copied
    to ``("next", ...)``, so every transition of an episode carries the same z into the replay buffer.
    The z-policy module is shared (not copied), so its REINFORCE updates take effect at the next reset.

    With ``epsilon > 0``, each reset draws z uniformly with probability ε instead of from π_z, but only
    while exploring (torchrl's exploration type RANDOM, the collector's default, as ``EGreedyModule``
    does for actions); greedy evaluation (DETERMINISTIC) always takes π_z's mode. This keeps every z
    in the data after π_z has concentrated (the authors' ``bandit_epsilon``): the committed
    exploration MAVEN relies on is the variety of z's, and a π_z that collapses onto one z early, before
    any z has found a better mode, leaves a single QMIX.

    Args:
        z_policy: π_z (see :func:`make_z_policy`), reading ``state_key`` and writing ``noise_key``.
        noise_dim: size of z.
        epsilon: probability of a uniform z at a reset while exploring (0 = always π_z).
        state_key: where s_0 is read. Default ``"state"``.
        noise_key: where z is written. Default ``"noise"``.
        state0_key: where s_0 is kept for the episode. Default ``"noise_state0"``.
    """

    def __init__(
        self,
        z_policy: TensorDictModule,
        noise_dim: int,
        *,
        state_key: NestedKey = "state",
        noise_key: NestedKey = NOISE_KEY,
        state0_key: NestedKey = NOISE_STATE0_KEY,
        epsilon: float = 0.0,
    ):
        super().__init__(in_keys=[state_key], out_keys=[noise_key, state0_key])
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"NoiseTransform: epsilon is a probability in [0, 1], got {epsilon!r}.")
        self.z_policy, self.noise_dim, self.epsilon = z_policy, int(noise_dim), float(epsilon)
        self.state_key, self.noise_key, self.state0_key = state_key, noise_key, state0_key

    @torch.no_grad()
    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        s0 = tensordict_reset.get(self.state_key)  # [*B, *S]
        z = self.z_policy(tensordict_reset.select(self.state_key))[self.noise_key].to(torch.float32)  # [*B, Z] one-hot
        if self.epsilon > 0 and exploration_type() in (ExplorationType.RANDOM, None):
            batch = z.shape[:-1]
            uniform = F.one_hot(torch.randint(self.noise_dim, batch, device=z.device), self.noise_dim)  # [*B, Z]
            explore = torch.rand(batch, device=z.device) < self.epsilon  # [*B]
            z = torch.where(explore.unsqueeze(-1), uniform.to(z.dtype), z)  # [*B, Z]
        tensordict_reset.set(self.noise_key, z)
        tensordict_reset.set(self.state0_key, s0.clone())
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for key in (self.noise_key, self.state0_key):  # z and s_0 are constant within an episode
            next_tensordict.set(key, tensordict.get(key).clone())
        return next_tensordict

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict  # nothing to do outside an env (e.g. in a replay buffer)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        batch = observation_spec.shape
        state_spec = observation_spec[self.state_key]
        device = observation_spec.device
        observation_spec[self.noise_key] = OneHot(
            self.noise_dim, shape=(*batch, self.noise_dim), dtype=torch.float32, device=device
        )
        observation_spec[self.state0_key] = Unbounded(shape=state_spec.shape, dtype=state_spec.dtype, device=device)
        return observation_spec


__all__ = [
    "MavenAgent",
    "MavenDiscriminator",
    "MavenMixer",
    "NoiseTransform",
    "ZPolicyNet",
    "make_z_policy",
]
