"""Read an external water-quality table: a time column, one column per parameter, optional labels."""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from uda.contract import WATER_PARAMETERS
from uda.errors import UserError
from uda.io.wide import read_table, reads_as_time

#: Accepted column names per parameter (after :func:`_key`: lower case, units in brackets
#: dropped, umlauts spelt out, separators ``_``). Several languages and vendor styles.
ALIASES: dict[str, tuple[str, ...]] = {
    "temperature_c": ("temperature_c", "temperature", "temp", "water_temp", "water_temperature",
                      "temp_c", "wtemp", "tp", "t_water", "wassertemperatur", "temperatur",
                      "temperatura", "temperature_eau", "tw", "temp_degc", "temperature_degc"),
    "ph": ("ph", "ph_value", "ph_wert", "ph_units"),
    "do_mgl": ("do_mgl", "do", "dissolved_oxygen", "oxygen", "do_mg_l", "ldo", "o2", "odo",
               "sauerstoff", "gelöster_sauerstoff", "geloester_sauerstoff", "oxigeno_disuelto",
               "oxygene_dissous", "od", "dox", "do_conc"),
    "turbidity_ntu": ("turbidity_ntu", "turbidity", "turb", "turbidity_fnu", "ntu", "fnu", "trueb",
                      "truebung", "truebe", "turbidez", "turbidite", "torbidita", "tur"),
    "conductivity_uscm": ("conductivity_uscm", "conductivity", "cond", "spcond", "specific_conductance",
                          "ec", "sc", "conductivity_us_cm", "leit", "leitf", "leitfaehigkeit",
                          "lf", "conductividad", "conductivite", "spc", "sp_cond", "elec_cond",
                          "specific_conductivity"),
    "nitrate_mgl": ("nitrate_mgl", "nitrate", "no3", "nitrate_n", "no3_n", "nitrate_mg_l", "nitrat",
                    "nitrato", "nitrate_no3"),
    "ammonia_mgl": ("ammonia_mgl", "ammonia", "nh3", "nh4", "ammonium", "nh3_n", "nh4_n",
                    "ammonia_n", "ammonia_mg_l", "amonio", "ammonium_n", "nh4_n_mgl"),
    "chlorine_mgl": ("chlorine_mgl", "chlorine", "free_chlorine", "total_chlorine", "cl", "cl2",
                     "clo2", "chlorine_dioxide", "chlordioxid", "chlor", "fcl", "free_cl",
                     "residual_chlorine", "cloro", "chlore", "chlore_libre", "cloro_libre"),
    "redox_mv": ("redox_mv", "redox", "orp", "eh", "redox_potential", "redoxpotential",
                 "oxidation_reduction_potential", "potentiel_redox", "potencial_redox"),
    "flow_m3h": ("flow_m3h", "flow", "fm", "flow_rate", "flowrate", "durchfluss", "q", "caudal",
                 "debit", "discharge"),
}

#: Parameters beyond :data:`uda.contract.WATER_PARAMETERS` that the alias table knows (no guidelines).
EXTRA_PARAMS: tuple[str, ...] = ("chlorine_mgl", "redox_mv", "flow_m3h")

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

#: Names (after :func:`_key`) that mark the time, label and site columns when not given.
TIME_NAMES = ("time", "timestamp", "datetime", "date_time", "date", "ts", "zeit", "datum",
              "zeitstempel", "fecha", "sample_time", "time_utc", "datetime_utc")
LABEL_NAMES = ("label", "labels", "event", "events", "anomaly", "is_anomaly", "is_event", "target",
               "class", "y", "flag", "alarm", "ereignis", "outlier")
SITE_NAMES = ("site", "site_id", "siteid", "station", "station_id", "stationid", "location",
              "location_id", "site_code", "sitecode", "site_name", "sensor", "sensor_id", "messstelle",
              "station_name", "sitename")


def _key(name: str) -> str:
    """Normalise a column name: lower case, units in brackets dropped, umlauts spelt out, separators to ``_``."""
    s = re.sub(r"[\(\[].*?[\)\]]", "", name.lower()).strip()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        s = s.replace(a, b)
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
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
        Parameters: known ones under canonical names (in :data:`uda.contract.WATER_PARAMETERS`, then
        :data:`EXTRA_PARAMS` order), then other numeric columns under their own names.
    columns
        Parameter -> original column name.
    interval_s
        Median sampling step.
    has_labels
        Whether ``label`` holds event labels.
    warnings
        Problems found and worked around (reported, not fatal).
    own_names
        Parameters kept under their own column names (not in the alias table).
    time_col, label_col, site_col
        The columns used (given or found).
    """

    frame: pl.DataFrame
    params: tuple[str, ...]
    columns: dict[str, str]
    interval_s: float
    has_labels: bool
    warnings: list[str] = field(default_factory=list)
    own_names: tuple[str, ...] = ()
    time_col: str = ""
    label_col: str | None = None
    site_col: str | None = None


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


def parse_columns(spec: str | None) -> dict[str, str]:
    """``--columns "Tp=temperature_c,Leit=conductivity_uscm"`` as ``{source: parameter}``.

    Raises
    ------
    UserError
        An item without ``=``, an empty name, a column given twice, or two columns mapped
        to one parameter.
    """
    if not spec:
        return {}
    out: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        src, sep, dst = item.partition("=")
        src, dst = src.strip(), dst.strip()
        if not sep or not src or not dst:
            msg = f"--columns item {item.strip()!r} must look like COLUMN=parameter, e.g. Tp=temperature_c"
            raise UserError(msg)
        if src in out:
            msg = f"--columns maps column {src!r} twice; give each column once"
            raise UserError(msg)
        out[src] = dst
    seen: dict[str, str] = {}
    for src, dst in out.items():
        if dst in seen:
            msg = f"--columns maps both {seen[dst]!r} and {src!r} to {dst!r}; map one column per parameter"
            raise UserError(msg)
        seen[dst] = src
    return out


def _is_01(col: pl.Series) -> bool:
    """Boolean, or numbers that are all 0 or 1 (both present)."""
    if col.dtype == pl.Boolean:
        return True
    if col.dtype.is_integer() or col.dtype.is_float():
        vals = set(col.drop_nulls().unique().to_list())
        return vals == {0, 1}
    return False


def _pick(df: pl.DataFrame, names: tuple[str, ...], test, what: str, option: str,
          exclude: set[str]) -> str | None:
    """The one column passing ``test`` (ties broken by the names list), or ``None``."""
    cands = [c for c in df.columns if c not in exclude and test(df[c])]
    if not cands:
        return None
    if len(cands) == 1:
        return cands[0]
    named = [c for c in cands if _key(c) in names]
    if len(named) == 1:
        return named[0]
    msg = (f"several columns could be the {what} ({', '.join(cands)}); "
           f"name the right one with {option}")
    raise UserError(msg)


def read_water_table(path: str | os.PathLike, *, time_col: str | None = None,
                     label_col: str | None = None, site_col: str | None = None,
                     columns: dict[str, str] | None = None, labels: bool | None = None) -> WaterTable:
    """Read and check a CSV/Parquet water-quality table.

    Parameters
    ----------
    path
        CSV or Parquet file.
    time_col
        Column holding sample times (ISO text or datetime; time zones become naive UTC);
        default: the one datetime column (or text column that reads as times), preferring
        names like ``time``/``timestamp``.
    label_col
        Column labelling event samples (true/false or 0/1); runs of true are events.
        Default: the one boolean or 0/1 column (names like ``label``/``event`` break ties).
    site_col
        Column of site ids (integer or text); default: a column named like ``site``,
        ``siteID`` or ``station``, else the whole table is one site.
    columns
        ``{column: parameter}`` mapping that overrides the alias table.
    labels
        ``False``: never look for a label column (``label_col`` must then be ``None``).

    Returns
    -------
    WaterTable
        Every numeric column is a parameter: known ones under their canonical names (from
        ``columns`` or the alias table), the others under their own names.

    Raises
    ------
    UserError
        Unknown or missing named columns, no numeric parameter, a mapping naming a missing
        column or mapping two columns to one parameter, unreadable times or labels,
        duplicate times, or a parameter whose values look like another unit.
    """
    df = read_table(path)
    where = str(path)
    columns = dict(columns or {})
    for opt, col in (("--time-col", time_col), ("--label-col", label_col), ("--site-col", site_col)):
        if col is not None and col not in df.columns:
            msg = f"{opt} {col!r} is not a column of {where}; its columns are: {', '.join(df.columns)}"
            raise UserError(msg)
    for src in columns:
        if src not in df.columns:
            msg = f"--columns names {src!r}, which is not a column of {where}; its columns are: {', '.join(df.columns)}"
            raise UserError(msg)
    targets = list(columns.values())
    dup = sorted({t for t in targets if targets.count(t) > 1})
    if dup:
        srcs = [s for s, t in columns.items() if t == dup[0]]
        msg = f"--columns maps both {srcs[0]!r} and {srcs[1]!r} to {dup[0]!r}; map one column per parameter"
        raise UserError(msg)
    if df.height == 0:
        msg = f"{where} has no rows; pass a table with at least one sample"
        raise UserError(msg)
    warnings: list[str] = []
    found: list[str] = []
    if time_col is None:
        time_col = _pick(df, TIME_NAMES, lambda c: reads_as_time(c, sample=50), "time column", "--time-col",
                         set(columns))
        if time_col is None:
            msg = (f"{where}: no column holds times (a datetime or ISO 8601 text); "
                   "name the time column with --time-col")
            raise UserError(msg)
        found.append(f"time column {time_col!r}")
    used = {time_col}
    if site_col is None:
        named = [c for c in df.columns if c not in used and c not in columns and _key(c) in SITE_NAMES]
        if named:
            ids = [c for c in named if _key(c) in ("site", "site_id", "siteid", "station", "station_id",
                                                   "stationid", "site_code", "sitecode", "sensor_id")]
            site_col = (ids or named)[0]
            found.append(f"site column {site_col!r}")
    used |= {site_col} if site_col else set()
    if label_col is None and labels is not False:
        label_col = _pick(df, LABEL_NAMES, _is_01, "label column", "--label-col", used | set(columns))
        if label_col is not None:
            found.append(f"label column {label_col!r}")
    if label_col is not None:
        used.add(label_col)
        if label_col in columns:
            msg = f"--columns maps the label column {label_col!r} to a parameter; drop it from --columns"
            raise UserError(msg)
    if found:
        warnings.append("found " + ", ".join(found) + " (name others with --time-col/--label-col/--site-col)")
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
    mapping: dict[str, str] = {}     # parameter -> column
    explicit: set[str] = set()
    skipped: list[str] = []
    own: list[str] = []
    for name in df.columns:
        if name in used:
            continue
        if name in columns:
            param, how = columns[name], "mapped"
        else:
            param, how = _LOOKUP.get(_key(name)), "alias"
        col = df[name]
        numeric = col.dtype.is_numeric() or col.dtype == pl.Boolean
        if col.dtype == pl.String:
            num = col.str.strip_chars().cast(pl.Float64, strict=False)
            numeric = num.is_not_null().sum() > 0.5 * max(col.is_not_null().sum(), 1)
        if param is None or (how == "alias" and param in mapping):
            if param is not None:
                warnings.append(f"columns {mapping[param]!r} and {name!r} both look like {param}; "
                                f"{name!r} stays a parameter under its own name")
            if not numeric:
                skipped.append(name)
                continue
            param = name
            own.append(name)
        elif not numeric and how == "alias":
            skipped.append(name)
            continue
        if param in mapping:
            msg = (f"columns {mapping[param]!r} and {name!r} both become parameter {param!r}; "
                   "rename one of them or map it elsewhere with --columns")
            raise UserError(msg)
        mapping[param] = name
        if how == "mapped":
            explicit.add(param)
    if not mapping:
        msg = (f"{where}: no numeric parameter columns found (besides time/label/site columns); "
               f"pass a table with at least one numeric column")
        raise UserError(msg)
    if skipped:
        warnings.append(f"ignored non-numeric columns: {', '.join(skipped)}")
    order = [p for p in (*WATER_PARAMETERS, *EXTRA_PARAMS) if p in mapping]
    order += [p for p in mapping if p not in order]
    params = tuple(order)
    for p in params:
        col = df[mapping[p]]
        num = col.str.strip_chars().cast(pl.Float64, strict=False) if col.dtype == pl.String \
            else col.cast(pl.Float64, strict=False)
        bad = num.is_null() & col.is_not_null()
        if bad.sum() > 0.5 * max(col.is_not_null().sum(), 1):
            row = int(bad.arg_true()[0])
            msg = f"column {mapping[p]!r} ({p}) is not numeric: {col[row]!r} in row {row + 1}; fix or drop the column"
            raise UserError(msg)
        if bad.any():
            warnings.append(f"column {mapping[p]!r}: {int(bad.sum())} non-numeric values treated as missing")
        num = num.fill_nan(None)
        med = num.median()
        if med is None:
            warnings.append(f"column {mapping[p]!r} ({p}) has no values")
        else:
            for lo, hi, unit in _UNIT_CHECKS.get(p, []):
                if lo <= med < hi:
                    msg = (f"column {mapping[p]!r} ({p}) has median {med:g}, which looks like {unit}"
                           if "not pH" not in unit else
                           f"column {mapping[p]!r} (pH) has median {med:g}, outside 1-14.5: {unit}; check the column")
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
    dup_rows = frame.select(pl.struct("site_id", "ts").is_duplicated()).to_series()
    if dup_rows.any():
        row = frame.filter(dup_rows).row(0, named=True)
        msg = (f"{int(dup_rows.sum())} rows repeat a time (e.g. {row['ts']} at site {row['site_id']}); "
               "remove or average duplicate rows")
        raise UserError(msg)
    interval_s, notes = _check_spacing(frame)
    warnings += notes
    if frame["site_id"].n_unique() > 1:
        for site, sub in frame.group_by("site_id", maintain_order=True):
            empty = [p for p in params if sub[p].null_count() == sub.height]
            if empty:
                warnings.append(f"site {site[0]}: no values for {', '.join(empty)}")
    table = WaterTable(frame, params, mapping, interval_s, label_col is not None, warnings)
    table.own_names = tuple(own)
    table.time_col, table.label_col, table.site_col = time_col, label_col, site_col
    return table


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
