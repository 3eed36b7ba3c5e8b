"""The table profiler: :class:`TableProfiler` takes typed batches and runs the kernels, and
:func:`profile_table` reads a table through it in one streaming scan (what is measured, and how
exactly, is described in :mod:`uda.quality.table`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from uda.errors import UserError
from uda.kernels.profile import column_block
from uda.kernels.sketches import hll_add
from uda.kernels.timeline import dup_pairs, timeline_block, timeline_runs
from uda.quality.table.funnel import Funnel
from uda.quality.table.reading import (
    BATCH_ROWS,
    Plan,
    batches,
    classify_cells,
    open_table,
    plan_scan,
)
from uda.quality.table.report import ProfileReport
from uda.quality.table.schema import (
    SENTINEL_CANDIDATES,
    TEXT_SENTINELS,
    ColumnSpec,
    Needs,
    Schema,
    contract_parameter,
    contract_ranges,
    load_needs,
    load_schema,
)
from uda.quality.table.state import (
    HOUR_US,
    Grow,
    HashCounter,
    HashSet,
    IntCodes,
    NumState,
    RunCounter,
    TextState,
)


class TableProfiler(ProfileReport):
    """The single-scan profile of one table: feed batches with :meth:`add`, then :meth:`report`.

    Parameters
    ----------
    names, types
        Column names and types (``int``, ``float``, ``str``, ``bool``, ``datetime``).
    schema
        Declared (or default) schema: time, group, key, ranges, sentinels.
    needs
        Optional funnel spec.
    """

    def __init__(self, names: list[str], types: dict[str, str], schema: Schema, needs: Needs | None = None) -> None:
        self.names = names
        self.types = types
        self.schema = schema
        self.needs = needs
        self.time_col = schema.time_col
        self.group_col = schema.group_col
        self.rows = 0
        self.group_codes: dict[Any, int] = {}
        self.G = Grow()
        for k in ("rows", "t_null", "t_bad"):
            self.G.add(k, np.int64)
        for k in ("n_ok", "out_of_order", "dups", "max_step"):
            self.G.add(k, np.int64)
        self.G.add("last_t", np.int64, np.iinfo(np.int64).min)
        self.G.add("t_min", np.int64, np.iinfo(np.int64).max)
        self.G.add("t_max", np.int64, np.iinfo(np.int64).min)
        self.G.add("first_hash", np.uint64)
        self.steps = HashCounter()
        self.bins = RunCounter()  # (group, hour, column, hit) -> cells; column = ncol for rows
        self.pair_set = HashSet()
        self.dup_rows_timed = 0
        self.row_set = HashSet()  # rows without a parsed time (or all rows without a time column)
        self.dup_rows_untimed = 0
        self.key_set: HashSet | None = None
        self.key_dups = 0
        self.key_by_time = bool(schema.key) and self.time_col is not None and set(schema.key) == (
            {self.time_col} | ({self.group_col} if self.group_col else set()))
        if schema.key and not self.key_by_time:
            self.key_set = HashSet()
        self.num: dict[str, NumState] = {}
        self.text: dict[str, TextState] = {}
        self.ranges: dict[str, tuple[float, float, str]] = {}
        self.col_index = {n: i for i, n in enumerate(names)}
        for name in names:
            spec = schema.columns.get(name)
            if types[name] in ("int", "float") and name != self.group_col:
                declared = [float(x) for x in (spec.sentinels if spec else [])]
                cands = declared + ([c for c in SENTINEL_CANDIDATES if c not in declared]
                                    if schema.detect_sentinels else [])
                self.num[name] = NumState(self.G, name, np.array(cands, np.float64))
                self.ranges[name] = self._range(name, spec)
            else:
                toks = [str(x) for x in (spec.sentinels if spec else [])]
                toks += [t for t in TEXT_SENTINELS if t not in toks] if (schema.detect_sentinels and
                                                                        types[name] == "str") else []
                self.text[name] = TextState(self.G, name, toks)
        self.funnel = Funnel(needs) if needs is not None else None
        self.first_t: int | None = None
        self._int_codes: IntCodes | None = None
        self._pending: tuple | None = None
        self._bufs: dict[tuple[str, int], np.ndarray] = {}
        self._slot = 0
        self._pool = ThreadPoolExecutor(max_workers=min(len(self.num) + 1, 2 * (os.cpu_count() or 1)))

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown()

    def _buf(self, name: str, n: int, dtype: Any) -> np.ndarray:
        """A work array of ``n`` items kept across batches (two sets: one for the batch being added,
        one for the batch whose kernels may still run), so its pages are not faulted in again per batch."""
        key = (name, self._slot)
        a = self._bufs.get(key)
        if a is None or a.size < n or a.dtype != dtype:
            a = self._bufs[key] = np.empty(n, dtype)
        return a[:n]

    def _range(self, name: str, spec: ColumnSpec | None) -> tuple[float, float, str]:
        if spec is not None and (spec.min is not None or spec.max is not None):
            return (-np.inf if spec.min is None else float(spec.min),
                    np.inf if spec.max is None else float(spec.max), spec.range_from)
        param = spec.parameter if spec is not None and spec.parameter else contract_parameter(name)
        if param is not None:
            lo, hi, table = contract_ranges()[param]
            return lo, hi, f"contract {table}.{param}"
        return -np.inf, np.inf, "none"

    def _groups(self, df: pl.DataFrame) -> np.ndarray:
        if self.group_col is None:
            self.group_codes.setdefault(None, 0)
            return np.zeros(df.height, np.int64)
        s = df[self.group_col]
        if s.dtype.is_integer() and s.dtype != pl.UInt64:  # codes in Numba, in order of first appearance
            return self._int_groups(s)
        for v in s.unique(maintain_order=True).to_list():  # also in order of first appearance
            if v not in self.group_codes:
                self.group_codes[v] = len(self.group_codes)
        known = [k for k in self.group_codes if k is not None]
        codes = s.replace_strict(known, [self.group_codes[k] for k in known], default=None, return_dtype=pl.Int64)
        if None in self.group_codes:
            codes = codes.fill_null(self.group_codes[None])
        return codes.to_numpy()

    def _check_groups(self) -> None:
        """Fail on too many groups; grow the per-group arrays (no kernel may be running)."""
        if len(self.group_codes) >= 1 << 20:
            msg = f"--group-col {self.group_col!r} has over {1 << 20} distinct values; group by a coarser column"
            raise UserError(msg)
        self.G.ensure(len(self.group_codes))

    def _int_groups(self, s: pl.Series) -> np.ndarray:
        """Codes of an integer group column; new values are also added to the column's distinct-count sketch."""
        if self._int_codes is None:
            self._int_codes = IntCodes()
        has_null = s.null_count() > 0
        vals = (s.fill_null(0) if has_null else s).to_numpy()
        valid = s.is_not_null().to_numpy() if has_null else np.zeros(0, bool)
        codes, fresh = self._int_codes.code(vals, valid, len(self.group_codes),  # the codes are the group codes
                                            self._buf("g", vals.size, np.int64))
        for v in fresh:
            self.group_codes[v] = len(self.group_codes)
        if has_null:
            if None not in self.group_codes:
                self.group_codes[None] = len(self.group_codes)
            codes[codes < 0] = self.group_codes[None]
        if fresh:  # the distinct-count sketch of the group column: each value once is enough
            st = self.text.get(self.group_col)
            if st is not None:
                hll_add(st.registers, pl.Series(fresh, dtype=s.dtype).hash(seed=3).to_numpy().view(np.int64))
        return codes

    def add(self, typed: pl.DataFrame, raw_null: dict[str, np.ndarray | None], t_us: np.ndarray | None,
            t_ok: np.ndarray | None, *, t_mult: int = 1) -> None:
        """Add one batch: ``typed`` columns (cast to their types), where each raw cell was null (CSV; None
        for Parquet), the parsed time (in units of ``t_mult`` µs) and where it parsed."""
        n = typed.height
        self._slot ^= 1  # work arrays of the previous batch stay untouched until it is drained
        g = self._groups(typed)
        self.drain()  # the previous batch's column kernels ran while this batch was read and coded
        self._check_groups()
        self.rows += n
        G = self.G
        if t_us is None:  # else the timeline kernel counts them
            G["rows"][: G.size] += np.bincount(g, minlength=G.size)[: G.size]
        ncol = len(self.names)
        futures = [self._pool.submit(self._column, typed[name], g, self._buf(f"hit\x00{name}", n, np.int8))
                   for name in self.num]
        t_raw = t_us
        if t_us is not None and t_mult != 1:
            scaled: list[np.ndarray] = []

            def micro() -> np.ndarray:
                """The times in µs (made only when needed)."""
                if not scaled:
                    scaled.append(t_raw * t_mult)
                return scaled[0]
        else:
            def micro() -> np.ndarray:
                return t_raw
        rows_hashed: dict[str, np.ndarray] = {}

        def rowhash(idx: np.ndarray | None = None) -> np.ndarray:
            """Whole-row hashes (of the rows ``idx``); only rows that can repeat an earlier row are hashed."""
            if idx is None:
                if "all" not in rows_hashed:
                    rows_hashed["all"] = typed.hash_rows(seed=7).to_numpy()
                return rows_hashed["all"]
            if "all" in rows_hashed:
                return rows_hashed["all"][idx]
            return typed[idx].hash_rows(seed=7).to_numpy() if idx.size else np.zeros(0, np.uint64)

        base = None
        finish_timeline = None
        if t_us is not None:
            ok = t_ok
            all_ok = bool(ok.all())
            tst = self.text[self.time_col]
            raw_t_null = raw_null[self.time_col]
            if raw_t_null.any():
                G["t_null"][:] += np.bincount(g[raw_t_null], minlength=G.size)
                tst.arr("nulls")[:] += np.bincount(g[raw_t_null], minlength=G.size)
            if not all_ok:
                bad_t = ~ok & ~raw_t_null
                if bad_t.any():
                    G["t_bad"][:] += np.bincount(g[bad_t], minlength=G.size)
                    tst.arr("unparseable")[:] += np.bincount(g[bad_t], minlength=G.size)
            if self.first_t is None and ok.any():
                self.first_t = int(t_raw[ok].min()) * t_mult
            hour0 = (self.first_t or 0) // HOUR_US
            first_idx = np.full(G.size, -1, np.int64)
            step_keys, step_counts = self._buf("step_keys", n, np.int64), self._buf("step_counts", n, np.int64)
            bin_keys, bin_counts = self._buf("bin_keys", n, np.int64), self._buf("bin_counts", n, np.int64)
            pair_first, pair_row = self._buf("pair_first", n, np.int64), self._buf("pair_row", n, np.int64)
            pair_hash, pair_base = self._buf("pair_hash", n, np.uint64), self._buf("pair_base", n, np.uint64)
            # the timeline kernel runs on a worker too, beside the column kernels; what it found is
            # added (steps, bins, duplicate rows, first-row hashes) when the batch is drained
            timeline = self._pool.submit(
                timeline_runs, g, t_raw, t_mult, ok, G["rows"], tst.registers, G["last_t"], G["first_hash"],
                first_idx, G["n_ok"], G["t_min"], G["t_max"], G["out_of_order"], G["dups"], G["max_step"], hour0,
                ncol, step_keys, step_counts, bin_keys, bin_counts, pair_first, pair_hash, pair_row, pair_base)

            def finish_timeline() -> None:
                n_steps, n_bins, n_pairs = timeline.result()
                self.steps.add(step_keys[:n_steps], np.ones(n_steps, bool), step_counts[:n_steps])
                self.bins.add(bin_keys[:n_bins], None, bin_counts[:n_bins])
                touched = np.flatnonzero(first_idx >= 0)
                pf, pr = pair_first[:n_pairs], pair_row[:n_pairs]
                need = np.unique(np.concatenate([first_idx[touched], pf[pf >= 0], pr]))
                h_need = rowhash(need)
                if n_pairs:
                    hf = pair_hash[:n_pairs].copy()
                    inside = pf >= 0
                    hf[inside] = h_need[np.searchsorted(need, pf[inside])]
                    pairs = np.empty(2 * n_pairs, np.uint64)
                    dup_pairs(pair_base[:n_pairs], hf, h_need[np.searchsorted(need, pr)], pairs)
                    seen = self.pair_set.add(pairs)
                    self.dup_rows_timed += int(seen[1::2].sum())
                self.G["first_hash"][touched] = h_need[np.searchsorted(need, first_idx[touched])]
            if not all_ok:
                bad_rows = np.flatnonzero(~ok)
                self.dup_rows_untimed += int(self.row_set.add(rowhash(bad_rows)).sum())

                def base_of():
                    hour = np.where(ok, micro() // HOUR_US - hour0 + (1 << 22), -1)
                    hour = np.clip(hour, -1, (1 << 23) - 1)
                    return (g << 43) | (np.maximum(hour, 0) << 20)
            else:
                def base_of():
                    hour = np.clip(micro() // HOUR_US - hour0 + (1 << 22), 0, (1 << 23) - 1)
                    return (g << 43) | (hour << 20)
            base = base_of
        else:
            self.dup_rows_untimed += int(self.row_set.add(rowhash()).sum())
        if self.key_set is not None:
            khash = typed.select(self.schema.key).hash_rows(seed=11).to_numpy()
            self.key_dups += int(self.key_set.add(khash).sum())
        elif self.key_by_time and t_ok is not None and not t_ok.all():
            kh = typed.select(self.schema.key).filter(pl.Series(~t_ok)).hash_rows(seed=11).to_numpy()
            self.key_set_untimed = getattr(self, "key_set_untimed", HashSet())
            self.key_dups += int(self.key_set_untimed.add(kh).sum())
        base_arr = None
        for name, st in self.text.items():
            if name == self.time_col:
                continue
            s = typed[name]
            n_null = s.null_count()
            nan = s.dtype.is_float() and bool(s.is_nan().any())
            isnull = None
            if n_null or nan:
                isnull = s.is_null().to_numpy()
                if nan:
                    isnull |= s.is_nan().fill_null(False).to_numpy()
                st.arr("nulls")[:] += np.bincount(g[isnull], minlength=G.size)
            rn = raw_null.get(name)
            if rn is not None and isnull is not None:
                bad = ~rn & isnull
                if bad.any():
                    st.arr("unparseable")[:] += np.bincount(g[bad], minlength=G.size)
            if not (name == self.group_col and self._int_codes is not None) and n - n_null:
                hll_add(st.registers, s.drop_nulls().hash(seed=3).to_numpy().view(np.int64))
            hitcode = None
            if isnull is not None:
                hitcode = np.zeros(n, np.int64)
                hitcode[isnull] = 1
            if s.dtype == pl.String:
                for cl, k in classify_cells(s).items():
                    st.classes[cl] += k
                for ti, tok in enumerate(st.tokens):
                    m = (s == tok).fill_null(False).to_numpy()
                    if m.any():
                        st.arr("tok")[:, ti] += np.bincount(g[m], minlength=G.size)
                        if hitcode is None:
                            hitcode = np.zeros(n, np.int64)
                        hitcode[m] = 2 + ti
            spec = self.schema.columns.get(name)
            if spec is not None and spec.allowed is not None:
                notin = (~s.is_in([type(a)(a) for a in spec.allowed]).fill_null(True) & ~s.is_null()).to_numpy()
                st.arr("not_allowed")[:] += np.bincount(g[notin], minlength=G.size)
            if base is not None and hitcode is not None:
                base_arr = base() if base_arr is None else base_arr
                j = self.col_index[name]
                m = (hitcode > 0) & t_ok
                self.bins.add((base_arr | (j << 5) | np.minimum(hitcode, 31))[m], None, np.ones(int(m.sum()), np.int64))
        self._pending = (futures, finish_timeline, g, t_ok, base, base_arr, raw_null)
        if self.needs is not None:  # the funnel reads the sentinels detected so far, this batch included
            self.drain()
            self._funnel(typed, None if t_us is None else micro(), t_ok)

    def drain(self) -> None:
        """Wait for the last batch's column kernels and add what they found (CSV unparseable cells,
        values not allowed, the plot bins of nulls and sentinels)."""
        if self._pending is None:
            return
        futures, finish_timeline, g, t_ok, base, base_arr, raw_null = self._pending
        self._pending = None
        if finish_timeline is not None:
            finish_timeline()
        results = [f.result() for f in futures]
        G = self.G
        for name, (v, hit, n_hit) in zip(self.num, results, strict=True):
            st = self.num[name]
            if raw_null.get(name) is not None:  # CSV: a cell that was there but did not parse
                bad = ~raw_null[name] & np.isnan(v)
                if bad.any():
                    k = np.bincount(g[bad], minlength=G.size)
                    st.arr("unparseable")[:] += k
                    st.arr("nulls")[:] -= k  # the kernel saw NaN: unparseable, not null
            spec = self.schema.columns.get(name)
            if spec is not None and spec.allowed is not None:
                v64 = v.astype(np.float64)
                notin = ~np.isnan(v64) & ~np.isin(v64, np.array(spec.allowed, np.float64))
                st.arr("not_allowed")[:] += np.bincount(g[notin], minlength=G.size)
            if base is not None and n_hit:
                base_arr = base() if base_arr is None else base_arr
                j = self.col_index[name]
                m = (hit > 0) & t_ok
                self.bins.add((base_arr | (j << 5) | hit.astype(np.int64))[m], None, np.ones(int(m.sum()), np.int64))

    def _column(self, s: pl.Series, g: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Run the column kernel on one numeric column of a batch (in a worker thread: it releases the GIL):
        the values as read by the kernel, what each row hit (see :func:`uda.kernels.profile.column_block`)
        and how many rows hit something."""
        st = self.num[s.name]
        if s.dtype in (pl.Float32, pl.Float64):  # the kernel reads float32 as is (widening is exact)
            v = s.fill_null(np.nan).to_numpy() if s.null_count() else s.to_numpy()
        else:
            v = s.cast(pl.Float64).fill_null(np.nan).to_numpy()
        lo, hi, _ = self.ranges[s.name]
        n_hit = column_block(v, g, lo, hi, st.cands, self.schema.stuck_min, self.schema.stuck_ignore_zero,
                        st.arr("nulls"), st.arr("cand"), st.arr("invalid"), st.arr("stuck_rows"),
                        st.arr("stuck_runs"), st.arr("last_v"), st.arr("run_len"), st.arr("null_run"),
                        st.arr("null_run_max"), st.ext, st.qs, st.registers, hit)
        return v, hit, n_hit

    def _funnel(self, typed: pl.DataFrame, t_us: np.ndarray | None, t_ok: np.ndarray | None) -> None:
        """Add a batch to the funnel, with the sentinels detected so far (declared ones, or candidates)."""
        numeric = {c: (np.array(self.sentinels_of(self.num[c]), np.float64), self.ranges[c][:2])
                   for c in self.needs.columns if c in self.num}
        self.funnel.add(typed, t_us, t_ok, time_col=self.time_col, numeric=numeric)

    def resort_timeline(self, batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Recompute the timeline from batches of (group code, time µs, row hash) sorted by (group, time)."""
        self.drain()
        G = self.G
        for k in ("n_ok", "out_of_order", "dups", "max_step"):
            G[k][:] = 0
        G["last_t"][:] = np.iinfo(np.int64).min
        G["t_min"][:] = np.iinfo(np.int64).max
        G["t_max"][:] = np.iinfo(np.int64).min
        self.steps = HashCounter()
        self.pair_set = HashSet()
        self.dup_rows_timed = 0
        self.resorted = True
        for g, t, h in batches:
            n = g.size
            step_keys = np.empty(n, np.int64)
            pairs = np.empty(2 * n, np.uint64)
            ok = np.ones(n, bool)
            n_pairs = timeline_block(g, t, ok, h, G["last_t"], G["first_hash"], G["n_ok"], G["t_min"],
                                        G["t_max"], G["out_of_order"], G["dups"], G["max_step"], step_keys, pairs)
            self.steps.add(step_keys, step_keys >= 0, np.ones(n, np.int64))
            if n_pairs:
                seen = self.pair_set.add(pairs[: 2 * n_pairs])
                self.dup_rows_timed += int(seen[1::2].sum())


def profile_table(path: str, *, schema: str | os.PathLike | None = None, time_col: str | None = None,
                  key: list[str] | None = None, group_col: str | None = None,
                  needs: str | os.PathLike | None = None, batch_rows: int = BATCH_ROWS,
                  progress: Callable[[int, int | None], None] | None = None) -> tuple[dict[str, Any], Schema,
                                                                                       TableProfiler]:
    """Profile a table in one streaming scan.

    Parameters
    ----------
    path
        CSV or Parquet file, a folder or glob of them, or an fsspec URL.
    schema
        Schema TOML (:func:`load_schema`); without it, types come from the data and ranges
        from uda's contract where a column maps to a known parameter.
    time_col, key, group_col
        Override or complete the schema.
    needs
        Needs spec for the funnel (:func:`load_needs`).
    batch_rows
        Rows per streamed batch.
    progress
        Called with (rows done, total rows or None) after each batch.

    Returns
    -------
    report, schema, profiler
        The JSON-ready report, the schema used (inferred parts filled in), the profiler state.
    """
    sch = load_schema(schema) if schema is not None else Schema()
    nd = load_needs(needs) if needs is not None else None
    source = open_table(path)
    try:
        plan = plan_scan(source, sch, time_col=time_col, key=key, group_col=group_col, needs=nd)
        prof = TableProfiler(plan.names, plan.types, plan.schema, nd)
        done = 0
        for typed, raw_null, t_us, t_ok, mult in batches(plan, batch_rows):
            prof.add(typed, raw_null, t_us, t_ok, t_mult=mult)
            done += typed.height
            if progress is not None:
                progress(done, source.rows_hint)
        prof.drain()
        ooo = None
        n_g = len(prof.group_codes)
        if plan.schema.time_col is not None and prof.G["out_of_order"][:n_g].any():
            ooo = prof.G["out_of_order"][:n_g].copy()
            prof.resort_timeline(_sorted_timeline(plan, prof, batch_rows))
        rep = prof.report(out_of_order_file=ooo)
    finally:
        source.close()
        if "prof" in locals():
            prof.close()
    rep["table"] = path
    rep["format"] = source.kind
    return rep, plan.schema, prof


def _sorted_timeline(plan: Plan, prof: TableProfiler, batch_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]]:
    """Second read when some group's times go backwards: (group, time, row hash) sorted by (group, time)."""
    parts = []
    for typed, _, t_us, t_ok, mult in batches(plan, batch_rows):
        t_us = t_us * mult if mult != 1 else t_us
        g = prof._groups(typed)
        h = typed.hash_rows(seed=7).to_numpy()
        parts.append(pl.DataFrame({"g": g[t_ok], "t": t_us[t_ok], "h": h[t_ok]}))
    df = pl.concat(parts).sort("g", "t", maintain_order=True) if parts else pl.DataFrame(
        {"g": [], "t": [], "h": []}, schema={"g": pl.Int64, "t": pl.Int64, "h": pl.UInt64})
    for off in range(0, df.height, batch_rows):
        part = df.slice(off, batch_rows)
        yield part["g"].to_numpy(), part["t"].to_numpy(), part["h"].to_numpy()
