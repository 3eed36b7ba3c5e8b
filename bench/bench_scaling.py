"""Strong and weak scaling of the task pipelines, and Dask against Polars, on this machine.

For every task (route, flow, water, ... whatever ``uda.tasks.registry.TASKS`` holds and is
importable) and each engine configuration — Polars; Dask threads; Dask LocalCluster
with 1 and 2 single-threaded worker processes on loopback — it runs the task once to
warm up (reported as cold) and then ``--repeats`` times, and reports the median, min
and max wall time. Strong scaling: one dataset, 1 vs 2 workers. Weak scaling: the
dataset doubles with the worker count (``--sensors`` and ``--water-sites`` doubled).

Run: ``python bench/bench_scaling.py --scale medium --repeats 3 --out results/scaling``

``--configs`` picks configurations (labels as in the output: ``polars``, ``dask-threads``,
``dask-local:1``, ``dask-local:2``, ``dask-local:2-weak``) and ``--interleave`` runs the
timed repeats round-robin over them (every cluster started up front), so that load from
other processes on a shared machine hits every configuration alike; the load average
before and after is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

from uda.engines import dask_scheduler, local_cluster
from uda.generate import generate
from uda.scales import resolve_scale
from uda.tasks.registry import TASKS

CONFIGS = [("polars", None), ("dask", "threads"), ("dask", "local:1"), ("dask", "local:2")]
#: Every configuration label, in report order (``-weak``: the doubled dataset on 2 workers).
LABELS = ("polars", "dask-threads", "dask-local:1", "dask-local:2", "dask-local:2-weak")
#: Ratios reported when both configurations were measured: name -> (numerator, denominator).
RATIOS = {"strong_speedup_1_to_2": ("dask-local:1", "dask-local:2"),
          "weak_efficiency_1_to_2": ("dask-local:1", "dask-local:2-weak"),
          "dask2_over_polars": ("dask-local:2", "polars"),
          "dask_threads_over_polars": ("dask-threads", "polars")}


def _task(name: str):
    try:
        return TASKS[name].load()
    except (ImportError, AttributeError):
        return None


def _stats(cold: float, walls: list[float]) -> dict:
    return {"cold_s": cold, "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "repeats": len(walls), "walls_s": walls}


def _once(run, data, engine, scheduler) -> float:
    t = time.perf_counter()
    run(data, engine=engine, scheduler=scheduler)
    return time.perf_counter() - t


def _time(run, data, engine, scheduler, repeats):
    cold = _once(run, data, engine, scheduler)
    return _stats(cold, [_once(run, data, engine, scheduler) for _ in range(repeats)])


def _dataset(root: Path, scale_name: str, factor: int) -> Path:
    base = resolve_scale(scale_name)
    scale = resolve_scale(scale_name, sensors=base.sensors * factor, water_sites=base.water_sites * factor,
                          cards=base.cards * factor) if factor > 1 else base
    out = root / f"{scale_name}-x{factor}"
    if not (out / "manifest.json").exists():
        generate(out, scale=scale, seed=1)
    return out


def _label(engine: str, sched: str | None) -> str:
    return engine if sched is None else f"dask-{sched}"


def _print(name: str, label: str, row: dict) -> None:
    print(f"{name:12s} {label:18s} median {row['median_s']:.2f} s "
          f"[{row['min_s']:.2f}-{row['max_s']:.2f}] cold {row['cold_s']:.2f} s", flush=True)


def _ratios(rows: dict, *, paired: bool = False) -> None:
    """Ratios of medians; with ``paired`` (interleaved runs) also the median and range of
    the ratio within each round, which load drift between rounds does not skew."""
    for key, (num, den) in RATIOS.items():
        if num in rows and den in rows:
            rows[key] = rows[num]["median_s"] / rows[den]["median_s"]
            if paired:
                per_round = [a / b for a, b in zip(rows[num]["walls_s"], rows[den]["walls_s"], strict=True)]
                rows[f"{key}_paired"] = {"median": statistics.median(per_round), "min": min(per_round),
                                         "max": max(per_round)}


def _measure_sequential(name, run, base, double, repeats, labels) -> dict:
    rows: dict = {}
    for engine, sched in CONFIGS:
        label = _label(engine, sched)
        weak = sched == "local:2" and "dask-local:2-weak" in labels
        if label not in labels and not weak:
            continue
        if sched and sched.startswith("local"):
            with dask_scheduler(sched, quiet=True) as client:
                addr = client.scheduler.address
                if label in labels:
                    rows[label] = _time(run, base, engine, addr, repeats)
                    _print(name, label, rows[label])
                if weak:
                    rows["dask-local:2-weak"] = _time(run, double, engine, addr, repeats)
                    _print(name, "dask-local:2-weak", rows["dask-local:2-weak"])
        else:
            rows[label] = _time(run, base, engine, sched, repeats)
            _print(name, label, rows[label])
    return rows


def _measure_interleaved(name, run, base, double, repeats, labels) -> dict:
    with contextlib.ExitStack() as stack:
        plan = []  # (label, data, engine, scheduler) in report order
        clusters: dict[str, str] = {}
        for label in LABELS:
            if label not in labels:
                continue
            if label == "polars":
                plan.append((label, base, "polars", None))
                continue
            sched = label.removeprefix("dask-").removesuffix("-weak")
            if sched.startswith("local") and sched not in clusters:
                # the cluster --scheduler local:N starts, without making it the default scheduler
                # (a second cluster cannot start while a client is set in the Dask config)
                n = int(sched.partition(":")[2] or 2)
                clusters[sched] = stack.enter_context(local_cluster(n)).scheduler_address
            plan.append((label, double if label.endswith("-weak") else base, "dask", clusters.get(sched, sched)))
        cold = {label: _once(run, data, engine, sched) for label, data, engine, sched in plan}
        walls: dict[str, list[float]] = {label: [] for label, *_ in plan}
        for _ in range(repeats):
            for label, data, engine, sched in plan:
                walls[label].append(_once(run, data, engine, sched))
    rows = {label: _stats(cold[label], walls[label]) for label in walls}
    for label in rows:
        _print(name, label, rows[label])
    return rows


def measure(scale_name: str, tasks: list[str], repeats: int, root: Path, *,
            labels: tuple[str, ...] = LABELS, interleave: bool = False) -> dict:
    """Run the matrix and return the measurements."""
    base = _dataset(root, scale_name, 1)
    double = _dataset(root, scale_name, 2) if "dask-local:2-weak" in labels else base
    out: dict = {"scale": scale_name, "repeats": repeats, "interleaved": interleave,
                 "load_average_before": list(os.getloadavg()), "tasks": {}}
    for name in tasks:
        run = _task(name)
        if run is None:
            continue
        measure_one = _measure_interleaved if interleave else _measure_sequential
        rows = measure_one(name, run, base, double, repeats, labels)
        _ratios(rows, paired=interleave)
        out["tasks"][name] = rows
    out["load_average_after"] = list(os.getloadavg())
    return out


def plot(result: dict, path: Path) -> None:
    """Bar chart of median wall time per task and configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["tasks"])
    labels = [lab for lab in LABELS if all(lab in result["tasks"][t] for t in tasks)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.16
    for i, lab in enumerate(labels):
        ys = [result["tasks"][t][lab]["median_s"] for t in tasks]
        lo = [y - result["tasks"][t][lab]["min_s"] for t, y in zip(tasks, ys, strict=True)]
        hi = [result["tasks"][t][lab]["max_s"] - y for t, y in zip(tasks, ys, strict=True)]
        ax.bar([k + i * width for k in range(len(tasks))], ys, width, yerr=[lo, hi], label=lab, capsize=2)
    ax.set_xticks([k + (len(labels) - 1) / 2 * width for k in range(len(tasks))], tasks)
    ax.set_ylabel("wall time, s (median, min–max)")
    ax.set_title(f"{result['scale']}: engines and workers (weak: 2× data on 2 workers)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--tasks", default=",".join(t for t, spec in TASKS.items() if not spec.dataset))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configs", default=",".join(LABELS),
                    help=f"configurations to measure, comma-separated from: {', '.join(LABELS)}")
    ap.add_argument("--interleave", action="store_true",
                    help="run the timed repeats round-robin over the configurations")
    ap.add_argument("--data-root", default="datasets/bench-scaling")
    ap.add_argument("--out", default="results/scaling")
    args = ap.parse_args()
    labels = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        ap.error(f"unknown --configs {', '.join(unknown)}; choose from {', '.join(LABELS)}")
    root = Path(args.data_root)
    root.mkdir(parents=True, exist_ok=True)
    result = measure(args.scale, [t.strip() for t in args.tasks.split(",") if t.strip()], args.repeats, root,
                     labels=labels, interleave=args.interleave)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scaling-{args.scale}.json").write_text(json.dumps(result, indent=1))
    plot(result, out / f"scaling-{args.scale}.png")
    for name, r in result["tasks"].items():
        said = ", ".join(f"{key} {r[key]:.2f}" + (
            f" (per round {r[key + '_paired']['median']:.2f} [{r[key + '_paired']['min']:.2f}-"
            f"{r[key + '_paired']['max']:.2f}])" if key + "_paired" in r else "") for key in RATIOS if key in r)
        print(f"{name}: {said}")
    print(f"load average before {result['load_average_before']}, after {result['load_average_after']}")
    print(f"wrote {out}/scaling-{args.scale}.json and .png")


if __name__ == "__main__":
    main()
