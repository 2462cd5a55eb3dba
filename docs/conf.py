"""Sphinx configuration of the API reference and guides (build: see the README's "Documentation" section).

    python -m sphinx -W -b html docs docs/_build/html

The guide pages are the Markdown files of docs/ (read by myst-parser); the API pages are written from the public
packages' ``__all__`` at build time by ``_ext/api_pages.py``; docstrings are Google style (napoleon) and their
``>>>`` examples, which the test suite runs as doctests, show as code.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]  # the checkout's package, then the page generator

project = "torchrl-vd"
author = "torchrl-vd contributors"
import torchrl_vd  # noqa: E402  (after sys.path: the checkout's version)

release = version = torchrl_vd.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
    "api_pages",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_attr_annotations = True

myst_heading_anchors = 3

try:  # the `docs` extra installs furo; without it Sphinx's own theme builds the same pages
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:
    html_theme = "alabaster"
html_title = f"torchrl-vd {release}"

# A public object is documented once and indexed under each public name (torchrl_vd.TrainConfig and
# torchrl_vd.train.TrainConfig are one class), so an unqualified type name in a signature finds several
# targets that are the same object: not an error.
suppress_warnings = ["ref.python"]
# The guides link to the measurement pages in the repository's benchmarks/ folder, which are not part of
# the site (tests/test_docs.py checks that every such link exists).
nitpick_ignore_regex = [("myst", r".*/benchmarks/.*")]
