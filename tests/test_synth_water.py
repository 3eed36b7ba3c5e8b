"""The calibrated water model: determinism, event types, probe faults apart from events, calibrated bands."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bench.water_calibration import BANDS
from uda.city import build_city
from uda.contract import WATER_ALL_PARAMETERS, WATER_INTERVAL_S
from uda.scales import resolve_scale
from uda.synth import water
from uda.synth.plan import Plan
from uda.synth.water_stats import daily_range, lag1, spike_rate


@pytest.fixture(scope="module")
def plan():
    sc = resolve_scale("tiny", days=21)
    return Plan(build_city(sc, 7), 7)


@pytest.fixture(scope="module")
def values(plan):
    n = plan.water_plan.n_sites
    return plan.water_plan.values(0, n).astype(np.float64)


def _site(values, plan, s):
    per = plan.n_days * water.SLOTS
    return {p: values[j, s * per:(s + 1) * per] for j, p in enumerate(WATER_ALL_PARAMETERS)}


def test_same_seed_same_bytes_whatever_the_split(plan):
    n = plan.water_plan.n_sites
    whole = plan.water_chunk(0, n)
    parts = pa.concat_tables([plan.water_chunk(a, min(n, a + 3)) for a in range(0, n, 3)])
    assert whole.equals(parts)
    again = Plan(build_city(resolve_scale("tiny", days=21), 7), 7).water_chunk(0, n)
    assert whole.equals(again)
    other = Plan(build_city(resolve_scale("tiny", days=21), 8), 8).water_chunk(0, n)
    assert not whole.equals(other)
    assert whole.column_names[2:] == list(WATER_ALL_PARAMETERS)


def test_truth_has_event_types_faults_and_dosing(plan):
    t = plan.truth_tables()
    ar, ev = t["event_arrivals"].to_pydict(), t["pollution_events"].to_pydict()
    assert set(ar["event_type"]) == set(water.EVENT_TYPES) == set(ev["event_type"])
    # existing columns are kept
    assert t["event_arrivals"].column_names[:5] == ["event_id", "site_id", "start", "end", "peak_factor"]
    assert t["pollution_events"].column_names[:5] == ["event_id", "discharge_id", "start", "end", "magnitude"]
    short = [d for d, k in zip(ev["discharge_id"], ev["event_type"], strict=True) if k == "short_event"]
    assert short and set(short) == {-1}
    faults = t["sensor_faults"].to_pydict()
    assert set(faults["fault_type"]) == set(water.FAULT_TYPES)
    assert set(faults["parameter"]) <= set(WATER_ALL_PARAMETERS) and "do_mgl" not in faults["parameter"]
    assert t["dosing_changes"].num_rows > 0


def test_faults_show_in_the_data_and_are_not_events(plan, values):
    wp = plan.water_plan
    fa = wp.faults
    per = plan.n_days * water.SLOTS
    slot = float(WATER_INTERVAL_S)
    stuck, spikes = 0, []
    for s, code, p, a, b, m in zip(fa["site_id"], fa["fault_type"], fa["param"], fa["start_s"], fa["end_s"],
                                   fa["magnitude"], strict=True):
        x = values[p, s * per:(s + 1) * per]
        r0, r1 = int(np.ceil(a / slot)), min(int(np.ceil(b / slot)), per)
        if water.FAULT_TYPES[code] == "stuck" and r1 - r0 >= 3:
            assert np.all(x[r0:r1] == x[r0])
            stuck += 1
        if water.FAULT_TYPES[code] == "spike" and 1 <= r0 < per - 1:
            spikes.append(abs(x[r0] - 0.5 * (x[r0 - 1] + x[r0 + 1])) >= 0.5 * abs(m))
    # a spike stands out of its neighbours by about its magnitude (events, stuck runs and the
    # physical floor hide a few)
    assert stuck > 0 and len(spikes) > 10 and np.mean(spikes) > 0.8
    # fault windows are not in the quality-event truth
    ar = plan.truth_tables()["event_arrivals"]
    assert "fault_type" not in ar.column_names and set(ar["event_type"].to_pylist()) <= set(water.EVENT_TYPES)


def test_short_events_are_short_and_move_the_data(plan, values):
    sh = plan.water_plan.short
    dur = (sh["end_s"] - sh["start_s"]) / 60.0
    assert dur.min() >= 11.0 and dur.max() <= 160.0
    lo, hi = BANDS["duration_median_min"][1]
    assert lo <= np.median(dur) <= hi
    # a short event moves its parameters by the drawn shift (in noise SDs) times the covered share
    moved = (sh["shift_sd"] != 0).sum(axis=1)
    assert moved.min() >= 1 and 1.5 < moved.mean() < 4.0


def test_dosing_changes_step_the_chlorine_residual(plan, values):
    dc = plan.water_plan.dosing
    per = plan.n_days * water.SLOTS
    slot = float(WATER_INTERVAL_S)
    ratios = []
    for s, t, f in zip(dc["site_id"], dc["time_s"], dc["factor"], strict=True):
        r = int(np.ceil(t / slot))
        if 8 <= r < per - 8:
            cl = values[water.P_CL, s * per:(s + 1) * per]
            ratios.append((np.median(cl[r:r + 8]) / np.median(cl[r - 8:r]), f))
    ratios = np.array(ratios)
    # the level after / before follows the dose factor (noise and flow blur single changes)
    assert np.corrcoef(np.log(ratios[:, 0]), np.log(ratios[:, 1]))[0, 1] > 0.6


def test_calibrated_statistics_inside_their_bands(plan, values):
    n = plan.water_plan.n_sites
    sites = [_site(values, plan, s) for s in range(n)]
    checks = {
        "lag1_15min_temperature_c": [lag1(x["temperature_c"]) for x in sites],
        "lag1_15min_ph": [lag1(x["ph"]) for x in sites],
        "lag1_15min_orp_mv": [lag1(x["orp_mv"]) for x in sites],
        "daily_range_temperature_c": [daily_range(x["temperature_c"], 96) for x in sites],
        "daily_range_do_mgl": [daily_range(x["do_mgl"], 96) for x in sites],
        "spike_rate_turbidity_ntu": [spike_rate(x["turbidity_ntu"]) for x in sites],
    }
    for name, vals in checks.items():
        lo, hi = BANDS[name][1]
        assert lo <= float(np.nanmedian(vals)) <= hi, (name, np.nanmedian(vals))
    per_day = plan.water_plan.short["site_id"].size / (n * plan.n_days)
    lo, hi = BANDS["events_per_day"][1]
    assert lo <= per_day <= hi
