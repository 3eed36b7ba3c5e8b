"""Utilisation task: the collected -> valid -> standardised -> integrated -> used funnel, and detector scores.

The task standardises the dataset's feeds on the chosen engine (:mod:`uda.tasks.standardise`,
which also writes ``clean/`` when the dataset has feeds), counts per district and table the
records at each stage, marks the integrated records some analytic task reads
(:mod:`uda.usage`), measures data quality in one scan per table (:mod:`uda.quality`), and
scores every defect detector against the injected defects in ``truth/defects``:

* a detector's predictions are the ``(key, time)`` of the rows carrying its flag, with the
  time corrected by the detected clock skew; ``missing`` predicts every expected
  ``(sensor, interval)`` of the city that no record covers;
* precision = true positives / predictions and recall = true positives / injected defects,
  each 1.0 when its denominator is 0 (nothing predicted, nothing injected).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from uda.store import Dataset, open_dataset
from uda.synth.feeds import DEFECT_TYPES, SPECS, TABLE_DEFECTS, start_ms_of
from uda.tasks.base import TaskResult
from uda.tasks.standardise import TABLES, standardise

STAGES = ("collected", "valid", "standardised", "integrated", "used")
#: Detector of each defect type (a flag column; ``missing`` compares expected and received intervals).
DETECTORS = {"duplicate": "flag_duplicate", "spike": "flag_range", "stuck": "flag_stuck",
             "clock_skew": "flag_skew", "late": "flag_late", "drift": "flag_drift",
             "bad_reference": "flag_reference", "unknown_unit": "flag_unit", "missing": None}
_DAY_MS = 86_400_000
_TS_BITS = 36
_TS_OFF = 1 << 33


def _codes(key: np.ndarray, ts: np.ndarray, start: int) -> np.ndarray:
    rel = np.clip(ts.astype(np.int64) - start + _TS_OFF, 0, (1 << _TS_BITS) - 1)
    return np.unique((key.astype(np.int64) << _TS_BITS) | rel)


def _concat(tables: list[pa.Table]) -> dict[str, np.ndarray]:
    """Columns of several clean/reject tables, flags missing from a table read as False."""
    out: dict[str, list[np.ndarray]] = {}
    names = sorted({c for t in tables for c in t.column_names})
    for t in tables:
        for c in names:
            if c in t.column_names:
                col = t[c]
                arr = (col.cast(pa.int64()).to_numpy(zero_copy_only=False) if pa.types.is_timestamp(col.type)
                       else col.to_numpy(zero_copy_only=False))
            else:
                arr = np.zeros(t.num_rows, bool)
            out.setdefault(c, []).append(arr)
    return {c: np.concatenate(v) if v else np.zeros(0) for c, v in out.items()}


def score(result: dict[str, Any], truth: Any, *, city_keys: dict[str, np.ndarray], start: int,
          days: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """Precision and recall of each detector against injected defects, per type and per table.

    Parameters
    ----------
    result
        Output of :func:`uda.tasks.standardise.standardise` (clean and reject tables).
    truth
        The ``defects`` truth table (Polars) or ``None`` for a dataset without defects.
    city_keys
        Sensor / site ids of the city per table (the expected series for ``missing``).
    start, days
        Period of the dataset.
    """
    repaired = bool(result["report"]["repair"])
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    for table in TABLES:
        parts = result["tables"].get(table, []) + result["tables"].get(f"{table}_rejects", [])
        if not parts:
            continue
        spec = SPECS[table]
        c = _concat([t for _, t in parts])
        ok = ~c.get("flag_syntax", np.zeros(c[spec.key].size, bool)).astype(bool)
        key = c[spec.key].astype(np.int64)
        ts = c["ts"].astype(np.int64)
        ts_corr = ts if repaired else ts - c["skew_ms"].astype(np.int64)
        for kind in TABLE_DEFECTS[table]:
            flag = DETECTORS[kind]
            if flag is None:
                step = spec.interval_s * 1000
                slots = np.arange(days * _DAY_MS // step, dtype=np.int64) * step + start
                ids = city_keys[table]
                expected = _codes(np.repeat(ids, slots.size), np.tile(slots, ids.size), start)
                got_ts = ((ts_corr[ok] - start + step // 2) // step) * step + start
                pred = np.setdiff1d(expected, _codes(key[ok], got_ts, start), assume_unique=True)
            else:
                sel = ok & c[flag].astype(bool)
                pred = _codes(key[sel], ts_corr[sel], start)
            if truth is not None:
                t = truth.filter((truth["table"] == table) & (truth["type"] == kind))
                true = _codes(t["key"].to_numpy(), t["ts"].cast(int).to_numpy(), start)
            else:
                true = np.zeros(0, np.int64)
            tp = int(np.intersect1d(pred, true, assume_unique=True).size)
            by_table.setdefault(table, {})[kind] = {"tp": tp, "fp": int(pred.size) - tp, "fn": int(true.size) - tp}
    by_type: dict[str, dict[str, Any]] = {}
    for kind in DEFECT_TYPES:
        rows = [v[kind] for v in by_table.values() if kind in v]
        if not rows:
            continue
        tp, fp, fn = (sum(r[x] for r in rows) for x in ("tp", "fp", "fn"))
        by_type[kind] = {"precision": 1.0 if tp + fp == 0 else tp / (tp + fp),
                         "recall": 1.0 if tp + fn == 0 else tp / (tp + fn), "tp": tp, "fp": fp, "fn": fn}
    for per in by_table.values():
        for v in per.values():
            v["precision"] = 1.0 if v["tp"] + v["fp"] == 0 else v["tp"] / (v["tp"] + v["fp"])
            v["recall"] = 1.0 if v["tp"] + v["fn"] == 0 else v["tp"] / (v["tp"] + v["fn"])
    return by_type, by_table


def funnel(result: dict[str, Any], city: dict[str, np.ndarray]) -> tuple[dict[str, dict], dict[str, dict]]:
    """``{district: {table: {stage: rows}}}`` and rows read per task and table."""
    from uda.usage import columns_needed, used

    out: dict[str, dict[str, dict[str, int]]] = {}
    per_task: dict[str, dict[str, int]] = {}
    for table, per in result["report"]["counts"].items():
        parts = [t for _, t in result["tables"].get(table, [])]
        used_by_d: dict[int, int] = {}
        if parts:
            need = columns_needed(table)
            c = _concat([t.select([*need, "district_id"]) for t in parts])
            cols = {k: (c[k].astype(np.float64) if c[k].dtype.kind == "f" else c[k].astype(np.int64)) for k in need}
            mask, tasks = used(cols, table, city)
            per_task[table] = tasks
            d = c["district_id"].astype(np.int64)
            for dd, n in zip(*np.unique(d[mask], return_counts=True), strict=True):
                used_by_d[int(dd)] = int(n)
        for d, cnt in per.items():
            out.setdefault(d, {})[table] = {**cnt, "used": used_by_d.get(int(d), 0)}
    return dict(sorted(out.items(), key=lambda kv: int(kv[0]))), per_task


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
        repair: bool = False, quality: bool = True, write: bool = True) -> TaskResult:
    """Measure the utilisation funnel, data quality and detector precision/recall of a dataset.

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine, scheduler
        Engine of the standardisation and quality scans; the Dask scheduler.
    repair
        Standardise with repairs (clock skew, drift).
    quality
        Also compute the single-scan quality metrics per table and district.
    write
        Write the standardised tables to ``clean/`` (datasets with feeds). Without, quality
        is measured on the standardised tables in memory.

    Returns
    -------
    TaskResult
        ``summary``: ``funnel`` (``{district: {table: {collected, valid, standardised,
        integrated, used}}}``), ``detectors`` (``{type: {precision, recall, tp, fp, fn}}``),
        ``detectors_by_table``, ``quality``, ``usage_by_task``, ``findings``;
        ``answer``: the funnel counts and detector tallies (engines must agree exactly).
    """
    t0 = time.perf_counter()
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    has_feeds = ds.has("feed_dictionary")
    res = standardise(ds, engine=engine, scheduler=scheduler, repair=repair, write=write and has_feeds)
    ds = open_dataset(ds.path)
    city = {name: np.sort(ds.read(name)[col].to_numpy().astype(np.int64))
            for name, col in (("sensors", "sensor_id"), ("stations", "station_id"), ("water_sites", "site_id"))}
    p = ds.params
    start, days = start_ms_of(p["start"]), int(p["days"])
    fun, per_task = funnel(res, city)
    truth = ds.read("defects") if ds.has("defects") else None
    det, det_table = score(res, truth, city_keys={"traffic": city["sensors"], "water": city["water_sites"],
                                                  "taps": city["stations"]}, start=start, days=days)
    qual = {}
    if quality:
        from uda.quality import measure

        if has_feeds and not write:
            for t in TABLES:
                clean = dict(res["tables"].get(t, []))
                rejects = {rel.replace(f"{t}_rejects/", f"{t}/"): tab
                           for rel, tab in res["tables"].get(f"{t}_rejects", [])}
                if clean or rejects:
                    blocks = [[x for x in (clean.get(k), rejects.get(k)) if x is not None]
                              for k in sorted(set(clean) | set(rejects))]
                    qual[t] = measure(ds, t, engine=engine, scheduler=scheduler, tables=blocks)
        else:
            qual = {t: measure(ds, t, engine=engine, scheduler=scheduler) for t in TABLES if ds.has(t)}
    names = dict(zip(ds.read("districts")["district_id"].to_list(), ds.read("districts")["name"].to_list(),
                     strict=True)) if ds.has("districts") else {}
    totals = {t: dict.fromkeys(STAGES, 0) for t in TABLES}
    for per in fun.values():
        for t, cnt in per.items():
            for s in STAGES:
                totals[t][s] += cnt[s]
    totals = {t: v for t, v in totals.items() if v["collected"]}
    summary = {
        "dataset": str(ds.path), "defects": p.get("defects", "none"), "engine": engine, "repair": repair,
        "funnel": fun, "totals": totals, "detectors": det, "detectors_by_table": det_table,
        "usage_by_task": per_task, "findings": res["report"]["findings"], "quality": qual,
        "district_names": {str(k): v for k, v in names.items()},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    answer: dict[str, Any] = {}
    for d, per in fun.items():
        for t, cnt in per.items():
            answer[f"funnel_{d}_{t}"] = np.array([cnt[s] for s in STAGES], np.int64)
    for kind, v in det.items():
        answer[f"detector_{kind}"] = np.array([v["tp"], v["fp"], v["fn"]], np.int64)
    rows = sum(v["collected"] for v in totals.values())
    quality_out = {f"{t}_used_share": v["used"] / max(1, v["collected"]) for t, v in totals.items()}
    quality_out.update({f"{k}_f1": (2 * v["precision"] * v["recall"] / max(1e-12, v["precision"] + v["recall"]))
                        for k, v in det.items()})
    return TaskResult(task="utilisation", engine=engine, answer=answer, quality=quality_out, rows_in=rows,
                      summary=summary)
