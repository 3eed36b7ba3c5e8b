"""Strong and weak scaling of the task pipelines, and Dask against Polars, on this machine.

For every task (route, flow, water, ... whatever ``uda.tasks.base.TASKS`` holds and is
importable) and each engine configuration — Polars; Dask threads; Dask LocalCluster
with 1 and 2 single-threaded worker processes on loopback — it runs the task once to
warm up (reported as cold) and then ``--repeats`` times, and reports the median, min
and max wall time. Strong scaling: one dataset, 1 vs 2 workers. Weak scaling: the
dataset doubles with the worker count (``--sensors`` and ``--water-sites`` doubled).

Run: ``python bench/bench_scaling.py --scale medium --repeats 3 --out results/scaling``
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from pathlib import Path

from uda.engines import dask_scheduler
from uda.generate import generate
from uda.scales import resolve_scale
from uda.tasks.base import TASKS

CONFIGS = [("polars", None), ("dask", "threads"), ("dask", "local:1"), ("dask", "local:2")]


def _task(name: str):
    module, func = TASKS[name].split(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return None


def _time(run, data, engine, scheduler, repeats):
    t = time.perf_counter()
    run(data, engine=engine, scheduler=scheduler)
    cold = time.perf_counter() - t
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(data, engine=engine, scheduler=scheduler)
        walls.append(time.perf_counter() - t)
    return {"cold_s": cold, "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "repeats": repeats}


def _dataset(root: Path, scale_name: str, factor: int) -> Path:
    base = resolve_scale(scale_name)
    scale = resolve_scale(scale_name, sensors=base.sensors * factor, water_sites=base.water_sites * factor,
                          cards=base.cards * factor) if factor > 1 else base
    out = root / f"{scale_name}-x{factor}"
    if not (out / "manifest.json").exists():
        generate(out, scale=scale, seed=1)
    return out


def measure(scale_name: str, tasks: list[str], repeats: int, root: Path) -> dict:
    """Run the matrix and return the measurements."""
    base = _dataset(root, scale_name, 1)
    double = _dataset(root, scale_name, 2)
    out: dict = {"scale": scale_name, "repeats": repeats, "tasks": {}}
    for name in tasks:
        run = _task(name)
        if run is None:
            continue
        rows: dict = {}
        for engine, sched in CONFIGS:
            label = engine if sched is None else f"dask-{sched}"
            if sched and sched.startswith("local"):
                with dask_scheduler(sched, quiet=True) as client:
                    addr = client.scheduler.address
                    rows[label] = _time(run, base, engine, addr, repeats)
                    if sched == "local:2":
                        rows["dask-local:2-weak"] = _time(run, double, engine, addr, repeats)
            else:
                rows[label] = _time(run, base, engine, sched, repeats)
            print(f"{name:12s} {label:18s} median {rows[label]['median_s']:.2f} s "
                  f"[{rows[label]['min_s']:.2f}-{rows[label]['max_s']:.2f}] cold {rows[label]['cold_s']:.2f} s", flush=True)
        r = rows
        rows["strong_speedup_1_to_2"] = r["dask-local:1"]["median_s"] / r["dask-local:2"]["median_s"]
        rows["weak_efficiency_1_to_2"] = r["dask-local:1"]["median_s"] / r["dask-local:2-weak"]["median_s"]
        rows["dask2_over_polars"] = r["dask-local:2"]["median_s"] / r["polars"]["median_s"]
        rows["dask_threads_over_polars"] = r["dask-threads"]["median_s"] / r["polars"]["median_s"]
        out["tasks"][name] = rows
    return out


def plot(result: dict, path: Path) -> None:
    """Bar chart of median wall time per task and configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["tasks"])
    labels = ["polars", "dask-threads", "dask-local:1", "dask-local:2", "dask-local:2-weak"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.16
    for i, lab in enumerate(labels):
        ys = [result["tasks"][t][lab]["median_s"] for t in tasks]
        lo = [y - result["tasks"][t][lab]["min_s"] for t, y in zip(tasks, ys, strict=True)]
        hi = [result["tasks"][t][lab]["max_s"] - y for t, y in zip(tasks, ys, strict=True)]
        ax.bar([k + i * width for k in range(len(tasks))], ys, width, yerr=[lo, hi], label=lab, capsize=2)
    ax.set_xticks([k + 2 * width for k in range(len(tasks))], tasks)
    ax.set_ylabel("wall time, s (median, min–max)")
    ax.set_title(f"{result['scale']}: engines and workers (weak: 2× data on 2 workers)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--tasks", default=",".join(t for t in TASKS if t not in ("standardise", "utilisation")))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-root", default="datasets/bench-scaling")
    ap.add_argument("--out", default="results/scaling")
    args = ap.parse_args()
    root = Path(args.data_root)
    root.mkdir(parents=True, exist_ok=True)
    result = measure(args.scale, [t.strip() for t in args.tasks.split(",") if t.strip()], args.repeats, root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scaling-{args.scale}.json").write_text(json.dumps(result, indent=1))
    plot(result, out / f"scaling-{args.scale}.png")
    for name, r in result["tasks"].items():
        print(f"{name}: strong speedup 1->2 workers {r['strong_speedup_1_to_2']:.2f}x, weak efficiency "
              f"{r['weak_efficiency_1_to_2']:.2f}, dask(2 workers)/polars {r['dask2_over_polars']:.2f}, "
              f"dask(threads)/polars {r['dask_threads_over_polars']:.2f}")
    print(f"wrote {out}/scaling-{args.scale}.json and .png")


if __name__ == "__main__":
    main()
