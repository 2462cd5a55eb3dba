"""The `mpe-xuance` suite's unit conversion, checked with XuanCe's own code (opt-in: XuanCe is not a dependency).

XuanCe 1.3.3's test return is the mean over the agents of each agent's episode return
(``OffPolicyMARLAgents.run_episodes``, xuance/torch/agents/core/off_policy_marl.py); ours is the team return (the
sum over agents), so the suite scales ours by 1/3. Under a uniform-random policy both sides must then agree in
mean (benchmarks/xuance_random_policy.py; docs/RESULTS-real-tasks.md, "MPE against XuanCe: units": -26.8 and
-26.6 over 1000 episodes each). XuanCe needs a PettingZoo that still has ``pettingzoo.mpe`` (<= 1.25.0) and so its
own venv: set ``XUANCE_PYTHON`` to that venv's interpreter and run ``pytest -m slow tests/test_xuance_units.py``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "xuance_random_policy.py"
XUANCE_PYTHON = os.environ.get("XUANCE_PYTHON")


def test_the_suite_scales_ours_by_one_over_the_agents():
    from torchrl_vd.reproduce.suites import MPE_XUANCE, XUANCE_UNITS

    assert {e["scale"] for e in MPE_XUANCE["entries"]} == {1 / 3}  # simple_spread_v3: N = 3 agents
    assert "mean over the 3 agents" in XUANCE_UNITS and "sum over agents) / 3" in XUANCE_UNITS


@pytest.mark.slow
@pytest.mark.skipif(not XUANCE_PYTHON, reason="set XUANCE_PYTHON to a venv's python with xuance==1.3.3 and "
                    "pettingzoo<=1.25.0 (docs/RESULTS-real-tasks.md, 'MPE against XuanCe: units')")
def test_xuance_avg_return_equals_our_team_return_over_three_under_a_random_policy():
    spec = importlib.util.spec_from_file_location("xuance_random_policy", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    episodes = 400
    out = subprocess.run([XUANCE_PYTHON, str(SCRIPT), "--side", "xuance", "--episodes", str(episodes), "--json"],
                         check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert theirs["xuance"].lstrip("v") == "1.3.3" and theirs["n_agents"] == 3 and theirs["episode_length"] == 25
    assert theirs["continuous_action"] is False
    ours = script.our_scores(episodes, seed=0)
    a, b = script.summary(theirs["scores"]), script.summary(ours["scores"])
    se = math.hypot(a["std"], b["std"]) / math.sqrt(episodes)  # std of the difference of the two means
    assert abs(a["mean"] - b["mean"]) < 4 * se, (a, b)
    # the other candidate units are far off: the sum over agents (x3) differs by ~50 at std ~8
    assert abs(a["mean"] - 3 * b["mean"]) > 40
