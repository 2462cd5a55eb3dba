"""The library on an accelerator: every test takes a ``device`` and runs on ``cpu`` here (the default suite) and on
``cuda`` where there is a GPU (marked ``gpu``, skipped without CUDA: ``pytest -m gpu tests/test_gpu.py``, which
benchmarks/gpu_check.sh runs on the device machine; CI never needs it).

* Every registered algorithm trains a few batches on the device, on VMAS and on a matrix game: its networks, the
  replay buffer, the collected batches and the VMAS simulation all live there.
* The update moves no batch between host and device: no tensor is copied across devices, and the host reads
  one value per gradient step (the non-finite guard) for feed-forward agents (tests/_device.py counts both, and
  on CUDA the profiler's memcpy events).
* Many seeds in one process (``--seeds 0-63``) on the device.
* A checkpoint resumes on another device (CPU <-> CUDA), and a run evaluates on another device.
* The IGM evaluation on the device gives the CPU's numbers.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _device import CUDA, DEVICES, ON_CUDA, HostTraffic

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main
from torchrl_vd.train import memory
from torchrl_vd.train.algos import algorithms
from torchrl_vd.train.checkpoint import load_checkpoint
from torchrl_vd.train.algo_options import PQNOptions
from torchrl_vd.train.options import build_options
from torchrl_vd.train.evaluation import evaluate_run, greedy_rollout, igm_gap
from torchrl_vd.train.loop import Training
from torchrl_vd.train.resume import config_for_resume

ROOT = Path(__file__).resolve().parents[1]
ALGOS = sorted(algorithms())
T_VMAS = 10  # VMAS episode length here: one episode per env per batch
# small enough for seconds on a CPU; every algorithm's presets (MAVEN's recurrent agent) still apply
TINY = dict(num_envs=8, batch_size=32, updates_per_batch=2, hidden=(16,), eval_episodes=4, buffer_size=2000,
            progress=False, checkpoint_every=0)
ENVS = {
    "vmas/balance": dict(env_kwargs={"max_steps": T_VMAS}, frames_per_batch=8 * T_VMAS),
    "matrix/qtran": dict(frames_per_batch=8),
}
MONOTONIC = {"vdn", "qmix", "cw-qmix", "ow-qmix", "maven"}  # their joint value for the IGM check: Σ Q_i or a QMIX mixer
# the cpu variants kept in the default suite (the others are marked slow; their cuda variants all run with -m gpu)
FAST_ON_CPU = {("qmix", "vmas/balance"), ("maven", "matrix/qtran"), "qmix", "qtran", "qplex"}


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


REPLAY_ONLY = ("buffer_size", "batch_size", "updates_per_batch")  # PQN learns from each rollout: no replay buffer


def tiny(algo: str, env: str, device: str, out, batches: int = 2, **kw) -> vd.TrainConfig:
    fields = {**TINY, **ENVS[env], **kw}
    if algo == "pqn-vdn":
        fields = {k: v for k, v in fields.items() if k not in REPLAY_ONLY}
    return vd.TrainConfig(algo=algo, env=env, device=device, frames=batches * fields["frames_per_batch"],
                          out_dir=str(out), **fields)


def on(device: str, tensors) -> bool:
    return all(t.device.type == torch.device(device).type for t in tensors)


def on_devices(cases: list) -> list:
    """``(*case, device)`` for every case and device: cuda marked gpu; cpu marked slow unless in FAST_ON_CPU."""
    out = []
    for case in cases:
        case = case if isinstance(case, tuple) else (case,)
        name = "-".join(case)
        out.append(pytest.param(*case, "cuda", id=f"{name}-cuda", marks=ON_CUDA))
        fast = (case if len(case) > 1 else case[0]) in FAST_ON_CPU
        out.append(pytest.param(*case, "cpu", id=f"{name}-cpu", marks=[] if fast else [pytest.mark.slow]))
    return out


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("algo, env, device", on_devices([(a, e) for a in ALGOS for e in ENVS]))
def test_every_algorithm_trains_on_the_device(tmp_path, algo, env, device):
    cfg = tiny(algo, env, device, tmp_path / "run", checkpoint_every=ENVS[env]["frames_per_batch"])
    result = vd.train(cfg)
    s = result.summary
    if algo == "pqn-vdn":  # K epochs x M minibatches of each rollout
        opts = build_options(PQNOptions, cfg.loss_kwargs, "pqn-vdn loss")
        per_batch = int(opts.num_epochs) * int(opts.num_minibatches)
    else:
        per_batch = cfg.updates_per_batch
    assert (s["frames"], s["updates"], s["skipped_updates"]) == (cfg.frames, 2 * per_batch, 0)
    assert math.isfinite(s["final_eval_return"]) and math.isfinite(result.metrics[-1]["loss"])
    if env == "matrix/qtran":  # a greedy joint action pays one of the game's payoffs
        assert s["final_eval_return"] in (8.0, -12.0, 0.0) or -12.0 < s["final_eval_return"] < 8.0
    if algo != "iql":  # the IGM gap was evaluated on the device
        assert 0.0 <= s["final_igm_violation_rate"] <= 1.0 and s["final_igm_value_gap"] >= 0.0
    assert on(device, result.loss_module.parameters())
    assert on(device, (p for m in result.parts.extra_modules.values() for p in m.parameters()))  # MAVEN's z-policy
    assert result.env.device.type == torch.device(device).type
    if env.startswith("vmas"):  # the simulation itself runs there
        assert torch.device(result.env.base_env._env.device).type == torch.device(device).type
    saved = load_checkpoint(cfg.out_dir)  # read onto the CPU whatever the device (map_location)
    assert saved["frames"] == cfg.frames and on("cpu", saved["loss_module"].values())


def _filled_training(algo: str, device: str, out) -> Training:
    """A Training on VMAS with one collected batch in its buffer and two updates done (warm-up)."""
    training = Training([tiny(algo, "vmas/balance", device, out)], [Path(out)])
    batch = next(iter(training.collector))  # [num_envs, T]
    assert batch.device.type == torch.device(device).type
    training.learner.add(batch.reshape(1, *batch.shape))
    training.learner.update(2)
    return training


@pytest.mark.parametrize("algo", [a for a in ALGOS if a != "pqn-vdn"])  # the replay learner's update
def test_the_update_moves_no_batch_between_host_and_device(tmp_path, device, algo):
    training = _filled_training(algo, device, tmp_path / "run")
    storage = training.learner.replay_buffer.storage._storage
    assert on(device, storage.values(True, True))  # the replay buffer lives on the device
    steps = 4
    with HostTraffic(device) as traffic:
        losses = training.learner.update(steps)
    training.collector.shutdown()
    assert len(losses) == steps and on(device, losses)
    assert traffic.copies == [], traffic.describe()  # no tensor crossed between host and device
    if training.learner.recurrent:  # + the fused GRU's plan of where episodes start (a few values, no batch)
        assert traffic.n_reads <= 8 * steps, traffic.describe()
    else:  # exactly the guard's one bool per step: isfinite(loss) & isfinite(grad norm)
        assert dict(traffic.reads) == {"aten._local_scalar_dense": steps}, traffic.describe()
    if device == "cuda":
        assert traffic.memcpy["HtoD"] == 0, traffic.describe()
        assert traffic.memcpy["DtoH"] == traffic.n_reads, traffic.describe()  # each a value read, never a batch


# ------------------------------------------------------------------------------------------ many seeds
@pytest.mark.parametrize("device", [pytest.param("cpu", marks=pytest.mark.slow), pytest.param("cuda", marks=ON_CUDA)])
def test_64_seeds_in_one_process_on_the_device(tmp_path, device):
    out = tmp_path / "seeds"
    argv = ["train", "--algo", "qmix", "--env", "vmas/balance", "--seeds", "0-63", "--frames", str(2 * 8 * T_VMAS),
            "--out", str(out), "--quiet", "--set", f"device={device}", "--set", f"env_kwargs.max_steps={T_VMAS}"]
    for key, value in dict(TINY, frames_per_batch=8 * T_VMAS, hidden="[16]", checkpoint_every=8 * T_VMAS).items():
        if key != "progress":
            argv += ["--set", f"{key}={value}"]
    assert cli_main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == list(range(64)) and summary["vectorized"] is True and summary["frames"] == 160
    finals = summary["final_eval_return_per_seed"]
    assert len(finals) == 64 and all(math.isfinite(r) for r in finals)
    assert len(set(finals)) > 1  # 64 different seeds, not one run copied
    for k in (0, 63):
        seed = json.loads((out / f"seed_{k}" / "summary.json").read_text())
        assert (seed["seed"], seed["frames"], seed["updates"]) == (k, 160, 4)
        state = load_checkpoint(out / f"seed_{k}")
        assert state["config"]["device"] == device and state["config"]["seed"] == k


def test_many_seeds_stack_on_the_device(tmp_path, device):
    """The fast cpu check of the stacking itself: 3 seeds, their stacked networks, buffer and batches there."""
    cfg = tiny("qmix", "vmas/balance", device, tmp_path / "seeds", seeds=(0, 1, 2))
    from torchrl_vd.train.population import seed_config

    runs = [seed_config(cfg, k, tmp_path / "seeds") for k in cfg.seeds]
    training = Training(runs, [Path(r.out_dir) for r in runs])
    results = training.run()
    assert [r.summary["updates"] for r in results] == [4, 4, 4]
    assert on(device, training.learner.params) and all(p.shape[0] == 3 for p in training.learner.params)
    assert on(device, training.learner.replay_buffer.storage._storage.values(True, True))
    assert training.learner.replay_buffer.storage._storage.shape[1] == 3  # [capacity, N]


# ------------------------------------------------------------------------------------------ checkpoints
PAIRS = [pytest.param("cpu", "cpu", id="cpu-to-cpu"),
         pytest.param("cuda", "cpu", id="cuda-to-cpu", marks=ON_CUDA),
         pytest.param("cpu", "cuda", id="cpu-to-cuda", marks=ON_CUDA)]


@pytest.mark.parametrize("src, dst", PAIRS)
def test_a_checkpoint_resumes_on_another_device(tmp_path, src, dst):
    run = tmp_path / "run"
    fpb = ENVS["vmas/balance"]["frames_per_batch"]
    # running reward statistics: state outside the networks that must follow the run to its new device
    vd.train(tiny("qmix", "vmas/balance", src, run, batches=1, checkpoint_every=fpb, standardise_rewards=True))
    saved = load_checkpoint(run)
    assert saved["config"]["device"] == src
    cfg = config_for_resume(run).with_overrides({"device": dst, "frames": 2 * fpb})
    training = Training([cfg], [run])  # restores in its constructor
    learner = training.learner
    weights = learner.loss.state_dict()
    assert set(weights) == set(saved["loss_module"])
    for key, value in saved["loss_module"].items():
        assert weights[key].device.type == dst and torch.equal(weights[key].cpu(), value), key
    opt = learner.optimizer.state_dict()["state"]
    assert opt and all(on(dst, [s["exp_avg"], s["exp_avg_sq"]]) for s in opt.values())
    stored = learner.replay_buffer.storage._storage[: len(learner.replay_buffer)]
    assert len(learner.replay_buffer) == fpb and on(dst, stored.values(True, True))
    assert torch.equal(stored["next", "reward"].cpu(), saved["replay_buffer"]["data"]["next"]["reward"])
    assert on(dst, [learner.reward_stats.mean, learner.reward_stats.var])
    assert torch.equal(learner.reward_stats.mean.cpu(), saved["reward_stats"]["mean"])
    result = training.run()[0]
    assert (result.summary["frames"], result.summary["updates"]) == (2 * fpb, 4)
    assert load_checkpoint(run)["config"]["device"] == dst


@pytest.mark.parametrize("src, dst", PAIRS)
def test_a_run_evaluates_on_another_device(tmp_path, src, dst):
    """MAVEN: the checkpoint's networks and its z-policy (an extra module the env transform calls) move together."""
    run = tmp_path / "run"
    cfg = tiny("maven", "matrix/qtran", src, run, checkpoint_every=ENVS["matrix/qtran"]["frames_per_batch"])
    summary = vd.train(cfg).summary
    assert cli_main(["eval", str(run), "--device", dst]) == 0  # torchrl-vd eval RUN --device DST
    out = json.loads((run / "eval.json").read_text())
    assert out["episodes"] == cfg.eval_episodes and out["frames"] == cfg.frames
    assert out["eval_return"] == pytest.approx(summary["final_eval_return"], abs=1e-5)  # one-step game: exact play
    assert out["igm_violation_rate"] == pytest.approx(summary["final_igm_violation_rate"], abs=1e-6)
    if not CUDA:  # on a machine without one, a GPU run's evaluation names the flag that evaluates it here
        with pytest.raises(ValueError, match=r"on device='cuda'.*--device cpu"):
            evaluate_run(run, device="cuda")


# ------------------------------------------------------------------------------------------ IGM evaluation
@pytest.mark.parametrize("algo, device", on_devices([a for a in ALGOS if a != "iql"]))
def test_the_igm_evaluation_on_the_device_gives_the_cpu_numbers(tmp_path, algo, device):
    """The IGM gap of the same networks on the same greedy rollout, computed on the CPU and on the device."""
    training = Training([tiny(algo, "vmas/balance", "cpu", tmp_path / "run")], [tmp_path / "run"])
    training.collector.shutdown()
    roll, _, valid = greedy_rollout(training.greedy, training.eval_env, seed=0)  # [E, T]
    here = igm_gap(training.pop.loss, roll, valid, max_joint_actions=64, max_states=32)
    there = igm_gap(copy.deepcopy(training.pop.loss).to(device), roll.to(device), valid.to(device),
                    max_joint_actions=64, max_states=32)
    assert there["igm_violation_rate"] == here["igm_violation_rate"]
    assert there["igm_value_gap"] == pytest.approx(here["igm_value_gap"], rel=1e-4, abs=1e-6)
    if algo in MONOTONIC:  # a monotonic Q_tot keeps IGM (Rashid et al. 2018, Eq. 5), on any device
        assert (here["igm_violation_rate"], there["igm_violation_rate"]) == (0.0, 0.0)
        assert here["igm_value_gap"] == pytest.approx(0.0, abs=1e-5)


# ------------------------------------------------------------------------------------------ memory
def test_the_buffer_is_checked_against_the_gpus_memory(monkeypatch):
    """On a GPU the buffer, its checkpoint copy and the batch live in the GPU's memory: that is what bounds them."""
    monkeypatch.setattr(memory, "accelerator_memory", lambda device: 50 * 2**20 if "cuda" in str(device) else None)
    monkeypatch.setattr(memory, "available_memory", lambda: 100 * 2**30)  # plenty on the host
    env = vd.make_env("matrix/qtran", num_envs=4)
    cfg = SimpleNamespace(device="cuda:0", buffer_size=1_000_000, frames_per_batch=4)
    with pytest.raises(MemoryError, match=r"but the GPU \(cuda:0\) has 50\.0 MiB available"):
        memory.check_memory(env, cfg, 1, 1)
    memory.check_memory(env, SimpleNamespace(**{**vars(cfg), "device": "cpu"}), 1, 1)  # the host's memory: fits


# ------------------------------------------------------------------------------------------ the GPU check script
def test_the_gpu_check_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh --device cpu --quick: its tests step and every figure, on this CPU."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["device"] == "cpu" and figures["quick"] is True and figures["tests"]["exit_code"] == 0
    for name in ("vmas_collection", "qmix_update", "mpe_gru256_update", "many_seeds"):
        assert figures[name], name
    assert all(r["env_steps_per_s"] > 0 for r in figures["vmas_collection"])
    assert all(r["ms"] > 0 for r in figures["qmix_update"] + figures["mpe_gru256_update"])
    seeds = {r["seeds"]: r for r in figures["many_seeds"]}
    assert set(seeds) == {1, figures["many_seeds_n"]} and all(r["seed_frames_per_s"] > 0 for r in seeds.values())
    assert "VMAS balance collection" in proc.stdout and "seed-frames/s" in proc.stdout
