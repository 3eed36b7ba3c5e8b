"""``uda size --check``: predict every case of other results files from a fit that never saw them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from uda.errors import UserError
from uda.harness.results import load_results, read_json
from uda.harness.sizing.city import scaling_series, select_points
from uda.harness.sizing.fitting import fit_models, load_all, points_of, results_files, short_scale
from uda.harness.sizing.models import METRICS, dataset_sizes, flow_in_flight, street_grid
from uda.harness.sizing.probes import probe_note, with_probe
from uda.scales import PRESETS

# ---------------------------------------------------------------- validation on unseen data

#: Table whose rows a task reports as its input, for reference runs made outside the harness.
_INPUT_TABLE = {"route": "traffic", "flow": "traffic", "water": "water"}


def reference_points(ref: dict[str, Any], where: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Points of a reference file written by ``bench/bench_large.py`` (``results/reference/large.json``).

    Each step ``task/engine`` ran ``uda run`` on a generated preset scale; its peak is the
    largest process's maximum RSS (the cgroup peak also counts the page cache). Sizes come
    from the preset through the generator's formulas.
    """
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
    points: dict[tuple[str, str], list[dict[str, Any]]] = {}
    ids: set[str] = set()
    for f in results_files(paths):
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
    fit_res = [dict(r, cases=[c for c in r["cases"] if c["id"] not in test_ids]) for r in load_all(results)]
    train = select_points(points_of(fit_res), tasks, engines)
    where = ", ".join(map(str, results))
    series = scaling_series(train, where)
    rows = []
    notes: list[str] = []
    for key, tpts in sorted(select_points(test_points, tasks, engines).items()):
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
                notes.append(probe_note(key[0], key[1], short_scale(p["scale"]), probe, sizes["iterations"]))
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
