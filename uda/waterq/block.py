"""The series every water computation works on: several sites' rows sorted by site then time.

:class:`Block` and its readers from pandas and Polars frames, :func:`sub_block` (some of
its sites) and :func:`split_train` (the chronological train/test split per site).
Times are int64 milliseconds (:data:`MS` per second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Milliseconds per second: block times are int64 ms, settings are in seconds.
MS = 1000


@dataclass
class Block:
    """Series of several sites: rows sorted by site then time.

    Attributes
    ----------
    sites
        ``(n_sites,)`` site ids in row order.
    offsets
        ``(n_sites + 1,)`` row offsets per site.
    ts
        ``(n_rows,)`` int64 sample times (ms).
    values
        ``(n_rows, n_params)`` float64 in the order of ``params``.
    params
        Parameter names of the columns.
    """

    sites: np.ndarray
    offsets: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    params: tuple[str, ...]

    @classmethod
    def from_arrays(cls, site: np.ndarray, ts: np.ndarray, values: np.ndarray,
                    params: tuple[str, ...]) -> Block:
        """Sort rows by (site, ts) and index the sites."""
        order = np.lexsort((ts, site))
        site, ts, values = site[order], ts[order], values[order]
        starts = np.flatnonzero(np.r_[True, site[1:] != site[:-1]]) if site.size else np.zeros(0, np.int64)
        offsets = np.r_[starts, site.size].astype(np.int64)
        return cls(site[starts].astype(np.int64), offsets, ts.astype(np.int64),
                   np.ascontiguousarray(values, dtype=np.float64), params)

    def site(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Times and values of the ``i``-th site."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ts[a:b], self.values[a:b]


def block_from_pandas(df: Any, params: tuple[str, ...]) -> Block:
    """A :class:`Block` from a pandas frame with ``site_id``, ``ts`` and parameter columns."""
    ts = df["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    values = np.column_stack([df[p].to_numpy(dtype=np.float64, na_value=np.nan) for p in params]) \
        if len(df) else np.zeros((0, len(params)))
    return Block.from_arrays(df["site_id"].to_numpy().astype(np.int64), ts, values, params)


def block_from_polars(df: Any, params: tuple[str, ...]) -> Block:
    """A :class:`Block` from a Polars frame with ``site_id``, ``ts`` and parameter columns."""
    import polars as pl

    ts = df["ts"].cast(pl.Datetime("ms")).cast(pl.Int64).to_numpy()
    values = np.column_stack([df[p].cast(pl.Float64).fill_null(np.nan).to_numpy() for p in params]) \
        if df.height else np.zeros((0, len(params)))
    return Block.from_arrays(df["site_id"].cast(pl.Int64).to_numpy(), ts, values, params)


def sub_block(block: Block, sites: set[int]) -> tuple[Block, np.ndarray]:
    """The series of ``sites`` in ``block`` as a smaller block, and the rows they came from."""
    keep = [i for i, s in enumerate(block.sites.tolist()) if s in sites]
    if len(keep) == block.sites.size:  # all of them: no copy
        return block, np.arange(block.ts.size)
    lens = np.diff(block.offsets)[keep]
    rows = np.concatenate([np.arange(block.offsets[i], block.offsets[i + 1]) for i in keep]) \
        if keep else np.zeros(0, np.int64)
    sub = Block(block.sites[keep], np.r_[0, np.cumsum(lens)].astype(np.int64), block.ts[rows],
                block.values[rows], block.params)
    return sub, rows


def split_train(offsets: np.ndarray, fraction: float) -> np.ndarray:
    """Chronological split: the first ``fraction`` of each site's rows are training rows.

    Returns
    -------
    ndarray
        ``(n_rows,)`` bool, true on training rows.
    """
    n = int(offsets[-1]) if offsets.size else 0
    train = np.zeros(n, dtype=bool)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        train[a:a + int(math.floor(fraction * (b - a)))] = True
    return train
