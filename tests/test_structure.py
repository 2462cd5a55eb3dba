"""Facts about the package's shape that any reader can check: file and function sizes, what importing costs.

* No file in torchrl_vd/ over 500 lines, except data tables (the matrix games' payoffs).
* No function or method over 80 lines.
* ``import torchrl_vd`` loads none of torch, torchrl, the simulators, matplotlib, Ray, SciPy or JAX: the names
  load on first use. ``torchrl-vd --help``, ``train --help``, ``reproduce --help`` and ``export --help`` load no torch either.
* Training on a matrix game loads no simulator, JAX, SciPy or matplotlib (benchmarks/bench_imports.py times the
  imports).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "torchrl_vd"
DATA_TABLES = {"envs/matrix.py"}  # the matrix games: payoff tables and their builders
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 80
HEAVY = ("torch", "torchrl", "tensordict", "vmas", "pettingzoo", "matplotlib", "ray", "scipy", "jax", "numpy")


def _files():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_500_lines_but_data_tables():
    long = {str(p.relative_to(PACKAGE)): n for p in _files() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert set(long) <= DATA_TABLES, long


HISTORY_WORDS = re.compile(r"issue #|session|the seed\b|REFERENCE\.md|PERF-?NOTES|STYLE\.md", re.IGNORECASE)
"""What points at the project's history or at files it does not ship, rather than at papers and code."""


def test_no_history_or_outside_files_in_code_tests_and_tutorials():
    root = PACKAGE.parent
    hits = [f"{path.relative_to(root)}:{n}: {line.strip()}"
            for folder in ("torchrl_vd", "tests", "tutorials") for path in sorted((root / folder).rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if HISTORY_WORDS.search(line)
            and path.name != "test_structure.py"]
    assert hits == []


def test_no_function_over_80_lines():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def _loaded_after(code: str) -> list[str]:
    """The heavy top-level packages loaded after running ``code`` in a fresh interpreter."""
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.splitlines()[-1]
    return [m for m in json.loads(out) if m in HEAVY]


def test_importing_the_package_loads_nothing_heavy():
    assert _loaded_after("import torchrl_vd") == []
    assert _loaded_after("import torchrl_vd as vd; vd.TrainConfig(algo='qmix', env='matrix/qtran')") == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["reproduce", "--help"], ["export", "--help"]])
def test_the_cli_help_loads_no_torch(argv):
    code = f"from torchrl_vd.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_training_on_a_matrix_game_loads_no_simulator_and_no_plotting():
    """A matrix-game run needs torch, torchrl and tensordict only: no simulator or env package, JAX or SciPy, and
    matplotlib only in the forked child that draws the PNG. (Ray is not asserted: torchrl.data imports it whenever
    it is installed, torchrl/data/replay_buffers/ray_buffer.py.)"""
    code = ("import tempfile, torchrl_vd as vd\n"
            "with tempfile.TemporaryDirectory() as d:\n"
            "    vd.train(vd.TrainConfig(algo='qmix', env='matrix/qtran', num_envs=8, frames=64, frames_per_batch=32,\n"
            "                            batch_size=16, updates_per_batch=2, eval_episodes=2, progress=False, out_dir=d))")
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.splitlines()[-1]
    loaded = set(json.loads(out))
    assert "torch" in loaded  # the probe did train
    assert loaded & {"vmas", "pettingzoo", "mpe2", "lbforaging", "rware", "jax", "jaxmarl", "scipy", "matplotlib",
                     "gymnasium", "pygame", "pyglet"} == set()


def test_a_name_loads_its_module_on_first_use():
    assert "torch" in _loaded_after("import torchrl_vd as vd; vd.MixingQLoss")
