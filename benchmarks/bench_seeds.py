"""Many seeds in one process: seed-frames/s of one N-seed process vs N sequential single runs.

For each workload and each N, two measurements, each a whole process (start-up, env and network
construction, training, final evaluation and files) timed from spawn to exit:

* ``vectorized``: one process ``train(TrainConfig(seeds=0..N-1))``;
* ``sequential``: N processes ``train(TrainConfig(seed=k))`` one after the other (``--sequential-max``
  caps how many are run; the time of the others is the mean of those run: every seed does the same work).

The two sides are interleaved: with ``--rounds R`` each N is measured R times, the vectorized process going
second in even rounds and first in odd ones, one row per round (a load change hits both sides).

seed-frames/s = N x frames per seed / wall seconds; the speedup is vectorized over sequential. Each row also gives
the final greedy return (``final_eval_return``) of every sequential run run and of every vectorized seed (mean ±
sd and the values): the two sides must learn the same distribution of outcomes.
Targets: balance 8 seeds >= 4x, matrix 8 seeds >= 8x, the e2e config >= 1.5x.

Workloads:

* ``balance``: VMAS balance (3 agents, 100-step episodes) with the library's default networks and learner
  (TrainConfig defaults: MLP 64x64, 32 envs x 100 steps per batch, 50 updates of batch 128);
* ``matrix``: the QTRAN matrix game with the TrainConfig defaults (32 envs, 3200 frames and 50 updates per batch);
* ``gru``: GRU agents (QMIX) on the m-step game, m = 10, with tests/test_maven.py's learner (``WORKLOADS``);
* ``pettingzoo``: the ``pettingzoo`` preset on simple_spread (GRU QMIX; raw Python envs, stepped in turn);
* ``busy``: the e2e learner shape (VMAS balance 4 agents, 60 envs x 100 steps, 200 updates of 128 per batch) with
  the default MLP 64x64 agents: a seed's learner is busy (200 updates per 6,000 frames) but its matrix products are
  small, so stacking seeds pays (run it with ``--iters 5``: 30k frames per seed). Target: 8 seeds >= 4x;
* ``e2e``: bench_e2e.py's config: VMAS balance 4 agents, 60 envs x 100 steps, 200 updates per batch of
  128, MLP 2x256. Its FLOP-bound ceiling is printed: the FLOPs of one QMIX update
  (agents forward + backward on the current step, two forward passes on the next, mixer) against this
  machine's measured fp32 matmul rate give the most updates/s, hence seed-frames/s, any number of
  vectorized seeds could reach when the learner is the bottleneck.

Every row prints ``cat /proc/loadavg`` (numbers from a loaded box are not comparable; take the final
table on a quiet one).

    python benchmarks/bench_seeds.py                                   # full table (~1-2 h on 2 cores)
    python benchmarks/bench_seeds.py --workloads matrix --ns 1,2 --iters 1 --sequential-max 1   # smoke
    python benchmarks/bench_seeds.py --workloads busy --ns 8 --iters 5 --collector async   # overlapped collection
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "balance": dict(algo="qmix", env="vmas/balance", env_kwargs={"max_steps": 100}),
    "matrix": dict(algo="qmix", env="matrix/qtran"),
    "e2e": dict(algo="qmix", env="vmas/balance", env_kwargs={"n_agents": 4, "max_steps": 100}, num_envs=60,
                frames_per_batch=6000, updates_per_batch=200, batch_size=128, hidden=(256, 256)),
    "busy": dict(algo="qmix", env="vmas/balance", env_kwargs={"n_agents": 4, "max_steps": 100}, num_envs=60,
                 frames_per_batch=6000, updates_per_batch=200, batch_size=128, hidden=(64, 64)),
    # recurrent agents: tests/test_maven.py's m-step learner (GRU 64, 16 envs x one 10-step episode per batch,
    # one update of 32 sequences per episode) with QMIX; the vectorized run unrolls the GRU cell by cell
    "gru": dict(algo="qmix", env="matrix/m-step", env_kwargs={"steps": 10}, agent="gru", hidden=(64,), num_envs=16,
                frames_per_batch=160, updates_per_batch=16, batch_size=320, buffer_size=10_000, optimizer="rmsprop",
                lr=5e-4, target_update=200),
    # the `pettingzoo` preset (GRU 64, 32 envs x 25 steps, 32 updates of 32 episodes): N x 32 raw mpe2 envs in one
    # adapter, stepped in turn; vectorizing seeds batches the learner, not the env
    "pettingzoo": dict(algo="qmix", env="pettingzoo/simple_spread_v3", agent="gru", hidden=(64,), frames_per_batch=800,
                       batch_size=800, updates_per_batch=32, buffer_size=125_000, eps_frames=50_000, target_update=200),
}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def worker(spec: dict) -> None:
    """One training process: ``iters`` batches per seed of ``spec["workload"]``, seeds or one seed; optional
    ``spec["device"]`` and ``spec["overrides"]`` (TrainConfig fields over the workload's: benchmarks/gpu_check.py)."""
    import torch

    import torchrl_vd as vd

    torch.set_num_threads(1)
    base = {**WORKLOADS[spec["workload"]], **spec.get("overrides", {})}  # overrides: e.g. smaller for a dry run
    cfg = vd.TrainConfig(**base, progress=False, checkpoint_every=0, igm_eval=False, eval_episodes=4,
                         device=spec.get("device", "cpu"), out_dir=spec["out"],
                         **({"seeds": tuple(range(spec["n"]))} if spec["vectorized"] else {"seed": spec["seed"]}))
    cfg = cfg.with_overrides({"frames": spec["iters"] * cfg.frames_per_batch})  # the batch the presets chose
    vd.train(cfg)
    print(json.dumps({"frames_per_seed": cfg.frames}))


def run(spec: dict) -> tuple[float, int, float]:
    """Wall seconds of one worker process, its frames per seed, and its CPU seconds (user + system: the time it
    held a core, which other processes on a shared box do not inflate as much as the wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])["frames_per_seed"], cpu


def final_return(run_dir: Path) -> float:
    """A finished run's ``final_eval_return`` (its summary.json)."""
    return float(json.loads((run_dir / "summary.json").read_text())["final_eval_return"])


def spread(values: list[float]) -> str:
    """``mean ± sd (n)`` and the values, to compare the two sides' distributions of final returns."""
    import statistics

    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    shown = ", ".join(f"{v:.2f}" for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"{statistics.mean(values):.2f} ± {sd:.2f} (n={len(values)}: {shown})"


def matmul_flops() -> float:
    """This machine's fp32 matmul rate (1 thread, 512x512x512, best of 5)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(20):
            a @ b
        best = min(best, (time.perf_counter() - t) / 20)
    return 2 * 512**3 / best


def qmix_update_flops(n_agents=4, obs_dim=16, n_actions=9, hidden=(256, 256), batch=128, state_dim=64, embed=32,
                      hyper=64) -> float:
    """FLOPs of one QMIX gradient step (double Q): agents fwd+bwd (3x fwd) on the current step, fwd on the next
    step online and target; the mixer's hypernetworks likewise (online fwd+bwd, target fwd)."""
    sizes = [obs_dim, *hidden, n_actions]
    agent_fwd = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * n_agents * batch
    mixer_fwd = 2 * batch * (state_dim * hyper + hyper * embed * n_agents + state_dim * hyper + hyper * embed
                             + state_dim * embed + state_dim * embed + embed) + 2 * batch * (n_agents * embed + embed)
    return 3 * agent_fwd + 2 * agent_fwd + 3 * mixer_fwd + mixer_fwd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workloads", default="balance,matrix,e2e")
    p.add_argument("--ns", default="1,2,4,8,16,32,64", help="numbers of seeds")
    p.add_argument("--iters", type=int, default=5, help="collected batches per seed")
    p.add_argument("--sequential-max", type=int, default=4, help="single runs actually run per row (mean x N)")
    p.add_argument("--rounds", type=int, default=1,
                   help="interleaved rounds per N (odd rounds run the vectorized process first)")
    p.add_argument("--out", default="/tmp/torchrl_vd_bench_seeds")
    p.add_argument("--collector", default="single", choices=("single", "async"),
                   help="the N-seed process's collector (async: a worker collects the next batch of every seed "
                        "while the learner trains)")
    p.add_argument("--sequential-collector", default="single", choices=("single", "async"),
                   help="the single runs' collector")
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    import shutil

    out = Path(args.out)
    print(f"collectors: N seeds in one process {args.collector!r}, single runs {args.sequential_collector!r}")
    print("| workload | N | sequential s | vectorized s | seq seed-frames/s | vec seed-frames/s | speedup | "
          "CPU s seq / vec | CPU speedup | seq final greedy returns | vec final greedy returns | loadavg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for workload in args.workloads.split(","):
        single_s = None
        for n in [int(x) for x in args.ns.split(",")]:
            for rnd in range(args.rounds):
                shutil.rmtree(out, ignore_errors=True)
                runs = min(n, args.sequential_max)

                def sequential() -> tuple[float, float]:
                    seq = [run({"workload": workload, "iters": args.iters, "vectorized": False, "seed": k, "n": 1,
                                "out": str(out / f"single{k}"),
                                "overrides": {"collector": args.sequential_collector}}) for k in range(runs)]
                    return sum(w for w, _, _ in seq) / runs * n, sum(c for _, _, c in seq) / runs * n

                def vectorized() -> tuple[float, int, float]:
                    return run({"workload": workload, "iters": args.iters, "vectorized": True, "n": n,
                                "out": str(out / "vec"), "overrides": {"collector": args.collector}})

                # interleaved: odd rounds run the vectorized process first, so a load change hits both sides
                if rnd % 2 == 0:
                    seq_s, seq_cpu = sequential()
                    vec_s, frames, vec_cpu = vectorized()
                else:
                    vec_s, frames, vec_cpu = vectorized()
                    seq_s, seq_cpu = sequential()
                single_s = single_s or seq_s / n
                seq_ret = [final_return(out / f"single{k}") for k in range(runs)]
                vec_ret = [final_return(out / "vec" / f"seed_{k}") for k in range(n)]
                print(f"| {workload} | {n} | {seq_s:.1f} | {vec_s:.1f} | {n * frames / seq_s:.0f} | "
                      f"{n * frames / vec_s:.0f} | {seq_s / vec_s:.2f}x | {seq_cpu:.1f} / {vec_cpu:.1f} | "
                      f"{seq_cpu / vec_cpu:.2f}x | {spread(seq_ret)} | {spread(vec_ret)} | "
                      f"{loadavg()} |", flush=True)
        if workload == "e2e":
            import torchrl_vd as vd

            info = vd.describe_env(vd.make_env("vmas/balance", num_envs=1, **WORKLOADS["e2e"]["env_kwargs"]))
            flops = qmix_update_flops(info.n_agents, int(info.obs_shape[0]), info.n_actions, state_dim=int(info.state_shape[0]))
            rate = matmul_flops()
            fpb, updates = WORKLOADS["e2e"]["frames_per_batch"], WORKLOADS["e2e"]["updates_per_batch"]
            ceiling = rate / flops * fpb / updates  # seed-frames/s if the learner ran at the matmul rate
            print(f"\ne2e FLOP-bound ceiling: {flops / 1e6:.1f} MFLOP per update, matmul {rate / 1e9:.1f} GFLOP/s "
                  f"-> {rate / flops:.0f} updates/s -> {ceiling:.0f} seed-frames/s (learner only; the single run "
                  f"measured {args.iters * fpb / single_s:.0f}, so at most {ceiling / (args.iters * fpb / single_s):.1f}x "
                  f"from vectorizing seeds) | {loadavg()}", flush=True)


if __name__ == "__main__":
    main()
