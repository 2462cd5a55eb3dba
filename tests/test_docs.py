"""The documentation stays true to the repository: the README's first commands and length, links and paths that
exist, a package layout in docs/CONTRACT.md that names every module, and the Python blocks of
docs/COMING_FROM_TORCHRL.md, which run as they are (each one a whole program ending in its own checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FIRST_COMMANDS = [
    "bash .ci/setup && .venv/bin/torchrl-vd train --algo qmix --env vmas/balance --frames 150000 "
    "--out runs/qmix-balance",
    "bash .ci/setup && .venv/bin/python -m pytest",
]
TORCHRL_PAGE = ROOT / "docs" / "COMING_FROM_TORCHRL.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
PACKAGE_PATH = re.compile(r"torchrl_vd/[\w/]+\.py")


def _fenced_commands(text: str) -> list[str]:
    """The command lines of the fenced code blocks, in order (comments and blank lines left out)."""
    commands, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def test_readme_is_short_and_starts_with_the_two_first_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 120
    assert _fenced_commands(text)[:2] == FIRST_COMMANDS


def test_every_relative_link_in_the_readme_and_docs_exists():
    missing = []
    for page in [README, *DOCS]:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            if not (page.parent / target.split("#")[0]).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert missing == []


def test_every_package_path_in_the_readme_and_docs_exists():
    missing = [f"{page.relative_to(ROOT)}: {path}" for page in [README, *DOCS]
               for path in sorted(set(PACKAGE_PATH.findall(page.read_text()))) if not (ROOT / path).is_file()]
    assert missing == []


def _contract_layout() -> set[str]:
    """The files of the layout block in docs/CONTRACT.md, as paths (nesting read from the indentation)."""
    text = (ROOT / "docs" / "CONTRACT.md").read_text()
    block = text.split("```\ntorchrl_vd/\n", 1)[1].split("```", 1)[0]
    stack, files = ["torchrl_vd"], set()
    for line in block.splitlines():
        level = (len(line) - len(line.lstrip())) // 2
        if not line.strip() or level > len(stack):
            continue  # blank, or a description continued on the next line
        name = line.split()[0]
        del stack[level:]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        else:
            files.add("/".join([*stack, name]))
    return files


def test_the_contract_layout_names_every_module_of_the_package():
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "torchrl_vd").rglob("*.py")}
    layout = _contract_layout()
    assert modules - layout == set(), "modules missing from docs/CONTRACT.md's layout"
    assert layout - modules == set(), "docs/CONTRACT.md's layout names files that do not exist"


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:DQNTrainer is an experimental")  # torchrl 0.14 says so
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCK.findall(TORCHRL_PAGE.read_text()))))
def test_the_python_blocks_of_coming_from_torchrl_run(index):
    """TorchRL's QMIX loop and its ``DQNTrainer``, each with our loss line, at the page's CPU-sized budget."""
    pytest.importorskip("vmas")
    block = PYTHON_BLOCK.findall(TORCHRL_PAGE.read_text())[index]
    from torchrl.objectives import LossModule

    namespace = {"__name__": "__docs__"}
    exec(compile(block, f"{TORCHRL_PAGE.name} python block {index + 1}", "exec"), namespace)  # its own asserts
    assert [type(v).__module__.split(".")[0] for v in namespace.values() if isinstance(v, LossModule)] == ["torchrl_vd"]
