"""Numba Dijkstra agrees with scipy.sparse.csgraph and networkx, incl. centroids and zero costs."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra as scipy_dijkstra

from uda.kernels.paths import (
    _dijkstra_many_parallel,
    csr_from_links,
    dijkstra,
    dijkstra_many,
    path_to,
)


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 25))
    m = draw(st.integers(0, 4 * n))
    tail = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    head = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    # Many zero-cost links and ties; some isolated nodes come for free.
    w = draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0, 2.5, 7.0, 0.125]), min_size=m, max_size=m))
    return n, np.array(tail, dtype=np.int64), np.array(head, dtype=np.int64), np.array(w)


def _csr(n, tail, head, w):
    indptr, heads, slot_link = csr_from_links(n, tail, head)
    return indptr, heads, w[slot_link]


def _scipy_dist(n, tail, head, w, source):
    # scipy needs one entry per (u, v): keep the cheapest parallel link; zeros stay explicit.
    best = {}
    for u, v, c in zip(tail, head, w, strict=True):
        if u != v:
            best[(u, v)] = min(c, best.get((u, v), np.inf))
    keys = sorted(best)
    rows = np.array([k[0] for k in keys], dtype=np.int64)
    cols = np.array([k[1] for k in keys], dtype=np.int32)
    data = np.array([best[k] for k in keys])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    mat = sp.csr_matrix((data, cols, indptr), shape=(n, n))
    return scipy_dijkstra(mat, directed=True, indices=source)


def _nx_dist(n, tail, head, w, source, first_thru):
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for u, v, c in zip(tail, head, w, strict=True):
        if u < first_thru and u != source:
            continue  # centroids are never passed through
        if not g.has_edge(u, v) or g[u][v]["weight"] > c:
            g.add_edge(u, v, weight=c)
    lengths = nx.single_source_dijkstra_path_length(g, source)
    return np.array([lengths.get(v, np.inf) for v in range(n)])


def _check_pred(n, tail, head, w, source, dist, pred):
    edge_cost = {}
    for u, v, c in zip(tail, head, w, strict=True):
        edge_cost[(u, v)] = min(c, edge_cost.get((u, v), np.inf))
    assert pred[source] == -1
    for v in range(n):
        if v == source:
            continue
        if np.isinf(dist[v]):
            assert pred[v] == -1
            assert path_to(pred, source, v).size == 0
            continue
        u = pred[v]
        assert dist[u] + edge_cost[(u, v)] == pytest.approx(dist[v])
        p = path_to(pred, source, v)
        assert p[0] == source and p[-1] == v
        assert sum(edge_cost[(a, b)] for a, b in zip(p[:-1], p[1:], strict=True)) == pytest.approx(dist[v])


@settings(max_examples=150, deadline=None)
@given(graphs(), st.data())
def test_single_source_matches_scipy_and_networkx(g, data):
    n, tail, head, w = g
    source = data.draw(st.integers(0, n - 1))
    dist, pred = dijkstra(*_csr(n, tail, head, w), source)
    np.testing.assert_allclose(dist, _scipy_dist(n, tail, head, w, source))
    np.testing.assert_allclose(dist, _nx_dist(n, tail, head, w, source, 0))
    _check_pred(n, tail, head, w, source, dist, pred)


@settings(max_examples=100, deadline=None)
@given(graphs(), st.data())
def test_centroids_are_not_passed_through(g, data):
    n, tail, head, w = g
    first_thru = data.draw(st.integers(0, n))
    source = data.draw(st.integers(0, n - 1))
    dist, pred = dijkstra(*_csr(n, tail, head, w), source, first_thru=first_thru)
    np.testing.assert_allclose(dist, _nx_dist(n, tail, head, w, source, first_thru))
    for v in range(n):
        p = path_to(pred, source, v)
        assert not np.any(p[1:-1] < first_thru)


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_many_sources_equal_single_source(g, data):
    n, tail, head, w = g
    sources = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=6)), dtype=np.int64)
    first_thru = data.draw(st.integers(0, n))
    csr = _csr(n, tail, head, w)
    dist, pred = dijkstra_many(*csr, sources, first_thru=first_thru)
    assert dist.shape == (sources.size, n)
    for i, s in enumerate(sources):
        d1, p1 = dijkstra(*csr, int(s), first_thru=first_thru)
        np.testing.assert_array_equal(dist[i], d1)
        np.testing.assert_array_equal(pred[i], p1)
    # The prange kernel (used above PARALLEL_MIN_WORK) gives the same rows.
    dist_p, pred_p = _dijkstra_many_parallel(*csr, sources, np.int64(first_thru), np.int64(2))
    np.testing.assert_array_equal(dist_p, dist)
    np.testing.assert_array_equal(pred_p, pred)


def test_grid_against_scipy_all_sources():
    rng = np.random.default_rng(3)
    side = 20  # 400 sources x 1,920 nodes + links: above PARALLEL_MIN_WORK, so parallel
    idx = np.arange(side * side).reshape(side, side)
    tail = np.r_[idx[:, :-1].ravel(), idx[:, 1:].ravel(), idx[:-1].ravel(), idx[1:].ravel()]
    head = np.r_[idx[:, 1:].ravel(), idx[:, :-1].ravel(), idx[1:].ravel(), idx[:-1].ravel()]
    w = rng.uniform(0, 10, tail.size)
    indptr, heads, weights = _csr(side * side, tail, head, w)
    dist, _ = dijkstra_many(indptr, heads, weights, np.arange(side * side))
    mat = sp.csr_matrix((weights, heads, indptr), shape=(side * side,) * 2)
    np.testing.assert_allclose(dist, scipy_dijkstra(mat, directed=True))


def test_bad_arguments():
    indptr, heads, slot = csr_from_links(3, np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="non-negative"):
        dijkstra(indptr, heads, np.array([1.0, -1.0]), 0)
    with pytest.raises(ValueError, match="not a node index"):
        dijkstra(indptr, heads, np.ones(2), 5)
    with pytest.raises(ValueError, match="link ends must lie"):
        csr_from_links(2, np.array([0]), np.array([2]))
    assert slot.tolist() == [0, 1]
