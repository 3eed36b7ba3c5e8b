"""The water task on a generated dataset: reading its tables on either engine, the truth the
detectors and the mass balance are scored against, and :func:`run`."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from uda.contract import WATER_PARAMETERS
from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.tasks.base import TaskResult
from uda.tasks.water.dask import pandas_columns, run_dask
from uda.tasks.water.options import check_option_names, check_train_fraction
from uda.tasks.water.outputs import build_summary, iso_time, write_results
from uda.tasks.water.polars import run_polars
from uda.tasks.water.steps import assemble, concat_parts, sort_by_prefix
from uda.waterq.block import MS, block_from_pandas, block_from_polars, split_train
from uda.waterq.detectors import score_detectors, warm_up
from uda.waterq.events import Truth, score_events, score_generic
from uda.waterq.generic import apply_detectors, fit_detectors
from uda.waterq.guidelines import load_guidelines
from uda.waterq.massbalance import upstream_map
from uda.waterq.settings import DetectOptions, WaterOptions


def _small_table(ds: Any, name: str, engine: str) -> dict[str, np.ndarray]:
    """A small city/truth table as NumPy columns (timestamps as int64 ms)."""
    if engine == "polars":
        import polars as pl

        df = ds.read(name)
        return {c: (df[c].cast(pl.Datetime("ms")).cast(pl.Int64).to_numpy()
                    if df[c].dtype.is_temporal() else df[c].to_numpy()) for c in df.columns}
    return pandas_columns(ds.dask(name).compute())


def _upstream(ds: Any, engine: str) -> dict[int, list[tuple[int, float]]]:
    """:func:`upstream_map` of the dataset's ``water_sites`` (empty without that table)."""
    return upstream_map(_small_table(ds, "water_sites", engine)) if ds.has("water_sites") else {}


def _water_params(ds: Any) -> tuple[tuple[str, ...], list[str]]:
    """Parameters present in the dataset's water table, and warnings about missing ones."""
    if not ds.has("water") and any(name.startswith("feed_water") for name in ds.tables):
        msg = (f"dataset {ds.path} publishes its water data as department feeds (generated with "
               f"--defects); run `uda run standardise --data {ds.path}` first, then rerun")
        raise UserError(msg)
    schema = ds.table("water").get("schema", {})
    for col in ("site_id", "ts"):
        if col not in schema:
            msg = f"the water table of {ds.path} has no {col!r} column; regenerate the dataset"
            raise UserError(msg)
    params = tuple(p for p in WATER_PARAMETERS if p in schema)
    if not params:
        msg = f"the water table of {ds.path} has none of the parameters {', '.join(WATER_PARAMETERS)}"
        raise UserError(msg)
    missing = [p for p in WATER_PARAMETERS if p not in schema]
    warnings = [f"parameter {p} is missing from the water table; indices use the others"
                for p in missing]
    return params, warnings


def _site_series(ds: Any, site: int, params: tuple[str, ...], engine: str) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of one site, read on ``engine``."""
    if engine == "polars":
        import polars as pl

        df = ds.scan("water").filter(pl.col("site_id") == site).select(["site_id", "ts", *params]).collect()
        block = block_from_polars(df, params)
    else:
        ddf = ds.dask("water", columns=["site_id", "ts", *params])
        block = block_from_pandas(ddf[ddf["site_id"] == site].compute(), params)
    return block.ts, block.values


def _generic_on_dataset(ds: Any, engine: str, opts: WaterOptions, train_fraction: float,
                        detect: Any) -> dict[str, Any]:
    """Detectors over every parameter of a generated dataset, scored per sample, per event and per type.

    Labels are the rows inside a truth arrival (``event_arrivals``: plumes at least
    ``opts.min_event_size`` and short events); sensor faults and dosing changes are not
    events, and alarms on them count as false.
    """
    import polars as pl

    check_train_fraction(train_fraction)
    dopts = detect or DetectOptions()
    schema = ds.table("water").get("schema", {})
    params = tuple(c for c in schema if c not in ("site_id", "ts"))
    df = ds.scan("water").select(["site_id", "ts", *params]).sort(["site_id", "ts"]).collect() \
        if engine == "polars" else pl.from_pandas(ds.dask("water", columns=["site_id", "ts", *params])
                                                  .compute().reset_index(drop=True)).sort(["site_id", "ts"])
    block = block_from_polars(df, params)
    labels = np.zeros(block.ts.size, dtype=bool)
    etype = np.full(block.ts.size, -1, dtype=np.int64)
    type_names: tuple[str, ...] = ()
    if ds.has("event_arrivals"):
        arr = _small_table(ds, "event_arrivals", engine)
        ev = _small_table(ds, "pollution_events", engine) if ds.has("pollution_events") else None
        size = np.ones(arr["site_id"].size)
        if ev is not None and "peak_factor" in arr:
            mag = dict(zip(ev["event_id"].tolist(), ev["magnitude"].tolist(), strict=True))
            size = np.array([mag.get(e, 1.0) for e in arr["event_id"].tolist()]) * arr["peak_factor"]
        kinds = np.asarray(arr["event_type"]).astype(str) if "event_type" in arr else \
            np.full(arr["site_id"].size, "plume")
        type_names = tuple(sorted(set(kinds.tolist())))
        keep = (size >= opts.min_event_size) | (kinds != "plume")
        idx = {int(s): g for g, s in enumerate(block.sites.tolist())}
        for s, a, e, k, ok in zip(arr["site_id"].tolist(), arr["start"].tolist(), arr["end"].tolist(),
                                  kinds.tolist(), keep.tolist(), strict=True):
            if not ok or int(s) not in idx:
                continue
            g = idx[int(s)]
            lo, hi = block.offsets[g], block.offsets[g + 1]
            i0 = lo + np.searchsorted(block.ts[lo:hi], a)
            i1 = lo + np.searchsorted(block.ts[lo:hi], e, side="right")
            labels[i0:i1] = True
            etype[i0:i1] = type_names.index(k)
    train = split_train(block.offsets, float(train_fraction))
    t0 = time.perf_counter()
    fitted = fit_detectors(block, labels, train, opts.interval_s, dopts)
    t1 = time.perf_counter()
    _, flags = apply_detectors(block, fitted, dopts)
    t2 = time.perf_counter()
    test = ~train
    scored = score_generic(block, flags, labels, test, opts.interval_s, dopts, etype, type_names)
    first_test = [int(block.ts[a + np.flatnonzero(test[a:b])[0]])
                  for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True) if test[a:b].any()]
    out = {"protocol": {"kind": "train_fraction", "train_fraction": float(train_fraction),
                        "train_rows": int(train.sum()), "test_rows": int(test.sum()),
                        "test_start": iso_time(min(first_test)) if first_test else None,
                        "labels": "rows inside truth arrivals (plumes >= min_event_size, short events)"},
           "params": list(params), "detectors": scored["detectors"], "baseline": scored.get("baseline"),
           "events": scored.get("events"), "seconds": {"fit": round(t1 - t0, 3), "detect": round(t2 - t1, 3)}}
    if ds.has("sensor_faults"):
        fa = _small_table(ds, "sensor_faults", engine)
        on_fault = np.zeros(block.ts.size, dtype=bool)
        idx = {int(s): g for g, s in enumerate(block.sites.tolist())}
        for s, a, e in zip(fa["site_id"].tolist(), fa["start"].tolist(), fa["end"].tolist(), strict=True):
            if int(s) in idx:
                g = idx[int(s)]
                lo, hi = block.offsets[g], block.offsets[g + 1]
                on_fault[lo + np.searchsorted(block.ts[lo:hi], a):lo + np.searchsorted(block.ts[lo:hi], e, side="right")] = True
        for name, f in flags.items():
            rows = test & on_fault & ~labels
            out["detectors"][name]["flagged_share_on_sensor_faults"] = round(float(f[rows].mean()), 4) \
                if rows.any() else None
    for name in out["detectors"]:
        out["detectors"][name]["threshold"] = round(float(fitted.thresholds[name]), 6)
        out["detectors"][name]["threshold_how"] = fitted.how[name]
    return out


#: The truth tables that score the detectors and the mass balance.
TRUTH_TABLES = ("event_arrivals", "pollution_events", "discharges")


def _truth(ds: Any, engine: str, opts: WaterOptions, site_first: dict[int, int],
           tables: dict[str, dict[str, np.ndarray]] | None = None) -> tuple[Truth, Truth] | None:
    """(detector truth, mass-balance truth) from ``truth/``; ``None`` if the dataset has none.

    Detector truth: every plume arrival at a site, sized by magnitude x peak factor;
    arrivals before a site's baseline warm-up ends get size -1, events of other types
    (short events) size -2 (both always ignored).
    Mass-balance truth: arrivals at the site just below the event's outfall. ``tables``
    holds :data:`TRUTH_TABLES` if they were already read.
    """
    if not all(ds.has(t) for t in TRUTH_TABLES):
        return None
    tables = tables or {name: _small_table(ds, name, engine) for name in TRUTH_TABLES}
    arr, ev, dis = (tables[name] for name in TRUTH_TABLES)
    mag = dict(zip(ev["event_id"].tolist(), ev["magnitude"].tolist(), strict=True))
    ev_dis = dict(zip(ev["event_id"].tolist(), ev["discharge_id"].tolist(), strict=True))
    dis_down = dict(zip(dis["discharge_id"].tolist(), dis["downstream_site_id"].tolist(), strict=True))
    site = arr["site_id"].astype(np.int64)
    start = arr["start"].astype(np.int64)
    end = arr["end"].astype(np.int64)
    size = np.array([mag[e] for e in arr["event_id"].tolist()]) * arr["peak_factor"].astype(np.float64)
    warm = int(warm_up("signature", opts, opts.interval_s) * opts.interval_s * MS)
    first = np.array([site_first.get(int(s), np.iinfo(np.int64).max) for s in site], dtype=np.int64)
    size = np.where(start < first + warm, -1.0, size)
    if "event_type" in arr:  # the signature detectors look for plumes; other types (size -2) are ignored here
        size = np.where(np.asarray(arr["event_type"]).astype(str) == "plume", size, -2.0)
    det = Truth(site, start, end, size)
    # events without an outfall (discharge_id -1: short events at one site) are never local discharges
    local = np.array([dis_down.get(ev_dis[e], -2) == s for e, s in zip(arr["event_id"].tolist(), site.tolist(),
                                                               strict=True)], dtype=bool)
    mb = Truth(site[local], start[local], end[local], size[local])
    return det, mb


def run(data: Any, *, engine: str = "polars", scheduler: str | None = None,
        guidelines: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
        plot_site: int | None = None, plot: bool = True, train_fraction: float | None = None,
        detect: Any = None, **options: Any) -> TaskResult:
    """Water-quality analytics on a generated dataset.

    Per site and period: CCME and weighted-arithmetic WQI; per site and parameter:
    exceedance episodes; per site: alarm episodes of the streaming detectors, scored at
    event level against the plume arrivals in ``truth/``; per site with upstream sites:
    mass-balance alarms (unexplained gains), scored against the events released between
    the site and its upstream neighbours.

    Parameters
    ----------
    data
        Dataset folder (or an opened :class:`uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` or ``"dask"``; Dask scheduler (threads, processes, sync or address).
    guidelines
        JSON file overriding the default guidelines (see :func:`uda.waterq.guidelines.load_guidelines`).
    out
        Folder to write ``wqi.parquet``, ``exceedances.parquet``, ``alarms.parquet``,
        ``mass_balance.parquet``, ``summary.json`` and a PNG plot into.
    plot_site
        Site to plot (default: the site with the most plume arrivals).
    plot
        Write the PNG plot into ``out``.
    train_fraction
        Also run the detectors over every parameter (:func:`uda.waterq.generic.fit_detectors`)
        with this chronological train/test split, labels being the truth arrivals;
        reported under ``summary["protocol_detectors"]`` with per-type scores.
    detect
        :class:`uda.waterq.settings.DetectOptions` for those detectors.
    **options
        Fields of :class:`WaterOptions` (``period``, ``window``, thresholds ...).

    Returns
    -------
    TaskResult
        ``answer``: the sorted result arrays; ``quality``: per-detector F1/precision/recall
        and mass-balance recall/precision; ``summary``: detector scores, mass balance,
        per-site table, warnings, written files.
    """
    from uda.store import Dataset, open_dataset

    check_engine(engine)
    check_option_names(options)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    if "interval_s" not in options and ds.params.get("water_interval_s"):
        options = {**options, "interval_s": float(ds.params["water_interval_s"])}
    opts = WaterOptions(**options).check()
    guides = load_guidelines(guidelines)
    params, warnings = _water_params(ds)
    t0 = time.perf_counter()
    truth_tables = None
    if engine == "polars":
        ups = _upstream(ds, engine)
        parts = run_polars(ds, params, guides, opts, ups)
    else:
        with dask_scheduler(scheduler):
            ups = _upstream(ds, engine)
            # the truth tables are read in the same compute as the series
            parts, truth_tables = run_dask(ds, params, guides, opts, ups,
                                            TRUTH_TABLES if all(ds.has(t) for t in TRUTH_TABLES) else ())
    site_parts = [{k: v for k, v in p.items() if k.startswith("site_")} for p in parts]
    res = assemble([{k: v for k, v in p.items() if not k.startswith("site_")} for p in parts])
    sites = sort_by_prefix(concat_parts([p for p in site_parts if p]), "site_", ["site_id"])
    if not sites or sites["site_id"].size == 0:
        msg = f"the water table of {ds.path} has no rows; regenerate the dataset with water data"
        raise UserError(msg)
    site_first = dict(zip(sites["site_id"].tolist(), sites["site_first"].tolist(), strict=True))
    truths = _truth(ds, engine, opts, site_first, truth_tables)
    seconds = time.perf_counter() - t0

    detectors: dict[str, dict] = {}
    mass: dict[str, Any] = {}
    if truths is not None:
        det_truth, mb_truth = truths
        detectors = score_detectors(res, det_truth, opts)
        ignored = det_truth.split(-0.5)[1]  # warm-up arrivals only
        sc = score_events(res["mb_site"], res["mb_start"], res["mb_end"], mb_truth.key,
                          mb_truth.start, mb_truth.end, tolerance=int(opts.tolerance_s * MS),
                          ignore_key=ignored.key, ignore_start=ignored.start, ignore_end=ignored.end)
        n_pairs = sum(1 for s in ups if s in site_first)
        span_days = (float(res["wqi_n"].sum()) * opts.interval_s / 86400.0) if res["wqi_n"].size else 0.0
        site_days = span_days * n_pairs / max(len(site_first), 1)
        mass = {**sc.as_dict(), "sites_checked": n_pairs,
                "false_alarms_per_site_day": (sc.n_false_alarms / site_days) if site_days else None}
    summary = build_summary(res, sites, params, detectors, mass, warnings, opts, ups)
    if truths is not None:
        size = truths[0].size
        summary["events"] = {"arrivals": int(size.size),
                             "scored": int((size >= opts.min_event_size).sum()),
                             "below_min_size": int(((size >= 0) & (size < opts.min_event_size)).sum()),
                             "in_warm_up": int((size == -1.0).sum()),
                             "other_types": int((size == -2.0).sum()),
                             "min_event_size": opts.min_event_size}
    summary["seconds"] = seconds
    if train_fraction is not None:
        summary["protocol_detectors"] = _generic_on_dataset(ds, engine, opts, train_fraction, detect)
    answer = dict(res)
    for name, sc in detectors.items():
        for key in ("precision", "recall", "f1", "median_delay_s"):
            answer[f"score_{name}_{key}"] = np.float64(np.nan if sc[key] is None else sc[key])
    quality = {f"{n}_{k}": float(v) for n, sc in detectors.items()
               for k, v in sc.items() if k in ("precision", "recall", "f1") and v is not None}
    if mass:
        quality.update({f"mass_balance_{k}": float(mass[k]) for k in ("precision", "recall", "f1")
                        if mass[k] is not None})
    entry = ds.table("water")
    result = TaskResult(task="water", engine=engine, answer=answer, quality=quality,
                        rows_in=int(entry.get("rows", 0)), bytes_in=int(entry.get("bytes", 0)),
                        summary=summary)
    if out is not None:
        result.summary["files"] = write_results(
            result, res, params, out, plot_site=plot_site, truth=truths, plot=plot,
            series=lambda site: _site_series(ds, site, params, engine))
    return result
