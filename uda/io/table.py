"""Read an external water-quality table: a time column, one column per parameter, optional labels."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from uda.errors import UserError
from uda.io.wide import read_table
from uda.water import PARAMS

#: Accepted column names per parameter (lower case, units in brackets or after _ ignored).
ALIASES: dict[str, tuple[str, ...]] = {
    "temperature_c": ("temperature_c", "temperature", "temp", "water_temp", "water_temperature",
                      "temp_c", "wtemp"),
    "ph": ("ph",),
    "do_mgl": ("do_mgl", "do", "dissolved_oxygen", "oxygen", "do_mg_l", "ldo"),
    "turbidity_ntu": ("turbidity_ntu", "turbidity", "turb", "turbidity_fnu"),
    "conductivity_uscm": ("conductivity_uscm", "conductivity", "cond", "spcond", "specific_conductance",
                          "ec", "sc", "conductivity_us_cm"),
    "nitrate_mgl": ("nitrate_mgl", "nitrate", "no3", "nitrate_n", "no3_n", "nitrate_mg_l"),
    "ammonia_mgl": ("ammonia_mgl", "ammonia", "nh3", "nh4", "ammonium", "nh3_n", "nh4_n",
                    "ammonia_n", "ammonia_mg_l"),
}

#: Plausible medians in the expected unit, and what a median outside says (range, hint).
_UNIT_CHECKS: dict[str, list[tuple[float, float, str]]] = {
    "temperature_c": [(45.0, 120.0, "degrees Fahrenheit; convert to °C with (F - 32) / 1.8"),
                      (250.0, 330.0, "kelvin; convert to °C with K - 273.15")],
    "conductivity_uscm": [(0.0, 10.0, "mS/cm; multiply by 1000 to get µS/cm")],
    "do_mgl": [(25.0, 250.0, "percent saturation; convert to mg/L")],
    "ph": [(-np.inf, 1.0, "not pH units"), (14.5, np.inf, "not pH units")],
    "ammonia_mgl": [(50.0, np.inf, "µg/L; divide by 1000 to get mg/L")],
    "nitrate_mgl": [(200.0, np.inf, "µg/L; divide by 1000 to get mg/L")],
}


def _key(name: str) -> str:
    """Normalise a column name: lower case, units in brackets dropped, separators to ``_``."""
    s = re.sub(r"[\(\[].*?[\)\]]", "", name.lower()).strip()
    s = re.sub(r"[^0-9a-z]+", "_", s).strip("_")
    return s


_LOOKUP = {_key(a): p for p, names in ALIASES.items() for a in names}


@dataclass
class WaterTable:
    """An external water-quality table in canonical form.

    Attributes
    ----------
    frame
        Columns ``site_id`` (int64), ``ts`` (datetime[ms]), the parameters, and ``label``
        (bool) when labels were given; sorted by site and time.
    params
        Canonical parameters found (in :data:`uda.water.PARAMS` order).
    columns
        Canonical parameter -> original column name.
    interval_s
        Median sampling step.
    has_labels
        Whether ``label`` holds event labels.
    warnings
        Problems found and worked around (reported, not fatal).
    """

    frame: pl.DataFrame
    params: tuple[str, ...]
    columns: dict[str, str]
    interval_s: float
    has_labels: bool
    warnings: list[str] = field(default_factory=list)


def _parse_time(col: pl.Series, name: str) -> pl.Series:
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        s = col.cast(pl.Datetime("ms")) if col.dtype == pl.Date else col
        if isinstance(s.dtype, pl.Datetime) and s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        s = s.cast(pl.Datetime("ms"))
    elif col.dtype == pl.String:
        txt = col.str.strip_chars()
        s = txt.str.to_datetime(time_unit="ms", strict=False)
        if s.null_count() > txt.null_count() and txt.str.ends_with("Z").any():
            s = txt.str.replace(r"Z$", "").str.to_datetime(time_unit="ms", strict=False)
        bad = s.is_null() & txt.is_not_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            msg = (f"--time-col {name!r}: cannot read {txt[row]!r} (row {row + 1}) as a time; "
                   "write times like 2024-01-01 00:15:00")
            raise UserError(msg)
        if isinstance(s.dtype, pl.Datetime) and s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    else:
        msg = (f"--time-col {name!r} holds {col.dtype} values, not times; "
               "pass the column holding dates and times (ISO 8601 text or a datetime)")
        raise UserError(msg)
    if s.null_count():
        row = int(s.is_null().arg_true()[0])
        msg = f"--time-col {name!r}: time missing in row {row + 1}; fill or remove that row"
        raise UserError(msg)
    return s.cast(pl.Datetime("ms")).alias("ts")


def _parse_label(col: pl.Series, name: str) -> pl.Series:
    if col.dtype == pl.Boolean:
        out = col
    elif col.dtype.is_integer() or col.dtype.is_float():
        vals = set(col.drop_nulls().unique().to_list())
        if not vals <= {0, 1}:
            msg = f"--label-col {name!r} must hold true/false or 0/1, found {sorted(vals)[:5]}"
            raise UserError(msg)
        out = col == 1
    elif col.dtype == pl.String:
        low = col.str.strip_chars().str.to_lowercase()
        good = low.is_in(["true", "false", "1", "0", "yes", "no", "t", "f", "y", "n"]) | low.is_null()
        if not good.all():
            row = int((~good).arg_true()[0])
            msg = f"--label-col {name!r} must hold true/false or 0/1, found {col[row]!r} in row {row + 1}"
            raise UserError(msg)
        out = low.is_in(["true", "1", "yes", "t", "y"])
    else:
        msg = f"--label-col {name!r} holds {col.dtype} values; use true/false or 0/1"
        raise UserError(msg)
    return out.fill_null(False).alias("label")


def read_water_table(path: str | os.PathLike, *, time_col: str, label_col: str | None = None,
                     site_col: str | None = None) -> WaterTable:
    """Read and check a CSV/Parquet water-quality table.

    Parameters
    ----------
    path
        CSV or Parquet file.
    time_col
        Column holding sample times (ISO text or datetime; time zones become naive UTC).
    label_col
        Optional column labelling event samples (true/false or 0/1); runs of true are events.
    site_col
        Optional column of site ids (integer or text); default: the whole table is one site.

    Returns
    -------
    WaterTable

    Raises
    ------
    UserError
        Unknown or missing named columns, no recognisable parameter, unreadable times or
        labels, duplicate times, or a parameter whose values look like another unit
        (conductivity in mS/cm, temperature in °F ...).
    """
    df = read_table(path)
    where = str(path)
    for opt, col in (("--time-col", time_col), ("--label-col", label_col), ("--site-col", site_col)):
        if col is not None and col not in df.columns:
            msg = f"{opt} {col!r} is not a column of {where}; its columns are: {', '.join(df.columns)}"
            raise UserError(msg)
    if df.height == 0:
        msg = f"{where} has no rows; pass a table with at least one sample"
        raise UserError(msg)
    warnings: list[str] = []
    out: dict[str, pl.Series] = {"ts": _parse_time(df[time_col], time_col)}
    if site_col is not None:
        site = df[site_col]
        if site.null_count():
            msg = f"--site-col {site_col!r} has {site.null_count()} empty values; fill or remove those rows"
            raise UserError(msg)
        if site.dtype.is_integer():
            out["site_id"] = site.cast(pl.Int64).alias("site_id")
        else:
            names = sorted(site.cast(pl.String).unique().to_list())
            code = {n: i for i, n in enumerate(names)}
            out["site_id"] = site.cast(pl.String).replace_strict(code, return_dtype=pl.Int64).alias("site_id")
            warnings.append("site names numbered in sorted order: "
                            + ", ".join(f"{n}={i}" for n, i in list(code.items())[:10])
                            + (" ..." if len(code) > 10 else ""))
    else:
        out["site_id"] = pl.Series("site_id", np.zeros(df.height, dtype=np.int64))
    columns: dict[str, str] = {}
    unknown: list[str] = []
    for name in df.columns:
        if name in (time_col, label_col, site_col):
            continue
        param = _LOOKUP.get(_key(name))
        if param is None:
            unknown.append(name)
            continue
        if param in columns:
            msg = (f"columns {columns[param]!r} and {name!r} both look like {param}; "
                   "drop or rename one of them")
            raise UserError(msg)
        columns[param] = name
    if not columns:
        msg = (f"{where}: no water-quality parameter columns found among {', '.join(unknown) or 'none'}; "
               f"name them like {', '.join(PARAMS)}")
        raise UserError(msg)
    if unknown:
        warnings.append(f"ignored unknown columns: {', '.join(unknown)} "
                        f"(recognised names include {', '.join(PARAMS)})")
    params = tuple(p for p in PARAMS if p in columns)
    missing = [p for p in PARAMS if p not in columns]
    if missing:
        warnings.append(f"missing parameters: {', '.join(missing)}; indices and detectors use the others")
    for p in params:
        col = df[columns[p]]
        num = col.cast(pl.Float64, strict=False) if col.dtype != pl.String else \
            col.str.strip_chars().cast(pl.Float64, strict=False)
        bad = num.is_null() & col.is_not_null()
        if bad.sum() > 0.5 * max(col.is_not_null().sum(), 1):
            row = int(bad.arg_true()[0])
            msg = f"column {columns[p]!r} ({p}) is not numeric: {col[row]!r} in row {row + 1}; fix or drop the column"
            raise UserError(msg)
        if bad.any():
            warnings.append(f"column {columns[p]!r}: {int(bad.sum())} non-numeric values treated as missing")
        num = num.fill_nan(None)
        med = num.median()
        if med is None:
            warnings.append(f"column {columns[p]!r} ({p}) has no values")
        else:
            for lo, hi, unit in _UNIT_CHECKS.get(p, []):
                if lo <= med < hi:
                    msg = (f"column {columns[p]!r} ({p}) has median {med:g}, which looks like {unit}"
                           if "not pH" not in unit else
                           f"column {columns[p]!r} (pH) has median {med:g}, outside 1-14.5: {unit}; check the column")
                    raise UserError(msg)
        out[p] = num.alias(p)
    if label_col is not None:
        out["label"] = _parse_label(df[label_col], label_col)
    frame = pl.DataFrame(list(out.values())).select(
        ["site_id", "ts", *params, *(["label"] if label_col else [])])
    if not frame["ts"].is_sorted() or (site_col is not None and not frame.select(
            pl.struct("site_id", "ts").is_sorted()).item()):
        warnings.append("rows were not in time order; sorted them by site and time")
    frame = frame.sort(["site_id", "ts"])
    dup = frame.select(pl.struct("site_id", "ts").is_duplicated()).to_series()
    if dup.any():
        row = frame.filter(dup).row(0, named=True)
        msg = (f"{int(dup.sum())} rows repeat a time (e.g. {row['ts']} at site {row['site_id']}); "
               "remove or average duplicate rows")
        raise UserError(msg)
    interval_s, notes = _check_spacing(frame)
    warnings += notes
    for site, sub in frame.group_by("site_id", maintain_order=True):
        empty = [p for p in params if sub[p].null_count() == sub.height]
        if empty and frame["site_id"].n_unique() > 1:
            warnings.append(f"site {site[0]}: no values for {', '.join(empty)}")
    return WaterTable(frame, params, columns, interval_s, label_col is not None, warnings)


def _check_spacing(frame: pl.DataFrame) -> tuple[float, list[str]]:
    """Median step and notes about irregular spacing or gaps."""
    step = frame.select((pl.col("ts").diff().over("site_id").dt.total_milliseconds() / 1000.0)
                        .alias("d"))["d"].drop_nulls()
    if step.len() == 0:
        return 900.0, ["a single sample per site: detectors need a series, so they raise no alarms"]
    interval = float(step.median())
    notes = []
    off = ((step - interval).abs() > 0.01 * interval)
    gaps = int((step > 1.5 * interval).sum())
    irregular = int(off.sum()) - gaps
    if irregular > 0:
        notes.append(f"irregular timestamps: {irregular} of {step.len()} steps differ from the median "
                     f"step of {interval:g} s; detectors treat samples as equally spaced")
    if gaps:
        notes.append(f"{gaps} gaps longer than 1.5 x the {interval:g} s step; exceedance episodes break there")
    return interval, notes
