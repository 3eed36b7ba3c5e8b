"""Water-quality task: indices, exceedances, event detectors and mass balance on Polars or Dask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.kernels.detect import alarm_runs, cusum, multivariate_score, rolling_baseline
from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi
from uda.water import (
    EVENT_DIRECTIONS,
    Guideline,
    ccme_category,
    guideline_arrays,
    score_events,
    unexplained_gain,
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
    merge_gap: int = 4
    tolerance_s: float = 3600.0
    min_event_size: float = 0.2
    mb_window: int = 96
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


def analyse_block(block: Block, guides: dict[str, Guideline], opts: WaterOptions) -> dict[str, np.ndarray]:
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
    dirs = _directions(block.params)
    floor = np.array([opts.min_scale.get(p, 1e-6) for p in block.params])
    med, scale = rolling_baseline(block.values, block.offsets, opts.window, opts.min_periods, floor)
    z = (block.values - med) / scale
    dz = np.where(dirs != 0, z * dirs, np.nan)
    with np.errstate(all="ignore"):
        zmax = np.nanmax(np.where(np.isnan(dz), -np.inf, dz), axis=1)
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

def _retro_baseline(values: np.ndarray, params: tuple[str, ...],
                    opts: WaterOptions) -> tuple[np.ndarray, np.ndarray]:
    """Centred rolling median and scale of one site's series (an audit, not a stream).

    Mass balance checks the record after the fact, so each sample's baseline is the
    window centred on it: the trailing window of the sample ``window // 2`` later. The
    last half window reuses the final trailing window; samples still without a baseline
    at the start borrow it from the time-reversed pass.
    """
    floor = np.array([opts.min_scale.get(p, 1e-6) for p in params])
    n = values.shape[0]
    offsets = np.array([0, n], dtype=np.int64)
    med, scale = rolling_baseline(values, offsets, opts.mb_window, opts.min_periods, floor)
    shift = np.minimum(np.arange(n) + opts.mb_window // 2, n - 1)
    med, scale = med[shift], scale[shift]
    fill = np.isnan(med)
    if fill.any():
        rmed, rscale = rolling_baseline(np.ascontiguousarray(values[::-1]), offsets,
                                        opts.mb_window, opts.min_periods, floor)
        med[fill] = rmed[::-1][fill]
        scale[fill] = rscale[::-1][fill]
    return med, scale


def site_excess(values: np.ndarray, params: tuple[str, ...], opts: WaterOptions) -> np.ndarray:
    """Directional excess over the rolling baseline of one site, signature parameters only."""
    dirs = _directions(params)
    keep = dirs != 0
    med, _ = _retro_baseline(np.ascontiguousarray(values[:, keep]), tuple(np.array(params)[keep]), opts)
    return (values[:, keep] - med) * dirs[keep]


def mass_balance_pair(site: int, down: tuple[np.ndarray, np.ndarray],
                      ups: list[tuple[np.ndarray, np.ndarray, float]], params: tuple[str, ...],
                      opts: WaterOptions) -> dict[str, np.ndarray]:
    """Unexplained-gain alarm episodes at ``site`` given its upstream sites.

    The downstream excess minus the envelope of the lagged upstream excess (see
    :func:`uda.water.unexplained_gain`) is standardised by its own rolling median and
    MAD, combined across the signature parameters with the matched-filter score, and
    flagged above ``opts.mb_threshold``.

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

    Returns
    -------
    dict of ndarray
        ``mb_site``, ``mb_start``, ``mb_end``, ``mb_peak`` (highest score) per episode.
    """
    ts, values = down
    excess = site_excess(values, params, opts)
    upstream = [(uts, site_excess(uvals, params, opts), tt * _MS) for uts, uvals, tt in ups]
    slack = max(1, round(opts.mb_slack_s / opts.interval_s))
    gain = unexplained_gain(ts, excess, upstream, slack_before=slack)
    sig = tuple(p for p in params if EVENT_DIRECTIONS.get(p, 0))
    med, scale = _retro_baseline(np.ascontiguousarray(gain), sig, opts)
    score = multivariate_score(np.ascontiguousarray((gain - med) / scale), np.ones(gain.shape[1]),
                               opts.mv_clip)
    offsets = np.array([0, ts.size], dtype=np.int64)
    _, first, last = alarm_runs(score > opts.mb_threshold, offsets, opts.merge_gap)
    peak = np.array([score[a:b + 1].max() for a, b in zip(first, last, strict=True)])
    return {"mb_site": np.full(first.size, site, dtype=np.int64), "mb_start": ts[first],
            "mb_end": ts[last], "mb_peak": peak.astype(np.float64)}


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


def tables(res: dict[str, np.ndarray], params: tuple[str, ...]) -> dict[str, Any]:
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
        "detector": [DETECTORS[i] for i in res["alarm_detector"]], "site_id": res["alarm_site"],
        "start": ts(res["alarm_start"]), "end": ts(res["alarm_end"])},
        schema_overrides={"detector": pl.String})
    mb = pl.DataFrame({"site_id": res["mb_site"], "start": ts(res["mb_start"]),
                       "end": ts(res["mb_end"]), "peak_score": res["mb_peak"]})
    return {"wqi": wqi, "exceedances": exc, "alarms": alarms, "mass_balance": mb}
