"""The Multi-Robot Warehouse (rware >= 2) as value-decomposition envs.

``make_env("rware/rware-tiny-2ag-v2", num_envs=8, seed=0)``: the task is a gymnasium id that rware
registers on import, ``rware-{tiny,small,medium,large}-{n}ag[-easy,-hard]-v2`` (flattened observations,
sensor range 1, individual rewards).

Built on :class:`~torchrl_vd.envs.gymma.GymMATeamEnv` (layout, vectorizing, auto-reset, seeding). What is
specific to RWARE:

* **Time limit** ``max_steps`` (default 500, EPyMARL's and the registrations' value) is passed to the env as
  its own ``max_steps``, so the transitions are the stock env's. RWARE is a continuing task: it reports
  reaching the limit (or ``max_inactivity_steps`` without a delivery, when set) as ``terminated``; the
  adapter reports every end of an RWARE episode as *truncated*, so values are bootstrapped through it.
* **No action masks**: the five actions (no-op, forward, left, right, toggle load) are always allowed; a
  blocked move is resolved by the env.
* **Rewards**: 1 to the agent that delivers a requested shelf (``RewardType.INDIVIDUAL`` in the
  registrations); the team reward sums them, i.e. counts deliveries.
* **State**: the stacked observations, as in EPyMARL. rware's ``get_global_image`` is not used: its default
  layers (shelves, goals) do not change within an episode, and in rware 2.0.0 its agent-direction and
  agent-load layers index the grid as ``[x, y]`` where the other layers use ``[y, x]``.
* Communication bits (``msg_bits > 0``) make the action space ``MultiDiscrete``; the adapter rejects them
  with a ValueError.
"""

from __future__ import annotations

from torchrl_vd.envs.gymma import GymMATeamEnv, gymnasium_team_env, registered_ids
from torchrl_vd.envs.registry import register_env_family, unknown_task_error

__all__ = ["make_rware_env", "rware_tasks"]

DEFAULT_MAX_STEPS = 500


def rware_tasks() -> list[str]:
    """The gymnasium ids rware registers on import (``rware-...-v2``)."""
    return registered_ids("rware", "rware", "rware")


def rware_never_terminal(env) -> bool:
    """RWARE episodes end only at a step or inactivity limit: always a truncation."""
    return False


def make_rware_env(
    task: str,
    *,
    num_envs: int = 1,
    device="cpu",
    seed: int | None = None,
    max_steps: int | None = DEFAULT_MAX_STEPS,
    team_reward: str = "sum",
    **env_kwargs,
) -> GymMATeamEnv:
    """Build ``num_envs`` copies of an RWARE task as one :class:`~torchrl_vd.envs.gymma.GymMATeamEnv`.

    Args:
        task: an rware gymnasium id, e.g. ``"rware-tiny-2ag-v2"``.
        num_envs, device, seed, team_reward: see :class:`~torchrl_vd.envs.gymma.GymMATeamEnv`.
        max_steps: episode limit (truncation), passed on as the ``Warehouse``'s ``max_steps``; ``None`` keeps
            the registered limit (500).
        **env_kwargs: override ``Warehouse`` constructor arguments of the registration (e.g.
            ``sensor_range=2``, ``reward_type=rware.RewardType.GLOBAL``, ``max_inactivity_steps=100``).
    """
    known = rware_tasks()
    if task not in known:
        raise unknown_task_error("rware", task, known)
    if max_steps is not None:
        env_kwargs["max_steps"] = int(max_steps)
    return gymnasium_team_env(task, env_kwargs, num_envs=num_envs, device=device, seed=seed,
                              max_steps=max_steps, team_reward=team_reward, is_terminal=rware_never_terminal)


register_env_family(
    "rware",
    examples=["rware-tiny-2ag-v2", "rware-tiny-4ag-v2", "rware-small-4ag-v2"],
    description="Multi-Robot Warehouse (rware gymnasium ids); 500-step limit as truncation, state = stacked observations",
    extra="rware",
    tasks=rware_tasks,
    many_seeds=True,
)(make_rware_env)
