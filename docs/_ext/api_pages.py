"""Sphinx extension: one API page per public package, written from the package's ``__all__`` at build time.

Each name of ``PACKAGES``' ``__all__`` gets an autodoc entry on its package's page (``api/<package>.rst``), so a
name added to an ``__all__`` is on the site without editing a page. An object that an earlier page already
documents (``torchrl_vd.TrainConfig`` is ``torchrl_vd.train.TrainConfig``) is documented once, and the later
page links to it. The pages are generated into ``docs/api/`` (not tracked by git) before Sphinx reads sources.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

PACKAGES = ("torchrl_vd", "torchrl_vd.envs", "torchrl_vd.objectives", "torchrl_vd.train", "torchrl_vd.reproduce",
            "torchrl_vd.export")
"""The public packages, in the order of their pages; each page opens with the package's docstring."""


def _attribute_doc(obj, name: str) -> list[str]:
    """The docstring under ``name = ...`` in the torchrl_vd module that defines the constant ``obj`` (a constant
    has no ``__doc__`` of its own: autodoc would show its type's); an error when there is none."""
    from sphinx.pycode import ModuleAnalyzer

    for modname, module in sorted(sys.modules.items()):
        if modname.startswith("torchrl_vd") and getattr(module, name, None) is obj:
            doc = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", name))
            if doc:
                return list(doc)
    raise RuntimeError(f"The public constant {name} has no docstring (a string literal under its assignment).")


def _entry(package: str, name: str, obj, first: dict[int, str]) -> list[str]:
    """The reST of one public name: its autodoc directive, or, for an object an earlier page documents, an entry
    under this name that links there."""
    qualified = f"{package}.{name}"
    if id(obj) in first:  # indexed under this name too, documented under the first
        kind = "class" if inspect.isclass(obj) else "function" if inspect.isfunction(obj) else "data"
        return [f".. py:{kind}:: {name}", "", f"   The same object as :py:obj:`{first[id(obj)]}`.", ""]
    first[id(obj)] = qualified
    if inspect.isclass(obj):
        return [f".. autoclass:: {qualified}", "   :members:", "   :show-inheritance:", ""]
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return [f".. autofunction:: {qualified}", ""]
    return [f".. py:data:: {name}", "", *[f"   {line}" if line else "" for line in _attribute_doc(obj, name)], ""]


def write_pages(out: Path) -> list[str]:
    """Write ``out/<package>.rst`` for every package of ``PACKAGES`` and ``out/index.rst``; the page names."""
    out.mkdir(parents=True, exist_ok=True)
    first: dict[int, str] = {}
    objects = {f"{p}.{n}" for p in PACKAGES for n in importlib.import_module(p).__all__}
    pages = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        # torchrl_vd.train is a subpackage and the function vd.train: the module is not indexed beside it
        no_index = ["   :no-index:"] if package in objects else []
        lines = [f"``{package}``", "=" * (len(package) + 4), "", f".. automodule:: {package}", *no_index, "",
                 f".. py:currentmodule:: {package}", ""]
        for name in module.__all__:
            lines += _entry(package, name, getattr(module, name), first)
        _write_if_changed(out / f"{package}.rst", "\n".join(lines))
        pages.append(package)
    index = ["API reference", "=============", "",
             "Every name of each package's ``__all__``, from its docstring (examples run as doctests).", "",
             ".. toctree::", "   :maxdepth: 1", "", *[f"   {p}" for p in pages], ""]
    _write_if_changed(out / "index.rst", "\n".join(index))
    return pages


def _write_if_changed(path: Path, text: str) -> None:
    """Rewrite only what changed, so that an incremental build rereads only those pages."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _generate(app) -> None:
    write_pages(Path(app.srcdir) / "api")


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
