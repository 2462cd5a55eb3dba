"""XuanCe's MPE test return against ours under a uniform-random policy: checks the unit conversion of `mpe-xuance`.

XuanCe 1.3.3's logged test return (``avg_return`` of agi-brain/xuance-benchmarks' ``learning_curve.csv``; the
``test_scores.csv`` beside it holds the episodes it averages) is ``np.mean(scores)`` over the test episodes, where
each episode's score is the mean over the agents of each agent's summed reward: ``episode_score =
np.mean(itemgetter(*agent_keys)(info["episode_score"]))`` in ``OffPolicyMARLAgents.run_episodes``
(``xuance/torch/agents/core/off_policy_marl.py``), the per-agent sums kept by ``XuanCeMultiAgentEnvWrapper.step``
(``xuance/environment/utils/wrapper.py``), averaged by ``RunnerMARL.benchmark`` (``xuance/torch/runners/
runner_marl.py``). Ours is the team return, the sum over agents; the suite divides it by the 3 agents.

This script measures both under a uniform-random policy, 1000 episodes of 25 steps each:

* ``--side xuance`` (run with a venv that has XuanCe 1.3.3 and a PettingZoo with ``pettingzoo.mpe``, i.e.
  <= 1.25.0): XuanCe's own VDN agent on XuanCe's own env stack (``make_envs``: ``DummyVecMultiAgentEnv`` of
  ``XuanCeMultiAgentEnvWrapper(MPE_Env)``, config ``xuance/configs/vdn/mpe/simple_spread_v3.yaml``:
  ``continuous_action: False``, PettingZoo's default ``max_cycles`` 25), one test env as ``RunnerMARL.benchmark``
  builds it, scored by ``agent.test`` (``run_episodes(test_mode=True)``). Its greedy action is replaced by
  XuanCe's own ε-greedy exploration at ε = 1 (``OffPolicyMARLAgents.exploration``: ``action_space[k].sample()``
  for every agent), so every action is uniform and everything else is XuanCe's test loop.
* ``--side ours``: ``make_env("pettingzoo/simple_spread_v3", max_steps=25)`` (mpe2), uniform actions, the team
  return / 3.
* no ``--side``: both, XuanCe's in a subprocess of ``--xuance-python`` first, then ours (one process at a time).

    python benchmarks/xuance_random_policy.py --xuance-python /path/to/xuance-venv/bin/python [--episodes 1000]

XuanCe is not a dependency of this project: nothing of it is in the repository; the venv is made by hand
(docs/RESULTS-real-tasks.md, "MPE against XuanCe: units").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_AGENTS = 3
EPISODE_STEPS = 25


def xuance_scores(episodes: int, seed: int) -> dict:
    """XuanCe's per-episode test scores (mean over agents of each agent's return) under uniform-random actions."""
    import numpy as np
    import pettingzoo
    import torch

    torch.set_num_threads(1)
    if "wandb" not in sys.modules:
        try:
            import wandb  # noqa: F401
        except ImportError:  # XuanCe imports its optional wandb logger at module level; this run logs to tensorboard
            sys.modules["wandb"] = types.ModuleType("wandb")
    import xuance
    from xuance.common import get_arguments
    from xuance.environment import make_envs
    from xuance.torch.agents import VDN_Agents
    from xuance.torch.utils.operations import set_seed

    with tempfile.TemporaryDirectory() as tmp:
        overrides = types.SimpleNamespace(device="cpu", logger="tensorboard", log_dir=f"{tmp}/logs",
                                          model_dir=f"{tmp}/models", seed=seed, env_seed=seed, render=False)
        config = get_arguments(method="vdn", env="mpe", env_id="simple_spread_v3", parser_args=overrides)
        set_seed(config.seed)  # as RunnerBase.__init__
        envs = make_envs(config)
        agent = VDN_Agents(config, envs)

        def env_fn():  # RunnerMARL.benchmark's test envs: the training config with one env
            test_config = types.SimpleNamespace(**vars(config))
            test_config.parallels = 1
            return make_envs(test_config)

        agent.e_greedy = 1.0  # XuanCe's exploration with probability 1: a uniform sample of every agent's space
        for i, k in enumerate(agent.agent_keys):
            agent.action_space[k].seed(seed + i)
        greedy_action = agent.action
        agent.action = lambda **kw: greedy_action(**{**kw, "test_mode": False})
        t0 = time.perf_counter()
        scores = agent.test(env_fn, episodes)
        seconds = time.perf_counter() - t0
        agent.writer.close()
        envs.close()
    return {"scores": [float(s) for s in scores[:episodes]], "seconds": seconds,
            "xuance": xuance.__version__, "pettingzoo": pettingzoo.__version__,
            "continuous_action": bool(config.continuous_action), "episode_length": int(agent.episode_length),
            "n_agents": int(agent.n_agents)}


def our_scores(episodes: int, seed: int, num_envs: int = 50) -> dict:
    """Our adapter's team return (sum over agents) / 3 per episode under uniform-random actions."""
    import torch

    torch.set_num_threads(1)
    from torchrl_vd.envs import make_env

    env = make_env("pettingzoo/simple_spread_v3", num_envs=num_envs, seed=seed, max_steps=EPISODE_STEPS)
    spec = env.full_action_spec["agents", "action"]
    n_actions, shape = int(spec.space.n), tuple(spec.shape)  # shape [num_envs, n_agents]
    gen = torch.Generator().manual_seed(seed)
    returns = []
    t0 = time.perf_counter()
    while len(returns) < episodes:
        td = env.reset()
        total = torch.zeros(num_envs)
        for step in range(EPISODE_STEPS):
            td["agents", "action"] = torch.randint(0, n_actions, shape, generator=gen)
            out = env.step(td)["next"]
            total += out["reward"].squeeze(-1)  # [num_envs]: the team reward, summed over agents
            done = out["done"].squeeze(-1)  # [num_envs]
            if bool(done.any()) != (step == EPISODE_STEPS - 1) or (step == EPISODE_STEPS - 1 and not done.all()):
                raise RuntimeError(f"episode ended at step {step + 1}, expected exactly {EPISODE_STEPS}")
            td = out
        returns.extend((total / N_AGENTS).tolist())
    env.close()
    import mpe2
    import pettingzoo
    return {"scores": returns[:episodes], "seconds": time.perf_counter() - t0, "mpe2": mpe2.__version__,
            "pettingzoo": pettingzoo.__version__}


def summary(scores: list[float]) -> dict:
    """Mean, population std and the 95% Student-t half-width of the mean."""
    sys.path.insert(0, str(ROOT))
    from torchrl_vd.train.stats import t_interval

    mean, half = t_interval(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return {"n": len(scores), "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def _line(name: str, result: dict) -> str:
    s = summary(result["scores"])
    versions = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("scores", "seconds"))
    return (f"{name}: {s['mean']:.2f} ± {s['std']:.2f} (std), 95% CI of the mean [{s['ci95_low']:.2f}, "
            f"{s['ci95_high']:.2f}], {s['n']} episodes, {result['seconds']:.0f} s; {versions}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--side", choices=("xuance", "ours"), help="one side only (default: both)")
    p.add_argument("--xuance-python", help="the interpreter of a venv with XuanCe 1.3.3 (both sides)")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the raw result as JSON (--side only)")
    a = p.parse_args(argv)
    if a.episodes < 2:
        p.error(f"--episodes must be at least 2 for a confidence interval, got {a.episodes}")
    if a.side:
        result = (xuance_scores if a.side == "xuance" else our_scores)(a.episodes, a.seed)
        print(json.dumps(result) if a.json else _line(a.side, result))
        return 0
    if not a.xuance_python:
        p.error("both sides need --xuance-python (a venv with xuance==1.3.3 and pettingzoo<=1.25.0), or give --side")
    print(f"load average at start: {os.getloadavg()}")
    cmd = [a.xuance_python, __file__, "--side", "xuance", "--episodes", str(a.episodes), "--seed", str(a.seed),
           "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    xuance = json.loads(out.stdout.strip().splitlines()[-1])
    print(_line("XuanCe avg_return (mean over agents)", xuance))
    print(_line("ours: team return / 3", our_scores(a.episodes, a.seed)))
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
