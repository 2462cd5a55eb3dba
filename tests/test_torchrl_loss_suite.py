"""benchmarks/torchrl_loss_suite.py: the constructor swap, the grouping of failures by cause, and (when
``TORCHRL_VD_RL_CHECKOUT`` names a pytorch/rl checkout) TorchRL's ``TestQMixer`` run on ``MixingQLoss``.

With a checkout of the installed torchrl's tests (0.14: ``prepare-0.14``), on CPU, the expected counts are
benchmarks/RESULTS.md's: QMixerLoss 58 of 59 (``test_dqn_prioritized_weights`` needs torchrl's C++ extension),
``MixingQLoss`` 30 with ``("collector", "mask")`` honoured and 58 with ``loss_mask_key=None``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "torchrl_loss_suite.py"


def _suite():
    spec = importlib.util.spec_from_file_location("torchrl_loss_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# a stand-in text (not TorchRL's): a future import, the class import, two constructor calls, one mention
SOURCE = """from __future__ import annotations

from torchrl.objectives import QMixerLoss

class TestX:
    def test_a(self):
        loss = QMixerLoss(actor, mixer, delay_value=True)
        other = QMixerLoss(actor, mixer)
        assert isinstance(loss, QMixerLoss)
"""


def test_the_swap_replaces_only_the_constructor_calls():
    suite = _suite()
    assert suite.swap(SOURCE, "baseline") == (SOURCE, 0)
    text, n = suite.swap(SOURCE, "default")
    assert n == 2 and text.count("torchrl_vd.MixingQLoss(actor, mixer") == 2
    assert "from torchrl.objectives import QMixerLoss" in text and "isinstance(loss, QMixerLoss)" in text
    header = suite.SWAPS["default"][0]
    assert text.startswith("from __future__ import annotations\n" + header)  # the import, after the future ones
    # nothing else changed: without the added line and with the calls renamed back, the source is as it was
    assert text.replace(header, "", 1).replace("torchrl_vd.MixingQLoss(", "QMixerLoss(") == SOURCE
    text, n = suite.swap(SOURCE, "nomask")
    assert n == 2 and text.count("_mixing_q_loss_without_mask(actor, mixer") == 2
    namespace = {}
    exec(compile(text.split("from torchrl.objectives")[0], "swapped", "exec"), namespace)  # the helper is valid code
    assert callable(namespace["_mixing_q_loss_without_mask"])
    with pytest.raises(ValueError, match="variant"):
        suite.swap(SOURCE, "other")


def test_the_pytest_selection_keeps_the_class_and_narrows_it():
    suite = _suite()
    assert suite.select([]) == "TestQMixer"
    assert suite.select(["-x", "-k", "state_dict or reset"]) == "TestQMixer and (state_dict or reset)"
    assert suite.without_k(["-x", "-k", "state_dict", "-v"]) == ["-x", "-v"]


def test_failures_are_grouped_by_cause():
    suite = _suite()
    results = {
        "baseline": {"t_env": ("FAILED", "RuntimeError: no C++"), "t_mask": ("PASSED", ""), "t_diff": ("PASSED", ""),
                     "t_ok": ("PASSED", "")},
        "default": {"t_env": ("FAILED", "RuntimeError: no C++"), "t_mask": ("FAILED", "assert tensor(0.) > 0.0"),
                    "t_diff": ("FAILED", "KeyError: x"), "t_ok": ("PASSED", "")},
        "nomask": {"t_env": ("FAILED", "RuntimeError: no C++"), "t_mask": ("PASSED", ""),
                   "t_diff": ("FAILED", "KeyError: x"), "t_ok": ("PASSED", "")},
    }
    groups = suite.classify(results)
    assert groups["default"] == {"env": [("t_env", "RuntimeError: no C++")],
                                 "mask": [("t_mask", "assert tensor(0.) > 0.0")], "diff": [("t_diff", "KeyError: x")]}
    assert groups["nomask"] == {"env": [("t_env", "RuntimeError: no C++")], "diff": [("t_diff", "KeyError: x")]}
    text = suite.report(results)
    assert "baseline    3 / 4 (3 / 3)" in text and "default     1 / 4 (1 / 3)" in text
    assert "nomask      2 / 4 (2 / 3)" in text


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TORCHRL_VD_RL_CHECKOUT"),
                    reason="set TORCHRL_VD_RL_CHECKOUT to a pytorch/rl checkout to run TorchRL's TestQMixer")
def test_torchrls_testqmixer_on_a_checkout(tmp_path):
    checkout = Path(os.environ["TORCHRL_VD_RL_CHECKOUT"])
    before = sorted(p.relative_to(checkout) for p in (checkout / "test" / "objectives").iterdir())
    run = subprocess.run([sys.executable, str(SCRIPT), str(checkout), "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(p.relative_to(checkout) for p in (checkout / "test" / "objectives").iterdir()) == before
    counts = {line.split()[0]: line.split()[1:4] for line in run.stdout.splitlines()
              if line.strip().split(" ")[0] in ("baseline", "default", "nomask")}
    passed = {variant: int(c[0]) for variant, c in counts.items()}
    assert passed["nomask"] == passed["baseline"], run.stdout  # QMixerLoss's behaviour: every test it passes
    assert passed["default"] < passed["baseline"], run.stdout  # the all-False ("collector", "mask") mock batch
    assert "a difference from QMixerLoss" not in run.stdout, run.stdout
