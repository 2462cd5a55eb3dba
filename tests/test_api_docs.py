"""The documentation site (docs/conf.py): it builds with warnings as errors, covers every public name, shows
every guide page of docs/ and the docstrings' examples. Runs where the ``docs`` extra is installed
(``pip install -e ".[docs]"``, as .ci/setup does); one build, about 20 s on 2 cores."""

from __future__ import annotations

import html
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

# Found, not imported: pyglet (VMAS's renderer) takes any process with ``sphinx`` in sys.modules for its own docs
# build and renders nothing there, so the build and the inventory stay out of the test process.
for _name in ("sphinx", "myst_parser"):
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_name} is not installed (pip install -e '.[docs]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REQUIRED = ("torchrl_vd", "torchrl_vd.train", "torchrl_vd.envs", "torchrl_vd.reproduce")
"""Packages whose whole ``__all__`` the site must document (docs/_ext/api_pages.py may list more)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once, as the README says (``-W``: any warning fails), serially."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-j1", "-q",
                           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.strip() == ""
    return out / "html"


def _packages() -> tuple[str, ...]:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("api_pages").PACKAGES
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def _inventory(site: Path) -> set[str]:
    """The names in Sphinx's ``objects.inv`` (version 2: four header lines, then zlib-compressed lines
    ``name domain:role priority uri display-name``), read without importing Sphinx."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    assert raw.startswith(b"# Sphinx inventory version 2")
    lines = zlib.decompress(raw[header_end:]).decode().splitlines()
    return {re.match(r"(.+?)\s+\S+:\S+\s+-?\d+\s", line).group(1) for line in lines if line.strip()}


def _text(page: Path) -> str:
    """A page's visible text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_every_public_name_is_documented(site):
    packages = _packages()
    assert set(REQUIRED) <= set(packages)
    names = _inventory(site)
    missing = [f"{p}.{n}" for p in packages for n in importlib.import_module(p).__all__ if f"{p}.{n}" not in names]
    assert missing == []
    assert {"torchrl_vd.TrainConfig.frames", "torchrl_vd.MixingQLoss"} <= names  # fields and classes, by name


def test_every_guide_page_is_on_the_site(site):
    guides = sorted(p.stem for p in DOCS.glob("*.md"))
    assert "CONTRACT" in guides and "TRAINING" in guides
    assert [g for g in guides if not (site / f"{g}.html").is_file()] == []
    results = sorted(DOCS.glob("results/*/*.md"))
    assert results and all((site / p.relative_to(DOCS).with_suffix(".html")).is_file() for p in results)


def test_docstring_examples_are_shown(site):
    """Every documented public object whose docstring has ``>>>`` examples shows its first example line."""
    first: dict[int, str] = {}
    shown, missing = 0, []
    for package in _packages():
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in first:
                continue
            first[id(obj)] = package
            example = next((line.strip() for line in (inspect.getdoc(obj) or "").splitlines()
                            if line.strip().startswith(">>>")), None)
            if example is None or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            shown += 1
            if example not in _text(site / "api" / f"{package}.html"):
                missing.append(f"{package}.{name}: {example}")
    assert shown >= 10 and missing == []


def test_the_test_process_has_not_imported_sphinx(site):
    """pyglet, imported after Sphinx in one process, renders nothing (test_train's GIF would fail)."""
    assert "sphinx" not in sys.modules
