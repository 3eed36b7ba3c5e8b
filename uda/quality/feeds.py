"""Department feeds as standardisation reads them: the feed dictionary and the parsing of one feed file.

Each feed file is read under its district's standard (:func:`feed_files`, from the dataset's
``feed_dictionary``): ids are parsed from their scheme, timestamps from their format and time zone
into naive local standard time, values converted to canonical units (:func:`parse_frame`). Both
engines parse with these Polars kernels; only reading differs (:func:`parse_polars` reads a file
with Polars, :func:`read_parse_arrow` with pyarrow for a Dask task). Feed-level problems (missing
column, unknown unit or time format, unparseable timestamps) become findings. The feeds are written
by :mod:`uda.synth.feeds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uda.contract import FEED_TABLES, LOCAL_UTC_OFFSET_S, SPECS, UNITS
from uda.errors import UserError
from uda.store import Dataset

#: Polars ``str.to_datetime`` format of each text timestamp standard.
_PARSE_FORMATS = {"iso_offset": "%Y-%m-%dT%H:%M:%S%z", "iso_offset_ms": "%Y-%m-%dT%H:%M:%S%.3f%z",
                  "iso_utc": "%Y-%m-%dT%H:%M:%SZ", "dmy_local": "%d/%m/%Y %H:%M"}
_UTC_FORMATS = ("iso_offset", "iso_offset_ms", "iso_utc", "epoch_s", "epoch_ms")


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
    for table in FEED_TABLES:
        if not ds.has(table):
            continue
        s = canonical_standard(table)
        for path, f in zip(ds.files(table), ds.table(table)["files"], strict=True):
            out.append(FeedFile(path=path, rel=f["path"], table=table, district=None, group=Path(f["path"]).stem,
                                received=False, rows=int(f["rows"]), **s))
    return out


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
