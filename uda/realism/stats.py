"""The statistics of a signature, their bands, and the per-series computation behind them."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from uda.forecasting.panel import Calendar

#: Horizons (minutes) of the last-value / historical-average comparison.
HORIZONS_MIN = (15, 30, 60)
#: Share of each series' span used to fit the historical average (the rest is scored).
TRAIN_SHARE = 0.8
#: Fewest pairs for a lagged correlation, and fewest scored points for an MAE ratio.
MIN_PAIRS = 30


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


def quiet():
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
    with quiet():
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
    with quiet():
        mu = np.nansum(X, 1) / M.sum(1)
    Xc = np.where(M > 0, X - np.nan_to_num(mu)[:, None], 0.0)
    Xa, Ma = Xc[rows], M[rows]
    cnt = Ma @ M.T
    sa, sb = Xa @ M.T, Ma @ Xc.T
    saa, sbb = (Xa * Xa) @ M.T, Ma @ (Xc * Xc).T
    sab = Xa @ Xc.T
    with quiet():
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
    with quiet():
        return np.where(cnt > 0, s / cnt, np.nan), cnt


# --------------------------------------------------------------------------- per series


def series_stats(y: np.ndarray, cal: Calendar, interval_s: int) -> tuple[dict[str, float], np.ndarray]:
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
