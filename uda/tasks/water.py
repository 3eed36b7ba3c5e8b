"""Water-quality task: indices, exceedances, event detectors and mass balance on Polars or Dask."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uda.engines import check_engine, dask_scheduler
from uda.errors import UserError
from uda.kernels.detect import (
    alarm_runs,
    cusum,
    masked_baseline,
    multivariate_score,
    rolling_baseline,
)
from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi
from uda.tasks.base import TaskResult
from uda.water import (
    EVENT_DIRECTIONS,
    PARAMS,
    Guideline,
    ccme_category,
    guideline_arrays,
    load_guidelines,
    score_events,
)

DETECTORS = ("zscore", "cusum", "multivariate")
PERIODS = ("all", "day", "week", "month")
_MS = 1000


@dataclass
class WaterOptions:
    """Settings of the water analysis (defaults are the documented ones in docs/water.md).

    Attributes
    ----------
    period
        WQI period per site: ``all``, ``day``, ``week`` (Monday start) or ``month``.
    interval_s
        Nominal sampling interval; windows below are in samples of this length.
    window
        Baseline window of the detectors (samples before the current one).
    min_periods
        Fewest baseline samples before a detector scores.
    z_threshold
        ``zscore`` alarm: a parameter's directional robust z above this.
    cusum_k, cusum_h, cusum_clip
        ``cusum`` alarm: one-sided CUSUM of the multivariate score (allowance ``k``,
        step cap ``clip``) above ``h``.
    mv_threshold, mv_clip
        ``multivariate`` alarm: the combined score above this (each parameter capped at
        ``mv_clip``).
    mask_hours
        The detectors' baseline skips samples scoring above ``mv_threshold`` for at most
        this long in a row (0 = plain rolling baseline).
    merge_gap
        Alarm runs this many samples apart or closer form one alarm episode.
    tolerance_s
        An alarm up to this long after an event's end still detects it.
    min_event_size
        Events (plume amplitude = magnitude x peak factor at the site) smaller than this
        neither count as missed nor make an alarm false.
    mb_window, mb_slack_s, mb_threshold
        Mass balance: centred baseline window (samples), envelope window over the lagged
        upstream excess, and the alarm threshold of the unexplained-gain score.
    min_scale
        Scale floor per parameter (sensor resolution), for constant stretches.
    """

    period: str = "month"
    interval_s: float = 900.0
    window: int = 288
    min_periods: int = 24
    z_threshold: float = 8.0
    cusum_k: float = 4.0
    cusum_h: float = 10.0
    cusum_clip: float = 10.0
    mv_threshold: float = 6.0
    mv_clip: float = 10.0
    mask_hours: float = 12.0
    merge_gap: int = 4
    tolerance_s: float = 3600.0
    min_event_size: float = 0.2
    mb_window: int = 288
    mb_slack_s: float = 7200.0
    mb_threshold: float = 10.0
    min_scale: dict[str, float] = field(default_factory=lambda: {
        "temperature_c": 0.05, "ph": 0.02, "do_mgl": 0.05, "turbidity_ntu": 0.2,
        "conductivity_uscm": 2.0, "nitrate_mgl": 0.02, "ammonia_mgl": 0.005})

    def check(self) -> WaterOptions:
        """Return self after checking values a user may have set."""
        if self.period not in PERIODS:
            msg = f"unknown --period {self.period!r}; choose one of: {', '.join(PERIODS)}"
            raise UserError(msg)
        if self.window < 2 or self.min_periods < 1 or self.min_periods > self.window:
            msg = f"--window {self.window} / min periods {self.min_periods} are invalid; use window >= 2 and 1 <= min periods <= window"
            raise UserError(msg)
        return self


# ---- one block of series (all of a partition's sites, or the whole table) ----------------

@dataclass
class Block:
    """Series of several sites: rows sorted by site then time.

    Attributes
    ----------
    sites
        ``(n_sites,)`` site ids in row order.
    offsets
        ``(n_sites + 1,)`` row offsets per site.
    ts
        ``(n_rows,)`` int64 sample times (ms).
    values
        ``(n_rows, n_params)`` float64 in the order of ``params``.
    params
        Parameter names of the columns.
    """

    sites: np.ndarray
    offsets: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    params: tuple[str, ...]

    @classmethod
    def from_arrays(cls, site: np.ndarray, ts: np.ndarray, values: np.ndarray,
                    params: tuple[str, ...]) -> Block:
        """Sort rows by (site, ts) and index the sites."""
        order = np.lexsort((ts, site))
        site, ts, values = site[order], ts[order], values[order]
        starts = np.flatnonzero(np.r_[True, site[1:] != site[:-1]]) if site.size else np.zeros(0, np.int64)
        offsets = np.r_[starts, site.size].astype(np.int64)
        return cls(site[starts].astype(np.int64), offsets, ts.astype(np.int64),
                   np.ascontiguousarray(values, dtype=np.float64), params)

    def site(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Times and values of the ``i``-th site."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ts[a:b], self.values[a:b]


def block_from_pandas(df: Any, params: tuple[str, ...]) -> Block:
    """A :class:`Block` from a pandas frame with ``site_id``, ``ts`` and parameter columns."""
    ts = df["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    values = np.column_stack([df[p].to_numpy(dtype=np.float64, na_value=np.nan) for p in params]) \
        if len(df) else np.zeros((0, len(params)))
    return Block.from_arrays(df["site_id"].to_numpy().astype(np.int64), ts, values, params)


def block_from_polars(df: Any, params: tuple[str, ...]) -> Block:
    """A :class:`Block` from a Polars frame with ``site_id``, ``ts`` and parameter columns."""
    import polars as pl

    ts = df["ts"].cast(pl.Datetime("ms")).cast(pl.Int64).to_numpy()
    values = np.column_stack([df[p].cast(pl.Float64).fill_null(np.nan).to_numpy() for p in params]) \
        if df.height else np.zeros((0, len(params)))
    return Block.from_arrays(df["site_id"].cast(pl.Int64).to_numpy(), ts, values, params)


def _period_start(ts: np.ndarray, period: str) -> np.ndarray:
    """Start of each sample's period as int64 ms (``all``: 0)."""
    if period == "all":
        return np.zeros_like(ts)
    day_ms = 86_400_000
    days = np.floor_divide(ts, day_ms)
    if period == "day":
        return days * day_ms
    if period == "week":  # 1970-01-01 was a Thursday: shift so weeks start on Monday
        return (np.floor_divide(days + 3, 7) * 7 - 3) * day_ms
    month = ts.astype("datetime64[ms]").astype("datetime64[M]")
    return month.astype("datetime64[ms]").astype(np.int64)


def _directions(params: tuple[str, ...]) -> np.ndarray:
    return np.array([EVENT_DIRECTIONS.get(p, 0) for p in params], dtype=np.float64)


def _ccme_enough(values: np.ndarray, goff: np.ndarray, g: dict[str, np.ndarray]) -> np.ndarray:
    """Per group: at least :data:`CCME_MIN_VARIABLES` parameters with a limit and >= 4 values."""
    from uda.water import CCME_MIN_VARIABLES

    limited = ~(np.isnan(g["lower"]) & np.isnan(g["upper"]))
    n_groups = goff.size - 1
    if n_groups <= 0 or not limited.any():
        return np.zeros(max(n_groups, 0), dtype=bool)
    have = ~np.isnan(values[:, limited])
    counts = np.add.reduceat(have.astype(np.int64), goff[:-1], axis=0) if values.shape[0] else \
        np.zeros((n_groups, int(limited.sum())), np.int64)
    counts[np.diff(goff) == 0] = 0
    return (counts >= 4).sum(axis=1) >= CCME_MIN_VARIABLES


def analyse_block(block: Block, guides: dict[str, Guideline], opts: WaterOptions,
                  detectors: bool = True) -> dict[str, np.ndarray]:
    """Indices, exceedances and detector alarm episodes of every site in ``block``.

    Parameters
    ----------
    block
        The sites' series.
    guides
        Guidelines per parameter.
    opts
        Analysis settings.

    Returns
    -------
    dict of ndarray
        ``wqi_*`` per (site, period), ``exc_*`` per exceedance episode, ``alarm_*`` per
        alarm episode (``alarm_detector`` indexes :data:`DETECTORS`). Rows are in site
        order, so results of disjoint blocks concatenate and sort identically.
    """
    g = guideline_arrays(guides, block.params)
    out: dict[str, np.ndarray] = {}
    # WQI per site and period: groups are runs of equal (site, period start).
    pstart = _period_start(block.ts, opts.period)
    row_site = np.repeat(block.sites, np.diff(block.offsets))
    n = block.ts.size
    new = np.r_[True, (row_site[1:] != row_site[:-1]) | (pstart[1:] != pstart[:-1])] if n else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    goff = np.r_[starts, n].astype(np.int64)
    wqi, f1, f2, f3, n_tests, n_failed = ccme_wqi(block.values, goff, g["lower"], g["upper"])
    wqi = np.where(_ccme_enough(block.values, goff, g), wqi, np.nan)
    out["wqi_site"] = row_site[starts]
    out["wqi_period"] = pstart[starts]
    out["wqi_n"] = np.diff(goff)
    out["wqi_ccme"], out["wqi_f1"], out["wqi_f2"], out["wqi_f3"] = wqi, f1, f2, f3
    out["wqi_tests"], out["wqi_failed"] = n_tests, n_failed
    out["wqi_wa"] = weighted_arithmetic_wqi(block.values, goff, g["ideal"], g["standard"])

    max_gap = int(1.5 * opts.interval_s * _MS)
    grp, par, dirn, s, e, peak, ns = exceedance_episodes(block.ts, block.values, block.offsets,
                                                        g["lower"], g["upper"], max_gap)
    out["exc_site"], out["exc_param"], out["exc_direction"] = block.sites[grp], par, dirn
    out["exc_start"], out["exc_end"], out["exc_peak"], out["exc_samples"] = s, e, peak, ns

    if detectors:
        for key, arr in detector_alarms(block, opts).items():
            out[key] = arr
    return out


def detector_scores(block: Block, opts: WaterOptions) -> dict[str, np.ndarray]:
    """Per-sample score of each detector (higher = more evidence of a plume).

    Returns
    -------
    dict of ndarray
        ``zscore`` (largest directional robust z), ``multivariate`` (matched-filter
        score across parameters) and ``cusum`` (one-sided CUSUM of the multivariate
        score, which accumulates weak but persistent evidence), each ``(n_rows,)``.
    """
    keep, floor = _signature(block.params, opts)
    dirs = _directions(block.params)[keep]
    sig = np.ascontiguousarray(block.values[:, keep])
    if opts.mask_hours > 0:
        max_mask = round(opts.mask_hours * 3600.0 / opts.interval_s)
        med, scale = masked_baseline(sig, block.offsets, opts.window, opts.min_periods,
                                     floor, dirs, opts.mv_clip, opts.mv_threshold, max_mask)
    else:
        med, scale = rolling_baseline(sig, block.offsets, opts.window, opts.min_periods, floor)
    z = (sig - med) / scale
    dz = z * dirs
    with np.errstate(all="ignore"):
        zmax = np.max(np.where(np.isnan(dz), -np.inf, dz), axis=1) if dz.shape[1] \
            else np.full(dz.shape[0], -np.inf)
    zmax[~np.isfinite(zmax)] = np.nan
    mv = multivariate_score(np.ascontiguousarray(z), dirs, opts.mv_clip)
    cs = cusum(mv.reshape(-1, 1), block.offsets, opts.cusum_k, opts.cusum_clip)[:, 0]
    return {"zscore": zmax, "cusum": cs, "multivariate": mv}


def detector_alarms(block: Block, opts: WaterOptions) -> dict[str, np.ndarray]:
    """Alarm episodes of every detector: ``alarm_detector``, ``alarm_site``, ``alarm_start``, ``alarm_end``."""
    scores = detector_scores(block, opts)
    thresholds = {"zscore": opts.z_threshold, "cusum": opts.cusum_h, "multivariate": opts.mv_threshold}
    det, site, start, end = [], [], [], []
    for d, name in enumerate(DETECTORS):
        flags = np.nan_to_num(scores[name], nan=-np.inf) > thresholds[name]
        grp, first, last = alarm_runs(flags, block.offsets, opts.merge_gap)
        det.append(np.full(grp.size, d, dtype=np.int64))
        site.append(block.sites[grp])
        start.append(block.ts[first])
        end.append(block.ts[last])
    return {"alarm_detector": np.concatenate(det), "alarm_site": np.concatenate(site),
            "alarm_start": np.concatenate(start), "alarm_end": np.concatenate(end)}


# ---- mass balance -----------------------------------------------------------------------

def _retro_baseline(values: np.ndarray, offsets: np.ndarray,
                    opts: WaterOptions) -> tuple[np.ndarray, np.ndarray]:
    """Centred rolling median and scale per group (an audit of the record, not a stream).

    Mass balance checks the record after the fact, so each sample's baseline is the
    window centred on it: the trailing window of the sample ``mb_window // 2`` later. The
    last half window of a group reuses its final trailing window; samples still without a
    baseline at the start borrow it from the time-reversed pass.
    """
    floor = np.zeros(values.shape[1])
    n = values.shape[0]
    med, scale = rolling_baseline(values, offsets, opts.mb_window, opts.min_periods, floor)
    last = np.repeat(offsets[1:] - 1, np.diff(offsets))
    shift = np.minimum(np.arange(n) + opts.mb_window // 2, last)
    med, scale = med[shift], scale[shift]
    fill = np.isnan(med)
    if fill.any():
        rev_offsets = (n - offsets[::-1]).astype(np.int64)
        rmed, rscale = rolling_baseline(np.ascontiguousarray(values[::-1]), rev_offsets,
                                        opts.mb_window, opts.min_periods, floor)
        med[fill] = rmed[::-1][fill]
        scale[fill] = rscale[::-1][fill]
    return med, scale


def _signature(params: tuple[str, ...], opts: WaterOptions) -> tuple[np.ndarray, np.ndarray]:
    """Column mask of the signature parameters, and their scale floors."""
    dirs = _directions(params)
    keep = dirs != 0
    floor = np.array([opts.min_scale.get(p, 1e-6) for p, k in zip(params, keep, strict=True) if k])
    return keep, floor


def block_excess(block: Block, opts: WaterOptions) -> np.ndarray:
    """Directional excess over each site's centred rolling baseline (signature parameters).

    Returns
    -------
    ndarray
        ``(n_rows, n_signature)``: positive where a plume would push the parameter.
    """
    keep, _ = _signature(block.params, opts)
    dirs = _directions(block.params)[keep]
    sub = np.ascontiguousarray(block.values[:, keep])
    med, _ = _retro_baseline(sub, block.offsets, opts)
    return (sub - med) * dirs


def mass_balance(block: Block, excess: np.ndarray, ups: dict[int, list[tuple[int, float]]],
                 opts: WaterOptions) -> dict[str, np.ndarray]:
    """Unexplained-gain alarm episodes of every site in ``block`` that has upstream sites.

    For each such site, the downstream excess minus the envelope of its upstream sites'
    lagged excess (see :func:`uda.water.unexplained_gain`) is standardised by its own
    centred rolling median and MAD, combined across the signature parameters with the
    matched-filter score, and flagged above ``opts.mb_threshold``. All pairs go through
    each kernel together.

    Parameters
    ----------
    block
        Series of the checked sites and their upstream sites.
    excess
        :func:`block_excess` of ``block``.
    ups
        Downstream site id -> ``[(upstream site id, travel time s), ...]``.
    opts
        Settings.

    Returns
    -------
    dict of ndarray
        ``mb_site``, ``mb_start``, ``mb_end``, ``mb_peak`` (highest score) per episode.
    """
    from uda.kernels.detect import window_max
    from uda.water import lagged_max

    idx = {int(s): i for i, s in enumerate(block.sites)}
    sites, mixed, own, ts_all = [], [], [], []
    for site, ul in ups.items():
        have = [(u, tt) for u, tt in ul if u in idx]
        if site not in idx or not have:
            continue
        a, b = block.offsets[idx[site]], block.offsets[idx[site] + 1]
        upstream = []
        for u, tt in have:
            ua, ub = block.offsets[idx[u]], block.offsets[idx[u] + 1]
            upstream.append((block.ts[ua:ub], excess[ua:ub], tt * _MS))
        sites.append(site)
        ts_all.append(block.ts[a:b])
        own.append(excess[a:b])
        mixed.append(lagged_max(block.ts[a:b], upstream))
    if not sites:
        return _empty_mb()
    offsets = np.r_[0, np.cumsum([t.size for t in ts_all])].astype(np.int64)
    ts = np.concatenate(ts_all)
    slack = max(1, round(opts.mb_slack_s / opts.interval_s))
    envelope = window_max(np.ascontiguousarray(np.concatenate(mixed)), offsets, slack, 1)
    gain = np.concatenate(own) - envelope
    med, scale = _retro_baseline(np.ascontiguousarray(gain), offsets, opts)
    _, floor = _signature(block.params, opts)
    z = (gain - med) / np.maximum(scale, floor)
    score = multivariate_score(np.ascontiguousarray(z), np.ones(z.shape[1]), opts.mv_clip)
    grp, first, last = alarm_runs(score > opts.mb_threshold, offsets, opts.merge_gap)
    peak = np.array([score[a:b + 1].max() for a, b in zip(first, last, strict=True)])
    return {"mb_site": np.asarray(sites, dtype=np.int64)[grp], "mb_start": ts[first],
            "mb_end": ts[last], "mb_peak": peak.astype(np.float64)}


def mass_balance_pair(site: int, down: tuple[np.ndarray, np.ndarray],
                      ups: list[tuple[np.ndarray, np.ndarray, float]], params: tuple[str, ...],
                      opts: WaterOptions) -> dict[str, np.ndarray]:
    """:func:`mass_balance` of one site from its own and its upstream sites' series.

    Parameters
    ----------
    site
        Downstream site id.
    down
        ``(ts, values)`` of the downstream site.
    ups
        ``(ts, values, travel_time_s)`` of each upstream site.
    params, opts
        Column names and settings.
    """
    ids = [site] + [-(k + 1) for k in range(len(ups))]
    series = [down] + [(t, v) for t, v, _ in ups]
    block = Block.from_arrays(np.concatenate([np.full(t.size, i, np.int64) for i, (t, _) in zip(ids, series, strict=True)]),
                              np.concatenate([t for t, _ in series]),
                              np.concatenate([v for _, v in series]), params)
    ul = [(-(k + 1), float(tt)) for k, (_, _, tt) in enumerate(ups)]
    return mass_balance(block, block_excess(block, opts), {site: ul}, opts)


def upstream_map(sites_table: Any) -> dict[int, list[tuple[int, float]]]:
    """Downstream site id -> ``[(upstream site id, travel time s), ...]`` from ``water_sites``."""
    out: dict[int, list[tuple[int, float]]] = {}
    for s, d, tt in zip(sites_table["site_id"], sites_table["downstream_site_id"],
                        sites_table["travel_time_s"], strict=True):
        if int(d) >= 0:
            out.setdefault(int(d), []).append((int(s), float(tt)))
    return {k: sorted(v) for k, v in sorted(out.items())}


# ---- assembling and scoring -------------------------------------------------------------

def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = sorted({k for p in parts for k in p})
    return {k: np.concatenate([p[k] for p in parts if k in p]) for k in keys}


def _sort_by(d: dict[str, np.ndarray], prefix: str, keys: list[str]) -> dict[str, np.ndarray]:
    cols = {k: v for k, v in d.items() if k.startswith(prefix)}
    if not cols:
        return cols
    order = np.lexsort(tuple(cols[k] for k in reversed(keys)))
    return {k: v[order] for k, v in cols.items()}


def _empty_mb() -> dict[str, np.ndarray]:
    return {"mb_site": np.zeros(0, np.int64), "mb_start": np.zeros(0, np.int64),
            "mb_end": np.zeros(0, np.int64), "mb_peak": np.zeros(0)}


def assemble(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-block results and sort them into a canonical order."""
    d = _concat(parts)
    if "mb_site" not in d:
        d.update(_empty_mb())
    out: dict[str, np.ndarray] = {}
    out.update(_sort_by(d, "wqi_", ["wqi_site", "wqi_period"]))
    out.update(_sort_by(d, "exc_", ["exc_site", "exc_param", "exc_start"]))
    out.update(_sort_by(d, "alarm_", ["alarm_detector", "alarm_site", "alarm_start"]))
    out.update(_sort_by(d, "mb_", ["mb_site", "mb_start"]))
    return out


@dataclass
class Truth:
    """Event windows to score against: ``key`` (site), ``start``, ``end`` (ms), ``size``."""

    key: np.ndarray
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray

    def split(self, min_size: float) -> tuple[Truth, Truth]:
        """(events at least ``min_size``, smaller events)."""
        big = self.size >= min_size
        return (Truth(self.key[big], self.start[big], self.end[big], self.size[big]),
                Truth(self.key[~big], self.start[~big], self.end[~big], self.size[~big]))


def score_detectors(res: dict[str, np.ndarray], truth: Truth, opts: WaterOptions) -> dict[str, dict]:
    """Event-level precision, recall, F1 and median delay of each detector."""
    big, small = truth.split(opts.min_event_size)
    tol = int(opts.tolerance_s * _MS)
    out = {}
    for d, name in enumerate(DETECTORS):
        sel = res["alarm_detector"] == d
        sc = score_events(res["alarm_site"][sel], res["alarm_start"][sel], res["alarm_end"][sel],
                          big.key, big.start, big.end, tolerance=tol, ignore_key=small.key,
                          ignore_start=small.start, ignore_end=small.end)
        out[name] = sc.as_dict()
    return out


def tables(res: dict[str, np.ndarray], params: tuple[str, ...],
           names: tuple[str, ...] = DETECTORS) -> dict[str, Any]:
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


# ---- reading the dataset on either engine ----------------------------------------------

def _small_table(ds: Any, name: str, engine: str) -> dict[str, np.ndarray]:
    """A small city/truth table as NumPy columns (timestamps as int64 ms)."""
    if engine == "polars":
        import polars as pl

        df = ds.read(name)
        return {c: (df[c].cast(pl.Datetime("ms")).cast(pl.Int64).to_numpy()
                    if df[c].dtype.is_temporal() else df[c].to_numpy()) for c in df.columns}
    return _columns(ds.dask(name).compute())


def _columns(pdf: Any) -> dict[str, np.ndarray]:
    """A pandas frame as NumPy columns (timestamps as int64 ms)."""
    out = {}
    for c in pdf.columns:
        col = pdf[c].to_numpy()
        if np.issubdtype(col.dtype, np.datetime64):
            col = col.astype("datetime64[ms]").astype(np.int64)
        out[c] = col
    return out


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
    params = tuple(p for p in PARAMS if p in schema)
    if not params:
        msg = f"the water table of {ds.path} has none of the parameters {', '.join(PARAMS)}"
        raise UserError(msg)
    missing = [p for p in PARAMS if p not in schema]
    warnings = [f"parameter {p} is missing from the water table; indices use the others"
                for p in missing]
    return params, warnings


def _site_summary(block: Block, guides: dict[str, Guideline]) -> dict[str, np.ndarray]:
    g = guideline_arrays(guides, block.params)
    wqi, *_ = ccme_wqi(block.values, block.offsets, g["lower"], g["upper"])
    wqi = np.where(_ccme_enough(block.values, block.offsets, g), wqi, np.nan)
    return {"site_id": block.sites, "site_n": np.diff(block.offsets),
            "site_first": block.ts[block.offsets[:-1]] if block.sites.size else np.zeros(0, np.int64),
            "site_ccme": wqi,
            "site_wa": weighted_arithmetic_wqi(block.values, block.offsets, g["ideal"], g["standard"])}


def _analyse_frame(df: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                   opts: WaterOptions, detectors: bool = True) -> dict[str, np.ndarray]:
    """Everything per site for one pandas partition (the Dask map step)."""
    block = block_from_pandas(df, params)
    out = analyse_block(block, guides, opts, detectors)
    out.update(_site_summary(block, guides))
    return out


def _sub_block(block: Block, sites: set[int]) -> tuple[Block, np.ndarray]:
    """The series of ``sites`` in ``block`` as a smaller block, and the rows they came from."""
    keep = [i for i, s in enumerate(block.sites.tolist()) if s in sites]
    if len(keep) == block.sites.size:  # all of them: no copy
        return block, np.arange(block.ts.size)
    lens = np.diff(block.offsets)[keep]
    rows = np.concatenate([np.arange(block.offsets[i], block.offsets[i + 1]) for i in keep]) \
        if keep else np.zeros(0, np.int64)
    sub = Block(block.sites[keep], np.r_[0, np.cumsum(lens)].astype(np.int64), block.ts[rows],
                block.values[rows], block.params)
    return sub, rows


def _partition_task(df: Any, params: tuple[str, ...], guides: dict[str, Guideline], opts: WaterOptions,
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
    out.update(_site_summary(block, guides))
    exported = None
    if local_ups or export:
        wanted = set(local_ups) | {u for ul in local_ups.values() for u, _ in ul} | export
        sub, _ = _sub_block(block, wanted)
        excess = block_excess(sub, opts)  # per site, so the same as on the whole block
        if local_ups:
            out.update(mass_balance(sub, excess, local_ups, opts))
        if export:
            shared, rows = _sub_block(sub, export)
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
        return _empty_mb()
    params = parts[0][0].params
    merged = Block.from_arrays(np.concatenate([np.full(t.size, s, np.int64) for s, t, _ in blocks]),
                               np.concatenate([t for _, t, _ in blocks]),
                               np.concatenate([v for _, _, v in blocks]), params)
    # from_arrays sorts by (site, ts); sort the excess rows the same way
    site_col = np.concatenate([np.full(t.size, s, np.int64) for s, t, _ in blocks])
    order = np.lexsort((np.concatenate([t for _, t, _ in blocks]), site_col))
    return mass_balance(merged, np.concatenate(ex)[order], ups, opts)


def _run_polars(ds: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                opts: WaterOptions, ups: dict[int, list[tuple[int, float]]]) -> list[dict]:
    df = (ds.scan("water").select(["site_id", "ts", *params])
          .sort(["site_id", "ts"]).collect())
    block = block_from_polars(df, params)
    parts = [analyse_block(block, guides, opts), _site_summary(block, guides)]
    if ups:
        parts.append(mass_balance(block, block_excess(block, opts), ups, opts))
    return parts


def _partition_sites(ds: Any, parts: list[Any]) -> list[set[int]]:
    """Site ids held by each partition (from the manifest, else by reading site_id)."""
    files = ds.table("water")["files"]
    if all("site_min" in f and "site_max" in f for f in files) and len(files) == len(parts):
        return [set(range(int(f["site_min"]), int(f["site_max"]) + 1)) for f in files]
    import dask

    uniq = dask.compute(*[dask.delayed(lambda d: set(d["site_id"].unique().tolist()))(p)
                          for p in parts])
    return list(uniq)


def _run_dask(ds: Any, params: tuple[str, ...], guides: dict[str, Guideline],
              opts: WaterOptions, ups: dict[int, list[tuple[int, float]]],
              tables: tuple[str, ...] = ()) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Per-partition results and mass balances, and the small ``tables``, in one ``compute``.

    One task per partition does all of that partition's work (:func:`_partition_task`).
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
    step = dask.delayed(_partition_task, nout=2)
    done = [step(p, params, guides, opts, local[i], export[i]) for i, p in enumerate(parts)]
    tasks = [d[0] for d in done]
    for key, sub in cross.items():
        tasks.append(dask.delayed(_mass_balance_parts)([done[i][1] for i in key], sub, opts))
    small = [ds.dask(name).to_delayed() for name in tables]  # delayed, as the tasks: one graph
    out = dask.compute(tasks, small)
    frames = [pd.concat(f) if len(f) > 1 else f[0] for f in out[1]]
    return list(out[0]), {name: _columns(f) for name, f in zip(tables, frames, strict=True)}


def _generic_on_dataset(ds: Any, engine: str, opts: WaterOptions, train_fraction: float,
                        detect: Any) -> dict[str, Any]:
    """Detectors over every parameter of a generated dataset, scored per sample, per event and per type.

    Labels are the rows inside a truth arrival (``event_arrivals``: plumes at least
    ``opts.min_event_size`` and short events); sensor faults and dosing changes are not
    events, and alarms on them count as false.
    """
    import time

    import polars as pl

    from uda.water import DetectOptions, apply_detectors, fit_detectors

    if not (0.0 < float(train_fraction) < 1.0):
        msg = f"--train-fraction must lie strictly between 0 and 1, got {train_fraction:g}"
        raise UserError(msg)
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
                        "test_start": _iso(min(first_test)) if first_test else None,
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
    warm = int(opts.min_periods * opts.interval_s * _MS)
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
        JSON file overriding the default guidelines (see :func:`uda.water.load_guidelines`).
    out
        Folder to write ``wqi.parquet``, ``exceedances.parquet``, ``alarms.parquet``,
        ``mass_balance.parquet``, ``summary.json`` and a PNG plot into.
    plot_site
        Site to plot (default: the site with the most plume arrivals).
    plot
        Write the PNG plot into ``out``.
    train_fraction
        Also run the detectors over every parameter (:func:`uda.water.fit_detectors`)
        with this chronological train/test split, labels being the truth arrivals;
        reported under ``summary["protocol_detectors"]`` with per-type scores.
    detect
        :class:`uda.water.DetectOptions` for those detectors.
    **options
        Fields of :class:`WaterOptions` (``period``, ``window``, thresholds ...).

    Returns
    -------
    TaskResult
        ``answer``: the sorted result arrays; ``quality``: per-detector F1/precision/recall
        and mass-balance recall/precision; ``summary``: detector scores, mass balance,
        per-site table, warnings, written files.
    """
    import time

    from uda.store import Dataset, open_dataset

    check_engine(engine)
    known = {f for f in WaterOptions.__dataclass_fields__}
    unknown = sorted(set(options) - known)
    if unknown:
        msg = f"unknown water option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        raise UserError(msg)
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
        parts = _run_polars(ds, params, guides, opts, ups)
    else:
        with dask_scheduler(scheduler):
            ups = _upstream(ds, engine)
            # the truth tables are read in the same compute as the series
            parts, truth_tables = _run_dask(ds, params, guides, opts, ups,
                                            TRUTH_TABLES if all(ds.has(t) for t in TRUTH_TABLES) else ())
    site_parts = [{k: v for k, v in p.items() if k.startswith("site_")} for p in parts]
    res = assemble([{k: v for k, v in p.items() if not k.startswith("site_")} for p in parts])
    sites = _sort_by(_concat([p for p in site_parts if p]), "site_", ["site_id"])
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
                          mb_truth.start, mb_truth.end, tolerance=int(opts.tolerance_s * _MS),
                          ignore_key=ignored.key, ignore_start=ignored.start, ignore_end=ignored.end)
        n_pairs = sum(1 for s in ups if s in site_first)
        span_days = (float(res["wqi_n"].sum()) * opts.interval_s / 86400.0) if res["wqi_n"].size else 0.0
        site_days = span_days * n_pairs / max(len(site_first), 1)
        mass = {**sc.as_dict(), "sites_checked": n_pairs,
                "false_alarms_per_site_day": (sc.n_false_alarms / site_days) if site_days else None}
    summary = _summary(res, sites, params, detectors, mass, warnings, opts, ups)
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
        result.summary["files"] = write_results(result, res, params, out, ds=ds, engine=engine,
                                                plot_site=plot_site, truth=truths, plot=plot)
    return result


def _best_detector(detectors: dict[str, dict]) -> str | None:
    scored = [(sc["f1"], name) for name, sc in detectors.items() if sc.get("f1") is not None]
    return max(scored)[1] if scored else None


def _summary(res: dict[str, np.ndarray], sites: dict[str, np.ndarray], params: tuple[str, ...],
             detectors: dict[str, dict], mass: dict[str, Any], warnings: list[str],
             opts: WaterOptions, ups: dict[int, list[tuple[int, float]]],
             names: tuple[str, ...] = DETECTORS, best: str | None = None) -> dict[str, Any]:
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
                  out: str | os.PathLike, *, ds: Any = None, engine: str = "polars",
                  plot_site: int | None = None, truth: tuple[Truth, Truth] | None = None,
                  series: tuple[np.ndarray, np.ndarray] | None = None,
                  plot: bool = True, names: tuple[str, ...] = DETECTORS) -> dict[str, str]:
    """Write the result tables, ``summary.json`` and a plot of one site into ``out``.

    Returns
    -------
    dict
        Kind -> written path.
    """
    import json

    from uda.store import make_folder

    folder = make_folder(out, "the --out folder")
    files: dict[str, str] = {}
    for name, df in tables(res, params, names).items():
        path = folder / f"{name}.parquet"
        df.write_parquet(path)
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
        if series is None:
            series = _site_series(ds, plot_site, params, engine)
        from uda.water import plot_site as _plot

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
    summary_path.write_text(json.dumps(body, indent=1, default=str))
    return result.summary["files"]


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


# ---- external tables --------------------------------------------------------------------

def _options_for_interval(options: dict[str, Any], interval_s: float) -> WaterOptions:
    """Options with the sample-count windows rescaled to ``interval_s`` unless set explicitly."""
    base = WaterOptions()
    ratio = base.interval_s / interval_s if interval_s > 0 else 1.0
    scaled = {"window": max(4, round(base.window * ratio)),
              "min_periods": max(2, round(base.min_periods * ratio)),
              "mb_window": max(4, round(base.mb_window * ratio)),
              "merge_gap": max(0, round(base.merge_gap * ratio))}
    scaled["min_periods"] = min(scaled["min_periods"], scaled["window"])
    merged = {"interval_s": interval_s, **scaled, **options}
    return WaterOptions(**merged).check()


def _label_truth(block: Block, labels: np.ndarray) -> Truth:
    """Events as runs of labelled samples per site."""
    grp, first, last = alarm_runs(labels, block.offsets, 0)
    return Truth(block.sites[grp], block.ts[first], block.ts[last], np.ones(grp.size))


def _analyse_table_frame(df: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                         opts: WaterOptions) -> dict[str, np.ndarray]:
    """The Dask map step for an external table partition: indices and exceedances per site."""
    return _analyse_frame(df, params, guides, opts, detectors=False)


def split_train(offsets: np.ndarray, fraction: float) -> np.ndarray:
    """Chronological split: the first ``fraction`` of each site's rows are training rows.

    Returns
    -------
    ndarray
        ``(n_rows,)`` bool, true on training rows.
    """
    n = int(offsets[-1]) if offsets.size else 0
    train = np.zeros(n, dtype=bool)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        train[a:a + int(math.floor(fraction * (b - a)))] = True
    return train


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]"))


def score_generic(block: Block, flags: dict[str, np.ndarray], labels: np.ndarray | None,
                  test: np.ndarray, interval_s: float, dopts: Any,
                  event_type: np.ndarray | None = None, type_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-sample and per-event scores of each detector on the ``test`` rows.

    Parameters
    ----------
    block
        The sites' series.
    flags
        Detector -> ``(n,)`` alarm state.
    labels
        ``(n,)`` event labels or ``None`` (then only alarm counts are reported).
    test
        ``(n,)`` bool, the scored rows.
    interval_s
        Sampling step (test duration = rows x step per site, for false alarms per day).
    dopts
        :class:`uda.water.DetectOptions` (tolerance, merge gap).
    event_type, type_names
        Optional ``(n,)`` int code of the event type of each labelled row (-1 none) and
        the type names: recall and events found are then also reported per type.

    Returns
    -------
    dict
        ``detectors`` (scores per detector), ``baseline`` (flag everything), ``alarms``
        (alarm interval arrays of the test part), ``test_days``.
    """
    from uda.water import per_sample_f1

    merge = max(0, round(dopts.merge_gap_s / max(interval_s, 1e-9)))
    test_days = 0.0
    for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True):
        rows = np.flatnonzero(test[a:b])
        if rows.size:
            test_days += (float(block.ts[a + rows[-1]] - block.ts[a + rows[0]]) / _MS + interval_s) / 86400.0
    events = None
    if labels is not None:
        lab = labels & test
        t = _label_truth(block, lab)
        # events that began in the training part are not counted as events of the test part
        grp, first, _ = alarm_runs(lab, block.offsets, 0)
        starts_in_test = np.array([not (f > block.offsets[g] and labels[f - 1] and not test[f - 1])
                                   for g, f in zip(grp, first, strict=True)], dtype=bool)
        events = Truth(t.key[starts_in_test], t.start[starts_in_test], t.end[starts_in_test],
                       np.ones(int(starts_in_test.sum())))
        ev_first = first[starts_in_test]
    out: dict[str, Any] = {"detectors": {}, "test_days": test_days}
    det_i, site, start, end = [], [], [], []
    names = list(flags)
    for d, name in enumerate(names):
        f = flags[name] & test
        grp, first, last = alarm_runs(f, block.offsets, merge)
        det_i.append(np.full(grp.size, d, np.int64))
        site.append(block.sites[grp])
        start.append(block.ts[first])
        end.append(block.ts[last])
        entry: dict[str, Any] = {"alarms": int(grp.size),
                                 "alarms_per_day": round(grp.size / test_days, 4) if test_days else None,
                                 "flagged_share": round(float(f[test].mean()), 5) if test.any() else None}
        if labels is not None:
            p, r, f1 = per_sample_f1(f[test], labels[test])
            entry["per_sample"] = {"precision": None if math.isnan(p) else round(p, 4),
                                   "recall": None if math.isnan(r) else round(r, 4), "f1": round(f1, 4)}
            sc = score_events(block.sites[grp], block.ts[first], block.ts[last], events.key, events.start,
                              events.end, tolerance=int(dopts.tolerance_s * _MS)).as_dict()
            sc["false_alarms_per_day"] = round(sc["n_false_alarms"] / test_days, 4) if test_days else None
            entry["per_event"] = sc
            if event_type is not None and type_names:
                per_type = {}
                for k, tname in enumerate(type_names):
                    rows = test & (event_type == k)
                    sel = np.array([event_type[r] == k for r in ev_first], dtype=bool)
                    if not rows.any() and not sel.any():
                        continue
                    found = score_events(block.sites[grp], block.ts[first], block.ts[last],
                                         events.key[sel], events.start[sel], events.end[sel],
                                         tolerance=int(dopts.tolerance_s * _MS))
                    per_type[tname] = {"samples": int(rows.sum()),
                                       "recall_per_sample": round(float(f[rows].mean()), 4) if rows.any() else None,
                                       "events": found.n_events, "events_found": found.n_detected,
                                       "median_delay_s": None if math.isnan(found.median_delay_s)
                                       else found.median_delay_s}
                entry["per_type"] = per_type
        out["detectors"][name] = entry
    if labels is not None:
        prev = float(labels[test].mean()) if test.any() else 0.0
        out["baseline"] = {"flag_everything": {"precision": round(prev, 5), "recall": 1.0 if prev else None,
                                               "f1": round(2 * prev / (1 + prev), 4) if prev else 0.0}}
        out["events"] = int(events.key.size)
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    out["alarms"] = {"alarm_detector": cat(det_i, np.int64), "alarm_site": cat(site, np.int64),
                     "alarm_start": cat(start, np.int64), "alarm_end": cat(end, np.int64)}
    out["names"] = tuple(names)
    return out


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
        :class:`uda.water.DetectOptions` (default settings if ``None``).
    **options
        Fields of :class:`WaterOptions` for the indices and exceedances.

    Returns
    -------
    TaskResult
        ``summary`` holds ``protocol``, ``columns`` (column -> parameter), ``indices``
        (what each rests on), ``detectors`` (per-sample and per-event scores, thresholds
        and how they were chosen), ``baseline`` (flag everything) and the site table.
    """
    import time

    from uda.io.table import parse_columns, read_water_table
    from uda.water import DetectOptions, apply_detectors, fit_detectors, index_basis

    check_engine(engine)
    known = set(WaterOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        msg = f"unknown water option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        raise UserError(msg)
    if train_fraction is not None and train_table is not None:
        msg = "pass one of --train-fraction or --train-table, not both"
        raise UserError(msg)
    if train_fraction is not None and not (0.0 < float(train_fraction) < 1.0):
        msg = f"--train-fraction must lie strictly between 0 and 1, got {train_fraction:g}"
        raise UserError(msg)
    mapping = parse_columns(columns) if isinstance(columns, str) else dict(columns or {})
    dopts = detect or DetectOptions()
    table = read_water_table(path, time_col=time_col, label_col=label_col, site_col=site_col,
                             columns=mapping)
    opts = _options_for_interval(options, table.interval_s)
    guides = load_guidelines(guidelines)
    params = table.params
    frame = table.frame
    t0 = time.perf_counter()
    if engine == "polars":
        block = block_from_polars(frame, params)
        parts = [analyse_block(block, guides, opts, detectors=False), _site_summary(block, guides)]
    else:
        import dask
        import dask.dataframe as dd

        block = block_from_polars(frame, params)
        n_sites = frame["site_id"].n_unique()
        pdf = frame.to_pandas().set_index("site_id", drop=False).rename_axis(None)
        ddf = dd.from_pandas(pdf, npartitions=max(1, min(n_sites, os.cpu_count() or 1)), sort=True)
        with dask_scheduler(scheduler):
            parts = list(dask.compute(*[dask.delayed(_analyse_table_frame)(p, params, guides, opts)
                                        for p in ddf.to_delayed()]))
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
                    "train_rows": int(tlabels.size), "train_events": int(_label_truth(tblock, tlabels).key.size)}
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
            protocol["train_events"] = int(_label_truth(block, labels & train).key.size)
            if not (labels & train).any():
                table.warnings.append("the training part holds no labelled event: thresholds are "
                                      "training quantiles and there is no supervised detector")
    t_fit = time.perf_counter() - t0
    scores, flags = apply_detectors(block, fitted, dopts)
    seconds = time.perf_counter() - t0
    first_test = [int(block.ts[a + np.flatnonzero(test[a:b])[0]])
                  for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True) if test[a:b].any()]
    protocol.update({"test_start": _iso(min(first_test)) if first_test else None,
                     "test_rows": int(test.sum()), "labels_used": "training part only",
                     "sites": {int(s): _iso(t) for s, t in zip(block.sites.tolist(), first_test, strict=False)}
                     if block.sites.size > 1 else {}})
    scored = score_generic(block, flags, labels, test, table.interval_s, dopts)
    site_parts = [{k: v for k, v in p.items() if k.startswith("site_")} for p in parts]
    res = assemble([{k: v for k, v in p.items() if not k.startswith(("site_", "label_"))} for p in parts]
                   + [scored["alarms"]])
    sites = _sort_by(_concat([p for p in site_parts if p]), "site_", ["site_id"])
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
    summary = _summary(res, sites, params, {}, {}, table.warnings, opts, {}, names=names,
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
            t = _label_truth(b, labels[a:e] & test[a:e])
            events = Truth(t.key, t.start, t.end, np.ones(t.key.size))
        write_results(result, res, params, out, plot_site=site, plot=plot,
                      truth=(events, events) if events is not None else None, series=(b.ts, b.values),
                      names=names)
    return result


def _columns_of(path: str | os.PathLike) -> list[str]:
    """Column names of a table file (for options that apply to both tables)."""
    from uda.io.wide import read_table

    return list(read_table(path).columns)
