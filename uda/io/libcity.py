"""Import LibCity atomic files (``.geo``, ``.rel``, ``.dyna``) as a forecasting panel.

Format (LibCity documentation, "atomic files"): ``.geo`` lists entities
(``geo_id, type, coordinates, ...``), ``.rel`` their relations
(``rel_id, type, origin_id, destination_id, ...``) and ``.dyna`` the time series
(``dyna_id, type, time, entity_id, <value columns>``), with times like
``2012-03-01T00:00:00Z``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from uda.arrays import repeated_key
from uda.errors import UserError
from uda.forecasting.panel import Panel, parse_interval
from uda.io.wide import apply_missing, first_non_number, grid_positions, to_datetime

REQUIRED = {
    ".geo": ("geo_id",),
    ".rel": ("origin_id", "destination_id"),
    ".dyna": ("time", "entity_id"),
}
#: Non-value columns of a ``.dyna`` file.
DYNA_KEYS = ("dyna_id", "type", "time", "entity_id")


def find_files(path: str | os.PathLike) -> dict[str, Path | None]:
    """The ``.geo``, ``.rel`` and ``.dyna`` files of a LibCity dataset folder (or of one file's stem)."""
    p = Path(path)
    if p.is_file():
        folder, stem = p.parent, p.stem
    elif p.is_dir():
        folder, stem = p, None
    else:
        msg = f"LibCity path {p} does not exist; pass the dataset folder holding .geo, .rel and .dyna files"
        raise UserError(msg)
    found: dict[str, Path | None] = {}
    for ext in REQUIRED:
        cands = sorted(folder.glob(f"{stem}{ext}" if stem else f"*{ext}"))
        if len(cands) > 1:
            msg = f"{folder} holds several {ext} files ({', '.join(c.name for c in cands[:3])}); pass one file, e.g. {cands[0]}"
            raise UserError(msg)
        found[ext] = cands[0] if cands else None
    for ext in (".geo", ".dyna"):
        if found[ext] is None:
            msg = f"no {ext} file in {folder}; a LibCity dataset needs .geo and .dyna files (and optionally .rel)"
            raise UserError(msg)
    return found


def _read(path: Path, ext: str) -> pl.DataFrame:
    try:
        df = pl.read_csv(path, infer_schema_length=10000, null_values=["", "NA", "NaN", "nan", "null"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        msg = f"cannot read {path} ({first}); LibCity atomic files are CSV with a header row"
        raise UserError(msg) from None
    df = df.rename({c: c.strip() for c in df.columns})
    missing = [c for c in REQUIRED[ext] if c not in df.columns]
    if missing:
        msg = (f"{path}: missing column {missing[0]!r} (LibCity {ext} files need "
               f"{', '.join(REQUIRED[ext])}); found: {', '.join(df.columns)}")
        raise UserError(msg)
    return df


def read_libcity(path: str | os.PathLike, *, column: str | None = None,
                 interval: str | int | None = None, missing: Sequence[float] | None = None) -> Panel:
    """Read a LibCity dataset as a :class:`~uda.forecasting.panel.Panel`.

    Parameters
    ----------
    path
        Dataset folder, or one of its atomic files.
    column
        ``.dyna`` value column to forecast (default: ``traffic_flow`` if present, else the
        first numeric value column).
    interval
        Step length; by default the most common gap between consecutive times.
    missing
        Values read as missing; ``None`` detects them (see
        :func:`uda.io.wide.detect_missing_codes`; METR-LA writes a missing speed as 0),
        ``()`` reads none.

    Returns
    -------
    Panel
        Series in ``.geo`` order; the adjacency comes from ``.rel`` (both directions,
        self-relations dropped). Time steps absent from ``.dyna`` become NaN (reported).
    """
    files = find_files(path)
    geo = _read(files[".geo"], ".geo")
    dyna = _read(files[".dyna"], ".dyna")
    where = str(files[".dyna"])
    values = [c for c in dyna.columns if c not in DYNA_KEYS]
    if column is None and "traffic_flow" in values:
        column = "traffic_flow"  # the default even when a bad cell made it text: say so below
    if column is None:
        numeric = [c for c in values if dyna[c].dtype.is_numeric()]
        if not numeric:
            msg = f"{where}: no numeric value column besides {', '.join(DYNA_KEYS)}; nothing to forecast"
            raise UserError(msg)
        column = "traffic_flow" if "traffic_flow" in numeric else numeric[0]
    elif column not in dyna.columns:
        msg = f"{where}: missing column {column!r} for --column; value columns are: {', '.join(values) or '(none)'}"
        raise UserError(msg)
    if not dyna[column].dtype.is_numeric():
        bad = first_non_number(dyna[column])
        cell = f" (e.g. {bad[1]!r})" if bad else ""
        msg = (f"{where}: column {column!r} is not numeric{cell}; fix that cell or choose a value "
               "column with --column")
        raise UserError(msg)

    ids = geo["geo_id"].cast(pl.String).to_list()
    if len(set(ids)) != len(ids):
        msg = f"{files['.geo']}: geo_id values repeat; each entity must appear once"
        raise UserError(msg)
    index = {g: i for i, g in enumerate(ids)}
    ent = dyna["entity_id"].cast(pl.String)
    rows = ent.replace_strict(ids, list(range(len(ids))), default=-1,
                              return_dtype=pl.Int64).to_numpy()
    if (rows < 0).any():
        bad = ent[int(np.flatnonzero(rows < 0)[0])]
        msg = f"{where}: entity_id {bad!r} is not a geo_id of {files['.geo'].name}; fix the files"
        raise UserError(msg)
    times = to_datetime(dyna["time"], where=where)
    uniq = np.unique(times)
    if interval is None:
        if len(uniq) < 2:
            msg = f"{where}: fewer than two distinct times; cannot infer the interval, pass --interval"
            raise UserError(msg)
        gaps, counts = np.unique(np.diff(uniq).astype(np.int64), return_counts=True)
        interval_s = int(gaps[np.argmax(counts)])
    else:
        interval_s = interval if isinstance(interval, int) else parse_interval(interval)
    pos_u, length = grid_positions(uniq, interval_s, where=where)
    step = pos_u[np.searchsorted(uniq, times)]
    # one value per (entity, time): repeated rows are an error, not silently averaged
    key = rows * length + step
    dup = repeated_key(key, len(ids) * length)
    if dup is not None:
        msg = f"{where}: entity {ids[dup // length]} has several rows at one time; remove duplicate rows"
        raise UserError(msg)
    back = (rows[1:] == rows[:-1]) & (np.diff(times).astype(np.int64) < 0)
    if back.any():
        r = int(np.flatnonzero(back)[0]) + 1
        msg = (f"{where}: times of entity {ids[rows[r]]} go backwards at data row {r + 1} "
               f"({times[r]}); sort the .dyna file by entity_id and time")
        raise UserError(msg)
    Y = np.full((len(ids), length), np.nan)
    Y[rows, step] = dyna[column].cast(pl.Float64).to_numpy()
    notes: list[str] = []
    filled = len(ids) * length - len(key)
    if filled:
        notes.append(f"{filled} (entity, time) values absent from {files['.dyna'].name} set to NaN")
    apply_missing(Y, missing, notes)
    indptr = indices = None
    if files[".rel"] is not None:
        rel = _read(files[".rel"], ".rel")
        o = rel["origin_id"].cast(pl.String).to_list()
        d = rel["destination_id"].cast(pl.String).to_list()
        pairs = {(index[a], index[b]) for a, b in zip(o, d, strict=True)
                 if a in index and b in index and a != b}
        pairs |= {(b, a) for a, b in pairs}
        src = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        indptr = np.searchsorted(src[:, 0], np.arange(len(ids) + 1)).astype(np.int64)
        indices = src[:, 1].copy()
    else:
        notes.append("no .rel file: spatial neighbours fall back to correlation")
    return Panel(Y, ids, times.min(), interval_s, indptr, indices, notes)
