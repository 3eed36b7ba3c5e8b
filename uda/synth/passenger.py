"""Smart-card taps from commuters and occasional travellers on the transit network.

Each card has a home and (for regular commuters) a work station drawn from a gravity
model on station catchments; on a weekday a commuter travels home→work in the morning
and back in the evening, occasional travellers make leisure round trips. A tap-out
follows its tap-in by the network travel time (transfers included) plus waiting and
access time, never less.

Ridership deviates from this pattern persistently: the chance that a card travels
is scaled by a latent multiplier of its home station at its departure time (a city-wide
and a per-station AR(1) at 15-minute resolution, carried across days). The network is
closed from midnight to 05:00 (no taps). Events at a station (``truth/transit_events``)
draw a share of cards to a round trip arriving before the start and leaving after the
end, instead of their ordinary travel that day. See ``docs/datasets.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import normal, normal_pair, subkey, uniform

GRAVITY_WORK_S = 1200.0
GRAVITY_LEISURE_S = 900.0
REGULAR_SHARE = 0.7
#: Service hours (hours of the day): no tap before the first or after the last.
SERVICE_START_H = 5.0
SERVICE_END_H = 24.0
#: Latent ridership multiplier 1 + c(t) + s(station, t) at 15-minute resolution:
#: AR(1) coefficient per 15 minutes and standard deviation of the city-wide (c) and
#: per-station (s) parts.
FIELD_SLOT_S = 900
FIELD_SLOTS = 86400 // FIELD_SLOT_S
CITY_PHI, CITY_SD = 0.95, 0.10
STATION_PHI, STATION_SD = 0.92, 0.25
#: Share of return legs made by transit (times the field at the return station and time).
RETURN_SHARE = 0.9
#: Events: Poisson per day with this mean per station; start 17:00–20:00 on weekdays,
#: 11:00–20:00 at weekends; duration 1.5–3.5 h; attendance a log-normal share of cards
#: (median EVENT_SHARE_MEDIAN, σ 0.5).
EVENT_RATE_PER_STATION_DAY = 0.02
EVENT_SHARE_MEDIAN = 0.01


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
def station_field(key, n_stations, n_days):
    """Ridership multiplier per station and 15-minute slot from the dataset start.

    ``1 + c(t) + s(station, t)`` floored at 0.2, with ``c`` and ``s`` AR(1) recursions
    whose innovations are keyed by (component, slot), so the field is a pure function of
    the key whatever the day chunks.
    """
    n = n_days * FIELD_SLOTS
    out = np.empty((n_stations, n), np.float32)
    ck = subkey(key, np.uint64(1 << 40))
    city = np.empty(n)
    c = CITY_SD * normal(ck, np.uint64(1 << 41))
    ci = CITY_SD * np.sqrt(1.0 - CITY_PHI * CITY_PHI)
    for t in range(n):
        c = CITY_PHI * c + ci * normal(ck, np.uint64(t))
        city[t] = c
    si = STATION_SD * np.sqrt(1.0 - STATION_PHI * STATION_PHI)
    for st in range(n_stations):
        sk = subkey(key, np.uint64(st))
        v = STATION_SD * normal(sk, np.uint64(1 << 41))
        for t in range(n):
            v = STATION_PHI * v + si * normal(sk, np.uint64(t))
            out[st, t] = max(0.2, 1.0 + city[t] + v)
    return out


def events(rng: np.random.Generator, n_days: int, weekday: np.ndarray, n_stations: int,
           station_weight: np.ndarray) -> dict[str, np.ndarray]:
    """Events at stations: day, station (∝ ``station_weight``), start/end (s of day), share of cards.

    Sorted by day then start; ``offsets`` indexes them by day (CSR).
    """
    counts = rng.poisson(EVENT_RATE_PER_STATION_DAY * n_stations, n_days)
    day = np.repeat(np.arange(n_days), counts)
    k = day.size
    station = rng.choice(n_stations, size=k, p=station_weight / station_weight.sum())
    weekend = weekday[day] >= 5
    start_h = np.where(weekend, rng.uniform(11.0, 20.0, k), rng.uniform(17.0, 20.0, k))
    start = np.round(start_h * 4) * 900.0  # on the quarter hour
    end = start + np.round(rng.uniform(1.5, 3.5, k) * 4) * 900.0
    share = np.minimum(0.2, EVENT_SHARE_MEDIAN * rng.lognormal(0.0, 0.5, k))
    order = np.lexsort((start, day))
    day, station, start, end, share = day[order], station[order], start[order], end[order], share[order]
    return {"day": day.astype(np.int32), "station": station.astype(np.int32), "start_s": start, "end_s": end,
            "share": share, "offsets": np.searchsorted(day, np.arange(n_days + 1)).astype(np.int64)}


@njit(inline="always", cache=True)
def floor_div(x: float, y: float) -> float:
    """``x // y`` for finite ``x`` and a positive whole ``y`` (both floats) without ``fmod``.

    ``x / y`` rounds to at most the next whole number above the exact quotient, and
    ``q * y`` is exact for the small whole ``q`` here, so one correction gives exactly
    Python's (and Numba's) ``x // y``, which calls ``fmod`` (tested against it).
    """
    q = np.floor(x / y)
    if q * y > x:
        q -= 1.0
    return q


@njit(cache=True, nogil=True)
def passenger_kernel(key, day, weekday, day_start_ms, home, work, regular, cdf_leisure, tt,
                     field, ev_station, ev_start, ev_end, ev_share,
                     t_card, t_o, t_d, t_in, t_out, t_tt):
    """Trips of every card on one day; returns the number of trips written.

    Output arrays must hold ``2 * n_cards`` trips. Draws are keyed by (day, card).
    ``field`` is the station ridership multiplier (stations × 15-minute slots of this
    day); ``ev_*`` are this day's events (station, start and end in s of the day, share
    of cards attending).
    """
    dk = subkey(key, np.uint64(day))
    n = 0
    s_count = tt.shape[0]
    open_s = SERVICE_START_H * 3600.0
    close_s = SERVICE_END_H * 3600.0 - 60.0
    for c in range(home.shape[0]):
        ck = subkey(dk, np.uint64(c))
        h = home[c]
        # at most one event a day: one draw against the cumulative shares
        event = -1
        ue = uniform(ck, np.uint64(100)) if ev_station.shape[0] > 0 else 1.0
        cum = 0.0
        for e in range(ev_station.shape[0]):
            cum += ev_share[e]
            if ue < cum:
                event = e
                break
        if event >= 0:
            dest = ev_station[event]
            if dest == h or not np.isfinite(tt[h, dest]):
                continue
            # arrive 10-60 min before the start, leave 0-30 min after the end
            dep1 = ev_start[event] - tt[h, dest] - 600.0 - 3000.0 * uniform(ck, np.uint64(8))
            back = ev_end[event] + 1800.0 * uniform(ck, np.uint64(9))
        else:
            commute = regular[c] and weekday < 5
            if commute:
                z1, z2 = normal_pair(ck, np.uint64(1))
                dep1 = _clip(7.9 + 0.75 * z1, 5.0, 11.0) * 3600.0
                back = _clip(17.4 + 1.0 * z2, 14.0, 22.5) * 3600.0
            else:
                dep1 = (9.0 + 10.0 * uniform(ck, np.uint64(7))) * 3600.0
                back = -1.0  # set after the outbound trip
            if regular[c]:
                p = 0.75 if weekday < 5 else 0.2
            else:
                p = 0.25 if weekday < 5 else 0.3
            slot = min(FIELD_SLOTS - 1, max(0, int(floor_div(dep1, FIELD_SLOT_S))))
            if uniform(ck, np.uint64(0)) >= min(1.0, p * field[h, slot]):
                continue
            if commute:
                dest = work[c]
            else:
                u = uniform(ck, np.uint64(6))
                dest = 0
                while dest < s_count - 1 and cdf_leisure[h, dest] < u:
                    dest += 1
            if dest == h or not np.isfinite(tt[h, dest]):
                continue
        if dep1 < open_s:
            dep1 = open_s
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
            if leg == 1 and uniform(ck, np.uint64(3)) >= min(1.0, RETURN_SHARE * field[o, min(FIELD_SLOTS - 1, int(floor_div(dep, FIELD_SLOT_S)))]):
                break  # home by another mode
            arr = dep + net + extra
            if arr >= close_s:
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
