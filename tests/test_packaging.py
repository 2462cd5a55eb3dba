"""The package as a user installs it: a wheel built from this checkout, installed into a folder of its own.

The reproduction suites' reference files are package data (torchrl_vd/reproduce/references/): the wheel must
carry them, and the installed copy (not this checkout, not the editable install) must resolve every reference
of the ``vmas`` and ``smax`` suites from them, as ``python -m torchrl_vd.reproduce SUITE --dry-run`` prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("setuptools")
pytest.importorskip("wheel")
pytest.importorskip("scipy")  # a file reference's t-interval (the reproduce extra)

from torchrl_vd import reproduce as rp  # noqa: E402
from torchrl_vd.reproduce import suites  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "torchrl_vd")  # what the wheel is built from


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """``(wheel, site)``: the wheel built from a copy of the sources (building in the checkout would leave
    build/ and *.egg-info there) and the folder it is installed into, which a Python started with
    ``PYTHONPATH=site`` imports torchrl_vd from (ahead of the editable install)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("torchrl_vd-*.whl")
    site = tmp / "site"
    _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel), cwd=tmp)
    where = _run_installed(site, tmp, "-c", "import torchrl_vd; print(torchrl_vd.__file__)").strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), f"{where} shadows the installed copy"
    return wheel, site


def _file_references(made_here: bool = False) -> dict[str, set[str]]:
    """suite -> the reference files its entries name relatively (files of the package's references folder): the
    published ones, or with ``made_here`` those a script of ours writes (the spec's ``make``)."""
    return {name: {e["reference"]["file"] for e in suite["entries"]
                   if e.get("reference") and "file" in e["reference"] and not Path(e["reference"]["file"]).is_absolute()
                   and bool(e["reference"].get("make")) == made_here}
            for name, suite in suites.SUITES.items()}


def test_the_wheel_carries_the_reference_files(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    csvs = {n for n in names if n.startswith("torchrl_vd/reproduce/references/") and n.endswith(".csv")}
    assert {f"torchrl_vd/reproduce/references/{f}" for files in _file_references().values() for f in files} <= csvs
    made = {f"torchrl_vd/reproduce/references/{f}" for files in _file_references(True).values() for f in files}
    source = {f"torchrl_vd/reproduce/references/{p.name}" for p in (ROOT / "torchrl_vd/reproduce/references").glob("*.csv")}
    assert made & source <= csvs  # a file made here travels once it is committed
    assert {"torchrl_vd/reproduce/references/benchmarl_vmas.csv",
            "torchrl_vd/reproduce/references/jaxmarl_smax.csv", "torchrl_vd/reproduce/__main__.py"} <= names


def _run_installed(site: Path, cwd: Path, *args: str) -> str:
    """``python *args`` from ``cwd`` with only the installed copy of torchrl_vd importable ahead of the rest."""
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("name, source", [("vmas", "BenchMARL"), ("smax", "JaxMARL")])
def test_installed_copy_resolves_the_references(installed, tmp_path, name, source):
    _, site = installed  # imported from there, not from this checkout (the fixture checks)
    assert _file_references()[name], f"the {name} suite names no reference file"
    out = tmp_path / "out"
    text = _run_installed(site, tmp_path, "-m", "torchrl_vd.reproduce", name, "--dry-run", "--out", str(out))
    assert "pending" not in text and source in text and not out.exists()
    for e in rp.load_suite(name).entries:  # the same numbers as this checkout's files give
        ref = rp.resolve_reference(e.reference, e.task, e.algo)
        assert ref.value is not None
        assert f"{e.task} {e.algo}: seeds" in text and f"reference: {ref.cell()} ({ref.ci_kind})" in text
