"""Statistics the report shows beside the counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

#: z for a two-sided 95 % interval, as SERVICE-LEVEL.md fixes it.
Z95 = 1.959964


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for hits / n, or None when n == 0."""
    if n <= 0:
        return None
    p = hits / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation as numpy's quantile computes it (stable at both ends)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


MEDIAN = Fraction(1, 2)
P90 = Fraction(9, 10)


def quantile_ranks(count: int, q: Fraction) -> tuple[int, int, float]:
    """The 0-based ranks to read and the weight of the upper one (numpy's "linear" method,
    with the position (count - 1) * q computed exactly)."""
    pos = (count - 1) * q
    lo = math.floor(pos)
    hi = lo + 1 if pos > lo else lo
    return lo, hi, float(pos - lo)


def quantile_linear(sorted_values: Sequence[float], q: Fraction) -> float | None:
    """The q-quantile of already sorted values, interpolating linearly between closest ranks."""
    if not sorted_values:
        return None
    lo, hi, t = quantile_ranks(len(sorted_values), q)
    return lerp(sorted_values[lo], sorted_values[hi], t)
