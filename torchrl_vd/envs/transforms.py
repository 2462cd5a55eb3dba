"""Small pieces shared by the env adapters: team reward, centralized state, and the specs they need.

The adapters (``vmas.py``, ``pettingzoo.py``) call the plain functions inline in their ``_step`` (a
transform would add one more tensordict pass per step). The :class:`TeamReward` and
:class:`StackedObsState` transforms expose the same computations for *other* multi-agent TorchRL
envs, e.g. a bare ``torchrl.envs.VmasEnv`` or ``PettingZooWrapper``, so they can be brought to the
key layout of docs/CONTRACT.md::

    env = TransformedEnv(VmasEnv("balance", num_envs=8, continuous_actions=False),
                         Compose(TeamReward(), StackedObsState()))

TorchRL has no transform for either (``RewardSum`` sums over *time*, not over agents), hence these.

The agents' and algorithms' env transforms live here too (networks know shapes, not environments):
:func:`agent_transforms` (recurrent agents' ``InitTracker`` + hidden-state primer, :class:`LastAction`)
and :class:`NoiseTransform` (MAVEN's per-episode latent z, drawn at every reset from π_z).
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F
from torchrl.data import Categorical, Composite, OneHot, Unbounded
from torchrl.envs.transforms import InitTracker, TensorDictPrimer, Transform
from torchrl.envs.utils import ExplorationType, exploration_type, set_exploration_type

from torchrl_vd.keys import (
    ACTION, ACTION_MASK, ALIVE, DONE, GROUP, LAST_ACTION, NEXT, NOISE, NOISE_STATE0, OBSERVATION, REWARD, RNN_HIDDEN,
    STATE, TERMINATED, TRUNCATED,
)
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
        {k: Categorical(n=2, shape=(1,), dtype=torch.bool, device=device) for k in (DONE, TERMINATED, TRUNCATED)},
        device=device,
    )


def set_team_specs(env, *, n_agents: int, n_actions: int, obs_dim: int, state_dim: int, action_mask: bool = False,
                   alive: bool = False, extra_observations: dict | None = None) -> None:
    """Write the unbatched specs of the team layout on an adapter ``env`` (every adapter shares them).

    ``(group, "action")`` [n] categorical; ``(group, "observation")`` [n, obs_dim] float, optional
    ``(group, "action_mask")`` [n, n_actions] and ``(group, "alive")`` [n] bool; root ``"state"``
    [state_dim] plus ``extra_observations``; per-agent ``(group, "reward")`` [n, 1] and team ``"reward"``
    [1]; root ``done`` / ``terminated`` / ``truncated``.
    """
    n, dev = int(n_agents), env.device
    act = Categorical(n_actions, shape=(n,), dtype=torch.int64, device=dev)
    env.full_action_spec_unbatched = Composite({GROUP: Composite({ACTION: act}, shape=(n,), device=dev)}, device=dev)
    group_obs = {OBSERVATION: Unbounded(shape=(n, obs_dim), dtype=torch.float32, device=dev)}
    if action_mask:
        group_obs[ACTION_MASK] = Categorical(2, shape=(n, n_actions), dtype=torch.bool, device=dev)
    if alive:
        group_obs[ALIVE] = Categorical(2, shape=(n,), dtype=torch.bool, device=dev)
    env.full_observation_spec_unbatched = Composite(
        {GROUP: Composite(group_obs, shape=(n,), device=dev),
         STATE: Unbounded(shape=(state_dim,), dtype=torch.float32, device=dev), **(extra_observations or {})},
        device=dev,
    )
    env.full_reward_spec_unbatched = Composite(
        {GROUP: Composite({REWARD: Unbounded(shape=(n, 1), device=dev)}, shape=(n,), device=dev),
         REWARD: Unbounded(shape=(1,), device=dev)},
        device=dev,
    )
    env.full_done_spec_unbatched = done_specs(dev)


DONE_FLAGS = (DONE, TERMINATED, TRUNCATED)
DONE_MODES = ("all", "any")


class TeamReward(Transform):
    """Team reward and team done flags for any TorchRL multi-agent env, or for data already collected.

    * reward: ``out_key`` ``[*B, 1]`` = Σ_i r_i (``mode="sum"``) or 1/n Σ_i r_i (``"mean"``, what
      torchrl's QMIX example does by hand with ``.mean(-2)``) of the per-agent ``in_key`` ``[*B, n, 1]``
      (default ``("agents", "reward")``, where ``VmasEnv`` and ``PettingZooWrapper`` put it).
    * done flags: each of ``done`` / ``terminated`` / ``truncated`` that exists per agent,
      ``(group, flag)`` ``[*B, n, 1]``, but not at the root gets a root flag ``[*B, 1]`` = all agents'
      (``done_mode="all"``: the team's episode ends when every agent's has) or any agent's
      (``"any"``). Root flags the env already has (VMAS, PettingZoo) are left as they are.

    The per-agent entries stay where they are (TorchRL's multi-agent convention); torchrl_vd's losses
    read the root ``"reward"``, ``"done"``, ``"terminated"``. On an env it runs at every step and reset;
    called on a tensordict outside an env (``TeamReward("mean")(batch)`` on a collected batch, or
    ``replay_buffer.append_transform(TeamReward("mean"))``) it fills ``("next", ...)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> r = torch.tensor([[[1.0], [3.0]], [[0.0], [-2.0]]])  # [B=2, n=2, 1]
        >>> d = torch.tensor([[[True], [False]], [[True], [True]]])
        >>> batch = TensorDict({"next": {"agents": TensorDict({"reward": r, "done": d}, [2, 2])}}, [2])
        >>> out = TeamReward("mean")(batch)
        >>> out["next", "reward"].tolist(), out["next", "done"].tolist()
        ([[2.0], [-1.0]], [[False], [True]])
    """

    def __init__(
        self,
        mode: Literal["sum", "mean"] = "sum",
        in_key: NestedKey = (GROUP, REWARD),
        out_key: NestedKey = REWARD,
        *,
        done_mode: Literal["all", "any"] = "all",
    ):
        super().__init__(in_keys=[in_key], out_keys=[out_key])
        self.mode = check_team_reward_mode(mode)
        if done_mode not in DONE_MODES:
            raise ValueError(f"done_mode must be one of {DONE_MODES}, got {done_mode!r}.")
        self.done_mode = done_mode
        self.group = in_key[0] if isinstance(in_key, tuple) and len(in_key) > 1 else GROUP

    def _team_flags(self, td: TensorDictBase) -> TensorDictBase:
        """Root flags ``[*B, 1]`` from per-agent ones ``[*B, n, 1]`` where the root one is missing."""
        for flag in DONE_FLAGS:
            per_agent = td.get((self.group, flag), None)
            if per_agent is None or flag in td.keys():
                continue
            reduce = torch.all if self.done_mode == "all" else torch.any
            td.set(flag, reduce(per_agent.reshape(*td.batch_size, -1), dim=-1, keepdim=True))  # [*B, n, 1] -> [*B, 1]
        return td

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        rew = next_tensordict.get(self.in_keys[0], None)
        if rew is not None:
            next_tensordict.set(self.out_keys[0], team_reward(rew.squeeze(-1), self.mode))  # [*B, n, 1] -> [*B, 1]
        return self._team_flags(next_tensordict)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._team_flags(tensordict_reset)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Outside an env (a collected batch, a replay buffer): fill ``("next", ...)``, or the root if no ``"next"``."""
        nxt = tensordict.get(NEXT, None)
        self._call(tensordict if nxt is None else nxt)
        return tensordict

    def transform_reward_spec(self, reward_spec: Composite) -> Composite:
        in_spec = reward_spec[self.in_keys[0]]
        reward_spec[self.out_keys[0]] = Unbounded(
            shape=(*reward_spec.shape, 1), dtype=in_spec.dtype, device=in_spec.device
        )
        return reward_spec

    def transform_done_spec(self, done_spec: Composite) -> Composite:
        keys = done_spec.keys(True)
        for flag in DONE_FLAGS:
            if (self.group, flag) in keys and flag not in done_spec.keys():
                done_spec[flag] = Categorical(2, shape=(*done_spec.shape, 1), dtype=torch.bool, device=done_spec.device)
        return done_spec


class StackedObsState(Transform):
    """Adds ``out_key`` (default ``"state"``) ``[*B, n*F]``: the agents' observations flattened.

    For envs without a real global state: docs/CONTRACT.md's centralized info ``z`` then is the joint
    observation.
    """

    def __init__(self, in_key=(GROUP, OBSERVATION), out_key=STATE):
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


# ---------------------------------------------------------------------------------- agents' transforms


class LastAction(Transform):
    """Env transform writing ``(group, "last_action")`` ``[*B, n, A]``: one-hot of each agent's previous action.

    Zeros after a reset; after a step, the one-hot of the action the env received. It is an
    observation entry, so ``step_mdp`` carries it and collected data hold a^{t-1} at the root and a^t
    under ``"next"`` (``GRUAgent(last_action=True)`` reads both).
    """

    def __init__(self, n_actions: int, group: str = GROUP):
        super().__init__(in_keys=[(group, ACTION)], out_keys=[(group, LAST_ACTION)])
        self.n_actions = int(n_actions)

    def _one_hot(self, action: torch.Tensor) -> torch.Tensor:
        if action.is_floating_point() or action.dtype == torch.bool:  # already one-hot [*B, n, A]
            return action.to(torch.float32)
        return nn.functional.one_hot(action.long(), self.n_actions).to(torch.float32)  # [*B, n, A]

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        next_tensordict.set(self.out_keys[0], self._one_hot(tensordict.get(self.in_keys[0])))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        # Zeros for every env: on a partial reset torchrl keeps the other envs' entries, as for observations.
        group_shape = tensordict_reset.get(self.out_keys[0][:-1]).batch_size  # [*B, n]
        zeros = torch.zeros(*group_shape, self.n_actions, device=tensordict_reset.device)  # [*B, n, A]
        tensordict_reset.set(self.out_keys[0], zeros)
        return tensordict_reset

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        group_spec = observation_spec[self.out_keys[0][:-1]]  # Composite [*B, n]
        group_spec[self.out_keys[0][-1]] = Unbounded(
            shape=(*group_spec.shape, self.n_actions), dtype=torch.float32, device=group_spec.device
        )
        return observation_spec


def agent_transforms(agent, env=None, group: str = GROUP) -> list[Transform]:
    """The env transforms an agent network needs to collect: none for feed-forward agents; for
    recurrent ones ``InitTracker`` (``"is_init"``), a ``TensorDictPrimer`` giving ``(group, "rnn_hidden")``
    ``[*B, n, H]`` zeros at every (partial) reset, and with ``agent.last_action`` :class:`LastAction`.

    Lives here, not on the agent: networks know shapes, not environments. The primer's spec is nested in
    a ``Composite`` of shape [n] so that the group's spec keeps its ``[*B, n]`` batch shape (a flat
    ``{(group, "rnn_hidden"): spec}`` gives the group shape ``[*B]`` in the state spec and the collector then
    fails to stack it).

    Args:
        agent: an agent network (reads ``is_recurrent``, ``n_agents``, ``n_actions``, ``hidden_size``,
            ``last_action``).
        env: the env the transforms go on (for its device), optional.
        group: the agent group.
    """
    if not getattr(agent, "is_recurrent", False):
        return []
    device = getattr(env, "device", None)
    hidden_spec = Composite(
        {RNN_HIDDEN: Unbounded(shape=(agent.n_agents, agent.hidden_size), device=device)},
        shape=(agent.n_agents,), device=device,
    )
    transforms = [InitTracker(), TensorDictPrimer({group: hidden_spec}, expand_specs=True)]
    if getattr(agent, "last_action", False):
        transforms.append(LastAction(agent.n_actions, group=group))
    return transforms


# ---------------------------------------------------------------------------------- MAVEN's latent z


class NoiseTransform(Transform):
    """Keeps MAVEN's per-episode latent z in the tensordict: drawn at reset, copied forward on step.

    On reset, z ~ π_z(· | s_0) for the environments being reset (the others keep theirs: torchrl
    merges a partial reset's output only where ``_reset`` is set), written to ``noise_key`` as a
    float one-hot ``[*B, noise_dim]``, together with s_0 at ``state0_key``. On every step both are copied
    to ``("next", ...)``, so every transition of an episode carries the same z into the replay buffer.
    The z-policy module is shared (not copied), so its REINFORCE updates take effect at the next reset.

    With ``epsilon > 0``, each reset draws z uniformly with probability ε instead of from π_z, but only
    while exploring (torchrl's exploration type RANDOM, the collector's default, as ``EGreedyModule``
    does for actions). This keeps every z in the data after π_z has concentrated (the idea of the
    authors' ``bandit_epsilon``, which their EZ z-agent stores but never applies: authors' value 0).

    Greedy evaluation (exploration type DETERMINISTIC) draws z by ``eval_z``: ``"uniform"`` (the
    authors' test-time z, ``EZ_agent.sample(test_mode=True)``), ``"sample"`` (z ~ π_z, the z of the
    authors' other test runs) or ``"mode"`` (argmax_z π_z(z | s_0): the committed mode π_z prefers).

    Args:
        z_policy: π_z (see :func:`make_z_policy`), reading ``state_key`` and writing ``noise_key``.
        noise_dim: size of z.
        epsilon: probability of a uniform z at a reset while exploring (0 = always π_z).
        eval_z: how z is drawn under DETERMINISTIC exploration (above). Default ``"mode"``.
        state_key: where s_0 is read. Default ``"state"``.
        noise_key: where z is written. Default ``"noise"``.
        state0_key: where s_0 is kept for the episode. Default ``"noise_state0"``.
    """

    def __init__(
        self,
        z_policy: TensorDictModule,
        noise_dim: int,
        *,
        state_key: NestedKey = STATE,
        noise_key: NestedKey = NOISE,
        state0_key: NestedKey = NOISE_STATE0,
        epsilon: float = 0.0,
        eval_z: Literal["uniform", "sample", "mode"] = "mode",
    ):
        super().__init__(in_keys=[state_key], out_keys=[noise_key, state0_key])
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"NoiseTransform: epsilon is a probability in [0, 1], got {epsilon!r}.")
        if eval_z not in ("uniform", "sample", "mode"):
            raise ValueError(f"NoiseTransform: eval_z is 'uniform', 'sample' or 'mode', got {eval_z!r}.")
        self.z_policy, self.noise_dim, self.epsilon, self.eval_z = z_policy, int(noise_dim), float(epsilon), eval_z
        self.state_key, self.noise_key, self.state0_key = state_key, noise_key, state0_key

    @torch.no_grad()
    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        s0 = tensordict_reset.get(self.state_key)  # [*B, *S]
        exploring = exploration_type() in (ExplorationType.RANDOM, None)
        if not exploring and self.eval_z == "sample":
            with set_exploration_type(ExplorationType.RANDOM):
                z = self.z_policy(tensordict_reset.select(self.state_key))[self.noise_key]  # [*B, Z] one-hot
        else:
            z = self.z_policy(tensordict_reset.select(self.state_key))[self.noise_key]  # [*B, Z] one-hot
        z = z.to(torch.float32)
        uniform_share = self.epsilon if exploring else float(self.eval_z == "uniform")
        if uniform_share > 0:
            batch = z.shape[:-1]
            uniform = F.one_hot(torch.randint(self.noise_dim, batch, device=z.device), self.noise_dim)  # [*B, Z]
            explore = torch.rand(batch, device=z.device) < uniform_share  # [*B]
            z = torch.where(explore.unsqueeze(-1), uniform.to(z.dtype), z)  # [*B, Z]
        tensordict_reset.set(self.noise_key, z)
        tensordict_reset.set(self.state0_key, s0.clone())
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for key in (self.noise_key, self.state0_key):  # z and s_0 are constant within an episode
            next_tensordict.set(key, tensordict.get(key).clone())
        return next_tensordict

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict  # nothing to do outside an env (e.g. in a replay buffer)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        batch = observation_spec.shape
        state_spec = observation_spec[self.state_key]
        device = observation_spec.device
        observation_spec[self.noise_key] = OneHot(
            self.noise_dim, shape=(*batch, self.noise_dim), dtype=torch.float32, device=device
        )
        observation_spec[self.state0_key] = Unbounded(shape=state_spec.shape, dtype=state_spec.dtype, device=device)
        return observation_spec
