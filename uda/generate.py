"""``uda generate``: build the city, generate its data in parallel chunks, write a dataset."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from uda import __version__
from uda.city import City, build_city, nearest, rng_for
from uda.errors import UserError
from uda.kernels.checksum import table_hash_sum
from uda.kernels.rng import stream_key
from uda.scales import TRAFFIC_INTERVAL_S, WATER_INTERVAL_S, Scale
from uda.store import PARQUET_OPTIONS, DatasetWriter, FilePart, write_part
from uda.synth import feeds, passenger, traffic, water
from uda.synth.weather import weather

DEFAULT_CHUNK_ROWS = 2_000_000
TS = pa.timestamp("ms")
GENERATOR_VERSION = 1
#: Whether :func:`generate` has moved the objects of the modules it loads into the
#: collector's permanent generation in this process (done once; see :func:`_freeze_loaded`).
_froze = False


def _freeze_loaded() -> None:
    """Keep the cyclic garbage collector off the objects that exist now, once per process.

    The first generation in a process imports Numba's typing and lowering registries,
    SciPy's BLAS check and pandas (through pyarrow): millions of long-lived objects that
    every later full collection, and the one at interpreter exit, walks again. That walk
    is most of the 0.2–0.4 s a ``uda generate`` process spends exiting. ``gc.freeze``
    leaves them alone; they stay alive and are still freed by reference counting.
    """
    global _froze
    if not _froze:
        _froze = True
        gc.freeze()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape generated data.

    Polars is named from its installed metadata: generating does not import it (0.2–0.5 s).
    """
    from importlib.metadata import PackageNotFoundError, version

    import numba

    try:
        pl_version = version("polars")
    except PackageNotFoundError:  # pragma: no cover - polars is a dependency
        pl_version = "not installed"
    return {"uda": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "pyarrow": pa.__version__, "polars": pl_version}


class _Plan:
    """Model inputs shared by all chunks (small: city tables, weather, incidents, events)."""

    def __init__(self, city: City, seed: int, *, defer: bool = False):
        """The traffic model inputs, and the passenger and water ones unless ``defer``.

        With ``defer`` the caller runs :meth:`prepare_passenger` and :meth:`prepare_water`
        itself (each draws from its own seeded streams, so the order does not matter), for
        example while traffic chunks are being generated.
        """
        sc = city.scale
        self.city = city
        self.seed = seed
        self.n_days = sc.days
        start = sc.start_date
        self.start_ms = (start - dt.date(1970, 1, 1)).days * 86_400_000
        self.weekday = np.array([(start + dt.timedelta(days=d)).weekday() for d in range(sc.days)], np.int64)
        self.start_doy = float(start.timetuple().tm_yday)
        self.weather = weather(rng_for(seed, "weather"), sc.days)
        self.incidents = traffic.incidents(rng_for(seed, "incidents"), sc.sensors, sc.days)
        self._traffic_state(city, seed)
        self.profiles = traffic.profiles()
        self.keys = {name: stream_key(seed, name) for name in ("traffic", "passenger", "water")}
        self._ts_cache: dict[tuple[int, int, int], np.ndarray] = {}
        if not defer:
            self.prepare_passenger()
            self.prepare_water()

    def prepare_passenger(self) -> None:
        """Cards, the station demand field and transit events (smart-card taps)."""
        city, seed, sc = self.city, self.seed, self.city.scale
        zones = city.tables["zones"]
        st = city.tables["stations"]
        near = nearest(zones["x"].to_numpy(), zones["y"].to_numpy(), st["x"].to_numpy(), st["y"].to_numpy())
        n_st = st.num_rows
        pop = np.bincount(near, zones["population"].to_numpy().astype(float), n_st) + 500.0
        jobs = np.bincount(near, zones["jobs"].to_numpy().astype(float), n_st) + 200.0
        self.cards = passenger.cards(rng_for(seed, "cards"), sc.cards, pop, jobs, city.station_tt)
        self.taps_field = passenger.station_field(stream_key(seed, "taps-field"), n_st, sc.days)
        self.transit_events = passenger.events(rng_for(seed, "transit-events"), sc.days, self.weekday, n_st, jobs)

    def prepare_water(self) -> None:
        """Water sites, quality events, dosing changes and probe faults."""
        city, seed = self.city, self.seed
        self.water_plan = water.WaterPlan(city, seed, self.weather["rain_mm"], self.weather["temp_anomaly_c"],
                                          self.start_doy, self.keys["water"])

    def _traffic_state(self, city: City, seed: int) -> None:
        """Road-class dynamics, district area fields, rain spells and incident spill-back."""
        sc = city.scale
        links = city.tables["links"]
        sensors = city.tables["sensors"]
        sensor_link = sensors["link_id"].to_numpy()
        cls = np.searchsorted(np.array(["arterial", "local", "motorway"]),
                              links["road_class"].to_numpy(zero_copy_only=False)[sensor_link])
        cls = np.array([1, 2, 0])[cls]  # alphabetical -> motorway 0, arterial 1, local 2
        self.dev_phi = traffic.DEV_PHI[cls]
        self.dev_sd = traffic.DEV_SD[cls]
        self.speed_sd = traffic.SPEED_SD[cls]
        self.area_w = traffic.AREA_WEIGHT[cls]
        fr, to = links["from_node"].to_numpy(), links["to_node"].to_numpy()
        nx, ny = city.tables["nodes"]["x"].to_numpy(), city.tables["nodes"]["y"].to_numpy()
        mx = (nx[fr[sensor_link]] + nx[to[sensor_link]]) / 2
        my = (ny[fr[sensor_link]] + ny[to[sensor_link]]) / 2
        dist = city.tables["districts"]
        district = sensors["district_id"].to_numpy().astype(np.int64)
        r = np.hypot(mx - dist["x"].to_numpy()[district], my - dist["y"].to_numpy()[district])
        lag = np.round(r / traffic.AREA_LAG_M).astype(np.int64)
        lead = int(lag.max(initial=0))
        self.area = traffic.area_field(stream_key(seed, "traffic-area"), sc.districts, sc.days * traffic.SLOTS, lead)
        self.area_row = district
        self.area_col0 = lead - lag
        self.rain = traffic.rain_spells(rng_for(seed, "rain-spells"), self.weather["rain_mm"])
        up = traffic.upstream_sensors(fr, to, links["capacity_vph"].to_numpy().astype(np.float64), sensor_link)
        inc = self.incidents
        s_ = inc["sensor_id"]
        load = traffic.expected_load(city.sensor_peak_vc[s_], city.sensor_inbound[s_],
                                     self.weekday[inc["start_slot"] // traffic.SLOTS], inc["start_slot"] % traffic.SLOTS)
        self.cuts = traffic.with_spillback(inc, up, city.sensor_capacity, load)
        self.cut_offsets = np.searchsorted(self.cuts["sensor_id"], np.arange(sc.sensors + 1)).astype(np.int64)

    def _timestamps(self, interval_s: int, per_unit: int, n_units: int) -> np.ndarray:
        """Epoch-ms timestamps of ``n_units`` series of ``per_unit`` slots each, read-only.

        Every chunk but the last has the same number of sensors (sites), so the column is
        built once and shared by their tables instead of being rebuilt per chunk.
        """
        key = (interval_s, per_unit, n_units)
        ts = self._ts_cache.get(key)
        if ts is None:
            ts = self.start_ms + np.tile(np.arange(per_unit, dtype=np.int64) * (interval_s * 1000), n_units)
            ts.flags.writeable = False
            self._ts_cache[key] = ts
        return ts

    # ---- chunk generators: each returns Arrow tables for its rows ----
    def traffic_chunk(self, s0: int, s1: int) -> pa.Table:
        c = self.city
        ids = np.arange(s0, s1, dtype=np.int32)
        slots = traffic.SLOTS
        n = (s1 - s0) * self.n_days * slots
        flow = np.empty(n, np.float32)
        speed = np.empty(n, np.float32)
        occ = np.empty(n, np.float32)
        inc = self.cuts
        o0, o1 = self.cut_offsets[s0], self.cut_offsets[s1]
        p = self.profiles
        traffic.traffic_kernel(
            self.keys["traffic"], ids, c.sensor_capacity[s0:s1], c.sensor_free_speed[s0:s1],
            c.sensor_lanes[s0:s1], c.sensor_peak_vc[s0:s1], c.sensor_inbound[s0:s1],
            self.dev_phi[s0:s1], self.dev_sd[s0:s1], self.speed_sd[s0:s1], self.area_w[s0:s1],
            self.area, self.area_row[s0:s1], self.area_col0[s0:s1],
            self.weekday, self.rain["capacity_factor"], self.rain["speed_factor"],
            self.cut_offsets[s0:s1 + 1] - o0, inc["start_slot"][o0:o1], inc["end_slot"][o0:o1],
            inc["capacity_factor"][o0:o1].astype(np.float64), inc["recovery_slots"][o0:o1],
            p["night"], p["day"], p["am"], p["pm"], p["weekend"], flow, speed, occ)
        per_sensor = self.n_days * slots
        ts = self._timestamps(TRAFFIC_INTERVAL_S, per_sensor, s1 - s0)
        return pa.table({
            "sensor_id": pa.array(np.repeat(ids, per_sensor)),
            "ts": pa.array(ts, TS),
            "flow": pa.array(flow), "speed": pa.array(speed), "occupancy": pa.array(occ),
        })

    def passenger_chunk(self, d0: int, d1: int) -> tuple[pa.Table, pa.Table]:
        cd = self.cards
        n_cards = cd["home"].size
        ev = self.transit_events
        fs = passenger.FIELD_SLOTS
        # one buffer per column for the whole chunk; each day's trips follow the previous
        # day's (a day holds at most 2 trips per card), so nothing is copied or reallocated
        buf = {k: np.empty((d1 - d0) * 2 * n_cards, t) for k, t in
               (("card", np.int64), ("o", np.int32), ("d", np.int32), ("tin", np.int64),
                ("tout", np.int64), ("tt", np.float64))}
        m = 0
        for d in range(d0, d1):
            e0, e1 = ev["offsets"][d], ev["offsets"][d + 1]
            day = {k: v[m:m + 2 * n_cards] for k, v in buf.items()}
            m += passenger.passenger_kernel(
                self.keys["passenger"], d, int(self.weekday[d]), self.start_ms + d * 86_400_000,
                cd["home"], cd["work"], cd["regular"], cd["cdf_leisure"], self.city.station_tt,
                np.ascontiguousarray(self.taps_field[:, d * fs:(d + 1) * fs]), ev["station"][e0:e1], ev["start_s"][e0:e1],
                ev["end_s"][e0:e1], ev["share"][e0:e1],
                day["card"], day["o"], day["d"], day["tin"], day["tout"], day["tt"])
        t = {k: v[:m] for k, v in buf.items()}
        trips_tab = pa.table({
            "card_id": pa.array(t["card"]), "origin": pa.array(t["o"]), "dest": pa.array(t["d"]),
            "t_in": pa.array(t["tin"], TS), "t_out": pa.array(t["tout"], TS),
            "travel_time_s": pa.array(t["tt"].astype(np.float32)),
        })
        taps = pa.table({
            "card_id": pa.array(np.repeat(t["card"], 2)),
            "station_id": pa.array(np.column_stack([t["o"], t["d"]]).ravel()),
            "ts": pa.array(np.column_stack([t["tin"], t["tout"]]).ravel(), TS),
            "direction": pa.array(np.tile(np.array([0, 1], np.int8), m)),
        })
        return taps, trips_tab

    def water_chunk(self, s0: int, s1: int) -> pa.Table:
        per_site = self.n_days * water.SLOTS
        out = self.water_plan.values(s0, s1)
        ids = np.arange(s0, s1, dtype=np.int32)
        ts = self._timestamps(WATER_INTERVAL_S, per_site, s1 - s0)
        cols = {"site_id": pa.array(np.repeat(ids, per_site)), "ts": pa.array(ts, TS)}
        for j, name in enumerate(water.ALL_PARAMETERS):
            cols[name] = pa.array(out[j])
        return pa.table(cols)

    def truth_tables(self) -> dict[str, pa.Table]:
        sc = self.city.scale
        w = self.weather
        dates = np.array([sc.start_date + dt.timedelta(days=d) for d in range(sc.days)])
        inc = self.incidents
        links = self.city.tables["sensors"]["link_id"].to_numpy()
        slot_ms = TRAFFIC_INTERVAL_S * 1000
        return {
            "weather": pa.table({"date": pa.array(dates, pa.date32()), "rain_mm": pa.array(w["rain_mm"]),
                                 "rain": pa.array(w["rain"]), "temp_anomaly_c": pa.array(w["temp_anomaly_c"])}),
            "incidents": pa.table({
                "incident_id": pa.array(np.arange(inc["sensor_id"].size, dtype=np.int32)),
                "sensor_id": pa.array(inc["sensor_id"]), "link_id": pa.array(links[inc["sensor_id"]].astype(np.int32)),
                "start": pa.array(self.start_ms + inc["start_slot"] * slot_ms, TS),
                "end": pa.array(self.start_ms + inc["end_slot"] * slot_ms, TS),
                "capacity_factor": pa.array(inc["capacity_factor"]),
                "recovered": pa.array(self.start_ms + (inc["end_slot"] + inc["recovery_slots"]) * slot_ms, TS)}),
            "transit_events": pa.table({
                "event_id": pa.array(np.arange(self.transit_events["day"].size, dtype=np.int32)),
                "station_id": pa.array(self.transit_events["station"]),
                "start": pa.array(self.start_ms + self.transit_events["day"].astype(np.int64) * 86_400_000
                                  + (self.transit_events["start_s"] * 1000).astype(np.int64), TS),
                "end": pa.array(self.start_ms + self.transit_events["day"].astype(np.int64) * 86_400_000
                                + (self.transit_events["end_s"] * 1000).astype(np.int64), TS),
                "attendance_share": pa.array(self.transit_events["share"].astype(np.float32))}),
            "rain_spells": pa.table({
                "start": pa.array(self.start_ms + self.rain["start_slot"] * slot_ms, TS),
                "end": pa.array(self.start_ms + self.rain["end_slot"] * slot_ms, TS),
                "intensity_mm_h": pa.array(self.rain["intensity_mm_h"])}),
            **self._water_truth(),
        }

    def _water_truth(self) -> dict[str, pa.Table]:
        """``pollution_events``, ``event_arrivals`` (with ``event_type``), ``sensor_faults``, ``dosing_changes``."""
        def ms(seconds: np.ndarray) -> pa.Array:
            return pa.array(self.start_ms + np.round(np.asarray(seconds, np.float64) * 1000).astype(np.int64), TS)

        out = {}
        for name, cols in self.water_plan.truth().items():
            out[name] = pa.table({k.removesuffix("_s"): ms(v) if k.endswith("_s") else
                                  pa.array(v, pa.string()) if v.dtype == object else pa.array(v)
                                  for k, v in cols.items()})
        return out


def _feed_setup(city: City, profile: feeds.DefectProfile, seed: int, tables: tuple[str, ...]) -> dict[str, Any]:
    """District standards and id -> district lookups for writing feeds."""
    sc = city.scale

    def lookup(table: str, key: str) -> np.ndarray:
        ids = city.tables[table][key].to_numpy().astype(np.int64)
        out = np.full(int(ids.max(initial=-1)) + 1, -1, np.int64)
        out[ids] = city.tables[table]["district_id"].to_numpy()
        return out

    names = {"traffic": "traffic", "passenger": "taps", "water": "water"}
    standards = {(names[t], d): feeds.make_standard(names[t], d, seed=seed, days=sc.days, profile=profile)
                 for t in tables for d in range(sc.districts)}
    return {"profile": profile, "standards": standards, "seed": seed, "days": sc.days,
            "start_ms": feeds.start_ms_of(sc.start),
            "lookup": {"traffic": lookup("sensors", "sensor_id"), "water": lookup("water_sites", "site_id"),
                       "taps": lookup("stations", "station_id")}}


def _run_with_feeds(plan: _Plan, root, kind: str, a: int, b: int, args: dict[str, Any]) -> list[tuple[str, FilePart]]:
    """Generate one chunk and write it as true rows, district feeds and defect records."""
    common = {"profile": args["profile"], "standards": args["standards"], "seed": args["seed"],
              "start_ms": args["start_ms"], "days": args["days"]}
    if kind == "traffic":
        return feeds.write_chunk(root, plan.traffic_chunk(a, b), "traffic", f"part-{a:07d}",
                                 district_lookup=args["lookup"]["traffic"], **common)
    if kind == "water":
        return feeds.write_chunk(root, plan.water_chunk(a, b), "water", f"part-{a:07d}",
                                 district_lookup=args["lookup"]["water"], **common)
    taps, trips = plan.passenger_chunk(a, b)
    meta = {"day_min": a, "day_max": b - 1}
    return [*feeds.write_chunk(root, taps, "taps", f"part-{a:05d}", district_lookup=args["lookup"]["taps"], **common),
            ("trips", write_part(root, f"truth/trips/part-{a:05d}.parquet", trips, meta=meta))]


#: Parquet encodings of the generated tables beyond ``store.PARQUET_OPTIONS``: dictionary
#: pages only for columns with few distinct values, timestamps and card ids delta-encoded.
#: The content (and so every checksum) is what the default encodings hold; the files are
#: smaller and cost less CPU to write (docs/performance.md, Generation).
_DELTA = "DELTA_BINARY_PACKED"
ENCODINGS: dict[str, dict[str, Any]] = {
    "traffic": {"use_dictionary": ["sensor_id", "flow", "speed", "occupancy"], "column_encoding": {"ts": _DELTA}},
    "taps": {"use_dictionary": ["station_id", "direction"], "column_encoding": {"card_id": _DELTA, "ts": _DELTA}},
    "trips": {"use_dictionary": ["origin", "dest"],
              "column_encoding": {"card_id": _DELTA, "t_in": _DELTA, "t_out": _DELTA}},
}


def write_generated(root: Path, rel: str, table: pa.Table, name: str, *,
                    meta: dict[str, Any] | None = None) -> FilePart:
    """Write ``table`` to ``root/rel`` with the encodings of table ``name`` and describe it.

    As :func:`uda.store.write_part`, except that the file is encoded in memory and its
    SHA-256 taken from those bytes before they are written, so the file is not read back.
    """
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS, **ENCODINGS.get(name, {}))
    buf = sink.getvalue()
    digest = hashlib.sha256(buf).hexdigest()
    with open(dest, "wb") as f:
        f.write(buf)
    return FilePart(path=rel, rows=table.num_rows, bytes=buf.size, sha256=digest, hash_sum=table_hash_sum(table),
                    meta=dict(meta or {}))


def _alternate(*lists: list) -> list:
    """Items of ``lists`` taken in turn (a, b, c, a, b, c, ...) until all are used."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def chunk_ranges(n: int, per_chunk: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into consecutive ``(start, stop)`` ranges of ``per_chunk``."""
    per_chunk = max(1, per_chunk)
    return [(a, min(n, a + per_chunk)) for a in range(0, n, per_chunk)]


def generate(out: str | os.PathLike, *, scale: Scale, seed: int, workers: int | None = None,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, force: bool = False,
             tables: tuple[str, ...] = ("traffic", "passenger", "water"),
             progress: Callable[[str, int, int], None] | None = None,
             defects: str | feeds.DefectProfile = "none") -> dict[str, Any]:
    """Generate a dataset into ``out`` atomically.

    Parameters
    ----------
    out
        Dataset folder to create.
    scale
        Sizes (see :mod:`uda.scales`).
    seed
        Random seed; the same seed and scale give the same table checksums whatever
        ``workers`` and ``chunk_rows``.
    workers
        Parallel chunk writers (threads; the Numba kernels release the GIL). Default: CPU count.
    chunk_rows
        Target rows per chunk (and per file); bounds memory to about
        ``workers * chunk_rows * 60`` bytes.
    force
        Replace an existing dataset at ``out``.
    tables
        Sensor tables to generate (the city and truth tables are always written).
    progress
        Optional callback ``progress(stage, done_rows, total_rows)``.
    defects
        ``"none"`` (the canonical tables in ``raw/``), ``"realistic"``, ``"severe"``, a
        ``.toml`` profile path or a :class:`uda.synth.feeds.DefectProfile`. With defects the
        canonical tables move to ``truth/`` (``true_traffic``, ``true_taps``, ``true_water``)
        and each district's feeds are written to ``raw/feeds/`` (see :mod:`uda.synth.feeds`).

    Returns
    -------
    dict
        The manifest written.

    Notes
    -----
    The cyclic garbage collector is off while this runs (the caller's setting is
    restored), and the first call in a process freezes the objects of the modules loaded
    by then (``gc.freeze``), so that neither the run nor the interpreter's exit walks
    them again (docs/performance.md, Generation).
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        msg = f"--workers {workers} is impossible; use 1 or more"
        raise UserError(msg)
    if chunk_rows < 1000:
        msg = f"--chunk-rows {chunk_rows} is too small; use at least 1000"
        raise UserError(msg)
    unknown = set(tables) - {"traffic", "passenger", "water"}
    if unknown:
        msg = f"unknown table(s) {', '.join(sorted(unknown))}; choose from traffic, passenger, water"
        raise UserError(msg)
    profile = defects if isinstance(defects, feeds.DefectProfile) else feeds.resolve_profile(defects)
    t0 = time.perf_counter()
    # no cyclic collections while generating: the run makes few reference cycles, and the
    # collections that the first Numba dispatch and the imports under it would trigger
    # walk every object of the loaded modules (docs/performance.md, Generation)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(out, scale=scale, seed=seed, workers=workers, chunk_rows=chunk_rows, force=force,
                         tables=tables, progress=progress, profile=profile, t0=t0)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(out: str | os.PathLike, *, scale: Scale, seed: int, workers: int, chunk_rows: int, force: bool,
              tables: tuple[str, ...], progress: Callable[[str, int, int], None] | None,
              profile: feeds.DefectProfile, t0: float) -> dict[str, Any]:
    """:func:`generate` after its arguments are checked."""
    with DatasetWriter(out, force=force) as w:
        city = build_city(scale, seed)
        plan = _Plan(city, seed, defer=True)
        _freeze_loaded()
        feed_args = _feed_setup(city, profile, seed, tables) if profile.active else None

        by_kind: dict[str, list[tuple[str, Any, int]]] = {"traffic": [], "passenger": [], "water": []}
        if "traffic" in tables:
            per = max(1, chunk_rows // (scale.days * traffic.SLOTS))
            by_kind["traffic"] = [("traffic", r, (r[1] - r[0]) * scale.days * traffic.SLOTS)
                                  for r in chunk_ranges(scale.sensors, per)]
        if "passenger" in tables:
            est_per_day = max(1, int(scale.cards * 2.4))
            by_kind["passenger"] = [("passenger", r, (r[1] - r[0]) * est_per_day)
                                    for r in chunk_ranges(scale.days, chunk_rows // est_per_day)]
        if "water" in tables:
            n_sites = city.tables["water_sites"].num_rows
            per = max(1, chunk_rows // (scale.days * water.SLOTS))
            by_kind["water"] = [("water", r, (r[1] - r[0]) * scale.days * water.SLOTS)
                                for r in chunk_ranges(n_sites, per)]
        # traffic needs only the road model, so its first chunks start at once; the rest of
        # the jobs alternate kinds, so that the passenger chunks (partly Python) run beside
        # traffic kernels that release the GIL rather than beside each other; the water
        # chunks, the smallest jobs, come last, so the workers finish close together
        first, rest = by_kind["traffic"][:workers], by_kind["traffic"][workers:]
        jobs = first + _alternate(rest, by_kind["passenger"]) + by_kind["water"]
        total = sum(j[2] for j in jobs)

        def run(job: tuple[str, Any, int]) -> list[tuple[str, FilePart]]:
            kind, (a, b), _ = job
            if feed_args is not None:
                return _run_with_feeds(plan, w.root, kind, a, b, feed_args)
            if kind == "traffic":
                tab = plan.traffic_chunk(a, b)
                return [("traffic", write_generated(w.root, f"raw/traffic/part-{a:07d}.parquet", tab, "traffic",
                                                    meta={"sensor_min": a, "sensor_max": b - 1}))]
            if kind == "water":
                tab = plan.water_chunk(a, b)
                return [("water", write_generated(w.root, f"raw/water/part-{a:07d}.parquet", tab, "water",
                                                  meta={"site_min": a, "site_max": b - 1}))]
            taps, trips = plan.passenger_chunk(a, b)
            meta = {"day_min": a, "day_max": b - 1}
            return [("taps", write_generated(w.root, f"raw/taps/part-{a:05d}.parquet", taps, "taps", meta=meta)),
                    ("trips", write_generated(w.root, f"truth/trips/part-{a:05d}.parquet", trips, "trips",
                                              meta=meta))]

        parts: dict[str, list[FilePart]] = {}
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = []
        try:
            futures += [pool.submit(run, j) for j in first]
            # meanwhile, on this thread: the passenger and water inputs, then their jobs
            plan.prepare_passenger()
            plan.prepare_water()
            futures += [pool.submit(run, j) for j in jobs[len(first):]]
            small = list(city.tables.items()) + list(plan.truth_tables().items())
            small_parts = [(name, write_generated(w.root, f"{'city' if name in city.tables else 'truth'}/{name}.parquet",
                                                  tab, name), tab.schema) for name, tab in small]
            if feed_args is not None:
                dic = feeds.dictionary_table(feed_args["standards"])
                small_parts.append(("feed_dictionary", write_generated(w.root, "raw/feed_dictionary.parquet", dic,
                                                                       "feed_dictionary"), dic.schema))
            for name, part, schema in small_parts:
                w.add_table(name, [part], schema)
            versions = package_versions()  # package metadata look-ups, while the chunks run
            done = 0
            results = []
            for job, fut in zip(jobs, futures, strict=True):
                results.append(fut.result())
                done += job[2]
                if progress is not None:
                    progress(job[0], done, total)
        except BaseException:
            # a failed chunk, a full disk or Ctrl-C: drop the queued chunks instead of
            # generating them all before the error reaches the user
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        # tables in the manifest in the same order whatever the order the jobs ran in
        kinds = list(by_kind)
        for i in sorted(range(len(jobs)), key=lambda i: (kinds.index(jobs[i][0]), jobs[i][1])):
            for name, part in results[i]:
                parts.setdefault(name, []).append(part)
        for name, plist in parts.items():
            schema = pq.read_schema(w.root / plist[0].path)
            partitioning = {"traffic": "sensor", "water": "site", "taps": "day", "trips": "day"}.get(name)
            if partitioning is None:
                partitioning = "day" if "taps" in name else ("site" if "water" in name else "sensor")
                if name == "defects":
                    partitioning = "chunk"
            w.add_table(name, plist, schema, partitioned_by=partitioning)
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "params": {**scale.as_dict(), "seed": seed, "grid_side": scale.grid_side,
                       "traffic_interval_s": TRAFFIC_INTERVAL_S, "water_interval_s": WATER_INTERVAL_S,
                       "defects": profile.name, "tables": list(tables),
                       **({"defect_profile": profile.as_dict()} if profile.active else {})},
            "run": {"workers": workers, "chunk_rows": chunk_rows, "seconds": round(time.perf_counter() - t0, 3),
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
            "versions": versions,
        }
        w.commit(manifest)
    manifest["tables"] = w.tables
    return manifest

