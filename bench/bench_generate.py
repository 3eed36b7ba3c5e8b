"""Generation throughput of the traffic table: in memory, and generate-and-write end to end.

Measures, in one run on this machine:

* ``in_memory``: every traffic chunk generated into Arrow tables by the Numba kernel on
  ``--workers`` threads, nothing written;
* ``end_to_end``: :func:`uda.generate.generate` of the traffic table (kernel, content
  hash, Parquet zstd encode, file SHA-256, manifest, atomic rename);
* ``parquet_ceiling`` (the peer): pyarrow writing the same tables with the same options
  and encodings on the same threads, the expected ceiling of any generate-and-write;
* ``compile``: the first kernel call in this process (Numba compile or cache load),
  reported apart from the steady state.

Run: ``python bench/bench_generate.py --scale medium --repeats 5``

``--cli`` times the command as users run it instead: the whole ``uda generate --scale S``
(all tables, a fresh ``--out`` each time, process start and imports included) as a
subprocess, ``--repeats`` times, reporting wall time, CPU time of the process (user +
system, from ``getrusage``), %CPU and traffic and total rows per wall second. With
``--baseline DIR`` (a source tree of another uda version with ``uda/`` and ``cli/``,
e.g. ``git archive HEAD~1 | tar -x -C DIR``) its command runs alternately with this one,
so both see the same load, and the checksums of both datasets are compared.

Run: ``python bench/bench_generate.py --cli --scale medium --repeats 5 [--baseline DIR]``

``--timeline`` runs :func:`uda.generate.generate` once in this process and reports when
the first chunk job started and, from then to the last job's end, the share of the time
with one, two or more tasks in flight (chunk generation and file writes on the workers,
the passenger and water inputs and the small tables on the main thread): whether the
work could keep two cores busy, which a loaded machine's %CPU cannot show.

``--phases`` runs ``uda generate --scale S`` as a subprocess ``--repeats`` times with
marks at the phases of the command (interpreter start, imports, city, model inputs,
first chunk job, last chunk job, manifest, printing, process exit) and reports each
phase's wall time and CPU time (all threads of the process): the serial start (one
core at most) against the chunk phase (two cores) is where the wall time goes.

Run: ``python bench/bench_generate.py --phases --scale medium --repeats 5``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from uda.city import build_city
from uda.generate import DEFAULT_CHUNK_ROWS, ENCODINGS, generate
from uda.scales import resolve_scale
from uda.store import PARQUET_OPTIONS
from uda.synth.plan import Plan, chunk_ranges
from uda.synth.traffic import SLOTS


def _stats(xs: list[float], cpu: list[float], rows: int, nbytes: int, workers: int) -> dict:
    med = statistics.median(xs)
    cpu_med = statistics.median(cpu)
    return {"median_s": med, "min_s": min(xs), "max_s": max(xs), "rows_per_s": rows / med,
            "mb_per_s": nbytes / med / 1e6, "rows_per_s_range": [rows / max(xs), rows / min(xs)],
            "cpu_s_median": cpu_med, "rows_per_cpu_s": rows / cpu_med,
            # what `workers` otherwise idle cores would give, assuming the independent chunks
            # scale perfectly: an estimate for a loaded machine, labelled as such
            "rows_per_s_if_cores_idle": rows / cpu_med * workers}


def _timed(fn) -> tuple[float, float]:
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t, time.process_time() - c


#: Runs ``uda`` from the source tree given as the first argument (its ``uda/`` and ``cli/``).
_DRIVER = """
import importlib.util, sys
root = sys.argv[1]
sys.path.insert(0, root)
import uda
spec = importlib.util.spec_from_file_location("uda.cli", root + "/cli/__init__.py",
                                              submodule_search_locations=[root + "/cli"])
mod = importlib.util.module_from_spec(spec)
sys.modules["uda.cli"] = mod
spec.loader.exec_module(mod)
from uda.cli.main import main
sys.argv = ["uda", *sys.argv[2:]]
main()
"""


def _run_cli(cmd: list[str], out: Path) -> dict:
    """Run one ``uda generate`` command; wall, CPU (user + system of the child) and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([*cmd, "--out", str(out), "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "summary": json.loads(proc.stdout)}


def _cli_stats(runs: list[dict]) -> dict:
    walls = [r["wall"] for r in runs]
    cpus = [r["cpu"] for r in runs]
    tables = runs[0]["summary"]["tables"]
    traffic_rows = tables.get("traffic", {}).get("rows", 0)
    all_rows = sum(t["rows"] for t in tables.values())
    med = statistics.median(walls)
    return {"wall_s": walls, "median_s": med, "min_s": min(walls), "max_s": max(walls),
            "cpu_s_median": statistics.median(cpus), "cpu_percent": [100 * c / w for c, w in zip(cpus, walls, strict=True)],
            "traffic_rows": traffic_rows, "all_rows": all_rows,
            "traffic_rows_per_s": traffic_rows / med,
            "traffic_rows_per_s_range": [traffic_rows / max(walls), traffic_rows / min(walls)],
            "all_rows_per_s": all_rows / med,
            "bytes": {k: t["bytes"] for k, t in tables.items()},
            "checksums": {k: t["checksum"] for k, t in tables.items()}}


def cli_main(args: argparse.Namespace) -> None:
    """Time ``uda generate --scale S`` as users run it (see the module docstring)."""
    tmp = Path(tempfile.mkdtemp(prefix="uda-bench-cli-"))
    here = [shutil.which("uda") or "uda", "generate", "--scale", args.scale, "--seed", "1"]
    variants = {"current": here}
    if args.baseline:
        variants["baseline"] = [sys.executable, "-c", _DRIVER, str(Path(args.baseline).resolve()),
                                "generate", "--scale", args.scale, "--seed", "1"]
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    try:
        for name, cmd in variants.items():  # warm-up: Numba cache, page cache
            _run_cli(cmd, tmp / f"warm-{name}")
        for i in range(args.repeats):
            for name, cmd in variants.items():
                runs[name].append(_run_cli(cmd, tmp / f"{name}-{i}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"scale": args.scale, "repeats": args.repeats, "cpus": os.cpu_count(),
              "load_avg_1m_at_end": os.getloadavg()[0], **{k: _cli_stats(v) for k, v in runs.items()}}
    if args.baseline:
        result["same_checksums"] = result["current"]["checksums"] == result["baseline"]["checksums"]
        result["baseline_over_current_wall"] = result["baseline"]["median_s"] / result["current"]["median_s"]
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"uda generate --scale {args.scale} (all tables, fresh --out), {args.repeats} repeats, "
          f"{os.cpu_count()} cores, load average {result['load_avg_1m_at_end']:.1f} at the end")
    for name in runs:
        s = result[name]
        lo, hi = s["traffic_rows_per_s_range"]
        pc = sorted(s["cpu_percent"])
        print(f"  {name:9s} wall {s['median_s']:6.2f} s [{s['min_s']:.2f}-{s['max_s']:.2f}]  "
              f"CPU {s['cpu_s_median']:5.2f} s  %CPU {statistics.median(pc):4.0f} [{pc[0]:.0f}-{pc[-1]:.0f}]  "
              f"traffic {s['traffic_rows_per_s'] / 1e6:5.2f} M rows/s [{lo / 1e6:.2f}-{hi / 1e6:.2f}]  "
              f"all tables {s['all_rows_per_s'] / 1e6:5.2f} M rows/s")
    if args.baseline:
        print(f"  baseline / current wall (medians) {result['baseline_over_current_wall']:.2f}; "
              f"same checksums: {result['same_checksums']}")


def timeline_main(args: argparse.Namespace) -> None:
    """One in-process generation with its tasks timed (see the module docstring)."""
    import threading

    import uda.generate as g

    spans: list[tuple[float, float]] = []

    def timed(obj, name: str) -> None:
        f = getattr(obj, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                with lock:
                    spans.append((t, time.perf_counter()))
        setattr(obj, name, wrapper)

    lock = threading.Lock()
    for name in ("traffic_chunk", "passenger_chunk", "water_chunk", "prepare_passenger", "prepare_water"):
        timed(Plan, name)
    timed(g, "write_part")
    out = Path(tempfile.mkdtemp(prefix="uda-bench-tl-")) / "ds"
    t0 = time.perf_counter()
    try:
        generate(out, scale=resolve_scale(args.scale), seed=1, workers=args.workers)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    t_end = time.perf_counter()
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    share = {"1": 0.0, "2": 0.0, "3+": 0.0}
    level, prev = 0, first
    for t, d in events:
        if level > 0:
            share["1" if level == 1 else "2" if level == 2 else "3+"] += t - prev
        level, prev = level + d, t
    result = {"scale": args.scale, "workers": args.workers, "generate_s": t_end - t0, "first_job_s": first - t0,
              "job_span_s": last - first, "in_flight_share": {k: v / (last - first) for k, v in share.items()},
              "load_avg_1m_at_end": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    sh = result["in_flight_share"]
    print(f"generate(scale={args.scale}, workers={args.workers}): {result['generate_s']:.2f} s; first chunk job at "
          f"{result['first_job_s']:.2f} s; then {result['job_span_s']:.2f} s with 1 / 2 / 3+ tasks in flight "
          f"{sh['1']:.0%} / {sh['2']:.0%} / {sh['3+']:.0%}; load average {result['load_avg_1m_at_end']:.1f}")


#: Runs ``uda generate`` in this interpreter with the phases of :func:`phases_main` marked.
_PHASE_DRIVER = """
import json, sys, threading, time
marks = [("interpreter", time.time(), time.process_time())]
def mark(name):
    marks.append((name, time.time(), time.process_time()))
import uda.generate as g
from uda.synth.plan import Plan
from uda.cli.main import main
mark("imports")
lock = threading.Lock()
jobs = []
def wrap(obj, name, after=None):
    f = getattr(obj, name)
    def w(*a, **k):
        t = time.time()
        try:
            return f(*a, **k)
        finally:
            if after:
                mark(after)
            else:
                with lock:
                    jobs.append((t, time.time(), time.process_time()))
    setattr(obj, name, w)
wrap(g, "build_city", "city")
for n in ("traffic_chunk", "passenger_chunk", "water_chunk"):
    wrap(Plan, n)
orig_init = Plan.__init__
def init(self, *a, **k):
    orig_init(self, *a, **k)
    mark("traffic inputs")
Plan.__init__ = init
orig_gen = g.generate
def gen(*a, **k):
    mark("command parsed")
    try:
        return orig_gen(*a, **k)
    finally:
        mark("generate returned")
g.generate = gen
sys.argv = ["uda", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
mark("printed")
first = min(jobs)
last = max(jobs, key=lambda j: j[1])
print(json.dumps({"marks": marks, "first_job": first[0], "last_job_end": last[1]}), file=sys.stderr)
"""


def phases_main(args: argparse.Namespace) -> None:
    """Wall and CPU time of each phase of ``uda generate`` (see the module docstring)."""
    tmp = Path(tempfile.mkdtemp(prefix="uda-bench-ph-"))
    rows = []
    try:
        for i in range(args.repeats + 1):  # the first is a warm-up
            out = tmp / f"ds{i}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-c", _PHASE_DRIVER, "generate", "--scale", args.scale,
                                   "--seed", "1", "--out", str(out), "--json"],
                                  capture_output=True, text=True, check=False)
            t_exit = time.time()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            shutil.rmtree(out, ignore_errors=True)
            if proc.returncode:
                raise SystemExit(f"uda generate failed: {proc.stderr.strip().splitlines()[-1:]}")
            info = json.loads(proc.stderr.strip().splitlines()[-1])
            cpu_total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            marks = info["marks"]
            by = {n: (t, c) for n, t, c in marks}
            # chunk jobs are timed by wall clock only (their CPU overlaps); the phases run
            # from one mark to the next, the first from the subprocess's start
            points = [("process start", t0, 0.0), *marks, ("process exit", t_exit, cpu_total)]
            phases = {}
            for (_a, ta, ca), (b, tb, cb) in zip(points, points[1:], strict=False):
                phases[b] = (tb - ta, cb - ca)
            if i:
                rows.append({"phases": phases, "wall": t_exit - t0, "cpu": cpu_total,
                             "to_first_job": info["first_job"] - t0,
                             "jobs_span": info["last_job_end"] - info["first_job"],
                             "after_last_job": t_exit - info["last_job_end"],
                             "cpu_before_city": by["city"][1]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    names = list(rows[0]["phases"])
    summary = {"scale": args.scale, "repeats": args.repeats, "load_avg_1m_at_end": os.getloadavg()[0],
               "phases": {n: {"wall_s": med([r["phases"][n][0] for r in rows]),
                              "cpu_s": med([r["phases"][n][1] for r in rows])} for n in names},
               **{k: {"median": med([r[k] for r in rows]), "min": min(r[k] for r in rows),
                      "max": max(r[k] for r in rows)}
                  for k in ("wall", "cpu", "to_first_job", "jobs_span", "after_last_job")}}
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"uda generate --scale {args.scale}: phases, medians of {args.repeats} runs "
          f"(load average {summary['load_avg_1m_at_end']:.1f} at the end; CPU = all threads)")
    for n, v in summary["phases"].items():
        print(f"  ... -> {n:18s} wall {v['wall_s']:6.3f} s  CPU {v['cpu_s']:6.3f} s")
    for k in ("wall", "cpu", "to_first_job", "jobs_span", "after_last_job"):
        v = summary[k]
        print(f"  {k:15s} {v['median']:6.2f} s [{v['min']:.2f}-{v['max']:.2f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cli", action="store_true", help="time the whole `uda generate` command as users run it")
    ap.add_argument("--baseline", default=None, help="with --cli: source tree of another uda to run alternately")
    ap.add_argument("--timeline", action="store_true", help="one in-process run: how many tasks were in flight")
    ap.add_argument("--phases", action="store_true",
                    help="the CLI as a subprocess, wall and CPU time of each phase")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cli:
        cli_main(args)
        return
    if args.timeline:
        timeline_main(args)
        return
    if args.phases:
        phases_main(args)
        return
    scale = resolve_scale(args.scale)
    rows = scale.traffic_rows

    t = time.perf_counter()
    plan = Plan(build_city(scale, 1), 1)
    setup_s = time.perf_counter() - t
    t = time.perf_counter()
    plan.traffic_chunk(0, 1)
    compile_s = time.perf_counter() - t
    ranges = chunk_ranges(scale.sensors, DEFAULT_CHUNK_ROWS // (scale.days * SLOTS))

    def gen_all() -> list:
        with ThreadPoolExecutor(args.workers) as pool:
            return list(pool.map(lambda r: plan.traffic_chunk(*r), ranges))

    tables = gen_all()
    mem_bytes = sum(tb.nbytes for tb in tables)
    in_memory, in_memory_cpu = [], []
    for _ in range(args.repeats):
        wall, cpu = _timed(gen_all)
        in_memory.append(wall)
        in_memory_cpu.append(cpu)

    tmp = Path(tempfile.mkdtemp(prefix="uda-bench-"))
    def write_all() -> None:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda it: pq.write_table(it[1], tmp / f"p{it[0]}.parquet", **PARQUET_OPTIONS,
                                                    **ENCODINGS["traffic"]),
                          enumerate(tables)))

    ceiling, ceiling_cpu, end_to_end, end_to_end_cpu = [], [], [], []
    for i in range(args.repeats):  # the peer and ours alternate, so both see the same load
        wall, cpu = _timed(write_all)
        ceiling.append(wall)
        ceiling_cpu.append(cpu)
        wall, cpu = _timed(lambda i=i: generate(tmp / f"ds{i}", scale=scale, seed=1, workers=args.workers,
                                                tables=("traffic",)))
        end_to_end.append(wall)
        end_to_end_cpu.append(cpu)
        shutil.rmtree(tmp / f"ds{i}")
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "scale": scale.name, "rows": rows, "in_memory_bytes": mem_bytes, "workers": args.workers,
        "repeats": args.repeats, "setup_s": setup_s, "compile_or_cache_load_s": compile_s,
        "load_avg_1m_at_end": os.getloadavg()[0],
        "in_memory": _stats(in_memory, in_memory_cpu, rows, mem_bytes, args.workers),
        "end_to_end": _stats(end_to_end, end_to_end_cpu, rows, mem_bytes, args.workers),
        "parquet_ceiling": _stats(ceiling, ceiling_cpu, rows, mem_bytes, args.workers),
    }
    result["end_to_end_vs_ceiling"] = result["parquet_ceiling"]["median_s"] / result["end_to_end"]["median_s"]
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{scale.name}: {rows:,} traffic rows, {mem_bytes / 1e6:.0f} MB in memory, {args.workers} workers, "
          f"{args.repeats} repeats (median [min-max] rows/s)")
    print(f"  setup (city + model inputs) {setup_s:.2f} s; first kernel call (compile or cache load) {compile_s:.2f} s")
    for k in ("in_memory", "end_to_end", "parquet_ceiling"):
        s = result[k]
        lo, hi = s["rows_per_s_range"]
        print(f"  {k:16s} {s['rows_per_s'] / 1e6:6.1f} M rows/s [{lo / 1e6:.1f}-{hi / 1e6:.1f}]  {s['mb_per_s']:6.0f} MB/s"
              f"  | {s['rows_per_cpu_s'] / 1e6:5.1f} M rows per CPU-second,"
              f" {s['rows_per_s_if_cores_idle'] / 1e6:5.1f} M rows/s if {args.workers} cores were idle")
    print(f"  end-to-end reaches {result['end_to_end_vs_ceiling']:.0%} of the bare Parquet write; "
          f"load average {result['load_avg_1m_at_end']:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
