"""Scaling: gradient-step time vs number of agents (every registered algorithm, MLP and GRU agents) and
collection frames/s vs number of vectorized envs.

1. Per-update time vs n_agents (3 -> 64). Synthetic batches with VMAS navigation's shapes (obs 18,
   9 actions, state = stacked observations n*18): VMAS cannot spawn 64 navigation agents (its
   placement loop does not terminate at that density), so the batches are random tensors in the
   library's key layout (torchrl_vd.testing.random_batch, plus is_init/rnn_hidden for recurrent
   agents and the latent z for MAVEN). One step = train()'s update: loss -> backward -> clip 10 ->
   fused Adam -> FusedSoftUpdate. MLP agents: 128 transitions, 2x256; GRU agents: 8 sequences x 16
   steps (128 transitions), GRU-64. Every algorithm in ``torchrl_vd.train.algos.algorithms()``;
   MAVEN always uses its recurrent agent. The exponent k of time ~ n^k is a least-squares fit on
   log-log over the n measured.
2. Collection frames/s vs num_envs (32 -> 1024): train()'s collection path (our VMAS balance env with
   4 agents + RewardSum, ε-greedy MLP 2x256 policy, torchrl Collector), 50 steps per batch, next to
   raw VMAS stepping with random actions (no torchrl) at the same size.

Times are medians of interleaved rounds, CPU time (time.thread_time; the box is shared) and wall.

    python benchmarks/bench_scaling.py            # n in 3,4,8,16,32,64; envs 32..1024 (about 10 min)
    python benchmarks/bench_scaling.py --quick    # n in 3,8,32; envs 32,256,1024 (about 3 min)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, setup, table, write_results  # noqa: E402

OBS_DIM, N_ACTIONS = 18, 9  # VMAS navigation (discrete)


def synth_batch(loss, n: int, batch: tuple[int, ...], seed: int = 0):
    import torch

    from torchrl_vd.testing import random_batch

    td = random_batch(n, N_ACTIONS, OBS_DIM, batch=batch, seed=seed)
    agent = loss.agent_net
    if agent.is_recurrent:
        is_init = torch.zeros(*batch, 1, dtype=torch.bool)
        is_init[:, 0] = True
        td["is_init"] = is_init
        td["next", "is_init"] = torch.zeros_like(is_init)
        td["agents", "rnn_hidden"] = torch.zeros(*batch, n, agent.hidden_size)
    noise_dim = getattr(loss, "noise_dim", None)
    if noise_dim:
        z = torch.eye(noise_dim)[torch.randint(noise_dim, (batch[0],))]  # [B, noise_dim]
        z = z.view(batch[0], *([1] * (len(batch) - 1)), noise_dim).expand(*batch, noise_dim).clone()
        td["noise"] = z
        td["next", "noise"] = z.clone()
    return td


def build(algo: str, agent: str, n: int):
    import torch

    import torchrl_vd as vd
    from torchrl_vd.envs.registry import EnvInfo
    from torchrl_vd.objectives.utils import FusedSoftUpdate
    from torchrl_vd.train.algos import algorithms

    hidden = (64,) if agent == "gru" else (256, 256)
    cfg = vd.TrainConfig(algo=algo, env="vmas/navigation", agent=agent, hidden=hidden, progress=False,
                         **({"last_action": True} if algo == "maven" else {}))  # MAVEN's preset, kept with agent set
    info = EnvInfo(n_agents=n, n_actions=N_ACTIONS, obs_shape=(OBS_DIM,), state_shape=(n * OBS_DIM,),
                   has_action_mask=False, batch_size=(1,))
    loss = algorithms()[algo].parts(cfg, info).loss_module
    loss.make_value_estimator(gamma=0.99)
    loss.check_inputs = False  # train() validates once per collected batch, not per minibatch
    td = synth_batch(loss, n, (8, 16) if loss.agent_net.is_recurrent else (128,))
    params = list(loss.parameters())
    optim = torch.optim.Adam(params, lr=5e-4, fused=True)
    updater = FusedSoftUpdate(loss, tau=0.005)

    from torchrl_vd.objectives.common import total_loss

    def step():
        out = loss(td.clone(False))
        optim.zero_grad(set_to_none=True)
        total_loss(out).backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optim.step()
        updater.step()

    return step


def fit_exponent(ns, ts) -> float:
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, ts) if t == t and t > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def agents_scaling(ns, rounds: int, steps: int, algos=None) -> dict:
    from torchrl_vd.train.algos import algorithms

    configs = []
    for algo in algos or algorithms():
        for agent in (("gru",) if algo == "maven" else ("mlp", "gru")):
            configs.append((algo, agent))
    fns, errors = {}, {}
    for algo, agent in configs:
        for n in ns:
            try:
                fns[(algo, agent, n)] = f = build(algo, agent, n)
                f()  # warm-up (and a failing config fails here)
            except Exception as err:  # reported in the table, the other configs still run
                errors[(algo, agent, n)] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
                fns.pop((algo, agent, n), None)
    cpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            t, c = time.perf_counter(), time.thread_time()
            for _ in range(steps):
                fns[k]()
            cpu[k].append((time.thread_time() - c) / steps * 1e3)
            wall[k].append((time.perf_counter() - t) / steps * 1e3)
    return {"configs": configs, "cpu": cpu, "wall": wall, "errors": errors}


def envs_scaling(envs, rounds: int, steps: int, device: str = "cpu") -> dict:
    """Collection and raw VMAS stepping at each number of envs on ``device`` (benchmarks/gpu_check.py runs it on a
    GPU: the VMAS worlds, the policy and the collected batches live there; every timing ends with a sync)."""
    import torch

    from _common import sync
    from torchrl.collectors import Collector

    import torchrl_vd as vd
    from torchrl_vd.envs.registry import describe_env
    from torchrl_vd.modules.policies import make_agent_policies
    from torchrl_vd.train.environment import build_env
    from torchrl_vd.train.algos import algorithms

    cols, raws = {}, {}
    for ne in envs:
        cfg = vd.TrainConfig(algo="qmix", env="vmas/balance", env_kwargs={"n_agents": 4, "max_steps": 100},
                             num_envs=ne, hidden=(256, 256), progress=False, frames_per_batch=ne * steps,
                             frames=ne * steps,
                             device=device)
        env = build_env(cfg)
        loss = algorithms()["qmix"].parts(cfg, describe_env(env)).to(device).loss_module
        _, explore = make_agent_policies(loss.agent_net, eps_init=0.5, eps_end=0.5)
        collector = Collector(env, explore, frames_per_batch=ne * steps, total_frames=-1, device=device,
                              auto_register_policy_transforms=False)
        it = iter(collector)
        next(it)
        cols[ne] = it
        venv = env.base_env._env

        def raw(venv=venv, ne=ne):
            for _ in range(steps):
                venv.step([torch.randint(0, 9, (ne, 1), device=device) for _ in range(4)])

        raws[ne] = raw
    res = {ne: {"collect_cpu": [], "collect_wall": [], "raw_cpu": [], "raw_wall": []} for ne in envs}
    for r in range(rounds):
        for ne in envs:
            sync(device)
            t, c = time.perf_counter(), time.thread_time()
            next(cols[ne])
            sync(device)
            res[ne]["collect_cpu"].append(ne * steps / (time.thread_time() - c))
            res[ne]["collect_wall"].append(ne * steps / (time.perf_counter() - t))
            t, c = time.perf_counter(), time.thread_time()
            raws[ne]()
            sync(device)
            res[ne]["raw_cpu"].append(ne * steps / (time.thread_time() - c))
            res[ne]["raw_wall"].append(ne * steps / (time.perf_counter() - t))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--skip-envs", action="store_true")
    p.add_argument("--skip-agents", action="store_true")
    p.add_argument("--algos", nargs="+", default=None, help="only these algorithms (default: every registered one)")
    a = p.parse_args()
    setup()
    ns = [3, 8, 32] if a.quick else [3, 4, 8, 16, 32, 64]
    envs = [32, 256, 1024] if a.quick else [32, 64, 128, 256, 512, 1024]
    rounds = a.rounds or (2 if a.quick else 3)
    payload = {"n_agents": ns, "num_envs": envs, "rounds": rounds}

    if not a.skip_agents:
        ag = agents_scaling(ns, rounds, steps=3 if a.quick else 5, algos=a.algos)
        headers = ["algo", "agent", *[f"n={n} ms" for n in ns], "exponent k (t ~ n^k)", "k (wall)"]
        rows = []
        for algo, agent in ag["configs"]:
            cpu = [median(ag["cpu"].get((algo, agent, n), [float("nan")])) for n in ns]
            wall = [median(ag["wall"].get((algo, agent, n), [float("nan")])) for n in ns]
            rows.append([algo, agent, *cpu, fit_exponent(ns, cpu), fit_exponent(ns, wall)])
        print(f"Gradient-step CPU time (ms) vs n_agents; synthetic VMAS-navigation-shaped batches (obs 18, 9 actions), "
              f"MLP 2x256 / GRU-64, 128 transitions; medians of {rounds} rounds, 1 torch thread")
        print(table(headers, rows))
        for k, e in ag["errors"].items():
            print(f"  not measured {k}: {e}")
        payload["agents"] = {"headers": headers, "rows": rows, "errors": {str(k): v for k, v in ag["errors"].items()},
                             "cpu_ms": {str(k): v for k, v in ag["cpu"].items()},
                             "wall_ms": {str(k): v for k, v in ag["wall"].items()}}
        print()

    if not a.skip_envs:
        ev = envs_scaling(envs, rounds, steps=25 if a.quick else 50)
        headers = ["num_envs", "collect frames/CPU-s", "raw VMAS frames/CPU-s", "collect / raw", "collect frames/s (wall)"]
        rows = []
        for ne in envs:
            r = ev[ne]
            rows.append([ne, median(r["collect_cpu"]), median(r["raw_cpu"]),
                         median(x / y for x, y in zip(r["collect_cpu"], r["raw_cpu"])), median(r["collect_wall"])])
        print(f"Collection (train()'s path: VMAS balance 4 agents, ε-greedy MLP 2x256, torchrl Collector) vs raw VMAS "
              f"random stepping; medians of {rounds} rounds")
        print(table(headers, rows))
        payload["envs"] = {"headers": headers, "rows": rows, "raw": {str(k): v for k, v in ev.items()}}

    path = write_results("bench_scaling" + ("_quick" if a.quick else ""), payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
