"""Utilisation task: the collected -> valid -> standardised -> integrated -> used funnel, and detector scores.

The task standardises the dataset's feeds on the chosen engine (:mod:`uda.tasks.standardise`,
which also writes ``clean/`` when the dataset has feeds), counts per district and table the
records at each stage, marks the integrated records some analytic task reads
(:mod:`uda.tasks.usage`), measures data quality in one scan per table (:mod:`uda.quality.scan`), and
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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from uda.arrays import unique_values
from uda.contract import DAY_MS, DEFECT_TYPES, FEED_TABLES, SPECS, TABLE_DEFECTS, start_ms_of
from uda.quality.scan import context, finish, measure, scan_tables
from uda.store import Dataset, open_dataset
from uda.tasks.base import TaskResult
from uda.tasks.standardise import standardise
from uda.tasks.usage import columns_needed, used

STAGES = ("collected", "valid", "standardised", "integrated", "used")
#: Detector of each defect type (a flag column; ``missing`` compares expected and received intervals).
DETECTORS = {"duplicate": "flag_duplicate", "spike": "flag_range", "stuck": "flag_stuck",
             "clock_skew": "flag_skew", "late": "flag_late", "drift": "flag_drift",
             "bad_reference": "flag_reference", "unknown_unit": "flag_unit", "missing": None}
_TS_BITS = 36
_TS_OFF = 1 << 33


def _codes(key: np.ndarray, ts: np.ndarray, start: int) -> np.ndarray:
    rel = np.clip(ts.astype(np.int64) - start + _TS_OFF, 0, (1 << _TS_BITS) - 1)
    return unique_values((key.astype(np.int64) << _TS_BITS) | rel)


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


@dataclass
class GroupReducer:
    """Reduces one standardised group (clean and reject tables) to what the funnel, the detector
    scores and the quality metrics need, where the group was standardised.

    A group holds whole sensors, so its predicted defect codes, its received-interval bitmap
    (for ``missing``), its used rows per district and its quality state are small and merge
    across groups (unions, ORs, sums) into the answer over the whole table.
    """

    city: dict[str, np.ndarray]            # sorted ids of sensors, stations, water_sites
    city_keys: dict[str, np.ndarray]       # table -> sorted expected keys
    start: int
    days: int
    repaired: bool
    quality: dict[str, Any] | None = None  # table -> uda.quality.scan.ScanContext (None: no quality)

    def usage(self, table: str, clean: pa.Table) -> tuple[dict[int, int], dict[str, int]]:
        """Integrated rows used by some task, per district, and rows read per task."""
        need = columns_needed(table)
        c = _concat([clean.select([*need, "district_id"])])
        cols = {k: (c[k].astype(np.float64) if c[k].dtype.kind == "f" else c[k].astype(np.int64)) for k in need}
        mask, tasks = used(cols, table, self.city)
        d = c["district_id"].astype(np.int64)
        return {int(dd): int(n) for dd, n in zip(*np.unique(d[mask], return_counts=True), strict=True)}, tasks

    def detections(self, table: str, clean: pa.Table, rejects: pa.Table) -> dict[str, Any]:
        """Per defect type: unique ``(key, time)`` codes predicted, or for ``missing`` the
        received intervals of known keys as ``(key rows, packed bitmap)``."""
        spec = SPECS[table]
        c = _concat([clean, rejects])
        ok = ~c.get("flag_syntax", np.zeros(c[spec.key].size, bool)).astype(bool)
        key = c[spec.key].astype(np.int64)
        ts = c["ts"].astype(np.int64)
        ts_corr = ts if self.repaired else ts - c["skew_ms"].astype(np.int64)
        out: dict[str, Any] = {}
        for kind in TABLE_DEFECTS[table]:
            flag = DETECTORS[kind]
            if flag is None:
                step = spec.interval_s * 1000
                n_slots = self.days * DAY_MS // step
                ids = self.city_keys[table]
                k = key[ok]
                slot = (ts_corr[ok] - self.start + step // 2) // step
                pos = np.searchsorted(ids, k)
                hit = (pos < ids.size) & (ids[np.minimum(pos, max(ids.size - 1, 0))] == k) & (slot >= 0) \
                    & (slot < n_slots) if ids.size else np.zeros(k.size, bool)
                rows, inv = np.unique(pos[hit], return_inverse=True)
                bits = np.zeros((rows.size, n_slots), bool)
                bits[inv, slot[hit]] = True
                out[kind] = (rows, np.packbits(bits, axis=1))
            else:
                sel = ok & c[flag].astype(bool)
                out[kind] = _codes(key[sel], ts_corr[sel], self.start)
        return out

    def __call__(self, table: str, clean: pa.Table, rejects: pa.Table) -> dict[str, Any]:
        used_by_d, tasks = self.usage(table, clean)
        st = None
        if self.quality is not None:
            st = scan_tables([clean, rejects], self.quality[table]).pack()  # kept per group: keep it small
        return {"used": used_by_d, "tasks": tasks, "detect": self.detections(table, clean, rejects), "quality": st}


def score(reduced: dict[tuple[str, str], dict[str, Any]], truth: Any, *, city_keys: dict[str, np.ndarray],
          start: int, days: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """Precision and recall of each detector against injected defects, per type and per table.

    Parameters
    ----------
    reduced
        ``{(table, group): GroupReducer result}`` (the ``reduced`` of
        :func:`uda.tasks.standardise.standardise`).
    truth
        The ``defects`` truth table as a Polars LazyFrame (each table and defect type is
        collected on its own, by the streaming engine) or ``None`` for a dataset without defects.
    city_keys
        Sensor / site ids of the city per table, sorted (the expected series for ``missing``).
    start, days
        Period of the dataset.
    """
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    for table in FEED_TABLES:
        outs = [r["detect"] for (t, _), r in reduced.items() if t == table]
        if not outs:
            continue
        spec = SPECS[table]
        for kind in TABLE_DEFECTS[table]:
            if truth is not None:
                import polars as pl

                t = (truth.filter((pl.col("table") == table) & (pl.col("type") == kind))
                     .select(pl.col("key").cast(pl.Int64), pl.col("ts").cast(pl.Int64)).collect(engine="streaming"))
                tk, tts = t["key"].to_numpy(), t["ts"].to_numpy()
                del t
                true_n = int(_codes(tk, tts, start).size)
            else:
                tk = tts = np.zeros(0, np.int64)
                true_n = 0
            if DETECTORS[kind] is None:
                # predicted missing = expected (key, interval) pairs no received record covers
                step = spec.interval_s * 1000
                n_slots = days * DAY_MS // step
                ids = city_keys[table]
                seen = np.zeros((ids.size, (n_slots + 7) // 8), np.uint8)
                for rows, packed in (o[kind] for o in outs):
                    seen[rows] |= packed
                n_pred = ids.size * n_slots - int(np.bitwise_count(seen).sum())
                pos = np.searchsorted(ids, tk)
                rel = tts - start
                on = ((pos < ids.size) & (ids[np.minimum(pos, max(ids.size - 1, 0))] == tk) & (rel % step == 0)
                      & (rel >= 0) & (rel < n_slots * step)) if ids.size else np.zeros(tk.size, bool)
                code = unique_values(pos[on] * n_slots + rel[on] // step)
                r, sl = code // n_slots, code % n_slots
                tp = int(((seen[r, sl >> 3] >> (7 - (sl & 7))) & 1 == 0).sum())
            else:
                pred = unique_values(np.concatenate([o[kind] for o in outs]))
                n_pred = int(pred.size)
                tp = int(np.intersect1d(pred, _codes(tk, tts, start), assume_unique=True).size)
            by_table.setdefault(table, {})[kind] = {"tp": tp, "fp": n_pred - tp, "fn": true_n - tp}
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


def funnel(report: dict[str, Any], reduced: dict[tuple[str, str], dict[str, Any]]) -> tuple[dict[str, dict],
                                                                                         dict[str, dict]]:
    """``{district: {table: {stage: rows}}}`` and rows read per task and table."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    per_task: dict[str, dict[str, int]] = {}
    for table, per in report["counts"].items():
        used_by_d: dict[int, int] = {}
        for (t, _), r in reduced.items():
            if t != table:
                continue
            acc = per_task.setdefault(table, {})
            for task, n in r["tasks"].items():
                acc[task] = acc.get(task, 0) + n
            for d, n in r["used"].items():
                used_by_d[d] = used_by_d.get(d, 0) + n
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
    city = {spec.ref_table: np.sort(ds.read(spec.ref_table)[spec.ref].to_numpy().astype(np.int64))
            for spec in SPECS.values()}
    city_keys = {table: city[spec.ref_table] for table, spec in SPECS.items()}
    p = ds.params
    start, days = start_ms_of(p["start"]), int(p["days"])
    qctx = None
    if quality and has_feeds:  # measured on each standardised group where it runs
        qctx = {t: context(ds, t) for t in FEED_TABLES}
    reducer = GroupReducer(city, city_keys, start, days, repair, qctx)
    res = standardise(ds, engine=engine, scheduler=scheduler, repair=repair, write=write and has_feeds,
                      reducer=reducer, hashes=False)
    reduced = res["reduced"]
    ds = open_dataset(ds.path)
    fun, per_task = funnel(res["report"], reduced)
    truth = ds.scan("defects") if ds.has("defects") else None
    det, det_table = score(reduced, truth, city_keys=city_keys, start=start, days=days)
    qual = {}
    if qctx is not None:
        for t in FEED_TABLES:
            states = [r["quality"] for (tt, _), r in reduced.items() if tt == t]
            if states:
                qual[t] = finish(states, qctx[t])
    elif quality:
        qual = {t: measure(ds, t, engine=engine, scheduler=scheduler) for t in FEED_TABLES if ds.has(t)}
    names = dict(zip(ds.read("districts")["district_id"].to_list(), ds.read("districts")["name"].to_list(),
                     strict=True)) if ds.has("districts") else {}
    totals = {t: dict.fromkeys(STAGES, 0) for t in FEED_TABLES}
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
