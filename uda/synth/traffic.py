"""Traffic sensor data: flow, speed and occupancy per sensor and 5-minute interval.

Demand on a sensor's link follows a diurnal profile (weekday AM/PM peaks shaded by the
link's direction to the centre; a single midday hump at weekends) scaled by the link's
peak volume/capacity ratio and by a latent traffic state: a per-district area field
(reaching a link later the farther it lies from its district's core), a per-sensor AR(1)
deviation whose size depends on the road class, and a day level. Capacity is cut during
rain spells, incidents (recovering gradually) and the queues incidents spill back onto
upstream links. A free-flow speed state drifts slowly. The true state passes through the
fundamental diagram (BPR below capacity, a triangular congested branch above); only then
is measurement noise added. See ``docs/datasets.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.contract import TRAFFIC_INTERVAL_S
from uda.kernels.rng import normal, normal_pair, subkey, uniform

SLOTS = 86400 // TRAFFIC_INTERVAL_S
EFFECTIVE_VEHICLE_LENGTH_KM = 0.0055  # vehicle plus detector length
BPR_ALPHA = 0.15
BPR_BETA = 4  # the kernel spells x**4 as (x*x)*(x*x)
JAM_DENSITY = 150.0  # veh/km/lane
WAVE_SPEED_KMH = 18.0  # backward wave speed of the congested branch
INCIDENT_RATE_PER_SENSOR_DAY = 1 / 15
#: Per road class (motorway, arterial, local): AR(1) coefficient per 5 minutes and
#: stationary standard deviation of the sensor's relative demand deviation u (demand ∝ 1 + u + w·g).
DEV_PHI = np.array([0.93, 0.92, 0.85])
DEV_SD = np.array([0.09, 0.10, 0.06])
#: Weight of the district area field in a sensor's relative demand deviation, per road class.
AREA_WEIGHT = np.array([1.0, 0.8, 0.4])
#: Area field: AR(1) per 5 minutes and stationary standard deviation (relative demand).
AREA_PHI = 0.98
AREA_SD = 0.09
#: The area field reaches a link one 5-minute slot later per this many metres from the
#: district seat (the backward wave speed, 18 km/h, times 5 minutes).
AREA_LAG_M = WAVE_SPEED_KMH / 3.6 * TRAFFIC_INTERVAL_S
#: Free-flow speed state: AR(1) per 5 minutes and, per road class, standard deviation
#: (fraction of v_f).
SPEED_PHI = 0.93
SPEED_SD = np.array([0.035, 0.055, 0.07])
#: Speed measurement noise: a 5-minute mean over n vehicles with per-vehicle spread
#: SPEED_VEHICLE_CV × v_f, plus a detector floor (km/h).
SPEED_VEHICLE_CV = 0.08
SPEED_FLOOR_SD = 0.3
#: Day level: log-normal standard deviation.
DAY_SD = 0.06
#: Incidents: duration 15–120 min, then capacity recovers linearly over 10–30 minutes;
#: queues spill back to upstream links up to SPILL_HOPS links away, one slot later per
#: link (see :func:`with_spillback`).
INCIDENT_RECOVERY_SLOTS = (2, 6)
SPILL_HOPS = 2
#: Rain spells: (1 + Poisson(RAIN_EXTRA_SPELLS)) spells on a rain day, log-normal
#: durations (median 2 h), the day's rain shared among them; effects per mm/h.
RAIN_EXTRA_SPELLS = 0.8
RAIN_SPELL_MEDIAN_H = 2.0
RAIN_WET_SLOTS = 6  # the road dries over 30 minutes after a spell


def profiles() -> dict[str, np.ndarray]:
    """Diurnal demand components at 5-minute resolution (fractions of peak demand)."""
    h = (np.arange(SLOTS) + 0.5) * TRAFFIC_INTERVAL_S / 3600.0
    day = 0.42 / (1 + np.exp(-(h - 6.5) * 1.6)) / (1 + np.exp((h - 21.5) * 1.2))
    am = 0.55 * np.exp(-0.5 * ((h - 8.0) / 0.9) ** 2)
    pm = 0.60 * np.exp(-0.5 * ((h - 17.5) / 1.1) ** 2)
    weekend = 0.62 * np.exp(-0.5 * ((h - 13.5) / 3.4) ** 2) + 0.18 / (1 + np.exp(-(h - 8.5) * 1.2)) / (1 + np.exp((h - 22.5) * 1.2))
    return {"night": np.full(SLOTS, 0.05), "day": day, "am": am, "pm": pm, "weekend": weekend}


@njit(cache=True, nogil=True)
def area_field(key, n_fields, n_slots, lead):
    """Relative-demand AR(1) field per district, ``lead`` slots before the start and ``n_slots`` after.

    Column ``lead + t`` is slot ``t`` from the dataset start. Draws are keyed by
    (district, slot index), so the field is a pure function of the key.
    """
    out = np.empty((n_fields, n_slots + lead))
    innov = AREA_SD * np.sqrt(1.0 - AREA_PHI * AREA_PHI)
    for f in range(n_fields):
        fk = subkey(key, np.uint64(f))
        g = AREA_SD * normal(fk, np.uint64(1 << 40))
        for t in range(n_slots + lead):
            g = AREA_PHI * g + innov * normal(fk, np.uint64(t))
            out[f, t] = g
    return out


@njit(cache=True, nogil=True)
def _capacity_cuts(capf, a0, a1, inc_start, inc_end, inc_factor, inc_recovery):
    """Multiply ``capf`` (slots from the dataset start) by each incident's cut and recovery."""
    n = capf.shape[0]
    for j in range(a0, a1):
        cut = 1.0 - inc_factor[j]
        s0 = max(inc_start[j], 0)
        e = min(inc_end[j], n)
        for t in range(s0, e):
            capf[t] *= inc_factor[j]
        r = inc_recovery[j]
        for k in range(r):
            t = inc_end[j] + k
            if 0 <= t < n:
                capf[t] *= 1.0 - cut * (1.0 - (k + 1.0) / (r + 1.0))


@njit(cache=True, nogil=True)
def traffic_kernel(key, sensor_ids, capacity, free_speed, lanes, peak_vc, inbound,
                   dev_phi, dev_sd, speed_sd, area_w, area, area_row, area_col0,
                   weekday, slot_cap, slot_speed,
                   inc_offsets, inc_start, inc_end, inc_factor, inc_recovery,
                   night, dayp, am, pm, weekend,
                   flow, speed, occ):
    """Fill ``flow``/``speed``/``occ`` for the given sensors over all days.

    Output rows are ordered sensor-major, then day, then 5-minute slot. The latent
    states are AR(1) recursions along one sensor's whole series whose innovations are
    keyed by (sensor, day, slot), so values do not depend on chunking. ``area`` holds the
    district fields; sensor ``i`` reads row ``area_row[i]`` from column ``area_col0[i]``
    on (its lag). ``slot_cap``/``slot_speed`` are city-wide weather factors per slot.
    ``inc_*`` hold capacity cuts per sensor (CSR by position in ``sensor_ids``) as slot
    indices from the dataset start.
    """
    n_days = weekday.shape[0]
    slots = night.shape[0]
    capf = np.empty(n_days * slots)
    prof_wd = np.empty(slots)
    prof_we = np.empty(slots)
    row = 0
    for si in range(sensor_ids.shape[0]):
        sk = subkey(key, np.uint64(sensor_ids[si]))
        cap = capacity[si]
        ffs = free_speed[si]
        ln = lanes[si]
        pv = peak_vc[si]
        inb = inbound[si]
        phi = dev_phi[si]
        innov = dev_sd[si] * np.sqrt(1.0 - phi * phi)
        aw = area_w[si]
        ar = area_row[si]
        ac = area_col0[si]
        s_innov = speed_sd[si] * np.sqrt(1.0 - SPEED_PHI * SPEED_PHI)
        v_sd = SPEED_VEHICLE_CV * ffs
        capf[:] = 1.0
        for s in range(slots):
            prof_wd[s] = pv * cap * (night[s] + dayp[s] + am[s] * (0.6 + 0.8 * inb) + pm[s] * (0.6 + 0.8 * (1.0 - inb)))
            prof_we[s] = pv * cap * (night[s] + weekend[s])
        _capacity_cuts(capf, inc_offsets[si], inc_offsets[si + 1], inc_start, inc_end, inc_factor, inc_recovery)
        u0, w0 = normal_pair(sk, np.uint64(1 << 42))
        u = dev_sd[si] * u0  # stationary start
        w = speed_sd[si] * w0
        for d in range(n_days):
            dk = subkey(sk, np.uint64(d))
            uk = subkey(dk, np.uint64(1 << 41))  # separate stream for uniform draws
            # the day level is log-normal with mean 1
            level = np.exp(DAY_SD * normal_pair(dk, np.uint64(1 << 40))[0] - 0.5 * DAY_SD * DAY_SD)
            wd = weekday[d]
            prof = prof_wd if wd < 5 else prof_we
            # Sundays: the weekend hump at 82 % of Saturday's (the night level unchanged)
            sun = 0.0 if wd != 6 else 0.18 * pv * cap
            for s in range(slots):
                e0, e1 = normal_pair(dk, np.uint64(2 * s))
                z1, z2 = normal_pair(dk, np.uint64(2 * s + 1))
                u = phi * u + innov * e0
                w = SPEED_PHI * w + s_innov * e1
                t = d * slots + s
                m = 1.0 + u + aw * area[ar, ac + t]
                if m < 0.05:
                    m = 0.05
                demand = (prof[s] - sun * weekend[s]) * level * m
                cap_eff = cap * capf[t] * slot_cap[t]
                vf = ffs * slot_speed[t] * (1.0 + w)
                x = demand / cap_eff
                q_true = demand
                if x <= 1.0:
                    v_true = vf / (1.0 + BPR_ALPHA * (x * x) * (x * x))
                else:
                    # queue: flow drops below capacity, density moves to the congested
                    # branch of a triangular fundamental diagram as demand grows
                    q_true = cap_eff * max(0.6, 1.0 - 0.15 * (x - 1.0))
                    q_lane = q_true / ln
                    k_free = q_lane / (vf / (1.0 + BPR_ALPHA))
                    k_cong = JAM_DENSITY - q_lane / WAVE_SPEED_KMH
                    frac = min(1.0, (x - 1.0) / 0.3)
                    v_true = q_lane / (k_free + (k_cong - k_free) * frac)
                # measurement: counts with sqrt(count) noise, the mean speed of the
                # vehicles counted, occupancy from the measured flow and speed
                count = q_true * TRAFFIC_INTERVAL_S / 3600.0
                rs = np.sqrt(count + 0.25)  # about sqrt(vehicles counted)
                count = np.floor(count + rs * z1 + uniform(uk, np.uint64(s)))
                if count < 0.0:
                    count = 0.0
                q = count * 3600.0 / TRAFFIC_INTERVAL_S
                v = v_true + (v_sd / (rs + 0.5) + SPEED_FLOOR_SD) * z2
                if v < 3.0:
                    v = 3.0
                v = np.round(v * 10.0) / 10.0
                o = q / ln / v * EFFECTIVE_VEHICLE_LENGTH_KM
                o = min(max(o, 0.0), 0.9)
                flow[row] = q
                speed[row] = v
                occ[row] = np.round(o * 1000.0) / 1000.0
                row += 1


def incidents(key_seed: np.random.Generator, n_sensors: int, n_days: int):
    """Incidents per sensor: Poisson count, start in 6:00–22:00, 15–120 min, capacity cut.

    Returns
    -------
    dict of arrays
        ``sensor_id``, ``start_slot``, ``end_slot`` (from the dataset start),
        ``capacity_factor`` and ``recovery_slots`` (linear recovery after the end),
        sorted by sensor then start.
    """
    rng = key_seed
    counts = rng.poisson(INCIDENT_RATE_PER_SENSOR_DAY * n_days, n_sensors)
    total = int(counts.sum())
    sensor = np.repeat(np.arange(n_sensors, dtype=np.int32), counts)
    day = rng.integers(0, n_days, total)
    start = day * SLOTS + rng.integers(6 * 12, 22 * 12, total)
    dur = np.clip(np.round(rng.lognormal(np.log(40 / 5), 0.5, total)), 3, 24).astype(np.int64)
    factor = rng.uniform(0.3, 0.7, total).astype(np.float32)
    recovery = rng.integers(INCIDENT_RECOVERY_SLOTS[0], INCIDENT_RECOVERY_SLOTS[1] + 1, total)
    order = np.lexsort((start, sensor))
    return {
        "sensor_id": sensor[order], "start_slot": start[order].astype(np.int64),
        "end_slot": (start + dur)[order].astype(np.int64), "capacity_factor": factor[order],
        "recovery_slots": recovery[order].astype(np.int64),
    }


def expected_load(peak_vc: np.ndarray, inbound: np.ndarray, weekday: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Profile demand / capacity (no latent state) of sensors at the given weekdays and slots."""
    p = profiles()
    wd = p["night"][slot] + p["day"][slot] + p["am"][slot] * (0.6 + 0.8 * inbound) + p["pm"][slot] * (1.4 - 0.8 * inbound)
    we = p["night"][slot] + p["weekend"][slot] * np.where(weekday == 6, 0.82, 1.0)
    return peak_vc * np.where(weekday < 5, wd, we)


def upstream_sensors(link_from: np.ndarray, link_to: np.ndarray, link_cap: np.ndarray, sensor_link: np.ndarray,
                     hops: int = SPILL_HOPS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sensors on links feeding each sensor's link, up to ``hops`` links upstream.

    A link (a→b) is fed by every link (c→a) except the U-turn (b→a), each carrying a
    share of its flow proportional to its capacity. For each sensor the links are
    searched breadth first (feeders in link order, a link visited once: the first path
    found when reached twice); each upstream sensor gets the product of the shares along
    its path.

    Returns
    -------
    tuple of arrays
        ``(offsets, sensor, hops, share)``: sensor ``i``'s upstream sensors are
        ``sensor[offsets[i]:offsets[i + 1]]``, in the order found, with their hop counts
        and shares.
    """
    n_nodes = int(max(link_from.max(initial=0), link_to.max(initial=0))) + 1
    order = np.argsort(link_to, kind="stable")
    into = np.searchsorted(link_to[order], np.arange(n_nodes + 1))
    sensor_of_link = np.full(link_from.size, -1, np.int64)
    sensor_of_link[sensor_link] = np.arange(sensor_link.size)
    args = (np.asarray(link_from, np.int64), np.asarray(link_to, np.int64), np.asarray(link_cap, np.float64),
            np.asarray(sensor_link, np.int64), order.astype(np.int64), into.astype(np.int64), sensor_of_link,
            int(hops))
    counts = np.zeros(sensor_link.size, np.int64)
    _upstream_search(*args, True, counts, counts[:0], counts[:0], np.zeros(0))
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    sensor = np.empty(offsets[-1], np.int64)
    hop = np.empty(offsets[-1], np.int64)
    share = np.empty(offsets[-1], np.float64)
    _upstream_search(*args, False, offsets, sensor, hop, share)
    return offsets, sensor, hop, share


@njit(cache=True, nogil=True)
def _upstream_search(link_from, link_to, link_cap, sensor_link, order, into, sensor_of_link, hops,
                     count_only, where, out_sensor, out_hops, out_share):
    """The search of :func:`upstream_sensors`: with ``count_only`` the number found per
    sensor into ``where``, else the outputs filled from offsets ``where``.

    The capacity total of a link's feeders is added up in order, as ``numpy.sum`` does
    for fewer than eight values (a grid node has at most four links in), so the shares
    are the same floating-point numbers as the NumPy formulation's.
    """
    n_links = link_from.shape[0]
    seen = np.full(n_links, -1, np.int64)
    frontier = np.empty(n_links, np.int64)
    f_share = np.empty(n_links)
    nxt = np.empty(n_links, np.int64)
    n_share = np.empty(n_links)
    feeders = np.empty(n_links, np.int64)
    for si in range(sensor_link.shape[0]):
        link = sensor_link[si]
        seen[link] = si
        frontier[0] = link
        f_share[0] = 1.0
        nf = 1
        k = 0 if count_only else where[si]
        for h in range(1, hops + 1):
            nn = 0
            for fi in range(nf):
                lk = frontier[fi]
                share = f_share[fi]
                a = link_from[lk]
                b = link_to[lk]
                nfeed = 0
                for j in range(into[a], into[a + 1]):
                    up = order[j]
                    if link_from[up] != b:
                        feeders[nfeed] = up
                        nfeed += 1
                if nfeed > 7:
                    raise ValueError("a link with more than 7 feeders")
                total = 1.0
                if nfeed > 0:
                    total = link_cap[feeders[0]]
                    for j in range(1, nfeed):
                        total += link_cap[feeders[j]]
                for j in range(nfeed):
                    up = feeders[j]
                    if seen[up] == si:
                        continue
                    seen[up] = si
                    sh = share * link_cap[up] / total
                    nxt[nn] = up
                    n_share[nn] = sh
                    nn += 1
                    if sensor_of_link[up] >= 0:
                        if not count_only:
                            out_sensor[k] = sensor_of_link[up]
                            out_hops[k] = h
                            out_share[k] = sh
                        k += 1
            for j in range(nn):
                frontier[j] = nxt[j]
                f_share[j] = n_share[j]
            nf = nn
        if count_only:
            where[si] = k


def with_spillback(inc: dict[str, np.ndarray], upstream: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                   capacity: np.ndarray, load_at_start: np.ndarray) -> dict[str, np.ndarray]:
    """Primary incidents plus the queues they spill back onto upstream sensors.

    An incident whose cut capacity is below the profile demand at its start
    (``load_at_start / capacity_factor > 1``) forms a queue. A sensor ``h`` links
    upstream, carrying a share ``σ`` of the flow through the bottleneck, is reached ``h``
    slots later and clears ``2h`` slots after the incident ends; meanwhile it can
    discharge only its share of the bottleneck's capacity: its capacity factor is
    ``min(1, f · C_incident · σ / C_upstream)``.
    """
    offs, up_s, up_h, up_sh = upstream  # from upstream_sensors
    n_up = np.diff(offs)
    f = inc["capacity_factor"].astype(np.float64)
    src = np.flatnonzero(load_at_start > f)
    per = n_up[inc["sensor_id"][src]]
    j = np.repeat(src, per)  # the primary incident of each spilled queue
    pos = offs[inc["sensor_id"][j]] + (np.arange(j.size) - np.repeat(np.cumsum(per) - per, per))
    h = up_h[pos]
    f_up = np.minimum(1.0, f[j] * capacity[inc["sensor_id"][j]] * up_sh[pos] / capacity[up_s[pos]])
    keep = f_up < 0.999
    j, pos, h, f_up = j[keep], pos[keep], h[keep], f_up[keep]
    out = {
        "sensor_id": np.r_[inc["sensor_id"], up_s[pos].astype(np.int32)],
        "start_slot": np.r_[inc["start_slot"], inc["start_slot"][j] + h],
        "end_slot": np.r_[inc["end_slot"], inc["end_slot"][j] + 2 * h],
        "capacity_factor": np.r_[inc["capacity_factor"], f_up.astype(np.float32)],
        "recovery_slots": np.r_[inc["recovery_slots"], inc["recovery_slots"][j]],
    }
    order = np.lexsort((out["start_slot"], out["sensor_id"]))
    return {k: v[order] for k, v in out.items()}


def rain_spells(rng: np.random.Generator, rain_mm: np.ndarray) -> dict[str, np.ndarray]:
    """Rain spells on the rain days of ``rain_mm`` and the capacity/speed factors per slot.

    Each rain day has ``1 + Poisson(RAIN_EXTRA_SPELLS)`` spells (at most 4) starting at a
    uniform time, lasting log-normally (median 2 h, σ 0.6, 30 min–8 h); the day's rain is
    shared among them in proportion to duration. While it rains capacity falls by
    4 % + 2 % per mm/h (at most 17 %) and free-flow speed by 2 % + 1.5 % per mm/h (at most
    12 %); the effect fades linearly over 30 minutes after a spell.

    Returns
    -------
    dict of arrays
        ``day``, ``start_slot``, ``end_slot``, ``intensity_mm_h`` per spell and
        ``capacity_factor``, ``speed_factor`` per slot from the dataset start.
    """
    n_days = rain_mm.size
    n_slots = n_days * SLOTS
    cap = np.ones(n_slots)
    spd = np.ones(n_slots)
    days, starts, ends, inten = [], [], [], []
    for d in np.flatnonzero(rain_mm > 0):
        k = min(4, 1 + int(rng.poisson(RAIN_EXTRA_SPELLS)))
        hours = np.clip(rng.lognormal(np.log(RAIN_SPELL_MEDIAN_H), 0.6, k), 0.5, 8.0)
        start = rng.integers(0, SLOTS, k)
        mmh = float(rain_mm[d]) / hours.sum()
        for s0, hrs in zip(start, hours, strict=True):
            a = int(d * SLOTS + s0)
            b = min(n_slots, a + int(round(hrs * 12)))
            days.append(int(d))
            starts.append(a)
            ends.append(b)
            inten.append(mmh)
            c_cut = min(0.17, 0.04 + 0.02 * mmh)
            v_cut = min(0.12, 0.02 + 0.015 * mmh)
            ramp = 1.0 - (np.arange(1, RAIN_WET_SLOTS + 1) / (RAIN_WET_SLOTS + 1))
            prof = np.r_[np.ones(b - a), ramp][: max(0, n_slots - a)]
            cap[a:a + prof.size] = np.minimum(cap[a:a + prof.size], 1.0 - c_cut * prof)
            spd[a:a + prof.size] = np.minimum(spd[a:a + prof.size], 1.0 - v_cut * prof)
    return {"day": np.array(days, np.int32), "start_slot": np.array(starts, np.int64),
            "end_slot": np.array(ends, np.int64), "intensity_mm_h": np.array(inten, np.float32),
            "capacity_factor": cap, "speed_factor": spd}
