"""The water pipeline on Dask: one task per partition (whole sites), mass balances across
partitions fed with only the sites they need, and an external table's indices."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from uda.contract import RANGE_KEYS
from uda.engines import dask_scheduler
from uda.tasks.water.steps import analyse_block
from uda.waterq.block import Block, block_from_pandas, sub_block
from uda.waterq.guidelines import Guideline
from uda.waterq.indices import site_summary
from uda.waterq.massbalance import block_excess, empty_mass_balance, mass_balance
from uda.waterq.settings import WaterOptions


def pandas_columns(pdf: Any) -> dict[str, np.ndarray]:
    """A pandas frame as NumPy columns (timestamps as int64 ms)."""
    out = {}
    for c in pdf.columns:
        col = pdf[c].to_numpy()
        if np.issubdtype(col.dtype, np.datetime64):
            col = col.astype("datetime64[ms]").astype(np.int64)
        out[c] = col
    return out


def _analyse_frame(df: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                   opts: WaterOptions, detectors: bool = True) -> dict[str, np.ndarray]:
    """Everything per site for one pandas partition (the Dask map step)."""
    block = block_from_pandas(df, params)
    out = analyse_block(block, guides, opts, detectors)
    out.update(site_summary(block, guides))
    return out


def partition_task(df: Any, params: tuple[str, ...], guides: dict[str, Guideline], opts: WaterOptions,
                    local_ups: dict[int, list[tuple[int, float]]],
                    export: set[int]) -> tuple[dict[str, np.ndarray], tuple[Block, np.ndarray] | None]:
    """The whole per-partition step of the Dask pipeline, on the worker that read the partition.

    Indices, exceedances, detector alarms and site summaries of every site, and the mass
    balance of the sites in ``local_ups`` (whose upstream sites are in this partition
    too). Only small result arrays leave the worker, plus, for mass balances that span
    partitions, the series and excess of the ``export`` sites.

    Returns
    -------
    (results, exported)
        ``exported`` is ``(block, excess)`` of the ``export`` sites, or ``None``.
    """
    block = block_from_pandas(df, params)
    out = analyse_block(block, guides, opts)
    out.update(site_summary(block, guides))
    exported = None
    if local_ups or export:
        wanted = set(local_ups) | {u for ul in local_ups.values() for u, _ in ul} | export
        sub, _ = sub_block(block, wanted)
        excess = block_excess(sub, opts)  # per site, so the same as on the whole block
        if local_ups:
            out.update(mass_balance(sub, excess, local_ups, opts))
        if export:
            shared, rows = sub_block(sub, export)
            exported = (shared, excess[rows])
    return out, exported


def _mass_balance_parts(parts: list[tuple[Block, np.ndarray]], ups: dict[int, list[tuple[int, float]]],
                        opts: WaterOptions) -> dict[str, np.ndarray]:
    """Mass balance of ``ups``' downstream sites from the partitions holding them and their neighbours."""
    wanted = set(ups) | {u for ul in ups.values() for u, _ in ul}
    blocks, ex = [], []
    for block, excess in parts:
        for i, s in enumerate(block.sites.tolist()):
            if s in wanted:
                a, b = block.offsets[i], block.offsets[i + 1]
                blocks.append((s, block.ts[a:b], block.values[a:b]))
                ex.append(excess[a:b])
    if not blocks:
        return empty_mass_balance()
    params = parts[0][0].params
    merged = Block.from_arrays(np.concatenate([np.full(t.size, s, np.int64) for s, t, _ in blocks]),
                               np.concatenate([t for _, t, _ in blocks]),
                               np.concatenate([v for _, _, v in blocks]), params)
    # from_arrays sorts by (site, ts); sort the excess rows the same way
    site_col = np.concatenate([np.full(t.size, s, np.int64) for s, t, _ in blocks])
    order = np.lexsort((np.concatenate([t for _, t, _ in blocks]), site_col))
    return mass_balance(merged, np.concatenate(ex)[order], ups, opts)


def _partition_sites(ds: Any, parts: list[Any]) -> list[set[int]]:
    """Site ids held by each partition (from the manifest, else by reading site_id)."""
    files = ds.table("water")["files"]
    lo, hi = RANGE_KEYS["water"]
    if all(lo in f and hi in f for f in files) and len(files) == len(parts):
        return [set(range(int(f[lo]), int(f[hi]) + 1)) for f in files]
    import dask

    uniq = dask.compute(*[dask.delayed(lambda d: set(d["site_id"].unique().tolist()))(p)
                          for p in parts])
    return list(uniq)


def run_dask(ds: Any, params: tuple[str, ...], guides: dict[str, Guideline],
              opts: WaterOptions, ups: dict[int, list[tuple[int, float]]],
              tables: tuple[str, ...] = ()) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Per-partition results and mass balances, and the small ``tables``, in one ``compute``.

    One task per partition does all of that partition's work (:func:`partition_task`).
    Mass balances whose sites span partitions get one task per set of partitions, fed
    with only those sites' series and excess.
    """
    import dask
    import pandas as pd

    ddf = ds.dask("water", columns=["site_id", "ts", *params])
    parts = ddf.to_delayed()
    holders = _partition_sites(ds, parts)
    local: list[dict[int, list[tuple[int, float]]]] = [{} for _ in parts]
    export: list[set[int]] = [set() for _ in parts]
    cross: dict[tuple[int, ...], dict[int, list[tuple[int, float]]]] = {}
    for site, ul in ups.items():
        need = {site} | {u for u, _ in ul}
        key = tuple(i for i, held in enumerate(holders) if held & need)
        if len(key) == 1:
            local[key[0]][site] = ul
        elif key:
            cross.setdefault(key, {})[site] = ul
            for i in key:
                export[i] |= holders[i] & need
    step = dask.delayed(partition_task, nout=2)
    done = [step(p, params, guides, opts, local[i], export[i]) for i, p in enumerate(parts)]
    tasks = [d[0] for d in done]
    for key, sub in cross.items():
        tasks.append(dask.delayed(_mass_balance_parts)([done[i][1] for i in key], sub, opts))
    small = [ds.dask(name).to_delayed() for name in tables]  # delayed, as the tasks: one graph
    out = dask.compute(tasks, small)
    frames = [pd.concat(f) if len(f) > 1 else f[0] for f in out[1]]
    return list(out[0]), {name: pandas_columns(f) for name, f in zip(tables, frames, strict=True)}


def _analyse_table_frame(df: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                         opts: WaterOptions) -> dict[str, np.ndarray]:
    """The Dask map step for an external table partition: indices and exceedances per site."""
    return _analyse_frame(df, params, guides, opts, detectors=False)


def analyse_table_dask(frame: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                       opts: WaterOptions, scheduler: str | None) -> list[dict[str, np.ndarray]]:
    """Indices, exceedances and site summaries of an external table on Dask.

    Parameters
    ----------
    frame
        The table as a Polars frame with ``site_id``, ``ts`` and ``params`` columns.
    params, guides, opts
        Parameter columns, guidelines and settings.
    scheduler
        Dask scheduler (see :func:`uda.engines.dask_scheduler`).

    Returns
    -------
    list of dict
        One result dict per partition (sites split over up to one partition per core).
    """
    import dask
    import dask.dataframe as dd

    n_sites = frame["site_id"].n_unique()
    pdf = frame.to_pandas().set_index("site_id", drop=False).rename_axis(None)
    ddf = dd.from_pandas(pdf, npartitions=max(1, min(n_sites, os.cpu_count() or 1)), sort=True)
    with dask_scheduler(scheduler):
        return list(dask.compute(*[dask.delayed(_analyse_table_frame)(p, params, guides, opts)
                                   for p in ddf.to_delayed()]))
