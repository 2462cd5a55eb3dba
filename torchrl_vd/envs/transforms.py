"""Small pieces shared by the env adapters: team reward, centralized state, and the specs they need.

The adapters (``vmas.py``, ``pettingzoo.py``) call the plain functions inline in their ``_step`` (a
transform would add one more tensordict pass per step). The :class:`TeamReward` and
:class:`StackedObsState` transforms expose the same computations for *other* multi-agent TorchRL
envs, e.g. a bare ``torchrl.envs.VmasEnv`` or ``PettingZooWrapper``, so they can be brought to the
key layout of DESIGN.md::

    env = TransformedEnv(VmasEnv("balance", num_envs=8, continuous_actions=False),
                         Compose(TeamReward(), StackedObsState()))

TorchRL has no transform for either (``RewardSum`` sums over *time*, not over agents), hence these.
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs.transforms import Transform

GROUP = "agents"
TEAM_REWARD_MODES = ("sum", "mean")


def check_team_reward_mode(mode: str) -> str:
    if mode not in TEAM_REWARD_MODES:
        raise ValueError(f"team_reward must be one of {TEAM_REWARD_MODES}, got {mode!r}.")
    return mode


def team_reward(agent_rewards: torch.Tensor, mode: str = "sum", alive: torch.Tensor | None = None) -> torch.Tensor:
    """Team reward ``[*B, 1]`` from per-agent rewards ``[*B, n]``.

    ``mode="sum"`` adds the agents' rewards, ``"mean"`` averages them (over the ``alive`` agents when
    a ``[*B, n]`` bool mask is given; dead agents' rewards are taken as they come, usually 0).
    """
    total = agent_rewards.sum(-1, keepdim=True)
    if mode == "sum":
        return total
    if mode == "mean":
        if alive is None:
            return total / agent_rewards.shape[-1]
        return total / alive.sum(-1, keepdim=True).clamp_min(1).to(total.dtype)
    raise ValueError(f"team_reward must be one of {TEAM_REWARD_MODES}, got {mode!r}.")


def stacked_state(agent_obs: torch.Tensor) -> torch.Tensor:
    """Centralized state ``[*B, n*F]`` made of the agents' observations ``[*B, n, F]`` (flattened)."""
    return agent_obs.flatten(-2, -1)


def done_specs(device=None) -> Composite:
    """Root ``done`` / ``terminated`` / ``truncated`` specs (``[1]`` bool each), as TorchRL builds them."""
    return Composite(
        {k: Categorical(n=2, shape=(1,), dtype=torch.bool, device=device) for k in ("done", "terminated", "truncated")},
        device=device,
    )


class TeamReward(Transform):
    """Adds the team reward ``out_key`` ``[*B, 1]`` = sum/mean over agents of ``in_key`` ``[*B, n, 1]``.

    The per-agent reward stays where it is (TorchRL's multi-agent convention); algorithms in
    torchrl_vd read the root ``"reward"``.
    """

    def __init__(
        self,
        mode: Literal["sum", "mean"] = "sum",
        in_key=(GROUP, "reward"),
        out_key="reward",
    ):
        super().__init__(in_keys=[in_key], out_keys=[out_key])
        self.mode = check_team_reward_mode(mode)

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        rew = next_tensordict.get(self.in_keys[0], None)
        if rew is not None:
            next_tensordict.set(self.out_keys[0], team_reward(rew.squeeze(-1), self.mode))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return tensordict_reset

    def transform_reward_spec(self, reward_spec: Composite) -> Composite:
        in_spec = reward_spec[self.in_keys[0]]
        reward_spec[self.out_keys[0]] = Unbounded(
            shape=(*reward_spec.shape, 1), dtype=in_spec.dtype, device=in_spec.device
        )
        return reward_spec


class StackedObsState(Transform):
    """Adds ``out_key`` (default ``"state"``) ``[*B, n*F]``: the agents' observations flattened.

    For envs without a real global state: DESIGN.md's centralized info ``z`` then is the joint
    observation.
    """

    def __init__(self, in_key=(GROUP, "observation"), out_key="state"):
        super().__init__(in_keys=[in_key], out_keys=[out_key])

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        obs = next_tensordict.get(self.in_keys[0], None)
        if obs is not None:
            next_tensordict.set(self.out_keys[0], stacked_state(obs).to(torch.float32))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        in_spec = observation_spec[self.in_keys[0]]
        nb = len(observation_spec.shape)
        shape = in_spec.shape
        feat = shape[nb:]
        if len(feat) != 2:
            raise ValueError(f"StackedObsState expects {self.in_keys[0]} of shape [*B, n, F], got spec shape {tuple(shape)}.")
        observation_spec[self.out_keys[0]] = Unbounded(
            shape=(*observation_spec.shape, feat[0] * feat[1]), dtype=torch.float32, device=in_spec.device
        )
        return observation_spec
