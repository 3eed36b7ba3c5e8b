"""Import a wide table (one column per sensor, one row per time step) as a forecasting panel."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from uda.errors import UserError
from uda.forecasting.panel import DEFAULT_START, Panel, parse_interval

#: Column names taken as the timestamp column when ``time_column`` is not given.
TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts")
#: Parts of a column name that suggest time (English, German, Spanish, French, Dutch,
#: Italian); such a column is the time axis only if every cell reads as a timestamp.
TIME_HINTS = ("date", "time", "stamp", "zeit", "datum", "fecha", "hora", "heure", "tijd")


_DECIMAL_COMMA = re.compile(r"(?:^|;)\s*-?\d+,\d+\s*(?:;|$)", re.MULTILINE)


def csv_dialect(path: Path, sample_bytes: int = 1 << 16) -> tuple[str, bool]:
    """Separator and decimal mark of a CSV file, from its first lines: ``,`` unless the
    header holds more ``;`` or tabs than commas (as spreadsheets write in much of Europe);
    with ``;``, decimal commas when numbers like ``7,25`` stand between separators."""
    with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as f:
        text = f.read(sample_bytes).decode("utf-8", errors="replace")
    header = text.splitlines()[0] if text else ""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    sep = max(counts, key=lambda k: (counts[k], k == ","))
    return sep, sep == ";" and bool(_DECIMAL_COMMA.search(text))


def read_table(path: str | os.PathLike) -> pl.DataFrame:
    """Read a CSV or Parquet file into Polars (by file suffix)."""
    p = Path(path)
    if not p.is_file():
        msg = f"table file {p} does not exist; pass a CSV or Parquet file"
        raise UserError(msg)
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pl.read_parquet(p)
        if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep, decimal_comma = csv_dialect(p)
            return pl.read_csv(p, separator=sep, decimal_comma=decimal_comma, infer_schema_length=10000,
                               null_values=["", "NA", "NaN", "nan", "null"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        msg = f"cannot read {p} ({first}); check that it is a valid CSV or Parquet file"
        raise UserError(msg) from None
    msg = f"{p}: unknown table format; use a .csv or .parquet file"
    raise UserError(msg)


def _local_text(col: pl.Series) -> pl.Series:
    """Timestamp text without a trailing ``Z`` or UTC offset after the time of day (``+10:00``
    in ``2024-01-01T08:00+10:00``; a date such as ``15-01-2024`` keeps its year): the local
    wall-clock time, which is what time of day and weekends are read from."""
    return col.str.strip_chars().str.replace(r"^(.*\d:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}:?\d{2})$", "${1}")


def reads_as_time(col: pl.Series, *, sample: int | None = None) -> bool:
    """True if ``col`` is temporal, or text whose every non-empty cell (of the first
    ``sample``, if given) reads as a timestamp; False for any other column."""
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        return True
    if col.dtype != pl.String:
        return False
    text = col.drop_nulls()
    text = text.head(sample) if sample else text
    if text.len() == 0:
        return False
    try:  # polars raises when it cannot guess a format at all
        return _local_text(text).str.to_datetime(time_unit="ms", strict=False).null_count() == 0
    except pl.exceptions.PolarsError:
        return False


def time_columns(df: pl.DataFrame) -> list[str]:
    """Columns that can be the time axis, best first: named timestamp/time/datetime/date/ts
    (any case), then temporal ones, then text columns whose name holds one of
    :data:`TIME_HINTS` (``Date Time``, ``timestamp_utc``, ``Zeit``, ``Fecha``) and whose cells
    all read as timestamps."""
    named = [c for c in df.columns if c.strip().lower() in TIME_NAMES]
    typed = [c for c in df.columns if c not in named and (df[c].dtype == pl.Date or isinstance(df[c].dtype, pl.Datetime))]
    hinted = [c for c in df.columns if c not in named and c not in typed and df[c].dtype == pl.String
              and any(h in c.lower() for h in TIME_HINTS) and reads_as_time(df[c])]
    return named + typed + hinted


def to_datetime(col: pl.Series, *, where: str) -> np.ndarray:
    """A column of timestamps (temporal or text) as ``datetime64[s]`` values."""
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        s = col.cast(pl.Datetime("ms"))
    elif col.dtype == pl.String:
        try:
            s = _local_text(col).str.to_datetime(time_unit="ms", strict=True)
        except pl.exceptions.PolarsError:
            msg = f"{where}: cannot read timestamps in column {col.name!r}; write them like 2024-01-01 00:05:00"
            raise UserError(msg) from None
    else:
        msg = f"{where}: column {col.name!r} holds {col.dtype} values, not timestamps; name the time column with --time-column"
        raise UserError(msg)
    if s.null_count():
        row = int(s.is_null().arg_true()[0])
        msg = f"{where}: timestamp missing in row {row + 1} of column {col.name!r}; fill or remove that row"
        raise UserError(msg)
    return s.dt.replace_time_zone(None).to_numpy().astype("datetime64[s]")


def grid_positions(times: np.ndarray, interval_s: int, *, where: str) -> tuple[np.ndarray, int]:
    """Step index of each timestamp on a regular grid from the first one, and the grid length.

    Raises :class:`UserError` for timestamps that go backwards, repeat or fall off the grid.
    """
    secs = (times - times[0]).astype(np.int64)
    diff = np.diff(secs)
    if diff.size and diff.min() <= 0:
        row = int(np.flatnonzero(diff <= 0)[0]) + 1
        what = "repeats" if diff[row - 1] == 0 else "goes backwards"
        msg = (f"{where}: timestamps are not increasing: row {row + 1} ({times[row]}) {what}; "
               "sort the table by time and remove duplicate rows")
        raise UserError(msg)
    off = secs % interval_s
    if off.any():
        row = int(np.flatnonzero(off)[0])
        msg = (f"{where}: timestamp {times[row]} (row {row + 1}) is not on the {interval_s} s grid "
               f"that starts at {times[0]}; check --interval")
        raise UserError(msg)
    pos = secs // interval_s
    return pos, int(pos[-1]) + 1


def bin_to_grid(times: np.ndarray, interval_s: int) -> tuple[np.ndarray, int, np.datetime64]:
    """Bin irregular timestamps to a regular grid: each is floored to a multiple of the interval.

    The grid is anchored at midnight (the interval divides a day), so slots of day stay
    aligned. Timestamps may repeat or come in any order.

    Returns
    -------
    pos, length, start
        Step index of each timestamp, grid length, and the first grid timestamp.
    """
    secs = times.astype("datetime64[s]").astype(np.int64)
    first = int(secs.min()) // interval_s * interval_s
    pos = (secs - first) // interval_s
    return pos, int(pos.max()) + 1, np.datetime64(first, "s")


def mean_by_step(vals: np.ndarray, pos: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Mean of the non-missing values of each row of ``vals`` (series × rows) in each grid step.

    Returns the ``(series, length)`` matrix (NaN where a step has no value) and the number
    of steps that averaged several values.
    """
    out = np.full((vals.shape[0], length), np.nan)
    merged = 0
    for k, row in enumerate(vals):
        ok = ~np.isnan(row)
        n = np.bincount(pos[ok], minlength=length)
        s = np.bincount(pos[ok], weights=row[ok], minlength=length)
        has = n > 0
        out[k, has] = s[has] / n[has]
        merged += int((n > 1).sum())
    return out, merged


def first_non_number(col: pl.Series) -> tuple[int, str] | None:
    """Row (0-based, in file order) and text of the first non-empty cell of ``col`` that does
    not read as a number, if any."""
    text = col.cast(pl.String)
    bad = text.is_not_null() & text.str.strip_chars().cast(pl.Float64, strict=False).is_null()
    hit = bad.arg_true()
    return (int(hit[0]), str(text[int(hit[0])])) if len(hit) else None


def mask_sentinels(vals: np.ndarray, missing: Sequence[float]) -> int:
    """Set values equal to any of ``missing`` to NaN in place; return how many were set."""
    if not len(missing):
        return 0
    hit = np.isin(vals, np.asarray(list(missing), dtype=float))
    vals[hit] = np.nan
    return int(hit.sum())


#: Negative values read as missing-value codes when a table has no other negative value.
NEGATIVE_CODES = (-1.0, -9.0, -99.0, -999.0, -9999.0, -99999.0)
#: Large values read as missing-value codes when they exceed twice every other value.
LARGE_CODES = (999.0, 9999.0, 99999.0, 999999.0)
#: Zeros are a missing-value code when at least this share of the values are zero, in at
#: least ZERO_RUNS runs, and the values around the runs are typical: in the median series
#: with zero runs, the median value next to a run is at least ZERO_JUMP of the series' median (a detector that stops reports 0 in the middle of
#: normal traffic; real zeros, e.g. counts at night, are approached through small values).
ZERO_SHARE, ZERO_RUNS, ZERO_JUMP = 0.001, 10, 0.6
#: Series (evenly spread) on which zeros are judged.
ZERO_SERIES = 200


def detect_missing_codes(values: np.ndarray | Sequence[np.ndarray],
                         series: Callable[[], Sequence[np.ndarray]] | None = None) -> list[tuple[float, str]]:
    """Values that mark missing data in a table.

    Parameters
    ----------
    values
        All its values (any shape), or a sequence of per-series arrays.
    series
        The values per series in time order, asked for only when zeros must be judged
        (default: ``values`` itself, a 2-D array or sequence of series).

    Returns
    -------
    list of (code, why)
        A negative code (-1, -999, ...) in a table with no other negative value, a large
        code (9999, ...) above twice every other value, and 0 when zeros break in from
        typical values (see :data:`ZERO_JUMP`).
    """
    if isinstance(values, np.ndarray):
        x = values.ravel()
    else:
        x = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values]) if len(values) else np.empty(0)
    finite = int(np.count_nonzero(np.isfinite(x)))  # one pass each below; no copy of x
    if finite == 0:
        return []
    found: list[tuple[float, str]] = []
    negatives = np.unique(x[x < 0])
    if negatives.size and np.isin(negatives, NEGATIVE_CODES).all():
        found += [(float(c), "a negative code in a table without other negative values") for c in negatives]
    big = np.unique(x[x >= min(LARGE_CODES)])
    present = big[np.isin(big, LARGE_CODES)]
    if present.size:
        top = float(np.nanmax(np.where(np.isin(x, present), np.nan, x), initial=0.0))
        found += [(float(c), f"above twice every other value (largest {top:g})")
                  for c in present if c > 2 * max(top, 0.0)]
    zeros = int(np.count_nonzero(x == 0))
    if zeros >= ZERO_SHARE * finite:
        flank, runs = [], 0
        every = series() if series is not None else values
        # a code is a table's convention: judge it on at most ZERO_SERIES series, evenly spread
        pick = np.unique(np.linspace(0, len(every) - 1, min(len(every), ZERO_SERIES)).astype(np.int64))
        for k in pick:
            v = np.asarray(every[k], dtype=np.float64)
            v = v[np.isfinite(v)]
            typical = np.median(np.abs(v[v != 0])) if (v != 0).any() else 0.0
            if typical == 0:
                continue
            d = np.diff(np.concatenate([[0], (v == 0).astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
            runs += starts.size
            around = np.concatenate([v[starts[starts > 0] - 1], v[ends[ends < v.size]]])
            if around.size:
                flank.append(float(np.median(np.abs(around))) / typical)
        # the median over the series with zero runs of their median neighbouring value
        ratio = float(np.median(flank)) if flank and runs >= ZERO_RUNS else 0.0
        if ratio >= ZERO_JUMP:
            found.append((0.0, f"zeros break in from typical values ({runs} runs; the values "
                               f"next to them are {ratio:.0%} of the series' median)"))
    return found


def apply_missing(vals: np.ndarray, missing: Sequence[float] | None, notes: list[str],
                  series: Callable[[], Sequence[np.ndarray]] | None = None) -> None:
    """Set the missing-value codes in ``vals`` to NaN in place and note how many: ``missing``
    if given, else those :func:`detect_missing_codes` finds (``series`` gives the same
    values per sensor in time order when ``vals`` is not already one row per sensor), with
    why and how to keep them."""
    found = detect_missing_codes(vals, series) if missing is None else []
    codes = list(missing) if missing is not None else [code for code, _ in found]
    masked = mask_sentinels(vals, codes)
    if masked:
        shown = ", ".join(f"{m:g}" for m in codes)
        why = "; ".join(f"{code:g}: {text}" for code, text in found)
        notes.append(f"{masked} values equal to {shown} read as missing"
                     + (f" (detected — {why}; pass --missing none to keep them as values)" if why else ""))


def find_time_column(df: pl.DataFrame, time_column: str | None = None, *, where: str) -> str | None:
    """The timestamp column of a wide table, or None if it has none.

    ``time_column`` if given (it must exist); else the first of :func:`time_columns`, or a
    first text column whose values all read as timestamps (a pandas index written by
    ``to_csv``).
    """
    if time_column is not None:
        if time_column not in df.columns:
            msg = f"{where}: no column {time_column!r} for --time-column (columns: {', '.join(df.columns[:8])} ...)"
            raise UserError(msg)
        return time_column
    found = time_columns(df)
    if found:
        return found[0]
    if df.width and reads_as_time(df[df.columns[0]]):
        return df.columns[0]  # an unnamed index column of timestamps, as pandas' to_csv writes it
    return None


def read_wide(path: str | os.PathLike, *, interval: str | int, start: str | None = None,
              time_column: str | None = None, missing: Sequence[float] | None = None,
              irregular: bool = False) -> Panel:
    """Read a wide table as a :class:`~uda.forecasting.panel.Panel`.

    Parameters
    ----------
    path
        CSV or Parquet file: one column per sensor (header = sensor ids), one row per step.
    interval
        Step length, e.g. ``"5min"`` (or seconds).
    start
        Timestamp of the first row when the table has no timestamp column
        (default :data:`uda.forecasting.panel.DEFAULT_START`, a Monday).
    time_column
        Name of the timestamp column; by default a temporal column, one named
        timestamp/time/datetime/date/ts, or a first text column whose values all read as
        timestamps (a pandas index written by ``to_csv``) is used if present.
    missing
        Sentinel values read as missing (e.g. ``(-1,)`` for counts that mark gaps with -1);
        ``None`` detects them (:func:`detect_missing_codes`, each noted), ``()`` reads none.
    irregular
        Bin timestamps to the grid instead of requiring them on it: each is floored to a
        multiple of ``interval`` (from midnight), the values in one step are averaged and
        steps without a value are NaN. Repeated and unsorted timestamps are then accepted.
        Without a timestamp column it has no effect.

    Returns
    -------
    Panel
        Missing time steps (rows absent from the grid) become NaN and are reported in
        ``notes``; so do sensors without any value.
    """
    interval_s = interval if isinstance(interval, int) else parse_interval(interval)
    df = read_table(path)
    where = str(path)
    if df.height == 0 or df.width == 0:
        msg = f"{where} has no rows or no columns; a wide table needs one column per sensor and one row per step"
        raise UserError(msg)
    tcol = find_time_column(df, time_column, where=where)
    notes: list[str] = []
    if tcol is not None:
        if start is not None:
            msg = f"{where} has a timestamp column {tcol!r}, so --start is not needed; drop --start"
            raise UserError(msg)
        times = to_datetime(df[tcol], where=where)
        if irregular:
            pos, length, t0 = bin_to_grid(times, interval_s)
        else:
            pos, length = grid_positions(times, interval_s, where=where)
            t0 = times[0]
        df = df.drop(tcol)
        if not irregular and length > len(pos):
            notes.append(f"{length - len(pos)} missing time steps (absent rows) filled with NaN")
    else:
        try:
            t0 = np.datetime64(start or DEFAULT_START, "s")
        except ValueError:
            msg = f"cannot read --start {start!r}; write it like 2024-01-01T00:00"
            raise UserError(msg) from None
        pos, length = np.arange(df.height), df.height
    if df.width == 0:
        msg = f"{where} has a timestamp column but no sensor columns"
        raise UserError(msg)
    bad = [c for c in df.columns
           if not df[c].dtype.is_numeric() and df[c].null_count() < df.height]
    if bad:
        col = bad[0]
        cell = first_non_number(df[col])
        shown = f" (row {cell[0] + 1} holds {cell[1]!r})" if cell else ""
        msg = (f"{where}: column {col!r} is not numeric{shown}; every column except the "
               "timestamp must hold one sensor's values")
        raise UserError(msg)
    vals = np.array(df.select(pl.all().cast(pl.Float64)).to_numpy().T, dtype=np.float64)
    infinite = np.isinf(vals)
    if infinite.any():
        vals[infinite] = np.nan
        notes.append(f"{int(infinite.sum())} infinite values read as missing")
    in_time_order = None if not irregular else (lambda: vals[:, np.argsort(pos, kind="stable")])
    apply_missing(vals, missing, notes, in_time_order)
    if irregular and tcol is not None:
        Y, merged = mean_by_step(vals, pos, length)
        empty_steps = length - int(np.count_nonzero(np.bincount(pos, minlength=length)))
        notes.append(f"{len(pos)} rows binned to {length} steps of {interval_s} s "
                     f"({merged} sensor-steps averaged several rows, {empty_steps} steps without a row)")
    else:
        Y = np.full((vals.shape[0], length), np.nan)
        Y[:, pos] = vals
    empty = [c for c, row in zip(df.columns, Y, strict=True) if np.isnan(row).all()]
    if empty:
        notes.append(f"{len(empty)} sensors without any value: {', '.join(empty[:5])}")
    return Panel(Y, [str(c) for c in df.columns], t0, interval_s, notes=notes)
