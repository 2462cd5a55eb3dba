"""QTRAN and QTRAN-alt (Son et al., "QTRAN: Learning to Factorize with Transformation for Cooperative
Multi-Agent Reinforcement Learning", ICML 2019).

QTRAN learns three things: the per-agent utilities Q(h_i, a_i; θ_i), an unrestricted joint
action-value Q(h, z, a; θ^q) and a value V(h, z; θ^v). The condition of its Theorem 1

    Σ_i Q(h_i, a_i) − Q(h, z, a) + V(h, z) = 0 if a = a*,  ≥ 0 otherwise            (a* greedy)

is what makes the agents' greedy actions greedy for Q_jt (IGM). Q_jt is fitted by TD (L_td) and the
condition is imposed on the utilities and V by two regularisers (L_opt, L_nopt) in which Q_jt is a
fixed target (θ^q is trained by L_td alone, as the paper's loss arguments say). With the default
``features="hidden"`` Q_jt reads the agents' hidden features with gradient, so L_td also trains the
agents' trunk, as pymarl's learner does.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from torchrl_vd.modules.qtran import QTranJointQ
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss

VARIANTS = ("base", "alt")
FEATURES = ("hidden", "obs", "utilities")


class QTranLoss(ValueDecompositionLoss):
    """QTRAN's objective L_td + λ_opt·L_opt + λ_nopt·L_nopt (Son et al. 2019, Eqs. 4-6; pymarl's weights).

    * L_td(θ^q [, θ_i]) = (r + γ Q_jt(h', z', a*'; θ̄_q) − Q_jt(h, z, a; θ^q))², a*' the greedy next joint
      action (argmax of the online agents' utilities with ``double_q``, of the target agents' without),
      evaluated by the target Q_jt (θ_i: with ``features="hidden"`` the agents' features carry its gradient).
    * L_opt({θ_i}, θ^v) = (Σ_i Q(h_i, a_i*) − Q_jt(h, z, a*) + V(h, z))², a* = the current greedy joint
      action (per-agent argmax within the action mask).
    * L_nopt({θ_i}, θ^v) = min(0, m)², m = Σ_i Q(h_i, a_i) − Q_jt(h, z, a) + V(h, z) on the taken a
      (``variant="base"``), or QTRAN-alt's L_nopt-min (``variant="alt"``, below).

    In L_opt and L_nopt, Q_jt is computed without gradient: they never move θ^q.

    ``variant="alt"`` — QTRAN-alt (Son et al. 2019, Sec. 3, "QTRAN-alt", condition (7) of Theorem 2:
    min_{u_i} [Σ_j Q_j − Q_jt + V](τ, u_i, u_−i) = 0 for every agent i and every u_−i). For each
    agent i the other agents keep their taken actions a_−i and the own action ranges over all legal
    u_i; with D_i(u_i) = Q_i(h_i, u_i) + Σ_{j≠i} Q_j(h_j, a_j) − Q_jt(h, z, (u_i, a_−i)) + V(h, z),

        L_nopt-min = (1/N) Σ_i (min_{u_i} D_i(u_i))²      (no clamp: the minimum is pushed to 0 from both sides),

    reported as ``loss_nopt``. The paper's counterfactual joint network outputs Q_jt(τ, ·, u_−i) for
    all own actions of agent i; here it is the same Q_jt network evaluated on the n·A counterfactual
    joint actions (:meth:`QTranJointQ.counterfactual`: one encoder pass and one head call), so L_td on
    the taken actions trains it. Dead agents' terms are zero (the 1/N stays the number of agents).
    pymarl does not implement QTRAN-alt (it raises); the authors' TensorFlow code does.

    Agents' hidden representation h_i fed to Q_jt (``features``): ``"hidden"`` (default; pymarl
    @c971afd ``qtran_learner.py``, the paper's Q_jt on the agents' hidden states) — the agents' hidden
    features (``AgentNet.feature_size``: the GRU state h_i^t, or an MLP agent's last hidden layer) *with*
    gradient, so L_td trains the agents' trunk too (L_td(θ^q, {θ_i})); the target Q_jt reads the target
    agents' next-step features. ``"obs"`` — the agents' current observations o_i; ``"utilities"`` —
    the online agents' utility vectors Q(h_i, ·) (detached; the target agents' at the next step). The
    last two keep the paper's split: the agents are trained by L_opt and L_nopt only.

    Args:
        local_value_network: the agents (``MLPAgent``, ``GRUAgent``, a TorchRL Q-value policy, ...; see
            :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`).
        joint_q: a :class:`~torchrl_vd.modules.qtran.QTranJointQ` (θ^q; target θ̄_q).
        v_net: a :class:`~torchrl_vd.modules.mixers.QTranV` or any module ``state [*B, *S] -> [*B, 1]``.

    Keyword Args:
        variant: ``"base"`` (QTRAN-base) or ``"alt"`` (QTRAN-alt's L_nopt-min).
        lambda_opt: weight of L_opt (pymarl: 1.0).
        lambda_nopt: weight of L_nopt / L_nopt-min (pymarl: 0.1).
        features: h_i for Q_jt, ``"hidden"``, ``"obs"`` or ``"utilities"`` (see above); size ``joint_q``
            with :meth:`feature_dim`.
        Others: see :class:`ValueDecompositionLoss` (``double_q``, ``loss_function``, ``burn_in``, ...).

    Returns (forward): ``loss_td``, ``loss_opt`` (λ_opt · L_opt) and ``loss_nopt`` (λ_nopt · L_nopt), whose sum is
    the objective; writes the per-sample ``|TD error of Q_jt|`` at ``"td_error"``.

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, QTranJointQ, QTranV, QTranLoss
        >>> from torchrl_vd.testing import random_batch
        >>> agent = MLPAgent(2, 3, 4)
        >>> joint_q = QTranJointQ(2, 3, state_shape=(8,), feature_dim=QTranLoss.feature_dim(agent))
        >>> loss = QTranLoss(agent, joint_q, QTranV(state_shape=(8,)), variant="alt")
        >>> out = loss(random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=16))
        >>> sorted(out.keys())
        ['loss_nopt', 'loss_opt', 'loss_td']
        >>> bool(out["loss_td"] >= 0 and out["loss_opt"] >= 0 and out["loss_nopt"] >= 0)
        True
    """

    joint_q: QTranJointQ
    v_net: nn.Module
    out_keys = ["loss_td", "loss_opt", "loss_nopt"]

    def __init__(
        self,
        local_value_network: nn.Module,
        joint_q: QTranJointQ,
        v_net: nn.Module,
        *,
        variant: str = "base",
        lambda_opt: float = 1.0,
        lambda_nopt: float = 0.1,
        features: str = "hidden",
        **kwargs,
    ):
        kwargs.setdefault("n_agents", getattr(joint_q, "n_agents", None))
        super().__init__(local_value_network, **kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}.")
        if float(lambda_opt) < 0 or float(lambda_nopt) < 0:
            raise ValueError(f"lambda_opt and lambda_nopt must be >= 0, got {lambda_opt}, {lambda_nopt}.")
        if not isinstance(joint_q, QTranJointQ):
            raise TypeError(f"joint_q must be a QTranJointQ (or a subclass), got {type(joint_q).__name__}.")
        agent = self.agent_net
        expected = (agent.n_agents, agent.n_actions, self.feature_dim(agent, features))
        if (joint_q.n_agents, joint_q.n_actions, joint_q.feature_dim) != expected:
            raise ValueError(
                f"joint_q was built for (n_agents, n_actions, feature_dim)="
                f"{(joint_q.n_agents, joint_q.n_actions, joint_q.feature_dim)} but the agent net and "
                f"features={features!r} need {expected}; size it with QTranLoss.feature_dim(agent_net, features)."
            )
        self.variant, self.features = variant, features
        self.lambda_opt, self.lambda_nopt = float(lambda_opt), float(lambda_nopt)
        self.add_network("joint_q", joint_q)
        self.add_network("v_net", v_net)

    @staticmethod
    def feature_dim(agent_net: nn.Module, features: str = "hidden") -> int:
        """Size H of the h_i that ``features`` feeds to Q_jt: the agents' feature size, the observation
        size or n_actions."""
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}.")
        if features == "hidden":
            size = getattr(agent_net, "feature_size", None)
            if size is None:
                raise ValueError(f"features='hidden' needs an agent net that exposes its hidden features "
                                 f"(AgentNet.feature_size); {type(agent_net).__name__} does not: use features='obs' "
                                 "or features='utilities'.")
            return int(size)
        if features == "obs" and getattr(agent_net, "obs_dim", None) is None:
            raise ValueError(
                f"features='obs' needs the observation size, which {type(agent_net).__name__} does not state: wrap the "
                "network with torchrl_vd.as_agent_net(net, obs_dim=F)[0], or use features='utilities'."
            )
        return int(agent_net.obs_dim if features == "obs" else agent_net.n_actions)

    def agent_features(self, obs: torch.Tensor, utilities: torch.Tensor | None,
                       hidden: torch.Tensor | None = None) -> torch.Tensor:
        """h_i for Q_jt ``[*B, n, H]``: the hidden features (with grad), the observations, or the
        (detached) utility vectors."""
        if self.features == "hidden":
            return hidden
        return obs if self.features == "obs" else utilities.detach()

    def _losses(self, b: Batch):
        # online utilities Q(h_i, ·) [*B, n, A] (and hidden features [*B, n, H], with grad); next-step
        # utilities (no grad) only to select a*' (double Q)
        if self.features == "hidden":
            (q, hidden), q_next = self.online_features(b, need_next=self.double_q)
        else:
            (q, q_next), hidden = self.online_utilities(b, need_next=self.double_q), None
        a_star = self.masked(q, b.action_mask).argmax(-1)  # [*B, n] current greedy joint action a*
        chosen = self.zero_dead(self.gather(q, b.action), b.alive)  # [*B, n, 1] Q(h_i, a_i)
        chosen_star = self.zero_dead(self.gather(q, a_star), b.alive)  # [*B, n, 1] Q(h_i, a_i*)
        h = self.agent_features(b.obs, q, hidden)  # [*B, n, H]
        # Q_jt(h, z, ·; θ^q) at the taken a and at a* in one call: [*B, 2, 1]
        q_jt_both = self.joint_q(b.state, h, torch.stack((b.action, a_star), dim=-2), b.alive)
        q_jt = q_jt_both[..., 0, :]  # [*B, 1] Q_jt(h, z, a; θ^q), trained by L_td only
        q_jt_star = q_jt_both[..., 1, :].detach()  # [*B, 1] Q_jt(h, z, a*): a fixed target in L_opt
        v = self.v_net(b.state)  # [*B, 1] V(h, z; θ^v)

        # L_td (θ^q): target r + γ Q_jt(h', z', a*'; θ̄_q)
        with torch.no_grad():
            need_target_agents = not self.double_q or self.features != "obs"
            q_next_t = h_next_t = None
            if self.features == "hidden":  # the target agents' h_{t+1} (pymarl: target_mac_hidden_states[:, 1:])
                q_next_t, h_next_t = self.utilities(b, target=True, need_current=False, features=True)[1]
            elif need_target_agents:
                q_next_t = self.utilities(b, target=True, need_current=False)[1]
            a_next = self.greedy_next_actions(b, q_next, q_next_t)  # [*B, n]
            h_next = self.agent_features(b.next_obs, q_next_t, h_next_t)  # [*B, n, H]
            q_jt_next = self.target("joint_q")(b.next_state, h_next, a_next, b.next_alive)  # [*B, 1]
            y = self.td_target(b, q_jt_next)  # [*B, 1]
        loss_td, td_error = self.td_loss(q_jt, y, b)

        # L_opt ({θ_i}, θ^v): Σ_i Q(h_i, a_i*) + V = Q_jt(h, z, a*), Q_jt detached
        loss_opt = self.reduce(self.distance(chosen_star.sum(-2) + v, q_jt_star), b)

        # L_nopt ({θ_i}, θ^v)
        if self.variant == "base":
            m = chosen.sum(-2) - q_jt.detach() + v  # [*B, 1] on the taken joint action
            nopt = m.clamp(max=0.0)  # min(0, m): only violations Σ Q_i + V < Q_jt are penalised
            loss_nopt = self.reduce(self.distance(nopt, torch.zeros_like(nopt)), b)
        else:
            loss_nopt = self.reduce(self._nopt_min(b, q, chosen, h, v), b)

        return {"loss_td": loss_td, "loss_opt": self.lambda_opt * loss_opt,
                "loss_nopt": self.lambda_nopt * loss_nopt}, td_error

    def _nopt_min(self, b: Batch, q: torch.Tensor, chosen: torch.Tensor, h: torch.Tensor, v: torch.Tensor):
        """QTRAN-alt's per-sample (1/N) Σ_i (min_{u_i} D_i(u_i))² ``[*B, 1]`` (see the class docstring)."""
        with torch.no_grad():
            q_jt_cf = self.joint_q.counterfactual(b.state, h, b.action, b.alive)  # [*B, n, A] Q_jt(u_i, a_−i)
        others = chosen.sum(-2, keepdim=True) - chosen  # [*B, n, 1] Σ_{j≠i} Q(h_j, a_j)
        d = self.zero_dead(q, b.alive) + others - q_jt_cf + v.unsqueeze(-1)  # [*B, n, A] D_i(u_i)
        if b.action_mask is not None:  # illegal own actions are never the minimiser
            d = d.masked_fill(~b.action_mask.bool(), torch.finfo(d.dtype).max)
        d_min = self.zero_dead(d.min(-1, keepdim=True).values, b.alive)  # [*B, n, 1]
        return self.distance(d_min, torch.zeros_like(d_min)).mean(-2)  # [*B, n, 1] -> [*B, 1]

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_jt(h, z, a) ``[*B, K]`` for joint actions ``[K, n]`` or ``[*B, K, n]`` (online θ^q), for ``check_igm``."""
        b = self.read_batch_for_eval(td)
        q = hidden = None
        if self.features == "hidden":
            q, hidden = self.utilities(b, need_next=False, features=True)[0]  # [*B, n, A], [*B, n, H]
        elif self.features == "utilities":
            q = self.utilities(b, need_next=False)[0]  # [*B, n, A]
        batch, n = b.obs.shape[:-2], b.obs.shape[-2]
        acts = joint_actions.to(b.obs.device).expand(*batch, joint_actions.shape[-2], n)  # [*B, K, n]
        return self.joint_q(b.state, self.agent_features(b.obs, q, hidden), acts, b.alive).squeeze(-1)  # [*B, K]


__all__ = ["QTranLoss"]
