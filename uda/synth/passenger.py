"""Smart-card taps from commuters and occasional travellers on the transit network.

Each card has a home and (for regular commuters) a work station drawn from a gravity
model on station catchments; on a weekday a commuter travels home→work in the morning
and back in the evening, occasional travellers make leisure round trips. A tap-out
follows its tap-in by the network travel time (transfers included) plus waiting and
access time, never less. See ``docs/datasets.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import normal, subkey, uniform

GRAVITY_WORK_S = 1200.0
GRAVITY_LEISURE_S = 900.0
REGULAR_SHARE = 0.7


def cards(rng: np.random.Generator, n_cards: int, station_pop: np.ndarray, station_jobs: np.ndarray,
          tt: np.ndarray) -> dict[str, np.ndarray]:
    """Home and work stations of every card, and leisure destination CDFs per station."""
    s = station_pop.size
    p_home = station_pop / station_pop.sum()
    home = rng.choice(s, size=n_cards, p=p_home)
    finite = np.where(np.isfinite(tt), tt, 1e9)
    w_work = station_jobs[None, :] * np.exp(-finite / GRAVITY_WORK_S)
    np.fill_diagonal(w_work, 0.0)
    w_work /= w_work.sum(axis=1, keepdims=True)
    cdf_work = np.cumsum(w_work, axis=1)
    u = rng.uniform(size=n_cards)
    work = np.empty(n_cards, np.int64)
    for h in range(s):  # per home station: memory O(cards), not O(cards x stations)
        mine = home == h
        work[mine] = np.searchsorted(cdf_work[h], u[mine], side="right")
    work = np.minimum(work, s - 1)
    regular = rng.uniform(size=n_cards) < REGULAR_SHARE
    w_leis = (station_jobs + 0.5 * station_pop)[None, :] * np.exp(-finite / GRAVITY_LEISURE_S)
    np.fill_diagonal(w_leis, 0.0)
    cdf_leisure = np.cumsum(w_leis / w_leis.sum(axis=1, keepdims=True), axis=1)
    return {"home": home.astype(np.int32), "work": work.astype(np.int32),
            "regular": regular, "cdf_leisure": cdf_leisure}


@njit(cache=True, nogil=True)
def _clip(v, lo, hi):
    return min(max(v, lo), hi)


@njit(cache=True, nogil=True)
def passenger_kernel(key, day, weekday, day_start_ms, home, work, regular, cdf_leisure, tt,
                     t_card, t_o, t_d, t_in, t_out, t_tt):
    """Trips of every card on one day; returns the number of trips written.

    Output arrays must hold ``2 * n_cards`` trips. Draws are keyed by (day, card).
    """
    dk = subkey(key, np.uint64(day))
    n = 0
    s_count = tt.shape[0]
    for c in range(home.shape[0]):
        ck = subkey(dk, np.uint64(c))
        if regular[c]:
            p = 0.85 if weekday < 5 else 0.2
        else:
            p = 0.25 if weekday < 5 else 0.3
        if uniform(ck, np.uint64(0)) >= p:
            continue
        h = home[c]
        if regular[c] and weekday < 5:
            dest = work[c]
            dep1 = _clip(7.9 + 0.75 * normal(ck, np.uint64(1)), 5.0, 11.0) * 3600.0
            back = _clip(17.4 + 1.0 * normal(ck, np.uint64(2)), 14.0, 22.5) * 3600.0
        else:
            u = uniform(ck, np.uint64(6))
            dest = 0
            while dest < s_count - 1 and cdf_leisure[h, dest] < u:
                dest += 1
            dep1 = (9.0 + 10.0 * uniform(ck, np.uint64(7))) * 3600.0
            back = -1.0  # set after the outbound trip
        if dest == h or not np.isfinite(tt[h, dest]):
            continue
        t_out_s = 0.0
        for leg in range(2):
            o = h if leg == 0 else dest
            d = dest if leg == 0 else h
            net = tt[o, d]
            base = np.uint64(10 + 4 * leg)
            extra = 300.0 * uniform(ck, base) + 30.0 + 210.0 * uniform(ck, base + np.uint64(1))
            if leg == 0:
                dep = dep1
            else:
                dep = back
                if dep < 0.0:
                    dep = t_out_s + 3600.0 * (1.0 + 2.0 * uniform(ck, base + np.uint64(2)))
                if dep <= t_out_s + 600.0:
                    dep = t_out_s + 600.0
            arr = dep + net + extra
            if arr >= 86400.0 - 60.0:
                break
            t_card[n] = c
            t_o[n] = o
            t_d[n] = d
            t_in[n] = day_start_ms + np.int64(dep * 1000.0)
            t_out[n] = day_start_ms + np.int64(arr * 1000.0)
            t_tt[n] = net
            n += 1
            t_out_s = arr
    return n
