"""Per-agent utility networks Q(h_i, a_i; θ_i): the :class:`AgentNet` contract and the feed-forward agent.

Every agent network is a plain ``nn.Module`` (tensor in, tensor out) that maps the agents'
observations ``[*B, n_agents, obs_dim]`` to utilities ``[*B, n_agents, n_actions]``. The losses talk
to it through one method, :meth:`AgentNet.evaluate`, which returns the utilities at the current and
at the next step; that is the only place where feed-forward and recurrent agents differ (a recurrent
agent unrolls its hidden state over the time axis there: ``GRUAgent`` in gru_agent.py).

Policies are composed from torchrl parts in policies.py (:func:`make_agent_policies`): ``TensorDictModule(agent)``
→ ``QValueModule`` (greedy, mask-aware) → ``EGreedyModule`` (ε-greedy, mask-aware).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from torchrl_vd.keys import ACTION_VALUE, GROUP, OBSERVATION


class PerAgentLinear(nn.Module):
    """A linear layer with its own weights for each agent: ``[*B, n, in] -> [*B, n, out]``.

    Written by hand because torchrl's ``MultiAgentMLP`` vmaps a functional copy of the network per
    call; one batched einsum over stacked weights is simpler and cheaper for our small nets.
    """

    def __init__(self, n_agents: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_agents, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_agents, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, per agent: U(−1/√in, 1/√in) for weights and biases."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [*B, n, in] x [n, in, out] -> [*B, n, out]
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias


def _linear(n_agents: int, in_f: int, out_f: int, share_params: bool) -> nn.Module:
    return nn.Linear(in_f, out_f) if share_params else PerAgentLinear(n_agents, in_f, out_f)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
"""Hidden activations by name (``TrainConfig.activation``): the agents take the class."""


class AgentNet(nn.Module):
    """Base of the per-agent utility networks.

    Attributes:
        n_agents, n_actions, obs_dim: sizes.
        is_recurrent: whether the net carries a hidden state over an observation history.
        feature_size: size H of the hidden features h_i the utilities are read off (Q_i = head(h_i)),
            ``None`` when the net does not expose them (QTRAN's default Q_jt input, pymarl's
            ``mac.hidden_states``).
    """

    is_recurrent: bool = False
    feature_size: int | None = None

    def __init__(self, n_agents: int, n_actions: int, obs_dim: int):
        super().__init__()
        for name, v in (("n_agents", n_agents), ("n_actions", n_actions), ("obs_dim", obs_dim)):
            if int(v) < 1:
                raise ValueError(f"{name} must be a positive integer, got {v}.")
        self.n_agents, self.n_actions, self.obs_dim = int(n_agents), int(n_actions), int(obs_dim)

    def check_obs(self, obs: torch.Tensor) -> None:
        """Clear error when observations do not match the net (instead of a matmul traceback)."""
        if obs.ndim < 2 or obs.shape[-2] != self.n_agents or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"{type(self).__name__} expects observations [*B, n_agents={self.n_agents}, "
                f"obs_dim={self.obs_dim}], got {list(obs.shape)}. Build the agent net from the env "
                "(torchrl_vd.describe_env(env)) so n_agents/obs_dim match."
            )

    def evaluate(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        hidden: torch.Tensor | None = None,
        is_init: torch.Tensor | None = None,
        need_current: bool = True,
        need_next: bool = True,
        features: bool = False,
    ) -> tuple:
        """Utilities at the current and next step: ``(Q(h_t, ·), Q(h_{t+1}, ·))``, each ``[*B, n, A]``.

        A step that is not needed comes back as ``None``. Feed-forward agents stack both steps into
        one forward pass; recurrent agents override this to unroll their hidden state. With
        ``features=True`` each step is a pair ``(Q [*B, n, A], h [*B, n, feature_size])`` (``(None, None)``
        when not needed), h being the hidden features the utilities are read off (:meth:`trunk`).
        """
        if features:
            def both(o):
                h = self.trunk(o)  # [*B, n, H]
                return self.readout(h), h

            return (both(obs) if need_current else (None, None)), (both(next_obs) if need_next else (None, None))
        if need_current and need_next:
            q = self(torch.stack((obs, next_obs)))  # [2, *B, n, A]
            return q[0], q[1]
        return (self(obs) if need_current else None), (self(next_obs) if need_next else None)

    def trunk(self, obs: torch.Tensor) -> torch.Tensor:
        """Hidden features h_i ``[*B, n, feature_size]`` of a feed-forward agent (Q_i = :meth:`readout` (h_i))."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its hidden features (feature_size is None).")

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Utilities ``[*B, n, A]`` from hidden features ``[*B, n, feature_size]``."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its hidden features (feature_size is None).")

    def extra_inputs(self, td: TensorDictBase, group: str = GROUP) -> dict:
        """Keyword inputs of :meth:`evaluate` beyond observations and hidden state, read from a batch.

        Empty for agents that need none; ``GRUAgent(last_action=True)`` reads its previous actions.
        """
        return {}

    def policy_module(self, group: str = GROUP) -> TensorDictModule:
        """``TensorDictModule`` reading ``(group, "observation")`` and writing ``(group, "action_value")``."""
        return TensorDictModule(self, in_keys=[(group, OBSERVATION)], out_keys=[(group, ACTION_VALUE)])


class MLPAgent(AgentNet):
    """Feed-forward utility Q(o_i, a_i; θ_i) (an MLP on the current observation).

    Args:
        n_agents: number of agents n.
        n_actions: size of each agent's discrete action set ``|A_i|``.
        obs_dim: per-agent observation size.
        hidden: hidden layer sizes.
        share_params: one network for all agents (θ_i = θ) or one per agent.
        agent_id: append a one-hot agent id to the observation (lets shared nets specialise).
        activation: hidden activation class.
    """

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        obs_dim: int,
        hidden: Sequence[int] = (64, 64),
        *,
        share_params: bool = True,
        agent_id: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__(n_agents, n_actions, obs_dim)
        self.share_params, self.agent_id = bool(share_params), bool(agent_id)
        sizes = [obs_dim + (n_agents if agent_id else 0), *hidden, n_actions]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(_linear(n_agents, a, b, share_params))
            if i < len(sizes) - 2:
                layers.append(activation())
        self.net = nn.Sequential(*layers)
        self.feature_size = sizes[-2]  # the last hidden layer (the input, with the id, when hidden=())
        self.register_buffer("_eye", torch.eye(n_agents), persistent=False)

    def _inputs(self, obs: torch.Tensor) -> torch.Tensor:
        self.check_obs(obs)
        if self.agent_id:
            ids = self._eye.expand(*obs.shape[:-2], self.n_agents, self.n_agents)  # [*B, n, n]
            obs = torch.cat((obs, ids), dim=-1)  # [*B, n, obs_dim + n]
        return obs

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[*B, n, obs_dim] -> [*B, n, n_actions]``."""
        return self.net(self._inputs(obs))

    def trunk(self, obs: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations ``[*B, n, feature_size]`` (all layers but the output one)."""
        return self.net[:-1](self._inputs(obs))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The output layer: ``[*B, n, feature_size] -> [*B, n, n_actions]``."""
        return self.net[-1](h)
