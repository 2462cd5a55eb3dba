"""Vectorized cooperative matrix games as a TorchRL ``EnvBase``.

``MatrixGameEnv`` runs ``num_envs`` copies of a small cooperative game in lock-step with pure tensor
ops (no Python loop over environments). A *game* is a small object (:class:`MatrixGame`) holding the
payoff logic, the horizon and the observation function; the env adds batching, partial resets,
seeding, absorbing terminal states and the TorchRL specs.

Games (``make_env("matrix/<task>", ...)``):

=================  ==========================================================================
``qtran``          one step, 2 agents x 3 actions; Son et al., "QTRAN", ICML 2019 (matrix game)
``climbing``       one step, 2 x 3; Claus & Boutilier, AAAI 1998
``penalty``        one step, 2 x 3, kwarg ``k`` (default -100); Claus & Boutilier, AAAI 1998
``linear``         one step, 2 x 2, additive payoff (exactly representable by VDN)
``monotonic``      one step, 2 x 2, monotonic but not additive (representable by QMIX, not VDN)
``custom``         one step, any payoff tensor ``[A_1, ..., A_n]`` (kwarg ``payoff``)
``two-step``       Rashid et al., "QMIX", ICML 2018 (two-step game)
``m-step``         Mahajan et al., "MAVEN", NeurIPS 2019 (kwarg ``steps``, default 10)
``memory``         cue/recall game for recurrent agents (kwargs ``delay``, ``n_agents``)
=================  ==========================================================================

Keys (docs/CONTRACT.md "Keys"): ``("agents", "observation")`` [N, n, F] float, ``("agents", "action")``
[N, n] int64, ``("agents", "action_mask")`` [N, n, A] bool (only when some agent has fewer than A
actions), root ``"state"`` [N, S] float, team ``"reward"`` [N, 1], ``"done"`` / ``"terminated"`` /
``"truncated"`` [N, 1] bool. Episodes end by termination (the horizon is part of the game: the
observation carries the time step), so ``"truncated"`` is always False.
"""

from __future__ import annotations

import copy
import inspect
import math
from numbers import Real
from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from torchrl_vd.envs.registry import register_env_family, unknown_task_error
from torchrl_vd.keys import ACTION, ACTION_MASK, DONE, GROUP, OBSERVATION, REWARD, STATE, TERMINATED, TRUNCATED

__all__ = [
    "MatrixGame",
    "OneStepGame",
    "TwoStepGame",
    "MStepGame",
    "MemoryGame",
    "MatrixGameEnv",
    "NAMED_PAYOFFS",
    "make_matrix_env",
    "matrix_tasks",
]


# --------------------------------------------------------------------------------------------------
# Games
# --------------------------------------------------------------------------------------------------


class MatrixGame:
    """Description of a vectorized cooperative game: payoff logic, horizon and observation function.

    The env keeps three per-env tensors: the time step ``t`` [N] (int64, 0 at reset), a game-specific
    ``memory`` [N] (int64: branch, cue, hidden state, ...) and a done flag. A game defines

    * ``n_agents``, ``n_actions`` (one entry per agent), ``max_steps`` (horizon), ``obs_dim`` (F),
      ``state_dim`` (S), ``optimal_return`` (best expected team return) and ``payoff`` (the payoff
      tensor of one-step games, else ``None``);
    * :meth:`init_memory` — fresh ``memory`` for N envs (may draw from the env's generator);
    * :meth:`observe` — ``(t, memory) -> (obs [N, n, F], state [N, S])``;
    * :meth:`transition` — ``(t, memory, action [N, n]) -> (memory', reward [N], terminated [N])``.

    The env calls :meth:`transition` only for live envs (``t < max_steps``), masks the reward of
    envs that are already done, and terminates every env once ``t`` reaches ``max_steps``. Every
    method must be pure vectorized tensor code (no ``.item()``, no loop over envs) and return fresh
    tensors (the env's outputs are written in place by TorchRL during partial resets).
    """

    name: str = "game"
    n_agents: int
    n_actions: tuple[int, ...]
    max_steps: int
    obs_dim: int
    state_dim: int
    optimal_return: float
    payoff: torch.Tensor | None = None

    @property
    def max_actions(self) -> int:
        """A = max_i A_i, the size of the shared action space."""
        return max(self.n_actions)

    @property
    def agent_action_mask(self) -> torch.Tensor | None:
        """[n, A] bool availability of each agent's actions, or ``None`` if all agents have A."""
        if all(a == self.max_actions for a in self.n_actions):
            return None
        arange = torch.arange(self.max_actions)
        return arange.unsqueeze(0) < torch.tensor(self.n_actions).unsqueeze(1)  # [n, A]

    def to(self, device: torch.device) -> "MatrixGame":
        """A shallow copy whose tensor attributes (lookup tables) live on ``device``."""
        game = copy.copy(self)
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(game, key, value.to(device))
        return game

    def init_memory(self, num: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Game memory at reset, [num] int64. Default: zeros (deterministic games)."""
        return torch.zeros(num, dtype=torch.long, device=device)

    def observe(self, t: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(obs [N, n, F], state [N, S]) at step ``t`` [N] given the game memory [N]."""
        raise NotImplementedError  # abstract: each game defines what the agents see

    def transition(
        self, t: torch.Tensor, memory: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(memory', team reward [N], terminated [N]) after joint ``action`` [N, n] at step ``t``."""
        raise NotImplementedError  # abstract: each game defines its dynamics

    def _shared(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every agent sees ``obs`` [N, F]; the state is that same observation."""
        n_env, feat = obs.shape
        agents_obs = obs.unsqueeze(1).expand(n_env, self.n_agents, feat).contiguous()  # [N, n, F]
        return agents_obs, obs

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n_agents={self.n_agents}, "
            f"n_actions={self.n_actions}, max_steps={self.max_steps})"
        )


def validate_payoff(payoff) -> torch.Tensor:
    """Convert ``payoff`` (nested list / array / tensor) to a float32 tensor, or raise ValueError.

    Requirements: at least 2 dimensions (one per agent), every dimension non-empty, real numeric
    entries (no bool / complex / strings), all finite.
    """
    if isinstance(payoff, torch.Tensor):
        tensor = payoff.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(payoff)
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"payoff must be a rectangular numeric nested list or tensor of shape [A_1, ..., A_n]; "
                f"could not convert {payoff!r}: {err}"
            ) from err
    if tensor.dtype == torch.bool or tensor.is_complex() or not (
        tensor.is_floating_point() or tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    ):
        raise ValueError(f"payoff entries must be real numbers, got dtype {tensor.dtype}.")
    if tensor.dim() < 2:
        raise ValueError(
            f"payoff needs at least 2 dimensions (one per agent: [A_1, ..., A_n], n >= 2), "
            f"got shape {list(tensor.shape)}."
        )
    if any(s == 0 for s in tensor.shape):
        raise ValueError(f"payoff has an empty dimension (every agent needs >= 1 action): shape {list(tensor.shape)}.")
    tensor = tensor.to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError("payoff entries must be finite (found NaN or inf).")
    return tensor


class OneStepGame(MatrixGame):
    """One-step cooperative matrix game: reward = ``payoff[a_1, ..., a_n]``, then the episode ends.

    ``payoff`` has shape [A_1, ..., A_n]; agent i has A_i actions. With unequal A_i the shared action
    space has A = max A_i actions and agent i's actions >= A_i are masked out (``action_mask``);
    stepping with a masked action gives a NaN reward. Every agent observes the same dummy observation
    (a single feature 1.0, F = 1); the state is that observation (S = 1).
    """

    max_steps = 1
    obs_dim = 1
    state_dim = 1

    def __init__(self, payoff, name: str = "custom"):
        self.payoff = validate_payoff(payoff)  # [A_1, ..., A_n]
        self.name = name
        self.n_agents = self.payoff.dim()
        self.n_actions = tuple(int(s) for s in self.payoff.shape)
        self.optimal_return = float(self.payoff.max())
        a_max = self.max_actions
        # Pad to [A, ..., A] with NaN so a joint action containing a masked-out action is visible.
        self._padded = torch.full((a_max,) * self.n_agents, float("nan"))
        self._padded[tuple(slice(0, a) for a in self.n_actions)] = self.payoff

    def observe(self, t, memory):
        return self._shared(torch.ones(t.shape[0], 1, device=t.device))

    def transition(self, t, memory, action):
        # advanced indexing with one [N] index per agent (bounds-checked): [N]
        reward = self._padded[tuple(action.unbind(-1))]
        return memory, reward, torch.ones_like(t, dtype=torch.bool)


class TwoStepGame(MatrixGame):
    """Two-step game of Rashid et al., "QMIX", ICML 2018 (the two-step game).

    2 agents, 2 actions. At t=0 (state 1) agent 1's action picks state 2A (action 0) or 2B (action 1),
    reward 0. At t=1, in 2A every joint action pays 7; in 2B the payoff is [[0, 1], [1, 8]]; then the
    episode ends. Observation = state = one-hot of (1, 2A, 2B) (F = S = 3). Optimal return 8; VDN
    typically converges to 2A (7).
    """

    name = "two-step"
    n_agents = 2
    n_actions = (2, 2)
    max_steps = 2
    obs_dim = 3
    state_dim = 3
    optimal_return = 8.0

    def __init__(self):
        # memory = state index: 0 = state 1, 1 = state 2A, 2 = state 2B.
        self._eye = torch.eye(3)
        # reward[state, a0, a1]
        self._reward = torch.tensor(
            [[[0.0, 0.0], [0.0, 0.0]], [[7.0, 7.0], [7.0, 7.0]], [[0.0, 1.0], [1.0, 8.0]]]
        )
        # next_state[state, a0, a1]: from state 1 agent 1 picks 2A/2B; 2A/2B are the last step.
        self._next = torch.tensor([[[1, 1], [2, 2]], [[1, 1], [1, 1]], [[2, 2], [2, 2]]])

    def observe(self, t, memory):
        return self._shared(self._eye[memory])  # [N, 3]

    def transition(self, t, memory, action):
        a0, a1 = action.unbind(-1)
        return self._next[memory, a0, a1], self._reward[memory, a0, a1], t >= 1


class MStepGame(MatrixGame):
    """m-step matrix game of Mahajan et al., "MAVEN", NeurIPS 2019 (the authors'
    ``nstep_matrix_game.py``).

    2 agents, 2 actions, horizon m (``steps``). The joint action at t=0 fixes a branch
    (0,0)->0, (0,1)->1, (1,0)->2, (1,1)->3. At every step the reward is 1 while on branch 0 or 3 and
    the current joint action equals the branch's joint action; otherwise the reward is 0 and the
    episode terminates. At the last step (t = m-1) on branch 0 the payoff is [[1, 1], [1, 4]][a0][a1]
    instead. So branch 0 with (0,0) for m-1 steps and (1,1) at the end returns m-1+4 = m+3 (optimal);
    the trap, branch 3 with (1,1) throughout, returns m.

    At t=0 the branch is not yet chosen: the joint action both picks the branch and is its first
    move, so (0,0) and (1,1) pay 1 and (0,1), (1,0) pay 0 and end the episode.
    Observation = state = one-hot time step (m+1) ++ one-hot branch (4) (F = S = m+5).

    Args:
        steps: m, the horizon (>= 2).
        initial_branch: what the branch part shows at t=0, before the branch is chosen.
            ``"zero"`` (default): one-hot(branch 0), exactly as the authors' ``nstep_matrix_game.py``
            (their env starts with branch 0), so the published MAVEN/QMIX numbers are for this game.
            ``"unset"``: all zeros (a "not chosen yet" encoding). The dynamics and rewards are identical;
            learning is not: MAVEN measured 7/7 (optimum) with ``"zero"`` and 4/4 (trap) with
            ``"unset"`` on m = 4, seeds 11 and 12, 15k frames.
    """

    name = "m-step"
    n_agents = 2
    n_actions = (2, 2)

    def __init__(self, steps: int = 10, initial_branch: str = "zero"):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"m-step: steps must be an integer >= 2, got {steps!r}.")
        if initial_branch not in ("zero", "unset"):
            raise ValueError(
                f"m-step: initial_branch must be 'zero' (authors' encoding: branch 0 shown at t=0) or 'unset' "
                f"(all-zero branch part at t=0), got {initial_branch!r}."
            )
        self.initial_branch = initial_branch
        self.max_steps = steps
        self.obs_dim = self.state_dim = steps + 1 + 4
        self.optimal_return = float(steps + 3)
        self._eye_t = torch.eye(steps + 1)  # [m+1, m+1]
        self._eye_branch = torch.cat([torch.eye(4), torch.zeros(1, 4)])  # [5, 4]; row 4 = unset
        self._branch_of = torch.tensor([[0, 1], [2, 3]])  # [a0, a1] -> branch
        self._last_payoff = torch.tensor([[1.0, 1.0], [1.0, 4.0]])  # branch 0, t = m-1

    def init_memory(self, num, generator, device):
        unset = 4 if self.initial_branch == "unset" else 0  # row 4 of _eye_branch = all zeros
        return torch.full((num,), unset, dtype=torch.long, device=device)  # [N]

    def observe(self, t, memory):
        return self._shared(torch.cat([self._eye_t[t], self._eye_branch[memory]], dim=-1))  # [N, m+5]

    def transition(self, t, memory, action):
        a0, a1 = action.unbind(-1)
        joint = self._branch_of[a0, a1]  # [N] branch id of the current joint action
        branch = torch.where(t == 0, joint, memory)
        follows = (joint == branch) & ((branch == 0) | (branch == 3))
        last_on_0 = (t == self.max_steps - 1) & (branch == 0)
        reward = torch.where(last_on_0, self._last_payoff[a0, a1], follows.float())
        # The horizon (t = m-1) terminates in the env; the game only adds the early exit.
        return branch, reward, ~follows & ~last_on_0


class MemoryGame(MatrixGame):
    """Cue/recall game for recurrent agents (this library; a cooperative T-maze-style memory task).

    At reset each env draws a cue c in {0, 1} uniformly. Observation at step t is
    ``[1, onehot(c) if t == 0 else (0, 0), onehot(t, delay+2)]`` (F = S = delay + 5), the same for
    every agent; the state equals that observation, so the cue is visible only at t=0 in the state
    too. The horizon is ``delay + 1`` steps; the reward is 0 until the last step (t = delay), where it
    is 1 if every agent's action equals c, else 0. Two actions.

    With ``delay >= 1`` a memoryless (feed-forward) policy cannot see the cue at the last step, so its
    expected return is at most 0.5; a recurrent policy that remembers the cue gets 1.0.
    """

    name = "memory"
    optimal_return = 1.0

    def __init__(self, delay: int = 2, n_agents: int = 2):
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ValueError(f"memory: delay must be an integer >= 0, got {delay!r}.")
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"memory: n_agents must be an integer >= 1, got {n_agents!r}.")
        self.delay = delay
        self.n_agents = n_agents
        self.n_actions = (2,) * n_agents
        self.max_steps = delay + 1
        self.obs_dim = self.state_dim = 3 + delay + 2
        self._eye_t = torch.eye(delay + 2)  # [delay+2, delay+2]
        self._eye_cue = torch.eye(2)  # [2, 2]; also the bounds-checked "action == cue" table

    def init_memory(self, num, generator, device):
        return torch.randint(0, 2, (num,), generator=generator, device=device)

    def observe(self, t, memory):
        n_env = t.shape[0]
        cue = self._eye_cue[memory] * (t == 0).unsqueeze(-1)  # [N, 2], zero after t=0
        ones = torch.ones(n_env, 1, device=t.device)
        return self._shared(torch.cat([ones, cue, self._eye_t[t]], dim=-1))  # [N, delay+5]

    def transition(self, t, memory, action):
        hit = self._eye_cue[action, memory.unsqueeze(-1)]  # [N, n] 1.0 where action == cue
        last = t == self.max_steps - 1
        reward = torch.where(last, hit.prod(-1), torch.zeros_like(hit[:, 0]))  # [N]
        return memory, reward, last


# --------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------


class MatrixGameEnv(EnvBase):
    """Vectorized TorchRL env running ``num_envs`` copies of a :class:`MatrixGame`.

    Args:
        game: the game (``OneStepGame(payoff)``, ``TwoStepGame()``, ``MStepGame(steps)``,
            ``MemoryGame(delay, n_agents)`` or your own :class:`MatrixGame`).
        num_envs: batch size; the env's ``batch_size`` is ``[num_envs]``.
        device: device of every tensor (specs, state, outputs, random generator).
        seed: seeds the env's own ``torch.Generator`` (reset randomness, e.g. the memory cue).

    Attributes:
        game, n_agents, n_actions (A = max_i A_i), agent_n_actions (A_i per agent), max_steps
        (horizon), optimal_return (float), payoff (payoff tensor of one-step games, else None),
        group ("agents").

    Partial resets follow TorchRL batched envs: ``_reset`` honours a root ``"_reset"`` mask
    [num_envs, 1] and leaves the other envs untouched. Stepping an env that is already done (without
    resetting it) keeps it done with reward 0.
    """

    group = GROUP

    def __init__(
        self,
        game: MatrixGame,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ):
        num_envs = int(num_envs)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        device = torch.device(device)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.game = game.to(device)
        self.num_envs = num_envs
        self.n_agents = game.n_agents
        self.agent_n_actions = tuple(game.n_actions)
        self.n_actions = game.max_actions
        self.max_steps = int(game.max_steps)
        self.optimal_return = float(game.optimal_return)
        self.payoff = None if game.payoff is None else game.payoff.to(device)
        mask = game.agent_action_mask
        self._agent_mask = None if mask is None else mask.to(device)  # [n, A] or None

        self._generator = torch.Generator(device=device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))

        self._make_specs()
        # Per-env game state: time step, game memory, done flag.
        self._t = torch.zeros(num_envs, dtype=torch.long, device=device)
        self._memory = self.game.init_memory(num_envs, self._generator, device)
        self._done = torch.zeros(num_envs, dtype=torch.bool, device=device)

    # ---------------------------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        n_env, n, a = self.num_envs, self.n_agents, self.n_actions
        dev = self.device
        action_mask = None
        if self._agent_mask is not None:
            action_mask = self._agent_mask.expand(n_env, n, a).clone()  # [N, n, A]
        agents_obs = {OBSERVATION: Unbounded(shape=(n_env, n, self.game.obs_dim), dtype=torch.float32, device=dev)}
        if action_mask is not None:
            agents_obs[ACTION_MASK] = Categorical(2, shape=(n_env, n, a), dtype=torch.bool, device=dev)
        self.observation_spec = Composite(
            {
                self.group: Composite(agents_obs, shape=(n_env, n), device=dev),
                STATE: Unbounded(shape=(n_env, self.game.state_dim), dtype=torch.float32, device=dev),
            },
            shape=(n_env,),
            device=dev,
        )
        # The static mask in the action spec makes rand_action (random policies) respect it.
        action = Categorical(a, shape=(n_env, n), dtype=torch.int64, device=dev, mask=action_mask)
        self.action_spec = Composite(
            {self.group: Composite({ACTION: action}, shape=(n_env, n), device=dev)},
            shape=(n_env,),
            device=dev,
        )
        self.reward_spec = Composite(
            {REWARD: Unbounded(shape=(n_env, 1), dtype=torch.float32, device=dev)}, shape=(n_env,), device=dev
        )
        self.done_spec = Composite(
            {
                key: Categorical(2, shape=(n_env, 1), dtype=torch.bool, device=dev)
                for key in (DONE, TERMINATED, TRUNCATED)
            },
            shape=(n_env,),
            device=dev,
        )

    # ---------------------------------------------------------------------------------- core
    def _output(self, done: torch.Tensor) -> TensorDict:
        """Observation/state/done TensorDict for the current per-env state (fresh tensors)."""
        n_env = self.num_envs
        obs, state = self.game.observe(self._t, self._memory)  # [N, n, F], [N, S]
        agents = {OBSERVATION: obs}
        if self._agent_mask is not None:
            agents[ACTION_MASK] = self._agent_mask.expand(n_env, self.n_agents, self.n_actions).clone()
        done = done.unsqueeze(-1)  # [N, 1]
        return TensorDict(
            {
                self.group: TensorDict(agents, batch_size=(n_env, self.n_agents), device=self.device),
                STATE: state,
                DONE: done,
                TERMINATED: done.clone(),
                TRUNCATED: torch.zeros_like(done),
            },
            batch_size=(n_env,),
            device=self.device,
        )

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        fresh = self.game.init_memory(self.num_envs, self._generator, self.device)  # [N]
        reset = None if tensordict is None else tensordict.get("_reset", None)
        if reset is None:
            self._t = torch.zeros_like(self._t)
            self._memory = fresh
            self._done = torch.zeros_like(self._done)
        else:
            mask = reset.reshape(self.num_envs, -1).any(-1).to(self.device)  # [N, 1] -> [N]
            self._t = torch.where(mask, 0, self._t)
            self._memory = torch.where(mask, fresh, self._memory)
            self._done = self._done & ~mask
        out = self._output(self._done)
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((self.group, ACTION))  # [N, n]
        t, memory, done = self._t, self._memory, self._done
        new_memory, reward, terminated = self.game.transition(t, memory, action)
        live = ~done
        next_t = torch.where(live, t + 1, t)
        self._memory = torch.where(live, new_memory, memory)
        self._t = next_t
        self._done = done | terminated | (next_t >= self.max_steps)
        out = self._output(self._done)
        reward = torch.where(live, reward.to(torch.float32), 0.0)  # [N]; done envs pay 0
        out.set(REWARD, reward.unsqueeze(-1))  # [N, 1]
        return out

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))

    def __repr__(self) -> str:
        return f"MatrixGameEnv(game={self.game!r}, num_envs={self.num_envs}, device={self.device})"


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

NAMED_PAYOFFS: dict[str, list[list[float]]] = {
    # Son et al., ICML 2019 (QTRAN); payoff as in the authors' code.
    "qtran": [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]],
    # Claus & Boutilier, AAAI 1998.
    "climbing": [[11, -30, 0], [-30, 7, 6], [0, 0, 5]],
    # Additive (1 + 4 a_1 + 4 a_2): VDN represents it exactly.
    "linear": [[1, 5], [5, 9]],
    # Monotonic, not additive: QMIX represents it, VDN does not.
    "monotonic": [[0, 0], [0, 10]],
}


def _penalty_payoff(k: float) -> list[list[float]]:
    """Penalty game of Claus & Boutilier, AAAI 1998: [[k, 0, 10], [0, 2, 0], [10, 0, k]]."""
    if isinstance(k, bool) or not isinstance(k, Real) or not math.isfinite(k):
        raise ValueError(f"penalty: k must be a finite number, got {k!r}.")
    return [[k, 0, 10], [0, 2, 0], [10, 0, k]]


def _custom(payoff=None) -> MatrixGame:
    if payoff is None:
        raise ValueError("matrix/custom needs payoff=..., a nested list or tensor of shape [A_1, ..., A_n].")
    return OneStepGame(payoff, name="custom")


# task name -> builder; a builder's keyword arguments are the task's kwargs.
_BUILDERS: dict[str, Callable[..., MatrixGame]] = {
    **{name: (lambda name=name: OneStepGame(NAMED_PAYOFFS[name], name=name)) for name in NAMED_PAYOFFS},
    "penalty": lambda k=-100: OneStepGame(_penalty_payoff(k), name="penalty"),
    "custom": _custom,
    "two-step": TwoStepGame,
    "m-step": lambda steps=10, initial_branch="zero": MStepGame(steps, initial_branch),
    "memory": lambda delay=2, n_agents=2: MemoryGame(delay, n_agents),
}
# Keyword arguments each task accepts (the default-bound ``name`` of the lambdas is internal).
_TASK_KWARGS: dict[str, tuple[str, ...]] = {
    task: tuple(p for p in inspect.signature(builder).parameters if p != "name")
    for task, builder in _BUILDERS.items()
}


def matrix_tasks() -> list[str]:
    """All ``matrix/<task>`` names."""
    return list(_BUILDERS)


@register_env_family(
    "matrix",
    examples=["qtran", "climbing", "penalty", "two-step", "m-step", "memory", "custom"],
    description=(
        "Vectorized cooperative matrix games: one-step payoff games (qtran, climbing, penalty[k], "
        "linear, monotonic, custom[payoff]), QMIX two-step, MAVEN m-step[steps], memory[delay, n_agents]."
    ),
    tasks=matrix_tasks,
    many_seeds=True,
)
def make_matrix_env(
    task: str,
    *,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    **kwargs,
) -> MatrixGameEnv:
    """Build ``matrix/<task>``; e.g. ``make_matrix_env("m-step", num_envs=64, steps=10)``.

    Task kwargs: ``penalty``: ``k`` (default -100); ``custom``: ``payoff`` (required);
    ``m-step``: ``steps`` (default 10), ``initial_branch`` (``"zero"``, the authors' t=0 encoding, or ``"unset"``); ``memory``: ``delay`` (default 2), ``n_agents`` (default 2).
    Other tasks take none; an unexpected kwarg raises ValueError naming it.
    """
    key = task.replace("_", "-") if isinstance(task, str) else task
    if key not in _BUILDERS:
        raise unknown_task_error("matrix", str(task), matrix_tasks())
    allowed = _TASK_KWARGS[key]
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        accepts = ", ".join(allowed) if allowed else "no keyword arguments"
        raise ValueError(f"matrix/{key} got unexpected keyword argument(s) {', '.join(bad)}; it accepts {accepts}.")
    game = _BUILDERS[key](**kwargs)
    return MatrixGameEnv(game, num_envs=num_envs, device=device, seed=seed)
