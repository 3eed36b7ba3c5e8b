"""The ``large`` scale under a memory cap: generation and every task, with peak memory.

Runs each step as a separate process inside a Linux memory cgroup (v1 or v2, needs
root) whose limit is ``--cap`` (default 4 GiB), so the kernel, not the step, enforces
the cap; the cgroup's peak usage (page cache included, as the kernel counts it) and the
process tree's peak RSS are reported with wall time and exit status. Steps whose data
do not fit are reported as failed, with their error, not hidden.

Run: ``python bench/bench_large.py --out datasets/large --cap 4GiB``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def make_cgroup(name: str, cap: int) -> tuple[Path, str]:
    """Create a memory cgroup limited to ``cap`` bytes; returns (path, version)."""
    if (V1 / "memory.limit_in_bytes").exists():
        cg = V1 / name
        cg.mkdir(exist_ok=True)
        (cg / "memory.limit_in_bytes").write_text(str(cap))
        if (cg / "memory.memsw.limit_in_bytes").exists():
            (cg / "memory.memsw.limit_in_bytes").write_text(str(cap))
        return cg, "v1"
    cg = V2 / name
    cg.mkdir(exist_ok=True)
    (cg / "memory.max").write_text(str(cap))
    (cg / "memory.swap.max").write_text("0")
    return cg, "v2"


def run_capped(cmd: list[str], cg: Path, version: str) -> dict:
    """Run ``cmd`` inside the cgroup; wall time, status, cgroup peak and tree peak RSS."""
    peak_file = cg / ("memory.max_usage_in_bytes" if version == "v1" else "memory.peak")
    if version == "v1":
        (cg / "memory.max_usage_in_bytes").write_text("0")
    wrapper = f"echo $$ > {cg / 'cgroup.procs'} && exec /usr/bin/time -f '%M' {shlex.join(cmd)}"
    t = time.perf_counter()
    proc = subprocess.run(["bash", "-c", wrapper], capture_output=True, text=True)
    wall = time.perf_counter() - t
    err_lines = proc.stderr.strip().splitlines()
    rss_kb = int(err_lines[-1]) if err_lines and err_lines[-1].isdigit() else None
    return {"cmd": shlex.join(cmd), "exit": proc.returncode, "wall_s": round(wall, 2),
            "cgroup_peak_bytes": int(peak_file.read_text()) if peak_file.exists() else None,
            "max_rss_bytes_largest_process": rss_kb * 1024 if rss_kb else None,
            "stderr_tail": "\n".join(err_lines[-4:-1])[-600:] if proc.returncode else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="datasets/large")
    ap.add_argument("--cap", default="4GiB")
    ap.add_argument("--scale", default="large")
    ap.add_argument("--tasks", default="water,flow,route")
    ap.add_argument("--route-args", default="--max-iter 20",
                    help="Extra options for the route task: assignment cost depends on the graph, not "
                         "on the data size, so the default caps its iterations.")
    ap.add_argument("--write-clean", action="store_true",
                    help="Let standardise and utilisation write DATA/clean/ (default: --no-write, so the "
                         "benchmark leaves the dataset as it found it).")
    ap.add_argument("--engines", default="polars,dask", help="Engines to run each task on.")
    ap.add_argument("--cgroup", default="uda-large",
                    help="Name of the memory cgroup (give concurrent runs different names: they share its cap).")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--results", default="results/large.json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_large.py needs root to create a memory cgroup")
    cap = _bytes(args.cap)
    cg, version = make_cgroup(args.cgroup, cap)
    uda = [sys.executable, "-m", "uda.cli.main"]
    report: dict = {"scale": args.scale, "cap_bytes": cap, "cgroup": version, "steps": {}}
    steps = []
    if not args.skip_generate:
        steps.append(("generate", [*uda, "generate", "--scale", args.scale, "--out", args.out, "--force", "--json"]))
    for task in [t for t in args.tasks.split(",") if t]:
        for engine in [e for e in args.engines.split(",") if e]:
            extra = shlex.split(args.route_args) if task == "route" else []
            if task in ("standardise", "utilisation") and not args.write_clean:
                extra.append("--no-write")
            steps.append((f"{task}/{engine}", [*uda, "run", task, "--data", args.out, "--engine", engine, *extra,
                                               "--json"]))
    for name, cmd in steps:
        res = run_capped(cmd, cg, version)
        report["steps"][name] = res
        peak = res["cgroup_peak_bytes"] or 0
        print(f"{name:16s} exit {res['exit']:3d} {res['wall_s']:9.1f} s  cgroup peak {peak / 2**30:5.2f} GiB "
              f"(cap {cap / 2**30:.1f})", flush=True)
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(report, indent=1))
    manifest = Path(args.out) / "manifest.json"
    if manifest.exists():
        tables = json.loads(manifest.read_text())["tables"]
        report["dataset"] = {k: {"rows": v["rows"], "bytes_on_disk": v["bytes"]} for k, v in tables.items()
                             if k in ("traffic", "taps", "water")}
        Path(args.results).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
