"""benchmarks/profile_pair.py reads a cProfile file into phases: each phase is its outermost call's cumulative time,
the rollout is split by its direct callees, and the (rest) rows are a phase minus its listed parts.

The profiled program is a stand-in whose files sit at the paths the phases name (``torchrl_vd/train/learner.py``,
``torch/_tensor.py``, ``torchrl/collectors/_single.py``, ...), and whose functions sleep for known times; cProfile's
clock is the wall clock, so each phase is at least its sleeps, and the derived rows are exact differences.
"""

import cProfile
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SLACK = 0.25  # s above the sleeps a loaded box may add to one phase (the lower bounds are exact)

FILES = {
    "torchrl_vd/train/learner.py": """
        import time
        from torchrl_vd_stub_tensor import backward
        def objective():
            time.sleep(0.20)
        def _minibatches():
            time.sleep(0.05)
        def update():
            _minibatches()
            objective()
            backward()
            time.sleep(0.10)  # the update's own rest (clipping, Adam, the target update)
    """,
    "torch/_tensor.py": """
        import time
        def backward():
            time.sleep(0.15)
    """,
    "torchrl/envs/common.py": """
        import time
        def step_and_maybe_reset():
            time.sleep(0.12)
    """,
    "torch/nn/modules/module.py": """
        import time
        def _wrapped_call_impl():
            time.sleep(0.08)
    """,
    "torchrl/collectors/_single.py": """
        import time
        from torchrl_stub_envs import step_and_maybe_reset
        from torch_stub_module import _wrapped_call_impl
        def rollout():
            step_and_maybe_reset()
            _wrapped_call_impl()
            time.sleep(0.03)  # the collector's own bookkeeping
        def iterator():
            rollout()
            step_and_maybe_reset()  # outside the rollout (e.g. the evaluation's steps): not the rollout's env time
    """,
}
ALIASES = {"torchrl_vd_stub_tensor": "torch/_tensor.py", "torchrl_stub_envs": "torchrl/envs/common.py",
           "torch_stub_module": "torch/nn/modules/module.py"}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def phases(tmp_path_factory):
    root = tmp_path_factory.mktemp("stub")
    for rel, code in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(code))
    try:
        for alias, rel in ALIASES.items():
            _load(alias, root / rel)
        learner = _load("stub_learner", root / "torchrl_vd/train/learner.py")
        collector = _load("stub_collector", root / "torchrl/collectors/_single.py")
        prof = cProfile.Profile()
        prof.runcall(lambda: (collector.iterator(), learner.update()))
        prof.dump_stats(str(root / "stub.prof"))
    finally:
        for name in [*ALIASES, "stub_learner", "stub_collector"]:
            sys.modules.pop(name, None)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import profile_pair
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return profile_pair.phase_seconds(str(root / "stub.prof"))


@pytest.mark.parametrize("phase, sleeps", [
    ("updates", 0.50), ("  minibatch sampling", 0.05), ("  loss forward", 0.20), ("  backward", 0.15),
    ("collection (torchrl Collector rollouts)", 0.35), ("  rollouts: env step and resets", 0.12),
    ("  rollouts: the policy", 0.08), ("  env step and resets (torchrl EnvBase.step_and_maybe_reset, all calls)", 0.24),
])
def test_each_phase_is_its_outermost_calls_cumulative_time(phases, phase, sleeps):
    assert sleeps <= phases[phase] < sleeps + SLACK


def test_rest_rows_are_the_phase_minus_its_parts(phases):
    rest = phases["  updates (rest): clipping, Adam, the target update, hooks"]
    assert rest == pytest.approx(phases["updates"] - phases["  minibatch sampling"] - phases["  loss forward"]
                                 - phases["  backward"], abs=1e-12)
    assert 0.10 <= rest < 0.10 + SLACK
    bookkeeping = phases["  rollouts: the collector's bookkeeping (the rest)"]
    assert bookkeeping == pytest.approx(phases["collection (torchrl Collector rollouts)"]
                                        - phases["  rollouts: env step and resets"] - phases["  rollouts: the policy"],
                                        abs=1e-12)
    assert 0.12 + 0.03 <= bookkeeping  # the collector's own sleep and the env step outside the rollout


def test_phases_no_program_ran_are_zero_and_rows_keep_their_order(phases):
    assert phases["    VMAS physics step"] == 0.0 and phases["ε-greedy schedule step"] == 0.0
    rows = list(phases)
    assert rows[0] == "profiled process (total)"
    collection = rows.index("collection (torchrl Collector rollouts)")
    assert rows[collection + 1: collection + 4] == ["  rollouts: env step and resets", "  rollouts: the policy",
                                                    "  rollouts: the collector's bookkeeping (the rest)"]
