"""The figures of benchmarks/gpu_check.sh, measured by the existing benchmarks' own code on one device.

* VMAS balance collection (bench_scaling.envs_scaling: train()'s collection path, 4 agents, ε-greedy 2x256 MLP,
  torchrl Collector, next to raw VMAS stepping) at 1024 / 4096 / 16384 envs, env-steps/s on the device and on
  this machine's CPU in the same run (``--cpu-threads`` torch threads), and their ratio;
* the QMIX gradient step (bench_update: VMAS balance data, MLP 2x256, no double Q, fused Adam, FusedSoftUpdate,
  chunked sampling = train()'s step) at batch 128 and 4096, ms per step;
* the MPE configuration's GRU-256 gradient step (the ``mpe`` suite's MARLlib config, torchrl_vd/reproduce/suites.py:
  Linear 128 + tanh, GRU 256, QMIX embed 256 with one-layer hypernetworks, RMSprop, hard target updates, per-minibatch
  reward standardisation) through train()'s own Learner, on 32 episodes x 25 steps of simple_spread-shaped
  sequences (bench_gru.sequences: 3 agents, obs 18, 5 actions), ms per step;
* 64 seeds of the VMAS preset in one process against one seed (bench_seeds: whole processes, spawn to exit),
  seed-frames/s; also the steady rate between the first and last collected batch (the runs' metrics.csv).

Every timing waits for the device (``_common.sync``). ``--quick``: smaller sizes (the dry run on a CPU, tested in
tests/test_gpu.py). Prints the tables and the device's name; writes the figures as JSON to ``--out``.

    python benchmarks/gpu_check.py --device cuda --out "$OUT/gpu_check.json"
    python benchmarks/gpu_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _common  # noqa: E402

SIZES = {
    # buffer: bench_update's random-play VMAS buffer (envs x steps); seed_overrides: TrainConfig fields of the runs
    "full": dict(envs=(1024, 4096, 16384), env_steps=20, cpu_env_steps=5, rounds=3, batches=(128, 4096),
                 buffer=(60, 100), update_steps=32, gru_episodes=32, gru_reps=10, seeds=64, seed_iters=3,
                 seed_overrides={}),
    "quick": dict(envs=(64, 128, 256), env_steps=5, cpu_env_steps=5, rounds=1, batches=(128, 512), buffer=(16, 40),
                  update_steps=8, gru_episodes=4, gru_reps=3, seeds=2, seed_iters=2,
                  seed_overrides={"num_envs": 8, "frames_per_batch": 160, "updates_per_batch": 5,
                                  "env_kwargs": {"max_steps": 20}}),
}
MPE_STEPS = 25  # simple_spread's episode: 32 envs x 25 steps per collected batch


# ------------------------------------------------------------------------------------------ collection
def collection(device: str, size: dict, cpu_threads: int) -> list[dict]:
    """env-steps/s of train()'s collection path (and raw VMAS) at each size, on the device and on the CPU."""
    import torch

    from bench_scaling import envs_scaling

    def measure(dev: str, steps: int) -> dict:
        res = envs_scaling(size["envs"], size["rounds"], steps, device=dev)
        return {ne: (_common.median(r["collect_wall"]), _common.median(r["raw_wall"])) for ne, r in res.items()}

    here = measure(device, size["env_steps"])
    if device == "cpu":
        cpu = here
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(cpu_threads)
        try:
            cpu = measure("cpu", size["cpu_env_steps"])
        finally:
            torch.set_num_threads(threads)
    return [{"num_envs": ne, "env_steps_per_s": here[ne][0], "raw_vmas_env_steps_per_s": here[ne][1],
             "cpu_env_steps_per_s": cpu[ne][0], "cpu_raw_vmas_env_steps_per_s": cpu[ne][1],
             "speedup_vs_cpu": here[ne][0] / cpu[ne][0]} for ne in size["envs"]]


# ------------------------------------------------------------------------------------------ gradient steps
def qmix_update(device: str, size: dict) -> list[dict]:
    """ms per QMIX gradient step at each batch size (train()'s step: bench_update's variant 4)."""
    from bench_update import VARIANTS, balance_buffer, our_loss, step_fn

    rows = []
    for batch in size["batches"]:
        env, rb = balance_buffer(*size["buffer"], batch_size=batch, device=device)
        run = step_fn(our_loss(env, device=device), rb, steps=size["update_steps"], device=device,
                      **VARIANTS["4 +chunked sampling (= train())"])
        seconds = _common.time_call(run, repeats=size["rounds"] + 2, warmup=1)
        rows.append({"batch": batch, "ms": 1e3 * seconds / size["update_steps"]})
    return rows


def mpe_learner(device: str, episodes: int):
    """train()'s Learner in the ``mpe`` suite's QMIX configuration, its buffer filled with ``episodes`` sequences."""
    import torch

    import torchrl_vd as vd
    from bench_gru import N_ACTIONS, N_AGENTS, OBS_DIM, sequences
    from torchrl_vd.envs.registry import EnvInfo
    from torchrl_vd.reproduce.suites import MPE_ALGO, MPE_OVERRIDES, MPE_TASK
    from torchrl_vd.train.algos import get_algo
    from torchrl_vd.train.learner import Learner

    task = "pettingzoo/simple_spread_v3"
    fields = {**MPE_OVERRIDES, **MPE_TASK[task], **MPE_ALGO["qmix"], "checkpoint_every": 0}
    fields.update(buffer_size=4 * episodes * MPE_STEPS, batch_size=episodes * MPE_STEPS,
                  frames_per_batch=episodes * MPE_STEPS, num_envs=episodes)  # a small buffer: same step
    cfg = vd.TrainConfig(algo="qmix", env=task, device=device, progress=False, **fields)
    info = EnvInfo(n_agents=N_AGENTS, n_actions=N_ACTIONS, obs_shape=(OBS_DIM,), state_shape=(N_AGENTS * OBS_DIM,),
                   has_action_mask=False, batch_size=(episodes,))
    loss = get_algo("qmix").parts(cfg, info).to(device).loss_module
    learner = Learner(cfg, loss, time_steps=MPE_STEPS)
    data = sequences(episodes, MPE_STEPS, "none", hidden=cfg.hidden[-1])  # [E, T]: one episode each
    data["is_init"][:, 0] = True
    data["next", "truncated"] = torch.zeros_like(data["next", "done"])
    data["next", "truncated"][:, -1] = True  # the 25-step limit
    data["next", "done"] = data["next", "terminated"] | data["next", "truncated"]
    learner.add(data.to(device).unsqueeze(0))  # [1, E, T], as the trainer adds a batch
    return learner


def mpe_update(device: str, size: dict) -> list[dict]:
    """ms per gradient step of the MPE configuration's GRU-256 QMIX (Learner.update: sample, standardise, loss,
    backward, clip, RMSprop, hard target update)."""
    learner = mpe_learner(device, size["gru_episodes"])

    def run():
        learner.update(4)
        _common.sync(device)

    seconds = _common.time_call(run, repeats=size["gru_reps"], warmup=1)
    return [{"episodes": size["gru_episodes"], "steps": MPE_STEPS, "ms": 1e3 * seconds / 4}]


# ------------------------------------------------------------------------------------------ many seeds
def many_seeds(device: str, size: dict, out: Path) -> list[dict]:
    """seed-frames/s of N seeds of the VMAS preset in one process, and of one seed (bench_seeds' processes)."""
    import os

    import bench_seeds

    # the worker processes import this checkout's torchrl_vd
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    rows = []
    for n in (1, size["seeds"]):
        run_dir = out / f"seeds{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        spec = {"workload": "balance", "iters": size["seed_iters"], "vectorized": n > 1, "n": n, "seed": 0,
                "out": str(run_dir), "device": device, "overrides": size["seed_overrides"]}
        wall, frames, _cpu = bench_seeds.run(spec)
        metrics = run_dir / ("seed_0" if n > 1 else "") / "metrics.csv"
        with open(metrics) as f:
            batches = list(csv.DictReader(f))
        first, last = batches[0], batches[-1]
        steady = ((float(last["frames"]) - float(first["frames"])) / (float(last["time"]) - float(first["time"]))
                  if len(batches) > 1 else float("nan"))
        rows.append({"seeds": n, "frames_per_seed": frames, "process_s": wall, "seed_frames_per_s": n * frames / wall,
                     "steady_seed_frames_per_s": n * steady})
    return rows


# ------------------------------------------------------------------------------------------ report
def report(figures: dict) -> str:
    t = _common.table
    dev = figures["device"]
    lines = [f"device: {dev} ({figures['device_name']}); CPU comparison with {figures['cpu_threads']} torch thread(s)"
             f"{' (quick sizes)' if figures['quick'] else ''}"
             f"{'; a dry run: the device is this CPU, so the cpu columns repeat it' if dev == 'cpu' else ''}", "",
             "VMAS balance collection (4 agents, train()'s collection path; env-steps/s)"]
    lines.append(t(["num_envs", f"{dev} env-steps/s", "cpu env-steps/s", f"{dev} / cpu", f"raw VMAS {dev}",
                    "raw VMAS cpu"],
                   [[r["num_envs"], r["env_steps_per_s"], r["cpu_env_steps_per_s"], r["speedup_vs_cpu"],
                     r["raw_vmas_env_steps_per_s"], r["cpu_raw_vmas_env_steps_per_s"]]
                    for r in figures["vmas_collection"]]))
    lines += ["", "QMIX gradient step (VMAS balance data, MLP 2x256; train()'s step)"]
    lines.append(t(["batch", "ms / step"], [[r["batch"], r["ms"]] for r in figures["qmix_update"]]))
    lines += ["", "MPE config GRU-256 QMIX gradient step (Learner.update)"]
    lines.append(t(["episodes x steps", "ms / step"],
                   [[f"{r['episodes']} x {r['steps']}", r["ms"]] for r in figures["mpe_gru256_update"]]))
    lines += ["", "Many seeds of the VMAS preset in one process (whole process, spawn to exit; steady: batches only)"]
    lines.append(t(["seeds", "process s", "seed-frames/s", "steady seed-frames/s"],
                   [[r["seeds"], r["process_s"], r["seed_frames_per_s"], r["steady_seed_frames_per_s"]]
                    for r in figures["many_seeds"]]))
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    p.add_argument("--quick", action="store_true", help="small sizes (the CPU dry run)")
    p.add_argument("--cpu-threads", type=int, default=1, help="torch threads of the CPU comparison (default 1)")
    p.add_argument("--out", default=None, help="JSON file for the figures (default: benchmarks/results/gpu_check.json)")
    p.add_argument("--tests-exit-code", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tests-seconds", type=float, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    _common.setup()
    import torch

    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {a.device}: CUDA is not available here (torch {torch.__version__}); "
                         "use --device cpu --quick for a dry run.")
    size = SIZES["quick" if a.quick else "full"]
    figures = {"device": a.device, "device_name": _common.device_name(a.device), "quick": a.quick,
               "cpu_threads": a.cpu_threads, "machine": _common.machine(), "sizes": size,
               "tests": {"exit_code": a.tests_exit_code, "seconds": a.tests_seconds}, "stage_seconds": {}}
    print(f"device {a.device}: {figures['device_name']}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    stages = [("vmas_collection", lambda: collection(a.device, size, a.cpu_threads)),
              ("qmix_update", lambda: qmix_update(a.device, size)),
              ("mpe_gru256_update", lambda: mpe_update(a.device, size)),
              ("many_seeds", lambda: many_seeds(a.device, size, work))]
    for name, stage in stages:
        t = time.perf_counter()
        figures[name] = stage()
        figures["stage_seconds"][name] = round(time.perf_counter() - t, 1)
        print(f"  {name}: {figures['stage_seconds'][name]} s", flush=True)
    figures["many_seeds_n"] = size["seeds"]
    shutil.rmtree(work, ignore_errors=True)
    text = report(figures)
    figures["report"] = text
    print("\n" + text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), **figures}, indent=2, default=str))
        print(f"\nwrote {a.out}")
    else:
        print(f"\nwrote {_common.write_results('gpu_check', figures)}")
    return figures


if __name__ == "__main__":
    main()
