"""Dask (one scheduler) against Polars per task, on one dataset, in the same run.

For each task it runs Polars and Dask once to warm up (their answers must agree, else the
script stops before timing anything), then ``--repeats`` rounds, each running both
engines with the order alternating from round to round, so that load from other
processes on a shared machine hits both alike. It reports per engine the median, min and
max of wall time and of process CPU time, and the Dask/Polars ratio of the medians and
of each round (median and range), with the load average before and after.

The dataset is generated once under ``--data-root`` (``--defects realistic`` by default,
as the suite's standardise and utilisation cases read department feeds). Standardise
runs without writing ``clean/`` (as in ``uda bench``); utilisation writes it, as
``uda run utilisation`` does.

Run: ``python bench/bench_engines.py --scale small --repeats 5``
(``--tasks route,flow,water`` for the other tasks; ``--scheduler`` for another Dask scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from uda.generate import generate
from uda.scales import resolve_scale
from uda.tasks.base import compare_answers
from uda.tasks.registry import TASKS

#: Task options as the default suite runs them (``bench_options`` in uda/tasks/registry.py).
OPTIONS: dict[str, dict[str, Any]] = {name: dict(t.bench_options) for name, t in TASKS.items()}


def _task(name: str):
    return TASKS[name].load()


def _dataset(root: Path, scale: str, defects: str, seed: int) -> Path:
    out = root / f"{scale}-{defects}-s{seed}"
    if not (out / "manifest.json").exists():
        generate(out, scale=resolve_scale(scale), seed=seed, defects=defects)
    return out


def _once(run, data: Path, engine: str, scheduler: str | None, options: dict[str, Any]) -> tuple[float, float, Any]:
    c, t = time.process_time(), time.perf_counter()
    res = run(data, engine=engine, scheduler=scheduler, **options)
    return time.perf_counter() - t, time.process_time() - c, res


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def measure(task: str, data: Path, repeats: int, scheduler: str) -> dict[str, Any]:
    """Warm up both engines, check their answers agree, then time ``repeats`` alternating rounds."""
    run = _task(task)
    opts = OPTIONS.get(task, {})
    engines = {"polars": None, "dask": scheduler}
    cold = {e: _once(run, data, e, s, opts) for e, s in engines.items()}
    diff = compare_answers(cold["polars"][2].answer, cold["dask"][2].answer)
    if diff:
        msg = f"{task}: Polars and Dask answers differ: {diff[:5]}"
        raise SystemExit(msg)
    wall: dict[str, list[float]] = {e: [] for e in engines}
    cpu: dict[str, list[float]] = {e: [] for e in engines}
    for i in range(repeats):
        order = list(engines) if i % 2 == 0 else list(reversed(engines))
        for e in order:
            w, c, _ = _once(run, data, e, engines[e], opts)
            wall[e].append(w)
            cpu[e].append(c)
    per_round = [d / p for d, p in zip(wall["dask"], wall["polars"], strict=True)]
    return {"cold_s": {e: cold[e][0] for e in engines}, "wall_s": {e: _stats(v) for e, v in wall.items()},
            "cpu_s": {e: _stats(v) for e, v in cpu.items()},
            "ratio_of_medians": statistics.median(wall["dask"]) / statistics.median(wall["polars"]),
            "ratio_per_round": _stats(per_round), "answers_equal": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--defects", default="realistic", help="defect profile of the generated dataset")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tasks", default="standardise,utilisation")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scheduler", default="threads", help="Dask scheduler (as `uda run --scheduler`)")
    ap.add_argument("--data-root", default="datasets/bench-engines")
    ap.add_argument("--out", default="results/engines")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        ap.error(f"unknown --tasks {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    root = Path(args.data_root)
    root.mkdir(parents=True, exist_ok=True)
    data = _dataset(root, args.scale, args.defects, args.seed)
    result: dict[str, Any] = {"scale": args.scale, "defects": args.defects, "seed": args.seed,
                              "repeats": args.repeats, "scheduler": args.scheduler, "cores": os.cpu_count(),
                              "load_average_before": list(os.getloadavg()), "tasks": {}}
    for task in tasks:
        r = measure(task, data, args.repeats, args.scheduler)
        result["tasks"][task] = r
        for e in ("polars", "dask"):
            w, c = r["wall_s"][e], r["cpu_s"][e]
            print(f"{task:12s} {e:7s} wall median {w['median']:.2f} s [{w['min']:.2f}-{w['max']:.2f}]  "
                  f"cpu median {c['median']:.2f} s  cold {r['cold_s'][e]:.2f} s", flush=True)
        pr = r["ratio_per_round"]
        print(f"{task:12s} dask/polars {r['ratio_of_medians']:.2f} (per round median {pr['median']:.2f} "
              f"[{pr['min']:.2f}-{pr['max']:.2f}]); answers equal", flush=True)
    result["load_average_after"] = list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"engines-{args.scale}-{args.defects}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"load average before {result['load_average_before']}, after {result['load_average_after']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
