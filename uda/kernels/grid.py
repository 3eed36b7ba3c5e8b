"""Long ``(row, step, value)`` records scattered onto a regular ``(rows, steps)`` grid."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pivot_mean(rows: np.ndarray, steps: np.ndarray, values: np.ndarray, n: int, n_time: int,
               fill: float) -> np.ndarray:
    """Mean of the values falling in each ``(row, step)`` cell of an ``(n, n_time)`` grid.

    One pass over the records, summing in record order (the order ``np.bincount`` sums
    in, so the means are bit-identical to a NumPy ``bincount`` pivot), then one over the
    grid. Memory is the float64 grid and an int32 count per cell, nothing per record.

    Parameters
    ----------
    rows, steps
        ``(m,)`` integer row (``0 .. n - 1``) and time step of each record; records whose
        step lies outside ``0 .. n_time - 1`` are ignored.
    values
        ``(m,)`` float64 values; NaN is ignored.
    n, n_time
        Grid shape.
    fill
        Value of cells without a record.
    """
    out = np.zeros((n, n_time))
    cnt = np.zeros((n, n_time), np.int32)
    for i in range(rows.size):
        v = values[i]
        s = steps[i]
        if np.isnan(v) or s < 0 or s >= n_time:
            continue
        r = rows[i]
        out[r, s] += v
        cnt[r, s] += 1
    for r in range(n):
        for s in range(n_time):
            c = cnt[r, s]
            out[r, s] = out[r, s] / c if c > 0 else fill
    return out
