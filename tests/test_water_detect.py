"""Detector kernels against plain-Python references, event scoring and mass balance."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.contract import WATER_PARAMETERS
from uda.kernels.detect import (
    alarm_runs,
    cusum,
    masked_baseline,
    multivariate_score,
    rolling_baseline,
    rolling_baseline_series,
    window_max,
)
from uda.waterq.block import Block
from uda.waterq.detectors import detector_alarms
from uda.waterq.events import score_events
from uda.waterq.massbalance import lagged_upstream, mass_balance_pair, unexplained_gain
from uda.waterq.settings import WaterOptions

NAN = math.nan


def ref_baseline(x, window, min_periods, min_scale):
    med = np.full(len(x), np.nan)
    scale = np.full(len(x), np.nan)
    for i in range(len(x)):
        w = np.array(x[max(0, i - window):i], dtype=float)
        w = w[~np.isnan(w)]
        if len(w) >= max(min_periods, 1):
            med[i] = np.median(w)
            scale[i] = max(1.4826 * np.median(np.abs(w - med[i])), min_scale)
    return med, scale


maybe = st.one_of(st.floats(-100, 100, allow_nan=False), st.just(NAN), st.sampled_from([0.0, 1.0]))


@settings(max_examples=80, deadline=None)
@given(st.lists(maybe, max_size=60), st.integers(1, 12), st.integers(1, 5))
def test_rolling_baseline_matches_numpy(x, window, min_periods):
    min_periods = min(min_periods, window)
    x = np.array(x, dtype=float)
    med, scale = rolling_baseline_series(x, window, min_periods, 1e-3)
    rmed, rscale = ref_baseline(x, window, min_periods, 1e-3)
    np.testing.assert_allclose(med, rmed, equal_nan=True)
    np.testing.assert_allclose(scale, rscale, equal_nan=True)


def test_rolling_baseline_groups_do_not_mix():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 2))
    off = np.array([0, 20, 50])
    med, scale = rolling_baseline(v, off, 8, 3, np.array([0.01, 0.01]))
    for g in range(2):
        for j in range(2):
            m, s = ref_baseline(v[off[g]:off[g + 1], j], 8, 3, 0.01)
            np.testing.assert_allclose(med[off[g]:off[g + 1], j], m, equal_nan=True)
            np.testing.assert_allclose(scale[off[g]:off[g + 1], j], s, equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-20, 20), st.just(NAN)), min_size=1, max_size=40),
       st.floats(0, 3), st.floats(0.5, 10))
def test_cusum_matches_reference(z, k, clip):
    z = np.array(z, dtype=float)
    got = cusum(z.reshape(-1, 1), np.array([0, z.size]), k, clip)[:, 0]
    s, ref = 0.0, []
    for v in z:
        if not math.isnan(v):
            s = max(0.0, s + min(v, clip) - k)
        ref.append(s)
    np.testing.assert_allclose(got, ref)


def test_cusum_restarts_per_group():
    z = np.full((6, 1), 5.0)
    got = cusum(z, np.array([0, 3, 6]), 1.0, 10.0)[:, 0]
    assert got.tolist() == [4, 8, 12, 4, 8, 12]


def test_multivariate_score_reference():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 8, size=(30, 4))
    z[3, 1] = NAN
    d = np.array([1.0, -1.0, 0.0, 1.0])
    got = multivariate_score(z, d, 5.0)
    ref = [sum(min(max(z[i, j] * d[j], -5), 5) for j in range(4)
               if d[j] != 0 and not math.isnan(z[i, j])) / math.sqrt(3) for i in range(30)]
    np.testing.assert_allclose(got, ref)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), max_size=40), st.integers(0, 3), st.integers(0, 40))
def test_alarm_runs_reference(flags, gap, cut):
    f = np.array(flags, dtype=bool)
    cut = min(cut, f.size)
    off = np.array([0, cut, f.size])
    g, first, last = alarm_runs(f, off, gap)
    ref = []
    for grp in range(2):
        cur = None
        for i in range(off[grp], off[grp + 1]):
            if not f[i]:
                continue
            if cur and i - cur[2] - 1 <= gap:
                cur[2] = i
            else:
                cur = [grp, i, i]
                ref.append(cur)
    assert list(zip(g.tolist(), first.tolist(), last.tolist(), strict=True)) == [tuple(r) for r in ref]


def test_window_max_reference():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(25, 2))
    x[5:9, 0] = NAN
    off = np.array([0, 10, 25])
    got = window_max(x, off, 3, 1)
    for g in range(2):
        a, b = off[g], off[g + 1]
        for i in range(a, b):
            for j in range(2):
                w = x[max(a, i - 3):min(b, i + 2), j]
                w = w[~np.isnan(w)]
                np.testing.assert_equal(got[i, j], w.max() if w.size else NAN)


def test_lagged_upstream_interpolates():
    up_ts = np.arange(5, dtype=np.int64) * 1000
    up = np.array([[0.0], [10.0], [20.0], [NAN], [40.0]])
    got = lagged_upstream(np.array([1500, 2500, 10_000], dtype=np.int64), up_ts, up, 500.0)
    np.testing.assert_allclose(got[:, 0], [10.0, 20.0, NAN])


# ---- event scoring -----------------------------------------------------------------------

H = 3_600_000


def test_score_events_counts_and_delay():
    ev_key = np.array([1, 1, 2])
    ev_s = np.array([10 * H, 50 * H, 10 * H])
    ev_e = ev_s + 2 * H
    # site 1: one alarm inside event 1 (30 min late), one within tolerance after event 2,
    # one false alarm; site 2: nothing; site 3: a false alarm.
    al_key = np.array([1, 1, 1, 3])
    al_s = np.array([10 * H + H // 2, 52 * H + H // 2, 30 * H, 5 * H])
    al_e = al_s + H // 4
    sc = score_events(al_key, al_s, al_e, ev_key, ev_s, ev_e, tolerance=H)
    assert (sc.n_events, sc.n_detected, sc.n_alarms, sc.n_false_alarms) == (3, 2, 4, 2)
    assert sc.recall == pytest.approx(2 / 3)
    assert sc.precision == pytest.approx(0.5)
    assert sc.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert sc.median_delay_s == pytest.approx((1800 + 9000) / 2)


def test_score_events_ignored_and_early_alarm():
    ev_key, ev_s, ev_e = np.array([1]), np.array([10 * H]), np.array([12 * H])
    # An alarm already raised before the event counts with delay 0; one matching only an
    # ignored (small) event is not counted.
    sc = score_events(np.array([1, 1]), np.array([9 * H, 30 * H]), np.array([11 * H, 30 * H]),
                      ev_key, ev_s, ev_e, tolerance=0, ignore_key=np.array([1]),
                      ignore_start=np.array([30 * H]), ignore_end=np.array([31 * H]))
    assert (sc.n_alarms, sc.n_false_alarms, sc.median_delay_s) == (1, 0, 0.0)
    none = score_events(np.zeros(0), np.zeros(0), np.zeros(0), ev_key, ev_s, ev_e, tolerance=0)
    assert none.recall == 0.0 and math.isnan(none.precision) and none.f1 == 0.0


# ---- detectors on synthetic series with known events -------------------------------------

def synthetic(n_days=6, events=((2.0, 3.0), (4.5, 2.0)), seed=0, amp=0.8):
    """One site: diurnal temperature/DO, noise, and plumes (start day, hours) like the generator."""
    rng = np.random.default_rng(seed)
    n = n_days * 96
    t = np.arange(n)
    h = (t % 96) / 4.0
    diurnal = np.sin(2 * np.pi * (h - 9) / 24)
    v = np.empty((n, len(WATER_PARAMETERS)))
    v[:, 0] = 10 + diurnal + 0.3 * rng.normal(size=n)
    v[:, 1] = 7.5 + 0.1 * diurnal + 0.04 * rng.normal(size=n)
    v[:, 2] = 10 + 0.2 * diurnal + 0.12 * rng.normal(size=n)
    v[:, 3] = 5 * np.exp(0.15 * rng.normal(size=n))
    v[:, 4] = 500 + 6 * rng.normal(size=n)
    v[:, 5] = 2 + 0.08 * rng.normal(size=n)
    v[:, 6] = 0.05 * np.exp(0.25 * rng.normal(size=n))
    truth = []
    for day, hours in events:
        s, e = int(day * 96), int(day * 96 + hours * 4)
        a = amp * np.sin(np.pi * (t[s:e] - s) / (e - s))
        v[s:e, 6] += 1.2 * a
        v[s:e, 3] += 35 * a
        v[s:e, 4] += 250 * a
        v[s:e, 2] -= 2 * a
        truth.append((s * 900_000, e * 900_000))
    ts = t.astype(np.int64) * 900_000
    return ts, v, truth


@pytest.mark.parametrize("seed", [0, 1])
def test_detectors_find_synthetic_events(seed):
    ts, v, truth = synthetic(seed=seed)
    block = Block.from_arrays(np.zeros(ts.size, np.int64), ts, v, WATER_PARAMETERS)
    opts = WaterOptions(window=96)
    al = detector_alarms(block, opts)
    for d in (1, 2):  # cusum and multivariate
        sel = al["alarm_detector"] == d
        sc = score_events(al["alarm_site"][sel], al["alarm_start"][sel], al["alarm_end"][sel],
                          np.zeros(2), np.array([s for s, _ in truth]),
                          np.array([e for _, e in truth]), tolerance=3_600_000)
        assert sc.recall == 1.0 and sc.precision == 1.0
        assert 0 <= sc.median_delay_s < 2 * 3600


def test_no_event_no_alarm_from_multivariate():
    ts, v, _ = synthetic(events=(), seed=3)
    block = Block.from_arrays(np.zeros(ts.size, np.int64), ts, v, WATER_PARAMETERS)
    al = detector_alarms(block, WaterOptions(window=96))
    assert (al["alarm_detector"] == 2).sum() == 0


def test_mass_balance_flags_local_discharge_not_upstream_plume():
    # Upstream site carries a plume (day 2) that reaches downstream 30 min later,
    # attenuated; a discharge between them adds a plume at day 4 only downstream.
    ts, up, _ = synthetic(events=((2.0, 3.0),), seed=4)
    _, down, _ = synthetic(events=(), seed=5)
    lag = 2 * 900_000
    plume = up - synthetic(events=(), seed=4)[1]
    down[2:] += 0.95 * plume[:-2]
    _, local, _ = synthetic(events=((4.0, 2.0),), seed=5)
    down += local - synthetic(events=(), seed=5)[1]
    res = mass_balance_pair(7, (ts, down), [(ts, up, lag / 1000)], WATER_PARAMETERS, WaterOptions())
    assert res["mb_site"].tolist() == [7]
    assert 4 * 96 * 900_000 <= res["mb_start"][0] <= (4 * 96 + 8) * 900_000


def ref_masked(values, window, min_periods, min_scale, dirs, clip, threshold, max_mask):
    n, p = values.shape
    med = np.full((n, p), np.nan)
    scale = np.full((n, p), np.nan)
    accepted = [[] for _ in range(p)]
    m = max(int((dirs != 0).sum()), 1)
    run = 0
    for i in range(n):
        score = 0.0
        for j in range(p):
            w = np.array(accepted[j][-window:])
            if len(w) >= max(min_periods, 1):
                med[i, j] = np.median(w)
                scale[i, j] = max(1.4826 * np.median(np.abs(w - med[i, j])), min_scale[j])
                if dirs[j] != 0 and not np.isnan(values[i, j]):
                    score += min(max(dirs[j] * (values[i, j] - med[i, j]) / scale[i, j], -clip), clip)
        if score / math.sqrt(m) > threshold and run < max_mask:
            run += 1
            continue
        run = 0
        for j in range(p):
            if not np.isnan(values[i, j]):
                accepted[j].append(values[i, j])
    return med, scale


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 10), st.integers(0, 4), st.floats(0.5, 4))
def test_masked_baseline_matches_reference(seed, window, max_mask, threshold):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(60, 3))
    v[rng.random((60, 3)) < 0.1] = NAN
    v[20:30, 0] += 8  # a plume on the first parameter
    dirs = np.array([1.0, -1.0, 0.0])
    floor = np.full(3, 0.05)
    off = np.array([0, 25, 60])
    got_m, got_s = masked_baseline(v, off, window, 2, floor, dirs, 3.0, threshold, max_mask)
    for g in range(2):
        a, b = off[g], off[g + 1]
        rm, rs = ref_masked(v[a:b], window, 2, floor, dirs, 3.0, threshold, max_mask)
        np.testing.assert_allclose(got_m[a:b], rm, equal_nan=True)
        np.testing.assert_allclose(got_s[a:b], rs, equal_nan=True)


def test_masked_baseline_stays_on_clean_water():
    # A long plume: the plain median drifts into it, the masked one does not.
    x = np.r_[np.random.default_rng(0).normal(0, 1, 200), np.full(150, 20.0)].reshape(-1, 1)
    off = np.array([0, x.shape[0]])
    plain, _ = rolling_baseline(x, off, 100, 10, np.array([0.1]))
    masked, _ = masked_baseline(x, off, 100, 10, np.array([0.1]), np.array([1.0]), 10.0, 5.0, 10_000)
    assert plain[-1, 0] == 20.0
    assert abs(masked[-1, 0]) < 1.0


def test_unexplained_gain_envelope():
    ts = np.arange(200, dtype=np.int64) * 900_000
    t = np.arange(200.0)

    def plume(start, length, amp):
        x = np.zeros(200)
        k = (t >= start) & (t < start + length)
        x[k] = amp * np.sin(np.pi * (t[k] - start) / length)
        return x

    up = plume(50, 16, 1.0)
    # downstream: the same plume 2 samples later, 10 % longer and 5 % weaker, plus a local one
    down = plume(52, 17.6, 0.95) + plume(120, 8, 0.5)
    gain = unexplained_gain([(ts, down[:, None], [(ts, up[:, None], 2 * 900_000.0)])], slack_before=8)
    assert gain[45:75, 0].max() < 0.05
    assert gain[120:128, 0].max() > 0.45
    assert np.isnan(gain[0, 0])  # no upstream record yet (the envelope looks one sample ahead)
    # several sites in one call: each site's rows as if alone (the envelope never crosses sites)
    second = (ts[:120], plume(30, 10, 0.7)[:120, None], [(ts, up[:, None], 0.0)])
    both = unexplained_gain([(ts, down[:, None], [(ts, up[:, None], 2 * 900_000.0)]), second], slack_before=8)
    np.testing.assert_array_equal(both[:200], gain)
    np.testing.assert_array_equal(both[200:], unexplained_gain([second], slack_before=8))
    assert both[230:240, 0].max() > 0.6  # the second site's own plume, upstream has none then
