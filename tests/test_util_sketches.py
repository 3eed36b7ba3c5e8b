"""Mergeable sketches: HyperLogLog and the log-bucket quantile sketch against exact answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels.sketches import (
    QS_ALPHA,
    hll_add,
    hll_error,
    hll_estimate,
    hll_merge,
    hll_new,
    qs_add,
    qs_merge,
    qs_new,
    qs_quantile,
    qs_representatives,
)


@pytest.mark.parametrize("n", [0, 1, 10, 1000, 20_000, 300_000])
def test_hll_within_stated_error(n):
    rng = np.random.default_rng(n)
    keys = rng.permutation(np.arange(n, dtype=np.int64) * 7919 + 13)
    keys = np.concatenate([keys, keys[: n // 3]])  # repeats do not count
    reg = hll_new()
    hll_add(reg, keys)
    est = hll_estimate(reg)
    if n == 0:
        assert est == 0.0
    else:
        # 4 standard errors, and linear counting is near exact for small n
        assert abs(est - n) <= max(4 * hll_error(reg) * n, 0.02 * n + 1)


def test_hll_merge_equals_single_pass():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 10**12, 50_000)
    whole = hll_new()
    hll_add(whole, keys)
    parts = [hll_new() for _ in range(4)]
    for p, chunk in zip(parts, np.array_split(keys, 4), strict=True):
        hll_add(p, chunk)
    merged = hll_new()
    for p in parts:
        hll_merge(merged, p)
    np.testing.assert_array_equal(merged, whole)


def _hll_reference(keys, p):
    """HyperLogLog registers in plain Python: splitmix64 of ``key ^ salt``, index the top ``p`` bits,
    rank 1 + the leading zeros of the other ``64 - p`` bits (at most ``64 - p + 1``)."""
    mask = (1 << 64) - 1
    reg = [0] * (1 << p)
    for k in keys:
        x = (int(k) & mask) ^ 0x2545F4914F6CDD1D
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask
        x ^= x >> 31
        rest = (x << p) & mask
        rank = min(64 - rest.bit_length() + 1, 64 - p + 1)
        reg[x >> (64 - p)] = max(reg[x >> (64 - p)], rank)
    return reg


@pytest.mark.parametrize("p", [4, 12])
def test_hll_registers_equal_reference(p):
    keys = np.concatenate([np.random.default_rng(7).integers(-(2**62), 2**62, 5000),
                           [0, -1, 2**63 - 1, -(2**63)]]).astype(np.int64)
    reg = hll_new(p)
    hll_add(reg, keys)
    assert reg.tolist() == _hll_reference(keys.tolist(), p)


def _exact(values, q):
    v = np.sort(values[np.isfinite(values)])
    return v[np.floor(q * (v.size - 1)).astype(int)]


@pytest.mark.parametrize("dist", ["lognormal", "normal", "mixed_zero"])
def test_quantiles_within_relative_error(dist):
    rng = np.random.default_rng(3)
    if dist == "lognormal":
        x = rng.lognormal(3, 2, 100_000)
    elif dist == "normal":
        x = rng.normal(0, 50, 100_000)
    else:
        x = np.where(rng.random(100_000) < 0.3, 0.0, rng.exponential(5, 100_000))
    x[::1000] = np.nan
    counts = qs_new()
    added = qs_add(counts, x)
    assert added == np.isfinite(x).sum()
    q = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
    got = qs_quantile(counts, q)
    want = _exact(x, q)
    assert np.all(np.abs(got - want) <= (QS_ALPHA + 1e-7) * np.abs(want) + 1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=300),
       st.floats(min_value=0, max_value=1))
def test_quantile_property(values, q):
    x = np.array(values)
    counts = qs_new()
    qs_add(counts, x)
    got = qs_quantile(counts, q)[0]
    want = _exact(x, np.array([q]))[0]
    # values below 1e-6 in magnitude are clamped or counted as zero
    assert abs(got - want) <= (QS_ALPHA + 1e-7) * abs(want) + 2e-6


def test_quantile_merge_equals_single_pass_and_empty_is_nan():
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 3.0, 30_000)
    whole = qs_new()
    qs_add(whole, x)
    merged = qs_new()
    for chunk in np.array_split(x, 7):
        part = qs_new()
        qs_add(part, chunk)
        qs_merge(merged, part)
    np.testing.assert_array_equal(merged, whole)
    assert np.isnan(qs_quantile(qs_new(), 0.5)[0])


def test_every_bucket_representative_is_within_alpha():
    lo, hi, rep = qs_representatives()
    finite = np.isfinite(hi) & (lo >= np.finfo(np.float32).tiny)  # normal float32 magnitudes
    assert np.all(np.abs(rep[finite] - lo[finite]) <= QS_ALPHA * lo[finite] * (1 + 1e-12))
    assert np.all(np.abs(hi[finite] - rep[finite]) <= QS_ALPHA * hi[finite] * (1 + 1e-12))
    x = np.exp(np.random.default_rng(0).uniform(np.log(1e-30), np.log(1e30), 300)).astype(np.float32)
    for v in x:
        c = qs_new()
        qs_add(c, np.array([v]))
        b = int(np.flatnonzero(c)[0])
        assert lo[b] <= v < hi[b]
    c = qs_new()
    assert qs_add(c, np.array([0.0, -0.0, np.inf, np.nan, -5.0, 1e300])) == 4
    assert qs_quantile(c, 0.0)[0] < 0 and qs_quantile(c, 1.0)[0] == pytest.approx(np.finfo(np.float32).max, rel=0.01)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bucket_by_bit_cast_equals_bucket_through_scratch_array(dtype):
    from numba import njit

    from uda.kernels.sketches import qs_bucket, qs_bucket_of

    @njit
    def both(v):
        tmp = np.empty(1, np.float32)
        bits = tmp.view(np.uint32)
        out = np.empty((v.size, 2), np.int64)
        for i in range(v.size):
            out[i, 0] = qs_bucket(v[i], tmp, bits)
            out[i, 1] = qs_bucket_of(v[i])
        return out

    rng = np.random.default_rng(0)
    v = rng.standard_normal(20_000) * 10.0 ** rng.integers(-40, 40, 20_000)
    with np.errstate(over="ignore"):
        v = np.r_[v, 0.0, -0.0, 1e-46, -1e-46, 1e300, -1e300, np.inf, -np.inf, 3.4028235e38, 3.4028236e38].astype(dtype)
    got = both(v)
    np.testing.assert_array_equal(got[:, 1], got[:, 0])
