"""Traffic sensor data: flow, speed and occupancy per sensor and 5-minute interval.

Demand on a sensor's link follows a diurnal profile (weekday AM/PM peaks shaded by the
link's direction to the centre; a single midday hump at weekends) scaled by the link's
peak volume/capacity ratio. Capacity is cut on rain days and during incidents. Speed
follows the BPR speed–flow relation, flow saturates at capacity (with a capacity drop
when demand exceeds it), occupancy is density times an effective vehicle length, and
counts, speeds and occupancies carry sensor noise. See ``docs/datasets.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import normal_pair, subkey, uniform
from uda.scales import TRAFFIC_INTERVAL_S

SLOTS = 86400 // TRAFFIC_INTERVAL_S
EFFECTIVE_VEHICLE_LENGTH_KM = 0.0055  # vehicle plus detector length
BPR_ALPHA = 0.15
BPR_BETA = 4  # the kernel spells x**4 as (x*x)*(x*x)
JAM_DENSITY = 150.0  # veh/km/lane
WAVE_SPEED_KMH = 18.0  # backward wave speed of the congested branch
INCIDENT_RATE_PER_SENSOR_DAY = 1 / 15


def profiles() -> dict[str, np.ndarray]:
    """Diurnal demand components at 5-minute resolution (fractions of peak demand)."""
    h = (np.arange(SLOTS) + 0.5) * TRAFFIC_INTERVAL_S / 3600.0
    day = 0.42 / (1 + np.exp(-(h - 6.5) * 1.6)) / (1 + np.exp((h - 21.5) * 1.2))
    am = 0.55 * np.exp(-0.5 * ((h - 8.0) / 0.9) ** 2)
    pm = 0.60 * np.exp(-0.5 * ((h - 17.5) / 1.1) ** 2)
    weekend = 0.62 * np.exp(-0.5 * ((h - 13.5) / 3.4) ** 2) + 0.18 / (1 + np.exp(-(h - 8.5) * 1.2)) / (1 + np.exp((h - 22.5) * 1.2))
    return {"night": np.full(SLOTS, 0.05), "day": day, "am": am, "pm": pm, "weekend": weekend}


@njit(cache=True, nogil=True)
def traffic_kernel(key, sensor_ids, capacity, free_speed, lanes, peak_vc, inbound,
                   weekday, day_cap, day_speed,
                   inc_offsets, inc_start, inc_end, inc_factor,
                   night, dayp, am, pm, weekend,
                   flow, speed, occ):
    """Fill ``flow``/``speed``/``occ`` for the given sensors over all days.

    Output rows are ordered sensor-major, then day, then 5-minute slot. Every random
    draw is keyed by (sensor, day, slot), so values do not depend on chunking.
    ``inc_*`` hold incidents per sensor (CSR by position in ``sensor_ids``) as slot
    indices from the dataset start.
    """
    n_days = weekday.shape[0]
    slots = night.shape[0]
    row = 0
    for si in range(sensor_ids.shape[0]):
        sk = subkey(key, np.uint64(sensor_ids[si]))
        cap = capacity[si]
        ffs = free_speed[si]
        ln = lanes[si]
        pv = peak_vc[si]
        inb = inbound[si]
        a0 = inc_offsets[si]
        a1 = inc_offsets[si + 1]
        for d in range(n_days):
            dk = subkey(sk, np.uint64(d))
            uk = subkey(dk, np.uint64(1 << 41))  # separate stream for uniform draws
            level = np.exp(0.06 * normal_pair(dk, np.uint64(1 << 40))[0])
            wd = weekday[d]
            sat = 1.0 if wd == 5 else 0.82
            for s in range(slots):
                if wd < 5:
                    prof = night[s] + dayp[s] + am[s] * (0.6 + 0.8 * inb) + pm[s] * (0.6 + 0.8 * (1.0 - inb))
                else:
                    prof = night[s] + weekend[s] * sat
                z0, z1 = normal_pair(dk, np.uint64(2 * s))
                z2, z3 = normal_pair(dk, np.uint64(2 * s + 1))
                demand = pv * cap * prof * level * (1.0 + 0.05 * z0)
                if demand < 0.0:
                    demand = 0.0
                t = d * slots + s
                capf = day_cap[d]
                for j in range(a0, a1):
                    if inc_start[j] <= t and t < inc_end[j]:
                        capf *= inc_factor[j]
                cap_eff = cap * capf
                x = demand / cap_eff
                q_true = demand
                if x <= 1.0:
                    v_true = ffs * day_speed[d] / (1.0 + BPR_ALPHA * (x * x) * (x * x))
                else:
                    # queue: flow drops below capacity, density moves to the congested
                    # branch of a triangular fundamental diagram as demand grows
                    q_true = cap_eff * max(0.6, 1.0 - 0.15 * (x - 1.0))
                    q_lane = q_true / ln
                    k_free = q_lane / (ffs * day_speed[d] / (1.0 + BPR_ALPHA))
                    k_cong = JAM_DENSITY - q_lane / WAVE_SPEED_KMH
                    frac = min(1.0, (x - 1.0) / 0.3)
                    v_true = q_lane / (k_free + (k_cong - k_free) * frac)
                count = q_true * TRAFFIC_INTERVAL_S / 3600.0
                count = np.floor(count + np.sqrt(count + 0.25) * z1 + uniform(uk, np.uint64(s)))
                if count < 0.0:
                    count = 0.0
                q = count * 3600.0 / TRAFFIC_INTERVAL_S
                v = v_true + 2.5 * z2
                if v < 3.0:
                    v = 3.0
                v = np.round(v * 10.0) / 10.0
                o = q_true / ln / v_true * EFFECTIVE_VEHICLE_LENGTH_KM
                if q > 0.0:
                    o += 0.004 * z3
                else:
                    o = 0.0
                o = min(max(o, 0.0), 0.9)
                flow[row] = q
                speed[row] = v
                occ[row] = np.round(o * 1000.0) / 1000.0
                row += 1


def incidents(key_seed: np.random.Generator, n_sensors: int, n_days: int):
    """Incidents per sensor: Poisson count, start in 6:00–22:00, 15–150 min, capacity cut.

    Returns
    -------
    dict of arrays
        ``sensor_id``, ``start_slot``, ``end_slot`` (from the dataset start) and
        ``capacity_factor``, sorted by sensor then start.
    """
    rng = key_seed
    counts = rng.poisson(INCIDENT_RATE_PER_SENSOR_DAY * n_days, n_sensors)
    total = int(counts.sum())
    sensor = np.repeat(np.arange(n_sensors, dtype=np.int32), counts)
    day = rng.integers(0, n_days, total)
    start = day * SLOTS + rng.integers(6 * 12, 22 * 12, total)
    dur = np.clip(np.round(rng.lognormal(np.log(45 / 5), 0.5, total)), 3, 30).astype(np.int64)
    factor = rng.uniform(0.3, 0.7, total).astype(np.float32)
    order = np.lexsort((start, sensor))
    return {
        "sensor_id": sensor[order], "start_slot": start[order].astype(np.int64),
        "end_slot": (start + dur)[order].astype(np.int64), "capacity_factor": factor[order],
    }
