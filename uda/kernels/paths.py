"""Numba shortest paths on a CSR graph: Dijkstra (binary heap), many sources, path recovery."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange


def csr_from_links(num_nodes: int, tail: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed sparse row adjacency of a directed graph given by link ends.

    Parameters
    ----------
    num_nodes
        Number of nodes; node indices are ``0..num_nodes-1``.
    tail, head
        Link ends (0-based node indices), one entry per link.

    Returns
    -------
    indptr : int64 array (num_nodes + 1)
        Out-links of node ``u`` occupy CSR slots ``indptr[u]:indptr[u+1]``.
    heads : int32 array (num_links)
        Head node of each CSR slot.
    slot_link : int64 array (num_links)
        Link index (position in ``tail``/``head``) of each CSR slot; link attributes in
        CSR order are ``attr[slot_link]``.
    """
    tail = np.asarray(tail, dtype=np.int64)
    head = np.asarray(head, dtype=np.int64)
    if tail.shape != head.shape:
        msg = f"tail and head differ in length ({tail.size} vs {head.size})"
        raise ValueError(msg)
    if tail.size and (min(tail.min(), head.min()) < 0 or max(tail.max(), head.max()) >= num_nodes):
        msg = f"link ends must lie in 0..{num_nodes - 1}"
        raise ValueError(msg)
    slot_link = np.argsort(tail, kind="stable").astype(np.int64)
    counts = np.bincount(tail, minlength=num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, head[slot_link].astype(np.int32), slot_link


#: Heap position markers of :func:`sssp_into`.
NOT_IN_HEAP = -1
SETTLED = -2


@njit(cache=True, nogil=True, inline="always")
def _sift_up(keys, nodes, pos, i, key, node):
    """Move ``(key, node)`` up from slot ``i`` of the indexed binary heap."""
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        nodes[i] = nodes[parent]
        pos[nodes[i]] = i
        i = parent
    keys[i] = key
    nodes[i] = node
    pos[node] = i


@njit(cache=True, nogil=True, inline="always")
def _pop_root(keys, nodes, pos, size):
    """Remove the root (the caller reads ``keys[0], nodes[0]`` first); returns the new size."""
    pos[nodes[0]] = SETTLED
    size -= 1
    if size == 0:
        return 0
    key = keys[size]
    node = nodes[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[i] = keys[child]
        nodes[i] = nodes[child]
        pos[nodes[i]] = i
        i = child
    keys[i] = key
    nodes[i] = node
    pos[node] = i
    return size


@njit(cache=True, nogil=True)
def sssp_into(indptr, heads, weights, source, first_thru, dist, pred_slot, order, pos, heap_keys,
              heap_nodes):
    """Dijkstra from ``source`` into preallocated arrays; returns the number of settled nodes.

    ``dist`` gets the distances (``inf`` if unreached), ``pred_slot`` the CSR slot of the
    last link on a shortest path (``-1`` for the source and unreached nodes; its tail is the
    predecessor node), ``order[:count]`` the nodes in the order they were settled (source
    first). Nodes with index below ``first_thru`` other than the source are reached but
    never passed through (TNTP centroids). ``pos`` (int32), ``heap_keys`` and
    ``heap_nodes`` are scratch arrays of one entry per node for an indexed binary heap
    with decrease-key, so every node is in the heap at most once and settled once.
    """
    n = indptr.size - 1
    for v in range(n):
        dist[v] = np.inf
        pred_slot[v] = -1
        pos[v] = NOT_IN_HEAP
    dist[source] = 0.0
    _sift_up(heap_keys, heap_nodes, pos, 0, 0.0, source)
    size = 1
    count = 0
    while size > 0:
        d = heap_keys[0]
        u = heap_nodes[0]
        size = _pop_root(heap_keys, heap_nodes, pos, size)
        order[count] = u
        count += 1
        if u < first_thru and u != source:
            continue
        for k in range(indptr[u], indptr[u + 1]):
            v = heads[k]
            nd = d + weights[k]
            if nd < dist[v]:
                # Non-negative weights: a settled node never improves, so v is unsettled.
                dist[v] = nd
                pred_slot[v] = k
                i = pos[v]
                if i == NOT_IN_HEAP:
                    i = size
                    size += 1
                _sift_up(heap_keys, heap_nodes, pos, i, nd, v)
    return count


@njit(cache=True, nogil=True)
def _sssp_pred(indptr, heads, weights, source, first_thru, dist, pred, pos, heap_keys, heap_nodes):
    """:func:`sssp_into` recording only distances and predecessor nodes.

    The same search with one store less per relaxation and no settle order: this is the
    lean loop behind :func:`dijkstra` and :func:`dijkstra_many`, while assignment uses
    :func:`sssp_into` (it needs the CSR slot of each tree link and the settle order).
    """
    n = indptr.size - 1
    for v in range(n):
        dist[v] = np.inf
        pred[v] = -1
        pos[v] = NOT_IN_HEAP
    dist[source] = 0.0
    _sift_up(heap_keys, heap_nodes, pos, 0, 0.0, source)
    size = 1
    while size > 0:
        d = heap_keys[0]
        u = heap_nodes[0]
        size = _pop_root(heap_keys, heap_nodes, pos, size)
        if u < first_thru and u != source:
            continue
        for k in range(indptr[u], indptr[u + 1]):
            v = heads[k]
            nd = d + weights[k]
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = u
                i = pos[v]
                if i == NOT_IN_HEAP:
                    i = size
                    size += 1
                _sift_up(heap_keys, heap_nodes, pos, i, nd, v)


def slot_tails(indptr: np.ndarray) -> np.ndarray:
    """Tail node (int32) of every CSR slot."""
    return np.repeat(np.arange(indptr.size - 1, dtype=np.int32), np.diff(indptr))


@njit(cache=True, nogil=True)
def _dijkstra(indptr, heads, weights, source, first_thru):
    n = indptr.size - 1
    dist = np.empty(n, np.float64)
    pred = np.empty(n, np.int32)
    pos = np.empty(n, np.int32)
    heap_keys = np.empty(n, np.float64)
    heap_nodes = np.empty(n, np.int32)
    _sssp_pred(indptr, heads, weights, source, first_thru, dist, pred, pos, heap_keys, heap_nodes)
    return dist, pred


#: Below this many (sources x (nodes + links)) many-source work runs on one thread: waking
#: worker threads costs more than it saves on small graphs (and much more on a busy machine).
PARALLEL_MIN_WORK = 200_000


@njit(cache=True, nogil=True)
def _many_block(indptr, heads, weights, sources, first_thru, blk, nblocks, dist, pred):
    """Sources ``blk, blk + nblocks, ...`` into rows of ``dist`` and ``pred``."""
    n = indptr.size - 1
    pos = np.empty(n, np.int32)
    heap_keys = np.empty(n, np.float64)
    heap_nodes = np.empty(n, np.int32)
    for i in range(blk, sources.size, nblocks):
        _sssp_pred(indptr, heads, weights, sources[i], first_thru, dist[i], pred[i], pos, heap_keys,
                   heap_nodes)


@njit(cache=True, nogil=True, parallel=True)
def _dijkstra_many_parallel(indptr, heads, weights, sources, first_thru, nblocks):
    n = indptr.size - 1
    dist = np.empty((sources.size, n), np.float64)
    pred = np.empty((sources.size, n), np.int32)
    for b in prange(nblocks):
        _many_block(indptr, heads, weights, sources, first_thru, b, nblocks, dist, pred)
    return dist, pred


@njit(cache=True, nogil=True)
def _dijkstra_many_serial(indptr, heads, weights, sources, first_thru):
    n = indptr.size - 1
    dist = np.empty((sources.size, n), np.float64)
    pred = np.empty((sources.size, n), np.int32)
    _many_block(indptr, heads, weights, sources, first_thru, 0, 1, dist, pred)
    return dist, pred


def _check_graph(indptr, heads, weights):
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    heads = np.ascontiguousarray(heads, dtype=np.int32)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != heads.shape or indptr.size == 0 or indptr[-1] != heads.size:
        msg = "indptr, heads and weights do not describe one CSR graph"
        raise ValueError(msg)
    if weights.size and not (weights.min() >= 0):
        msg = "Dijkstra needs non-negative, non-NaN weights"
        raise ValueError(msg)
    return indptr, heads, weights


def dijkstra(indptr: np.ndarray, heads: np.ndarray, weights: np.ndarray, source: int, *,
             first_thru: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Single-source shortest paths (Dijkstra with a binary heap).

    Parameters
    ----------
    indptr, heads, weights
        CSR graph (see :func:`csr_from_links`); ``weights`` are non-negative costs per
        CSR slot (zero allowed).
    source
        Source node index.
    first_thru
        Nodes with index below this (other than the source) may end a path but not be
        passed through: the TNTP ``<FIRST THRU NODE>`` rule with 0-based indices.

    Returns
    -------
    dist : float64 array (n)
        Shortest distance, ``inf`` if unreachable.
    pred : int32 array (n)
        Previous node on a shortest path, ``-1`` for the source and unreached nodes.
    """
    indptr, heads, weights = _check_graph(indptr, heads, weights)
    if not 0 <= source < indptr.size - 1:
        msg = f"source {source} is not a node index (0..{indptr.size - 2})"
        raise ValueError(msg)
    return _dijkstra(indptr, heads, weights, np.int64(source), np.int64(first_thru))


def dijkstra_many(indptr: np.ndarray, heads: np.ndarray, weights: np.ndarray, sources: np.ndarray, *,
                  first_thru: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shortest paths from many sources, parallel over sources (``prange``).

    Parameters are as for :func:`dijkstra`, with ``sources`` an array of node indices.
    Small problems (below :data:`PARALLEL_MIN_WORK`) run on one thread.

    Returns
    -------
    dist : float64 array (len(sources), n)
    pred : int32 array (len(sources), n)
        Row ``i`` holds the result for ``sources[i]``.
    """
    indptr, heads, weights = _check_graph(indptr, heads, weights)
    sources = np.ascontiguousarray(sources, dtype=np.int64)
    n = indptr.size - 1
    if sources.size and (sources.min() < 0 or sources.max() >= n):
        msg = f"sources must be node indices (0..{n - 1})"
        raise ValueError(msg)
    nblocks = min(numba.get_num_threads(), sources.size)
    args = (indptr, heads, weights, sources, np.int64(first_thru))
    if nblocks > 1 and sources.size * (indptr.size + heads.size) >= PARALLEL_MIN_WORK:
        return _dijkstra_many_parallel(*args, np.int64(nblocks))
    return _dijkstra_many_serial(*args)


@njit(cache=True, nogil=True)
def _path(pred, source, target):
    n = pred.size
    if target == source:
        out = np.empty(1, np.int64)
        out[0] = source
        return out
    if pred[target] < 0:
        return np.empty(0, np.int64)
    buf = np.empty(n, np.int64)
    k = 0
    v = target
    while v != source:
        if v < 0 or k >= n:
            return np.empty(0, np.int64)
        buf[k] = v
        k += 1
        v = pred[v]
    buf[k] = source
    k += 1
    return buf[:k][::-1].copy()


def path_to(pred: np.ndarray, source: int, target: int) -> np.ndarray:
    """Node sequence of the shortest path from ``source`` to ``target``.

    Parameters
    ----------
    pred
        Predecessor array of ``source`` (a row from :func:`dijkstra` or
        :func:`dijkstra_many`).
    source, target
        Node indices.

    Returns
    -------
    int64 array
        ``[source, ..., target]``; empty if ``target`` is unreachable.
    """
    return _path(np.ascontiguousarray(pred, dtype=np.int32), np.int64(source), np.int64(target))
