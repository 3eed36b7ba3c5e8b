"""Upstream-downstream mass balance: the excess a site's upstream neighbours cannot explain.

:func:`unexplained_gain` is a site's directional excess minus the envelope of its
upstream sites' excess lagged by travel time; :func:`mass_balance` standardises it
and flags discharges between the sites.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from uda.kernels.detect import alarm_runs, multivariate_score, rolling_baseline, window_max
from uda.waterq.block import MS, Block
from uda.waterq.detectors import directions, signature_columns
from uda.waterq.settings import WaterOptions


def lagged_upstream(ts: np.ndarray, up_ts: np.ndarray, up_values: np.ndarray,
                    lag_ms: float) -> np.ndarray:
    """Upstream values as seen downstream: ``up(t - lag)`` by linear interpolation.

    Parameters
    ----------
    ts
        Downstream sample times (int64 ms).
    up_ts, up_values
        Upstream sample times and ``(n, n_params)`` values (NaN = missing).
    lag_ms
        Travel time from the upstream to the downstream site.

    Returns
    -------
    ndarray
        ``(len(ts), n_params)``; NaN outside the upstream record.
    """
    want = ts.astype(np.float64) - lag_ms
    out = np.full((ts.shape[0], up_values.shape[1]), np.nan)
    for j in range(up_values.shape[1]):
        ok = ~np.isnan(up_values[:, j])
        if ok.sum() < 2:
            continue
        t = up_ts[ok].astype(np.float64)
        out[:, j] = np.interp(want, t, up_values[ok, j], left=np.nan, right=np.nan)
    return out


def lagged_max(ts: np.ndarray, upstream: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """Largest lagged upstream excess at each downstream time.

    Parameters
    ----------
    ts
        Downstream sample times (int64 ms).
    upstream
        ``(up_ts, up_excess, travel_time_ms)`` per upstream site.

    Returns
    -------
    ndarray
        ``(len(ts), n_params)``: the maximum over upstream sites of ``up(t - travel_time)``
        (NaN where no upstream site has a value).
    """
    if not upstream:
        msg = "mass balance needs at least one upstream site"
        raise ValueError(msg)
    stack = np.stack([lagged_upstream(ts, ut, ux, lag) for ut, ux, lag in upstream])
    any_ok = (~np.isnan(stack)).any(axis=0)
    return np.where(any_ok, np.max(np.where(np.isnan(stack), -np.inf, stack), axis=0), np.nan)


#: One downstream site for :func:`unexplained_gain`: its sample times (int64 ms), its
#: ``(n, n_params)`` directional excess, and ``(up_ts, up_excess, travel_time_ms)`` per
#: upstream site.
Downstream = tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, float]]]


def unexplained_gain(sites: list[Downstream], *, slack_before: int,
                     slack_after: int = 1) -> np.ndarray:
    """How much of each site's excess its upstream sites cannot explain.

    ``excess`` is each parameter's departure from its baseline, signed so that a
    pollution plume makes it positive. Upstream excesses are shifted by their travel
    times (``up(t - travel_time)``, linear interpolation), the largest over the upstream
    sites is taken (no flow data, so assume a plume may arrive undiluted from any branch),
    and then the largest within ``slack_before`` samples before to ``slack_after`` after
    (plumes stretch as they travel). What remains above that envelope is unexplained: a
    discharge between the sites. All sites go through one envelope kernel call.

    Parameters
    ----------
    sites
        One :data:`Downstream` ``(ts, excess, upstream)`` per downstream site, each a
        regular series.
    slack_before, slack_after
        Envelope window in samples.

    Returns
    -------
    ndarray
        ``(sum of n, n_params)``: the sites' unexplained excess, their rows in the order of
        ``sites`` (NaN where no upstream value is available).
    """
    offsets = np.r_[0, np.cumsum([ts.shape[0] for ts, _, _ in sites])].astype(np.int64)
    mixed = np.concatenate([lagged_max(ts, upstream) for ts, _, upstream in sites])
    envelope = window_max(np.ascontiguousarray(mixed), offsets, slack_before, slack_after)
    return np.concatenate([excess for _, excess, _ in sites]) - envelope


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


def block_excess(block: Block, opts: WaterOptions) -> np.ndarray:
    """Directional excess over each site's centred rolling baseline (signature parameters).

    Returns
    -------
    ndarray
        ``(n_rows, n_signature)``: positive where a plume would push the parameter.
    """
    keep, _ = signature_columns(block.params, opts)
    dirs = directions(block.params)[keep]
    sub = np.ascontiguousarray(block.values[:, keep])
    med, _ = _retro_baseline(sub, block.offsets, opts)
    return (sub - med) * dirs


def mass_balance(block: Block, excess: np.ndarray, ups: dict[int, list[tuple[int, float]]],
                 opts: WaterOptions) -> dict[str, np.ndarray]:
    """Unexplained-gain alarm episodes of every site in ``block`` that has upstream sites.

    For each such site, :func:`unexplained_gain` (the downstream excess minus the envelope
    of its upstream sites' lagged excess, ``opts.mb_slack_s`` before to one sample after)
    is standardised by its own centred rolling median and MAD, combined across the
    signature parameters with the matched-filter score, and flagged above
    ``opts.mb_threshold``. All sites go through the scoring kernels together.

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
    idx = {int(s): i for i, s in enumerate(block.sites)}
    slack = max(1, round(opts.mb_slack_s / opts.interval_s))
    sites, downstream = [], []
    for site, ul in ups.items():
        have = [(u, tt) for u, tt in ul if u in idx]
        if site not in idx or not have:
            continue
        a, b = block.offsets[idx[site]], block.offsets[idx[site] + 1]
        upstream = []
        for u, tt in have:
            ua, ub = block.offsets[idx[u]], block.offsets[idx[u] + 1]
            upstream.append((block.ts[ua:ub], excess[ua:ub], tt * MS))
        sites.append(site)
        downstream.append((block.ts[a:b], excess[a:b], upstream))
    if not sites:
        return empty_mass_balance()
    offsets = np.r_[0, np.cumsum([t.size for t, _, _ in downstream])].astype(np.int64)
    ts = np.concatenate([t for t, _, _ in downstream])
    gain = unexplained_gain(downstream, slack_before=slack)
    med, scale = _retro_baseline(np.ascontiguousarray(gain), offsets, opts)
    _, floor = signature_columns(block.params, opts)
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


def empty_mass_balance() -> dict[str, np.ndarray]:
    """The mass-balance result arrays with no episode."""
    return {"mb_site": np.zeros(0, np.int64), "mb_start": np.zeros(0, np.int64),
            "mb_end": np.zeros(0, np.int64), "mb_peak": np.zeros(0)}
