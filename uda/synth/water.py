"""Water-quality series per monitoring site and 15-minute interval, with pollution plumes.

Temperature follows season, day and the city's weather anomaly; dissolved oxygen follows
its temperature-dependent saturation (so it falls as water warms); rain drives turbidity
up and conductivity down; pollution events released at outfalls travel downstream with
the reach travel times and attenuate. See ``docs/datasets.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import normal, subkey
from uda.scales import WATER_INTERVAL_S

SLOTS = 86400 // WATER_INTERVAL_S
EVENT_RATE_PER_DISCHARGE_DAY = 0.12
PLUME_HALF_LIFE_S = 12 * 3600.0
PLUME_SPREAD = 0.15  # plume duration grows by this fraction of the travel time
MIN_PEAK_FACTOR = 0.1
PARAMETERS = ("temperature_c", "ph", "do_mgl", "turbidity_ntu", "conductivity_uscm", "nitrate_mgl", "ammonia_mgl")


def pollution_events(rng: np.random.Generator, n_days: int, discharges: dict[str, np.ndarray],
                     downstream: np.ndarray, reach_tt: np.ndarray) -> tuple[dict, dict]:
    """Events at outfalls and their arrivals at every downstream site (times in seconds)."""
    n_dis = discharges["discharge_id"].size
    counts = rng.poisson(EVENT_RATE_PER_DISCHARGE_DAY * n_days, n_dis)
    dis = np.repeat(np.arange(n_dis), counts)
    m = dis.size
    start = rng.uniform(0, n_days * 86400.0 - 6 * 3600.0, m)
    dur = rng.uniform(1.0, 6.0, m) * 3600.0
    mag = rng.lognormal(0.0, 0.5, m)
    order = np.lexsort((start, dis))
    dis, start, dur, mag = dis[order], start[order], dur[order], mag[order]
    events = {"event_id": np.arange(m, dtype=np.int32), "discharge_id": dis.astype(np.int32),
              "start_s": start, "end_s": start + dur, "magnitude": mag.astype(np.float32)}
    arr = {"event_id": [], "site_id": [], "start_s": [], "end_s": [], "peak_factor": []}
    for e in range(m):
        d = int(dis[e])
        site = int(discharges["downstream_site_id"][d])
        up = int(discharges["upstream_site_id"][d])
        delay = (1.0 - float(discharges["position"][d])) * reach_tt[up]
        while site >= 0:
            pf = 0.5 ** (delay / PLUME_HALF_LIFE_S)
            if pf < MIN_PEAK_FACTOR:
                break
            arr["event_id"].append(e)
            arr["site_id"].append(site)
            arr["start_s"].append(start[e] + delay)
            arr["end_s"].append(start[e] + delay + dur[e] * (1 + PLUME_SPREAD * delay / 3600.0))
            arr["peak_factor"].append(pf)
            delay += reach_tt[site]
            site = int(downstream[site])
    arrivals = {k: np.asarray(v) for k, v in arr.items()}
    return events, arrivals


@njit(cache=True, nogil=True)
def water_kernel(key, site_ids, t_off, ph_off, cond_base, turb_base, nit_base, amm_base,
                 start_doy, rain_mm, temp_anom,
                 ev_offsets, ev_start, ev_end, ev_amp, out):
    """Fill ``out[rows, 7]`` (columns as ``PARAMETERS``) for the given sites, site-major.

    ``ev_*`` hold plume arrivals per site (CSR by position in ``site_ids``) in slots
    from the dataset start; ``ev_amp`` is magnitude times peak factor.
    """
    n_days = rain_mm.shape[0]
    slots = 96
    decay = np.exp(-0.25 / 6.0)
    row = 0
    two_pi = 2.0 * np.pi
    for si in range(site_ids.shape[0]):
        k = subkey(key, np.uint64(site_ids[si]))
        e = np.zeros(7)
        runoff = 0.0
        a0 = ev_offsets[si]
        a1 = ev_offsets[si + 1]
        rho = 0.97
        innov = np.sqrt(1 - rho * rho)
        for d in range(n_days):
            doy = start_doy + d
            season = np.sin(two_pi * (doy - 115.0) / 365.0)
            for s in range(slots):
                t = d * slots + s
                c = np.uint64(t * 8)
                for j in range(7):
                    e[j] = rho * e[j] + innov * normal(k, c + np.uint64(j))
                h = (s + 0.5) * 0.25
                diurnal = np.sin(two_pi * (h - 9.0) / 24.0)
                runoff = runoff * decay + rain_mm[d] / slots
                temp = 11.0 + 8.0 * season + 1.0 * diurnal + temp_anom[d] + t_off[si] + 0.3 * e[0]
                sat = 14.652 - 0.41022 * temp + 0.007991 * temp * temp - 0.000077774 * temp * temp * temp
                do = sat * (0.9 + 0.02 * diurnal) + 0.12 * e[1]
                ph = 7.5 + ph_off[si] + 0.12 * diurnal + 0.04 * e[2]
                turb = turb_base[si] * np.exp(0.15 * e[3]) * (1.0 + 0.6 * runoff)
                cond = cond_base[si] * (1.0 - 0.04 * min(runoff, 5.0)) + 6.0 * e[4]
                nit = nit_base[si] + 0.5 * np.sin(two_pi * (doy - 30.0) / 365.0) + 0.08 * e[5] + 0.05 * runoff
                amm = amm_base[si] * np.exp(0.25 * e[6])
                for j in range(a0, a1):
                    if ev_start[j] <= t and t < ev_end[j]:
                        a = ev_amp[j] * np.sin(np.pi * (t - ev_start[j]) / (ev_end[j] - ev_start[j]))
                        amm += 1.2 * a
                        turb += 35.0 * a
                        cond += 250.0 * a
                        do -= 2.0 * a
                        nit += 0.8 * a
                out[row, 0] = np.round(temp * 100.0) / 100.0
                out[row, 1] = np.round(ph * 100.0) / 100.0
                out[row, 2] = np.round(max(do, 0.3) * 100.0) / 100.0
                out[row, 3] = np.round(max(turb, 0.1) * 10.0) / 10.0
                out[row, 4] = np.round(max(cond, 20.0))
                out[row, 5] = np.round(max(nit, 0.01) * 100.0) / 100.0
                out[row, 6] = np.round(max(amm, 0.001) * 1000.0) / 1000.0
                row += 1
