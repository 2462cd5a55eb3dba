"""What the env adapters that build their own outputs share (``gymma.py``, ``pettingzoo.py``, ``smax.py``).

* :class:`TrustedStepOutputs`: a mixin that skips EnvBase's per-step completion pass, for adapters whose
  ``_step`` already emits every reward and done entry with its spec's shape and dtype (also ``vmas.py``).
* :class:`TeamEnvBase`: batch size ``[num_envs]``, the team reward mode, the output tensordict packed
  without per-entry validation (the action spec's mask kept in sync), the out-of-range action error and
  ``repr``.
* :class:`SerialTeamEnv`: ``num_envs`` raw Python envs stepped in one serial loop that writes into fresh
  numpy arrays (``gymma.py``, ``pettingzoo.py``): their conversion to tensors, partial resets, the
  first reset held from construction, per-copy seeds and closing.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from torchrl_vd.envs.transforms import check_team_reward_mode
from torchrl_vd.keys import ACTION, ACTION_MASK, ALIVE, DONE, GROUP, OBSERVATION, REWARD, STATE, TERMINATED, TRUNCATED

__all__ = ["SerialTeamEnv", "TeamEnvBase", "TrustedStepOutputs"]

# TensorDict without per-entry validation: every entry is built with the right shape and device
# (``TensorDict(...)`` re-checks each tensor: ~45 us per step, a tenth of a raw MPE step).
_NEW_TD = getattr(TensorDict, "_new_unsafe", TensorDict)


class TrustedStepOutputs:
    """Mixin (before the ``EnvBase`` subclass): ``_step`` already emits every reward and done entry with its
    spec's shape and dtype, so EnvBase's per-step completion pass (reshape rewards, fill missing dones: ~40 us,
    7% of a raw MPE step) has nothing to do; it is kept when type checks are asked for."""

    def _step_proc_data(self, next_tensordict_out):
        if self.run_type_checks:
            return super()._step_proc_data(next_tensordict_out)
        return next_tensordict_out


class TeamEnvBase(TrustedStepOutputs, EnvBase):
    """Base of the adapters that write torchrl_vd's key layout themselves (batch size ``[num_envs]``).

    Subclasses set ``name``, ``n_agents``, ``n_actions`` and ``obs_dim``, and build their outputs with
    :meth:`_pack`.
    """

    name: str
    n_agents: int
    n_actions: int
    obs_dim: int

    def __init__(self, *, num_envs: int, device, team_reward: str):
        super().__init__(device=device, batch_size=torch.Size([int(num_envs)]), allow_done_after_reset=False)
        self.num_envs = int(num_envs)
        self.team_reward_mode = check_team_reward_mode(team_reward)

    def _pack(self, group: dict, out: dict, group_batch: torch.Size) -> TensorDictBase:
        """The output tensordict: the ``(GROUP, ·)`` entries ``group`` (batch ``group_batch`` = ``[N, n]``) and the
        root entries ``out``, every one already on ``self.device`` with its spec's shape. An ``"action_mask"``
        in ``group`` also goes to the action spec, so that ``rand_action()`` only draws legal actions."""
        dev = self.device
        out[GROUP] = _NEW_TD(group, batch_size=group_batch, device=dev)
        td = _NEW_TD(out, batch_size=self.batch_size, device=dev)
        mask = group.get(ACTION_MASK)
        if mask is not None:
            self.full_action_spec[GROUP, ACTION].update_mask(mask)
        return td

    def _action_range_error(self, a: np.ndarray, limit, agents: Sequence[str] | None = None) -> ValueError:
        """The error naming the first action of ``a [N, n]`` outside ``[0, limit)``; ``limit``: one count for
        every agent or an array ``[n]``, ``agents``: names to show instead of the agents' indices."""
        e, j = np.argwhere((a < 0) | (a >= limit))[0].tolist()
        agent = j if agents is None else repr(agents[j])
        hi = limit if np.ndim(limit) == 0 else limit[j]
        return ValueError(
            f"{self.name}: action {int(a[e, j])} of agent {agent} (env {e}) is out of its range [0, {hi})."
        )

    def _repr_fields(self) -> dict:
        """Adapter-specific ``repr`` fields, shown between ``obs_dim`` and ``device``."""
        return {}

    def __repr__(self) -> str:
        fields = {"env": self.name, "num_envs": self.num_envs, "n_agents": self.n_agents, "n_actions": self.n_actions,
                  "obs_dim": self.obs_dim, **self._repr_fields(), "device": self.device}
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in fields.items())})"


class SerialTeamEnv(TeamEnvBase):
    """``num_envs`` raw Python envs (``self._envs``) stepped in one serial loop that writes each step's outputs
    into fresh numpy arrays (``_new_buffers``), which become tensors with one ``torch.from_numpy`` each.

    Subclasses implement ``_raw_reset(i)`` (reset copy ``i`` with :meth:`_take_seed`) and ``_new_buffers()``
    (a dict with ``"obs"`` [N, n, F], ``"rew"`` [N, n, 1], ``"mask"`` [N, n, A] or None, ``"term"`` and
    ``"trunc"`` [N, 1], optionally ``"alive"`` [N, n], ``"state"`` [N, S] and ``"team"`` [N, 1]), and set
    ``has_action_mask`` and ``_group_batch`` (``[N, n]``).
    """

    has_action_mask: bool
    _group_batch: torch.Size
    _envs: list
    _initial: list | None = None  # the reset outputs held from construction (see _raw_resets)

    def _raw_reset(self, i: int):
        raise NotImplementedError  # abstract: each adapter resets its i-th raw env copy

    # ------------------------------------------------------------------ outputs
    def _state(self, views: dict) -> np.ndarray:
        """The root ``"state"`` [N, S] of one step's outputs (default: ``views["state"]``)."""
        return views["state"]

    def _team(self, views: dict) -> np.ndarray:
        """The team ``"reward"`` [N, 1] of one step's outputs (default: ``views["team"]``)."""
        return views["team"]

    def _to_tensordict(self, views: dict, with_reward: bool) -> TensorDictBase:
        dev = self.device
        to = torch.from_numpy
        if dev.type != "cpu":
            to = lambda x: torch.from_numpy(x).to(dev, non_blocking=True)  # noqa: E731
        group = {OBSERVATION: to(views["obs"])}
        if "alive" in views:
            group[ALIVE] = to(views["alive"])
        if self.has_action_mask:
            group[ACTION_MASK] = to(views["mask"])
        out = {
            STATE: to(self._state(views)),
            TERMINATED: to(views["term"]),
            TRUNCATED: to(views["trunc"]),
            DONE: to(views["term"] | views["trunc"]),
        }
        if with_reward:
            group[REWARD] = to(views["rew"])
            out[REWARD] = to(self._team(views))
        return self._pack(group, out, self._group_batch)

    # ------------------------------------------------------------------ resets and seeds
    def _copies_to_reset(self, tensordict: TensorDictBase | None) -> tuple[Sequence[int], np.ndarray | None]:
        """The copies a ``_reset`` call resets (all, or those of its ``"_reset"`` mask) and, when that is not all
        of them, a bool ``[N]`` of the others: TorchRL keeps their previous values (``_update_during_reset``), but
        what covers the whole batch (the action spec's mask) must be given their current values."""
        mask = None if tensordict is None else tensordict.get("_reset", None)
        reset_idx = range(self.num_envs) if mask is None else np.flatnonzero(mask.reshape(-1).cpu().numpy())
        if len(reset_idx) == self.num_envs:
            return reset_idx, None
        keep = np.ones(self.num_envs, dtype=bool)
        keep[reset_idx] = False
        return reset_idx, keep

    def _raw_resets(self, reset_idx: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """``(i, _raw_reset(i))`` for each copy in ``reset_idx``; the first call after construction (or a
        ``set_seed`` that resets) hands out the held outputs of that reset instead of resetting again."""
        initial, self._initial = self._initial, None
        for i in reset_idx:
            yield i, (initial[i] if initial is not None else self._raw_reset(i))

    def _seed_copies(self, seed: int | None) -> None:
        """Copy ``i`` is reset with ``seed + i`` at its next reset (``None``: the envs seed themselves)."""
        self._pending_seeds: list[int | None] = (
            [None] * self.num_envs if seed is None else [int(seed) + i for i in range(self.num_envs)]
        )

    def _take_seed(self, i: int) -> int | None:
        """Copy ``i``'s seed for its next reset (once: later resets continue its own random stream)."""
        seed, self._pending_seeds[i] = self._pending_seeds[i], None
        return seed

    def _close_copies(self) -> None:
        for env in getattr(self, "_envs", []):
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def close(self, *, raise_if_closed: bool = True):
        self._close_copies()
        return super().close(raise_if_closed=raise_if_closed)
