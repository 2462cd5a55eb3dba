"""Statistics over seeds: the Student-t confidence interval of a mean (the many-seeds aggregate, reproduce)."""

from __future__ import annotations

import math

import numpy as np


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval, ``t_{(1+c)/2, n-1} * s / sqrt(n)``.

    ``s`` is the sample standard deviation (ddof=1). With fewer than two values the half-width is nan
    (and the mean is nan with none).

    Examples:
        >>> mean, half = t_interval([1, 2, 3, 4])  # t(0.975, 3) = 3.1824, s = 1.2910
        >>> round(mean, 2), round(half, 4)
        (2.5, 2.0543)
    """
    try:
        from scipy import stats
    except ImportError as err:
        raise ImportError("t-intervals need SciPy: pip install 'torchrl-vd[reproduce]'") from err

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    half = stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


__all__ = ["t_interval"]
