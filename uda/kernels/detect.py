"""Streaming event detectors: robust rolling and plume-masked baselines, CUSUM, a multivariate
score, alarm runs, window maximum (the signature detectors and the mass balance).

Every detector is causal (the score at sample ``i`` uses samples ``<= i`` only) and works on
grouped series: rows sorted by group (site), ``offsets`` marking where each group starts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Scales a median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_SD = 1.4826


@njit(cache=True, nogil=True)
def _sorted_insert(buf: np.ndarray, m: int, v: float) -> None:
    p = np.searchsorted(buf[:m], v)
    for k in range(m, p, -1):
        buf[k] = buf[k - 1]
    buf[p] = v


@njit(cache=True, nogil=True)
def _sorted_remove(buf: np.ndarray, m: int, v: float) -> None:
    p = np.searchsorted(buf[:m], v)
    for k in range(p, m - 1):
        buf[k] = buf[k + 1]


@njit(cache=True, nogil=True)
def _median_mad(buf: np.ndarray, m: int) -> tuple:
    """Median and median absolute deviation of the sorted ``buf[:m]`` in O(m)."""
    h = m // 2
    med = buf[h] if m % 2 == 1 else 0.5 * (buf[h - 1] + buf[h])
    # Merge the deviations below (walking left) and above (walking right) the median.
    r = np.searchsorted(buf[:m], med)
    lft = r - 1
    k1 = (m - 1) // 2
    k2 = m // 2
    d1 = 0.0
    d2 = 0.0
    for k in range(k2 + 1):
        if lft >= 0 and (r >= m or med - buf[lft] <= buf[r] - med):
            d = med - buf[lft]
            lft -= 1
        else:
            d = buf[r] - med
            r += 1
        if k == k1:
            d1 = d
        if k == k2:
            d2 = d
    return med, 0.5 * (d1 + d2)


@njit(cache=True, nogil=True)
def rolling_baseline_series(x: np.ndarray, window: int, min_periods: int,
                            min_scale: float) -> tuple:
    """Median and robust scale of the ``window`` samples before each sample.

    Parameters
    ----------
    x
        One series (float64, NaN = missing; missing samples still occupy window slots).
    window
        Number of preceding samples forming the baseline (the current one is excluded).
    min_periods
        Fewest non-missing baseline samples needed (else NaN).
    min_scale
        Floor of the scale ``1.4826 * MAD`` (guards constant stretches).

    Returns
    -------
    tuple of ndarray
        ``(median, scale)`` with ``scale = max(1.4826 * MAD, min_scale)``; the robust
        z-score of ``x`` is ``(x - median) / scale``.
    """
    n = x.shape[0]
    med_out = np.full(n, np.nan)
    scale_out = np.full(n, np.nan)
    buf = np.empty(max(window, 1))
    m = 0
    for i in range(n):
        if m >= min_periods and m > 0:
            med, mad = _median_mad(buf, m)
            med_out[i] = med
            scale_out[i] = max(MAD_TO_SD * mad, min_scale)
        if i - window >= 0 and not np.isnan(x[i - window]):
            _sorted_remove(buf, m, x[i - window])
            m -= 1
        if not np.isnan(x[i]):
            _sorted_insert(buf, m, x[i])
            m += 1
    return med_out, scale_out


@njit(cache=True, nogil=True, parallel=True)
def rolling_baseline(values: np.ndarray, offsets: np.ndarray, window: int, min_periods: int,
                     min_scale: np.ndarray) -> tuple:
    """:func:`rolling_baseline_series` for every group and parameter column (in parallel).

    Parameters
    ----------
    values
        ``(n_rows, n_params)`` float64, rows sorted by group.
    offsets
        ``(n_groups + 1,)`` int64 row offsets; windows never cross groups.
    window, min_periods
        As for :func:`rolling_baseline_series`.
    min_scale
        ``(n_params,)`` scale floor per parameter.

    Returns
    -------
    tuple of ndarray
        ``(median, scale)``, each ``(n_rows, n_params)``.
    """
    n_groups = offsets.shape[0] - 1
    n_params = values.shape[1]
    med = np.full(values.shape, np.nan)
    scale = np.full(values.shape, np.nan)
    for task in prange(n_groups * n_params):
        g = task // n_params
        j = task % n_params
        a, b = offsets[g], offsets[g + 1]
        m, s = rolling_baseline_series(np.ascontiguousarray(values[a:b, j]), window,
                                       min_periods, min_scale[j])
        med[a:b, j] = m
        scale[a:b, j] = s
    return med, scale


@njit(cache=True, nogil=True, parallel=True)
def window_max(x: np.ndarray, offsets: np.ndarray, before: int, after: int) -> np.ndarray:
    """Largest non-missing value of ``x[i - before : i + after + 1]`` within each group.

    Parameters
    ----------
    x
        ``(n_rows, n_cols)`` float64, rows sorted by group.
    offsets
        ``(n_groups + 1,)`` int64 row offsets; windows never cross groups.
    before, after
        Samples looked at before and after each sample.

    Returns
    -------
    ndarray
        ``(n_rows, n_cols)``; NaN where the whole window is missing.
    """
    n_groups = offsets.shape[0] - 1
    n_cols = x.shape[1]
    out = np.full(x.shape, np.nan)
    for task in prange(n_groups * n_cols):
        g = task // n_cols
        j = task % n_cols
        a, b = offsets[g], offsets[g + 1]
        for i in range(a, b):
            best = np.nan
            for k in range(max(a, i - before), min(b, i + after + 1)):
                v = x[k, j]
                if not np.isnan(v) and (np.isnan(best) or v > best):
                    best = v
            out[i, j] = best
    return out


@njit(cache=True, nogil=True, parallel=True)
def cusum(z: np.ndarray, offsets: np.ndarray, k: float, clip: float) -> np.ndarray:
    """One-sided upper CUSUM ``S_i = max(0, S_{i-1} + min(z_i, clip) - k)`` per group and column.

    Parameters
    ----------
    z
        ``(n_rows, n_cols)`` standardised scores (NaN = missing: ``S`` carries over).
    offsets
        ``(n_groups + 1,)`` int64 row offsets; ``S`` restarts at 0 in each group.
    k
        Reference value (allowance) subtracted each step.
    clip
        Largest single-step contribution (limits the weight of one wild sample).

    Returns
    -------
    ndarray
        ``(n_rows, n_cols)`` CUSUM statistics.
    """
    n_groups = offsets.shape[0] - 1
    n_cols = z.shape[1]
    out = np.zeros(z.shape)
    for task in prange(n_groups * n_cols):
        g = task // n_cols
        j = task % n_cols
        s = 0.0
        for i in range(offsets[g], offsets[g + 1]):
            v = z[i, j]
            if not np.isnan(v):
                s = max(0.0, s + min(v, clip) - k)
            out[i, j] = s
    return out


@njit(cache=True, nogil=True, parallel=True)
def multivariate_score(z: np.ndarray, directions: np.ndarray, clip: float) -> np.ndarray:
    """Matched-filter score across parameters: ``sum_j clip(d_j z_j, -clip, clip) / sqrt(m)``.

    Each parameter's z-score is projected on the direction a plume moves it, so contrary
    evidence counts against an event (rain raises turbidity but dilutes conductivity,
    while a discharge raises both).

    Parameters
    ----------
    z
        ``(n_rows, n_params)`` robust z-scores.
    directions
        ``(n_params,)`` +1 (a pollution event raises the parameter), -1 (lowers it) or 0
        (ignored); ``m`` is the number of non-zero directions.
    clip
        Cap on each parameter's contribution either way, so one sensor cannot dominate.

    Returns
    -------
    ndarray
        ``(n_rows,)`` scores (0 where no parameter is measured).
    """
    n = z.shape[0]
    m = 0
    for j in range(directions.shape[0]):
        if directions[j] != 0:
            m += 1
    norm = np.sqrt(max(m, 1))
    out = np.zeros(n)
    for i in prange(n):
        s = 0.0
        for j in range(z.shape[1]):
            v = z[i, j] * directions[j]
            if directions[j] != 0 and not np.isnan(v):
                s += min(max(v, -clip), clip)
        out[i] = s / norm
    return out


@njit(cache=True, nogil=True)
def _runs_pass(flags, offsets, merge_gap, fill, group, first, last):
    k = 0
    last_i = 0
    for g in range(offsets.shape[0] - 1):
        open_ = False
        for i in range(offsets[g], offsets[g + 1]):
            if not flags[i]:
                continue
            if open_ and i - last_i - 1 <= merge_gap:
                last_i = i
                if fill:
                    last[k - 1] = i
                continue
            if fill:
                group[k] = g
                first[k] = i
                last[k] = i
            k += 1
            open_ = True
            last_i = i
    return k


@njit(cache=True, nogil=True)
def alarm_runs(flags: np.ndarray, offsets: np.ndarray, merge_gap: int) -> tuple:
    """Runs of raised flags per group, joining runs separated by at most ``merge_gap`` samples.

    Parameters
    ----------
    flags
        ``(n_rows,)`` boolean alarm (or label) per sample.
    offsets
        ``(n_groups + 1,)`` int64 row offsets; runs never cross groups.
    merge_gap
        Runs separated by this many unflagged samples or fewer become one.

    Returns
    -------
    tuple of ndarray
        ``(group, first_row, last_row)`` of each run.
    """
    z = np.zeros(0, dtype=np.int64)
    n = _runs_pass(flags, offsets, merge_gap, False, z, z, z)
    group = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    last = np.zeros(n, dtype=np.int64)
    _runs_pass(flags, offsets, merge_gap, True, group, first, last)
    return group, first, last


@njit(cache=True, nogil=True)
def _masked_group(values, a, b, window, min_periods, min_scale, directions, clip, threshold,
                  max_mask, med_out, scale_out):
    n_params = values.shape[1]
    ring = np.empty((n_params, max(window, 1)))
    buf = np.empty((n_params, max(window, 1)))
    count = np.zeros(n_params, dtype=np.int64)
    head = np.zeros(n_params, dtype=np.int64)
    m = 0
    for j in range(n_params):
        if directions[j] != 0:
            m += 1
    norm = np.sqrt(max(m, 1))
    run = 0
    for i in range(a, b):
        score = 0.0
        for j in range(n_params):
            c = count[j]
            if c >= min_periods and c > 0:
                med, mad = _median_mad(buf[j], c)
                sc = max(MAD_TO_SD * mad, min_scale[j])
                med_out[i, j] = med
                scale_out[i, j] = sc
                v = values[i, j]
                if directions[j] != 0 and not np.isnan(v):
                    score += min(max(directions[j] * (v - med) / sc, -clip), clip)
        if score / norm > threshold and run < max_mask:
            run += 1
            continue
        run = 0
        for j in range(n_params):
            v = values[i, j]
            if np.isnan(v):
                continue
            if count[j] == window:
                old = ring[j, head[j]]
                _sorted_remove(buf[j], count[j], old)
                count[j] -= 1
            ring[j, head[j]] = v
            head[j] = (head[j] + 1) % window
            _sorted_insert(buf[j], count[j], v)
            count[j] += 1


@njit(cache=True, nogil=True, parallel=True)
def masked_baseline(values: np.ndarray, offsets: np.ndarray, window: int, min_periods: int,
                    min_scale: np.ndarray, directions: np.ndarray, clip: float, threshold: float,
                    max_mask: int) -> tuple:
    """Rolling median/MAD baseline that stops learning while a plume is under way.

    Like :func:`rolling_baseline`, but the window holds the last ``window`` *accepted*
    values of each parameter, and a sample is not accepted while its matched-filter score
    (:func:`multivariate_score` against the current baseline) exceeds ``threshold`` — for
    at most ``max_mask`` samples in a row, so a lasting change of level is learnt. On a
    river that is often polluted the plain median drifts into the plumes; this one stays
    on clean water.

    Parameters
    ----------
    values
        ``(n_rows, n_params)`` float64, rows sorted by group (NaN = missing, never accepted).
    offsets
        ``(n_groups + 1,)`` int64 row offsets.
    window, min_periods
        Accepted samples forming the baseline, and fewest needed for a value.
    min_scale
        ``(n_params,)`` scale floors.
    directions, clip
        Signature and per-parameter cap of the matched filter.
    threshold
        Score above which a sample is held out of the baseline.
    max_mask
        Longest run of held-out samples.

    Returns
    -------
    tuple of ndarray
        ``(median, scale)``, each ``(n_rows, n_params)``.
    """
    n_groups = offsets.shape[0] - 1
    med = np.full(values.shape, np.nan)
    scale = np.full(values.shape, np.nan)
    for g in prange(n_groups):
        _masked_group(values, offsets[g], offsets[g + 1], window, min_periods, min_scale,
                      directions, clip, threshold, max_mask, med, scale)
    return med, scale
