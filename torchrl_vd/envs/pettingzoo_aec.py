"""Driving one PettingZoo AEC (turn-based) env with a joint action: the stepping :class:`AECDriver` does.

PettingZoo's AEC API moves one agent per ``step()`` call (``agent_selection``), while a TorchRL step takes
every agent's action at once. The driver plays a joint action either as one *cycle* (every live agent moves
once, in the env's turn order, rewards summed over the moves: the transition PettingZoo's
``aec_to_parallel`` wrapper makes, and MPE's world step) or as one *turn* (only the agent to move acts: board
games), steps the agents that ended out of the game (``step(None)``), and reads the env's state where
PettingZoo's own wrappers keep it, stepping around the check-only wrappers. Separate from the adapter
(pettingzoo.py), which turns what the driver reports into torchrl_vd's key layout for parallel and AEC envs
alike.
"""

from __future__ import annotations

from typing import Iterator

_CHECK_ONLY_WRAPPERS = ("OrderEnforcingWrapper", "AssertOutOfBoundsWrapper", "BaseWrapper")


def _state_source(env):
    """``env.unwrapped`` when every wrapper around it is one of PettingZoo's own, else ``env``."""
    cur = env
    while hasattr(cur, "env") and cur is not getattr(cur, "unwrapped", cur):
        if not type(cur).__module__.startswith("pettingzoo.utils.wrappers"):
            return env
        cur = cur.env
    return getattr(env, "unwrapped", env)


def _step_target(env):
    """``env.unwrapped`` when every wrapper around it only checks call order / action bounds."""
    cur = env
    while hasattr(cur, "env") and cur is not getattr(cur, "unwrapped", cur):
        if not (
            type(cur).__module__.startswith("pettingzoo.utils.wrappers")
            and type(cur).__name__ in _CHECK_ONLY_WRAPPERS
        ):
            return env
        cur = cur.env
    return getattr(env, "unwrapped", env)


def is_aec_env(env) -> bool:
    """Whether ``env`` is an AEC env (else a parallel one); a TypeError for anything else."""
    from pettingzoo.utils.env import AECEnv, ParallelEnv

    if isinstance(env, AECEnv):
        return True
    if isinstance(env, ParallelEnv) or hasattr(env, "possible_agents"):
        return False
    raise TypeError(f"env_fn must return a PettingZoo ParallelEnv or AECEnv, got {type(env).__name__}.")


def aec_envs_inside(envs: list) -> list | None:
    """The AEC envs inside parallel ``envs`` that are all PettingZoo's ``aec_to_parallel_wrapper``, else None.

    That wrapper's ``step`` calls ``last()`` before every agent's move, computing each observation twice
    per step (MPE: ~15% of a step). Driving the wrapped AEC env in ``"cycle"`` mode is the same transition
    (every live agent moves once, in turn order; rewards summed over the moves), without that.
    """
    from pettingzoo.utils.conversions import aec_to_parallel_wrapper

    if not all(type(e) is aec_to_parallel_wrapper for e in envs):
        return None
    return [e.aec_env for e in envs]


class AECDriver:
    """One AEC env copy played with joint actions (``mode`` ``"cycle"`` or ``"turn"``, see the module doc).

    Attributes:
        env: the env as built (reset through it).
        state: where to read the env's state (``agents``, ``agent_selection``, ``rewards``, ``terminations``, ...):
            PettingZoo's own wrappers keep it on ``env.unwrapped`` (they write there too), and every attribute
            read through them costs a chain of ``__getattr__`` calls; other wrappers may override those
            attributes, so they are read through.
        target: what ``step()``/``observe()`` are called on: the raw env when the only wrappers are PettingZoo's
            order/bounds checks (MPE: OrderEnforcing + AssertOutOfBounds, ~15 us per agent move), which the
            adapter replaces by one range check of the whole joint action.
    """

    def __init__(self, env, index: dict[str, int]):
        self.env, self.index = env, index
        self.state = _state_source(env)
        self.target = _step_target(env)

    def reset(self, seed: int | None) -> tuple[dict, dict]:
        """Reset the env: ``(observations of the agents in the game, infos)``, as a parallel env's ``reset``."""
        self.env.reset(seed=seed)
        u = self.state
        return {a: self.env.observe(a) for a in u.agents}, dict(u.infos)

    def selection(self) -> str | None:
        """The agent to move next (``None`` once no agent is left)."""
        u = self.state
        return u.agent_selection if u.agents else None

    def move(self, act: list[int], mode: str) -> list[float]:
        """Play the joint action ``act`` (by agent index): one turn or one cycle. Returns each agent's reward
        summed over the moves made, by agent index."""
        env, u, index = self.target, self.state, self.index
        rew = [0.0] * len(index)
        if mode == "turn":
            if u.agents:
                env.step(act[index[u.agent_selection]])
                for b, r in u.rewards.items():
                    rew[index[b]] += r
            return rew
        moved = set()
        while u.agents:
            a = u.agent_selection
            if u.terminations.get(a, False) or u.truncations.get(a, False):
                if not self.dead_steps():
                    break  # everyone is done
                continue
            if a in moved:
                break
            env.step(act[index[a]])
            moved.add(a)
            for b, r in u.rewards.items():
                if r:
                    rew[index[b]] += r
        return rew

    def outcomes(self) -> Iterator[tuple[str, bool, bool, object]]:
        """``(agent, terminated, truncated, observation)`` of every agent still in the game, after a move."""
        u = self.state
        terms, truncs = u.terminations, u.truncations
        for a in u.agents:
            yield a, terms.get(a, False), truncs.get(a, False), self.target.observe(a)

    def dead_steps(self) -> bool:
        """Step (with ``None``) the terminated agents whose turn it is, unless all agents are done.

        Agents that just ended leave the game at their next turn; doing it right after a move makes
        ``agent_selection`` name the agent that moves next (turn mode masks by it). Returns True when at
        least one such step was taken.
        """
        env, u = self.target, self.state
        took = False
        while u.agents:
            a = u.agent_selection
            if not (u.terminations.get(a, False) or u.truncations.get(a, False)):
                break
            if all(u.terminations.get(b, False) or u.truncations.get(b, False) for b in u.agents):
                break  # the episode is over: leave it to the reset
            env.step(None)
            took = True
        return took


__all__ = ["AECDriver", "aec_envs_inside", "is_aec_env"]
