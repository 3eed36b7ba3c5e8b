"""Water benchmark: indices + detectors on a generated water table, Polars and Dask, vs a pandas peer.

Run from the project root::

    python bench/bench_water.py [--data DIR | --scale medium] [--repeats 5] [--json out.json]

Without ``--data`` a water-only dataset of ``--scale`` (seed 1) is generated into a
temporary folder first. Measured in the same run, on the same table:

* ``polars`` / ``dask`` (threads): the whole water task without writing files (read the
  table, CCME + weighted-arithmetic WQI per site and month, exceedance episodes, the three
  detectors, event scoring, mass balance along the network);
* ``kernels``: the same indices and detectors on arrays already in memory;
* ``pandas peer``: the rolling median/MAD baseline (pandas ``rolling().median()`` and a
  ``rolling().apply`` MAD) and CCME F1/F2/F3 by ``groupby``, a typical pandas
  implementation of the core of the same work (no CUSUM, episodes or mass balance, so it
  does less than ours);
* Numba compile time in a fresh process with an empty cache directory.

Reported: median, min and max over repeats (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_COLD = """
import time
t = time.perf_counter()
import numpy as np
from uda.kernels.detect import alarm_runs, cusum, multivariate_score, rolling_baseline, window_max
from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi
t_import = time.perf_counter() - t
t = time.perf_counter()
v = np.random.default_rng(0).normal(size=(50, 7)); o = np.array([0, 50]); lim = np.full(7, 1.0)
ccme_wqi(v, o, lim, lim); weighted_arithmetic_wqi(v, o, lim * 0, lim)
exceedance_episodes(np.arange(50, dtype=np.int64), v, o, lim, lim, 2)
med, sc = rolling_baseline(v, o, 10, 3, lim); s = multivariate_score(v, lim, 4.0)
cusum(s.reshape(-1, 1), o, 1.0, 5.0); alarm_runs(s > 0, o, 1); window_max(v, o, 2, 1)
print(time.perf_counter() - t, t_import)
"""


def cold_compile() -> dict[str, float]:
    """Compile time of the water kernels in a fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                             check=True, cwd=ROOT)
    compile_s, import_s = map(float, out.stdout.split())
    return {"compile_seconds": compile_s, "import_seconds": import_s}


def kernels_only(block, guides, opts) -> dict:
    """Indices, exceedances and detectors on arrays already in memory."""
    from uda.tasks.water.steps import analyse_block

    return analyse_block(block, guides, opts)


def pandas_peer(df, params: tuple[str, ...], guides, window: int) -> object:
    """Rolling median/MAD baseline of the signature parameters and CCME per site and month."""
    import pandas as pd

    from uda.waterq.guidelines import EVENT_DIRECTIONS

    sig = [p for p in params if EVENT_DIRECTIONS.get(p, 0)]
    df = df.sort_values(["site_id", "ts"])
    g = df.groupby("site_id")[sig]
    med = g.transform(lambda s: s.rolling(window, min_periods=window // 12).median().shift(1))

    def _mad(s):
        return s.rolling(window, min_periods=window // 12).apply(
            lambda w: np.median(np.abs(w - np.median(w))), raw=True).shift(1)

    mad = g.transform(_mad)
    z = (df[sig] - med) / (1.4826 * mad).clip(lower=1e-3)
    month = df["ts"].dt.to_period("M")
    fails = pd.DataFrame(index=df.index)
    exc = pd.DataFrame(index=df.index)
    for p in params:
        lo, hi = guides[p].lower, guides[p].upper
        v = df[p]
        above = v > hi if not np.isnan(hi) else pd.Series(False, index=df.index)
        below = v < lo if not np.isnan(lo) else pd.Series(False, index=df.index)
        fails[p] = above | below
        e = pd.Series(0.0, index=df.index)
        if not np.isnan(hi):
            e = e.where(~above, v / hi - 1)
        if not np.isnan(lo):
            e = e.where(~below, lo / v - 1)
        exc[p] = e
    keys = [df["site_id"], month]
    n_tests = fails.groupby(keys).size() * len(params)
    f1 = fails.groupby(keys).any().sum(axis=1) / len(params) * 100
    f2 = fails.groupby(keys).sum().sum(axis=1) / n_tests * 100
    nse = exc.groupby(keys).sum().sum(axis=1) / n_tests
    f3 = nse / (0.01 * nse + 0.01)
    wqi = 100 - np.sqrt(f1**2 + f2**2 + f3**2) / 1.732
    return z, wqi


def _previous_detection(block, fitted, opts) -> dict:
    """The detectors over every parameter as computed before the one-pass kernel (commit b6d0a2c):
    separate kernels with ``(n, p)`` intermediates, scikit-learn's ``predict_proba``, then flags."""
    import numpy as np

    from uda.waterq.generic import alarm_flags, detector_features_stepwise

    feats = detector_features_stepwise(block, fitted, opts)
    scores = {name: feats[name] for name in ("residual", "distance", "changepoint")}
    prob = fitted.model.predict_proba(feats["X"])[:, 1]
    prob[np.isnan(feats["residual"])] = np.nan
    scores["supervised"] = prob
    return {name: alarm_flags(sc, block.offsets, fitted.thresholds[name], opts) for name, sc in scores.items()}


def detection_throughput(block, labels, opts, repeats: int) -> dict:
    """Rows per second per core of the detectors, old and new, in the same run.

    One Numba thread and one OpenMP thread, so the figures are per core. Fitted once on
    the first half of each site's rows (labels: truth arrivals); detection is timed on the
    whole table:

    * ``signature_detectors``: today's zscore/cusum/multivariate on the signature parameters;
    * ``previous``: the detectors over every parameter as before (separate kernels,
      scikit-learn ``predict_proba``, 100 trees of 15 leaves);
    * ``one_pass_same_model``: the one-pass kernel with the compiled tree evaluator on
      that same 100-tree model (identical scores);
    * ``one_pass_no_trees``: the one-pass kernel without the supervised detector (so the
      trees cost the difference);
    * ``now``: the one-pass kernel with the default model (:class:`uda.waterq.settings.DetectOptions`).
    """
    import dataclasses

    import numba
    from threadpoolctl import threadpool_limits

    from uda.waterq.block import split_train
    from uda.waterq.detectors import detector_scores
    from uda.waterq.generic import apply_detectors, detector_features, fit_detectors
    from uda.waterq.settings import DetectOptions

    now_opts = DetectOptions()
    old_opts = dataclasses.replace(now_opts, trees=100, learning_rate=0.1, max_leaf_nodes=15, max_depth=None)
    train = split_train(block.offsets, 0.5)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    out: dict = {"rows": block.ts.size, "params_all": len(block.params)}
    try:
        with threadpool_limits(limits=1):
            t = time.perf_counter()
            old_fit = fit_detectors(block, labels, train, opts.interval_s, old_opts)
            out["fit_seconds_previous_model"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            now_fit = fit_detectors(block, labels, train, opts.interval_s, now_opts)
            out["fit_seconds_now"] = round(time.perf_counter() - t, 3)
            cases = {
                "signature_detectors": lambda: detector_scores(block, opts),
                "previous": lambda: _previous_detection(block, old_fit, old_opts),
                "one_pass_same_model": lambda: apply_detectors(block, old_fit, old_opts),
                "one_pass_no_trees": lambda: detector_features(block, now_fit, now_opts, want_x=False),
                "now": lambda: apply_detectors(block, now_fit, now_opts),
            }
            for fn in cases.values():  # compile / warm up
                fn()
            summaries, _ = timing.interleaved(cases, repeats)
    finally:
        numba.set_num_threads(before)
    n = block.ts.size
    for name, st in summaries.items():
        out[name] = {**st, "rows_per_s": round(n / st["median"])}
    out["speedup_now_vs_previous"] = round(out["previous"]["median"] / out["now"]["median"], 2)
    out["model_previous"] = {"trees": old_opts.trees, "max_leaf_nodes": old_opts.max_leaf_nodes,
                             "max_depth": old_opts.max_depth, "learning_rate": old_opts.learning_rate}
    out["model_now"] = {"trees": now_opts.trees, "max_leaf_nodes": now_opts.max_leaf_nodes,
                        "max_depth": now_opts.max_depth, "learning_rate": now_opts.learning_rate}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Dataset folder [default: generate --scale]")
    ap.add_argument("--scale", default="medium", help="Scale to generate when --data is not given")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--json", default=None, help="Write the results here too")
    ap.add_argument("--detection-only", action="store_true",
                    help="Only the per-core detection throughput (skip the task, peer and compile timings)")
    args = ap.parse_args(argv)

    import psutil

    from uda.contract import WATER_PARAMETERS
    from uda.generate import generate
    from uda.scales import resolve_scale
    from uda.store import open_dataset
    from uda.tasks.base import compare_answers
    from uda.tasks.water import run
    from uda.waterq.block import block_from_polars
    from uda.waterq.guidelines import load_guidelines
    from uda.waterq.settings import WaterOptions

    tmp = None
    path = args.data
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="uda-bench-water-")
        path = Path(tmp.name) / args.scale
        generate(path, scale=resolve_scale(args.scale), seed=1, tables=("water",))
    ds = open_dataset(path)
    entry = ds.table("water")
    out: dict = {"dataset": str(path), "scale": ds.params.get("name"), "rows": entry["rows"],
                 "bytes": entry["bytes"], "files": len(entry["files"]),
                 "sites": ds.params.get("water_sites"), "days": ds.params.get("days"),
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "load_avg_1m": os.getloadavg()[0],
                             "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}}
    opts = WaterOptions()
    if not args.detection_only:
        out["cold_compile"] = cold_compile()

        first = time.perf_counter()
        ref = run(ds, engine="polars", plot=False)
        out["first_call_seconds"] = time.perf_counter() - first
        results = {}
        for engine in ("polars", "dask"):
            stats, res = timing.repeat(lambda e=engine: run(ds, engine=e, scheduler="threads", plot=False),
                               args.repeats)
            results[engine] = stats
            results[engine]["agrees_with_polars"] = compare_answers(ref.answer, res.answer) == []
        out["task"] = results
        out["quality"] = {k: round(v, 4) for k, v in ref.quality.items()}

        df = ds.scan("water").select(["site_id", "ts", *WATER_PARAMETERS]).sort(["site_id", "ts"]).collect()
        block = block_from_polars(df, WATER_PARAMETERS)
        guides = load_guidelines()
        out["kernels"], _ = timing.repeat(lambda: kernels_only(block, guides, opts), args.repeats)
        pdf = df.to_pandas()
        out["pandas_peer"], _ = timing.repeat(lambda: pandas_peer(pdf, WATER_PARAMETERS, guides, opts.window),
                                      args.peer_repeats)
    # detection throughput per core over every column of the table (labels: truth arrivals)
    import polars as pl

    schema = entry.get("schema", {})
    allp = tuple(c for c in schema if c not in ("site_id", "ts"))
    dfa = ds.scan("water").select(["site_id", "ts", *allp]).sort(["site_id", "ts"]).collect()
    blk = block_from_polars(dfa, allp)
    labels = np.zeros(blk.ts.size, dtype=bool)
    if ds.has("event_arrivals"):
        arr = ds.read("event_arrivals").with_columns(pl.col("start", "end").cast(pl.Datetime("ms")).cast(pl.Int64))
        idx = {int(s_): g for g, s_ in enumerate(blk.sites.tolist())}
        for s_, a, e in arr.select("site_id", "start", "end").iter_rows():
            if int(s_) in idx:
                g = idx[int(s_)]
                lo, hi = blk.offsets[g], blk.offsets[g + 1]
                labels[lo + np.searchsorted(blk.ts[lo:hi], a):lo + np.searchsorted(blk.ts[lo:hi], e, side="right")] = True
    out["detection_per_core"] = detection_throughput(blk, labels, opts, args.repeats)
    out["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    if tmp is not None:
        tmp.cleanup()
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return out


if __name__ == "__main__":
    main()
