"""Fitting the sizing models: points read from results files, non-negative least squares per term,
the held-out error, and the curves the report draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.harness.results import engine_name, load_results
from uda.harness.sizing.models import (
    METRICS,
    ROWS_ONLY,
    TERMS,
    dataset_sizes,
    design,
    flow_in_flight,
)
from uda.harness.sizing.probes import with_probe
from uda.harness.suites import MID_SCALE


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
    text = str(scale)
    if text.startswith(MID_SCALE):
        rest = text[len(MID_SCALE):].lstrip(",")
        return "mid" + (f":{rest}" if rest else "")
    return text


def results_files(paths: list[str | Path]) -> list[Path]:
    """The ``.json`` files in ``paths``: files as given, the ``*.json`` of a folder sorted by name."""
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


def load_all(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The results objects in ``paths``: files in a folder that are not uda results are
    skipped; a file named explicitly must be one."""
    out = []
    for f in results_files(paths):
        try:
            out.append(load_results(f))
        except UserError:
            if f in map(Path, paths):
                raise
    return out


def collect_points(paths: list[str | Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Measured points per ``(task, engine label)`` from results files (newest run wins per case)."""
    return points_of(load_all(paths))


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
        key = (c["task"] if not opts else f"{c['task']}[{opts}]", engine_name(c))
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
