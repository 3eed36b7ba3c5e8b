"""OD demand: the gravity model, smart-card trip patterns, a given OD matrix file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from uda.arrays import nearest
from uda.errors import UserError
from uda.kernels.assign import all_or_nothing
from uda.routing.travel_times import slot_expr

if TYPE_CHECKING:
    import polars as pl

    from uda.routing.network import CityGraph
    from uda.store import Dataset


def trips_by_slot(df: pl.DataFrame | pl.LazyFrame, slot_minutes: int) -> pl.DataFrame | pl.LazyFrame:
    """Trips (tap-in followed by tap-out of the same card on the same day) counted per
    origin station, destination station and tap-in slot; works on Polars frames.

    The trip rule both engines apply: Polars over the whole taps table, Dask per partition.
    """
    import polars as pl

    keys = ["card_id", "day"]
    return (
        df.with_columns(pl.col("ts").dt.date().alias("day"))
        .sort("card_id", "ts", "direction")
        .with_columns(pl.col("station_id").shift(-1).over(keys).alias("dest_station"),
                      pl.col("direction").shift(-1).over(keys).alias("next_direction"))
        .filter((pl.col("direction") == 0) & (pl.col("next_direction") == 1))
        .with_columns(slot_expr(slot_minutes))
        .group_by(pl.col("station_id").alias("origin_station"), "dest_station", "slot")
        .agg(pl.len().cast(pl.Int64).alias("trips"))
    )


def tap_od(trips: pl.DataFrame, days: int, station_zone: dict[int, int] | np.ndarray, num_zones: int, *,
           slot: int) -> np.ndarray:
    """Zone-to-zone smart-card trips per day starting in ``slot`` (intrazonal trips dropped).

    ``station_zone[station_id]`` is the zone index of each station (``-1``: none).
    """
    t = trips.filter(trips["slot"] == slot)
    zone_of = np.asarray(station_zone)
    o = t["origin_station"].to_numpy().astype(np.int64)
    d = t["dest_station"].to_numpy().astype(np.int64)
    ok = (o >= 0) & (o < zone_of.size) & (d >= 0) & (d < zone_of.size)
    zo = np.where(ok, zone_of[np.clip(o, 0, max(zone_of.size - 1, 0))], -1) if o.size else o
    zd = np.where(ok, zone_of[np.clip(d, 0, max(zone_of.size - 1, 0))], -1) if d.size else d
    keep = (zo >= 0) & (zd >= 0) & (zo != zd)
    out = np.zeros((num_zones, num_zones))
    np.add.at(out, (zo[keep], zd[keep]), t["trips"].to_numpy()[keep].astype(np.float64))
    return out / max(days, 1)


def station_zones(ds: Dataset) -> np.ndarray:
    """Zone index of each station (indexed by ``station_id``): the zone with the nearest centroid."""
    stations = ds.read("stations")
    zones = ds.read("zones").sort("zone_id")
    sid = stations["station_id"].to_numpy().astype(np.int64)
    sx, sy = stations["x"].to_numpy(), stations["y"].to_numpy()
    zx, zy = zones["x"].to_numpy(), zones["y"].to_numpy()
    out = np.full(int(sid.max(initial=-1)) + 1, -1, dtype=np.int64)
    if zx.size and sid.size:
        out[sid] = nearest(sx, sy, zx, zy)
    return out


def tap_demand(pattern: np.ndarray, population: np.ndarray, *, trip_rate: float, slot: int) -> np.ndarray:
    """A smart-card OD ``pattern`` (:func:`tap_od`) scaled to the car demand of the gravity
    model, ``trip_rate * population.sum()``: passengers give the shape of demand, not the number of cars.

    Raises
    ------
    UserError
        No trips between different zones in ``slot``.
    """
    if pattern.sum() <= 0:
        msg = (f"no smart-card trips between different zones start in slot {slot}; "
               "choose another --slot or use the gravity model")
        raise UserError(msg)
    return pattern * (trip_rate * population.sum() / pattern.sum())


def gravity_od(production: np.ndarray, attraction: np.ndarray, cost_s: np.ndarray, *,
               beta_per_min: float = 0.1, max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """Doubly constrained gravity model balanced with Furness iterations.

    ``T[i, j] = a_i * b_j * O_i * D_j * exp(-beta * c_ij)`` (``c`` in minutes), no
    intrazonal trips and no trips between zones without a path; row sums match
    ``production`` and column sums ``attraction`` (rescaled to the production total).

    Parameters
    ----------
    production, attraction
        Trips out of and into each zone (non-negative).
    cost_s
        ``(zones, zones)`` travel costs in seconds (``inf`` where unreachable).
    beta_per_min
        Deterrence per minute of travel.
    max_iter, tol
        Furness iterations and the relative row/column mismatch at which to stop.

    Returns
    -------
    float64 array (zones, zones)
    """
    o = np.asarray(production, dtype=np.float64)
    d = np.asarray(attraction, dtype=np.float64)
    if d.sum() > 0:
        d = d * (o.sum() / d.sum())
    f = np.exp(-beta_per_min * np.asarray(cost_s, dtype=np.float64) / 60.0)
    np.fill_diagonal(f, 0.0)
    f[~np.isfinite(cost_s)] = 0.0
    t = o[:, None] * d[None, :] * f
    for _ in range(max_iter):
        rows = t.sum(axis=1)
        t *= np.divide(o, rows, out=np.zeros_like(o), where=rows > 0)[:, None]
        cols = t.sum(axis=0)
        t *= np.divide(d, cols, out=np.zeros_like(d), where=cols > 0)[None, :]
        rows = t.sum(axis=1)
        if np.all(np.abs(rows - o) <= tol * max(o.max(initial=0.0), 1.0)):
            break
    return t


def gravity_demand(city: CityGraph, *, trip_rate: float, beta_per_min: float) -> np.ndarray:
    """The city's gravity OD: :func:`gravity_od` on ``trip_rate * population`` and jobs over
    the free-flow zone-to-zone skim (never zones x all nodes: that grows with the city squared).

    Absurd rates may overflow to a non-finite total, which the caller refuses.
    """
    free_time = city.free_flow_time_s
    free_skim = all_or_nothing(city.network(free_time, city.centroid), free_time).skim
    with np.errstate(all="ignore"):  # overflow of absurd rates is refused by the caller
        return gravity_od(trip_rate * city.population, city.jobs, free_skim, beta_per_min=beta_per_min)


def read_od_matrix(path: str | os.PathLike, zone_ids: np.ndarray) -> np.ndarray:
    """A given OD matrix from CSV or Parquet with columns ``origin_zone, dest_zone, flow``.

    Raises
    ------
    UserError
        Missing file or columns, unknown zone ids, negative or non-finite flows.
    """
    import polars as pl

    path = Path(path)
    if not path.is_file():
        msg = f"OD matrix file {path} does not exist; give a CSV or Parquet file with origin_zone,dest_zone,flow"
        raise UserError(msg)
    try:
        df = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read OD matrix {path} ({type(exc).__name__}); give a CSV or Parquet file with origin_zone,dest_zone,flow"
        raise UserError(msg) from None
    missing = [c for c in ("origin_zone", "dest_zone", "flow") if c not in df.columns]
    if missing:
        msg = f"OD matrix {path} lacks columns {', '.join(missing)}; it needs origin_zone,dest_zone,flow"
        raise UserError(msg)
    try:
        o = df["origin_zone"].cast(pl.Int64).to_numpy()
        dz = df["dest_zone"].cast(pl.Int64).to_numpy()
        q = df["flow"].cast(pl.Float64).to_numpy()
    except pl.exceptions.PolarsError:
        msg = f"OD matrix {path}: origin_zone/dest_zone must be integers and flow a number"
        raise UserError(msg) from None
    if not (np.isfinite(q).all() and (q >= 0).all()):
        msg = f"OD matrix {path}: flows must be finite and >= 0"
        raise UserError(msg)
    order = np.argsort(zone_ids)
    zs = zone_ids[order]
    io, idd = np.searchsorted(zs, o), np.searchsorted(zs, dz)
    for ids, idx in ((o, io), (dz, idd)):
        bad = (idx >= zs.size) | (zs[np.minimum(idx, zs.size - 1)] != ids)
        if bad.any():
            msg = f"OD matrix {path}: zone {int(ids[bad][0])} is not a zone of the dataset"
            raise UserError(msg)
    out = np.zeros((zone_ids.size, zone_ids.size))
    np.add.at(out, (order[io], order[idd]), q)
    return out
