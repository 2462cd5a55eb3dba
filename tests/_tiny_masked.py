"""TinyMasked: a 3-agent PettingZoo ParallelEnv with masks, a dead agent and padding, for the PettingZoo adapter
tests (test_pettingzoo_env.py, test_env_swap.py). Importing it needs pettingzoo: its importers skip without it."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class TinyMasked(ParallelEnv):
    """3 agents; masks in ``info``; ``b`` dies after step ``die_at``; everyone is truncated at
    ``horizon`` (or terminated, with ``terminate=True``).

    * observation sizes 3, 3, 2 (``c`` is padded); action counts 4, 4, 3 (``c``'s 4th is padded);
    * at step t the action ``t % 4`` is illegal for everyone (``c``: only if < 3);
    * reward of an agent = the action it took; ``state()`` = [t, 10 * t].
    """

    metadata = {"name": "tiny_masked_v0"}
    render_mode = None

    def __init__(self, die_at=2, horizon=5, terminate=False):
        self.possible_agents = ["a", "b", "c"]
        self.die_at, self.horizon, self.terminate = die_at, horizon, terminate
        self._obs = {a: spaces.Box(-10, 10, (3 if a != "c" else 2,), np.float32) for a in self.possible_agents}
        self._act = {a: spaces.Discrete(4 if a != "c" else 3) for a in self.possible_agents}

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _mask(self, agent):
        m = np.ones(self._act[agent].n, dtype=np.int8)
        if self.t % 4 < len(m):
            m[self.t % 4] = 0
        return m

    def _observe(self, agent):
        i = self.possible_agents.index(agent)
        o = np.array([self.t, i, 1.0], dtype=np.float32)
        return o[: self._obs[agent].shape[0]]

    def reset(self, seed=None, options=None):
        self.t = 0
        self.agents = list(self.possible_agents)
        return {a: self._observe(a) for a in self.agents}, {a: {"action_mask": self._mask(a)} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        for a, act in actions.items():
            assert self._mask(a)[act], f"illegal action {act} for {a} at t={self.t}"
        rewards = {a: float(act) for a, act in actions.items()}
        self.t += 1
        end = self.t >= self.horizon
        terms = {a: (end and self.terminate) or (a == "b" and self.t >= self.die_at) for a in self.agents}
        truncs = {a: end and not self.terminate for a in self.agents}
        obs = {a: self._observe(a) for a in self.agents}
        infos = {a: {"action_mask": self._mask(a)} for a in self.agents}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos

    def state(self):
        return np.array([self.t, 10 * self.t], dtype=np.float32)
