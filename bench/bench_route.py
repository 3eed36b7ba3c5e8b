"""Route benchmarks: Numba Dijkstra vs scipy.sparse.csgraph, Sioux Falls assignment vs AequilibraE.

Run from the project root::

    python bench/bench_route.py [--side 317] [--sources 100] [--repeats 5] [--json out.json]

Everything is measured in the same run: one grid road graph (``side * side`` nodes,
4-neighbour, bidirectional, seeded link times) for single- and many-source shortest
paths, and Sioux Falls to relative gap 1e-4 with bi-conjugate Frank-Wolfe for the
assignment. Numba compile time is measured apart: in this process (first call, which may
load the on-disk cache) and in a fresh process with an empty cache directory (true
compile). Reported: median, min and max over repeats.

Both Numba (threading layer ``omp``) and AequilibraE (Cython + OpenMP) run OpenMP
parallel regions. On a shared, oversubscribed machine spinning OpenMP workers make
every region wait for a time slice (AequilibraE's Sioux Falls run took 15-25 s instead
of about 1 s here), so the script sets ``OMP_WAIT_POLICY=PASSIVE`` for both unless the
variable is already set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("AEQ_SHOW_PROGRESS", "FALSE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIOUX = ROOT / "tests" / "data" / "tntp" / "SiouxFalls"

_COLD = """
import time
t = time.perf_counter()
import numpy as np
from uda.kernels.paths import csr_from_links, dijkstra, dijkstra_many
from uda.kernels.assign import warm_up
t_import = time.perf_counter() - t
t = time.perf_counter()
ip, h, _ = csr_from_links(3, np.array([0, 1]), np.array([1, 2]))
dijkstra(ip, h, np.ones(2), 0)
dijkstra_many(ip, h, np.ones(2), np.array([0, 1]))
paths = time.perf_counter() - t
assign = warm_up(parallel=True)
print(paths, assign, t_import)
"""


def grid_graph(side: int, seed: int = 0):
    """A ``side x side`` 4-neighbour grid with both directions and link times of 20-60 s."""
    idx = np.arange(side * side).reshape(side, side)
    tail = np.r_[idx[:, :-1].ravel(), idx[:, 1:].ravel(), idx[:-1].ravel(), idx[1:].ravel()]
    head = np.r_[idx[:, 1:].ravel(), idx[:, :-1].ravel(), idx[1:].ravel(), idx[:-1].ravel()]
    w = np.random.default_rng(seed).uniform(20.0, 60.0, tail.size)
    return side * side, tail, head, w


def cold_compile() -> dict[str, float]:
    """Compile times in a fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True,
                             cwd=ROOT)
    paths, assign, imports = map(float, out.stdout.split())
    return {"paths_seconds": paths, "assign_seconds": assign, "import_seconds": imports}


def bench_paths(side: int, n_sources: int, repeats: int) -> dict:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra as scipy_dijkstra

    from uda.kernels.paths import csr_from_links, dijkstra, dijkstra_many

    n, tail, head, w = grid_graph(side)
    indptr, heads, slot_link = csr_from_links(n, tail, head)
    weights = w[slot_link]
    mat = sp.csr_matrix((weights, heads, indptr), shape=(n, n))
    rng = np.random.default_rng(1)
    source = int(rng.integers(n))
    sources = rng.choice(n, n_sources, replace=False)

    t = time.perf_counter()
    dijkstra(indptr, heads, weights, source)
    dijkstra_many(indptr, heads, weights, sources[:2])
    first_call = time.perf_counter() - t

    single, out1 = timing.interleaved({
        "uda": lambda: dijkstra(indptr, heads, weights, source),
        "scipy": lambda: scipy_dijkstra(mat, indices=source, return_predecessors=True),
        "scipy_no_predecessors": lambda: scipy_dijkstra(mat, indices=source),
    }, 3 * repeats)
    many, outm = timing.interleaved({
        "uda": lambda: dijkstra_many(indptr, heads, weights, sources),
        "scipy": lambda: scipy_dijkstra(mat, indices=sources, return_predecessors=True),
    }, max(1, repeats // 2))
    np.testing.assert_allclose(out1["uda"][0], out1["scipy"][0])
    np.testing.assert_allclose(outm["uda"][0], outm["scipy"][0])
    return {"nodes": n, "links": int(tail.size), "sources": n_sources, "first_call_seconds": first_call,
            "single": single, "many": many, "answers_agree": True}


def _aequilibrae_run(net, trips, gap: float, cores: int):
    import pandas as pd
    from aequilibrae.matrix import AequilibraeMatrix
    from aequilibrae.paths import Graph, TrafficAssignment, TrafficClass

    g = Graph()
    g.network = pd.DataFrame({
        "link_id": np.arange(1, net.num_links + 1), "a_node": net.init_node.astype(np.int64),
        "b_node": net.term_node.astype(np.int64), "direction": np.ones(net.num_links, np.int8),
        "free_flow_time": net.free_flow_time, "capacity": net.capacity, "b": net.b, "power": net.power})
    g.prepare_graph(np.arange(1, net.num_zones + 1, dtype=np.int64))
    g.set_graph("free_flow_time")
    g.set_skimming(["free_flow_time"])
    g.set_blocked_centroid_flows(net.first_thru_node > 1)
    mat = AequilibraeMatrix()
    mat.create_empty(zones=net.num_zones, matrix_names=["matrix"], memory_only=True)
    mat.index[:] = np.arange(1, net.num_zones + 1)
    mat.matrices[:, :, 0] = trips.demand
    mat.computational_view(["matrix"])
    assig = TrafficAssignment()
    assig.set_classes([TrafficClass("car", g, mat)])
    assig.set_vdf("BPR")
    assig.set_vdf_parameters({"alpha": "b", "beta": "power"})
    assig.set_capacity_field("capacity")
    assig.set_time_field("free_flow_time")
    assig.set_algorithm("bfw")
    assig.max_iter = 1000
    assig.rgap_target = gap
    assig.set_cores(cores)
    t = time.perf_counter()
    assig.execute()
    seconds = time.perf_counter() - t
    flows = assig.results()["matrix_ab"].sort_index().to_numpy()
    return seconds, assig.assignment.iter, float(assig.assignment.rgap), flows


def bench_assignment(repeats: int, gap: float = 1e-4) -> dict:
    from uda.io.tntp import read_folder
    from uda.kernels.assign import assign, relative_gap, warm_up
    from uda.routing.assignment import tntp_network

    net, trips = read_folder(SIOUX)
    problem = tntp_network(net, trips)
    compile_seconds = warm_up(parallel=True)
    ours, res = timing.repeat(lambda: assign(problem, algorithm="bfw", gap=gap), repeats)
    out = {"network": "SiouxFalls", "gap_target": gap, "compile_seconds_this_process": compile_seconds,
           "uda": {**ours, "iterations": res.iterations, "relative_gap": res.relative_gap,
                   "objective": res.objective}}
    try:
        import aequilibrae  # noqa: F401
    except ImportError as exc:
        out["aequilibrae"] = {"error": f"cannot import aequilibrae ({exc}); pip install aequilibrae"}
        return out
    from importlib.metadata import version

    cores = os.cpu_count() or 1
    _aequilibrae_run(net, trips, gap, cores)  # first run: imports and caches
    # Alternate ours and theirs so load changes hit both alike.
    times, ours_times, last = [], [], None
    for _ in range(repeats):
        t = time.perf_counter()
        assign(problem, algorithm="bfw", gap=gap)
        ours_times.append(time.perf_counter() - t)
        last = _aequilibrae_run(net, trips, gap, cores)
        times.append(last[0])
    out["uda_interleaved"] = timing.stats(ours_times)
    seconds, iterations, own_gap, flows = last
    ours_gap_on_theirs = relative_gap(problem, flows)[0]
    out["aequilibrae"] = {**timing.stats(times), "version": version("aequilibrae"), "cores": cores,
                          "iterations": int(iterations), "relative_gap_reported": own_gap,
                          "relative_gap_recomputed": ours_gap_on_theirs, "objective": problem.objective(flows)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=317, help="grid side (317 -> 100,489 nodes)")
    parser.add_argument("--sources", type=int, default=100, help="sources for the many-source run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (many-source: half)")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    import numba

    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "numba_threads": numba.get_num_threads(), "platform": platform.platform(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "load_average_at_start": os.getloadavg()},
        "cold_compile": cold_compile(),
        "paths": bench_paths(args.side, args.sources, args.repeats),
        "assignment": bench_assignment(args.repeats),
    }
    result["machine"]["load_average_at_end"] = os.getloadavg()
    _print(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return result


def _fmt(s: dict) -> str:
    return f"{s['median'] * 1e3:9.2f} ms  [{s['min'] * 1e3:.2f} .. {s['max'] * 1e3:.2f}] x{s['repeats']}"


def _print(r: dict) -> None:
    p, a, c = r["paths"], r["assignment"], r["cold_compile"]
    print(f"machine: {r['machine']}")
    print(f"numba cold compile (fresh cache): paths {c['paths_seconds']:.2f} s, assignment {c['assign_seconds']:.2f} s")
    print(f"grid {p['nodes']:,} nodes / {p['links']:,} links; first call in this process {p['first_call_seconds']:.3f} s")
    print(f"  single source  uda   {_fmt(p['single']['uda'])}")
    print(f"  single source  scipy {_fmt(p['single']['scipy'])}  (with predecessors)")
    print(f"  single source  scipy {_fmt(p['single']['scipy_no_predecessors'])}  (distances only)")
    print(f"  {p['sources']} sources    uda   {_fmt(p['many']['uda'])}")
    print(f"  {p['sources']} sources    scipy {_fmt(p['many']['scipy'])}")
    u = a["uda"]
    print(f"Sioux Falls BFW to gap {a['gap_target']:g}; uda compile/cache load {a['compile_seconds_this_process']:.3f} s")
    print(f"  uda         {_fmt(u)}  iterations {u['iterations']}, gap {u['relative_gap']:.3e}")
    if "uda_interleaved" in a:
        print(f"  uda         {_fmt(a['uda_interleaved'])}  (alternating with AequilibraE)")
    q = a["aequilibrae"]
    if "error" in q:
        print(f"  aequilibrae not run: {q['error']}")
    else:
        print(f"  aequilibrae {_fmt(q)}  iterations {q['iterations']}, gap {q['relative_gap_reported']:.3e} "
              f"(recomputed {q['relative_gap_recomputed']:.3e}), version {q['version']}, cores {q['cores']}")


if __name__ == "__main__":
    main()
