"""User-equilibrium traffic assignment: all-or-nothing, Frank-Wolfe, conjugate and bi-conjugate FW."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import numpy as np
from numba import njit, prange

from uda.kernels.paths import PARALLEL_MIN_WORK, csr_from_links, slot_tails, sssp_into

#: Assignment algorithms: all-or-nothing, Frank-Wolfe, conjugate FW, bi-conjugate FW
#: (Mitradjieva and Lindberg 2013).
ALGORITHMS = ("aon", "fw", "cfw", "bfw")
#: Largest weight of the previous direction in CFW (keeps the direction a descent one).
CONJUGATE_MAX = 0.99999


@njit(cache=True, nogil=True)
def bpr_cost(fft, b, capacity, power, flow):
    """BPR link cost ``fft * (1 + b * (flow / capacity) ** power)``; ``fft`` where ``b == 0``."""
    out = np.empty(flow.size, np.float64)
    for i in range(flow.size):
        if b[i] == 0.0:
            out[i] = fft[i]
        else:
            out[i] = fft[i] * (1.0 + b[i] * (flow[i] / capacity[i]) ** power[i])
    return out


@njit(cache=True, nogil=True)
def bpr_derivative(fft, b, capacity, power, flow):
    """d cost / d flow of the BPR function (0 where it does not exist at zero flow)."""
    out = np.zeros(flow.size, np.float64)
    for i in range(flow.size):
        if b[i] == 0.0 or power[i] == 0.0:
            continue
        if flow[i] <= 0.0 and power[i] < 1.0:
            continue
        out[i] = fft[i] * b[i] * power[i] / capacity[i] * (flow[i] / capacity[i]) ** (power[i] - 1.0)
    return out


@njit(cache=True, nogil=True)
def beckmann(fft, b, capacity, power, flow):
    """Beckmann objective: the sum over links of the integral of the BPR cost from 0 to flow."""
    total = 0.0
    for i in range(flow.size):
        x = flow[i]
        if b[i] == 0.0:
            total += fft[i] * x
        else:
            total += fft[i] * (x + b[i] * capacity[i] / (power[i] + 1.0) * (x / capacity[i]) ** (power[i] + 1.0))
    return total


@njit(cache=True, nogil=True)
def _slope(fft, b, capacity, power, flow, target, lam):
    """Derivative of the Beckmann objective along ``flow + lam * (target - flow)``."""
    g = 0.0
    for i in range(flow.size):
        d = target[i] - flow[i]
        if d == 0.0:
            continue
        x = flow[i] + lam * d
        if b[i] == 0.0:
            g += d * fft[i]
        else:
            g += d * fft[i] * (1.0 + b[i] * (x / capacity[i]) ** power[i])
    return g


@njit(cache=True, nogil=True)
def line_search(fft, b, capacity, power, flow, target):
    """Step in [0, 1] minimising the Beckmann objective from ``flow`` towards ``target``.

    Bisection on the directional derivative (the objective is convex along the segment),
    to a step accuracy of 1e-15.
    """
    if _slope(fft, b, capacity, power, flow, target, 1.0) <= 0.0:
        return 1.0
    if _slope(fft, b, capacity, power, flow, target, 0.0) >= 0.0:
        return 0.0
    lo = 0.0
    hi = 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _slope(fft, b, capacity, power, flow, target, mid) > 0.0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


@njit(cache=True, nogil=True)
def _aon_block(indptr, heads, slot_link, slot_tail, slot_cost, origins, dests, demand, first_thru, blk,
               nblocks, flows, skim, sptt, lost, lost_pairs):
    """All-or-nothing for origins ``blk, blk + nblocks, ...`` into row ``blk`` of the outputs."""
    n = indptr.size - 1
    nd = dests.size
    dist = np.empty(n, np.float64)
    pred_slot = np.empty(n, np.int64)
    order = np.empty(n, np.int32)
    pos = np.empty(n, np.int32)
    heap_keys = np.empty(n, np.float64)
    heap_nodes = np.empty(n, np.int32)
    node_demand = np.zeros(n, np.float64)
    for i in range(blk, origins.size, nblocks):
        src = origins[i]
        count = sssp_into(indptr, heads, slot_cost, src, first_thru, dist, pred_slot, order, pos,
                          heap_keys, heap_nodes)
        for j in range(nd):
            d = dests[j]
            c = dist[d]
            skim[i, j] = c
            q = demand[i, j]
            if q > 0.0:
                if c == np.inf:
                    lost[blk] += q
                    lost_pairs[blk] += 1
                else:
                    node_demand[d] += q
                    sptt[blk] += q * c
        # Push demand up the shortest-path tree, leaves first.
        for k in range(count - 1, 0, -1):
            v = order[k]
            f = node_demand[v]
            if f > 0.0:
                k = pred_slot[v]
                flows[blk, slot_link[k]] += f
                node_demand[slot_tail[k]] += f
                node_demand[v] = 0.0
        node_demand[src] = 0.0


@njit(cache=True, nogil=True, parallel=True)
def _aon_parallel(indptr, heads, slot_link, slot_tail, slot_cost, num_links, origins, dests, demand,
                  first_thru, nblocks):
    flows = np.zeros((nblocks, num_links), np.float64)
    skim = np.empty((origins.size, dests.size), np.float64)
    sptt = np.zeros(nblocks, np.float64)
    lost = np.zeros(nblocks, np.float64)
    lost_pairs = np.zeros(nblocks, np.int64)
    for blk in prange(nblocks):
        _aon_block(indptr, heads, slot_link, slot_tail, slot_cost, origins, dests, demand, first_thru,
                   blk, nblocks, flows, skim, sptt, lost, lost_pairs)
    return flows.sum(axis=0), skim, sptt.sum(), lost.sum(), lost_pairs.sum()


@njit(cache=True, nogil=True)
def _aon_serial(indptr, heads, slot_link, slot_tail, slot_cost, num_links, origins, dests, demand,
                first_thru):
    flows = np.zeros((1, num_links), np.float64)
    skim = np.empty((origins.size, dests.size), np.float64)
    sptt = np.zeros(1, np.float64)
    lost = np.zeros(1, np.float64)
    lost_pairs = np.zeros(1, np.int64)
    _aon_block(indptr, heads, slot_link, slot_tail, slot_cost, origins, dests, demand, first_thru, 0,
               1, flows, skim, sptt, lost, lost_pairs)
    return flows[0], skim, sptt[0], lost[0], lost_pairs[0]


@dataclass
class Network:
    """A directed road network with BPR link costs and an OD demand matrix, 0-based.

    Attributes
    ----------
    num_nodes
        Number of nodes (indices ``0..num_nodes-1``).
    tail, head
        Link ends (int64 node indices).
    free_flow_time, b, capacity, power
        BPR parameters per link (float64): cost ``fft * (1 + b * (flow / capacity) ** power)``.
    origins, dests
        Node indices of the demand rows and columns.
    demand
        ``(len(origins), len(dests))`` float64 OD flows.
    first_thru
        Nodes with a smaller index (other than a path's origin) are never passed through.
    """

    num_nodes: int
    tail: np.ndarray
    head: np.ndarray
    free_flow_time: np.ndarray
    b: np.ndarray
    capacity: np.ndarray
    power: np.ndarray
    origins: np.ndarray
    dests: np.ndarray
    demand: np.ndarray
    first_thru: int = 0
    _csr: tuple = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tail = np.ascontiguousarray(self.tail, dtype=np.int64)
        self.head = np.ascontiguousarray(self.head, dtype=np.int64)
        for name in ("free_flow_time", "b", "capacity", "power", "demand"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        self.origins = np.ascontiguousarray(self.origins, dtype=np.int64)
        self.dests = np.ascontiguousarray(self.dests, dtype=np.int64)
        if self.demand.shape != (self.origins.size, self.dests.size):
            msg = f"demand has shape {self.demand.shape}, expected ({self.origins.size}, {self.dests.size})"
            raise ValueError(msg)
        bad = (self.capacity < 0) | (self.free_flow_time < 0) | (self.b < 0) | (self.power < 0)
        bad |= (self.capacity == 0) & (self.b > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            msg = (f"link {i} has capacity {self.capacity[i]:g}, free-flow time {self.free_flow_time[i]:g}, "
                   f"b {self.b[i]:g}, power {self.power[i]:g}; all must be >= 0 and capacity > 0 where b > 0")
            raise ValueError(msg)
        indptr, heads, slot_link = csr_from_links(self.num_nodes, self.tail, self.head)
        self._csr = (indptr, heads, slot_link, slot_tails(indptr))

    @property
    def num_links(self) -> int:
        """Number of links."""
        return int(self.tail.size)

    def cost(self, flow: np.ndarray) -> np.ndarray:
        """BPR link costs at ``flow``."""
        return bpr_cost(self.free_flow_time, self.b, self.capacity, self.power, flow)

    def objective(self, flow: np.ndarray) -> float:
        """Beckmann objective at ``flow``."""
        return float(beckmann(self.free_flow_time, self.b, self.capacity, self.power, flow))


@dataclass
class AonResult:
    """An all-or-nothing loading: link flows, OD skim and shortest-path travel time."""

    flow: np.ndarray
    skim: np.ndarray
    sptt: float
    unreachable_demand: float
    unreachable_pairs: int


def parallel_blocks(net: Network) -> int:
    """Parallel blocks an all-or-nothing loading of ``net`` uses (1: it runs serially)."""
    nblocks = min(numba.get_num_threads(), net.origins.size)
    if nblocks > 1 and net.origins.size * (net.num_nodes + net.num_links) >= PARALLEL_MIN_WORK:
        return nblocks
    return 1


def all_or_nothing(net: Network, link_cost: np.ndarray) -> AonResult:
    """Load every OD flow onto its shortest path under ``link_cost``.

    Parameters
    ----------
    net
        The network and demand.
    link_cost
        Non-negative cost per link.

    Returns
    -------
    AonResult
        ``flow`` per link, ``skim[i, j]`` the shortest cost from ``origins[i]`` to
        ``dests[j]`` (``inf`` if unreachable), ``sptt`` the demand-weighted sum of
        shortest costs over reachable pairs, and the demand and number of OD pairs with
        positive demand but no path (not loaded).
    """
    indptr, heads, slot_link, slot_tail = net._csr
    slot_cost = np.ascontiguousarray(link_cost, dtype=np.float64)[slot_link]
    args = (indptr, heads, slot_link, slot_tail, slot_cost, np.int64(net.num_links), net.origins,
            net.dests, net.demand, np.int64(net.first_thru))
    nblocks = parallel_blocks(net)
    if nblocks > 1:
        flow, skim, sptt, lost, lost_pairs = _aon_parallel(*args, np.int64(nblocks))
    else:
        flow, skim, sptt, lost, lost_pairs = _aon_serial(*args)
    return AonResult(flow, skim, float(sptt), float(lost), int(lost_pairs))


@dataclass
class AssignmentResult:
    """The outcome of an assignment run.

    Attributes
    ----------
    flow, cost
        Link flows and BPR costs at those flows.
    relative_gap
        ``(TSTT - SPTT) / TSTT`` from a fresh all-or-nothing on the final costs.
    objective
        Beckmann objective.
    total_travel_time, shortest_path_travel_time
        TSTT (``flow @ cost``) and SPTT (demand-weighted shortest-path costs).
    iterations
        Direction-finding steps taken (all-or-nothing: 0).
    converged
        Whether ``relative_gap`` reached the requested gap.
    gap_history, objective_history
        Per iteration, at the flows on which the iteration's direction was computed.
    skim
        OD shortest-path costs at the final costs.
    unreachable_demand, unreachable_pairs
        Demand with no path (not assigned) and the number of such OD pairs.
    seconds
        Wall time of the run.
    """

    flow: np.ndarray
    cost: np.ndarray
    relative_gap: float
    objective: float
    total_travel_time: float
    shortest_path_travel_time: float
    iterations: int
    converged: bool
    gap_history: list[float]
    objective_history: list[float]
    skim: np.ndarray
    unreachable_demand: float
    unreachable_pairs: int
    seconds: float


def relative_gap(net: Network, flow: np.ndarray) -> tuple[float, float, float]:
    """Relative gap of ``flow``, recomputed from scratch.

    Returns
    -------
    (gap, tstt, sptt)
        ``gap = (TSTT - SPTT) / TSTT`` where TSTT is ``flow @ cost(flow)`` and SPTT comes
        from a fresh all-or-nothing loading on ``cost(flow)``.
    """
    cost = net.cost(flow)
    tstt = float(flow @ cost)
    sptt = all_or_nothing(net, cost).sptt
    gap = (tstt - sptt) / tstt if tstt > 0 else 0.0
    return gap, tstt, sptt


def _conjugate_weight(h, prev, flow, aon):
    """CFW weight of the previous target (Mitradjieva and Lindberg 2013, eq. for alpha)."""
    d_prev = prev - flow
    num = float(np.sum(h * d_prev * (aon - flow)))
    den = float(np.sum(h * d_prev * (aon - prev)))
    if den == 0.0:
        return 0.0
    return min(max(num / den, 0.0), CONJUGATE_MAX)


def _biconjugate_weights(h, prev, prev2, flow, aon, step):
    """BFW weights of (all-or-nothing, previous, second previous target), summing to 1."""
    d1 = prev - flow
    d2 = step * prev + (1.0 - step) * prev2 - flow
    y = aon - flow
    den_mu = float(np.sum(h * d2 * (prev2 - prev)))
    mu = 0.0 if den_mu == 0.0 else max(0.0, -float(np.sum(h * d2 * y)) / den_mu)
    den_nu = float(np.sum(h * d1 * d1))
    nu = 0.0 if den_nu == 0.0 else max(0.0, -float(np.sum(h * d1 * y)) / den_nu + mu * step / (1.0 - step))
    total = 1.0 + nu + mu
    return 1.0 / total, nu / total, mu / total


def assign(net: Network, *, algorithm: str = "bfw", gap: float = 1e-4, max_iter: int = 1000,
           callback=None) -> AssignmentResult:
    """Static user-equilibrium assignment with BPR costs.

    Parameters
    ----------
    net
        Network, BPR parameters and demand.
    algorithm
        ``"aon"`` (one all-or-nothing loading at free-flow costs), ``"fw"`` (Frank-Wolfe),
        ``"cfw"`` (conjugate FW) or ``"bfw"`` (bi-conjugate FW, Mitradjieva and Lindberg
        2013). Each step moves towards its target by an exact line search on the Beckmann
        objective; a conjugate direction that does not descend is replaced by the FW one.
    gap
        Stop once the relative gap ``(TSTT - SPTT) / TSTT`` is at most this.
    max_iter
        Stop after this many iterations even if the gap is not reached.
    callback
        Called as ``callback(iteration, gap, objective)`` after each gap evaluation.

    Returns
    -------
    AssignmentResult
        Demand of OD pairs without a path is not assigned and is reported in
        ``unreachable_demand`` / ``unreachable_pairs``.
    """
    if algorithm not in ALGORITHMS:
        msg = f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        raise ValueError(msg)
    start = time.perf_counter()
    fft, b, cap, power = net.free_flow_time, net.b, net.capacity, net.power
    first = all_or_nothing(net, fft)
    flow = first.flow
    gaps: list[float] = []
    objectives: list[float] = []
    prev = prev2 = None
    step = 0.0
    iterations = 0
    while algorithm != "aon":
        cost = net.cost(flow)
        aon = all_or_nothing(net, cost)
        tstt = float(flow @ cost)
        g = (tstt - aon.sptt) / tstt if tstt > 0 else 0.0
        gaps.append(g)
        objectives.append(net.objective(flow))
        if callback is not None:
            callback(iterations, g, objectives[-1])
        if g <= gap or iterations >= max_iter:
            break
        iterations += 1
        target = aon.flow
        if algorithm in ("cfw", "bfw") and prev is not None:
            h = bpr_derivative(fft, b, cap, power, flow)
            if algorithm == "bfw" and prev2 is not None and step < 1.0 - 1e-12:
                w0, w1, w2 = _biconjugate_weights(h, prev, prev2, flow, aon.flow, step)
                target = w0 * aon.flow + w1 * prev + w2 * prev2
            else:
                alpha = _conjugate_weight(h, prev, flow, aon.flow)
                target = alpha * prev + (1.0 - alpha) * aon.flow
        step = line_search(fft, b, cap, power, flow, target)
        if step == 0.0 and target is not aon.flow:
            target = aon.flow  # the conjugate direction does not descend: restart with FW
            prev = prev2 = None
            step = line_search(fft, b, cap, power, flow, target)
        if step == 0.0:
            break  # not even the FW direction descends: rounding has the last word
        flow = flow + step * (target - flow)
        prev2, prev = prev, target
    final_cost = net.cost(flow)
    final = all_or_nothing(net, final_cost)
    tstt = float(flow @ final_cost)
    rel = (tstt - final.sptt) / tstt if tstt > 0 else 0.0
    return AssignmentResult(
        flow=flow, cost=final_cost, relative_gap=rel, objective=net.objective(flow),
        total_travel_time=tstt, shortest_path_travel_time=final.sptt, iterations=iterations,
        converged=algorithm != "aon" and rel <= gap, gap_history=gaps, objective_history=objectives,
        skim=final.skim, unreachable_demand=first.unreachable_demand,
        unreachable_pairs=first.unreachable_pairs, seconds=time.perf_counter() - start)


def warm_up(*, parallel: bool = False) -> float:
    """Compile (or load from cache) the assignment kernels on a tiny network; seconds taken.

    Parameters
    ----------
    parallel
        Also compile the parallel all-or-nothing kernel (needed when
        :func:`parallel_blocks` of the real network is above 1; compiling it takes
        several times longer than the serial one).
    """
    start = time.perf_counter()
    net = Network(num_nodes=2, tail=[0], head=[1], free_flow_time=[1.0], b=[0.15], capacity=[1.0],
                  power=[4.0], origins=[0], dests=[1], demand=[[1.0]])
    assign(net, algorithm="bfw", gap=0.0, max_iter=3)
    if parallel:
        indptr, heads, slot_link, slot_tail = net._csr
        _aon_parallel(indptr, heads, slot_link, slot_tail, net.free_flow_time[slot_link], np.int64(1),
                      net.origins, net.dests, net.demand, np.int64(0), np.int64(1))
    return time.perf_counter() - start
