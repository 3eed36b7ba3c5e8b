"""Sizing: models of time and memory that follow each task's design, fitted on measured sweeps.

A task's cost is the sum of a few **terms**, each a size of the city or its data that
the task's code really depends on, times a coefficient fitted on measurements:

* time = fixed cost + cost per input row (+ per series, or per assignment iteration on
  the network for route);
* memory = fixed + the block (or group) of rows in flight + the structures that grow
  with the city (per link, per zone pair, per sensor-day), because the tasks stream:
  their memory is not proportional to the rows.

:data:`DESIGNS` lists the terms per task; ``docs/harness.md`` says why. The coefficients are
non-negative least squares over the measured scales of one task and engine (warm median
wall time, CPU time, peak RSS of the process tree). The error is stated on held-out data:
the model is refitted without the largest measured scale and its prediction for that
scale is compared with the measurement.

The sizes of a measured scale come from its dataset description in the results (rows per
table, nodes, links, zones, districts, files); those of a user's city (N sensors at
interval I over D days, optionally stations and water sites) from the generator's
formulas (street grid, zones, file chunks) and, for the rows a task reads, from the
measured dataset scaled to the city.

Cores come from measurement: the sweep runs every task on one and on two cores, and on a
LocalCluster of one and of two workers; the speed-up gives the parallel fraction
(Amdahl), from which the cores or workers that meet a deadline follow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.harness.results import load_results

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
FAMILIES = ("traffic", "taps", "water")
METRICS = ("wall_s", "cpu_s", "peak_rss_bytes")
#: Predictions further than this factor beyond the largest measured input are flagged.
EXTRAPOLATION_WARN = 10.0

#: Rows per generated file chunk (``uda.generate.DEFAULT_CHUNK_ROWS``): traffic files hold
#: whole sensors, at most this many rows; the feed groups of standardise and utilisation too.
CHUNK_ROWS = 2_000_000
#: Flow's blocks: at most ``DEFAULT_BLOCK_MB`` MiB of float64 series, at least ``MIN_BLOCKS``
#: blocks when there are that many files (``uda.tasks.flow``).
FLOW_BLOCK_VALUES = 32 * 2**20 // 8
FLOW_MIN_BLOCKS = 8
SLOTS_PER_DAY = 288


def parse_duration(text: str, *, option: str) -> float:
    """Seconds in a duration such as ``5min``, ``15 min``, ``1h``, ``2d`` or ``300`` (seconds)."""
    m = _DURATION.match(str(text).lower())
    if not m or (m.group(2) and m.group(2) not in _UNITS):
        msg = f"{option} {text!r} is not a duration; use a number with s, min, h or d (e.g. 5min, 1h)"
        raise UserError(msg)
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not math.isfinite(seconds) or seconds > 100 * 365 * 86400:
        msg = f"{option} {text!r} is longer than any duration this estimate is for (100 years)"
        raise UserError(msg)
    if seconds <= 0:
        msg = f"{option} {text!r} must be longer than zero"
        raise UserError(msg)
    return seconds


# ---------------------------------------------------------------- sizes and terms

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
    ``min(block values, all series / min(8, files))`` series per block and adds whole files
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
    target = min(FLOW_BLOCK_VALUES / n_time, sensors * per_sensor / n_time / min(FLOW_MIN_BLOCKS, files))
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
    # (uda.harness.route_probe), else fitted per loading x zones x links; memory: the
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
    rows = _family_rows(ds)

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


def _features(names: tuple[str, ...], sizes: list[dict[str, float]]) -> np.ndarray:
    return np.array([[TERMS[n].size(s) for n in names] for s in sizes], dtype=float)


@dataclass
class Model:
    """A fitted sum of terms: ``y = sum(coef[i] * term_i(sizes))``."""

    terms: tuple[str, ...]
    coef: np.ndarray
    points: int
    metric: str = ""

    def parts(self, sizes: dict[str, float]) -> dict[str, float]:
        """Each term's contribution at ``sizes``.

        A staged term (route's network stages) whose seconds were measured at ``sizes`` by a
        probe (``sizes["probe_wall_s"]`` or ``["probe_cpu_s"]``) contributes that
        measurement instead of its fitted cost.
        """
        probed = sizes.get(f"probe_{self.metric}") if self.metric in ("wall_s", "cpu_s") else None
        return {n: float(probed) if probed is not None and TERMS[n].stage
                else float(c * TERMS[n].size_for(self.metric)(sizes))
                for n, c in zip(self.terms, self.coef, strict=True)}

    def __call__(self, sizes: dict[str, float]) -> float:
        return sum(self.parts(sizes).values())

    def dominant(self, sizes: dict[str, float]) -> tuple[str, float]:
        """The largest term at ``sizes`` and its share of the total."""
        parts = self.parts(sizes)
        total = sum(parts.values())
        name = max(parts, key=parts.get)
        return name, (parts[name] / total if total > 0 else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"terms": dict(zip(self.terms, map(float, self.coef), strict=True)), "points": self.points}

    def probed(self, sizes: dict[str, float]) -> bool:
        """Whether a term of this model is a probe's measurement at ``sizes``."""
        return (self.metric in ("wall_s", "cpu_s") and f"probe_{self.metric}" in sizes
                and any(TERMS[n].stage for n in self.terms))


def fit_terms(names: tuple[str, ...], sizes: list[dict[str, float]], y: np.ndarray) -> Model:
    """Non-negative least squares of ``y`` on the terms, in relative error.

    Each equation is divided by its measurement, so a 1 s case and a 100 s case weigh the
    same (sizing is judged by ratios). Terms that do not vary over the points, beyond the
    fixed one, are dropped (their cost cannot be told from the fixed cost); with fewer
    distinct points than terms, the later terms are dropped first.
    """
    from scipy.optimize import nnls

    x = _features(names, sizes)
    known = np.array([TERMS[n].known or 0.0 for n in names])
    w = 1.0 / np.maximum(np.abs(np.asarray(y, dtype=float)), 1e-12)
    y = np.asarray(y, dtype=float) - x @ known  # what the known terms leave to fit
    keep = [i for i, n in enumerate(names) if TERMS[n].known is None
            and (n == "fixed" or np.ptp(x[:, i]) > 1e-9 * max(1.0, np.max(x[:, i])))]
    distinct = len({tuple(np.round(r, 6)) for r in x[:, keep]})
    keep = keep[:max(1, distinct)]
    xs = x[:, keep]
    scale = np.maximum(np.max(np.abs(xs), axis=0), 1e-300)
    c, _ = nnls(xs / scale * w[:, None], y * w)
    coef = known.copy()
    coef[keep] = c / scale
    return Model(tuple(names), coef, len(y))


def short_scale(scale: Any) -> str:
    """A scale's name for tables: the sweep's mid scale is ``mid`` (its other overrides kept)."""
    from uda.harness.suites import MID_SCALE

    text = str(scale)
    if text.startswith(MID_SCALE):
        rest = text[len(MID_SCALE):].lstrip(",")
        return "mid" + (f":{rest}" if rest else "")
    return text


# ---------------------------------------------------------------- reading results

def _results_files(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        elif p.is_file():
            files.append(p)
        else:
            msg = f"results path {p} does not exist; pass results files or folders written by `uda bench`"
            raise UserError(msg)
    return files


def _load_all(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The results objects in ``paths``: files in a folder that are not uda results are
    skipped; a file named explicitly must be one."""
    out = []
    for f in _results_files(paths):
        try:
            out.append(load_results(f))
        except UserError:
            if f in map(Path, paths):
                raise
    return out


def collect_points(paths: list[str | Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Measured points per ``(task, engine label)`` from results files (newest run wins per case)."""
    return points_of(_load_all(paths))


def _engine_label(c: dict[str, Any]) -> str:
    eng = c["engine"] if not c.get("scheduler") else f"{c['engine']}-{c['scheduler']}"
    cores = (c.get("limits") or {}).get("cores")
    return eng if cores is None else f"{eng}@{cores}"


def points_of(results: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Measured points per ``(task, engine label)`` from loaded results objects (newest run wins per case).

    The engine label is ``polars``, ``dask-threads``, ``dask-local:2``…, with ``@N`` for a
    case limited to N cores. Each point holds the scale, input rows, warm medians, the
    dataset's sizes and the machine's CPU and cores.
    """
    latest: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
    for res in results:
        for c in res["cases"]:
            s = c.get("summary")
            if c["status"] != "ok" or not s or not c.get("rows_in"):
                continue
            if (c.get("limits") or {}).get("cold") == "compile" or not s.get("n_warm"):
                continue  # a compile-from-scratch case measures compilation, not scaling
            created = res.get("created_utc", "")
            if c["id"] not in latest or latest[c["id"]][0] <= created:
                ds = res.get("datasets", {}).get(c.get("dataset") or "", {})
                m = res.get("machine", {})
                machine = {"cpu_model": m.get("cpu_model"), "cores": m.get("cpu_affinity")}
                latest[c["id"]] = (created, c, ds, machine)
    points: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _created, c, ds, machine in latest.values():
        if c["task"] == "generate":
            continue
        opts = ",".join(f"{k}={v}" for k, v in sorted((c.get("options") or {}).items()))
        key = (c["task"] if not opts else f"{c['task']}[{opts}]", _engine_label(c))
        s = c["summary"]
        sizes = dataset_sizes(ds) if ds.get("tables") else {}
        sizes["rows"] = float(c["rows_in"])
        sizes["iterations"] = float((c.get("quality") or {}).get("iterations") or 1.0)
        sizes["flow_in_flight"] = flow_in_flight(c["engine"])
        sizes["dask"] = float(c["engine"] == "dask")
        sizes["threads"] = float((c.get("limits") or {}).get("cores") or machine.get("cores") or 1)
        points.setdefault(key, []).append({
            "scale": c.get("scale"), "rows_in": float(c["rows_in"]), "wall_s": s["wall_s_median"],
            "cpu_s": s["cpu_s_median"], "peak_rss_bytes": float(s["peak_rss_bytes"]), "dataset": ds,
            "sizes": sizes, "machine": machine, "cores": (c.get("limits") or {}).get("cores"),
            "options": dict(c.get("options") or {}),
            "stages": {k: float(v) for k, v in ((c.get("task_summary") or {}).get("stage_seconds") or {}).items()
                       if isinstance(v, int | float)},
        })
    for pts in points.values():
        pts.sort(key=lambda p: p["rows_in"])
    return points


def _complete(pts: list[dict[str, Any]]) -> bool:
    return all({"traffic_rows", "links", "zones"} <= set(p["sizes"]) for p in pts)


def _fit_time(names: tuple[str, ...], pts: list[dict[str, Any]], metric: str = "wall_s") -> Model:
    """Wall or CPU time, with a term the task times itself (route's assignment) fitted on its
    own stage seconds and the other terms on the rest: at small scales such a stage is a few
    per cent of the time, too little for a fit of the total to find its cost. The stage's CPU
    seconds are taken in the call's CPU / wall proportion."""
    sizes = [p["sizes"] for p in pts]
    y = np.array([max(p[metric], 1e-9) for p in pts])
    staged = [n for n in names if TERMS[n].stage
              and all(set(TERMS[n].stage) <= set(p.get("stages", {})) for p in pts)]
    if not staged:
        fit = fit_terms(names, sizes, y)
        fit.metric = metric
        return fit
    n = staged[0]
    ys = np.array([sum(p["stages"][k] for k in TERMS[n].stage) * (p[metric] / max(p["wall_s"], 1e-9))
                   for p in pts])
    xs = np.array([TERMS[n].size_for(metric)(s) for s in sizes], dtype=float)
    c = float(ys.sum() / xs.sum()) if xs.sum() > 0 else 0.0  # seconds per unit, the largest stages weigh most
    rest = tuple(t for t in names if t != n)
    fit = fit_terms(rest, sizes, np.maximum(y - ys, 1e-9))
    coef = np.array([c if t == n else fit.coef[rest.index(t)] for t in names])
    return Model(tuple(names), coef, len(pts), metric)


def fit_models(pts: list[dict[str, Any]], task: str, model: str = "design") -> dict[str, Model]:
    """Models of wall time, CPU time and peak memory for one task and engine."""
    d = design(task, model) if _complete(pts) else ROWS_ONLY
    sizes = [p["sizes"] for p in pts]
    out = {m: fit_terms(d.time if m != "peak_rss_bytes" else d.memory, sizes,
                        np.array([max(p[m], 1e-9) for p in pts])) for m in METRICS}
    out["wall_s"] = _fit_time(d.time, pts)
    out["cpu_s"] = _fit_time(d.time, pts, "cpu_s")
    return out


def held_out_error(pts: list[dict[str, Any]], task: str = "", model: str = "design",
                   probe_s: float = 0.0) -> dict[str, Any] | None:
    """Refit without the largest size and compare the prediction for it with the measurement.

    Needs at least two distinct smaller sizes to fit; else ``None``. Points at the largest
    size (several datasets may give a task the same input) are all held out and averaged.
    With ``probe_s`` > 0, route's network stages at the held-out size are probed on its
    network (:func:`with_probe`) instead of fitted.
    """
    top = max(p["rows_in"] for p in pts)
    train = [p for p in pts if p["rows_in"] < top]
    test = [p for p in pts if p["rows_in"] == top]
    if len({p["rows_in"] for p in train}) < 2:
        return None
    fits = fit_models(train, task, model)
    out: dict[str, Any] = {"held_out_scale": ", ".join(str(p["scale"]) for p in test),
                           "fitted_on": [p["scale"] for p in train], "rows": top}
    test_sizes = [with_probe(p["sizes"], task, p["dataset"], p.get("options"), probe_s)[0] for p in test]
    for m, fit in fits.items():
        pred = float(np.mean([fit(s) for s in test_sizes]))
        measured = float(np.mean([p[m] for p in test]))
        out[m] = {"predicted": pred, "measured": measured, "relative_error": pred / measured - 1}
    return out


_PROBES: dict[tuple[int, int, tuple[tuple[str, Any], ...], float], tuple[Any, str]] = {}


def with_probe(sizes: dict[str, float], task: str, dataset: dict[str, Any] | None,
               options: dict[str, Any] | None, probe_s: float) -> tuple[dict[str, float], dict[str, Any] | None]:
    """``sizes`` with route's network stages measured on their street network by a probe.

    For route (with ``probe_s`` > 0 seconds of budget) the gravity OD, assignment and sites
    are run on the network of ``sizes["sensors"]`` sensors (seed from ``dataset``, options of
    the case) by :func:`uda.harness.route_probe.probe_network`; the copy of ``sizes`` holds
    ``probe_wall_s``, ``probe_cpu_s`` and the probe's iterations, which the time models use
    in place of their fitted network term. Probes are cached per network and options.

    Returns
    -------
    (dict, dict or None)
        The sizes, and what the probe found (or why it was not run); ``None`` when no probe
        applies (another task, or ``probe_s`` is 0).
    """
    from uda.harness.route_probe import probe_network

    if task.split("[")[0] != "route" or probe_s <= 0 or not sizes.get("sensors"):
        return sizes, None
    if not (math.isfinite(sizes["sensors"]) and 1 <= sizes["sensors"] <= 10**7):
        return sizes, {"probed": False, "reason": f"{sizes['sensors']:g} sensors is no city the generator builds"}
    params = (dataset or {}).get("params") or {}
    seed = int(params.get("seed") or (dataset or {}).get("seed") or 1)
    opts = dict(options or {})
    key = (int(sizes["sensors"]), seed, tuple(sorted((k, str(v)) for k, v in opts.items())), float(probe_s))
    if key not in _PROBES:
        _PROBES[key] = probe_network(key[0], seed=seed, options=opts, budget_s=probe_s)
    probe, why = _PROBES[key]
    if probe is None:
        return sizes, {"probed": False, "reason": why}
    out = dict(sizes, probe_wall_s=probe.wall_s, probe_cpu_s=probe.cpu_s, iterations=probe.iterations)
    return out, {"probed": True, **probe.to_dict()}


def _probe_note(task: str, eng: str, where: str, info: dict[str, Any], iterations: float) -> str:
    if not info.get("probed"):
        return (f"{task} on {eng}: network stages fitted on the sweep at {iterations:.0f} assignment iterations "
                f"(the count the gap needs on this network is unknown), not probed at {where}: {info['reason']}; "
                "raise --probe-seconds to measure them")
    its = (f"{info['iterations']:.0f} iterations" if info["iterations_source"] == "measured" else
           f"{info['iterations']:.0f} iterations extrapolated from the gap after the budget")
    return (f"{task} on {eng}: network stages (gravity OD, assignment, sites) measured at {where} by a probe on its "
            f"street network ({info['zones']:,} zones, {info['links']:,} links; {its}; median of {info['runs']} "
            f"run(s), {info['spent_s']:.1f} s on this machine now"
            + (f", load average {info['load_avg_1m']:.1f}" if info.get("load_avg_1m") is not None else "")
            + f"): {info['wall_s']:.2f} s wall, "
            f"{info['cpu_s']:.2f} s CPU")


# ---------------------------------------------------------------- curves for the report

@dataclass
class Curve:
    """One fitted sizing curve, for drawing the fit through a scaling plot.

    Attributes
    ----------
    task, engine
        Task (with its options, ``flow[k=v]``) and engine label (``dask-threads``).
    metric
        ``"wall_s"`` (warm median wall time) or ``"peak_bytes"`` (peak RSS of the process tree).
    points
        Measured ``(rows_in, value)`` pairs, smallest input first.
    predict
        The fitted model as a function of input rows (vectorised over a NumPy array); the
        other sizes (sensors, links, …) are interpolated between the measured scales on
        log axes and extrapolated beyond them.
    heldout
        ``(rows, measured, predicted)`` of the largest measured size when the model is
        refitted without it, or ``None`` when too few sizes were measured to hold one out.
    """

    task: str
    engine: str
    metric: str
    points: list[tuple[float, float]]
    predict: Callable[[np.ndarray], np.ndarray]
    heldout: tuple[float, float, float] | None


_CURVE_METRICS = {"wall_s": "wall_s", "peak_bytes": "peak_rss_bytes"}


def _sizes_along(pts: list[dict[str, Any]], rows: float) -> dict[str, float]:
    """Sizes at ``rows`` input rows, interpolated log-log between the measured points."""
    by_rows: dict[float, dict[str, float]] = {}
    for p in pts:
        by_rows.setdefault(p["rows_in"], p["sizes"])
    xs = np.log(np.array(sorted(by_rows)))
    keys = set.intersection(*(set(s) for s in by_rows.values()))
    out = {}
    lx = math.log(max(rows, 1.0))
    for k in keys:
        ys = np.log(np.maximum([by_rows[r][k] for r in sorted(by_rows)], 1e-12))
        if xs.size == 1:
            out[k] = float(np.exp(ys[0]) * rows / math.exp(xs[0])) if k.endswith("rows") else float(np.exp(ys[0]))
            continue
        i = 0 if lx <= xs[0] else (xs.size - 2 if lx >= xs[-1] else int(np.searchsorted(xs, lx)) - 1)
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) if xs[i + 1] > xs[i] else 0.0
        out[k] = float(np.exp(ys[i] + slope * (lx - xs[i])))
    out["rows"] = float(rows)
    return out


def curves(results: list[dict[str, Any]]) -> list[Curve]:
    """Sizing fits of wall time and peak memory against input rows, per task and engine.

    Parameters
    ----------
    results
        Results objects as :func:`uda.harness.results.load_results` returns them.

    Returns
    -------
    list of Curve
        Two curves (``wall_s``, ``peak_bytes``) per task and engine measured at two or more
        input sizes (one-core and efficiency cases are left out).
    """
    out = []
    for (task, eng), pts in sorted(points_of(results).items()):
        if len({p["rows_in"] for p in pts}) < 2:
            continue
        fits = fit_models(pts, task)
        held = held_out_error(pts, task)

        def predict(x: np.ndarray, fit: Model, pts: list[dict[str, Any]] = pts) -> np.ndarray:
            arr = np.asarray(x, dtype=float)
            return np.array([fit(_sizes_along(pts, float(r))) for r in arr.ravel()]).reshape(arr.shape)

        for metric, key in _CURVE_METRICS.items():
            out.append(Curve(task=task, engine=eng, metric=metric,
                             points=[(p["rows_in"], float(p[key])) for p in pts],
                             predict=lambda x, f=fits[key], pr=predict: pr(x, f),
                             heldout=(held["rows"], held[key]["measured"], held[key]["predicted"])
                             if held else None))
    return out


# ---------------------------------------------------------------- the user's city

def _family_tables(ds: dict[str, Any], family: str) -> list[dict[str, Any]]:
    """Manifest entries holding a family's rows: the canonical table, else its truth copy,
    else the department feeds (``feed_<family>_*``) of a dataset generated with defects."""
    tables = ds.get("tables", {})
    for name in (family, f"true_{family}"):
        if tables.get(name, {}).get("rows"):
            return [tables[name]]
    return [t for name, t in tables.items() if name.startswith(f"feed_{family}_")]


def _family_rows(ds: dict[str, Any]) -> dict[str, float]:
    return {f: float(sum(t.get("rows") or 0 for t in _family_tables(ds, f))) for f in FAMILIES}


def _family_bytes_per_row(ds: dict[str, Any]) -> dict[str, float]:
    out = {}
    for f in FAMILIES:
        parts = _family_tables(ds, f)
        rows = sum(t.get("rows") or 0 for t in parts)
        out[f] = sum(t.get("bytes") or 0 for t in parts) / rows if rows else 0.0
    return out


def city_rows(ds: dict[str, Any], *, sensors: int, days: float, interval_s: float,
              stations: int | None, water_sites: int | None) -> dict[str, float]:
    """Rows per sensor table for the user's city, scaled from the measured dataset ``ds``.

    Traffic is exact (sensors x days x slots per day). Taps scale with stations and days
    from the dataset's taps per station-day; water with sites and days at the dataset's
    water interval. Stations and sites not given follow the presets (:func:`preset_size`).
    """
    p = ds.get("params", {})
    rows = _family_rows(ds)
    ds_days = p.get("days") or 1
    st = stations if stations is not None else preset_size(sensors, "stations")
    ws = water_sites if water_sites is not None else preset_size(sensors, "water_sites")
    water_interval = p.get("water_interval_s") or 900
    return {
        "traffic": sensors * days * 86400 / interval_s,
        "taps": rows["taps"] / ((p.get("stations") or 1) * ds_days) * st * days,
        "water": ws * days * 86400 / water_interval,
    }


def preset_size(sensors: float, attr: str) -> float:
    """``attr`` (districts, stations, water_sites…) of a city of ``sensors`` as the presets
    have it, interpolated on log axes (extrapolated along the last two presets)."""
    from uda.scales import PRESETS

    xs = np.log([p.sensors for p in PRESETS.values()])
    ys = np.log([getattr(p, attr) for p in PRESETS.values()])
    lx = math.log(sensors)
    if lx >= xs[-1]:
        return float(np.exp(ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (lx - xs[-1])))
    return float(np.exp(np.interp(lx, xs, ys)))


def city_sizes(largest: dict[str, Any], *, sensors: int, days: float, interval_s: float,
               stations: int | None, water_sites: int | None) -> tuple[dict[str, float], str | None]:
    """Sizes of the user's city for a task measured at ``largest`` (its largest point).

    The task's input rows are scaled from the measured dataset through the sensor table it
    mostly reads (the family whose row count is nearest its ``rows_in``); the network,
    files and districts follow the generator's formulas.
    """
    ds = largest["dataset"]
    fam_rows = _family_rows(ds)
    fam_rows["all"] = sum(fam_rows.values())
    family = min((f for f in fam_rows if fam_rows[f] > 0),
                 key=lambda f: abs(math.log(largest["rows_in"] / fam_rows[f])), default=None)
    user = city_rows(ds, sensors=sensors, days=days, interval_s=interval_s, stations=stations,
                     water_sites=water_sites)
    user["all"] = sum(user.values())
    sizes = dict(street_grid(sensors))
    traffic_days = days * 300 / interval_s  # rows per sensor in 5-minute days (files hold whole sensors)
    sizes.update(
        sensors=float(sensors), days=float(days), traffic_rows=user["traffic"], taps_rows=user["taps"],
        water_rows=user["water"], districts=preset_size(sensors, "districts"),
        stations=float(stations) if stations is not None else preset_size(sensors, "stations"),
        water_sites=float(water_sites) if water_sites is not None else preset_size(sensors, "water_sites"),
        files=traffic_files(sensors, traffic_days),
        iterations=largest["sizes"].get("iterations", 1.0),
        flow_in_flight=largest["sizes"].get("flow_in_flight", float(IN_FLIGHT)),
        dask=largest["sizes"].get("dask", 0.0),
        threads=largest["sizes"].get("threads", 1.0),
        rows=largest["rows_in"] * user[family] / fam_rows[family] if family else largest["rows_in"],
    )
    return sizes, family


# ---------------------------------------------------------------- parallel efficiency

@dataclass
class Efficiency:
    """Measured speed-up from one to two cores (or workers) and the parallel fraction it implies."""

    form: str                  # "cores" (threads on one machine) or "workers" (a LocalCluster)
    scale: str | None
    wall_1: float
    wall_2: float
    ratio_to_base: float = 1.0  # wall on one worker / the engine's wall on the measured machine
    memory_2: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.wall_1 / self.wall_2

    @property
    def parallel_fraction(self) -> float:
        """Amdahl's p from the two-way speed-up S: ``1/S = (1 - p) + p/2``, within [0, 1]."""
        return float(min(1.0, max(0.0, 2.0 * (1.0 - 1.0 / self.speedup))))

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "scale": self.scale, "wall_1_s": self.wall_1, "wall_2_s": self.wall_2,
                "speedup": self.speedup, "efficiency": self.speedup / 2,
                "parallel_fraction": self.parallel_fraction}


def units_for(wall_1: float, p: float, deadline_s: float, *, limit: int = 4096) -> int | None:
    """Fewest units (cores or workers) n with ``wall_1 * ((1 - p) + p / n) <= deadline`` (Amdahl);
    ``None`` when even ``limit`` units miss it (the serial part alone is too long)."""
    if wall_1 <= deadline_s:
        return 1
    room = deadline_s / wall_1 - (1.0 - p)
    if room <= 0 or p <= 0:
        return None
    n = math.ceil(p / room - 1e-9)
    return n if n <= limit else None


def efficiencies(points: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[tuple[str, str], Efficiency]:
    """Per ``(task, engine label)``: the one-core vs two-core speed-up at the same scale, and for
    ``dask`` the LocalCluster of one vs two workers (label ``dask-local``)."""
    out: dict[tuple[str, str], Efficiency] = {}
    for (task, eng), pts in points.items():
        if "@" not in eng or eng.split("@")[1] != "1":
            continue
        base = eng.split("@")[0]
        for p1 in pts:
            p2 = next((p for p in points.get((task, base), []) if p["scale"] == p1["scale"]), None)
            if p2 is not None:
                out[(task, base)] = Efficiency("cores", p1["scale"], p1["wall_s"], p2["wall_s"])
    for (task, eng), pts in points.items():
        if eng != "dask-local:1":
            continue
        for p1 in pts:
            p2 = next((p for p in points.get((task, "dask-local:2"), []) if p["scale"] == p1["scale"]), None)
            base = next((p for p in points.get((task, "dask-threads"), []) if p["scale"] == p1["scale"]), None)
            if p2 is not None:
                out[(task, "dask-local")] = Efficiency(
                    "workers", p1["scale"], p1["wall_s"], p2["wall_s"],
                    ratio_to_base=p1["wall_s"] / base["wall_s"] if base else 1.0, memory_2=p2["peak_rss_bytes"])
    return out


# ---------------------------------------------------------------- the answer

def _check_city(sensors: int, days: float, interval_s: float, stations: int | None,
                water_sites: int | None) -> None:
    if not (math.isfinite(days) and days > 0 and sensors > 0):
        msg = f"--sensors {sensors} and --days {days} must both be positive finite numbers"
        raise UserError(msg)
    if days > 36_600 or sensors > 10**9:
        msg = f"--sensors {sensors} or --days {days} is beyond any city this estimate is for (at most 10^9 sensors, 100 years)"
        raise UserError(msg)
    if interval_s > 86400:
        msg = f"--interval of {interval_s:g} s is longer than a day; sensors report at least daily"
        raise UserError(msg)
    for name, value in (("--stations", stations), ("--water-sites", water_sites)):
        if value is not None and value <= 0:
            msg = f"{name} {value} must be positive"
            raise UserError(msg)


def _select(points: dict[tuple[str, str], list[dict[str, Any]]], tasks: list[str] | None,
            engines: list[str] | None) -> dict[tuple[str, str], list[dict[str, Any]]]:
    if tasks:
        points = {k: v for k, v in points.items() if k[0].split("[")[0] in tasks}
    if engines:
        points = {k: v for k, v in points.items()
                  if k[1].split("@")[0] in engines or k[1].split("-")[0] in engines}
    return points


SWEEP_HINT = "run the scale sweep: `uda bench --suite sweep` (about 20 min on 2 cores)"


def _scaling_series(points: dict[tuple[str, str], list[dict[str, Any]]], where: str
                    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The series measured at two or more sizes (one-core and cluster cases measure efficiency)."""
    if not points:
        msg = f"no measured ok cases in {where}; {SWEEP_HINT}"
        raise UserError(msg)
    series = {k: v for k, v in points.items() if "@" not in k[1] and len({p["rows_in"] for p in v}) >= 2}
    if not series:
        scales = sorted({str(p["scale"]) for v in points.values() for p in v})
        msg = (f"the results in {where} hold one size per task ({', '.join(scales)}); a fit needs two and "
               f"a held-out check three: {SWEEP_HINT}")
        raise UserError(msg)
    return series


def size(*, sensors: int, days: float, interval_s: float, deadline_s: float,
         results: list[str | Path], stations: int | None = None, water_sites: int | None = None,
         tasks: list[str] | None = None, engines: list[str] | None = None,
         model: str = "design", probe_s: float = 0.0) -> dict[str, Any]:
    """Predict time, cores, memory and storage for a city from measured scale sweeps.

    Parameters
    ----------
    sensors, days, interval_s
        Traffic sensors, days of data to process, and the sensors' reporting interval.
    deadline_s
        Time within which the ``days`` of data must be processed.
    results
        Results files or folders holding scale sweeps (``uda bench --suite sweep``).
    stations, water_sites
        Transit stations and water sites (default: in proportion to the sensors).
    tasks, engines
        Keep only these tasks / engine labels.
    model
        ``"design"`` (the terms of :data:`DESIGNS`; the default) or ``"rows"`` (fixed plus
        per row for time and memory alike, for comparison).
    probe_s
        Budget in seconds of the probe that measures route's network stages on the city's
        street network (:func:`with_probe`); 0 fits them on the sweep instead.

    Returns
    -------
    dict
        ``{"city", "storage", "estimates", "notes"}``; per task and engine: the city's
        sizes, predicted wall time on the measured machine, CPU seconds, peak memory, the
        dominant term of each, the fits and their held-out error, the extrapolation
        factor, the measured parallel efficiency and the cores (or Dask workers and their
        memory) that meet the deadline.
    """
    if model not in ("design", "rows"):
        msg = f"unknown model {model!r}; choose design or rows"
        raise UserError(msg)
    _check_city(sensors, days, interval_s, stations, water_sites)
    where = ", ".join(map(str, results))
    points = _select(collect_points(results), tasks, engines)
    series = _scaling_series(points, where)
    eff = efficiencies(points)
    estimates = []
    notes: list[str] = []
    storage_ds = None
    for (task, eng), pts in sorted(series.items()):
        largest = pts[-1]
        ds = largest["dataset"]
        fits = fit_models(pts, task, model)
        est: dict[str, Any] = {"task": task, "engine": eng, "scales": [p["scale"] for p in pts],
                               "rows_measured": [p["rows_in"] for p in pts],
                               "fits": {m: f.to_dict() for m, f in fits.items()},
                               "held_out": held_out_error(pts, task, model, probe_s if model == "design" else 0.0),
                               "measured_on": largest["machine"], "rows_in": None}
        if ds.get("tables"):
            if storage_ds is None or (ds.get("tables", {}).get("traffic") and
                                      not storage_ds.get("tables", {}).get("traffic")):
                storage_ds = ds  # prefer canonical tables (no defects) for storage
            sizes, family = city_sizes(largest, sensors=sensors, days=days, interval_s=interval_s,
                                       stations=stations, water_sites=water_sites)
            sizes, probe = with_probe(sizes, task, ds, largest.get("options"), probe_s if model == "design" else 0.0)
            if probe is not None:
                est["probe"] = probe
                notes.append(_probe_note(task, eng, "the city", probe, sizes["iterations"]))
            est.update(family=family, sizes=sizes, rows_in=sizes["rows"],
                       extrapolation=sizes["rows"] / largest["rows_in"])
            for m, fit in fits.items():
                est[m] = fit(sizes)
                name, share = fit.dominant(sizes)
                est[f"{m}_dominant"] = {"term": name, "share": share}
            est.update(_cores(task, eng, est, fits, sizes, eff, deadline_s, largest["machine"].get("cores")))
            if est["extrapolation"] > EXTRAPOLATION_WARN:
                notes.append(f"{task} on {eng}: {est['extrapolation']:,.0f}x the largest measured input "
                             f"({short_scale(largest['scale'])}); beyond {EXTRAPOLATION_WARN:g}x the prediction "
                             "is unverified")
        estimates.append(est)
    if storage_ds is None:
        msg = "the results hold no dataset description (rows per table); re-run `uda bench` on generated datasets"
        raise UserError(msg)
    if all(e["held_out"] is None for e in estimates):
        notes.append(f"no held-out check: every task was measured at fewer than three sizes; {SWEEP_HINT}")
    if not eff:
        notes.append("cores assume perfect scaling (CPU s / deadline): the results hold no one-core or "
                     f"LocalCluster cases; {SWEEP_HINT}")
    user = city_rows(storage_ds, sensors=sensors, days=days, interval_s=interval_s,
                     stations=stations, water_sites=water_sites)
    bpr = _family_bytes_per_row(storage_ds)
    per_day = {f: user[f] / days * bpr[f] for f in FAMILIES}
    return {
        "city": {"sensors": sensors, "days": days, "interval_s": interval_s, "deadline_s": deadline_s,
                 "stations": stations, "water_sites": water_sites,
                 "rows": {f: user[f] for f in FAMILIES}},
        "model": model,
        "storage": {"bytes_per_day": per_day, "total_bytes_per_day": sum(per_day.values()),
                    "total_bytes": sum(per_day.values()) * days,
                    "bytes_per_row": bpr, "format": "Parquet, zstd level 1"},
        "estimates": estimates,
        "efficiency": {f"{t}/{e}": v.to_dict() for (t, e), v in sorted(eff.items())},
        "notes": notes,
    }


def _cores(task: str, eng: str, est: dict[str, Any], fits: dict[str, Model], sizes: dict[str, float],
           eff: dict[tuple[str, str], Efficiency], deadline_s: float, machine_cores: int | None
           ) -> dict[str, Any]:
    """Cores on one machine (threads) and the Dask cluster form that meet the deadline."""
    out: dict[str, Any] = {"meets_deadline_as_measured": est["wall_s"] <= deadline_s}
    e = eff.get((task, eng))
    m_cores = machine_cores or 2
    if e is not None:
        p = e.parallel_fraction
        wall_1 = est["wall_s"] / ((1 - p) + p / m_cores)
        out.update(cores=units_for(wall_1, p, deadline_s), cores_basis="measured",
                   parallel_fraction=p, wall_1_core_s=wall_1)
    else:
        out.update(cores=max(1, math.ceil(est["cpu_s"] / deadline_s)), cores_basis="cpu/deadline")
    c = eff.get((task, "dask-local"))
    if eng == "dask-threads" and c is not None:
        p = c.parallel_fraction
        wall_1 = est["wall_s"] * c.ratio_to_base
        n = units_for(wall_1, p, deadline_s)
        if n is not None:
            fit = fits["peak_rss_bytes"]
            parts = fit.parts(sizes)
            # a single-threaded worker holds one block in flight (the threads held two), an
            # n-th of the data that is held whole, and the structures and fixed cost in full
            per = sum(v / 2 if TERMS[k].kind == "block" else v / n if TERMS[k].kind == "data" else v
                      for k, v in parts.items())
            out["cluster"] = {"workers": n, "memory_per_worker_bytes": per, "parallel_fraction": p}
        else:
            out["cluster"] = None
    return out


# ---------------------------------------------------------------- validation on unseen data

#: Table whose rows a task reports as its input, for reference runs made outside the harness.
_INPUT_TABLE = {"route": "traffic", "flow": "traffic", "water": "water"}


def reference_points(ref: dict[str, Any], where: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Points of a reference file written by ``bench/bench_large.py`` (``results/reference/large.json``).

    Each step ``task/engine`` ran ``uda run`` on a generated preset scale; its peak is the
    largest process's maximum RSS (the cgroup peak also counts the page cache). Sizes come
    from the preset through the generator's formulas.
    """
    from uda.scales import PRESETS

    scale = PRESETS.get(str(ref.get("scale")))
    steps = ref.get("steps")
    if scale is None or not isinstance(steps, dict):
        msg = f"{where} is neither a results file nor a reference file with a preset scale and steps"
        raise UserError(msg)
    grid = street_grid(scale.sensors)
    tables = {"traffic": {"rows": scale.traffic_rows}, "water": {"rows": scale.water_rows},
              "sensors": {"rows": scale.sensors}, "districts": {"rows": scale.districts},
              "links": {"rows": grid["links"]}, "zones": {"rows": grid["zones"]}}
    ds = {"scale": scale.name, "params": scale.as_dict(), "tables": tables}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, step in steps.items():
        task, _, engine = str(name).partition("/")
        if task not in _INPUT_TABLE or not isinstance(step, dict) or step.get("exit") != 0 \
                or not step.get("max_rss_bytes_largest_process"):
            continue
        cmd = str(step.get("cmd", ""))
        it = re.search(r"--max-iter (\d+)", cmd)
        sizes = dataset_sizes(ds)
        sizes["rows"] = float(tables[_INPUT_TABLE[task]]["rows"])
        sizes["iterations"] = float(it.group(1)) if it else 1.0
        sizes["flow_in_flight"] = flow_in_flight(engine)
        sizes["dask"] = float(engine == "dask")
        eng = "dask-threads" if engine == "dask" else engine
        out.setdefault((task, eng), []).append({
            "scale": scale.name, "rows_in": sizes["rows"], "wall_s": float(step.get("wall_s") or 0) or 1e-9,
            "cpu_s": None,  # not recorded by the reference bench
            "peak_rss_bytes": float(step["max_rss_bytes_largest_process"]), "dataset": ds, "sizes": sizes,
            "machine": {}, "cores": None, "options": {"max_iter": int(it.group(1))} if it else {}})
    return out


def _check_points(paths: list[str | Path]) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], set[str]]:
    """Points to check and the case ids to keep out of the fit (results files or reference files)."""
    from uda.harness.results import read_json

    points: dict[tuple[str, str], list[dict[str, Any]]] = {}
    ids: set[str] = set()
    for f in _results_files(paths):
        obj = read_json(str(f), "pass a results file of `uda bench` or results/reference/large.json")
        if isinstance(obj, dict) and "steps" in obj and "schema" not in obj:
            for k, v in reference_points(obj, str(f)).items():
                points.setdefault(k, []).extend(v)
            continue
        res = load_results(f)
        ids |= {c["id"] for c in res["cases"]}
        for k, v in points_of([res]).items():
            points.setdefault(k, []).extend(v)
    return points, ids


def check(*, results: list[str | Path], against: list[str | Path], tasks: list[str] | None = None,
          engines: list[str] | None = None, model: str = "design", probe_s: float = 0.0) -> dict[str, Any]:
    """Predict every measured case of ``against`` from a fit on ``results`` alone.

    The cases of ``against`` are taken out of the fit (their ids are excluded), so the check
    is on data the models never saw. Sizes come from the checked case's own dataset.
    ``against`` may also be a reference file of ``bench/bench_large.py``
    (``results/reference/large.json``), whose peaks are the largest process's RSS.
    With ``probe_s`` > 0, route's network stages are measured on each checked case's
    street network by a probe (:func:`with_probe`), not taken from the case: the
    assignment's iterations and seconds come from the probe too.

    Returns
    -------
    dict
        ``{"rows": [{task, engine, scale, rows, fitted_on, wall/peak measured, predicted,
        ratio predicted/measured}], "worst_ratio": {...}}``.
    """
    test_points, test_ids = _check_points(against)
    fit_res = [dict(r, cases=[c for c in r["cases"] if c["id"] not in test_ids]) for r in _load_all(results)]
    train = _select(points_of(fit_res), tasks, engines)
    where = ", ".join(map(str, results))
    series = _scaling_series(train, where)
    rows = []
    notes: list[str] = []
    for key, tpts in sorted(_select(test_points, tasks, engines).items()):
        pts = series.get(key)
        if not pts:
            continue
        fits = fit_models(pts, key[0], model)
        for p in tpts:
            row = {"task": key[0], "engine": key[1], "scale": p["scale"], "rows": p["rows_in"],
                   "fitted_on": [q["scale"] for q in pts],
                   "extrapolation": p["rows_in"] / pts[-1]["rows_in"]}
            sizes, probe = with_probe(p["sizes"], key[0], p["dataset"], p.get("options"),
                                      probe_s if model == "design" else 0.0)
            if probe is not None:
                row["probe"] = dict(probe, case_iterations=p["sizes"].get("iterations"))
                notes.append(_probe_note(key[0], key[1], short_scale(p["scale"]), probe, sizes["iterations"]))
            for m in METRICS:
                pred = fits[m](sizes)
                row[m] = {"measured": p[m], "predicted": pred, "ratio": pred / p[m] if p[m] else None}
            rows.append(row)
    if not rows:
        msg = f"no case of {', '.join(map(str, against))} has a fitted task and engine in {where}"
        raise UserError(msg)
    worst = {m: max((max(r[m]["ratio"], 1 / r[m]["ratio"]) for r in rows if r[m]["ratio"]), default=None)
             for m in METRICS}
    return {"rows": rows, "worst_factor": worst, "model": model, "notes": notes}
