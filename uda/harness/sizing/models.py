"""The sizing models per task: the terms (sizes of the city or its data) each task's cost grows with.

:data:`DESIGNS` lists the terms of each task's time and memory; the size formulas follow the
generator (street grid, file chunks) and the tasks' layouts (flow's blocks, route's
network stages); :func:`dataset_sizes` reads the sizes of a measured dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAMILIES = ("traffic", "taps", "water")
METRICS = ("wall_s", "cpu_s", "peak_rss_bytes")
#: Predictions further than this factor beyond the largest measured input are flagged.
EXTRAPOLATION_WARN = 10.0

#: Rows per generated file chunk (``uda.generate.DEFAULT_CHUNK_ROWS``): traffic files hold
#: whole sensors, at most this many rows; the feed groups of standardise and utilisation too.
CHUNK_ROWS = 2_000_000
SLOTS_PER_DAY = 288


def street_grid(sensors: float) -> dict[str, float]:
    """Nodes, links and zones of the generated city with ``sensors`` sensors (``uda.city``)."""
    side = max(8, math.ceil(math.sqrt(0.65 * sensors)))
    return {"nodes": float(side * side), "links": float(4 * side * (side - 1)),
            "zones": float(max(4, side // 3) ** 2)}


def traffic_files(sensors: float, days: float) -> float:
    """Traffic files the generator writes: whole sensors, at most :data:`CHUNK_ROWS` rows each."""
    per = max(1, CHUNK_ROWS // max(1, int(days * SLOTS_PER_DAY)))
    return float(math.ceil(sensors / per))


@dataclass(frozen=True)
class Term:
    """One term of a model: a size the task's cost grows with.

    ``kind`` is ``fixed``, ``data`` (grows with all the rows), ``block`` (the rows in flight,
    bounded by a block or group) or ``structure`` (grows with the city: links, zones,
    sensors); a cluster splits ``block`` terms over workers. ``known`` is a coefficient
    the design fixes (bytes of a data structure), not fitted.
    """

    name: str
    kind: str
    size: Callable[[dict[str, float]], float]
    known: float | None = None
    #: the task's own timings of this term (``summary["stage_seconds"]``), summed
    stage: tuple[str, ...] | None = None
    #: the size for CPU time when it differs from that for wall time (work split over threads)
    cpu_size: Callable[[dict[str, float]], float] | None = None

    def size_for(self, metric: str) -> Callable[[dict[str, float]], float]:
        """The size function for ``metric`` (``cpu_size`` for CPU time when given)."""
        return self.cpu_size if metric == "cpu_s" and self.cpu_size is not None else self.size


#: Blocks (files, groups) a task holds at once: two on the measured 2-core machine (Dask
#: runs a task per thread, Polars a group per thread). Flow on Polars fits its blocks in
#: turn: one block in flight (``flow_in_flight``).
IN_FLIGHT = 2


def water_files(sites: float, days: float) -> float:
    """Water files the generator writes: whole sites, at most :data:`CHUNK_ROWS` rows each."""
    per = max(1, CHUNK_ROWS // max(1, int(days * 96)))
    return float(math.ceil(sites / per))


def _water_rows(s: dict[str, float]) -> float:
    # Polars sorts and holds the whole table; Dask works on one file's partition at a time
    if s.get("dask"):
        return s["rows"] / max(1.0, water_files(s.get("water_sites", 1.0), s.get("days", 1.0)))
    return s["rows"]


def flow_in_flight(engine: str) -> float:
    """Flow blocks fitted at once: one on Polars (in turn), one per thread on Dask."""
    return 1.0 if engine.startswith("polars") else float(IN_FLIGHT)


#: How far apart (in sensor ids) two neighbouring sensors lie, per street of the grid: the
#: generator numbers sensors along the grid, so the neighbours of a sensor (links sharing a
#: node) lie within about 4 grid sides of its id (measured: the largest id distance of
#: ``uda.tasks.flow.sensor_pairs`` is 3.9-4.2 grid sides on generated cities of 200 to
#: 20,000 sensors). A block of b series needs series from the ``ceil(reach / b)`` blocks
#: on either side; flow on Polars loads the blocks ahead whole (they are fitted later) and
#: cuts a block to the series later blocks need once it is fitted.
FLOW_REACH_SIDES = 4.2


def flow_layout(s: dict[str, float]) -> dict[str, float]:
    """Flow's blocks of whole files as ``uda.tasks.flow.TrafficLayout`` builds them.

    The generator writes whole sensors, at most :data:`CHUNK_ROWS` rows per file; flow
    estimates each file's series as its rows over the 5-minute grid, aims at
    ``min(block values, all series / min(MIN_BLOCKS, files))`` series per block and adds whole files
    to a block while it stays within 1.05 times that aim. Closed form for files of equal
    size plus a last, smaller one.

    Returns
    -------
    dict
        ``blocks`` (how many), ``largest`` and ``second`` (float64 values, series x grid
        steps, of the two largest blocks; ``second`` is 0 with one block), ``n_time``.
    """
    sensors = max(1.0, float(s.get("sensors") or 1.0))
    n_time = math.ceil(max(1.0, float(s.get("days") or 1.0)) - 1e-9) * SLOTS_PER_DAY
    per_sensor = max(1.0, float(s["traffic_rows"]) / sensors)  # rows per sensor, any interval
    per_file = max(1, int(CHUNK_ROWS // per_sensor))  # whole sensors per file
    files = math.ceil(sensors / per_file)
    last = sensors - (files - 1) * per_file
    est = per_file * per_sensor / n_time  # flow's estimate of a full file's series
    est_last = last * per_sensor / n_time
    # flow's own block settings (imported here: the flow task loads Numba, which sizing needs for flow only)
    from uda.tasks.flow import DEFAULT_BLOCK_MB, MIN_BLOCKS

    block_values = DEFAULT_BLOCK_MB * 2**20 // 8  # float64 values in one block at most
    target = min(block_values / n_time, sensors * per_sensor / n_time / min(MIN_BLOCKS, files))
    limit = 1.05 * target
    k = max(1, int((limit + 1e-9) // est)) if est <= limit else 1  # full files per block
    full, rem = divmod(files - 1, k)
    tail: list[float] = []  # the blocks after the `full` blocks of k files
    if rem:
        tail = [rem * per_file + last] if rem * est + est_last <= limit else [rem * per_file, last]
    elif full and k * est + est_last <= limit:
        full, tail = full - 1, [k * per_file + last]
    else:
        tail = [float(last)]
    top = sorted([float(k * per_file)] * min(full, 2) + tail, reverse=True)
    blocks = full + len(tail)
    return {"blocks": float(blocks), "largest": top[0] * n_time,
            "second": (top[1] if blocks > 1 else 0.0) * n_time, "n_time": float(n_time)}


def _flow_block(s: dict[str, float]) -> float:
    # the float64 values of the blocks being fitted: one on Polars, the two largest on Dask
    lay = flow_layout(s)
    return lay["largest"] + (lay["second"] if s.get("flow_in_flight", IN_FLIGHT) > 1 else 0.0)


def flow_held_blocks(s: dict[str, float]) -> float:
    """Whole blocks flow on Polars holds at once: the block fitted and the blocks after it
    holding its neighbours' series (within :data:`FLOW_REACH_SIDES` grid sides of sensor ids;
    the blocks before it are already cut to the few series still needed)."""
    lay = flow_layout(s)
    side = math.sqrt(street_grid(max(1.0, float(s.get("sensors") or 1.0)))["nodes"])
    span = math.ceil(FLOW_REACH_SIDES * side / max(1.0, lay["largest"] / lay["n_time"]))
    return float(min(lay["blocks"], span + 1))


def _flow_held(s: dict[str, float]) -> float:
    # Polars keeps the raw series (float64) of the neighbouring blocks beside the one it fits
    if s.get("flow_in_flight", IN_FLIGHT) > 1:
        return 0.0
    return (flow_held_blocks(s) - 1) * flow_layout(s)["largest"]


def _files(s: dict[str, float]) -> float:
    return s["traffic_rows"] / max(1.0, s["files"]) * min(IN_FLIGHT, max(1.0, s["files"]))


def _group(s: dict[str, float]) -> float:
    # a group is one district's part of one generator chunk; districts are blocks of the
    # street grid (sqrt(d) across) and chunks are bands of sensor ids across the grid, so
    # each band crosses about sqrt(d) districts and each district meets one band more:
    # d + sqrt(d) * chunks groups (6, 8, 19, 43 at tiny, small, mid, medium; the datasets
    # have 4, 6, 16, 46 per feed version)
    d = max(1.0, s["districts"])
    groups = d + math.sqrt(d) * max(1.0, s["files"])
    return s["traffic_rows"] / groups * IN_FLIGHT


#: Bytes per link that route keeps: link x slot arrays (travel time, observations, pace and
#: flow sums: 4 float64 x 24 hourly slots).
ROUTE_LINK_BYTES = 4 * 8 * 24
#: Bytes per zone pair that route keeps: demand, skim and site cost matrices (float64), and
#: the assignment's per-pair scratch.
ROUTE_ZONE_PAIR_BYTES = 4 * 8
#: Bytes per sensor-day that utilisation keeps whatever the blocks: the received-interval
#: bitmap (one bit per 5-minute interval: 36 bytes) and the daily drift level (8 bytes).
SENSOR_DAY_BYTES = SLOTS_PER_DAY / 8 + 8


#: Route's stages that depend on the street network and zones only, not on the data rows:
#: the gravity OD (a skim and Furness balancing), the assignment and the p-median sites.
NETWORK_STAGES = ("od", "assignment", "sites")


def _network_work(s: dict[str, float]) -> float:
    # all-or-nothing loadings x zones x links: the OD skim, the assignment's first loading,
    # one per iteration, one for the gap that stops it, the final one, and the sites' skim
    return (s["iterations"] + 5) * s["zones"] * s["links"]


def network_blocks(s: dict[str, float]) -> float:
    """Parallel blocks of route's all-or-nothing loadings (``uda.kernels.assign.parallel_blocks``):
    one per thread when ``zones x (nodes + links)`` reaches the kernels' parallel threshold,
    else one (serial)."""
    from uda.kernels.paths import PARALLEL_MIN_WORK

    blocks = min(s.get("threads", 1.0), s["zones"])
    return float(blocks) if blocks > 1 and s["zones"] * (s.get("nodes", 0.0) + s["links"]) >= PARALLEL_MIN_WORK \
        else 1.0


def _network_wall(s: dict[str, float]) -> float:
    return _network_work(s) / network_blocks(s)


FIXED = Term("fixed", "fixed", lambda s: 1.0)
ROWS = Term("rows", "data", lambda s: s["rows"])
TERMS = {
    "fixed": FIXED,
    "rows": ROWS,
    "water rows in flight": Term("water rows in flight", "block", _water_rows),
    "series": Term("series", "structure", lambda s: s["sensors"]),
    "network stages": Term("network stages", "structure", _network_wall, stage=NETWORK_STAGES,
                           cpu_size=_network_work),
    "files in flight": Term("files in flight", "block", _files),
    "links": Term("links", "structure", lambda s: s["links"], known=ROUTE_LINK_BYTES),
    "zone pairs": Term("zone pairs", "structure", lambda s: s["zones"] ** 2, known=ROUTE_ZONE_PAIR_BYTES),
    "blocks in flight": Term("blocks in flight", "block", _flow_block),
    "neighbour blocks held": Term("neighbour blocks held", "block", _flow_held, known=8.0),
    "groups in flight": Term("groups in flight", "block", _group),
    "sensor-days": Term("sensor-days", "structure", lambda s: s["sensors"] * s["days"], known=SENSOR_DAY_BYTES),
}


@dataclass(frozen=True)
class Design:
    """The terms of a task's time and memory models (see ``docs/harness.md``)."""

    time: tuple[str, ...]
    memory: tuple[str, ...]


#: Per task: what its time and its memory grow with.
DESIGNS: dict[str, Design] = {
    # sensor readings are reduced per link and slot while read (per row), then the gravity
    # OD, user equilibrium (all-or-nothing loadings from every zone, per iteration) and the
    # sites run on the network alone: measured on the target's network by a probe
    # (uda.harness.sizing.probes), else fitted per loading x zones x links; memory: the
    # traffic file being reduced, link x slot arrays, zone x zone demand and skims
    "route": Design(time=("fixed", "rows", "network stages"),
                    memory=("fixed", "files in flight", "links", "zone pairs")),
    # every row is read and turned into series (per row); each series is fitted on at
    # most 600 origins (per series); memory: the blocks of series being fitted, as flow lays
    # them out (flow_layout), and on Polars the raw series of the neighbouring blocks
    "flow": Design(time=("fixed", "rows", "series"), memory=("fixed", "blocks in flight", "neighbour blocks held")),
    # Polars holds the water table whole, Dask one file (whole sites, <= 2 M rows) at a time
    "water": Design(time=("fixed", "rows"), memory=("fixed", "water rows in flight")),
    # feed groups are standardised and reduced in flight; the received-interval bitmap and
    # the drift levels grow with sensors x days
    "utilisation": Design(time=("fixed", "rows"), memory=("fixed", "groups in flight", "sensor-days")),
    "standardise": Design(time=("fixed", "rows"), memory=("fixed", "groups in flight")),
}
#: Tasks without a design (custom targets): fixed plus per row for both.
GENERIC = Design(time=("fixed", "rows"), memory=("fixed", "rows"))
#: ``--model rows``: the plain ``a + b * rows`` for everything (for comparison).
ROWS_ONLY = GENERIC


def design(task: str, model: str = "design") -> Design:
    """The design of ``task`` (its name without options), or the generic one."""
    if model == "rows":
        return ROWS_ONLY
    return DESIGNS.get(task.split("[")[0], GENERIC)


def dataset_sizes(ds: dict[str, Any]) -> dict[str, float]:
    """Sizes of a measured dataset from its description in a results file."""
    tables = ds.get("tables", {})
    p = ds.get("params", {})
    rows = family_rows(ds)

    def count(name: str, default: float) -> float:
        n = (tables.get(name) or {}).get("rows")
        return float(n) if n else float(default)

    sensors = count("sensors", p.get("sensors") or 1)
    days = float(p.get("days") or 1)
    grid = street_grid(p.get("sensors") or sensors)
    return {
        "sensors": sensors, "days": days,
        "traffic_rows": rows["traffic"] or sensors * days * SLOTS_PER_DAY,
        "taps_rows": rows["taps"], "water_rows": rows["water"],
        "stations": count("stations", p.get("stations") or 1),
        "water_sites": count("water_sites", p.get("water_sites") or 1),
        "districts": count("districts", p.get("districts") or 1),
        "links": count("links", grid["links"]), "zones": count("zones", grid["zones"]),
        "nodes": count("nodes", grid["nodes"]),
        "files": traffic_files(p.get("sensors") or sensors, days),
    }


# ---------------------------------------------------------------- the user's city

def _family_tables(ds: dict[str, Any], family: str) -> list[dict[str, Any]]:
    """Manifest entries holding a family's rows: the canonical table, else its truth copy,
    else the department feeds (``feed_<family>_*``) of a dataset generated with defects."""
    tables = ds.get("tables", {})
    for name in (family, f"true_{family}"):
        if tables.get(name, {}).get("rows"):
            return [tables[name]]
    return [t for name, t in tables.items() if name.startswith(f"feed_{family}_")]


def family_rows(ds: dict[str, Any]) -> dict[str, float]:
    """Rows per table family (traffic, taps, water) of a dataset description."""
    return {f: float(sum(t.get("rows") or 0 for t in _family_tables(ds, f))) for f in FAMILIES}


def family_bytes_per_row(ds: dict[str, Any]) -> dict[str, float]:
    """Stored bytes per row of each table family (traffic, taps, water); 0 without rows."""
    out = {}
    for f in FAMILIES:
        parts = _family_tables(ds, f)
        rows = sum(t.get("rows") or 0 for t in parts)
        out[f] = sum(t.get("bytes") or 0 for t in parts) / rows if rows else 0.0
    return out
