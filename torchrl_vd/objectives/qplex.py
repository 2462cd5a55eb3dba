"""QPLEX's loss (Wang et al., "QPLEX: Duplex Dueling Multi-Agent Q-Learning", ICLR 2021).

One TD loss on the duplex dueling Q_tot (:class:`~torchrl_vd.modules.mixers.QPlexMixer`), as the
reference learner wjh720/QPLEX ``pymarl-master/src/learners/dmaq_qatten_learner.py``
(``DMAQ_qattenLearner.sub_train`` with ``mixer: "dmaq"``).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from torchrl_vd.modules.mixers.qplex import QPlexMixer
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss
from torchrl_vd.objectives.mixing import MixingLossBase


class QPlexLoss(MixingLossBase):
    """L(θ) = 1/``|B|`` Σ (r + γ (1 − terminated) Q̄_tot(s', τ', u*') − Q_tot(s, τ, u))²  (reference l.143-166).

    Q_tot(s, τ, u) = QPlexMixer(Q_i(τ_i, u_i), V_i(τ_i), s, u), V_i = max over legal actions of the
    online utilities (detached; reference l.63-65). The target, as the reference with ``double_q: True``
    (l.90-138): u*' = per-agent argmax of the online utilities at the next step, Q̄_tot = the target
    mixer on the *target* agents' utilities at u*' with V̄_i = the target agents' own max (l.95-96), so
    its advantage term is non-zero where the online and target argmax differ. With ``double_q=False``
    (l.106-140) u*' is the target agents' argmax, the advantages vanish and Q̄_tot = Σ_i V̄_i
    (transformed).

    Dead agents (``alive`` False) give zero utilities and zero advantages.

    Args:
        agent_net: per-agent utility network (``MLPAgent``, ``GRUAgent``, ...).
        mixer: a :class:`~torchrl_vd.modules.mixers.QPlexMixer`.

    Keyword Args: see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`.

    Returns (forward): ``loss`` (optimise this) and ``loss_td``, both the masked mean squared TD error.

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, QPlexMixer, QPlexLoss
        >>> from torchrl_vd.testing import random_batch
        >>> loss = QPlexLoss(MLPAgent(2, 3, 4), QPlexMixer(2, 3, (8,)))
        >>> out = loss(random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=16))
        >>> sorted(out.keys())
        ['loss']
    """

    def __init__(self, local_value_network: nn.Module, mixer_network: QPlexMixer, **kwargs):
        mixer = mixer_network
        kwargs.setdefault("n_agents", getattr(mixer, "n_agents", None))
        ValueDecompositionLoss.__init__(self, local_value_network, **kwargs)
        if not isinstance(mixer, QPlexMixer):
            raise TypeError(f"mixer must be a QPlexMixer, got {type(mixer).__name__}.")
        agent = self.agent_net
        if (mixer.n_agents, mixer.n_actions) != (agent.n_agents, agent.n_actions):
            raise ValueError(
                f"The mixer was built for (n_agents, n_actions)={(mixer.n_agents, mixer.n_actions)} but the agent "
                f"net for {(agent.n_agents, agent.n_actions)}; build both from describe_env(env)."
            )
        self._user_mixer_keys = False  # the duplex mixer reads (Q_i, V_i, s, u): no mixer TensorDictModule
        self.add_network("mixer_network", mixer, alias="mixer")

    def greedy_values(self, q: torch.Tensor, mask: torch.Tensor | None, alive: torch.Tensor | None) -> torch.Tensor:
        """V_i = max_{legal u_i} Q_i(τ_i, u_i) ``[*B, n, 1]``, gathered at the masked argmax (finite even
        where a padded step has no legal action); zero for dead agents."""
        return self.zero_dead(self.gather(q, self.masked(q, mask).argmax(-1)), alive)

    def _losses(self, b: Batch):
        q, q_next = self.online_utilities(b, need_next=self.double_q)  # [*B, n, A] each (q_next: no grad)
        chosen = self.zero_dead(self.gather(q, b.action), b.alive)  # [*B, n, 1]
        greedy = self.greedy_values(q.detach(), b.action_mask, b.alive)  # [*B, n, 1]
        q_tot = self.mixer(chosen, greedy, b.state, b.action)  # [*B, 1]
        with torch.no_grad():
            q_next_t, a_next, chosen_next = self.next_target_utilities(b, q_next)  # [*B, n, A], [*B, n], [*B, n, 1]
            greedy_next = self.greedy_values(q_next_t, b.next_action_mask, b.next_alive)  # [*B, n, 1]
            v_next = self.target("mixer")(chosen_next, greedy_next, b.next_state, a_next)  # [*B, 1]
            y = self.td_target(b, v_next)  # [*B, 1]
        loss_td, td_error = self.td_loss(q_tot, y, b)
        return {"loss": loss_td}, td_error

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_tot(s, τ, u) ``[*B, K]`` for joint actions ``[K, n]`` or ``[*B, K, n]`` (online agents and mixer)."""
        b, q = self.eval_utilities(td)  # q: [*B, n, A]
        chosen, acts, state = self.joint_inputs(q, joint_actions, b.state, b.alive)  # [*B, K, n, 1], [*B, K, n], [*B, K, *S]
        greedy = self.greedy_values(q, b.action_mask, b.alive).unsqueeze(-3).expand_as(chosen)  # [*B, K, n, 1]
        return self.mixer(chosen, greedy, state, acts).squeeze(-1)  # [*B, K, 1] -> [*B, K]


__all__ = ["QPlexLoss"]
