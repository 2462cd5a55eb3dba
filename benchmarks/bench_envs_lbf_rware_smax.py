"""Throughput of the lbf/, rware/ and smax/ adapters beside the raw envs (uniformly random valid actions).

    python benchmarks/bench_envs_lbf_rware_smax.py gymma               # LBF + RWARE, 1/8/64 envs, ~1 min
    python benchmarks/bench_envs_lbf_rware_smax.py smax --sizes 1 16   # SMAX 3m; compiling dominates

Figures are env-steps/s (one env-step = one step of one of the ``num_envs`` copies), the median over
interleaved rounds (variants alternate round by round: the box is shared), in this process's CPU time
(``time.process_time``) and in wall time.

* **LBF** ``Foraging-8x8-2p-2f-coop-v3`` and **RWARE** ``rware-tiny-2ag-v2``: the raw loop steps ``num_envs``
  raw envs (``gymnasium.make(id).unwrapped``, the objects the adapter steps) in a Python loop with numpy
  random actions and resets the finished ones; the adapter is ``make_env`` driven by ``step_and_maybe_reset``
  with ``torch.randint`` actions.
* **SMAX** ``3m`` (heuristic enemy): the raw loop is one jitted ``jax.vmap`` of JaxMARL's ``env.step``
  (auto-reset inside) that also draws random available actions (in JAX) and computes the next available
  actions, called once per step and waited for (``block_until_ready``), i.e. JaxMARL used step by step
  from Python. The adapter is ``make_env("smax/3m")`` driven by ``step_and_maybe_reset``, drawing random
  available actions from ``("agents","action_mask")`` in torch. Compile time is excluded (warm-up) and
  reported separately. Run with ``JAX_COMPILATION_CACHE_DIR`` set to reuse compilations across runs.

Writes ``benchmarks/results/bench_envs_lbf_rware_smax_<what>.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402

from torchrl_vd.envs import make_env  # noqa: E402


def _clocked(fn, steps: int, num_envs: int) -> dict:
    """Run ``fn()`` (which takes ``steps`` steps of ``num_envs`` copies); env-steps/s in CPU and wall time."""
    c, w = time.process_time(), time.perf_counter()
    fn()
    c, w = time.process_time() - c, time.perf_counter() - w
    return {"cpu": steps * num_envs / c, "wall": steps * num_envs / w}


def _median(rounds: list[dict], key: str) -> float:
    return _common.median(r[key] for r in rounds)


# ------------------------------------------------------------------------------------ LBF / RWARE
def _gymma_variants(family: str, task: str, num_envs: int, steps: int) -> dict:
    from torchrl_vd.envs.gymma import make_gymnasium_env

    __import__("lbforaging" if family == "lbf" else "rware")
    raws = [make_gymnasium_env(task) for _ in range(num_envs)]
    for i, r in enumerate(raws):
        r.reset(seed=i)
    n_agents = len(raws[0].action_space.spaces)
    n_actions = int(raws[0].action_space.spaces[0].n)
    rng = np.random.default_rng(0)

    def raw():
        for _ in range(steps):
            acts = rng.integers(0, n_actions, (num_envs, n_agents)).tolist()
            for r, a in zip(raws, acts):
                if r.step(a)[2]:
                    r.reset()

    env = make_env(f"{family}/{task}", num_envs=num_envs, seed=0)
    state = {"td": env.reset()}

    def adapter():
        td = state["td"]
        for _ in range(steps):
            td.set(("agents", "action"), torch.randint(0, n_actions, (num_envs, n_agents)))
            _, td = env.step_and_maybe_reset(td)
        state["td"] = td

    raw(), adapter()  # warm-up
    return {"raw loop": lambda: _clocked(raw, steps, num_envs), "adapter": lambda: _clocked(adapter, steps, num_envs)}


def bench_gymma(rounds: int) -> dict:
    results = []
    for family, task, budget in (("lbf", "Foraging-8x8-2p-2f-coop-v3", 1500), ("rware", "rware-tiny-2ag-v2", 800)):
        for n in (1, 8, 64):
            steps = max(5, budget // n)
            out = _common.interleaved(_gymma_variants(family, task, n, steps), rounds)
            row = {"env": f"{family}/{task}", "num_envs": n, "steps": steps}
            for name, rs in out.items():
                row[name] = {"cpu": _median(rs, "cpu"), "wall": _median(rs, "wall")}
            results.append(row)
            print(row, flush=True)
    return {"rows": results}


# ------------------------------------------------------------------------------------ SMAX
def _smax_variants(num_envs: int, steps: int) -> tuple[dict, dict]:
    import jax
    import jax.numpy as jnp

    env = make_env("smax/3m", num_envs=num_envs, seed=0)
    raw_env = env.raw_env
    agents = raw_env.agents
    compile_s = {}

    def raw_step(keys, states, avail):
        def one(key, state, avail):
            key, k_act, k_step = jax.random.split(key, 3)
            act = (jax.random.uniform(k_act, avail.shape) * avail).argmax(-1)  # random available actions
            obs, state, rew, dones, _ = raw_env.step(k_step, state, {a: act[j] for j, a in enumerate(agents)})
            av = raw_env.get_avail_actions(state)
            return key, state, jnp.stack([av[a] for a in agents]), obs, rew, dones

        return jax.vmap(one)(keys, states, avail)

    def raw_reset(keys):
        def one(key):
            key, sub = jax.random.split(key)
            _, state = raw_env.reset(sub)
            av = raw_env.get_avail_actions(state)
            return key, state, jnp.stack([av[a] for a in agents])

        return jax.vmap(one)(keys)

    raw_step_fn, raw_reset_fn = jax.jit(raw_step), jax.jit(raw_reset)
    t = time.perf_counter()
    keys, states, avail = raw_reset_fn(jax.vmap(jax.random.PRNGKey)(jnp.arange(num_envs)))
    out = raw_step_fn(keys, states, avail)
    jax.block_until_ready(out)
    compile_s["raw"] = time.perf_counter() - t
    raw_state = {"carry": out[:3]}

    def raw():
        keys, states, avail = raw_state["carry"]
        for _ in range(steps):
            out = raw_step_fn(keys, states, avail)
            jax.block_until_ready(out)
            keys, states, avail = out[:3]
        raw_state["carry"] = (keys, states, avail)

    t = time.perf_counter()
    td = env.reset()
    mask = td["agents", "action_mask"]
    td.set(("agents", "action"), (torch.rand(mask.shape) * mask).argmax(-1))
    _, td = env.step_and_maybe_reset(td)
    td["_reset"] = torch.ones(num_envs, 1, dtype=torch.bool)  # compile the masked reset as well
    td = env.reset(td)
    compile_s["adapter"] = time.perf_counter() - t
    ad_state = {"td": td}

    def adapter():
        td = ad_state["td"]
        for _ in range(steps):
            mask = td["agents", "action_mask"]
            td.set(("agents", "action"), (torch.rand(mask.shape) * mask).argmax(-1))
            _, td = env.step_and_maybe_reset(td)
        ad_state["td"] = td

    raw(), adapter()  # warm-up
    variants = {"raw vmapped jaxmarl": lambda: _clocked(raw, steps, num_envs),
                "adapter": lambda: _clocked(adapter, steps, num_envs)}
    return variants, compile_s


def bench_smax(sizes: list[int], rounds: int) -> dict:
    import jax

    results = []
    for n in sizes:
        steps = {1: 100, 16: 100, 256: 30}.get(n, 10)
        variants, compile_s = _smax_variants(n, steps)
        out = _common.interleaved(variants, rounds)
        row = {"env": "smax/3m", "num_envs": n, "steps": steps, "compile_s": compile_s}
        for name, rs in out.items():
            row[name] = {"cpu": _median(rs, "cpu"), "wall": _median(rs, "wall")}
        results.append(row)
        print(row, flush=True)
    return {"rows": results, "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}


def _markdown(rows: list[dict], raw_name: str) -> str:
    body = []
    for r in rows:
        raw, ad = r[raw_name], r["adapter"]
        body.append([r["env"], r["num_envs"], raw["cpu"], ad["cpu"], ad["cpu"] / raw["cpu"], raw["wall"], ad["wall"]])
    headers = ["env", "num_envs", f"{raw_name} (CPU)", "adapter (CPU)", "adapter / raw", f"{raw_name} (wall)",
               "adapter (wall)"]
    return _common.table(headers, body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["gymma", "smax"])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 256, 1024], help="SMAX num_envs")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    _common.setup()
    load = os.getloadavg()
    if args.what == "gymma":
        payload = bench_gymma(args.rounds)
        raw_name = "raw loop"
    else:
        payload = bench_smax(args.sizes, args.rounds)
        raw_name = "raw vmapped jaxmarl"
    payload["loadavg_at_end"] = os.getloadavg()
    path = _common.write_results(f"bench_envs_lbf_rware_smax_{args.what}", payload)
    print(f"\nload average at start {load}, at end {payload['loadavg_at_end']}; env-steps/s, median of "
          f"{args.rounds} rounds\n")
    print(_markdown(payload["rows"], raw_name))
    if args.what == "smax":
        print("\ncompile (s): " + ", ".join(f"{r['num_envs']}: raw {r['compile_s']['raw']:.1f} / adapter "
                                           f"{r['compile_s']['adapter']:.1f}" for r in payload["rows"]))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
