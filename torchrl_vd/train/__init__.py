"""Training, one concept per module:

* config.py — :class:`TrainConfig` (a docstring under each field), validation, ``--set`` overrides;
* presets.py — what an unset field holds per env family and algorithm;
* algos.py — the algorithm table (typed options in algo_options.py, builders in builders.py);
* population.py — all seeds of a run (one, or N stacked under ``torch.vmap``);
* learner.py — replay buffer, optimizer, target updates, minibatches, input validation, ε schedule
  (reward standardisation in reward_standardisation.py); pqn_learner.py — PQN's rollout learner (no replay);
* collectors.py — single / async (overlapped) / multi-process / Ray collection;
* environment.py — the trainer's env (``make_env`` + episode returns + agent/algorithm transforms);
* evaluation.py — greedy evaluation, ``evaluate_run`` (``torchrl-vd eval``), GIFs;
* run_files.py — the run directory's files and the progress bar; checkpoint.py — checkpoints;
* loop.py — ``train()``: build, restore, collect and update, evaluate, checkpoint, finish;
* result.py — what ``train()`` returns; guards.py — stop signal, finite-data check; stats.py — t-intervals;
* plot.py — learning-curve figures; threads.py — torch threads, forking, Ray worker priority.

Names are imported on first use, so that ``torchrl_vd.train.config`` (and the CLI's ``--help``) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "AlgoParts": "torchrl_vd.train.algos", "AlgoSpec": "torchrl_vd.train.algos",
    "algorithms": "torchrl_vd.train.algos", "register_algo": "torchrl_vd.train.algos",
    "TrainConfig": "torchrl_vd.train.config", "evaluate": "torchrl_vd.train.evaluation",
    "train": "torchrl_vd.train.loop", "SeedsResult": "torchrl_vd.train.result", "TrainResult": "torchrl_vd.train.result",
}

if TYPE_CHECKING:
    from torchrl_vd.train.algos import AlgoParts, AlgoSpec, algorithms, register_algo
    from torchrl_vd.train.config import TrainConfig
    from torchrl_vd.train.evaluation import evaluate
    from torchrl_vd.train.loop import train
    from torchrl_vd.train.result import SeedsResult, TrainResult


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
