"""Traffic assignment: Sioux Falls and Braess equilibria, conservation, AoN against networkx."""

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from uda.errors import UserError
from uda.io import tntp
from uda.kernels.assign import (
    ALGORITHMS,
    Network,
    _aon_parallel,
    _aon_serial,
    all_or_nothing,
    assign,
    beckmann,
    bpr_cost,
    line_search,
    relative_gap,
)
from uda.routing.assignment import assign_tntp, check_reachable, tntp_network
from uda.tasks.route import write_flows

DATA = Path(__file__).parent / "data" / "tntp"
SIOUX = DATA / "SiouxFalls"
BEST_OBJECTIVE = 4_231_335.287
BEST_TSTT = 7_480_225.345


@pytest.fixture(scope="module")
def sioux():
    return tntp_network(*tntp.read_folder(SIOUX))


@pytest.fixture(scope="module")
def best_flow():
    return tntp.read_flow(SIOUX / "SiouxFalls_flow.tntp")["volume"]


@pytest.fixture(scope="module")
def solved(sioux):
    return {a: assign(sioux, algorithm=a, gap=1e-4, max_iter=3000) for a in ("fw", "cfw", "bfw")}


def _balance(net, flow):
    """Net outflow per node from link flows."""
    return (np.bincount(net.tail, flow, net.num_nodes) - np.bincount(net.head, flow, net.num_nodes))


def test_best_known_solution_reproduces_published_numbers(sioux, best_flow):
    assert sioux.objective(best_flow) == pytest.approx(BEST_OBJECTIVE, abs=1e-3)
    gap, tstt, _ = relative_gap(sioux, best_flow)
    assert tstt == pytest.approx(BEST_TSTT, abs=1e-3)
    assert abs(gap) < 1e-10


@pytest.mark.parametrize("algorithm", ["fw", "cfw", "bfw"])
def test_sioux_falls_equilibrium(sioux, best_flow, solved, algorithm):
    r = solved[algorithm]
    assert r.converged and r.relative_gap <= 1e-4
    # The gap is recomputed from scratch (fresh all-or-nothing on the final costs).
    gap, tstt, sptt = relative_gap(sioux, r.flow)
    assert gap == pytest.approx(r.relative_gap, rel=1e-9, abs=1e-15)
    assert tstt == pytest.approx(r.total_travel_time)
    # Convexity bound: the optimum lies within TSTT - SPTT below the objective.
    assert abs(r.objective - BEST_OBJECTIVE) <= tstt - sptt
    big = best_flow > 0.01 * best_flow.max()
    np.testing.assert_allclose(r.flow[big], best_flow[big], rtol=0.01)
    # Flow conservation: net outflow of each zone is its production minus attraction.
    d = sioux.demand
    np.testing.assert_allclose(_balance(sioux, r.flow), d.sum(axis=1) - d.sum(axis=0), atol=1e-6)
    # Line search keeps the Beckmann objective non-increasing.
    obj = np.array(r.objective_history)
    assert np.all(np.diff(obj) <= 1e-9 * obj[:-1])
    assert len(r.gap_history) == r.iterations + 1


def test_bfw_needs_fewer_iterations_than_fw(solved):
    its = {a: r.iterations for a, r in solved.items()}
    assert its["bfw"] < its["cfw"] < its["fw"]


@pytest.mark.parametrize("algorithm", ["fw", "cfw", "bfw"])
def test_braess(algorithm):
    tnet, trips = tntp.read_folder(DATA / "Braess-Example")
    net = tntp_network(tnet, trips)
    r = assign(net, algorithm=algorithm, gap=1e-9, max_iter=5000)
    # Links 1-3, 1-4, 3-2, 3-4, 4-2: two units on each of the three paths, each costing 92.
    np.testing.assert_allclose(r.flow, [4, 2, 2, 2, 4], atol=1e-3)
    c = r.cost
    np.testing.assert_allclose([c[0] + c[2], c[1] + c[4], c[0] + c[3] + c[4]], 92.0, atol=1e-2)
    assert r.skim[0, 1] == pytest.approx(92.0, abs=1e-2)


def test_all_or_nothing_matches_networkx():
    rng = np.random.default_rng(7)
    n = 30
    tail = rng.integers(0, n, 150)
    head = rng.integers(0, n, 150)
    keep = tail != head
    tail, head = tail[keep], head[keep]
    cost = rng.uniform(1, 5, tail.size)  # continuous costs: unique shortest paths
    zones = np.arange(6)
    demand = rng.uniform(0, 10, (6, 6))
    net = Network(num_nodes=n, tail=tail, head=head, free_flow_time=cost, b=np.zeros(tail.size),
                  capacity=np.ones(tail.size), power=np.ones(tail.size), origins=zones, dests=zones,
                  demand=demand)
    aon = all_or_nothing(net, cost)
    g = nx.DiGraph()
    for i, (u, v) in enumerate(zip(tail, head, strict=True)):
        if not g.has_edge(u, v) or g[u][v]["w"] > cost[i]:
            g.add_edge(u, v, w=cost[i], i=i)
    expected = np.zeros(tail.size)
    sptt = 0.0
    for o in zones:
        lengths, paths = nx.single_source_dijkstra(g, o, weight="w") if o in g else ({o: 0}, {o: [o]})
        for d in zones:
            if d not in lengths:
                assert np.isinf(aon.skim[o, d])
                continue
            assert aon.skim[o, d] == pytest.approx(lengths[d])
            sptt += demand[o, d] * lengths[d]
            p = paths[d]
            for u, v in zip(p[:-1], p[1:], strict=True):
                expected[g[u][v]["i"]] += demand[o, d]
    np.testing.assert_allclose(aon.flow, expected)
    assert aon.sptt == pytest.approx(sptt)


def _two_route_net(**kw):
    # 0 -> 2 directly (cost 10) or via centroid 1 (cost 1 + 1).
    base = dict(num_nodes=3, tail=[0, 0, 1], head=[2, 1, 2], free_flow_time=[10.0, 1.0, 1.0],
                b=[0.0, 0.0, 0.0], capacity=[1.0, 1.0, 1.0], power=[4.0, 4.0, 4.0],
                origins=[0], dests=[2], demand=[[5.0]])
    base.update(kw)
    return Network(**base)


def test_centroids_are_not_passed_through():
    assert all_or_nothing(_two_route_net(), np.array([10.0, 1.0, 1.0])).flow.tolist() == [0, 5, 5]
    blocked = _two_route_net(first_thru=2)
    r = assign(blocked, algorithm="bfw", gap=1e-6)
    assert r.flow.tolist() == [5, 0, 0]
    assert r.skim[0, 0] == 10.0


def test_zero_free_flow_times_and_zero_demand():
    net = _two_route_net(free_flow_time=[0.0, 0.0, 0.0])
    for algorithm in ALGORITHMS:
        r = assign(net, algorithm=algorithm)
        assert r.total_travel_time == 0.0 and r.relative_gap == 0.0
        assert r.flow.sum() == 5.0
    r = assign(_two_route_net(demand=[[0.0]]), algorithm="bfw")
    assert r.relative_gap == 0.0 and r.flow.sum() == 0.0


def test_parallel_and_serial_aon_agree(sioux):
    indptr, heads, slot_link, slot_tail = sioux._csr
    args = (indptr, heads, slot_link, slot_tail, sioux.free_flow_time[slot_link], np.int64(sioux.num_links),
            sioux.origins, sioux.dests, sioux.demand, np.int64(sioux.first_thru))
    serial = _aon_serial(*args)
    parallel = _aon_parallel(*args, np.int64(3))
    np.testing.assert_allclose(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])
    assert parallel[2] == pytest.approx(serial[2]) and parallel[3:] == serial[3:]


def test_aon_is_one_loading_at_free_flow(sioux):
    r = assign(sioux, algorithm="aon")
    np.testing.assert_array_equal(r.flow, all_or_nothing(sioux, sioux.free_flow_time).flow)
    assert r.iterations == 0 and not r.converged and r.relative_gap > 0.1


def test_disconnected_pairs_error_or_reported():
    net = _two_route_net(tail=[0, 0], head=[1, 1], free_flow_time=[1.0, 1.0], b=[0.0, 0.0],
                         capacity=[1.0, 1.0], power=[1.0, 1.0], dests=[1, 2], demand=[[2.0, 5.0]])
    with pytest.raises(UserError, match="1 OD pairs with demand 5 have no path \\(first: 0 -> 2\\)"):
        check_reachable(net)
    assert check_reachable(net, unreachable="drop") == (1, 5.0)
    r = assign(net, algorithm="bfw")
    assert r.unreachable_pairs == 1 and r.unreachable_demand == 5.0
    assert r.flow.sum() == 2.0 and np.isinf(r.skim[0, 1])


def test_network_rejects_bad_links():
    with pytest.raises(ValueError, match="capacity -1"):
        _two_route_net(capacity=[-1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="capacity > 0 where b > 0"):
        _two_route_net(capacity=[0.0, 1.0, 1.0], b=[0.15, 0.0, 0.0])
    with pytest.raises(ValueError, match="unknown algorithm"):
        assign(_two_route_net(), algorithm="msa")


def test_bpr_and_line_search_against_numpy():
    rng = np.random.default_rng(1)
    fft, b, cap = rng.uniform(1, 5, 20), rng.uniform(0, 1, 20), rng.uniform(10, 50, 20)
    power = rng.choice([1.0, 2.0, 4.0], 20)
    x, y = rng.uniform(0, 60, 20), rng.uniform(0, 60, 20)
    np.testing.assert_allclose(bpr_cost(fft, b, cap, power, x), fft * (1 + b * (x / cap) ** power))
    grid = np.linspace(0, 1, 20001)
    objs = [beckmann(fft, b, cap, power, x + t * (y - x)) for t in grid]
    assert line_search(fft, b, cap, power, x, y) == pytest.approx(grid[int(np.argmin(objs))], abs=1e-4)


def test_assign_tntp_summary_and_csv(tmp_path):
    ra = assign_tntp(SIOUX, algorithm="bfw", gap=1e-4)
    s = ra.summary()
    assert s["relative_gap"] <= 1e-4 and s["links"] == 76 and s["total_demand"] == 360600.0
    top = s["most_congested"]
    assert len(top) == 10 and top[0]["vc"] == s["max_vc"]
    assert [t["vc"] for t in top] == sorted((t["vc"] for t in top), reverse=True)
    out = write_flows(ra, tmp_path / "flows.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "init_node,term_node,flow" and len(lines) == 77
    u, v, f = lines[1].split(",")
    assert (u, v) == ("1", "2") and float(f) == ra.result.flow[0]


@pytest.mark.parametrize(("first_thru", "expected"), [(4, [0, 0, 10, 10]), (1, [10, 10, 0, 0])])
def test_tntp_first_thru_node(tmp_path, first_thru, expected):
    # Zones 1-3; the short way from 1 to 3 passes through zone 2, the long way through node 4.
    (tmp_path / "T_net.tntp").write_text(
        f"<NUMBER OF ZONES> 3\n<NUMBER OF NODES> 4\n<FIRST THRU NODE> {first_thru}\n<NUMBER OF LINKS> 4\n"
        "<END OF METADATA>\n1 2 1 0 1 0 4 ;\n2 3 1 0 1 0 4 ;\n1 4 1 0 5 0 4 ;\n4 3 1 0 5 0 4 ;\n")
    (tmp_path / "T_trips.tntp").write_text("<NUMBER OF ZONES> 3\n<END OF METADATA>\nOrigin 1\n 3 : 10;\n")
    r = assign(tntp_network(*tntp.read_folder(tmp_path)), algorithm="bfw")
    assert r.flow.tolist() == expected


def test_stops_when_no_direction_descends():
    # Two identical parallel links: FW reaches the exact equilibrium (1, 1); with an
    # unreachable target gap the next FW step is 0 and the run stops instead of spinning.
    net = Network(num_nodes=2, tail=[0, 0], head=[1, 1], free_flow_time=[1.0, 1.0], b=[0.15, 0.15],
                  capacity=[1.0, 1.0], power=[4.0, 4.0], origins=[0], dests=[1], demand=[[2.0]])
    r = assign(net, algorithm="fw", gap=-1.0, max_iter=100_000)
    assert r.iterations < 10 and r.flow.tolist() == [1.0, 1.0] and r.relative_gap == 0.0
