"""Water-quality series per monitoring site and 15-minute interval, calibrated on real data.

Per site: river discharge follows rain (runoff with a 6 h time constant) and drives the
flow-dependent parameters (turbidity rises with discharge, conductivity and disinfectant
residual dilute, nitrate is flushed); temperature, dissolved oxygen and pH follow
season and day (photosynthesis raises DO and pH in the afternoon); DO follows its
temperature-dependent saturation; chlorine residual steps when the upstream dose is
adjusted; redox potential follows pH and residual chlorine. On top of that:

* quality events (``truth/pollution_events`` and ``truth/event_arrivals``, column
  ``event_type``): ``plume`` — pollution released at an outfall, travelling downstream
  and attenuating; ``short_event`` — tens of minutes at one site, a few parameters moving
  by a few noise SDs (shaped after the labelled events of the GECCO 2017 drinking-water
  data: 11–159 min, median 22);
* operations, not quality events: ``truth/dosing_changes`` (step changes of residual
  chlorine when the dose is adjusted);
* sensor faults, not quality events: ``truth/sensor_faults`` (``drift``, ``stuck``,
  ``spike`` of one parameter's probe).

Every rate and size is documented, with the real statistic it is calibrated to, in
``docs/datasets.md`` (``bench/water_calibration.py`` measures both sides).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.contract import WATER_ALL_PARAMETERS, WATER_INTERVAL_S
from uda.kernels.rng import normal_pair, rng_for, subkey

SLOTS = 86400 // WATER_INTERVAL_S
#: Column indices of the parameters in :data:`uda.contract.WATER_ALL_PARAMETERS` order.
P_TEMP, P_PH, P_DO, P_TURB, P_COND, P_NIT, P_AMM, P_CL, P_ORP, P_Q = range(10)

#: Event types in the truth events tables; both are water-quality events.
EVENT_TYPES = ("plume", "short_event")
#: Sensor fault types in ``truth/sensor_faults`` (codes 0, 1, 2 in the kernel).
FAULT_TYPES = ("drift", "stuck", "spike")

# ---- plumes (pollution at outfalls, travelling downstream)
EVENT_RATE_PER_DISCHARGE_DAY = 0.015
PLUME_HOURS = (1.0, 4.0)
PLUME_HALF_LIFE_S = 6 * 3600.0
PLUME_SPREAD = 0.15  # plume duration grows by this fraction of the travel time
MIN_PEAK_FACTOR = 0.1

# ---- short events (GECCO 2017: 70 events in 85 days at one station, 11-159 min, median 22)
SHORT_RATE_PER_SITE_DAY = 0.82
SHORT_CORE_MIN = (21.0, 23.0, 0.75)   # most last 21-23 min (share 0.75) ...
SHORT_FAST_MIN = (11.0, 15.0, 0.15)   # ... some 11-15 min (share 0.15) ...
SHORT_TAIL_MIN = (25.0, 160.0)        # ... the rest log-uniform 25-160 min
#: Probability that a short event moves each parameter (GECCO: redox most often, then
#: conductivity, pH, turbidity and disinfectant); at least one always moves.
SHORT_PARAM_PROB = {P_ORP: 0.7, P_COND: 0.4, P_PH: 0.35, P_TURB: 0.3, P_CL: 0.3, P_DO: 0.2, P_TEMP: 0.05}
SHORT_SHIFT_SD = (2.0, 6.0)           # shift per moved parameter, in its noise SDs

# ---- operations and sensor faults
DOSING_RATE_PER_SITE_DAY = 0.1
DOSING_SIGMA = 0.2                    # log of the dose factor per change
#: Spike faults per site and day, by parameter (turbidity probes spike most: bubbles, debris).
SPIKE_RATE_PER_SITE_DAY = {P_TURB: 1.2, P_COND: 0.15, P_TEMP: 0.05, P_PH: 0.05, P_NIT: 0.05, P_AMM: 0.05,
                           P_CL: 0.05, P_ORP: 0.05}
SPIKE_SD = (8.0, 20.0)               # in innovation SDs (the 15-minute noise step)
STUCK_RATE_PER_SITE_DAY = 0.03
STUCK_SLOTS = (4, 192)                # 1 h to 2 days, log-uniform
DRIFT_RATE_PER_SITE_DAY = 0.01
DRIFT_DAYS = (2.0, 10.0)
DRIFT_SD = (3.0, 8.0)                 # offset reached at the end (then recalibrated)
#: Probes that faults hit (DO is left out: the feeds' own drift defect lives there).
FAULT_PARAMS = (P_TEMP, P_PH, P_TURB, P_COND, P_NIT, P_AMM, P_CL, P_ORP)
DRIFT_PARAMS = (P_PH, P_TURB, P_COND, P_CL, P_ORP)

#: Stationary SD of each parameter's AR(1) noise (log scale for turbidity, ammonia and
#: discharge) and its lag-1 coefficient per 15 minutes.
NOISE_SD = np.array([0.3, 0.05, 0.12, 0.5, 6.0, 0.05, 0.25, 0.008, 6.0, 0.05])
NOISE_RHO = np.array([0.97, 0.75, 0.95, 0.998, 0.99, 0.995, 0.95, 0.7, 0.8, 0.995])
#: Steps per unit of each column as published (100: 0.01 resolution) and its physical floor.
STEPS = np.array([100.0, 100.0, 100.0, 10.0, 1.0, 100.0, 1000.0, 1000.0, 1.0, 1000.0])
FLOOR = np.array([0.0, 0.0, 0.3, 0.1, 20.0, 0.01, 0.001, 0.0, -500.0, 0.001])

#: Columns of the per-site parameter matrix.
SITE_COLUMNS = ("t_off", "ph_off", "cond_base", "turb_base", "nit_base", "amm_base", "q_base", "cl_base",
                "orp_base", "t_amp", "do_amp", "ph_amp")


def site_parameters(rng: np.random.Generator, n_sites: int, upstream_sites: np.ndarray) -> np.ndarray:
    """Per-site constants, ``(n_sites, len(SITE_COLUMNS))``.

    Discharge grows with the number of sites upstream; the diurnal amplitudes vary by site
    (shading, depth, plant growth).
    """
    cols = {
        "t_off": rng.normal(0, 1.5, n_sites), "ph_off": rng.normal(0, 0.15, n_sites),
        "cond_base": rng.uniform(300, 700, n_sites), "turb_base": rng.uniform(2, 8, n_sites),
        "nit_base": rng.uniform(0.8, 3.0, n_sites), "amm_base": rng.uniform(0.02, 0.08, n_sites),
        "q_base": 0.6 * (1.0 + upstream_sites) * rng.lognormal(0.0, 0.3, n_sites),
        "cl_base": rng.uniform(0.05, 0.2, n_sites), "orp_base": rng.uniform(250, 400, n_sites),
        "t_amp": rng.uniform(0.9, 1.8, n_sites), "do_amp": rng.uniform(0.03, 0.08, n_sites),
        "ph_amp": rng.uniform(0.03, 0.12, n_sites),
    }
    return np.column_stack([cols[c] for c in SITE_COLUMNS]).astype(np.float64)


def upstream_counts(downstream: np.ndarray) -> np.ndarray:
    """Number of sites upstream of each site (following ``downstream`` links)."""
    n = downstream.size
    out = np.zeros(n, np.int64)
    for s in range(n):
        d = int(downstream[s])
        hops = 0
        while d >= 0 and hops < n:
            out[d] += 1
            d = int(downstream[d])
            hops += 1
    return out


def noise_sd_abs(site: np.ndarray) -> np.ndarray:
    """Noise SD of every parameter in its own unit at one site (``site`` is a row of the site matrix)."""
    sd = NOISE_SD.copy()
    sd[P_TURB] *= site[SITE_COLUMNS.index("turb_base")]
    sd[P_AMM] *= site[SITE_COLUMNS.index("amm_base")]
    sd[P_Q] *= site[SITE_COLUMNS.index("q_base")]
    return sd


def pollution_events(rng: np.random.Generator, n_days: int, discharges: dict[str, np.ndarray],
                     downstream: np.ndarray, reach_tt: np.ndarray) -> tuple[dict, dict]:
    """Plumes at outfalls and their arrivals at every downstream site (times in seconds)."""
    n_dis = discharges["discharge_id"].size
    counts = rng.poisson(EVENT_RATE_PER_DISCHARGE_DAY * n_days, n_dis)
    dis = np.repeat(np.arange(n_dis), counts)
    m = dis.size
    start = rng.uniform(0, n_days * 86400.0 - 6 * 3600.0, m)
    dur = rng.uniform(*PLUME_HOURS, m) * 3600.0
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
    arrivals = {"event_id": np.asarray(arr["event_id"], np.int64), "site_id": np.asarray(arr["site_id"], np.int64),
                "start_s": np.asarray(arr["start_s"], np.float64), "end_s": np.asarray(arr["end_s"], np.float64),
                "peak_factor": np.asarray(arr["peak_factor"], np.float64)}
    return events, arrivals


def short_durations_min(rng: np.random.Generator, m: int) -> np.ndarray:
    """Durations (minutes) of ``m`` short events: a 21-23 min core, a fast group, a long tail."""
    u = rng.uniform(size=m)
    core = rng.uniform(SHORT_CORE_MIN[0], SHORT_CORE_MIN[1], m)
    fast = rng.uniform(SHORT_FAST_MIN[0], SHORT_FAST_MIN[1], m)
    tail = np.exp(rng.uniform(np.log(SHORT_TAIL_MIN[0]), np.log(SHORT_TAIL_MIN[1]), m))
    return np.where(u < SHORT_CORE_MIN[2], core, np.where(u < SHORT_CORE_MIN[2] + SHORT_FAST_MIN[2], fast, tail))


def short_events(rng: np.random.Generator, n_days: int, sites: np.ndarray) -> dict[str, np.ndarray]:
    """Short multivariate events at single sites.

    Returns ``site_id``, ``start_s``, ``end_s``, ``shift_sd`` (``(m, 10)``: signed shift of
    each parameter in its noise SDs, 0 where it does not move) and ``magnitude`` (the
    largest absolute shift in SDs), sorted by site and start.
    """
    n_sites = sites.shape[0]
    counts = rng.poisson(SHORT_RATE_PER_SITE_DAY * n_days, n_sites)
    site = np.repeat(np.arange(n_sites), counts)
    m = site.size
    dur = short_durations_min(rng, m) * 60.0
    start = rng.uniform(0, n_days * 86400.0 - dur)
    shift = np.zeros((m, len(WATER_ALL_PARAMETERS)))
    for p, prob in SHORT_PARAM_PROB.items():
        moves = rng.uniform(size=m) < prob
        size = rng.uniform(*SHORT_SHIFT_SD, m) * np.where(rng.uniform(size=m) < 0.5, -1.0, 1.0)
        shift[:, p] = np.where(moves, size, 0.0)
    none = ~(shift != 0).any(axis=1)
    shift[none, P_ORP] = rng.uniform(*SHORT_SHIFT_SD, int(none.sum())) * -1.0
    order = np.lexsort((start, site))
    site, start, dur, shift = site[order], start[order], dur[order], shift[order]
    return {"site_id": site.astype(np.int64), "start_s": start, "end_s": start + dur, "shift_sd": shift,
            "magnitude": np.abs(shift).max(axis=1) if m else np.zeros(0)}


def dosing_changes(rng: np.random.Generator, n_days: int, n_sites: int) -> dict[str, np.ndarray]:
    """Step changes of the chlorine dose reaching each site (``site_id``, ``time_s``, ``factor``)."""
    counts = rng.poisson(DOSING_RATE_PER_SITE_DAY * n_days, n_sites)
    site = np.repeat(np.arange(n_sites), counts)
    t = rng.uniform(0, n_days * 86400.0, site.size)
    factor = np.exp(rng.normal(0.0, DOSING_SIGMA, site.size))
    order = np.lexsort((t, site))
    return {"site_id": site[order].astype(np.int64), "time_s": t[order], "factor": factor[order]}


def sensor_faults(rng: np.random.Generator, n_days: int, sites: np.ndarray) -> dict[str, np.ndarray]:
    """Probe faults: drift (linear offset, then recalibration), stuck (frozen reading), spike (one row).

    Returns ``site_id``, ``fault_type`` (index into :data:`FAULT_TYPES`), ``param``,
    ``start_s``, ``end_s`` and ``magnitude`` (drift: offset reached; spike: offset; stuck:
    0), in the parameter's own unit, sorted by site and start.
    """
    n_sites = sites.shape[0]
    span = n_days * 86400.0
    parts = []
    kinds = [(0, DRIFT_RATE_PER_SITE_DAY, -1), (1, STUCK_RATE_PER_SITE_DAY, -1)]
    kinds += [(2, rate, p) for p, rate in SPIKE_RATE_PER_SITE_DAY.items()]
    for code, rate, fixed in kinds:
        counts = rng.poisson(rate * n_days, n_sites)
        site = np.repeat(np.arange(n_sites), counts)
        m = site.size
        choices = np.array(DRIFT_PARAMS if code == 0 else FAULT_PARAMS if fixed < 0 else (fixed,))
        param = choices[rng.integers(0, choices.size, m)]
        if code == 0:
            dur = rng.uniform(*DRIFT_DAYS, m) * 86400.0
            size = rng.uniform(*DRIFT_SD, m)
        elif code == 1:
            dur = np.exp(rng.uniform(np.log(STUCK_SLOTS[0]), np.log(STUCK_SLOTS[1]), m)) * WATER_INTERVAL_S
            size = np.zeros(m)
        else:
            dur = np.full(m, float(WATER_INTERVAL_S))
            size = rng.uniform(*SPIKE_SD, m) * np.sqrt(1.0 - NOISE_RHO[param] ** 2)
        sign = np.where(rng.uniform(size=m) < 0.5, -1.0, 1.0)
        if code == 0:  # fouled turbidity probes read high, fouled conductivity cells read low
            sign = np.where(param == P_TURB, 1.0, np.where(param == P_COND, -1.0, sign))
        start = rng.uniform(0, span - np.minimum(dur, span * 0.5), m)
        sd = np.array([noise_sd_abs(sites[s])[p] for s, p in zip(site, param, strict=True)]) if m else np.zeros(0)
        parts.append((site, np.full(m, code), param, start, start + dur, sign * size * sd))
    site, code, param, start, end, mag = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.lexsort((start, site))
    return {"site_id": site[order].astype(np.int64), "fault_type": code[order].astype(np.int64),
            "param": param[order].astype(np.int64), "start_s": start[order], "end_s": np.minimum(end[order], span),
            "magnitude": mag[order]}


@njit(cache=True, nogil=True)
def _first_row(t):
    """First row index at or after time ``t`` (in slots)."""
    return int(np.ceil(t))


@njit(cache=True, nogil=True)
def water_kernel(key, site_ids, sp, noise_sd, noise_rho, steps, floor, start_doy, rain_mm, temp_anom,
                 pl_off, pl_start, pl_end, pl_amp,
                 se_off, se_start, se_end, se_shift,
                 dc_off, dc_time, dc_factor,
                 fa_off, fa_type, fa_param, fa_start, fa_end, fa_mag,
                 work, out):
    """Fill ``out[10, rows]`` (float32, rows site-major, columns as ``WATER_ALL_PARAMETERS``).

    ``sp`` holds the site constants (``SITE_COLUMNS``) of the chunk's sites; every other
    ``*_off`` array is a CSR offset over the chunk's sites into the event arrays, whose
    times are in slots from the dataset start. ``se_shift`` is in each parameter's own
    unit; ``work`` is a ``(10, rows per site)`` float64 scratch array.
    """
    n_days = rain_mm.shape[0]
    per_site = n_days * 96
    n_par = 10
    decay = np.exp(-0.25 / 6.0)
    decay_f = np.exp(-0.25 / 1.5)
    two_pi = 2.0 * np.pi
    # diurnal shapes per slot: temperature and pH peak at 15:00, photosynthetic DO at 14:00,
    # discharge dips in the afternoon (evapotranspiration)
    d_temp = np.empty(96)
    d_do = np.empty(96)
    for s in range(96):
        h = (s + 0.5) * 0.25
        d_temp[s] = np.sin(two_pi * (h - 9.0) / 24.0)
        d_do[s] = np.sin(two_pi * (h - 8.0) / 24.0)
    innov = np.sqrt(1.0 - noise_rho * noise_rho)
    e = np.zeros(n_par)
    for si in range(site_ids.shape[0]):
        k = subkey(key, np.uint64(site_ids[si]))
        t_off, ph_off, cond_b, turb_b, nit_b, amm_b, q_b, cl_b, orp_b, t_amp, do_amp, ph_amp = (
            sp[si, 0], sp[si, 1], sp[si, 2], sp[si, 3], sp[si, 4], sp[si, 5], sp[si, 6], sp[si, 7], sp[si, 8],
            sp[si, 9], sp[si, 10], sp[si, 11])
        runoff = 0.0
        flush = 0.0
        dose = 1.0
        dp = dc_off[si]
        for d in range(n_days):
            doy = start_doy + d
            season = np.sin(two_pi * (doy - 115.0) / 365.0)
            season_n = 0.5 * np.sin(two_pi * (doy - 30.0) / 365.0)
            rain = rain_mm[d] / 96.0
            for s in range(96):
                t = d * 96 + s
                c = np.uint64(t * 8)
                for j in range(0, n_par, 2):
                    z0, z1 = normal_pair(k, c + np.uint64(j // 2))
                    if t == 0:
                        e[j] = z0
                        e[j + 1] = z1
                    else:
                        e[j] = noise_rho[j] * e[j] + innov[j] * z0
                        e[j + 1] = noise_rho[j + 1] * e[j + 1] + innov[j + 1] * z1
                while dp < dc_off[si + 1] and dc_time[dp] <= t:
                    dose *= dc_factor[dp]
                    dp += 1
                runoff = runoff * decay + rain
                flush = flush * decay_f + rain
                lq = np.log(1.0 + 0.8 * runoff) - 0.03 * d_temp[s] + noise_sd[9] * e[9]
                temp = 11.0 + 8.0 * season + t_amp * d_temp[s] + temp_anom[d] + t_off + noise_sd[0] * e[0]
                sat = 14.652 - 0.41022 * temp + 0.007991 * temp * temp - 0.000077774 * temp * temp * temp
                do = sat * (0.92 + do_amp * d_do[s]) + noise_sd[2] * e[2]
                ph = 7.5 + ph_off + ph_amp * d_do[s] + noise_sd[1] * e[1]
                cl = cl_b * dose * np.exp(-0.3 * lq - 0.02 * (temp - 10.0)) + noise_sd[7] * e[7]
                work[0, t] = temp
                work[1, t] = ph
                work[2, t] = do
                work[3, t] = turb_b * np.exp(0.35 * np.log(1.0 + 2.0 * flush) + noise_sd[3] * e[3])
                work[4, t] = cond_b * np.exp(-0.15 * lq) + noise_sd[4] * e[4]
                work[5, t] = nit_b * np.exp(0.1 * lq) + season_n + noise_sd[5] * e[5]
                work[6, t] = amm_b * np.exp(noise_sd[6] * e[6])
                work[7, t] = cl
                work[8, t] = orp_b - 50.0 * (ph - 7.5) + 400.0 * cl + noise_sd[8] * e[8]
                work[9, t] = q_b * np.exp(lq)
        # quality events: plumes (a sine-shaped pulse) and short events (a step)
        for j in range(pl_off[si], pl_off[si + 1]):
            r0 = max(_first_row(pl_start[j]), 0)
            r1 = min(_first_row(pl_end[j]), per_site)
            for t in range(r0, r1):
                a = pl_amp[j] * np.sin(np.pi * (t - pl_start[j]) / (pl_end[j] - pl_start[j]))
                work[6, t] += 1.2 * a
                work[3, t] += 35.0 * a
                work[4, t] += 250.0 * a
                work[2, t] -= 2.0 * a
                work[5, t] += 0.8 * a
                work[7, t] -= min(0.6 * a, 0.9) * work[7, t]
                work[8, t] -= 60.0 * a
        for j in range(se_off[si], se_off[si + 1]):
            # a row stands for its 15-minute interval: shifted by the share the event covers
            r0 = max(int(np.floor(se_start[j])), 0)
            r1 = min(_first_row(se_end[j]), per_site)
            for t in range(r0, r1):
                cover = min(se_end[j], t + 1.0) - max(se_start[j], float(t))
                for p in range(n_par):
                    work[p, t] += cover * se_shift[j, p]
        # probe faults: drift and spikes offset the reading; stuck freezes it (after rounding)
        for j in range(fa_off[si], fa_off[si + 1]):
            if fa_type[j] == 1:
                continue
            p = fa_param[j]
            r0 = max(_first_row(fa_start[j]), 0)
            r1 = min(max(_first_row(fa_end[j]), r0 + 1), per_site)
            for t in range(r0, r1):
                if fa_type[j] == 0:
                    work[p, t] += fa_mag[j] * (t - fa_start[j]) / (fa_end[j] - fa_start[j])
                else:
                    work[p, t] += fa_mag[j]
        base = si * per_site
        for p in range(n_par):
            inv = steps[p]
            for t in range(per_site):
                out[p, base + t] = np.round(max(work[p, t], floor[p]) * inv) / inv
        for j in range(fa_off[si], fa_off[si + 1]):
            if fa_type[j] != 1:
                continue
            p = fa_param[j]
            r0 = max(_first_row(fa_start[j]), 0)
            r1 = min(_first_row(fa_end[j]), per_site)
            for t in range(r0 + 1, r1):
                out[p, base + t] = out[p, base + r0]


def _csr(site: np.ndarray, n_sites: int) -> np.ndarray:
    return np.searchsorted(site.astype(np.int64), np.arange(n_sites + 1)).astype(np.int64)


class WaterPlan:
    """Everything the water chunks share: site constants, events, dosing changes, faults.

    Built once per dataset from NumPy generators keyed by the seed, so every chunk sees
    the same events whatever the split.
    """

    def __init__(self, city, seed: int, rain_mm: np.ndarray, temp_anom: np.ndarray, start_doy: float,
                 key: np.uint64):
        n_sites = city.tables["water_sites"].num_rows
        n_days = rain_mm.shape[0]
        self.n_sites, self.n_days, self.key, self.start_doy = n_sites, n_days, key, start_doy
        self.rain_mm = np.asarray(rain_mm, np.float64)
        self.temp_anom = np.asarray(temp_anom, np.float64)
        self.sites = site_parameters(rng_for(seed, "water-sites"), n_sites, upstream_counts(city.site_downstream))
        dis = {k: city.tables["discharges"][k].to_numpy() for k in city.tables["discharges"].column_names}
        self.events, self.arrivals = pollution_events(rng_for(seed, "pollution"), n_days, dis,
                                                      city.site_downstream, city.site_tt)
        a = self.arrivals
        order = np.lexsort((a["start_s"], a["site_id"]))
        amp = self.events["magnitude"][a["event_id"]].astype(np.float64) * a["peak_factor"]
        self.plumes = {"site_id": a["site_id"][order], "start_s": a["start_s"][order], "end_s": a["end_s"][order],
                       "amp": amp[order]}
        self.short = short_events(rng_for(seed, "water-short-events"), n_days, self.sites)
        sd = np.array([noise_sd_abs(s) for s in self.sites]) if n_sites else np.zeros((0, len(WATER_ALL_PARAMETERS)))
        self.short_shift = self.short["shift_sd"] * sd[self.short["site_id"]] if self.short["site_id"].size \
            else np.zeros((0, len(WATER_ALL_PARAMETERS)))
        self.dosing = dosing_changes(rng_for(seed, "water-dosing"), n_days, n_sites)
        self.faults = sensor_faults(rng_for(seed, "water-faults"), n_days, self.sites)
        self.off = {name: _csr(tab["site_id"], n_sites) for name, tab in
                    (("plumes", self.plumes), ("short", self.short), ("dosing", self.dosing), ("faults", self.faults))}

    def values(self, s0: int, s1: int) -> np.ndarray:
        """``(len(WATER_ALL_PARAMETERS), rows)`` float32 values of sites ``s0 .. s1-1``, site-major."""
        per_site = self.n_days * SLOTS
        out = np.empty((len(WATER_ALL_PARAMETERS), (s1 - s0) * per_site), np.float32)
        work = np.empty((len(WATER_ALL_PARAMETERS), per_site), np.float64)

        def part(name: str, tab: dict[str, np.ndarray], *cols: str) -> list[np.ndarray]:
            o = self.off[name]
            a, b = o[s0], o[s1]
            return [o[s0:s1 + 1] - a, *(tab[c][a:b] for c in cols)]

        slot = float(WATER_INTERVAL_S)
        pl = part("plumes", self.plumes, "start_s", "end_s", "amp")
        se = part("short", self.short, "start_s", "end_s")
        o = self.off["short"]
        shift = np.ascontiguousarray(self.short_shift[o[s0]:o[s1]])
        dc = part("dosing", self.dosing, "time_s", "factor")
        fa = part("faults", self.faults, "fault_type", "param", "start_s", "end_s", "magnitude")
        water_kernel(self.key, np.arange(s0, s1, dtype=np.int64), np.ascontiguousarray(self.sites[s0:s1]),
                     NOISE_SD, NOISE_RHO, STEPS, FLOOR, self.start_doy, self.rain_mm, self.temp_anom,
                     pl[0], pl[1] / slot, pl[2] / slot, pl[3],
                     se[0], se[1] / slot, se[2] / slot, shift,
                     dc[0], dc[1] / slot, dc[2],
                     fa[0], fa[1], fa[2], fa[3] / slot, fa[4] / slot, fa[5],
                     work, out)
        return out

    def truth(self) -> dict[str, dict[str, np.ndarray]]:
        """Truth tables as columns (times in seconds from the dataset start).

        ``pollution_events`` and ``event_arrivals`` hold plumes first, then short events
        (``discharge_id`` -1, ``peak_factor`` 1, ``magnitude`` the largest shift in noise
        SDs); both carry ``event_type``.
        """
        ev, ar, sh = self.events, self.arrivals, self.short
        n_pl, n_sh = ev["event_id"].size, sh["site_id"].size
        sh_id = np.arange(n_pl, n_pl + n_sh, dtype=np.int64)
        types = np.array(EVENT_TYPES, dtype=object)
        events = {"event_id": np.r_[ev["event_id"], sh_id].astype(np.int32),
                  "discharge_id": np.r_[ev["discharge_id"], np.full(n_sh, -1)].astype(np.int32),
                  "start_s": np.r_[ev["start_s"], sh["start_s"]], "end_s": np.r_[ev["end_s"], sh["end_s"]],
                  "magnitude": np.r_[ev["magnitude"], sh["magnitude"]].astype(np.float32),
                  "event_type": types[np.r_[np.zeros(n_pl, np.int64), np.ones(n_sh, np.int64)]]}
        n_ar = ar["site_id"].size
        arrivals = {"event_id": np.r_[ar["event_id"], sh_id].astype(np.int32),
                    "site_id": np.r_[ar["site_id"], sh["site_id"]].astype(np.int32),
                    "start_s": np.r_[ar["start_s"], sh["start_s"]], "end_s": np.r_[ar["end_s"], sh["end_s"]],
                    "peak_factor": np.r_[ar["peak_factor"], np.ones(n_sh)].astype(np.float32),
                    "event_type": types[np.r_[np.zeros(n_ar, np.int64), np.ones(n_sh, np.int64)]]}
        fa = self.faults
        names = np.array(WATER_ALL_PARAMETERS, dtype=object)
        faults = {"fault_id": np.arange(fa["site_id"].size, dtype=np.int32), "site_id": fa["site_id"].astype(np.int32),
                  "parameter": names[fa["param"]], "fault_type": np.array(FAULT_TYPES, dtype=object)[fa["fault_type"]],
                  "start_s": fa["start_s"], "end_s": fa["end_s"], "magnitude": fa["magnitude"].astype(np.float32)}
        dc = self.dosing
        dosing = {"change_id": np.arange(dc["site_id"].size, dtype=np.int32), "site_id": dc["site_id"].astype(np.int32),
                  "time_s": dc["time_s"], "factor": dc["factor"].astype(np.float32)}
        return {"pollution_events": events, "event_arrivals": arrivals, "sensor_faults": faults,
                "dosing_changes": dosing}
