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


@njit(cache=True, nogil=True)
def _solve_spd(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``A x = b`` for a symmetric positive definite ``A`` by Cholesky."""
    F = A.shape[0]
    L = np.zeros((F, F))
    for j in range(F):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= 1e-300:
            s = 1e-300
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, F):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / L[j, j]
    z = np.empty(F)
    for i in range(F):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * z[k]
        z[i] = s / L[i, i]
    x = np.empty(F)
    for i in range(F - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, F):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x


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
def profile_matrix(Y: np.ndarray, weekend: np.ndarray, season: int, weeks: int) -> np.ndarray:
    """Historical-average profile: ``P[i, t]`` is the mean of ``Y[i, t - j * season]`` for
    ``j = 1 .. 7 * weeks`` over observed steps whose day type equals that of ``t`` (NaN if none).

    It uses only days before ``t``'s day, so it equals :func:`historical_average_predict`
    for every origin when the horizon is at most one day. Computed with a sliding window
    per step of the day and day type (two sums and counts), so the cost does not grow
    with ``weeks``.
    """
    n, T = Y.shape
    W = 7 * weeks
    out = np.full((n, T), np.nan)
    for i in prange(n):
        sums = np.zeros(2)
        cnts = np.zeros(2, dtype=np.int64)
        for r in range(min(season, T)):
            sums[:] = 0.0
            cnts[:] = 0
            d = 0
            t = r
            while t < T:
                if d >= 1:  # day d - 1 enters the window
                    src = t - season
                    v = Y[i, src]
                    if not np.isnan(v):
                        sums[weekend[src]] += v
                        cnts[weekend[src]] += 1
                if d >= W + 1:  # day d - 1 - W leaves it
                    src = t - (W + 1) * season
                    v = Y[i, src]
                    if not np.isnan(v):
                        sums[weekend[src]] -= v
                        cnts[weekend[src]] -= 1
                k = weekend[t]
                if cnts[k] > 0:
                    out[i, t] = sums[k] / cnts[k]
                d += 1
                t += season
    return out


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


# --------------------------------------------------------------------------- ridge AR


@njit(cache=True, nogil=True)
def _harmonics(season: int, nharm: int) -> np.ndarray:
    """``sin(2 pi k s / season), cos(2 pi k s / season)`` for slot ``s`` and ``k = 1 .. nharm``."""
    out = np.empty((season, 2 * nharm))
    for s in range(season):
        ang = 2.0 * np.pi * s / season
        for k in range(1, nharm + 1):
            out[s, 2 * k - 2] = np.sin(k * ang)
            out[s, 2 * k - 1] = np.cos(k * ang)
    return out


@njit(cache=True, nogil=True)
def _ridge_features(z: np.ndarray, x: np.ndarray, o: int, h: int, p: int, q: int,
                    slot: np.ndarray, weekend: np.ndarray, season: int, harm: np.ndarray,
                    feat: np.ndarray) -> bool:
    """Fill ``feat`` for origin ``o`` and horizon ``h``; False if a needed value is missing.

    Features, origin side first: intercept; ``z[o-1] .. z[o-p]``; ``x[o-1] .. x[o-q]``
    (exogenous, e.g. the neighbours' mean); then target side: ``z`` at the same slot on
    the most recent day before the origin; the rows of ``harm`` (daily sin/cos pairs) at
    the target's slot; the target's weekend flag.
    """
    t = o + h - 1
    feat[0] = 1.0
    j = 1
    for lag in range(1, p + 1):
        v = z[o - lag]
        if np.isnan(v):
            return False
        feat[j] = v
        j += 1
    for lag in range(1, q + 1):
        v = x[o - lag]
        if np.isnan(v):
            return False
        feat[j] = v
        j += 1
    back = ((h + season - 1) // season) * season
    v = z[t - back]
    if np.isnan(v):
        return False
    feat[j] = v
    j += 1
    row = harm[slot[t]]
    for k in range(row.shape[0]):
        feat[j] = row[k]
        j += 1
    feat[j] = weekend[t]
    return True


@njit(cache=True, nogil=True)
def ridge_n_features(p: int, q: int, nharm: int) -> int:
    """Number of ridge features (including the intercept)."""
    return 1 + p + 1 + q + 2 * nharm + 1


@njit(cache=True, nogil=True, parallel=True)
def ridge_fit(Z: np.ndarray, X: np.ndarray, train_end: int, horizons: np.ndarray, p: int,
              q: int, slot: np.ndarray, weekend: np.ndarray, season: int, nharm: int,
              lams: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Direct ridge autoregression: coefficients per series, horizon and penalty.

    ``Z`` is the (standardised) panel and ``X`` the exogenous panel (same shape; ignored
    when ``q == 0``). The training pairs of horizon ``h`` are the origins ``o`` (every
    ``stride``-th, counted from the first usable origin of any horizon) whose target
    ``o + h - 1`` lies before ``train_end`` and whose features and target are observed.
    For each penalty ``lam`` in ``lams`` solves ``(X'X / m + lam D) beta = X'y / m`` with
    ``m`` the number of pairs and ``D`` the identity without the intercept. Series with no
    complete pair get zero coefficients (the forecast is then the series' training mean).

    The origin-side block of ``X'X`` (intercept and lags) is accumulated once for the
    origins that are complete for every horizon and shared by all horizons.

    Returns
    -------
    coef : (n_series, n_horizons, n_lams, n_features)
    rows : (n_series, n_horizons) number of training pairs used
    """
    n = Z.shape[0]
    nh = horizons.shape[0]
    nl = lams.shape[0]
    Fa = 1 + p + q
    Fb = 2 + 2 * nharm
    F = Fa + Fb
    harm = _harmonics(season, nharm)
    coef = np.zeros((n, nh, nl, F))
    rows = np.zeros((n, nh), dtype=np.int64)
    lo = np.empty(nh, dtype=np.int64)
    hi = np.empty(nh, dtype=np.int64)
    backs = np.empty(nh, dtype=np.int64)
    for c in range(nh):
        h = horizons[c]
        backs[c] = ((h + season - 1) // season) * season
        lo[c] = max(max(p, q), backs[c] - h + 1)
        hi[c] = train_end - h + 1
    o_start = lo.min()
    o_end = hi.max()
    lo_all = lo.max()
    hi_all = hi.min()
    for i in prange(n):
        zi = Z[i]
        xi = X[i]
        A = np.zeros((nh, F, F))
        bv = np.zeros((nh, F))
        S = np.zeros((Fa, Fa))
        cnt = np.zeros(nh, dtype=np.int64)
        a = np.empty(Fa)
        fb = np.empty((nh, Fb))
        ys = np.empty(nh)
        valid = np.zeros(nh, dtype=np.bool_)
        for o in range(o_start, o_end, stride):
            ok = True
            a[0] = 1.0
            for lag in range(1, p + 1):
                v = zi[o - lag]
                if np.isnan(v):
                    ok = False
                    break
                a[lag] = v
            if ok:
                for lag in range(1, q + 1):
                    v = xi[o - lag]
                    if np.isnan(v):
                        ok = False
                        break
                    a[p + lag] = v
            if not ok:
                continue
            allv = lo_all <= o < hi_all
            for c in range(nh):
                valid[c] = False
                if o < lo[c] or o >= hi[c]:
                    allv = False
                    continue
                t = o + horizons[c] - 1
                y = zi[t]
                v = zi[t - backs[c]]
                if np.isnan(y) or np.isnan(v):
                    allv = False
                    continue
                fb[c, 0] = v
                row = harm[slot[t]]
                for k in range(row.shape[0]):
                    fb[c, 1 + k] = row[k]
                fb[c, Fb - 1] = weekend[t]
                ys[c] = y
                valid[c] = True
            if allv:
                for u in range(Fa):
                    for v2 in range(u, Fa):
                        S[u, v2] += a[u] * a[v2]
            for c in range(nh):
                if not valid[c]:
                    continue
                cnt[c] += 1
                y = ys[c]
                Ac = A[c]
                if not allv:
                    for u in range(Fa):
                        for v2 in range(u, Fa):
                            Ac[u, v2] += a[u] * a[v2]
                for u in range(Fa):
                    au = a[u]
                    bv[c, u] += au * y
                    for k in range(Fb):
                        Ac[u, Fa + k] += au * fb[c, k]
                for k in range(Fb):
                    fk = fb[c, k]
                    bv[c, Fa + k] += fk * y
                    for k2 in range(k, Fb):
                        Ac[Fa + k, Fa + k2] += fk * fb[c, k2]
        for c in range(nh):
            m = cnt[c]
            rows[i, c] = m
            if m == 0:
                continue
            Ac = A[c]
            for u in range(Fa):
                for v2 in range(u, Fa):
                    Ac[u, v2] += S[u, v2]
            for u in range(F):
                bv[c, u] /= m
                for v2 in range(u, F):
                    Ac[u, v2] /= m
                    Ac[v2, u] = Ac[u, v2]
            Ac[0, 0] += 1e-12
            for li in range(nl):
                Al = Ac.copy()
                for u in range(1, F):
                    Al[u, u] += lams[li]
                coef[i, c, li] = _solve_spd(Al, bv[c])
    return coef, rows


@njit(cache=True, nogil=True, parallel=True)
def ridge_predict(Zf: np.ndarray, Xf: np.ndarray, coef: np.ndarray, origins: np.ndarray,
                  horizons: np.ndarray, p: int, q: int, slot: np.ndarray, weekend: np.ndarray,
                  season: int, nharm: int) -> np.ndarray:
    """Standardised ridge forecasts from each origin.

    ``Zf`` and ``Xf`` should be forward-filled (causal); values still missing (before the
    first observation) count as 0.
    """
    n = Zf.shape[0]
    no, nh = origins.shape[0], horizons.shape[0]
    F = coef.shape[2]
    harm = _harmonics(season, nharm)
    out = np.full((n, no, nh), np.nan)
    for i in prange(n):
        z = Zf[i].copy()
        x = Xf[i].copy()
        for t in range(z.shape[0]):
            if np.isnan(z[t]):
                z[t] = 0.0
        for t in range(x.shape[0]):
            if np.isnan(x[t]):
                x[t] = 0.0
        feat = np.empty(F)
        for a in range(no):
            o = origins[a]
            for c in range(nh):
                h = horizons[c]
                if o < max(p, q) or o + h - 1 - ((h + season - 1) // season) * season < 0:
                    continue
                _ridge_features(z, x, o, h, p, q, slot, weekend, season, harm, feat)
                s = 0.0
                for u in range(F):
                    s += coef[i, c, u] * feat[u]
                out[i, a, c] = s
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
