"""p-median heuristic against brute force on small instances."""

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels.pmedian import _greedy, _interchange, p_median


def _brute(cost, weight, k):
    best = (np.inf, None)
    for combo in combinations(range(cost.shape[1]), k):
        obj = float(weight @ cost[:, list(combo)].min(axis=1))
        if obj < best[0] - 1e-9:
            best = (obj, combo)
    return best


def _obj(cost, weight, sites):
    return float(weight @ cost[:, list(sites)].min(axis=1))


@st.composite
def instances(draw):
    n = draw(st.integers(1, 9))
    m = draw(st.integers(1, 7))
    k = draw(st.integers(1, m))
    cost = np.array(draw(st.lists(st.integers(0, 20), min_size=n * m, max_size=n * m)), float).reshape(n, m)
    weight = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0]), min_size=n, max_size=n)))
    return cost, weight, k


@settings(max_examples=60, deadline=None)
@given(instances())
def test_against_brute_force(inst):
    cost, weight, k = inst
    r = p_median(cost, weight, k)
    opt, _ = _brute(cost, weight, k)
    assert len(set(r.sites.tolist())) == k
    assert r.objective == pytest.approx(_obj(cost, weight, r.sites))
    assert r.objective >= opt - 1e-9
    assert r.objective <= r.greedy_objective + 1e-9
    np.testing.assert_array_equal(cost[np.arange(cost.shape[0]), r.assignment], cost[:, r.sites].min(axis=1))
    # Local optimality: no single swap improves.
    chosen = set(r.sites.tolist())
    for out in chosen:
        for inn in set(range(cost.shape[1])) - chosen:
            assert _obj(cost, weight, (chosen - {out}) | {inn}) >= r.objective - 1e-9
    # The parallel blocks (used on large instances) give the same sites.
    start = _greedy(cost, weight, np.int64(k), np.int64(2))
    sites, _ = _interchange(cost, weight, start, np.int64(10_000), np.float64(1e-12), np.int64(2))
    np.testing.assert_array_equal(np.sort(sites), r.sites)
    # k = 1 (greedy is exact) and k = m - 1 (one swap reaches any set) are solved exactly.
    if k in (1, cost.shape[1] - 1):
        assert r.objective == pytest.approx(opt)


def test_random_metric_instances_reach_optimum():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(30):
        pts = rng.uniform(0, 1, (12, 2))
        cost = np.linalg.norm(pts[:, None] - pts[None], axis=2)
        weight = rng.uniform(0, 3, 12)
        opt, _ = _brute(cost, weight, 3)
        r = p_median(cost, weight, 3)
        assert r.objective >= opt - 1e-9
        hits += r.objective <= opt + 1e-9
    assert hits >= 27  # interchange is a heuristic, but on small metric instances it rarely misses


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be in 1..2"):
        p_median(np.ones((3, 2)), np.ones(3), 3)
    with pytest.raises(ValueError, match="finite and non-negative"):
        p_median(np.array([[1.0, np.inf]]), np.ones(1), 1)
    with pytest.raises(ValueError, match="weights"):
        p_median(np.ones((1, 2)), -np.ones(1), 1)
