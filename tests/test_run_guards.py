"""Run guards: divergence stops cleanly, resume refuses what it cannot honour, memory is checked before the
buffer is allocated, one writer per run directory. (Kills and damaged checkpoints: tests/test_faults.py,
tests/test_checkpoint_safety.py.)"""

from __future__ import annotations

import csv
import math
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main
from torchrl_vd.train import memory
from torchrl_vd.train.checkpoint import load_checkpoint
from torchrl_vd.train.config import ConfigError
from torchrl_vd.train.guards import NonFiniteUpdate
from torchrl_vd.train.run_lock import RunDirectoryLocked, RunLock

# A one-step game paying 1e30: finite rewards whose squared TD errors overflow float32 at the first update.
# Learning starts with the second batch; the first is checkpointed: the divergence comes after a good checkpoint.
HUGE = dict(algo="vdn", env="matrix/custom", env_kwargs={"payoff": [[1e30, 0.0], [0.0, 1e30]]}, num_envs=16,
            frames=16 * 8, frames_per_batch=16 * 2, batch_size=16, updates_per_batch=4, learning_starts=64,
            checkpoint_every=32, eval_episodes=2, progress=False)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_a_diverging_run_stops_with_the_step_and_the_quantity_and_keeps_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteUpdate, match=r"Training diverged: non-finite loss \(inf\) at gradient step 1; max "
                                              r"\|Q\| .* after the batch that reached frame 64.* the last checkpoint, "
                                              r"at frame 32, holds finite weights"):
        vd.train(vd.TrainConfig(**HUGE, out_dir=str(out)))
    logged = rows(out)
    assert [int(r["frames"]) for r in logged] == [32]  # nothing logged for the diverged batch
    assert all(math.isfinite(float(v)) for r in logged for k, v in r.items() if v and k not in ("loss", "eval_return"))
    state = load_checkpoint(out)
    assert state["frames"] == 32 and state["updates"] == 0
    assert all(torch.isfinite(v).all() for v in state["loss_module"].values())


def test_skip_drops_the_non_finite_minibatches_and_counts_them(tmp_path):
    result = vd.train(vd.TrainConfig(**HUGE, on_non_finite="skip", out_dir=str(tmp_path / "run")))
    logged = rows(tmp_path / "run")
    assert [int(r["skipped_updates"]) for r in logged] == [0, 4, 8, 12]  # every update overflows: all 12 skipped
    assert result.summary["skipped_updates"] == 12 and result.summary["updates"] == 0
    assert all(torch.isfinite(p).all() for p in result.loss_module.parameters())


def test_the_cli_reports_a_divergence_without_a_traceback(tmp_path, capsys):
    argv = ["train", "--algo", "vdn", "--env", "matrix/custom", "--out", str(tmp_path / "cli"), "--quiet"]
    argv += [f"--set={k}={v}" for k, v in HUGE.items() if k not in ("algo", "env", "progress", "env_kwargs")]
    argv += ["--set", 'env_kwargs={"payoff": [[1e30, 0.0], [0.0, 1e30]]}']
    assert cli_main(argv) == 2
    assert "torchrl-vd train: error: Training diverged: non-finite loss" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ resume
BASE = dict(algo="qmix", env="matrix/qtran", num_envs=8, frames=128, frames_per_batch=64, batch_size=16,
            updates_per_batch=2, eval_episodes=2, progress=False)


@pytest.mark.parametrize("change, named", [({"algo": "vdn"}, "algo is 'qmix'"), ({"env": "matrix/climbing"}, "env is"),
                                           ({"hidden": [8]}, "hidden is [64, 64]"), ({"num_envs": 16}, "num_envs is 8"),
                                           ({"buffer_size": 500}, "buffer_size is 100000"),
                                           ({"mixer.mixing_embed_dim": 8}, "mixer_kwargs is {}")])
def test_resume_refuses_each_setting_it_cannot_honour_by_name(tmp_path, change, named):
    vd.train(vd.TrainConfig(**BASE, out_dir=str(tmp_path / "run")))
    cfg = vd.train_config_for_resume(tmp_path / "run").with_overrides({"frames": 256, **change})
    with pytest.raises(ConfigError, match=f"{re.escape(named)}.* in this run .*; resume keeps it — start a new run with --out"):
        vd.train(cfg)
    assert [int(r["frames"]) for r in rows(tmp_path / "run")] == [64, 128]  # nothing written


def test_resume_applies_what_may_change(tmp_path):
    vd.train(vd.TrainConfig(**BASE, out_dir=str(tmp_path / "run")))
    cfg = vd.train_config_for_resume(tmp_path / "run").with_overrides(
        {"frames": 256, "lr": 1e-3, "eval_every": 64, "eval_episodes": 3, "checkpoint_every": 64})
    result = vd.train(cfg)
    assert result.summary["frames"] == 256 and result.summary["eval_episodes"] == 3
    learner_lr = load_checkpoint(tmp_path / "run")["optimizer"]["param_groups"][0]["lr"]
    assert learner_lr == 1e-3
    assert [r["eval_return"] != "" for r in rows(tmp_path / "run")] == [False, False, True, True]


# ------------------------------------------------------------------------------------------ memory
def test_a_buffer_larger_than_the_memory_is_refused_before_any_allocation(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 50 * 2**20)  # a machine with 50 MiB free
    cfg = vd.TrainConfig(**BASE, buffer_size=1_000_000, out_dir=str(tmp_path / "run"))
    with pytest.raises(MemoryError, match=r"replay buffer of buffer_size=1000000 transitions \(\d+\.\d+ MiB at \d+ "
                                          r"bytes per transition\).* but the machine has 50.0 MiB available\. Lower "
                                          r"buffer_size \(at most about \d+ here\)"):
        vd.train(cfg)
    assert not (tmp_path / "run").exists()
    with pytest.warns(RuntimeWarning, match="will take most of the memory"):  # near the limit: a warning
        vd.train(cfg.with_overrides({"buffer_size": 400_000}))  # 58 bytes a transition: 46 of 52 MB


@pytest.mark.parametrize("env, kw", [("vmas/balance", {}), ("matrix/m-step", {"agent": "gru", "hidden": [16]})])
def test_the_estimate_is_the_bytes_the_buffer_holds(tmp_path, env, kw):
    from torchrl_vd.train.loop import Training

    cfg = vd.TrainConfig(algo="qmix", env=env, num_envs=8, frames=160, frames_per_batch=160, batch_size=40,
                         updates_per_batch=1, buffer_size=1600, eval_episodes=2, igm_eval=False, progress=False,
                         out_dir=str(tmp_path / "run"), **kw)
    training = Training([cfg], [tmp_path / "run"])
    training.run()
    storage = training.learner.replay_buffer.storage._storage
    held = sum(x.numel() * x.element_size() for x in storage.values(True, True)) / storage.numel()
    estimate = memory.estimate_memory(training.env, cfg, 1, training.learner.seq_len).transition
    assert abs(estimate - held) <= 0.05 * held, (estimate, held)  # measured: 822 vs 838, 524 vs 540 bytes


# ------------------------------------------------------------------------------------------ one writer
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    code = ("import time\nfrom torchrl_vd.train.run_lock import RunLock\nlock = RunLock(r'%s')\nprint('held', flush=True)\n"
            "time.sleep(60)" % (tmp_path / "run"))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryLocked, match=rf"run is being written by pid {holder.pid} on .*; a second "
                                                     "writer would interleave"):
            vd.train(vd.TrainConfig(**BASE, out_dir=str(tmp_path / "run")))
        assert not (tmp_path / "run" / "metrics.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    vd.train(vd.TrainConfig(**BASE, out_dir=str(tmp_path / "run")))  # the holder is gone: its lock is taken over


def test_a_stale_lock_file_is_taken_over(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text("pid 999999 on elsewhere")  # left by a process that died
    result = vd.train(vd.TrainConfig(**BASE, out_dir=str(tmp_path / "run")))
    assert result.summary["frames"] == 128
    lock = RunLock(tmp_path / "run")  # released at the end of the run
    lock.release()
    assert os.path.getsize(tmp_path / "run" / ".lock") == 0
