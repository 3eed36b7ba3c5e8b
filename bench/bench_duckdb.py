"""uda's relational stages beside the same query in DuckDB, in the same run, answers checked equal first.

Run from the project root::

    python bench/bench_duckdb.py [--scale medium] [--repeats 5] [--json results/bench-duckdb.json]

Stages (each is a uda library function, called as a task calls it, and the same work written
as DuckDB SQL over the same Parquet files, in ``bench/duckdb_queries.py``):

=============  ==========================================================  =====================================
stage          uda (Polars; Dask where the stage has a Dask form)          DuckDB
=============  ==========================================================  =====================================
route_slots    ``route.sensor_slots_polars`` / ``sensor_slots_dask``:      ``GROUP BY sensor_id, slot`` with the
               observations, summed pace and flow per sensor and hour      same filter and sums
pivot          ``flow.traffic_panel_polars`` / ``traffic_panel_dask``:     ``GROUP BY sensor_id, step`` (mean of
               long traffic rows -> sensors x 5-minute matrix              repeats), scattered into the matrix
read_long      ``io.long.read_long`` (``uda run flow --long``): a long     series in first-appearance order, grid
               file (sensor_id, ts, flow) -> panel; ``missing=()``         and duplicate checks, scatter
read_wide      ``io.wide.read_wide`` (``uda run flow --wide``): a wide     the same file read by DuckDB, grid
               file (ts + one column per sensor) -> panel; ``missing=()``  check, columns stacked
               (``uda +codes``: the default, missing-value codes detected)
utilisation    ``utilisation.GroupReducer`` per standardised group (rows   funnel counts and used rows per
               used per district, predicted defect codes) and              district; detector tp/fp/fn by a
               ``utilisation.score`` (tp/fp/fn against truth)              full outer join with the truth
=============  ==========================================================  =====================================

The datasets are generated (once, then reused) under ``--work``: ``uda generate --scale S
--seed N --tables traffic`` for route, pivot and the long/wide files, and ``--defects
realistic`` (standardised once, which writes ``clean/``) for utilisation. Every method reads
the files itself; the first call of each method is untimed and its answer is compared with
uda's Polars answer (exact for counts, relative 1e-9 for float sums): a method whose answer
differs is reported and not timed. Then the methods of a stage alternate, repeat by repeat
(the order rotates), and each repeat's wall and process CPU seconds are kept. Polars, Numba,
the Dask threads scheduler and DuckDB all get ``--threads`` threads. Reported: median,
min and max, the ratio of medians uda / DuckDB and the range of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.duckdb_queries import Duck  # noqa: E402

STAGES = ("route_slots", "pivot", "read_long", "read_wide", "utilisation")
SCALES = ("tiny", "small", "medium")
#: Goal of issue 18: uda's Polars pipeline within this factor of DuckDB's time on each stage.
GOAL = 1.2
RTOL = 1e-9


def _set_threads(n: int) -> None:
    """Thread pools of Polars, Numba and BLAS to ``n``: by environment before they are imported
    (as a script), else Numba's at run time (Polars keeps the pool it started with)."""
    if "polars" not in sys.modules and "numba" not in sys.modules:
        for var in ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n)
    else:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# --------------------------------------------------------------------------- datasets


def _dataset(path: Path, *, scale: str, seed: int, defects: str) -> Path:
    """``path`` holding a dataset of ``scale``/``seed``/``defects`` (generated when absent or different)."""
    from uda.generate import generate
    from uda.scales import resolve_scale

    man = path / "manifest.json"
    if man.is_file():
        p = json.loads(man.read_text())["params"]
        if p.get("name") == scale and p.get("seed") == seed and p.get("defects", "none") == defects:
            return path
    print(f"generating {scale} seed {seed} defects {defects} into {path}", file=sys.stderr)
    tables = ("traffic",) if defects == "none" else ("traffic", "passenger", "water")
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(path, scale=resolve_scale(scale), seed=seed, tables=tables, defects=defects, force=True)
    return path


def _clean(path: Path) -> Path:
    """``path`` standardised (``clean/`` written) once."""
    if not (path / "clean" / "manifest.json").is_file():
        from uda.tasks.standardise import standardise

        print(f"standardising {path}", file=sys.stderr)
        standardise(path, engine="polars", hashes=False)
    return path


def _reshape_files(ds: Any, folder: Path) -> tuple[Path, Path]:
    """A long file (sensor_id, ts, flow) and a wide file (ts + one flow column per sensor) of
    the traffic table, written once into ``folder``."""
    import numpy as np
    import polars as pl

    from uda.tasks.flow import traffic_panel_polars

    folder.mkdir(parents=True, exist_ok=True)
    long, wide = folder / "long.parquet", folder / "wide.parquet"
    stamp = folder / "source.txt"
    src = f"{ds.path} {ds.table('traffic')['files'][0]['sha256']}"
    if long.is_file() and wide.is_file() and stamp.is_file() and stamp.read_text() == src:
        return long, wide
    ds.scan("traffic").select("sensor_id", "ts", "flow").sink_parquet(long)
    ids, Y, t0 = traffic_panel_polars(ds, column="flow")
    ts = np.datetime64(int(t0), "ms") + np.arange(Y.shape[1]) * np.timedelta64(300, "s")
    keep = ~np.isnan(Y).all(axis=0)  # a wide table has rows only for steps with data
    frame = pl.DataFrame({"ts": ts[keep], **{str(int(i)): Y[k, keep] for k, i in enumerate(ids)}})
    frame.write_parquet(wide)
    stamp.write_text(src)
    return long, wide


# --------------------------------------------------------------------------- uda side


def uda_utilisation(ds: Any, engine: str, threads: int = 2) -> dict[str, Any]:
    """uda's reduction of every standardised group (``GroupReducer``, as ``utilisation.run``
    calls it, without the quality scan) and its detector scores (``utilisation.score``)."""
    import numpy as np
    import pyarrow.parquet as pq

    from uda.contract import FEED_TABLES, start_ms_of
    from uda.tasks.utilisation import GroupReducer, score

    city = {name: np.sort(ds.read(name)[col].to_numpy().astype(np.int64))
            for name, col in (("sensors", "sensor_id"), ("stations", "station_id"), ("water_sites", "site_id"))}
    city_keys = {"traffic": city["sensors"], "water": city["water_sites"], "taps": city["stations"]}
    start, days = start_ms_of(ds.params["start"]), int(ds.params["days"])
    reducer = GroupReducer(city, city_keys, start, days, False, None)
    jobs = []
    for table in FEED_TABLES:
        if not (ds.has(table) and ds.has(f"{table}_rejects")):
            continue
        clean = {Path(p).name: p for p in ds.files(table)}
        rej = {Path(p).name: p for p in ds.files(f"{table}_rejects")}
        jobs += [(table, name, clean.get(name), rej.get(name)) for name in sorted(clean.keys() | rej.keys())]

    def one(table: str, name: str, cpath: Any, rpath: Any) -> dict[str, Any]:
        c = pq.read_table(cpath) if cpath is not None else None
        r = pq.read_table(rpath) if rpath is not None else None
        c = c if c is not None else r.schema.empty_table()
        r = r if r is not None else c.schema.empty_table()
        return reducer(table, c, r)

    if engine == "polars":  # as standardise's Polars engine: a thread per group
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), threads))) as pool:
            outs = list(pool.map(lambda j: one(*j), jobs))
    else:
        import dask

        from uda.engines import dask_scheduler

        with dask_scheduler("threads"), dask.config.set(num_workers=threads):
            outs = dask.compute(*[dask.delayed(one)(*j) for j in jobs])
    reduced = {(t, n): o for (t, n, _, _), o in zip(jobs, outs, strict=True)}
    _, by_table = score(reduced, ds.scan("defects") if ds.has("defects") else None, city_keys=city_keys,
                        start=start, days=days)
    used: dict[str, dict[int, int]] = {}
    for (t, _), o in reduced.items():
        acc = used.setdefault(t, {})
        for d, n in o["used"].items():
            acc[d] = acc.get(d, 0) + n
    return {"used": {t: {d: n for d, n in sorted(v.items()) if n} for t, v in used.items()},
            "detectors": {t: {k: {x: v[x] for x in ("tp", "fp", "fn")} for k, v in per.items()}
                          for t, per in by_table.items()}}


# --------------------------------------------------------------------------- answers


def same_frame(a: Any, b: Any) -> str | None:
    """``None`` if two Polars frames agree (floats to :data:`RTOL`), else what differs."""
    import numpy as np

    if a.shape != b.shape or a.columns != b.columns:
        return f"shape/columns {a.shape} {a.columns} vs {b.shape} {b.columns}"
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype.kind == "f":
            if not np.allclose(x, y, rtol=RTOL, atol=0, equal_nan=True):
                return f"column {c}: largest difference {np.nanmax(np.abs(x - y)):.3g}"
        elif not np.array_equal(x, y):
            return f"column {c} differs"
    return None


def same_panel(a: tuple, b: tuple) -> str | None:
    """``None`` if two ``(ids, Y[, t0])`` panels agree (values to :data:`RTOL`), else what differs."""
    import numpy as np

    if [str(i) for i in a[0]] != [str(i) for i in b[0]]:
        return "series ids differ"
    if a[1].shape != b[1].shape:
        return f"shape {a[1].shape} vs {b[1].shape}"
    if not np.allclose(a[1], b[1], rtol=RTOL, atol=0, equal_nan=True):
        return "values differ"
    if len(a) > 2 and len(b) > 2 and a[2] != b[2]:
        return f"grid start {a[2]} vs {b[2]}"
    return None


def same_dict(a: dict, b: dict) -> str | None:
    """``None`` if two dicts are equal, else the first key whose values differ."""
    for k in sorted(a.keys() | b.keys()):
        if a.get(k) != b.get(k):
            return f"{k}: {a.get(k)} vs {b.get(k)}"
    return None


# --------------------------------------------------------------------------- timing


def _time(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and process CPU seconds (all threads) of ``fn()``, and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _stats(v: list[float]) -> dict[str, float]:
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "q1_s": q[0], "q3_s": q[2]}


def run_stage(name: str, methods: dict[str, Callable[[], Any]], same: Callable[[Any, Any], str | None],
              *, repeats: int, reference: str, duck: str = "duckdb") -> dict[str, Any]:
    """Check every method's answer against ``reference``'s, then time them interleaved."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    first: dict[str, float] = {}
    for m, fn in methods.items():
        wall, _, answers[m] = _time(fn)
        first[m] = wall
        print(f"  {name} {m}: first call {wall:.2f} s", file=sys.stderr)
    for m in methods:
        if m != reference:
            why = same(answers[reference], answers[m])
            if why is not None:
                errors[m] = f"answer differs from {reference}: {why}"
    answers.clear()
    timed = [m for m in methods if m not in errors]
    walls: dict[str, list[float]] = {m: [] for m in timed}
    cpus: dict[str, list[float]] = {m: [] for m in timed}
    for r in range(repeats):
        order = timed[r % len(timed):] + timed[:r % len(timed)]
        for m in order:
            wall, cpu, _ = _time(methods[m])
            walls[m].append(wall)
            cpus[m].append(cpu)
        print(f"  {name} repeat {r + 1}: " + ", ".join(f"{m} {walls[m][-1]:.2f} s" for m in timed), file=sys.stderr)
    out: dict[str, Any] = {"methods": {m: {**_stats(walls[m]), "cpu_median_s": statistics.median(cpus[m]),
                                           "walls_s": walls[m], "first_call_s": first[m]} for m in timed},
                           "errors": errors, "ratios": {}}
    if duck in walls:
        for m in timed:
            if m == duck:
                continue
            per = [a / b for a, b in zip(walls[m], walls[duck], strict=True)]
            out["ratios"][m] = {"ratio_of_medians": statistics.median(walls[m]) / statistics.median(walls[duck]),
                                "per_repeat_min": min(per), "per_repeat_max": max(per),
                                "cpu_ratio_of_medians": statistics.median(cpus[m]) / statistics.median(cpus[duck])}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; print a table and return the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=SCALES, default="medium", help="dataset scale [default: medium]")
    ap.add_argument("--seed", type=int, default=1, help="dataset seed [default: 1]")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "uda-bench-duckdb",
                    help="folder for the generated datasets and long/wide files (reused) [default: %(default)s]")
    ap.add_argument("--data", type=Path, default=None, help="use this dataset (defects none, traffic) instead")
    ap.add_argument("--data-defects", type=Path, default=None,
                    help="use this dataset with defects (standardised if clean/ is missing) for utilisation")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of every method [default: 5]")
    ap.add_argument("--threads", type=int, default=2, help="threads of every engine [default: 2]")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    ap.add_argument("--no-dask", action="store_true", help="leave out the Dask forms")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    args = ap.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or args.repeats < 1 or args.threads < 1:
        ap.error(f"unknown stage(s) {', '.join(unknown)}" if unknown else "--repeats and --threads must be >= 1")
    _set_threads(args.threads)

    import dask
    import duckdb
    import polars as pl

    from uda.engines import dask_scheduler
    from uda.io.long import read_long
    from uda.io.wide import read_wide
    from uda.store import open_dataset
    from uda.tasks.flow import traffic_panel_dask, traffic_panel_polars
    from uda.tasks.route import sensor_slots_dask, sensor_slots_polars

    tag = f"{args.scale}-s{args.seed}"
    duck = Duck(args.threads)
    results: dict[str, Any] = {}

    def dask_run(fn: Callable[[], Any]) -> Callable[[], Any]:
        def inner() -> Any:
            with dask_scheduler("threads"), dask.config.set(num_workers=args.threads):
                return fn()
        return inner

    plain = [s for s in stages if s != "utilisation"]
    if plain:
        data = args.data or _dataset(args.work / tag, scale=args.scale, seed=args.seed, defects="none")
        ds = open_dataset(data)
        files = [str(p) for p in ds.files("traffic")]
        rows = int(ds.table("traffic")["rows"])
        if "route_slots" in stages:
            m = {"uda polars": lambda: sensor_slots_polars(ds)}
            if not args.no_dask:
                m["uda dask"] = dask_run(lambda: sensor_slots_dask(ds))
            m["duckdb"] = lambda: duck.route_slots(files)
            results["route_slots"] = {"rows": rows, **run_stage("route_slots", m, same_frame,
                                                                repeats=args.repeats, reference="uda polars")}
        if "pivot" in stages:
            m = {"uda polars": lambda: traffic_panel_polars(ds, column="flow")}
            if not args.no_dask:
                m["uda dask"] = dask_run(lambda: traffic_panel_dask(ds, column="flow"))
            m["duckdb"] = lambda: duck.pivot(files, "flow")
            results["pivot"] = {"rows": rows, **run_stage("pivot", m, same_panel, repeats=args.repeats,
                                                          reference="uda polars")}
        if "read_long" in stages or "read_wide" in stages:
            long, wide = _reshape_files(ds, args.work / f"{tag}-reshape" if args.data is None
                                        else args.work / f"{Path(args.data).name}-reshape")
            if "read_long" in stages:
                def ours_long() -> tuple:
                    p = read_long(long, interval="5min", id_column="sensor_id", time_column="ts",
                                  value_column="flow", missing=())
                    return p.ids, p.values

                m = {"uda polars": ours_long,
                     "duckdb": lambda: duck.read_long(long, id_col="sensor_id", time_col="ts", value_col="flow",
                                                      interval_s=300)}
                results["read_long"] = {"rows": rows, "file": str(long), **run_stage(
                    "read_long", m, same_panel, repeats=args.repeats, reference="uda polars")}
            if "read_wide" in stages:
                def ours_wide(missing: tuple | None = ()) -> tuple:
                    p = read_wide(wide, interval="5min", time_column="ts", missing=missing)
                    return p.ids, p.values

                m = {"uda polars": ours_wide, "uda +codes": lambda: ours_wide(None),
                     "duckdb": lambda: duck.read_wide(wide, time_col="ts", interval_s=300)}
                results["read_wide"] = {"rows": pl.scan_parquet(wide).select(pl.len()).collect().item(),
                                        "file": str(wide), **run_stage("read_wide", m, same_panel,
                                                                       repeats=args.repeats, reference="uda polars")}
    if "utilisation" in stages:
        data = args.data_defects or _dataset(args.work / f"{tag}-realistic", scale=args.scale, seed=args.seed,
                                             defects="realistic")
        dsd = open_dataset(_clean(Path(data)))
        report_counts = dsd.manifest["clean"]["standardise"]["counts"]
        rows = sum(int(dsd.table(t)["rows"]) for t in dsd.tables if t.split("_")[0] in ("traffic", "taps", "water")
                   and dsd.tables[t].get("source") == "clean")
        d = duck.utilisation(dsd)
        bad = same_dict(report_counts, d["counts"])
        counts_check = "equal to the standardise report" if bad is None else f"differ: {bad}"
        m = {"uda polars": lambda: uda_utilisation(dsd, "polars", args.threads)}
        if not args.no_dask:
            m["uda dask"] = lambda: uda_utilisation(dsd, "dask", args.threads)
        m["duckdb"] = lambda: {k: v for k, v in duck.utilisation(dsd).items() if k != "counts"}
        results["utilisation"] = {"rows": rows, "funnel_counts_check": counts_check,
                                  **run_stage("utilisation", m, same_dict, repeats=args.repeats,
                                              reference="uda polars")}

    result = {"scale": args.scale, "seed": args.seed, "threads": args.threads, "repeats": args.repeats,
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "goal": GOAL,
              "versions": {"polars": pl.__version__, "duckdb": duckdb.__version__, "dask": dask.__version__},
              "stages": results,
              "command": "python bench/bench_duckdb.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{'stage':12s} {'method':14s} {'rows':>11s} {'median s':>9s} {'min':>7s} {'max':>7s} "
          f"{'/ duckdb':>9s} {'per-repeat':>12s} {'goal':>5s}")
    for stage, r in results.items():
        for m, v in r["methods"].items():
            ra = r["ratios"].get(m)
            rs = f"{ra['ratio_of_medians']:9.2f} {ra['per_repeat_min']:5.2f}–{ra['per_repeat_max']:<6.2f}" if ra \
                else f"{'':9s} {'':12s}"
            goal = ("met" if ra["ratio_of_medians"] <= GOAL else "NOT") if ra and m == "uda polars" else ""
            print(f"{stage:12s} {m:14s} {r['rows']:11,d} {v['median_s']:9.2f} {v['min_s']:7.2f} {v['max_s']:7.2f} "
                  f"{rs} {goal:>5s}")
        for m, why in r["errors"].items():
            print(f"{stage:12s} {m:14s} not timed: {why}")
        if "funnel_counts_check" in r:
            print(f"{stage:12s} DuckDB funnel counts per district: {r['funnel_counts_check']}")
    print(f"load average {result['load_average'][0]:.1f}; {args.threads} threads each; {args.repeats} repeats")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
