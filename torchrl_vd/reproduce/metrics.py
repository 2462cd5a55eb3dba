"""How one finished run becomes one number: the :data:`METRICS` a suite names (``"metric"`` in suites.py).

Each metric reads the run directory through :mod:`torchrl_vd.train.run_files` (summary.json, metrics.csv).
The conventions follow the published numbers they are compared with: MARLlib's mean of the last logged
training returns (Hu et al., JMLR 2023), EPyMARL's maximum and average evaluation returns (Papoudakis et al.,
"Benchmarking Multi-Agent Deep Reinforcement Learning Algorithms in Cooperative Tasks", NeurIPS 2021 datasets
and benchmarks track, Sec. 4), and the greedy return or win rate at the end of training (BenchMARL, JaxMARL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from torchrl_vd.train.run_files import read_metric_columns, read_summary


def final_eval_win_rate(run_dir: Path) -> float:
    """summary.json's ``final_eval_win_rate``: the greedy policy's share of battles won at the end (SMAX)."""
    return float(read_summary(run_dir).get("final_eval_win_rate", math.nan))


def final_eval(run_dir: Path) -> float:
    """The greedy win rate at the end where the env marks won battles (SMAX), else the greedy return: one metric for
    a suite that mixes such tasks (summary.json ``final_eval_win_rate`` / ``final_eval_return``)."""
    summary = read_summary(run_dir)
    return float(summary.get("final_eval_win_rate", summary["final_eval_return"]))


def final_eval_return(run_dir: Path) -> float:
    """summary.json's ``final_eval_return``: the greedy policy's mean return at the end of training."""
    return float(read_summary(run_dir)["final_eval_return"])


def last_logged(run_dir: Path, column: str = "train_return", n: int = 10) -> float:
    """Mean of the last ``n`` logged (non-empty) values of ``column`` in metrics.csv (all of them if fewer)."""
    values = [v for v in read_metric_columns(run_dir).get(column, []) if not math.isnan(v)]
    return float(np.mean(values[-n:])) if values else math.nan


def _eval_returns(run_dir: Path) -> list[float]:
    """The greedy evaluation returns logged during training (metrics.csv ``eval_return``, non-empty rows)."""
    return [v for v in read_metric_columns(run_dir).get("eval_return", []) if not math.isnan(v)]


def _eval_curve(run_dir: Path) -> dict[int, float]:
    """frames -> greedy evaluation return, for every evaluation logged during training (metrics.csv)."""
    m = read_metric_columns(run_dir)
    return {int(f): v for f, v in zip(m.get("frames", []), m.get("eval_return", [])) if not math.isnan(v)}


def best_eval_step_returns(run_dirs: list[Path]) -> list[float]:
    """EPyMARL's "maximum return" (Papoudakis et al. 2021, Sec. 4): "the evaluation timestep during training
    in which the algorithm achieves the highest average evaluation returns across [the] seeds"; each seed's
    evaluation return at that timestep (the frames every seed logged; NaN for all when there is none)."""
    curves = [_eval_curve(d) for d in run_dirs]
    common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if not common:
        return [math.nan] * len(run_dirs)
    best = max(common, key=lambda f: float(np.mean([c[f] for c in curves])))  # first of equal means
    return [c[best] for c in curves]


def mean_eval_return(run_dir: Path) -> float:
    """The mean of every greedy evaluation return logged during training (EPyMARL's "average return")."""
    values = _eval_returns(run_dir)
    return float(np.mean(values)) if values else math.nan


@dataclass(frozen=True)
class Metric:
    """How one finished run becomes one number (``value(run_dir)``), and what that number means."""

    name: str
    description: str
    value: Callable[[Path], float] | None
    across_seeds: Callable[[list[Path]], list[float]] | None = None
    """When set, the per-seed values depend on every seed's run (e.g. a timestep chosen on the mean over all seeds)."""

    def per_seed(self, run_dirs: list[Path]) -> list[float]:
        """One value per run directory, in order."""
        if self.across_seeds is not None:
            return self.across_seeds(list(run_dirs))
        return [self.value(d) for d in run_dirs]


METRICS = {
    "final_eval_return": Metric(
        "final_eval_return", "greedy evaluation return at the end of training (summary.json final_eval_return)",
        final_eval_return),
    "last10_train_return": Metric(
        "last10_train_return", "mean of the last 10 logged train_return values of metrics.csv (ε-greedy "
        "episodes; MARLlib's convention)", last_logged),
    "final_eval_win_rate": Metric(
        "final_eval_win_rate", "greedy win rate at the end of training (summary.json final_eval_win_rate: the share "
        "of the evaluation envs' battles won)", final_eval_win_rate),
    "final_eval": Metric(
        "final_eval", "greedy win rate at the end of training where the env marks won battles (SMAX), else the greedy "
        "return (summary.json final_eval_win_rate / final_eval_return)", final_eval),
    "epymarl_max_return": Metric(
        "epymarl_max_return", "EPyMARL's maximum return: each seed's greedy evaluation return (metrics.csv "
        "eval_return, every eval_every frames) at the evaluation timestep whose mean over all seeds is highest",
        None, best_eval_step_returns),
    "mean_eval_return": Metric(
        "mean_eval_return", "mean of the greedy evaluation returns logged during training (metrics.csv "
        "eval_return; EPyMARL's average return)", mean_eval_return),
}
"""Metric name (a suite's ``"metric"``) -> :class:`Metric`."""

__all__ = ["METRICS", "Metric", "best_eval_step_returns", "final_eval", "final_eval_return", "final_eval_win_rate",
           "last_logged", "mean_eval_return"]
