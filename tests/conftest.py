import os
import warnings

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "False")
torch.set_num_threads(1)  # PERF-NOTES: 2 threads on a 2-core box is 4-15x slower
warnings.filterwarnings("ignore", category=UserWarning, module="torchrl")


@pytest.fixture
def tmp_run(tmp_path):
    """A fresh run directory."""
    return str(tmp_path / "run")
