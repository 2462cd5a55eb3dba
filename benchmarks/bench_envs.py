"""Env adapter throughput: raw env vs TorchRL's wrapper vs torchrl_vd's adapter (random actions).

    python benchmarks/bench_envs.py            # ~1-2 min
    python benchmarks/bench_envs.py --quick    # ~20 s

Every variant of a row group takes the same number of steps with uniformly random actions; the
figure is env-steps/s (one env-step = one step of one of the ``num_envs`` copies), the median over
interleaved rounds (variants alternate round by round: the box is shared, benchmarks/RESULTS.md).

* VMAS ``balance`` / ``navigation`` (discrete actions, ``max_steps=100``), ``num_envs`` 32 and 1024:
  raw ``vmas`` stepping (no resets: finished worlds keep stepping, an upper bound),
  ``torchrl.envs.VmasEnv`` (per-env ``reset_at`` loop) and ``make_env("vmas/...")`` (batched resets).
* PettingZoo ``simple_spread_v3`` (mpe2, discrete), ``num_envs`` 1 and 8: a raw loop over
  ``num_envs`` parallel envs (resetting finished ones; the baseline), the same envs' AEC API in a
  raw loop (reference: the adapter steps MPE's parallel envs through it), ``torchrl``'s
  ``PettingZooWrapper`` (``SerialEnv`` of them for ``num_envs > 1``) and
  ``make_env("pettingzoo/simple_spread_v3")``.

TorchRL variants are driven the way a collector drives them: ``step_and_maybe_reset`` in a loop
with a cheap uniform-random policy, after a warm-up, the state carried over between rounds (so
e.g. VMAS balance is measured at its steady rate of early terminations, which start after ~15 random
steps). Times are this process's CPU time (``time.process_time``: everything runs in-process on
one thread, and CPU time is far less disturbed by other jobs on a shared box than wall time).
``overhead`` = variant time / raw time for the same steps (1.00x = as fast as the raw env).
Prints a markdown table and writes ``benchmarks/results/bench_envs.json``. One torch thread.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402


# CPU time of this (single-threaded) process: on the shared 2-core box other jobs' load shows up
# in wall time as noise of +-50%, much less so in process time. Everything here runs in-process.
_clock = time.process_time


def _random_policy(env):
    """Uniformly random discrete actions, set straight into the tensordict.

    (Without a policy, TorchRL draws with ``full_action_spec.rand()``, which in TorchRL 0.14 costs
    more than a raw MPE step; the raw loops draw with numpy, so the adapters get a cheap policy too.)
    """
    specs = [(k, int(env.full_action_spec[k].space.n), tuple(env.full_action_spec[k].shape)) for k in env.action_keys]

    def policy(td):
        for key, n, shape in specs:
            td.set(key, torch.randint(0, n, shape))
        return td

    return policy


def _torchrl_runner(env, steps: int, warmup: int):
    """``run()`` -> seconds for ``steps`` ``step_and_maybe_reset`` calls (state kept between calls)."""
    policy = _random_policy(env)
    state = {"td": env.reset()}

    def advance(n):
        td = state["td"]
        for _ in range(n):
            _, td = env.step_and_maybe_reset(policy(td))
        state["td"] = td

    advance(warmup)

    def run() -> float:
        t0 = _clock()
        advance(steps)
        return _clock() - t0

    return run


def _timed(fn):
    def run() -> float:
        t0 = _clock()
        fn()
        return _clock() - t0

    return run


# ------------------------------------------------------------------------------------------ VMAS
def vmas_variants(scenario: str, num_envs: int, steps: int, warmup: int) -> dict:
    import vmas
    from torchrl.envs.libs.vmas import VmasEnv

    from torchrl_vd.envs import make_env

    raw = vmas.make_env(scenario, num_envs=num_envs, continuous_actions=False, max_steps=100, seed=0)
    raw.reset()
    n_act = [raw.action_space[i].n for i in range(raw.n_agents)]

    def raw_steps(n=steps):
        for _ in range(n):
            raw.step([torch.randint(0, k, (num_envs, 1)) for k in n_act])

    raw_steps(warmup)
    return {
        "raw vmas (no resets)": _timed(raw_steps),
        "torchrl VmasEnv": _torchrl_runner(
            VmasEnv(scenario, num_envs=num_envs, continuous_actions=False, max_steps=100, seed=0), steps, warmup
        ),
        "torchrl_vd": _torchrl_runner(make_env(f"vmas/{scenario}", num_envs=num_envs, seed=0, max_steps=100), steps, warmup),
    }


# ------------------------------------------------------------------------------------ PettingZoo
def pettingzoo_variants(task: str, num_envs: int, steps: int, warmup: int) -> dict:
    from torchrl.envs import SerialEnv
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    from torchrl_vd.envs import make_env

    module = importlib.import_module(f"mpe2.{task}")
    rng = np.random.default_rng(0)
    raws = [module.parallel_env(continuous_actions=False) for _ in range(num_envs)]
    for i, e in enumerate(raws):
        e.reset(seed=i)
    n_act = {a: raws[0].action_space(a).n for a in raws[0].possible_agents}

    def raw_steps(n=steps):
        for _ in range(n):
            for e in raws:
                if not e.agents:
                    e.reset()
                e.step({a: int(rng.integers(n_act[a])) for a in e.agents})

    # reference: the same envs through their AEC API, which torchrl_vd uses for parallel envs that
    # are PettingZoo's aec_to_parallel wrapper (the wrapper computes every observation twice)
    aecs = [module.env(continuous_actions=False) for _ in range(num_envs)]
    for i, e in enumerate(aecs):
        e.reset(seed=i)

    def aec_steps(n=steps):
        for _ in range(n):
            for e in aecs:
                if not e.agents:
                    e.reset()
                for _turn in range(len(e.agents)):
                    a = e.agent_selection
                    e.step(None if (e.terminations[a] or e.truncations[a]) else int(rng.integers(n_act[a])))
                [e.observe(a) for a in e.agents]  # the step's observations

    raw_steps(warmup)
    aec_steps(warmup)

    def mk_torchrl():
        mk = lambda: PettingZooWrapper(module.parallel_env(continuous_actions=False), seed=0)  # noqa: E731
        return mk() if num_envs == 1 else SerialEnv(num_envs, mk)

    return {
        "raw mpe2 parallel loop": _timed(raw_steps),
        "raw mpe2 AEC loop (reference)": _timed(aec_steps),
        "torchrl PettingZooWrapper" + ("" if num_envs == 1 else " x SerialEnv"): _torchrl_runner(mk_torchrl(), steps, warmup),
        "torchrl_vd": _torchrl_runner(make_env(f"pettingzoo/{task}", num_envs=num_envs, seed=0), steps, warmup),
    }


# ------------------------------------------------------------------------------------------ main
def measure(family: str, task: str, num_envs: int, steps: int, variants: dict, rounds: int) -> list[dict]:
    times = _common.interleaved(variants, rounds)
    raw_name = next(iter(variants))
    raw_t = _common.median(times[raw_name])
    rows = []
    for name, ts in times.items():
        t = _common.median(ts)
        rows.append(
            {
                "family": family,
                "task": task,
                "num_envs": num_envs,
                "variant": name,
                "steps": steps,
                "seconds_median": round(t, 5),
                "seconds_all": [round(x, 5) for x in ts],
                "env_steps_per_s": round(num_envs * steps / t, 1),
                "overhead_vs_raw": round(t / raw_t, 3),
            }
        )
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer steps and rounds (~20 s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-vmas", action="store_true")
    p.add_argument("--skip-pettingzoo", action="store_true")
    args = p.parse_args(argv)
    _common.setup(args.threads)
    t_start = time.perf_counter()

    # (num_envs, steps, warmup); rounds of interleaved measurement
    if args.quick:
        vmas_cfg, pz_cfg, rounds = [(32, 20, 20), (1024, 5, 20)], [(1, 150, 10), (8, 30, 5)], 2
    else:
        vmas_cfg, pz_cfg, rounds = [(32, 50, 25), (1024, 15, 25)], [(1, 300, 30), (8, 60, 10)], 3

    rows: list[dict] = []
    if not args.skip_vmas:
        for scenario in ("balance", "navigation"):
            for num_envs, steps, warmup in vmas_cfg:
                variants = vmas_variants(scenario, num_envs, steps, warmup)
                rows += measure("vmas", scenario, num_envs, steps, variants, rounds)
    if not args.skip_pettingzoo:
        for num_envs, steps, warmup in pz_cfg:
            variants = pettingzoo_variants("simple_spread_v3", num_envs, steps, warmup)
            rows += measure("pettingzoo", "simple_spread_v3", num_envs, steps, variants, rounds)

    table = _common.table(
        ["env", "num_envs", "variant", "steps", "env-steps/s", "overhead vs raw"],
        [[f"{r['family']}/{r['task']}", r["num_envs"], r["variant"], r["steps"], float(r["env_steps_per_s"]),
          f"{r['overhead_vs_raw']:.2f}x"] for r in rows],
    )
    print(table)
    print("\nAdapter overhead (adapter time / raw time, same steps; PettingZoo target < 1.5x):")
    for r in rows:
        if r["variant"] == "torchrl_vd":
            base = [x for x in rows if x["family"] == r["family"] and x["task"] == r["task"]
                    and x["num_envs"] == r["num_envs"] and x["variant"].startswith("torchrl ")]
            other = f"  (TorchRL's wrapper: {base[0]['overhead_vs_raw']:.2f}x)" if base else ""
            print(f"  {r['family']}/{r['task']:<17} num_envs={r['num_envs']:>5}: {r['overhead_vs_raw']:.2f}x{other}")
    wall = time.perf_counter() - t_start
    print(f"\ntotal benchmark time {wall:.1f} s")
    payload = {"quick": args.quick, "rounds": rounds, "clock": "time.process_time", "wall_s": round(wall, 1), "rows": rows, "table_markdown": table}
    path = _common.write_results("bench_envs", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
