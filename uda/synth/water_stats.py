"""Statistics that compare generated water series with real ones (same definition on both sides).

Used by ``bench/water_calibration.py`` (real tables vs a generated city) and by
``tests/test_synth_water.py`` (generated statistics inside their calibrated bands).
Series are 1-D float arrays on a regular grid with NaN for missing values.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation over consecutive pairs where both values are present."""
    a, b = x[:-1], x[1:]
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def daily_range(x: np.ndarray, per_day: int, min_present: float = 0.9) -> float:
    """Median over days of (max - min), days with at least ``min_present`` of their rows."""
    n = x.size // per_day * per_day
    days = x[:n].reshape(-1, per_day)
    ok = np.mean(~np.isnan(days), axis=1) >= min_present
    if not ok.any():
        return float("nan")
    return float(np.median(np.nanmax(days[ok], axis=1) - np.nanmin(days[ok], axis=1)))


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in ``mask``."""
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    start = np.flatnonzero(d == 1)
    return start, np.flatnonzero(d == -1) - start


def noise_sd(x: np.ndarray) -> float:
    """Robust SD of the curvature residual ``x_t - (x_{t-1} + x_{t+1}) / 2`` (1.4826 MAD).

    Floored at the series' resolution (its smallest positive step), so quantised and
    smooth series do not get a zero SD.
    """
    r = x[1:-1] - 0.5 * (x[:-2] + x[2:])
    r = r[~np.isnan(r)]
    steps = np.abs(np.diff(x))
    steps = steps[(steps > 0) & ~np.isnan(steps)]
    res = float(steps.min()) if steps.size else 0.0
    if r.size == 0:
        return res
    return max(1.4826 * float(np.median(np.abs(r - np.median(r)))), res)


def spike_rate(x: np.ndarray, k: float = 10.0) -> float:
    """Share of rows that jump away from both neighbours by more than ``k`` noise SDs and come back."""
    sd = noise_sd(x)
    if not sd > 0 or x.size < 3:
        return float("nan")
    a, b, c = x[:-2], x[1:-1], x[2:]
    with np.errstate(invalid="ignore"):
        hit = (np.abs(b - 0.5 * (a + c)) > k * sd) & (np.abs(c - a) < 0.5 * np.abs(b - a))
    return float(hit.sum() / max(int((~np.isnan(b)).sum()), 1))


def flow_rank_corr(x: np.ndarray, flow: np.ndarray) -> float:
    """Spearman correlation of a parameter with discharge (or stage)."""
    ok = ~np.isnan(x) & ~np.isnan(flow)
    if ok.sum() < 10:
        return float("nan")
    return float(spearmanr(x[ok], flow[ok]).statistic)


def event_shifts(x: np.ndarray, starts: np.ndarray, lengths: np.ndarray, before: int) -> np.ndarray:
    """|median inside each event - median of the ``before`` rows ahead of it| in noise SDs."""
    sd = noise_sd(x)
    out = np.full(starts.size, np.nan)
    if not sd > 0:
        return out
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        pre = x[max(0, s - before):s]
        inside = x[s:s + n]
        if np.isnan(pre).all() or np.isnan(inside).all():
            continue
        out[i] = abs(np.nanmedian(inside) - np.nanmedian(pre)) / sd
    return out
