"""A masked reset for VMAS: reset some of the vectorized worlds with one batched ``reset()``.

VMAS resets one world (``reset_at(i)``, milliseconds each on CPU) or all of them (``reset()``), nothing in
between, and TorchRL's ``VmasEnv`` loops ``reset_at`` over the done worlds. :func:`batched_reset` resets the
worlds of a mask with one vectorized ``reset()``: it walks the VMAS environment, its scenario, world and
entities and every container or VMAS-defined helper object they hold, snapshots each tensor whose leading
dim is the number of worlds, resets all, and writes the snapshot back into the rows that were not to be
reset. A scenario whose full reset also changes state shared by all worlds cannot be reset this way; that
state is put back and reported, and the caller falls back to ``reset_at``. Separate from the adapter
(vmas.py): the object walk is generic reflection over VMAS's Python objects, not part of the key layout.
"""

from __future__ import annotations

import functools
import types

import numpy as np
import torch

_VMAS_BASES: tuple[type, ...] = ()
_NOT_WALKED = (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)
_FOREIGN_MODULES = ("builtins", "torch", "numpy", "pyglet", "gym", "gymnasium", "typing", "enum")


def _is_vmas_obj(obj) -> bool:
    """Objects whose ``__dict__`` may hold simulation state (walked by the batched reset).

    VMAS classes, and any plain Python object (scenario helpers such as road_traffic's
    ``Timer``/``StateBuffer`` are defined without a module name) that is not a class, module,
    function, or an object from torch/numpy/rendering libraries.
    """
    global _VMAS_BASES
    if not _VMAS_BASES:
        from vmas.simulator.core import TorchVectorizedObject
        from vmas.simulator.scenario import BaseScenario

        _VMAS_BASES = (TorchVectorizedObject, BaseScenario)
    if isinstance(obj, _VMAS_BASES):
        return True
    if isinstance(obj, _NOT_WALKED) or not hasattr(obj, "__dict__"):
        return False
    module = type(obj).__module__ or ""
    return not module.split(".", 1)[0] in _FOREIGN_MODULES


def batched_reset(vmas_env, mask: torch.Tensor, n_envs: int) -> list[str]:
    """Reset the worlds of ``vmas_env`` where ``mask`` [n_envs] is True with one vectorized ``reset()``.

    Every tensor reachable from ``vmas_env`` (:func:`_collect_state`) whose leading dim is ``n_envs`` is
    per-world state (including the step counter): it is snapshotted, and after ``reset()`` its rows outside
    ``mask`` get their old values back (in place, so aliases see them too). Everything else found on the walk
    (tensors without a batch dim, Python numbers, object references) is state shared by all worlds. If the
    full reset changed any of it (e.g. ``simple_reference`` re-draws its goal landmarks only on a full reset,
    ``road_traffic`` keeps a time-major state buffer), a batched reset is not what ``reset_at`` does: that
    state is put back as it was and its names (``Type.attribute``, at most 4) are returned, the worlds of
    ``mask`` being left for the caller to redo with ``reset_at``. Returns ``[]`` when the reset is done.
    """
    batched, shared, leaves = _collect_state(vmas_env, n_envs)
    memo: dict[int, torch.Tensor] = {}
    snap = []
    for holder, key, t in batched:
        old = memo.get(id(t))
        if old is None:
            old = memo[id(t)] = t.clone()
        snap.append((holder, key, t, old))
    shared_snap = [(holder, key, t, t.clone()) for holder, key, t in shared]

    vmas_env.reset(return_observations=False)

    changed = _restore_kept_rows(snap, ~mask)
    for holder, key, t, old in shared_snap:
        cur = _get(holder, key)
        if cur is t:
            if not torch.equal(t, old):
                changed.append((holder, key, t, old))
        elif not (isinstance(cur, torch.Tensor) and cur.shape == old.shape and cur.dtype == old.dtype and torch.equal(cur, old)):
            changed.append((holder, key, t, old))
    changed_leaves = [(h, k, v) for h, k, v in leaves if not _same_leaf(_get(h, k), v)]
    if not changed and not changed_leaves:
        return []
    # Not separable: restore the shared state as it was (the caller redoes the masked worlds with reset_at).
    for holder, key, t, old in changed:
        t.copy_(old) if t.shape == old.shape else None
        _set(holder, key, t)
    for holder, key, val in changed_leaves:
        _set(holder, key, val)
    return [f"{type(h).__name__}.{k}" for h, k, *_ in (changed + changed_leaves)[:4]]


def _restore_kept_rows(snap: list, keep: torch.Tensor) -> list:
    """Write the snapshot ``old`` of every per-world tensor back into its rows where ``keep`` [n_envs] is True.

    Returns the entries the reset replaced by something of another type, shape or dtype (not restorable
    row by row: shared state that changed)."""
    keep_views: dict[int, torch.Tensor] = {}  # keep mask shaped to broadcast over each rank
    changed = []
    for holder, key, t, old in snap:
        cur = _get(holder, key)
        if not isinstance(cur, torch.Tensor) or cur.shape != old.shape or cur.dtype != old.dtype:
            changed.append((holder, key, t, old))
            continue
        kv = keep_views.get(old.dim())
        if kv is None:
            kv = keep_views[old.dim()] = keep.view(-1, *([1] * (old.dim() - 1)))
        merged = torch.where(kv, old, cur)
        try:
            cur.copy_(merged)  # in place: aliases of this tensor see the restored rows too
        except RuntimeError:  # e.g. an expanded (non-writable) view: replace it
            _set(holder, key, merged)
    return changed


def _get(holder, key):
    return getattr(holder, key) if not isinstance(holder, (dict, list, tuple)) else holder[key]


def _set(holder, key, value) -> None:
    if isinstance(holder, tuple):
        return  # immutable: tensors inside were restored in place
    if isinstance(holder, (dict, list)):
        holder[key] = value
    else:
        object.__setattr__(holder, key, value)


def _same_leaf(cur, old) -> bool:
    if cur is old:
        return True
    if type(cur) is not type(old):
        return False
    if isinstance(old, (int, float, bool, str, bytes, complex)):
        return cur == old or (cur != cur and old != old)  # NaN == NaN here
    if isinstance(old, np.ndarray):
        return old.shape == cur.shape and bool(np.array_equal(old, cur, equal_nan=old.dtype.kind in "fc"))
    return False


def _collect_state(root, n_envs: int):
    """Everything reachable from ``root`` through VMAS objects' ``__dict__`` and plain containers.

    Returns ``(batched, shared, leaves)``, lists of ``(holder, key, value)``: tensors whose leading
    dim is ``n_envs``; other tensors; and every other value met (numbers, strings, references to
    objects and containers, compared by identity/value after a reset).
    """
    batched, shared, leaves = [], [], []
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, (list, tuple)):
            items = list(enumerate(obj))
        elif _is_vmas_obj(obj):
            items = list(vars(obj).items())
        else:
            continue
        for key, val in items:
            if isinstance(val, torch.Tensor):
                (batched if val.dim() >= 1 and val.shape[0] == n_envs else shared).append((obj, key, val))
                continue
            if isinstance(obj, dict) and not isinstance(key, (str, int)):
                continue
            leaves.append((obj, key, val))
            if isinstance(val, (dict, list, tuple)) or _is_vmas_obj(val):
                stack.append(val)
    return batched, shared, leaves


__all__ = ["batched_reset"]
