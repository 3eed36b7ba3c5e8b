"""The one evaluator: forecasters fitted and scored block by block of series.

:func:`evaluate_blocks` is what ``uda run flow`` runs on a dataset (blocks of whole traffic
files, read with Polars in turn or as Dask tasks; :mod:`uda.tasks.flow`) and on an imported
panel; :func:`evaluate` is the in-memory panel's case: one block with Polars, ``partitions``
blocks with Dask. A block draws its neighbours' series from the other blocks (:class:`Plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.engines import Progress, check_engine, compute_with_progress, dask_scheduler
from uda.errors import UserError
from uda.forecasting.neighbours import (
    CORRELATION_NOTE,
    correlation_neighbours,
    csr_from_pairs,
    neighbour_context,
)
from uda.forecasting.panel import Calendar, Context, Panel
from uda.forecasting.protocol import (
    DEFAULT_HORIZONS,
    DEFAULT_SPLIT,
    Protocol,
    block_error_sums,
    dropped_note,
    finish,
    make_protocol,
    merge_block_sums,
    resolve_horizons,
    usable_series,
)
from uda.forecasting.registry import DEFAULT_MODELS, needs_neighbours, resolve_models


@dataclass
class Plan:
    """Which series of other blocks each block needs for the neighbour signal.

    Blocks hold disjoint ascending ranges ``[lo[k], hi[k]]`` of series ids. ``pairs[k]``
    are the neighbour pairs ``(series, neighbour)`` whose series is in block ``k``;
    ``need[k]`` the neighbours outside block ``k`` (ascending) and ``deps[k]`` the
    blocks holding them. Without neighbours every block stands alone.
    """

    need: list[np.ndarray]
    deps: list[list[int]]
    pairs: list[tuple[np.ndarray, np.ndarray] | None]

    @classmethod
    def of(cls, lo: np.ndarray, hi: np.ndarray,
           pairs: tuple[np.ndarray, np.ndarray] | None) -> Plan:
        """The plan for blocks ``[lo, hi]`` and neighbour pairs (``None``: no neighbours)."""
        n = len(lo)
        if pairs is None:
            return cls([np.empty(0, np.int64)] * n, [[] for _ in range(n)], [None] * n)
        src, dst = (np.asarray(x, dtype=np.int64) for x in pairs)
        own_src, own_dst = owner(src, lo, hi), owner(dst, lo, hi)
        need, deps, mine = [], [], []
        for k in range(n):
            m = own_src == k
            ext = m & (own_dst != k) & (own_dst >= 0)
            need.append(np.unique(dst[ext]))
            deps.append(np.unique(own_dst[ext]).tolist())
            mine.append((src[m], dst[m]))
        return cls(need, deps, mine)


def owner(ids: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Block holding each id (``-1`` outside every block)."""
    pos = np.searchsorted(lo, ids, side="right") - 1
    ok = (pos >= 0) & (ids <= hi[np.maximum(pos, 0)])
    return np.where(ok, pos, -1)


def rows_of(block: tuple[np.ndarray, np.ndarray], ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The series of ``block`` whose ids are in ``ids`` (what another block needs of it)."""
    keep = np.isin(block[0], ids)
    return block[0][keep], block[1][keep]


def fit_block(block: tuple[np.ndarray, np.ndarray], halos: list, pairs, proto: Protocol,
               cal: Calendar, models: list[str]) -> dict[str, Any]:
    """Fit and score one block of series; its neighbours' series from other blocks in ``halos``.

    Series without an observation in the training part are skipped (and reported), also
    as neighbours. Returns the error sums, the number of series scored and the ids skipped.
    """
    ids, Y = block
    usable = usable_series(Y, proto.train_end)
    out: dict[str, Any] = {"sums": {}, "usable": int(usable.sum()), "dropped": ids[~usable]}
    if not usable.any():
        return out
    every = bool(usable.all())
    ctx = Context(cal)
    if pairs is not None:
        if halos or not (np.diff(ids) > 0).all():
            lid = np.concatenate([ids, *(h[0] for h in halos)])
            order = np.argsort(lid, kind="stable")
            lid = lid[order]
            L = np.concatenate([Y, *(h[1] for h in halos)])[order]
            L[~usable_series(L, proto.train_end)] = np.nan
        else:  # a block standing alone with ascending ids (an in-memory panel): no copies
            lid, L = ids, Y
            if not every:
                L = np.where(usable[:, None], Y, np.nan)
        indptr, indices = csr_from_pairs(pairs[0], pairs[1], lid)
        mine = np.searchsorted(lid, ids)[usable]
        full = neighbour_context(L, proto.train_end, indptr, indices, cal)
        if len(mine) == len(lid) and (np.diff(mine) > 0).all():  # L is the block's series, in order
            ctx = full
        else:
            ctx = Context(cal, full.neighbours[mine], full.nearest[mine])
        del L, full
    out["sums"] = block_error_sums(Y if every else Y[usable], ctx, proto, models)
    return out


def evaluate_blocks(loads: list, plan: Plan, *, engine: str, n_time: int, start: np.datetime64,
                    interval_s: int, models: list[str], horizons: np.ndarray,
                    split: tuple[float, float, float], origin_step: int,
                    progress: Progress | None = None) -> tuple[dict[str, Any], Protocol, int, np.ndarray]:
    """Fit and score ``models`` block by block, holding only a few blocks in memory.

    ``loads[k]`` gives block ``k`` as ``(ids, Y)``: a callable (Polars: blocks are loaded
    in turn, each kept until the last block needing its series is done) or a delayed
    object (Dask: one task per block, plus small tasks cutting out the series another
    block needs). ``plan`` says which series each block needs from the others.

    Returns
    -------
    merged, protocol, usable, dropped
        The error sums of all blocks, the protocol, the number of series scored and the
        ids of the series skipped for having no observation in the training part.
    """
    proto = make_protocol(n_time, 86400 // interval_s, horizons, split=split, origin_step=origin_step)
    cal = Calendar.regular(start, interval_s, n_time)
    n = len(loads)
    step = progress or (lambda stage, done, total: None)
    step("fitting blocks", 0, n)
    if engine == "dask":
        import dask

        proto_d, cal_d = dask.delayed(proto), dask.delayed(cal)
        fits = [dask.delayed(fit_block)(loads[k],
                                         [dask.delayed(rows_of)(loads[j], plan.need[k]) for j in plan.deps[k]],
                                         plan.pairs[k], proto_d, cal_d, models) for k in range(n)]
        parts = compute_with_progress(fits, lambda done: step("fitting blocks", done, n))
    else:
        last = list(range(n))  # the last block that needs block j's series
        later: list[list[np.ndarray]] = [[] for _ in range(n)]  # ids of block j later blocks need
        for k in range(n):
            for j in plan.deps[k]:
                last[j] = max(last[j], k)
                if j < k:
                    later[j].append(plan.need[k])
        held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        parts = []
        for k in range(n):
            for j in (k, *plan.deps[k]):
                if j not in held:
                    held[j] = loads[j]()
            parts.append(fit_block(held[k], [rows_of(held[j], plan.need[k]) for j in plan.deps[k]],
                                    plan.pairs[k], proto, cal, models))
            for j in [j for j in held if last[j] <= k]:
                del held[j]
            if k in held:  # fitted: keep only the series later blocks draw from it
                held[k] = rows_of(held[k], np.concatenate(later[k]))
            step("fitting blocks", k + 1, n)
    usable = sum(p["usable"] for p in parts)
    if not usable:
        msg = "every series is missing throughout the training period; nothing to forecast"
        raise UserError(msg)
    merged = merge_block_sums([p["sums"] for p in parts if p["sums"]])
    return merged, proto, usable, np.concatenate([p["dropped"] for p in parts])


def slices(ids: np.ndarray, Y: np.ndarray, parts: int, engine: str) -> tuple[list, np.ndarray, np.ndarray]:
    """An in-memory panel cut into ``parts`` blocks (one block for Polars): loads, lo, hi."""
    if engine != "dask":
        return [lambda: (ids, Y)], ids[:1], ids[-1:]
    import dask

    edges = np.linspace(0, len(ids), min(parts, len(ids)) + 1).astype(int)
    loads = [dask.delayed((ids[a:b], Y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return loads, ids[edges[:-1]], ids[edges[1:] - 1]


def evaluate(panel: Panel, *, engine: str = "polars", scheduler: str | None = None,
             models: str | list[str] = DEFAULT_MODELS,
             horizons: str | list[int] | np.ndarray = DEFAULT_HORIZONS,
             split: tuple[float, float, float] = DEFAULT_SPLIT, origin_step: int = 1,
             partitions: int = 4) -> dict[str, Any]:
    """Fit and score forecasters on an in-memory panel with the rolling-origin protocol.

    The panel is one block of :func:`evaluate_blocks` with Polars, ``partitions`` blocks
    with Dask (same scores up to summation order). Series without an observation in the
    training part are skipped and named in a note; without an adjacency, the spatial
    models' neighbours are the series whose deviations correlate most.

    Parameters
    ----------
    panel
        The series.
    engine
        ``"polars"`` (one block, in this thread; the kernels use every core) or ``"dask"``.
    scheduler
        Dask scheduler (``threads``, ``processes``, ``sync``, ``local[:N]`` or an address).
    models
        Registry aliases (see :data:`uda.forecasting.registry.MODELS`), comma-separated or
        a list; ``"all"`` for every one.
    horizons
        Steps ahead to score.
    split
        Train, validation, test fractions of the time axis (chronological).
    origin_step
        Steps between consecutive rolling origins in the test period.
    partitions
        Blocks of series with Dask.

    Returns
    -------
    dict
        ``{"models": {model: {horizon: {"mae", "rmse", "mape", "n"}}}, "skill_mae_vs_ha": ...,
        "protocol": ..., "series": ..., "notes": [...], "engine": ..., ...}``
    """
    check_engine(engine)
    names = resolve_models(models)
    h = resolve_horizons(horizons)
    Y = panel.values
    rows = np.arange(Y.shape[0], dtype=np.int64)
    notes = list(panel.notes)
    pairs = None
    if needs_neighbours(names):
        indptr, indices = panel.indptr, panel.indices
        if indptr is None:
            proto = make_protocol(Y.shape[1], panel.season, h, split=split, origin_step=origin_step)
            keep = usable_series(Y, proto.train_end)
            cal = Calendar.regular(panel.start, panel.interval_s, Y.shape[1])
            indptr, indices = correlation_neighbours(np.where(keep[:, None], Y, np.nan), proto.train_end,
                                                     calendar=cal)
            notes.append(CORRELATION_NOTE)
        pairs = (np.repeat(rows, np.diff(indptr)), np.asarray(indices, dtype=np.int64))
    loads, lo, hi = slices(rows, Y, partitions, engine)
    with dask_scheduler(scheduler if engine == "dask" else "sync"):
        merged, proto, n_used, dropped = evaluate_blocks(
            loads, Plan.of(lo, hi, pairs), engine=engine, n_time=Y.shape[1], start=panel.start,
            interval_s=panel.interval_s, models=names, horizons=h, split=split,
            origin_step=origin_step)
    notes[len(panel.notes):len(panel.notes)] = dropped_note([str(panel.ids[i]) for i in dropped])
    res = finish(merged, proto, series=n_used, start=panel.start, interval_s=panel.interval_s,
                 notes=notes)
    res["models"] = {m: res["models"][m] for m in names}
    res["engine"] = engine
    return res
