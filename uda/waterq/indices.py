"""Water-quality indices and exceedances of a block: CCME and weighted-arithmetic WQI per
site and period, what each index rests on, CCME categories, exceedance episodes.

The compiled index kernels are in :mod:`uda.kernels.wqi`.
"""

from __future__ import annotations

import math

import numpy as np

from uda.contract import DAY_MS
from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi
from uda.waterq.block import MS, Block
from uda.waterq.guidelines import Guideline, guideline_arrays
from uda.waterq.settings import WaterOptions

#: The CCME WQI definition (CCME 2001) asks for at least four variables sampled at least four times.
CCME_MIN_VARIABLES = 4


def index_basis(guides: dict[str, Guideline], params: tuple[str, ...]) -> dict[str, dict]:
    """Which parameters each index rests on, and whether CCME has enough of them.

    Returns
    -------
    dict
        ``ccme``: ``rests_on`` (parameters with a lower or upper limit), ``computed`` and
        ``note``; ``weighted_arithmetic``: ``rests_on`` (parameters with a standard).
    """
    g = guideline_arrays(guides, params)
    limited = [p for j, p in enumerate(params) if not (np.isnan(g["lower"][j]) and np.isnan(g["upper"][j]))]
    wa = [p for j, p in enumerate(params) if not np.isnan(g["standard"][j])]
    ok = len(limited) >= CCME_MIN_VARIABLES
    note = (f"CCME WQI rests on {len(limited)} parameter(s) with guidelines: {', '.join(limited) or 'none'}"
            + ("" if ok else f"; the CCME definition needs at least {CCME_MIN_VARIABLES}, so it is not computed"))
    return {"ccme": {"rests_on": limited, "computed": ok, "min_variables": CCME_MIN_VARIABLES,
                     "note": note},
            "weighted_arithmetic": {"rests_on": wa, "computed": bool(wa),
                                    "note": f"weighted-arithmetic WQI rests on {', '.join(wa) or 'nothing'}"}}


#: CCME WQI categories: (lowest score, name), best first.
CCME_CATEGORIES: tuple[tuple[float, str], ...] = (
    (95.0, "Excellent"), (80.0, "Good"), (65.0, "Fair"), (45.0, "Marginal"), (0.0, "Poor"))


def ccme_category(wqi: float) -> str:
    """CCME category of an index value (Excellent 95-100 ... Poor 0-44); ``""`` for NaN."""
    if wqi is None or math.isnan(wqi):
        return ""
    for low, name in CCME_CATEGORIES:
        if wqi >= low:
            return name
    return "Poor"


def period_start(ts: np.ndarray, period: str) -> np.ndarray:
    """Start of each sample's period as int64 ms (``all``: 0)."""
    if period == "all":
        return np.zeros_like(ts)
    day_ms = DAY_MS
    days = np.floor_divide(ts, day_ms)
    if period == "day":
        return days * day_ms
    if period == "week":  # 1970-01-01 was a Thursday: shift so weeks start on Monday
        return (np.floor_divide(days + 3, 7) * 7 - 3) * day_ms
    month = ts.astype("datetime64[ms]").astype("datetime64[M]")
    return month.astype("datetime64[ms]").astype(np.int64)


def _ccme_enough(values: np.ndarray, goff: np.ndarray, g: dict[str, np.ndarray]) -> np.ndarray:
    """Per group: at least :data:`CCME_MIN_VARIABLES` parameters with a limit and >= 4 values."""
    limited = ~(np.isnan(g["lower"]) & np.isnan(g["upper"]))
    n_groups = goff.size - 1
    if n_groups <= 0 or not limited.any():
        return np.zeros(max(n_groups, 0), dtype=bool)
    have = ~np.isnan(values[:, limited])
    counts = np.add.reduceat(have.astype(np.int64), goff[:-1], axis=0) if values.shape[0] else \
        np.zeros((n_groups, int(limited.sum())), np.int64)
    counts[np.diff(goff) == 0] = 0
    return (counts >= 4).sum(axis=1) >= CCME_MIN_VARIABLES


def block_indices(block: Block, guides: dict[str, Guideline], opts: WaterOptions) -> dict[str, np.ndarray]:
    """Indices per site and period, and exceedance episodes per site and parameter, of ``block``.

    Parameters
    ----------
    block
        The sites' series.
    guides
        Guidelines per parameter.
    opts
        Analysis settings (``period``, ``interval_s``).

    Returns
    -------
    dict of ndarray
        ``wqi_*`` per (site, period) and ``exc_*`` per exceedance episode, in site order.
    """
    g = guideline_arrays(guides, block.params)
    out: dict[str, np.ndarray] = {}
    # WQI per site and period: groups are runs of equal (site, period start).
    pstart = period_start(block.ts, opts.period)
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

    max_gap = int(1.5 * opts.interval_s * MS)
    grp, par, dirn, s, e, peak, ns = exceedance_episodes(block.ts, block.values, block.offsets,
                                                        g["lower"], g["upper"], max_gap)
    out["exc_site"], out["exc_param"], out["exc_direction"] = block.sites[grp], par, dirn
    out["exc_start"], out["exc_end"], out["exc_peak"], out["exc_samples"] = s, e, peak, ns
    return out


def site_summary(block: Block, guides: dict[str, Guideline]) -> dict[str, np.ndarray]:
    """Per site over the whole record: ``site_id``, ``site_n`` (samples), ``site_first`` (first
    time), ``site_ccme`` and ``site_wa`` (the two indices)."""
    g = guideline_arrays(guides, block.params)
    wqi, *_ = ccme_wqi(block.values, block.offsets, g["lower"], g["upper"])
    wqi = np.where(_ccme_enough(block.values, block.offsets, g), wqi, np.nan)
    return {"site_id": block.sites, "site_n": np.diff(block.offsets),
            "site_first": block.ts[block.offsets[:-1]] if block.sites.size else np.zeros(0, np.int64),
            "site_ccme": wqi,
            "site_wa": weighted_arithmetic_wqi(block.values, block.offsets, g["ideal"], g["standard"])}
