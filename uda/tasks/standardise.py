"""Standardisation task: map department feeds into the canonical schema, de-duplicate, flag, repair.

Each feed file is read under its district's standard (``feed_dictionary``): ids are parsed
from their scheme, timestamps from their format and time zone into naive local standard
time, values converted to canonical units. Then, per district and chunk (a sensor's rows
never span chunks), every row gets flags:

``flag_syntax``     id or timestamp does not parse (or a value is not a number)
``flag_unit``       a column's unit is unknown or a required column is missing (feed-level)
``flag_range``      a value outside its physical range
``flag_duplicate``  a later copy of an earlier ``(key, ts)`` record
``flag_stuck``      repeats the previous reading of a frozen sensor
``flag_skew``       the sensor's clock is off the interval grid (offset in ``skew_ms``)
``flag_late``       arrived more than an hour after measurement
``flag_drift``      the sensor's daily level drifted by 10 % or more from its first day
``flag_reference``  the id does not resolve against the city tables (or ts outside the period)

Rows that are valid (no syntax, range, duplicate or stuck flag), standardised (no unit flag)
and integrated (no reference flag) go to ``clean/<table>``; all others to
``clean/<table>_rejects`` with their flags. ``--repair`` shifts skewed clocks back onto the
grid and divides drifted values by the estimated drift. Both engines parse with the same
Polars kernels (:func:`parse_frame`) and run the same detectors; only reading and scheduling
differ (Polars: a file per thread read by Polars; Dask: a task per file read by pyarrow, a
task per group), and the outputs are identical.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uda.contract import (
    DRIFT_MIN,
    LATE_AFTER_S,
    LOCAL_UTC_OFFSET_S,
    SPECS,
    UNITS,
    start_ms_of,
)
from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.store import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    Dataset,
    open_dataset,
    remove_stale_temp_folders,
    table_entry,
    write_part,
)
from uda.tasks.base import TaskResult

CLEAN_DIR = "clean"
TABLES = ("traffic", "taps", "water")
FLAGS = ("flag_syntax", "flag_unit", "flag_range", "flag_duplicate", "flag_stuck", "flag_skew", "flag_late",
         "flag_drift", "flag_reference")
#: A run of at least this many identical readings (including the first) is a stuck sensor.
STUCK_MIN = 3
_DAY_MS = 86_400_000
#: Polars ``str.to_datetime`` format of each text timestamp standard.
_PARSE_FORMATS = {"iso_offset": "%Y-%m-%dT%H:%M:%S%z", "iso_offset_ms": "%Y-%m-%dT%H:%M:%S%.3f%z",
                  "iso_utc": "%Y-%m-%dT%H:%M:%SZ", "dmy_local": "%d/%m/%Y %H:%M"}
_UTC_FORMATS = ("iso_offset", "iso_offset_ms", "iso_utc", "epoch_s", "epoch_ms")


# --------------------------------------------------------------------------- feed descriptions


@dataclass
class FeedFile:
    """One file of a department feed and the standard it is written in."""

    path: Path
    rel: str
    table: str
    district: int | None          # None: canonical raw table, district from the id
    group: str                    # files of one group hold whole sensors/sites
    columns: dict[str, str]       # role -> column
    units: dict[str, str] = field(default_factory=dict)
    id_formats: dict[str, str] = field(default_factory=dict)
    time_format: str = "native"
    received: bool = True
    rows: int = 0


def canonical_standard(table: str) -> dict[str, Any]:
    """Role -> column, units and formats of the canonical table (what ``--defects none`` writes)."""
    spec = SPECS[table]
    roles = [spec.key, "ts"] + (["station_id", "direction"] if table == "taps" else []) + list(spec.values)
    return {"columns": {r: r for r in roles}, "units": {v: next(iter(UNITS[v])) for v in spec.values},
            "id_formats": {spec.key: "{}", **({"station_id": "{}"} if table == "taps" else {})},
            "time_format": "native"}


def feed_files(ds: Dataset) -> list[FeedFile]:
    """Every feed file of the dataset with its standard; canonical raw tables when it has no feeds."""
    out: list[FeedFile] = []
    if ds.has("feed_dictionary"):
        dic = ds.read("feed_dictionary")
        std: dict[tuple[str, int, int], dict[str, Any]] = {}
        for r in dic.iter_rows(named=True):
            s = std.setdefault((r["table"], r["district"], r["version"]),
                               {"columns": {}, "units": {}, "id_formats": {}, "time_format": "native"})
            s["columns"][r["role"]] = r["column"]
            if r["role"] == "ts":
                s["time_format"] = r["unit"]
            elif r["role"] in UNITS:
                s["units"][r["role"]] = r["unit"]
            elif r["role"] in ("sensor_id", "site_id", "card_id", "station_id"):
                s["id_formats"][r["role"]] = r["unit"]
        for name in sorted(ds.tables):
            if not name.startswith("feed_") or name == "feed_dictionary":
                continue
            for f, path in zip(ds.table(name)["files"], ds.files(name), strict=True):
                key = (f.get("table"), f.get("district"), f.get("version"))
                if key not in std:
                    msg = f"feed file {f['path']} has no entry in feed_dictionary; regenerate the dataset"
                    raise UserError(msg)
                s = std[key]
                out.append(FeedFile(path=path, rel=f["path"], table=key[0], district=int(key[1]),
                                    group=f"d{int(key[1]):03d}-{f.get('chunk', '')}", rows=int(f["rows"]),
                                    columns=s["columns"], units=s["units"], id_formats=s["id_formats"],
                                    time_format=s["time_format"]))
        return out
    for table in TABLES:
        if not ds.has(table):
            continue
        s = canonical_standard(table)
        for path, f in zip(ds.files(table), ds.table(table)["files"], strict=True):
            out.append(FeedFile(path=path, rel=f["path"], table=table, district=None, group=Path(f["path"]).stem,
                                received=False, rows=int(f["rows"]), **s))
    return out


# --------------------------------------------------------------------------- parsing (engine-specific)


def _findings_for(ff: FeedFile, names: list[str]) -> tuple[list[dict[str, str]], set[str]]:
    """Feed-level problems: missing required columns and unknown units. Returns (findings, bad roles)."""
    findings = []
    bad: set[str] = set()
    spec = SPECS[ff.table]
    required = [spec.key, "ts"] + (["station_id", "direction"] if ff.table == "taps" else [])
    for role in [*required, *spec.values]:
        col = ff.columns.get(role)
        if col not in names:
            findings.append({"file": ff.rel, "kind": "missing_column", "role": role,
                             "message": f"required column {col!r} ({role}) is missing"})
            bad.add(role)
    for role, unit in ff.units.items():
        if unit not in UNITS.get(role, {}):
            findings.append({"file": ff.rel, "kind": "unknown_unit", "role": role,
                             "message": f"unit {unit!r} of {ff.columns.get(role)!r} ({role}) is unknown"})
            bad.add(role)
    if ff.time_format not in ("native", *_PARSE_FORMATS, "epoch_s", "epoch_ms"):
        findings.append({"file": ff.rel, "kind": "unknown_time_format", "role": "ts",
                         "message": f"timestamp format {ff.time_format!r} is unknown"})
        bad.add("ts")
    return findings, bad


def _prefix(fmt: str) -> str:
    return fmt.partition("{")[0]


def parse_polars(ff: FeedFile) -> dict[str, Any]:
    """Read one feed file with Polars and parse it (:func:`parse_frame`)."""
    import polars as pl

    return parse_frame(ff, pl.read_parquet(ff.path))


def parse_arrow(ff: FeedFile, table: pa.Table) -> dict[str, Any]:
    """Parse an Arrow table of one feed file (or of some of its row groups) with :func:`parse_frame`.

    Dictionary-encoded columns are decoded first, as the Parquet reader gives them to Polars.
    """
    import polars as pl

    for i, fld in enumerate(table.schema):
        if pa.types.is_dictionary(fld.type):
            table = table.set_column(i, fld.name, table.column(i).cast(fld.type.value_type))
    return parse_frame(ff, pl.from_arrow(table))


def read_parse_arrow(ff: FeedFile) -> dict[str, Any]:
    """Read one feed file with pyarrow and parse it (a Dask task: :func:`parse_arrow`)."""
    import pyarrow.parquet as pq

    return parse_arrow(ff, pq.read_table(ff.path))


def parse_frame(ff: FeedFile, df: Any) -> dict[str, Any]:
    """Parse one feed frame (a Polars DataFrame of the file's columns) into NumPy arrays (see :func:`_parsed`)."""
    import polars as pl

    findings, bad = _findings_for(ff, df.columns)
    n = df.height

    def ids(role: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        col = ff.columns.get(role)
        if role in bad or col is None:
            return np.full(n, -1, np.int64), np.zeros(n, bool), np.zeros(n, bool)
        s = df[col]
        fmt = ff.id_formats.get(role, "{}")
        if s.dtype.is_integer():
            v = s.cast(pl.Int64)
            conform = np.full(n, fmt == "{}") & v.is_not_null().to_numpy()
        else:
            s = s.cast(pl.String)
            v = s.str.extract(r"(\d+)$", 1).cast(pl.Int64, strict=False)
            conform = (s.str.starts_with(_prefix(fmt)).fill_null(False) & v.is_not_null()).to_numpy()
        ok = v.is_not_null().to_numpy()
        return v.fill_null(-1).to_numpy().astype(np.int64), ok, conform

    def times() -> tuple[np.ndarray, np.ndarray]:
        col = ff.columns.get("ts")
        if "ts" in bad or col is None:
            return np.zeros(n, np.int64), np.zeros(n, bool)
        s = df[col]
        fmt = ff.time_format
        if fmt == "native":
            t = s.cast(pl.Datetime("ms"), strict=False) if s.dtype.is_temporal() else pl.Series([None] * n, dtype=pl.Datetime("ms"))
            out = t.cast(pl.Int64)
        elif fmt in ("epoch_s", "epoch_ms"):
            out = s.cast(pl.Int64, strict=False) * (1000 if fmt == "epoch_s" else 1)
        else:
            if s.dtype != pl.String:
                out = pl.Series([None] * n, dtype=pl.Int64)
            else:
                t = s.str.to_datetime(_PARSE_FORMATS[fmt], strict=False, time_unit="ms")
                if t.dtype.time_zone is not None:
                    t = t.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                out = t.cast(pl.Int64)
        ok = out.is_not_null().to_numpy()
        v = out.fill_null(0).to_numpy().astype(np.int64)
        if fmt in _UTC_FORMATS:
            v = v + LOCAL_UTC_OFFSET_S * 1000
        return v, ok

    def numbers(role: str) -> np.ndarray:
        col = ff.columns.get(role)
        if col not in df.columns:
            return np.full(n, np.nan)
        return df[col].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()

    return _parsed(ff, n, findings, bad, ids, times, numbers)


def _parsed(ff: FeedFile, n: int, findings, bad, ids, times, numbers) -> dict[str, Any]:
    """Assemble parsed arrays: ids, local ms, received UTC ms, canonical values, flags and findings."""
    spec = SPECS[ff.table]
    key, key_ok, key_conform = ids(spec.key)
    if ff.table == "taps":
        ref, ref_ok, ref_conform = ids("station_id")
        direction = numbers("direction")
    else:
        ref, ref_ok, ref_conform = key, key_ok, key_conform
        direction = np.zeros(n)
    ts, ts_ok = times()
    if n and "ts" not in bad and not ts_ok.any():
        findings.append({"file": ff.rel, "kind": "unparseable_timestamps", "role": "ts",
                         "message": f"no value of {ff.columns.get('ts')!r} parses as {ff.time_format}"})
    received = numbers("received") if ff.received else np.full(n, np.nan)
    values = np.empty((n, len(spec.values)))
    raw = np.empty((n, len(spec.values)))  # as published: repeats are repeats in any unit
    unit_ok = np.ones(n, bool)
    for j, v in enumerate(spec.values):
        x = numbers(v)
        raw[:, j] = x
        unit = ff.units.get(v, "")
        f = UNITS[v].get(unit)
        if v in bad or f is None:
            unit_ok[:] = False
            values[:, j] = np.nan
        elif f == "fahrenheit":
            values[:, j] = (x - 32.0) / 1.8
        else:
            values[:, j] = x * f
    syntax_ok = key_ok & ts_ok & ref_ok
    if ff.table == "taps":
        syntax_ok &= np.isin(direction, (0.0, 1.0))
    for role in (spec.key, "ts"):
        if role in bad:
            unit_ok[:] = False
    return {"file": ff.rel, "n": n, "key": key, "ref": ref, "ts": ts, "received": received, "values": values,
            "raw": raw,
            "direction": np.nan_to_num(direction, nan=-1).astype(np.int8), "syntax_ok": syntax_ok,
            "unit_ok": unit_ok, "conform": key_conform & ref_conform, "findings": findings}


# --------------------------------------------------------------------------- detectors (shared)


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("key", "ref", "ts", "received", "values", "raw", "direction", "syntax_ok", "unit_ok", "conform")
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    out["findings"] = [f for p in parts for f in p["findings"]]
    return out


def _is_sorted(*cols: np.ndarray) -> bool:
    """Whether rows are already in lexicographic order of ``cols`` (first column most significant)."""
    if cols[0].size < 2:
        return True
    le = np.ones(cols[0].size - 1, bool)  # row i <= row i+1 on the columns compared so far, from the last
    for c in reversed(cols):
        a, b = c[:-1], c[1:]
        le = (a < b) | ((a == b) & le)
    return bool(le.all())


def detect_group(parts: list[dict[str, Any]], table: str, *, district: int | None, lookup: np.ndarray,
                 period: tuple[int, int]) -> dict[str, Any]:
    """Flags for one group of parsed feed parts (whole sensors/sites), sorted by key, time, arrival.

    Parameters
    ----------
    parts
        Parsed files of the group (from :func:`parse_polars` or :func:`read_parse_arrow`).
    table
        ``"traffic"``, ``"taps"`` or ``"water"``.
    district
        The publishing district (``None``: from ``lookup`` of the reference id).
    lookup
        ``id -> district`` of the referenced city table (-1 where no such id).
    period
        ``(start, end)`` of the dataset in local ms.
    """
    spec = SPECS[table]
    g = _concat(parts)
    n = g["key"].size
    rec = np.nan_to_num(g["received"], nan=2.0**62).astype(np.int64)
    if not _is_sorted(~g["syntax_ok"], g["key"], g["ts"], rec):  # feeds usually arrive in order
        order = np.lexsort((rec, g["ts"], g["key"], ~g["syntax_ok"]))
        g = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in g.items()}
    key, ts, values = g["key"], g["ts"], g["values"]
    syn = g["syntax_ok"]
    f = {name: np.zeros(n, bool) for name in FLAGS}
    f["flag_syntax"] = ~syn
    f["flag_unit"] = ~g["unit_ok"]
    # duplicates: same key and ts as the previous row (earliest arrival kept)
    same = np.zeros(n, bool)
    if n > 1:
        same[1:] = syn[1:] & syn[:-1] & (key[1:] == key[:-1]) & (ts[1:] == ts[:-1])
    f["flag_duplicate"] = same
    skew = np.zeros(n, np.int64)
    if spec.values:
        lo = np.array([spec.ranges[v][0] for v in spec.values])
        hi = np.array([spec.ranges[v][1] for v in spec.values])
        with np.errstate(invalid="ignore"):
            out_of_range = ((values < lo) | (values > hi)).any(axis=1)
            f["flag_syntax"] |= syn & g["unit_ok"] & np.isnan(values).all(axis=1)
        f["flag_range"] = syn & out_of_range  # columns of unknown unit are NaN: never out of range
        # clock skew: the sensor's typical offset from the interval grid
        step = spec.interval_s * 1000
        resid = ((ts + step // 2) % step) - step // 2
        cand = syn & ~same
        if cand.any():
            ks, first, counts = np.unique(key[cand], return_index=True, return_counts=True)
            r = resid[cand]
            med = np.array([int(np.median(r[a:a + c])) for a, c in zip(first, counts, strict=True)], np.int64)
            med = (med // 60_000) * 60_000 + np.where(med % 60_000 >= 30_000, 60_000, 0)
            pos = np.searchsorted(ks, key)
            hit = (pos < ks.size) & (ks[np.minimum(pos, ks.size - 1)] == key) & syn
            skew = np.where(hit, med[np.minimum(pos, ks.size - 1)], 0)
        f["flag_skew"] = skew != 0
        # stuck: a run of >= STUCK_MIN identical readings of one sensor (not an idle road at night)
        live = syn & ~same & ~f["flag_range"]
        idx = np.flatnonzero(live)
        if idx.size > 1:
            v = g["raw"][idx]
            eq = (key[idx][1:] == key[idx][:-1]) & (v[1:] == v[:-1]).all(axis=1)
            if table == "traffic":
                eq &= v[1:, 0] > 0
            # a row is stuck if it repeats the previous reading and its run reaches STUCK_MIN readings
            rep = np.r_[False, eq]
            run_id = np.cumsum(~rep)
            run_len = np.bincount(run_id)
            f["flag_stuck"][idx] = rep & (run_len[run_id] >= STUCK_MIN)
    ts_corr = ts - skew
    has_rec = ~np.isnan(g["received"])
    f["flag_late"] = syn & has_rec & ((g["received"] - (ts_corr - LOCAL_UTC_OFFSET_S * 1000)) > LATE_AFTER_S * 1000)
    ref = g["ref"]
    ref_district = np.where((ref >= 0) & (ref < lookup.size), lookup[np.clip(ref, 0, max(lookup.size - 1, 0))], -1) \
        if lookup.size else np.full(n, -1)
    f["flag_reference"] = syn & ((ref_district < 0) | (ts_corr < period[0]) | (ts_corr >= period[1]))
    dist = np.full(n, district if district is not None else -1, np.int64)
    if district is None:
        dist = np.where(ref_district >= 0, ref_district, -1)
    latency = np.where(has_rec, (g["received"] - (ts_corr - LOCAL_UTC_OFFSET_S * 1000)) / 1000.0, np.nan)
    return {"table": table, "key": key, "ref": ref, "ts": ts, "skew": skew, "values": values,
            "direction": g["direction"], "latency": latency, "district": dist, "flags": f,
            "findings": g["findings"], "conform": g["conform"], "syntax_ok": syn}


def daily_levels(grp: dict[str, Any], *, start_ms: int) -> dict[str, np.ndarray]:
    """Per (key, day) median of the drift column over the group's valid rows (drift detector input)."""
    spec = SPECS[grp["table"]]
    if not spec.drift:
        return {"key": np.zeros(0, np.int64), "day": np.zeros(0, np.int64), "level": np.zeros(0)}
    f = grp["flags"]
    ok = ~(f["flag_syntax"] | f["flag_range"] | f["flag_duplicate"] | f["flag_stuck"])
    j = spec.values.index(spec.drift)  # NaN where the drift column's unit is unknown
    v = grp["values"][ok, j]
    k = grp["key"][ok]
    d = (grp["ts"][ok] - grp["skew"][ok] - start_ms) // _DAY_MS
    good = np.isfinite(v)
    k, d, v = k[good], d[good], v[good]
    if not k.size:
        return {"key": k, "day": d, "level": v}
    # rows are sorted by key then time and a key's skew is constant, so (key, day) runs are
    # contiguous: lay the runs out as rows (padded with +inf), sort each row, take the middle
    # value (or the mean of the two middle ones, as np.median)
    brk = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (d[1:] != d[:-1]), True])
    cnt = np.diff(brk)
    n_runs, width = cnt.size, int(cnt.max())
    if n_runs * width <= 2 * v.size + 4096:
        grid = np.full((n_runs, width), np.inf)
        run = np.repeat(np.arange(n_runs), cnt)
        grid[run, np.arange(v.size) - brk[:-1][run]] = v
        grid.sort(axis=1)
        rows = np.arange(n_runs)
        med = (grid[rows, (cnt - 1) // 2] + grid[rows, cnt // 2]) / 2.0
    else:  # a few very long runs: padding would cost more than a loop
        med = np.array([np.median(v[a:b]) for a, b in zip(brk[:-1], brk[1:], strict=True)])
    return {"key": k[brk[:-1]], "day": d[brk[:-1]], "level": med}


def drift_factors(levels: list[dict[str, np.ndarray]]) -> dict[tuple[int, int], float]:
    """``(key, day) -> estimated drift factor`` where it departs from 1 by :data:`DRIFT_MIN` or more.

    A key's daily level is divided by the median level of all keys that day (removing the
    weekly and weather pattern every sensor shares), then by the median of that ratio on
    the key's first two days (drift starts on day 1 at the earliest, from 0); the result is
    its estimated multiplicative drift. A day counts only when the
    median over it and the later days departs on the same side by at least half as much
    (drift persists; day-to-day congestion does not).
    """
    k = np.concatenate([x["key"] for x in levels]) if levels else np.zeros(0, np.int64)
    if not k.size:
        return {}
    d = np.concatenate([x["day"] for x in levels])
    v = np.concatenate([x["level"] for x in levels])
    days = np.unique(d)
    day_med = {int(x): float(np.median(v[d == x])) for x in days}
    ratio = v / np.array([day_med[int(x)] if day_med[int(x)] != 0 else np.nan for x in d])
    out: dict[tuple[int, int], float] = {}
    order = np.lexsort((d, k))
    k, d, ratio = k[order], d[order], ratio[order]
    brk = np.flatnonzero(np.r_[True, k[1:] != k[:-1], True])
    for a, b in zip(brk[:-1], brk[1:], strict=True):
        base = np.median(ratio[a:min(a + 2, b)])  # first two days: one busy day is no baseline
        if not np.isfinite(base) or base == 0:
            continue
        fac = ratio[a:b] / base
        for i in np.flatnonzero(np.abs(fac - 1.0) >= DRIFT_MIN):
            # drift ramps up and stays; a busy (or quiet) day does not: the days from this
            # one on must depart on the same side, by at least half as much, in the median
            later = np.median(fac[i:]) - 1.0
            if later * (fac[i] - 1.0) > 0 and abs(later) >= DRIFT_MIN / 2:
                out[(int(k[a]), int(d[a + i]))] = float(fac[i])
    return out


def finish_group(grp: dict[str, Any], factors: dict[tuple[int, int], float], *, start_ms: int,
                 repair: bool) -> tuple[pa.Table, pa.Table, dict[int, dict[str, int]]]:
    """Apply drift flags (and repairs); split into clean and reject tables; count funnel stages per district."""
    spec = SPECS[grp["table"]]
    f = grp["flags"]
    values = grp["values"].copy()
    ts = grp["ts"].copy()
    if factors and spec.drift:
        day = (ts - grp["skew"] - start_ms) // _DAY_MS
        fk = np.array([a * 100_000 + b for a, b in factors], np.int64)
        fv = np.array(list(factors.values()))
        order = np.argsort(fk)
        fk, fv = fk[order], fv[order]
        code = grp["key"] * 100_000 + day
        pos = np.minimum(np.searchsorted(fk, code), fk.size - 1)
        fac = np.where(fk[pos] == code, fv[pos], 1.0)
        f["flag_drift"] = grp["syntax_ok"] & (fac != 1.0)
        if repair:
            j = spec.values.index(spec.drift)
            values[:, j] = values[:, j] / fac
    if repair:
        ts = ts - grp["skew"]
    valid = ~(f["flag_syntax"] | f["flag_range"] | f["flag_duplicate"] | f["flag_stuck"])
    standardised = valid & ~f["flag_unit"]
    integrated = standardised & ~f["flag_reference"]
    counts: dict[int, dict[str, int]] = {}
    for d in np.unique(grp["district"]):
        sel = grp["district"] == d
        counts[int(d)] = {"collected": int(sel.sum()), "valid": int((valid & sel).sum()),
                          "standardised": int((standardised & sel).sum()), "integrated": int((integrated & sel).sum())}

    def build(mask: np.ndarray, flags: tuple[str, ...]) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        key_type = pa.int64() if grp["table"] == "taps" else pa.int32()
        cols[spec.key] = pa.array(grp["key"][mask], key_type)
        if grp["table"] == "taps":
            cols["station_id"] = pa.array(np.clip(grp["ref"][mask], -1, 2**31 - 1), pa.int32())
        cols["ts"] = pa.array(ts[mask], pa.timestamp("ms"))
        if grp["table"] == "taps":
            cols["direction"] = pa.array(grp["direction"][mask], pa.int8())
        for j, v in enumerate(spec.values):
            cols[v] = pa.array(values[mask, j].astype(np.float32))
        cols["district_id"] = pa.array(grp["district"][mask], pa.int16())
        cols["latency_s"] = pa.array(grp["latency"][mask].astype(np.float32))
        cols["skew_ms"] = pa.array(grp["skew"][mask], pa.int32())
        for name in flags:
            cols[name] = pa.array(f[name][mask])
        return pa.table(cols)

    clean = build(integrated, ("flag_skew", "flag_late", "flag_drift"))
    rejects = build(~integrated, FLAGS)
    return clean, rejects, counts


# --------------------------------------------------------------------------- the task


@dataclass
class _Ctx:
    ds: Dataset
    files: list[FeedFile]
    lookups: dict[str, np.ndarray]
    period: tuple[int, int]
    start_ms: int


def _context(ds: Dataset) -> _Ctx:
    def lookup(table: str, key: str) -> np.ndarray:
        if not ds.has(table):
            return np.zeros(0, np.int64)
        t = ds.read(table)
        ids = t[key].to_numpy().astype(np.int64)
        out = np.full(int(ids.max(initial=-1)) + 1, -1, np.int64)
        out[ids] = t["district_id"].to_numpy()
        return out

    p = ds.params
    if "start" not in p or "days" not in p:
        msg = f"dataset {ds.path} has no start/days parameters; regenerate it with `uda generate`"
        raise UserError(msg)
    start = start_ms_of(p["start"])
    return _Ctx(ds, feed_files(ds), {"traffic": lookup("sensors", "sensor_id"), "water": lookup("water_sites", "site_id"),
                                     "taps": lookup("stations", "station_id")},
                (start, start + int(p["days"]) * _DAY_MS), start)


def _groups(files: list[FeedFile]) -> dict[tuple[str, str], list[FeedFile]]:
    out: dict[tuple[str, str], list[FeedFile]] = {}
    for ff in files:
        out.setdefault((ff.table, ff.group), []).append(ff)
    return dict(sorted(out.items()))


#: ``reducer(table, clean, rejects) -> small result``, run where the group was standardised.
Reducer = Callable[[str, pa.Table, pa.Table], Any]


def process_group(parts: list[dict[str, Any]], table: str, gname: str, *, district: int | None,
                  lookup: np.ndarray, period: tuple[int, int], start_ms: int,
                  factors: dict[tuple[int, int], float], repair: bool, out_root: Path | None,
                  reducer: Reducer | None, hashes: bool = True) -> dict[str, Any]:
    """Standardise one group and keep only what is small: counts, flags, hashes, drift levels.

    Parameters
    ----------
    parts
        Parsed files of the group (from :func:`parse_polars` or :func:`read_parse_arrow`).
    table, gname
        Table and group name (``clean/<table>/<gname>.parquet``).
    district, lookup, period
        As for :func:`detect_group`.
    start_ms
        Start of the period (local ms), for the day of the drift levels.
    factors
        Drift factors of the table (``{}`` in the first pass, before they are known).
    repair
        Apply the repairs.
    out_root
        Write the clean and reject tables under this folder (``None``: write nothing).
    reducer
        Reduces the group's clean and reject tables to what the caller needs (``None``: nothing).
    hashes
        Compute the content hash of the clean and reject tables (always when writing them).

    Returns
    -------
    dict
        ``levels`` (:func:`daily_levels`), ``keys`` (parsed keys, drift tables only),
        ``counts``, ``flags``, ``findings``, ``hashes``/``schemas``/``parts`` per output
        table, and ``reduced``.
    """
    g = detect_group(parts, table, district=district, lookup=lookup, period=period)
    parts.clear()  # the parsed files are in g now
    levels = daily_levels(g, start_ms=start_ms)
    keys = np.unique(g["key"][g["syntax_ok"]]) if SPECS[table].drift else np.zeros(0, np.int64)
    clean, rejects, counts = finish_group(g, factors, start_ms=start_ms, repair=repair)
    out: dict[str, Any] = {"levels": levels, "keys": keys, "counts": counts,
                           "flags": {name: int(g["flags"][name].sum()) for name in FLAGS},
                           "findings": g["findings"], "hashes": {}, "schemas": {}, "parts": {}}
    del g
    from uda.kernels.checksum import table_hash_sum

    for name, tab in ((table, clean), (f"{table}_rejects", rejects)):
        if out_root is not None:
            part = write_part(out_root, f"{name}/{gname}.parquet", tab)
            out["parts"][name] = part
            out["hashes"][name] = part.hash_sum
        elif hashes:
            out["hashes"][name] = table_hash_sum(tab)
        out["schemas"][name] = tab.schema
    out["reduced"] = reducer(table, clean, rejects) if reducer is not None else None
    return out


def _map_polars(ctx: _Ctx, groups: dict[tuple[str, str], list[FeedFile]], **kw: Any) -> dict[tuple[str, str], dict]:
    factors = kw.pop("factors")

    def one(item: tuple[tuple[str, str], list[FeedFile]]) -> dict[str, Any]:
        (table, gname), files = item
        parts = [parse_polars(ff) for ff in files]
        return process_group(parts, table, gname, district=files[0].district, lookup=ctx.lookups[table],
                             period=ctx.period, start_ms=ctx.start_ms, factors=factors.get(table, {}), **kw)

    # one group per thread: memory is bounded by (threads x largest group), not the data size
    with ThreadPoolExecutor(max_workers=max(1, min(len(groups), os.cpu_count() or 1))) as pool:
        return dict(zip(groups, pool.map(one, groups.items()), strict=True))


def _map_dask(ctx: _Ctx, groups: dict[tuple[str, str], list[FeedFile]], **kw: Any) -> dict[tuple[str, str], dict]:
    """One task per file (read with pyarrow, parse) and one per group. Not ``dask.dataframe``:
    building its ``read_parquet`` graph reads each file's footer in this thread (about 5 ms a
    file, before any task runs), and its pandas partitions are only converted back to Arrow."""
    import dask

    factors = kw.pop("factors")
    jobs = []
    for (table, gname), files in groups.items():
        parts = [dask.delayed(read_parse_arrow)(ff, dask_key_name=f"read-parse-{ff.rel}")
                 for ff in files]
        jobs.append(dask.delayed(process_group)(parts, table, gname, district=files[0].district,
                                                lookup=ctx.lookups[table], period=ctx.period, start_ms=ctx.start_ms,
                                                factors=factors.get(table, {}), **kw))
    return dict(zip(groups, dask.compute(*jobs), strict=True))


def _commit_clean(ds: Dataset, tmp: Path, outs: dict[tuple[str, str], dict], report: dict[str, Any]) -> Path:
    """Write the manifest of ``clean/`` into ``tmp`` (parts already written there), then swap it in."""
    root = ds.path / CLEAN_DIR
    parts: dict[str, list] = {}
    schemas: dict[str, pa.Schema] = {}
    for out in outs.values():
        for name, part in out["parts"].items():
            parts.setdefault(name, []).append(part)
            schemas.setdefault(name, out["schemas"][name])
    tables = {name: table_entry(written, schemas[name], partitioned_by="district") for name, written in parts.items()}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "clean",
                "params": ds.params, "standardise": report, "tables": tables}
    (tmp / (MANIFEST + ".part")).write_text(json.dumps(manifest, indent=1))
    (tmp / (MANIFEST + ".part")).rename(tmp / MANIFEST)
    trash = None
    if root.exists():
        trash = ds.path / f".{CLEAN_DIR}.old-{uuid.uuid4().hex[:8]}"
        root.rename(trash)
    tmp.rename(root)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return root


def standardise(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
                repair: bool = False, write: bool = True, reducer: Reducer | None = None,
                hashes: bool = True) -> dict[str, Any]:
    """Standardise every feed of a dataset, one group at a time; writes ``clean/`` when it has feeds.

    Memory is bounded by the groups standardised at once (a group holds whole sensors or
    sites), not by the data size: each group is parsed, flagged, written and reduced where
    it runs, and only counts, hashes and drift levels come back. Drift factors need the
    daily levels of every group, so the groups holding a drifted key run a second time
    with the factors (their first results are replaced; the others cannot change).

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` (a thread per group) or ``"dask"`` (a task per group); the Dask scheduler.
    repair
        Shift skewed clocks back onto the grid and divide drifted values by the estimated drift.
    write
        Write ``clean/`` (datasets with feeds only).
    reducer
        Called on every group's final clean and reject tables; its results are returned.
    hashes
        Compute the content hash of every output table (``False`` saves time when only the
        reducer's results are wanted).

    Returns
    -------
    dict
        ``report``: ``counts`` (``{table: {district: {collected, valid, standardised,
        integrated}}}``), ``findings`` (feed-level problems), ``flags`` (rows per flag and
        table); ``hashes``: content hash sum of every output table; ``reduced``:
        ``{(table, group): reducer result}``.
    """
    check_engine(engine)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    ctx = _context(ds)
    if not ctx.files:
        msg = f"dataset {ds.path} has no traffic, taps or water data; generate it with sensor tables"
        raise UserError(msg)
    has_feeds = ds.has("feed_dictionary")
    tmp = ds.path / f".{CLEAN_DIR}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}" if write and has_feeds else None
    groups = _groups(ctx.files)
    try:
        if tmp is not None:
            if ds.fs is None:  # what a killed standardise left beside clean/
                remove_stale_temp_folders(ds.path / CLEAN_DIR)
            tmp.mkdir()

        def run_groups(sel: dict[tuple[str, str], list[FeedFile]], factors: dict[str, dict]) -> dict:
            kw = {"factors": factors, "repair": repair, "out_root": tmp, "reducer": reducer, "hashes": hashes}
            if engine == "polars":
                return _map_polars(ctx, sel, **kw)
            with dask_scheduler(scheduler):
                return _map_dask(ctx, sel, **kw)

        outs = run_groups(groups, {})
        factors: dict[str, dict] = {}
        for table in TABLES:
            factors[table] = drift_factors([o["levels"] for (t, _), o in outs.items() if t == table])
        drifted = {t: np.unique(np.array([k for k, _ in f], np.int64)) for t, f in factors.items() if f}
        again = {key: files for key, files in groups.items()
                 if key[0] in drifted and np.isin(outs[key]["keys"], drifted[key[0]]).any()}
        if again:
            outs.update(run_groups(again, factors))
        counts: dict[str, dict[str, dict[str, int]]] = {}
        flags: dict[str, dict[str, int]] = {}
        findings: list[dict[str, str]] = []
        hashes: dict[str, int] = {}
        for (table, _), o in outs.items():
            for d, c in o["counts"].items():
                acc = counts.setdefault(table, {}).setdefault(str(d), dict.fromkeys(c, 0))
                for k, v in c.items():
                    acc[k] += v
            fl = flags.setdefault(table, dict.fromkeys(FLAGS, 0))
            for name in FLAGS:
                fl[name] += o["flags"][name]
            findings += o["findings"]
            for name, h in o["hashes"].items():
                hashes[name] = (hashes.get(name, 0) + h) % (1 << 64)
        report = {"engine": engine, "repair": repair, "has_feeds": has_feeds,
                  "counts": {t: dict(sorted(c.items(), key=lambda kv: int(kv[0]))) for t, c in sorted(counts.items())},
                  "flags": flags, "findings": findings,
                  "drift_factors": {t: len(v) for t, v in factors.items()}}
        if tmp is not None:
            _commit_clean(ds, tmp, outs, report)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"report": report, "hashes": hashes, "reduced": {k: o["reduced"] for k, o in outs.items()}}


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
        repair: bool = False, write: bool = True) -> TaskResult:
    """Standardise a dataset's feeds (see the module docstring) on ``engine``.

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` or ``"dask"``; the Dask scheduler.
    repair
        Shift skewed clocks back onto the grid and divide drifted values by the estimated drift.
    write
        Write ``clean/`` (only datasets with feeds; canonical datasets are already clean).

    Returns
    -------
    TaskResult
        ``answer``: rows per stage and per flag, and the content checksum of every clean
        table; ``summary``: the report (counts per table and district, findings).
    """
    t0 = time.perf_counter()
    res = standardise(data, engine=engine, scheduler=scheduler, repair=repair, write=write)
    rep = res["report"]
    answer: dict[str, Any] = {}
    for table, per in rep["counts"].items():
        for stage in ("collected", "valid", "standardised", "integrated"):
            answer[f"{table}_{stage}"] = np.array([per[d][stage] for d in per], np.int64)
    for table, fl in rep["flags"].items():
        answer[f"{table}_flags"] = np.array([fl[name] for name in FLAGS], np.int64)
    for name, h in res["hashes"].items():
        answer[f"{name}_hash"] = np.array([h], np.uint64)
    rows = sum(sum(c["collected"] for c in per.values()) for per in rep["counts"].values())
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    return TaskResult(task="standardise", engine=engine, answer=answer, rows_in=rows, summary=rep,
                      quality={f"{t}_integrated_share": (sum(c["integrated"] for c in per.values())
                                                          / max(1, sum(c["collected"] for c in per.values())))
                               for t, per in rep["counts"].items()})
