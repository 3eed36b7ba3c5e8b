"""Profile any table (CSV or Parquet, local or an fsspec URL) in one streaming scan.

``uda run quality --table FILE`` reads the table in batches (Polars streaming) and passes each
batch once through the Numba kernels of :mod:`uda.kernels.quality` and the sketches of
:mod:`uda.kernels.sketches`: the timeline and each numeric column on worker threads, while the main
thread reads and codes the next batch. Memory holds two batches, per-group counters, the sketches
and the exact-duplicate structures described below, not the table. Measures, per column and per group:

* completeness: nulls (null, NaN, and for CSV the pandas missing tokens), sentinels (declared,
  or detected among :data:`SENTINEL_CANDIDATES`: a negative candidate in a column whose other
  values are all >= 0, a positive one above twice every other value), longest run of nulls;
* validity: values outside the declared range (schema, or uda's contract when the column maps
  to a known parameter), values not in the allowed set, cells that do not parse as the column's
  type (CSV), and for text columns the mix of cell classes (integer, number, date, boolean, text);
* uniqueness: rows repeating an earlier row exactly, rows repeating an earlier value of the key;
* timeliness of the time column per group: step (the most frequent positive difference between
  consecutive times), gaps (differences of at least 1.5 steps), the longest gap, missing steps,
  irregular steps (not a multiple of the step), duplicated and out-of-order times;
* stuck runs (``stuck_min`` identical consecutive values, zeros exempt by default), robust
  outliers (beyond 3 inter-quartile ranges from the quartiles), distinct values (HyperLogLog) and
  quantiles (log-bucket sketch), with their error bounds.

Exactness. Counts are exact. Time duplicates and exact duplicate rows come from the timeline in
file order when every group's times are non-decreasing (the usual delivery; only the rows at a
repeated time and each group's first row at its last time are hashed); otherwise the
timeline is re-read sorted by (group, time) by Polars' streaming engine (one more read of two
columns). A key other than (group, time) and tables without a time column use an exact hash
set of 64-bit row hashes (8 bytes per distinct key); a hash collision, probability below
n^2 / 2^65, could only under-count.
"""

from __future__ import annotations

import gc
import glob
import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from uda.errors import UserError
from uda.io.wide import csv_dialect
from uda.kernels import quality as qk
from uda.kernels.sketches import (
    HLL_P,
    QS_ALPHA,
    hll_error,
    hll_estimate,
    qs_new,
    qs_quantile,
    qs_representatives,
)

#: Cells read as missing in CSV files (pandas' ``read_csv`` defaults, so counts compare).
MISSING_TOKENS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                  "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
#: Values tried as sentinels in numeric columns when none are declared.
SENTINEL_CANDIDATES = (-1.0, -9.0, -99.0, -999.0, -9999.0, -99999.0, 999.0, 9999.0, 99999.0, 999999.0)
#: Tokens tried as sentinels in text columns.
TEXT_SENTINELS = ("-", "--", "?", "missing", "unknown", "MISSING", "UNKNOWN")
TYPES = ("int", "float", "str", "bool", "datetime")
BATCH_ROWS = 1 << 20
STUCK_MIN = 6
OUTLIER_IQR = 3.0
_QUANTILES = (0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999)
_US = {"us": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000, "min": 60_000_000, "h": 3_600_000_000,
       "d": 86_400_000_000}
_HOUR_US = 3_600_000_000
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                 "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S",
                 "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y", "%Y/%m/%d %H:%M:%S",
                 "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
_CLASSES = ("integer", "number", "date", "boolean", "text")
_RE_INT = r"^\s*[+-]?\d+\s*$"
_RE_NUM = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_RE_DATE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
_RE_BOOL = r"^(?i)\s*(true|false)\s*$"


# ----------------------------------------------------------------------------- schema


@dataclass
class ColumnSpec:
    """What a column should hold. ``min``/``max`` are inclusive; ``range_from`` says where they came from."""

    type: str = "float"
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    sentinels: list[Any] = field(default_factory=list)
    nullable: bool = True
    unit: str | None = None
    parameter: str | None = None
    range_from: str = "schema"


@dataclass
class Schema:
    """A declared or inferred table schema (see :func:`load_schema` for the TOML layout)."""

    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    time_col: str | None = None
    time_format: str | None = None
    time_unit: str | None = None
    step_us: int | None = None
    group_col: str | None = None
    key: list[str] = field(default_factory=list)
    stuck_min: int = STUCK_MIN
    stuck_ignore_zero: bool = True
    detect_sentinels: bool = True
    declared: bool = False


def parse_duration(text: str | int | float, *, what: str = "step") -> int:
    """Microseconds of ``"15m"``, ``"1h"``, ``"30s"``, ``"1d"``, ``"500ms"`` (a bare number is seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        us = int(round(float(text) * 1_000_000))
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|m|h|d)?\s*", str(text))
        if m is None:
            msg = f"{what} {text!r} is not a duration; write e.g. '15m', '1h', '30s' or '1d'"
            raise UserError(msg)
        us = int(round(float(m.group(1)) * _US[m.group(2) or "s"]))
    if us <= 0:
        msg = f"{what} {text!r} must be positive"
        raise UserError(msg)
    return us


def human_duration(us: int | float | None) -> str | None:
    """``"2d 3h 30m"``-style text of a duration in µs (for people; :func:`format_duration` for schemas)."""
    if us is None:
        return None
    us = int(us)
    parts = []
    for unit in ("d", "h", "m", "s"):
        k, us = divmod(us, _US[unit])
        if k:
            parts.append(f"{k}{unit}")
    if us:
        parts.append(f"{us / 1000:g}ms")
    return " ".join(parts) or "0s"


def format_duration(us: int | None) -> str | None:
    """``"15m"``-style text of a duration in µs (the largest unit dividing it)."""
    if us is None:
        return None
    for unit in ("d", "h", "m", "s", "ms"):
        if us % _US[unit] == 0:
            return f"{us // _US[unit]}{unit}"
    return f"{us}us"


def _read_toml(p: Path, what: str) -> dict[str, Any]:
    """The TOML document in ``p`` (a ``what`` file: schema or needs); one-line errors."""
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        msg = f"{what} file {str(p)!r} does not exist"
        raise UserError(msg) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"{what} {str(p)!r} is not valid TOML: {exc}"
        raise UserError(msg) from None


def load_schema(path: str | os.PathLike) -> Schema:
    """Read a schema TOML file (``tomllib``; nothing is evaluated).

    Layout::

        [table]
        time_col = "datetime"      # optional: time_format = "%Y-%m-%d %H:%M", time_unit = "s" for epochs
        step = "15m"               # expected step; inferred when absent
        group_col = "siteID"
        key = ["siteID", "datetime"]
        stuck_min = 6              # stuck_ignore_zero = true, detect_sentinels = true

        [columns.nitrate]
        type = "float"             # int | float | str | bool | datetime
        min = 0.0
        max = 100.0
        sentinels = [-1]
        allowed = [1, 2, 3]        # instead of a range
        nullable = true
        unit = "umol/L"
        parameter = "nitrate_mgl"  # a parameter of uda's contract: its range applies if none is given
    """
    p = Path(path)
    doc = _read_toml(p, "schema")
    unknown = set(doc) - {"table", "columns"}
    if unknown:
        msg = f"schema {str(p)!r}: unknown sections {sorted(unknown)}; use [table] and [columns.NAME]"
        raise UserError(msg)
    t = doc.get("table", {})
    allowed_t = {"time_col", "time_format", "time_unit", "step", "group_col", "key", "stuck_min",
                 "stuck_ignore_zero", "detect_sentinels"}
    if set(t) - allowed_t:
        msg = f"schema {str(p)!r}: unknown [table] keys {sorted(set(t) - allowed_t)}"
        raise UserError(msg)
    key = t.get("key", [])
    s = Schema(time_col=t.get("time_col"), time_format=t.get("time_format"), time_unit=t.get("time_unit"),
               step_us=parse_duration(t["step"]) if "step" in t else None, group_col=t.get("group_col"),
               key=[key] if isinstance(key, str) else list(key), stuck_min=int(t.get("stuck_min", STUCK_MIN)),
               stuck_ignore_zero=bool(t.get("stuck_ignore_zero", True)),
               detect_sentinels=bool(t.get("detect_sentinels", True)), declared=True)
    if s.stuck_min < 2:
        msg = f"schema {str(p)!r}: stuck_min must be at least 2, got {s.stuck_min}"
        raise UserError(msg)
    fields = {"type", "min", "max", "allowed", "sentinels", "nullable", "unit", "parameter"}
    for name, c in doc.get("columns", {}).items():
        if not isinstance(c, dict) or set(c) - fields:
            msg = f"schema {str(p)!r}: column {name!r} has unknown keys {sorted(set(c) - fields)}"
            raise UserError(msg)
        typ = c.get("type", "float")
        if typ not in TYPES:
            msg = f"schema {str(p)!r}: column {name!r} has type {typ!r}; use one of {', '.join(TYPES)}"
            raise UserError(msg)
        if c.get("parameter") is not None and c["parameter"] not in _contract():
            msg = f"schema {str(p)!r}: column {name!r} names unknown parameter {c['parameter']!r}"
            raise UserError(msg)
        s.columns[name] = ColumnSpec(type=typ, min=c.get("min"), max=c.get("max"), allowed=c.get("allowed"),
                                     sentinels=list(c.get("sentinels", [])), nullable=bool(c.get("nullable", True)),
                                     unit=c.get("unit"), parameter=c.get("parameter"))
    return s


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") if not math.isnan(v) else "nan"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def schema_toml(s: Schema, *, comment: str = "") -> str:
    """The TOML text of ``s`` (read back by :func:`load_schema`)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append("[table]")
    for k, v in (("time_col", s.time_col), ("time_format", s.time_format), ("time_unit", s.time_unit),
                 ("step", format_duration(s.step_us)), ("group_col", s.group_col), ("key", s.key or None),
                 ("stuck_min", s.stuck_min), ("stuck_ignore_zero", s.stuck_ignore_zero),
                 ("detect_sentinels", s.detect_sentinels)):
        if v is not None:
            lines.append(f"{k} = {_toml_value(v)}")
    for name, c in s.columns.items():
        lines += ["", f"[columns.{json.dumps(name, ensure_ascii=False)}]", f"type = {_toml_value(c.type)}"]
        for k in ("min", "max", "allowed", "unit", "parameter"):
            v = getattr(c, k)
            if v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
        if c.sentinels:
            lines.append(f"sentinels = {_toml_value(c.sentinels)}")
        lines.append(f"nullable = {_toml_value(c.nullable)}")
    return "\n".join(lines) + "\n"


def _contract() -> dict[str, tuple[float, float, str]]:
    """uda's parameter contract: canonical name -> (min, max, table)."""
    from uda.contract import SPECS

    return {v: (*SPECS[t].ranges[v], t) for t in ("traffic", "water") for v in SPECS[t].values}


def _norm(name: str) -> str:
    s = re.sub(r"[\(\[].*?[\)\]]", "", name.lower()).strip()
    return re.sub(r"[^0-9a-z]+", "_", s).strip("_")


def contract_parameter(column: str) -> str | None:
    """The contract parameter a column name maps to (canonical names and the water aliases), or None."""
    from uda.io.table import ALIASES

    n = _norm(column)
    if n in _contract():
        return n
    for p, names in ALIASES.items():
        if p in _contract() and n in {_norm(a) for a in names}:
            return p
    return None


# ----------------------------------------------------------------------------- reading


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


def _classify(s: pl.Series) -> dict[str, int]:
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
        c = _classify(sample[name])
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


# ----------------------------------------------------------------------------- state


class _Grow:
    """Per-group arrays that grow with the number of groups seen."""

    def __init__(self) -> None:
        self.arrays: dict[str, tuple[np.ndarray, Any]] = {}
        self.size = 0

    def add(self, name: str, dtype: Any, fill: Any = 0, width: int | None = None) -> np.ndarray:
        shape = (max(self.size, 1),) if width is None else (max(self.size, 1), width)
        a = np.full(shape, fill, dtype)
        self.arrays[name] = (a, fill)
        return a

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name][0]

    def ensure(self, n: int) -> None:
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
            qk.hset_add(self.table, self.used, old, np.empty(old.size, bool))
            self.n = old.size

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Insert ``keys``; return whether each was already present."""
        keys = np.ascontiguousarray(keys, np.uint64)
        self._reserve(keys.size)
        seen = np.empty(keys.size, bool)
        self.n += qk.hset_add(self.table, self.used, keys, seen)
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
                self.n = qk.hmap_add(self.table, self.used, self.counts, items.view(np.uint64),
                                     np.ones(items.size, bool), counts)
        self.n += qk.hmap_add(self.table, self.used, self.counts, np.ascontiguousarray(keys).view(np.uint64),
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
        qk.code_block(keys, np.zeros(0, bool), self.table, self.used, self.codes, 0, 0, out, new)
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
            n_new, start = qk.code_block(vals, valid, self.table, self.used, self.codes, first + len(fresh),
                                         start, out, new_vals)
            fresh += new_vals[:n_new].tolist()
            self.n += n_new
            if start >= vals.size:
                return out, fresh
            self._grow()


def _hll_new() -> np.ndarray:
    return np.zeros(1 << HLL_P, np.uint8)


class _NumState:
    """State of a numeric column (per group and whole-table sketches)."""

    def __init__(self, groups: _Grow, name: str, cands: np.ndarray) -> None:
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
        self.registers = _hll_new()

    def arr(self, k: str) -> np.ndarray:
        return self.g[f"{self.name}\x00{k}"]


class _TextState:
    """State of a text, boolean or date column."""

    def __init__(self, groups: _Grow, name: str, tokens: list[str]) -> None:
        self.name = name
        self.tokens = tokens
        for k in ("nulls", "unparseable", "not_allowed"):
            groups.add(f"{name}\x00{k}", np.int64)
        groups.add(f"{name}\x00tok", np.int64, 0, width=max(1, len(tokens)))
        self.g = groups
        self.classes = dict.fromkeys(_CLASSES, 0)
        self.registers = _hll_new()

    def arr(self, k: str) -> np.ndarray:
        return self.g[f"{self.name}\x00{k}"]


# ----------------------------------------------------------------------------- the scan


@dataclass
class Needs:
    """What an analytic needs of a table (``--needs SPEC.toml``): columns, ranges, a regular step, a unique key."""

    columns: list[str]
    ranges: dict[str, tuple[float, float]]
    step_us: int | None
    key: list[str]


def load_needs(path: str | os.PathLike) -> Needs:
    """Read a needs spec::

        columns = ["nitrate", "temperature"]
        step = "15m"                      # rows must sit on this grid (time column required)
        key = ["siteID", "datetime"]      # the first row of each key is usable
        [ranges]
        nitrate = [0, 100]
    """
    p = Path(path)
    doc = _read_toml(p, "needs")
    if set(doc) - {"columns", "ranges", "step", "key"}:
        msg = f"needs {str(p)!r}: unknown keys {sorted(set(doc) - {'columns', 'ranges', 'step', 'key'})}"
        raise UserError(msg)
    ranges = {}
    for c, r in doc.get("ranges", {}).items():
        if not (isinstance(r, list) and len(r) == 2):
            msg = f"needs {str(p)!r}: range of {c!r} must be [min, max], got {r!r}"
            raise UserError(msg)
        ranges[c] = (float(r[0]), float(r[1]))
    key = doc.get("key", [])
    return Needs(columns=list(doc.get("columns", [])), ranges=ranges,
                 step_us=parse_duration(doc["step"]) if "step" in doc else None,
                 key=[key] if isinstance(key, str) else list(key))


def _check_columns(names: list[str], where: str, wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        msg = f"{where} names column(s) {missing} not in the table; its columns are {names[:20]}"
        raise UserError(msg)


class TableProfiler:
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
        self.G = _Grow()
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
        self.num: dict[str, _NumState] = {}
        self.text: dict[str, _TextState] = {}
        self.ranges: dict[str, tuple[float, float, str]] = {}
        self.col_index = {n: i for i, n in enumerate(names)}
        for name in names:
            spec = schema.columns.get(name)
            if types[name] in ("int", "float") and name != self.group_col:
                declared = [float(x) for x in (spec.sentinels if spec else [])]
                cands = declared + ([c for c in SENTINEL_CANDIDATES if c not in declared]
                                    if schema.detect_sentinels else [])
                self.num[name] = _NumState(self.G, name, np.array(cands, np.float64))
                self.ranges[name] = self._range(name, spec)
            else:
                toks = [str(x) for x in (spec.sentinels if spec else [])]
                toks += [t for t in TEXT_SENTINELS if t not in toks] if (schema.detect_sentinels and
                                                                        types[name] == "str") else []
                self.text[name] = _TextState(self.G, name, toks)
        self.funnel = np.zeros(4, np.int64)
        self.usable_set = HashSet() if needs and needs.key else None
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
            lo, hi, table = _contract()[param]
            return lo, hi, f"contract {table}.{param}"
        return -np.inf, np.inf, "none"

    # -------------------------------------------------------------------- one batch

    def _groups(self, df: pl.DataFrame) -> np.ndarray:
        if self.group_col is None:
            self.group_codes.setdefault(None, 0)
            return np.zeros(df.height, np.int64)
        s = df[self.group_col]
        if s.dtype.is_integer() and s.dtype != pl.UInt64:  # codes in Numba, in order of first appearance
            return self._int_groups(s)
        for v in s.unique().to_list():
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
                qk.hll_keys(st.registers, pl.Series(fresh, dtype=s.dtype).hash(seed=3).to_numpy().view(np.int64))
        return codes

    def add(self, typed: pl.DataFrame, raw_null: dict[str, np.ndarray | None], t_us: np.ndarray | None,
            t_ok: np.ndarray | None, *, t_mult: int = 1) -> None:
        """Add one batch: ``typed`` columns (cast to their types), where each raw cell was null (CSV; None
        for Parquet), the parsed time (in units of ``t_mult`` µs) and where it parsed."""
        n = typed.height
        self._slot ^= 1  # work arrays of the previous batch stay untouched until it is drained
        g = self._groups(typed)
        self._drain()  # the previous batch's column kernels ran while this batch was read and coded
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
            hour0 = (self.first_t or 0) // _HOUR_US
            first_idx = np.full(G.size, -1, np.int64)
            step_keys, step_counts = self._buf("step_keys", n, np.int64), self._buf("step_counts", n, np.int64)
            bin_keys, bin_counts = self._buf("bin_keys", n, np.int64), self._buf("bin_counts", n, np.int64)
            pair_first, pair_row = self._buf("pair_first", n, np.int64), self._buf("pair_row", n, np.int64)
            pair_hash, pair_base = self._buf("pair_hash", n, np.uint64), self._buf("pair_base", n, np.uint64)
            # the timeline kernel runs on a worker too, beside the column kernels; what it found is
            # added (steps, bins, duplicate rows, first-row hashes) when the batch is drained
            timeline = self._pool.submit(
                qk.timeline_runs, g, t_raw, t_mult, ok, G["rows"], tst.registers, G["last_t"], G["first_hash"],
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
                    qk.dup_pairs(pair_base[:n_pairs], hf, h_need[np.searchsorted(need, pr)], pairs)
                    seen = self.pair_set.add(pairs)
                    self.dup_rows_timed += int(seen[1::2].sum())
                self.G["first_hash"][touched] = h_need[np.searchsorted(need, first_idx[touched])]
            if not all_ok:
                bad_rows = np.flatnonzero(~ok)
                self.dup_rows_untimed += int(self.row_set.add(rowhash(bad_rows)).sum())

                def base_of():
                    hour = np.where(ok, micro() // _HOUR_US - hour0 + (1 << 22), -1)
                    hour = np.clip(hour, -1, (1 << 23) - 1)
                    return (g << 43) | (np.maximum(hour, 0) << 20)
            else:
                def base_of():
                    hour = np.clip(micro() // _HOUR_US - hour0 + (1 << 22), 0, (1 << 23) - 1)
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
                qk.hll_keys(st.registers, s.drop_nulls().hash(seed=3).to_numpy().view(np.int64))
            hitcode = None
            if isnull is not None:
                hitcode = np.zeros(n, np.int64)
                hitcode[isnull] = 1
            if s.dtype == pl.String:
                for cl, k in _classify(s).items():
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
            self._drain()
            self._funnel(typed, g, None if t_us is None else micro(), t_ok)

    def _drain(self) -> None:
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
        the values as read by the kernel, what each row hit (see :func:`uda.kernels.quality.column_block`)
        and how many rows hit something."""
        st = self.num[s.name]
        if s.dtype in (pl.Float32, pl.Float64):  # the kernel reads float32 as is (widening is exact)
            v = s.fill_null(np.nan).to_numpy() if s.null_count() else s.to_numpy()
        else:
            v = s.cast(pl.Float64).fill_null(np.nan).to_numpy()
        lo, hi, _ = self.ranges[s.name]
        n_hit = qk.column_block(v, g, lo, hi, st.cands, self.schema.stuck_min, self.schema.stuck_ignore_zero,
                        st.arr("nulls"), st.arr("cand"), st.arr("invalid"), st.arr("stuck_rows"),
                        st.arr("stuck_runs"), st.arr("last_v"), st.arr("run_len"), st.arr("null_run"),
                        st.arr("null_run_max"), st.ext, st.qs, st.registers, hit)
        return v, hit, n_hit

    def _funnel(self, typed: pl.DataFrame, g: np.ndarray, t_us: np.ndarray | None, t_ok: np.ndarray | None) -> None:
        nd = self.needs
        n = typed.height
        valid = np.ones(n, bool)
        for c in nd.columns:
            s = typed[c]
            present = s.is_not_null().to_numpy()
            if c in self.num:
                v = s.cast(pl.Float64).fill_null(np.nan).to_numpy()
                present &= ~np.isnan(v) & ~np.isin(v, self._sentinels_now(c))
                lo, hi = nd.ranges.get(c, self.ranges[c][:2])
                with np.errstate(invalid="ignore"):
                    present &= (v >= lo) & (v <= hi)
            elif c == self.time_col:
                present &= t_ok
            valid &= present
        std = valid.copy()
        if nd.step_us is not None:
            std &= t_ok & (t_us % nd.step_us == 0)
        usable = std.copy()
        if self.usable_set is not None and usable.any():
            kh = typed.select(nd.key).hash_rows(seed=13).to_numpy()
            idx = np.flatnonzero(usable)
            usable[idx[self.usable_set.add(kh[idx])]] = False
        self.funnel += [n, int(valid.sum()), int(std.sum()), int(usable.sum())]

    def _sentinels_now(self, name: str) -> np.ndarray:
        """Sentinels of a column for the funnel: declared ones, or candidates detected so far."""
        st = self.num[name]
        return np.array(self._detected(st), np.float64)

    def _detected(self, st: _NumState) -> list[float]:
        spec = self.schema.columns.get(st.name)
        declared = [float(x) for x in (spec.sentinels if spec else [])]
        out = list(declared)
        if not self.schema.detect_sentinels:
            return out
        counts = st.arr("cand").sum(axis=0)
        lo, hi = st.ext
        for c, k in zip(st.cands, counts, strict=True):
            if c in declared or k == 0:
                continue
            if (c < 0 and lo >= 0) or (c > 0 and c > 2 * max(hi, 0.0)):
                out.append(float(c))
        return out

    # -------------------------------------------------------------------- timeline re-read

    def resort_timeline(self, batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Recompute the timeline from batches of (group code, time µs, row hash) sorted by (group, time)."""
        self._drain()
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
            n_pairs = qk.timeline_block(g, t, ok, h, G["last_t"], G["first_hash"], G["n_ok"], G["t_min"],
                                        G["t_max"], G["out_of_order"], G["dups"], G["max_step"], step_keys, pairs)
            self.steps.add(step_keys, step_keys >= 0, np.ones(n, np.int64))
            if n_pairs:
                seen = self.pair_set.add(pairs[: 2 * n_pairs])
                self.dup_rows_timed += int(seen[1::2].sum())

    # -------------------------------------------------------------------- report

    def _group_names(self) -> list[str]:
        names = [""] * len(self.group_codes)
        for k, c in self.group_codes.items():
            names[c] = "(null)" if k is None else str(k)
        return names

    def _timeline(self, out_of_order_file: np.ndarray | None) -> tuple[dict, dict[str, dict]]:
        """Whole-table and per-group time measures."""
        n_g = len(self.group_codes)
        keys, counts = self.steps.items()
        gk = keys >> qk.STEP_BITS
        dk = keys & ((1 << (qk.STEP_BITS - 1)) - 1)
        dk = np.where(keys & (1 << (qk.STEP_BITS - 1)), dk * 1000, dk)
        per: dict[str, dict] = {}
        names = self._group_names()
        G = self.G
        declared = self.schema.step_us
        # per group at once: the step (declared, else the most frequent positive difference, the
        # smallest of equals), then per (group, difference) key whether it is a gap, its missing steps
        has = np.bincount(gk, minlength=n_g)[:n_g] > 0
        if declared is not None:
            step_g = np.full(n_g, declared, np.int64)
        else:
            step_g = np.zeros(n_g, np.int64)
            if keys.size:
                order = np.lexsort((dk, -counts, gk))
                gs = gk[order]
                firsts = order[np.r_[True, gs[1:] != gs[:-1]]]
                step_g[gk[firsts]] = dk[firsts]
        step_k = step_g[gk]
        gap = 2 * dk >= 3 * step_k
        gaps_g, missing_g, irregular_g = (np.zeros(n_g, np.int64) for _ in range(3))
        np.add.at(gaps_g, gk[gap], counts[gap])
        np.add.at(missing_g, gk[gap], counts[gap] * (np.floor(dk[gap] / step_k[gap] + 0.5).astype(np.int64) - 1))
        irr = dk % step_k != 0
        np.add.at(irregular_g, gk[irr], counts[irr])
        any_gap = np.bincount(gk[gap], minlength=n_g)[:n_g] > 0
        long_g = np.where(any_gap, G["max_step"][:n_g], 0)
        has_step = has if declared is None else np.ones(n_g, bool)
        cols = {k: v.tolist() for k, v in (
            ("rows", G["rows"][:n_g]), ("n_ok", G["n_ok"][:n_g]), ("t_null", G["t_null"][:n_g]),
            ("t_bad", G["t_bad"][:n_g]), ("t_min", G["t_min"][:n_g]), ("t_max", G["t_max"][:n_g]),
            ("step", step_g), ("has_step", has_step), ("gaps", gaps_g), ("missing", missing_g),
            ("irregular", irregular_g), ("long", long_g), ("dups", G["dups"][:n_g]),
            ("ooo", (out_of_order_file if out_of_order_file is not None else G["out_of_order"])[:n_g]))}
        iso: dict[int, str] = {}
        fmt: dict[int | None, str | None] = {}
        for gi in range(n_g):
            step = cols["step"][gi] if cols["has_step"][gi] else None
            n_ok = cols["n_ok"][gi]
            long_gap = cols["long"][gi]
            t0, t1 = cols["t_min"][gi], cols["t_max"][gi]
            if n_ok:
                iso[t0] = iso[t0] if t0 in iso else _iso(t0)
                iso[t1] = iso[t1] if t1 in iso else _iso(t1)
            fmt[step] = fmt[step] if step in fmt else format_duration(step)
            per[names[gi]] = {
                "rows": cols["rows"][gi], "parsed": n_ok, "nulls": cols["t_null"][gi],
                "unparseable": cols["t_bad"][gi],
                "first": iso[t0] if n_ok else None, "last": iso[t1] if n_ok else None,
                "step": fmt[step], "step_s": None if step is None else step / 1e6,
                "gaps": cols["gaps"][gi], "longest_gap": human_duration(long_gap) if long_gap else None,
                "longest_gap_s": long_gap / 1e6, "missing_steps": cols["missing"][gi],
                "irregular_steps": cols["irregular"][gi], "duplicates": cols["dups"][gi],
                "out_of_order": cols["ooo"][gi],
            }
        tot = {"gaps": int(gaps_g.sum()), "missing_steps": int(missing_g.sum()),
               "irregular_steps": int(irregular_g.sum())}
        longest = int(long_g.max(initial=0))
        steps = {v["step_s"] for v in per.values() if v["step_s"]}
        one = steps.pop() if len(steps) == 1 else None
        whole = {
            "column": self.time_col, "step": format_duration(round(one * 1e6)) if one else ("mixed" if steps else None),
            "step_s": one,
            "gaps": tot["gaps"], "longest_gap": human_duration(longest) if longest else None,
            "longest_gap_s": longest / 1e6, "missing_steps": tot["missing_steps"],
            "irregular_steps": tot["irregular_steps"],
            "duplicates": sum(v["duplicates"] for v in per.values()),
            "out_of_order": sum(v["out_of_order"] for v in per.values()),
            "nulls": sum(v["nulls"] for v in per.values()), "unparseable": sum(v["unparseable"] for v in per.values()),
            "first": min((v["first"] for v in per.values() if v["first"]), default=None),
            "last": max((v["last"] for v in per.values() if v["last"]), default=None),
            "resorted": bool(getattr(self, "resorted", False)),
        }
        return whole, per

    _FIELDS = ("nulls", "sentinels", "invalid", "unparseable", "stuck_rows")

    def _num_arrays(self, st: _NumState, sentinels: list[float]) -> dict[str, np.ndarray]:
        """Per-group counts of a numeric column (arrays over the groups)."""
        n_g = len(self.group_codes)
        cand = st.arr("cand")[:n_g]
        lo, hi, _ = self.ranges[st.name]
        is_sent = np.array([c in sentinels for c in st.cands], bool)
        out_rng = np.array([(c not in sentinels) and (c < lo or c > hi) for c in st.cands], bool)
        return {"nulls": st.arr("nulls")[:n_g], "sentinels": cand[:, is_sent].sum(axis=1),
                "invalid": st.arr("invalid")[:n_g] + cand[:, out_rng].sum(axis=1) + st.arr("not_allowed")[:n_g],
                "unparseable": st.arr("unparseable")[:n_g], "stuck_rows": st.arr("stuck_rows")[:n_g]}

    def _num_column(self, st: _NumState) -> dict[str, Any]:
        sentinels = self._detected(st)
        n_g = len(self.group_codes)
        arr = self._num_arrays(st, sentinels)
        cand = st.arr("cand")[:n_g].sum(axis=0)
        sv = {_num_text(c): int(k) for c, k in zip(st.cands, cand, strict=True) if c in sentinels and k}
        out = {k: int(v.sum()) for k, v in arr.items()}
        return {**out, "sentinel_values": sv, "stuck_runs": int(st.arr("stuck_runs")[:n_g].sum()),
                "longest_null_run": int(np.max(st.arr("null_run_max")[:n_g], initial=0))}

    def _text_arrays(self, st: _TextState) -> dict[str, np.ndarray]:
        n_g = len(self.group_codes)
        sent = np.array([self._is_text_sentinel(st, t) for t in st.tokens] or [False], bool)
        tok = st.arr("tok")[:n_g]
        return {"nulls": st.arr("nulls")[:n_g], "sentinels": tok[:, sent].sum(axis=1),
                "invalid": st.arr("not_allowed")[:n_g], "unparseable": st.arr("unparseable")[:n_g],
                "stuck_rows": np.zeros(n_g, np.int64)}

    def _text_column(self, st: _TextState) -> dict[str, Any]:
        n_g = len(self.group_codes)
        arr = self._text_arrays(st)
        tok = st.arr("tok")[:n_g].sum(axis=0)
        sv = {t: int(k) for t, k in zip(st.tokens, tok, strict=False) if k and self._is_text_sentinel(st, t)}
        return {**{k: int(v.sum()) for k, v in arr.items()}, "sentinel_values": sv, "stuck_runs": 0}

    def _is_text_sentinel(self, st: _TextState, tok: str) -> bool:
        spec = self.schema.columns.get(st.name)
        return tok in [str(x) for x in (spec.sentinels if spec else [])] or self._text_sentinel(st, tok)

    def _text_sentinel(self, st: _TextState, tok: str) -> bool:
        return self.schema.detect_sentinels and tok in TEXT_SENTINELS

    def _sketch(self, st: _NumState, sentinels: list[float]) -> dict[str, Any]:
        """Quantiles, outliers and distinct values of a numeric column from its sketches."""
        qs = st.qs.copy()
        lo, hi, _ = self.ranges[st.name]
        counts = st.arr("cand")[: len(self.group_codes)].sum(axis=0)
        tmp = qs_new()
        from uda.kernels.sketches import qs_add

        for c, k in zip(st.cands, counts, strict=True):
            if c not in sentinels and k:
                tmp[:] = 0
                qs_add(tmp, np.array([c]))
                qs += tmp * k
        n = int(qs.sum())
        out: dict[str, Any] = {"distinct_est": round(hll_estimate(st.registers), 1),
                               "distinct_rel_error": round(hll_error(st.registers), 4)}
        if n == 0:
            return {**out, "quantiles": None, "outliers": 0, "outliers_uncertain": 0}
        qv = qs_quantile(qs, np.array(_QUANTILES))
        out["quantiles"] = {f"p{q * 100:g}": float(x) for q, x in zip(_QUANTILES, qv, strict=True)}
        out["quantile_rel_error"] = QS_ALPHA
        q1, q3 = float(qv[2]), float(qv[4])
        iqr = q3 - q1
        f_lo, f_hi = q1 - OUTLIER_IQR * iqr, q3 + OUTLIER_IQR * iqr
        b_lo, b_hi, _ = qs_representatives()
        lows = np.concatenate([b_lo, -b_hi])
        highs = np.concatenate([b_hi, -b_lo])
        lo_e = np.minimum(lows, highs)
        hi_e = np.maximum(lows, highs)
        outside = (hi_e <= f_lo) | (lo_e > f_hi)
        straddle = ((lo_e < f_lo) & (f_lo < hi_e)) | ((lo_e <= f_hi) & (f_hi < hi_e))
        out["outliers"] = int(qs[outside].sum())
        out["outliers_uncertain"] = int(qs[straddle].sum())
        out["outlier_fences"] = [f_lo, f_hi]
        return out

    def report(self, *, out_of_order_file: np.ndarray | None = None) -> dict[str, Any]:
        """The profile as a JSON-ready dict (see docs/utilisation.md for the fields)."""
        self._drain()
        enabled = gc.isenabled()
        gc.disable()  # tens of thousands of small acyclic dicts: a full collection would cost more than building them
        try:
            return self._report(out_of_order_file)
        finally:
            if enabled:
                gc.enable()

    def _report(self, out_of_order_file: np.ndarray | None) -> dict[str, Any]:
        n_g = len(self.group_codes)
        cols: dict[str, Any] = {}
        for name in self.names:
            if name in self.num:
                st = self.num[name]
                c = self._num_column(st)
                c.update(self._sketch(st, self._detected(st)))
                lo, hi, src = self.ranges[name]
                c["range"] = None if src == "none" else [lo, hi]
                c["range_from"] = src
                c["min"] = None if not np.isfinite(st.ext[0]) else float(st.ext[0])
                c["max"] = None if not np.isfinite(st.ext[1]) else float(st.ext[1])
            else:
                st = self.text[name]
                c = self._text_column(st)
                c["distinct_est"] = round(hll_estimate(st.registers), 1)
                c["distinct_rel_error"] = round(hll_error(st.registers), 4)
                if self.types[name] == "str" and name != self.time_col:
                    c["classes"] = {k: v for k, v in st.classes.items() if v}
                    c["mixed_types"] = len(c["classes"]) > 1
            c["type"] = self.types[name]
            bad = c["nulls"] + c["sentinels"] + c["invalid"] + c["unparseable"]
            c["completeness"] = 1.0 - (c["nulls"] + c["sentinels"] + c["unparseable"]) / self.rows if self.rows else 1.0
            c["valid_share"] = 1.0 - bad / self.rows if self.rows else 1.0
            cols[name] = c
        out: dict[str, Any] = {"rows": self.rows, "columns": cols,
                               "duplicate_rows": self.dup_rows_timed + self.dup_rows_untimed}
        if self.schema.key:
            kd = self.key_dups + (self.timeline_dups() if self.key_by_time else 0)
            out["key"] = {"columns": self.schema.key, "duplicates": kd, "unique": kd == 0}
        if self.time_col is not None:
            whole, per = self._timeline(out_of_order_file)
            out["time"] = whole
        else:
            per = {}
        if self.group_col is not None:
            names = self._group_names()
            per_col = {}
            for name in self.names:
                arr = (self._num_arrays(self.num[name], self._detected(self.num[name])) if name in self.num
                       else self._text_arrays(self.text[name]))
                fields = self._FIELDS
                per_col[name] = [dict(zip(fields, v, strict=True))
                                 for v in zip(*[arr[k].tolist() for k in fields], strict=True)]  # one per group
            rows = self.G["rows"][:n_g].tolist()
            groups = {names[gi]: {"rows": rows[gi], "columns": {name: per_col[name][gi] for name in self.names},
                                  **({"time": per[names[gi]]} if per else {})} for gi in range(n_g)}
            out["groups"] = groups
            out["group_col"] = self.group_col
        if self.needs is not None:
            f = [int(x) for x in self.funnel]
            out["funnel"] = {"collected": f[0], "valid": f[1], "standardised": f[2], "usable": f[3],
                             "shares": {k: (v / f[0] if f[0] else 1.0) for k, v in
                                        zip(("collected", "valid", "standardised", "usable"), f, strict=True)}}
        out["sketches"] = {"distinct": f"HyperLogLog, 2^{HLL_P} registers, standard error {hll_error(_hll_new()):.2%}",
                           "quantiles": f"log-bucket sketch, relative error <= {QS_ALPHA:.2%}"}
        out["findings"] = self._findings(out)
        return out

    def timeline_dups(self) -> int:
        return int(self.G["dups"][: len(self.group_codes)].sum())

    def _findings(self, rep: dict[str, Any]) -> list[str]:
        f = []
        if "key" in rep and not rep["key"]["unique"]:
            f.append(f"key {rep['key']['columns']} is not unique: {rep['key']['duplicates']:,} rows repeat an earlier key")
        for name, c in rep["columns"].items():
            spec = self.schema.columns.get(name)
            if spec is not None and not spec.nullable and c["nulls"]:
                f.append(f"column {name!r} is declared not nullable but has {c['nulls']:,} nulls")
            if c.get("mixed_types"):
                f.append(f"column {name!r} mixes cell types {c['classes']}")
        return f

    def bin_table(self) -> pl.DataFrame:
        """Per (group, hour): rows and missing cells (nulls and sentinels), for the plot."""
        keys, counts = self.bins.items()
        ncol = len(self.names)
        g = keys >> 43
        hour = ((keys >> 20) & ((1 << 23) - 1)) - (1 << 22) + (self.first_t or 0) // _HOUR_US
        col = (keys >> 5) & ((1 << 15) - 1)
        hit = keys & 31
        keep = col == ncol
        missing = np.zeros(keys.size, bool)
        for j, name in enumerate(self.names):
            m = (col == j) & (hit == 1)
            if name in self.num:
                st = self.num[name]
                sent = set(self._detected(st))
                for ci, c in enumerate(st.cands):
                    if c in sent:
                        m |= (col == j) & (hit == 2 + ci)
            elif name in self.text:
                st = self.text[name]
                for ti, tok in enumerate(st.tokens):
                    if self._is_text_sentinel(st, tok):
                        m |= (col == j) & (hit == 2 + ti)
            missing |= m
        df = pl.DataFrame({"g": g, "hour": hour, "rows": np.where(keep, counts, 0),
                           "missing": np.where(missing, counts, 0)})
        names = self._group_names()
        return (df.group_by("g", "hour").agg(pl.col("rows").sum(), pl.col("missing").sum()).sort("g", "hour")
                .with_columns(pl.col("g").map_elements(lambda x: names[x], return_dtype=pl.String).alias("group")))


def _iso(us: int) -> str:
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat(sep=" ")


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# ----------------------------------------------------------------------------- driver


def _parse_time(s: pl.Series, fmt: str | None, unit: str | None) -> pl.Series:
    """The time column as ``Datetime("us")`` (naive; time-zone-aware times in UTC), null where it does not parse."""
    dt = s.dtype
    if isinstance(dt, pl.Datetime):
        if dt.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(pl.Datetime("us"))
    if dt == pl.Date:
        return s.cast(pl.Datetime("us"))
    if dt.is_numeric():
        mult = _US[unit or "s"]
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
class _Plan:
    source: Source
    names: list[str]
    types: dict[str, str]
    schema: Schema
    csv: bool
    casts: list[pl.Expr]


def _plan(source: Source, schema: Schema, *, time_col: str | None, key: list[str] | None,
          group_col: str | None, needs: Needs | None) -> _Plan:
    """Column types, the time column and its format, checked against the table."""
    names = list(source.frame.collect_schema().names())
    native = source.frame.collect_schema()
    csv = source.kind == "csv"
    if schema.declared:
        _check_columns(names, "the schema", list(schema.columns) + [c for c in (schema.time_col, schema.group_col)
                                                                   if c] + schema.key)
    schema.time_col = time_col or schema.time_col
    schema.group_col = group_col or schema.group_col
    schema.key = key or schema.key
    _check_columns(names, "--time-col", [schema.time_col] if schema.time_col else [])
    _check_columns(names, "--group-col", [schema.group_col] if schema.group_col else [])
    _check_columns(names, "--key", schema.key)
    if needs is not None:
        _check_columns(names, "the needs spec", needs.columns + needs.key + list(needs.ranges))
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
        parsed = _parse_time(col, schema.time_format, schema.time_unit)
        if col.drop_nulls().len() and parsed.drop_nulls().len() == 0:
            msg = f"time column {tc!r} does not parse as a date/time (first value {col.drop_nulls()[0]!r})"
            raise UserError(msg)
        types[tc] = "datetime"
    casts = []
    if csv:
        casts = [_cast_expr(n, types[n]) for n in names if n != schema.time_col and types[n] != "str"]
    return _Plan(source, names, types, schema, csv, casts)


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


def _batches(plan: _Plan, batch_rows: int) -> Iterator[tuple[pl.DataFrame, dict[str, np.ndarray | None],
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
                parsed = _parse_time(traw, plan.schema.time_format, plan.schema.time_unit)
                typed = typed.with_columns(parsed.alias(tc))
            if parsed.null_count():
                t_ok = parsed.is_not_null().to_numpy()
                t_us = parsed.to_physical().fill_null(0).to_numpy()
            else:  # the usual case: no conversion of masks
                t_ok = constant(True, raw.height)
                t_us = parsed.to_physical().to_numpy()
            raw_null[tc] = traw.is_null().to_numpy() if traw.null_count() else constant(False, raw.height)
        yield typed, raw_null, t_us, t_ok, mult


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
        plan = _plan(source, sch, time_col=time_col, key=key, group_col=group_col, needs=nd)
        prof = TableProfiler(plan.names, plan.types, plan.schema, nd)
        done = 0
        for typed, raw_null, t_us, t_ok, mult in _batches(plan, batch_rows):
            prof.add(typed, raw_null, t_us, t_ok, t_mult=mult)
            done += typed.height
            if progress is not None:
                progress(done, source.rows_hint)
        prof._drain()
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


def _sorted_timeline(plan: _Plan, prof: TableProfiler, batch_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]]:
    """Second read when some group's times go backwards: (group, time, row hash) sorted by (group, time)."""
    parts = []
    for typed, _, t_us, t_ok, mult in _batches(plan, batch_rows):
        t_us = t_us * mult if mult != 1 else t_us
        g = prof._groups(typed)
        h = typed.hash_rows(seed=7).to_numpy()
        parts.append(pl.DataFrame({"g": g[t_ok], "t": t_us[t_ok], "h": h[t_ok]}))
    df = pl.concat(parts).sort("g", "t", maintain_order=True) if parts else pl.DataFrame(
        {"g": [], "t": [], "h": []}, schema={"g": pl.Int64, "t": pl.Int64, "h": pl.UInt64})
    for off in range(0, df.height, batch_rows):
        part = df.slice(off, batch_rows)
        yield part["g"].to_numpy(), part["t"].to_numpy(), part["h"].to_numpy()


def infer_schema(rep: dict[str, Any], used: Schema) -> Schema:
    """A schema for the next delivery of the same feed: types, robust ranges, sentinels, nullability,
    the time column with its format and step, the group column and a key.

    Ranges extend the 0.1 % and 99.9 % quantiles by half their distance on each side (not below 0
    for a column without negative values); a key is the declared one, else (group, time) when no
    time repeats within a group.
    """
    out = Schema(time_col=used.time_col, time_format=used.time_format, time_unit=used.time_unit,
                 group_col=used.group_col, key=list(used.key), stuck_min=used.stuck_min,
                 stuck_ignore_zero=used.stuck_ignore_zero, detect_sentinels=used.detect_sentinels)
    t = rep.get("time")
    if t is not None:
        if t["step"] not in (None, "mixed"):
            out.step_us = parse_duration(t["step"])
        if not out.key and t["duplicates"] == 0 and t["nulls"] == 0 and t["unparseable"] == 0:
            out.key = [c for c in (used.group_col, used.time_col) if c]
    for name, c in rep["columns"].items():
        spec = ColumnSpec(type=c["type"], nullable=c["nulls"] > 0)
        old = used.columns.get(name)
        if old is not None:
            spec.unit, spec.parameter = old.unit, old.parameter
        if c["type"] in ("int", "float") and c.get("quantiles"):
            q = c["quantiles"]
            lo, hi = q["p0.1"], q["p99.9"]
            pad = 0.5 * (hi - lo)
            lo2, hi2 = lo - pad, hi + pad
            if c["min"] is not None and c["min"] >= 0:
                lo2 = max(lo2, 0.0)
            if c["type"] == "int":
                lo2, hi2 = math.floor(lo2), math.ceil(hi2)
            else:
                lo2, hi2 = float(f"{lo2:.6g}"), float(f"{hi2:.6g}")
            spec.min, spec.max = lo2, hi2
        if c["type"] in ("int", "float"):
            spec.sentinels = [int(float(v)) if float(v).is_integer() else float(v) for v in c["sentinel_values"]]
        elif c["type"] == "str":
            spec.sentinels = list(c["sentinel_values"])
        if name in (used.time_col, used.group_col):
            spec.min = spec.max = None
            spec.sentinels = []
        out.columns[name] = spec
    return out
