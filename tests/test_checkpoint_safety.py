"""A checkpoint is data, never code: a crafted checkpoint.pt must not run anything when a run directory is
evaluated (``torchrl-vd eval``), resumed (``--resume`` / ``TrainConfig(resume=...)``) or read through the API."""

import os

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main


class _Payload:
    """Unpickling this calls os.system(...): what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def crafted_run(tmp_path):
    run = tmp_path / "shared-run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format_version": 3, "config": {}, "payload": _Payload(marker)}, run / "checkpoint.pt")
    return run, marker


def test_the_crafted_file_really_runs_code_with_an_unsafe_loader(crafted_run):
    run, marker = crafted_run  # the premise of the tests below: torch.load(weights_only=False) executes it
    torch.load(run / "checkpoint.pt", weights_only=False)
    assert marker.exists()


def test_eval_refuses_a_crafted_checkpoint_without_running_it(crafted_run, capsys):
    run, marker = crafted_run
    assert cli_main(["eval", str(run)]) == 2
    assert "refused without running them" in capsys.readouterr().err
    assert not marker.exists()


def test_resume_refuses_a_crafted_checkpoint_without_running_it(crafted_run, capsys):
    run, marker = crafted_run
    assert cli_main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    with pytest.raises(ValueError, match="refused without running them"):
        vd.train(vd.TrainConfig(algo="vdn", env="matrix/qtran", resume=str(run), out_dir=str(run), progress=False))
    assert not marker.exists()


def test_api_refuses_a_crafted_checkpoint_without_running_it(crafted_run):
    run, marker = crafted_run
    with pytest.raises(ValueError, match="refused without running them"):
        vd.train_config_for_resume(run)
    from torchrl_vd.train.evaluation import evaluate_run

    with pytest.raises(ValueError, match="refused without running them"):
        evaluate_run(run)
    assert not marker.exists()


def test_a_real_checkpoint_loads_with_weights_only(tmp_path):
    run = tmp_path / "run"
    vd.train(vd.TrainConfig(algo="qmix", env="matrix/qtran", num_envs=8, frames=128, frames_per_batch=64,
                            updates_per_batch=2, batch_size=16, progress=False, out_dir=str(run), eval_episodes=2))
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # plain data and tensors only
    assert state["format_version"] == 4 and state["frames"] == 128 and len(state["sha256"]) == 64
    assert vd.train_config_for_resume(run).algo == "qmix"
