"""What ``train()`` returns: :class:`TrainResult` for one run, :class:`SeedsResult` for many seeds in one process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrl_vd.envs.registry import EnvInfo
from torchrl_vd.train.algos import AlgoParts


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
        explore_policy: the ε-greedy collection policy.
        parts: the algorithm's parts (loss, env transforms, extra modules, hooks).
        info: what the trainer read off the env (n_agents, n_actions, shapes, masks).
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


@dataclass
class SeedsResult:
    """What ``train()`` returns for ``TrainConfig.seeds`` (train/population.py).

    Attributes:
        runs: one :class:`TrainResult` per seed, in ``seeds`` order, each with its own trained loss module
            and greedy policy (seed k's slice of the stacked networks) and its run directory ``out_dir/seed_<k>``.
        summary: the aggregate (out_dir/summary.json): per-seed final greedy returns, their mean and 95%
            Student-t interval, seed-frames/s of the whole process.
        out_dir: the directory holding every seed's run directory, the aggregate summary and plot.
    """

    runs: list[TrainResult]
    summary: dict
    out_dir: Path


__all__ = ["SeedsResult", "TrainResult"]
