"""Detectors over every parameter: kernels against plain-Python references, fitting and scoring."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels.residuals import causal_residuals, cusum_two_sided, hysteresis, robust_distance
from uda.waterq.block import Block, split_train
from uda.waterq.events import per_sample_f1
from uda.waterq.generic import apply_detectors, fit_detectors
from uda.waterq.settings import DetectOptions


def _ref_residuals(x, window, min_periods, scale, gate, max_mask):
    """Plain Python: median of the last `window` accepted values; gate with a bounded mask."""
    acc, out, rejected, opened = [], [], 0, False
    for v in x:
        if math.isnan(v):
            out.append(math.nan)
            continue
        r = (v - float(np.median(acc[-window:]))) / scale if len(acc[-window:]) >= min_periods else math.nan
        out.append(r)
        take = True
        if not math.isnan(r) and abs(r) > gate:
            if opened or rejected >= max_mask:
                opened = True
            else:
                rejected += 1
                take = False
        else:
            rejected, opened = 0, False
        if take:
            acc.append(v)
    return np.array(out)


series = st.lists(st.one_of(st.floats(-50, 50, allow_nan=False), st.just(math.nan),
                            st.sampled_from([0.0, 1.0, 30.0])), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(a=series, b=series, window=st.integers(1, 9), min_periods=st.integers(1, 5),
       gate=st.sampled_from([math.inf, 0.5, 3.0]), max_mask=st.integers(0, 4))
def test_causal_residuals_match_reference(a, b, window, min_periods, gate, max_mask):
    min_periods = min(min_periods, window)
    x = np.array(a + b)
    offsets = np.array([0, len(a), len(a) + len(b)], dtype=np.int64)
    scale = np.array([[2.0], [0.5]])
    got = causal_residuals(x.reshape(-1, 1), offsets, window, min_periods, scale, gate, max_mask)[:, 0]
    want = np.r_[_ref_residuals(a, window, min_periods, 2.0, gate, max_mask),
                 _ref_residuals(b, window, min_periods, 0.5, gate, max_mask)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-8, 8, allow_nan=False), st.just(math.nan)), min_size=1, max_size=50),
       st.floats(0, 2), st.floats(0.5, 5))
def test_cusum_two_sided_matches_recursion(z, k, clip):
    x = np.array(z)
    got = cusum_two_sided(x.reshape(-1, 1), np.array([0, x.size], dtype=np.int64), k, clip)[:, 0]
    hi = lo = 0.0
    want = []
    for v in x:
        if not math.isnan(v):
            v = min(max(v, -clip), clip)
            hi, lo = max(0.0, hi + v - k), max(0.0, lo - v - k)
        want.append(max(hi, lo))
    np.testing.assert_allclose(got, want, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 10, allow_nan=False), st.just(math.nan)), min_size=1, max_size=50),
       st.floats(1, 6), st.integers(1, 4), st.integers(0, 49))
def test_hysteresis_matches_state_machine(s, on, min_on, cut):
    x = np.array(s)
    cut = min(cut, x.size)
    got = hysteresis(x, np.array([0, cut, x.size], dtype=np.int64), on, on / 2, min_on)
    want = []
    for part in (x[:cut], x[cut:]):
        run, alarm = 0, False
        for v in part:
            v = -np.inf if math.isnan(v) else v
            run = run + 1 if v >= on else 0
            alarm = (alarm and v >= on / 2) or run >= min_on
            want.append(alarm)
    assert got.tolist() == want


def test_robust_distance_is_mahalanobis():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 3))
    z[4, 1] = np.nan
    a = rng.normal(size=(3, 3))
    prec = a @ a.T + np.eye(3)
    got = robust_distance(z, prec, 1.5)
    v = np.nan_to_num(np.clip(z, -1.5, 1.5))
    want = np.sqrt(np.einsum("ij,jk,ik->i", v, prec, v) / 3)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_per_sample_f1():
    flags = np.array([1, 1, 0, 0, 1], bool)
    labels = np.array([1, 0, 1, 0, 1], bool)
    p, r, f = per_sample_f1(flags, labels)
    assert (p, r) == (2 / 3, 2 / 3) and f == pytest.approx(2 / 3)
    assert per_sample_f1(np.zeros(5, bool), labels)[2] == 0.0


def _block(seed=0, n=4000, n_events=16):
    """Two noisy quantised parameters and a random walk; events shift p0 and p1 for 20 samples."""
    rng = np.random.default_rng(seed)
    v = np.column_stack([np.round(10 + rng.normal(0, 0.3, n), 1), 5 + rng.normal(0, 0.1, n),
                         np.cumsum(rng.normal(0, 1, n))])
    labels = np.zeros(n, bool)
    for s in np.linspace(300, n - 100, n_events).astype(int):
        v[s:s + 20, 0] += 1.5
        v[s:s + 20, 1] -= 0.5
        labels[s:s + 20] = True
    v[rng.random(n) < 0.02] = np.nan
    ts = np.arange(n, dtype=np.int64) * 60_000
    return Block.from_arrays(np.zeros(n, np.int64), ts, v, ("p0", "p1", "walk")), labels


def test_fitted_detectors_use_only_the_training_part():
    block, labels = _block()
    train = split_train(block.offsets, 0.5)
    opts = DetectOptions(forecast_s=3600)
    a = fit_detectors(block, labels, train, 60.0, opts)
    # labels and values of the test part change: nothing fitted may move
    other = labels.copy()
    other[~train] = ~other[~train]
    block.values[~train] *= 3
    b = fit_detectors(block, other, train, 60.0, opts)
    assert a.thresholds == b.thresholds and a.train_f1 == b.train_f1
    np.testing.assert_array_equal(a.tail, b.tail)


def test_detectors_find_shifts_and_causality():
    block, labels = _block()
    train = split_train(block.offsets, 0.5)
    opts = DetectOptions(forecast_s=3600)
    fitted = fit_detectors(block, labels, train, 60.0, opts)
    scores, flags = apply_detectors(block, fitted, opts)
    test = ~train
    for name in ("residual", "distance", "supervised"):
        assert per_sample_f1(flags[name][test], labels[test])[2] > 0.7, name
    # causal: changing the future leaves earlier scores unchanged
    cut = 3000
    later = Block(block.sites, block.offsets, block.ts, block.values.copy(), block.params)
    later.values[cut:] += 100
    s2, f2 = apply_detectors(later, fitted, opts)
    for name in scores:
        np.testing.assert_array_equal(scores[name][:cut], s2[name][:cut])
        np.testing.assert_array_equal(flags[name][:cut], f2[name][:cut])


def test_registry_declares_each_detector_once_with_its_history():
    """Every detector is registered once; the pipelines run exactly the registered ones, in order."""
    from uda.waterq.detectors import GENERIC_DETECTORS, REGISTRY, SIGNATURE_DETECTORS, warm_up
    from uda.waterq.settings import WaterOptions

    assert set(SIGNATURE_DETECTORS) | set(GENERIC_DETECTORS) == set(REGISTRY)
    assert not set(SIGNATURE_DETECTORS) & set(GENERIC_DETECTORS)
    fields = WaterOptions.__dataclass_fields__
    for name in SIGNATURE_DETECTORS:  # a fixed threshold, read from the settings
        assert REGISTRY[name].threshold in fields, name
    for name in GENERIC_DETECTORS:  # a fitted threshold
        assert REGISTRY[name].threshold is None, name
    # history: the signature baseline's min_periods; the generic forecast window's quarter (>= 4)
    assert warm_up("signature", WaterOptions(min_periods=30), 900.0) == 30
    assert warm_up("generic", DetectOptions(forecast_s=3600), 60.0) == 15
    assert warm_up("generic", DetectOptions(forecast_s=600), 60.0) == 4
    block, labels = _block()
    train = split_train(block.offsets, 0.5)
    opts = DetectOptions(forecast_s=3600)
    fitted = fit_detectors(block, labels, train, 60.0, opts)
    assert fitted.min_periods == warm_up("generic", opts, 60.0)
    scores, flags = apply_detectors(block, fitted, opts)
    assert tuple(scores) == tuple(flags) == GENERIC_DETECTORS
    # the history is the warm-up: no residual score before min_periods samples
    assert np.isnan(scores["residual"][:fitted.min_periods]).all()
    no_labels = fit_detectors(block, None, train, 60.0, opts)
    needs = {n for n in GENERIC_DETECTORS if REGISTRY[n].needs_labels}
    assert tuple(apply_detectors(block, no_labels, opts)[0]) == tuple(n for n in GENERIC_DETECTORS
                                                                      if n not in needs)
