"""Mixer base: torchrl's Mixer call shape with shape checks; subclasses implement only ``mix``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class Mixer(nn.Module):
    """Combines per-agent utilities into a centralized value.

    Call shape (torchrl's ``torchrl.modules.models.multiagent.Mixer``)::

        mixer(chosen_action_value [*B, n_agents, 1], state [*B, *state_shape]) -> [*B, 1]

    Args:
        n_agents: number of agents n.
        state_shape: shape of the centralized information z (``()`` for mixers that ignore it).
        needs_state: whether ``mix`` reads the state (VDN does not).
        monotonic: whether ∂Q_tot/∂Q_i ≥ 0 holds by construction, so that IGM holds (Rashid et al. 2018, Eq. 5).
    """

    needs_state: bool = True
    monotonic: bool = True

    def __init__(self, n_agents: int, state_shape: Sequence[int] | int = ()):
        super().__init__()
        if int(n_agents) < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}.")
        self.n_agents = int(n_agents)
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        self.state_dim = math.prod(self.state_shape)

    def forward(self, chosen_action_value: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        q = chosen_action_value
        if q.ndim < 2 or q.shape[-2:] != (self.n_agents, 1):
            raise ValueError(
                f"{type(self).__name__} was built for n_agents={self.n_agents} and expects utilities "
                f"[*B, {self.n_agents}, 1], got {list(q.shape)}. Does the mixer's n_agents match the env's?"
            )
        batch = q.shape[:-2]
        if self.needs_state:
            if state is None:
                raise ValueError(
                    f"{type(self).__name__} mixes with the centralized state z but got none: the data "
                    "needs a 'state' entry (make_env adds one; else set_keys(state=...))."
                )
            if tuple(state.shape[len(batch):]) != self.state_shape or state.shape[: len(batch)] != batch:
                raise ValueError(
                    f"{type(self).__name__} expects state [*B={list(batch)}, *{list(self.state_shape)}], got "
                    f"{list(state.shape)}. Build the mixer with state_shape=describe_env(env).state_shape."
                )
            state = state.reshape(*batch, self.state_dim)  # [*B, S]
        return self.mix(q.squeeze(-1), state)  # [*B, n] -> [*B, 1]

    def mix(self, utilities: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """``utilities [*B, n]``, ``state [*B, S]`` (flattened) -> ``[*B, 1]``."""
        raise NotImplementedError  # abstract: every mixer defines its own mixing function
