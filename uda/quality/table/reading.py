"""Reading a profiled table: open a CSV or Parquet file (a folder, a glob, an fsspec URL) lazily, find
the column types and the time column, and stream typed batches with their parsed times.

CSV columns are read as text and typed here (:func:`infer_types`), so cells that do not parse can
be counted; Parquet columns keep their native types. :func:`plan_scan` checks the columns named by
the schema and options against the table; :func:`batches` yields what
:meth:`uda.quality.table.profile.TableProfiler.add` takes.
"""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from uda.errors import UserError
from uda.io.wide import csv_dialect
from uda.quality.table.funnel import Needs
from uda.quality.table.schema import DURATION_US, Schema, check_columns

#: Cells read as missing in CSV files (pandas' ``read_csv`` defaults, so counts compare).
MISSING_TOKENS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                  "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


BATCH_ROWS = 1 << 20


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                 "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S",
                 "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y", "%Y/%m/%d %H:%M:%S",
                 "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")


#: Classes of text cells (:func:`classify_cells`).
CELL_CLASSES = ("integer", "number", "date", "boolean", "text")


_RE_INT = r"^\s*[+-]?\d+\s*$"
_RE_NUM = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_RE_DATE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
_RE_BOOL = r"^(?i)\s*(true|false)\s*$"


@dataclass
class Source:
    """A table to scan: a lazy frame of raw columns and how it was found."""

    path: str
    kind: str
    frame: pl.LazyFrame
    rows_hint: int | None
    staged: Path | None = None

    def close(self) -> None:
        """Remove a staged local copy of a remote table."""
        if self.staged is not None:
            self.staged.unlink(missing_ok=True)
            self.staged = None


def _kind(path: str) -> str:
    low = path.lower().rstrip("/")
    for ext, kind in ((".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"), (".csv.gz", "csv"),
                      (".tsv", "csv"), (".txt", "csv")):
        if low.endswith(ext):
            return kind
    msg = f"cannot read {path!r}: unknown format; give a .csv or .parquet file (or a folder/glob of them)"
    raise UserError(msg)


def open_table(path: str) -> Source:
    """Open a CSV or Parquet table (a file, a folder or glob of files, or an fsspec URL) lazily.

    A remote file is first copied to a local temporary file in 8 MB pieces (memory stays bounded).
    CSV columns are read as text and typed by :func:`infer_types`, so unparseable cells can be counted.
    """
    staged = None
    local = path
    if "://" in path and not path.startswith("file://"):
        import fsspec

        kind = _kind(path)
        try:
            with fsspec.open(path, "rb") as src, tempfile.NamedTemporaryFile(
                    suffix=".parquet" if kind == "parquet" else ".csv", delete=False) as dst:
                staged = Path(dst.name)
                while chunk := src.read(8 << 20):
                    dst.write(chunk)
        except (OSError, ValueError, ImportError) as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)
            msg = f"cannot read {path!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            raise UserError(msg) from None
        local = str(staged)
    else:
        local = path.removeprefix("file://")
        p = Path(local)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_")))
            kinds = {f.suffix.lower() for f in files}
            if not files or len(kinds) != 1:
                msg = f"cannot read folder {path!r}: it must hold files of one format (.csv or .parquet), found {sorted(kinds)}"
                raise UserError(msg)
            local = str(p / f"*{files[0].suffix}")
        elif not any(ch in local for ch in "*?[") and not p.exists():
            msg = f"cannot read {path!r}: no such file"
            raise UserError(msg)
    kind = _kind(local)
    try:
        if kind == "parquet":
            lf = pl.scan_parquet(local)
            rows = lf.select(pl.len()).collect().item()
        else:
            first = sorted(glob.glob(local))[:1] if any(ch in local for ch in "*?[") else [local]
            sep, decimal_comma = csv_dialect(Path(first[0])) if first else (",", False)
            lf = pl.scan_csv(local, infer_schema=False, null_values=list(MISSING_TOKENS), separator=sep)
            if decimal_comma:  # "7,25" -> "7.25" in every cell that is such a number
                lf = lf.with_columns(pl.all().str.replace(r"^(\s*-?\d+),(\d+\s*)$", "${1}.${2}"))
            rows = None
        lf.collect_schema()
        lf.head(1).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        if staged is not None:
            staged.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot read {path!r} as {kind}: {first}"
        raise UserError(msg) from None
    return Source(path, kind, lf, rows, staged)


def classify_cells(s: pl.Series) -> dict[str, int]:
    """Non-null text cells per class (integer, number, date, boolean, text)."""
    s = s.drop_nulls()
    is_int = s.str.contains(_RE_INT)
    is_num = s.str.contains(_RE_NUM) & ~is_int
    is_date = s.str.contains(_RE_DATE) & ~is_int & ~is_num
    is_bool = s.str.contains(_RE_BOOL)
    counts = {"integer": int(is_int.sum()), "number": int(is_num.sum()), "date": int(is_date.sum()),
              "boolean": int(is_bool.sum())}
    counts["text"] = s.len() - sum(counts.values())
    return counts


def infer_types(sample: pl.DataFrame, *, share: float = 0.9) -> dict[str, str]:
    """Column types of a sample of text columns: the class of at least ``share`` of the non-null cells
    (integer, number, date or boolean; integers with some numbers are ``float``), else ``str``. Cells of
    another class then count as unparseable."""
    out = {}
    for name in sample.columns:
        c = classify_cells(sample[name])
        total = sum(c.values())
        if total == 0:
            out[name] = "str"
        elif c["integer"] + c["number"] >= share * total:
            out[name] = "float" if c["number"] else "int"
        elif c["date"] >= share * total:
            out[name] = "datetime"
        elif c["boolean"] >= share * total:
            out[name] = "bool"
        else:
            out[name] = "str"
    return out


def _native_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_temporal():
        return "datetime"
    return "str"


def _pick_time_format(s: pl.Series) -> str | None:
    """The format of :data:`_TIME_FORMATS` parsing most of the non-null cells of ``s`` (None if none does)."""
    s = s.drop_nulls().head(2000)
    best, best_n = None, 0
    for fmt in _TIME_FORMATS:
        n = s.str.strip_chars().str.to_datetime(fmt, strict=False).is_not_null().sum()
        if n > best_n:
            best, best_n = fmt, n
    return best


def parse_time(s: pl.Series, fmt: str | None, unit: str | None) -> pl.Series:
    """The time column as ``Datetime("us")`` (naive; time-zone-aware times in UTC), null where it does not parse."""
    dt = s.dtype
    if isinstance(dt, pl.Datetime):
        if dt.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(pl.Datetime("us"))
    if dt == pl.Date:
        return s.cast(pl.Datetime("us"))
    if dt.is_numeric():
        mult = DURATION_US[unit or "s"]
        return (s.cast(pl.Float64) * mult).round(0).cast(pl.Int64, strict=False).cast(pl.Datetime("us"))
    out = s.str.strip_chars().str.to_datetime(fmt, strict=False, time_unit="us")
    if out.dtype.time_zone is not None:
        out = out.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return out


def _epoch_unit(s: pl.Series) -> str:
    """Unit of epoch numbers from their magnitude (s, ms or µs)."""
    m = s.cast(pl.Float64).abs().median()
    if m is None or m < 1e11:
        return "s"
    return "ms" if m < 1e14 else "us"


def _cast_expr(name: str, typ: str) -> pl.Expr:
    c = pl.col(name).str.strip_chars()
    if typ == "int":
        return c.cast(pl.Int64, strict=False)
    if typ == "float":
        return c.cast(pl.Float64, strict=False)
    if typ == "bool":
        return c.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None,
                                                   return_dtype=pl.Boolean)
    if typ == "datetime":
        return c.str.to_datetime(strict=False, time_unit="us")
    return pl.col(name)


@dataclass
class Plan:
    """What the scan reads: the source, its columns and their types, the schema completed from the
    table (time column and format), whether it is CSV, and the casts of its text columns."""

    source: Source
    names: list[str]
    types: dict[str, str]
    schema: Schema
    csv: bool
    casts: list[pl.Expr]


def plan_scan(source: Source, schema: Schema, *, time_col: str | None, key: list[str] | None,
          group_col: str | None, needs: Needs | None) -> Plan:
    """Column types, the time column and its format, checked against the table."""
    names = list(source.frame.collect_schema().names())
    native = source.frame.collect_schema()
    csv = source.kind == "csv"
    if schema.declared:
        check_columns(names, "the schema", list(schema.columns) + [c for c in (schema.time_col, schema.group_col)
                                                                   if c] + schema.key)
    schema.time_col = time_col or schema.time_col
    schema.group_col = group_col or schema.group_col
    schema.key = key or schema.key
    check_columns(names, "--time-col", [schema.time_col] if schema.time_col else [])
    check_columns(names, "--group-col", [schema.group_col] if schema.group_col else [])
    check_columns(names, "--key", schema.key)
    if needs is not None:
        check_columns(names, "the needs spec", needs.columns + needs.key + list(needs.ranges))
    sample = source.frame.head(10_000).collect()
    if csv:
        types = infer_types(sample)
    else:
        types = {n: _native_type(native[n]) for n in names}
    for n, spec in schema.columns.items():
        if csv and spec.type:
            types[n] = spec.type
    if schema.time_col is None:
        cands = [n for n in names if types[n] == "datetime"]
        if len(cands) != 1:
            cands = [n for n in names if n.lower() in ("time", "timestamp", "datetime", "date", "ts", "date_time")]
        schema.time_col = cands[0] if len(cands) == 1 else None
    if schema.time_col is not None:
        tc = schema.time_col
        col = sample[tc]
        if col.dtype == pl.String and types[tc] in ("int", "float"):
            col = col.cast(pl.Float64, strict=False)
        if col.dtype == pl.String:
            schema.time_format = schema.time_format or _pick_time_format(col)
            if schema.time_format is None and col.drop_nulls().len():
                msg = (f"time column {tc!r} does not parse as a date/time (first value "
                       f"{col.drop_nulls()[0]!r}); give time_format in the schema or another --time-col")
                raise UserError(msg)
        elif col.dtype.is_numeric():
            schema.time_unit = schema.time_unit or _epoch_unit(col.drop_nulls())
        elif not col.dtype.is_temporal():
            msg = f"time column {tc!r} has type {col.dtype} and cannot be read as a date/time"
            raise UserError(msg)
        parsed = parse_time(col, schema.time_format, schema.time_unit)
        if col.drop_nulls().len() and parsed.drop_nulls().len() == 0:
            msg = f"time column {tc!r} does not parse as a date/time (first value {col.drop_nulls()[0]!r})"
            raise UserError(msg)
        types[tc] = "datetime"
    casts = []
    if csv:
        casts = [_cast_expr(n, types[n]) for n in names if n != schema.time_col and types[n] != "str"]
    return Plan(source, names, types, schema, csv, casts)


def _engine_batches(frame: pl.LazyFrame, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Batches of at most ``batch_rows`` rows: the streaming engine's own (sliced when larger; small
    ones, as CSV gives, put together), not re-cut to an exact size (that costs a copy of each)."""
    buf: list[pl.DataFrame] = []
    size = 0
    for raw in frame.collect_batches():
        for off in range(0, raw.height, batch_rows):
            part = raw.slice(off, batch_rows) if raw.height > batch_rows else raw
            if size + part.height > batch_rows and buf:
                yield pl.concat(buf) if len(buf) > 1 else buf[0]
                buf, size = [], 0
            buf.append(part)
            size += part.height
            if size >= batch_rows // 2:
                yield pl.concat(buf) if len(buf) > 1 else buf[0]
                buf, size = [], 0
    if buf:
        yield pl.concat(buf) if len(buf) > 1 else buf[0]


def batches(plan: Plan, batch_rows: int) -> Iterator[tuple[pl.DataFrame, dict[str, np.ndarray | None],
                                                                np.ndarray | None, np.ndarray | None, int]]:
    """Typed batches, raw-null masks (CSV), parsed times (in units of the last item, µs) and where they
    parsed. A naive ``Datetime`` in ms or µs is passed as is (the kernels scale it): the typed batch keeps
    that column, which orders and compares rows the same as its µs value."""
    tc = plan.schema.time_col
    flags: dict[bool, np.ndarray] = {}

    def constant(value: bool, n: int) -> np.ndarray:
        """``n`` times ``value``, read-only, the same memory for every batch (not faulted in again)."""
        a = flags.get(value)
        if a is None or a.size < n:
            a = flags[value] = np.full(max(n, batch_rows), value)
            a.flags.writeable = False
        return a[:n]

    for raw in _engine_batches(plan.source.frame, batch_rows):
        typed = raw.with_columns(plan.casts) if plan.casts else raw
        raw_null: dict[str, np.ndarray | None] = {n: (raw[n].is_null().to_numpy() if plan.csv else None)
                                                  for n in plan.names}
        t_us = t_ok = None
        mult = 1
        if tc is not None:
            traw = raw[tc]
            if traw.dtype == pl.String and plan.types.get(tc) == "datetime" and plan.schema.time_unit:
                traw = traw.cast(pl.Float64, strict=False)
            if isinstance(traw.dtype, pl.Datetime) and traw.dtype.time_zone is None and traw.dtype.time_unit in (
                    "ms", "us"):
                parsed, mult = traw, 1000 if traw.dtype.time_unit == "ms" else 1
            else:
                parsed = parse_time(traw, plan.schema.time_format, plan.schema.time_unit)
                typed = typed.with_columns(parsed.alias(tc))
            if parsed.null_count():
                t_ok = parsed.is_not_null().to_numpy()
                t_us = parsed.to_physical().fill_null(0).to_numpy()
            else:  # the usual case: no conversion of masks
                t_ok = constant(True, raw.height)
                t_us = parsed.to_physical().to_numpy()
            raw_null[tc] = traw.is_null().to_numpy() if traw.null_count() else constant(False, raw.height)
        yield typed, raw_null, t_us, t_ok, mult
