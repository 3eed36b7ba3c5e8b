"""The generation plan: the model inputs shared by every chunk, and the chunk generators.

:class:`Plan` draws the small inputs once (weather, incidents, rain spells, area fields,
smart cards, transit events, the water plan) and generates any chunk of the traffic,
passenger (taps and trips) and water tables from them, as Arrow tables. Every draw is
counter-based or seeded by name, so a chunk's rows do not depend on how the work is
split. :mod:`uda.generate` runs the chunks and writes the dataset.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from uda.arrays import nearest
from uda.city import City
from uda.contract import (
    DAY_MS,
    TRAFFIC_INTERVAL_S,
    WATER_ALL_PARAMETERS,
    WATER_INTERVAL_S,
    start_ms_of,
)
from uda.kernels.rng import rng_for, stream_key
from uda.synth import passenger, traffic, water
from uda.synth.weather import weather

#: Arrow type of every generated timestamp: milliseconds, naive local standard time.
TS = pa.timestamp("ms")
#: ``uda generate --tables`` name -> the tables one chunk of it holds (its sensor table first).
CHUNK_TABLES: dict[str, tuple[str, ...]] = {"traffic": ("traffic",), "passenger": ("taps", "trips"),
                                            "water": ("water",)}


def chunk_ranges(n: int, per_chunk: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into consecutive ``(start, stop)`` ranges of ``per_chunk``."""
    per_chunk = max(1, per_chunk)
    return [(a, min(n, a + per_chunk)) for a in range(0, n, per_chunk)]


class Plan:
    """Model inputs shared by all chunks (small: city tables, weather, incidents, events),
    and the chunk generators that turn them into Arrow tables of rows."""

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
        self.start_ms = start_ms_of(sc.start)
        self.weekday = np.array([(start + dt.timedelta(days=d)).weekday() for d in range(sc.days)], np.int64)
        self.start_doy = float(start.timetuple().tm_yday)
        self.weather = weather(rng_for(seed, "weather"), sc.days)
        self.incidents = traffic.incidents(rng_for(seed, "incidents"), sc.sensors, sc.days)
        self._traffic_state(city, seed)
        self.profiles = traffic.profiles()
        self.keys = {name: stream_key(seed, name) for name in CHUNK_TABLES}
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

    def timestamps(self, interval_s: int, per_unit: int, n_units: int) -> np.ndarray:
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
    def chunk_jobs(self, kind: str, chunk_rows: int) -> list[tuple[tuple[int, int], int]]:
        """The chunks of ``kind`` (a :data:`CHUNK_TABLES` name) of about ``chunk_rows`` rows:
        ``((first, stop), estimated rows)``, over sensors, sites or days."""
        sc = self.city.scale
        if kind == "passenger":
            est_per_day = max(1, int(sc.cards * 2.4))
            return [(r, (r[1] - r[0]) * est_per_day) for r in chunk_ranges(sc.days, chunk_rows // est_per_day)]
        if kind == "traffic":
            n_units, per_unit = sc.sensors, sc.days * traffic.SLOTS
        elif kind == "water":
            n_units, per_unit = self.city.tables["water_sites"].num_rows, sc.days * water.SLOTS
        else:
            msg = f"Plan.chunk_jobs has no chunk sizes for the table kind {kind!r}"
            raise ValueError(msg)
        return [(r, (r[1] - r[0]) * per_unit) for r in chunk_ranges(n_units, max(1, chunk_rows // per_unit))]

    def chunk(self, kind: str, a: int, b: int) -> dict[str, pa.Table]:
        """The tables of one chunk of ``kind``, by name (:data:`CHUNK_TABLES` order): units or days ``a .. b - 1``."""
        if kind == "traffic":
            return {"traffic": self.traffic_chunk(a, b)}
        if kind == "water":
            return {"water": self.water_chunk(a, b)}
        taps, trips = self.passenger_chunk(a, b)
        return {"taps": taps, "trips": trips}

    def traffic_chunk(self, s0: int, s1: int) -> pa.Table:
        """The traffic rows of sensors ``s0 .. s1 - 1``, sensor-major in time order."""
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
        ts = self.timestamps(TRAFFIC_INTERVAL_S, per_sensor, s1 - s0)
        return pa.table({
            "sensor_id": pa.array(np.repeat(ids, per_sensor)),
            "ts": pa.array(ts, TS),
            "flow": pa.array(flow), "speed": pa.array(speed), "occupancy": pa.array(occ),
        })

    def passenger_chunk(self, d0: int, d1: int) -> tuple[pa.Table, pa.Table]:
        """The taps and the true trips of days ``d0 .. d1 - 1``."""
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
                self.keys["passenger"], d, int(self.weekday[d]), self.start_ms + d * DAY_MS,
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
        """The water rows of sites ``s0 .. s1 - 1``, site-major in time order."""
        per_site = self.n_days * water.SLOTS
        out = self.water_plan.values(s0, s1)
        ids = np.arange(s0, s1, dtype=np.int32)
        ts = self.timestamps(WATER_INTERVAL_S, per_site, s1 - s0)
        cols = {"site_id": pa.array(np.repeat(ids, per_site)), "ts": pa.array(ts, TS)}
        for j, name in enumerate(WATER_ALL_PARAMETERS):
            cols[name] = pa.array(out[j])
        return pa.table(cols)

    def truth_tables(self) -> dict[str, pa.Table]:
        """The small truth tables: weather, incidents, transit events, rain spells and the water truth."""
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
                "start": pa.array(self.start_ms + self.transit_events["day"].astype(np.int64) * DAY_MS
                                  + (self.transit_events["start_s"] * 1000).astype(np.int64), TS),
                "end": pa.array(self.start_ms + self.transit_events["day"].astype(np.int64) * DAY_MS
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
