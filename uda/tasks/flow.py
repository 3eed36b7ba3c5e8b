"""Flow prediction task: targets from a dataset with Polars or Dask, batched forecasters, scores."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.forecast import (
    DEFAULT_SPLIT,
    MODELS,
    Calendar,
    Context,
    Panel,
    Protocol,
    block_error_sums,
    finish,
    make_protocol,
    merge_block_sums,
    neighbour_signal,
    resolve_horizons,
    resolve_models,
    usable_series,
)
from uda.store import Dataset, open_dataset
from uda.tasks.base import TaskResult

#: Target name -> (table, value column or None for tap counts, step in seconds).
TARGETS = {
    "traffic": ("traffic", "flow", 300),
    "speed": ("traffic", "speed", 300),
    "stations": ("taps", None, 900),
}
DEFAULT_MODELS = "last,snaive_day,snaive_week,ha,hw,ridge,ridge_sp"
DEFAULT_HORIZONS = "1,3,6,12"
_DAY_MS = 86_400_000


# --------------------------------------------------------------------------- shared helpers


def pivot(rows: np.ndarray, steps: np.ndarray, values: np.ndarray, n: int, n_time: int,
          *, fill: float = np.nan) -> np.ndarray:
    """Scatter long ``(row, step, value)`` records into an ``(n, n_time)`` matrix.

    Repeated ``(row, step)`` records are averaged; missing values are ignored; cells without
    a value get ``fill``.
    """
    key = rows.astype(np.int64) * n_time + steps.astype(np.int64)
    ok = ~np.isnan(values) & (steps >= 0) & (steps < n_time)
    sums = np.bincount(key[ok], weights=values[ok], minlength=n * n_time)
    cnt = np.bincount(key[ok], minlength=n * n_time)
    with np.errstate(invalid="ignore"):
        out = np.where(cnt > 0, sums / np.maximum(cnt, 1), fill)
    return out.reshape(n, n_time)


def grid(min_ms: int, max_ms: int, interval_s: int) -> tuple[int, int]:
    """Start (midnight of the first day, ms) and length of whole-day grid covering the data."""
    t0 = (min_ms // _DAY_MS) * _DAY_MS
    days = (max_ms - t0) // _DAY_MS + 1
    return int(t0), int(days * 86400 // interval_s)


def _ms(values: Any) -> np.ndarray:
    return np.asarray(values).astype("datetime64[ms]").astype(np.int64)


def sensor_adjacency(ds: Dataset, sensor_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensors are neighbours when their links share a node (CSR over ``sensor_ids`` order)."""
    import polars as pl

    sensors = ds.read("sensors").select("sensor_id", "link_id")
    links = ds.read("links").select("link_id", "from_node", "to_node")
    sl = sensors.join(links, on="link_id", how="inner")
    ends = pl.concat([sl.select("sensor_id", node="from_node"), sl.select("sensor_id", node="to_node")])
    pairs = (ends.join(ends, on="node", suffix="_nb").filter(pl.col.sensor_id != pl.col.sensor_id_nb)
             .select("sensor_id", "sensor_id_nb").unique())
    return _csr(pairs["sensor_id"].to_numpy(), pairs["sensor_id_nb"].to_numpy(), sensor_ids)


def station_adjacency(ds: Dataset, series_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Station series are neighbours when their stations are linked and the direction matches."""
    tl = ds.read("transit_links")
    a = tl["from_station"].to_numpy().astype(np.int64)
    b = tl["to_station"].to_numpy().astype(np.int64)
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    # series id = 2 * station_id + direction
    s2 = np.concatenate([2 * src, 2 * src + 1])
    d2 = np.concatenate([2 * dst, 2 * dst + 1])
    return _csr(s2, d2, series_ids)


def _csr(src: np.ndarray, dst: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    def index(x):
        pos = np.searchsorted(ids, x, sorter=order)
        pos = np.minimum(pos, len(ids) - 1)
        hit = ids[order[pos]] == x
        return np.where(hit, order[pos], -1)
    s, d = index(np.asarray(src, dtype=np.int64)), index(np.asarray(dst, dtype=np.int64))
    keep = (s >= 0) & (d >= 0) & (s != d)
    pairs = np.unique(np.stack([s[keep], d[keep]], axis=1), axis=0).reshape(-1, 2)
    indptr = np.searchsorted(pairs[:, 0], np.arange(len(ids) + 1)).astype(np.int64)
    return indptr, pairs[:, 1].astype(np.int64).copy()


# --------------------------------------------------------------------------- targets: Polars


def traffic_panel_polars(ds: Dataset, *, column: str = "flow") -> tuple[np.ndarray, np.ndarray, int]:
    """Per-sensor 5-minute series of ``column`` with Polars.

    Returns
    -------
    ids : (n,) int64 sensor ids, ascending
    Y : (n, T) float64, NaN where no reading
    t0_ms : start of the grid (midnight of the first day) in ms
    """
    import polars as pl

    lf = ds.scan("traffic").select("sensor_id", "ts", column)
    b = lf.select(lo=pl.col.ts.min(), hi=pl.col.ts.max()).collect()
    if b["lo"][0] is None:
        msg = f"dataset {ds.path} has no traffic rows; generate it with traffic data"
        raise UserError(msg)
    t0, n_time = grid(int(_ms(b["lo"].to_numpy())[0]), int(_ms(b["hi"].to_numpy())[0]), 300)
    df = (lf.with_columns(step=(pl.col.ts.cast(pl.Datetime("ms")).cast(pl.Int64) - t0) // 300_000)
          .select("sensor_id", "step", pl.col(column).cast(pl.Float64)).collect())
    sid = df["sensor_id"].to_numpy().astype(np.int64)
    ids = np.unique(sid)
    Y = pivot(np.searchsorted(ids, sid), df["step"].to_numpy(), df[column].to_numpy(), len(ids), n_time)
    return ids, Y, t0


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
    t0, n_time = grid(int(_ms(b["lo"].to_numpy())[0]), int(_ms(b["hi"].to_numpy())[0]), 900)
    counts = (lf.with_columns(step=(pl.col.ts.cast(pl.Datetime("ms")).cast(pl.Int64) - t0) // 900_000,
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


def _traffic_block(df, column: str, t0: int, n_time: int) -> tuple[np.ndarray, np.ndarray]:
    """One partition (pandas) -> its sensors' ids and 5-minute matrix."""
    sid = df["sensor_id"].to_numpy().astype(np.int64)
    ids = np.unique(sid)
    step = (_ms(df["ts"].to_numpy()) - t0) // 300_000
    vals = df[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return ids, pivot(np.searchsorted(ids, sid), step, vals, len(ids), n_time)


def traffic_blocks_dask(ds: Dataset, *, column: str = "flow") -> tuple[list, int, int]:
    """Delayed ``(ids, Y)`` per traffic file (sensors never span files), grid start and length."""
    import dask

    ddf = ds.dask("traffic", columns=["sensor_id", "ts", column])
    lo, hi = dask.compute(ddf.ts.min(), ddf.ts.max())
    if lo is None or (isinstance(lo, float) and np.isnan(lo)):
        msg = f"dataset {ds.path} has no traffic rows; generate it with traffic data"
        raise UserError(msg)
    t0, n_time = grid(int(_ms(np.datetime64(lo, "ms"))), int(_ms(np.datetime64(hi, "ms"))), 300)
    parts = ddf.to_delayed()
    return [dask.delayed(_traffic_block)(p, column, t0, n_time) for p in parts], t0, n_time


def station_panel_dask(ds: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-station inflow and outflow per 15 minutes with Dask (same result as Polars)."""
    import dask

    stations = np.sort(ds.read("stations")["station_id"].to_numpy().astype(np.int64))
    ddf = ds.dask("taps", columns=["station_id", "ts", "direction"])
    lo, hi = dask.compute(ddf.ts.min(), ddf.ts.max())
    if lo is None or (isinstance(lo, float) and np.isnan(lo)):
        msg = f"dataset {ds.path} has no taps; generate it with passenger data"
        raise UserError(msg)
    t0, n_time = grid(int(_ms(np.datetime64(lo, "ms"))), int(_ms(np.datetime64(hi, "ms"))), 900)

    def keys(df):
        out = df[["station_id"]].copy()
        out["sid"] = 2 * df["station_id"].astype("int64") + df["direction"].astype("int64")
        out["step"] = (_ms(df["ts"].to_numpy()) - t0) // 900_000
        return out[["sid", "step"]]

    counts = ddf.map_partitions(keys, meta={"sid": "int64", "step": "int64"}).groupby(
        ["sid", "step"]).size().compute().reset_index()
    ids = np.sort(np.concatenate([2 * stations, 2 * stations + 1]))
    return ids, _station_matrix(ids, counts["sid"].to_numpy(), counts["step"].to_numpy(),
                                counts.iloc[:, 2].to_numpy(), n_time), t0


def traffic_panel_dask(ds: Dataset, *, column: str = "flow") -> tuple[np.ndarray, np.ndarray, int]:
    """The traffic target assembled from the Dask blocks (ids ascending), for comparisons."""
    import dask

    blocks, t0, _ = traffic_blocks_dask(ds, column=column)
    got = dask.compute(*blocks)
    ids = np.concatenate([b[0] for b in got])
    Y = np.concatenate([b[1] for b in got])
    order = np.argsort(ids, kind="stable")
    return ids[order], Y[order], t0


# --------------------------------------------------------------------------- evaluation


def _fit_block(block, nb, usable, proto: Protocol, cal: Calendar, models: list[str]):
    """Fit and score one block of series (rows not usable are skipped)."""
    Y = block[1]
    ctx = Context(cal, None if nb is None else nb[usable])
    return block_error_sums(Y[usable], ctx, proto, models) if usable.any() else {}


def _block_usable(block, train_end: int) -> np.ndarray:
    return usable_series(block[1], train_end)


def _neighbours(blocks, usables, train_end: int, indptr, indices) -> list[np.ndarray]:
    """The neighbour signal for every block, computed over all series."""
    Y = np.concatenate([b[1] for b in blocks])
    keep = np.concatenate(usables)
    Y = np.where(keep[:, None], Y, np.nan)
    nb = neighbour_signal(Y, train_end, indptr, indices)
    sizes = np.cumsum([0] + [len(b[0]) for b in blocks])
    return [nb[sizes[k]:sizes[k + 1]] for k in range(len(blocks))]


def evaluate_blocks(blocks: list, *, engine: str, n_time: int, start: np.datetime64,
                    interval_s: int, models: list[str], horizons: np.ndarray,
                    split: tuple[float, float, float], origin_step: int,
                    adjacency=None) -> tuple[dict[str, Any], int, list[str]]:
    """Fit and score ``models`` block by block (Dask: one task per block; Polars: in turn).

    ``blocks`` are ``(ids, Y)`` pairs (Dask: delayed). ``adjacency(ids) -> (indptr, indices)``
    gives neighbours over the concatenated ids, else the most correlated series are used.
    Returns the merged sums, the number of usable series and notes.
    """
    import dask

    from uda.forecast import correlation_neighbours

    proto = make_protocol(n_time, 86400 // interval_s, horizons, split=split, origin_step=origin_step)
    cal = Calendar.regular(start, interval_s, n_time)
    need_nb = any(MODELS[m].needs_neighbours for m in models)
    notes: list[str] = []
    lazy = engine == "dask"
    if lazy:
        blocks = list(dask.persist(*blocks))
        usables = dask.compute(*[dask.delayed(_block_usable)(b, proto.train_end) for b in blocks])
        ids = np.concatenate(dask.compute(*[dask.delayed(lambda b: b[0])(b) for b in blocks]))
    else:
        usables = [_block_usable(b, proto.train_end) for b in blocks]
        ids = np.concatenate([b[0] for b in blocks])
    usables = list(usables)
    keep = np.concatenate(usables)
    if not keep.any():
        msg = "every series is missing throughout the training period; nothing to forecast"
        raise UserError(msg)
    if not keep.all():
        dropped = [str(i) for i in ids[~keep]]
        notes.append(f"dropped {len(dropped)} series with no observation in the training period: "
                     + ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else ""))
    nbs: list = [None] * len(blocks)
    if need_nb:
        if adjacency is not None:
            indptr, indices = adjacency(ids)
        else:
            if lazy:
                full = np.concatenate([b[1] for b in dask.compute(*blocks)])
            else:
                full = np.concatenate([b[1] for b in blocks])
            full = np.where(keep[:, None], full, np.nan)
            indptr, indices = correlation_neighbours(full, proto.train_end)
            notes.append("no adjacency given: neighbours are the 4 most correlated series over the "
                         "training period")
        if lazy:
            nb_all = dask.delayed(_neighbours, nout=len(blocks))(blocks, usables, proto.train_end,
                                                                 indptr, indices)
            nbs = [nb_all[k] for k in range(len(blocks))]
        else:
            nbs = _neighbours(blocks, usables, proto.train_end, indptr, indices)
    if lazy:
        parts = dask.compute(*[dask.delayed(_fit_block)(b, nbs[k], usables[k], proto, cal, models)
                               for k, b in enumerate(blocks)])
    else:
        parts = [_fit_block(b, nbs[k], usables[k], proto, cal, models) for k, b in enumerate(blocks)]
    merged = merge_block_sums([p for p in parts if p])
    return {"merged": merged, "proto": proto}, int(keep.sum()), notes


def evaluate_panel(panel: Panel, *, engine: str = "polars", scheduler: str | None = None,
                   models: str | list[str] = DEFAULT_MODELS,
                   horizons: str | list[int] = DEFAULT_HORIZONS,
                   split: tuple[float, float, float] = DEFAULT_SPLIT, origin_step: int = 1,
                   partitions: int = 4) -> dict[str, Any]:
    """Evaluate forecasters on an imported panel; Dask fits ``partitions`` blocks of series."""
    check_engine(engine)
    names = resolve_models(models)
    h = resolve_horizons(horizons)
    Y = panel.values
    labels = np.asarray(panel.ids, dtype=object)
    if engine == "dask":
        import dask

        edges = np.linspace(0, Y.shape[0], min(partitions, Y.shape[0]) + 1).astype(int)
        blocks = [dask.delayed((labels[a:b], Y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    else:
        blocks = [(labels, Y)]
    adjacency = None
    if panel.indptr is not None:
        def adjacency(_ids):
            return panel.indptr, panel.indices
    with dask_scheduler(scheduler if engine == "dask" else "sync"):
        out, n_used, notes = evaluate_blocks(blocks, engine=engine, n_time=Y.shape[1],
                                             start=panel.start, interval_s=panel.interval_s,
                                             models=names, horizons=h, split=split,
                                             origin_step=origin_step, adjacency=adjacency)
    res = finish(out["merged"], out["proto"], series=n_used, start=panel.start,
                 interval_s=panel.interval_s, notes=panel.notes + notes)
    res["models"] = {m: res["models"][m] for m in names}
    res["engine"] = engine
    return res


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
        target: str = "traffic", models: str | list[str] = DEFAULT_MODELS,
        horizons: str | list[int] = DEFAULT_HORIZONS,
        split: tuple[float, float, float] = DEFAULT_SPLIT, origin_step: int = 1) -> TaskResult:
    """Build the flow target from a dataset and score forecasters on it.

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine
        ``"polars"`` (targets with Polars, one block of series) or ``"dask"`` (targets per
        file with Dask, fitting per partition of sensors).
    scheduler
        Dask scheduler (``threads``, ``processes``, ``sync`` or an address).
    target
        ``"traffic"`` (flow per sensor, 5 min), ``"speed"`` (speed per sensor, 5 min) or
        ``"stations"`` (inflow and outflow per station, 15 min).
    models, horizons, split, origin_step
        See :func:`uda.forecast.evaluate`.

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
    names = resolve_models(models)
    h = resolve_horizons(horizons)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    table, column, interval_s = TARGETS[target]
    entry = ds.table(table)
    with dask_scheduler(scheduler if engine == "dask" else "sync"):
        if target == "stations":
            ids, Y, t0 = station_panel_polars(ds) if engine == "polars" else station_panel_dask(ds)
            if engine == "dask":
                import dask

                edges = np.linspace(0, len(ids), min(4, len(ids)) + 1).astype(int)
                blocks = [dask.delayed((ids[a:b], Y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
            else:
                blocks = [(ids, Y)]
            n_time = Y.shape[1]

            def adjacency(all_ids):
                return station_adjacency(ds, all_ids)
        else:
            if engine == "polars":
                ids, Y, t0 = traffic_panel_polars(ds, column=column)
                blocks, n_time = [(ids, Y)], Y.shape[1]
            else:
                blocks, t0, n_time = traffic_blocks_dask(ds, column=column)

            def adjacency(all_ids):
                return sensor_adjacency(ds, all_ids)
        start = np.datetime64(int(t0), "ms").astype("datetime64[s]")
        out, n_used, notes = evaluate_blocks(blocks, engine=engine, n_time=n_time, start=start,
                                             interval_s=interval_s, models=names, horizons=h,
                                             split=split, origin_step=origin_step,
                                             adjacency=adjacency)
    res = finish(out["merged"], out["proto"], series=n_used, start=start, interval_s=interval_s,
                 notes=notes)
    res["models"] = {m: res["models"][m] for m in names}
    res.update(engine=engine, target=target, dataset=str(ds.path))
    hs = [str(int(x)) for x in h]
    answer = {k: np.array([[res["models"][m][x][k] for x in hs] for m in names])
              for k in ("mae", "rmse", "mape", "n")}
    quality = {f"{m}_mae_h{x}": res["models"][m][x]["mae"] for m in names for x in hs}
    return TaskResult(task="flow", engine=engine, answer=answer, quality=quality,
                      rows_in=int(entry["rows"]), bytes_in=int(entry["bytes"]), summary=res)
