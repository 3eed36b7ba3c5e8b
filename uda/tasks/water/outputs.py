"""What the water task reports and writes: the summary, result tables, ``summary.json`` and the site plot."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.tasks.base import TaskResult
from uda.waterq.detectors import SIGNATURE_DETECTORS
from uda.waterq.events import Truth
from uda.waterq.indices import ccme_category
from uda.waterq.plot import plot_site as _plot
from uda.waterq.settings import WaterOptions


def iso_time(ms: int) -> str:
    """An int64 ms time as ISO text to the second, e.g. ``2024-03-01T00:00:00``."""
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]"))


def tables(res: dict[str, np.ndarray], params: tuple[str, ...],
           names: tuple[str, ...] = SIGNATURE_DETECTORS) -> dict[str, Any]:
    """Result arrays as Polars DataFrames: ``wqi``, ``exceedances``, ``alarms``, ``mass_balance``."""
    import polars as pl

    def ts(a):
        return pl.Series(a.astype("datetime64[ms]"))

    wqi = pl.DataFrame({
        "site_id": res["wqi_site"], "period": ts(res["wqi_period"]), "n_samples": res["wqi_n"],
        "ccme_wqi": res["wqi_ccme"], "category": [ccme_category(x) for x in res["wqi_ccme"]],
        "f1": res["wqi_f1"], "f2": res["wqi_f2"], "f3": res["wqi_f3"],
        "n_tests": res["wqi_tests"], "n_failed": res["wqi_failed"], "wa_wqi": res["wqi_wa"]},
        nan_to_null=True)
    exc = pl.DataFrame({
        "site_id": res["exc_site"], "param": [params[i] for i in res["exc_param"]],
        "direction": ["above" if d > 0 else "below" for d in res["exc_direction"]],
        "start": ts(res["exc_start"]), "end": ts(res["exc_end"]),
        "duration_s": (res["exc_end"] - res["exc_start"]) / 1000.0,
        "peak": res["exc_peak"], "n_samples": res["exc_samples"]},
        schema_overrides={"param": pl.String, "direction": pl.String})
    alarms = pl.DataFrame({
        "detector": [names[i] for i in res["alarm_detector"]], "site_id": res["alarm_site"],
        "start": ts(res["alarm_start"]), "end": ts(res["alarm_end"])},
        schema_overrides={"detector": pl.String})
    mb = pl.DataFrame({"site_id": res["mb_site"], "start": ts(res["mb_start"]),
                       "end": ts(res["mb_end"]), "peak_score": res["mb_peak"]})
    return {"wqi": wqi, "exceedances": exc, "alarms": alarms, "mass_balance": mb}


def _best_detector(detectors: dict[str, dict]) -> str | None:
    scored = [(sc["f1"], name) for name, sc in detectors.items() if sc.get("f1") is not None]
    return max(scored)[1] if scored else None


def build_summary(res: dict[str, np.ndarray], sites: dict[str, np.ndarray], params: tuple[str, ...],
             detectors: dict[str, dict], mass: dict[str, Any], warnings: list[str],
             opts: WaterOptions, ups: dict[int, list[tuple[int, float]]],
             names: tuple[str, ...] = SIGNATURE_DETECTORS, best: str | None = None) -> dict[str, Any]:
    """The task's summary: detector and mass-balance scores, per-site table, counts, options.

    ``best`` (default: the detector with the highest F1, else the last of ``names``) is the
    detector whose alarms the per-site table counts.
    """
    best = best or _best_detector(detectors) or names[-1]
    best_i = names.index(best)
    per_site = []
    for i, s in enumerate(sites["site_id"].tolist()):
        ccme = float(sites["site_ccme"][i])
        wa = float(sites["site_wa"][i])
        per_site.append({
            "site_id": int(s), "samples": int(sites["site_n"][i]),
            "ccme_wqi": None if math.isnan(ccme) else round(ccme, 3), "category": ccme_category(ccme),
            "wa_wqi": None if math.isnan(wa) else round(wa, 3),
            "exceedances": int((res["exc_site"] == s).sum()),
            "alarms": int(((res["alarm_site"] == s) & (res["alarm_detector"] == best_i)).sum()),
            "mass_balance_alarms": int((res["mb_site"] == s).sum()),
            "upstream_sites": [u for u, _ in ups.get(int(s), [])]})
    return {"detectors": detectors, "best_detector": best if detectors else None,
            "mass_balance": mass, "sites": per_site, "params": list(params),
            "warnings": warnings, "options": asdict(opts),
            "counts": {"wqi_groups": int(res["wqi_site"].size),
                       "exceedances": int(res["exc_site"].size),
                       "alarms": {n: int((res["alarm_detector"] == d).sum())
                                  for d, n in enumerate(names)},
                       "mass_balance_alarms": int(res["mb_site"].size)}}


def write_results(result: TaskResult, res: dict[str, np.ndarray], params: tuple[str, ...],
                  out: str | os.PathLike, *, plot_site: int | None = None,
                  truth: tuple[Truth, Truth] | None = None,
                  series: tuple[np.ndarray, np.ndarray] | Callable[[int], tuple[np.ndarray, np.ndarray]]
                  | None = None,
                  plot: bool = True, names: tuple[str, ...] = SIGNATURE_DETECTORS) -> dict[str, str]:
    """Write the result tables, ``summary.json`` and a plot of one site into ``out``.

    Parameters
    ----------
    result, res, params
        The task's result, its result arrays and the parameter columns.
    out
        Folder to write into.
    plot_site
        Site to plot (default: the site with the most events in ``truth``, else the first).
    truth
        (detector truth, mass-balance truth) whose events the plot shows.
    series
        The plotted site's ``(ts, values)``, or a function reading them for a site id.
    plot
        Write the plot.
    names
        Detector names that ``res["alarm_detector"]`` indexes.

    Returns
    -------
    dict
        Kind -> written path.
    """
    import json

    from uda.store import atomic_write, make_folder

    folder = make_folder(out, "the --out folder")
    files: dict[str, str] = {}
    for name, df in tables(res, params, names).items():
        path = folder / f"{name}.parquet"
        atomic_write(path, df.write_parquet)
        files[name] = str(path)
    site_ids = [s["site_id"] for s in result.summary["sites"]]
    if site_ids and plot:
        if plot_site is None:
            if truth is not None and truth[0].key.size:
                keys, counts = np.unique(truth[0].key, return_counts=True)
                plot_site = int(keys[np.argmax(counts)])
            else:
                plot_site = int(site_ids[0])
        if plot_site not in site_ids:
            msg = f"--plot-site {plot_site} is not a site of this data; choose one of {site_ids[:10]}..."
            raise UserError(msg)
        if callable(series):
            series = series(plot_site)
        png = folder / f"site_{plot_site}.png"
        best = result.summary.get("best_detector") or names[-1]
        sel = (res["alarm_site"] == plot_site) & (res["alarm_detector"] == names.index(best))
        events = None
        if truth is not None:
            k = truth[0].key == plot_site
            events = (truth[0].start[k], truth[0].end[k])
        _plot(series[0], series[1], params, png, title=f"site {plot_site}",
              alarms=(res["alarm_start"][sel], res["alarm_end"][sel]), alarm_label=best,
              events=events)
        files["plot"] = str(png)
    summary_path = folder / "summary.json"
    result.summary["files"] = files | {"summary": str(summary_path)}
    # inside the folder, name the files relative to it (the folder may be uploaded elsewhere)
    body = {**result.summary, "files": {k: Path(v).name for k, v in result.summary["files"].items()}}
    atomic_write(summary_path, lambda p: p.write_text(json.dumps(body, indent=1, default=str)))
    return result.summary["files"]
