"""Level-Based Foraging (lbforaging >= 2) as value-decomposition envs.

``make_env("lbf/Foraging-8x8-2p-2f-coop-v3", num_envs=8, seed=0)``: the task is the gymnasium id that
lbforaging registers on import, ``Foraging[-2s]-{size}x{size}-{n}p-{f}f[-coop]-v3`` (``-2s``: partial
observability with sight 2; ``-coop``: every food needs all agents). The ``Foraging-grid-...`` ids are not
supported: lbforaging 2.0.0 builds an invalid observation space for them.

Built on :class:`~torchrl_vd.envs.gymma.GymMATeamEnv` (layout, vectorizing, auto-reset, seeding). What is
specific to LBF:

* **Time limit** ``max_steps`` (default 50, EPyMARL's and the registrations' value) is passed to the env as
  its ``max_episode_steps``, so the transitions are the stock env's. LBF reports reaching it as
  ``terminated``; the adapter reports *terminated* only when all food has been collected, and *truncated*
  when the limit cut the episode.
* **Action masks** (``action_mask=True``, the default): ``("agents","action_mask")`` is the env's own list of
  valid actions per agent (``env._valid_actions``, what its ``get_valid_actions`` combines): a move into a
  wall, food or the field's edge, and ``LOAD`` with no adjacent food, are masked; ``NONE`` is always
  valid. The env itself turns an invalid action into ``NONE``, so the mask changes no transition; it
  keeps exploration and the greedy max off the actions that do nothing.
* **Rewards**: per agent ``level * food_level`` normalized by the loading agents' levels and the food
  spawned (lbforaging's ``normalize_reward=True``); the team reward sums them (1.0 for a cleared field).
* **State**: LBF has no global state; ``"state"`` is the stacked observations (which, with full
  observability, hold the whole field).
"""

from __future__ import annotations

import functools

import numpy as np

from torchrl_vd.envs.gymma import GymMATeamEnv, gymnasium_team_env, registered_ids
from torchrl_vd.envs.registry import register_env_family, unknown_task_error

__all__ = ["make_lbf_env", "lbf_tasks"]

DEFAULT_MAX_STEPS = 50


def lbf_tasks() -> list[str]:
    """The gymnasium ids lbforaging registers (``Foraging-...-v3``), grid-observation ids excluded
    (lbforaging 2.0.0 builds an invalid observation space for them)."""
    return registered_ids("lbf", "lbforaging", "Foraging", exclude=("Foraging-grid",))


@functools.cache
def _action_index() -> dict:
    from lbforaging.foraging.environment import Action

    return {a: a.value for a in Action}  # Enum.value is a descriptor call: a dict lookup is ~2x cheaper


def lbf_valid_actions(env, out: np.ndarray) -> None:
    """Write LBF's valid actions (``env._valid_actions``: player -> list of ``Action``) into ``out [n, 6]``."""
    valid, index = env._valid_actions, _action_index()
    for j, player in enumerate(env.players):
        for action in valid[player]:
            out[j, index[action]] = True


def lbf_all_food_collected(env) -> bool:
    """LBF ends an episode when the field is empty (terminal) or at its step limit (a truncation)."""
    return not env.field.any()


def make_lbf_env(
    task: str,
    *,
    num_envs: int = 1,
    device="cpu",
    seed: int | None = None,
    max_steps: int | None = DEFAULT_MAX_STEPS,
    team_reward: str = "sum",
    action_mask: bool = True,
    **env_kwargs,
) -> GymMATeamEnv:
    """Build ``num_envs`` copies of an LBF task as one :class:`~torchrl_vd.envs.gymma.GymMATeamEnv`.

    Args:
        task: an lbforaging gymnasium id, e.g. ``"Foraging-8x8-2p-2f-coop-v3"``.
        num_envs, device, seed, team_reward: see :class:`~torchrl_vd.envs.gymma.GymMATeamEnv`.
        max_steps: episode limit (truncation), passed on as LBF's ``max_episode_steps``; ``None`` keeps the
            registered limit (50).
        action_mask: export the env's valid actions as ``("agents","action_mask")``.
        **env_kwargs: override ``ForagingEnv`` constructor arguments of the registration (e.g. ``sight=3``,
            ``penalty=0.1``, ``normalize_reward=False``).
    """
    known = lbf_tasks()
    if task not in known:
        raise unknown_task_error("lbf", task, known)
    if "max_episode_steps" in env_kwargs:
        raise ValueError("lbf: pass the episode limit as max_steps=..., not max_episode_steps.")
    if max_steps is not None:
        env_kwargs["max_episode_steps"] = int(max_steps)
    return gymnasium_team_env(task, env_kwargs, num_envs=num_envs, device=device, seed=seed, max_steps=max_steps,
                              team_reward=team_reward, action_mask_fn=lbf_valid_actions if action_mask else None,
                              is_terminal=lbf_all_food_collected)


register_env_family(
    "lbf",
    examples=["Foraging-8x8-2p-2f-coop-v3", "Foraging-2s-8x8-2p-2f-coop-v3", "Foraging-10x10-3p-3f-v3"],
    description=(
        "Level-Based Foraging (lbforaging gymnasium ids); valid-action masks, 50-step limit as truncation, "
        "state = stacked observations"
    ),
    extra="lbf",
    tasks=lbf_tasks,
    many_seeds=True,
)(make_lbf_env)
