"""The published numbers a suite compares with: resolving an entry's reference spec, and the verdict.

A spec is None (nothing published), a constant ``{"value", "ci", ...}`` or a results file (suites.py's
docstring has the keys). Files named relatively are package data in ``torchrl_vd/reproduce/references/``
(read with :mod:`importlib.resources`, so an installed wheel resolves them as a source checkout does):

* ``benchmarl_vmas.csv``: BenchMARL 1.5.2 runs (Bettini et al., "BenchMARL: Benchmarking Multi-Agent
  Reinforcement Learning", JMLR 2024; github.com/facebookresearch/BenchMARL) of the ``vmas`` suite's config,
  one row per seed, written by ``benchmarks/benchmarl_reference.py``;
* ``jaxmarl_smax.csv``: JaxMARL's own QMIX (Rutherford et al., "JaxMARL", NeurIPS 2024 datasets and benchmarks
  track; github.com/FLAIROx/JaxMARL ``baselines/QLearning/qmix_rnn.py``) at the ``smax`` suite's budget, one
  row per seed, from the final tests of ``benchmarks/jaxmarl_qmix_reference.py``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from torchrl_vd.train.stats import t_interval

REFERENCES_FOLDER = "references"  # inside this package: the suites' reference files


def format_number(x: float | None) -> str:
    """4 significant digits, 'n/a' for None or nan (the tables' number format)."""
    return "n/a" if x is None or math.isnan(x) else f"{x:.4g}"


@dataclass(frozen=True)
class Reference:
    """A resolved reference: ``value ± ci`` (None when nothing is published or the file is pending)."""

    value: float | None
    ci: float
    ci_kind: str
    units: str
    source: str
    note: str = ""

    def cell(self) -> str:
        """The table's reference cell."""
        if self.value is None:
            return self.note or "—"
        return f"{format_number(self.value)} ± {format_number(self.ci)}"


NO_REFERENCE = Reference(None, math.nan, "", "", "", "none published")
"""The reference of an entry that has none (``"reference": None``): no value, shown as "none published"."""


def reference_file(name: str | Path):
    """The reference file ``name``: an absolute path as given, a relative one in the package's references
    folder (a ``Traversable``: a ``Path`` for an installed or source package)."""
    if Path(name).is_absolute():
        return Path(name)
    return resources.files(__package__).joinpath(REFERENCES_FOLDER, *Path(name).parts)


def resolve_reference(spec: dict | None, task: str, algo: str) -> Reference:
    """The entry's reference: none, a published constant, or rows of a results CSV/JSON file.

    From a file (:func:`reference_file`), the rows whose ``task``/``algo`` match (the spec's ``task``/``algo``
    keys if given, else the entry's) give ``value ± ci`` (one row with a ``ci`` column) or the mean ± 95%
    t-interval of ``value`` over the rows (one per seed). A missing file or row gives a pending reference; a
    spec's ``make`` (the command that writes a file run here rather than published) is named in it.
    """
    if spec is None:
        return NO_REFERENCE
    units, source = spec.get("units", ""), spec.get("source", "")
    if "file" not in spec:
        return Reference(float(spec["value"]), float(spec.get("ci", math.nan)), spec.get("ci_kind", ""), units, source)
    path = reference_file(spec["file"])
    if not path.is_file():
        how = f"; make it with: {spec['make']}" if spec.get("make") else ""
        return Reference(None, math.nan, "", units, source, f"pending ({spec['file']} missing{how})")
    want_task, want_algo = spec.get("task", task), spec.get("algo", algo)
    rows = [r for r in _read_records(path) if str(r.get("task")) == want_task and str(r.get("algo")) == want_algo]
    if not rows:
        return Reference(None, math.nan, "", units, source, f"pending (no {want_task}/{want_algo} row in {path.name})")
    if len(rows) == 1 and rows[0].get("ci") not in (None, ""):
        return Reference(float(rows[0]["value"]), float(rows[0]["ci"]), spec.get("ci_kind", "± from the file"),
                         units, source)
    mean, half = t_interval([float(r["value"]) for r in rows])
    return Reference(mean, half, spec.get("ci_kind", f"95% t-interval over {len(rows)} rows (seeds)"), units, source)


def _read_records(path) -> list[dict]:
    """A CSV file's rows or a JSON file's list of records (or ``{"rows": [...]}``) as dicts."""
    if path.name.lower().endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["rows"] if isinstance(data, dict) else data)
    with path.open("r", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def verdict(mean: float, ref: Reference) -> str:
    """``within`` / ``above`` / ``below`` the reference interval ``value ± ci`` (a nan ci counts as 0).

    Examples:
        >>> ref = Reference(-189.3, 3.2, "", "", "")
        >>> verdict(-190.0, ref), verdict(-180.0, ref), verdict(-200.0, ref), verdict(-190.0, NO_REFERENCE)
        ('within', 'above', 'below', 'no reference')
    """
    if ref.value is None:
        return "no reference"
    if math.isnan(mean):
        return "no runs"
    half = 0.0 if math.isnan(ref.ci) else ref.ci
    if mean > ref.value + half:
        return "above"
    if mean < ref.value - half:
        return "below"
    return "within"


__all__ = ["NO_REFERENCE", "REFERENCES_FOLDER", "Reference", "format_number", "reference_file", "resolve_reference",
           "verdict"]
