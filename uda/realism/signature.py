"""The signature of a panel: per-series statistics summarised over series, curves, resampling."""

from __future__ import annotations

import numpy as np

from uda.errors import UserError
from uda.forecasting.panel import Calendar, Panel, season_check
from uda.io.wide import bin_to_grid, mean_by_step
from uda.realism.stats import (
    MIN_PAIRS,
    STAT_KEYS,
    lag_corr,
    pairwise_corr,
    quiet,
    series_stats,
)

#: Neighbours taken per series when no adjacency is given (the most correlated ones).
DEFAULT_NEIGHBOURS = 4


# --------------------------------------------------------------------------- signature


def _summary(vals: np.ndarray) -> dict[str, float | int | None]:
    v = vals[np.isfinite(vals)]
    if v.size == 0:
        return {"median": None, "q25": None, "q75": None, "n": 0}
    q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "n": int(v.size)}


def _lags(S: int, interval_s: int) -> tuple[int, int | None, int]:
    """Lags (steps) of 1 step, 1 hour (None if the interval does not divide an hour) and 1 day."""
    one_h = 3600 // interval_s if 3600 % interval_s == 0 else None
    return 1, one_h, S


def signature(panel: Panel, *, name: str = "", neighbours: int = DEFAULT_NEIGHBOURS,
              per_series: bool = False) -> dict:
    """Statistics of every series of ``panel`` and their median and IQR over series.

    Parameters
    ----------
    panel
        Series on a regular grid; its adjacency (``indptr``/``indices``), if any, defines
        the neighbours, else the ``neighbours`` series whose values correlate most.
    name
        Label of the table in reports.
    neighbours
        Neighbours per series when the panel has no adjacency (0: no neighbour statistics,
        e.g. for unrelated series).
    per_series
        Also return each series' statistics (key ``"series_stats"``).

    Returns
    -------
    dict
        ``stats`` (per statistic: median, q25, q75, n series), ``curves`` (median daily
        profile per day type relative to the series mean, median ACF of deviations by lag in
        hours), and facts about the table (interval, series, days, notes).

    Raises
    ------
    UserError
        If no series has two distinct values.
    """
    Y = np.asarray(panel.values, dtype=np.float64)
    n, T = Y.shape
    cal = Calendar.regular(panel.start, panel.interval_s, T)
    S = cal.season
    notes: list[str] = []
    with quiet():
        lo, hi = np.nanmin(np.where(np.isnan(Y), np.inf, Y), 1), np.nanmax(np.where(np.isnan(Y), -np.inf, Y), 1)
    nobs = (~np.isnan(Y)).sum(1)
    empty = nobs == 0
    constant = ~empty & (lo == hi)
    few = ~empty & ~constant & (nobs < 3)
    use = ~(empty | constant | few)
    for mask, what in ((empty, "without any value"), (constant, "constant (statistics undefined)"),
                       (few, "with fewer than 3 values")):
        if mask.any():
            ids = [panel.ids[i] for i in np.flatnonzero(mask)]
            notes.append(f"{len(ids)} series {what} skipped: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    if not use.any():
        what = "constant" if constant.any() and not few.any() else "constant, empty or too short"
        msg = (f"{name or 'the table'}: every series is {what}; the statistics are undefined "
               "(check the value column and --missing)")
        raise UserError(msg)
    keep = np.flatnonzero(use)
    per = {k: np.full(len(keep), np.nan) for k in STAT_KEYS}
    D = np.full((len(keep), T), np.nan)
    with quiet():
        for r, i in enumerate(keep):
            stats, D[r] = series_stats(Y[i], cal, panel.interval_s)
            for k, v in stats.items():
                per[k][r] = v

        # persistence: lagged correlation of the deviations, all series at once
        for key, k in zip(("acf_1", "acf_1h", "acf_1d"), _lags(S, panel.interval_s), strict=True):
            per[key] = lag_corr(D, k) if k is not None else np.full(len(keep), np.nan)
        if np.isnan(per["acf_1d"]).all():
            notes.append("ACF at 1 day: n/a (fewer than "
                         f"{MIN_PAIRS} pairs a day apart)")

        # neighbours: given adjacency, else the most correlated series
        Yk = Y[keep]
        if len(keep) < 2 or (neighbours <= 0 and panel.indptr is None):
            how = "none (a single series)" if len(keep) < 2 else "none (not asked)"
        else:
            r_val = np.full((len(keep), len(keep)), np.nan)
            r_dev = np.full_like(r_val, np.nan)
            for b in range(0, len(keep), 256):
                rows = np.arange(b, min(b + 256, len(keep)))
                r_val[rows] = pairwise_corr(Yk, rows)
                r_dev[rows] = pairwise_corr(D, rows)
            if panel.indptr is not None:
                how = "given adjacency"
                new = np.full(n, -1)
                new[keep] = np.arange(len(keep))
                for r, i in enumerate(keep):
                    nb = new[panel.indices[panel.indptr[i]:panel.indptr[i + 1]]]
                    nb = nb[nb >= 0]
                    if nb.size:
                        per["nbr_corr"][r] = np.nanmean(r_val[r, nb]) if np.isfinite(r_val[r, nb]).any() else np.nan
                        per["nbr_corr_dev"][r] = np.nanmean(r_dev[r, nb]) if np.isfinite(r_dev[r, nb]).any() else np.nan
            else:
                k = min(neighbours, len(keep) - 1)
                how = f"the {k} most correlated series (values)"
                order = np.argsort(-np.nan_to_num(r_val, nan=-np.inf), axis=1)[:, :k]
                for r in range(len(keep)):
                    nb = order[r][np.isfinite(r_val[r, order[r]])]
                    if nb.size:
                        per["nbr_corr"][r] = r_val[r, nb].mean()
                        if np.isfinite(r_dev[r, nb]).any():
                            per["nbr_corr_dev"][r] = np.nanmean(r_dev[r, nb])
        curves = _curves(Yk, D, cal, panel.interval_s)
    for key in ("var_tod", "var_tod_daytype"):
        if np.isnan(per[key]).all():
            notes.append(f"{key}: n/a (fewer than two days per slot: a profile would explain everything)")
    days = T * panel.interval_s / 86400
    sig = {
        "name": name,
        "interval_s": int(panel.interval_s),
        "start": str(np.datetime64(panel.start, "s")),
        "days": round(days, 2),
        "series": int(n),
        "series_used": int(len(keep)),
        "neighbours": how,
        "stats": {k: _summary(per[k]) for k in STAT_KEYS},
        "curves": curves,
        "notes": list(panel.notes) + notes,
    }
    if per_series:
        sig["series_stats"] = {panel.ids[i]: {k: _num(per[k][r]) for k in STAT_KEYS}
                               for r, i in enumerate(keep)}
    return sig


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _curves(Y: np.ndarray, D: np.ndarray, cal: Calendar, interval_s: int) -> dict:
    """Median (over series) daily profile per day type relative to the mean, and ACF by lag."""
    S = cal.season
    n, T = Y.shape
    we = cal.weekend.astype(bool)
    mean = np.nanmean(Y, 1)
    R = Y / np.where(mean > 0, mean, np.nan)[:, None]
    prof = {}
    for label, mask in (("weekday", ~we), ("weekend", we)):
        P = np.full((n, S), np.nan)
        for s in range(S):
            cols = mask & (cal.slot == s)
            if cols.any():
                P[:, s] = np.nanmean(R[:, cols], 1)
        med = np.nanmedian(P, 0)
        prof[label] = [_num(x) for x in med]
    stride = max(1, S // 96)
    top = min(T - 1, S + S // 12)
    lags = np.arange(0, top + 1, stride)
    acf = [_num(float(np.nanmedian(lag_corr(D, int(k))))) if k else 1.0 for k in lags]
    return {
        "profile_hours": [float(s * interval_s / 3600) for s in range(S)],
        "profile_weekday": prof["weekday"],
        "profile_weekend": prof["weekend"],
        "acf_lag_hours": [float(k * interval_s / 3600) for k in lags],
        "acf": acf,
    }


def coarsen(panel: Panel, interval_s: int) -> Panel:
    """The panel on a coarser grid: mean of the values in each step (NaN if none).

    ``interval_s`` must be a multiple of the panel's interval; the grid starts at the
    panel's start floored to the new interval (from midnight).
    """
    season_check(interval_s)
    if interval_s == panel.interval_s:
        return panel
    if interval_s % panel.interval_s:
        msg = (f"--resample {interval_s} s is not a multiple of the table's {panel.interval_s} s "
               "interval; choose a coarser step")
        raise UserError(msg)
    T = panel.values.shape[1]
    times = np.datetime64(panel.start, "s") + np.arange(T) * np.timedelta64(panel.interval_s, "s")
    pos, length, t0 = bin_to_grid(times, interval_s)
    Y, _ = mean_by_step(panel.values, pos, length)
    notes = [*panel.notes, f"resampled from {panel.interval_s} s to {interval_s} s steps (mean per step)"]
    return Panel(Y, list(panel.ids), t0, interval_s, panel.indptr, panel.indices, notes)
