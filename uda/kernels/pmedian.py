"""p-median site selection: greedy start plus best-improvement interchange, in Numba."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from uda.kernels.paths import PARALLEL_MIN_WORK


@njit(cache=True, nogil=True)
def _objective(cost, weight, is_open):
    n, m = cost.shape
    total = 0.0
    for i in range(n):
        best = np.inf
        for j in range(m):
            if is_open[j] and cost[i, j] < best:
                best = cost[i, j]
        total += weight[i] * best
    return total


@njit(cache=True, nogil=True)
def _open_totals(cost, weight, nearest, is_open, totals, j0, j1):
    """Objective after opening each closed candidate ``j0 <= j < j1`` (``inf`` if open)."""
    n = cost.shape[0]
    for j in range(j0, j1):
        if is_open[j]:
            totals[j] = np.inf
            continue
        t = 0.0
        for i in range(n):
            c = cost[i, j]
            t += weight[i] * (c if c < nearest[i] else nearest[i])
        totals[j] = t


@njit(cache=True, nogil=True)
def _swap_deltas(cost, weight, d1, d2, c1, is_open, k, best_delta, best_pos, j0, j1):
    """For each closed candidate ``j0 <= j < j1``: the best objective change from opening it
    while closing one open site (``best_delta``) and that site's position (``best_pos``)."""
    n = cost.shape[0]
    extra = np.empty(k)
    for j in range(j0, j1):
        best_delta[j] = np.inf
        best_pos[j] = -1
        if is_open[j]:
            continue
        extra[:] = 0.0
        base = 0.0
        for i in range(n):
            w = weight[i]
            if w == 0.0:
                continue
            c = cost[i, j]
            with_j = c if c < d1[i] else d1[i]
            base += w * (with_j - d1[i])
            # Closing the nearest site sends i to min(second nearest, j).
            alt = c if c < d2[i] else d2[i]
            extra[c1[i]] += w * (alt - with_j)
        for r in range(k):
            if base + extra[r] < best_delta[j]:
                best_delta[j] = base + extra[r]
                best_pos[j] = r


@njit(cache=True, nogil=True, parallel=True)
def _open_totals_parallel(cost, weight, nearest, is_open, totals, nblocks):
    m = cost.shape[1]
    for b in prange(nblocks):
        _open_totals(cost, weight, nearest, is_open, totals, b * m // nblocks, (b + 1) * m // nblocks)


@njit(cache=True, nogil=True, parallel=True)
def _swap_deltas_parallel(cost, weight, d1, d2, c1, is_open, k, best_delta, best_pos, nblocks):
    m = cost.shape[1]
    for b in prange(nblocks):
        _swap_deltas(cost, weight, d1, d2, c1, is_open, k, best_delta, best_pos, b * m // nblocks,
                     (b + 1) * m // nblocks)


@njit(cache=True, nogil=True)
def _nearest_two(cost, weight, sites, d1, d2, c1):
    """Nearest and second-nearest open-site costs per demand point, the position of the
    nearest in ``sites``; returns the objective."""
    n = cost.shape[0]
    objective = 0.0
    for i in range(n):
        a = np.inf
        b = np.inf
        pa = 0
        for r in range(sites.size):
            c = cost[i, sites[r]]
            if c < a:
                b = a
                a = c
                pa = r
            elif c < b:
                b = c
        d1[i] = a
        d2[i] = b
        c1[i] = pa
        objective += weight[i] * a
    return objective


# The greedy and interchange loops stay in Python (k steps, a few swaps): each step calls
# the serial or the parallel candidate kernel, so a small run never compiles the parallel one.


def _greedy(cost: np.ndarray, weight: np.ndarray, k: int, nblocks: int) -> np.ndarray:
    """Open ``k`` sites one at a time, each the one lowering the objective most.

    ``nblocks > 1`` spreads the candidates over that many parallel blocks.
    """
    n, m = cost.shape
    nearest = np.full(n, np.inf)
    is_open = np.zeros(m, np.bool_)
    chosen = np.empty(k, np.int64)
    totals = np.empty(m, np.float64)
    for step in range(k):
        if nblocks > 1:
            _open_totals_parallel(cost, weight, nearest, is_open, totals, np.int64(nblocks))
        else:
            _open_totals(cost, weight, nearest, is_open, totals, np.int64(0), np.int64(m))
        best = int(np.argmin(np.where(is_open, np.inf, totals)))  # first of the lowest
        chosen[step] = best
        is_open[best] = True
        np.minimum(nearest, cost[:, best], out=nearest)
    return chosen


def _interchange(cost: np.ndarray, weight: np.ndarray, sites: np.ndarray, max_swaps: int, tol: float,
                 nblocks: int) -> tuple[np.ndarray, int]:
    """Best-improvement swaps (close one open site, open one closed) until none improves.

    Returns the final sites and the number of swaps made.
    """
    n, m = cost.shape
    k = sites.size
    sites = sites.copy()
    is_open = np.zeros(m, np.bool_)
    is_open[sites] = True
    d1, d2 = np.empty(n), np.empty(n)
    c1 = np.empty(n, np.int64)  # position in ``sites`` of the nearest open site
    best_delta = np.empty(m)
    best_pos = np.empty(m, np.int64)
    swaps = 0
    while swaps < max_swaps:
        objective = _nearest_two(cost, weight, sites, d1, d2, c1)
        if nblocks > 1:
            _swap_deltas_parallel(cost, weight, d1, d2, c1, is_open, np.int64(k), best_delta, best_pos,
                                  np.int64(nblocks))
        else:
            _swap_deltas(cost, weight, d1, d2, c1, is_open, np.int64(k), best_delta, best_pos, np.int64(0),
                         np.int64(m))
        jbest = int(np.argmin(np.where(best_pos >= 0, best_delta, np.inf)))  # first of the lowest
        if best_pos[jbest] < 0 or best_delta[jbest] >= -tol * (1.0 + abs(objective)):
            break
        r = best_pos[jbest]
        is_open[sites[r]] = False
        is_open[jbest] = True
        sites[r] = jbest
        swaps += 1
    return sites, swaps


@dataclass
class PMedianResult:
    """Chosen sites and how demand is served.

    Attributes
    ----------
    sites
        Column indices of the chosen sites, sorted.
    assignment
        For each demand row, the column index of its nearest chosen site.
    objective
        Demand-weighted total cost to the nearest site.
    greedy_objective
        Objective of the greedy start, before interchange.
    swaps
        Interchange moves made.
    """

    sites: np.ndarray
    assignment: np.ndarray
    objective: float
    greedy_objective: float
    swaps: int


def p_median(cost: np.ndarray, weight: np.ndarray, k: int, *, max_swaps: int = 10_000,
             tol: float = 1e-12) -> PMedianResult:
    """Choose ``k`` sites minimising demand-weighted travel cost (p-median heuristic).

    A greedy start (add the site that lowers the objective most, ``k`` times) followed
    by best-improvement interchange (swap an open and a closed site while that lowers the
    objective by more than ``tol`` relative). Ties go to the lowest column index, so the
    answer is deterministic. Candidates are spread over parallel blocks when
    ``n_demand * n_candidates`` reaches :data:`~uda.kernels.paths.PARALLEL_MIN_WORK`.

    Parameters
    ----------
    cost
        ``(n_demand, n_candidates)`` finite, non-negative travel costs.
    weight
        ``(n_demand,)`` non-negative demand weights.
    k
        Number of sites, ``1 <= k <= n_candidates``.
    max_swaps
        Interchange limit.
    tol
        Relative improvement below which a swap is not made.

    Returns
    -------
    PMedianResult
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if cost.ndim != 2 or weight.shape != (cost.shape[0],):
        msg = f"cost must be (n, m) and weight (n,); got {cost.shape} and {weight.shape}"
        raise ValueError(msg)
    if not 1 <= k <= cost.shape[1]:
        msg = f"k must be in 1..{cost.shape[1]} (the number of candidate sites), got {k}"
        raise ValueError(msg)
    if not (np.isfinite(cost).all() and (cost >= 0).all()):
        msg = "costs must be finite and non-negative (every demand point must reach every candidate)"
        raise ValueError(msg)
    if not (np.isfinite(weight).all() and (weight >= 0).all()):
        msg = "weights must be finite and non-negative"
        raise ValueError(msg)
    nblocks = min(numba.get_num_threads(), cost.shape[1])
    if cost.size < PARALLEL_MIN_WORK:
        nblocks = 1
    start = _greedy(cost, weight, k, nblocks)
    greedy_open = np.zeros(cost.shape[1], np.bool_)
    greedy_open[start] = True
    sites, swaps = _interchange(cost, weight, start, max_swaps, tol, nblocks)
    sites = np.sort(sites)
    assignment = sites[np.argmin(cost[:, sites], axis=1)]
    is_open = np.zeros(cost.shape[1], np.bool_)
    is_open[sites] = True
    return PMedianResult(sites=sites, assignment=assignment,
                         objective=float(_objective(cost, weight, is_open)),
                         greedy_objective=float(_objective(cost, weight, greedy_open)), swaps=int(swaps))
