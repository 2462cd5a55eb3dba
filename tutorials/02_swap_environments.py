"""Tutorial 02 — the same agent, mixer and loss on other environments: only the adapter changes.

    python tutorials/02_swap_environments.py --quick     # ~30 s
    python tutorials/02_swap_environments.py             # full budgets

Value decomposition needs very little from an environment: n agents with one shared discrete action
set, each agent's observation o_i (the papers' history h_i, for feed-forward agents), the centralized
information z ("state"), and one team reward r. Every adapter behind ``vd.make_env`` writes exactly
those entries, in TorchRL's multi-agent layout:

    ("agents", "observation") [N, n, F]   ("agents", "action") [N, n]   "state" [N, S]
    ("next", "reward") [N, 1]             ("next", "done" / "terminated") [N, 1]
    optional: ("agents", "action_mask") [N, n, A], ("agents", "alive") [N, n]

so the function ``fit`` below — modules, loss, collector, replay buffer and update — is written once
and run, unchanged, on:

* ``pettingzoo/simple_spread_v3`` — the MPE cooperative-navigation task (mpe2 package): 3 agents,
  5 actions, PettingZoo's parallel API driven for N copies by ``vd.make_env``;
* ``matrix/two-step`` — the two-step game of the QMIX paper (Rashid et al. 2018): agent 1's first
  action picks one of two matrix games; the better one pays 8 only if both agents then play (B, B).
  A monotonic mixer that reads the state learns it (8); VDN's state-blind sum settles for 7.

If your own environment uses another agent-group name (torchrl's ``PettingZooWrapper`` calls it
``"agent"`` or per-team names), ``loss.use_group("agent")`` and ``make_agent_policies(..., group=)``
remap the keys; nothing else changes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace

import torch

torch.set_num_threads(1)  # small nets on a (possibly shared) 2-core CPU: one thread is fastest

import torchrl_vd as vd  # noqa: E402  (after set_num_threads on purpose)
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer  # noqa: E402
from torchrl.objectives import SoftUpdate  # noqa: E402
from torchrl_vd.train import evaluate  # noqa: E402  (greedy rollouts: mean episode return)


# ------------------------------------------------------------------------------------------ config
@dataclass
class Task:
    """What differs between the two runs: the adapter, and how much data / exploration each gets."""

    env: str
    """``family/task`` name for ``vd.make_env``."""
    horizon: int
    """Episode length (for the evaluation rollouts)."""
    num_envs: int
    """Copies stepped together."""
    frames_per_batch: int
    """Frames per collector batch (a multiple of ``num_envs``)."""
    frames: int
    """Environment steps to train for."""
    eps_frames: int
    """Frames over which ε anneals from 1 to ``eps_end``."""
    eps_end: float
    """Final ε (1.0 = uniform exploration throughout)."""
    env_kwargs: dict = field(default_factory=dict)
    """Adapter arguments."""


@dataclass
class Config:
    tasks: tuple[Task, ...] = (
        Task("pettingzoo/simple_spread_v3", horizon=25, num_envs=8, frames_per_batch=200, frames=40_000,
             eps_frames=20_000, eps_end=0.05),
        # The QMIX paper trains the two-step game with uniform exploration (ε = 1).
        Task("matrix/two-step", horizon=2, num_envs=64, frames_per_batch=128, frames=128 * 100, eps_frames=1,
             eps_end=1.0),
    )
    """The environments to run the same code on."""
    mixer: str = "qmix"
    """``qmix`` or ``vdn``: the same mixer for every task."""
    updates_per_batch: int = 10
    """Gradient steps per collected batch."""
    batch_size: int = 128
    """Transitions per gradient step."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.95
    """Discount γ."""
    tau: float = 0.005
    """SoftUpdate's Polyak factor."""
    hidden: tuple[int, ...] = (64, 64)
    """Agent MLP hidden sizes."""
    mixing_embed_dim: int = 32
    """QMIX mixing-layer width."""
    seed: int = 0
    """Seed for torch and the environments."""


def quick(cfg: Config) -> Config:
    spread, two_step = cfg.tasks
    # simple_spread gets 5% of its budget; the two-step game is cheap and keeps its full one
    return replace(cfg, tasks=(replace(spread, frames=2_000, eps_frames=1_000), two_step))


def parse_args() -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small budgets (about 30 s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = quick(Config()) if args.quick else Config()
    return replace(cfg, seed=args.seed)


# ------------------------------------------------------------------------------------------ the shared code
def fit(task: Task, cfg: Config) -> dict:
    """Train ``cfg.mixer`` on ``task.env``. Nothing in this body depends on which adapter it is."""
    torch.manual_seed(cfg.seed)
    env = vd.make_env(task.env, num_envs=task.num_envs, seed=cfg.seed, **task.env_kwargs)  # <- the only env line
    info = vd.describe_env(env)
    print(f"\n{task.env}: {info.n_agents} agents, {info.n_actions} actions, observation {info.obs_shape}, "
          f"state {info.state_shape}, action mask {info.has_action_mask}")
    print(f"  reset keys: {sorted(str(k) for k in env.reset().keys(True, True))}")

    # ---- modules and loss: identical for every environment
    agent = vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1], hidden=cfg.hidden)
    if cfg.mixer == "qmix":
        mixer = vd.QMixer(info.n_agents, info.state_shape, mixing_embed_dim=cfg.mixing_embed_dim)
    else:
        mixer = vd.VDNMixer(info.n_agents)
    loss = vd.MixingQLoss(agent, mixer, double_q=True)
    loss.make_value_estimator(gamma=cfg.gamma)
    updater = SoftUpdate(loss, tau=cfg.tau)
    optim = torch.optim.Adam(loss.parameters(), lr=cfg.lr)
    greedy, explore = vd.make_agent_policies(agent, action_mask=info.has_action_mask, eps_init=1.0,
                                             eps_end=task.eps_end, annealing_num_steps=task.eps_frames)

    # ---- data
    collector = Collector(env, explore, frames_per_batch=task.frames_per_batch, total_frames=task.frames,
                          auto_register_policy_transforms=False)  # feed-forward agent: no env transforms
    collector.set_seed(cfg.seed)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(100_000), batch_size=cfg.batch_size)

    t0 = time.perf_counter()
    for batch in collector:  # [num_envs, T]
        buffer.extend(batch.reshape(-1))
        for _ in range(cfg.updates_per_batch):
            # ============== the algorithm: L = (r + γ max_a Q_tot(h', z', a; θ̄) − Q_tot(h, z, a; θ))² ==============
            out = loss(buffer.sample())
            optim.zero_grad()
            out["loss"].backward()
            optim.step()
            updater.step()
            # ==========================================================================================================
        explore[-1].step(batch.numel())  # anneal ε
    collector.shutdown()
    seconds = time.perf_counter() - t0

    eval_env = vd.make_env(task.env, num_envs=16, seed=cfg.seed + 1000, **task.env_kwargs)
    trained = evaluate(greedy, eval_env, max_steps=task.horizon, seed=cfg.seed + 1000)["eval_return"]
    random = evaluate(None, eval_env, max_steps=task.horizon, seed=cfg.seed + 1000)["eval_return"]
    print(f"  {task.frames} frames in {seconds:.0f} s: greedy return {trained:.3f} (random policy {random:.3f})")
    return {"return": trained, "random": random}


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    cfg = parse_args()
    results = {task.env: fit(task, cfg) for task in cfg.tasks}
    parts = []
    for env, r in results.items():
        extra = " (optimum 8; a state-blind VDN reaches 7)" if env == "matrix/two-step" else ""
        parts.append(f"{env} greedy return {r['return']:.3f} (random {r['random']:.3f}){extra}")
    print(f"RESULT: same {cfg.mixer} code on {len(results)} adapters: " + "; ".join(parts))


if __name__ == "__main__":
    main()
