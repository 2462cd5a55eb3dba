"""A suite ready to run: its entries (:class:`Entry`), its runs (:class:`RunSpec`) and where they live.

:func:`load_suite` checks a suite of ``suites.SUITES`` and applies the command line's selections (``--quick``,
``--seeds``, ``--frames``, ``--tasks``, ``--algos``); :func:`suite_runs` gives every run its directory
``OUT/<suite>/<task>/<algo>/seed<k>/`` and its complete ``TrainConfig``.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchrl_vd.reproduce import suites as suite_data
from torchrl_vd.reproduce.metrics import METRICS, Metric

if TYPE_CHECKING:
    from torchrl_vd import TrainConfig

ENTRY_KEYS = {"task", "algo", "overrides", "seeds", "frames", "scale", "reference"}
"""The keys of a suite entry (``scale`` and ``reference`` may be left out)."""
CURVE_AXES = {"frames": "frames", "wall_s": "training wall-clock (s)"}
"""The x axes a suite's ``"curves"`` may name, with their axis labels."""


@dataclass(frozen=True)
class Entry:
    """One (task, algo) of a suite: its config overrides, seeds, frames, unit scale and reference spec."""

    task: str
    algo: str
    overrides: dict
    seeds: tuple[int, ...]
    frames: int
    scale: float
    reference: dict | None


@dataclass(frozen=True)
class Suite:
    """A suite ready to run: ``name`` is its directory under OUT (``<suite>-quick`` for ``--quick``)."""

    name: str
    description: str
    metric: Metric
    entries: tuple[Entry, ...]
    curves: tuple[str, ...] = ()
    """The x axes of greedy-evaluation curves (``"frames"``, ``"wall_s"``): the suite's ``"curves"``; empty: the
    ε-greedy training return against frames."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: the entry, its seed, its run directory and its complete ``TrainConfig``."""

    entry: Entry
    seed: int
    run_dir: Path
    config: TrainConfig

    @property
    def label(self) -> str:
        return f"{self.entry.task} {self.entry.algo} seed{self.seed}"


def slug(name: str) -> str:
    """A path component for a task/algo name: '/', spaces and other unsafe characters become '_'.

    Examples:
        >>> slug("vmas/balance"), slug("lbf/Foraging-8x8-2p-2f-coop-v3")
        ('vmas_balance', 'lbf_Foraging-8x8-2p-2f-coop-v3')
    """
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "_"


def _raw_suite(name: str) -> dict:
    """A deep copy of ``suites.SUITES[name]``; an unknown suite or metric is an error naming the valid ones."""
    known = suite_data.SUITES
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown suite {name!r}.{hint} Suites: {', '.join(sorted(known))}.")
    raw = copy.deepcopy(known[name])
    if raw["metric"] not in METRICS:
        raise ValueError(f"Suite {name!r}: unknown metric {raw['metric']!r}; metrics: {', '.join(sorted(METRICS))}.")
    return raw


def _entry(name: str, i: int, e: dict, shrink: dict | None, seeds: list[int] | None, frames: int | None) -> Entry:
    """Entry ``i`` of suite ``name``, shrunk to its ``--quick`` version by ``shrink`` and with the command
    line's ``seeds`` and ``frames`` in place of its own (when given)."""
    missing, unknown = ENTRY_KEYS - set(e) - {"scale", "reference"}, set(e) - ENTRY_KEYS
    if missing or unknown:
        raise ValueError(f"Suite {name!r} entry {i}: missing keys {sorted(missing)}, unknown keys "
                         f"{sorted(unknown)}; an entry has {sorted(ENTRY_KEYS)}.")
    overrides, entry_frames, entry_seeds = dict(e["overrides"]), int(e["frames"]), e["seeds"]
    if shrink:
        overrides.update(shrink.get("overrides", {}))
        entry_frames, entry_seeds = int(shrink["frames"]), shrink["seeds"]
    return Entry(e["task"], e["algo"], overrides, tuple(int(s) for s in (seeds or entry_seeds)),
                 int(frames) if frames is not None else entry_frames, float(e.get("scale", 1.0)), e.get("reference"))


def load_suite(name: str, quick: bool = False, seeds: list[int] | None = None,
               tasks: list[str] | None = None, algos: list[str] | None = None, frames: int | None = None) -> Suite:
    """The named suite from ``suites.SUITES``, as its ``--quick`` version and/or with ``seeds``
    replacing every entry's seeds and ``frames`` every entry's frame budget (a shorter study than the
    reference's: the results table prints each entry's frames), and only the entries whose task is in ``tasks``
    and whose algorithm is in ``algos`` (None: all); an unknown suite, task or algorithm is an error naming the
    valid ones."""
    if frames is not None and int(frames) < 1:
        raise ValueError(f"frames must be >= 1 (got {frames}).")
    raw = _raw_suite(name)
    shrink = raw.get("quick") if quick else None
    entries = [_entry(name, i, e, shrink, seeds, frames) for i, e in enumerate(raw["entries"])]
    for label, wanted, have in (("task", tasks, [e.task for e in entries]), ("algo", algos, [e.algo for e in entries])):
        unknown = sorted(set(wanted or ()) - set(have))
        if unknown:
            raise ValueError(f"Suite {name!r} has no {label} {', '.join(map(repr, unknown))}; its {label}s: "
                             f"{', '.join(dict.fromkeys(have))}.")
    entries = [e for e in entries if (not tasks or e.task in tasks) and (not algos or e.algo in algos)]
    dirs = [(slug(e.task), slug(e.algo)) for e in entries]
    if len(set(dirs)) != len(dirs):
        raise ValueError(f"Suite {name!r}: two entries share a run directory {dirs}; (task, algo) must be unique.")
    curves = tuple(raw.get("curves") or ())
    bad = sorted(set(curves) - set(CURVE_AXES))
    if bad:
        raise ValueError(f"Suite {name!r}: unknown curve axes {bad}; choose from {list(CURVE_AXES)}.")
    return Suite(f"{name}-quick" if shrink else name, raw["description"], METRICS[raw["metric"]], tuple(entries),
                 curves)


def suite_runs(suite: Suite, out: Path) -> list[RunSpec]:
    """Every run of ``suite`` with its directory ``out/<suite>/<task>/<algo>/seed<k>`` and its config:
    the entry's algorithm, task and overrides (the presets fill the rest, as ``TrainConfig(...)`` does), then
    seed/frames/out_dir (one torch thread, quiet)."""
    import torchrl_vd as vd

    runs = []
    for e in suite.entries:
        base = vd.TrainConfig().with_overrides({"algo": e.algo, "env": e.task, **e.overrides,
                                                 "frames": e.frames})  # valid at its budget
        for seed in e.seeds:
            run_dir = (Path(out) / suite.name / slug(e.task) / slug(e.algo) / f"seed{seed}").resolve()
            cfg = base.with_overrides({"env": e.task, "seed": seed, "frames": e.frames, "out_dir": str(run_dir),
                                       "progress": False, "threads": 1})
            runs.append(RunSpec(e, seed, run_dir, cfg))
    return runs


__all__ = ["CURVE_AXES", "ENTRY_KEYS", "Entry", "RunSpec", "Suite", "load_suite", "slug", "suite_runs"]
