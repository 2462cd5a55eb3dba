"""PettingZoo (and MPE2) environments as value-decomposition envs.

``make_env("pettingzoo/simple_spread_v3", num_envs=8, seed=0)``

Task names (pettingzoo_tasks.py): MPE tasks come from the ``mpe2`` package (``simple_spread_v3``), other
PettingZoo modules by family (``classic/tictactoe_v3``). For MPE, ``continuous_actions=False`` is passed by
default, and ``max_steps`` (when given) is passed on as MPE's ``max_cycles``.

**AEC envs**: pass ``aec=True`` (or suffix the task with ``":aec"``, e.g. ``"pettingzoo/simple_spread_v3:aec"``)
to drive the env through its turn-based AEC API (``module.env()``, stepped by pettingzoo_aec.py's
:class:`~torchrl_vd.envs.pettingzoo_aec.AECDriver`) instead of ``module.parallel_env()``. Modules without a
``parallel_env`` (e.g. ``classic/tictactoe_v3``) always use AEC.

Why not TorchRL's ``PettingZooWrapper``: it wraps one raw env per TorchRL env (vectorizing means
``SerialEnv``/``ParallelEnv`` around it: 378-437 steps/s vs 1590 raw on simple_spread), groups agents by
name pattern, and has no team reward, padding of heterogeneous agents or ``alive`` flags.
:class:`PettingZooTeamEnv` holds ``num_envs`` raw envs and steps them in one serial loop, writing into fresh
numpy arrays that become tensors with one ``torch.from_numpy`` each per step. Cheaper than the raw parallel
API, with the same transitions:

* a parallel env that is PettingZoo's ``aec_to_parallel`` wrapper (all MPE envs) is driven through
  its AEC env (that wrapper computes every observation twice per step);
* PettingZoo's check-only wrappers (``OrderEnforcingWrapper``, ``AssertOutOfBoundsWrapper``) are
  stepped around; one range check of the whole joint action per step replaces them;
* MPE's ``state()`` (the concatenated observations) is built from the observations already read.

Key layout (docs/CONTRACT.md), batch size ``[num_envs]``:

* ``("agents","observation")`` ``[N, n, F]`` float32. Agents with smaller observations are
  **zero-padded** at the end up to the largest size ``F`` (e.g. ``simple_adversary``: 8 -> 10;
  pettingzoo_spaces.py).
  Terminated / removed agents observe zeros while the episode goes on.
* ``("agents","action")`` ``[N, n]`` int64, ``Categorical(A)`` with ``A`` the largest action count.
* ``("agents","action_mask")`` ``[N, n, A]`` bool, present when the env gives masks (``"action_mask"``
  in the observation dict or in ``info``), when action counts differ (the padded actions are
  masked), in AEC turn mode (only the agent to move may pick a real action), or when asked for
  (``action_mask=True``, do this for parallel envs whose agents can die). A dead or waiting agent's
  mask allows only action 0, and its action is ignored. The action spec's mask is kept in sync, so
  ``env.rand_action()`` draws legal actions.
* ``("agents","alive")`` ``[N, n]`` bool: False once an agent is terminated or removed from
  ``env.agents`` (so losses can mask it). An agent cut by a time limit (truncated) is still alive
  in that step's ``"next"`` (its value is bootstrapped), and gone from the step after.
* ``("agents","reward")`` ``[N, n, 1]`` and the team ``"reward"`` ``[N, 1]`` (sum, or mean over the
  agents that acted).
* ``"state"`` ``[N, S]``: the env's ``state()`` when it has one (MPE does: there it is built from the
  observations already read, which is exactly what MPE's ``state()`` computes), else the stacked
  (padded) observations ``[N, n*F]``.
* ``"done"``, ``"terminated"``, ``"truncated"`` ``[N, 1]``: the episode ends when no agent is left to
  act (or after ``max_steps``); it is *truncated* if any agent was truncated or ``max_steps`` was
  reached, else *terminated*.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch
from tensordict import TensorDictBase

from torchrl_vd.envs.base import SerialTeamEnv
from torchrl_vd.envs.pettingzoo_aec import AECDriver, aec_envs_inside, is_aec_env
from torchrl_vd.envs.pettingzoo_spaces import AgentSpaces
from torchrl_vd.envs.pettingzoo_tasks import AEC_SUFFIX, import_task_module, pettingzoo_tasks, resolve_task
from torchrl_vd.envs.registry import register_env_family
from torchrl_vd.envs.transforms import set_team_specs
from torchrl_vd.keys import ACTION, GROUP

__all__ = ["PettingZooTeamEnv", "make_pettingzoo_env"]


def _state_is_obs_concat(env) -> bool:
    """True when ``env.state()`` is MPE2's (the concatenated observations of all possible agents)."""
    try:
        from mpe2._mpe_utils.simple_env import SimpleEnv
    except ImportError:
        return False
    raw = getattr(env, "unwrapped", env)
    raw = getattr(raw, "aec_env", raw)  # parallel wrappers
    raw = getattr(raw, "unwrapped", raw)
    return isinstance(raw, SimpleEnv) and type(raw).state is SimpleEnv.state


# ---------------------------------------------------------------------------------------------
# the vectorized env
# ---------------------------------------------------------------------------------------------
class PettingZooTeamEnv(SerialTeamEnv):
    """``num_envs`` PettingZoo envs stepped in one serial loop, in torchrl_vd's key layout.

    Args:
        env_fn: zero-argument callable returning one raw PettingZoo env (``ParallelEnv`` or
            ``AECEnv``); called ``num_envs`` times.
        num_envs: number of copies (batch size ``[num_envs]``).
        device: device of the output tensors (the envs themselves run on CPU/numpy).
        seed: seeds the envs (copy ``i`` gets ``seed + i`` at its next reset).
        max_steps: truncate episodes after this many env steps (``None``: the env's own limit).
        team_reward: ``"sum"`` or ``"mean"`` (over the agents that acted) of the agents' rewards.
        action_mask: export ``("agents","action_mask")``; ``None`` decides (see module doc).
        aec_mode: AEC envs only. ``"cycle"``: one TorchRL step steps every live agent once, in
            the env's turn order (MPE's AEC API); ``"turn"``: one agent moves per TorchRL step
            (board games), the others are masked. ``None``: ``"turn"`` when the env gives action
            masks, else ``"cycle"``.
        name: a label for ``repr`` and error messages.
        unwrap_parallel: a parallel env that is PettingZoo's ``aec_to_parallel`` wrapper around
            an AEC env (all MPE envs) is stepped through that AEC env in ``"cycle"`` mode: same
            transitions, without the wrapper's duplicate observation calls.

    The joint action of AEC envs is collected at once; in ``"cycle"`` mode the agents then act in
    turn with their part of it, and the per-agent reward of the step is the sum of the env's
    ``rewards`` after each of the agents' moves (MPE: the reward of the world step).
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
        action_mask: bool | None = None,
        aec_mode: str | None = None,
        name: str | None = None,
        unwrap_parallel: bool = True,
    ):
        super().__init__(num_envs=num_envs, device=device, team_reward=team_reward)
        self.max_steps = None if max_steps is None else int(max_steps)
        self._envs = [env_fn() for _ in range(self.num_envs)]
        self.is_aec = is_aec_env(self._envs[0])
        self.name = name or type(getattr(self._envs[0], "unwrapped", self._envs[0])).__name__
        self.parallel_via_aec = False
        inner = aec_envs_inside(self._envs) if not self.is_aec and unwrap_parallel else None
        if inner is not None:  # stepped through their AEC envs in "cycle" mode: the same transitions
            self._envs = inner
            self.is_aec = self.parallel_via_aec = True
            if aec_mode == "turn":
                raise ValueError("aec_mode='turn' does not apply to a parallel env.")
            aec_mode = "cycle"
        env0 = self._envs[0]
        self.agent_names = list(env0.possible_agents)
        self.n_agents = len(self.agent_names)
        self._spaces = sp = AgentSpaces(env0, self.agent_names, self.name)
        self._index = sp.index  # agent name -> its row j in the team layout
        self._obs_sizes, self._n_acts, self._n_acts_np = sp.obs_sizes, sp.n_acts, sp.n_acts_np
        self.obs_dim, self.n_actions, self.padded_obs = sp.obs_dim, sp.n_actions, sp.padded_obs
        self._aec = [AECDriver(e, self._index) for e in self._envs] if self.is_aec else None
        # One reset of every copy: finds the state shape, info masks, and leaves the envs ready.
        self._seed_copies(seed)
        first = [self._raw_reset(i) for i in range(self.num_envs)]
        self._choose_action_masks(first[0][1], aec_mode, action_mask)
        self._read_state(env0)
        self._init_bookkeeping()
        self._make_specs()
        # hold the first reset's outputs: the first _reset() call (no mask) uses them, so creating
        # the env does not reset every copy twice
        self._initial = first

    # ------------------------------------------------------------------ construction steps
    def _choose_action_masks(self, info0: dict, aec_mode: str | None, action_mask: bool | None) -> None:
        """Set ``aec_mode`` (``None`` decides: ``"turn"`` when the env gives masks) and whether to export
        action masks (``has_action_mask``), from the first reset's ``info0`` and the spaces."""
        self._mask_in_info = any(isinstance(info0.get(a), dict) and "action_mask" in info0[a] for a in info0)
        env_masks = self._spaces.mask_in_obs or self._mask_in_info
        if aec_mode is None:
            aec_mode = "turn" if env_masks else "cycle"
        if aec_mode not in ("cycle", "turn"):
            raise ValueError(f"aec_mode must be 'cycle' or 'turn', got {aec_mode!r}.")
        self.aec_mode = aec_mode if self.is_aec else None
        uneven_actions = len(set(self._n_acts)) > 1
        self.has_action_mask = (
            bool(action_mask)
            if action_mask is not None
            else bool(env_masks or uneven_actions or self.aec_mode == "turn")
        )
        if action_mask is False and (uneven_actions or self.aec_mode == "turn"):
            raise ValueError(
                "action_mask=False is not possible here: agents have different action counts or "
                "move in turns, so some actions must be masked."
            )

    def _read_state(self, env0) -> None:
        """Where ``"state"`` comes from: the env's ``state()`` (``has_env_state``), else the stacked observations."""
        self._state_fn = getattr(env0, "state", None)
        self._state_is_obs_concat = _state_is_obs_concat(env0)
        self.state_dim = self._probe_state(env0)
        self.has_env_state = self.state_dim is not None
        if not self.has_env_state:
            self.state_dim = self.n_agents * self.obs_dim

    def _init_bookkeeping(self) -> None:
        n = self.n_agents
        # per-copy bookkeeping (numpy, [N, n])
        self._alive = np.zeros((self.num_envs, n), dtype=bool)  # exported "alive" of the last output
        self._playing = np.zeros((self.num_envs, n), dtype=bool)  # agents that act at the next step
        # per-copy Python scalars (numpy reductions on 3-element rows cost ~1.5 us each)
        self._trunc_seen = [False] * self.num_envs  # an agent of this episode was truncated
        self._steps = [0] * self.num_envs
        self._n_playing = [n] * self.num_envs
        self._group_batch = torch.Size([self.num_envs, n])

    # ------------------------------------------------------------------ state and specs
    def _probe_state(self, env0) -> int | None:
        if self._state_fn is None:
            return None
        try:
            st = np.asarray(env0.state(), dtype=np.float32)
        except Exception:  # noqa: BLE001 - not implemented, or not a numeric global state (e.g. rps)
            self._state_fn = None
            return None
        return int(st.size)

    def _make_specs(self) -> None:
        set_team_specs(self, n_agents=self.n_agents, n_actions=self.n_actions, obs_dim=self.obs_dim,
                       state_dim=self.state_dim, action_mask=self.has_action_mask, alive=True)

    # ------------------------------------------------------------------ buffers
    def _new_buffers(self) -> dict:
        """Fresh zeroed numpy outputs for one step; each becomes a tensor by ``torch.from_numpy``.

        Fresh arrays (not reused ones) because the tensors handed to TorchRL share their memory
        and may be kept (rollouts, replay buffers); ``np.zeros`` + ``from_numpy`` costs ~1 us per
        array, less than slicing views out of one big tensor.
        """
        N, n, F, A, S = self.num_envs, self.n_agents, self.obs_dim, self.n_actions, self.state_dim
        return {
            "obs": np.zeros((N, n, F), dtype=np.float32),
            "state": np.zeros((N, S), dtype=np.float32),
            "rew": np.zeros((N, n, 1), dtype=np.float32),
            "team": np.zeros((N, 1), dtype=np.float32),
            "alive": np.zeros((N, n), dtype=bool),
            "playing": np.zeros((N, n), dtype=bool),  # will act at the next step (not exported)
            "mask": np.zeros((N, n, A), dtype=bool) if self.has_action_mask else None,
            "term": np.zeros((N, 1), dtype=bool),
            "trunc": np.zeros((N, 1), dtype=bool),
        }

    # ------------------------------------------------------------------ per-copy helpers
    def _write_state(self, i: int, env, views) -> None:
        if self._state_is_obs_concat:
            # MPE's state() is the concatenation of every agent's observation: reuse the ones we
            # just wrote instead of computing them all again (a third of an MPE step)
            if self.padded_obs:
                views["state"][i] = np.concatenate([views["obs"][i, j, :f] for j, f in enumerate(self._obs_sizes)])
            else:
                views["state"][i] = views["obs"][i].reshape(-1)
        elif self.has_env_state:
            views["state"][i] = np.ravel(env.state())
        else:
            views["state"][i] = views["obs"][i].reshape(-1)

    def _finish_masks(self, i: int, views) -> None:
        """Dead agents (and waiting agents in AEC turn mode) may only pick action 0.

        A truncated agent keeps its real mask (its value is bootstrapped at a time limit).
        """
        if views["mask"] is None:
            return
        alive = views["alive"][i]
        m = views["mask"][i]
        for j in np.flatnonzero(~alive):
            m[j] = False
            m[j, 0] = True
        if self.aec_mode == "turn":
            sel = self._aec[i].selection()
            for j, a in enumerate(self.agent_names):
                if a != sel and alive[j]:
                    m[j] = False
                    m[j, 0] = True
        empty = ~m.any(-1)
        if empty.any():  # an env's mask that allows nothing (e.g. a finished game): allow action 0
            m[empty, 0] = True

    def _raw_reset(self, i: int):
        seed = self._take_seed(i)
        if self.is_aec:
            return self._aec[i].reset(seed)
        return self._envs[i].reset(seed=seed)

    def _fill_after_reset(self, i: int, obs, info, views) -> None:
        env = self._envs[i]
        live = set(self._aec[i].state.agents if self.is_aec else env.agents)
        for a, o in obs.items():
            self._spaces.write_obs(i, a, o, views, info)
        for j, a in enumerate(self.agent_names):
            views["alive"][i, j] = views["playing"][i, j] = a in live
        self._trunc_seen[i] = False
        self._steps[i] = 0
        self._alive[i] = views["alive"][i]
        self._playing[i] = views["playing"][i]
        self._n_playing[i] = int(views["playing"][i].sum())
        self._write_state(i, env, views)
        self._finish_masks(i, views)

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        views = self._new_buffers()
        reset_idx, keep = self._copies_to_reset(tensordict)
        for i, (obs, info) in self._raw_resets(reset_idx):
            self._fill_after_reset(i, obs, info, views)
        if keep is not None:
            # envs not reset: we still fill alive/masks so the action spec mask stays right for them
            views["alive"][keep] = self._alive[keep]
            if views["mask"] is not None and self._last_mask is not None:
                views["mask"][keep] = self._last_mask[keep]
        td = self._to_tensordict(views, with_reward=False)
        if views["mask"] is not None:
            self._last_mask = views["mask"]
        return td

    _last_mask = None

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, ACTION)).cpu()
        actions = action.tolist()
        # range check of the joint action (replaces the per-move checks of PettingZoo's wrappers,
        # see _step_target; also catches a padded action sent to an agent with fewer actions)
        if action.numel() <= 64:
            n_acts = self._n_acts
            ok = all(0 <= x < m for row in actions for x, m in zip(row, n_acts))
        else:
            a = action.numpy()
            ok = not ((a < 0).any() or (a >= self._n_acts_np).any())
        if not ok:
            raise self._action_range_error(action.numpy(), self._n_acts_np, self.agent_names)
        views = self._new_buffers()
        step = self._step_aec if self.is_aec else self._step_parallel
        for i in range(self.num_envs):
            rsum, n_playing, all_alive = step(i, actions[i], views)
            self._steps[i] += 1
            done = n_playing == 0
            trunc = self._trunc_seen[i]
            if self.max_steps is not None and self._steps[i] >= self.max_steps and not done:
                done = trunc = True
            if done:
                views["trunc"][i, 0] = trunc
                views["term"][i, 0] = not trunc
            if self.team_reward_mode == "mean":  # over the agents that acted this step
                rsum /= max(1, self._n_playing[i])
            views["team"][i, 0] = rsum
            alive = views["alive"][i]
            self._alive[i] = alive
            self._playing[i] = views["playing"][i]
            self._n_playing[i] = n_playing
            self._write_state(i, self._envs[i], views)
            if not done and not all_alive:
                # terminated / removed agents observe zeros while the episode goes on (nothing is
                # bootstrapped through them); at the episode's end everyone keeps the final one
                views["obs"][i, ~alive] = 0.0
            if views["mask"] is not None:
                self._finish_masks(i, views)
        td = self._to_tensordict(views, with_reward=True)
        if views["mask"] is not None:
            self._last_mask = views["mask"]
        return td

    def _step_parallel(self, i: int, act: list[int], views) -> tuple[float, int, bool]:
        """Step copy ``i``; returns (sum of rewards, number of agents still playing, all alive)."""
        env = self._envs[i]
        index = self._index
        acting = list(env.agents)
        obs, rew, term, trunc, info = env.step({a: act[index[a]] for a in acting})
        rrow = views["rew"][i, :, 0]
        rsum = 0.0
        for a, r in rew.items():
            rrow[index[a]] = r
            rsum += r
        for a, o in obs.items():
            self._spaces.write_obs(i, a, o, views, info)
        still = set(env.agents)
        arow, prow = views["alive"][i], views["playing"][i]
        n_playing, n_alive = 0, 0
        for a in acting:
            j = index[a]
            te, tr = term.get(a, False), trunc.get(a, False)
            if tr:
                self._trunc_seen[i] = True
            arow[j] = not te
            prow[j] = playing = not (te or tr) and a in still
            n_alive += not te
            n_playing += playing
        for a in still.difference(acting):  # an env may also add agents
            arow[index[a]] = prow[index[a]] = True
            n_alive += 1
            n_playing += 1
        return rsum, n_playing, n_alive == self.n_agents

    def _step_aec(self, i: int, act: list[int], views) -> tuple[float, int, bool]:
        """Step copy ``i`` (one cycle or one turn, :meth:`AECDriver.move`); returns like :meth:`_step_parallel`."""
        driver = self._aec[i]
        rew = driver.move(act, self.aec_mode)
        views["rew"][i, :, 0] = rew
        arow, prow = views["alive"][i], views["playing"][i]
        was_playing = self._playing[i]
        infos = driver.state.infos
        n_playing, n_alive = 0, 0
        for a, term, trunc, obs in driver.outcomes():
            j = self._index[a]
            if trunc:
                self._trunc_seen[i] = True
            arow[j] = alive = not term and (not trunc or bool(was_playing[j]))
            prow[j] = playing = not (term or trunc)
            n_alive += alive
            n_playing += playing
            self._spaces.write_obs(i, a, obs, views, infos)
        # agents that just ended leave the game at their next turn: do it now so that
        # agent_selection names the agent that moves next (turn mode masks by it)
        driver.dead_steps()
        return sum(rew), n_playing, n_alive == self.n_agents

    def _set_seed(self, seed: int | None) -> int | None:
        if seed is None:
            return None
        self._seed_copies(seed)
        self._initial = None  # the next reset must use the new seeds
        return int(seed) + self.num_envs

    def _repr_fields(self) -> dict:
        api = "parallel (via AEC)" if self.parallel_via_aec else ("aec/" + self.aec_mode if self.is_aec else "parallel")
        return {"api": api}


# ---------------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------------
def make_pettingzoo_env(
    task: str,
    *,
    num_envs: int = 1,
    device="cpu",
    seed: int | None = None,
    max_steps: int | None = None,
    aec: bool = False,
    team_reward: str = "sum",
    action_mask: bool | None = None,
    aec_mode: str | None = None,
    **env_kwargs,
) -> PettingZooTeamEnv:
    """Build ``num_envs`` copies of a PettingZoo/MPE2 task as one :class:`PettingZooTeamEnv`.

    Args:
        task: ``"simple_spread_v3"`` (MPE2), ``"classic/tictactoe_v3"``, ... ; a ``":aec"``
            suffix is the same as ``aec=True``.
        num_envs, device, seed: see :class:`PettingZooTeamEnv`.
        max_steps: episode limit (truncation); for MPE also passed as ``max_cycles``.
        aec: use the env's AEC API (``module.env()``) instead of ``module.parallel_env()``.
        team_reward, action_mask, aec_mode: see :class:`PettingZooTeamEnv`.
        **env_kwargs: forwarded to the PettingZoo constructor (e.g. ``N=3``, ``local_ratio=0.5``).
    """
    if task.endswith(AEC_SUFFIX):
        task, aec = task[: -len(AEC_SUFFIX)], True
    path, kind = resolve_task(task)
    module = import_task_module(path, task, kind)
    if kind == "mpe":
        env_kwargs.setdefault("continuous_actions", False)
        if max_steps is not None:
            env_kwargs.setdefault("max_cycles", int(max_steps))
    use_aec = bool(aec) or not hasattr(module, "parallel_env")
    return PettingZooTeamEnv(
        functools.partial(module.env if use_aec else module.parallel_env, **env_kwargs),
        num_envs=num_envs,
        device=device,
        seed=seed,
        max_steps=max_steps,
        team_reward=team_reward,
        action_mask=action_mask,
        aec_mode=aec_mode,
        name=f"{task}{AEC_SUFFIX if use_aec else ''}",
    )


register_env_family(
    "pettingzoo",
    examples=["simple_spread_v3", "simple_spread_v3:aec", "simple_reference_v3", "classic/tictactoe_v3"],
    description="PettingZoo envs (MPE via mpe2; butterfly/classic/sisl by 'family/task'); ':aec' for the AEC API",
    extra="pettingzoo",
    tasks=pettingzoo_tasks,
    many_seeds=True,
)(make_pettingzoo_env)
