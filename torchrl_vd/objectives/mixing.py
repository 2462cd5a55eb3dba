"""VDN and QMIX: one TD loss on a mixed centralized value (seed §VDN and §QMIX loss)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

from torchrl_vd.modules.interop import as_mixer
from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss


class MixingQLoss(ValueDecompositionLoss):
    """L(θ) = 1/|B| Σ (r + γ max_a Q_tot(h', z', a; θ̄) − Q_tot(h, z, a; θ))²  (seed, VDN/QMIX).

    Q_tot = mixer(Q(h_1, a_1), ..., Q(h_n, a_n); z). For a monotonic mixer (VDN, QMIX), the max over
    joint actions decomposes into per-agent maxima (IGM): max_a Q_tot(h', z', a) = mixer(max_{a_i} Q_i).
    With ``double_q`` the per-agent argmax comes from the online agents and is evaluated by the target
    agents and target mixer.

    Args:
        agent_net: per-agent utility network (``MLPAgent``, ``GRUAgent``, ...), torchrl's ``MultiAgentMLP``,
            or a TorchRL Q-value policy ``TensorDictSequential(TensorDictModule(net), QValueModule)``
            (see :class:`ValueDecompositionLoss`).
        mixer: a :class:`~torchrl_vd.modules.mixers.Mixer` (``VDNMixer``, ``QMixer``, your own), or a torchrl
            ``Mixer`` (``torchrl.modules.models.multiagent.QMixer``, ``VDNMixer``, your own subclass), bare or
            in a ``TensorDictModule``: a module reading ``[local_value, state]`` sets the loss's ``state``
            key to its second in_key (torchrl's QMIX example mixes on ``("agents", "observation")``).

    Keyword Args: see :class:`ValueDecompositionLoss`.

    Returns (forward): ``loss`` (optimise this) and ``loss_td``, both the masked mean squared TD error.

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, VDNMixer, MixingQLoss
        >>> from torchrl_vd.testing import random_batch
        >>> loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
        >>> loss.make_value_estimator(gamma=0.9)
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=8)
        >>> out = loss(td)
        >>> sorted(out.keys())
        ['loss', 'loss_td']
        >>> td["td_error"].shape  # per-sample |Q_tot − y|, written for prioritized replay
        torch.Size([8])
        >>> torch.allclose(out["loss"], td["td_error"].pow(2).mean())  # "l2": the mean squared TD error
        True
    """

    mixer: Mixer

    def __init__(self, agent_net: nn.Module, mixer: nn.Module, **kwargs):
        super().__init__(agent_net, **kwargs)
        mixer, keys = as_mixer(mixer)
        if mixer.n_agents != self.agent_net.n_agents:
            raise ValueError(
                f"The mixer was built for n_agents={mixer.n_agents} but the agent net for "
                f"n_agents={self.agent_net.n_agents}; build both from describe_env(env).n_agents."
            )
        self.add_network("mixer", mixer)
        self.adopt_keys(keys)

    def mixer_state(self, b: Batch, *, next: bool = False) -> torch.Tensor | None:
        """The centralized information z the mixer sees (MAVEN appends its latent here)."""
        return b.next_state if next else b.state

    def _losses(self, b: Batch):
        q, q_next = self.online_utilities(b, need_next=self.double_q)  # [*B, n, A] each (q_next: no grad)
        chosen = self.zero_dead(self.gather(q, b.action), b.alive)  # [*B, n, 1]
        q_tot = self.mixer(chosen, self.mixer_state(b))  # [*B, 1]
        with torch.no_grad():
            chosen_next = self.next_target_utilities(b, q_next)[2]  # [*B, n, 1]
            v_next = self.target("mixer")(chosen_next, self.mixer_state(b, next=True))  # [*B, 1]
            y = self.td_target(b, v_next)  # [*B, 1]
        loss_td, td_error = self.td_loss(q_tot, y, b)
        return {"loss": loss_td, "loss_td": loss_td.detach()}, td_error

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_tot(h, z, a) [*B, K] for joint actions ``[K, n]`` or ``[*B, K, n]`` (online agents and mixer);
        dead agents' utilities are zero, as in the TD loss."""
        b, q = self.eval_utilities(td)  # q: [*B, n, A]
        chosen, _, state = self.joint_inputs(q, joint_actions, self.mixer_state(b), b.alive)  # [*B, K, n, 1], [*B, K, *S]
        return self.mixer(chosen, state).squeeze(-1)  # [*B, K, 1] -> [*B, K]

