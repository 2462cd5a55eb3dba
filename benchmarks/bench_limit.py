"""How close is train() to its limits? env-only + learner-only vs the full loop, bench_e2e's config.

* env-only: 60 VMAS balance envs (4 agents) x 100 steps with random actions through our env (same
  transforms as train(): RewardSum; partial resets included), ``env.rollout(break_when_any_done=False)``.
* learner-only: 200 gradient steps of train()'s update (chunked sampling, fused Adam, FusedSoftUpdate,
  grad clip 5) on a buffer of random-action transitions; QMIX, MLP 2x256, batch 128, no double Q.
* loop: ``train()`` itself with the bench_e2e config; per-iteration time from its metrics.csv columns
  (``time`` for wall, ``cpu_time`` for CPU), iterations after the first.

efficiency = (t_env + t_learn) / t_loop: 1.0 means the loop adds nothing to the env and the learner.

* loop async: ``train(collector="async")`` with the same config: a worker process collects batch k+1
  while the learner trains on batch k. Its ideal is max(t_env, t_learn) per iteration, so besides the
  efficiency (up to (t_env + t_learn) / max(t_env, t_learn) = 1.6-1.7 here) the table gives the overlap
  efficiency max(t_env, t_learn) / t_loop (1.0 = perfect overlap). Its CPU time counts the worker's
  collecting CPU seconds too; it pays only with a free second core (check ``uptime``).

``--async-proto`` also times a prototype that is NOT part of train(): the same update loop fed by
torchrl's asynchronous collector (one worker process stepping the 60 envs while this process trains;
the collecting policy lags one batch behind and gets new weights after each batch). It measures what
overlapping collection with learning on the second core would give; its wall time depends on that
core being free.
Reported in CPU time (robust to the other processes on a shared box) and in wall time. The env/learner
parts are measured in rounds before and after the loop run; each figure is a median.

    python benchmarks/bench_limit.py [--rounds 3] [--iters 4] [--no-async]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BALANCE_KWARGS, median, setup, table, write_results  # noqa: E402
from bench_update import VARIANTS, balance_buffer, our_loss, step_fn  # noqa: E402


def timed(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - t, time.thread_time() - c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="env-only/learner-only repeats, before and after the loop")
    p.add_argument("--iters", type=int, default=4, help="train() iterations (the first is not counted)")
    p.add_argument("--async-proto", action="store_true", help="also time the async-collection prototype")
    p.add_argument("--no-async", action="store_true", help="skip the train(collector='async') loop")
    p.add_argument("--thread-proto", action="store_true",
                   help="also time env-only in a background thread overlapping learner-only (the thread design)")
    a = p.parse_args()
    setup()
    import torch
    from torchrl.envs import RewardSum, TransformedEnv

    import torchrl_vd as vd
    from torchrl_vd.envs.registry import make_env

    env = TransformedEnv(make_env("vmas/balance", num_envs=60, seed=1, **BALANCE_KWARGS),
                         RewardSum(in_keys=["reward"], out_keys=["episode_reward"]))
    data_env, rb = balance_buffer(capacity=60 * 100 * a.iters)
    learner = step_fn(our_loss(data_env), rb, steps=200, **VARIANTS["4 +chunked sampling (= train())"])

    def env_only():
        with torch.no_grad():
            env.rollout(100, break_when_any_done=False)  # random actions; early terminations reset per env

    env_only()
    learner()
    env_t, learn_t = [], []

    def measure():
        for _ in range(a.rounds):
            env_t.append(timed(env_only))
            learn_t.append(timed(learner))

    measure()
    frames = a.iters * 6000
    cfg = vd.TrainConfig(
        algo="qmix", env="vmas/balance", env_kwargs=dict(BALANCE_KWARGS), num_envs=60, frames=frames,
        frames_per_batch=6000, updates_per_batch=200, batch_size=128, hidden=(256, 256), lr=5e-5, grad_clip=5.0,
        target_update=0.005, eps_start=0.8, eps_end=0.01, eps_frames=frames // 3, double_q=False,
        buffer_size=frames, eval_episodes=2, progress=False, out_dir="/tmp/torchrl_vd_bench_limit")
    loops = {"single": per_iteration(vd.train(cfg).metrics)}
    if not a.no_async:
        loops["async"] = per_iteration(vd.train(cfg.with_overrides({"collector": "async"})).metrics)
    measure()
    proto = async_proto(cfg, a.iters) if a.async_proto else None
    threads = thread_proto(env_only, learner, a.rounds) if a.thread_proto else None

    res = {}
    for unit, i, key in (("CPU", 1, "cpu"), ("wall", 0, "wall")):
        te, tl = median(x[i] for x in env_t), median(x[i] for x in learn_t)
        for name, loop in loops.items():
            tp = median(loop[key])
            res[f"{unit} {name}"] = {"env_s": te, "learn_s": tl, "loop_s": tp, "efficiency": (te + tl) / tp,
                                     "overlap_efficiency": max(te, tl) / tp}
    headers = ["time per iteration (6000 frames + 200 updates)", "env-only s", "learner-only s", "env + learner s",
               "loop s", "efficiency (env + learner) / loop", "overlap efficiency max(env, learner) / loop"]
    rows_t = [[f"{unit} (loop: {'train()' if unit.endswith('single') else 'train(collector=async)'})",
               r["env_s"], r["learn_s"], r["env_s"] + r["learn_s"], r["loop_s"], r["efficiency"],
               r["overlap_efficiency"]] for unit, r in res.items()]
    print(f"QMIX on vmas/balance (4 agents, 60 envs x 100 steps, 200 updates/iter); env/learner medians of "
          f"{2 * a.rounds}, loop median of {a.iters - 1} iterations; 1 torch thread; load {os.getloadavg()[0]:.2f}")
    print(table(headers, rows_t))
    for name, loop in loops.items():
        print(f"\nloop {name} wall split: waiting for / collecting the batch {median(loop['collect']):.2f} s, "
              f"updates {median(loop['update']):.2f} s per iteration")
    if proto:
        loop_wall = loops["single"]["wall"]
        wall = median(proto["wall"])
        print(f"async-collection prototype (not train()): {wall:.2f} s per iteration wall "
              f"({6000 / wall:.0f} frames/s) vs train() {median(loop_wall):.2f} s "
              f"({median(loop_wall) / wall:.2f}x); waiting for the batch {median(proto['wait']):.2f} s, "
              f"updates {median(proto['update']):.2f} s per iteration")
    if threads:
        print(f"\nthread overlap (env-only in a thread while learner-only runs): "
              f"{median(threads['overlapped']):.2f} s wall vs {median(threads['serial']):.2f} s one after the other "
              f"({median(threads['serial']) / median(threads['overlapped']):.2f}x)")
    path = write_results("bench_limit", {"result": res, "env": env_t, "learner": learn_t, "loops": loops,
                                         "async_proto": proto, "thread_proto": threads, "table": {"headers": headers, "rows": rows_t}})
    print(f"\nwrote {path}")


def thread_proto(env_only, learner, rounds: int) -> dict:
    """Wall seconds of env-only + learner-only run one after the other vs overlapped in two threads.

    Tells whether a thread-based overlap (e.g. torchrl's ``Collector.start()``) could pay: only where
    both sides release the GIL most of the time.
    """
    import threading

    serial, overlapped = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        env_only()
        learner()
        serial.append(time.perf_counter() - t)
        t = time.perf_counter()
        th = threading.Thread(target=env_only)
        th.start()
        learner()
        th.join()
        overlapped.append(time.perf_counter() - t)
    return {"serial": serial, "overlapped": overlapped}


def per_iteration(rows: list[dict]) -> dict:
    """Per-iteration wall/CPU seconds from train()'s metrics rows, iterations after the first."""
    return {"wall": [r1["time"] - r0["time"] for r0, r1 in zip(rows[:-1], rows[1:])],
            "cpu": [r1["cpu_time"] - r0["cpu_time"] for r0, r1 in zip(rows[:-1], rows[1:])],
            "collect": [r["collect_time"] for r in rows[1:]], "update": [r["update_time"] for r in rows[1:]]}


def async_proto(cfg, iters: int) -> dict:
    """train()'s update loop on torchrl's asynchronous collector (1 worker process); per-iteration times."""
    import functools

    import torch
    from torchrl_vd.objectives.common import total_loss
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.data.replay_buffers.samplers import RandomSampler

    from torchrl_vd.envs.registry import describe_env, make_env
    from torchrl_vd.modules.policies import make_agent_policies
    from torchrl_vd.objectives.utils import FusedSoftUpdate
    from torchrl_vd.train.environment import build_env
    from torchrl_vd.train.learner import _minibatches
    from torchrl_vd.train.algos import algorithms

    os.environ["OMP_NUM_THREADS"] = "1"  # the worker process: 1 thread too (OpenMP spin-waits, RESULTS.md §0)
    info = describe_env(make_env(cfg.env, num_envs=cfg.num_envs, seed=cfg.seed, **cfg.env_kwargs))
    loss = algorithms()[cfg.algo].parts(cfg, info).loss_module
    loss.make_value_estimator(gamma=cfg.gamma)
    loss.check_inputs = False
    _, explore = make_agent_policies(loss.agent_net, eps_init=0.3, eps_end=0.3)
    params = list(loss.parameters())
    optim = torch.optim.Adam(params, lr=cfg.lr, fused=True)
    updater = FusedSoftUpdate(loss, tau=cfg.target_update)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(cfg.frames), sampler=RandomSampler(), batch_size=cfg.batch_size)
    collector = Collector([functools.partial(build_env, cfg)], explore, backend="process", sync=False,
                          frames_per_batch=cfg.frames_per_batch, total_frames=cfg.frames,
                          auto_register_policy_transforms=False)
    wall, wait, update = [], [], []
    t_iter = time.perf_counter()
    try:
        for i, batch in enumerate(collector):
            t_got = time.perf_counter()
            rb.extend(batch.reshape(-1))
            for td in _minibatches(rb, cfg.updates_per_batch):
                out = loss(td)
                optim.zero_grad(set_to_none=True)
                total_loss(out).backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optim.step()
                updater.step()
            collector.update_policy_weights_()
            t_end = time.perf_counter()
            if i > 0:  # the first batch has no training to overlap with
                wall.append(t_end - t_iter)
                wait.append(t_got - t_iter)
                update.append(t_end - t_got)
            t_iter = t_end
    finally:
        collector.shutdown()
    return {"wall": wall, "wait": wait, "update": update, "iters": iters}


if __name__ == "__main__":
    main()
