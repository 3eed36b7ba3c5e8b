"""Kernels of the detectors over every parameter, fitted on a training part.

Causal gated residuals against a short sorted window (:func:`causal_residuals`), the
robust Mahalanobis distance (:func:`robust_distance`), the two-sided CUSUM
(:func:`cusum_two_sided`), persistence and hysteresis of alarms (:func:`hysteresis`),
and all of them in one compiled pass per site with gradient-boosted trees evaluated on
the fly (:func:`detector_rows`). Grouped series as in :mod:`uda.kernels.detect`: rows
sorted by group (site), ``offsets`` marking where each group starts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _sorted_push(buf, m, v):
    """Insert ``v`` into the sorted ``buf[:m]`` (room for one more), shifting from the end."""
    k = m
    while k > 0 and buf[k - 1] > v:
        buf[k] = buf[k - 1]
        k -= 1
    buf[k] = v


@njit(cache=True, nogil=True, inline="always")
def _sorted_replace(buf, m, old, new):
    """Replace one ``old`` in the sorted ``buf[:m]`` by ``new``, moving only the values between them."""
    lo = 0
    hi = m
    while lo < hi:  # leftmost position of old
        mid = (lo + hi) // 2
        if buf[mid] < old:
            lo = mid + 1
        else:
            hi = mid
    k = lo
    if new > old:
        while k + 1 < m and buf[k + 1] < new:
            buf[k] = buf[k + 1]
            k += 1
    else:
        while k > 0 and buf[k - 1] > new:
            buf[k] = buf[k - 1]
            k -= 1
    buf[k] = new


@njit(cache=True, nogil=True)
def _residual_series(x, window, min_periods, scale, gate, max_mask, out):
    """One series of :func:`causal_residuals` (see there)."""
    n = x.shape[0]
    w = max(window, 1)
    ring = np.empty(w)
    buf = np.empty(w)
    m = 0          # values in the window
    head = 0       # ring slot of the oldest value
    rejected = 0   # samples held out in a row
    open_gate = False
    for i in range(n):
        v = x[i]
        if np.isnan(v):
            out[i] = np.nan
            continue
        if m >= min_periods:
            h = m // 2
            med = buf[h] if m % 2 == 1 else 0.5 * (buf[h - 1] + buf[h])
            r = (v - med) / scale
        else:
            r = np.nan
        out[i] = r
        take = True
        if not np.isnan(r) and abs(r) > gate:
            if open_gate or rejected >= max_mask:
                open_gate = True   # a lasting change: learn it
            else:
                rejected += 1
                take = False
        else:
            rejected = 0
            open_gate = False
        if take:
            if m == w:
                _sorted_replace(buf, m, ring[head], v)
                ring[head] = v
                head = (head + 1) % w
            else:
                ring[(head + m) % w] = v
                _sorted_push(buf, m, v)
                m += 1


@njit(cache=True, nogil=True, inline="always")
def _distance(v, precision) -> float:
    """``sqrt(v' precision v / p)`` skipping zero entries of ``v`` (missing residuals)."""
    p = v.shape[0]
    s = 0.0
    for j in range(p):
        if v[j] == 0.0:
            continue
        t = 0.0
        for k in range(p):
            t += precision[j, k] * v[k]
        s += v[j] * t
    return np.sqrt(max(s, 0.0) / max(p, 1))


@njit(cache=True, nogil=True, parallel=True)
def causal_residuals(values: np.ndarray, offsets: np.ndarray, window: int, min_periods: int,
                     scale: np.ndarray, gate: float, max_mask: int) -> np.ndarray:
    """Residual of each sample against the median of the last ``window`` accepted samples.

    The short causal forecast of a parameter is the median of its last ``window``
    non-missing samples that were *accepted*; a sample whose residual exceeds ``gate``
    (in units of ``scale``) is held out of the window, for at most ``max_mask`` samples
    in a row: after that every sample is taken until one falls inside the gate again, so
    a lasting change of level is learnt. ``gate = inf`` gives the plain rolling median.

    Parameters
    ----------
    values
        ``(n_rows, n_params)`` float64, rows sorted by group (site); NaN = missing.
    offsets
        ``(n_groups + 1,)`` int64 row offsets; windows never cross groups.
    window
        Accepted samples in the forecast window (the current sample is never in it).
    min_periods
        Fewest samples in the window before a residual exists (else NaN).
    scale
        ``(n_groups, n_params)`` divisor of the residuals (1 for raw residuals).
    gate
        Standardised residual above which a sample is held out of the window.
    max_mask
        Longest run of held-out samples.

    Returns
    -------
    ndarray
        ``(n_rows, n_params)`` residuals ``(x - median) / scale``; NaN for missing
        samples and during the warm-up.
    """
    n_groups = offsets.shape[0] - 1
    n_params = values.shape[1]
    out = np.empty(values.shape)
    for task in prange(n_groups * n_params):
        g = task // n_params
        j = task % n_params
        a, b = offsets[g], offsets[g + 1]
        col = np.empty(b - a)
        _residual_series(np.ascontiguousarray(values[a:b, j]), window, min_periods, scale[g, j],
                         gate, max_mask, col)
        out[a:b, j] = col
    return out


@njit(cache=True, nogil=True, parallel=True)
def robust_distance(z: np.ndarray, precision: np.ndarray, clip: float) -> np.ndarray:
    """Mahalanobis length ``sqrt(z' P z / p)`` of each row of clipped residuals.

    Parameters
    ----------
    z
        ``(n_rows, p)`` standardised residuals; missing values count as 0 (on forecast).
    precision
        ``(p, p)`` inverse covariance of the residuals (fitted on the training part).
    clip
        Each residual is clipped to ``[-clip, clip]`` first.

    Returns
    -------
    ndarray
        ``(n_rows,)``; 0 where every residual is missing.
    """
    n, p = z.shape
    out = np.zeros(n)
    for i in prange(n):
        v = np.empty(p)
        for j in range(p):
            x = z[i, j]
            v[j] = 0.0 if np.isnan(x) else min(max(x, -clip), clip)
        out[i] = _distance(v, precision)
    return out


@njit(cache=True, nogil=True, parallel=True)
def cusum_two_sided(z: np.ndarray, offsets: np.ndarray, k: float, clip: float) -> np.ndarray:
    """Two-sided CUSUM of each column, ``S+ = max(0, S+ + z - k)``, ``S- = max(0, S- - z - k)``.

    Parameters
    ----------
    z
        ``(n_rows, n_cols)`` standardised residuals (NaN = missing: the sums carry over).
    offsets
        ``(n_groups + 1,)`` int64 row offsets; the sums restart at 0 in each group.
    k
        Allowance subtracted each step.
    clip
        Each step's ``z`` is clipped to ``[-clip, clip]``.

    Returns
    -------
    ndarray
        ``(n_rows, n_cols)``: ``max(S+, S-)``.
    """
    n_groups = offsets.shape[0] - 1
    n_cols = z.shape[1]
    out = np.zeros(z.shape)
    for task in prange(n_groups * n_cols):
        g = task // n_cols
        j = task % n_cols
        hi = 0.0
        lo = 0.0
        for i in range(offsets[g], offsets[g + 1]):
            v = z[i, j]
            if not np.isnan(v):
                v = min(max(v, -clip), clip)
                hi = max(0.0, hi + v - k)
                lo = max(0.0, lo - v - k)
            out[i, j] = max(hi, lo)
    return out


@njit(cache=True, nogil=True)
def hysteresis(score: np.ndarray, offsets: np.ndarray, on: float, off: float,
               min_on: int) -> np.ndarray:
    """Alarm state with persistence and hysteresis, causally.

    An alarm switches on at the sample where the score has been at least ``on`` for
    ``min_on`` samples in a row (one spike is not an event) and stays on until the score
    falls below ``off`` (an event is one alarm, not a flicker). Missing scores count as
    below ``off``.

    Parameters
    ----------
    score
        ``(n_rows,)`` detector score.
    offsets
        ``(n_groups + 1,)`` int64 row offsets; the state restarts in each group.
    on, off
        Switch-on and switch-off levels (``off <= on``).
    min_on
        Samples in a row at or above ``on`` before the alarm starts.

    Returns
    -------
    ndarray
        ``(n_rows,)`` bool alarm state.
    """
    n_groups = offsets.shape[0] - 1
    out = np.zeros(score.shape[0], dtype=np.bool_)
    for g in range(n_groups):  # serial: O(n) and called many times while fitting thresholds
        run = 0
        alarm = False
        for i in range(offsets[g], offsets[g + 1]):
            s = score[i]
            if np.isnan(s):
                s = -np.inf
            run = run + 1 if s >= on else 0
            if alarm:
                alarm = s >= off
            if not alarm and run >= min_on:
                alarm = True
            out[i] = alarm
    return out


# ---- the detectors over every parameter in one pass (features and compiled trees) ----------

@njit(cache=True, nogil=True)
def _tree_sum(x, roots, feature, threshold, left, right, missing_left, leaf, value, base):
    """Raw score of gradient-boosted trees on one feature row: ``base + sum of leaf values``."""
    raw = base
    for t in range(roots.shape[0]):
        k = roots[t]
        while not leaf[k]:
            v = x[feature[k]]
            if np.isnan(v):
                k = left[k] if missing_left[k] else right[k]
            elif v <= threshold[k]:
                k = left[k]
            else:
                k = right[k]
        raw += value[k]
    return raw


@njit(cache=True, nogil=True)
def _detector_group(values, a, b, window, min_periods, scale, gate, max_mask, tail, precision, clip,
                    cusum_k, cusum_clip, recent, want_x, roots, feature, threshold, left, right,
                    missing_left, leaf, value, base, resid_out, dist_out, change_out, prob_out, x_out):
    p = values.shape[1]
    w = max(window, 1)
    ring = np.empty((p, w))
    buf = np.empty((p, w))
    m = np.zeros(p, np.int64)
    head = np.zeros(p, np.int64)
    rejected = np.zeros(p, np.int64)
    open_gate = np.zeros(p, np.bool_)
    hi = np.zeros(p)
    lo = np.zeros(p)
    r_len = recent + 1
    rec = np.full((p, r_len), np.nan)
    zc = np.empty(p)      # residual clipped to the distance's range (0 if missing)
    x = np.empty(3 * p + 2)
    trees = roots.shape[0] > 0
    for i in range(a, b):
        slot = (i - a) % r_len
        n_rec = min(i - a + 1, r_len)
        none = True
        rmax = -np.inf
        cmax = 0.0
        for j in range(p):
            v = values[i, j]
            z = np.nan
            if not np.isnan(v):
                mj = m[j]
                if mj >= min_periods:
                    h = mj // 2
                    med = buf[j, h] if mj % 2 == 1 else 0.5 * (buf[j, h - 1] + buf[j, h])
                    z = (v - med) / scale[j]
                take = True
                if not np.isnan(z) and abs(z) > gate:
                    if open_gate[j] or rejected[j] >= max_mask:
                        open_gate[j] = True
                    else:
                        rejected[j] += 1
                        take = False
                else:
                    rejected[j] = 0
                    open_gate[j] = False
                if take:
                    if mj == w:
                        _sorted_replace(buf[j], mj, ring[j, head[j]], v)
                        ring[j, head[j]] = v
                        head[j] = (head[j] + 1) % w
                    else:
                        ring[j, (head[j] + mj) % w] = v
                        _sorted_push(buf[j], mj, v)
                        m[j] = mj + 1
            u = z / tail[j]
            if np.isnan(u):
                zc[j] = 0.0
                x[j] = np.nan
            else:
                none = False
                au = abs(u)
                if au > rmax:
                    rmax = au
                c = min(max(u, -cusum_clip), cusum_clip)
                hi[j] = max(0.0, hi[j] + c - cusum_k)
                lo[j] = max(0.0, lo[j] - c - cusum_k)
                zc[j] = min(max(z, -clip), clip)
                x[j] = zc[j]
            rec[j, slot] = abs(u)
            best = np.nan
            for k in range(n_rec):
                r = rec[j, k]
                if not np.isnan(r) and (np.isnan(best) or r > best):
                    best = r
            x[p + j] = best
            cs = max(hi[j], lo[j])
            x[2 * p + j] = cs
            if cs > cmax:
                cmax = cs
        if none:
            resid_out[i] = np.nan
            dist_out[i] = np.nan
            change_out[i] = np.nan
            x[3 * p] = np.nan
            x[3 * p + 1] = np.nan
        else:
            d = _distance(zc, precision)
            resid_out[i] = rmax
            dist_out[i] = d
            change_out[i] = cmax
            x[3 * p] = rmax
            x[3 * p + 1] = d
        if want_x:
            for k in range(3 * p + 2):
                x_out[i, k] = x[k]
        if trees:
            if none:
                prob_out[i] = np.nan
            else:
                raw = _tree_sum(x, roots, feature, threshold, left, right, missing_left, leaf, value, base)
                prob_out[i] = 1.0 / (1.0 + np.exp(-raw))


@njit(cache=True, nogil=True, parallel=True)
def detector_rows(values: np.ndarray, offsets: np.ndarray, window: int, min_periods: int,
                  scale: np.ndarray, gate: float, max_mask: int, tail: np.ndarray, precision: np.ndarray,
                  clip: float, cusum_k: float, cusum_clip: float, recent: int, want_x: bool,
                  roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                  right: np.ndarray, missing_left: np.ndarray, leaf: np.ndarray, value: np.ndarray,
                  base: float) -> tuple:
    """Every score of the detectors over every parameter in one causal pass per site.

    Per row and parameter: the gated residual ``z`` of :func:`causal_residuals`, ``u =
    z / tail``; per row: ``residual`` = largest ``|u|``, ``distance`` = the
    :func:`robust_distance` of ``z``, ``changepoint`` = largest :func:`cusum_two_sided`
    of ``u``, and, given trees, the ``supervised`` probability
    ``1 / (1 + exp(-(base + sum of leaf values)))`` of gradient-boosted trees on the
    feature row ``[clip(z), recent max |u|, CUSUMs, residual, distance]`` (the
    :func:`window_max` of ``|u|`` over the last ``recent + 1`` rows). Each score is NaN
    where every parameter's residual is missing. Equal to computing the pieces one by one
    (tested), without the intermediate ``(n, p)`` arrays.

    Parameters
    ----------
    values
        ``(n_rows, p)`` float64, rows sorted by group (site); NaN = missing.
    offsets
        ``(n_groups + 1,)`` int64 row offsets.
    window, min_periods, scale, gate, max_mask
        As :func:`causal_residuals` (``scale`` ``(n_groups, p)``).
    tail
        ``(p,)`` divisor of ``z`` giving ``u``.
    precision, clip
        As :func:`robust_distance`.
    cusum_k, cusum_clip
        As :func:`cusum_two_sided`.
    recent
        Rows before the current one in the recent-max feature.
    want_x
        Also return the feature rows (else a ``(0, 3p + 2)`` array).
    roots, feature, threshold, left, right, missing_left, leaf, value, base
        The trees as flat node arrays (``roots``: first node of each tree; empty: no
        supervised score): a row goes left when its feature is ``<= threshold`` or, if
        missing, when ``missing_left``; ``base`` is the raw score before the first tree.

    Returns
    -------
    tuple
        ``(residual, distance, changepoint, supervised, X)``: four ``(n_rows,)`` arrays
        (``supervised`` NaN without trees) and ``X``.
    """
    n, p = values.shape
    n_groups = offsets.shape[0] - 1
    resid = np.empty(n)
    dist = np.empty(n)
    change = np.empty(n)
    prob = np.full(n, np.nan)
    x_out = np.empty((n if want_x else 0, 3 * p + 2))
    for g in prange(n_groups):
        _detector_group(values, offsets[g], offsets[g + 1], window, min_periods, scale[g], gate, max_mask,
                        tail, precision, clip, cusum_k, cusum_clip, recent, want_x, roots, feature,
                        threshold, left, right, missing_left, leaf, value, base, resid, dist, change,
                        prob, x_out)
    return resid, dist, change, prob, x_out
