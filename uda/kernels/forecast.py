"""Batched forecasting kernels: one call fits or predicts every series of a panel.

All kernels take a panel ``Y`` of shape ``(n_series, n_time)`` (float64, NaN = missing)
and work in parallel over series. Forecasts are made from *origins*: an origin ``o``
may use ``Y[:, :o]`` only and its horizon-``h`` forecast targets index ``o + h - 1``.
Prediction kernels return an array of shape ``(n_series, n_origins, n_horizons)``.
Calendar information comes as per-step arrays (``weekend``: 1 on Saturday/Sunday) that
extend at least to the last target index; ``season`` is the number of steps in a day.
This module holds the naive models, the profiles, Holt-Winters, the neighbour signals and
the error sums; the ridge family's kernels are in :mod:`uda.kernels.linear`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True, parallel=True)
def forward_fill(Y: np.ndarray) -> np.ndarray:
    """Causal forward fill along time (leading NaNs stay NaN)."""
    n, T = Y.shape
    out = np.empty_like(Y)
    for i in prange(n):
        last = np.nan
        for t in range(T):
            v = Y[i, t]
            if not np.isnan(v):
                last = v
            out[i, t] = last
    return out


# --------------------------------------------------------------------------- naive models


@njit(cache=True, nogil=True, parallel=True)
def last_value_predict(Y: np.ndarray, origins: np.ndarray, horizons: np.ndarray) -> np.ndarray:
    """Last observed value before each origin, for every horizon (NaN if none)."""
    n = Y.shape[0]
    no, nh = origins.shape[0], horizons.shape[0]
    out = np.full((n, no, nh), np.nan)
    for i in prange(n):
        for a in range(no):
            v = np.nan
            t = origins[a] - 1
            while t >= 0:
                if not np.isnan(Y[i, t]):
                    v = Y[i, t]
                    break
                t -= 1
            for c in range(nh):
                out[i, a, c] = v
    return out


@njit(cache=True, nogil=True, parallel=True)
def seasonal_naive_predict(Y: np.ndarray, origins: np.ndarray, horizons: np.ndarray,
                           period: int, max_back: int) -> np.ndarray:
    """Value at the same point one ``period`` back (the most recent such point before the origin).

    If that value is missing, the same point one more period back is used, up to
    ``max_back`` periods; NaN if all are missing.
    """
    n = Y.shape[0]
    no, nh = origins.shape[0], horizons.shape[0]
    out = np.full((n, no, nh), np.nan)
    for i in prange(n):
        for a in range(no):
            o = origins[a]
            for c in range(nh):
                h = horizons[c]
                t = o + h - 1
                k = (h + period - 1) // period
                for extra in range(max_back):
                    src = t - (k + extra) * period
                    if src < 0:
                        break
                    v = Y[i, src]
                    if not np.isnan(v):
                        out[i, a, c] = v
                        break
    return out


@njit(cache=True, nogil=True, parallel=True)
def historical_average_predict(Y: np.ndarray, origins: np.ndarray, horizons: np.ndarray,
                               weekend: np.ndarray, season: int, weeks: int) -> np.ndarray:
    """Mean of the same slot of day on days of the same type over the previous ``weeks`` weeks.

    For target ``t`` the candidates are ``t - j * season`` for ``j = 1 .. 7 * weeks`` that lie
    before the origin, whose day type (``weekend``) equals that of ``t`` and that are observed.
    """
    n = Y.shape[0]
    no, nh = origins.shape[0], horizons.shape[0]
    out = np.full((n, no, nh), np.nan)
    for i in prange(n):
        for a in range(no):
            o = origins[a]
            for c in range(nh):
                t = o + horizons[c] - 1
                s = 0.0
                m = 0
                for j in range(1, 7 * weeks + 1):
                    src = t - j * season
                    if src < 0:
                        break
                    if src >= o or weekend[src] != weekend[t]:
                        continue
                    v = Y[i, src]
                    if not np.isnan(v):
                        s += v
                        m += 1
                if m > 0:
                    out[i, a, c] = s / m
    return out


@njit(cache=True, nogil=True, parallel=True)
def periodic_mean(Y: np.ndarray, cls: np.ndarray, period: int, window: int) -> np.ndarray:
    """``P[i, t]``: mean of ``Y[i, t - j * period]`` for ``j = 1 .. window`` over observed steps
    whose class ``cls`` equals that of ``t`` (NaN if none).

    With ``period`` a day and ``cls`` the weekend flag it is the historical-average profile
    (:func:`profile_matrix`); with ``cls`` all zero the mean of the same slot over recent
    days (or weeks, with ``period`` a week). It uses only values at least one period before
    ``t``. Computed with a sliding window per phase and class (two sums and counts), so the
    cost does not grow with ``window``.
    """
    n, T = Y.shape
    out = np.full((n, T), np.nan)
    for i in prange(n):
        sums = np.zeros(2)
        cnts = np.zeros(2, dtype=np.int64)
        for r in range(min(period, T)):
            sums[:] = 0.0
            cnts[:] = 0
            d = 0
            t = r
            while t < T:
                if d >= 1:  # period d - 1 enters the window
                    src = t - period
                    v = Y[i, src]
                    if not np.isnan(v):
                        sums[cls[src]] += v
                        cnts[cls[src]] += 1
                if d >= window + 1:  # period d - 1 - window leaves it
                    src = t - (window + 1) * period
                    v = Y[i, src]
                    if not np.isnan(v):
                        sums[cls[src]] -= v
                        cnts[cls[src]] -= 1
                k = cls[t]
                if cnts[k] > 0:
                    out[i, t] = sums[k] / cnts[k]
                d += 1
                t += period
    return out


def profile_matrix(Y: np.ndarray, weekend: np.ndarray, season: int, weeks: int) -> np.ndarray:
    """Historical-average profile: ``P[i, t]`` is the mean of ``Y[i, t - j * season]`` for
    ``j = 1 .. 7 * weeks`` over observed steps whose day type equals that of ``t`` (NaN if none).

    It uses only days before ``t``'s day, so it equals :func:`historical_average_predict`
    for every origin when the horizon is at most one day.
    """
    return periodic_mean(Y, weekend, season, 7 * weeks)


# --------------------------------------------------------------------------- Holt-Winters


@njit(cache=True, nogil=True)
def hw_initial_state(y: np.ndarray, season: int) -> tuple[float, float, np.ndarray]:
    """Initial level, trend and seasonal indices from the first two days of ``y``.

    Level: mean of day 1; trend: 0; seasonal index of slot ``j``: mean of slot ``j`` over
    days 1-2 minus the mean of days 1-2 (0 where unobserved). Missing values are skipped.
    """
    m = min(2 * season, y.shape[0])
    s1 = 0.0
    c1 = 0
    s2 = 0.0
    c2 = 0
    for t in range(m):
        v = y[t]
        if not np.isnan(v):
            s2 += v
            c2 += 1
            if t < season:
                s1 += v
                c1 += 1
    level = s1 / c1 if c1 > 0 else (s2 / c2 if c2 > 0 else 0.0)
    mean2 = s2 / c2 if c2 > 0 else level
    seas = np.zeros(season)
    for j in range(season):
        acc = 0.0
        k = 0
        t = j
        while t < m:
            if not np.isnan(y[t]):
                acc += y[t]
                k += 1
            t += season
        if k > 0:
            seas[j] = acc / k - mean2
    return level, 0.0, seas


@njit(cache=True, nogil=True)
def hw_filter(y: np.ndarray, alpha: float, beta: float, gamma: float, level0: float,
              trend0: float, seas0: np.ndarray, stop: int, origins: np.ndarray,
              horizons: np.ndarray, out: np.ndarray) -> float:
    """Run additive Holt-Winters over ``y[:stop]``; return the one-step SSE.

    Recursions (Hyndman & Athanasopoulos, the form statsmodels uses)::

        yhat_t = l + b + s[t - m]
        l'     = alpha (y_t - s[t - m]) + (1 - alpha) (l + b)
        b'     = beta (l' - l) + (1 - beta) b
        s[t]   = gamma (y_t - l - b) + (1 - gamma) s[t - m]

    A missing ``y_t`` leaves the state on its forecast path (``l' = l + b``, ``b' = b``,
    ``s[t] = s[t - m]``) and adds nothing to the SSE. When ``origins`` (ascending) is not
    empty, the h-step forecasts ``l + h b + s[t + h - m]`` made after step ``origin - 1``
    are written to ``out[a, c]``.
    """
    m = seas0.shape[0]
    seas = seas0.copy()
    level = level0
    trend = trend0
    sse = 0.0
    a = 0
    no = origins.shape[0]
    while a < no and origins[a] <= 0:
        for c in range(horizons.shape[0]):
            h = horizons[c]
            out[a, c] = level + h * trend + seas[(h - 1) % m]
        a += 1
    for t in range(stop):
        k = t % m
        v = y[t]
        if np.isnan(v):
            level = level + trend
        else:
            e = v - (level + trend + seas[k])
            sse += e * e
            new_level = alpha * (v - seas[k]) + (1.0 - alpha) * (level + trend)
            new_trend = beta * (new_level - level) + (1.0 - beta) * trend
            seas[k] = gamma * (v - level - trend) + (1.0 - gamma) * seas[k]
            level = new_level
            trend = new_trend
        while a < no and origins[a] == t + 1:
            for c in range(horizons.shape[0]):
                h = horizons[c]
                out[a, c] = level + h * trend + seas[(t + h) % m]
            a += 1
    return sse


@njit(cache=True, nogil=True, parallel=True)
def hw_fit(Y: np.ndarray, season: int, alphas: np.ndarray, betas: np.ndarray,
           gammas: np.ndarray) -> np.ndarray:
    """Per series, the (alpha, beta, gamma) of the grid with the least one-step SSE.

    Returns an array ``(n_series, 3)``; ties keep the first grid point.
    """
    n, T = Y.shape
    params = np.empty((n, 3))
    empty_o = np.empty(0, dtype=np.int64)
    empty_out = np.empty((0, 0))
    for i in prange(n):
        y = Y[i]
        level0, trend0, seas0 = hw_initial_state(y, season)
        best = np.inf
        pa, pb, pg = alphas[0], betas[0], gammas[0]
        for ia in range(alphas.shape[0]):
            for ib in range(betas.shape[0]):
                for ig in range(gammas.shape[0]):
                    sse = hw_filter(y, alphas[ia], betas[ib], gammas[ig], level0, trend0, seas0,
                                    T, empty_o, empty_o, empty_out)
                    if sse < best:
                        best = sse
                        pa, pb, pg = alphas[ia], betas[ib], gammas[ig]
        params[i, 0] = pa
        params[i, 1] = pb
        params[i, 2] = pg
    return params


@njit(cache=True, nogil=True, parallel=True)
def hw_predict(Y: np.ndarray, params: np.ndarray, season: int, init_end: int,
               origins: np.ndarray, horizons: np.ndarray) -> np.ndarray:
    """Holt-Winters forecasts from each origin (ascending) with per-series ``params``.

    The initial state comes from ``Y[:, :init_end]`` exactly as in :func:`hw_fit`, then the
    filter runs over the whole history up to the last origin.
    """
    n = Y.shape[0]
    no, nh = origins.shape[0], horizons.shape[0]
    out = np.full((n, no, nh), np.nan)
    stop = origins[no - 1] if no > 0 else 0
    for i in prange(n):
        y = Y[i]
        level0, trend0, seas0 = hw_initial_state(y[:init_end], season)
        hw_filter(y, params[i, 0], params[i, 1], params[i, 2], level0, trend0, seas0, stop,
                  origins, horizons, out[i])
    return out


# --------------------------------------------------------------------------- neighbours


@njit(cache=True, nogil=True, parallel=True)
def pair_correlation(Z: np.ndarray, rows: np.ndarray, cols: np.ndarray, stop: int) -> np.ndarray:
    """Pearson correlation of ``Z[rows[k], :stop]`` and ``Z[cols[k], :stop]`` over steps where
    both are observed (0 with fewer than 3 such steps or no variance)."""
    out = np.zeros(rows.shape[0])
    for k in prange(rows.shape[0]):
        x = Z[rows[k]]
        y = Z[cols[k]]
        sx = sy = sxx = syy = sxy = 0.0
        c = 0
        for t in range(stop):
            a = x[t]
            b2 = y[t]
            if np.isnan(a) or np.isnan(b2):
                continue
            sx += a
            sy += b2
            sxx += a * a
            syy += b2 * b2
            sxy += a * b2
            c += 1
        if c < 3:
            continue
        vx = sxx - sx * sx / c
        vy = syy - sy * sy / c
        if vx <= 1e-12 or vy <= 1e-12:
            continue
        out[k] = (sxy - sx * sy / c) / np.sqrt(vx * vy)
    return out


@njit(cache=True, nogil=True, parallel=True)
def neighbour_mean(Z: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per series and step, the mean of its neighbours' observed values (NaN if none).

    Neighbours of series ``i`` are ``indices[indptr[i]:indptr[i + 1]]`` (CSR adjacency).
    """
    n, T = Z.shape
    out = np.full((n, T), np.nan)
    for i in prange(n):
        for t in range(T):
            s = 0.0
            m = 0
            for k in range(indptr[i], indptr[i + 1]):
                v = Z[indices[k], t]
                if not np.isnan(v):
                    s += v
                    m += 1
            if m > 0:
                out[i, t] = s / m
    return out


# --------------------------------------------------------------------------- errors


@njit(cache=True, nogil=True)
def error_sums(Yhat: np.ndarray, Y: np.ndarray, origins: np.ndarray,
               horizons: np.ndarray) -> np.ndarray:
    """Per horizon: ``[count, sum |e|, sum e^2, sum |e| / |y|]`` over masked points.

    A point counts when the actual ``y`` is finite and not zero and the forecast is finite.
    Sums from disjoint sets of series add up to the sums of their union.
    """
    n = Y.shape[0]
    nh = horizons.shape[0]
    out = np.zeros((nh, 4))
    for c in range(nh):
        h = horizons[c]
        for i in range(n):
            for a in range(origins.shape[0]):
                y = Y[i, origins[a] + h - 1]
                f = Yhat[i, a, c]
                if np.isnan(y) or y == 0.0 or np.isnan(f):
                    continue
                e = abs(f - y)
                out[c, 0] += 1.0
                out[c, 1] += e
                out[c, 2] += e * e
                out[c, 3] += e / abs(y)
    return out
