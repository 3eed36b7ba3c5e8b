"""Direct linear (ridge) forecasting kernels: Gram sums, penalised solves, cross-validation, prediction.

A direct linear model predicts the value at ``t = o + h - 1`` from features of the
panel stack ``P`` (``(n_panels, n_series, n_time)``), one coefficient vector per series
and horizon. Feature 0 is the intercept; then *origin-side* features
``P[opan[k], i, o - olag[k]]`` (recent values, known at the origin); then *target-side*
features ``P[tpan[k], i, t]`` read at the target from panels that only use values at
least a day before their step (profiles, the value a day or a week earlier), which are
known at the origin for horizons up to a day; last the target's weekend flag.
The models built on them are in :mod:`uda.forecasting.ridge`; conventions (origins,
horizons, NaN = missing) as in :mod:`uda.kernels.forecast`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


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
