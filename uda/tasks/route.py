"""Route optimisation: travel times from sensors, OD demand, traffic assignment and p-median sites."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from uda.errors import UserError
from uda.kernels.assign import (
    ALGORITHMS,
    AssignmentResult,
    Network,
    all_or_nothing,
    assign,
    parallel_blocks,
    warm_up,
)
from uda.tasks.base import TaskResult

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from uda.io.tntp import TntpNetwork, TntpTrips
    from uda.store import Dataset

#: What to do with demand between OD pairs that have no path.
UNREACHABLE_POLICIES = ("error", "drop")
#: How many of the most congested links a summary lists.
TOP_LINKS = 10


def tntp_network(net: TntpNetwork, trips: TntpTrips) -> Network:
    """An assignment :class:`Network` from TNTP network and trips (see :mod:`uda.io.tntp`).

    Node ``k`` of the files becomes index ``k - 1``; zone ``z`` is node ``z``; nodes
    below ``<FIRST THRU NODE>`` are not passed through.
    """
    zones = np.arange(net.num_zones, dtype=np.int64)
    return Network(
        num_nodes=net.num_nodes, tail=net.init_node.astype(np.int64) - 1,
        head=net.term_node.astype(np.int64) - 1, free_flow_time=net.free_flow_time, b=net.b,
        capacity=net.capacity, power=net.power, origins=zones, dests=zones, demand=trips.demand,
        first_thru=net.first_thru_node - 1)


def check_reachable(net: Network, *, unreachable: str = "error",
                    origin_ids: np.ndarray | None = None, dest_ids: np.ndarray | None = None) -> tuple[int, float]:
    """OD pairs with demand but no path, and their demand; an error unless ``unreachable="drop"``.

    Parameters
    ----------
    net
        Network and demand.
    unreachable
        ``"error"``: raise :class:`UserError` naming the first such pair. ``"drop"``: leave
        that demand unassigned; the caller reports the returned count and demand.
    origin_ids, dest_ids
        Labels of the demand rows and columns used in the message (default: indices).

    Returns
    -------
    (pairs, demand)
    """
    if unreachable not in UNREACHABLE_POLICIES:
        msg = f"unknown unreachable policy {unreachable!r}; choose one of {', '.join(UNREACHABLE_POLICIES)}"
        raise UserError(msg)
    aon = all_or_nothing(net, net.free_flow_time)
    if aon.unreachable_pairs and unreachable == "error":
        i, j = (int(k[0]) for k in np.nonzero(np.isinf(aon.skim) & (net.demand > 0)))
        o = origin_ids[i] if origin_ids is not None else net.origins[i]
        d = dest_ids[j] if dest_ids is not None else net.dests[j]
        msg = (f"{aon.unreachable_pairs} OD pairs with demand {aon.unreachable_demand:g} have no path "
               f"(first: {o} -> {d}); connect the network or use --unreachable drop to leave that demand unassigned")
        raise UserError(msg)
    return aon.unreachable_pairs, aon.unreachable_demand


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if known, else raise :class:`UserError`."""
    if algorithm not in ALGORITHMS:
        msg = f"unknown assignment algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        raise UserError(msg)
    return algorithm


@dataclass
class RouteAssignment:
    """An assignment result with link labels, ready to report or write.

    Attributes
    ----------
    result
        The raw :class:`~uda.kernels.assign.AssignmentResult`.
    init_node, term_node
        Link ends in the caller's node labels (TNTP numbers or city node ids).
    capacity
        Link capacities, for volume/capacity ratios.
    algorithm, compile_seconds, total_demand
        How the run was made and the demand it assigned.
    """

    result: AssignmentResult
    init_node: np.ndarray
    term_node: np.ndarray
    capacity: np.ndarray
    algorithm: str
    compile_seconds: float
    total_demand: float

    @property
    def vc(self) -> np.ndarray:
        """Volume/capacity ratio per link (NaN where capacity is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.capacity > 0, self.result.flow / np.where(self.capacity > 0, self.capacity, 1), np.nan)

    def most_congested(self, k: int = TOP_LINKS) -> list[dict[str, Any]]:
        """The ``k`` links with the highest volume/capacity ratio."""
        vc = self.vc
        order = np.argsort(-np.nan_to_num(vc, nan=-np.inf), kind="stable")[:k]
        r = self.result
        return [{"init_node": int(self.init_node[i]), "term_node": int(self.term_node[i]),
                 "flow": float(r.flow[i]), "capacity": float(self.capacity[i]),
                 "vc": float(vc[i]), "cost": float(r.cost[i])} for i in order]

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: quality, timing, history and the most congested links."""
        r = self.result
        vc = self.vc
        return {
            "algorithm": self.algorithm,
            "relative_gap": r.relative_gap,
            "objective": r.objective,
            "total_travel_time": r.total_travel_time,
            "shortest_path_travel_time": r.shortest_path_travel_time,
            "iterations": r.iterations,
            "converged": r.converged,
            "seconds": r.seconds,
            "compile_seconds": self.compile_seconds,
            "links": int(r.flow.size),
            "total_demand": self.total_demand,
            "unreachable_demand": r.unreachable_demand,
            "unreachable_pairs": r.unreachable_pairs,
            "max_vc": float(np.nanmax(vc)) if np.isfinite(vc).any() else None,
            "links_over_capacity": int(np.sum(vc > 1.0)),
            "most_congested": self.most_congested(),
            "gap_history": r.gap_history,
            "objective_history": r.objective_history,
        }

    def write_flows(self, path: str | os.PathLike) -> Path:
        """Write ``init_node,term_node,flow`` (one row per link) as CSV, atomically."""
        path = check_flows_path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("init_node,term_node,flow\n")
            for u, v, x in zip(self.init_node.tolist(), self.term_node.tolist(), self.result.flow.tolist(), strict=True):
                f.write(f"{u},{v},{x!r}\n")
        os.replace(tmp, path)
        return path


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


def check_finite(**values: float) -> None:
    """Refuse NaN and infinite option values (``--trip-rate inf`` gives NaN demand)."""
    import math

    for name, value in values.items():
        if not math.isfinite(value):
            msg = f"--{name.replace('_', '-')} {value} must be a finite number"
            raise UserError(msg)


def assign_tntp(folder: str | os.PathLike, *, algorithm: str = "bfw", gap: float = 1e-4,
                max_iter: int = 1000, unreachable: str = "error") -> RouteAssignment:
    """Read a TNTP folder and run user-equilibrium assignment on it.

    Parameters
    ----------
    folder
        Folder with ``<Name>_net.tntp`` and ``<Name>_trips.tntp``.
    algorithm
        One of :data:`~uda.kernels.assign.ALGORITHMS`.
    gap
        Target relative gap.
    max_iter
        Iteration limit.
    unreachable
        ``"error"`` or ``"drop"`` for demand between zones without a path.

    Returns
    -------
    RouteAssignment
        Links labelled with the TNTP node numbers; ``compile_seconds`` is the Numba
        compile/cache-load time, measured apart from ``result.seconds``.
    """
    from uda.io.tntp import read_folder

    check_algorithm(algorithm)
    check_finite(gap=gap)
    if not (gap >= 0):
        msg = f"--gap must be >= 0, got {gap}"
        raise UserError(msg)
    if max_iter < 0:
        msg = f"--max-iter must be >= 0, got {max_iter}"
        raise UserError(msg)
    tnet, trips = read_folder(folder)
    net = tntp_network(tnet, trips)
    compile_seconds = warm_up(parallel=parallel_blocks(net) > 1)
    zone_ids = np.arange(1, tnet.num_zones + 1)
    check_reachable(net, unreachable=unreachable, origin_ids=zone_ids, dest_ids=zone_ids)
    result = assign(net, algorithm=algorithm, gap=gap, max_iter=max_iter)
    return RouteAssignment(result=result, init_node=tnet.init_node, term_node=tnet.term_node,
                           capacity=tnet.capacity, algorithm=algorithm,
                           compile_seconds=compile_seconds, total_demand=float(trips.demand.sum()))


# --- the city pipeline: sensors -> link travel times -> OD -> assignment -> sites ----------------

#: BPR parameters used on the generated city (the "traditional" values).
CITY_BPR_B = 0.15
CITY_BPR_POWER = 4.0
#: Source codes of a link travel time.
SOURCE_FREE_FLOW = 0
SOURCE_SENSOR = 1


def _slot_expr(slot_minutes: int) -> pl.Expr:
    import polars as pl

    # minute of the (UTC) day from the integer milliseconds, as the Dask kernel computes it;
    # dt.hour()/dt.minute() decompose every timestamp and cost twice the whole aggregation
    minute = (pl.col("ts").dt.epoch("ms") // 60_000) % 1440
    return (minute // slot_minutes).cast(pl.Int32).alias("slot")


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
        .with_columns(_slot_expr(slot_minutes), (3.6 / speed).alias("pace"),
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


def _sensor_slots_partition(df: pd.DataFrame, slot_minutes: int) -> pd.DataFrame:
    """One partition's ``sensor_id, slot, n_obs, pace_sum, flow_sum`` (the Dask map step).

    One pass of :func:`uda.kernels.slots.slot_sums` over the rows, keyed by the dense
    range of the partition's sensor ids (files hold runs of sensors); only non-empty
    (sensor, slot) pairs are returned.
    """
    import pandas as pd

    from uda.kernels.slots import slot_sums

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
    parts = ddf.map_partitions(_sensor_slots_partition, slot_minutes, meta=meta).compute()
    return (pl.from_pandas(parts)
            .group_by("sensor_id", "slot")
            .agg(pl.col("n_obs").sum(), pl.col("pace_sum").sum(), pl.col("flow_sum").sum())
            .with_columns(pl.col("sensor_id").cast(pl.Int32), pl.col("slot").cast(pl.Int32),
                          pl.col("n_obs").cast(pl.Int64))
            .sort("sensor_id", "slot"))


def link_travel_times(link_id: np.ndarray, length_m: np.ndarray, free_speed_kmh: np.ndarray,
                      sensor_link: np.ndarray, slots: pl.DataFrame, *, num_slots: int) -> dict[str, np.ndarray]:
    """Travel time per link and time-of-day slot from sensor aggregates.

    The travel time of a link in a slot is its length times the mean pace (1 / speed) of
    all observations of the link's sensors in that slot (a space-mean speed, which is what
    travel time needs). A link-slot without observations falls back to free flow:
    ``length / free speed`` (``source`` 0; 1 where sensors gave the value).

    Parameters
    ----------
    link_id, length_m, free_speed_kmh
        Link attributes (one entry per link).
    sensor_link
        Link of each sensor, indexed by ``sensor_id`` (``-1`` for unknown sensors).
    slots
        ``sensor_id, slot, n_obs, pace_sum, flow_sum`` aggregates (a Polars frame).
    num_slots
        Number of slots per day.

    Returns
    -------
    dict
        ``travel_time_s``, ``flow_vph`` (mean observed flow, NaN without sensors) and
        ``n_obs``, each ``(links, slots)``, and ``source`` (int8, same shape).
    """
    nl = link_id.size
    sid = slots["sensor_id"].to_numpy().astype(np.int64)
    slot = slots["slot"].to_numpy().astype(np.int64)
    known = (sid >= 0) & (sid < sensor_link.size)
    lk = np.where(known, sensor_link[np.clip(sid, 0, max(sensor_link.size - 1, 0))], -1) if sid.size else sid
    pos = np.searchsorted(link_id, lk)
    ok = known & (lk >= 0) & (pos < nl) & (slot >= 0) & (slot < num_slots)
    ok[ok] &= link_id[pos[ok]] == lk[ok]
    flat = pos[ok] * num_slots + slot[ok]
    n_obs = np.bincount(flat, slots["n_obs"].to_numpy()[ok].astype(np.float64), nl * num_slots)
    pace = np.bincount(flat, slots["pace_sum"].to_numpy()[ok], nl * num_slots)
    flow = np.bincount(flat, slots["flow_sum"].to_numpy()[ok], nl * num_slots)
    n_obs = n_obs.reshape(nl, num_slots)
    has = n_obs > 0
    free = (length_m.astype(np.float64) / (free_speed_kmh.astype(np.float64) / 3.6))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(has, length_m.astype(np.float64)[:, None] * pace.reshape(nl, num_slots) / n_obs, free)
        mean_flow = np.where(has, flow.reshape(nl, num_slots) / n_obs, np.nan)
    return {"travel_time_s": tt, "flow_vph": mean_flow, "n_obs": n_obs.astype(np.int64),
            "source": np.where(has, SOURCE_SENSOR, SOURCE_FREE_FLOW).astype(np.int8)}


def _tap_trips_frame(df: pl.DataFrame | pl.LazyFrame, slot_minutes: int):
    """Trips (tap-in followed by tap-out of the same card on the same day) counted per
    origin station, destination station and tap-in slot; works on Polars frames."""
    import polars as pl

    keys = ["card_id", "day"]
    return (
        df.with_columns(pl.col("ts").dt.date().alias("day"))
        .sort("card_id", "ts", "direction")
        .with_columns(pl.col("station_id").shift(-1).over(keys).alias("dest_station"),
                      pl.col("direction").shift(-1).over(keys).alias("next_direction"))
        .filter((pl.col("direction") == 0) & (pl.col("next_direction") == 1))
        .with_columns(_slot_expr(slot_minutes))
        .group_by(pl.col("station_id").alias("origin_station"), "dest_station", "slot")
        .agg(pl.len().cast(pl.Int64).alias("trips"))
    )


def tap_trips_polars(ds: Dataset, *, slot_minutes: int = 60) -> tuple[pl.DataFrame, int]:
    """Smart-card trips per (origin station, destination station, slot) in Polars, and the days seen.

    A trip is a tap-in followed by the same card's next tap, a tap-out, on the same day;
    other taps (unmatched, or a trip over midnight) are not counted.
    """
    import polars as pl

    lf = ds.scan("taps").select("card_id", "station_id", "ts", "direction")
    trips = _tap_trips_frame(lf, slot_minutes).sort("origin_station", "dest_station", "slot").collect()
    days = lf.select(pl.col("ts").dt.date().n_unique()).collect().item()
    return trips, int(days)


def _tap_trips_partition(df: pd.DataFrame, slot_minutes: int) -> pd.DataFrame:
    import polars as pl

    out = _tap_trips_frame(pl.from_pandas(df), slot_minutes)
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
    ranges = sorted((f.get("day_min"), f.get("day_max")) for f in files)
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


def _node_index(node_id: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    order = np.argsort(node_id)
    pos = np.searchsorted(node_id[order], values)
    bad = (pos >= node_id.size) | (node_id[order][np.minimum(pos, node_id.size - 1)] != values)
    if bad.any():
        msg = f"{what} refers to node {int(values[bad][0])}, which is not in the nodes table; regenerate the dataset"
        raise UserError(msg)
    return order[pos]


@dataclass
class CityGraph:
    """The generated city's road graph, zones and sensors as arrays (node indices 0-based).

    Attributes
    ----------
    node_id, link_id, zone_ids
        Dataset ids (links sorted by ``link_id``, zones by ``zone_id``).
    tail, head
        Link ends as node indices.
    length_m, free_speed_kmh, capacity_vph
        Link attributes.
    centroid
        Node index of each zone's centroid.
    population, jobs
        Per zone.
    sensor_link
        Link id of each sensor, indexed by ``sensor_id`` (``-1`` for unused ids).
    """

    node_id: np.ndarray
    link_id: np.ndarray
    zone_ids: np.ndarray
    tail: np.ndarray
    head: np.ndarray
    length_m: np.ndarray
    free_speed_kmh: np.ndarray
    capacity_vph: np.ndarray
    centroid: np.ndarray
    population: np.ndarray
    jobs: np.ndarray
    sensor_link: np.ndarray

    @property
    def free_flow_time_s(self) -> np.ndarray:
        """Free-flow travel time per link in seconds."""
        return self.length_m / (self.free_speed_kmh / 3.6)

    def network(self, link_time_s: np.ndarray, dests: np.ndarray, demand: np.ndarray | None = None) -> Network:
        """An assignment network from zone centroids to ``dests`` (zero demand by default)."""
        n_links = self.link_id.size
        return Network(num_nodes=self.node_id.size, tail=self.tail, head=self.head, free_flow_time=link_time_s,
                       b=np.full(n_links, CITY_BPR_B), capacity=self.capacity_vph,
                       power=np.full(n_links, CITY_BPR_POWER), origins=self.centroid, dests=dests,
                       demand=np.zeros((self.centroid.size, dests.size)) if demand is None else demand)


def read_city(ds: Dataset) -> CityGraph:
    """Read the city tables (nodes, links, zones, sensors) of a dataset into a :class:`CityGraph`.

    Raises
    ------
    UserError
        Links or zones naming unknown nodes, non-positive free speeds, negative lengths or
        capacities, negative sensor ids.
    """
    nodes = ds.read("nodes")
    links = ds.read("links").sort("link_id")
    zones = ds.read("zones").sort("zone_id")
    sensors = ds.read("sensors")
    node_id = nodes["node_id"].to_numpy().astype(np.int64)
    length = links["length_m"].to_numpy().astype(np.float64)
    free_speed = links["free_speed_kmh"].to_numpy().astype(np.float64)
    capacity = links["capacity_vph"].to_numpy().astype(np.float64)
    if not ((free_speed > 0).all() and (length >= 0).all() and (capacity >= 0).all()):
        msg = "links table has non-positive free speeds or negative lengths/capacities; regenerate the dataset"
        raise UserError(msg)
    sid = sensors["sensor_id"].to_numpy().astype(np.int64)
    if sid.size and sid.min() < 0:
        msg = f"sensors table has a negative sensor_id ({int(sid.min())}); regenerate the dataset"
        raise UserError(msg)
    sensor_link = np.full(int(sid.max(initial=-1)) + 1, -1, dtype=np.int64)
    sensor_link[sid] = sensors["link_id"].to_numpy()
    return CityGraph(
        node_id=node_id, link_id=links["link_id"].to_numpy().astype(np.int64),
        zone_ids=zones["zone_id"].to_numpy().astype(np.int64),
        tail=_node_index(node_id, links["from_node"].to_numpy().astype(np.int64), "links.from_node"),
        head=_node_index(node_id, links["to_node"].to_numpy().astype(np.int64), "links.to_node"),
        length_m=length, free_speed_kmh=free_speed, capacity_vph=capacity,
        centroid=_node_index(node_id, zones["centroid_node"].to_numpy().astype(np.int64), "zones.centroid_node"),
        population=zones["population"].to_numpy().astype(np.float64),
        jobs=zones["jobs"].to_numpy().astype(np.float64), sensor_link=sensor_link)


def station_zones(ds: Dataset) -> np.ndarray:
    """Zone index of each station (indexed by ``station_id``): the zone with the nearest centroid."""
    stations = ds.read("stations")
    zones = ds.read("zones").sort("zone_id")
    sid = stations["station_id"].to_numpy().astype(np.int64)
    sx, sy = stations["x"].to_numpy(), stations["y"].to_numpy()
    zx, zy = zones["x"].to_numpy(), zones["y"].to_numpy()
    out = np.full(int(sid.max(initial=-1)) + 1, -1, dtype=np.int64)
    if zx.size and sid.size:
        out[sid] = np.argmin((sx[:, None] - zx[None]) ** 2 + (sy[:, None] - zy[None]) ** 2, axis=1)
    return out


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
    import time

    from uda.engines import check_engine, dask_scheduler
    from uda.kernels.pmedian import p_median
    from uda.store import Dataset, open_dataset

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
    # Peak slot: highest summed mean observed flow over the links that have sensors.
    obs_flow = np.where(times["n_obs"] > 0, times["flow_vph"], 0.0).sum(axis=0)
    peak_slot = int(np.argmax(obs_flow)) if obs_flow.any() else 0
    use_slot = peak_slot if slot is None else slot

    t0 = time.perf_counter()
    free_time = city.free_flow_time_s
    if od_mode == "gravity":
        # Zone-to-zone skims only (never zones x all nodes: that grows with the city squared).
        free_skim = all_or_nothing(city.network(free_time, city.centroid), free_time).skim
        with np.errstate(all="ignore"):  # overflow of absurd rates is refused below
            demand = gravity_od(trip_rate * city.population, city.jobs, free_skim, beta_per_min=beta_per_min)
    elif od_mode == "taps":
        if engine == "polars":
            trips, days = tap_trips_polars(ds, slot_minutes=slot_minutes)
        else:
            with dask_scheduler(scheduler):
                trips, days = tap_trips_dask(ds, slot_minutes=slot_minutes)
        pattern = tap_od(trips, days, station_zones(ds), city.zone_ids.size, slot=use_slot)
        if pattern.sum() <= 0:
            msg = (f"no smart-card trips between different zones start in slot {use_slot}; "
                   "choose another --slot or use the gravity model")
            raise UserError(msg)
        # Passenger OD pattern, scaled to the car demand of the gravity model.
        demand = pattern * (trip_rate * city.population.sum() / pattern.sum())
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
    observed = times["travel_time_s"][:, use_slot]
    # Candidate sites: the distinct zone centroid nodes reachable from every zone.
    nodes_c = np.unique(city.centroid)
    site_cost = all_or_nothing(city.network(free_time, nodes_c), observed).skim
    reachable = np.isfinite(site_cost).all(axis=0)
    candidates, site_cost = nodes_c[reachable], site_cost[:, reachable]
    if sites > candidates.size:
        msg = (f"--sites {sites} exceeds the {candidates.size} candidate sites (zone centroids reachable from "
               "every zone); ask for fewer sites")
        raise UserError(msg)
    pm = p_median(site_cost, city.population, sites)
    site_nodes = city.node_id[candidates[pm.sites]]
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
                "od_demand": demand, "sites": site_nodes, "peak_slot": np.int64(peak_slot)},
        quality=quality, rows_in=int(traffic["rows"]), bytes_in=int(traffic["bytes"]),
        summary={**summary, "slot_minutes": slot_minutes, "slot": use_slot, "peak_slot": peak_slot,
                 "sites": site_nodes.tolist(), "site_swaps": pm.swaps, "stage_seconds": stage,
                 "zones": int(city.zone_ids.size), "nodes": int(city.node_id.size),
                 "od_source": str(od) if od_mode == "file" else od_mode})
    if out is not None:
        write_city_results(out, res, city=city, cost=result.cost, times=times,
                           site_assignment=city.node_id[candidates[pm.assignment]])
    return res


def write_city_results(out: str | os.PathLike, res: TaskResult, *, city: CityGraph, cost: np.ndarray,
                       times: dict[str, np.ndarray], site_assignment: np.ndarray) -> Path:
    """Write a city route run into folder ``out``.

    Files: ``link_travel_times.parquet`` (link_id, slot, travel_time_s, n_obs, source),
    ``link_flows.csv`` (link_id, init_node, term_node, flow, capacity, vc, cost),
    ``od.parquet`` (origin_zone, dest_zone, flow; non-zero entries), ``sites.csv``
    (zone_id, site_node) and ``summary.json``. Each file is replaced atomically.
    """
    import json

    import polars as pl

    from uda.store import atomic_write

    out = check_results_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    nl, ns = times["travel_time_s"].shape
    link_id, capacity, zone_ids = city.link_id, city.capacity_vph, city.zone_ids
    tt = pl.DataFrame({
        "link_id": np.repeat(link_id, ns).astype(np.int32), "slot": np.tile(np.arange(ns), nl).astype(np.int16),
        "travel_time_s": times["travel_time_s"].ravel(), "n_obs": times["n_obs"].ravel(),
        "source": np.where(times["source"].ravel() == SOURCE_SENSOR, "sensor", "free_flow")})
    atomic_write(out / "link_travel_times.parquet", lambda p: tt.write_parquet(p))
    flow = res.answer["link_flow"]
    with np.errstate(divide="ignore", invalid="ignore"):
        vc = np.where(capacity > 0, flow / np.where(capacity > 0, capacity, 1), np.nan)
    flows = pl.DataFrame({"link_id": link_id, "init_node": city.node_id[city.tail],
                          "term_node": city.node_id[city.head], "flow": flow,
                          "capacity": capacity, "vc": vc, "cost": cost})
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
