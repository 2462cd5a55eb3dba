"""TorchRL users' own networks in our losses: agents, policies and mixers as torchrl builds them.

A TorchRL user (e.g. pytorch/rl ``sota-implementations/multiagent/qmix_vdn.py``) already has

* a per-agent Q network: ``MultiAgentMLP`` / any ``MultiAgentNetBase``, or any ``nn.Module``
  ``[*B, n, F] -> [*B, n, A]``;
* a policy around it: ``TensorDictSequential(TensorDictModule(net, in_keys=[obs], out_keys=[action_value]),
  QValueModule(...))`` (``SafeSequential``, ``QValueActor``, ...), maybe followed by ``EGreedyModule``;
* a mixer: torchrl's ``QMixer`` / ``VDNMixer`` / their own ``torchrl.modules.models.multiagent.Mixer``
  subclass, bare or in a ``TensorDictModule(mixer, in_keys=[local_value, state], out_keys=[global_value])``.

:func:`as_agent_net` and :func:`as_mixer` turn each into the tensor-in/tensor-out module our losses
compute with (an :class:`~torchrl_vd.modules.agents.AgentNet`, a
:class:`~torchrl_vd.modules.mixers.Mixer`), and return the tensordict keys the wrapper names (the
observation, action and mask keys of a policy; the state key of a mixer module), which the loss then
adopts with ``set_keys``. The wrapped network keeps its parameters: the user's policy and the loss train
the same tensors. Our own agents and mixers pass through untouched (the losses' plain-tensor path).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import EGreedyModule, QValueModule
from torchrl.modules.models.multiagent import Mixer as TorchRLMixerBase

from torchrl_vd.modules.agents import AgentNet
from torchrl_vd.modules.mixers.base import Mixer


class WrappedAgent(AgentNet):
    """A feed-forward utility network ``[*B, n, F] -> [*B, n, A]`` that is not an :class:`AgentNet`.

    E.g. torchrl's ``MultiAgentMLP`` (``share_params`` or not, ``centralized`` or not). Called on plain
    tensors; its parameters are the module's own.

    Args:
        module: the network.
        n_agents, n_actions: sizes.
        obs_dim: per-agent observation size, ``None`` when the network does not say (a lazy
            ``MultiAgentMLP(n_agent_inputs=None)``, a conv net); only QTRAN's ``features="obs"`` needs it.
    """

    def __init__(self, module: nn.Module, n_agents: int, n_actions: int, obs_dim: int | None):
        super().__init__(n_agents, n_actions, 1 if obs_dim is None else obs_dim)
        self.obs_dim = None if obs_dim is None else int(obs_dim)
        self.module = module

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.module(obs)


def _leaves(policy: TensorDictModuleBase) -> list[TensorDictModuleBase]:
    """The modules of a (nested) ``TensorDictSequential`` in call order."""
    if isinstance(policy, TensorDictSequential):
        return [leaf for m in policy.module for leaf in _leaves(m)]
    return [policy]


def spec_n_actions(spec: Any, action_key: NestedKey) -> int | None:
    """|A| from an action spec (a ``QValueModule``'s, an env's): ``Categorical(n)`` -> n, ``OneHot`` -> its last
    dim; a ``Composite`` is looked up at ``action_key``. None when the spec does not say."""
    leaf = spec.get(action_key, None) if hasattr(spec, "get") else spec
    if leaf is None:
        return None
    space = getattr(leaf, "space", None)
    if getattr(space, "n", None) is not None:
        return int(space.n)
    return int(leaf.shape[-1]) if len(leaf.shape) else None


def _net_sizes(net: nn.Module) -> dict[str, int | None]:
    """``n_agents`` / ``n_actions`` / ``obs_dim`` a network states: our names, or ``MultiAgentMLP``'s."""
    return {
        "n_agents": getattr(net, "n_agents", None),
        "n_actions": getattr(net, "n_actions", getattr(net, "n_agent_outputs", None)),
        "obs_dim": getattr(net, "obs_dim", getattr(net, "n_agent_inputs", None)),
    }


def _policy_network(policy: TensorDictModuleBase) -> tuple[nn.Module, dict[str, NestedKey], int | None]:
    """(network, keys, n_actions from the ``QValueModule`` spec) of a TorchRL Q-value policy."""
    leaves = _leaves(policy)
    qvalue = next((m for m in leaves if isinstance(m, QValueModule)), None)
    value_key = qvalue.action_value_key if qvalue is not None else None
    nets = [m for m in leaves if not isinstance(m, (QValueModule, EGreedyModule))]
    writers = [m for m in nets if value_key is None or value_key in m.out_keys]
    recurrent = [type(m).__name__ for m in nets if type(m).__name__ in ("GRUModule", "LSTMModule")]
    if recurrent:
        raise TypeError(
            f"The policy holds a torchrl {recurrent[0]}: its hidden state lives in tensordict entries our losses do "
            "not unroll. Use torchrl_vd.GRUAgent (stored hidden states, resets at is_init, burn-in) with "
            "make_agent_policies and agent_transforms."
        )
    if len(writers) != 1 or not isinstance(writers[0], TensorDictModule):
        raise TypeError(
            f"Cannot find the Q network in the policy {type(policy).__name__}: expected one TensorDictModule writing "
            f"the action values {value_key!r} (TensorDictModule(net, in_keys=[obs], out_keys=[action_value]) followed "
            f"by a QValueModule), found {[type(m).__name__ for m in nets]}. Pass the network itself instead."
        )
    tdm = writers[0]
    inner = tdm.module
    keys: dict[str, NestedKey] = {"observation": tdm.in_keys[0]}
    if not isinstance(inner, AgentNet) and len(tdm.in_keys) != 1:
        raise TypeError(
            f"The Q network reads {len(tdm.in_keys)} entries {tdm.in_keys}; our losses feed a feed-forward network "
            "one observation tensor [*B, n, F]. Concatenate the inputs into one entry in the env (torchrl's "
            "CatTensors transform) or pass an AgentNet."
        )
    n_actions = None
    if qvalue is not None:
        keys["action"] = qvalue.out_keys[0]
        if qvalue.action_mask_key is not None:
            keys["action_mask"] = qvalue.action_mask_key
        n_actions = spec_n_actions(qvalue.spec, qvalue.out_keys[0])
    return inner, keys, n_actions


def as_agent_net(
    module: nn.Module,
    *,
    n_agents: int | None = None,
    n_actions: int | None = None,
    obs_dim: int | None = None,
) -> tuple[AgentNet, dict[str, NestedKey]]:
    """``(agent_net, keys)``: the :class:`AgentNet` a loss computes with, and the keys a policy names.

    ``module`` may be an :class:`AgentNet` (returned as is), any feed-forward network
    ``[*B, n, F] -> [*B, n, A]`` (torchrl's ``MultiAgentMLP`` / ``MultiAgentNetBase``: sizes read from
    ``n_agents``, ``n_agent_outputs``, ``n_agent_inputs``), or a TorchRL Q-value policy
    (``TensorDictSequential``/``SafeSequential``/``QValueActor`` of ``TensorDictModule(net)`` and a
    ``QValueModule``, optionally an ``EGreedyModule``): its network is used, ``keys`` gets the
    observation key (the network's in_key), the action key (the ``QValueModule``'s first out_key) and
    its action-mask key, and |A| is read from the ``QValueModule``'s spec when the network does not
    state it. Keyword sizes override what is inferred.

    Examples:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule, TensorDictSequential
        >>> from torchrl.data import Categorical
        >>> from torchrl.modules import MultiAgentMLP, QValueModule
        >>> net = MultiAgentMLP(n_agent_inputs=4, n_agent_outputs=3, n_agents=2, centralized=False,
        ...                     share_params=False, depth=1, num_cells=8)
        >>> qnet = TensorDictSequential(
        ...     TensorDictModule(net, in_keys=[("team", "obs")], out_keys=[("team", "action_value")]),
        ...     QValueModule(action_value_key=("team", "action_value"), spec=Categorical(3), action_space=None,
        ...                  out_keys=[("team", "act"), ("team", "action_value"), ("team", "chosen_action_value")]))
        >>> agent, keys = as_agent_net(qnet)
        >>> (agent.n_agents, agent.n_actions, agent.obs_dim), keys
        ((2, 3, 4), {'observation': ('team', 'obs'), 'action': ('team', 'act')})
        >>> obs = torch.randn(5, 2, 4)
        >>> torch.equal(agent(obs), net(obs))  # the same network, the same parameters
        True
    """
    keys: dict[str, NestedKey] = {}
    spec_actions = None
    net = module
    if isinstance(module, TensorDictModuleBase):
        net, keys, spec_actions = _policy_network(module)
    if isinstance(net, AgentNet):
        return net, keys
    sizes = _net_sizes(net)
    n_agents = n_agents or sizes["n_agents"]
    n_actions = n_actions or sizes["n_actions"] or spec_actions
    obs_dim = obs_dim or sizes["obs_dim"]
    if n_agents is None or n_actions is None:
        missing = "n_agents" if n_agents is None else "n_actions"
        raise TypeError(
            f"Cannot tell {missing} of {type(net).__name__}: give the network n_agents/n_actions attributes, use "
            "torchrl's MultiAgentMLP or a policy ending in a QValueModule with a spec, or wrap it: "
            f"torchrl_vd.as_agent_net(net, n_agents=..., n_actions=..., obs_dim=...)[0]."
        )
    return WrappedAgent(net, int(n_agents), int(n_actions), obs_dim), keys


class WrappedMixer(Mixer):
    """A torchrl ``Mixer`` (``QMixer``, ``VDNMixer``, a user's own subclass) behind our :class:`Mixer` call.

    Same call shape, ``(chosen_action_value [*B, n, 1], state [*B, *S]) -> [*B, 1]``; the state is passed
    unflattened and only when the wrapped mixer ``needs_state`` (torchrl's ``Mixer.forward`` refuses a
    second input otherwise). It is taken as monotonic (∂Q_tot/∂Q_i ≥ 0, Rashid et al. 2018, Eq. 5), as
    :class:`~torchrl_vd.objectives.MixingQLoss` assumes of every mixer: torchrl's ``QMixer`` takes |W| of
    its hypernetworks' weights, ``VDNMixer`` sums.
    """

    def __init__(self, module: nn.Module):
        n_agents = getattr(module, "n_agents", None)
        if n_agents is None:
            raise TypeError(f"{type(module).__name__} has no n_agents: not a mixer with torchrl's Mixer call shape.")
        super().__init__(n_agents, tuple(getattr(module, "state_shape", ()) or ()))
        self.needs_state = bool(getattr(module, "needs_state", True))
        self.module = module

    def forward(self, chosen_action_value: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        # torchrl's QMixer reshapes with .view: expanded inputs (check_igm's K joint actions) must be made contiguous
        chosen_action_value = chosen_action_value.contiguous()
        if not self.needs_state:
            return self.module(chosen_action_value)
        if state is None:
            raise ValueError(
                f"{type(self.module).__name__} mixes with a state but got none: the data needs the entry its "
                "TensorDictModule reads (set_keys(state=...))."
            )
        return self.module(chosen_action_value, state.contiguous())


def as_mixer(module: nn.Module) -> tuple[Mixer, dict[str, NestedKey]]:
    """``(mixer, keys)``: our :class:`Mixer` for ``module`` and the state key a ``TensorDictModule`` names.

    ``module``: one of our mixers (returned as is), a torchrl ``Mixer`` subclass (wrapped in
    :class:`WrappedMixer`), or either inside a ``TensorDictModule`` whose ``in_keys`` are
    ``[local_value, state]`` (``keys["state"]`` = that state key, e.g. torchrl's QMIX example mixes on
    ``("agents", "observation")``) or ``[local_value]`` (VDN), or named ``{local_value: ..., state: "state"}``.
    """
    keys: dict[str, NestedKey] = {}
    if isinstance(module, TensorDictModule):
        in_keys = list(module.in_keys)
        names = getattr(module, "_kwargs", None)
        if names:  # dict in_keys: {key: argument name}
            state = [k for k, name in zip(in_keys, names) if name == "state"]
            if state:
                keys["state"] = state[0]
        elif len(in_keys) == 2:
            keys["state"] = in_keys[1]
        elif len(in_keys) != 1:
            raise TypeError(
                f"A mixer TensorDictModule reads [local_value] or [local_value, state]; got in_keys {in_keys}."
            )
        module = module.module
    if isinstance(module, Mixer):
        return module, keys
    if isinstance(module, TorchRLMixerBase):
        return WrappedMixer(module), keys
    raise TypeError(
        f"mixer must be a torchrl_vd Mixer (VDNMixer, QMixer, or a subclass implementing mix) or a torchrl "
        f"torchrl.modules.models.multiagent.Mixer (QMixer, VDNMixer, your own), bare or in a TensorDictModule; got "
        f"{type(module).__name__}. Subclass one of them (only mix() is needed)."
    )


__all__ = ["WrappedAgent", "WrappedMixer", "as_agent_net", "as_mixer"]
