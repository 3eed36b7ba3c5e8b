"""Statistical sanity of the generators: checks a naive generator would fail."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from uda.generate import generate
from uda.scales import resolve_scale
from uda.store import open_dataset


@pytest.fixture(scope="module")
def ds(week_dataset):
    return open_dataset(week_dataset)


def _hourly(ds, weekday: bool) -> np.ndarray:
    t = (ds.scan("traffic")
         .with_columns(h=pl.col("ts").dt.hour(), wd=pl.col("ts").dt.weekday() <= 5)
         .filter(pl.col("wd") == weekday)
         .group_by("h").agg(pl.col("flow").mean()).sort("h").collect())
    return t["flow"].to_numpy()


def test_weekday_am_pm_peaks_and_no_weekend_peaks(ds):
    wd = _hourly(ds, True)
    we = _hourly(ds, False)
    am, pm, midday, night = wd[7:10].max(), wd[16:19].max(), wd[11:14].mean(), wd[1:4].mean()
    assert am > 1.3 * midday and pm > 1.3 * midday and midday > 3 * night
    assert 7 <= int(np.argmax(wd[:12])) <= 9 and 16 <= 12 + int(np.argmax(wd[12:])) <= 18
    # weekends: one midday hump, no commuter peaks
    assert we[7:10].max() < we[11:15].mean() and we[16:19].max() < 1.05 * we[11:15].max()
    assert 11 <= int(np.argmax(we)) <= 15


def test_speed_falls_as_occupancy_rises(ds):
    per = (ds.scan("traffic").group_by("sensor_id")
           .agg(pl.corr("speed", "occupancy", method="spearman").alias("rho")).collect())
    assert (per["rho"] < 0).mean() > 0.95
    binned = (ds.scan("traffic").filter(pl.col("occupancy") > 0)
              .with_columns(b=(pl.col("occupancy") * 10).floor().clip(0, 5))
              .group_by("b").agg(pl.col("speed").median()).sort("b").collect())
    assert binned.height >= 4 and np.all(np.diff(binned["speed"].to_numpy()[1:]) < 0)


def test_incidents_cut_speed(ds):
    inc = ds.read("incidents").filter(pl.col("capacity_factor") < 0.5)
    t = ds.scan("traffic").join(inc.lazy().select("sensor_id", "start", "end"), on="sensor_id")
    inside = t.filter(pl.col("ts").is_between(pl.col("start"), pl.col("end"), closed="left"))
    same_time_other_days = t.filter(
        (pl.col("ts").dt.time().is_between(pl.col("start").dt.time(), pl.col("end").dt.time(), closed="left"))
        & (pl.col("ts").dt.date() != pl.col("start").dt.date())
        & (pl.col("ts").dt.weekday() <= 5))
    a = inside.select(pl.col("speed").mean()).collect().item()
    b = same_time_other_days.select(pl.col("speed").mean()).collect().item()
    assert a < 0.97 * b


@pytest.fixture(scope="module")
def small_traffic(tmp_path_factory):
    """The ``small`` preset's traffic table (200 sensors, 14 days), seed 1."""
    out = tmp_path_factory.mktemp("data") / "small-traffic"
    generate(out, scale=resolve_scale("small"), seed=1, workers=2, tables=("traffic",))
    return open_dataset(out)


def _sensor_matrix(ds, col: str) -> tuple[np.ndarray, np.ndarray]:
    t = ds.scan("traffic").select("sensor_id", "ts", col).sort("sensor_id", "ts").collect()
    x = t[col].to_numpy().astype(np.float64).reshape(t["sensor_id"].n_unique(), -1)
    return x, t["ts"][: x.shape[1]].to_numpy()


def persistence(x: np.ndarray, ts: np.ndarray, horizons=(3, 12), slots: int = 288) -> dict[str, float]:
    """Issue 13's statistics: last-value/HA MAE ratios and median lag-1 autocorrelation.

    Chronological 80/20 split over all sensors (rows of ``x``); HA is the training mean by
    slot of day and day type (weekday/weekend); the last value is the value h steps
    before; autocorrelations are of the deviations from that HA profile.
    """
    n_t = x.shape[1]
    weekend = ((ts.astype("datetime64[D]").view("int64") - 4) % 7 >= 5).astype(np.int64)
    grp = (np.arange(n_t) % slots) * 2 + weekend
    cut = int(0.8 * n_t)
    sums = np.zeros((x.shape[0], 2 * slots))
    np.add.at(sums.T, grp[:cut], x[:, :cut].T)
    counts = np.bincount(grp[:cut], minlength=2 * slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = (sums / counts)[:, grp]
    out = {}
    for h in horizons:
        t = np.arange(cut, n_t)
        ok = ~np.isnan(prof[:, t])
        out[f"ratio_{h}"] = np.abs(x[:, t] - x[:, t - h])[ok].mean() / np.abs(x[:, t] - prof[:, t])[ok].mean()
    dev = x - prof
    ac = []
    for d in dev:
        d = d[~np.isnan(d)]
        d = d - d.mean()
        ac.append((d[1:] * d[:-1]).sum() / (d * d).sum())
    out["ac1"] = float(np.median(ac))
    return out


def test_persistence_statistics_of_a_white_noise_series_fail_the_bands():
    # the statistic itself: deviations without persistence give ratios near sqrt(2) and no autocorrelation
    rng = np.random.default_rng(0)
    ts = np.datetime64("2026-03-02") + np.arange(14 * 288) * np.timedelta64(5, "m")
    base = 50 + 10 * np.sin(np.arange(14 * 288) * 2 * np.pi / 288)
    st = persistence(base + rng.normal(0, 3, (20, base.size)), ts)
    assert st["ratio_3"] > 1.1 and abs(st["ac1"]) < 0.1


def test_small_traffic_speed_persists_like_freeway_loops(small_traffic):
    # issue 13 "done means": speed last/HA MAE ratio 0.5-0.85 at 15 min and >= 0.9 at 60 min,
    # median lag-1 autocorrelation of 5-min deviations >= 0.7
    st = persistence(*_sensor_matrix(small_traffic, "speed"))
    assert 0.5 <= st["ratio_3"] <= 0.85, st
    assert st["ratio_12"] >= 0.9, st
    assert st["ac1"] >= 0.7, st


def test_small_traffic_flow_persists_and_local_roads_stay_periodic(small_traffic):
    x, ts = _sensor_matrix(small_traffic, "flow")
    st = persistence(x, ts)
    assert st["ratio_3"] <= 0.9 and st["ac1"] >= 0.5, st
    # both regimes: motorway counts persist, local-road counts are beaten by the profile
    cls = small_traffic.read("links")["road_class"].to_numpy()[small_traffic.read("sensors")["link_id"].to_numpy()]
    assert persistence(x[cls == "motorway"], ts)["ratio_3"] < 0.85
    assert persistence(x[cls == "local"], ts)["ratio_3"] > 1.0


def test_flow_deviations_correlate_within_a_district(small_traffic):
    # the district area field: daytime deviations from the slot-of-day profile correlate
    # more between sensors of one district than between districts
    x, ts = _sensor_matrix(small_traffic, "flow")
    slot = np.arange(x.shape[1]) % 288
    grp = slot * 2 + ((ts.astype("datetime64[D]").view("int64") - 4) % 7 >= 5)
    prof = np.zeros_like(x)
    for g in np.unique(grp):
        prof[:, grp == g] = x[:, grp == g].mean(axis=1, keepdims=True)
    c = np.corrcoef(((x - prof) / np.maximum(prof, 1.0))[:, (slot >= 84) & (slot < 240)])
    district = small_traffic.read("sensors")["district_id"].to_numpy()
    same = (district[:, None] == district[None, :]) & ~np.eye(district.size, dtype=bool)
    between = district[:, None] != district[None, :]
    assert c[same].mean() > 1.5 * c[between].mean() and c[same].mean() > 0.1


def test_incident_queues_spill_back_upstream(small_traffic):
    # sensors whose link feeds an incident's link slow down too, a little later
    ds = small_traffic
    links = ds.read("links")
    sensors = ds.read("sensors")
    link_of = sensors["link_id"].to_numpy()
    fr, to = links["from_node"].to_numpy(), links["to_node"].to_numpy()
    sensor_of_link = dict(zip(link_of.tolist(), range(link_of.size), strict=True))
    speed, ts = _sensor_matrix(ds, "speed")
    t0 = ts[0]
    inc = ds.read("incidents").filter(pl.col("capacity_factor") < 0.45)
    drops = []
    for r in inc.iter_rows(named=True):
        lk = link_of[r["sensor_id"]]
        a = (r["start"] - t0) // np.timedelta64(5, "m")
        b = (r["end"] - t0) // np.timedelta64(5, "m")
        for up in np.flatnonzero((to == fr[lk]) & (fr != to[lk])):
            s = sensor_of_link.get(int(up))
            if s is None or b + 2 > speed.shape[1] or a < 288:
                continue
            same_slot = speed[s, a + 1:b + 2]
            other_days = [speed[s, a + 1 - k:b + 2 - k] for k in (288, 2 * 288) if a + 1 - k >= 0]
            drops.append(same_slot.mean() / np.mean(other_days))
    assert len(drops) >= 5
    assert np.median(drops) < 0.95


def test_rain_spells_last_hours_and_slow_traffic(small_traffic):
    spells = small_traffic.read("rain_spells")
    hours = ((spells["end"] - spells["start"]).dt.total_minutes() / 60).to_numpy()
    assert spells.height >= 2 and np.median(hours) >= 1.0 and hours.max() <= 8.0
    assert (spells["end"].dt.date() == spells["start"].dt.date()).mean() > 0.5


@pytest.fixture(scope="module")
def taps_city(tmp_path_factory):
    """Two weeks of taps on 10 stations (about 2000 cards each: counts large enough to see deviations)."""
    out = tmp_path_factory.mktemp("data") / "taps"
    generate(out, scale=resolve_scale("small", stations=10, lines=2), seed=1, workers=2, tables=("passenger",))
    return open_dataset(out)


def _inflow(ds, direction: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = (ds.scan("taps").filter(pl.col("direction") == direction)
         .with_columns(b=pl.col("ts").dt.truncate("15m")).group_by("station_id", "b").agg(pl.len()).collect())
    t0 = np.datetime64(ds.manifest["params"]["start"], "ms")
    n_slots = ds.manifest["params"]["days"] * 96
    x = np.zeros((ds.read("stations").height, n_slots))
    x[t["station_id"].to_numpy(), (t["b"].to_numpy() - t0) // np.timedelta64(15, "m")] = t["len"].to_numpy()
    return x, t0 + np.arange(n_slots) * np.timedelta64(15, "m")


def test_station_inflow_is_periodic_with_persistent_deviations(taps_city):
    x, ts = _inflow(taps_city)
    st = persistence(x, ts, horizons=(1,), slots=96)
    # deviations from the slot-of-day profile persist (independent trips alone give about 0) ...
    assert st["ac1"] >= 0.5, st
    # ... but the sharp commuter peaks keep the profile ahead of the last value at 15 min
    assert st["ratio_1"] > 0.9, st


def test_no_taps_while_the_network_is_closed(taps_city):
    hours = taps_city.scan("taps").select(pl.col("ts").dt.hour().alias("h")).collect()["h"].to_numpy()
    assert hours.size > 0 and not ((hours >= 0) & (hours < 5)).any()


def test_events_bring_crowds_to_their_station(taps_city):
    ev = taps_city.read("transit_events")
    assert ev.height >= 1
    outs, ins = _inflow(taps_city, 1)[0], _inflow(taps_city, 0)[0]
    t0 = np.datetime64(taps_city.manifest["params"]["start"], "ms")
    for r in ev.iter_rows(named=True):
        a = int((r["start"] - t0) // np.timedelta64(15, "m"))
        b = int((r["end"] - t0) // np.timedelta64(15, "m"))
        s, day = r["station_id"], a // 96
        other = [k for k in range(outs.shape[1] // 96) if k != day and (k % 7 >= 5) == (day % 7 >= 5)]
        before = outs[s, a - 4:a].sum()  # arrivals in the hour before the start
        after = ins[s, b:b + 3].sum()  # departures in the 45 minutes after the end
        base_before = np.mean([outs[s, a - 4 - 96 * (day - k):a - 96 * (day - k)].sum() for k in other])
        base_after = np.mean([ins[s, b - 96 * (day - k):b + 3 - 96 * (day - k)].sum() for k in other])
        assert before > 1.5 * base_before + 10 and after > 1.5 * base_after + 10, r


def test_dissolved_oxygen_anticorrelated_with_temperature(ds):
    r = ds.scan("water").select(pl.corr("temperature_c", "do_mgl")).collect().item()
    assert r < -0.4


def test_pollution_plume_reaches_downstream_after_travel_time(tmp_path):
    # Plumes are rare (0.015 per outfall and day), so a week of `small` holds too few;
    # this water-only city of 24 sites x 28 days (64,512 rows, seed 1) has 7 plumes with
    # 46 consecutive arrival pairs, 32 of them strong and alone (measured at d310671).
    out = tmp_path / "plumes"
    generate(out, scale=resolve_scale("tiny", water_sites=24, days=28), seed=1, workers=1, tables=("water",))
    ds = open_dataset(out)
    sites = ds.read("water_sites")
    tt = dict(zip(sites["site_id"], sites["travel_time_s"], strict=True))
    down = dict(zip(sites["site_id"], sites["downstream_site_id"], strict=True))
    plumes = pl.col("event_type") == "plume"  # short events stay at one site and do not travel
    mag = dict(zip(*ds.read("pollution_events").filter(plumes).select("event_id", "magnitude"), strict=True))
    arr = ds.read("event_arrivals").filter(plumes).sort("event_id", "start")
    water = ds.read("water").select("site_id", "ts", "ammonia_mgl").sort("site_id", "ts")
    by_site = {k[0]: g for k, g in water.group_by(["site_id"])}

    def onset(a):
        """First time ammonia clearly rises above the 6 h before the arrival window."""
        w = by_site[a["site_id"]]
        base = w.filter(pl.col("ts").is_between(a["start"] - np.timedelta64(6, "h"), a["start"] - np.timedelta64(2, "h")))
        win = w.filter(pl.col("ts").is_between(a["start"] - np.timedelta64(2, "h"), a["end"]))
        hit = win.filter(pl.col("ammonia_mgl") > base["ammonia_mgl"].max() + 0.2)
        return None if base.height == 0 or hit.height == 0 else hit["ts"][0]

    busy = arr.group_by("site_id").agg(pl.col("start"), pl.col("end"))
    spans = {r["site_id"]: list(zip(r["start"], r["end"], strict=True)) for r in busy.iter_rows(named=True)}
    checked = 0
    for (eid,), g in arr.group_by(["event_id"], maintain_order=True):
        rows = g.rows(named=True)
        for a, b in zip(rows[:-1], rows[1:], strict=True):
            # the recorded arrivals follow the river and its travel times
            assert down[a["site_id"]] == b["site_id"]
            assert (b["start"] - a["start"]).total_seconds() == pytest.approx(tt[a["site_id"]], abs=1.0)
            strong = mag[eid] * b["peak_factor"] > 0.6
            alone = all(len(spans[r["site_id"]]) == 1 or all(e <= r["start"] - np.timedelta64(8, "h") or s >= r["end"]
                        for s, e in spans[r["site_id"]] if (s, e) != (r["start"], r["end"])) for r in (a, b))
            if not (strong and alone):
                continue
            # and the data show it: no rise before the arrival, a rise at each site in turn
            ta, tb = onset(a), onset(b)
            assert ta is not None and tb is not None
            assert ta >= a["start"] - np.timedelta64(15, "m") and tb >= b["start"] - np.timedelta64(15, "m")
            assert (tb - ta).total_seconds() == pytest.approx(tt[a["site_id"]], abs=1800)
            checked += 1
    assert checked >= 10


def test_every_tap_out_follows_its_tap_in_by_the_travel_time(ds):
    taps = ds.read("taps").sort("card_id", "ts", "direction")
    card = taps["card_id"].to_numpy()
    direction = taps["direction"].to_numpy()
    assert (direction[0::2] == 0).all() and (direction[1::2] == 1).all()
    assert (card[0::2] == card[1::2]).all()
    o, d = taps["station_id"].to_numpy()[0::2], taps["station_id"].to_numpy()[1::2]
    ts = taps["ts"].to_numpy()
    dur = (ts[1::2] - ts[0::2]) / np.timedelta64(1, "s")
    tt = ds.read("station_travel_times")
    s = int(np.sqrt(tt.height))
    mat = tt.sort("origin", "dest")["travel_time_s"].to_numpy().reshape(s, s)
    assert (o != d).all()
    assert (dur >= mat[o, d] - 1e-3).all()
    # transfers happen: some trips need more than one line
    lines = ds.read("lines").group_by("station_id").agg(pl.col("line_id"))
    on = {r["station_id"]: set(r["line_id"]) for r in lines.iter_rows(named=True)}
    assert any(not (on[a] & on[b]) for a, b in zip(o[:5000], d[:5000], strict=True))


def test_weekday_ridership_exceeds_weekend(ds):
    per_day = (ds.scan("taps").filter(pl.col("direction") == 0)
               .group_by(pl.col("ts").dt.weekday().alias("wd")).agg(pl.len()).collect())
    wd = per_day.filter(pl.col("wd") <= 5)["len"].mean()
    we = per_day.filter(pl.col("wd") > 5)["len"].mean()
    assert wd > 1.5 * we


# ---- missing records in the department feeds: isolated, outages, whole days (issue 13)


def _missing(units: np.ndarray, days: int, rate: float = 0.03, interval_s: int = 300):
    from uda.synth.injection import missing_records, unit_keys

    per = days * 86400 // interval_s
    ukeys = unit_keys(11, "traffic", units)
    pos = np.tile(np.arange(per, dtype=np.int64), units.size)
    counts = np.full(units.size, per)
    day = pos * interval_s // 86400
    return missing_records(rate, np.repeat(ukeys, counts), ukeys, pos, counts, day, interval_s, days), per


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.diff(np.r_[0, mask.astype(np.int8), 0])
    s, e = np.flatnonzero(x == 1), np.flatnonzero(x == -1)
    return s, e - s


def test_missing_records_come_as_isolated_records_outages_and_whole_days():
    units = np.arange(400)
    miss, per = _missing(units, 14)
    by_unit = miss.reshape(units.size, per)
    assert 0.022 <= miss.mean() <= 0.032  # the rate, less the overlaps
    starts, lengths = zip(*(_runs(m) for m in by_unit), strict=True)
    lengths = np.concatenate(lengths)
    starts = np.concatenate(starts)
    # isolated records are the most frequent kind of gap; an iid generator would stop here
    assert (lengths == 1).mean() > 0.5
    # outages of tens of minutes to hours (3 to 144 records), median near 25 min
    outage = lengths[(lengths >= 3) & (lengths < 288)]
    assert outage.size > 100 and 4 <= np.median(outage) <= 8 and outage.max() >= 12
    # whole days down start at midnight; SCATS: 24 % of detectors lose a day in 31 days (1.2 % a day)
    whole = lengths >= 288
    assert (starts[whole] % 288 == 0).mean() > 0.9
    share_units = (by_unit.reshape(units.size, 14, 288).all(axis=2).any(axis=1)).mean()
    assert 0.05 <= share_units <= 0.25
    # no rate, no missing records
    assert not _missing(units[:5], 3, rate=0.0)[0].any()


def test_missing_records_do_not_depend_on_chunking():
    units = np.arange(60)
    whole, _ = _missing(units, 5)
    parts = np.concatenate([_missing(units[:17], 5)[0], _missing(units[17:], 5)[0]])
    assert np.array_equal(whole, parts)


def test_missing_run_lengths_match_a_loop():
    from uda.synth.injection import run_lengths

    rng = np.random.default_rng(3)
    m = rng.random(500) < 0.4
    first = np.array([0, 100, 101, 350])
    ref = np.zeros(500)
    bounds = np.r_[first, 500]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        i = a
        while i < b:
            if m[i]:
                j = i
                while j < b and m[j]:
                    j += 1
                ref[i:j] = j - i
                i = j
            else:
                i += 1
    assert np.array_equal(run_lengths(m, first), ref)


def _upstream_reference(link_from, link_to, link_cap, sensor_link, hops=2):
    """The breadth-first search of ``traffic.upstream_sensors`` in plain Python and NumPy."""
    n_nodes = int(max(link_from.max(), link_to.max())) + 1
    order = np.argsort(link_to, kind="stable")
    into = np.searchsorted(link_to[order], np.arange(n_nodes + 1))
    sensor_of_link = np.full(link_from.size, -1, np.int64)
    sensor_of_link[sensor_link] = np.arange(sensor_link.size)
    out = []
    for link in sensor_link:
        seen = {int(link)}
        frontier = [(int(link), 1.0)]
        found = []
        for h in range(1, hops + 1):
            nxt = []
            for lk, share in frontier:
                a, b = link_from[lk], link_to[lk]
                feeders = [int(up) for up in order[into[a]:into[a + 1]] if link_from[up] != b]
                total = float(link_cap[feeders].sum()) if feeders else 1.0
                for up in feeders:
                    if up in seen:
                        continue
                    seen.add(up)
                    sh = share * float(link_cap[up]) / total
                    nxt.append((up, sh))
                    if sensor_of_link[up] >= 0:
                        found.append((int(sensor_of_link[up]), h, sh))
            frontier = nxt
        out.append(found)
    return out


@pytest.mark.parametrize("case", ["city", "random"])
def test_upstream_sensors_match_the_python_search(case):
    """The Numba search finds the same sensors, hops and (bit for bit) shares as plain Python."""
    from uda.city import build_city
    from uda.synth.traffic import upstream_sensors

    if case == "city":
        city = build_city(resolve_scale("tiny"), 3)
        links = city.tables["links"]
        fr, to = links["from_node"].to_numpy(), links["to_node"].to_numpy()
        cap = links["capacity_vph"].to_numpy().astype(np.float64)
        sensor_link = city.tables["sensors"]["link_id"].to_numpy()
    else:  # up to 7 feeders per link, capacities whose sums round differently by order
        rng = np.random.default_rng(0)
        fr, to = rng.integers(0, 14, 60), rng.integers(0, 14, 60)
        keep = fr != to
        fr, to = fr[keep], to[keep]
        cap = rng.uniform(100, 3000, fr.size) * (1 + 1e-9 * rng.random(fr.size))
        sensor_link = rng.choice(fr.size, 20, replace=False)
        assert 5 <= np.bincount(to).max() <= 7
    ref = _upstream_reference(fr, to, cap, sensor_link)
    offsets, sensor, hops, share = upstream_sensors(fr, to, cap, sensor_link)
    assert np.diff(offsets).tolist() == [len(r) for r in ref]
    assert list(zip(sensor.tolist(), hops.tolist(), share.tolist(), strict=True)) == [x for r in ref for x in r]
    assert sum(len(r) for r in ref) > 10


def test_floor_div_matches_python_floor_division():
    """The passenger kernel's fmod-free ``x // 900`` agrees with Python's, near multiples too."""
    from uda.synth.passenger import FIELD_SLOT_S, floor_div

    rng = np.random.default_rng(2)
    k = rng.integers(-100, 200, 3000).astype(np.float64) * FIELD_SLOT_S
    near = np.concatenate([np.nextafter(k, -np.inf), k, np.nextafter(k, np.inf),
                           np.nextafter(np.nextafter(k, -np.inf), -np.inf)])
    xs = np.concatenate([near, rng.uniform(-1e5, 2e5, 20000), [0.0, -0.0, 1e-300, -1e-300]])
    got = np.array([floor_div(x, FIELD_SLOT_S) for x in xs])
    want = np.array([x // FIELD_SLOT_S for x in xs])
    assert np.array_equal(got, want)
    assert (np.floor(near / FIELD_SLOT_S) != near // FIELD_SLOT_S).any()  # the correction is needed


def test_array_draws_match_splitmix64_written_in_numpy():
    """``uniform_lanes`` and ``subkeys`` (the defects' vectorised draws) against splitmix64 in NumPy."""
    from uda.kernels.rng import subkey, subkeys, uniform, uniform_lanes

    golden, c1, c2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)

    def mix(x):
        x = x ^ (x >> np.uint64(30))
        x = x * c1
        x = x ^ (x >> np.uint64(27))
        x = x * c2
        return x ^ (x >> np.uint64(31))

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    counters = rng.integers(0, 2**52, 1000, dtype=np.uint64)
    with np.errstate(over="ignore"):
        ref = ((mix(keys + (counters * np.uint64(16) + np.uint64(3) + np.uint64(1)) * golden) >> np.uint64(11))
               .astype(np.float64) + 0.5) / 2.0**53
        ref_keys = mix(np.uint64(77) ^ mix(counters + golden))
    got = uniform_lanes(keys, counters, np.uint64(3))
    assert np.array_equal(got, ref) and 0.0 < got.min() and got.max() < 1.0
    assert got[7] == uniform(keys[7], counters[7] * np.uint64(16) + np.uint64(3))
    assert np.array_equal(subkeys(np.uint64(77), counters), ref_keys)
    assert subkeys(np.uint64(77), counters)[9] == subkey(np.uint64(77), counters[9])
