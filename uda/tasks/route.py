"""``uda run route`` on a generated city: the Polars and Dask aggregations, the run, its output files.

What the run computes (the city graph, travel times, OD demand, assignment, sites) is in
:mod:`uda.routing`; this module holds what depends on the engine (sensor x slot sums and
smart-card trips on Polars or Dask), :func:`run`, which chains the stages, and the files
``--out`` writes (:func:`write_city_results`, and :func:`write_flows` for a TNTP run).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from uda.contract import RANGE_KEYS
from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.kernels.assign import assign, parallel_blocks, warm_up
from uda.kernels.slots import slot_sums
from uda.routing.assignment import RouteAssignment, check_algorithm, check_finite, check_reachable
from uda.routing.network import CityGraph, read_city
from uda.routing.od import (
    gravity_demand,
    read_od_matrix,
    station_zones,
    tap_demand,
    tap_od,
    trips_by_slot,
)
from uda.routing.sites import choose_sites
from uda.routing.travel_times import SOURCE_SENSOR, link_travel_times, peak_slot, slot_expr
from uda.store import Dataset, atomic_write, open_dataset
from uda.tasks.base import TaskResult

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl


#: Files ``uda run route --data ... --out FOLDER`` writes into FOLDER.
RESULT_FILES = ("link_travel_times.parquet", "link_flows.csv", "od.parquet", "sites.csv", "summary.json")


def check_flows_path(path: str | os.PathLike, *, force: bool = True) -> Path:
    """``path`` as a :class:`Path` if a flows CSV can be written there, else a :class:`UserError`.

    An existing file is replaced only with ``force``.
    """
    path = Path(path)
    if path.is_dir():
        msg = f"--out {path} is a folder; give a file name such as flows.csv"
        raise UserError(msg)
    if not path.parent.is_dir():
        msg = f"folder {path.parent} of --out does not exist; create it first"
        raise UserError(msg)
    if not force and (path.exists() or path.is_symlink()):
        msg = f"--out {path} already exists; choose another file name or pass --force to replace it"
        raise UserError(msg)
    return path


def check_results_folder(path: str | os.PathLike, *, force: bool = True) -> Path:
    """``path`` as a :class:`Path` if it can hold route results (a folder or nothing yet).

    A folder already holding route results (:data:`RESULT_FILES`) is reused only with ``force``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        msg = f"--out {path} is a file; give a folder for the route results"
        raise UserError(msg)
    found = [n for n in RESULT_FILES if (path / n).exists()] if path.is_dir() else []
    if found and not force:
        msg = (f"--out {path} already holds route results ({', '.join(found)}); choose another folder "
               "or pass --force to replace them")
        raise UserError(msg)
    return path


def write_flows(ra: RouteAssignment, path: str | os.PathLike) -> Path:
    """Write ``init_node,term_node,flow`` (one row per link) of ``ra`` as CSV, atomically."""
    path = check_flows_path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("init_node,term_node,flow\n")
            for u, v, x in zip(ra.init_node.tolist(), ra.term_node.tolist(), ra.result.flow.tolist(), strict=True):
                f.write(f"{u},{v},{x!r}\n")

    atomic_write(path, write)
    return path


def sensor_slots_polars(ds: Dataset, *, slot_minutes: int = 60, table: str = "traffic") -> pl.DataFrame:
    """Per sensor and time-of-day slot: observations, summed pace (s/m) and summed flow, in Polars.

    Rows with a missing, non-finite or non-positive speed are skipped.

    Returns
    -------
    polars.DataFrame
        ``sensor_id, slot, n_obs, pace_sum, flow_sum`` sorted by sensor and slot.
    """
    import polars as pl

    speed = pl.col("speed").cast(pl.Float64)
    return (
        ds.scan(table).select("sensor_id", "ts", "speed", "flow")
        .filter(speed.is_not_null() & speed.is_finite() & (speed > 0))
        .with_columns(slot_expr(slot_minutes), (3.6 / speed).alias("pace"),
                      pl.col("flow").cast(pl.Float64).fill_null(0.0).fill_nan(0.0))
        .group_by("sensor_id", "slot")
        .agg(pl.len().cast(pl.Int64).alias("n_obs"), pl.col("pace").sum().alias("pace_sum"),
             pl.col("flow").sum().alias("flow_sum"))
        .sort("sensor_id", "slot")
        .collect()
    )


#: A partition whose sensor ids span more than this many ids per row (plus a constant)
#: is keyed by its distinct ids instead of by the dense id range.
_DENSE_FACTOR = 4


def _floats(col: pd.Series) -> np.ndarray:
    """A column as a float32/float64 NumPy array without copying where it already is one."""
    if col.dtype in (np.float32, np.float64):
        return col.to_numpy()
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def sensor_slots_partition(df: pd.DataFrame, slot_minutes: int) -> pd.DataFrame:
    """One partition's ``sensor_id, slot, n_obs, pace_sum, flow_sum`` (the Dask map step).

    One pass of :func:`uda.kernels.slots.slot_sums` over the rows, keyed by the dense
    range of the partition's sensor ids (files hold runs of sensors); only non-empty
    (sensor, slot) pairs are returned.
    """
    import pandas as pd

    num_slots = 1440 // slot_minutes
    sid = df["sensor_id"].to_numpy()
    sid = sid if np.issubdtype(sid.dtype, np.integer) else sid.astype(np.int64)
    ts = df["ts"].to_numpy().astype("datetime64[ms]").view(np.int64)
    speed, flow = _floats(df["speed"]), _floats(df["flow"])
    if sid.size == 0:
        ids, key, lo = np.zeros(0, np.int64), sid.astype(np.int64), 0
    elif (int(sid.max()) - int(sid.min()) + 1) <= _DENSE_FACTOR * sid.size + 100_000:
        lo = int(sid.min())
        ids, key = np.arange(lo, int(sid.max()) + 1, dtype=np.int64), sid
    else:
        (ids, key), lo = np.unique(sid, return_inverse=True), 0
    n_obs, pace, flows = slot_sums(key, ts, speed, flow, lo, ids.size, slot_minutes)
    nz = np.flatnonzero(n_obs)
    return pd.DataFrame({
        "sensor_id": ids[nz // num_slots].astype("int32"),
        "slot": (nz % num_slots).astype("int32"),
        "n_obs": n_obs[nz],
        "pace_sum": pace[nz],
        "flow_sum": flows[nz],
    })


def sensor_slots_dask(ds: Dataset, *, slot_minutes: int = 60, table: str = "traffic") -> pl.DataFrame:
    """As :func:`sensor_slots_polars`, in Dask: one small partial aggregate per file.

    Each partition is reduced where it is read to one row per (sensor, slot) it holds,
    and only those rows travel to the client, which adds up sensors that span files
    (none do in generated datasets) in one small group-by.

    Returns
    -------
    polars.DataFrame
        ``sensor_id, slot, n_obs, pace_sum, flow_sum`` sorted by sensor and slot.
    """
    import pandas as pd
    import polars as pl

    ddf = ds.dask(table, columns=["sensor_id", "ts", "speed", "flow"])
    meta = pd.DataFrame({"sensor_id": pd.Series(dtype="int32"), "slot": pd.Series(dtype="int32"),
                         "n_obs": pd.Series(dtype="int64"), "pace_sum": pd.Series(dtype="float64"),
                         "flow_sum": pd.Series(dtype="float64")})
    parts = ddf.map_partitions(sensor_slots_partition, slot_minutes, meta=meta).compute()
    return (pl.from_pandas(parts)
            .group_by("sensor_id", "slot")
            .agg(pl.col("n_obs").sum(), pl.col("pace_sum").sum(), pl.col("flow_sum").sum())
            .with_columns(pl.col("sensor_id").cast(pl.Int32), pl.col("slot").cast(pl.Int32),
                          pl.col("n_obs").cast(pl.Int64))
            .sort("sensor_id", "slot"))


def tap_trips_polars(ds: Dataset, *, slot_minutes: int = 60) -> tuple[pl.DataFrame, int]:
    """Smart-card trips per (origin station, destination station, slot) in Polars, and the days seen.

    A trip is a tap-in followed by the same card's next tap, a tap-out, on the same day;
    other taps (unmatched, or a trip over midnight) are not counted.
    """
    import polars as pl

    lf = ds.scan("taps").select("card_id", "station_id", "ts", "direction")
    trips = trips_by_slot(lf, slot_minutes).sort("origin_station", "dest_station", "slot").collect()
    days = lf.select(pl.col("ts").dt.date().n_unique()).collect().item()
    return trips, int(days)


def _tap_trips_partition(df: pd.DataFrame, slot_minutes: int) -> pd.DataFrame:
    import polars as pl

    out = trips_by_slot(pl.from_pandas(df), slot_minutes)
    days = pl.from_pandas(df).select(pl.col("ts").dt.date().unique().alias("day"))
    return out.to_pandas(), days.to_pandas()


def tap_trips_dask(ds: Dataset, *, slot_minutes: int = 60) -> tuple[pl.DataFrame, int]:
    """As :func:`tap_trips_polars`, in Dask: one partial count per file, then a sum.

    Exact when no day spans two files (the generator splits taps by day; the file
    manifest's day ranges are checked); otherwise the taps are first shuffled by card.
    """
    import dask
    import pandas as pd
    import polars as pl

    files = ds.table("taps")["files"]
    ranges = sorted((f.get(RANGE_KEYS["taps"][0]), f.get(RANGE_KEYS["taps"][1])) for f in files)
    disjoint = all(r[0] is not None for r in ranges) and all(
        a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    ddf = ds.dask("taps", columns=["card_id", "station_id", "ts", "direction"])
    if not disjoint:
        ddf = ddf.shuffle("card_id")
    parts = [dask.delayed(_tap_trips_partition)(p, slot_minutes) for p in ddf.to_delayed()]
    results = dask.compute(*parts)
    trips = pd.concat([r[0] for r in results], ignore_index=True)
    days = pd.concat([r[1] for r in results], ignore_index=True)["day"].nunique()
    trips = trips.groupby(["origin_station", "dest_station", "slot"], as_index=False)["trips"].sum()
    out = pl.from_pandas(trips).with_columns(pl.col("origin_station").cast(pl.Int32),
                                             pl.col("dest_station").cast(pl.Int32),
                                             pl.col("slot").cast(pl.Int32), pl.col("trips").cast(pl.Int64))
    return out.sort("origin_station", "dest_station", "slot"), int(days)


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None, slot_minutes: int = 60,
        slot: int | None = None, algorithm: str = "bfw", gap: float = 1e-4, max_iter: int = 500,
        od: str | os.PathLike | None = None, trip_rate: float = 0.2, beta_per_min: float = 0.1,
        sites: int = 5, unreachable: str = "error", out: str | os.PathLike | None = None) -> TaskResult:
    """Route optimisation on a generated city.

    Steps: (1) link travel times per link and time-of-day slot from sensor speeds (on the
    chosen engine; free-flow fallback for links and slots without sensors); (2) OD demand
    from a gravity model on zone population and jobs (or a given matrix); (3) user-
    equilibrium assignment of that demand on the road graph with BPR costs; (4) p-median
    choice of ``sites`` nodes minimising population-weighted travel time under the
    sensor travel times of the chosen slot.

    Parameters
    ----------
    data
        Dataset folder (or an opened :class:`uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` or ``"dask"`` for the sensor aggregation; Dask scheduler.
    slot_minutes
        Length of a time-of-day slot; must divide 1440.
    slot
        Slot whose travel times feed the site choice; default the slot with the highest
        observed mean flow (the peak).
    algorithm, gap, max_iter, unreachable
        Assignment settings (see :func:`uda.kernels.assign.assign`).
    od
        ``None``/``"gravity"``: gravity model on zone population and jobs; ``"taps"``:
        the zone-to-zone pattern of smart-card trips starting in the chosen slot (per day,
        intrazonal dropped), scaled to the gravity total ``trip_rate * population``;
        otherwise a CSV/Parquet OD matrix (``origin_zone, dest_zone, flow`` in veh/h).
    trip_rate
        Gravity model: vehicle trips per resident in the assigned hour.
    beta_per_min
        Gravity model deterrence per minute of free-flow travel time.
    sites
        Number of sites for the p-median step.
    out
        Folder to write results into (created if missing).

    Returns
    -------
    TaskResult
        ``answer``: ``link_travel_time_s`` (links x slots), ``link_flow``, ``od_demand``,
        ``sites`` (node ids), ``peak_slot``; ``quality``: relative gap, objective, total
        travel time, iterations, sensor coverage, p-median mean travel time.
    """
    check_engine(engine)
    check_algorithm(algorithm)
    if slot_minutes <= 0 or 1440 % slot_minutes:
        msg = f"--slot-minutes {slot_minutes} must be a positive divisor of 1440 (for example 15, 30 or 60)"
        raise UserError(msg)
    num_slots = 1440 // slot_minutes
    if slot is not None and not 0 <= slot < num_slots:
        msg = f"--slot {slot} is outside 0..{num_slots - 1} for {slot_minutes}-minute slots"
        raise UserError(msg)
    check_finite(gap=gap, trip_rate=trip_rate, beta=beta_per_min)
    if not (gap >= 0) or max_iter < 0 or not (trip_rate >= 0) or not (beta_per_min >= 0):
        msg = "--gap, --max-iter, --trip-rate and --beta must be >= 0"
        raise UserError(msg)
    if sites < 1:
        msg = f"--sites {sites} must be >= 1"
        raise UserError(msg)
    if out is not None:
        check_results_folder(out)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    stage: dict[str, float] = {}
    city = read_city(ds)
    compile_seconds = warm_up(parallel=parallel_blocks(city.network(city.free_flow_time_s, city.centroid)) > 1)
    od_mode = "gravity" if od in (None, "gravity") else "taps" if od == "taps" else "file"
    given_od = read_od_matrix(od, city.zone_ids) if od_mode == "file" else None

    t0 = time.perf_counter()
    if engine == "polars":
        agg = sensor_slots_polars(ds, slot_minutes=slot_minutes)
    else:
        with dask_scheduler(scheduler):
            agg = sensor_slots_dask(ds, slot_minutes=slot_minutes)
    times = link_travel_times(city.link_id, city.length_m, city.free_speed_kmh, city.sensor_link, agg,
                              num_slots=num_slots)
    stage["travel_times"] = time.perf_counter() - t0
    peak = peak_slot(times)
    use_slot = peak if slot is None else slot

    t0 = time.perf_counter()
    free_time = city.free_flow_time_s
    if od_mode == "gravity":
        demand = gravity_demand(city, trip_rate=trip_rate, beta_per_min=beta_per_min)
    elif od_mode == "taps":
        if engine == "polars":
            trips, days = tap_trips_polars(ds, slot_minutes=slot_minutes)
        else:
            with dask_scheduler(scheduler):
                trips, days = tap_trips_dask(ds, slot_minutes=slot_minutes)
        pattern = tap_od(trips, days, station_zones(ds), city.zone_ids.size, slot=use_slot)
        demand = tap_demand(pattern, city.population, trip_rate=trip_rate, slot=use_slot)
    else:
        demand = given_od
    with np.errstate(all="ignore"):
        total = float(np.sum(demand))
    if not np.isfinite(total):
        msg = (f"the OD demand is not finite (--trip-rate {trip_rate:g}, --beta {beta_per_min:g} are too large "
               "for this city); use a realistic trip rate such as 0.2")
        raise UserError(msg)
    stage["od"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    net = city.network(free_time, city.centroid, demand)
    check_reachable(net, unreachable=unreachable, origin_ids=city.zone_ids, dest_ids=city.zone_ids)
    result = assign(net, algorithm=algorithm, gap=gap, max_iter=max_iter)
    ra = RouteAssignment(result=result, init_node=city.node_id[city.tail], term_node=city.node_id[city.head],
                         capacity=city.capacity_vph, algorithm=algorithm, compile_seconds=compile_seconds,
                         total_demand=float(demand.sum()))
    stage["assignment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    choice = choose_sites(city, times["travel_time_s"][:, use_slot], sites)
    pm, site_nodes = choice.result, choice.site_nodes
    stage["sites"] = time.perf_counter() - t0

    people = city.population.sum()
    quality = {
        "relative_gap": result.relative_gap,
        "objective": result.objective,
        "total_travel_time": result.total_travel_time,
        "iterations": float(result.iterations),
        "converged": float(result.converged),
        "unreachable_demand": result.unreachable_demand,
        "sensor_link_share": float((times["n_obs"].sum(axis=1) > 0).mean()) if city.link_id.size else 0.0,
        "sensor_slot_share": float(times["source"].mean()) if city.link_id.size else 0.0,
        "site_mean_travel_time_s": float(pm.objective / people) if people > 0 else 0.0,
        "site_greedy_mean_travel_time_s": float(pm.greedy_objective / people) if people > 0 else 0.0,
    }
    summary = {k: v for k, v in ra.summary().items() if k != "objective_history"}
    traffic = ds.table("traffic")
    res = TaskResult(
        task="route", engine=engine,
        answer={"link_travel_time_s": times["travel_time_s"], "link_flow": result.flow,
                "od_demand": demand, "sites": site_nodes, "peak_slot": np.int64(peak)},
        quality=quality, rows_in=int(traffic["rows"]), bytes_in=int(traffic["bytes"]),
        summary={**summary, "slot_minutes": slot_minutes, "slot": use_slot, "peak_slot": peak,
                 "sites": site_nodes.tolist(), "site_swaps": pm.swaps, "stage_seconds": stage,
                 "zones": int(city.zone_ids.size), "nodes": int(city.node_id.size),
                 "od_source": str(od) if od_mode == "file" else od_mode})
    if out is not None:
        write_city_results(out, res, city=city, ra=ra, times=times,
                           site_assignment=choice.zone_site_nodes)
    return res


def write_city_results(out: str | os.PathLike, res: TaskResult, *, city: CityGraph, ra: RouteAssignment,
                       times: dict[str, np.ndarray], site_assignment: np.ndarray) -> Path:
    """Write a city route run (``res``, its assignment ``ra``) into folder ``out``.

    Files: ``link_travel_times.parquet`` (link_id, slot, travel_time_s, n_obs, source),
    ``link_flows.csv`` (link_id, init_node, term_node, flow, capacity, vc, cost),
    ``od.parquet`` (origin_zone, dest_zone, flow; non-zero entries), ``sites.csv``
    (zone_id, site_node) and ``summary.json``. Each file is replaced atomically.
    """
    import polars as pl

    out = check_results_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    nl, ns = times["travel_time_s"].shape
    link_id, zone_ids = city.link_id, city.zone_ids
    tt = pl.DataFrame({
        "link_id": np.repeat(link_id, ns).astype(np.int32), "slot": np.tile(np.arange(ns), nl).astype(np.int16),
        "travel_time_s": times["travel_time_s"].ravel(), "n_obs": times["n_obs"].ravel(),
        "source": np.where(times["source"].ravel() == SOURCE_SENSOR, "sensor", "free_flow")})
    atomic_write(out / "link_travel_times.parquet", lambda p: tt.write_parquet(p))
    flows = pl.DataFrame({"link_id": link_id, "init_node": ra.init_node, "term_node": ra.term_node,
                          "flow": ra.result.flow, "capacity": ra.capacity, "vc": ra.vc, "cost": ra.result.cost})
    atomic_write(out / "link_flows.csv", lambda p: flows.write_csv(p))
    demand = res.answer["od_demand"]
    oi, di = np.nonzero(demand)
    od = pl.DataFrame({"origin_zone": zone_ids[oi], "dest_zone": zone_ids[di], "flow": demand[oi, di]})
    atomic_write(out / "od.parquet", lambda p: od.write_parquet(p))
    sites = pl.DataFrame({"zone_id": zone_ids, "site_node": site_assignment})
    atomic_write(out / "sites.csv", lambda p: sites.write_csv(p))
    body = {"task": res.task, "engine": res.engine, "quality": res.quality, "summary": res.summary}
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(body, indent=2)))
    return out
