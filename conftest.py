"""Session set-up shared by the tests (tests/) and the doctests of torchrl_vd/ (pyproject: --doctest-modules).

At the repository root so that both trees see it. Modules that need an optional package import it inside
their functions, so collecting every module's doctests works without vmas, pettingzoo, ray or wandb.
"""

import os
import warnings

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "False")
torch.set_num_threads(1)  # PERF-NOTES: 2 threads on a 2-core box is 4-15x slower
warnings.filterwarnings("ignore", category=UserWarning, module="torchrl")


@pytest.fixture(autouse=True)
def _seeded_doctests(request):
    """Every doctest starts from ``torch.manual_seed(0)``, so the values its examples show are reproducible."""
    if isinstance(request.node, pytest.DoctestItem):
        torch.manual_seed(0)


@pytest.fixture
def tmp_run(tmp_path):
    """A fresh run directory."""
    return str(tmp_path / "run")
