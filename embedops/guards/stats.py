"""The paired interval every domain and slice judgement uses: a BCa bootstrap of the mean per-query
difference (scipy.stats.bootstrap; Efron & Tibshirani, "An Introduction to the Bootstrap", 1993).

>>> low, high = paired_interval([1.0, 2.0, 3.0, 4.0], 0.95, 1000)
>>> low < 2.5 < high
True
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap


def paired_interval(deltas, confidence: float, resamples: int) -> tuple[float, float]:
    """(low, high) of the ``confidence`` interval of the mean of ``deltas`` (two or more values).
    Identical deltas have no spread to resample: the interval is that one value."""
    deltas = np.asarray(deltas, dtype=float)
    if len(deltas) < 2:
        raise ValueError("a paired interval needs at least two per-query differences")
    mean = float(deltas.mean())
    if np.ptp(deltas) == 0:
        return mean, mean
    ci = bootstrap((deltas,), np.mean, confidence_level=confidence, n_resamples=resamples, method="BCa",
                   random_state=0).confidence_interval
    low, high = float(ci.low), float(ci.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa can fail on very discrete samples: percentile
        ci = bootstrap((deltas,), np.mean, confidence_level=confidence, n_resamples=resamples,
                       method="percentile", random_state=0).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return low, high
