"""Water-quality index kernels: CCME WQI, weighted-arithmetic WQI and exceedance episodes.

All kernels work on grouped observations: ``values`` is a 2-D float64 array (rows are
samples, columns are parameters, NaN = not measured) whose rows are sorted by group
(site and period), and ``offsets`` (length ``n_groups + 1``) marks where each group's
rows start and end. Guideline limits are per-parameter arrays with NaN meaning "no limit".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: The CCME divisor (sqrt(3) to three decimals, as in the CCME manual), so WQI spans 0..100.
CCME_SCALE = 1.732


@njit(cache=True, nogil=True)
def _excursion(v: float, lo: float, hi: float) -> float:
    """CCME excursion of one value: >0 if it fails a limit, 0 if it passes, -1 if unmeasured."""
    if np.isnan(v):
        return -1.0
    if not np.isnan(hi) and v > hi:
        return v / hi - 1.0 if hi > 0.0 else v - hi
    if not np.isnan(lo) and v < lo:
        # A test value of 0 against a lower limit would give an infinite excursion;
        # floor it so F3 tends to its bound of 100 instead.
        return lo / max(v, 1e-9 * lo) - 1.0 if lo > 0.0 else lo - v
    return 0.0


@njit(cache=True, nogil=True, parallel=True)
def ccme_wqi(values: np.ndarray, offsets: np.ndarray, lower: np.ndarray,
             upper: np.ndarray) -> tuple:
    """CCME Water Quality Index per group.

    Parameters
    ----------
    values
        ``(n_rows, n_params)`` float64, rows sorted by group, NaN = not measured.
    offsets
        ``(n_groups + 1,)`` int64 row offsets of the groups.
    lower, upper
        ``(n_params,)`` float64 objectives; a value fails if below ``lower`` or above
        ``upper``; NaN = no such limit. Parameters with neither are not tested.

    Returns
    -------
    tuple of ndarray
        ``(wqi, f1, f2, f3, n_tests, n_failed)`` per group; WQI and F1..F3 are NaN for a
        group with no tests.
    """
    n_groups = offsets.shape[0] - 1
    n_params = values.shape[1]
    wqi = np.full(n_groups, np.nan)
    f1 = np.full(n_groups, np.nan)
    f2 = np.full(n_groups, np.nan)
    f3 = np.full(n_groups, np.nan)
    n_tests = np.zeros(n_groups, dtype=np.int64)
    n_failed = np.zeros(n_groups, dtype=np.int64)
    for g in prange(n_groups):
        tests = 0
        failed = 0
        n_vars = 0
        failed_vars = 0
        exc_sum = 0.0
        for j in range(n_params):
            if np.isnan(lower[j]) and np.isnan(upper[j]):
                continue
            var_tests = 0
            var_failed = 0
            for i in range(offsets[g], offsets[g + 1]):
                e = _excursion(values[i, j], lower[j], upper[j])
                if e < 0.0:
                    continue
                var_tests += 1
                if e > 0.0:
                    var_failed += 1
                    exc_sum += e
            if var_tests > 0:
                n_vars += 1
                tests += var_tests
                failed += var_failed
                if var_failed > 0:
                    failed_vars += 1
        n_tests[g] = tests
        n_failed[g] = failed
        if tests == 0:
            continue
        a = 100.0 * failed_vars / n_vars
        b = 100.0 * failed / tests
        nse = exc_sum / tests
        c = nse / (0.01 * nse + 0.01)
        f1[g] = a
        f2[g] = b
        f3[g] = c
        # 1.732 < sqrt(3), so F1 = F2 = F3 = 100 would give -0.003: clamp at 0.
        wqi[g] = max(0.0, 100.0 - np.sqrt(a * a + b * b + c * c) / CCME_SCALE)
    return wqi, f1, f2, f3, n_tests, n_failed


@njit(cache=True, nogil=True, parallel=True)
def weighted_arithmetic_wqi(values: np.ndarray, offsets: np.ndarray, ideal: np.ndarray,
                            standard: np.ndarray) -> np.ndarray:
    """Weighted-arithmetic WQI (Brown et al. 1972) per group.

    For each parameter with data in the group, ``Q = 100 |mean - ideal| / |standard - ideal|``
    and weight ``W = 1 / standard``; the index is ``sum(W Q) / sum(W)`` (the usual
    ``K = 1 / sum(1 / S)`` normalisation, taken over the parameters present).

    Parameters
    ----------
    values, offsets
        As for :func:`ccme_wqi`.
    ideal, standard
        ``(n_params,)`` ideal value (0 for pollutants, 7 for pH, 14.6 mg/L for DO) and
        permissible standard; NaN in ``standard`` leaves the parameter out.

    Returns
    -------
    ndarray
        Index per group (NaN if no parameter has data).
    """
    n_groups = offsets.shape[0] - 1
    n_params = values.shape[1]
    out = np.full(n_groups, np.nan)
    for g in prange(n_groups):
        num = 0.0
        den = 0.0
        for j in range(n_params):
            if np.isnan(standard[j]) or standard[j] == ideal[j]:
                continue
            s = 0.0
            n = 0
            for i in range(offsets[g], offsets[g + 1]):
                v = values[i, j]
                if not np.isnan(v):
                    s += v
                    n += 1
            if n == 0:
                continue
            q = 100.0 * abs(s / n - ideal[j]) / abs(standard[j] - ideal[j])
            w = 1.0 / abs(standard[j])
            num += w * q
            den += w
        if den > 0.0:
            out[g] = num / den
    return out


@njit(cache=True, nogil=True)
def _direction(v: float, lo: float, hi: float) -> int:
    if np.isnan(v):
        return 0
    if not np.isnan(hi) and v > hi:
        return 1
    if not np.isnan(lo) and v < lo:
        return -1
    return 0


@njit(cache=True, nogil=True)
def _episodes_pass(ts, values, offsets, lower, upper, max_gap, fill, group, param, direction,
                   start, end, peak, n_samples):
    k = 0
    for g in range(offsets.shape[0] - 1):
        for j in range(values.shape[1]):
            state = 0
            last = 0
            for i in range(offsets[g], offsets[g + 1]):
                d = _direction(values[i, j], lower[j], upper[j])
                if state != 0 and (d != state or ts[i] - ts[last] > max_gap):
                    k += 1
                    state = 0
                if d == 0:
                    continue
                if state == 0:
                    state = d
                    if fill:
                        group[k] = g
                        param[k] = j
                        direction[k] = d
                        start[k] = ts[i]
                        peak[k] = values[i, j]
                        n_samples[k] = 0
                last = i
                if fill:
                    end[k] = ts[i]
                    n_samples[k] += 1
                    if (d > 0 and values[i, j] > peak[k]) or (d < 0 and values[i, j] < peak[k]):
                        peak[k] = values[i, j]
            if state != 0:
                k += 1
    return k


@njit(cache=True, nogil=True)
def exceedance_episodes(ts: np.ndarray, values: np.ndarray, offsets: np.ndarray,
                        lower: np.ndarray, upper: np.ndarray, max_gap: int) -> tuple:
    """Episodes of consecutive samples outside the guideline limits.

    An episode is a run of samples of one group and parameter that are all above
    ``upper`` (direction +1) or all below ``lower`` (direction -1). A missing value, a
    passing value, a change of direction, or a gap between samples longer than
    ``max_gap`` ends it.

    Parameters
    ----------
    ts
        ``(n_rows,)`` int64 sample times (ms), increasing within each group.
    values, offsets, lower, upper
        As for :func:`ccme_wqi`.
    max_gap
        Longest time step (same unit as ``ts``) that keeps an episode going.

    Returns
    -------
    tuple of ndarray
        ``(group, param, direction, start, end, peak, n_samples)``; ``start``/``end`` are
        the times of the first and last failing samples, ``peak`` the most extreme value.
    """
    z64 = np.zeros(0, dtype=np.int64)
    z8 = np.zeros(0, dtype=np.int8)
    zf = np.zeros(0)
    n = _episodes_pass(ts, values, offsets, lower, upper, max_gap, False, z64, z64, z8, z64, z64,
                       zf, z64)
    group = np.zeros(n, dtype=np.int64)
    param = np.zeros(n, dtype=np.int64)
    direction = np.zeros(n, dtype=np.int8)
    start = np.zeros(n, dtype=np.int64)
    end = np.zeros(n, dtype=np.int64)
    peak = np.zeros(n)
    n_samples = np.zeros(n, dtype=np.int64)
    _episodes_pass(ts, values, offsets, lower, upper, max_gap, True, group, param, direction,
                   start, end, peak, n_samples)
    return group, param, direction, start, end, peak, n_samples
