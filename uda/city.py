"""The synthetic city: road graph, zones, districts, sensors, transit and a river.

Everything is built from ``(seed, scale)`` with NumPy generators seeded by
``SeedSequence([seed, tag])`` so each part of the city has its own reproducible stream.
The model is documented in ``docs/datasets.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from uda.arrays import nearest
from uda.errors import UserError
from uda.kernels.rng import rng_for
from uda.scales import Scale

SPACING_M = 400.0
#: Road classes: lanes, free-flow speed (km/h), capacity per lane (veh/h).
ROAD_CLASSES = {
    "motorway": (3, 90.0, 1900.0),
    "arterial": (2, 50.0, 900.0),
    "local": (1, 30.0, 600.0),
}
CLASS_NAMES = ("motorway", "arterial", "local")
SENSOR_CLASS_WEIGHT = np.array([6.0, 3.0, 1.0])
METRO_SPEED_KMH = 35.0
DWELL_S = 30.0
TRANSFER_PENALTY_S = 180.0
ZONE_BLOCK = 3


@dataclass
class City:
    """All city tables (as Arrow tables) plus arrays the generators need."""

    scale: Scale
    seed: int
    tables: dict[str, pa.Table]
    # per-sensor model parameters used by the traffic generator
    sensor_capacity: np.ndarray
    sensor_free_speed: np.ndarray
    sensor_lanes: np.ndarray
    sensor_peak_vc: np.ndarray
    sensor_inbound: np.ndarray
    # transit
    station_tt: np.ndarray  # [S, S] seconds
    # water
    site_downstream: np.ndarray
    site_tt: np.ndarray


def build_city(scale: Scale, seed: int) -> City:
    """Build the city for ``scale`` and ``seed``."""
    n = scale.grid_side
    rng = rng_for(seed, "roads")
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    x = jj * SPACING_M + rng.uniform(-0.1, 0.1, n * n) * SPACING_M
    y = ii * SPACING_M + rng.uniform(-0.1, 0.1, n * n) * SPACING_M
    cx, cy = (n - 1) * SPACING_M / 2, (n - 1) * SPACING_M / 2
    half = (n - 1) * SPACING_M / 2

    # districts: Voronoi cells around seats (one at the centre, the rest on two rings)
    drng = rng_for(seed, "districts")
    k = scale.districts
    ang = drng.uniform(0, 2 * np.pi) + np.arange(k - 1) * 2 * np.pi / max(k - 1, 1)
    rad = np.where(np.arange(k - 1) % 2 == 0, 0.45, 0.8) * half
    seat_x = np.r_[cx, cx + rad * np.cos(ang)]
    seat_y = np.r_[cy, cy + rad * np.sin(ang)]
    node_district = nearest(x, y, seat_x, seat_y).astype(np.int16)

    # links: 4-neighbour grid, both directions; class from the hierarchy
    ring = max(1, n // 5)
    fr, to = [], []
    for di, dj in ((0, 1), (1, 0)):
        ok = (ii + di < n) & (jj + dj < n)
        a = (ii * n + jj)[ok]
        b = ((ii + di) * n + (jj + dj))[ok]
        fr += [a, b]
        to += [b, a]
    fr = np.concatenate(fr)
    to = np.concatenate(to)
    fi, fj, ti, tj = fr // n, fr % n, to // n, to % n
    along_row = fi == ti  # horizontal link: runs along row fi
    line_idx = np.where(along_row, fi, fj)
    span_lo = np.where(along_row, np.minimum(fj, tj), np.minimum(fi, ti))
    on_ring_line = (line_idx == ring) | (line_idx == n - 1 - ring)
    within_ring = (span_lo >= ring) & (span_lo < n - 1 - ring)
    motorway = on_ring_line & within_ring
    arterial = ~motorway & ((line_idx % 4 == 0) | (line_idx == n // 2))
    cls = np.where(motorway, 0, np.where(arterial, 1, 2)).astype(np.int8)
    lanes = np.array([ROAD_CLASSES[c][0] for c in CLASS_NAMES], np.int8)[cls]
    ffs = np.array([ROAD_CLASSES[c][1] for c in CLASS_NAMES], np.float32)[cls]
    cap = np.array([ROAD_CLASSES[c][2] for c in CLASS_NAMES], np.float32)[cls] * lanes
    length = np.hypot(x[to] - x[fr], y[to] - y[fr]).astype(np.float32)
    order = np.lexsort((to, fr))
    fr, to, cls, lanes, ffs, cap, length = (a[order] for a in (fr, to, cls, lanes, ffs, cap, length))
    n_links = fr.size

    # zones: blocks of ZONE_BLOCK x ZONE_BLOCK nodes; population and jobs from a dense
    # centre plus sub-centres, with log-normal noise
    zrng = rng_for(seed, "zones")
    zb = max(4, n // ZONE_BLOCK)
    zid_of_node = (ii * zb // n) * zb + (jj * zb // n)
    n_zones = zb * zb
    zx = np.bincount(zid_of_node, x, n_zones) / np.bincount(zid_of_node, None, n_zones)
    zy = np.bincount(zid_of_node, y, n_zones) / np.bincount(zid_of_node, None, n_zones)
    sub_ang = zrng.uniform(0, 2 * np.pi, 3)
    sub_r = zrng.uniform(0.45, 0.7, 3) * half
    subx, suby = cx + sub_r * np.cos(sub_ang), cy + sub_r * np.sin(sub_ang)
    r0 = np.hypot(zx - cx, zy - cy)
    rs = np.min(np.hypot(zx[:, None] - subx, zy[:, None] - suby), axis=1)
    pop_density = 1.0 * np.exp(-r0 / (0.45 * half)) + 0.5 * np.exp(-rs / (0.15 * half)) + 0.1
    job_density = 1.0 * np.exp(-r0 / (0.2 * half)) + 0.6 * np.exp(-rs / (0.08 * half)) + 0.03
    population = np.round(9000 * pop_density * zrng.lognormal(0, 0.25, n_zones)).astype(np.int32)
    jobs = np.round(7000 * job_density * zrng.lognormal(0, 0.35, n_zones)).astype(np.int32)
    centroid = nearest(zx, zy, x, y).astype(np.int32)

    # sensors on a subset of links, favouring the main roads
    srng = rng_for(seed, "sensors")
    if scale.sensors > n_links:
        msg = f"{scale.sensors} sensors exceed the {n_links} links of the city; use fewer sensors"
        raise UserError(msg)
    w = SENSOR_CLASS_WEIGHT[cls]
    sensor_link = np.sort(srng.choice(n_links, size=scale.sensors, replace=False, p=w / w.sum())).astype(np.int32)
    mx = (x[fr[sensor_link]] + x[to[sensor_link]]) / 2
    my = (y[fr[sensor_link]] + y[to[sensor_link]]) / 2
    r_mid = np.hypot(mx - cx, my - cy) / half
    # inbound: the link points towards the centre (1) or away from it (0)
    dx, dy = x[to[sensor_link]] - x[fr[sensor_link]], y[to[sensor_link]] - y[fr[sensor_link]]
    cosang = -(dx * (mx - cx) + dy * (my - cy)) / (np.hypot(dx, dy) * np.hypot(mx - cx, my - cy) + 1e-9)
    inbound = (0.5 + 0.5 * cosang).astype(np.float32)
    peak_vc = np.clip((0.6 + 0.6 * np.exp(-r_mid / 0.5)) * srng.lognormal(0, 0.2, scale.sensors), 0.25, 1.6).astype(np.float32)

    # transit: radial lines through the centre, stations snapped to street nodes
    stations, lines_tab, transit_links, station_tt = _transit(scale, seed, x, y, cx, cy, half, n)
    station_node = stations["node_id"]

    # river network: a main stem crossing the city, tributaries joining it
    water_tab, discharges, site_down, site_tt = _river(scale, seed, cx, cy, half, seat_x, seat_y)

    tables = {
        "nodes": pa.table({
            "node_id": pa.array(np.arange(n * n, dtype=np.int32)),
            "x": pa.array(x), "y": pa.array(y),
            "district_id": pa.array(node_district),
        }),
        "links": pa.table({
            "link_id": pa.array(np.arange(n_links, dtype=np.int32)),
            "from_node": pa.array(fr.astype(np.int32)),
            "to_node": pa.array(to.astype(np.int32)),
            "length_m": pa.array(length),
            "lanes": pa.array(lanes),
            "capacity_vph": pa.array(cap.astype(np.float32)),
            "free_speed_kmh": pa.array(ffs),
            "road_class": pa.array(np.array(CLASS_NAMES)[cls].tolist(), pa.string()),
            "district_id": pa.array(node_district[fr]),
        }),
        "zones": pa.table({
            "zone_id": pa.array(np.arange(n_zones, dtype=np.int32)),
            "centroid_node": pa.array(centroid),
            "x": pa.array(zx), "y": pa.array(zy),
            "population": pa.array(population), "jobs": pa.array(jobs),
            "district_id": pa.array(node_district[centroid]),
        }),
        "districts": pa.table({
            "district_id": pa.array(np.arange(k, dtype=np.int16)),
            "name": pa.array([f"District {i + 1:02d}" for i in range(k)]),
            "x": pa.array(seat_x), "y": pa.array(seat_y),
        }),
        "sensors": pa.table({
            "sensor_id": pa.array(np.arange(scale.sensors, dtype=np.int32)),
            "link_id": pa.array(sensor_link),
            "district_id": pa.array(node_district[fr[sensor_link]]),
            "peak_vc": pa.array(peak_vc),
            "inbound": pa.array(inbound),
        }),
        "stations": pa.table({
            "station_id": pa.array(np.arange(station_node.size, dtype=np.int32)),
            "node_id": pa.array(station_node.astype(np.int32)),
            "x": pa.array(x[station_node]), "y": pa.array(y[station_node]),
            "district_id": pa.array(node_district[station_node]),
            "name": pa.array([f"Station {i + 1:03d}" for i in range(station_node.size)]),
        }),
        "lines": lines_tab,
        "transit_links": transit_links,
        "station_travel_times": _tt_table(station_tt),
        "water_sites": water_tab,
        "discharges": discharges,
    }
    return City(
        scale=scale, seed=seed, tables=tables,
        sensor_capacity=cap[sensor_link].astype(np.float64),
        sensor_free_speed=ffs[sensor_link].astype(np.float64),
        sensor_lanes=lanes[sensor_link].astype(np.float64),
        sensor_peak_vc=peak_vc.astype(np.float64),
        sensor_inbound=inbound.astype(np.float64),
        station_tt=station_tt, site_downstream=site_down, site_tt=site_tt,
    )


def _transit(scale: Scale, seed: int, x, y, cx, cy, half, n):
    """Radial lines through the centre; stations at street nodes; all-pairs travel times."""
    rng = rng_for(seed, "transit")
    n_lines = scale.lines
    length_per_line = 2 * half * 0.9
    spacing = max(SPACING_M, n_lines * length_per_line / max(scale.stations - 1, 1))
    theta0 = rng.uniform(0, np.pi / n_lines)
    node_station: dict[int, int] = {}
    seqs: list[list[int]] = []
    for li in range(n_lines):
        th = theta0 + np.pi * li / n_lines
        m = max(2, int(round(length_per_line / spacing)) + 1)
        t = np.linspace(-0.9 * half, 0.9 * half, m)
        if m % 2 == 0:  # make sure every line passes the centre (transfer hub)
            t = np.sort(np.r_[t, 0.0])
        px, py = cx + t * np.cos(th), cy + t * np.sin(th)
        nodes = nearest(px, py, x, y)
        seq = []
        for nd in nodes:
            nd = int(nd)
            if seq and node_station.get(nd) == seq[-1]:
                continue
            if nd not in node_station:
                node_station[nd] = len(node_station)
            seq.append(node_station[nd])
        seqs.append(seq)
    station_node = np.array(sorted(node_station, key=node_station.get), dtype=np.int64)
    n_st = station_node.size
    line_ids, seq_no, st_ids = [], [], []
    a_st, b_st, l_st, tt = [], [], [], []
    for li, seq in enumerate(seqs):
        for k_, s in enumerate(seq):
            line_ids.append(li)
            seq_no.append(k_)
            st_ids.append(s)
        for s0, s1 in zip(seq[:-1], seq[1:], strict=True):
            d = np.hypot(x[station_node[s1]] - x[station_node[s0]], y[station_node[s1]] - y[station_node[s0]])
            t_s = d / (METRO_SPEED_KMH / 3.6) + DWELL_S
            a_st += [s0, s1]
            b_st += [s1, s0]
            l_st += [li, li]
            tt += [t_s, t_s]
    lines_tab = pa.table({
        "line_id": pa.array(np.array(line_ids, np.int16)),
        "name": pa.array([f"Line {i + 1}" for i in line_ids]),
        "seq": pa.array(np.array(seq_no, np.int16)),
        "station_id": pa.array(np.array(st_ids, np.int32)),
    })
    transit_links = pa.table({
        "from_station": pa.array(np.array(a_st, np.int32)),
        "to_station": pa.array(np.array(b_st, np.int32)),
        "line_id": pa.array(np.array(l_st, np.int16)),
        "travel_time_s": pa.array(np.array(tt, np.float32)),
    })
    # (station, line) nodes; riding edges along lines, transfer edges inside a station
    pairs = sorted({(s, li) for li, seq in enumerate(seqs) for s in seq})
    idx = {p: i for i, p in enumerate(pairs)}
    m = len(pairs)
    dist = np.full((m, m), np.inf)
    np.fill_diagonal(dist, 0.0)
    for a, b, li, t_s in zip(a_st, b_st, l_st, tt, strict=True):
        dist[idx[(a, li)], idx[(b, li)]] = t_s
    by_station: dict[int, list[int]] = {}
    for (s, _li), i in idx.items():
        by_station.setdefault(s, []).append(i)
    for members in by_station.values():
        for i in members:
            for j in members:
                if i != j:
                    dist[i, j] = TRANSFER_PENALTY_S
    _floyd_warshall(dist)
    station_tt = np.full((n_st, n_st), np.inf)
    for s, members in by_station.items():
        for s2, members2 in by_station.items():
            station_tt[s, s2] = dist[np.ix_(members, members2)].min()
    return {"node_id": station_node}, lines_tab, transit_links, station_tt


@njit(cache=True)
def _floyd_warshall(d: np.ndarray) -> None:
    """All-pairs shortest paths in place."""
    n = d.shape[0]
    for k in range(n):
        for i in range(n):
            dik = d[i, k]
            if dik == np.inf:
                continue
            for j in range(n):
                v = dik + d[k, j]
                if v < d[i, j]:
                    d[i, j] = v


def _tt_table(tt: np.ndarray) -> pa.Table:
    s = tt.shape[0]
    o, d = np.divmod(np.arange(s * s), s)
    return pa.table({
        "origin": pa.array(o.astype(np.int32)),
        "dest": pa.array(d.astype(np.int32)),
        "travel_time_s": pa.array(tt.ravel().astype(np.float32)),
    })


def _river(scale: Scale, seed: int, cx, cy, half, seat_x, seat_y):
    """A main stem flowing west to east with tributaries from the north and south."""
    rng = rng_for(seed, "river")
    n_sites = scale.water_sites
    n_trib = min(max(1, n_sites // 6), 8)
    n_main = max(2, n_sites - n_trib * max(1, (n_sites // 2) // n_trib))
    per_trib = [(n_sites - n_main) // n_trib + (1 if t < (n_sites - n_main) % n_trib else 0) for t in range(n_trib)]
    xs, ys, down, dist = [], [], [], []
    # main stem: sites 0..n_main-1 from upstream (west) to the outlet (east)
    t = np.linspace(-1.1 * half, 1.1 * half, n_main)
    amp = 0.25 * half
    for k_ in range(n_main):
        xs.append(cx + t[k_])
        ys.append(cy + amp * np.sin(2.2 * t[k_] / half + rng.uniform(-0.05, 0.05)))
        down.append(k_ + 1 if k_ < n_main - 1 else -1)
    sid = n_main
    for tr, m in enumerate(per_trib):
        if m == 0:
            continue
        join = int(rng.integers(1, n_main - 1)) if n_main > 2 else n_main - 1
        side = 1 if tr % 2 == 0 else -1
        jx, jy = xs[join], ys[join]
        for k_ in range(m):
            frac = (m - k_) / m  # upstream first
            xs.append(jx - 0.2 * half * frac + rng.uniform(-0.05, 0.05) * half)
            ys.append(jy + side * 0.9 * half * frac)
            down.append(sid + 1 if k_ < m - 1 else join)
            sid += 1
    xs, ys, down = np.array(xs), np.array(ys), np.array(down, np.int64)
    dist = np.where(down >= 0, np.hypot(xs[np.maximum(down, 0)] - xs, ys[np.maximum(down, 0)] - ys) * 1.25, 0.0)
    velocity = rng.uniform(0.25, 0.6, n_sites)  # m/s
    tt = np.where(down >= 0, dist / velocity, 0.0)
    district = nearest(xs, ys, seat_x, seat_y).astype(np.int16)
    sites = pa.table({
        "site_id": pa.array(np.arange(n_sites, dtype=np.int32)),
        "x": pa.array(xs), "y": pa.array(ys),
        "district_id": pa.array(district),
        "downstream_site_id": pa.array(down.astype(np.int32)),
        "travel_time_s": pa.array(tt.astype(np.float32)),
        "distance_m": pa.array(dist.astype(np.float32)),
    })
    # an outfall on most reaches (and always at least one)
    has = np.flatnonzero((down >= 0) & (rng.uniform(size=n_sites) < 0.6))
    if has.size == 0:
        has = np.flatnonzero(down >= 0)[:1]
    discharges = pa.table({
        "discharge_id": pa.array(np.arange(has.size, dtype=np.int32)),
        "upstream_site_id": pa.array(has.astype(np.int32)),
        "downstream_site_id": pa.array(down[has].astype(np.int32)),
        "position": pa.array(rng.uniform(0.2, 0.8, has.size).astype(np.float32)),
    })
    return sites, discharges, down, tt
