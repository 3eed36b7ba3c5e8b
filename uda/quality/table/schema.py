"""The schema of a profiled table: what each column should hold, read from and written to TOML; and
the needs spec of the funnel (what an analytic needs of it, :func:`load_needs`).

A :class:`Schema` is declared (``--schema S.toml``, :func:`load_schema`) or inferred from a profile
(:func:`infer_schema`, written by ``--write-schema`` with :func:`schema_toml`) so the next delivery of
the same feed is checked against it. Ranges of columns that map to a parameter of uda's contract
(:func:`contract_parameter`) come from the contract. Also the duration syntax of schemas and needs
specs (``"15m"``, ``"1h"``: :func:`parse_duration`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uda.contract import SPECS
from uda.durations import duration_us
from uda.errors import UserError
from uda.io.table import ALIASES

#: Values tried as sentinels in numeric columns when none are declared.
SENTINEL_CANDIDATES = (-1.0, -9.0, -99.0, -999.0, -9999.0, -99999.0, 999.0, 9999.0, 99999.0, 999999.0)


#: Tokens tried as sentinels in text columns.
TEXT_SENTINELS = ("-", "--", "?", "missing", "unknown", "MISSING", "UNKNOWN")


TYPES = ("int", "float", "str", "bool", "datetime")


STUCK_MIN = 6


#: Microseconds per duration unit (schemas, needs specs, reports).
DURATION_US = {"us": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000, "min": 60_000_000, "h": 3_600_000_000,
       "d": 86_400_000_000}


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
    us = duration_us(text)  # the one duration grammar (uda.durations)
    if us is None:
        msg = f"{what} {text!r} is not a duration; write e.g. '15m', '1h', '30s' or '1d'"
        raise UserError(msg)
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
        k, us = divmod(us, DURATION_US[unit])
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
        if us % DURATION_US[unit] == 0:
            return f"{us // DURATION_US[unit]}{unit}"
    return f"{us}us"


def read_toml(p: Path, what: str) -> dict[str, Any]:
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
    doc = read_toml(p, "schema")
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
        if c.get("parameter") is not None and c["parameter"] not in contract_ranges():
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


def contract_ranges() -> dict[str, tuple[float, float, str]]:
    """uda's parameter contract: canonical name -> (min, max, table)."""
    return {v: (*SPECS[t].ranges[v], t) for t in ("traffic", "water") for v in SPECS[t].values}


def _norm(name: str) -> str:
    s = re.sub(r"[\(\[].*?[\)\]]", "", name.lower()).strip()
    return re.sub(r"[^0-9a-z]+", "_", s).strip("_")


def contract_parameter(column: str) -> str | None:
    """The contract parameter a column name maps to (canonical names and the water aliases), or None."""
    n = _norm(column)
    if n in contract_ranges():
        return n
    for p, names in ALIASES.items():
        if p in contract_ranges() and n in {_norm(a) for a in names}:
            return p
    return None


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
    doc = read_toml(p, "needs")
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


def check_columns(names: list[str], where: str, wanted: list[str]) -> None:
    """A one-line error when ``where`` (the schema, an option, the needs spec) names columns not in ``names``."""
    missing = [c for c in wanted if c not in names]
    if missing:
        msg = f"{where} names column(s) {missing} not in the table; its columns are {names[:20]}"
        raise UserError(msg)


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
