"""Collection beyond one process: torchrl's multi-process collector, its Ray collector (local Ray) and
the overlapped ``collector="async"`` (a worker collects the next batch while the learner trains)."""

import csv
from pathlib import Path

import pytest
import torch

import torchrl_vd as vd


def linear_game_cfg(collector, out_dir):
    # matrix/linear pays [[1, 5], [5, 9]]: greedy play earns 9, uniform play 5. ε drops to 0 after the first
    # batch, so later batches earn 9 only if the workers received the new weights *and* the new ε.
    return vd.TrainConfig(algo="vdn", env="matrix/linear", num_envs=32, frames=64 * 8, frames_per_batch=64,
                          batch_size=64, updates_per_batch=40, lr=1e-2, eps_start=1.0, eps_end=0.0, eps_frames=64,
                          collector=collector, num_workers=2, progress=False, out_dir=out_dir, hidden=(16,))


# First batch, ε = 1: 64 one-step episodes (32 envs x 2 steps) of uniform joint actions, each paying 1, 5, 5 or 9
# (mean 5, standard deviation √8 = 2.83). Their mean is fixed for a given seed and collector, but knowable only by
# replaying that collector's random stream (each draws the exploration from its own, worker-seeded generator), so
# this is a statistical bound: standard error 2.83 / √64 = 0.35, the bound 4.2 of them (a false failure about
# once in 40,000 seeds).
UNIFORM_TOL = 1.5


@pytest.mark.parametrize("collector", ["multi", "ray"])
def test_worker_collectors_train_and_receive_weights(tmp_path, collector):
    if collector == "ray":
        ray = pytest.importorskip("ray")
        from torchrl_vd.train.threads import ray_workers_at_normal_priority

        ray_workers_at_normal_priority()  # as the trainer's own Ray start: niced-15 workers starve under load
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        result = vd.train(linear_game_cfg(collector, str(tmp_path / collector)))
    finally:
        if collector == "ray":
            ray.shutdown()
    rows = result.metrics
    assert [r["frames"] for r in rows] == list(range(64, 513, 64))
    assert rows[0]["episodes"] == 64 and rows[0]["train_return"] == pytest.approx(5.0, abs=UNIFORM_TOL)
    assert [r["train_return"] for r in rows[-3:]] == [9.0, 9.0, 9.0]  # workers act greedily with new weights
    assert result.summary["final_eval_return"] == 9.0


def test_worker_collector_config_is_validated():
    with pytest.raises(ValueError, match="divisible by num_workers \\* num_envs"):
        vd.TrainConfig(num_envs=32, frames_per_batch=96, collector="multi", num_workers=2)
    with pytest.raises(ValueError, match="collector must be"):
        vd.TrainConfig(collector="mpi")


# ------------------------------------------------------------------------------------- collector="async"
def _rows(run_dir):
    with open(Path(run_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_async_collector_learns_what_single_learns_with_exact_frames(tmp_path):
    """Overlapped collection (a worker collects batch k+1 while the learner trains on k) on the linear game."""
    results = {c: vd.train(linear_game_cfg(c, str(tmp_path / c))) for c in ("single", "async")}
    for c, result in results.items():
        rows = result.metrics
        assert [r["frames"] for r in rows] == list(range(64, 513, 64)), c  # one row per batch, exactly cfg.frames
        assert result.summary["frames"] == 512 and rows[-1]["updates"] == 8 * 40
        assert rows[0]["episodes"] == 64 and rows[0]["train_return"] == pytest.approx(5.0, abs=UNIFORM_TOL), c
        assert [r["train_return"] for r in rows[-3:]] == [9.0, 9.0, 9.0], c  # greedy joint action (2, 2)
        assert result.summary["final_eval_return"] == 9.0
        assert [r["eps"] for r in rows] == [0.0] * 8  # ε(frames after each batch), the same schedule
        assert len(_rows(tmp_path / c)) == 8
    # the same learned utilities: each agent prefers action 1 by a clear margin in both modes
    for c, result in results.items():
        td = result.policy(result.env.reset())
        q = td["agents", "action_value"]  # [num_envs, n_agents, n_actions]
        assert (td["agents", "action"] == 1).all() and (q[..., 1] - q[..., 0] > 1.0).all(), (c, q[0])


def _spy_on_requests(monkeypatch, read_learner):
    """``OverlapCollector`` records what its worker acted with (``echo_weights``), and ``read_learner(policy)`` of
    the learner's side at each request; returns ``(the learner's weights per request, the collector instances)``."""
    from torchrl_vd.train import collectors as loop

    learner_at_request, instances = [], []
    request, init = loop.OverlapCollector._request, loop.OverlapCollector.__init__

    def spy(self):
        learner_at_request.append(read_learner(self.policy))
        request(self)

    monkeypatch.setattr(loop.OverlapCollector, "_request", spy)
    monkeypatch.setattr(loop.OverlapCollector, "echo_weights", True)
    monkeypatch.setattr(loop.OverlapCollector, "__init__",
                        lambda self, *a, **k: (instances.append(self), init(self, *a, **k))[1])
    return learner_at_request, instances


def test_async_acting_policy_is_synced_from_the_learner_at_batch_boundaries(tmp_path, monkeypatch):
    """Each batch k+1 is collected with the learner's weights at the moment batch k arrived, and ε(frames)."""
    from tensordict import TensorDict

    from torchrl_vd.train import collectors as loop

    # the learner's live weights, read independently of the double buffer
    learner_at_request, instances = _spy_on_requests(
        monkeypatch, lambda policy: TensorDict.from_module(policy).data.clone())
    cfg = linear_game_cfg("async", str(tmp_path / "async")).with_overrides({"eps_frames": 256})
    vd.train(cfg)
    history = instances[0].history
    assert [h["frames"] for h in history] == list(range(0, 512, 64))  # one request per batch, none beyond frames
    assert len(learner_at_request) == len(history) == 8
    for i, (h, learner) in enumerate(zip(history, learner_at_request)):
        assert h["eps"] == pytest.approx(loop.EpsilonSchedule.from_config(cfg)(h["frames"]))
        acted = h["acted"]["policy"]  # the policy's own module tree (one seed: every weight it acts with)
        eps_key = [k for k in acted.keys(True, True) if k[-1] == "eps"]
        assert acted[eps_key[0]].item() == pytest.approx(h["eps"])  # the worker's ε-greedy module got ε
        for key in learner.keys(True, True):
            if key[-1] == "eps":
                continue
            assert torch.equal(acted[key], learner[key]), (i, key)  # the worker acted with the learner's weights
        if i >= 2:  # the learner moved between boundaries, and the worker followed
            assert any(not torch.equal(learner[k], learner_at_request[i - 1][k]) for k in learner.keys(True, True)
                       if k[-1] != "eps")


def test_async_collects_for_many_seeds_with_each_seeds_current_weights(tmp_path, monkeypatch):
    """seeds=(0, 1) with collector='async': one worker collects both seeds' env rows; it acts with the stacked
    networks the learner holds when each batch starts (held outside the policy's module tree), and every seed
    learns the game as a lone run does (test_async_collector_learns_what_single_learns_with_exact_frames)."""
    from torchrl_vd.train.population import SeedAgents

    def stacked(policy):  # the learner's stacked online networks, read off the SeedAgents module itself
        agents = next(m for m in policy.modules() if isinstance(m, SeedAgents))
        return [p.data.clone() for p in agents.stack.online]

    learner_at_request, instances = _spy_on_requests(monkeypatch, stacked)
    cfg = linear_game_cfg("async", str(tmp_path / "seeds")).with_overrides({"seeds": [0, 1]})
    result = vd.train(cfg)
    history = instances[0].history
    assert [h["frames"] for h in history] == list(range(0, 512, 64))  # per-seed frames, one request per batch
    for i, (h, learner) in enumerate(zip(history, learner_at_request)):
        acted = h["acted"]["outside_0"]  # SeedAgents' stacked networks, [N = 2, ...] each
        assert len(learner) == len(acted.keys()) >= 1
        for j, online in enumerate(learner):
            for key in online.keys(True, True):
                assert acted[str(j)][key].shape[0] == 2
                assert torch.equal(acted[str(j)][key], online[key]), (i, j, key)  # the worker acted with them
        if i >= 2:
            assert any(not torch.equal(online[k], old[k]) for online, old in zip(learner, learner_at_request[i - 1])
                       for k in online.keys(True, True))  # the learner moved, and the worker followed
    for run in result.runs:
        rows = run.metrics
        assert [r["frames"] for r in rows] == list(range(64, 513, 64))  # exactly cfg.frames per seed
        assert rows[-1]["updates"] == 8 * 40
        assert rows[0]["episodes"] == 64 and rows[0]["train_return"] == pytest.approx(5.0, abs=UNIFORM_TOL)
        assert [r["train_return"] for r in rows[-3:]] == [9.0, 9.0, 9.0]  # ε = 0 and the learnt greedy action
        assert run.summary["final_eval_return"] == 9.0
        assert len(_rows(run.out_dir)) == 8
    first = history[0]["acted"]["outside_0"]["0"]  # the agents' stacked initial networks: each seed's own
    assert any(not torch.equal(w[0], w[1]) for w in first.values(True, True))


def test_async_recurrent_run_resumes_to_the_configured_frames(tmp_path):
    """A GRU agent (sequences) with collector='async': checkpoint at 256 frames, resume, continue to 512."""
    base = dict(algo="qmix", env="matrix/m-step", env_kwargs={"steps": 4}, agent="gru", num_envs=16,
                frames_per_batch=64, batch_size=32, updates_per_batch=4, hidden=(16,), eps_frames=256,
                collector="async", progress=False, eval_episodes=2, checkpoint_every=128)
    part = vd.train(vd.TrainConfig(**base, frames=256, out_dir=str(tmp_path / "run")))
    assert part.summary["frames"] == 256
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "run")).with_overrides({"frames": 512}))
    assert resumed.summary["frames"] == 512 and not resumed.summary["interrupted"]
    rows = _rows(tmp_path / "run")
    assert [int(r["frames"]) for r in rows] == list(range(64, 513, 64))
    assert [int(r["updates"]) for r in rows] == list(range(4, 33, 4))
    assert [float(r["eps"]) for r in rows] == pytest.approx([max(0.05, 1 - 0.95 * f / 256) for f in range(64, 513, 64)])


def test_async_collector_config_is_validated():
    with pytest.raises(ValueError, match=r"collector must be one of \['single', 'async', 'multi', 'ray'\]"):
        vd.TrainConfig(collector="asynch")
    vd.TrainConfig(num_envs=32, frames_per_batch=96, collector="async", num_workers=2)  # one worker: no num_workers rule
    with pytest.raises(ValueError, match="collector='async'"):  # the learned z-policy lives in this process
        vd.TrainConfig(algo="maven", agent="gru", env="matrix/linear", collector="async", progress=False, frames=64,
                       num_envs=8, frames_per_batch=64)  # refused by the config, before any work


def test_async_collector_names_the_fix_for_an_unpicklable_env(tmp_path, monkeypatch):
    from torchrl_vd.train import loop
    from torchrl_vd.train.collectors import OverlapCollector

    build_env = loop.build_env
    monkeypatch.setattr(loop, "build_env", lambda *a, **k: build_env(*a, **k))  # a lambda cannot reach a worker
    monkeypatch.setattr(OverlapCollector, "start_method", "spawn")  # a forked worker needs no pickling
    with pytest.raises(ValueError, match="must be picklable.*collector='single'"):
        vd.train(linear_game_cfg("async", str(tmp_path / "run")))


def test_async_worker_forks_when_safe_and_both_start_methods_train_alike(tmp_path, monkeypatch):
    """The worker forks in a single-threaded CPU process (no second import of torch/torchrl/the simulator) and
    spawns when another thread runs; either way it seeds itself the same, so the runs are identical."""
    import threading

    from torchrl_vd.train.collectors import OverlapCollector

    from torchrl_vd.train import threads

    with monkeypatch.context() as m:  # earlier tests may leave threads behind (Ray's): count them as told
        m.setattr(threading, "active_count", lambda: 1)
        m.setattr(threads, "thread_count", lambda: threads.TORCH_IMPORT_THREADS)
        assert OverlapCollector._start_method("cuda:0") == "spawn"
        assert OverlapCollector._start_method("cpu") == "fork"
        m.setattr(threading, "active_count", lambda: 2)  # a Python thread
        assert OverlapCollector._start_method("cpu") == "spawn"
        m.setattr(threading, "active_count", lambda: 1)
        m.setattr(threads, "thread_count", lambda: threads.TORCH_IMPORT_THREADS + 19)  # native ones (JAX's pool)
        assert OverlapCollector._start_method("cpu") == "spawn"
    runs = {}
    for method in ("fork", "spawn"):
        monkeypatch.setattr(OverlapCollector, "start_method", method)
        result = vd.train(linear_game_cfg("async", str(tmp_path / method)))
        runs[method] = ([r["train_return"] for r in result.metrics], [r["loss"] for r in result.metrics],
                        {k: v.clone() for k, v in result.loss_module.state_dict().items()})
    assert runs["fork"][:2] == runs["spawn"][:2]
    assert all(torch.equal(runs["fork"][2][k], runs["spawn"][2][k]) for k in runs["fork"][2])


def test_async_ctrl_c_checkpoints_and_the_run_resumes(tmp_path):
    """Ctrl-C to the whole process group (trainer and worker): checkpoint, clean exit, --resume finishes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from torchrl_vd.cli import main as cli_main

    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "torchrl_vd", "train", "--algo", "vdn", "--env", "matrix/m-step", "--frames", "400000",
           "--out", str(out), "--quiet", "--set", "num_envs=16", "--set", "frames_per_batch=256",
           "--set", "updates_per_batch=4", "--set", "env_kwargs.steps=4", "--set", "collector=async"]
    # setsid: the trainer leads a process group of its own, as a terminal's foreground job does
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=os.setsid)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["frames"] < 400_000
    assert len(_rows(out)) == summary["frames"] // 256
    assert cli_main(["train", "--resume", str(out), "--quiet", "--set", f"frames={summary['frames'] + 512}"]) == 0
    assert [int(r["frames"]) for r in _rows(out)] == list(range(256, summary["frames"] + 513, 256))
