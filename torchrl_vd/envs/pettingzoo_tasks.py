"""PettingZoo task names: which PettingZoo / MPE2 module a ``make_env("pettingzoo/...")`` name means.

MPE tasks come from the ``mpe2`` package (MPE left PettingZoo): ``simple_spread_v3`` -> ``mpe2.simple_spread_v3``;
PettingZoo's own families by ``family/task`` (or ``family.task``, or the bare task name):
``classic/tictactoe_v3`` -> ``pettingzoo.classic.tictactoe_v3``, same for ``butterfly``, ``sisl`` and ``atari``. A
``":aec"`` suffix asks for the AEC API. Modules are found on disk without importing them, so listing the tasks
(:func:`pettingzoo_tasks`) and "did you mean" suggestions stay cheap, and tasks whose optional dependencies are
missing are named with what to install. Separate from the adapter (pettingzoo.py), which only steps the env a
resolved module builds.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from torchrl_vd.envs.registry import missing_dependency_error, unknown_task_error

__all__ = ["AEC_SUFFIX", "import_task_module", "pettingzoo_tasks", "resolve_task"]

_PZ_FAMILIES = ("butterfly", "classic", "sisl", "atari")
AEC_SUFFIX = ":aec"
"""A task-name suffix that asks for the env's turn-based AEC API (``module.env()``)."""


def _require_pettingzoo():
    if importlib.util.find_spec("pettingzoo") is None:
        raise missing_dependency_error("pettingzoo", "pettingzoo", "pettingzoo")


def _submodules(package: str) -> list[str]:
    """Names of ``package``'s ``*_vN`` env modules, found on disk without importing them."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    names = [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)]
    return sorted(n for n in names if n.rsplit("_v", 1)[-1].isdigit() and "_v" in n)


# Optional packages PettingZoo modules import (checked with find_spec: listing stays import-free).
_FAMILY_DEPS = {"atari": ("multi_agent_ale_py",), "butterfly": ("pygame",), "sisl": ("pygame",), "classic": ()}
_TASK_DEPS = {
    "pistonball_v6": ("pymunk",),
    "multiwalker_v9": ("Box2D",),
    "chess_v6": ("chess",),
    "hanabi_v5": ("hanabi_learning_environment",),
    "leduc_holdem_v4": ("rlcard",),
    "texas_holdem_v4": ("rlcard",),
    "texas_holdem_no_limit_v6": ("rlcard",),
}


def _all_task_names() -> list[str]:
    """Every task name on disk, installed or not (for "did you mean" suggestions)."""
    names = list(_submodules("mpe2")) if importlib.util.find_spec("mpe2") is not None else []
    if importlib.util.find_spec("pettingzoo") is not None:
        for fam in _PZ_FAMILIES:
            mods = _submodules(f"pettingzoo.{fam}")
            names += [f"{fam}/{m}" for m in mods] + mods
    return names


def _deps_installed(family: str, task: str) -> bool:
    deps = _FAMILY_DEPS.get(family, ()) + _TASK_DEPS.get(task, ())
    return all(importlib.util.find_spec(d) is not None for d in deps)


def pettingzoo_tasks() -> list[str]:
    """Installed tasks: MPE2 names (bare) and ``family/task`` for PettingZoo's own families.

    Tasks whose optional dependencies are missing (Atari ROMs, pymunk, Box2D, chess, rlcard, ...)
    are left out; asking for one gives an ImportError naming what to install.
    """
    tasks = list(_submodules("mpe2")) if importlib.util.find_spec("mpe2") is not None else []
    if importlib.util.find_spec("pettingzoo") is not None:
        for fam in _PZ_FAMILIES:
            tasks += [f"{fam}/{m}" for m in _submodules(f"pettingzoo.{fam}") if _deps_installed(fam, m)]
    return tasks


def resolve_task(task: str) -> tuple[str, str]:
    """``(module path, kind)`` for a task name; kind is ``"mpe"`` or a PettingZoo family."""
    _require_pettingzoo()
    name = task.replace(".", "/")
    if "/" in name:
        fam, mod = name.split("/", 1)
        if fam == "mpe":
            fam = "mpe2"
        if fam == "mpe2":
            return _resolve_mpe(mod, task)
        if fam in _PZ_FAMILIES and mod in _submodules(f"pettingzoo.{fam}"):
            return f"pettingzoo.{fam}.{mod}", fam
        raise unknown_task_error("pettingzoo", task, _all_task_names())
    mpe_names = _submodules("mpe2") if importlib.util.find_spec("mpe2") is not None else []
    if name in mpe_names:
        return f"mpe2.{name}", "mpe"
    for fam in _PZ_FAMILIES:
        if name in _submodules(f"pettingzoo.{fam}"):
            return f"pettingzoo.{fam}.{name}", fam
    if name.startswith("simple") and importlib.util.find_spec("mpe2") is None:
        raise missing_dependency_error("pettingzoo", "mpe2", "pettingzoo")
    raise unknown_task_error("pettingzoo", task, _all_task_names())


def _resolve_mpe(mod: str, task: str) -> tuple[str, str]:
    if importlib.util.find_spec("mpe2") is None:
        raise missing_dependency_error("pettingzoo", "mpe2", "pettingzoo")
    if mod not in _submodules("mpe2"):
        raise unknown_task_error("pettingzoo", task, _all_task_names())
    return f"mpe2.{mod}", "mpe"


def import_task_module(path: str, task: str, kind: str):
    """Import the module ``path`` of ``task`` (``kind`` from :func:`resolve_task`); an ImportError names what to
    install."""
    try:
        return importlib.import_module(path)
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        hint = "mpe2" if kind == "mpe" else f"pettingzoo[{kind}]"
        raise ImportError(
            f"The pettingzoo task {task!r} ({path}) could not be imported: missing {missing!r}. "
            f"Install it with: pip install '{hint}'"
        ) from err
