"""Statistics over seeds: the Student-t confidence interval of a mean (the many-seeds aggregate, reproduce).

Pure Python (``math``): the t quantile is computed here rather than with SciPy, whose import (about 1 s of CPU)
would be most of the cost of a many-seeds run's aggregate summary.
"""

from __future__ import annotations

import math


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval, ``t_{(1+c)/2, n-1} * s / sqrt(n)``.

    ``s`` is the sample standard deviation (ddof=1). With fewer than two values the half-width is nan
    (and the mean is nan with none).

    Examples:
        >>> mean, half = t_interval([1, 2, 3, 4])  # t(0.975, 3) = 3.1824, s = 1.2910
        >>> round(mean, 2), round(half, 4)
        (2.5, 2.0543)
    """
    x = [float(v) for v in values]
    if not x:
        return math.nan, math.nan
    mean = math.fsum(x) / len(x)
    if len(x) == 1:
        return mean, math.nan
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (len(x) - 1))
    return mean, t_quantile((1 + confidence) / 2, len(x) - 1) * sd / math.sqrt(len(x))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``), by bisection of
    :func:`t_cdf` to machine precision.

    Examples:
        >>> round(t_quantile(0.975, 3), 6), round(t_quantile(0.975, 1), 5), t_quantile(0.5, 7)
        (3.182446, 12.7062, 0.0)
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}.")
    if p == 0.5:  # the median, exactly (bisection would stop at the smallest float t_cdf rounds to 0.5 from below)
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket the quantile
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t: ``1 - I_x(df/2, 1/2) / 2`` with ``x = df / (df + t²)`` for t >= 0
    (Abramowitz & Stegun 26.7.1 via 26.5.27)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Abramowitz & Stegun 26.5.8)
    evaluated with the modified Lentz method, on the side of x where it converges fast (26.5.2 symmetry)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """1 / (1 + d_1 / (1 + d_2 / (1 + ...))), the continued fraction of A&S 26.5.8, by the modified Lentz method."""
    tiny = 1e-300

    def guard(v: float) -> float:
        return tiny if abs(v) < tiny else v

    c, d = 1.0, 1.0 / guard(1.0 - (a + b) * x / (a + 1.0))
    h = d
    for m in range(1, 500):
        for coef in (m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),  # d_{2m}
                     -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))):  # d_{2m+1}
            d = 1.0 / guard(1.0 + coef * d)
            c = guard(1.0 + coef / c)
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


__all__ = ["t_cdf", "t_interval", "t_quantile"]
