"""State of the table profiler kept across batches: per-group arrays, exact hash sets and counters
(Numba, :mod:`uda.kernels.profile`), group codes, and the state of each numeric and text column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from uda.kernels.profile import code_block, hmap_add, hset_add
from uda.kernels.sketches import HLL_P, qs_new
from uda.quality.table.reading import CELL_CLASSES

#: Microseconds per hour (rows and missing cells per hour, for the plot).
HOUR_US = 3_600_000_000

class Grow:
    """Per-group arrays that grow with the number of groups seen."""

    def __init__(self) -> None:
        self.arrays: dict[str, tuple[np.ndarray, Any]] = {}
        self.size = 0

    def add(self, name: str, dtype: Any, fill: Any = 0, width: int | None = None) -> np.ndarray:
        """A new per-group array ``name`` (``width`` columns when given), filled with ``fill``."""
        shape = (max(self.size, 1),) if width is None else (max(self.size, 1), width)
        a = np.full(shape, fill, dtype)
        self.arrays[name] = (a, fill)
        return a

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name][0]

    def ensure(self, n: int) -> None:
        """Room for ``n`` groups in every array (grown to at least twice the size, new rows filled)."""
        if n <= self.size and self.size > 0:
            return
        new = max(n, 2 * self.size, 1)
        for name, (a, fill) in self.arrays.items():
            if a.shape[0] < new:
                b = np.full((new, *a.shape[1:]), fill, a.dtype)
                b[: a.shape[0]] = a
                self.arrays[name] = (b, fill)
        self.size = new


class HashSet:
    """An exact set of uint64 keys (open addressing, kept at most half full)."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.table = np.zeros(capacity, np.uint64)
        self.used = np.zeros(capacity, bool)
        self.n = 0

    def _reserve(self, extra: int) -> None:
        need = 2 * (self.n + extra)
        if need <= self.table.size:
            return
        cap = self.table.size
        while cap < need:
            cap *= 2
        old = self.table[self.used]
        self.table = np.zeros(cap, np.uint64)
        self.used = np.zeros(cap, bool)
        self.n = 0
        if old.size:
            hset_add(self.table, self.used, old, np.empty(old.size, bool))
            self.n = old.size

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Insert ``keys``; return whether each was already present."""
        keys = np.ascontiguousarray(keys, np.uint64)
        self._reserve(keys.size)
        seen = np.empty(keys.size, bool)
        self.n += hset_add(self.table, self.used, keys, seen)
        return seen


class HashCounter:
    """Exact counts per int64 key (open addressing)."""

    def __init__(self, capacity: int = 1 << 10) -> None:
        self.table = np.zeros(capacity, np.uint64)
        self.used = np.zeros(capacity, bool)
        self.counts = np.zeros(capacity, np.int64)
        self.n = 0

    def add(self, keys: np.ndarray, mask: np.ndarray, amounts: np.ndarray) -> None:
        """Add ``amounts[i]`` to ``keys[i]`` where ``mask[i]``."""
        extra = int(mask.sum()) if keys.size else 0
        if 2 * (self.n + extra) > self.table.size:
            items, counts = self.items()
            cap = self.table.size
            while cap < 2 * (self.n + extra):
                cap *= 2
            self.table = np.zeros(cap, np.uint64)
            self.used = np.zeros(cap, bool)
            self.counts = np.zeros(cap, np.int64)
            self.n = 0
            if items.size:
                self.n = hmap_add(self.table, self.used, self.counts, items.view(np.uint64),
                                     np.ones(items.size, bool), counts)
        self.n += hmap_add(self.table, self.used, self.counts, np.ascontiguousarray(keys).view(np.uint64),
                              mask, amounts)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys (int64) and counts."""
        return self.table[self.used].view(np.int64), self.counts[self.used]


class RunCounter:
    """Exact counts per int64 key, fed in runs: runs are kept as they come and summed by key (a Polars
    group-by) when they outnumber twice the distinct keys of the last sum, so memory stays within a
    small multiple of the distinct keys. Cheaper than :class:`HashCounter` for many keys arriving in
    runs (the (group, hour) bins of the plot)."""

    def __init__(self, min_pending: int = 1 << 21) -> None:
        self.keys: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.pending = 0
        self.distinct = 0
        self.min_pending = min_pending

    def add(self, keys: np.ndarray, mask: np.ndarray | None, amounts: np.ndarray) -> None:
        """Add ``amounts[i]`` to ``keys[i]`` (where ``mask[i]``; None: everywhere)."""
        if mask is not None:
            keys, amounts = keys[mask], amounts[mask]
        if keys.size == 0:
            return
        self.keys.append(np.array(keys, np.int64))
        self.counts.append(np.array(amounts, np.int64))
        self.pending += keys.size
        if self.pending > max(self.min_pending, 2 * self.distinct):
            self._sum()

    def _sum(self) -> None:
        if len(self.keys) <= 1 and self.pending == self.distinct:
            return
        df = (pl.DataFrame({"k": np.concatenate(self.keys), "c": np.concatenate(self.counts)})
              .group_by("k").agg(pl.col("c").sum()))
        self.keys, self.counts = [df["k"].to_numpy()], [df["c"].to_numpy()]
        self.pending = self.distinct = df.height

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys (int64) and counts."""
        if not self.keys:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._sum()
        return self.keys[0], self.counts[0]


class IntCodes:
    """Dense codes of integer values in order of first appearance (an open-addressing map in Numba)."""

    def __init__(self, capacity: int = 1 << 10) -> None:
        self.table = np.zeros(capacity, np.int64)
        self.used = np.zeros(capacity, bool)
        self.codes = np.zeros(capacity, np.int64)
        self.n = 0

    def _grow(self) -> None:
        keys, codes = self.table[self.used], self.codes[self.used]
        cap = 2 * self.table.size
        self.table = np.zeros(cap, np.int64)
        self.used = np.zeros(cap, bool)
        self.codes = np.zeros(cap, np.int64)
        out = np.empty(keys.size, np.int64)
        new = np.empty(keys.size, np.int64)
        code_block(keys, np.zeros(0, bool), self.table, self.used, self.codes, 0, 0, out, new)
        self.codes[self.used] = codes[self.codes[self.used]]  # distinct keys got codes 0, 1, ...: give back theirs

    def code(self, vals: np.ndarray, valid: np.ndarray, first: int,
             out: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
        """Codes of ``vals`` (-1 where not ``valid``; ``valid`` empty: all are) and the new values, in code
        order; new values get codes ``first``, ``first + 1``, ... The codes are written to ``out`` (int64,
        as long as ``vals``) when given."""
        out = np.empty(vals.size, np.int64) if out is None else out
        new_vals = np.empty(vals.size, np.int64)
        fresh: list[int] = []
        start = 0
        while True:
            n_new, start = code_block(vals, valid, self.table, self.used, self.codes, first + len(fresh),
                                         start, out, new_vals)
            fresh += new_vals[:n_new].tolist()
            self.n += n_new
            if start >= vals.size:
                return out, fresh
            self._grow()


def new_registers() -> np.ndarray:
    """Empty HyperLogLog registers (``2**HLL_P``)."""
    return np.zeros(1 << HLL_P, np.uint8)


class NumState:
    """State of a numeric column (per group and whole-table sketches)."""

    def __init__(self, groups: Grow, name: str, cands: np.ndarray) -> None:
        self.name = name
        self.cands = cands
        p = f"{name}\x00"
        self.keys = {k: p + k for k in ("nulls", "invalid", "stuck_rows", "stuck_runs", "run_len", "null_run",
                                        "null_run_max", "unparseable", "not_allowed")}
        for k in self.keys.values():
            groups.add(k, np.int64)
        groups.add(p + "last_v", np.float64, np.nan)
        groups.add(p + "cand", np.int64, 0, width=max(1, cands.size))
        self.g = groups
        self.ext = np.array([np.inf, -np.inf])
        self.qs = qs_new()
        self.registers = new_registers()

    def arr(self, k: str) -> np.ndarray:
        """The column's per-group array ``k``."""
        return self.g[f"{self.name}\x00{k}"]


class TextState:
    """State of a text, boolean or date column."""

    def __init__(self, groups: Grow, name: str, tokens: list[str]) -> None:
        self.name = name
        self.tokens = tokens
        for k in ("nulls", "unparseable", "not_allowed"):
            groups.add(f"{name}\x00{k}", np.int64)
        groups.add(f"{name}\x00tok", np.int64, 0, width=max(1, len(tokens)))
        self.g = groups
        self.classes = dict.fromkeys(CELL_CLASSES, 0)
        self.registers = new_registers()

    def arr(self, k: str) -> np.ndarray:
        """The column's per-group array ``k``."""
        return self.g[f"{self.name}\x00{k}"]
