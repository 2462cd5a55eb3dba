"""SMAX (JaxMARL's StarCraft-like micromanagement, on JAX) as value-decomposition envs.

``make_env("smax/3m", num_envs=256, seed=0)``: the task is a JaxMARL SMAX scenario name (``3m``, ``2s3z``,
``3s5z``, ``8m``, ``5m_vs_6m``, ..., ``smacv2_5_units``, ...). The allies are the learners; the enemies play
JaxMARL's heuristic policy (``HeuristicEnemySMAX``, the env JaxMARL's own QMIX/VDN baselines train on).

:class:`SmaxTeamEnv` keeps ``num_envs`` SMAX states as one batched pytree and steps them with one jitted
``jax.vmap`` of ``step_env``. Finished copies are reset the TorchRL way (``"next"`` holds the battle's last
observation, ``_reset`` with a ``"_reset"`` mask starts the next one), but the reset is computed inside the
step that ended the battle, as JaxMARL's own ``env.step`` does, and only handed out by ``_reset``: one jitted
call per step instead of two. Each step's outputs are packed inside the jitted function into one float32 and one
bool buffer, handed to torch by DLPack (two zero-copy handovers per step on CPU, instead of ~10), and split
into contiguous views. Actions go to JAX as an int32 array. JAX runs on its default device (CPU here);
tensors are moved to ``device`` when it differs.

Key layout (torchrl_vd/keys.py, docs/CONTRACT.md), batch size ``[num_envs]``, ``n`` allies, ``A = 5 + num_enemies`` actions:

* ``("agents","observation")`` ``[N, n, F]`` float32: SMAX's unit-list observations.
* ``("agents","action")`` ``[N, n]`` int64: 0-3 move (N, E, S, W), 4 stop, ``5 + j`` attack enemy ``j``.
* ``("agents","action_mask")`` ``[N, n, A]`` bool: ``get_avail_actions`` (attacks on live enemies in
  range; a dead ally may only stop).
* ``("agents","alive")`` ``[N, n]`` bool: the ally is alive (dead allies contribute nothing to losses).
* ``("agents","reward")`` ``[N, n, 1]``: SMAX gives every ally the same team reward (the enemies' health
  lost this step as a fraction of their total, + ``won_battle_bonus`` = 1 for a win).
* ``"reward"`` ``[N, 1]``: ``team_reward="mean"`` (default) is that shared reward, so an episode's team
  return is at most 2; ``"sum"`` multiplies it by ``n``.
* ``"state"`` ``[N, S]``: SMAX's ``world_state`` (every unit's health, position, cooldown, type; teams).
* ``"done"``, ``"terminated"``, ``"truncated"`` ``[N, 1]``: *terminated* when one side is dead, *truncated*
  at SMAX's step limit (``max_steps``, default 100) otherwise. SMAX checks the limit before it counts the
  step, so a battle that reaches it lasts ``max_steps + 1`` steps; the adapter keeps JaxMARL's transitions.
* ``"battle_won"`` ``[N, 1]`` bool: True in the ``"next"`` of the step that wins a battle (every enemy
  dead, an ally alive). Win rate = ``next.battle_won.sum() / next.done.sum()`` over finished episodes.

Keys and seeding: copy ``i`` owns the PRNG key ``jax.random.PRNGKey(seed + i)``; every reset and step of
it splits that key once (``key, sub = split(key)``) and passes ``sub`` to ``reset`` / ``step_env``. So
copy ``i`` of a batch is the env built with ``num_envs=1, seed=seed + i``, and a raw JaxMARL loop with the
same key schedule reproduces it (tests/test_smax_env.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical

from torchrl_vd.envs.base import TeamEnvBase
from torchrl_vd.envs.registry import missing_dependency_error, register_env_family, unknown_task_error
from torchrl_vd.envs.transforms import set_team_specs
from torchrl_vd.keys import (
    ACTION, ACTION_MASK, ALIVE, BATTLE_WON, DONE, GROUP, OBSERVATION, REWARD, STATE, TERMINATED, TRUNCATED,
)

__all__ = ["SmaxTeamEnv", "make_smax_env", "smax_tasks"]


def _import_jaxmarl():
    for package in ("jax", "jaxmarl"):
        if importlib.util.find_spec(package) is None:
            raise missing_dependency_error("smax", package, "smax")
    return importlib.import_module("jaxmarl")


def smax_tasks() -> list[str]:
    """JaxMARL's SMAX scenario names."""
    _import_jaxmarl()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    return sorted(MAP_NAME_TO_SCENARIO)


def make_raw_smax(scenario: str, **env_kwargs):
    """The raw JaxMARL env the adapter steps: ``HeuristicEnemySMAX`` on the named scenario."""
    jaxmarl = _import_jaxmarl()
    from jaxmarl.environments.smax import map_name_to_scenario

    return jaxmarl.make("HeuristicEnemySMAX", scenario=map_name_to_scenario(scenario), **env_kwargs)


@functools.lru_cache(maxsize=None)
def _shared_raw_smax(scenario: str, kwargs: tuple):
    """One raw env per (scenario, kwargs), so that :func:`_batched_fns` finds its compiled functions again."""
    return make_raw_smax(scenario, **dict(kwargs))


def _copy_fns(env, team_mean: bool) -> tuple:
    """``(observe, reset_one, step_one, pack)``: the jax functions of one SMAX copy, for :func:`_batched_fns` to
    vmap, and the packing of the batched outputs.

    * ``observe(state) -> (obs [n, F], world state [S], masks [n, A], alive [n])``;
    * ``reset_one(key) -> (key, state)`` and ``step_one(key, state, action [n]) -> (key, state, ally rewards [n],
      terminated, truncated, won)`` (SMAX's own step limit is the truncation);
    * ``pack(obs, world, mask, alive, rew, term, trunc, won) -> (floats, bools)`` of the whole batch, laid out as
      :func:`_batched_fns` documents, the team reward the mean (``team_mean``) or the sum of the ally rewards.
    """
    import jax
    import jax.numpy as jnp

    agents = list(env.agents)
    n = len(agents)

    def observe(state):
        """One copy's observation outputs: obs [n, F], world state [S], masks [n, A], alive [n]."""
        obs = env.get_obs(state)
        avail = env.get_avail_actions(state)
        return (
            jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
            env.get_world_state(state).astype(jnp.float32),
            jnp.stack([avail[a] for a in agents]).astype(bool),
            state.state.unit_alive[:n],
        )

    def strong(state):
        # SMAX's reset leaves a leaf weakly typed (the heuristic enemy's last_attacked_enemy) where its step
        # does not: without this, the second step would see new input types and compile again
        return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=x.dtype), state)

    def reset_one(key):
        key, sub = jax.random.split(key)
        _, state = env.reset(sub)
        return key, strong(state)

    def step_one(key, state, action):
        key, sub = jax.random.split(key)
        _, state, rew, dones, _ = env.step_env(sub, state, {a: action[j] for j, a in enumerate(agents)})
        alive = state.state.unit_alive
        allies_dead, enemies_dead = ~alive[:n].any(), ~alive[n:].any()
        terminated = allies_dead | enemies_dead
        truncated = dones["__all__"] & ~terminated  # SMAX's step limit
        won = enemies_dead & ~allies_dead
        return key, strong(state), jnp.stack([rew[a] for a in agents]).astype(jnp.float32), terminated, truncated, won

    def pack(obs, world, mask, alive, rew, term, trunc, won):
        team = rew.mean(-1) if team_mean else rew.sum(-1)  # [N]
        floats = jnp.concatenate([obs.reshape(-1), world.reshape(-1), rew.reshape(-1), team])
        bools = jnp.concatenate([mask.reshape(-1), alive.reshape(-1), term, trunc, won])
        return floats, bools

    return observe, reset_one, step_one, pack


@functools.lru_cache(maxsize=None)
def _batched_fns(raw_env, num_envs: int, team_mean: bool) -> tuple:
    """``(step, reset_where, initial_states)`` for ``num_envs`` copies of ``raw_env``, jitted.

    Cached, so that envs built on the same raw env and batch size (a trainer's probe and collector envs, or
    tests) share one compilation: compiling SMAX's step takes 10-60 s on a CPU.

    * ``step(keys [N, 2], states, actions [N, n] int32) -> (keys, states, (floats, bools), prepared)``
      steps every copy and, when a copy finished, also prepares its reset (as JaxMARL's ``env.step`` does,
      but without applying it): ``prepared = (keys, states, (floats, bools))`` where the finished copies are
      reset and the others are as stepped. TorchRL's ``_reset`` that follows then costs no second pass over
      the batch (a vmapped reset of every copy costs about half a step). Any other ``_reset`` mask uses
      ``reset_where``.
    * ``reset_where(keys, states, mask [N] bool) -> (keys, states, (floats, bools))``: resets the copies where
      ``mask`` is set; the others keep their key and state.
    * ``initial_states``: a zero batched state (the first reset replaces every copy of it).

    ``floats`` = ``[obs N*n*F | world state N*S | ally rewards N*n | team reward N]`` (float32),
    ``bools`` = ``[action masks N*n*A | alive N*n | terminated N | truncated N | battle won N]``.
    """
    import jax
    import jax.numpy as jnp

    N, n = num_envs, len(list(raw_env.agents))
    observe, reset_one, step_one, pack = _copy_fns(raw_env, team_mean)

    def reset_where(keys, states, mask):
        new_keys, new_states = jax.vmap(reset_one)(keys)

        def pick(new, old):
            return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)

        keys = pick(new_keys, keys)
        states = jax.tree_util.tree_map(pick, new_states, states)
        obs, world, avail, alive = jax.vmap(observe)(states)
        no = jnp.zeros((N,), bool)
        return keys, states, pack(obs, world, avail, alive, jnp.zeros((N, n), jnp.float32), no, no, no)

    def step(keys, states, actions):
        keys, states, rew, term, trunc, won = jax.vmap(step_one)(keys, states, actions)
        obs, world, mask, alive = jax.vmap(observe)(states)
        outputs = pack(obs, world, mask, alive, rew, term, trunc, won)
        done = term | trunc
        prepared = jax.lax.cond(  # a real branch (not vmapped): no reset work on steps where nothing ended
            done.any(),
            lambda: reset_where(keys, states, done),
            lambda: (keys, states, outputs),  # never handed out: no copy to reset
        )
        return keys, states, outputs, prepared

    shapes = jax.eval_shape(jax.vmap(reset_one), jax.ShapeDtypeStruct((N, 2), jnp.uint32))[1]
    initial_states = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    return jax.jit(step), jax.jit(reset_where), initial_states


class SmaxTeamEnv(TeamEnvBase):
    """``num_envs`` SMAX battles stepped by one jitted ``jax.vmap``, in torchrl_vd's key layout.

    Args:
        raw_env: a JaxMARL ``HeuristicEnemySMAX`` (or another enemy-policy SMAX env with discrete actions).
        num_envs: number of battles (batch size ``[num_envs]``).
        device: torch device of the output tensors.
        seed: copy ``i`` uses ``PRNGKey(seed + i)`` (see the module doc); ``None`` draws a seed.
        team_reward: ``"mean"`` (the shared SMAX reward) or ``"sum"`` over the allies.
        name: a label for ``repr``.
    """

    def __init__(self, raw_env, *, num_envs: int = 1, device="cpu", seed: int | None = None,
                 team_reward: str = "mean", name: str | None = None):
        import jax

        super().__init__(num_envs=num_envs, device=device, team_reward=team_reward)
        N = self.num_envs
        self.raw_env = env = raw_env
        self.name = name or type(env).__name__
        if getattr(env, "action_type", "discrete") != "discrete":
            raise ValueError(
                f"{self.name}: value decomposition needs discrete actions, but this SMAX env has "
                f"action_type={env.action_type!r}. Build it with action_type='discrete' (the default)."
            )
        agents = list(env.agents)
        self.n_agents = n = len(agents)
        self.n_actions = A = int(env.action_space(agents[0]).n)
        if any(int(env.action_space(a).n) != A for a in agents):
            raise ValueError(f"{self.name}: allies have different action counts; SMAX allies share one action set.")
        self.obs_dim = F = int(np.prod(env.observation_space(agents[0]).shape))
        self.state_dim = S = int(env.state_size)
        self._jax = jax
        self._f_sizes = (N * n * F, N * S, N * n, N)  # see _batched_fns
        self._b_sizes = (N * n * A, N * n, N, N, N)
        fns = _batched_fns(env, N, self.team_reward_mode == "mean")
        self._step_fn, self._reset_where_fn, self._states = fns
        self._prepared = None  # (keys, states, outputs, done [N] numpy) from the last step, see _batched_fns
        self._all = np.ones(N, dtype=bool)
        self._seed_keys(seed)
        self._make_specs()

    def _seed_keys(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        seeds = (int(seed) + np.arange(self.num_envs, dtype=np.uint64)) % (1 << 32)
        self._keys = self._jax.vmap(self._jax.random.PRNGKey)(seeds.astype(np.uint32))  # [N, 2]

    # ------------------------------------------------------------------ specs
    def _make_specs(self) -> None:
        set_team_specs(self, n_agents=self.n_agents, n_actions=self.n_actions, obs_dim=self.obs_dim,
                       state_dim=self.state_dim, action_mask=True, alive=True,
                       extra_observations={BATTLE_WON: Categorical(2, shape=(1,), dtype=torch.bool,
                                                                   device=self.device)})

    # ------------------------------------------------------------------ outputs
    def _unpack(self, floats, bools, with_reward: bool) -> TensorDictBase:
        N, n, A, F, S, dev = self.num_envs, self.n_agents, self.n_actions, self.obs_dim, self.state_dim, self.device
        f = torch.from_dlpack(floats).to(dev)  # zero-copy on CPU
        b = torch.from_dlpack(bools).to(dev)
        obs, state, rew, team = torch.split(f, self._f_sizes)
        mask, alive, term, trunc, won = torch.split(b, self._b_sizes)
        term, trunc = term.view(N, 1), trunc.view(N, 1)
        group = {
            OBSERVATION: obs.view(N, n, F),
            ACTION_MASK: mask.view(N, n, A),
            ALIVE: alive.view(N, n),
        }
        out = {
            STATE: state.view(N, S),
            BATTLE_WON: won.view(N, 1),
            TERMINATED: term,
            TRUNCATED: trunc,
            DONE: term | trunc,
        }
        if with_reward:
            group[REWARD] = rew.view(N, n, 1)
            out[REWARD] = team.view(N, 1)
        return self._pack(group, out, torch.Size([N, n]))

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        where = self._all if mask is None else np.ascontiguousarray(mask.reshape(-1).cpu().numpy())  # [N] bool
        prepared, self._prepared = self._prepared, None
        if prepared is not None and (where == prepared[3]).all():
            # TorchRL's auto-reset: exactly the copies that finished at the last step, whose resets are prepared
            self._keys, self._states, (floats, bools), _ = prepared
        else:
            self._keys, self._states, (floats, bools) = self._reset_where_fn(self._keys, self._states, where)
        return self._unpack(floats, bools, with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, ACTION)).to("cpu", torch.int32).numpy()  # [N, n]
        if (action < 0).any() or (action >= self.n_actions).any():
            raise self._action_range_error(action, self.n_actions)
        self._keys, self._states, (floats, bools), prepared = self._step_fn(self._keys, self._states, action)
        out = self._unpack(floats, bools, with_reward=True)
        self._prepared = (*prepared, out[DONE].view(-1).cpu().numpy().copy())  # [N]: which resets it holds
        return out

    def _set_seed(self, seed: int | None) -> int | None:
        if seed is None:
            return None
        self._seed_keys(seed)
        self._prepared = None  # prepared resets used the old keys
        return int(seed) + self.num_envs

    def _repr_fields(self) -> dict:
        return {"state_dim": self.state_dim, "max_steps": self.raw_env.max_steps}


def make_smax_env(
    task: str,
    *,
    num_envs: int = 1,
    device="cpu",
    seed: int | None = None,
    max_steps: int | None = None,
    team_reward: str = "mean",
    **env_kwargs,
) -> SmaxTeamEnv:
    """Build ``num_envs`` battles of a SMAX scenario as one :class:`SmaxTeamEnv`.

    Args:
        task: a SMAX scenario name, e.g. ``"3m"``, ``"2s3z"``, ``"3s5z"``, ``"smacv2_5_units"``.
        num_envs, device, seed, team_reward: see :class:`SmaxTeamEnv`.
        max_steps: SMAX's episode limit (truncation); ``None`` keeps JaxMARL's default (100).
        **env_kwargs: forwarded to ``HeuristicEnemySMAX`` / ``SMAX`` (e.g. ``attack_mode="random"``,
            ``enemy_shoots=False``, ``won_battle_bonus=1.0``, ``observation_type="conic"``).
    """
    known = smax_tasks()
    if task not in known:
        raise unknown_task_error("smax", task, known)
    if env_kwargs.get("action_type", "discrete") != "discrete":
        raise ValueError(
            f"smax: value decomposition needs discrete actions, got action_type={env_kwargs['action_type']!r}. "
            "Use action_type='discrete' (the default)."
        )
    if max_steps is not None:
        env_kwargs["max_steps"] = int(max_steps)
    kwargs = tuple(sorted(env_kwargs.items()))
    try:
        hash(kwargs)
    except TypeError:  # e.g. arrays of unit properties: a raw env (and a compilation) of its own
        raw = make_raw_smax(task, **env_kwargs)
    else:
        raw = _shared_raw_smax(task, kwargs)
    return SmaxTeamEnv(raw, num_envs=num_envs, device=device, seed=seed, team_reward=team_reward, name=task)


register_env_family(
    "smax",
    examples=["3m", "2s3z", "3s5z", "smacv2_5_units"],
    description=(
        "SMAX (JaxMARL, JAX) vs the heuristic enemy: jitted vmap over battles, DLPack hand-over, available-action "
        "masks, world state, ('next','battle_won') for win rates"
    ),
    extra="smax",
    tasks=smax_tasks,
    many_seeds=True,
)(make_smax_env)
