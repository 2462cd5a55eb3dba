"""Training, one concept per module:

* config.py — :class:`TrainConfig` (a docstring under each field) and ``--set`` overrides;
* algos.py — the algorithm table: typed options, builder and supported agents/collectors per algorithm;
* learner.py — replay buffer, optimizer, target updates, minibatches, input validation, ε schedule;
* collectors.py — single / async (overlapped) / multi-process / Ray collection;
* environment.py — the trainer's env (``make_env`` + episode returns + agent/algorithm transforms);
* evaluation.py — greedy evaluation, ``evaluate_run`` (``torchrl-vd eval``), GIFs;
* run_files.py — the run directory's files and the progress bar; checkpoint.py — checkpoints;
* loop.py — ``train()``, which wires them together; seeds.py — many seeds in one process (``TrainConfig.seeds``);
* result.py — what ``train()`` returns; guards.py — stop signal, finite-data check; stats.py — t-intervals;
* plot.py — learning-curve figures.
"""

from torchrl_vd.train.algos import AlgoParts, AlgoSpec, algorithms, register_algo
from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.evaluation import evaluate
from torchrl_vd.train.loop import train
from torchrl_vd.train.result import SeedsResult, TrainResult

__all__ = ["AlgoParts", "AlgoSpec", "SeedsResult", "TrainConfig", "TrainResult", "algorithms", "evaluate", "register_algo", "train"]
