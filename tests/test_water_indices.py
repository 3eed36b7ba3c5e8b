"""CCME WQI, weighted-arithmetic WQI and exceedance episodes against plain-Python references."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi
from uda.waterq.indices import ccme_category

NAN = math.nan


# ---- plain-Python references -------------------------------------------------------------

def ref_ccme(rows, lower, upper):
    """CCME WQI 1.0 (CCME 2001 technical report), written as the manual states it."""
    n_params = len(lower)
    tested, failed_vars, tests, failed, exc = 0, 0, 0, 0, 0.0
    for j in range(n_params):
        lo, hi = lower[j], upper[j]
        if math.isnan(lo) and math.isnan(hi):
            continue
        vals = [r[j] for r in rows if not math.isnan(r[j])]
        if not vals:
            continue
        tested += 1
        var_failed = 0
        for v in vals:
            tests += 1
            if not math.isnan(hi) and v > hi:
                var_failed += 1
                exc += v / hi - 1
            elif not math.isnan(lo) and v < lo:
                var_failed += 1
                exc += lo / v - 1
        failed += var_failed
        failed_vars += var_failed > 0
    if tests == 0:
        return (NAN,) * 4
    f1 = 100 * failed_vars / tested
    f2 = 100 * failed / tests
    nse = exc / tests
    f3 = nse / (0.01 * nse + 0.01)
    return max(0.0, 100 - math.sqrt(f1**2 + f2**2 + f3**2) / 1.732), f1, f2, f3


def ref_wa(rows, ideal, standard):
    num = den = 0.0
    for j in range(len(ideal)):
        if math.isnan(standard[j]):
            continue
        vals = [r[j] for r in rows if not math.isnan(r[j])]
        if not vals:
            continue
        q = 100 * abs(sum(vals) / len(vals) - ideal[j]) / abs(standard[j] - ideal[j])
        num += q / standard[j]
        den += 1 / standard[j]
    return num / den if den else NAN


def ref_episodes(ts, col, lo, hi, max_gap):
    eps, cur = [], None
    for t, v in zip(ts, col, strict=True):
        d = 0
        if not math.isnan(v):
            d = 1 if (not math.isnan(hi) and v > hi) else (-1 if (not math.isnan(lo) and v < lo) else 0)
        if cur and (d != cur["dir"] or t - cur["end"] > max_gap):
            eps.append(cur)
            cur = None
        if d == 0:
            continue
        if cur is None:
            cur = {"dir": d, "start": t, "end": t, "peak": v, "n": 0}
        cur["end"] = t
        cur["n"] += 1
        cur["peak"] = max(cur["peak"], v) if d > 0 else min(cur["peak"], v)
    if cur:
        eps.append(cur)
    return eps


# ---- the worked example (derivation in docs/water.md) -----------------------------------

A = [8.0, 12.0, 9.0, 15.0]   # upper 10
B = [6.0, 4.0, 7.0, 5.0]     # lower 5 (like dissolved oxygen)
C = [7.0, 7.5, 10.0, 6.0]    # range 6.5-9.0 (like pH)
D = [0.5, 0.2, 0.1, 0.3]     # upper 1, never fails
LOWER = np.array([NAN, 5.0, 6.5, NAN])
UPPER = np.array([10.0, NAN, 9.0, 1.0])


def test_ccme_worked_example():
    values = np.array([A, B, C, D]).T
    wqi, f1, f2, f3, n_tests, n_failed = ccme_wqi(values, np.array([0, 4]), LOWER, UPPER)
    assert f1[0] == 75.0                 # 3 of 4 variables fail
    assert f2[0] == 31.25                # 5 of 16 tests fail
    # excursions 0.2 + 0.5 + 0.25 + 1/9 + 1/12 = 1.1444..., nse = 0.0715278, F3 = 6.6753
    assert f3[0] == pytest.approx(6.6753, abs=1e-4)
    assert wqi[0] == pytest.approx(52.93, abs=0.005)
    assert (n_tests[0], n_failed[0]) == (16, 5)
    assert ccme_category(wqi[0]) == "Marginal"


def test_categories():
    assert [ccme_category(x) for x in (100, 95, 94.9, 80, 79.9, 65, 64.9, 45, 44.9, 0)] == [
        "Excellent", "Excellent", "Good", "Good", "Fair", "Fair", "Marginal", "Marginal",
        "Poor", "Poor"]
    assert ccme_category(NAN) == ""


def test_all_pass_is_100_and_untested_is_nan():
    values = np.array([[5.0, 7.0], [6.0, NAN], [NAN, NAN]])
    wqi, f1, *_ = ccme_wqi(values, np.array([0, 2, 3]), np.array([NAN, 6.5]),
                           np.array([10.0, 9.0]))
    assert wqi[0] == 100.0 and f1[0] == 0.0
    assert math.isnan(wqi[1])


def test_zero_value_below_lower_limit_is_finite():
    wqi, *_ = ccme_wqi(np.array([[0.0]]), np.array([0, 1]), np.array([5.0]), np.array([NAN]))
    assert 0.0 <= wqi[0] < 100.0


def test_weighted_arithmetic_example():
    values = np.array([A, B, C, D]).T
    ideal = np.array([0.0, 14.6, 7.0, 0.0])
    standard = np.array([10.0, 5.0, 8.5, 1.0])
    got = weighted_arithmetic_wqi(values, np.array([0, 4]), ideal, standard)
    # means 11, 5.5, 7.625, 0.275 -> Q = 110, 94.79, 41.67, 27.5; W = 0.1, 0.2, 0.1176, 1
    q = np.array([110.0, 100 * 9.1 / 9.6, 100 * 0.625 / 1.5, 27.5])
    w = 1 / standard
    assert got[0] == pytest.approx((q * w).sum() / w.sum())
    assert got[0] == pytest.approx(ref_wa(values.tolist(), ideal, standard))


finite = st.floats(min_value=0.01, max_value=50, allow_nan=False)
maybe = st.one_of(finite, st.just(NAN))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(maybe, min_size=3, max_size=3), min_size=1, max_size=30),
       st.integers(1, 4))
def test_ccme_and_wa_match_reference(rows, n_groups):
    values = np.array(rows)
    cuts = np.unique(np.linspace(0, len(rows), n_groups + 1).astype(np.int64))
    lower = np.array([NAN, 5.0, 2.0])
    upper = np.array([10.0, NAN, 20.0])
    wqi, f1, f2, f3, *_ = ccme_wqi(values, cuts, lower, upper)
    wa = weighted_arithmetic_wqi(values, cuts, np.array([0.0, 14.6, 7.0]),
                                 np.array([10.0, 5.0, 20.0]))
    for g in range(len(cuts) - 1):
        grp = values[cuts[g]:cuts[g + 1]].tolist()
        ref = ref_ccme(grp, lower, upper)
        np.testing.assert_allclose([wqi[g], f1[g], f2[g], f3[g]], ref, rtol=1e-9)
        np.testing.assert_allclose(wa[g], ref_wa(grp, [0.0, 14.6, 7.0], [10.0, 5.0, 20.0]),
                                   rtol=1e-9)


def test_episodes_example():
    ts = np.arange(8, dtype=np.int64) * 900_000
    col = np.array([1.0, 12.0, 15.0, 11.0, 5.0, 3.0, NAN, 3.0])
    g, p, d, s, e, peak, n = exceedance_episodes(ts, col[:, None], np.array([0, 8]),
                                                np.array([4.0]), np.array([10.0]), 900_000)
    assert d.tolist() == [-1, 1, -1, -1]
    assert s.tolist() == [0, 900_000, 5 * 900_000, 7 * 900_000]
    assert e.tolist() == [0, 3 * 900_000, 5 * 900_000, 7 * 900_000]
    assert peak.tolist() == [1.0, 15.0, 3.0, 3.0]
    assert n.tolist() == [1, 3, 1, 1]


def test_episode_broken_by_time_gap_and_groups():
    ts = np.array([0, 1, 5, 0, 1], dtype=np.int64)
    col = np.array([[20.0], [20.0], [20.0], [20.0], [20.0]])
    g, p, d, s, e, peak, n = exceedance_episodes(ts, col, np.array([0, 3, 5]),
                                                np.array([NAN]), np.array([10.0]), 2)
    assert g.tolist() == [0, 0, 1]
    assert n.tolist() == [2, 1, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), maybe), min_size=0, max_size=40))
def test_episodes_match_reference(steps):
    ts = np.cumsum([0] + [s for s, _ in steps[1:]]).astype(np.int64) if steps else np.zeros(0, np.int64)
    col = np.array([v for _, v in steps], dtype=np.float64)
    lo, hi = 5.0, 30.0
    g, p, d, s, e, peak, n = exceedance_episodes(ts, col.reshape(-1, 1),
                                                np.array([0, len(steps)]), np.array([lo]),
                                                np.array([hi]), 2)
    ref = ref_episodes(ts.tolist(), col.tolist(), lo, hi, 2)
    assert d.tolist() == [r["dir"] for r in ref]
    assert s.tolist() == [r["start"] for r in ref]
    assert e.tolist() == [r["end"] for r in ref]
    assert peak.tolist() == [r["peak"] for r in ref]
    assert n.tolist() == [r["n"] for r in ref]
