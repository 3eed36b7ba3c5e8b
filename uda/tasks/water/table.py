"""The water task on an external table: any column names, detectors over every parameter
fitted on a training part (or a training table) and scored on the rest."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from uda.engines import check_engine
from uda.errors import UserError
from uda.tasks.base import TaskResult
from uda.tasks.water.dask import analyse_table_dask
from uda.tasks.water.options import check_option_names, check_train_fraction, options_for_interval
from uda.tasks.water.outputs import build_summary, iso_time, write_results
from uda.tasks.water.steps import analyse_block, assemble, concat_parts, sort_by_prefix
from uda.waterq.block import block_from_polars, split_train
from uda.waterq.events import Truth, label_truth, score_generic
from uda.waterq.generic import apply_detectors, fit_detectors
from uda.waterq.guidelines import load_guidelines
from uda.waterq.indices import index_basis, site_summary
from uda.waterq.settings import DetectOptions


def run_table(path: str | os.PathLike, *, time_col: str | None = None, label_col: str | None = None,
              site_col: str | None = None, columns: dict[str, str] | str | None = None,
              train_fraction: float | None = None, train_table: str | os.PathLike | None = None,
              engine: str = "polars", scheduler: str | None = None,
              guidelines: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
              plot_site: int | None = None, plot: bool = True, detect: Any = None,
              **options: Any) -> TaskResult:
    """Indices and detectors over every parameter of an external table, with a train/test protocol.

    Parameters
    ----------
    path
        CSV or Parquet file (see :func:`uda.io.table.read_water_table`).
    time_col, label_col, site_col
        Time, event-label and site columns; found from the content when not given.
    columns
        ``{column: parameter}`` (or the ``--columns`` text ``Tp=temperature_c,...``)
        overriding the alias table.
    train_fraction
        Chronological split: the first fraction of each site's rows fit the detectors and
        their thresholds (labels are read there only); the rest is scored. Default 0.5
        unless ``train_table`` is given.
    train_table
        Fit on this labelled table (same parameters) instead, and score all of ``path``.
    engine, scheduler
        Engine of the indices and exceedances (``"polars"`` or ``"dask"``); the detectors
        run on the fitted model in the calling process.
    guidelines, out, plot_site, plot
        As for :func:`run`.
    detect
        :class:`uda.waterq.settings.DetectOptions` (default settings if ``None``).
    **options
        Fields of :class:`WaterOptions` for the indices and exceedances.

    Returns
    -------
    TaskResult
        ``summary`` holds ``protocol``, ``columns`` (column -> parameter), ``indices``
        (what each rests on), ``detectors`` (per-sample and per-event scores, thresholds
        and how they were chosen), ``baseline`` (flag everything) and the site table.
    """
    from uda.io.table import parse_columns, read_water_table

    check_engine(engine)
    check_option_names(options)
    if train_fraction is not None and train_table is not None:
        msg = "pass one of --train-fraction or --train-table, not both"
        raise UserError(msg)
    if train_fraction is not None:
        check_train_fraction(train_fraction)
    mapping = parse_columns(columns) if isinstance(columns, str) else dict(columns or {})
    dopts = detect or DetectOptions()
    table = read_water_table(path, time_col=time_col, label_col=label_col, site_col=site_col,
                             columns=mapping)
    opts = options_for_interval(options, table.interval_s)
    guides = load_guidelines(guidelines)
    params = table.params
    frame = table.frame
    t0 = time.perf_counter()
    block = block_from_polars(frame, params)
    if engine == "polars":
        parts = [analyse_block(block, guides, opts, detectors=False), site_summary(block, guides)]
    else:
        parts = analyse_table_dask(frame, params, guides, opts, scheduler)
    labels = frame["label"].to_numpy() if table.has_labels else None
    # ---- protocol: fit on a training part, score the rest
    if train_table is not None:
        tt = read_water_table(train_table, columns=mapping,
                              time_col=time_col if time_col in _columns_of(train_table) else None,
                              label_col=label_col if label_col in _columns_of(train_table) else None,
                              site_col=site_col if site_col in _columns_of(train_table) else None)
        if not tt.has_labels:
            msg = (f"--train-table {train_table} has no label column (a boolean or 0/1 column); "
                   "the training table must label its events")
            raise UserError(msg)
        if set(tt.params) != set(params):
            only_t = sorted(set(tt.params) - set(params))
            only_d = sorted(set(params) - set(tt.params))
            msg = (f"--train-table {train_table} has other parameters than {path}: "
                   f"only in the training table: {', '.join(only_t) or '-'}; only in the table: "
                   f"{', '.join(only_d) or '-'}; give both tables the same columns")
            raise UserError(msg)
        if abs(tt.interval_s - table.interval_s) > 0.01 * table.interval_s:
            table.warnings.append(f"the training table's step ({tt.interval_s:g} s) differs from the "
                                  f"table's ({table.interval_s:g} s)")
        tblock = block_from_polars(tt.frame, params)
        tlabels = tt.frame["label"].to_numpy()
        fitted = fit_detectors(tblock, tlabels, np.ones(tlabels.size, bool), tt.interval_s, dopts)
        test = np.ones(block.ts.size, dtype=bool)
        protocol = {"kind": "train_table", "train_table": str(train_table),
                    "train_rows": int(tlabels.size), "train_events": int(label_truth(tblock, tlabels).key.size)}
    else:
        fraction = 0.5 if train_fraction is None else float(train_fraction)
        train = split_train(block.offsets, fraction)
        if not train.any():
            msg = f"--train-fraction {fraction:g} leaves no training rows; use a larger fraction"
            raise UserError(msg)
        test = ~train
        if not test.any():
            msg = f"--train-fraction {fraction:g} leaves no rows to score; use a smaller fraction"
            raise UserError(msg)
        fitted = fit_detectors(block, labels, train, table.interval_s, dopts)
        protocol = {"kind": "train_fraction", "train_fraction": fraction, "train_rows": int(train.sum())}
        if labels is not None:
            protocol["train_events"] = int(label_truth(block, labels & train).key.size)
            if not (labels & train).any():
                table.warnings.append("the training part holds no labelled event: thresholds are "
                                      "training quantiles and there is no supervised detector")
    t_fit = time.perf_counter() - t0
    scores, flags = apply_detectors(block, fitted, dopts)
    seconds = time.perf_counter() - t0
    first_test = [int(block.ts[a + np.flatnonzero(test[a:b])[0]])
                  for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True) if test[a:b].any()]
    protocol.update({"test_start": iso_time(min(first_test)) if first_test else None,
                     "test_rows": int(test.sum()), "labels_used": "training part only",
                     "sites": {int(s): iso_time(t) for s, t in zip(block.sites.tolist(), first_test, strict=False)}
                     if block.sites.size > 1 else {}})
    scored = score_generic(block, flags, labels, test, table.interval_s, dopts)
    site_parts = [{k: v for k, v in p.items() if k.startswith("site_")} for p in parts]
    res = assemble([{k: v for k, v in p.items() if not k.startswith(("site_", "label_"))} for p in parts]
                   + [scored["alarms"]])
    sites = sort_by_prefix(concat_parts([p for p in site_parts if p]), "site_", ["site_id"])
    detectors = scored["detectors"]
    for name, entry in detectors.items():
        entry["threshold"] = round(float(fitted.thresholds[name]), 6)
        entry["threshold_how"] = fitted.how[name]
        if name in fitted.train_f1:
            entry["train_f1"] = fitted.train_f1[name]
    names = scored["names"]
    best = None
    if labels is not None:
        best = max(names, key=lambda n: detectors[n]["per_sample"]["f1"])
    basis = index_basis(guides, params)
    if not basis["ccme"]["computed"]:
        table.warnings.append(basis["ccme"]["note"])
    summary = build_summary(res, sites, params, {}, {}, table.warnings, opts, {}, names=names,
                       best=best or "distance")
    summary["detectors"] = detectors
    summary["best_detector"] = best
    summary["baseline"] = scored.get("baseline")
    summary["protocol"] = protocol
    summary["indices"] = basis
    summary["columns"] = {table.columns[p]: p for p in params}
    summary["seconds"] = {"fit": round(t_fit, 3), "total": round(seconds, 3)}
    summary["table"] = {"path": str(path), "rows": frame.height, "columns": table.columns,
                        "time_col": table.time_col, "label_col": table.label_col,
                        "site_col": table.site_col, "interval_s": table.interval_s,
                        "test_events": scored.get("events")}
    answer = dict(res)
    quality = {f"{n}_f1": float(e["per_sample"]["f1"]) for n, e in detectors.items() if "per_sample" in e}
    result = TaskResult(task="water", engine=engine, answer=answer, quality=quality,
                        rows_in=frame.height, bytes_in=int(Path(path).stat().st_size), summary=summary)
    if out is not None:
        site = plot_site if plot_site is not None else int(sites["site_id"][0])
        sub = frame.filter(frame["site_id"] == site) if site in sites["site_id"] else frame.head(0)
        b = block_from_polars(sub, params)
        events = None
        if labels is not None and site in sites["site_id"]:
            g = int(np.flatnonzero(block.sites == site)[0])
            a, e = block.offsets[g], block.offsets[g + 1]
            t = label_truth(b, labels[a:e] & test[a:e])
            events = Truth(t.key, t.start, t.end, np.ones(t.key.size))
        write_results(result, res, params, out, plot_site=site, plot=plot,
                      truth=(events, events) if events is not None else None, series=(b.ts, b.values),
                      names=names)
    return result


def _columns_of(path: str | os.PathLike) -> list[str]:
    """Column names of a table file (for options that apply to both tables)."""
    from uda.io.wide import read_table

    return list(read_table(path).columns)
