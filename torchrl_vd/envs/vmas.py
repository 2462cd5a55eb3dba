"""VMAS scenarios as value-decomposition envs: ``make_env("vmas/balance", num_envs=64, seed=0)``.

Built on TorchRL's :class:`~torchrl.envs.VmasEnv` (scenario construction, device, seeding). What this
subclass changes, and why:

* **Key layout** (docs/CONTRACT.md): all agents in one group ``"agents"``; ``("agents","observation")``
  ``[N, n, F]``, ``("agents","action")`` ``[N, n]`` categorical, per-agent ``("agents","reward")``
  ``[N, n, 1]`` plus the root team ``"reward"`` ``[N, 1]`` (sum or mean over agents), root ``"state"``
  ``[N, n*F]`` = the stacked observations (VMAS has no global state). VMAS infos are not exported.
* **Truncation kept apart from termination**: VmasEnv reports VMAS's ``terminated + truncated`` as
  both ``done`` and ``terminated``, so hitting ``max_steps`` would look like a terminal state (no
  bootstrapping). We build VMAS with ``terminated_truncated=True`` and emit ``terminated``,
  ``truncated`` and ``done = terminated | truncated``.
* **Batched partial resets**: VmasEnv's ``_reset`` calls ``reset_at(i)`` once per done env (most of the
  rollout time on ``balance`` at 1024 envs: benchmarks/RESULTS.md). VMAS has no masked reset, so for
  ``k >= 2`` done envs we do one vectorized ``reset()`` of all envs and write back the pre-reset values
  of the envs that were not done (every batched tensor reachable from the VMAS environment, scenario,
  world and entities: vmas_reset.py). Scenarios whose full reset also re-draws state shared by all envs
  (``simple_reference``, ``football``, ``road_traffic``, ``sampling``, ``ball_passage``, ``het_mass``) are
  detected on their first partial reset and fall back to ``reset_at``. See :meth:`VmasTeamEnv._batched_reset`.
* **Lean step**: observations/rewards are stacked once per step instead of building one
  TensorDict per agent.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import MarlGroupMapType

from torchrl_vd.envs.base import TrustedStepOutputs
from torchrl_vd.envs.registry import missing_dependency_error, register_env_family, unknown_task_error
from torchrl_vd.envs.transforms import check_team_reward_mode, done_specs, stacked_state, team_reward
from torchrl_vd.envs.vmas_reset import batched_reset
from torchrl_vd.keys import ACTION, DONE, GROUP, OBSERVATION, REWARD, STATE, TERMINATED, TRUNCATED

__all__ = ["VmasTeamEnv", "make_vmas_env", "vmas_tasks"]

_RESET_MODES = ("auto", "batched", "loop")


def _import_vmas():
    if importlib.util.find_spec("vmas") is None:
        raise missing_dependency_error("vmas", "vmas", "vmas")
    try:
        import vmas
    except ImportError as err:  # e.g. a broken install
        raise missing_dependency_error("vmas", "vmas", "vmas") from err
    return vmas


def vmas_tasks() -> list[str]:
    """Every scenario name in VMAS's own registry (main, MPE and debug scenarios)."""
    vmas = _import_vmas()
    return sorted(set(vmas.scenarios) | set(vmas.mpe_scenarios) | set(vmas.debug_scenarios))


class VmasTeamEnv(TrustedStepOutputs, VmasEnv):
    """A VMAS scenario with one homogeneous team of agents, in torchrl_vd's key layout.

    Args:
        scenario: VMAS scenario name (or a ``BaseScenario`` instance).
        num_envs: number of vectorized worlds (the env's batch size is ``[num_envs]``).
        device: torch device of the VMAS simulation.
        seed: seed for VMAS's random state.
        max_steps: horizon; reaching it sets ``truncated`` (not ``terminated``). ``None``: no limit.
        team_reward: ``"sum"`` or ``"mean"`` of the agents' rewards as root ``"reward"``.
        merge_groups: allow a scenario whose agent names form several groups (e.g.
            ``adversary_0``, ``agent_0``) to be treated as one team when sizes match.
        reset_mode: ``"auto"`` (``reset_at`` when at most ``reset_loop_max`` envs are done, one
            batched reset for more), ``"batched"`` (always batched for partial resets) or
            ``"loop"`` (VmasEnv's per-env ``reset_at`` loop). The choice depends only on the
            number of done envs, so seeded runs stay reproducible.
        reset_loop_max: see ``reset_mode`` (default 1). A batched reset costs about one full VMAS
            reset plus the write-back; ``reset_at`` costs that per env (benchmarks/RESULTS.md).
        **scenario_kwargs: forwarded to the VMAS scenario (e.g. ``n_agents=4``).
    """

    def __init__(
        self,
        scenario,
        *,
        num_envs: int,
        device="cpu",
        seed: int | None = None,
        max_steps: int | None = 100,
        team_reward: str = "sum",
        merge_groups: bool = False,
        reset_mode: str = "auto",
        reset_loop_max: int = 1,
        **scenario_kwargs,
    ):
        _import_vmas()
        if scenario_kwargs.pop("continuous_actions", False):
            raise ValueError(
                "Value decomposition needs discrete actions; VMAS is built with "
                "continuous_actions=False here (drop continuous_actions=True)."
            )
        if reset_mode not in _RESET_MODES:
            raise ValueError(f"reset_mode must be one of {_RESET_MODES}, got {reset_mode!r}.")
        for bad in ("categorical_actions", "group_map", "terminated_truncated"):
            if bad in scenario_kwargs:
                raise ValueError(f"{bad!r} is fixed by {type(self).__name__} and cannot be passed.")
        self.team_reward_mode = check_team_reward_mode(team_reward)
        self.merge_groups = bool(merge_groups)
        self.reset_mode = reset_mode
        self.reset_loop_max = int(reset_loop_max)
        self.reset_stats = {"full": 0, "batched": 0, "loop_envs": 0}
        self._batched_ok = True
        super().__init__(
            scenario,
            num_envs=num_envs,
            continuous_actions=False,
            max_steps=max_steps,
            categorical_actions=True,
            seed=seed,
            group_map=MarlGroupMapType.ALL_IN_ONE_GROUP,
            device=device,
            terminated_truncated=True,
            **scenario_kwargs,
        )

    # ------------------------------------------------------------------ specs
    def _make_specs(self, env) -> None:
        agents = list(env.agents)
        names = [a.name for a in agents]
        scen = self.scenario_name if isinstance(self.scenario_name, str) else type(self.scenario_name).__name__
        obs_sizes, act_sizes = {}, {}
        for i, name in enumerate(names):
            osp, asp = env.observation_space[i], env.action_space[i]
            if not hasattr(osp, "shape") or osp.shape is None or len(osp.shape) != 1:
                raise ValueError(
                    f"VMAS scenario {scen!r}: agent {name!r} has a non-flat observation space {osp}; "
                    "torchrl_vd needs one flat observation vector per agent."
                )
            obs_sizes[name] = int(osp.shape[0])
            act_sizes[name] = int(asp.n)
        problems = []
        if len(set(obs_sizes.values())) > 1:
            problems.append(f"observation sizes differ across agents {obs_sizes}")
        if len(set(act_sizes.values())) > 1:
            problems.append(f"action counts differ across agents {act_sizes}")
        groups = self._get_default_group_map(names)
        if len(groups) > 1 and not self.merge_groups:
            problems.append(
                f"its agents form {len(groups)} groups {sorted(groups)} (e.g. adversaries vs. a team)"
            )
        if problems:
            fix = (
                "Value decomposition needs one team of identical agents: pick a homogeneous "
                "cooperative scenario (e.g. vmas/balance, vmas/navigation, vmas/transport)"
            )
            if len(problems) == 1 and "groups" in problems[0]:
                fix += ", or pass merge_groups=True to treat all agents as one team"
            raise ValueError(f"VMAS scenario {scen!r} has heterogeneous agents: {'; '.join(problems)}. {fix}.")

        n, feat, n_act = len(names), next(iter(obs_sizes.values())), next(iter(act_sizes.values()))
        dev = self.device
        self.agent_names = names
        self.agent_names_to_indices_map = {nm: i for i, nm in enumerate(names)}
        self.group_map = {GROUP: names}
        self.het_specs, self.het_specs_map = False, {GROUP: False}
        self.n_team_agents, self.obs_dim, self.n_actions = n, feat, n_act

        self.full_action_spec_unbatched = Composite(
            {GROUP: Composite({ACTION: Categorical(n_act, shape=(n,), dtype=torch.int64, device=dev)}, shape=(n,))},
            device=dev,
        )
        self.full_observation_spec_unbatched = Composite(
            {
                GROUP: Composite({OBSERVATION: Unbounded(shape=(n, feat), device=dev)}, shape=(n,)),
                STATE: Unbounded(shape=(n * feat,), device=dev),
            },
            device=dev,
        )
        self.full_reward_spec_unbatched = Composite(
            {
                GROUP: Composite({REWARD: Unbounded(shape=(n, 1), device=dev)}, shape=(n,)),
                REWARD: Unbounded(shape=(1,), device=dev),
            },
            device=dev,
        )
        self.full_done_spec_unbatched = done_specs(dev)

    # ------------------------------------------------------------------ step
    def _output(self, obs, terminated, truncated, rews=None) -> TensorDictBase:
        obs = torch.stack(obs, dim=1)  # [N, n, F]
        terminated = terminated.reshape(-1, 1).bool()
        truncated = truncated.reshape(-1, 1).bool()
        group = {OBSERVATION: obs}
        out = {
            STATE: stacked_state(obs),
            TERMINATED: terminated,
            TRUNCATED: truncated,
            DONE: terminated | truncated,
        }
        if rews is not None:
            rews = torch.stack(rews, dim=1).to(torch.float32).reshape(obs.shape[:2])  # [N, n]
            group[REWARD] = rews.unsqueeze(-1)
            out[REWARD] = team_reward(rews, self.team_reward_mode)
        out[GROUP] = TensorDict(group, batch_size=obs.shape[:2], device=self.device)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, ACTION))
        obs, rews, terminated, truncated, _infos = self._env.step(list(action.unsqueeze(-1).unbind(1)))
        return self._output(obs, terminated, truncated, rews)

    # ------------------------------------------------------------------ reset
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None
        if tensordict is not None:
            mask = tensordict.get("_reset", None)
        if mask is None:
            self._full_reset()
        else:
            mask = mask.reshape(-1).to(self.device)
            k = int(mask.sum())
            if k == mask.numel():
                self._full_reset()
            elif k > 0:
                use_loop = (
                    self.reset_mode == "loop"
                    or not self._batched_ok
                    or (self.reset_mode == "auto" and k <= self.reset_loop_max)
                )
                if use_loop:
                    for i in mask.nonzero().reshape(-1).tolist():
                        self._env.reset_at(i, return_observations=False)
                    self.reset_stats["loop_envs"] += k
                else:
                    self._batched_reset(mask)
        obs, terminated, truncated = self._env.get_from_scenario(
            get_observations=True, get_infos=False, get_rewards=False, get_dones=True
        )
        return self._output(obs, terminated, truncated)

    def _full_reset(self):
        self._env.reset(return_observations=False)
        self.reset_stats["full"] += 1

    def _batched_reset(self, mask: torch.Tensor) -> None:
        """Reset the envs where ``mask`` is True with one vectorized VMAS reset (:func:`batched_reset`).

        A scenario whose full reset changes state shared by all envs cannot be reset so: the envs are
        redone with ``reset_at``, and this env uses ``reset_at`` from then on (with a warning).
        """
        changed = batched_reset(self._env, mask, self.num_envs)
        if not changed:
            self.reset_stats["batched"] += 1
            return
        for i in mask.nonzero().reshape(-1).tolist():
            self._env.reset_at(i, return_observations=False)
        self.reset_stats["loop_envs"] += int(mask.sum())
        self._batched_ok = False
        warnings.warn(
            f"VMAS scenario {self.scenario_name!r} changes state shared by all envs on a full reset "
            f"({', '.join(changed)}); batched partial resets are off for this env (using reset_at).",
            stacklevel=4,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scenario={self.scenario_name!r}, num_envs={self.num_envs}, "
            f"n_agents={self.n_team_agents}, n_actions={self.n_actions}, device={self.device})"
        )


def make_vmas_env(
    task: str,
    *,
    num_envs: int = 1,
    device="cpu",
    seed: int | None = None,
    max_steps: int | None = 100,
    team_reward: str = "sum",
    **scenario_kwargs,
):
    """Build a VMAS scenario in torchrl_vd's key layout (see :class:`VmasTeamEnv`).

    Args:
        task: VMAS scenario name, e.g. ``"balance"``.
        num_envs: vectorized worlds (batch size ``[num_envs]``).
        device: torch device (``"cuda"`` runs the simulation on the GPU).
        seed: seed of VMAS's random state.
        max_steps: episode horizon (``truncated`` when reached); ``None`` for none.
        team_reward: ``"sum"`` or ``"mean"`` of the agents' rewards.
        **scenario_kwargs: scenario arguments (e.g. ``n_agents=4``) and ``merge_groups``,
            ``reset_mode`` (see :class:`VmasTeamEnv`).
    """
    tasks = vmas_tasks()
    if task not in tasks:
        raise unknown_task_error("vmas", task, tasks)
    _import_vmas()
    with warnings.catch_warnings(record=True) as caught:  # VMAS only warns about arguments no one read
        warnings.simplefilter("always")
        env = VmasTeamEnv(
            task,
            num_envs=num_envs,
            device=device,
            seed=seed,
            max_steps=max_steps,
            team_reward=team_reward,
            **scenario_kwargs,
        )
    for w in caught:
        text = str(w.message)
        if "passed but not used by the scenario" in text:
            raise _unused_kwargs_error(task, text, env)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return env


def _unused_kwargs_error(task: str, message: str, env) -> ValueError:
    """VMAS's "kwargs passed but not used" warning as an error: the names, close matches, the valid names."""
    import ast
    import difflib
    import re

    try:
        unused = sorted(ast.literal_eval(message.split("Scenario kwargs:", 1)[1].split(" passed but", 1)[0].strip()))
    except (ValueError, SyntaxError, IndexError):
        unused = []
    scenario = getattr(getattr(env, "_env", None), "scenario", None)
    try:  # the scenario's own arguments: the names its make_world reads from kwargs (VMAS loads the scenario
        # file without a module, so read the file its code came from)
        with open(type(scenario).make_world.__code__.co_filename) as f:
            src = f.read()
        valid = sorted(set(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", src)))
    except (OSError, AttributeError):
        valid = []
    valid += ["max_steps", "team_reward", "merge_groups", "reset_mode", "reset_loop_max"]
    hints = []
    for name in unused:
        close = difflib.get_close_matches(name, valid, n=3)
        hints.append(f"{name!r}" + (f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""))
    return ValueError(f"vmas/{task} does not take the argument(s) {', '.join(hints) or message}. Valid env_kwargs "
                      f"for vmas/{task}: {', '.join(valid)}.")


register_env_family(
    "vmas",
    examples=["balance", "navigation", "transport", "simple_spread", "wheel", "dispersion"],
    description="VMAS vectorized multi-robot scenarios (discrete actions; one homogeneous team)",
    extra="vmas",
    tasks=vmas_tasks,
    many_seeds=True,
)(make_vmas_env)

