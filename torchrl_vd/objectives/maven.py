"""MAVEN: latent-conditioned QMIX + variational MI + a hierarchical z-policy (Mahajan et al., NeurIPS 2019).

The paper's complete objective (its Eq. 6)::

    max  L_RL(θ) + λ_MI · L_V(υ, φ, η, ψ) − λ_QL · L_QL(φ, η, ψ)

is split the way the authors train it:

* :class:`MavenLoss` (the gradient step of the shared loop) minimises
  ``λ_QL · L_QL + λ_MI · L_MI`` over the agents, mixer and discriminator, where L_QL is the TD loss of
  the z-conditioned QMIX (Q_tot(s, a; z) with z fixed for the episode) and L_MI = −E[log q_υ(z | σ(τ))]
  is the cross-entropy of the variational discriminator (maximising the bound L_V = H(z) + E log q_υ,
  H(z) being constant in these parameters).
* :class:`~torchrl_vd.objectives.z_policy.ZPolicyTrainer` (the loop's ``after_batch`` hook) maximises L_RL
  over π_z's parameters θ only (parameter freezing: REINFORCE on the episode returns in the data, no Q
  network in the graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F

from torchrl_vd.keys import NOISE
from torchrl_vd.modules.maven_discriminator import MavenDiscriminator
from torchrl_vd.modules.mixers.maven import MavenMixer
from torchrl_vd.objectives.batch import Batch, _next
from torchrl_vd.objectives.common import ValueDecompositionLoss
from torchrl_vd.objectives.mixing import MixingQLoss


class MavenLoss(MixingQLoss):
    """``λ_QL · L_QL + λ_MI · L_MI`` (Mahajan et al. 2019, Eq. 6; the z-policy's L_RL is :class:`ZPolicyTrainer`).

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

    Returns (forward): ``loss_td`` (λ_QL · L_QL) and ``loss_mi`` (λ_MI · L_MI), whose sum is the objective, and
    ``z_policy_loss``: the z-policy's last REINFORCE loss, reported from the :class:`ZPolicyTrainer` that was
    given this loss (NaN before its first update or for a uniform z-policy); it has no gradient here.

    Examples:
        >>> import torch
        >>> from torchrl_vd.objectives.maven import MavenLoss
        >>> from torchrl_vd import MavenAgent, MavenMixer, MavenDiscriminator
        >>> from torchrl_vd.testing import random_batch
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=(4, 5), state_dim=6)
        >>> td["noise"] = td["next", "noise"] = torch.eye(8)[torch.randint(8, (4, 1))].expand(4, 5, 8)
        >>> loss = MavenLoss(MavenAgent(2, 3, 4, noise_dim=8), MavenMixer(2, 6, noise_dim=8),
        ...                  MavenDiscriminator(2, 3, 6, noise_dim=8), noise_dim=8)
        >>> out = loss(td)
        >>> sorted(out.keys())
        ['loss_mi', 'loss_td', 'z_policy_loss']
        >>> out["z_policy_loss"].isnan().item()  # no ZPolicyTrainer has reported an L_RL yet
        True
    """

    @dataclass
    class _AcceptedKeys(ValueDecompositionLoss._AcceptedKeys):
        """The base's entries plus:

        Attributes:
            noise: the episode's latent z, one-hot ``[*B, noise_dim]`` (also read under ``"next"``).
                Default ``"noise"``.
        """

        noise: NestedKey = NOISE

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    discriminator: MavenDiscriminator
    out_keys = ["loss_td", "loss_mi", "z_policy_loss"]

    def __init__(
        self,
        local_value_network: nn.Module,
        mixer_network: MavenMixer,
        discriminator: nn.Module,
        *,
        noise_dim: int,
        lambda_mi: float = 1.0,
        lambda_ql: float = 1.0,
        temperature: float = 1.0,
        **kwargs,
    ):
        super().__init__(local_value_network, mixer_network, **kwargs)
        self.noise_dim = int(noise_dim)
        for name, net in (("agent_net", self.agent_net), ("mixer", self.mixer), ("discriminator", discriminator)):
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

    def _extra_in_keys(self) -> list:
        return [*super()._extra_in_keys(), self.tensor_keys.noise, _next(self.tensor_keys.noise)]

    # ------------------------------------------------------------------ z-conditioning hooks
    def noise(self, b: Batch, *, next: bool = False) -> torch.Tensor:
        """The episode's z ``[*B, noise_dim]`` from the batch (clear error when it was not collected)."""
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
        """Per-agent utilities Q_i(τ_i, ·; z) at t and t+1 ``[*B, n, A]``, z read from the batch."""
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
        """L_MI = −E[log q_υ(z | σ(τ))], σ = per-agent softmax(Q_i) (the paper's Boltzmann policies, Sec. 3.2).

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
        loss_mi = self.mi_loss(b, q)
        return {"loss_td": self.lambda_ql * out["loss"], "loss_mi": self.lambda_mi * loss_mi,
                "z_policy_loss": self.last_loss_rl.clone()}, td_error

    # joint_q_values (IGM check): MixingQLoss's, which goes through utilities() and mixer_state() above and
    # therefore evaluates Q_tot(s, a; z) with the batch's z. Fixing z, the mixer is monotonic: IGM holds per z.


__all__ = ["MavenLoss"]
