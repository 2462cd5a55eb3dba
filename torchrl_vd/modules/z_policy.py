"""MAVEN's hierarchical latent policy π_z(z | s_0) (Mahajan et al. 2019: its REINFORCE objective L_RL).

:func:`make_z_policy` builds π_z as a ``ProbabilisticTensorDictSequential`` with a ``OneHotCategorical``:
``set_exploration_type(RANDOM)`` samples z, ``DETERMINISTIC`` takes its mode.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import OneHotCategorical

from torchrl_vd.keys import NOISE, STATE


class ZPolicyNet(nn.Module):
    """Logits of π_z(z | s_0): ``Linear(S,128)-ReLU-Linear(128,Z)`` (authors'), or all zeros (uniform).

    Args:
        state_shape: shape of s_0 (flattened inside).
        noise_dim: number of z classes.
        learned: ``False`` gives the uniform z-policy (no parameters).
        hidden: width of the hidden layer (authors': 128).
    """

    def __init__(self, state_shape: Sequence[int] | int, noise_dim: int, *, learned: bool = True, hidden: int = 128):
        super().__init__()
        self.state_shape = (int(state_shape),) if isinstance(state_shape, int) else tuple(state_shape)
        self.state_dim = int(torch.Size(self.state_shape).numel())
        self.noise_dim, self.learned = int(noise_dim), bool(learned)
        self.net = (
            nn.Sequential(nn.Linear(self.state_dim, hidden), nn.ReLU(), nn.Linear(hidden, self.noise_dim))
            if self.learned
            else None
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """``state [*B, *S]`` -> logits ``[*B, Z]``."""
        s = state.flatten(state.ndim - len(self.state_shape)).float() if self.state_shape else state.float()  # [*B, S]
        if self.net is None:
            return s.new_zeros(*s.shape[:-1], self.noise_dim)  # uniform
        return self.net(s)


def make_z_policy(
    state_shape: Sequence[int] | int,
    noise_dim: int,
    *,
    learned: bool = True,
    hidden: int = 128,
    state_key: NestedKey = STATE,
    noise_key: NestedKey = NOISE,
) -> ProbabilisticTensorDictSequential:
    """π_z(z | s_0) as a probabilistic tensordict module: ``state_key`` -> ``noise_key`` (one-hot).

    The distribution is torchrl's ``OneHotCategorical`` on :class:`ZPolicyNet` logits. Selection follows
    ``set_exploration_type``: ``RANDOM`` (and no context: the default here) samples z, ``DETERMINISTIC``
    takes the mode (the z-policy's greedy z; for the uniform policy that is z = 0). ``.get_dist(td)``
    gives the distribution for the REINFORCE update (MAVEN's L_RL, Mahajan et al. 2019).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.envs.utils import ExplorationType, set_exploration_type
        >>> pi = make_z_policy(state_shape=3, noise_dim=4)
        >>> td = TensorDict(state=torch.zeros(5, 3), batch_size=[5])
        >>> pi(td)["noise"].shape
        torch.Size([5, 4])
        >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
        ...     z = pi(td)["noise"]
        >>> bool((z == z[0]).all())  # the mode: the same z for the same s_0
        True
    """
    net = ZPolicyNet(state_shape, noise_dim, learned=learned, hidden=hidden)
    return ProbabilisticTensorDictSequential(
        TensorDictModule(net, in_keys=[state_key], out_keys=["noise_logits"]),
        ProbabilisticTensorDictModule(
            in_keys={"logits": "noise_logits"},
            out_keys=[noise_key],
            distribution_class=OneHotCategorical,
            default_interaction_type=InteractionType.RANDOM,
        ),
    )


__all__ = ["ZPolicyNet", "make_z_policy"]
