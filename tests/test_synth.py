"""Statistical sanity of the generators: checks a naive generator would fail."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

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


def test_dissolved_oxygen_anticorrelated_with_temperature(ds):
    r = ds.scan("water").select(pl.corr("temperature_c", "do_mgl")).collect().item()
    assert r < -0.4


def test_pollution_plume_reaches_downstream_after_travel_time(ds):
    sites = ds.read("water_sites")
    tt = dict(zip(sites["site_id"], sites["travel_time_s"], strict=True))
    down = dict(zip(sites["site_id"], sites["downstream_site_id"], strict=True))
    mag = dict(zip(*ds.read("pollution_events").select("event_id", "magnitude"), strict=True))
    arr = ds.read("event_arrivals").sort("event_id", "start")
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
    assert checked >= 3


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
