"""Route's network stages measured on the target city's street network (a probe for ``uda size``).

Route's time has two parts that grow with different things. Reading the traffic files
and reducing them to link travel times grows with the rows; the sweep measures it and
``uda size`` fits it. The rest — the gravity OD matrix (one all-or-nothing skim and
Furness balancing), user-equilibrium assignment (an all-or-nothing loading from every
zone per iteration, until the relative gap is reached) and the p-median sites (one skim)
— depends only on the street network and the zones' population and jobs, not on a single
data row. How many iterations the assignment needs is set by the gap criterion on that
network (2 to 19 at the sweep's scales, 55 at ``medium``), and its cost per iteration
changes with the network too (the loading runs in parallel blocks only above a work
threshold), so a cost fitted on the sweep's small networks does not carry to a big one.

The network and demand of any scale are cheap to build (the generator's street grid and
zones, no data rows), so this module builds them for the target and runs those stages
there, on this machine, with the task's own code and options: a measurement, not an
extrapolation. The probe has a time budget; when the assignment has not converged
within it, the remaining iterations are timed at the probe's own cost per iteration and
their number is extrapolated from the probe's gap history (a power law in the iteration
count, fitted on its later half), which the result states. :func:`with_probe` puts a
probe's figures into the sizes the time models are evaluated at.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from uda.harness.sizing.models import street_grid

#: Route options that change the network stages and that the probe reproduces; any other
#: OD source (smart-card trips, a given matrix) cannot be probed without the data.
PROBE_OPTIONS = ("algorithm", "gap", "max_iter", "trip_rate", "beta_per_min", "sites", "unreachable")
#: Default time budget of a probe, seconds.
DEFAULT_BUDGET_S = 60.0
#: Runs of a short probe (the median is kept).
REPEATS = 3
#: A lower bound of an all-or-nothing loading's seconds per zone x (node + link), to decide
#: without building it whether a network could be probed at all (12 ns were measured on
#: two threads at ``medium``): past the budget, the network is not built.
LOADING_FLOOR_S = 5e-9


@dataclass(frozen=True)
class NetworkProbe:
    """Measured (or partly extrapolated) cost of route's network stages on one street network.

    Attributes
    ----------
    wall_s, cpu_s
        Predicted wall and CPU seconds of the gravity OD, assignment and sites stages
        together (as ``stage_seconds`` ``od + assignment + sites`` of a route run).
    iterations
        Assignment iterations: run to the gap (or ``max_iter``), or extrapolated.
    iterations_source
        ``"measured"`` when the probe ran the assignment to its end, else
        ``"extrapolated"`` from the gap history within the budget.
    spent_s
        Wall seconds the probe itself took (building the network included).
    nodes, links, zones
        Size of the probed network.
    stages
        Per stage (``od``, ``assignment``, ``sites``): wall seconds of the probe's last run.
    runs
        Runs of the stages whose median ``wall_s`` and ``cpu_s`` are (a short probe is
        repeated, up to :data:`REPEATS`, while it stays within half the budget).
    load_avg_1m
        The machine's one-minute load average when the probe ended (its wall time, like
        any measurement, is that of the machine at the time).
    """

    wall_s: float
    cpu_s: float
    iterations: float
    iterations_source: str
    spent_s: float
    nodes: int
    links: int
    zones: int
    stages: dict[str, float]
    runs: int = 1
    load_avg_1m: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _OverBudget(Exception):
    """Raised inside the probe's assignment callback when its time budget is spent."""


class _Tables:
    """The generated city's tables behind the ``read`` of a dataset (what ``read_city`` uses)."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self._tables = tables

    def read(self, name: str) -> Any:
        import polars as pl

        return pl.from_arrow(self._tables[name])


def probe_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The route options a probe uses, or ``None`` when the run's OD cannot be probed
    (``od`` other than the gravity model)."""
    options = dict(options or {})
    if options.get("od") not in (None, "gravity"):
        return None
    return {k: v for k, v in options.items() if k in PROBE_OPTIONS}


def iterations_to_gap(gaps: list[float], target: float, max_iter: int) -> float:
    """Iterations until the relative gap reaches ``target``, extrapolated from ``gaps``.

    ``gaps[i]`` is the gap at iteration ``i``. The later half (at least three values) is
    fitted as ``log gap = a + b log(i + 1)`` (Frank-Wolfe-type methods converge about as a
    power of the iteration count) and solved for ``target``; the answer is at least one
    past the last iteration seen and at most ``max_iter``.
    """
    seen = len(gaps) - 1
    g = np.asarray(gaps, dtype=float)
    if g.size and g[-1] <= target:
        return float(seen)
    lo = min(g.size // 2, max(0, g.size - 3))
    x = np.log(np.arange(lo, g.size) + 1.0)
    y = np.log(np.maximum(g[lo:], 1e-300))
    if x.size < 2 or np.ptp(x) == 0:
        return float(max_iter)
    b, a = np.polyfit(x, y, 1)
    if not b < 0 or not target > 0:  # not converging, or a target it never reaches
        return float(max_iter)
    e = (math.log(target) - a) / b
    if e >= math.log(max_iter + 1.0):  # a flat history: beyond max_iter (and no overflow)
        return float(max_iter)
    n = math.exp(e) - 1.0
    return float(min(max_iter, max(seen + 1, math.ceil(n))))


def city_network(sensors: int, seed: int = 1) -> Any:
    """The street network, zones, population and jobs of the generated city of ``sensors``
    sensors (a :class:`uda.routing.network.CityGraph`), without generating any data.

    ``uda.city.build_city`` draws the road grid and the zones from the ``roads`` and
    ``zones`` streams of ``seed`` and the sensor count alone, so a city built with the
    ``tiny`` preset's few stations and water sites has the same network as the full one.
    """
    from uda.city import build_city
    from uda.routing.network import read_city
    from uda.scales import PRESETS

    scale = replace(PRESETS["tiny"], name="probe", sensors=int(sensors), days=1)
    return read_city(_Tables(build_city(scale, seed).tables))


def probe_network(sensors: int, *, seed: int = 1, options: dict[str, Any] | None = None,
                  budget_s: float = DEFAULT_BUDGET_S) -> tuple[NetworkProbe | None, str]:
    """Run route's network stages on the street network of a city of ``sensors`` sensors.

    Parameters
    ----------
    sensors
        Traffic sensors of the city; the street grid and zones follow the generator
        (``uda.city.build_city``), which draws them from ``seed`` alone (stations, water
        sites and days do not change them).
    seed
        Generator seed of the city.
    options
        Route options (``gap``, ``max_iter``, ``algorithm``, ``trip_rate``, ``beta_per_min``,
        ``sites``); see :func:`probe_options`.
    budget_s
        Wall seconds the probe may take; beyond it the assignment is stopped and its
        remaining iterations are extrapolated.

    Returns
    -------
    (NetworkProbe or None, str)
        The probe, or ``None`` with the reason it was not run (the OD is not the gravity
        model, or one all-or-nothing loading alone would exceed the budget).
    """
    from uda.kernels.assign import Network, all_or_nothing, parallel_blocks, warm_up

    opts = probe_options(options)
    if opts is None:
        return None, "its OD comes from the data (smart-card trips or a given matrix), which a probe cannot build"
    grid = street_grid(sensors)
    floor = grid["zones"] * (grid["nodes"] + grid["links"]) * LOADING_FLOOR_S
    if 4 * floor > budget_s:
        return None, (f"one all-or-nothing loading of its {grid['zones']:,.0f} zones x {grid['links']:,.0f} links "
                      f"takes at least {floor:,.0f} s, beyond the probe's budget of {budget_s:g} s")
    started = time.perf_counter()
    city = city_network(sensors, seed)
    free_time = city.free_flow_time_s
    sizes = {"nodes": int(city.node_id.size), "links": int(city.link_id.size), "zones": int(city.zone_ids.size)}
    net0 = city.network(free_time, city.centroid)
    warm_up(parallel=parallel_blocks(net0) > 1)
    # guard: time the loading from a few origins; a probe needs about four full loadings
    few = min(city.centroid.size, 4)
    sample = Network(num_nodes=city.node_id.size, tail=city.tail, head=city.head, free_flow_time=free_time,
                     b=net0.b, capacity=city.capacity_vph, power=net0.power, origins=city.centroid[:few],
                     dests=city.centroid, demand=np.zeros((few, city.centroid.size)))
    t0 = time.perf_counter()
    all_or_nothing(sample, free_time)
    one_aon = (time.perf_counter() - t0) / few * city.centroid.size  # the sample runs in blocks too
    if 4 * one_aon > budget_s - (time.perf_counter() - started):
        return None, (f"one all-or-nothing loading of its {sizes['zones']:,} zones x {sizes['links']:,} links "
                      f"takes about {one_aon:,.0f} s here, beyond the probe's budget of {budget_s:g} s")

    runs = []
    while True:
        runs.append(_stages(city, net0, opts, deadline=started + budget_s))
        spent = time.perf_counter() - started
        # repeat a short probe (up to REPEATS runs, the median kept) while it costs little
        if len(runs) >= REPEATS or runs[-1][3] != "measured" or spent + runs[-1][0] > budget_s / 2:
            break
    wall = float(np.median([r[0] for r in runs]))
    cpu = float(np.median([r[1] for r in runs]))
    last = runs[-1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return NetworkProbe(wall_s=wall, cpu_s=cpu, iterations=last[2], iterations_source=last[3],
                        spent_s=time.perf_counter() - started, stages=last[4], runs=len(runs),
                        load_avg_1m=load, **sizes), ""


def _stages(city: Any, net0: Any, opts: dict[str, Any], *, deadline: float
            ) -> tuple[float, float, float, str, dict[str, float]]:
    """One run of the gravity OD, assignment and sites stages as ``route.run`` has them:
    (wall s, CPU s, iterations, how they were found, wall s per stage)."""
    from uda.kernels.assign import all_or_nothing, assign
    from uda.kernels.pmedian import p_median
    from uda.routing.assignment import RouteAssignment, check_reachable
    from uda.routing.od import gravity_od

    free_time = city.free_flow_time_s
    algorithm = str(opts.get("algorithm", "bfw"))
    gap = float(opts.get("gap", 1e-4))
    max_iter = int(opts.get("max_iter", 500))
    stage: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    free_skim = all_or_nothing(net0, free_time).skim
    with np.errstate(all="ignore"):
        demand = gravity_od(float(opts.get("trip_rate", 0.2)) * city.population, city.jobs, free_skim,
                            beta_per_min=float(opts.get("beta_per_min", 0.1)))
    stage["od"] = time.perf_counter() - t0

    ticks: list[tuple[float, float]] = []  # (wall, cpu) at each gap evaluation
    gaps: list[float] = []

    def tick(_it: int, g: float, _obj: float) -> None:
        ticks.append((time.perf_counter(), time.process_time()))
        gaps.append(g)
        if time.perf_counter() > deadline and len(gaps) >= 4:
            raise _OverBudget

    t0 = time.perf_counter()
    net = city.network(free_time, city.centroid, demand)
    check_reachable(net, unreachable=str(opts.get("unreachable", "error")), origin_ids=city.zone_ids,
                    dest_ids=city.zone_ids)
    source = "measured"
    extra_wall = extra_cpu = 0.0
    try:
        result = assign(net, algorithm=algorithm, gap=gap, max_iter=max_iter, callback=tick)
        RouteAssignment(result=result, init_node=city.node_id[city.tail], term_node=city.node_id[city.head],
                        capacity=city.capacity_vph, algorithm=algorithm, compile_seconds=0.0,
                        total_demand=float(demand.sum()))
        iterations = float(result.iterations)
    except _OverBudget:
        # the loop's cost per iteration (a loading, the gap, a line search) from the probe's
        # own iterations after the first; the final loading costs about one more
        source = "extrapolated"
        seen = len(gaps) - 1
        iterations = iterations_to_gap(gaps, gap, max_iter)
        per_wall = float(np.median(np.diff([w for w, _ in ticks])))
        per_cpu = float(np.median(np.diff([c for _, c in ticks])))
        extra_wall, extra_cpu = (iterations - seen + 1) * per_wall, (iterations - seen + 1) * per_cpu
    stage["assignment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    nodes_c = np.unique(city.centroid)
    site_cost = all_or_nothing(city.network(free_time, nodes_c), free_time).skim
    reachable = np.isfinite(site_cost).all(axis=0)
    k = min(int(opts.get("sites", 5)), int(reachable.sum()))
    if k >= 1:
        p_median(site_cost[:, reachable], city.population, k)
    stage["sites"] = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return sum(stage.values()) + extra_wall, cpu + extra_cpu, iterations, source, stage


_PROBES: dict[tuple[int, int, tuple[tuple[str, Any], ...], float], tuple[Any, str]] = {}


def with_probe(sizes: dict[str, float], task: str, dataset: dict[str, Any] | None,
               options: dict[str, Any] | None, probe_s: float) -> tuple[dict[str, float], dict[str, Any] | None]:
    """``sizes`` with route's network stages measured on their street network by a probe.

    For route (with ``probe_s`` > 0 seconds of budget) the gravity OD, assignment and sites
    are run on the network of ``sizes["sensors"]`` sensors (seed from ``dataset``, options of
    the case) by :func:`probe_network`; the copy of ``sizes`` holds
    ``probe_wall_s``, ``probe_cpu_s`` and the probe's iterations, which the time models use
    in place of their fitted network term. Probes are cached per network and options.

    Returns
    -------
    (dict, dict or None)
        The sizes, and what the probe found (or why it was not run); ``None`` when no probe
        applies (another task, or ``probe_s`` is 0).
    """
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


def probe_note(task: str, eng: str, where: str, info: dict[str, Any], iterations: float) -> str:
    """The note ``uda size`` prints about a probe: what it measured, or why it was not run."""
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
