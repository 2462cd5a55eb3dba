"""MAVEN: latent-conditioned QMIX + variational MI + a hierarchical z-policy (seed §MaVEN).

The seed's complete objective::

    max  L_RL(θ) + λ_MI · L_V(υ, φ, η, ψ) − λ_QL · L_QL(φ, η, ψ)

is split the way the authors train it:

* :class:`MavenLoss` (the gradient step of the shared loop) minimises
  ``λ_QL · L_QL + λ_MI · L_MI`` over the agents, mixer and discriminator, where L_QL is the TD loss of
  the z-conditioned QMIX (Q_tot(s, a; z) with z fixed for the episode) and L_MI = −E[log q_υ(z | σ(τ))]
  is the cross-entropy of the variational discriminator (maximising the bound L_V = H(z) + E log q_υ,
  H(z) being constant in these parameters).
* :class:`ZPolicyTrainer` (the loop's ``after_batch`` hook) maximises L_RL over π_z's parameters θ only
  (parameter freezing: REINFORCE on the episode returns in the data, no Q network in the graph).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler

from torchrl_vd.modules.mixers.maven import (
    NOISE_KEY,
    NOISE_STATE0_KEY,
    MavenAgent,
    MavenDiscriminator,
    MavenMixer,
    NoiseTransform,
    ZPolicyNet,
    make_z_policy,
)
from torchrl_vd.objectives.common import Batch, ValueDecompositionLoss, _next
from torchrl_vd.objectives.mixing import MixingQLoss
from torchrl_vd.train.registry import AlgoParts, register_algo


class MavenLoss(MixingQLoss):
    """``loss = λ_QL · L_QL + λ_MI · L_MI`` (seed §MaVEN; the z-policy's L_RL is :class:`ZPolicyTrainer`).

    * L_QL = E[(Q_tot(s_t, a_t; z) − [r + γ max_a' Q̄_tot(s_{t+1}, a'; z)])²]: the
      :class:`MixingQLoss` TD loss with z-conditioned agents (:class:`MavenAgent`) and a mixer on
      [s, z] (:class:`MavenMixer`); z is read from the batch (``"noise"``, stored by the
      :class:`NoiseTransform`). Double Q, masks, TD(λ) and priorities work as in every loss.
    * L_MI = −E[log q_υ(z | σ(τ))]: cross-entropy of the discriminator (:class:`MavenDiscriminator`) on
      the per-agent Boltzmann policies σ_t = softmax(Q_i / τ) (illegal actions excluded) and s_t. The
      recurrent discriminator (a GRU over the trajectory) is scored at the end of each episode segment
      in the batch (done steps and each sequence's last step); the per-step one at every step; both
      only where the base's valid mask allows (padding and burn-in excluded). Its gradient reaches the
      agents through softmax(Q), which pushes different z's towards distinguishable behaviour. The GRU
      restarts at each episode start (``is_init``) and at each sampled sequence's first step, so a
      sequence that starts mid-episode is judged on its visible part only.

    Args:
        agent_net: a :class:`MavenAgent` (any ``AgentNet`` whose ``evaluate`` takes ``noise`` /
            ``next_noise``).
        mixer: a :class:`MavenMixer` (QMIX on [s, z]).
        discriminator: a :class:`MavenDiscriminator` q_υ(z | σ(τ)).

    Keyword Args:
        noise_dim: size of z (must match the three networks).
        lambda_mi: weight λ_MI of L_MI (authors' ``mi_loss``: 1).
        lambda_ql: weight λ_QL of L_QL (1).
        temperature: τ of the Boltzmann policies σ = softmax(Q_i / τ) (authors: 1).
        **kwargs: :class:`ValueDecompositionLoss` options (double_q, loss_function, burn_in, ...).

    Returns (forward): ``loss`` (optimise this), ``loss_ql`` (= ``loss_td``, the TD term), ``loss_mi``,
    and ``loss_rl``: the z-policy's last REINFORCE loss, reported from the :class:`ZPolicyTrainer` that
    was given this loss (NaN before its first update or for a uniform z-policy); it has no gradient here.

    Examples:
        >>> import torch
        >>> from torchrl_vd.objectives.maven import MavenLoss
        >>> from torchrl_vd.modules.mixers.maven import MavenAgent, MavenMixer, MavenDiscriminator
        >>> from torchrl_vd.testing import random_batch
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=(4, 5), state_dim=6)
        >>> td["noise"] = td["next", "noise"] = torch.eye(8)[torch.randint(8, (4, 1))].expand(4, 5, 8)
        >>> loss = MavenLoss(MavenAgent(2, 3, 4, noise_dim=8), MavenMixer(2, 6, noise_dim=8),
        ...                  MavenDiscriminator(2, 3, 6, noise_dim=8), noise_dim=8)
        >>> sorted(loss(td).keys())
        ['loss', 'loss_mi', 'loss_ql', 'loss_rl', 'loss_td']
    """

    @dataclass
    class _AcceptedKeys(ValueDecompositionLoss._AcceptedKeys):
        """The base's entries plus:

        Attributes:
            noise: the episode's latent z, one-hot [*B, noise_dim] (also read under ``"next"``).
                Default ``"noise"``.
        """

        noise: NestedKey = NOISE_KEY

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    mixer: MavenMixer
    discriminator: MavenDiscriminator

    def __init__(
        self,
        agent_net: nn.Module,
        mixer: MavenMixer,
        discriminator: nn.Module,
        *,
        noise_dim: int,
        lambda_mi: float = 1.0,
        lambda_ql: float = 1.0,
        temperature: float = 1.0,
        **kwargs,
    ):
        super().__init__(agent_net, mixer, **kwargs)
        self.noise_dim = int(noise_dim)
        for name, net in (("agent_net", self.agent_net), ("mixer", mixer), ("discriminator", discriminator)):
            if getattr(net, "noise_dim", None) != self.noise_dim:
                raise ValueError(
                    f"MavenLoss(noise_dim={self.noise_dim}) got a {name} built for noise_dim="
                    f"{getattr(net, 'noise_dim', None)}; build all three with the same noise_dim."
                )
        if float(lambda_mi) < 0 or float(lambda_ql) < 0:
            raise ValueError(f"lambda_mi and lambda_ql must be >= 0, got {lambda_mi}, {lambda_ql}.")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.lambda_mi, self.lambda_ql, self.temperature = float(lambda_mi), float(lambda_ql), float(temperature)
        self.discriminator = discriminator  # no target copy: L_MI has no bootstrapped target
        self.register_buffer("last_loss_rl", torch.tensor(float("nan")))
        self._online_q: torch.Tensor | None = None  # Q(τ_t, ·; z) of the TD pass, reused by L_MI
        self._keep_online_q = False

    # ------------------------------------------------------------------ z-conditioning hooks
    def noise(self, b: Batch, *, next: bool = False) -> torch.Tensor:
        """The episode's z [*B, noise_dim] from the batch (clear error when it was not collected)."""
        key = _next(self.tensor_keys.noise) if next else self.tensor_keys.noise
        z = b.td.get(key, None)
        if z is None and next:  # an evaluation batch (IGM check) has no "next": z is constant anyway
            z = b.td.get(self.tensor_keys.noise, None)
        if z is None:
            raise KeyError(
                f"MavenLoss needs the latent z at {key!r}. Collect with the NoiseTransform (algo 'maven' adds "
                "it to the env) or map the key with loss.set_keys(noise=...)."
            )
        return z

    def utilities(self, b: Batch, *, target: bool = False, need_current: bool = True, need_next: bool = True):
        """Per-agent utilities Q_i(τ_i, ·; z) at t and t+1 [*B, n, A], z read from the batch."""
        net = self.target("agent_net") if target else self.agent_net
        q, q_next = net.evaluate(
            b.obs, b.next_obs, hidden=b.hidden, is_init=b.is_init, noise=self.noise(b),
            next_noise=self.noise(b, next=True) if need_next else None,
            need_current=need_current, need_next=need_next, **net.extra_inputs(b.td, self.group),
        )
        if self._keep_online_q and not target and need_current:
            self._online_q = q  # reused by L_MI in _losses (one agent unroll per update, not two)
        return q, q_next

    def mixer_state(self, b: Batch, *, next: bool = False) -> torch.Tensor:
        """[s, z]: the mixer conditions on the state and the episode's latent."""
        state = b.next_state if next else b.state
        if state is None:
            raise KeyError("MAVEN's mixer needs the state s (root 'state'); set_keys(state=...) if it lives elsewhere.")
        return self.mixer.condition(state, self.noise(b, next=next))

    # ------------------------------------------------------------------ losses
    def mi_loss(self, b: Batch, q: torch.Tensor) -> torch.Tensor:
        """L_MI = −E[log q_υ(z | σ(τ))], σ = per-agent softmax(Q_i) (seed: Boltzmann policies).

        A recurrent discriminator aggregates the trajectory; its prediction is scored where each episode
        segment of the batch ends — done steps and each sequence's last step (the authors score each
        episode's final aggregate). A per-step discriminator is scored at every step. Both average over
        the scored steps the base's valid mask keeps (padding and burn-in excluded).
        """
        if b.state is None:
            raise KeyError("MAVEN's discriminator needs the state s (root 'state').")
        policies = torch.softmax(self.masked(q, b.action_mask) / self.temperature, dim=-1)  # σ: [*B, n, A]
        logits = self.discriminator(policies, b.state, b.is_init)  # [*B, Z]
        z = self.noise(b).argmax(-1)  # [*B]
        ce = F.cross_entropy(logits.reshape(-1, self.noise_dim), z.reshape(-1), reduction="none")  # [prod B]
        ce = ce.reshape(b.valid.shape)  # [*B]
        if not getattr(self.discriminator, "recurrent", True):
            return self.reduce(ce, b)  # every valid step
        end = b.done.reshape(b.valid.shape).clone()  # [*B]: the episode ends at this step
        end[..., -1] = True  # the sequence (or, for transition batches [B], each transition) ends here
        end = (end & b.valid).to(ce.dtype)
        return (ce * end).sum() / end.sum().clamp_min(1.0)

    def _losses(self, b: Batch):
        self._keep_online_q = True
        try:
            out, td_error = super()._losses(b)  # L_QL; keeps the online utilities it computed
        finally:
            self._keep_online_q = False
        q, self._online_q = self._online_q, None
        loss_ql = out["loss"]
        loss_mi = self.mi_loss(b, q)
        loss = self.lambda_ql * loss_ql + self.lambda_mi * loss_mi
        return {
            "loss": loss,
            "loss_ql": loss_ql.detach(),
            "loss_td": loss_ql.detach(),
            "loss_mi": loss_mi.detach(),
            "loss_rl": self.last_loss_rl.clone(),
        }, td_error

    # joint_q_values (IGM check): MixingQLoss's, which goes through utilities() and mixer_state() above and
    # therefore evaluates Q_tot(s, a; z) with the batch's z. Fixing z, the mixer is monotonic: IGM holds per z.


class ZPolicyTrainer:
    """REINFORCE on the hierarchical z-policy π_z(z | s_0) (seed: L_RL, Q side frozen).

    Used as ``AlgoParts.after_batch``: from each collected batch [num_envs, T] it takes the episodes
    that ended in it — (s_0, z, return) read at the done steps from ``"noise_state0"``, ``"noise"`` and
    ``("next", "episode_reward")`` (torchrl's ``RewardSum``, which ``train()`` adds) — pushes them into
    a FIFO replay buffer (authors: 512 episodes), then takes ``updates`` gradient steps on minibatches
    (authors: 64) of::

        L_RL = −mean[(R − b) · log π_z(z | s_0)] − β · mean[H(π_z(· | s_0))]

    with b the minibatch's mean return (``baseline=True``; a variance reduction over the authors'
    plain REINFORCE) and β = ``entropy_scaling`` (authors: 0.001). Only π_z's parameters are in the
    optimizer and in the graph, so the agents, mixer and discriminator are untouched.

    Args:
        z_policy: π_z from :func:`make_z_policy` (its ``get_dist`` gives the distribution).

    Keyword Args:
        lr: Adam learning rate of π_z.
        entropy_scaling: β of the entropy bonus.
        buffer_size / batch_size: episode buffer and minibatch sizes.
        updates: gradient steps per collected batch (once the buffer holds ``batch_size`` episodes).
        baseline: subtract the minibatch mean return.
        loss_module: a :class:`MavenLoss` whose ``loss_rl`` output should report the last L_RL.
    """

    def __init__(
        self,
        z_policy,
        *,
        lr: float = 1e-3,
        entropy_scaling: float = 1e-3,
        buffer_size: int = 512,
        batch_size: int = 64,
        updates: int = 1,
        baseline: bool = True,
        loss_module: MavenLoss | None = None,
        noise_key: NestedKey = NOISE_KEY,
        state0_key: NestedKey = NOISE_STATE0_KEY,
        return_key: NestedKey = ("next", "episode_reward"),
        done_key: NestedKey = ("next", "done"),
    ):
        self.z_policy = z_policy
        self.params = [p for p in z_policy.parameters() if p.requires_grad]
        net = getattr(z_policy[0], "module", None) if hasattr(z_policy, "__getitem__") else None
        self._logits_net = net if isinstance(net, ZPolicyNet) else None  # make_z_policy's logits network
        self.optim = torch.optim.Adam(self.params, lr=lr, foreach=True) if self.params else None
        self.entropy_scaling, self.updates, self.baseline = float(entropy_scaling), int(updates), bool(baseline)
        self.batch_size = int(batch_size)
        self.buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(int(buffer_size)), sampler=RandomSampler(), batch_size=self.batch_size
        )
        self.loss_module = loss_module
        self.noise_key, self.state0_key, self.return_key, self.done_key = noise_key, state0_key, return_key, done_key

    def loss(self, episodes: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_RL, mean entropy)`` on episodes: ``state0_key`` [E, *S], ``noise_key`` [E, Z], ``"return"`` [E]."""
        z = episodes.get(self.noise_key).argmax(-1)  # [E]
        return self._loss(episodes.get(self.state0_key), z, episodes.get("return"))

    def _log_probs(self, s0: torch.Tensor) -> torch.Tensor:
        """log π_z(· | s_0) [E, Z]. The logits network is called directly when π_z comes from
        :func:`make_z_policy` (saves ~1 ms of tensordict/distribution plumbing per step; the authors take
        100 steps per episode); any other probabilistic z-policy goes through its ``get_dist``."""
        if self._logits_net is not None:
            return torch.log_softmax(self._logits_net(s0), dim=-1)  # [E, Z]
        dist = self.z_policy.get_dist(TensorDict({self.z_policy.in_keys[0]: s0}, batch_size=s0.shape[:1]))
        return torch.log_softmax(dist.logits, dim=-1)  # a categorical over z: [E, Z]

    def _loss(self, s0: torch.Tensor, z: torch.Tensor, ret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L_RL = −mean[(R − b) · log π_z(z | s_0)] − β · mean[H(π_z(· | s_0))] on tensors [E, *S], [E], [E]."""
        log_p = self._log_probs(s0)  # [E, Z]
        log_prob = log_p.gather(-1, z.unsqueeze(-1)).squeeze(-1)  # [E]
        ret = ret.to(log_prob.dtype)
        advantage = ret - ret.mean() if self.baseline else ret
        entropy = -(log_p.exp() * log_p).sum(-1)  # H(π_z(· | s_0)) [E]
        return -(advantage * log_prob).mean() - self.entropy_scaling * entropy.mean(), entropy.mean().detach()

    def push(self, batch: TensorDictBase) -> int:
        """Add the episodes that end in ``batch`` to the buffer; returns how many."""
        done = batch.get(self.done_key).reshape(batch.shape).bool()  # [*B]
        if not done.any():
            return 0
        ret = batch.get(self.return_key, None)
        if ret is None:
            raise KeyError(
                f"ZPolicyTrainer needs the episode return at {self.return_key!r}: add torchrl's "
                "RewardSum(in_keys=['reward'], out_keys=['episode_reward']) to the env (train() does)."
            )
        episodes = TensorDict(
            {
                self.state0_key: batch.get(self.state0_key)[done],  # [E, *S]
                self.noise_key: batch.get(self.noise_key)[done],  # [E, Z]
                "return": ret.reshape(*batch.shape, -1)[done][:, 0],  # [E]
            },
            batch_size=[int(done.sum())],
        )
        self.buffer.extend(episodes)
        return episodes.batch_size[0]

    def update(self) -> dict:
        """``updates`` REINFORCE steps on minibatches from the buffer (none until it holds a minibatch)."""
        n = len(self.buffer)
        if self.optim is None or n < self.batch_size:
            return {}
        # The buffer holds a few hundred small rows: read it once, then sample indices on plain tensors
        # (uniform with replacement, as torchrl's RandomSampler) for each of the ``updates`` steps.
        stored = self.buffer[:n]
        s0, z, ret = stored.get(self.state0_key), stored.get(self.noise_key).argmax(-1), stored.get("return")  # [n, *S], [n], [n]
        for _ in range(self.updates):
            idx = torch.randint(n, (self.batch_size,), device=s0.device)  # [E]
            loss, entropy = self._loss(s0[idx], z[idx], ret[idx])
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        if self.loss_module is not None:
            self.loss_module.last_loss_rl.fill_(loss.item())
        return {"loss_rl": loss.item(), "z_entropy": entropy.item()}

    def __call__(self, batch: TensorDictBase, frames: int | None = None) -> dict:
        """The ``after_batch`` hook: push the episodes that ended in ``batch``, then :meth:`update`."""
        return self.update() if self.push(batch) else {}


# --------------------------------------------------------------------------------------------------
# algo "maven"
# --------------------------------------------------------------------------------------------------

#: MAVEN options read from ``TrainConfig.loss_kwargs`` by the builder (the rest go to MavenLoss).
MAVEN_DEFAULTS = {
    "noise_dim": 16,  # size of z (REFERENCE m-step config; SMAC: 2)
    "lambda_mi": 1.0,  # authors' mi_loss
    "lambda_ql": 1.0,
    "discrim_size": 32,  # discriminator width (authors' discrim_size)
    "rnn_discrim": True,  # GRU over the trajectory scored at episode ends (authors' rnn_discrim), or per step
    "z_policy": "learned",  # "learned" (hierarchical π_z(z|s_0), REINFORCE) or "uniform"
    "z_lr": 1e-3,  # π_z's Adam learning rate
    "entropy_scaling": 1e-3,  # authors' entropy_scaling
    "z_buffer_size": 512,
    "z_batch_size": 64,
    "z_updates": 100,  # π_z gradient steps per collected batch (authors' bandit_iters: 100 per episode)
    "z_epsilon": 0.5,  # probability of a uniform z at a reset while collecting (authors' bandit_epsilon idea)
}


@register_algo(
    "maven",
    description="MAVEN: z-conditioned QMIX, variational MI, hierarchical z-policy (Mahajan et al. 2019)",
    presets={"agent": "gru"},
)
def build_maven(cfg, info) -> AlgoParts:
    """MAVEN's parts for ``train()``: MavenLoss, the NoiseTransform factory and the z-policy hook.

    Options in ``cfg.loss_kwargs`` (defaults :data:`MAVEN_DEFAULTS`): ``noise_dim``, ``lambda_mi``,
    ``lambda_ql``, ``discrim_size``, ``rnn_discrim``, ``z_policy`` (``"learned"`` | ``"uniform"``), ``z_lr``,
    ``entropy_scaling``, ``z_buffer_size``, ``z_batch_size``, ``z_updates``, ``z_epsilon``; any other key goes to
    :class:`MavenLoss` (e.g. ``temperature``). ``cfg.mixer_kwargs`` go to :class:`MavenMixer` (QMIX
    options). The agent is always the recurrent :class:`MavenAgent` (a GRU trunk sized by
    ``cfg.hidden``, with ``cfg.share_params`` and ``cfg.agent_id``; ``cfg.agent`` is not consulted).

    Greedy evaluation (``train()``'s ``evaluate`` runs under ``DETERMINISTIC`` exploration) plays the
    greedy agents with the z-policy's greedy z = argmax_z π_z(z | s_0): MAVEN's greedy return is the
    return of the committed mode the hierarchical policy prefers. With ``z_policy="uniform"`` the mode
    is arbitrary (z = 0); evaluate each z instead (see tests/test_maven.py ``greedy_return_per_z``).
    The learned z-policy is updated in this process, so it needs ``collector="single"``.
    """
    opts = {**MAVEN_DEFAULTS, **cfg.loss_kwargs}
    maven = {k: opts.pop(k) for k in MAVEN_DEFAULTS}
    if maven["z_policy"] not in ("learned", "uniform"):
        raise ValueError(f"loss_kwargs.z_policy must be 'learned' or 'uniform', got {maven['z_policy']!r}.")
    if maven["z_policy"] == "learned" and getattr(cfg, "collector", "single") != "single":
        raise ValueError(
            f"MAVEN's learned z-policy is updated in this process and read by the NoiseTransform of the env it "
            f"collects from; collector={cfg.collector!r} would run stale copies in its workers. Use "
            "collector='single' or loss_kwargs.z_policy='uniform'."
        )
    noise_dim = int(maven["noise_dim"])
    obs_dim = int(torch.Size(info.obs_shape).numel())
    state_dim = int(torch.Size(info.state_shape).numel())
    agent = MavenAgent(info.n_agents, info.n_actions, obs_dim, noise_dim, hidden=cfg.hidden,
                       share_params=cfg.share_params, agent_id=cfg.agent_id)
    mixer = MavenMixer(info.n_agents, info.state_shape, noise_dim, **cfg.mixer_kwargs)
    discriminator = MavenDiscriminator(info.n_agents, info.n_actions, state_dim, noise_dim,
                                       hidden=maven["discrim_size"], recurrent=maven["rnn_discrim"])
    loss = MavenLoss(
        agent, mixer, discriminator, noise_dim=noise_dim, lambda_mi=maven["lambda_mi"], lambda_ql=maven["lambda_ql"],
        double_q=cfg.double_q, burn_in=cfg.burn_in, **opts,
    )
    z_policy = make_z_policy(info.state_shape, noise_dim, learned=maven["z_policy"] == "learned")
    trainer = ZPolicyTrainer(
        z_policy, lr=maven["z_lr"], entropy_scaling=maven["entropy_scaling"], buffer_size=maven["z_buffer_size"],
        batch_size=maven["z_batch_size"], updates=maven["z_updates"], loss_module=loss,
    )
    if info.group != "agents":
        loss.use_group(info.group)
    return AlgoParts(
        loss,
        # a partial, not a lambda: worker collectors (multi/ray, uniform z-policy) pickle the env factory
        env_transforms=[functools.partial(NoiseTransform, z_policy, noise_dim, epsilon=maven["z_epsilon"])],
        extra_modules={"z_policy": z_policy},
        after_batch=trainer,
        metric_columns=("loss_rl", "z_entropy"),
    )


__all__ = ["MAVEN_DEFAULTS", "MavenLoss", "ZPolicyTrainer", "build_maven"]
