"""Quality metrics in one scan vs a bare Parquet scan, pandera (Polars backend) and Great Expectations.

All methods run on the same traffic table in the same process, interleaved per repeat, and
report median, min and max wall time. Every method reads the Parquet files itself (the read
is part of the job). The checks:

==========================  ======================  =========================  ==========================
check                       uda (one scan)          pandera (polars)           Great Expectations (pandas)
==========================  ======================  =========================  ==========================
values present (5 columns)  completeness_value      nullable=False             expect_column_values_to_not_be_null
flow/speed/occupancy range  accuracy_range          Check.in_range             expect_column_values_to_be_between
sensor id resolves          referential_integrity   Check.isin(sensors)        expect_column_values_to_be_in_set
time inside the period      in_period               Check.in_range             expect_column_values_to_be_between
time on the 5-minute grid   consistency_format      custom element check       (not expressible: skipped)
(sensor, ts) unique         uniqueness              unique=[sensor_id, ts]     expect_compound_columns_to_be_unique
intervals received          completeness_interval   custom frame check         expect_table_row_count_to_equal
stuck sensor runs           accuracy_stuck          custom frame check         (not expressible: skipped)
distinct sensors            HyperLogLog             custom frame check         expect_column_unique_value_count_to_be_between
p01/p50/p99 of 3 columns    log-bucket sketch       custom frame check         expect_column_quantile_values_to_be_between
==========================  ======================  =========================  ==========================

uda also computes all of these per district; the peers only per table.

Usage::

    uda generate --scale medium --out /tmp/medium --tables traffic
    python bench/bench_quality.py --data /tmp/medium --repeats 3 --json results/bench-quality.json

``--table PATH`` instead times ``uda run quality --table`` (the profile of any table, see
:func:`table_profile`) against pandera and Great Expectations doing the same checks, and with
``--data`` against the generated-data scan and a bare read of the same files, interleaved::

    python bench/bench_quality.py --table /tmp/medium/raw/traffic --data /tmp/medium --repeats 5 --peer-repeats 1

Ratios are also given per repeat (the methods of one repeat ran back to back, under the same load):
median and range.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")  # Great Expectations' progress bars
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _bare(files):
    import polars as pl

    return pl.read_parquet(files).height


def _ours(ds, engine="polars"):
    from uda.quality.scan import measure

    return measure(ds, "traffic", engine=engine)["overall"]["rows"]


def _period(ds):
    start = dt.datetime.fromisoformat(ds.params["start"])
    return start, start + dt.timedelta(days=int(ds.params["days"]))


def _pandera(files, sensors, period, expected):
    import pandera.polars as pa
    import polars as pl

    lo, hi = period

    def on_grid(data):
        return data.lazyframe.select((pl.col(data.key).dt.epoch("ms") % 300_000) == 0)

    def intervals(data):
        n = data.lazyframe.select(pl.struct("sensor_id", pl.col("ts").dt.truncate("5m")).n_unique()).collect().item()
        return data.lazyframe.select(pl.lit(n == expected))

    def not_stuck(data):
        same = pl.all_horizontal([(pl.col(c) == pl.col(c).shift(1).over("sensor_id")) for c in
                                  ("flow", "speed", "occupancy")]) & (pl.col("flow") > 0)
        runs = data.lazyframe.sort("sensor_id", "ts").select(same.fill_null(False).alias("s"))
        return runs.select(~pl.col("s") | pl.lit(True))

    def distinct_and_quantiles(data):
        stats = data.lazyframe.select(pl.col("sensor_id").n_unique().alias("n"),
                                      *[pl.col(c).quantile(q).alias(f"{c}{q}") for c in ("flow", "speed", "occupancy")
                                        for q in (0.01, 0.5, 0.99)]).collect()
        return data.lazyframe.select(pl.lit(stats["n"][0] > 0))

    schema = pa.DataFrameSchema(
        {
            "sensor_id": pa.Column(pl.Int32, pa.Check.isin(sensors), nullable=False),
            "ts": pa.Column(pl.Datetime("ms"), [pa.Check.in_range(lo, hi, include_max=False),
                                                pa.Check(on_grid, name="on_grid")], nullable=False),
            "flow": pa.Column(pl.Float32, pa.Check.in_range(0, 12000), nullable=False),
            "speed": pa.Column(pl.Float32, pa.Check.in_range(0, 160), nullable=False),
            "occupancy": pa.Column(pl.Float32, pa.Check.in_range(0, 1), nullable=False),
        },
        unique=["sensor_id", "ts"],
        checks=[pa.Check(intervals, name="intervals"), pa.Check(not_stuck, name="stuck"),
                pa.Check(distinct_and_quantiles, name="distinct_quantiles")],
    )
    df = pl.read_parquet(files)
    schema.validate(df, lazy=True)
    return df.height


def _gx(files, sensors, period, expected):
    import great_expectations as gx
    import pandas as pd

    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    ctx = gx.get_context(mode="ephemeral")
    batch = (ctx.data_sources.add_pandas("p").add_dataframe_asset("traffic")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))
    E = gx.expectations
    lo, hi = period
    exps = [E.ExpectColumnValuesToNotBeNull(column=c) for c in ("sensor_id", "ts", "flow", "speed", "occupancy")]
    exps += [E.ExpectColumnValuesToBeBetween(column="flow", min_value=0, max_value=12000),
             E.ExpectColumnValuesToBeBetween(column="speed", min_value=0, max_value=160),
             E.ExpectColumnValuesToBeBetween(column="occupancy", min_value=0, max_value=1),
             E.ExpectColumnValuesToBeBetween(column="ts", min_value=lo, max_value=hi, strict_max=True),
             E.ExpectColumnValuesToBeInSet(column="sensor_id", value_set=[int(x) for x in sensors]),
             E.ExpectCompoundColumnsToBeUnique(column_list=["sensor_id", "ts"]),
             E.ExpectTableRowCountToEqual(value=expected),
             E.ExpectColumnUniqueValueCountToBeBetween(column="sensor_id", min_value=1, max_value=None)]
    exps += [E.ExpectColumnQuantileValuesToBeBetween(
        column=c, quantile_ranges={"quantiles": [0.01, 0.5, 0.99], "value_ranges": [[None, None]] * 3})
        for c in ("flow", "speed", "occupancy")]
    suite = ctx.suites.add(gx.ExpectationSuite(name="traffic", expectations=exps))
    result = batch.validate(suite)
    if not result.success:
        bad = [r.expectation_config.type for r in result.results if not r.success]
        print(f"  gx: {len(bad)} expectations failed: {bad}", file=sys.stderr)
    return len(df)


# ------------------------------------------------------------------ table profile (uda run quality --table)

_SENT = [-1.0, -9.0, -99.0, -999.0, -9999.0, -99999.0, 999.0, 9999.0, 99999.0, 999999.0]


def _profile_ours(path, time_col, group_col, key):
    from uda.quality.table.profile import profile_table

    return profile_table(path, time_col=time_col, group_col=group_col, key=key)[0]["rows"]


def _profile_pandera(path, time_col, group_col, key, values):
    """The same checks as ``uda run quality --table``, per table: nulls, sentinels, range, key and row
    uniqueness, per-group timeline (duplicates, out of order, gaps from the modal step), stuck runs,
    distinct counts and quantiles."""
    import pandera.polars as pa
    import polars as pl

    def timeline(data):
        lf = data.lazyframe
        d = lf.select(pl.col(time_col).diff().over(group_col).dt.total_microseconds().alias("d")).collect()["d"]
        step = d.filter(d > 0).mode().min()
        _ = (d < 0).sum(), (d == 0).sum(), (2 * d >= 3 * step).sum(), d.max()
        s = lf.sort(group_col, time_col).select(pl.col(time_col).diff().over(group_col).alias("s")).collect()
        return lf.select(pl.lit(bool((s["s"].dt.total_microseconds().fill_null(0) >= 0).all())))

    def stuck(data):
        same = [(pl.col(c) == pl.col(c).shift(1).over(group_col)) for c in values]
        data.lazyframe.select([s.sum() for s in same]).collect()
        return data.lazyframe.select(pl.lit(True))

    def dup_rows(data):
        n = data.lazyframe.select(pl.struct(pl.all()).is_duplicated().sum()).collect().item()
        return data.lazyframe.select(pl.lit(n >= 0))

    def sketches(data):
        data.lazyframe.select(*[pl.col(c).n_unique().alias(f"n{c}") for c in values],
                              *[pl.col(c).quantile(q).alias(f"{c}{q}") for c in values
                                for q in (0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999)]).collect()
        return data.lazyframe.select(pl.lit(True))

    cols = {c: pa.Column(nullable=False, checks=[pa.Check.notin(_SENT)]) for c in values}
    cols[time_col] = pa.Column(nullable=False)
    cols[group_col] = pa.Column(nullable=False)
    schema = pa.DataFrameSchema(cols, unique=key, checks=[pa.Check(timeline, name="timeline"),
                                                          pa.Check(stuck, name="stuck"),
                                                          pa.Check(dup_rows, name="duplicate_rows"),
                                                          pa.Check(sketches, name="sketches")])
    df = pl.read_parquet(path)
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors:  # failed checks are findings; the time counts all the same
        pass
    return df.height


def _profile_gx(path, time_col, group_col, key, values):
    """Great Expectations (pandas) with the checks it can express: nulls, sentinels, key uniqueness,
    distinct counts, quantiles (no timeline, stuck runs or duplicate rows expectation: skipped)."""
    import great_expectations as gx
    import pandas as pd

    df = pd.read_parquet(path)
    ctx = gx.get_context(mode="ephemeral")
    batch = (ctx.data_sources.add_pandas("p").add_dataframe_asset("t")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))
    E = gx.expectations
    exps = [E.ExpectColumnValuesToNotBeNull(column=c) for c in [time_col, group_col, *values]]
    exps += [E.ExpectColumnValuesToNotBeInSet(column=c, value_set=_SENT) for c in values]
    exps += [E.ExpectCompoundColumnsToBeUnique(column_list=key)]
    exps += [E.ExpectColumnUniqueValueCountToBeBetween(column=c, min_value=1, max_value=None) for c in values]
    exps += [E.ExpectColumnQuantileValuesToBeBetween(
        column=c, quantile_ranges={"quantiles": [0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999],
                                   "value_ranges": [[None, None]] * 7}) for c in values]
    suite = ctx.suites.add(gx.ExpectationSuite(name="t", expectations=exps))
    batch.validate(suite)
    return len(df)


def table_profile(argv: list[str] | None = None) -> dict:
    """``--table PATH``: uda run quality --table against pandera and Great Expectations doing the same checks,
    and (with ``--data``) against the generated-data scan and a bare read of the same files, same run."""
    ap = argparse.ArgumentParser(description="table profile benchmark")
    ap.add_argument("--table", required=True, help="Parquet file or folder (e.g. DATA/raw/traffic)")
    ap.add_argument("--data", default=None,
                    help="the dataset the table belongs to: also time uda.quality.scan.measure (the generated-data "
                         "scan) and a bare Polars read of the same files, interleaved")
    ap.add_argument("--time-col", default="ts")
    ap.add_argument("--group-col", default="sensor_id")
    ap.add_argument("--key", default="sensor_id,ts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--peers", default="pandera,gx", help="peers to run (comma-separated; empty for none)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import polars as pl

    files = (sorted(str(p) for p in Path(args.table).glob("*.parquet")) if Path(args.table).is_dir()
             else [args.table])
    sch = pl.read_parquet_schema(files[0])
    key = args.key.split(",")
    values = [c for c, t in sch.items() if t.is_numeric() and c not in (args.group_col, *key)]
    target = args.table
    wanted = {p.strip() for p in args.peers.split(",") if p.strip()}
    _profile_ours(files[0], args.time_col, args.group_col, key)  # warm-up: Numba cache, imports
    methods = {"uda quality --table": lambda: _profile_ours(target, args.time_col, args.group_col, key)}
    if args.data:
        from uda.quality.scan import measure
        from uda.store import open_dataset

        ds = open_dataset(args.data)
        if sorted(str(p) for p in ds.files("traffic")) != files:
            msg = f"--table {args.table} is not the traffic table of --data {args.data}"
            raise SystemExit(msg)
        measure(ds, "traffic")  # warm-up
        methods["generated-data scan (uda.quality.scan.measure)"] = lambda: _ours(ds)
        methods["bare polars read"] = lambda: _bare(files)
    if "pandera" in wanted:
        methods["pandera (polars backend)"] = lambda: _profile_pandera(files, args.time_col, args.group_col, key,
                                                                       values)
    if "gx" in wanted:
        methods["great expectations (pandas)"] = lambda: _profile_gx(files, args.time_col, args.group_col, key,
                                                                     values)
    times: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    peer = ("pandera", "great")
    for r in range(max(args.repeats, args.peer_repeats)):
        for name, fn in methods.items():
            if r < (args.peer_repeats if name.startswith(peer) else args.repeats):
                wall, c = _time(fn)
                times[name].append(wall)
                cpu[name].append(c)
                print(f"  {name}: {wall:.2f} s wall, {c:.2f} s CPU", file=sys.stderr)
    rows = pl.scan_parquet(files).select(pl.len()).collect().item()
    summary = {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "runs": len(v),
                   "cpu_median_s": statistics.median(cpu[k]), "cpu_min_s": min(cpu[k]), "cpu_max_s": max(cpu[k]),
                   "rows_per_s": rows / statistics.median(v)} for k, v in times.items() if v}
    ours = summary["uda quality --table"]["median_s"]
    result = {"table": args.table, "rows": rows, "files": len(files), "cpus": os.cpu_count(), "methods": summary,
              "speedup_vs_peers": {k: v["median_s"] / ours for k, v in summary.items() if k.startswith(peer)},
              "cpu_speedup_vs_peers": {k: v["cpu_median_s"] / summary["uda quality --table"]["cpu_median_s"]
                                       for k, v in summary.items() if k.startswith(peer)},
              "load_average": os.getloadavg(),
              "command": "python bench/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.data:  # per repeat (interleaved, so both saw the same load): table rows/s over the scan's
        gen = "generated-data scan (uda.quality.scan.measure)"
        per = [g / t for g, t in zip(times[gen], times["uda quality --table"], strict=False)]
        per_cpu = [g / t for g, t in zip(cpu[gen], cpu["uda quality --table"], strict=False)]
        result["table_over_generated_rows_per_s"] = {"median": statistics.median(per), "min": min(per),
                                                     "max": max(per), "cpu_median": statistics.median(per_cpu),
                                                     "cpu_min": min(per_cpu), "cpu_max": max(per_cpu)}
    for name, v in summary.items():
        print(f"{name:42s} {v['median_s']:7.2f} s ({v['min_s']:.2f}-{v['max_s']:.2f}, {v['runs']} runs) "
              f"CPU {v['cpu_median_s']:6.2f} s ({v['cpu_min_s']:.2f}-{v['cpu_max_s']:.2f}) "
              f"{v['rows_per_s'] / 1e6:6.2f} M rows/s  {v['median_s'] / ours:6.2f}x uda")
    if "table_over_generated_rows_per_s" in result:
        q = result["table_over_generated_rows_per_s"]
        print(f"table profile rows/s / generated scan rows/s, per repeat: wall {q['median']:.2f} "
              f"({q['min']:.2f}-{q['max']:.2f}), CPU {q['cpu_median']:.2f} ({q['cpu_min']:.2f}-{q['cpu_max']:.2f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


def _time(fn, *args):
    """Wall and process CPU seconds (all threads) of ``fn(*args)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; print a table and return the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder with a traffic table (canonical, --defects none)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of uda and the bare scan")
    ap.add_argument("--peer-repeats", type=int, default=1, help="repeats of pandera and Great Expectations")
    ap.add_argument("--peers", default="pandera,gx", help="peers to run (comma-separated; empty for none)")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    args = ap.parse_args(argv)

    from uda.kernels.sketches import qs_new
    from uda.quality.scan import measure
    from uda.store import open_dataset

    ds = open_dataset(args.data)
    files = [str(p) for p in ds.files("traffic")]
    sensors = np.sort(ds.read("sensors")["sensor_id"].to_numpy())
    period = _period(ds)
    expected = int(sensors.size) * int(ds.params["days"]) * 288
    rows = int(ds.table("traffic")["rows"])

    # Numba compile time, separately from warm runs (cache=True: near zero after the first run ever)
    one = open_dataset(args.data)
    one.manifest = {**one.manifest, "tables": {**one.tables, "traffic": {
        **one.tables["traffic"], "files": one.tables["traffic"]["files"][:1]}}}
    t0 = time.perf_counter()
    qs_new()
    measure(one, "traffic")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    measure(one, "traffic")
    compile_s = max(0.0, first - (time.perf_counter() - t0))

    methods = {"bare polars read": (_bare, files), "uda quality (polars)": (_ours, ds),
               "uda quality (dask threads)": (_ours, ds, "dask")}
    peers = {"pandera (polars backend)": (_pandera, files, sensors, period, expected),
             "great expectations (pandas)": (_gx, files, sensors, period, expected)}
    wanted = {p.strip() for p in args.peers.split(",") if p.strip()}
    peers = {k: v for k, v in peers.items() if ("pandera" in wanted and k.startswith("pandera"))
             or ("gx" in wanted and k.startswith("great"))}
    # warm-up on one file, untimed: imports, Dask start-up, Numba specialisations, peer initialisation
    warm = {"bare polars read": (files[:1],), "uda quality (polars)": (one,), "uda quality (dask threads)": (one, "dask"),
            "pandera (polars backend)": (files[:1], sensors, period, expected),
            "great expectations (pandas)": (files[:1], sensors, period, expected)}
    errors: dict[str, str] = {}
    for name, (fn, *_) in {**methods, **peers}.items():
        try:
            fn(*warm[name])
        except Exception as exc:  # a failed check on the one-file subset is expected (row count)
            if "SchemaError" not in exc.__class__.__name__:
                errors[name] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
    times: dict[str, list[float]] = {k: [] for k in [*methods, *peers]}
    cpu: dict[str, list[float]] = {k: [] for k in [*methods, *peers]}
    for r in range(max(args.repeats, args.peer_repeats)):
        for name, (fn, *a) in methods.items():
            if r < args.repeats:
                wall, c = _time(fn, *a)
                times[name].append(wall)
                cpu[name].append(c)
                print(f"  {name}: {wall:.2f} s wall, {c:.2f} s CPU", file=sys.stderr)
        for name, (fn, *a) in peers.items():
            if r < args.peer_repeats and name not in errors:
                try:
                    wall, c = _time(fn, *a)
                    times[name].append(wall)
                    cpu[name].append(c)
                    print(f"  {name}: {wall:.2f} s wall, {c:.2f} s CPU", file=sys.stderr)
                except Exception as exc:  # report why a peer could not run
                    errors[name] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
    summary = {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "runs": len(v),
                      "cpu_median_s": statistics.median(cpu[name]), "cpu_min_s": min(cpu[name]),
                      "cpu_max_s": max(cpu[name])}
               for name, v in times.items() if v}
    ours = summary["uda quality (polars)"]["median_s"]  # wall
    bare = summary["bare polars read"]["median_s"]
    per = [u / b for u, b in zip(times["uda quality (polars)"], times["bare polars read"], strict=True)]
    per_cpu = [u / b for u, b in zip(cpu["uda quality (polars)"], cpu["bare polars read"], strict=True)]
    result = {
        "dataset": str(args.data), "rows": rows, "files": len(files), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "numba_compile_s": round(compile_s, 3),
        "methods": summary, "errors": errors,
        "ratio_uda_over_bare": ours / bare,
        "ratio_uda_over_bare_per_repeat": {"median": statistics.median(per), "min": min(per), "max": max(per),
                                           "values": per},
        "cpu_ratio_uda_over_bare_per_repeat": {"median": statistics.median(per_cpu), "min": min(per_cpu),
                                               "max": max(per_cpu), "values": per_cpu},
        "cpu_ratio_uda_over_bare": summary["uda quality (polars)"]["cpu_median_s"] / summary["bare polars read"]["cpu_median_s"],
        "speedup_vs_peers": {k: v["median_s"] / ours for k, v in summary.items() if k in peers},
        "cpu_speedup_vs_peers": {k: v["cpu_median_s"] / summary["uda quality (polars)"]["cpu_median_s"]
                                 for k, v in summary.items() if k in peers},
        "command": "python bench/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"{'method':30s} {'wall median':>11s} {'min':>7s} {'max':>7s} {'CPU median':>10s} {'min':>7s} {'max':>7s} {'runs':>4s}")
    for name, v in summary.items():
        print(f"{name:30s} {v['median_s']:11.2f} {v['min_s']:7.2f} {v['max_s']:7.2f} {v['cpu_median_s']:10.2f} "
              f"{v['cpu_min_s']:7.2f} {v['cpu_max_s']:7.2f} {v['runs']:4d}")
    print(f"uda / bare read per repeat: wall {statistics.median(per):.2f}x ({min(per):.2f}-{max(per):.2f}), "
          f"CPU {statistics.median(per_cpu):.2f}x ({min(per_cpu):.2f}-{max(per_cpu):.2f})")
    print(f"uda / bare read: {result['ratio_uda_over_bare']:.2f}x wall, {result['cpu_ratio_uda_over_bare']:.2f}x CPU; "
          "peers / uda (wall, CPU): " + ", ".join(
              f"{k} {v:.1f}x, {result['cpu_speedup_vs_peers'][k]:.1f}x" for k, v in result["speedup_vs_peers"].items()))
    for k, v in errors.items():
        print(f"{k} could not run: {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    if "--table" in sys.argv[1:]:
        table_profile()
    else:
        main()
