"""Weighted QMIX: CW-QMIX and OW-QMIX (Rashid et al., "Weighted QMIX: Expanding Monotonic Value
Function Factorisation for Deep Multi-Agent Reinforcement Learning", NeurIPS 2020).

QMIX projects its TD targets onto monotonic functions with equal weight on every joint action, and
that projection can miss the optimal joint action (e.g. the QTRAN matrix game). Weighted QMIX keeps
QMIX's monotonic Q_tot for decentralised greedy action selection but

* builds the target from an unrestricted joint action-value Q̂* (its own network, trained by plain
  TD toward the same target), evaluated at the greedy joint action of Q_tot, and
* weighs QMIX's squared TD errors by w(s, u) ∈ {α, 1}, so the projection puts its weight on the
  joint actions that matter (the better ones) and α < 1 on the others.

Reference: oxwhirl/wqmix ``src/learners/max_q_learner.py`` (``MAXQLearner.train``); defaults from
``src/config/algs/cw_qmix.yaml`` / ``ow_qmix.yaml``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.modules.interop import as_agent_net
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.mixing import MixingQLoss

WEIGHTINGS = ("cw", "ow")


class WeightedQMixLoss(MixingQLoss):
    """CW-QMIX / OW-QMIX: loss = λ_qmix · L_td + λ_central · L_central (reference max_q_learner.py l.175).

    With Q_tot(τ, u, s) = f_mix(Q_1(τ_1, u_1), ..., Q_n(τ_n, u_n); s) (QMIX, monotonic) and the
    unrestricted Q̂*(s, u) = ``central_mixer(Q̂_1(u_1), ..., Q̂_n(u_n); s)``:

    * target (max_q_learner.py l.110-143): y = r + γ (1 − terminated) Q̂*(s', û*'; θ̄*), where
      û*' = argmax_u Q_tot(τ', u, s') is the per-agent argmax of the *online* QMIX utilities at the
      next step (double Q, the reference's only mode), evaluated by the target Q̂* (target central
      agents and target central mixer). With ``double_q=False`` (not in the reference, which raises)
      û*' is the argmax of the target QMIX agents' utilities.
    * L_td = 1/``|B|`` Σ w(s, u) (Q_tot(τ, u, s) − y)²  (l.172), w = 1 where the condition holds, α else:

      - ``weighting="cw"`` (centrally weighted, l.166-169): u = û* (the taken joint action is the
        current greedy joint action of Q_tot, every agent's action equal to its argmax) or
        y > Q̂*(s, û*; θ̄*) (target central networks at the current step);
      - ``weighting="ow"`` (optimistically weighted, l.163): Q_tot(τ, u, s) < y.

      w carries no gradient.
    * L_central = 1/``|B|`` Σ (Q̂*(s, u; θ*) − y)²  (l.154-158), unweighted, trains Q̂* (and its agents).

    Means are over valid (unpadded, post-burn-in) samples, times priority weights, as in every loss of
    the library. Dead agents (``alive`` False) give zero utilities to both mixers and do not count in
    CW's "u = û*" test.

    Q̂*'s per-agent inputs: the reference's default (``central_agent: "central_rnn"``,
    ``central_mac: "basic_central_mac"``) is a *separate* agent network of the same architecture as
    the QMIX agents, with its own parameters and target copy (pass it as ``central_agent``; it reads
    the same observations, previous actions and agent ids). Being recurrent in the reference, it
    unrolls its own hidden state; the replay stores only the acting agents' hidden state, so the
    central agent starts each sampled sequence from zeros (exact for sequences that start at an
    episode start, as the reference's episode batches do; use ``burn_in`` otherwise). With
    ``central_agent=None`` Q̂* mixes the QMIX agents' utilities instead, detached (the agents are then
    trained by L_td alone) and, for the target, the target QMIX agents'.

    Args:
        agent_net: the QMIX agents (``MLPAgent``, ``GRUAgent``, ...).
        mixer: QMIX's monotonic mixer (``QMixer``).
        central_mixer: Q̂*'s mixer (:class:`~torchrl_vd.modules.mixers.CentralQMixer`).
        central_agent: Q̂*'s own agent network (same n_agents, n_actions and observations), or None.

    Keyword Args:
        weighting: ``"cw"`` or ``"ow"`` (reference ``hysteretic_qmix`` False / True).
        alpha: the weight α ∈ (0, 1] of the other samples (reference ``w: 0.1``, cw_qmix.yaml l.25).
        lambda_qmix: weight of L_td (reference ``qmix_loss: 1``).
        lambda_central: weight of L_central (reference ``central_loss: 1``).
        Others: see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`.

    Returns (forward): ``loss_td`` (λ_qmix · QMIX's weighted TD loss) and ``loss_central`` (λ_central · Q̂*'s),
    whose sum is the objective, and ``weight_mean`` (mean w over valid samples; the reference logs it as
    ``w_to_use``, over the padded batch); writes ``|Q_tot − y|`` at ``"td_error"``. :meth:`central_q_values` evaluates Q̂* on any joint
    actions (``joint_q_values``, read by ``check_igm``, is Q_tot).

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, QMixer, CentralQMixer, WeightedQMixLoss
        >>> from torchrl_vd.testing import random_batch
        >>> loss = WeightedQMixLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)), CentralQMixer(2, (8,)), MLPAgent(2, 3, 4),
        ...                         weighting="ow")
        >>> out = loss(random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=16))
        >>> sorted(out.keys())
        ['loss_central', 'loss_td', 'weight_mean']
    """

    central_mixer: Mixer
    out_keys = ["loss_td", "loss_central", "weight_mean"]

    def __init__(
        self,
        local_value_network: nn.Module,
        mixer_network: nn.Module,
        central_mixer: Mixer,
        central_agent: nn.Module | None = None,
        *,
        weighting: str = "cw",
        alpha: float = 0.1,
        lambda_qmix: float = 1.0,
        lambda_central: float = 1.0,
        **kwargs,
    ):
        super().__init__(local_value_network, mixer_network, **kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}.")
        if float(lambda_qmix) < 0 or float(lambda_central) < 0:
            raise ValueError(f"lambda_qmix and lambda_central must be >= 0, got {lambda_qmix}, {lambda_central}.")
        if not isinstance(central_mixer, Mixer):
            raise TypeError(f"central_mixer must be a torchrl_vd Mixer (e.g. CentralQMixer), got {type(central_mixer).__name__}.")
        agent = self.agent_net
        if central_mixer.n_agents != agent.n_agents:
            raise ValueError(
                f"The central mixer was built for n_agents={central_mixer.n_agents} but the agent net for "
                f"n_agents={agent.n_agents}."
            )
        self.weighting, self.alpha = weighting, float(alpha)
        self.lambda_qmix, self.lambda_central = float(lambda_qmix), float(lambda_central)
        self.add_network("central_mixer", central_mixer)
        self.has_central_agent = central_agent is not None
        if self.has_central_agent:
            central_agent = as_agent_net(central_agent)[0]
            sizes = (central_agent.n_agents, central_agent.n_actions, central_agent.obs_dim)
            if sizes != (agent.n_agents, agent.n_actions, agent.obs_dim):
                raise ValueError(
                    f"central_agent was built for (n_agents, n_actions, obs_dim)={sizes} but the agent net for "
                    f"{(agent.n_agents, agent.n_actions, agent.obs_dim)}: both read the same observations."
                )
            self.add_network("central_agent", central_agent)

    def central_utilities(self, b: Batch, *, target: bool, need_current: bool = True, need_next: bool = True):
        """Q̂*'s per-agent inputs ``(Q̂(τ_t, ·), Q̂(τ_{t+1}, ·))`` ``[*B, n, A]``: the central agents' (online or
        target; a recurrent one unrolls from zeros at each sequence start), else the QMIX agents'."""
        if not self.has_central_agent:
            return self.utilities(b, target=target, need_current=need_current, need_next=need_next)
        net = self.target("central_agent") if target else self.central_agent
        return net.evaluate(
            b.obs, b.next_obs, hidden=None, is_init=b.is_init, need_current=need_current, need_next=need_next,
            **net.extra_inputs(b.td, self.group),
        )

    def _losses(self, b: Batch):
        cw = self.weighting == "cw"
        q, q_next = self.online_utilities(b, need_next=self.double_q)  # [*B, n, A] each (q_next: no grad)
        q_tot = self.mixer(self.zero_dead(self.gather(q, b.action), b.alive), self.mixer_state(b))  # [*B, 1]
        if self.has_central_agent:
            q_hat, _ = self.central_utilities(b, target=False, need_next=False)  # [*B, n, A]
        else:
            q_hat = q.detach()  # [*B, n, A]: Q̂* reads the QMIX agents' utilities, L_central does not train them
        q_star = self.central_mixer(self.zero_dead(self.gather(q_hat, b.action), b.alive), b.state)  # [*B, 1] Q̂*(s, u)
        with torch.no_grad():
            q_hat_t, q_hat_next_t = self.central_utilities(b, target=True, need_current=cw)  # [*B, n, A] (θ̄*)
            q_sel = None  # double Q: û*' from the online QMIX utilities q_next
            if not self.double_q:
                q_sel = q_hat_next_t if not self.has_central_agent else self.utilities(b, target=True, need_current=False)[1]
            a_next = self.greedy_next_actions(b, q_next, q_sel)  # [*B, n] û*'
            central_t = self.target("central_mixer")
            q_star_next = central_t(self.zero_dead(self.gather(q_hat_next_t, a_next), b.next_alive), b.next_state)  # [*B, 1]
            y = self.td_target(b, q_star_next)  # [*B, 1]
            if cw:
                a_star = self.masked(q, b.action_mask).argmax(-1)  # [*B, n] û*: current greedy joint action of Q_tot
                same = b.action == a_star  # [*B, n]
                if b.alive is not None:
                    same = same | ~b.alive.bool()  # dead agents' actions do not matter
                is_greedy = same.all(-1, keepdim=True)  # [*B, 1]
                q_star_greedy = central_t(self.zero_dead(self.gather(q_hat_t, a_star), b.alive), b.state)  # [*B, 1]
                full = is_greedy | (y > q_star_greedy)  # [*B, 1]
            else:
                full = q_tot < y  # [*B, 1]
            w = torch.full_like(q_tot, self.alpha).masked_fill(full, 1.0)  # [*B, 1]
        loss_td, td_error = self.td_loss(q_tot, y, b, weight=w)
        loss_central = self.reduce(self.distance(q_star, y), b)
        valid = b.valid.to(w.dtype)  # [*B]
        weight_mean = (w.reshape(valid.shape) * valid).sum() / valid.sum().clamp_min(1.0)
        return {"loss_td": self.lambda_qmix * loss_td, "loss_central": self.lambda_central * loss_central,
                "weight_mean": weight_mean.detach()}, td_error

    def central_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q̂*(s, u) ``[*B, K]`` for joint actions ``[K, n]`` or ``[*B, K, n]`` (online central networks).

        ``joint_q_values`` (what ``check_igm`` reads) is QMIX's Q_tot; this is the unrestricted value
        the weighting and the targets come from.
        """
        b = self.read_batch_for_eval(td)
        q_hat, _ = self.central_utilities(b, target=False, need_next=False)  # [*B, n, A]
        chosen, _, state = self.joint_inputs(q_hat, joint_actions, b.state, b.alive)  # [*B, K, n, 1], [*B, K, *S]
        return self.central_mixer(chosen, state).squeeze(-1)  # [*B, K, 1] -> [*B, K]


__all__ = ["WEIGHTINGS", "WeightedQMixLoss"]
