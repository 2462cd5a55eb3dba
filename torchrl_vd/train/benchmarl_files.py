"""Reading a BenchMARL config from its yaml files, put together as BenchMARL's Hydra setup composes them.

Sources (``TrainConfig.from_benchmarl(*sources)``, ``torchrl-vd train --benchmarl SOURCE...``), in any order:

* a directory laid out as BenchMARL's ``conf/`` (``experiment/base_experiment.yaml``, ``algorithm/qmix.yaml``,
  ``task/vmas/balance.yaml``, ``model/layers/mlp.yaml``; a ``config.yaml`` there is read as the primary config);
* single files from such a layout: their place names their part (``algorithm/qmix.yaml`` is the algorithm qmix);
* a primary config such as BenchMARL's ``fine_tuned/vmas/conf/config.yaml``: its ``defaults`` list chooses the
  parts, its ``experiment:`` / ``algorithm:`` / ``task:`` / ``model:`` blocks overlay them, its ``seed`` is the run's random seed;
* a Hydra run directory (``outputs/<date>/<time>/`` of ``python benchmarl/run.py ...``), its ``.hydra/`` folder or
  its ``.hydra/config.yaml``: the composed config, with the choices from ``.hydra/hydra.yaml``;
* overrides as on BenchMARL's command line: ``algorithm=qmix``, ``task=vmas/balance``, ``model=layers/gru``,
  ``seed=1``, ``experiment.gamma=0.9``, ``task.n_agents=3``, ``model.num_cells=[64,64]`` (values read as YAML).

Composition (Hydra's, for BenchMARL's ``conf/config.yaml``): each part starts from its file
``<group>/<choice>.yaml``, found in the given directories, then the directories the given files sit in, then an
installed ``benchmarl`` package's ``conf/``; a file given directly is used as it is. The primary config's blocks
overlay the parts, and the command-line overrides come last. Defaults: ``experiment=base_experiment``,
``model=layers/mlp``, ``seed=0``; ``algorithm`` and ``task`` must be chosen. A part file's ``defaults`` list is
dropped, as BenchMARL's ``get_from_yaml`` does. Pure Python: PyYAML is imported when a file is read.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrl_vd.train.benchmarl_import import (EXPERIMENT_KEYS, BenchmarlConfig, BenchmarlImportError,
                                               BenchmarlImportWarning, benchmarl_fields)

GROUPS = ("experiment", "algorithm", "task", "model")
DEFAULT_CHOICES = {"experiment": "base_experiment", "model": "layers/mlp"}
"""BenchMARL's ``conf/config.yaml`` defaults list (``algorithm`` and ``task`` are ``???``: required)."""
PRIMARY_KEYS = (*GROUPS, "seed", "defaults", "hydra", "critic_model")
"""Top-level keys of a primary or composed config. ``critic_model`` is the critic of BenchMARL's actor-critic
algorithms (QMIX, VDN and IQL have none) and ``hydra`` holds Hydra's own settings: both are not read."""
SOURCES_HELP = ("BenchMARL's conf directory, its yaml files, a fine-tuned config.yaml, a Hydra run directory, "
                "and key=value overrides such as algorithm=qmix task=vmas/balance experiment.gamma=0.9")


@dataclass
class _Parts:
    """What the sources gave, before composition."""

    search: list[Path] = field(default_factory=list)
    files: dict[str, tuple[str, Path]] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    cli_choices: dict[str, str] = field(default_factory=dict)
    overlays: dict[str, dict] = field(default_factory=lambda: {g: {} for g in GROUPS})
    overrides: list[tuple[list[str], Any]] = field(default_factory=list)
    seed: Any = None
    cli_seed: Any = None


def import_benchmarl(*sources: str | os.PathLike) -> dict[str, Any]:
    """The ``TrainConfig`` fields of the BenchMARL run that ``sources`` describe (:func:`read_benchmarl`, then the
    translation of train/benchmarl_import.py). Each warning is issued as a :class:`BenchmarlImportWarning`."""
    fields, notes = benchmarl_fields(read_benchmarl(*sources))
    for note in notes:
        warnings.warn(note, BenchmarlImportWarning, stacklevel=3)
    return fields


def read_benchmarl(*sources: str | os.PathLike) -> BenchmarlConfig:
    """The BenchMARL run that ``sources`` describe (see the module docstring), its parts composed as Hydra does."""
    if not sources:
        raise BenchmarlImportError([f"no sources: give {SOURCES_HELP}"])
    parts = _Parts()
    for source in sources:
        _add(parts, source)
    return _compose(parts)


def _add(parts: _Parts, source: str | os.PathLike) -> None:
    text = os.fspath(source)
    path = Path(text)
    if not path.exists():
        if "=" in text:
            return _add_override(parts, text)
        raise FileNotFoundError(f"BenchMARL source {text!r} does not exist; give {SOURCES_HELP}.")
    if path.is_dir():
        hydra_dir = path if path.name == ".hydra" else path / ".hydra"
        if (hydra_dir / "config.yaml").is_file():
            return _add_hydra_output(parts, hydra_dir)
        if not (any((path / g).is_dir() for g in GROUPS) or (path / "config.yaml").is_file()):
            raise BenchmarlImportError([f"{path} is neither a BenchMARL conf directory (with experiment/, algorithm/, "
                                        "task/, model/ or a config.yaml) nor a Hydra run directory (with "
                                        ".hydra/config.yaml)"])
        parts.search.append(path)
        if (path / "config.yaml").is_file():
            _add_primary(parts, path / "config.yaml", load_yaml(path / "config.yaml"))
        return None
    if path.name == "config.yaml" and path.parent.name == ".hydra":
        return _add_hydra_output(parts, path.parent)
    data = load_yaml(path)
    if _is_primary(data):
        parts.search.append(path.parent)
        return _add_primary(parts, path, data)
    group, choice, root = _place(path, data)
    if group in parts.files:
        raise BenchmarlImportError([f"two {group} files: {parts.files[group][1]} and {path}; give one"])
    parts.files[group] = (choice, path)
    if root is not None:
        parts.search.append(root)
    return None


def _is_primary(data: dict) -> bool:
    """A primary or composed config: group blocks (``experiment:``...) or a defaults list that chooses groups."""
    chooses = any(isinstance(d, dict) and set(d) & set(GROUPS) for d in data.get("defaults") or [])
    return chooses or any(isinstance(data.get(g), dict) for g in GROUPS)


def _place(path: Path, data: dict) -> tuple[str, str, Path | None]:
    """``(group, choice, conf root)`` of a part file: from its place in a conf/ layout (``.../task/vmas/balance.yaml``
    is the task ``vmas/balance``), else from its keys (experiment keys, or a model's ``name``)."""
    names = path.parts
    for i in range(len(names) - 2, -1, -1):
        if names[i] in GROUPS:
            return names[i], "/".join(names[i + 1:])[: -len(path.suffix) or None], Path(*names[:i])
    keys = set(data) - {"defaults"}
    if keys and keys <= set(EXPERIMENT_KEYS):
        return "experiment", path.stem, None
    if "name" in keys:
        return "model", path.stem, None
    raise BenchmarlImportError([f"cannot tell which part of a BenchMARL config {path} is: place it as BenchMARL's "
                                "conf/ does (algorithm/NAME.yaml, task/ENV/NAME.yaml, experiment/NAME.yaml, "
                                "model/layers/NAME.yaml): the algorithm's and the task's names come from there"])


def _add_primary(parts: _Parts, path: Path, data: dict) -> None:
    unknown = [k for k in data if k not in PRIMARY_KEYS]
    if unknown:
        close = {k: difflib.get_close_matches(k, PRIMARY_KEYS, n=2) for k in unknown}
        hints = ", ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for k, c in close.items())
        raise BenchmarlImportError([f"{path}: unknown top-level key(s) {hints}; a BenchMARL config has "
                                    f"{', '.join(PRIMARY_KEYS)}"])
    for entry in data.get("defaults") or []:
        for group, choice in (entry.items() if isinstance(entry, dict) else ()):
            if group in GROUPS and choice not in (None, "???"):
                parts.choices[group] = str(choice)
    for group in GROUPS:
        block = data.get(group)
        if block is not None and not isinstance(block, dict):
            raise BenchmarlImportError([f"{path}: {group!r} must be a mapping of keys, got {block!r}"])
        parts.overlays[group] = merge(parts.overlays[group], block or {})
    if "seed" in data:
        parts.seed = data["seed"]


def _add_hydra_output(parts: _Parts, hydra_dir: Path) -> None:
    """A Hydra run's ``.hydra/``: the composed ``config.yaml``; the group choices from ``hydra.yaml``'s
    ``hydra.runtime.choices`` (``config.yaml`` does not name the algorithm or the task)."""
    _add_primary(parts, hydra_dir / "config.yaml", load_yaml(hydra_dir / "config.yaml"))
    if (hydra_dir / "hydra.yaml").is_file():
        runtime = (load_yaml(hydra_dir / "hydra.yaml").get("hydra") or {}).get("runtime") or {}
        for group, choice in (runtime.get("choices") or {}).items():
            if group in GROUPS and choice is not None:
                parts.choices[group] = str(choice)


def _add_override(parts: _Parts, text: str) -> None:
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    top = key.split(".")[0]
    if key in GROUPS or key == "seed":
        if "," in raw:
            raise BenchmarlImportError([f"{text!r}: one run per import (BenchMARL's -m sweeps list choices); for many "
                                        "seeds in one process use --seeds 0-2 (TrainConfig.seeds)"])
        if key == "seed":
            parts.cli_seed = _yaml_value(raw)
        else:
            parts.cli_choices[key] = raw
    elif top in GROUPS or top == "critic_model":
        if "." not in key:
            raise BenchmarlImportError([f"{text!r}: give {top}=CHOICE or {top}.KEY=VALUE"])
        parts.overrides.append((key.split("."), _yaml_value(raw)))
    else:
        close = difflib.get_close_matches(top, [*GROUPS, "seed"], n=2)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BenchmarlImportError([f"override {text!r}: {top!r} is not a BenchMARL config group{hint}; overrides are "
                                    "GROUP=CHOICE (algorithm, task, model, experiment), GROUP.KEY=VALUE or seed=N"])


def _compose(parts: _Parts) -> BenchmarlConfig:
    choices = {**DEFAULT_CHOICES, **parts.choices, **parts.cli_choices}
    for group, (choice, path) in parts.files.items():
        if parts.cli_choices.get(group, choice) != choice:
            raise BenchmarlImportError([f"{group}={parts.cli_choices[group]} and the file {path} ({group} {choice}) "
                                        "disagree; give one"])
        choices[group] = choice
    missing = [g for g in ("algorithm", "task") if g not in choices]
    if missing:
        add = " ".join(f"{g}=NAME" for g in missing)
        raise BenchmarlImportError([f"no {' and no '.join(missing)} chosen: add {add} as on BenchMARL's command "
                                    "line (e.g. algorithm=qmix task=vmas/balance), or give the files"])
    sections, search = {}, [*parts.search, *installed_conf()]
    for group in GROUPS:
        base = _part_file(parts, group, choices[group], search)
        if base is None and not parts.overlays[group]:
            where = ", ".join(map(str, search)) or "(no directory given, no benchmarl package installed)"
            raise BenchmarlImportError([f"no {group}/{choices[group]}.yaml in {where}: give BenchMARL's conf directory "
                                        "(the benchmarl/conf folder of `pip download benchmarl==1.5.2 --no-deps`) or "
                                        "the file"])
        sections[group] = merge(base or {}, parts.overlays[group])
    for path, value in parts.overrides:
        if path[0] != "critic_model":
            sections[path[0]] = _set(sections[path[0]], path[1:], value)
    seed = next((s for s in (parts.cli_seed, parts.seed) if s is not None), 0)
    return BenchmarlConfig(experiment=sections["experiment"], algorithm=choices["algorithm"],
                           algorithm_config=sections["algorithm"], task=choices["task"], task_config=sections["task"],
                           model_config=sections["model"], seed=int(seed))


def _part_file(parts: _Parts, group: str, choice: str, search: list[Path]) -> dict | None:
    """The part's own file (given, or ``<dir>/<group>/<choice>.yaml`` in ``search``) without its defaults list."""
    if group in parts.files:
        path = parts.files[group][1]
    else:
        path = next((d / group / f"{choice}.yaml" for d in search if (d / group / f"{choice}.yaml").is_file()), None)
    if path is None:
        return None
    return {k: v for k, v in load_yaml(path).items() if k != "defaults"}


def installed_conf() -> list[Path]:
    """An installed ``benchmarl`` package's ``conf/`` directory (located without importing the package)."""
    try:
        spec = importlib.util.find_spec("benchmarl")
    except (ImportError, ValueError):
        return []
    locations = list(spec.submodule_search_locations or []) if spec else []
    return [Path(loc) / "conf" for loc in locations if (Path(loc) / "conf").is_dir()]


def _yaml():
    try:
        import yaml
    except ImportError as err:
        raise ImportError("Reading BenchMARL's yaml files needs PyYAML: pip install 'torchrl-vd[benchmarl]' "
                          "(or pip install pyyaml).") from err
    return yaml


def load_yaml(path: Path) -> dict:
    """A yaml file as a dict (PyYAML's ``safe_load``, as BenchMARL reads its files)."""
    with open(path) as f:
        data = _yaml().safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchmarlImportError([f"{path}: a BenchMARL config file is a mapping of keys, got {type(data).__name__}"])
    return data


def _yaml_value(raw: str) -> Any:
    """An override's value read as YAML (``[64,64]``, ``null``, ``true``, ``0.9``), as Hydra reads it."""
    return _yaml().safe_load(raw) if raw else None


def merge(base: dict, over: dict) -> dict:
    """``over`` on ``base``: mappings merge key by key (as Hydra merges configs), other values replace."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set(d: dict, path: list[str], value: Any) -> dict:
    out = dict(d)
    out[path[0]] = value if len(path) == 1 else _set(out.get(path[0]) or {}, path[1:], value)
    return out


__all__ = ["DEFAULT_CHOICES", "GROUPS", "import_benchmarl", "installed_conf", "load_yaml", "merge", "read_benchmarl"]
