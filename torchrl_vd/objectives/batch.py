"""A training batch read out of a tensordict: the plain tensors every value-decomposition loss computes on.

:func:`read_train_batch` gathers the entries a loss needs (at the keys its ``_AcceptedKeys`` name) into a
:class:`Batch`: categorical actions from categorical or one-hot storage; the team reward and done flags from
per-agent ones where the data holds those (torchrl's multi-agent QMIX example averages per-agent rewards; pymarl's
episode buffer stores one team reward); the valid-step mask of padded sequence batches, with the burn-in steps that
only warm a recurrent agent's hidden state masked out (Kapturowski et al. 2019, R2D2); the stored hidden state
at each sequence start. :func:`validate_batch` then checks the actions against the agent net and the action
masks and refuses non-finite values, and :func:`read_eval_batch` reads the current step alone (the IGM check).
Separate from common.py, which holds the ``LossModule`` contract and the maths: reading and checking data is
the same for every loss, and the losses keep thin methods (``read_batch``, ``team_reward``, ...) that call here
with their keys and settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from torchrl_vd.keys import NEXT, REWARD


def _next(key: NestedKey) -> tuple:
    """``key`` read one step later: under ``"next"``."""
    return (NEXT, *key) if isinstance(key, tuple) else (NEXT, key)


@dataclass
class Batch:
    """The tensors a loss reads, validated. ``*B`` is the batch ([B] transitions or [B, T] sequences)."""

    obs: torch.Tensor  # [*B, n, F]
    next_obs: torch.Tensor  # [*B, n, F]
    action: torch.Tensor  # [*B, n] int64
    reward: torch.Tensor  # [*B, 1] team reward
    done: torch.Tensor  # [*B, 1] bool
    terminated: torch.Tensor  # [*B, 1] bool
    state: torch.Tensor | None  # [*B, *S]
    next_state: torch.Tensor | None  # [*B, *S]
    action_mask: torch.Tensor | None  # [*B, n, A] bool
    next_action_mask: torch.Tensor | None  # [*B, n, A] bool
    alive: torch.Tensor | None  # [*B, n] bool: dead/inactive agents contribute nothing
    next_alive: torch.Tensor | None  # [*B, n] bool
    valid: torch.Tensor  # [*B] bool: padding and burn-in steps are False
    weight: torch.Tensor | None  # [*B] priority (importance) weights
    hidden: torch.Tensor | None  # [B, n, H] stored hidden state at the first step of each sequence
    is_init: torch.Tensor | None  # [*B] bool: episode starts (recurrent agents reset there)
    td: TensorDictBase  # the input, for subclass-specific entries (e.g. MAVEN's z)


# ---------------------------------------------------------------------- team reward and flags
def _per_agent(x: torch.Tensor, bdims: int) -> torch.Tensor | None:
    """``x`` as ``[*B, n]`` when it holds one value per agent (``[*B, n, 1]`` or ``[*B, n>1]``), else None."""
    if x.ndim == bdims + 2 and x.shape[-1] == 1:
        return x.squeeze(-1)  # [*B, n, 1] -> [*B, n]
    if x.ndim == bdims + 1 and x.shape[-1] > 1:
        return x
    return None


def team_reward_of(reward: torch.Tensor, bdims: int, reduction: str | None, *, key: NestedKey,
                   loss_name: str) -> torch.Tensor:
    """The team reward r [*B, 1]: as given, or Σ_i r_i / (1/n) Σ_i r_i of per-agent rewards (``reduction``
    ``"sum"`` / ``"mean"``; ``None`` makes a per-agent reward an error naming the fixes). ``key`` is the reward
    key read under ``"next"`` and ``loss_name`` the loss's class name, both for the message."""
    per_agent = _per_agent(reward, bdims)
    if per_agent is None:
        return reward
    if reduction is None:
        raise ValueError(
            f"The reward at {_next(key)!r} is per agent {list(reward.shape)}; the losses "
            "learn from one team reward. Choose how it is formed: "
            f"{loss_name}(..., reward_reduction='mean') (torchrl's QMIX example averages) or 'sum', or put "
            "torchrl_vd.TeamReward('mean') on the env."
        )
    if reduction == "sum":
        return per_agent.sum(-1, keepdim=True)  # [*B, n] -> [*B, 1]
    return per_agent.mean(-1, keepdim=True)  # [*B, n] -> [*B, 1]


def team_flag_of(flag: torch.Tensor, bdims: int) -> torch.Tensor:
    """A done/terminated flag [*B, 1]: as given, or *all* of per-agent flags [*B, n, 1] (the team's episode
    ends when every agent's has; an agent that is done before the others only stops contributing)."""
    per_agent = _per_agent(flag, bdims)
    return flag if per_agent is None else per_agent.bool().all(-1, keepdim=True)  # [*B, n] -> [*B, 1]


# ---------------------------------------------------------------------- reading
def _check_required(td: TensorDictBase, k, group: str, loss_name: str) -> None:
    """A KeyError naming every missing entry (and, for a missing team reward next to per-agent ones, the fixes)."""
    required = {
        "observation": k.observation,
        "action": k.action,
        "next observation": _next(k.observation),
        "next reward": _next(k.reward),
        "next done": _next(k.done),
    }
    missing = [f"{name} {key!r}" for name, key in required.items() if td.get(key, None) is None]
    if not missing:
        return
    hint = ""
    if td.get(_next(k.reward), None) is None and td.get((NEXT, group, REWARD), None) is not None:
        hint = (
            f" The batch has per-agent rewards at {('next', group, 'reward')!r}: form the team reward "
            f"with torchrl_vd.TeamReward('mean' or 'sum') on the env (or replay buffer), or read them here: "
            f"loss.set_keys(reward=({group!r}, 'reward')) and reward_reduction='mean' or 'sum'."
        )
    raise KeyError(
        f"{loss_name} is missing entries {missing} in the batch. Collect data with a "
        "torchrl_vd env (make_env) or map your keys with loss.set_keys(...)/loss.use_group(...)." + hint
    )


def _categorical(action: torch.Tensor, obs: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Stored actions as categorical ``[*B, n]``, from ``[*B, n]``, ``[*B, n, 1]`` or one-hot ``[*B, n, A]``."""
    if action.ndim == obs.ndim and action.shape[-1] == 1:  # [*B, n, 1] -> [*B, n]
        action = action.squeeze(-1)
    if action.ndim == obs.ndim and action.shape[-1] == n_actions:
        action = action.argmax(-1)  # one-hot [*B, n, A] -> [*B, n]
    return action


def _valid_steps(td: TensorDictBase, k, burn_in: int, device: torch.device) -> torch.Tensor:
    """The steps the loss counts [*B] bool: the stored mask (all steps without one), burn-in steps excluded."""
    valid = td.get(k.mask, None)
    valid = torch.ones(td.batch_size, dtype=torch.bool, device=device) if valid is None else valid.bool()
    if valid.shape != td.batch_size:
        valid = valid.reshape(td.batch_size)
    if burn_in:
        if td.batch_dims < 2:
            raise ValueError(f"burn_in={burn_in} needs sequence batches [B, T]; got batch {list(td.batch_size)}.")
        valid = valid.clone()
        valid[..., :burn_in] = False  # burn-in steps only warm the hidden state
    return valid


def _sequence_start_hidden(td: TensorDictBase, key: NestedKey) -> torch.Tensor | None:
    """The stored hidden state ``[B, n, H]``: of each sequence's first step for sequence batches [B, T]."""
    hidden = td.get(key, None)
    if hidden is not None and td.batch_dims >= 2:
        hidden = hidden[:, 0]  # [B, T, n, H] -> [B, n, H]: stored state at each sequence start
    return hidden


def read_train_batch(td: TensorDictBase, k, *, n_actions: int, group: str, reward_reduction: str | None,
                     burn_in: int, loss_name: str) -> Batch:
    """Gather the entries a loss needs from ``td`` at the keys ``k`` (a loss's ``tensor_keys``) into a
    :class:`Batch`, with clear errors for missing entries and a reward that is not one team reward.

    ``n_actions`` reads one-hot actions; ``group`` and ``loss_name`` word the errors; ``reward_reduction``
    forms the team reward of per-agent rewards (:func:`team_reward_of`); the first ``burn_in`` steps of
    sequence batches are not valid. No value checks: see :func:`validate_batch`."""
    _check_required(td, k, group, loss_name)
    obs = td.get(k.observation)
    bdims = td.batch_dims
    action = _categorical(td.get(k.action), obs, n_actions)
    done = team_flag_of(td.get(_next(k.done)), bdims)
    terminated = td.get(_next(k.terminated), None)
    terminated = done if terminated is None else team_flag_of(terminated, bdims)
    valid = _valid_steps(td, k, burn_in, obs.device)
    batch = Batch(
        obs=obs,
        next_obs=td.get(_next(k.observation)),
        action=action.long(),
        reward=team_reward_of(td.get(_next(k.reward)), bdims, reward_reduction, key=k.reward, loss_name=loss_name),
        done=done.bool(),
        terminated=terminated.bool(),
        state=td.get(k.state, None),
        next_state=td.get(_next(k.state), None),
        action_mask=td.get(k.action_mask, None),
        next_action_mask=td.get(_next(k.action_mask), None),
        alive=td.get(k.alive, None),
        next_alive=td.get(_next(k.alive), None),
        valid=valid,
        weight=td.get(k.priority_weight, None),
        hidden=_sequence_start_hidden(td, k.rnn_hidden),
        is_init=td.get(k.is_init, None),
        td=td,
    )
    if batch.reward.shape != (*td.batch_size, 1):
        raise ValueError(
            f"Expected a team reward [*B, 1] at {_next(k.reward)!r}, got {list(batch.reward.shape)} for batch "
            f"{list(td.batch_size)}. Per-agent rewards [*B, n, 1] need reward_reduction='sum' or 'mean' (or TeamReward on the env)."
        )
    return batch


def read_eval_batch(td: TensorDictBase, k) -> Batch:
    """Like :func:`read_train_batch` but only the current-step entries are required (the IGM check reads the
    agents' utilities at the current step)."""
    obs = td.get(k.observation, None)
    if obs is None:
        raise KeyError(f"Missing {k.observation!r}: the IGM check needs the agents' observations.")
    return Batch(
        obs=obs, next_obs=obs, action=torch.zeros(obs.shape[:-1], dtype=torch.long, device=obs.device),
        reward=None, done=None, terminated=None, state=td.get(k.state, None), next_state=None,
        action_mask=td.get(k.action_mask, None), next_action_mask=None, alive=td.get(k.alive, None),
        next_alive=None, valid=torch.ones(td.batch_size, dtype=torch.bool, device=obs.device), weight=None,
        hidden=_sequence_start_hidden(td, k.rnn_hidden), is_init=td.get(k.is_init, None), td=td,
    )


# ---------------------------------------------------------------------- validation
def validate_batch(b: Batch, n_agents: int, n_actions: int) -> None:
    """Refuse a batch a loss must not train on: another number of agents than the agent net's, a stored action
    outside ``[0, n_actions)`` or illegal under its action mask (valid steps of live agents only), a non-finite
    reward, observation or state."""
    n, A = n_agents, n_actions
    if b.obs.shape[-2] != n:
        raise ValueError(
            f"The batch has {b.obs.shape[-2]} agents but the agent net was built for n_agents={n}."
        )
    active = b.valid.unsqueeze(-1)  # [*B, 1]
    if b.alive is not None:
        active = active & b.alive.bool()  # [*B, n]
    bad = ((b.action < 0) | (b.action >= A)) & active
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        raise ValueError(f"Stored action {b.action[tuple(idx)].item()} at index {idx} is outside [0, {A}).")
    if b.action_mask is not None:
        legal = b.action_mask.bool().gather(-1, b.action.clamp(0, A - 1).unsqueeze(-1)).squeeze(-1)  # [*B, n]
        bad = ~legal & active
        if bad.any():
            idx = bad.nonzero()[0].tolist()
            raise ValueError(
                f"Stored action {b.action[tuple(idx)].item()} at batch index {idx} is invalid under its "
                f"action mask ({int(bad.sum())} such entries). The collection policy must honour the mask: "
                "build it with make_agent_policies(..., action_mask=True)."
            )
    for name, x in (("reward", b.reward), ("observation", b.obs), ("next observation", b.next_obs),
                    ("state", b.state)):
        if x is not None and x.is_floating_point() and not torch.isfinite(x).all():
            idx = (~torch.isfinite(x)).nonzero()[0].tolist()
            raise ValueError(
                f"Non-finite {name} ({x[tuple(idx)].item()}) reached the loss at batch index {idx}: refusing "
                "to train on it. Check the environment step that produced it."
            )


__all__ = ["Batch", "read_eval_batch", "read_train_batch", "team_flag_of", "team_reward_of", "validate_batch"]
