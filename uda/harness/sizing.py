"""Sizing: fit time and memory against data size from measured sweeps, predict for a real city.

For every task and engine, the ``ok`` cases of one or more results files give points
``(rows_in, warm median wall s, median CPU s, peak RSS)`` at several scales. Time, CPU and
memory are fitted with an affine model ``y = a + b * rows`` (a fixed cost plus a cost per
row; non-negative least squares); a power law ``t = a * rows**b`` on log-log axes is the
alternative for time. The error is stated on held-out data: the models are refitted
without the largest measured scale and their prediction for that scale is compared with
the measurement.

A user's city (N sensors at interval I over D days, optionally stations and water sites)
is mapped to each task's input rows through the sensor table the task mostly reads
(traffic, taps, water, or all three together; the one whose row count is nearest the
task's ``rows_in`` at the largest measured scale), scaled from that dataset to the user's
city.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Fit:
    """A fitted model ``y(rows)``: ``power`` (``a * rows**b``) or ``affine`` (``a + b * rows``)."""

    kind: str
    a: float
    b: float
    points: int

    def __call__(self, rows: float) -> float:
        if self.kind == "power":
            return self.a * rows**self.b
        return self.a + self.b * rows

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.kind, "a": self.a, "b": self.b, "points": self.points}


def fit_power(x: np.ndarray, y: np.ndarray) -> Fit:
    """Least-squares power law on log-log axes (exponent 1 through the point for one point)."""
    lx, ly = np.log(x), np.log(y)
    if np.unique(x).size < 2:
        b = 1.0
    else:
        b = float(np.polyfit(lx, ly, 1)[0])
    a = float(np.exp(np.mean(ly - b * lx)))
    return Fit("power", a, b, int(x.size))


def fit_affine(x: np.ndarray, y: np.ndarray) -> Fit:
    """Least-squares ``a + b * x`` with ``a, b >= 0`` (proportional for one point)."""
    if np.unique(x).size < 2:
        return Fit("affine", 0.0, float(np.mean(y / x)), int(x.size))
    b, a = np.polyfit(x, y, 1)
    if b < 0:
        a, b = float(np.mean(y)), 0.0
    elif a < 0:
        a, b = 0.0, float(np.sum(x * y) / np.sum(x * x))
    return Fit("affine", float(a), float(b), int(x.size))


FITTERS = {"power": fit_power, "affine": fit_affine}
TIME_MODELS = tuple(FITTERS)


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
    """Measured points per ``(task, engine label)`` from results files (newest run wins per case).

    Files in a folder that are not uda results are skipped; a file named explicitly must be one.
    """
    return points_of(_load_all(paths))


def points_of(results: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Measured points per ``(task, engine label)`` from loaded results objects (newest run wins per case)."""
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
        eng = c["engine"] if not c.get("scheduler") else f"{c['engine']}-{c['scheduler']}"
        opts = ",".join(f"{k}={v}" for k, v in sorted((c.get("options") or {}).items()))
        key = (c["task"] if not opts else f"{c['task']}[{opts}]", eng)
        s = c["summary"]
        points.setdefault(key, []).append({
            "scale": c.get("scale"), "rows_in": float(c["rows_in"]), "wall_s": s["wall_s_median"],
            "cpu_s": s["cpu_s_median"], "peak_rss_bytes": float(s["peak_rss_bytes"]), "dataset": ds,
            "machine": machine,
        })
    for pts in points.values():
        pts.sort(key=lambda p: p["rows_in"])
    return points


def _fit_all(pts: list[dict[str, Any]], time_model: str = "affine") -> dict[str, Fit]:
    x = np.array([p["rows_in"] for p in pts])
    kinds = {"wall_s": time_model, "cpu_s": time_model, "peak_rss_bytes": "affine"}
    return {m: FITTERS[k](x, np.array([max(p[m], 1e-9) for p in pts])) for m, k in kinds.items()}


def held_out_error(pts: list[dict[str, Any]], *, time_model: str = "affine") -> dict[str, Any] | None:
    """Refit without the largest size and compare the prediction for it with the measurement.

    Needs at least two distinct smaller sizes to fit; else ``None``. Points at the largest
    size (several datasets may give a task the same input) are all held out and averaged.
    """
    top = max(p["rows_in"] for p in pts)
    train = [p for p in pts if p["rows_in"] < top]
    test = [p for p in pts if p["rows_in"] == top]
    if len({p["rows_in"] for p in train}) < 2:
        return None
    fits = _fit_all(train, time_model)
    out: dict[str, Any] = {"held_out_scale": ", ".join(str(p["scale"]) for p in test),
                           "fitted_on": [p["scale"] for p in train]}
    for m, fit in fits.items():
        pred = fit(top)
        measured = float(np.mean([p[m] for p in test]))
        out[m] = {"predicted": pred, "measured": measured, "relative_error": pred / measured - 1}
    return out


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
        The fitted model as a function of input rows (vectorised over a NumPy array).
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


def curves(results: list[dict[str, Any]]) -> list[Curve]:
    """Sizing fits of wall time and peak memory against input rows, per task and engine.

    Parameters
    ----------
    results
        Results objects as :func:`uda.harness.results.load_results` returns them.

    Returns
    -------
    list of Curve
        Two curves (``wall_s``, ``peak_bytes``) per task and engine with measured points.
    """
    out = []
    for (task, eng), pts in sorted(points_of(results).items()):
        fits = _fit_all(pts)
        held = held_out_error(pts)
        top = pts[-1]["rows_in"]
        for metric, key in _CURVE_METRICS.items():
            fit = fits[key]
            out.append(Curve(task=task, engine=eng, metric=metric,
                             points=[(p["rows_in"], float(p[key])) for p in pts],
                             predict=lambda x, f=fit: np.asarray(f(np.asarray(x, dtype=float)), dtype=float),
                             heldout=(top, held[key]["measured"], held[key]["predicted"]) if held else None))
    return out


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
    water interval. Stations and sites not given scale with the sensors, as in the presets.
    """
    p = ds.get("params", {})
    rows = _family_rows(ds)
    ds_sensors, ds_days = p.get("sensors") or 1, p.get("days") or 1
    grow = sensors / ds_sensors
    st = stations if stations is not None else (p.get("stations") or 1) * grow
    ws = water_sites if water_sites is not None else (p.get("water_sites") or 1) * grow
    water_interval = p.get("water_interval_s") or 900
    return {
        "traffic": sensors * days * 86400 / interval_s,
        "taps": rows["taps"] / ((p.get("stations") or 1) * ds_days) * st * days,
        "water": ws * days * 86400 / water_interval,
    }


def size(*, sensors: int, days: float, interval_s: float, deadline_s: float,
         results: list[str | Path], stations: int | None = None, water_sites: int | None = None,
         tasks: list[str] | None = None, engines: list[str] | None = None,
         time_model: str = "affine") -> dict[str, Any]:
    """Predict cores, memory and storage for a city from measured scale sweeps.

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
    time_model
        ``"affine"`` (fixed cost plus a cost per row; the default) or ``"power"`` (power
        law on log-log axes) for wall and CPU time. Memory is always affine.

    Returns
    -------
    dict
        ``{"city": {...}, "storage": {...}, "estimates": [...]}`` with, per task and
        engine: predicted input rows, wall time on the measured machine, CPU seconds,
        cores needed to meet the deadline (CPU seconds / deadline, assuming the work
        spreads over cores and workers), peak memory, the fits and their held-out error.
    """
    if time_model not in FITTERS:
        msg = f"unknown time model {time_model!r}; choose one of: {', '.join(FITTERS)}"
        raise UserError(msg)
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
    points = collect_points(results)
    if tasks:
        points = {k: v for k, v in points.items() if k[0].split("[")[0] in tasks}
    if engines:
        points = {k: v for k, v in points.items() if k[1] in engines or k[1].split("-")[0] in engines}
    if not points:
        where = ", ".join(map(str, results))
        msg = f"no measured ok cases in {where}; run a scale sweep first with `uda bench --suite sweep`"
        raise UserError(msg)
    estimates = []
    storage_ds = None
    for (task, eng), pts in sorted(points.items()):
        largest = pts[-1]
        ds = largest["dataset"]
        if ds.get("tables"):
            if storage_ds is None or (ds.get("tables", {}).get("traffic") and
                                      not storage_ds.get("tables", {}).get("traffic")):
                storage_ds = ds  # prefer canonical tables (no defects) for storage
            fam_rows = _family_rows(ds)
            fam_rows["all"] = sum(fam_rows.values())
            family = min((f for f in fam_rows if fam_rows[f] > 0),
                         key=lambda f: abs(math.log(largest["rows_in"] / fam_rows[f])), default=None)
            user = city_rows(ds, sensors=sensors, days=days, interval_s=interval_s,
                             stations=stations, water_sites=water_sites)
            user["all"] = sum(user.values())
            rows = largest["rows_in"] * user[family] / fam_rows[family] if family else None
        else:
            family, rows = None, None
        fits = _fit_all(pts, time_model)
        est: dict[str, Any] = {"task": task, "engine": eng, "family": family,
                               "scales": [p["scale"] for p in pts],
                               "rows_measured": [p["rows_in"] for p in pts],
                               "fits": {m: f.to_dict() for m, f in fits.items()},
                               "held_out": held_out_error(pts, time_model=time_model),
                               "rows_in": rows,
                               "measured_on": largest["machine"]}
        if rows is not None:
            wall, cpu, mem = (fits[m](rows) for m in ("wall_s", "cpu_s", "peak_rss_bytes"))
            est.update(wall_s=wall, cpu_s=cpu, peak_rss_bytes=mem,
                       cores=max(1, math.ceil(cpu / deadline_s)),
                       meets_deadline_as_measured=wall <= deadline_s,
                       extrapolation=rows / largest["rows_in"])
        estimates.append(est)
    if storage_ds is None:
        msg = "the results hold no dataset description (rows per table); re-run `uda bench` on generated datasets"
        raise UserError(msg)
    user = city_rows(storage_ds, sensors=sensors, days=days, interval_s=interval_s,
                     stations=stations, water_sites=water_sites)
    bpr = _family_bytes_per_row(storage_ds)
    per_day = {f: user[f] / days * bpr[f] for f in FAMILIES}
    return {
        "city": {"sensors": sensors, "days": days, "interval_s": interval_s, "deadline_s": deadline_s,
                 "stations": stations, "water_sites": water_sites,
                 "rows": {f: user[f] for f in FAMILIES}},
        "storage": {"bytes_per_day": per_day, "total_bytes_per_day": sum(per_day.values()),
                    "total_bytes": sum(per_day.values()) * days,
                    "bytes_per_row": bpr, "format": "Parquet, zstd level 1"},
        "estimates": estimates,
    }
