"""Read a square adjacency matrix (CSV, no header) for the series of a wide table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from uda.errors import UserError


def read_adjacency(path: str | os.PathLike, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of ``n`` series from a square ``n x n`` matrix in a header-less CSV.

    Row ``i`` and column ``j`` follow the order of the table's sensor columns; any
    non-zero finite entry makes ``j`` a neighbour of ``i`` (0/1 or weights; the diagonal
    is ignored).

    Returns
    -------
    indptr, indices
        CSR adjacency (int64).
    """
    p = Path(path)
    if not p.is_file():
        msg = f"adjacency file {p} does not exist; pass a CSV with one row and column per sensor"
        raise UserError(msg)
    rows = []
    with p.open(encoding="utf-8", errors="replace") as fh:
        for k, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append([float(x) for x in line.replace(";", ",").split(",")])
            except ValueError:
                msg = (f"{p}: row {k} holds a value that is not a number; the adjacency matrix is "
                       "numbers only (0/1 or weights), without a header row")
                raise UserError(msg) from None
    widths = {len(r) for r in rows}
    if not rows or len(widths) != 1 or len(rows) != next(iter(widths)):
        shape = f"{len(rows)} rows of {sorted(widths)} values" if rows else "no rows"
        msg = f"{p}: the adjacency matrix must be square; it has {shape}"
        raise UserError(msg)
    A = np.asarray(rows)
    if A.shape[0] != n:
        msg = (f"{p}: the adjacency matrix is {A.shape[0]} x {A.shape[0]} but the table has {n} "
               "sensor columns; give one row and column per sensor, in the table's column order")
        raise UserError(msg)
    A = np.where(np.isfinite(A), A, 0.0)
    np.fill_diagonal(A, 0.0)
    linked = A != 0.0
    indptr = np.concatenate([[0], np.cumsum(linked.sum(axis=1))]).astype(np.int64)
    return indptr, np.nonzero(linked)[1].astype(np.int64)
