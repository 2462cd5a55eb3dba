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


_REGISTRIES_AT_START: dict[str, dict] = {}


def _registries() -> dict[str, dict]:
    """The global tables a test must leave as it found them: the algorithm table and the env-family registry."""
    from torchrl_vd.envs import registry
    from torchrl_vd.train.algos import ALGOS

    registry.env_families()  # the built-in adapters register on first use: load them all
    return {"torchrl_vd.train.algos.ALGOS": ALGOS, "torchrl_vd.envs.registry._FAMILIES": registry._FAMILIES}


def pytest_sessionstart(session):
    _REGISTRIES_AT_START.update({name: dict(table) for name, table in _registries().items()})


def _restore_registries() -> dict[str, list]:
    """Put the registries back as they were when the session started; return the entries that differed."""
    changed = {}
    for name, table in _registries().items():
        start = _REGISTRIES_AT_START[name]
        keys = sorted(k for k in start.keys() | table.keys() if start.get(k) is not table.get(k))
        if keys:
            changed[name] = keys
            table.clear()
            table.update(start)
    return changed


@pytest.fixture(autouse=True)
def _registries_unchanged():
    """A test (or doctest) must leave the algorithm table (``train.algos.ALGOS``) and the env-family registry
    (``envs.registry``) as the session found them: register in a fixture and remove the entry after the test
    (tests/_helpers.py ``env_family``), never at import time. Entries added while collecting (a test module's
    import) fail the next test's setup; entries a test leaves fail its teardown. Either way the registries are
    restored."""
    fix = "register them in a fixture and remove them after the test (tests/_helpers.py env_family)"
    changed = _restore_registries()
    if changed:
        pytest.fail(f"registry entries were added, removed or replaced outside a test (at a test module's import?): "
                    f"{changed}; {fix}", pytrace=False)
    yield
    changed = _restore_registries()
    if changed:
        pytest.fail(f"the test left registry entries added, removed or replaced: {changed}; {fix}", pytrace=False)


@pytest.fixture
def tmp_run(tmp_path):
    """A fresh run directory."""
    return str(tmp_path / "run")
