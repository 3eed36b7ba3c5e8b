"""``uda size`` for a city: its sizes, the fitted models evaluated there, cores and cluster from the
measured parallel efficiency, storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uda.durations import duration_us
from uda.errors import UserError
from uda.harness.sizing.fitting import (
    Model,
    collect_points,
    fit_models,
    held_out_error,
    short_scale,
)
from uda.harness.sizing.models import (
    EXTRAPOLATION_WARN,
    FAMILIES,
    IN_FLIGHT,
    TERMS,
    family_bytes_per_row,
    family_rows,
    street_grid,
    traffic_files,
)
from uda.harness.sizing.probes import probe_note, with_probe
from uda.scales import PRESETS

#: Longest duration ``uda size`` takes (100 years), in microseconds.
_LONGEST_US = 100 * 365 * 86400 * 1_000_000


def parse_duration(text: str, *, option: str) -> float:
    """Seconds in a duration such as ``5min``, ``15 min``, ``1h``, ``2d`` or ``300`` (seconds).

    The grammar is :func:`uda.durations.duration_us`'s; the messages name ``option``.
    """
    us = duration_us(str(text))
    if us is None:
        msg = f"{option} {text!r} is not a duration; use a number with us, ms, s, min, h or d (e.g. 5min, 1h)"
        raise UserError(msg)
    if us > _LONGEST_US:
        msg = f"{option} {text!r} is longer than any duration this estimate is for (100 years)"
        raise UserError(msg)
    if us <= 0:
        msg = f"{option} {text!r} must be longer than zero"
        raise UserError(msg)
    return us / 1_000_000


def city_rows(ds: dict[str, Any], *, sensors: int, days: float, interval_s: float,
              stations: int | None, water_sites: int | None) -> dict[str, float]:
    """Rows per sensor table for the user's city, scaled from the measured dataset ``ds``.

    Traffic is exact (sensors x days x slots per day). Taps scale with stations and days
    from the dataset's taps per station-day; water with sites and days at the dataset's
    water interval. Stations and sites not given follow the presets (:func:`preset_size`).
    """
    p = ds.get("params", {})
    rows = family_rows(ds)
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
    fam_rows = family_rows(ds)
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


def select_points(points: dict[tuple[str, str], list[dict[str, Any]]], tasks: list[str] | None,
                  engines: list[str] | None) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The points of these tasks (names without options) and engines (``dask`` matches every scheduler)."""
    if tasks:
        points = {k: v for k, v in points.items() if k[0].split("[")[0] in tasks}
    if engines:
        points = {k: v for k, v in points.items()
                  if k[1].split("@")[0] in engines or k[1].split("-")[0] in engines}
    return points


SWEEP_HINT = "run the scale sweep: `uda bench --suite sweep` (about 20 min on 2 cores)"


def scaling_series(points: dict[tuple[str, str], list[dict[str, Any]]], where: str
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
    points = select_points(collect_points(results), tasks, engines)
    series = scaling_series(points, where)
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
                notes.append(probe_note(task, eng, "the city", probe, sizes["iterations"]))
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
    bpr = family_bytes_per_row(storage_ds)
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
