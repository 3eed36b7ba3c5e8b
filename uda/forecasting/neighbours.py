"""Neighbours of a series: adjacency as CSR, neighbours by correlation, the neighbour signals."""

from __future__ import annotations

import numpy as np

from uda.forecasting.panel import Calendar, Context, standardised
from uda.kernels import forecast as K

#: What the result says when neighbours are found by correlation.
CORRELATION_NOTE = ("no adjacency given: neighbours are the 4 series whose deviations from their "
                    "profiles correlate most over the training period")


def csr_from_pairs(src: np.ndarray, dst: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency over ``ids`` (positions) from neighbour pairs ``(src, dst)`` of ids.

    Pairs naming an id outside ``ids``, self-pairs and repeats are dropped; each row's
    neighbours come in ascending position order.
    """
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")

    def index(x):
        pos = np.searchsorted(ids, x, sorter=order)
        pos = np.minimum(pos, len(ids) - 1)
        hit = ids[order[pos]] == x
        return np.where(hit, order[pos], -1)

    s, d = index(np.asarray(src, dtype=np.int64)), index(np.asarray(dst, dtype=np.int64))
    keep = (s >= 0) & (d >= 0) & (s != d)
    pairs = np.unique(np.stack([s[keep], d[keep]], axis=1), axis=0).reshape(-1, 2)
    indptr = np.searchsorted(pairs[:, 0], np.arange(len(ids) + 1)).astype(np.int64)
    return indptr, pairs[:, 1].astype(np.int64).copy()


def neighbour_mean(Z: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mean of the neighbours' rows of ``Z`` per series and step (CSR adjacency)."""
    return K.neighbour_mean(Z, indptr.astype(np.int64), indices.astype(np.int64))


def neighbour_signal(Y: np.ndarray, train_end: int, indptr: np.ndarray,
                     indices: np.ndarray) -> np.ndarray:
    """Mean of the neighbours' standardised values per series and step."""
    return neighbour_mean(standardised(Y, train_end), indptr, indices)


def deviations(Z: np.ndarray, cal: Calendar | None) -> np.ndarray:
    """Standardised values ``Z`` minus their day-type profile (``Z`` itself without a calendar)."""
    if cal is None:
        return Z
    return Z - K.profile_matrix(Z, cal.weekend[:Z.shape[1]], cal.season, 4)


def correlation_neighbours(Y: np.ndarray, train_end: int, *, k: int = 4,
                           calendar: Calendar | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency linking each series to its ``k`` most correlated others (training part).

    With a ``calendar`` the correlation is that of the deviations from each series'
    day-type profile (what a spatial model can use), not of the values (mostly the shared
    daily cycle).
    """
    n = Y.shape[0]
    Z = np.nan_to_num(deviations(standardised(Y, train_end), calendar)[:, :train_end])
    C = (Z @ Z.T) / max(train_end, 1)
    np.fill_diagonal(C, -np.inf)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros(n + 1, dtype=np.int64), np.empty(0, dtype=np.int64)
    idx = np.argsort(-C, axis=1, kind="stable")[:, :k]
    return np.arange(0, n * k + 1, k, dtype=np.int64), idx.ravel().astype(np.int64)


def nearest_neighbours(Z: np.ndarray, train_end: int, indptr: np.ndarray, indices: np.ndarray,
                       cal: Calendar, *, k: int = 4) -> np.ndarray:
    """Standardised series (of ``Z``, standardised values) of each series' ``k`` neighbours
    (of the CSR adjacency) whose deviations from their profiles correlate most with its own
    over the training part.

    Returns ``(n, k, T)``; NaN where a series has fewer than ``k`` neighbours.
    """
    n, T = Z.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    cols = np.asarray(indices, dtype=np.int64)
    D = deviations(Z, cal)
    corr = K.pair_correlation(D, rows, cols, train_end) if len(rows) else np.empty(0)
    out = np.full((n, k, T), np.nan)
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if b > a:
            best = cols[a:b][np.argsort(-corr[a:b], kind="stable")[:k]]
            out[i, :len(best)] = Z[best]
    return out


def neighbour_context(Y: np.ndarray, train_end: int, indptr: np.ndarray, indices: np.ndarray,
                      cal: Calendar) -> Context:
    """Context with the neighbours' mean signal and the nearest neighbours' series."""
    Z = standardised(Y, train_end)  # once for both signals
    return Context(cal, neighbour_mean(Z, indptr, indices),
                   nearest_neighbours(Z, train_end, indptr, indices, cal))
