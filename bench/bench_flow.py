"""Benchmark: fit + predict flow forecasters for every sensor of a panel, ours vs statsmodels and statsforecast.

Task: for every series, fit on the first 70 % of the time axis (ridge also picks its
penalty on the next 10 %), then forecast 1..H steps ahead from one origin, 8 hours after
the 80 % point (08:00, the morning rise, for 5-minute data starting at midnight; set
UDA_BENCH_FLOW_OFFSET to move it). Peers fit on everything before that origin.
Ours runs on the whole panel (batched Numba kernels); the peers run per series on a
random subsample (they are far too slow for the whole panel on a shared 2-core box) and
their per-series median time is extrapolated to all series. Errors (MAE over the
subsample series and horizons 1..H) are reported for ours and the peer on the *same*
subsample, so "faster at equal or better error" is checked on equal footing.

Cold = a fresh process with an empty Numba cache (includes compilation); warm = the
median of ``--repeats`` in-process runs after one warm-up.

Usage (statsforecast needs pandas < 3, so run it from a venv that has it)::

    python bench/bench_flow.py --data datasets/medium-seed1 --json results/bench_flow.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HORIZON = 12
OURS = ("last", "ha", "hw", "ridge")
#: Steps after the 80 % point where the forecasts start (96 = 08:00 on a day boundary).
ORIGIN_OFFSET = int(os.environ.get("UDA_BENCH_FLOW_OFFSET", "96"))


def origin_of(T: int) -> int:
    """The forecast origin: ``ORIGIN_OFFSET`` steps after the 80 % point."""
    return int(0.8 * T) + ORIGIN_OFFSET


def load_panel(path: str) -> tuple[np.ndarray, np.datetime64]:
    """Traffic flow per sensor at 5 minutes (Polars target pipeline)."""
    from uda.store import open_dataset
    from uda.tasks.flow import traffic_panel_polars

    _, Y, t0 = traffic_panel_polars(open_dataset(path))
    return Y, np.datetime64(int(t0), "ms").astype("datetime64[s]")


def fit_predict(name: str, Y: np.ndarray, start: np.datetime64) -> tuple[np.ndarray, float]:
    """Fit model ``name`` on the panel and forecast 1..H from the 80 % origin; (forecasts, seconds)."""
    from uda.forecasting.panel import Calendar, Context
    from uda.forecasting.registry import new_model

    T = Y.shape[1]
    train_end, val_end = int(0.7 * T), int(0.8 * T)
    horizons = np.arange(1, HORIZON + 1, dtype=np.int64)
    origins = np.array([origin_of(T)], dtype=np.int64)
    t = time.perf_counter()
    ctx = Context(Calendar.regular(start, 300, T))
    model = new_model(name).fit(Y, ctx, train_end=train_end, val_end=val_end, horizons=horizons)
    pred = model.predict(Y, ctx, origins, horizons)[:, 0, :]
    return pred, time.perf_counter() - t


def actual(Y: np.ndarray) -> np.ndarray:
    o = origin_of(Y.shape[1])
    return Y[:, o:o + HORIZON]


def mae(pred: np.ndarray, act: np.ndarray) -> float:
    ok = np.isfinite(act) & (act != 0) & np.isfinite(pred)
    return float(np.abs(pred - act)[ok].mean())


def child_cold(npy: str, start: str) -> None:
    """Run each of our models once in this (fresh, empty-cache) process and print timings."""
    Y = np.load(npy)
    out = {}
    for name in OURS:
        _, sec = fit_predict(name, Y, np.datetime64(start))
        out[name] = sec
    print(json.dumps(out))


def run_cold(Y: np.ndarray, start: np.datetime64) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="uda-bench-flow-") as tmp:
        npy = os.path.join(tmp, "panel.npy")
        np.save(npy, Y)
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba-cache"))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child-cold", npy, "--start", str(start)],
                              env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


# --------------------------------------------------------------------------- peers


def sm_holt_winters(y: np.ndarray, origin: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    res = ExponentialSmoothing(y[:origin], trend="add", seasonal="add", seasonal_periods=288,
                               initialization_method="heuristic").fit()
    return res.forecast(HORIZON)


def sm_autoreg(y: np.ndarray, origin: int) -> np.ndarray:
    from statsmodels.tsa.ar_model import AutoReg

    res = AutoReg(y[:origin], lags=[1, 2, 3, 4, 5, 6, 288], trend="c").fit()
    return res.predict(start=origin, end=origin + HORIZON - 1)


def _sf(model, y: np.ndarray, origin: int) -> np.ndarray:
    import pandas as pd
    from statsforecast import StatsForecast

    df = pd.DataFrame({"unique_id": "s", "ds": np.arange(origin), "y": y[:origin]})
    fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=df, h=HORIZON)
    return fc.iloc[:, -1].to_numpy()


def sf_holt_winters(y: np.ndarray, origin: int) -> np.ndarray:
    from statsforecast.models import HoltWinters

    return _sf(HoltWinters(season_length=288, error_type="A"), y, origin)


def sf_autoregressive(y: np.ndarray, origin: int) -> np.ndarray:
    from statsforecast.models import AutoRegressive

    return _sf(AutoRegressive(lags=6), y, origin)


PEERS = {
    # name: (function, our model of the same family, default subsample size)
    "statsmodels ExponentialSmoothing (add trend+season, m=288)": (sm_holt_winters, "hw", 4),
    "statsmodels AutoReg (lags 1-6 and 288)": (sm_autoreg, "ridge", 60),
    "statsforecast HoltWinters (m=288, additive)": (sf_holt_winters, "hw", 2),
    "statsforecast AutoRegressive (lags=6)": (sf_autoregressive, "ridge", 3),
}


def _peer_call(fn, y: np.ndarray, origin: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(y, origin)
    return out, time.perf_counter() - t


def run_peer(fn, Y: np.ndarray, rows: np.ndarray, *, jobs: int = 1) -> tuple[np.ndarray, list[float], float]:
    """Run ``fn`` per series; returns forecasts, per-call seconds and the wall time of the loop.

    With ``jobs > 1`` the series are spread over that many worker processes (warmed up
    with one call each first, so imports and first-call compilation are not timed).
    """
    origin = origin_of(Y.shape[1])
    series = [np.nan_to_num(Y[i], nan=float(np.nanmean(Y[i]))) for i in rows]  # peers need gap-free input
    if jobs <= 1:
        t = time.perf_counter()
        got = [_peer_call(fn, y, origin) for y in series]
        wall = time.perf_counter() - t
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_peer_call, [fn] * jobs, series[:1] * jobs, [origin] * jobs))
            t = time.perf_counter()
            got = list(pool.map(_peer_call, [fn] * len(series), series, [origin] * len(series)))
            wall = time.perf_counter() - t
    return np.array([g[0] for g in got]), [g[1] for g in got], wall


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": float(np.median(xs)), "min": float(np.min(xs)), "max": float(np.max(xs)),
            "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="datasets/medium-seed1", help="dataset folder with a traffic table")
    ap.add_argument("--repeats", type=int, default=3, help="warm repeats of our models")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the peers' default subsample sizes (0 skips the peers)")
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold (empty cache) process")
    ap.add_argument("--peer-jobs", type=int, default=0,
                    help="also time the peers spread over this many processes (0: CPU count; 1: off)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--child-cold", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--start", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_cold:
        child_cold(args.child_cold, args.start)
        return

    import numba
    import psutil

    if args.peer_jobs == 0:
        args.peer_jobs = psutil.cpu_count() or 1

    t = time.perf_counter()
    Y, start = load_panel(args.data)
    load_s = time.perf_counter() - t
    n, T = Y.shape
    act = actual(Y)
    print(f"panel {n} series x {T} steps (5 min) from {args.data}; targets built in {load_s:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {psutil.cpu_count()} CPUs", flush=True)
    result = {"data": args.data, "series": n, "steps": T, "horizon": HORIZON,
              "origin": origin_of(T),
              "target_build_s": load_s, "cpus": psutil.cpu_count(),
              "numba_threads": numba.config.NUMBA_NUM_THREADS,
              "load_average_start": os.getloadavg()[0], "ours": {}, "peers": {}}
    if not args.skip_cold:
        result["cold_s"] = run_cold(Y, start)
        print("cold (fresh process, empty Numba cache):", json.dumps(result["cold_s"]), flush=True)
    preds = {}
    for name in OURS:
        preds[name], _ = fit_predict(name, Y, start)  # warm-up
        times = [fit_predict(name, Y, start)[1] for _ in range(args.repeats)]
        result["ours"][name] = {"warm_s": summary(times), "mae_all": mae(preds[name], act)}
        print(f"ours {name}: warm {np.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
              f"MAE all series {result['ours'][name]['mae_all']:.2f}", flush=True)
    rng = np.random.default_rng(0)
    for label, (fn, family, k) in PEERS.items():
        k = int(round(k * args.scale))
        if k <= 0:
            continue
        try:
            rows = np.sort(rng.choice(n, size=min(k, n), replace=False))
            p, times, _ = run_peer(fn, Y, rows)
            pj, _, wall = run_peer(fn, Y, rows, jobs=args.peer_jobs) if args.peer_jobs > 1 else (p, times, None)
        except ImportError as exc:
            print(f"skipped {label}: {exc}", flush=True)
            result["peers"][label] = {"skipped": str(exc)}
            continue
        per = float(np.median(times[1:] if len(times) > 1 else times))
        ours_s = result["ours"][family]["warm_s"]["median"]
        entry = {"family_of": family, "subsample": int(len(rows)), "first_call_s": times[0],
                 "per_series_s": summary(times), "extrapolated_all_s": per * n,
                 "mae_peer": mae(p, act[rows]), "mae_ours_same_series": mae(preds[family][rows], act[rows]),
                 "speedup_vs_ours_warm": per * n / ours_s}
        if wall is not None:
            entry.update(parallel_jobs=args.peer_jobs, parallel_wall_s=wall,
                         parallel_extrapolated_all_s=wall / len(rows) * n,
                         parallel_speedup_vs_ours_warm=wall / len(rows) * n / ours_s)
        result["peers"][label] = entry
        par = ""
        if wall is not None:
            par = (f"; with {args.peer_jobs} processes {wall / len(rows) * n:,.0f} s = "
                   f"{entry['parallel_speedup_vs_ours_warm']:,.1f}x ours")
        print(f"{label}: {len(rows)} series, median {per:.3f} s/series (first {times[0]:.2f} s) -> "
              f"{per * n:,.0f} s for {n} series = {entry['speedup_vs_ours_warm']:,.0f}x ours ({family}){par}; "
              f"MAE peer {entry['mae_peer']:.2f} vs ours {entry['mae_ours_same_series']:.2f} "
              f"on the same series", flush=True)
    result["load_average_end"] = os.getloadavg()[0]
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
