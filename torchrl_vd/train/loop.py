"""``train(TrainConfig) -> TrainResult``: the one training loop every algorithm shares.

Built from torchrl parts: ``Collector`` (ε-greedy collection from vectorized envs), a
``TensorDictReplayBuffer`` over ``LazyTensorStorage`` (transitions, or fixed-length sequences for
recurrent agents), ``SoftUpdate``/``HardUpdate`` target updates, and the algorithm's loss.
Hand-written here: the ε schedule (set from the frame count so that it is exact and resumable, where
``EGreedyModule.step`` loops once per frame), the metrics.csv/summary.json run directory, and the
greedy evaluation.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import HardUpdate, SoftUpdate

from torchrl_vd.envs.registry import EnvInfo, describe_env, make_env
from torchrl_vd.modules.agents import make_agent_policies
from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.registry import AlgoParts, algorithms


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        policy: greedy decentralized policy (obs -> ("agents", "action")), deterministic.
        loss_module: the trained loss module (agent net, mixer / joint networks, targets).
        env: the training environment.
        metrics: one dict per collected batch (the rows of metrics.csv).
        summary: frames, wall time, frames/s, final greedy evaluation return (summary.json).
        out_dir: the run directory.
    """

    policy: Any
    loss_module: Any
    env: Any
    metrics: list[dict]
    summary: dict
    out_dir: Path
    explore_policy: Any = None
    parts: AlgoParts | None = None
    info: EnvInfo | None = None


def set_default_threads(threads: int = 0) -> int:
    """1 torch thread on machines with ≤ 2 cores (PERF-NOTES: OpenMP spin-waits cost 4–15x), else as asked."""
    if threads <= 0:
        threads = 1 if (os.cpu_count() or 1) <= 2 else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads


def epsilon_at(cfg: TrainConfig, frames: int) -> float:
    """Linear ε schedule from eps_start to eps_end over eps_frames frames."""
    if cfg.eps_frames <= 0:
        return cfg.eps_end
    frac = min(1.0, frames / cfg.eps_frames)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def build_env(cfg: TrainConfig, parts_transforms=(), agent=None, *, num_envs: int | None = None, seed: int | None = None):
    """The env of ``cfg`` with episode-return tracking, the agent's and the algorithm's transforms."""
    base = make_env(cfg.env, num_envs=num_envs or cfg.num_envs, device=cfg.device,
                    seed=cfg.seed if seed is None else seed, **cfg.env_kwargs)
    env = TransformedEnv(base, RewardSum(in_keys=["reward"], out_keys=["episode_reward"]))
    if agent is not None:
        for t in agent.env_transforms(env):
            env.append_transform(t)
    for make_t in parts_transforms:
        env.append_transform(make_t())
    return env


def _horizon(env) -> int:
    for obj in (env, getattr(env, "base_env", None)):
        h = getattr(obj, "max_steps", None)
        if isinstance(h, int) and h > 0:
            return h
    return 1000


@torch.no_grad()
def evaluate(policy, env, max_steps: int | None = None) -> dict:
    """Greedy returns: every env in ``env``'s batch plays one episode; mean/std of the returns."""
    steps = max_steps or _horizon(env)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = env.rollout(steps, policy, break_when_any_done=False, auto_cast_to_device=True)  # [N, T]
    reward = roll["next", "reward"].squeeze(-1)  # [N, T]
    done = roll["next", "done"].squeeze(-1)  # [N, T]
    first_done = done.cumsum(-1) - done.long()  # [N, T]: 0 up to and including the first done
    returns = (reward * (first_done == 0)).sum(-1)  # [N]
    return {"eval_return": returns.mean().item(), "eval_return_std": returns.std().item() if returns.numel() > 1 else 0.0}


class _RunFiles:
    """metrics.csv (one row per batch, a fixed header), config.json, summary.json, optional TensorBoard."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, columns: list[str]):
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.columns = columns
        new = not (out_dir / "metrics.csv").exists() or cfg.resume is None
        self._csv = open(out_dir / "metrics.csv", "w" if new else "a", newline="")
        self._writer = csv.DictWriter(self._csv, fieldnames=columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
        self.tb = None
        if "tensorboard" in cfg.loggers:
            from torchrl.record.loggers import TensorboardLogger

            self.tb = TensorboardLogger(exp_name="tb", log_dir=str(out_dir))

    def log(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._csv.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "frames" and isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.log_scalar(k, v, step=int(row["frames"]))

    def close(self) -> None:
        self._csv.close()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


METRIC_COLUMNS = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return", "fps", "time"]


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.algo`` on ``cfg.env``; write metrics.csv, summary.json and a checkpoint to the run dir."""
    specs = algorithms()
    if cfg.algo not in specs:
        import difflib

        close = difflib.get_close_matches(cfg.algo, list(specs), n=3)
        raise ValueError(
            f"Unknown algo {cfg.algo!r}." + (f" Did you mean {', '.join(close)}?" if close else "")
            + f" Registered: {', '.join(sorted(specs))}."
        )
    set_default_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-{cfg.seed}")

    probe_env = make_env(cfg.env, num_envs=cfg.num_envs, device=cfg.device, seed=cfg.seed, **cfg.env_kwargs)
    info = describe_env(probe_env)
    probe_env.close()
    parts = specs[cfg.algo].builder(cfg, info)
    loss = parts.loss_module.to(cfg.device)
    agent = loss.agent_net
    env = build_env(cfg, parts.env_transforms, agent)
    eval_env = build_env(cfg, parts.env_transforms, agent, num_envs=cfg.eval_episodes, seed=cfg.seed + 10_000)

    loss.make_value_estimator(**({"value_type": _td_lambda_type(), "lmbda": cfg.td_lambda} if cfg.td_lambda else {}),
                              gamma=cfg.gamma)
    updater = (SoftUpdate(loss, tau=cfg.target_update) if cfg.target_update < 1
               else HardUpdate(loss, value_network_update_interval=int(cfg.target_update)))
    params = list(loss.parameters()) + [p for m in parts.extra_modules.values() for p in m.parameters()]
    optim = (torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam"
             else torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5))
    greedy, explore = make_agent_policies(agent, action_mask=info.has_action_mask, eps_init=cfg.eps_start,
                                          eps_end=cfg.eps_end, group=info.group)
    egreedy = explore[-1]

    recurrent = agent.is_recurrent
    T = cfg.frames_per_batch // cfg.num_envs
    seq_len = (cfg.seq_len or T) if recurrent else 1
    if recurrent and T % seq_len:
        raise ValueError(f"seq_len ({seq_len}) must divide frames_per_batch / num_envs ({T}).")
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(max(1, cfg.buffer_size // seq_len), device=cfg.device),
        sampler=RandomSampler(),
        batch_size=max(1, cfg.batch_size // seq_len),
    )
    collector = Collector(env, explore, frames_per_batch=cfg.frames_per_batch, total_frames=cfg.frames,
                          device=cfg.device)
    collector.set_seed(cfg.seed)

    files = _RunFiles(out_dir, cfg, METRIC_COLUMNS)
    metrics: list[dict] = []
    frames, updates, t0 = 0, 0, time.perf_counter()
    bar = _progress(cfg)
    next_eval = cfg.eval_every or math.inf
    last_eval = float("nan")
    try:
        egreedy.eps.fill_(epsilon_at(cfg, 0))
        for batch in collector:  # [num_envs, T]
            frames += batch.numel()
            rb.extend(_to_storage(batch, recurrent, seq_len))
            extra = parts.after_batch(batch, frames) if parts.after_batch else {}
            losses = []
            if frames >= cfg.learning_starts:
                for _ in range(cfg.updates_per_batch):
                    sample = rb.sample()
                    out = loss(sample)
                    optim.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optim.step()
                    updater.step()
                    updates += 1
                    losses.append(out["loss"].detach())
            eps = epsilon_at(cfg, frames)
            egreedy.eps.fill_(eps)
            done = batch["next", "done"].squeeze(-1)  # [num_envs, T]
            ep_returns = batch["next", "episode_reward"].squeeze(-1)[done]  # [episodes]
            if frames >= next_eval:
                last_eval = evaluate(greedy, eval_env)["eval_return"]
                next_eval += cfg.eval_every
            elapsed = time.perf_counter() - t0
            row = {
                "frames": frames,
                "updates": updates,
                "eps": eps,
                "loss": torch.stack(losses).mean().item() if losses else float("nan"),
                "train_return": ep_returns.mean().item() if ep_returns.numel() else float("nan"),
                "episodes": int(ep_returns.numel()),
                "eval_return": last_eval,
                "fps": frames / elapsed,
                "time": elapsed,
                **extra,
            }
            last_eval = float("nan")
            metrics.append(row)
            files.log(row)
            bar.update(batch.numel(), row)
    finally:
        bar.close()
        collector.shutdown()
        files.close()
    wall = time.perf_counter() - t0
    final = evaluate(greedy, eval_env)
    summary = {
        "algo": cfg.algo,
        "env": cfg.env,
        "seed": cfg.seed,
        "frames": frames,
        "updates": updates,
        "wall_time_s": wall,
        "frames_per_s": frames / wall if wall > 0 else float("nan"),
        "final_eval_return": final["eval_return"],
        "final_eval_return_std": final["eval_return_std"],
        "eval_episodes": cfg.eval_episodes,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    torch.save({"config": cfg.to_dict(), "loss_module": loss.state_dict(), "optimizer": optim.state_dict(),
                "extra_modules": {k: m.state_dict() for k, m in parts.extra_modules.items()},
                "frames": frames, "updates": updates}, out_dir / "checkpoint.pt")
    return TrainResult(greedy, loss, env, metrics, summary, out_dir, explore, parts, info)


def _td_lambda_type():
    from torchrl.objectives.utils import ValueEstimators

    return ValueEstimators.TDLambda


def _to_storage(batch: TensorDictBase, recurrent: bool, seq_len: int) -> TensorDictBase:
    """Transitions [num_envs*T] for feed-forward agents; sequences [num_envs*T/L, L] for recurrent ones."""
    if not recurrent:
        return batch.reshape(-1)  # [num_envs, T] -> [num_envs * T]
    n, T = batch.shape
    return batch.reshape(n, T // seq_len, seq_len).reshape(-1, seq_len)  # [num_envs * T/L, L]


class _progress:
    """tqdm bar with frames, frames/s, recent return, loss and ε (no-op when ``progress=False``)."""

    def __init__(self, cfg: TrainConfig):
        self.bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.frames, unit="frames", desc=f"{cfg.algo} {cfg.env}", dynamic_ncols=True)

    def update(self, n: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(ret=f"{row['train_return']:.3g}", loss=f"{row['loss']:.3g}", eps=f"{row['eps']:.2f}",
                                 fps=f"{row['fps']:.0f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
