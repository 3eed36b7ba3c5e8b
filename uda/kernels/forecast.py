"""Batched forecasting kernels: one call fits or predicts every series of a panel.

All kernels take a panel ``Y`` of shape ``(n_series, n_time)`` (float64, NaN = missing)
and work in parallel over series. Forecasts are made from *origins*: an origin ``o``
may use ``Y[:, :o]`` only and its horizon-``h`` forecast targets index ``o + h - 1``.
Prediction kernels return an array of shape ``(n_series, n_origins, n_horizons)``.
Calendar information comes as per-step arrays (``weekend``: 1 on Saturday/Sunday) that
extend at least to the last target index; ``season`` is the number of steps in a day.
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


# --------------------------------------------------------------------------- direct linear models
#
# A direct linear model predicts the value at ``t = o + h - 1`` from features of the
# panel stack ``P`` (``(n_panels, n_series, n_time)``), one coefficient vector per series
# and horizon. Feature 0 is the intercept; then *origin-side* features
# ``P[opan[k], i, o - olag[k]]`` (recent values, known at the origin); then *target-side*
# features ``P[tpan[k], i, t]`` read at the target from panels that only use values at
# least a day before their step (profiles, the value a day or a week earlier), which are
# known at the origin for horizons up to a day; last the target's weekend flag.


@njit(cache=True, nogil=True)
def _origin_features(P, i, o, opan, olag, f) -> bool:
    """Fill ``f[0 : 1 + len(opan)]``; False if a value is missing or before the start."""
    f[0] = 1.0
    for k in range(opan.shape[0]):
        s = o - olag[k]
        if s < 0:
            return False
        v = P[opan[k], i, s]
        if np.isnan(v):
            return False
        f[1 + k] = v
    return True


@njit(cache=True, nogil=True)
def _target_features(P, i, t, start, tpan, weekend, f) -> bool:
    """Fill ``f[start:]`` with the target-side features and the weekend flag."""
    for k in range(tpan.shape[0]):
        v = P[tpan[k], i, t]
        if np.isnan(v):
            return False
        f[start + k] = v
    f[start + tpan.shape[0]] = weekend[t]
    return True


@njit(cache=True, nogil=True)
def _pairs(P, target, i, h, origins, opan, olag, tpan, weekend, t_lo, t_hi, wcoef_c, delta,
           X, y, ts, w) -> int:
    """The pairs of series ``i`` at horizon ``h`` from ``origins`` (ascending) whose target
    lies in ``[t_lo, t_hi)`` and is observed and whose features are complete: rows
    ``X[:m]`` (features times the square root of the weight), ``y[:m]`` (target times the
    same), ``ts[:m]`` (target step) and ``w[:m]`` (weight); returns ``m``. Without weights
    (``wcoef_c`` empty) every weight is 1; with them ``1 / max(|y - f' wcoef_c|, delta)``.
    """
    Fa = 1 + opan.shape[0]
    F = X.shape[1]
    m = 0
    for a in range(origins.shape[0]):
        o = origins[a]
        t = o + h - 1
        if t < t_lo:
            continue
        if t >= t_hi:
            break
        v = target[i, t]
        if np.isnan(v):
            continue
        f = X[m]
        if not _origin_features(P, i, o, opan, olag, f):
            continue
        if not _target_features(P, i, t, Fa, tpan, weekend, f):
            continue
        wt = 1.0
        if wcoef_c.shape[0]:
            r = v
            for u in range(F):
                r -= wcoef_c[u] * f[u]
            wt = 1.0 / max(abs(r), delta)
            sw = np.sqrt(wt)
            for u in range(F):
                f[u] *= sw
            v *= sw
        y[m] = v
        ts[m] = t
        w[m] = wt
        m += 1
    return m


@njit(cache=True, nogil=True, parallel=True)
def lin_gram(P: np.ndarray, target: np.ndarray, opan: np.ndarray, olag: np.ndarray,
             tpan: np.ndarray, weekend: np.ndarray, horizons: np.ndarray, edges: np.ndarray,
             stride: int = 1, wcoef: np.ndarray | None = None, delta: float = 0.05,
             active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal-equation sums of the direct linear model per series, horizon and time block.

    A pair is an origin ``o`` (every ``stride``-th from 0) and horizon ``h`` whose target
    ``t = o + h - 1`` is observed and whose features are all observed; it goes to block
    ``j`` when ``edges[j] <= t < edges[j + 1]`` (pairs outside the edges are left out).
    Sums over blocks add up, so a fit on any run of blocks is a sum. With ``wcoef``
    ``(n, nh, F)`` every pair is weighted by ``1 / max(|y - f' wcoef|, delta)`` (one step
    of iteratively reweighted least squares towards least absolute deviations) and ``m``
    holds the sum of the weights. The sums are matrix products of the pairs' rows. With
    ``active`` (``(n,)`` bool) only those series are summed (the others stay 0), so a
    subset is refitted without copying the panel stack.

    Returns
    -------
    G : (n, n_horizons, n_blocks, F, F)
        ``sum w f f'``.
    b : (n, n_horizons, n_blocks, F)
        ``sum w f y``.
    m : (n, n_horizons, n_blocks)
        Sum of the weights (number of pairs without ``wcoef``).
    """
    n = target.shape[0]
    nh = horizons.shape[0]
    nb = edges.shape[0] - 1
    F = 2 + opan.shape[0] + tpan.shape[0]
    G = np.zeros((n, nh, nb, F, F))
    b = np.zeros((n, nh, nb, F))
    m = np.zeros((n, nh, nb))
    t_lo = edges[0]
    t_hi = edges[nb]
    o_start = max(0, t_lo - horizons.max() + 1)
    o_start -= o_start % stride
    origins = np.arange(o_start, max(o_start, t_hi - horizons.min() + 1), stride)
    no_w = np.empty(0)
    for i in prange(n):
        if active is not None and not active[i]:
            continue
        X = np.empty((origins.shape[0], F))
        y = np.empty(origins.shape[0])
        ts = np.empty(origins.shape[0], dtype=np.int64)
        w = np.empty(origins.shape[0])
        for c in range(nh):
            wc = wcoef[i, c] if wcoef is not None else no_w
            k = _pairs(P, target, i, horizons[c], origins, opan, olag, tpan, weekend, t_lo, t_hi,
                       wc, delta, X, y, ts, w)
            s = 0
            for j in range(nb):
                e = s
                while e < k and ts[e] < edges[j + 1]:
                    e += 1
                if e > s:
                    Xj = X[s:e]
                    G[i, c, j] = np.dot(Xj.T, Xj)
                    b[i, c, j] = np.dot(Xj.T, y[s:e])
                    m[i, c, j] = w[s:e].sum()
                s = e
    return G, b, m


@njit(cache=True, nogil=True)
def _mask_index(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate, the indices of its features (``idx[k, :qs[k]]``) from ``masks`` ``(C, F)``."""
    C, F = masks.shape
    idx = np.zeros((C, F), dtype=np.int64)
    qs = np.zeros(C, dtype=np.int64)
    for k in range(C):
        for u in range(F):
            if masks[k, u]:
                idx[k, qs[k]] = u
                qs[k] += 1
    return idx, qs


@njit(cache=True, nogil=True)
def _solve_into(G, bv, mm, idx, q, prior, lam, A, L, z, out) -> None:
    """``out[idx[:q]]`` = ridge solution on features ``idx[:q]`` shrunk towards ``prior``
    (see :func:`lin_solve`; the prior itself when there are no pairs, ``mm == 0``), by
    Cholesky in the preallocated ``A``, ``L``, ``z``."""
    if mm == 0.0:
        for a in range(q):
            out[idx[a]] = prior[idx[a]]
        return
    for a in range(q):
        ua = idx[a]
        z[a] = bv[ua] / mm
        for a2 in range(a, q):
            A[a, a2] = G[ua, idx[a2]] / mm
        if ua != 0:
            A[a, a] += lam
            z[a] += lam * prior[ua]
        else:
            A[a, a] += 1e-9
    for j in range(q):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= 1e-300:
            s = 1e-300
        L[j, j] = np.sqrt(s)
        for r in range(j + 1, q):
            s = A[j, r]
            for k in range(j):
                s -= L[r, k] * L[j, k]
            L[r, j] = s / L[j, j]
    for r in range(q):
        s = z[r]
        for k in range(r):
            s -= L[r, k] * z[k]
        z[r] = s / L[r, r]
    for r in range(q - 1, -1, -1):
        s = z[r]
        for k in range(r + 1, q):
            s -= L[k, r] * out[idx[k]]
        out[idx[r]] = s / L[r, r]


@njit(cache=True, nogil=True, parallel=True)
def lin_solve(G: np.ndarray, b: np.ndarray, m: np.ndarray, masks: np.ndarray,
              priors: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Ridge solutions shrunk towards a prior, per series, horizon and candidate.

    Candidate ``k`` uses the features where ``masks[k]`` is true and minimises
    ``mean (y - f'beta)^2 + lams[k] * |beta - priors[k]|^2`` over them (the intercept,
    feature 0, is not penalised): ``(G / m + lam I') beta = b / m + lam I' prior``.
    A series and horizon without pairs gets the prior.

    Parameters
    ----------
    G, b, m
        Sums of one part of :func:`lin_gram`: ``(n, nh, F, F)``, ``(n, nh, F)``, ``(n, nh)``.
    masks, priors, lams
        ``(C, F)`` bool, ``(C, F)`` float, ``(C,)`` float.

    Returns
    -------
    coef : (n, nh, C, F)
    """
    n, nh, F = b.shape
    C = masks.shape[0]
    coef = np.zeros((n, nh, C, F))
    idx, qs = _mask_index(masks)
    for i in prange(n):
        A = np.empty((F, F))
        L = np.empty((F, F))
        z = np.empty(F)
        for c in range(nh):
            for k in range(C):
                _solve_into(G[i, c], b[i, c], m[i, c], idx[k], qs[k], priors[k], lams[k], A, L,
                            z, coef[i, c, k])
    return coef


@njit(cache=True, nogil=True, parallel=True)
def lin_solve_mean(G: np.ndarray, b: np.ndarray, m: np.ndarray, masks: np.ndarray,
                   priors: np.ndarray, lams: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Mean of the :func:`lin_solve` solutions of the candidates in ``choice`` only.

    ``G``, ``b``, ``m`` stack ``S`` sets of sums (``(S, n, nh, F, F)``, ``(S, n, nh, F)``,
    ``(S, n, nh)``); candidate ``k`` of ``masks``/``priors``/``lams`` (``S * C`` of them)
    is fitted on set ``k // C``. ``choice`` is ``(n, nh, top)``. Returns ``(n, nh, F)``.
    """
    S, n, nh, F = b.shape
    C = masks.shape[0] // S
    top = choice.shape[2]
    out = np.zeros((n, nh, F))
    idx, qs = _mask_index(masks)
    for i in prange(n):
        A = np.empty((F, F))
        L = np.empty((F, F))
        z = np.empty(F)
        sol = np.empty(F)
        for c in range(nh):
            for a in range(top):
                k = choice[i, c, a]
                s = k // C
                sol[:] = 0.0
                _solve_into(G[s, i, c], b[s, i, c], m[s, i, c], idx[k], qs[k], priors[k], lams[k],
                            A, L, z, sol)
                for u in range(F):
                    out[i, c, u] += sol[u] / top
    return out


@njit(cache=True, nogil=True, parallel=True)
def lin_cv_error(P: np.ndarray, target: np.ndarray, G0: np.ndarray, b0: np.ndarray,
                 m0: np.ndarray, G1: np.ndarray, b1: np.ndarray, m1: np.ndarray,
                 masks: np.ndarray, priors: np.ndarray, lams: np.ndarray, per_set: int,
                 opan: np.ndarray, olag: np.ndarray, tpan: np.ndarray, weekend: np.ndarray,
                 horizons: np.ndarray, edges: np.ndarray,
                 max_val: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocked cross-validation of every candidate, fitted and scored in one pass.

    Fold ``j`` (``1 <= j < len(edges) - 1``) holds the targets in ``[edges[j], edges[j+1])``
    and is predicted by the fit on blocks ``0 .. j-1`` of :func:`lin_gram` sums: candidate
    ``k`` of ``masks``/``priors``/``lams`` is solved as :func:`lin_solve` does, on the sums
    ``(G0, b0, m0)`` for ``k < per_set`` and ``(G1, b1, m1)`` for the others (with
    ``per_set == len(masks)`` the second set is not used). At
    most about ``max_val`` origins per fold are scored (a stride beyond that). Equals
    :func:`lin_solve` followed by scoring each fold's pairs, without building the
    coefficient array of every candidate.

    Returns ``err`` ``(n, nh, K)`` (sums of absolute errors) and ``cnt`` ``(n, nh)``.
    """
    n = target.shape[0]
    nh = horizons.shape[0]
    nb = edges.shape[0] - 1
    F = b0.shape[3]
    K = masks.shape[0]
    C = per_set
    hmax = horizons.max()
    idx, qs = _mask_index(masks)
    err = np.zeros((n, nh, K))
    cnt = np.zeros((n, nh))
    longest = 0
    for j in range(1, nb):
        longest = max(longest, edges[j + 1] - max(0, edges[j] - hmax + 1))
    no_w = np.empty(0)
    for i in prange(n):
        A = np.empty((F, F))
        L = np.empty((F, F))
        z = np.empty(F)
        sol = np.empty(F)
        B = np.empty((F, K))
        Gc = np.empty((2, F, F))
        bc = np.empty((2, F))
        mc = np.empty(2)
        X = np.empty((longest, F))
        y = np.empty(longest)
        ts = np.empty(longest, dtype=np.int64)
        w = np.empty(longest)
        for c in range(nh):
            Gc[:] = 0.0
            bc[:] = 0.0
            mc[:] = 0.0
            for j in range(1, nb):
                Gc[0] += G0[i, c, j - 1]
                bc[0] += b0[i, c, j - 1]
                mc[0] += m0[i, c, j - 1]
                if C < K:
                    Gc[1] += G1[i, c, j - 1]
                    bc[1] += b1[i, c, j - 1]
                    mc[1] += m1[i, c, j - 1]
                lo = edges[j]
                hi = edges[j + 1]
                stride = max(1, (hi - lo) // max_val)
                origins = np.arange(max(0, lo - hmax + 1), hi, stride)
                k = _pairs(P, target, i, horizons[c], origins, opan, olag, tpan, weekend, lo, hi,
                           no_w, 0.0, X, y, ts, w)
                cnt[i, c] += k
                if k == 0:
                    continue
                for kk in range(K):
                    s = kk // C
                    sol[:] = 0.0
                    _solve_into(Gc[s], bc[s], mc[s], idx[kk], qs[kk], priors[kk], lams[kk], A, L,
                                z, sol)
                    for u in range(F):
                        B[u, kk] = sol[u]
                E = np.dot(X[:k], B)
                for r in range(k):
                    for kk in range(K):
                        err[i, c, kk] += abs(E[r, kk] - y[r])
    return err, cnt


@njit(cache=True, nogil=True, parallel=True)
def lin_predict(P: np.ndarray, coef: np.ndarray, opan: np.ndarray, olag: np.ndarray,
                tpan: np.ndarray, weekend: np.ndarray,
                horizons: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Forecasts ``(n, n_origins, n_horizons)`` of the direct linear model ``coef`` ``(n, nh, F)``.

    NaN where a feature is missing (before the first observation).
    """
    n = P.shape[1]
    nh = horizons.shape[0]
    no = origins.shape[0]
    F = coef.shape[2]
    Fa = 1 + opan.shape[0]
    out = np.full((n, no, nh), np.nan)
    for i in prange(n):
        f = np.empty(F)
        for a in range(no):
            o = origins[a]
            if not _origin_features(P, i, o, opan, olag, f):
                continue
            for c in range(nh):
                h = horizons[c]
                t = o + h - 1
                if not _target_features(P, i, t, Fa, tpan, weekend, f):
                    continue
                s = 0.0
                for u in range(F):
                    s += coef[i, c, u] * f[u]
                out[i, a, c] = s
    return out


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
