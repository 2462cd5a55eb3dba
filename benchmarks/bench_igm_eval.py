"""Cost of the IGM gap at each evaluation (TrainConfig.igm_eval): one greedy evaluation with and without it.

    python benchmarks/bench_igm_eval.py            # prints one row per (env, algo) and writes results/igm_eval.json

For each case the networks are the algorithm's defaults, untrained (the cost does not depend on the weights);
the evaluation is ``train()``'s: ``cfg.eval_episodes`` envs, one episode each, then (with the gap)
``check_igm`` over at most ``cfg.igm_max_states`` evaluated states with up to ``cfg.igm_max_joint_actions``
joint actions (enumerated when |A|^n is at most that, else sampled). Interleaved rounds, medians, CPU time
(``time.thread_time``: not the time other processes held the core) beside wall time.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch

import torchrl_vd as vd
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.train.algos import get_algo
from torchrl_vd.train.environment import build_env
from torchrl_vd.train.evaluation import evaluate

CASES = [  # (env, algo, TrainConfig fields)
    ("matrix/qtran", "qtran", {}),
    ("matrix/m-step", "maven", {"env_kwargs": {"steps": 10}}),
    ("vmas/balance", "qmix", {}),
    ("vmas/balance", "qtran", {}),
    ("pettingzoo/simple_spread_v3", "qmix", {}),
    ("pettingzoo/simple_spread_v3", "qplex", {}),
]
ROUNDS = 3


def setup(env_name, algo, fields):
    cfg = vd.TrainConfig(algo=algo, env=env_name, **fields)
    base = vd.make_env(cfg.env, num_envs=cfg.eval_episodes, seed=0, **cfg.env_kwargs)
    info = vd.describe_env(base)
    parts = get_algo(algo).parts(cfg, info)
    env = build_env(cfg, parts.env_transforms, parts.loss_module.agent_net, base=base)
    greedy, _ = make_agent_policies(parts.loss_module.agent_net, action_mask=info.has_action_mask, group=info.group)
    return cfg, info, parts.loss_module, env, greedy


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    load = os.getloadavg()[0]
    for env_name, algo, fields in CASES:
        try:
            cfg, info, loss, env, greedy = setup(env_name, algo, fields)
        except ImportError as err:  # optional env family not installed
            print(f"skip {env_name}: {err}")
            continue
        times = {"plain": [], "igm": []}
        for _ in range(ROUNDS):
            for kind in ("plain", "igm"):
                c0, w0 = time.thread_time(), time.perf_counter()
                out = evaluate(greedy, env, seed=0, igm_loss=loss if kind == "igm" else None,
                               igm_max_joint_actions=cfg.igm_max_joint_actions, igm_max_states=cfg.igm_max_states)
                times[kind].append((time.thread_time() - c0, time.perf_counter() - w0))
        cpu = {k: statistics.median(c for c, _ in v) for k, v in times.items()}
        wall = {k: statistics.median(w for _, w in v) for k, v in times.items()}
        joint = info.n_actions ** info.n_agents
        row = {"env": env_name, "algo": algo, "n_agents": info.n_agents, "n_actions": info.n_actions,
               "joint_actions": joint, "evaluated": min(joint, cfg.igm_max_joint_actions),
               "eval_episodes": cfg.eval_episodes, "eval_cpu_s": cpu["plain"], "igm_cpu_s": cpu["igm"] - cpu["plain"],
               "igm_over_eval_cpu": (cpu["igm"] - cpu["plain"]) / cpu["plain"], "eval_wall_s": wall["plain"],
               "igm_wall_s": wall["igm"] - wall["plain"], "igm_violation_rate": out["igm_violation_rate"],
               "load_avg_1min": load}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "igm_eval.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
