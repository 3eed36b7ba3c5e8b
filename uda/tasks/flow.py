"""Flow prediction task: targets from a dataset with Polars or Dask, scored by the block evaluator.

The forecasters, the protocol and the evaluator are in :mod:`uda.forecasting`; this module
builds the targets (traffic blocks of whole files, station counts) and the neighbour pairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.contract import DAY_MS, TRAFFIC_INTERVAL_S
from uda.engines import Progress, check_engine, dask_scheduler
from uda.errors import UserError
from uda.forecasting.evaluation import Plan, evaluate_blocks, slices
from uda.forecasting.protocol import (
    DEFAULT_HORIZONS,
    DEFAULT_SPLIT,
    dropped_note,
    finish,
    resolve_horizons,
)
from uda.forecasting.registry import DEFAULT_MODELS, needs_neighbours, resolve_models
from uda.kernels.grid import pivot_mean
from uda.store import Dataset, open_dataset
from uda.tasks.base import TaskResult

#: Step of the station targets: tap-ins and tap-outs counted per 15 minutes.
STATION_INTERVAL_S = 900
_TRAFFIC_STEP_MS = TRAFFIC_INTERVAL_S * 1000  # the traffic sensors' sampling interval (uda.contract)
_STATION_STEP_MS = STATION_INTERVAL_S * 1000

#: Target name -> (table, value column or None for tap counts, step in seconds).
TARGETS = {
    "traffic": ("traffic", "flow", TRAFFIC_INTERVAL_S),
    "speed": ("traffic", "speed", TRAFFIC_INTERVAL_S),
    "stations": ("taps", None, STATION_INTERVAL_S),
}


# --------------------------------------------------------------------------- shared helpers


def pivot(rows: np.ndarray, steps: np.ndarray, values: np.ndarray, n: int, n_time: int,
          *, fill: float = np.nan) -> np.ndarray:
    """Scatter long ``(row, step, value)`` records into an ``(n, n_time)`` matrix.

    Repeated ``(row, step)`` records are averaged; missing values are ignored; cells without
    a value get ``fill`` (:func:`uda.kernels.grid.pivot_mean`).
    """
    steps = np.asarray(steps)
    if steps.dtype.kind == "f":  # a null time read as NaN (Polars' to_numpy of a nullable column)
        steps = np.where(np.isnan(steps), -1, steps).astype(np.int64)
    return pivot_mean(np.asarray(rows), steps, np.asarray(values, dtype=np.float64), int(n), int(n_time),
                      float(fill))


def grid(min_ms: int, max_ms: int, interval_s: int) -> tuple[int, int]:
    """Start (midnight of the first day, ms) and length of whole-day grid covering the data."""
    t0 = (min_ms // DAY_MS) * DAY_MS
    days = (max_ms - t0) // DAY_MS + 1
    return int(t0), int(days * 86400 // interval_s)


def _ms(values: Any) -> np.ndarray:
    return np.asarray(values).astype("datetime64[ms]").astype(np.int64)


def sensor_pairs(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of neighbouring sensor ids (both directions): their links share a node."""
    import polars as pl

    sensors = ds.read("sensors").select("sensor_id", "link_id")
    links = ds.read("links").select("link_id", "from_node", "to_node")
    sl = sensors.join(links, on="link_id", how="inner")
    ends = pl.concat([sl.select("sensor_id", node="from_node"), sl.select("sensor_id", node="to_node")])
    pairs = (ends.join(ends, on="node", suffix="_nb").filter(pl.col.sensor_id != pl.col.sensor_id_nb)
             .select("sensor_id", "sensor_id_nb").unique())
    return (pairs["sensor_id"].to_numpy().astype(np.int64),
            pairs["sensor_id_nb"].to_numpy().astype(np.int64))


def station_pairs(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of neighbouring station series: linked stations, same direction.

    A station series id is ``2 * station_id + direction``.
    """
    tl = ds.read("transit_links")
    a = tl["from_station"].to_numpy().astype(np.int64)
    b = tl["to_station"].to_numpy().astype(np.int64)
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    return np.concatenate([2 * src, 2 * src + 1]), np.concatenate([2 * dst, 2 * dst + 1])


# --------------------------------------------------------------------------- blocks of series

#: Default memory of one block of traffic series (float64 values), MiB. Fitting a block
#: with every model takes about 25 times this at its peak (the ridge family's feature panels,
#: the neighbours' series), and Dask fits one per worker thread at once.
DEFAULT_BLOCK_MB = 32
#: Blocks made at least (when there are enough files), so that every Dask worker has work.
MIN_BLOCKS = 8


@dataclass
class TrafficLayout:
    """How the traffic table's files are grouped into blocks of whole sensors.

    Attributes
    ----------
    blocks
        Per block, the indices of its files (a sensor's rows are never split between blocks).
    lo, hi
        Least and greatest sensor id of each block (ascending, disjoint ranges).
    t0, n_time
        Start (midnight of the first day, ms) and length of the 5-minute grid.
    """

    blocks: list[list[int]]
    lo: np.ndarray
    hi: np.ndarray
    t0: int
    n_time: int

    @classmethod
    def of(cls, ds: Dataset, *, block_mb: float = DEFAULT_BLOCK_MB) -> TrafficLayout:
        """Blocks of about ``block_mb`` MiB of series, from the files' Parquet statistics."""
        s_lo, s_hi, rows = ds.file_ranges("traffic", "sensor_id")
        t_lo, t_hi, _ = ds.file_ranges("traffic", "ts")
        files = sorted((i for i, r in enumerate(rows) if r), key=lambda i: (s_lo[i], s_hi[i]))
        if not files:
            msg = f"dataset {ds.path} has no traffic rows; generate it with traffic data"
            raise UserError(msg)
        t0, n_time = grid(int(_ms(np.datetime64(min(t_lo[i] for i in files), "ms"))),
                          int(_ms(np.datetime64(max(t_hi[i] for i in files), "ms"))), TRAFFIC_INTERVAL_S)
        # files whose sensor ranges overlap go together, so a sensor lives in one block
        groups: list[list[int]] = []
        top = None
        for i in files:
            if groups and s_lo[i] <= top:
                groups[-1].append(i)
                top = max(top, s_hi[i])
            else:
                groups.append([i])
                top = s_hi[i]
        series = [sum(rows[i] for i in g) / n_time for g in groups]  # if no reading is missing
        total = sum(series)
        target = min(block_mb * 2**20 / (8 * n_time), total / min(MIN_BLOCKS, len(groups)))
        blocks: list[list[int]] = []
        size = 0.0
        for g, n in zip(groups, series, strict=True):
            if blocks and size + n <= target * 1.05:
                blocks[-1] += g
                size += n
            else:
                blocks.append(list(g))
                size = n
        lo = np.array([min(s_lo[i] for i in b) for b in blocks], dtype=np.int64)
        hi = np.array([max(s_hi[i] for i in b) for b in blocks], dtype=np.int64)
        return cls(blocks, lo, hi, t0, n_time)


# --------------------------------------------------------------------------- targets: Polars


def _traffic_block_polars(ds: Dataset, files: list[int], column: str, t0: int,
                          n_time: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor ids (ascending) and 5-minute matrix of ``column`` read from ``files`` with Polars."""
    import polars as pl

    df = (ds.scan("traffic", files=files)
          .select("sensor_id", step=(pl.col.ts.cast(pl.Datetime("ms")).cast(pl.Int64) - t0) // _TRAFFIC_STEP_MS,
                  value=pl.col(column).cast(pl.Float64))
          .collect())
    return _sensor_matrix(df["sensor_id"].to_numpy(), df["step"].to_numpy(), df["value"].to_numpy(), n_time)


def _sensor_matrix(sid: np.ndarray, step: np.ndarray, values: np.ndarray,
                   n_time: int) -> tuple[np.ndarray, np.ndarray]:
    """Long ``(sensor, step, value)`` rows -> sensor ids (ascending) and their matrix."""
    sid = sid.astype(np.int64)
    ids = np.unique(sid)
    return ids, pivot(np.searchsorted(ids, sid), step, values, len(ids), n_time)


def traffic_panel_polars(ds: Dataset, *, column: str = "flow") -> tuple[np.ndarray, np.ndarray, int]:
    """Per-sensor 5-minute series of ``column`` with Polars, all sensors at once.

    Returns
    -------
    ids : (n,) int64 sensor ids, ascending
    Y : (n, T) float64, NaN where no reading
    t0_ms : start of the grid (midnight of the first day) in ms
    """
    layout = TrafficLayout.of(ds)
    files = [i for block in layout.blocks for i in block]
    return (*_traffic_block_polars(ds, files, column, layout.t0, layout.n_time), layout.t0)


def station_panel_polars(ds: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-station inflow (tap-ins) and outflow (tap-outs) per 15 minutes with Polars.

    Series id ``2 * station_id + direction`` (0 = in, 1 = out), ascending; counts are 0
    where nobody tapped.
    """
    import polars as pl

    stations = np.sort(ds.read("stations")["station_id"].to_numpy().astype(np.int64))
    lf = ds.scan("taps").select("station_id", "ts", "direction")
    b = lf.select(lo=pl.col.ts.min(), hi=pl.col.ts.max()).collect()
    if b["lo"][0] is None:
        msg = f"dataset {ds.path} has no taps; generate it with passenger data"
        raise UserError(msg)
    t0, n_time = grid(int(_ms(b["lo"].to_numpy())[0]), int(_ms(b["hi"].to_numpy())[0]), STATION_INTERVAL_S)
    counts = (lf.with_columns(step=(pl.col.ts.cast(pl.Datetime("ms")).cast(pl.Int64) - t0) // _STATION_STEP_MS,
                              sid=2 * pl.col.station_id.cast(pl.Int64) + pl.col.direction.cast(pl.Int64))
              .group_by("sid", "step").agg(n=pl.len()).collect())
    ids = np.sort(np.concatenate([2 * stations, 2 * stations + 1]))
    return ids, _station_matrix(ids, counts["sid"].to_numpy(), counts["step"].to_numpy(),
                                counts["n"].to_numpy(), n_time), t0


def _station_matrix(ids, sid, step, n, n_time):
    sid = np.asarray(sid, dtype=np.int64)
    pos = np.searchsorted(ids, sid)
    known = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == sid)
    if not known.all():
        bad = int(sid[~known][0]) // 2
        msg = f"taps mention station {bad}, which is not in the stations table; regenerate the dataset"
        raise UserError(msg)
    Y = np.zeros((len(ids), n_time))
    np.add.at(Y, (pos, np.asarray(step, dtype=np.int64)), np.asarray(n, dtype=np.float64))
    return Y


# --------------------------------------------------------------------------- targets: Dask


def _traffic_block(column: str, t0: int, n_time: int, *dfs) -> tuple[np.ndarray, np.ndarray]:
    """Partitions (pandas) of whole sensors -> their sensor ids (ascending) and 5-minute matrix."""
    import pandas as pd

    df = dfs[0] if len(dfs) == 1 else pd.concat(dfs, ignore_index=True)
    return _sensor_matrix(df["sensor_id"].to_numpy(), (_ms(df["ts"].to_numpy()) - t0) // _TRAFFIC_STEP_MS,
                          df[column].to_numpy(dtype=np.float64, na_value=np.nan), n_time)


def traffic_blocks_dask(ds: Dataset, layout: TrafficLayout, *, column: str = "flow") -> list:
    """One delayed ``(ids, Y)`` per block of ``layout``, read with Dask (a partition per file)."""
    import dask

    parts = ds.dask("traffic", columns=["sensor_id", "ts", column]).to_delayed()
    return [dask.delayed(_traffic_block)(column, layout.t0, layout.n_time, *[parts[i] for i in block])
            for block in layout.blocks]


def station_panel_dask(ds: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-station inflow and outflow per 15 minutes with Dask (same result as Polars)."""
    import dask

    stations = np.sort(ds.read("stations")["station_id"].to_numpy().astype(np.int64))
    ddf = ds.dask("taps", columns=["station_id", "ts", "direction"])
    lo, hi = dask.compute(ddf.ts.min(), ddf.ts.max())
    if lo is None or (isinstance(lo, float) and np.isnan(lo)):
        msg = f"dataset {ds.path} has no taps; generate it with passenger data"
        raise UserError(msg)
    t0, n_time = grid(int(_ms(np.datetime64(lo, "ms"))), int(_ms(np.datetime64(hi, "ms"))), STATION_INTERVAL_S)

    def keys(df):
        out = df[["station_id"]].copy()
        out["sid"] = 2 * df["station_id"].astype("int64") + df["direction"].astype("int64")
        out["step"] = (_ms(df["ts"].to_numpy()) - t0) // _STATION_STEP_MS
        return out[["sid", "step"]]

    counts = ddf.map_partitions(keys, meta={"sid": "int64", "step": "int64"}).groupby(
        ["sid", "step"]).size().compute().reset_index()
    ids = np.sort(np.concatenate([2 * stations, 2 * stations + 1]))
    return ids, _station_matrix(ids, counts["sid"].to_numpy(), counts["step"].to_numpy(),
                                counts.iloc[:, 2].to_numpy(), n_time), t0


def traffic_panel_dask(ds: Dataset, *, column: str = "flow") -> tuple[np.ndarray, np.ndarray, int]:
    """The traffic target assembled from the Dask blocks (ids ascending), for comparisons."""
    import dask

    layout = TrafficLayout.of(ds)
    got = dask.compute(*traffic_blocks_dask(ds, layout, column=column))
    ids = np.concatenate([b[0] for b in got])
    Y = np.concatenate([b[1] for b in got])
    order = np.argsort(ids, kind="stable")
    return ids[order], Y[order], layout.t0


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
        target: str = "traffic", models: str | list[str] = DEFAULT_MODELS,
        horizons: str | list[int] = DEFAULT_HORIZONS,
        split: tuple[float, float, float] = DEFAULT_SPLIT, origin_step: int = 1,
        block_mb: float = DEFAULT_BLOCK_MB, progress: Progress | None = None) -> TaskResult:
    """Build the flow target from a dataset and score forecasters on it.

    Traffic targets stream: sensors are cut into blocks of whole files, and each block is
    read, fitted and scored before it is dropped, so memory is bounded by the block size,
    not the dataset. The neighbour model (``ridge_sp``) gets the few neighbouring series it
    needs from the adjacent blocks. Station targets are small and built whole.

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine
        ``"polars"`` (blocks read with Polars, one after the other; the kernels use every
        core) or ``"dask"`` (a task per block, spread over the scheduler's workers).
    scheduler
        Dask scheduler (``threads``, ``processes``, ``sync``, ``local[:N]`` or an address).
    target
        ``"traffic"`` (flow per sensor, 5 min), ``"speed"`` (speed per sensor, 5 min) or
        ``"stations"`` (inflow and outflow per station, 15 min).
    models, horizons, split, origin_step
        See :func:`uda.forecasting.evaluation.evaluate`.
    block_mb
        Size of one block of traffic series in memory (MiB); fitting needs about ten
        times this per block at its peak.
    progress
        ``progress(stage, done, total)`` called as blocks are done.

    Returns
    -------
    TaskResult
        ``answer``: MAE, RMSE, MAPE and counts as ``(n_models, n_horizons)`` arrays;
        ``summary``: the full report (per-horizon metrics, skill, protocol, notes).
    """
    check_engine(engine)
    if target not in TARGETS:
        msg = f"unknown --target {target!r}; choose one of: {', '.join(TARGETS)}"
        raise UserError(msg)
    if not block_mb > 0:
        msg = f"--block-mb must be positive; got {block_mb}"
        raise UserError(msg)
    names = resolve_models(models)
    h = resolve_horizons(horizons)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    table, column, interval_s = TARGETS[target]
    entry = ds.table(table)
    spatial = needs_neighbours(names)
    with dask_scheduler(scheduler if engine == "dask" else "sync"):
        if target == "stations":
            ids, Y, t0 = station_panel_polars(ds) if engine == "polars" else station_panel_dask(ds)
            loads, lo, hi = slices(ids, Y, 4, engine)
            n_time = Y.shape[1]
            pairs = station_pairs(ds) if spatial else None
        else:
            layout = TrafficLayout.of(ds, block_mb=block_mb)
            t0, n_time, lo, hi = layout.t0, layout.n_time, layout.lo, layout.hi
            if engine == "polars":
                loads = [lambda b=b: _traffic_block_polars(ds, b, column, t0, n_time) for b in layout.blocks]
            else:
                loads = traffic_blocks_dask(ds, layout, column=column)
            pairs = sensor_pairs(ds) if spatial else None
        start = np.datetime64(int(t0), "ms").astype("datetime64[s]")
        merged, proto, n_used, dropped = evaluate_blocks(
            loads, Plan.of(lo, hi, pairs), engine=engine, n_time=n_time, start=start,
            interval_s=interval_s, models=names, horizons=h, split=split, origin_step=origin_step,
            progress=progress)
    res = finish(merged, proto, series=n_used, start=start, interval_s=interval_s,
                 notes=dropped_note([str(i) for i in np.sort(dropped)]))
    res["models"] = {m: res["models"][m] for m in names}
    res.update(engine=engine, target=target, dataset=str(ds.path))
    hs = [str(int(x)) for x in h]
    answer = {k: np.array([[res["models"][m][x][k] for x in hs] for m in names])
              for k in ("mae", "rmse", "mape", "n")}
    quality = {f"{m}_mae_h{x}": res["models"][m][x]["mae"] for m in names for x in hs}
    return TaskResult(task="flow", engine=engine, answer=answer, quality=quality,
                      rows_in=int(entry["rows"]), bytes_in=int(entry["bytes"]), summary=res)
