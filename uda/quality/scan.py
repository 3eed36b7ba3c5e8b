"""The data-quality scan of a generated dataset's sensor tables, per table and district, in one pass.

Every block (file, or a standardised file with its rejects) is read once into NumPy arrays and
passed to :func:`uda.kernels.quality.scan_block`; the per-block states merge (sums, maxima), so
Polars (threads over files) and Dask (one task per block) give the same numbers. The measures
(ISO/IEC 25012 / 25024) are made from the merged state by :mod:`uda.quality.metrics`; the rules
they count (range, duplicate, stuck, late) are those of :mod:`uda.quality.rules`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uda.contract import DAY_MS, LATE_AFTER_S, SPECS, district_lookup, start_ms_of
from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.kernels import quality as qk
from uda.kernels.sketches import HLL_P, qs_new
from uda.quality.metrics import report
from uda.quality.rules import STUCK_MIN, stuck_exempt_column, value_ranges
from uda.store import Dataset, open_dataset


class QualityState:
    """Mergeable state of the scan for one table over ``n_districts`` (+1 for unknown)."""

    def __init__(self, n_districts: int, k: int):
        self.counts = np.zeros((n_districts + 1, qk.N_COUNTERS), np.int64)
        self.nonnull = np.zeros((n_districts + 1, k), np.int64)
        self.registers = np.zeros((n_districts + 1, 1 << HLL_P), np.uint8)
        self.qs_values = np.zeros((k, qs_new().size), np.int64)
        self.qs_latency = qs_new()

    def merge(self, other: QualityState) -> QualityState:
        """Add ``other`` into this state (in place) and return it."""
        self.counts += other.counts
        self.nonnull += other.nonnull
        np.maximum(self.registers, other.registers, out=self.registers)
        self.qs_values += other.qs_values
        self.qs_latency += other.qs_latency
        return self

    def pack(self) -> dict[str, Any]:
        """A sparse copy to keep many of (a block's state is mostly empty sketch buckets and
        districts it does not cover): about 2 MB dense, tens of kB packed."""
        rows = np.flatnonzero(self.counts.any(axis=1) | self.registers.any(axis=1))
        qv = np.flatnonzero(self.qs_values.ravel())
        ql = np.flatnonzero(self.qs_latency)
        return {"counts": self.counts.copy(), "nonnull": self.nonnull.copy(), "rows": rows,
                "registers": self.registers[rows], "qv_idx": qv, "qv": self.qs_values.ravel()[qv],
                "ql_idx": ql, "ql": self.qs_latency[ql]}

    def merge_packed(self, p: dict[str, Any]) -> QualityState:
        """Add a :meth:`pack` ed state into this state (in place) and return it."""
        self.counts += p["counts"]
        self.nonnull += p["nonnull"]
        self.registers[p["rows"]] = np.maximum(self.registers[p["rows"]], p["registers"])
        self.qs_values.reshape(-1)[p["qv_idx"]] += p["qv"]
        self.qs_latency[p["ql_idx"]] += p["ql"]
        return self


def _lookup(ds: Dataset, table: str) -> tuple[np.ndarray, np.ndarray]:
    """``id -> district`` of the referenced city table, and the district of each of its ids."""
    t = ds.read(SPECS[table].ref_table)
    return district_lookup(t, table), t["district_id"].to_numpy().astype(np.int64)


def blocks(ds: Dataset, table: str) -> list[list[Path]]:
    """Files to scan together: a standardised file with its rejects, or one canonical file."""
    if ds.has(f"{table}_rejects"):
        clean = {Path(p).name: p for p in ds.files(table)}
        rej = {Path(p).name: p for p in ds.files(f"{table}_rejects")}
        return [[p for p in (clean.get(n), rej.get(n)) if p is not None] for n in sorted(set(clean) | set(rej))]
    return [[p] for p in ds.files(table)]


def _columns(table: str, names: list[str]) -> dict[str, Any]:
    spec = SPECS[table]
    return {"key": spec.key, "ref": "station_id" if table == "taps" else spec.key,
            "values": list(spec.values),
            "latency": "latency_s" if "latency_s" in names else None,
            "syntax": "flag_syntax" if "flag_syntax" in names else None,
            "district": "district_id" if "district_id" in names else None}


class Buffers:
    """Arrays kept from block to block for :func:`arrays_polars`: a block's columns are copied into
    memory already in use instead of fresh pages (a Polars column read from a file with several row
    groups is several chunks, so NumPy needs a copy either way)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, dtype: Any, n: int, k: int = 0) -> np.ndarray:
        """An ``(n,)`` array, or ``(n, k)`` column-major when ``k``, of ``dtype`` (contents undefined)."""
        size = n * max(k, 1)
        a = self._arrays.get(name)
        if a is None or a.dtype != dtype or a.size < size:
            a = self._arrays[name] = np.empty(size, dtype)
        return a[:size].reshape(k, n).T if k else a[:size]


def _into(chunks: list[Any], out: np.ndarray) -> np.ndarray:
    """Copy the chunks of a null-free numeric Polars series into ``out``; returns ``out``."""
    off = 0
    for ch in chunks:
        a = ch.to_numpy()
        out[off:off + a.size] = a
        off += a.size
    return out


def arrays_polars(df, table: str, buffers: Buffers | None = None) -> dict[str, np.ndarray]:
    """Scan inputs from a Polars frame (canonical columns, optionally flags and latency), copying little.

    With ``buffers``, null-free key, time and value columns are copied into them (the arrays
    returned are valid until the buffers are used again)."""
    import polars as pl

    c = _columns(table, df.columns)
    n = df.height
    ts = df["ts"].cast(pl.Datetime("ms")).cast(pl.Int64)
    key = df[c["key"]]
    ok = np.zeros(0, bool)  # empty: every row parsed
    if ts.null_count() or key.null_count() or c["syntax"]:
        ok = (ts.is_not_null() & key.is_not_null()).to_numpy()
        if c["syntax"]:
            ok &= ~df[c["syntax"]].fill_null(False).to_numpy()

    def numeric(s, fill, name=None):
        if s.null_count():
            return s.fill_null(fill).to_numpy()
        chunks = s.get_chunks()
        if buffers is not None and name is not None and s.dtype.is_numeric() and len(chunks) > 1:
            return _into(chunks, buffers.get(name, chunks[0].to_numpy().dtype, n))
        return s.to_numpy()

    cols = [df[v] for v in c["values"]]
    if (buffers is not None and cols and not any(s.null_count() for s in cols)
            and len({s.dtype for s in cols}) == 1 and cols[0].dtype in (pl.Float32, pl.Float64)):
        vals = buffers.get("values", np.float32 if cols[0].dtype == pl.Float32 else np.float64, n, len(cols))
        for j, s in enumerate(cols):
            _into(s.get_chunks(), vals[:, j])
    else:  # one (n, k) array straight from Polars, column-major (one copy; the kernel reads either layout)
        vals = (df.select(pl.col(v).fill_null(np.nan) if df[v].null_count() else pl.col(v) for v in c["values"])
                .to_numpy() if c["values"] else np.zeros((n, 0), np.float32))
    if vals.dtype.kind != "f":
        vals = vals.astype(np.float64)
    if not (vals.flags.c_contiguous or vals.flags.f_contiguous):
        vals = np.ascontiguousarray(vals)
    key_np = numeric(key, 0, "key")
    return {"key": key_np, "ts": numeric(ts, 0, "ts"), "ok": ok, "values": vals,
            "ref": key_np if c["ref"] == c["key"] else numeric(df[c["ref"]], -1),
            "latency": (df[c["latency"]].cast(pl.Float64).fill_null(np.nan).to_numpy() * 1000.0
                        if c["latency"] else np.zeros(0)),
            "district": (numeric(df[c["district"]], -1) if c["district"] else None)}


def arrays_pandas(df, table: str) -> dict[str, np.ndarray]:
    """Scan inputs from a pandas frame (a Dask partition), as :func:`arrays_polars`."""
    c = _columns(table, list(df.columns))
    n = len(df)
    ts_s = df["ts"]
    ok = ts_s.notna().to_numpy() & df[c["key"]].notna().to_numpy()
    ts = ts_s.to_numpy().astype("datetime64[ms]").astype(np.int64)
    if c["syntax"]:
        ok &= ~df[c["syntax"]].fillna(False).to_numpy().astype(bool)
    vals = (np.column_stack([df[v].astype("float64").to_numpy(na_value=np.nan) for v in c["values"]])
            if c["values"] else np.zeros((n, 0)))
    return {"key": df[c["key"]].fillna(0).to_numpy().astype(np.int64), "ts": np.where(ok, ts, 0), "ok": ok,
            "values": np.ascontiguousarray(vals, dtype=np.float64),
            "ref": df[c["ref"]].fillna(-1).to_numpy().astype(np.int64),
            "latency": (df[c["latency"]].astype("float64").to_numpy(na_value=np.nan) * 1000.0
                        if c["latency"] else np.zeros(0)),
            "district": (df[c["district"]].fillna(-1).to_numpy().astype(np.int64) if c["district"] else None)}


def scan_arrays(a: dict[str, np.ndarray], table: str, *, lookup: np.ndarray, n_districts: int,
                period: tuple[int, int], state: QualityState | None = None,
                order: np.ndarray | None = None) -> QualityState:
    """The quality state of one block of records (see :func:`uda.kernels.quality.scan_block`).

    Added into ``state`` when given (and returned), else into a new state. ``order`` is the rows'
    ``(key, ts)`` order, empty when they are stored so (found here when not given)."""
    spec = SPECS[table]
    st = QualityState(n_districts, len(spec.values)) if state is None else state
    key, ts = a["key"], a["ts"]
    if order is None:
        order = _order(key, ts)
    lo, hi = value_ranges(table)
    zero_col = stuck_exempt_column(table)
    district = a["district"] if a["district"] is not None else np.zeros(0, np.int64)
    qk.scan_block(key, ts, a["ok"], a["values"], lo, hi, a["ref"], lookup.astype(np.int64), district,
                  a["latency"], order, spec.interval_s * 1000, period[0], period[1], float(LATE_AFTER_S * 1000),
                  STUCK_MIN, zero_col, st.counts, st.nonnull, st.registers, st.qs_values, st.qs_latency)
    return st


def _order(key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row order by ``(key, ts)``; empty when the rows are stored in that order."""
    return np.zeros(0, np.int64) if qk.is_sorted(key, ts) else np.lexsort((ts, key)).astype(np.int64)


def split_arrays(a: dict[str, np.ndarray], parts: int) -> list[dict[str, np.ndarray]]:
    """Rows stored in ``(key, ts)`` order cut into about ``parts`` pieces at key changes (views, no
    copies). A key's rows stay in one piece, so the pieces' states merge into the block's state exactly:
    nothing the scan carries from row to row (duplicates, grid, intervals, stuck runs) crosses a key."""
    key = a["key"]
    n = key.shape[0]
    cuts = [0]
    for q in range(1, parts):
        c = int(np.searchsorted(key, key[n * q // parts], side="left")) if n else 0
        if c > cuts[-1]:
            cuts.append(c)
    cuts.append(n)
    if len(cuts) <= 2:
        return [a]

    def cut(v, lo, hi):
        return v[lo:hi] if v is not None and v.shape[0] == n else v

    return [{name: cut(v, lo, hi) for name, v in a.items()} for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]


@dataclass
class ScanContext:
    """What a block scan of ``table`` needs from the dataset (small: the city and the period)."""

    table: str
    lookup: np.ndarray
    n_districts: int
    keys_per_district: np.ndarray
    period: tuple[int, int]
    days: int


def context(ds: Dataset, table: str) -> ScanContext:
    """The :class:`ScanContext` of ``table`` in ``ds``."""
    lookup, dist = _lookup(ds, table)
    n_d = int(ds.params.get("districts", int(dist.max(initial=-1)) + 1))
    start = start_ms_of(ds.params["start"])
    days = int(ds.params["days"])
    return ScanContext(table, lookup, n_d, np.bincount(dist[dist >= 0], minlength=n_d)[:n_d],
                       (start, start + days * DAY_MS), days)


def scan_tables(tables: list[Any], ctx: ScanContext) -> QualityState:
    """The quality state of one block given as Arrow tables scanned together (a group and its rejects)."""
    import polars as pl

    return _scan_frames([pl.from_arrow(t) for t in tables], ctx)


def _scan_frames(frames: list[Any], ctx: ScanContext) -> QualityState:
    """The quality state of Polars frames scanned together as one block."""
    import polars as pl

    df = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return scan_arrays(arrays_polars(df, ctx.table), ctx.table, lookup=ctx.lookup, n_districts=ctx.n_districts,
                       period=ctx.period)


def _scan_threads(units: list[list[Any]], ctx: ScanContext, *, in_memory: bool,
                  workers: int) -> list[QualityState]:
    """Scan blocks (file paths, or Arrow tables when ``in_memory``) on ``workers`` threads.

    A block is read and turned into arrays by one task, then scanned by ``workers`` tasks over
    pieces of it cut at key changes (:func:`split_arrays`; one piece when its rows need sorting),
    so the last blocks keep every thread busy. Each thread adds into its own state (no state per
    block to allocate and merge), and a block's arrays go into :class:`Buffers` freed for the next
    block when its last piece is scanned; a block is read when one has been scanned, so at most
    ``workers`` blocks (and buffers) are in use at a time. Returns the threads' states.
    """
    import polars as pl

    k = len(SPECS[ctx.table].values)
    local = threading.local()
    states: list[QualityState] = []
    lock = threading.Lock()

    free: list[Buffers] = []

    def prepare(parts):
        frames = [pl.from_arrow(t) for t in parts] if in_memory else [pl.read_parquet(x) for x in parts]
        df = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        with lock:
            buf = free.pop() if free else Buffers()
        a = arrays_polars(df, ctx.table, buf)
        order = _order(a["key"], a["ts"])
        pieces = split_arrays(a, workers) if order.size == 0 and workers > 1 else [a]
        left = [len(pieces)]  # pieces of this block not scanned yet
        return [(p, order, buf, left) for p in pieces]

    def scan(piece):
        a, order, buf, left = piece
        st = getattr(local, "state", None)
        if st is None:
            st = local.state = QualityState(ctx.n_districts, k)
            with lock:
                states.append(st)
        scan_arrays(a, ctx.table, lookup=ctx.lookup, n_districts=ctx.n_districts, period=ctx.period, state=st,
                    order=order)
        with lock:
            left[0] -= 1
            if left[0] == 0:
                free.append(buf)
                return True  # the block's last piece: its buffers are free for the next block
        return False

    todo = list(units)[::-1]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running = {pool.submit(prepare, todo.pop()) for _ in range(min(workers, len(todo)))}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                out = f.result()  # raises a task's error here
                if isinstance(out, list):  # a block prepared: scan its pieces
                    running |= {pool.submit(scan, p) for p in out}
                elif out and todo:  # a block scanned: read the next one into its buffers
                    running.add(pool.submit(prepare, todo.pop()))
    return states


def finish(states: Iterable[QualityState | dict[str, Any]], ctx: ScanContext) -> dict[str, Any]:
    """Merge block states (dense or :meth:`QualityState.pack` ed, consumed one at a time) into
    the :func:`report` of the whole table."""
    total = QualityState(ctx.n_districts, len(SPECS[ctx.table].values))
    for st in states:
        if isinstance(st, dict):
            total.merge_packed(st)
        else:
            total.merge(st)
    return report(total, ctx.table, districts=ctx.n_districts, keys_per_district=ctx.keys_per_district,
                  days=ctx.days)


def measure(data: str | os.PathLike | Dataset, table: str, *, engine: str = "polars",
            scheduler: str | None = None, workers: int | None = None,
            tables: list[list[Any]] | None = None) -> dict[str, Any]:
    """Quality metrics of ``table`` (traffic, taps or water) per district, in one scan.

    Parameters
    ----------
    data
        Dataset folder or open dataset. With ``clean/`` (after ``uda run standardise``) the
        standardised rows and their rejects are measured (every collected record, in canonical
        units); otherwise the canonical table itself.
    table
        ``"traffic"``, ``"taps"`` or ``"water"``.
    engine, scheduler
        ``"polars"`` (a thread per file) or ``"dask"`` (a task per block); the Dask scheduler.
    workers
        Threads for the Polars engine (default: CPU count).
    tables
        Measure these in-memory blocks (lists of Arrow tables scanned together, for example
        a standardised group and its rejects) instead of the dataset's files; the dataset
        still gives the city, districts and period. Scanned with Polars whatever ``engine``.

    Returns
    -------
    dict
        ``districts`` and ``overall`` metric dicts (see the module docstring), ``quantiles``
        of every value column, ``latency_s`` quantiles and the sketches' error bounds.
    """
    check_engine(engine)
    if table not in SPECS:
        msg = f"unknown table {table!r}; choose traffic, taps or water"
        raise UserError(msg)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    if tables is None and not ds.has(table):
        msg = f"dataset {ds.path} has no {table!r} table; run `uda run standardise --data {ds.path}` first"
        raise UserError(msg)
    ctx = context(ds, table)
    lookup, n_d, period = ctx.lookup, ctx.n_districts, ctx.period
    units = blocks(ds, table) if tables is None else tables
    if engine == "polars" or tables is not None:
        return finish(_scan_threads(units, ctx, in_memory=tables is not None,
                                    workers=workers or os.cpu_count() or 1), ctx)
    else:
        import dask
        import dask.dataframe as dd

        def one_dask(frames):
            import pandas as pd

            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            return scan_arrays(arrays_pandas(df, table), table, lookup=lookup, n_districts=n_d, period=period)

        jobs = []
        for paths in units:
            parts = [p for path in paths for p in dd.read_parquet(str(path), split_row_groups=False).to_delayed()]
            jobs.append(dask.delayed(one_dask)(parts))
        while len(jobs) > 1:  # a merge tree: states are merged as they are made, not all kept
            jobs = [dask.delayed(_merge2)(*jobs[i:i + 2]) if i + 1 < len(jobs) else jobs[i]
                    for i in range(0, len(jobs), 2)]
        with dask_scheduler(scheduler):
            (state,) = dask.compute(*jobs) if jobs else (QualityState(n_d, len(SPECS[table].values)),)
    return finish([state], ctx)


def _merge2(a: QualityState, b: QualityState) -> QualityState:
    return a.merge(b)
