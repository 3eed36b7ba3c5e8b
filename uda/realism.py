"""Fidelity report: the statistics of a sensor table that decide which forecaster wins.

A *signature* summarises a :class:`~uda.forecasting.panel.Panel` (series × regular time grid) by
per-series statistics, each then given as median and interquartile range over series:

- how much of the variance a daily profile explains (time of day; time of day × day type),
- how long deviations from that profile persist (autocorrelation at lag 1 step, 1 h, 1 day),
- whether the last value or the time-of-day average forecasts better (MAE ratios at
  15/30/60 min, chronological 80/20 split, average fitted on the first 80 %),
- how strongly series move with their neighbours,
- how data go missing (share, run lengths), the value distribution relative to the
  series mean, and the weekday/weekend contrast.

:func:`compare` sets a subject signature beside a reference one and gives a verdict per
statistic against a band around the reference (see :data:`STATS` and docs/realism.md).
Committed signatures of real tables live in ``uda/data/realism/*.json``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda.errors import UserError
from uda.forecasting.panel import Calendar, Panel

#: Folder of the committed reference signatures.
SIGNATURES = Path(__file__).parent / "data" / "realism"
#: Horizons (minutes) of the last-value / historical-average comparison.
HORIZONS_MIN = (15, 30, 60)
#: Share of each series' span used to fit the historical average (the rest is scored).
TRAIN_SHARE = 0.8
#: Fewest pairs for a lagged correlation, and fewest scored points for an MAE ratio.
MIN_PAIRS = 30
#: Neighbours taken per series when no adjacency is given (the most correlated ones).
DEFAULT_NEIGHBOURS = 4


@dataclass(frozen=True)
class Stat:
    """One statistic of a signature and its band.

    The band around a reference is ``[q25 / rel - abs_tol, q75 * rel + abs_tol]`` over the
    reference's interquartile range ``[q25, q75]``: an absolute tolerance for shares and
    correlations, a factor for ratios and lengths; it stops at ``floor``.
    """

    key: str
    label: str
    group: str
    short: str
    abs_tol: float = 0.0
    rel: float = 1.0
    floor: float = 0.0  # the lowest value the statistic can take (bands stop there)


STATS: tuple[Stat, ...] = (
    Stat("var_tod", "variance explained by time of day", "periodicity", "var. by time of day", 0.10),
    Stat("var_tod_daytype", "… by time of day × weekday/weekend", "periodicity", "var. by tod × day type", 0.10),
    Stat("acf_1", "ACF of deviations, lag 1 step", "persistence", "ACF lag 1 step", 0.10, floor=-1.0),
    Stat("acf_1h", "ACF of deviations, lag 1 h", "persistence", "ACF lag 1 h", 0.10, floor=-1.0),
    Stat("acf_1d", "ACF of deviations, lag 1 day", "persistence", "ACF lag 1 day", 0.10, floor=-1.0),
    *(Stat(f"ratio_{m}", f"MAE last / HA(slot × day type), {m} min", "baselines",
           f"last / HA, {m} min", rel=1.15)
      for m in HORIZONS_MIN),
    *(Stat(f"ratio_tod_{m}", f"MAE last / HA(slot), {m} min", "baselines",
           f"last / HA(tod), {m} min", rel=1.15)
      for m in HORIZONS_MIN),
    Stat("nbr_corr", "correlation with neighbours, values", "space", "nbr corr., values", 0.15, floor=-1.0),
    Stat("nbr_corr_dev", "correlation with neighbours, deviations", "space", "nbr corr., deviations", 0.15, floor=-1.0),
    Stat("missing", "missing share", "missing data", "missing share", 0.03),
    Stat("gap_median_h", "missing run, median (h)", "missing data", "missing run med. (h)", 0.5, 2.0),
    Stat("gap_max_h", "missing run, longest (h)", "missing data", "missing run max (h)", 1.0, 2.0),
    Stat("zeros", "share of zeros", "values", "zeros share", 0.03),
    Stat("q05", "5 % quantile / mean", "values", "q05 / mean", 0.15),
    Stat("q50", "median / mean", "values", "median / mean", 0.15),
    Stat("q95", "95 % quantile / mean", "values", "q95 / mean", 0.25),
    Stat("cv", "coefficient of variation", "values", "coef. of variation", 0.0, 1.25),
    Stat("weekend_ratio", "weekend mean / weekday mean", "week", "weekend / weekday", 0.0, 1.15),
    Stat("weekend_profile_corr", "weekday-weekend profile correlation", "week", "wd-we profile corr.", 0.10, floor=-1.0),
)
STAT_KEYS = tuple(s.key for s in STATS)


# --------------------------------------------------------------------------- helpers


def _quiet():
    """Context that silences NumPy's floating-point and empty-slice warnings."""
    ctx = warnings.catch_warnings()

    class _Both:
        def __enter__(self):
            ctx.__enter__()
            warnings.simplefilter("ignore", RuntimeWarning)
            self._err = np.seterr(all="ignore")
            return self

        def __exit__(self, *exc):
            np.seterr(**self._err)
            return ctx.__exit__(*exc)

    return _Both()


def lag_corr(D: np.ndarray, k: int, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Pearson correlation of each row of ``D`` with itself ``k`` steps later.

    Only pairs where both values are finite count; NaN where fewer than ``min_pairs``
    pairs exist or a side is constant.
    """
    n, T = D.shape
    if k <= 0 or k >= T:
        return np.full(n, np.nan) if k > 0 else np.ones(n)
    a, b = D[:, :-k], D[:, k:]
    m = ~(np.isnan(a) | np.isnan(b))
    a0, b0 = np.where(m, a, 0.0), np.where(m, b, 0.0)
    cnt = m.sum(1).astype(float)
    with _quiet():
        ma = a0.sum(1) / cnt
        mb = b0.sum(1) / cnt
        a0 = np.where(m, a - ma[:, None], 0.0)
        b0 = np.where(m, b - mb[:, None], 0.0)
        r = (a0 * b0).sum(1) / np.sqrt((a0 * a0).sum(1) * (b0 * b0).sum(1))
    r[(cnt < min_pairs) | ~np.isfinite(r)] = np.nan
    return r


def pairwise_corr(X: np.ndarray, rows: np.ndarray | None = None,
                  min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Pearson correlations between rows of ``X`` over the times both have a value.

    Returns the ``(len(rows), n)`` block for ``rows`` (all rows by default); NaN on the
    diagonal and where fewer than ``min_pairs`` common values exist.
    """
    n = X.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows)
    M = (~np.isnan(X)).astype(float)
    with _quiet():
        mu = np.nansum(X, 1) / M.sum(1)
    Xc = np.where(M > 0, X - np.nan_to_num(mu)[:, None], 0.0)
    Xa, Ma = Xc[rows], M[rows]
    cnt = Ma @ M.T
    sa, sb = Xa @ M.T, Ma @ Xc.T
    saa, sbb = (Xa * Xa) @ M.T, Ma @ (Xc * Xc).T
    sab = Xa @ Xc.T
    with _quiet():
        cov = sab - sa * sb / cnt
        r = cov / np.sqrt((saa - sa * sa / cnt) * (sbb - sb * sb / cnt))
    r[(cnt < min_pairs) | ~np.isfinite(r)] = np.nan
    r[np.arange(len(rows)), rows] = np.nan
    return np.clip(r, -1.0, 1.0)


def _runs(missing: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean vector."""
    if not missing.any():
        return np.empty(0, dtype=np.int64)
    x = np.concatenate([[0], missing.astype(np.int8), [0]])
    d = np.diff(x)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def _means(values: np.ndarray, groups: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    cnt = np.bincount(groups, minlength=size)
    s = np.bincount(groups, weights=values, minlength=size)
    with _quiet():
        return np.where(cnt > 0, s / cnt, np.nan), cnt


# --------------------------------------------------------------------------- per series


def _series(y: np.ndarray, cal: Calendar, interval_s: int) -> tuple[dict[str, float], np.ndarray]:
    """Statistics of one (non-constant) series and its deviations from the profile."""
    S = cal.season
    T = y.size
    ok = ~np.isnan(y)
    idx = np.flatnonzero(ok)
    first, last = int(idx[0]), int(idx[-1])
    cell = cal.slot + S * cal.weekend.astype(np.int64)
    out: dict[str, float] = {}

    # periodicity: in-sample profiles
    prof, cnt = _means(y[ok], cell[ok], 2 * S)
    prof_tod, cnt_tod = _means(y[ok], cal.slot[ok], S)
    dev = np.where(ok, y - prof[cell], np.nan)
    sst = float(np.sum((y[ok] - y[ok].mean()) ** 2))
    for key, p, c, g in (("var_tod", prof_tod, cnt_tod, cal.slot), ("var_tod_daytype", prof, cnt, cell)):
        # a profile from one value per slot explains everything: not a statistic
        if np.median(c[c > 0]) < 2:
            out[key] = math.nan
        else:
            out[key] = 1.0 - float(np.sum((y[ok] - p[g[ok]]) ** 2)) / sst

    # baselines: last value vs historical average on a chronological 80/20 split
    split = first + int(TRAIN_SHARE * (last - first + 1))
    tr = ok & (np.arange(T) < split)
    ha, _ = _means(y[tr], cell[tr], 2 * S)
    ha_tod, _ = _means(y[tr], cal.slot[tr], S)
    pos = np.where(ok, np.arange(T), -1)
    last_obs = np.maximum.accumulate(pos)
    max_age = 900 // interval_s  # last value at most 15 min older than t - h
    test = idx[idx >= split]
    for m in HORIZONS_MIN:
        key, key_tod = f"ratio_{m}", f"ratio_tod_{m}"
        out[key] = out[key_tod] = math.nan
        if (m * 60) % interval_s:
            continue
        h = m * 60 // interval_s
        t = test[test - h >= 0]
        src = t - h
        j = last_obs[src]
        a = ha[cell[t]]
        b = ha_tod[cal.slot[t]]
        v = (j >= 0) & (src - j <= max_age) & ~np.isnan(a) & ~np.isnan(b)
        if v.sum() < MIN_PAIRS:
            continue
        t, j, a, b = t[v], j[v], a[v], b[v]
        err_lv = float(np.mean(np.abs(y[t] - y[j])))
        e_ha, e_tod = float(np.mean(np.abs(y[t] - a))), float(np.mean(np.abs(y[t] - b)))
        tiny = 1e-9 * float(np.mean(np.abs(y[t])))  # an exact profile: the ratio is undefined
        out[key] = err_lv / e_ha if e_ha > tiny else math.nan
        out[key_tod] = err_lv / e_tod if e_tod > tiny else math.nan

    # missing data within the series' own span
    span = ~ok[first:last + 1]
    runs = _runs(span)
    out["missing"] = float(span.mean())
    hours = interval_s / 3600
    out["gap_median_h"] = float(np.median(runs)) * hours if runs.size else 0.0
    out["gap_max_h"] = float(runs.max()) * hours if runs.size else 0.0

    # values relative to the mean
    vals = y[ok]
    mean = float(vals.mean())
    out["zeros"] = float(np.mean(vals == 0))
    if mean > 0:
        q = np.quantile(vals, [0.05, 0.5, 0.95]) / mean
        out["q05"], out["q50"], out["q95"] = (float(x) for x in q)
        out["cv"] = float(vals.std()) / mean
    else:
        out["q05"] = out["q50"] = out["q95"] = out["cv"] = math.nan

    # weekday / weekend
    we = cal.weekend.astype(bool)
    n_we, n_wd = int((ok & we).sum()), int((ok & ~we).sum())
    out["weekend_ratio"] = out["weekend_profile_corr"] = math.nan
    if n_we >= S // 2 and n_wd >= S // 2:
        m_wd = float(y[ok & ~we].mean())
        if m_wd > 0:
            out["weekend_ratio"] = float(y[ok & we].mean()) / m_wd
        p_wd, p_we = prof[:S], prof[S:]
        both = ~(np.isnan(p_wd) | np.isnan(p_we))
        if both.sum() >= 3 and np.std(p_wd[both]) > 0 and np.std(p_we[both]) > 0:
            out["weekend_profile_corr"] = float(np.corrcoef(p_wd[both], p_we[both])[0, 1])
    return out, dev


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
    with _quiet():
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
    with _quiet():
        for r, i in enumerate(keep):
            stats, D[r] = _series(Y[i], cal, panel.interval_s)
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
    from uda.forecasting.panel import season_check
    from uda.io.wide import bin_to_grid, mean_by_step

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


# --------------------------------------------------------------------------- references


def reference_names() -> list[str]:
    """Names of the committed reference signatures."""
    return sorted(p.stem for p in SIGNATURES.glob("*.json"))


def load_reference(ref: str) -> dict:
    """A reference signature: a committed name (see :func:`reference_names`) or a JSON file.

    A JSON file may hold a signature or the output of ``uda realism --json`` (its subject).
    """
    p = Path(ref)
    if not p.is_file():
        p = SIGNATURES / f"{ref}.json"
    if not p.is_file():
        names = ", ".join(reference_names()) or "(none)"
        msg = f"unknown reference {ref!r}; use one of {names} or a signature JSON file"
        raise UserError(msg)
    try:
        sig = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        msg = f"cannot read reference {p} ({exc.__class__.__name__}); it should be a signature JSON"
        raise UserError(msg) from None
    if isinstance(sig, dict) and "subject" in sig and "stats" not in sig:
        sig = sig["subject"]
    if not isinstance(sig, dict) or not isinstance(sig.get("stats"), dict):
        msg = f"{p} is not a signature (no 'stats'); write one with uda realism --json"
        raise UserError(msg)
    return sig


def band(stat: Stat, ref: dict) -> tuple[float, float] | None:
    """The band of ``stat`` around a reference summary (median, q25, q75), or None."""
    if ref is None or ref.get("q25") is None:
        return None
    return (max(ref["q25"] / stat.rel - stat.abs_tol, stat.floor),
            ref["q75"] * stat.rel + stat.abs_tol)


def verdict(value: float | None, bounds: tuple[float, float] | None) -> str:
    """``ok`` inside the band, ``low``/``high`` outside, ``n/a`` if either is missing."""
    if value is None or bounds is None:
        return "n/a"
    lo, hi = bounds
    if value < lo - 1e-12:
        return "low"
    if value > hi + 1e-12:
        return "high"
    return "ok"


def compare(subject: dict, reference: dict) -> list[dict]:
    """Per statistic: subject and reference summaries, the band and the verdict."""
    rows = []
    for st in STATS:
        s = subject["stats"].get(st.key)
        r = reference["stats"].get(st.key)
        b = band(st, r) if r else None
        rows.append({"key": st.key, "label": st.label, "group": st.group,
                     "subject": s, "reference": r,
                     "band": None if b is None else [b[0], b[1]],
                     "verdict": verdict(s.get("median") if s else None, b)})
    return rows


# --------------------------------------------------------------------------- plot


def plot(path: str | Path, subject: dict, reference: dict | None = None,
         rows: list[dict] | None = None) -> None:
    """Write a PNG: statistics subject vs reference with bands, daily profiles and ACF curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ok": "#2a9d8f", "low": "#d62828", "high": "#d62828", "n/a": "#8d99ae"}
    sub_c, ref_c = "#264653", "#b08968"
    shown = [st for st in STATS if st.key not in ("gap_median_h", "gap_max_h")]
    by_key = {r["key"]: r for r in rows or []}
    sname = subject.get("name") or "subject"
    rname = (reference or {}).get("name") or "reference"

    def summ(sig, key):
        return ((sig or {}).get("stats", {}).get(key) or {}) if sig else {}

    # x range: everything plotted, within [-1, 4]
    xs = [0.0, 1.0]
    for st in shown:
        for d in (summ(subject, st.key), summ(reference, st.key)):
            xs += [d[k] for k in ("q25", "q75") if d.get(k) is not None]
        if by_key.get(st.key, {}).get("band"):
            xs += by_key[st.key]["band"]
    x_lo, x_hi = max(min(xs) - 0.1, -1.05), min(max(xs) + 0.15, 4.0)

    def clip(v):
        return min(max(v, x_lo), x_hi)

    fig = plt.figure(figsize=(13.5, 8.6), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=[1.2, 1])
    ax = fig.add_subplot(gs[:, 0])
    y = np.arange(len(shown))[::-1].astype(float)
    for k, (yy, st) in enumerate(zip(y, shown, strict=True)):
        s, r = summ(subject, st.key), summ(reference, st.key)
        row = by_key.get(st.key)
        if row and row["band"]:
            lo, hi = clip(row["band"][0]), clip(row["band"][1])
            ax.add_patch(plt.Rectangle((lo, yy - 0.36), hi - lo, 0.72, color="#e9ecef", zorder=0, lw=0))
        if r.get("median") is not None:
            ax.plot([clip(r["q25"]), clip(r["q75"])], [yy - 0.14] * 2, color=ref_c, lw=2.2, zorder=2)
            ax.plot(clip(r["median"]), yy - 0.14, "s", color=ref_c, ms=6.5, zorder=3)
        if s.get("median") is not None:
            c = colours[row["verdict"]] if row else sub_c
            ax.plot([clip(s["q25"]), clip(s["q75"])], [yy + 0.14] * 2, color=c, lw=2.2, zorder=2)
            ax.plot(clip(s["median"]), yy + 0.14, "o", color=c, ms=7.5, zorder=3)
        else:
            ax.text(x_lo + 0.02, yy + 0.14, "n/a", va="center", fontsize=7.5, color=colours["n/a"])
        if k == 0 or shown[k - 1].group != st.group:
            if k:
                ax.axhline(yy + 0.5, color="#adb5bd", lw=0.6)
            ax.text(x_hi - 0.02, yy + 0.3, st.group, ha="right", va="center", fontsize=8,
                    style="italic", color="#6c757d")
    labels = [st.label + (f"  [{by_key[st.key]['verdict']}]" if st.key in by_key else "") for st in shown]
    ax.set_yticks(y, labels, fontsize=8.5)
    for tick, st in zip(ax.get_yticklabels(), shown, strict=True):
        v = by_key.get(st.key, {}).get("verdict")
        if v in ("low", "high"):
            tick.set_color(colours[v])
    for x in (0.0, 1.0):
        ax.axvline(x, color="#adb5bd", lw=0.6, ls=":")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("median (marker) and interquartile range (line) over series; grey: band around the reference")
    if reference:
        handles = [plt.Line2D([], [], color=colours["ok"], marker="o", lw=2, label="subject, within the band"),
                   plt.Line2D([], [], color=colours["low"], marker="o", lw=2, label="subject, outside"),
                   plt.Line2D([], [], color=ref_c, marker="s", lw=2, label="reference")]
    else:
        handles = [plt.Line2D([], [], color=sub_c, marker="o", lw=2, label="subject")]
    ax.set_title("statistics that decide the forecaster", fontsize=11, loc="left")

    ax2 = fig.add_subplot(gs[0, 1])
    for sig, c, lab in ((subject, sub_c, sname), (reference, ref_c, rname)):
        if not sig:
            continue
        cv = sig["curves"]
        h = cv["profile_hours"]
        width = max(1, round(3600 / sig["interval_s"]))
        ax2.plot(h, _smooth(_arr(cv["profile_weekday"]), width), color=c, lw=1.8, label=f"{lab}, weekdays")
        ax2.plot(h, _smooth(_arr(cv["profile_weekend"]), width), color=c, lw=1.4, ls="--",
                 label=f"{lab}, weekends")
    ax2.set_xlim(0, 24)
    ax2.set_xticks(range(0, 25, 3))
    ax2.set_xlabel("hour of day")
    ax2.set_ylabel("value / series mean (median over series)")
    ax2.set_title("mean daily profile (1-h moving average)", fontsize=11, loc="left")
    ax2.legend(fontsize=7.5, frameon=False, loc="best")

    ax3 = fig.add_subplot(gs[1, 1])
    for sig, c, lab in ((subject, sub_c, sname), (reference, ref_c, rname)):
        if not sig:
            continue
        cv = sig["curves"]
        ax3.plot(cv["acf_lag_hours"], _arr(cv["acf"]), color=c, lw=1.8, label=lab)
    ax3.axhline(0, color="#adb5bd", lw=0.6)
    ax3.set_xlabel("lag (hours)")
    ax3.set_ylabel("autocorrelation (median over series)")
    ax3.set_title("persistence of deviations from the profile", fontsize=11, loc="left")
    ax3.set_ylim(-0.3, 1.02)
    ax3.legend(fontsize=8, frameon=False)
    fig.suptitle(f"uda realism: {sname}" + (f"  vs  {rname}" if reference else ""), fontsize=13)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(handles),
              fontsize=8.5, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Circular centred moving average over ``width`` slots of a daily curve (NaN-aware)."""
    if width <= 1:
        return x
    ok = ~np.isnan(x)
    k = np.ones(width)
    pad = width // 2
    v = np.concatenate([x[-pad:], x, x[:pad]]) if pad else x
    m = np.concatenate([ok[-pad:], ok, ok[:pad]]) if pad else ok
    s = np.convolve(np.where(m, v, 0.0), k, "valid")
    n = np.convolve(m.astype(float), k, "valid")
    with _quiet():
        out = np.where(n > 0, s / n, np.nan)
    return out[: x.size]


def _arr(xs: list) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=float)
