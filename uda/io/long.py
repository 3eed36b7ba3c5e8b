"""Import a long table (one row per series and time) as a forecasting panel.

Examples of long tables: NEON water quality (``siteID, datetime, nitrate, ...``: one
column names the series, one the time, one holds the values) and NAB (``timestamp,
value``: a single series).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from uda.arrays import repeated_key
from uda.errors import UserError
from uda.forecasting.panel import Panel, parse_interval, season_check
from uda.io.wide import (
    TIME_NAMES,
    apply_missing,
    bin_to_grid,
    grid_positions,
    mean_by_step,
    read_table,
    time_columns,
    to_datetime,
)


def _column(df: pl.DataFrame, name: str, what: str, where: str) -> str:
    if name not in df.columns:
        msg = f"{where}: missing column {name!r} for {what} (columns: {', '.join(df.columns[:10])})"
        raise UserError(msg)
    return name


def _infer_interval(times: np.ndarray, series: np.ndarray, where: str) -> int:
    """Most common positive gap between consecutive times of one series."""
    order = np.lexsort((times, series))
    t = times[order].astype(np.int64)
    same = series[order][1:] == series[order][:-1]
    gaps = np.diff(t)[same]
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        msg = f"{where}: fewer than two distinct times per series; cannot infer the interval, pass --interval"
        raise UserError(msg)
    vals, counts = np.unique(gaps, return_counts=True)
    step = int(vals[np.argmax(counts)])
    if step <= 0 or 86400 % step:
        msg = (f"{where}: the most common time step ({step} s) does not divide a day; "
               "pass --interval (e.g. 5min) and --irregular to bin the times")
        raise UserError(msg)
    return season_check(step)


def read_long(path: str | os.PathLike, *, interval: str | int | None = None,
              time_column: str | None = None, id_column: str | None = None,
              value_column: str | None = None, missing: Sequence[float] | None = None,
              irregular: bool = False) -> Panel:
    """Read a long table (CSV or Parquet) as a :class:`~uda.forecasting.panel.Panel`.

    Parameters
    ----------
    path
        CSV or Parquet file with a time column, optionally a series-id column, and value columns.
    interval
        Step length, e.g. ``"15min"``; by default the most common gap between consecutive
        times of a series.
    time_column
        Time column; by default one with a date/time type or named
        timestamp/time/datetime/date/ts.
    id_column
        Column naming the series; without it the table is a single series named after the
        file (its stem).
    value_column
        Column of values; by default the only numeric column besides time and id.
    missing
        Sentinel values read as missing; ``None`` detects them (see
        :func:`uda.io.wide.detect_missing_codes`), ``()`` reads none.
    irregular
        Bin times to the grid (floor to the interval from midnight, mean of the values in a
        step, NaN for empty steps) instead of requiring them on it; repeated times are then
        averaged rather than an error.

    Returns
    -------
    Panel
        One series per id (in order of first appearance), on a common grid from the
        earliest time; absent steps are NaN (reported in ``notes``).
    """
    df = read_table(path)
    where = str(path)
    if df.height == 0:
        msg = f"{where} has no rows; a long table needs one row per series and time"
        raise UserError(msg)
    if time_column is not None:
        tcol = _column(df, time_column, "--time-col", where)
    else:
        cands = time_columns(df)
        if not cands:
            msg = (f"{where}: no time column (none is named {'/'.join(TIME_NAMES)}, has a date type, or "
                   "has 'date' or 'time' in its name and timestamps in every cell); name it with --time-col")
            raise UserError(msg)
        tcol = cands[0]
    icol = _column(df, id_column, "--id-col", where) if id_column is not None else None
    if value_column is not None:
        vcol = _column(df, value_column, "--value-col", where)
    else:
        numeric = [c for c in df.columns if c not in (tcol, icol) and df[c].dtype.is_numeric()]
        if len(numeric) != 1:
            found = ", ".join(numeric) or "none"
            msg = f"{where}: name the value column with --value-col (numeric columns: {found})"
            raise UserError(msg)
        vcol = numeric[0]
    if not df[vcol].dtype.is_numeric():
        msg = f"{where}: column {vcol!r} is not numeric; choose a value column with --value-col"
        raise UserError(msg)

    times = to_datetime(df[tcol], where=where)
    if icol is not None:
        ids_col = df[icol].cast(pl.String).fill_null("(null)")
        ids = ids_col.unique(maintain_order=True).to_list()
        rows = ids_col.replace_strict(ids, list(range(len(ids))), return_dtype=pl.Int64).to_numpy()
    else:
        ids = [Path(path).stem]
        rows = np.zeros(df.height, dtype=np.int64)
    if interval is None:
        interval_s = _infer_interval(times, rows, where)
    else:
        interval_s = interval if isinstance(interval, int) else parse_interval(interval)
    vals = df[vcol].cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=True)
    notes: list[str] = []
    def by_series() -> list[np.ndarray]:
        order = np.lexsort((times, rows))
        return np.split(vals[order], np.flatnonzero(np.diff(rows[order])) + 1)

    apply_missing(vals, missing, notes, by_series)

    if irregular:
        pos, length, t0 = bin_to_grid(times, interval_s)
        n = len(ids)
        # bin per series: stack rows as (series × grid) via a combined key
        key = rows * length + pos
        flat, merged = mean_by_step(vals[None, :], key, n * length)
        Y = flat.reshape(n, length)
        notes.append(f"{df.height} rows binned to {length} steps of {interval_s} s "
                     f"({merged} series-steps averaged several rows)")
    else:
        uniq = np.unique(times)
        pos_u, length = grid_positions(uniq, interval_s, where=where)
        t0 = uniq[0]
        step = pos_u[np.searchsorted(uniq, times)]
        key = rows * length + step
        dup = repeated_key(key, len(ids) * length)
        if dup is not None:
            t = t0 + np.timedelta64(int(dup % length) * interval_s, "s")
            msg = (f"{where}: series {ids[dup // length]} has several rows at {t}; "
                   "remove duplicate rows or pass --irregular to average them")
            raise UserError(msg)
        Y = np.full((len(ids), length), np.nan)
        Y[rows, step] = vals
        absent = len(ids) * length - key.size
        if absent:
            notes.append(f"{absent} (series, time) values absent from the table set to NaN")
    empty = [s for s, row in zip(ids, Y, strict=True) if np.isnan(row).all()]
    if empty:
        notes.append(f"{len(empty)} series without any value: {', '.join(empty[:5])}")
    return Panel(Y, ids, t0, interval_s, notes=notes)


def stack_panels(panels: Sequence[Panel]) -> Panel:
    """Put panels of one interval on a common grid (from the earliest start to the latest end).

    Series keep their ids (made unique with a ``#k`` suffix if they repeat); adjacency is
    dropped; notes are joined.
    """
    if len(panels) == 1:
        return panels[0]
    steps = {p.interval_s for p in panels}
    if len(steps) > 1:
        msg = f"tables with different intervals ({', '.join(f'{s} s' for s in sorted(steps))}); pass --interval and --irregular"
        raise UserError(msg)
    step = steps.pop()
    starts = [np.datetime64(p.start, "s") for p in panels]
    t0 = min(starts)
    offs = [int((s - t0).astype(np.int64)) for s in starts]
    if any(o % step for o in offs):
        msg = "tables whose grids do not line up (starts not a whole number of steps apart); pass --irregular"
        raise UserError(msg)
    offs = [o // step for o in offs]
    length = max(o + p.values.shape[1] for o, p in zip(offs, panels, strict=True))
    Y = np.full((sum(p.values.shape[0] for p in panels), length), np.nan)
    ids: list[str] = []
    notes: list[str] = []
    row = 0
    for o, p in zip(offs, panels, strict=True):
        k = p.values.shape[0]
        Y[row:row + k, o:o + p.values.shape[1]] = p.values
        row += k
        for s in p.ids:
            name, n = s, 1
            while name in ids:
                n += 1
                name = f"{s}#{n}"
            ids.append(name)
        notes.extend(p.notes)
    return Panel(Y, ids, t0, step, notes=notes)
