"""Standardisation task: map department feeds into the canonical schema, de-duplicate, flag, repair.

Every feed file is parsed under its district's standard (:mod:`uda.quality.feeds`); then, per
group of files (a sensor's rows never span groups), every row gets the flags of
:mod:`uda.quality.rules` (syntax, unit, range, duplicate, stuck, skew, late, drift, reference).
Rows that are valid, standardised and integrated go to ``clean/<table>``; all others to
``clean/<table>_rejects`` with their flags. ``--repair`` shifts skewed clocks back onto the
grid and divides drifted values by the estimated drift. Both engines parse with the same
Polars kernels and run the same detectors; only reading and scheduling differ (Polars: a group
per thread read by Polars; Dask: a task per file read by pyarrow, a task per group), and the
outputs are identical. ``clean/`` is written by :class:`uda.store.DatasetWriter` (manifest last,
then swapped in).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uda.contract import DAY_MS, FEED_TABLES, SPECS, district_lookup, start_ms_of
from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.kernels.checksum import table_hash_sum
from uda.quality.feeds import FeedFile, feed_files, parse_polars, read_parse_arrow
from uda.quality.rules import FLAGS, daily_levels, detect_group, drift_factors, finish_group
from uda.store import (
    CLEAN_DIR,
    MANIFEST,
    Dataset,
    DatasetWriter,
    open_dataset,
    remove_stale_temp_folders,
    write_part,
)
from uda.tasks.base import TaskResult


def _check_clean_dir(clean: Path) -> None:
    """Refuse to replace a ``clean/`` that standardise did not write (a file, or a folder
    with files and no manifest): it is not ours to delete."""
    if clean.exists() and (not clean.is_dir() or (any(clean.iterdir()) and not (clean / MANIFEST).is_file())):
        msg = (f"{clean} exists and is not the output of uda run standardise (no {MANIFEST}); "
               "move or remove it and run again, or pass --no-write")
        raise UserError(msg)


@dataclass
class _Ctx:
    ds: Dataset
    files: list[FeedFile]
    lookups: dict[str, np.ndarray]
    period: tuple[int, int]
    start_ms: int


def _context(ds: Dataset) -> _Ctx:
    def lookup(table: str) -> np.ndarray:
        city = SPECS[table].ref_table
        return district_lookup(ds.read(city), table) if ds.has(city) else np.zeros(0, np.int64)

    p = ds.params
    if "start" not in p or "days" not in p:
        msg = f"dataset {ds.path} has no start/days parameters; regenerate it with `uda generate`"
        raise UserError(msg)
    start = start_ms_of(p["start"])
    return _Ctx(ds, feed_files(ds), {table: lookup(table) for table in ("traffic", "water", "taps")},
                (start, start + int(p["days"]) * DAY_MS), start)


def _groups(files: list[FeedFile]) -> dict[tuple[str, str], list[FeedFile]]:
    out: dict[tuple[str, str], list[FeedFile]] = {}
    for ff in files:
        out.setdefault((ff.table, ff.group), []).append(ff)
    return dict(sorted(out.items()))


#: ``reducer(table, clean, rejects) -> small result``, run where the group was standardised.
Reducer = Callable[[str, pa.Table, pa.Table], Any]


def process_group(parts: list[dict[str, Any]], table: str, gname: str, *, district: int | None,
                  lookup: np.ndarray, period: tuple[int, int], start_ms: int,
                  factors: dict[tuple[int, int], float], repair: bool, out_root: Path | None,
                  reducer: Reducer | None, hashes: bool = True) -> dict[str, Any]:
    """Standardise one group and keep only what is small: counts, flags, hashes, drift levels.

    Parameters
    ----------
    parts
        Parsed files of the group (from :func:`parse_polars` or :func:`read_parse_arrow`).
    table, gname
        Table and group name (``clean/<table>/<gname>.parquet``).
    district, lookup, period
        As for :func:`detect_group`.
    start_ms
        Start of the period (local ms), for the day of the drift levels.
    factors
        Drift factors of the table (``{}`` in the first pass, before they are known).
    repair
        Apply the repairs.
    out_root
        Write the clean and reject tables under this folder (``None``: write nothing).
    reducer
        Reduces the group's clean and reject tables to what the caller needs (``None``: nothing).
    hashes
        Compute the content hash of the clean and reject tables (always when writing them).

    Returns
    -------
    dict
        ``levels`` (:func:`daily_levels`), ``keys`` (parsed keys, drift tables only),
        ``counts``, ``flags``, ``findings``, ``hashes``/``schemas``/``parts`` per output
        table, and ``reduced``.
    """
    g = detect_group(parts, table, district=district, lookup=lookup, period=period)
    parts.clear()  # the parsed files are in g now
    levels = daily_levels(g, start_ms=start_ms)
    keys = np.unique(g["key"][g["syntax_ok"]]) if SPECS[table].drift else np.zeros(0, np.int64)
    clean, rejects, counts = finish_group(g, factors, start_ms=start_ms, repair=repair)
    out: dict[str, Any] = {"levels": levels, "keys": keys, "counts": counts,
                           "flags": {name: int(g["flags"][name].sum()) for name in FLAGS},
                           "findings": g["findings"], "hashes": {}, "schemas": {}, "parts": {}}
    del g
    for name, tab in ((table, clean), (f"{table}_rejects", rejects)):
        if out_root is not None:
            part = write_part(out_root, f"{name}/{gname}.parquet", tab)
            out["parts"][name] = part
            out["hashes"][name] = part.hash_sum
        elif hashes:
            out["hashes"][name] = table_hash_sum(tab)
        out["schemas"][name] = tab.schema
    out["reduced"] = reducer(table, clean, rejects) if reducer is not None else None
    return out


def _map_polars(ctx: _Ctx, groups: dict[tuple[str, str], list[FeedFile]], **kw: Any) -> dict[tuple[str, str], dict]:
    factors = kw.pop("factors")

    def one(item: tuple[tuple[str, str], list[FeedFile]]) -> dict[str, Any]:
        (table, gname), files = item
        parts = [parse_polars(ff) for ff in files]
        return process_group(parts, table, gname, district=files[0].district, lookup=ctx.lookups[table],
                             period=ctx.period, start_ms=ctx.start_ms, factors=factors.get(table, {}), **kw)

    # one group per thread: memory is bounded by (threads x largest group), not the data size
    with ThreadPoolExecutor(max_workers=max(1, min(len(groups), os.cpu_count() or 1))) as pool:
        return dict(zip(groups, pool.map(one, groups.items()), strict=True))


def _map_dask(ctx: _Ctx, groups: dict[tuple[str, str], list[FeedFile]], **kw: Any) -> dict[tuple[str, str], dict]:
    """One task per file (read with pyarrow, parse) and one per group. Not ``dask.dataframe``:
    building its ``read_parquet`` graph reads each file's footer in this thread (about 5 ms a
    file, before any task runs), and its pandas partitions are only converted back to Arrow."""
    import dask

    factors = kw.pop("factors")
    jobs = []
    for (table, gname), files in groups.items():
        parts = [dask.delayed(read_parse_arrow)(ff, dask_key_name=f"read-parse-{ff.rel}")
                 for ff in files]
        jobs.append(dask.delayed(process_group)(parts, table, gname, district=files[0].district,
                                                lookup=ctx.lookups[table], period=ctx.period, start_ms=ctx.start_ms,
                                                factors=factors.get(table, {}), **kw))
    return dict(zip(groups, dask.compute(*jobs), strict=True))


def _clean_tables(outs: dict[tuple[str, str], dict]) -> dict[str, tuple[list, pa.Schema]]:
    """The parts written for every output table (in order of first appearance) and its schema."""
    tables: dict[str, tuple[list, pa.Schema]] = {}
    for out in outs.values():
        for name, part in out["parts"].items():
            tables.setdefault(name, ([], out["schemas"][name]))[0].append(part)
    return tables


def standardise(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
                repair: bool = False, write: bool = True, reducer: Reducer | None = None,
                hashes: bool = True) -> dict[str, Any]:
    """Standardise every feed of a dataset, one group at a time; writes ``clean/`` when it has feeds.

    Memory is bounded by the groups standardised at once (a group holds whole sensors or
    sites), not by the data size: each group is parsed, flagged, written and reduced where
    it runs, and only counts, hashes and drift levels come back. Drift factors need the
    daily levels of every group, so the groups holding a drifted key run a second time
    with the factors (their first results are replaced; the others cannot change).

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` (a thread per group) or ``"dask"`` (a task per group); the Dask scheduler.
    repair
        Shift skewed clocks back onto the grid and divide drifted values by the estimated drift.
    write
        Write ``clean/`` (datasets with feeds only).
    reducer
        Called on every group's final clean and reject tables; its results are returned.
    hashes
        Compute the content hash of every output table (``False`` saves time when only the
        reducer's results are wanted).

    Returns
    -------
    dict
        ``report``: ``counts`` (``{table: {district: {collected, valid, standardised,
        integrated}}}``), ``findings`` (feed-level problems), ``flags`` (rows per flag and
        table); ``hashes``: content hash sum of every output table; ``reduced``:
        ``{(table, group): reducer result}``.
    """
    check_engine(engine)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    ctx = _context(ds)
    if not ctx.files:
        msg = f"dataset {ds.path} has no traffic, taps or water data; generate it with sensor tables"
        raise UserError(msg)
    has_feeds = ds.has("feed_dictionary")
    # clean/ is written into a temporary sibling and swapped in, manifest last
    if write and has_feeds and ds.fs is None:
        _check_clean_dir(ds.path / CLEAN_DIR)
    writer = DatasetWriter(ds.path / CLEAN_DIR, force=True) if write and has_feeds else None
    groups = _groups(ctx.files)
    if writer is not None and ds.fs is None:  # what a killed standardise left beside clean/
        remove_stale_temp_folders(ds.path / CLEAN_DIR)
    with writer if writer is not None else contextlib.nullcontext():
        tmp = writer.root if writer is not None else None

        def run_groups(sel: dict[tuple[str, str], list[FeedFile]], factors: dict[str, dict]) -> dict:
            kw = {"factors": factors, "repair": repair, "out_root": tmp, "reducer": reducer, "hashes": hashes}
            if engine == "polars":
                return _map_polars(ctx, sel, **kw)
            with dask_scheduler(scheduler):
                return _map_dask(ctx, sel, **kw)

        outs = run_groups(groups, {})
        factors: dict[str, dict] = {}
        for table in FEED_TABLES:
            factors[table] = drift_factors([o["levels"] for (t, _), o in outs.items() if t == table])
        drifted = {t: np.unique(np.array([k for k, _ in f], np.int64)) for t, f in factors.items() if f}
        again = {key: files for key, files in groups.items()
                 if key[0] in drifted and np.isin(outs[key]["keys"], drifted[key[0]]).any()}
        if again:
            outs.update(run_groups(again, factors))
        counts: dict[str, dict[str, dict[str, int]]] = {}
        flags: dict[str, dict[str, int]] = {}
        findings: list[dict[str, str]] = []
        hashes: dict[str, int] = {}
        for (table, _), o in outs.items():
            for d, c in o["counts"].items():
                acc = counts.setdefault(table, {}).setdefault(str(d), dict.fromkeys(c, 0))
                for k, v in c.items():
                    acc[k] += v
            fl = flags.setdefault(table, dict.fromkeys(FLAGS, 0))
            for name in FLAGS:
                fl[name] += o["flags"][name]
            findings += o["findings"]
            for name, h in o["hashes"].items():
                hashes[name] = (hashes.get(name, 0) + h) % (1 << 64)
        report = {"engine": engine, "repair": repair, "has_feeds": has_feeds,
                  "counts": {t: dict(sorted(c.items(), key=lambda kv: int(kv[0]))) for t, c in sorted(counts.items())},
                  "flags": flags, "findings": findings,
                  "drift_factors": {t: len(v) for t, v in factors.items()}}
        if writer is not None:
            for name, (parts, schema) in _clean_tables(outs).items():
                writer.add_table(name, parts, schema, partitioned_by="district")
            writer.commit({"kind": "clean", "params": ds.params, "standardise": report})
    return {"report": report, "hashes": hashes, "reduced": {k: o["reduced"] for k, o in outs.items()}}


def run(data: str | os.PathLike | Dataset, *, engine: str = "polars", scheduler: str | None = None,
        repair: bool = False, write: bool = True) -> TaskResult:
    """Standardise a dataset's feeds (see the module docstring) on ``engine``.

    Parameters
    ----------
    data
        Dataset folder (or an open :class:`~uda.store.Dataset`).
    engine, scheduler
        ``"polars"`` or ``"dask"``; the Dask scheduler.
    repair
        Shift skewed clocks back onto the grid and divide drifted values by the estimated drift.
    write
        Write ``clean/`` (only datasets with feeds; canonical datasets are already clean).

    Returns
    -------
    TaskResult
        ``answer``: rows per stage and per flag, and the content checksum of every clean
        table; ``summary``: the report (counts per table and district, findings).
    """
    t0 = time.perf_counter()
    res = standardise(data, engine=engine, scheduler=scheduler, repair=repair, write=write)
    rep = res["report"]
    answer: dict[str, Any] = {}
    for table, per in rep["counts"].items():
        for stage in ("collected", "valid", "standardised", "integrated"):
            answer[f"{table}_{stage}"] = np.array([per[d][stage] for d in per], np.int64)
    for table, fl in rep["flags"].items():
        answer[f"{table}_flags"] = np.array([fl[name] for name in FLAGS], np.int64)
    for name, h in res["hashes"].items():
        answer[f"{name}_hash"] = np.array([h], np.uint64)
    rows = sum(sum(c["collected"] for c in per.values()) for per in rep["counts"].values())
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    return TaskResult(task="standardise", engine=engine, answer=answer, rows_in=rows, summary=rep,
                      quality={f"{t}_integrated_share": (sum(c["integrated"] for c in per.values())
                                                          / max(1, sum(c["collected"] for c in per.values())))
                               for t, per in rep["counts"].items()})
