"""Gymnasium multi-agent envs ("gymma", EPyMARL's name for the API) as value-decomposition envs.

The shared base of the ``lbf/`` (lbf.py) and ``rware/`` (rware.py) families. The API, as lbforaging 2.x and
rware 2.x implement it: one ``gymnasium.Env`` for the whole team, with

* ``action_space = Tuple(Discrete(A), ..., Discrete(A))`` and ``observation_space = Tuple(Box, ..., Box)``,
  one entry per agent;
* ``reset(seed=) -> (observations tuple, info)``;
* ``step(actions sequence) -> (observations tuple, rewards list, terminated, truncated, info)``, where
  ``terminated`` is one bool (or one per agent: the episode ends when all are set).

:class:`GymMATeamEnv` holds ``num_envs`` raw envs and steps them in one serial loop
(:class:`~torchrl_vd.envs.base.SerialTeamEnv`, the base it shares with
:class:`~torchrl_vd.envs.pettingzoo.PettingZooTeamEnv`): every step writes into fresh numpy arrays that become
tensors with one ``torch.from_numpy`` each. A finished copy is reset by TorchRL's ``_reset`` with a ``"_reset"``
mask (``step_and_maybe_reset`` / collectors), never inside ``_step``, so the ``"next"`` of a final step holds
that episode's last observation.

**Time limits.** lbforaging and rware stop an episode at their own step limit by returning
``terminated=True, truncated=False`` (their gymnasium registrations add no ``TimeLimit``), so a time limit
looks like a terminal state, and a value learner would not bootstrap through it. The adapter takes the
limit (``max_steps``) itself: it counts steps, and asks ``is_terminal(env)`` whether an episode the env
ended is really over. A step that ends the episode without a real termination (the env's own limit,
the adapter's ``max_steps`` count, or ``truncated`` from the env) is reported as ``truncated``.

Key layout (torchrl_vd/keys.py, docs/CONTRACT.md), batch size ``[num_envs]``:

* ``("agents","observation")`` ``[N, n, F]`` float32: each agent's observation, flattened.
* ``("agents","action")`` ``[N, n]`` int64, ``Categorical(A)``.
* ``("agents","action_mask")`` ``[N, n, A]`` bool, when ``action_mask_fn`` is given (lbf: the env's valid
  actions). The action spec's mask is kept in sync, so ``env.rand_action()`` draws valid actions.
* ``("agents","reward")`` ``[N, n, 1]`` and the team ``"reward"`` ``[N, 1]`` (sum, or mean, of the agents').
* ``"state"`` ``[N, n*F]``: the stacked observations. Neither lbforaging nor rware has a global state
  EPyMARL uses (rware's ``get_global_image`` is discussed in rware.py).
* ``"done"``, ``"terminated"``, ``"truncated"`` ``[N, 1]`` (see time limits above).

Agents of these envs never leave an episode, so no ``("agents","alive")`` entry is exported.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

from typing import Any, Callable

import numpy as np
import torch
from tensordict import TensorDictBase

from torchrl_vd.envs.base import SerialTeamEnv
from torchrl_vd.envs.registry import missing_dependency_error
from torchrl_vd.envs.transforms import set_team_specs
from torchrl_vd.keys import ACTION, GROUP

__all__ = ["GymMATeamEnv", "make_gymnasium_env"]


def registered_ids(family: str, package: str, prefix: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """The gymnasium ids ``package`` registers on import that start with ``prefix`` (minus ``exclude``
    prefixes); a missing package is an ImportError naming ``pip install 'torchrl-vd[family]'``."""
    if importlib.util.find_spec(package) is None:
        raise missing_dependency_error(family, package, family)
    importlib.import_module(package)  # registers its ids with gymnasium
    import gymnasium

    return sorted(k for k in gymnasium.registry if k.startswith(prefix) and not k.startswith(exclude))


def make_gymnasium_env(env_id: str, **kwargs):
    """``gymnasium.make(env_id, **kwargs).unwrapped``.

    ``gymnasium.make`` wraps lbforaging/rware envs in ``OrderEnforcing`` and ``PassiveEnvChecker`` only (their
    registrations have no ``max_episode_steps`` and no extra wrappers): both merely check call order and
    spaces, and cost a Python call layer per step, so the raw env is stepped. The env checker is disabled
    because it would run on the raw env's first calls anyway and warns about the Tuple spaces.
    """
    import gymnasium

    return gymnasium.make(env_id, disable_env_checker=True, **kwargs).unwrapped


def gymnasium_team_env(task: str, env_kwargs: dict, **kwargs) -> GymMATeamEnv:
    """:class:`GymMATeamEnv` named ``task`` over copies of ``make_gymnasium_env(task, **env_kwargs)``: the
    lbf and rware factories' last step (``kwargs``: the other :class:`GymMATeamEnv` arguments)."""
    return GymMATeamEnv(functools.partial(make_gymnasium_env, task, **env_kwargs), name=task, **kwargs)


def _agent_spaces(space, what: str, name: str) -> tuple:
    from gymnasium import spaces

    if not isinstance(space, spaces.Tuple):
        raise ValueError(
            f"{name}: the {what} space is {space}; a gymnasium multi-agent env has a Tuple space with one "
            "entry per agent (lbforaging/rware style)."
        )
    return tuple(space.spaces)


class GymMATeamEnv(SerialTeamEnv):
    """``num_envs`` gymnasium multi-agent envs stepped in one serial loop, in torchrl_vd's key layout.

    Args:
        env_fn: zero-argument callable returning one raw env (see the module doc for the API); called
            ``num_envs`` times.
        num_envs: number of copies (batch size ``[num_envs]``).
        device: device of the output tensors (the envs run on CPU/numpy).
        seed: seeds the envs: copy ``i`` is reset with ``seed + i`` at its next reset, later resets continue
            its own random stream. ``None``: the envs seed themselves.
        max_steps: truncate an episode after this many steps (``None``: only the env's own limit).
        team_reward: ``"sum"`` or ``"mean"`` of the agents' rewards.
        action_mask_fn: ``f(env, out)`` writing the valid actions of every agent into the bool array
            ``out [n, A]`` (zeroed beforehand), called after every reset and step; ``None``: no masks.
        is_terminal: ``f(env) -> bool``, called when the env ended an episode: whether it is really over
            (``False``: it was cut by a time limit). ``None`` trusts the env's ``terminated``. See the module doc.
        name: a label for ``repr`` and error messages.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        *,
        num_envs: int = 1,
        device="cpu",
        seed: int | None = None,
        max_steps: int | None = None,
        team_reward: str = "sum",
        action_mask_fn: Callable[[Any, np.ndarray], None] | None = None,
        is_terminal: Callable[[Any], bool] | None = None,
        name: str | None = None,
    ):
        super().__init__(num_envs=num_envs, device=device, team_reward=team_reward)
        if max_steps is not None and int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1 (or None), got {max_steps}.")
        self.max_steps = None if max_steps is None else int(max_steps)
        self._action_mask_fn = action_mask_fn
        self._is_terminal = is_terminal
        self.has_action_mask = action_mask_fn is not None
        self._env_fn = env_fn
        self._envs = [env_fn()]
        env0 = self._envs[0]
        self.name = name or type(getattr(env0, "unwrapped", env0)).__name__
        self._read_spaces(env0)  # before building the other copies: a bad env fails fast
        self._envs += [env_fn() for _ in range(self.num_envs - 1)]

        self._seed_copies(seed)
        self._steps = [0] * self.num_envs
        self._last_mask: np.ndarray | None = None
        self._group_batch = torch.Size([self.num_envs, self.n_agents])
        self._make_specs()
        # One reset of every copy now checks the observation shape and leaves the envs ready; the first
        # _reset() call (no mask) hands these outputs out, so creating the env does not reset twice.
        self._initial: list | None = [self._raw_reset(i) for i in range(self.num_envs)]
        obs0 = self._initial[0][0]
        if np.size(obs0) != self.n_agents * self.obs_dim:
            raise ValueError(
                f"{self.name}: reset() returned observations of {np.size(obs0)} values in all, the observation "
                f"space says {self.n_agents} x {self.obs_dim}."
            )

    # ------------------------------------------------------------------ spaces and specs
    def _read_spaces(self, env0) -> None:
        from gymnasium import spaces

        acts = _agent_spaces(env0.action_space, "action", self.name)
        obs = _agent_spaces(env0.observation_space, "observation", self.name)
        self.n_agents = len(acts)
        if len(obs) != self.n_agents:
            raise ValueError(f"{self.name}: {self.n_agents} action spaces but {len(obs)} observation spaces.")
        for j, a in enumerate(acts):
            if isinstance(a, spaces.Discrete) and int(a.start) == 0:
                continue
            if isinstance(a, spaces.Box):
                raise ValueError(
                    f"{self.name}: value decomposition needs discrete actions, but agent {j} has the continuous "
                    f"action space {a}. Use a discrete-action version of the env."
                )
            raise ValueError(
                f"{self.name}: agent {j} has action space {a}; value decomposition needs one Discrete(n) action "
                "(starting at 0) per agent. For rware, build it with msg_bits=0 (communication bits make the "
                "action MultiDiscrete)."
            )
        n_acts = sorted({int(a.n) for a in acts})
        if len(n_acts) > 1:
            raise ValueError(
                f"{self.name}: agents have different action counts {[int(a.n) for a in acts]}; torchrl_vd needs "
                "one shared action set here. Pad every agent to the largest count and mask the extra actions, "
                "e.g. with the PettingZoo adapter (make_env('pettingzoo/...') does both)."
            )
        for j, o in enumerate(obs):
            if not isinstance(o, spaces.Box):
                raise ValueError(
                    f"{self.name}: agent {j} has observation space {o}; only Box observations are supported (for "
                    "rware use a flattened or image observation type, not the image-dict one)."
                )
        sizes = sorted({int(np.prod(o.shape)) for o in obs})
        if len(sizes) > 1:
            raise ValueError(
                f"{self.name}: agents have observations of different sizes "
                f"{[int(np.prod(o.shape)) for o in obs]}; torchrl_vd needs one size here (the PettingZoo adapter "
                "zero-pads smaller observations)."
            )
        self.n_actions = n_acts[0]
        self.obs_dim = sizes[0]
        self._flat_obs = all(len(o.shape) == 1 for o in obs)
        self.state_dim = self.n_agents * self.obs_dim

    def _make_specs(self) -> None:
        set_team_specs(self, n_agents=self.n_agents, n_actions=self.n_actions, obs_dim=self.obs_dim,
                       state_dim=self.state_dim, action_mask=self.has_action_mask)

    # ------------------------------------------------------------------ buffers
    def _new_buffers(self) -> dict:
        """Fresh zeroed numpy outputs for one step (fresh, because the tensors handed to TorchRL share their
        memory and may be kept by rollouts and replay buffers)."""
        N, n, F, A = self.num_envs, self.n_agents, self.obs_dim, self.n_actions
        return {
            "obs": np.zeros((N, n, F), dtype=np.float32),
            "rew": np.zeros((N, n, 1), dtype=np.float32),
            "mask": np.zeros((N, n, A), dtype=bool) if self.has_action_mask else None,
            "term": np.zeros((N, 1), dtype=bool),
            "trunc": np.zeros((N, 1), dtype=bool),
        }

    def _state(self, views: dict) -> np.ndarray:
        return views["obs"].reshape(self.num_envs, self.state_dim).copy()  # [N, n*F] stacked observations

    def _team(self, views: dict) -> np.ndarray:
        rew = views["rew"]
        return rew.sum(1) if self.team_reward_mode == "sum" else rew.mean(1)  # [N, 1]

    # ------------------------------------------------------------------ per-copy helpers
    def _raw_reset(self, i: int):
        return self._envs[i].reset(seed=self._take_seed(i))

    def _write(self, i: int, obs, views) -> None:
        if self._flat_obs:
            views["obs"][i] = obs  # n arrays [F] -> [n, F] (7x cheaper than np.reshape of the tuple)
        else:
            views["obs"][i] = np.reshape(obs, (self.n_agents, self.obs_dim))  # e.g. images -> [n, F]
        if self.has_action_mask:
            self._action_mask_fn(self._envs[i], views["mask"][i])

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        views = self._new_buffers()
        reset_idx, keep = self._copies_to_reset(tensordict)
        for i, (obs, _) in self._raw_resets(reset_idx):
            self._write(i, obs, views)
            self._steps[i] = 0
        if self.has_action_mask:
            if keep is not None and self._last_mask is not None:
                views["mask"][keep] = self._last_mask[keep]  # the action spec's mask of the envs not reset
            self._last_mask = views["mask"]
        return self._to_tensordict(views, with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, ACTION)).cpu()
        a = action.numpy()
        if (a < 0).any() or (a >= self.n_actions).any():
            raise self._action_range_error(a, self.n_actions)
        actions = action.tolist()
        self._initial = None  # stepped: the envs have moved on from their initial states
        views = self._new_buffers()
        rew, term_out, trunc_out = views["rew"], views["term"], views["trunc"]
        limit, is_terminal = self.max_steps, self._is_terminal
        for i, env in enumerate(self._envs):
            obs, r, term, trunc, _ = env.step(actions[i])
            rew[i, :, 0] = r
            self._write(i, obs, views)
            self._steps[i] += 1
            env_done = bool(term) if isinstance(term, (bool, np.bool_)) else all(term)
            terminal = env_done and (is_terminal is None or is_terminal(env))
            if terminal:
                term_out[i, 0] = True
            elif env_done or bool(trunc) or (limit is not None and self._steps[i] >= limit):
                trunc_out[i, 0] = True
        if self.has_action_mask:
            self._last_mask = views["mask"]
        return self._to_tensordict(views, with_reward=True)

    def _set_seed(self, seed: int | None) -> int | None:
        if seed is None:
            return None
        # Fresh copies: set_seed(s) must equal constructing with seed=s, and some envs carry state from the
        # previous episode into a seeded reset (lbforaging 2.0's spawn_players skips cells where the players
        # stood before, so a reseeded used env places them elsewhere than a new one).
        self._close_copies()
        self._envs = [self._env_fn() for _ in range(self.num_envs)]
        self._seed_copies(seed)
        # reset them now, as the constructor does: the next reset hands these out, and a step that comes
        # first finds live envs
        self._initial = [self._raw_reset(i) for i in range(self.num_envs)]
        self._steps = [0] * self.num_envs
        return int(seed) + self.num_envs

    def _repr_fields(self) -> dict:
        return {"max_steps": self.max_steps, "action_mask": self.has_action_mask}
