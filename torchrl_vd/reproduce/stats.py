"""The interquartile mean (IQM) over seeds and its stratified percentile-bootstrap interval.

Both follow Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS
2021) and its library rliable (github.com/google-research/rliable): ``aggregate_iqm`` and
``get_interval_estimates``, which :func:`iqm_interval` calls when rliable is installed. The mean's Student-t
interval, the other column of a reproduction table, is :func:`torchrl_vd.train.stats.t_interval`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def iqm(scores) -> float:
    """Interquartile mean: the mean after cutting ``int(0.25 n)`` values from each end (rliable's
    ``aggregate_iqm``, i.e. ``scipy.stats.trim_mean(x, 0.25)`` over all scores).

    Examples:
        >>> iqm([100, 0, 7, 1, 6, 2, 5, 3])  # sorted 0 1 [2 3 5 6] 7 100
        4.0
    """
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean()) if x.size else math.nan


def _auto_backend() -> str:
    """rliable when it is installed and imports, else numpy."""
    try:
        from rliable import library  # noqa: F401
    except Exception:  # not installed, or its dependencies broken (arch against another pandas: a TypeError)
        return "numpy"
    return "rliable"


def _rliable_interval(x: np.ndarray, reps: int, confidence: float, seed: int) -> tuple[float, float, float]:
    """rliable's ``get_interval_estimates`` of the IQM of ``x [runs, tasks]``."""
    from rliable import library as rly
    from rliable import metrics as rly_metrics

    with warnings.catch_warnings():  # arch deprecates the random_state that rliable passes it
        warnings.filterwarnings("ignore", category=FutureWarning, message="random_state is deprecated")
        point, ci = rly.get_interval_estimates(
            {"x": x}, lambda s: np.array([rly_metrics.aggregate_iqm(s)]), reps=reps,
            confidence_interval_size=confidence, random_state=np.random.RandomState(seed))
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def _numpy_interval(x: np.ndarray, reps: int, confidence: float, seed: int) -> tuple[float, float, float]:
    """The same stratified percentile bootstrap as rliable's, in numpy: each rep resamples the runs of every
    task (column) with replacement."""
    rng = np.random.default_rng(seed)
    n, tasks = x.shape
    idx = rng.integers(0, n, size=(reps, n, tasks))  # run indices, drawn per task
    resampled = np.take_along_axis(np.broadcast_to(x, (reps, n, tasks)), idx, axis=1)  # [reps, n, tasks]
    flat = np.sort(resampled.reshape(reps, -1), axis=1)
    cut = int(0.25 * flat.shape[1])
    boot = flat[:, cut:flat.shape[1] - cut].mean(axis=1)  # [reps]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return iqm(x), float(low), float(high)


def iqm_interval(scores, reps: int = 5_000, confidence: float = 0.95, seed: int = 0,
                 backend: str = "auto") -> tuple[float, float, float, str]:
    """IQM of ``scores`` (``[runs]`` or ``[runs, tasks]``) and its percentile bootstrap interval.

    The bootstrap is stratified: each rep resamples the runs of every task (column) with replacement.
    ``backend``: ``rliable`` (its ``get_interval_estimates``), ``numpy`` (the same resampling here), or
    ``auto`` (rliable when installed). Returns ``(iqm, low, high, backend used)``.

    Examples:
        >>> iqm_interval([5.0, 5.0], reps=100, backend="numpy")
        (5.0, 5.0, 5.0, 'numpy')
    """
    x = np.asarray(scores, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    if backend == "auto":
        backend = _auto_backend()
    if x.shape[0] == 0:
        return math.nan, math.nan, math.nan, backend
    if backend == "rliable":
        return (*_rliable_interval(x, reps, confidence, seed), backend)
    if backend != "numpy":
        raise ValueError(f"backend must be 'auto', 'rliable' or 'numpy' (got {backend!r}).")
    return (*_numpy_interval(x, reps, confidence, seed), backend)


__all__ = ["iqm", "iqm_interval"]
