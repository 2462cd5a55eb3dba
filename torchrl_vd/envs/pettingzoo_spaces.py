"""The agents' spaces of a PettingZoo env as one padded team layout, and writing observations into it.

torchrl_vd's key layout has one observation size F and one action count A for the whole team
(``("agents", "observation")`` ``[N, n, F]``, ``("agents", "action_mask")`` ``[N, n, A]``), while PettingZoo
agents may differ (MPE's ``simple_adversary``: observations of 8 and 10; board games: Discrete observations,
dict observations carrying an ``"action_mask"``). :class:`AgentSpaces` reads every agent's gymnasium spaces once
(Box observations flattened, Discrete ones one-hot; Discrete actions only), refuses what value decomposition
cannot learn (continuous actions), and writes each agent's observation and mask zero-padded to F and A.
Separate from the adapter (pettingzoo.py), which steps the envs and fills the rest of the outputs.
"""

from __future__ import annotations

import numpy as np


class AgentSpaces:
    """Each agent's observation and action sizes, and the padded team sizes, of one PettingZoo env.

    Args:
        env: a PettingZoo env (``observation_space(agent)`` / ``action_space(agent)``).
        agent_names: the env's ``possible_agents``, in the team's order.
        name: the env's label, for error messages.

    Attributes:
        index: agent name -> its row j in the team layout.
        obs_sizes: each agent's flat observation size (a Discrete observation: its ``n``, one-hot).
        obs_discrete: each agent's Discrete observation ``start`` (the one-hot offset); ``None`` for Box ones.
        n_acts: each agent's action count (``n_acts_np``: the same as an int64 array).
        mask_in_obs: some agent's observation is a dict with an ``"action_mask"`` entry.
        obs_dim, n_actions: the team's padded sizes F and A (the largest); ``padded_obs``: observation sizes differ.
    """

    def __init__(self, env, agent_names: list[str], name: str):
        from gymnasium import spaces

        self.index = {a: j for j, a in enumerate(agent_names)}  # agent name -> its row j in the team layout
        obs_sizes, n_acts, obs_discrete = [], [], []
        self.mask_in_obs = False
        for a in agent_names:
            osp = env.observation_space(a)
            if isinstance(osp, spaces.Dict):
                if "observation" not in osp.spaces:
                    raise ValueError(
                        f"{name}: agent {a!r} has a dict observation space without an 'observation' "
                        f"entry ({list(osp.spaces)}); torchrl_vd needs one flat observation per agent."
                    )
                self.mask_in_obs = self.mask_in_obs or "action_mask" in osp.spaces
                osp = osp.spaces["observation"]
            if isinstance(osp, spaces.Box):
                obs_sizes.append(int(np.prod(osp.shape)) if osp.shape else 1)
                obs_discrete.append(None)
            elif isinstance(osp, spaces.Discrete):
                obs_sizes.append(int(osp.n))  # one-hot
                obs_discrete.append(int(osp.start))
            else:
                raise ValueError(
                    f"{name}: agent {a!r} has observation space {osp}; only Box and Discrete "
                    "observations are supported."
                )
            asp = env.action_space(a)
            if isinstance(asp, spaces.Discrete):
                if int(asp.start) != 0:
                    raise ValueError(f"{name}: agent {a!r} has Discrete actions starting at {asp.start}; need 0.")
                n_acts.append(int(asp.n))
            elif isinstance(asp, spaces.Box):
                raise ValueError(
                    f"{name}: value decomposition needs discrete actions, but agent {a!r} has the "
                    f"continuous action space {asp}. Use the env's discrete version (for MPE: "
                    "continuous_actions=False, which make_pettingzoo_env passes by default)."
                )
            else:
                raise ValueError(
                    f"{name}: agent {a!r} has action space {asp}; value decomposition needs one "
                    "Discrete action per agent."
                )
        self.obs_sizes, self.obs_discrete, self.n_acts = obs_sizes, obs_discrete, n_acts
        self.n_acts_np = np.asarray(n_acts, dtype=np.int64)
        self.obs_dim = max(obs_sizes)
        self.n_actions = max(n_acts)
        self.padded_obs = len(set(obs_sizes)) > 1

    def write_obs(self, i: int, a: str, o, views, info) -> None:
        """Write agent ``a``'s observation ``o`` (and its action mask, from ``o`` or ``info``) into row ``i`` of
        ``views["obs"]`` ``[N, n, F]`` (and ``views["mask"]`` ``[N, n, A]`` when exported), zero-padded."""
        j = self.index[a]
        mask = None
        if isinstance(o, dict):
            mask = o.get("action_mask")
            o = o["observation"]
        if mask is None and info is not None:
            inf = info.get(a)
            if isinstance(inf, dict):
                mask = inf.get("action_mask")
        start = self.obs_discrete[j]
        if start is None:
            views["obs"][i, j, : self.obs_sizes[j]] = np.ravel(o)
        else:
            views["obs"][i, j, int(o) - start] = 1.0
        if views["mask"] is not None:
            if mask is not None:
                views["mask"][i, j, : self.n_acts[j]] = np.asarray(mask, dtype=bool)
            else:
                views["mask"][i, j, : self.n_acts[j]] = True


__all__ = ["AgentSpaces"]
