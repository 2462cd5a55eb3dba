"""VDN and QMIX: one TD loss on a mixed centralized value (Sunehag et al. 2018; Rashid et al. 2018, Eq. 1)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from torchrl_vd.modules.interop import as_mixer
from torchrl_vd.modules.mixers.base import Mixer
from torchrl_vd.objectives.batch import Batch
from torchrl_vd.objectives.common import ValueDecompositionLoss


def _mixer_of(module: nn.Module) -> Mixer:
    return as_mixer(module)[0]


class MixingLossBase(ValueDecompositionLoss):
    """A loss whose centralized value mixes the agents' utilities with a mixer module, registered as torchrl's
    ``QMixerLoss`` registers it: ``mixer_network`` (the user's ``TensorDictModule``, or one reading
    ``[local_value, state]`` and writing ``global_value`` built around a bare mixer), its parameters
    ``mixer_network_params`` / ``target_mixer_network_params``; the loss computes with ``mixer``."""

    mixer_network: TensorDictModule
    mixer_network_params: Any
    target_mixer_network_params: Any

    def add_mixer(self, mixer_network: nn.Module) -> Mixer:
        """Register ``mixer_network`` (checks n_agents against the agents); return the mixer the loss calls."""
        mixer, keys = as_mixer(mixer_network)
        if mixer.n_agents != self.agent_net.n_agents:
            raise ValueError(
                f"The mixer was built for n_agents={mixer.n_agents} but the agent net for "
                f"n_agents={self.agent_net.n_agents}; build both from describe_env(env).n_agents."
            )
        self._user_mixer_keys = isinstance(mixer_network, TensorDictModule)
        if not self._user_mixer_keys:  # what torchrl code sees of a bare mixer: QMixerLoss's wrapping
            k = self.tensor_keys
            reads = [k.local_value, k.state] if getattr(mixer, "needs_state", True) else [k.local_value]
            mixer_network = TensorDictModule(mixer_network, in_keys=reads, out_keys=[k.global_value])
        self.add_network("mixer_network", mixer_network, compute=_mixer_of, alias="mixer")
        self.adopt_keys(keys)
        return mixer

    @property
    def mixer(self) -> Mixer:
        """The mixer the loss computes with (its parameters: ``mixer_network_params``)."""
        return self.compute_module("mixer")

    @property
    def mixer_params(self) -> TensorDictBase:
        """``mixer``'s online parameters (a view into ``mixer_network_params``)."""
        return self.network_params("mixer")

    @property
    def target_mixer_params(self) -> TensorDictBase:
        """``mixer``'s target parameters (a view into ``target_mixer_network_params``)."""
        return self.network_params("mixer", target=True)

    def check_mixer_keys(self) -> None:
        """A mixer ``TensorDictModule`` of the user's reads its local values at its first in_key and writes Q_tot
        at its out_key: ``KeyError`` where those differ from ``local_value`` / ``global_value``, as QMixerLoss, which
        runs the module on the tensordict, fails there."""
        if not self._user_mixer_keys or getattr(self.mixer_network, "_kwargs", None):
            return
        k, module = self.tensor_keys, self.mixer_network
        if module.in_keys[0] != k.local_value:
            raise KeyError(f'key "{module.in_keys[0]}" not found in TensorDict: the mixer module reads the local values '
                           f"at {module.in_keys[0]!r}, where the loss puts them at local_value={k.local_value!r}; "
                           f"set_keys(local_value={module.in_keys[0]!r}) or build the module with that in_key.")
        if module.out_keys[0] != k.global_value:
            raise KeyError(f'key "{k.global_value}" not found in TensorDict: the mixer module writes Q_tot at '
                           f"{module.out_keys[0]!r}, not at global_value={k.global_value!r}; "
                           f"set_keys(global_value={module.out_keys[0]!r}).")

    def read_batch(self, td: TensorDictBase) -> Batch:
        self.check_mixer_keys()
        return super().read_batch(td)

    def _extra_in_keys(self) -> list:
        reads = getattr(self.mixer_network, "in_keys", [])  # a mixer TensorDictModule's (the state it mixes on)
        return [key for key in reads if key != self.tensor_keys.local_value]


class MixingQLoss(MixingLossBase):
    """L(θ) = 1/``|B|`` Σ (r + γ max_a Q_tot(h', z', a; θ̄) − Q_tot(h, z, a; θ))²  (VDN, Sunehag et al. 2018; QMIX,
    Rashid et al. 2018, Eq. 1).

    Q_tot = mixer(Q(h_1, a_1), ..., Q(h_n, a_n); z). For a monotonic mixer (VDN, QMIX), the max over joint actions
    decomposes into per-agent maxima (IGM): max_a Q_tot(h', z', a) = mixer(max_{a_i} Q_i). With ``double_q`` the
    per-agent argmax comes from the online agents and is evaluated by the target agents and target mixer.

    A drop-in for torchrl's ``QMixerLoss``: the same constructor (positional or ``local_value_network=`` /
    ``mixer_network=``, ``loss_function``, ``delay_value``, ``action_space``), parameter names, keys and value
    estimators; ``double_q=False`` computes QMixerLoss's target (docs/COMING_FROM_TORCHRL.md lists what differs).

    Args:
        local_value_network: the agents (see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`).
        mixer_network: a :class:`~torchrl_vd.modules.mixers.Mixer` (``VDNMixer``, ``QMixer``, your own), or a torchrl
            ``Mixer`` (``torchrl.modules.models.multiagent.QMixer``, ``VDNMixer``, your own subclass), bare or in a
            ``TensorDictModule``: a module reading ``[local_value, state]`` sets the loss's ``state`` key to its second
            in_key (torchrl's QMIX example mixes on ``("agents", "observation")``). Its ``n_agents`` sizes the agents
            when their network does not say (a shared ``nn.Linear``).

    Keyword Args: see :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss`.

    Returns (forward): ``loss``, the masked mean squared TD error.

    Examples:
        >>> import torch
        >>> from torchrl_vd import MLPAgent, VDNMixer, MixingQLoss
        >>> from torchrl_vd.testing import random_batch
        >>> loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
        >>> loss.make_value_estimator(gamma=0.9)
        MixingQLoss(...)
        >>> td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=8)
        >>> out = loss(td)
        >>> sorted(out.keys())
        ['loss']
        >>> td["td_error"].shape  # per-sample |Q_tot − y|, written for prioritized replay
        torch.Size([8])
        >>> torch.allclose(out["loss"], td["td_error"].pow(2).mean())  # "l2": the mean squared TD error
        True
    """

    def __init__(self, local_value_network: nn.Module, mixer_network: nn.Module, **kwargs):
        n_agents = kwargs.pop("n_agents", None) or getattr(as_mixer(mixer_network)[0], "n_agents", None)
        super().__init__(local_value_network, n_agents=n_agents, **kwargs)
        self.add_mixer(mixer_network)

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
        return {"loss": loss_td}, td_error

    def joint_q_values(self, td: TensorDictBase, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_tot(h, z, a) ``[*B, K]`` for joint actions ``[K, n]`` or ``[*B, K, n]`` (online agents and mixer);
        dead agents' utilities are zero, as in the TD loss."""
        b, q = self.eval_utilities(td)  # q: [*B, n, A]
        chosen, _, state = self.joint_inputs(q, joint_actions, self.mixer_state(b), b.alive)  # [*B, K, n, 1], [*B, K, *S]
        return self.mixer(chosen, state).squeeze(-1)  # [*B, K, 1] -> [*B, K]


__all__ = ["MixingLossBase", "MixingQLoss"]
