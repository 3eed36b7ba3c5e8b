"""Built-in benchmark suites, and the ``generate`` case that measures ``uda generate`` itself."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from uda.errors import UserError
from uda.tasks.base import TaskResult
from uda.tasks.registry import TASKS, in_suite

#: Scales of the default suite (small, so a run takes minutes), before each task's dataset
#: overrides (:attr:`uda.tasks.registry.Task.dataset`: tasks that read department feeds run on
#: datasets generated with ``defects=realistic``).
DEFAULT_SCALES = ["tiny", "small"]


def _task_available(task: str) -> bool:
    """Whether the task's module exists and exposes its ``run`` function."""
    module = TASKS[task].run.partition(":")[0]
    try:
        if importlib.util.find_spec(module) is None:
            return False
        return callable(TASKS[task].load())
    except Exception:  # noqa: BLE001 - a task module that cannot load is left out of the suite
        return False


def default_suite() -> dict[str, Any]:
    """The default suite: every task that exists in this uda, on Polars and Dask, at small scales.

    Also measures ``uda generate`` end to end at the same scales. Built to finish in a few
    minutes on a 2-core machine.
    """
    cases: list[dict[str, Any]] = []
    if importlib.util.find_spec("uda.cli.generate") is not None:
        cases.append({"task": "generate", "target": "uda.harness.suites:generate", "data": False,
                      "engines": ["uda"], "scales": ["tiny", "small"], "repeats": 2})
    for t in in_suite("default"):
        if not _task_available(t.name):
            continue
        scales = _with_suffix(t.name, DEFAULT_SCALES)
        cases.append({"task": t.name, "engines": ["polars", "dask"], "scales": scales,
                      "options": dict(t.bench_options)})
        # cold call with Numba compiling from scratch, on the smallest scale
        cases.append({"task": t.name, "engines": ["polars"], "scales": scales[:1],
                      "options": dict(t.bench_options), "cold": "compile", "repeats": 0})
    if not cases:
        msg = "the default suite is empty: this uda has neither `uda generate` nor any task module"
        raise UserError(msg)
    return {"name": "default", "description": "every available task on both engines, small scales",
            "seed": 1, "repeats": 3, "warmup": 0, "timeout_s": 300, "cold": "cached",
            "cases": cases}


#: Scales of the sizing sweep: two presets plus a mid scale between small and medium in every
#: dimension (sensors, days, stations, cards, water sites). ``medium`` is left out: it is the
#: scale the ``validate`` suite measures to check the sweep's predictions on data it never saw.
MID_SCALE = "medium:sensors=600,days=21,stations=70,cards=60000,water-sites=40"
SWEEP_SCALES = ["tiny", "small", MID_SCALE]
#: Water's table is small at those scales (80,640 rows at mid, a tenth of its memory there),
#: so the sweep also measures water alone on a bigger table, where its rows dominate.
WATER_SCALE = "small:tables=water,water-sites=150,days=60"
#: Scale at which the sweep measures parallel efficiency (1 and 2 cores; 1 and 2 workers).
EFFICIENCY_SCALE = "small"


def _with_suffix(task: str, scales: list[str]) -> list[str]:
    """The scales with the task's dataset overrides (``defects=realistic``)."""
    suffix = TASKS[task].dataset
    return [s if not suffix else f"{s}{',' if ':' in s else ':'}{suffix}" for s in scales]


def sweep_suite() -> dict[str, Any]:
    """The scale sweep behind ``uda size``: route, flow, water and utilisation at three sizes.

    Every task runs on Polars and Dask (threads) at ``tiny``, ``small`` and the mid scale
    (water also on a water-only table of 864,000 rows, :data:`WATER_SCALE`); at ``small`` it also runs on one core (Polars and Dask threads) and on a LocalCluster
    of one and of two single-threaded workers, which gives the parallel efficiency that
    ``uda size`` turns into cores and a cluster form.
    """
    cases = []
    for t in in_suite("sweep"):
        task, options = t.name, dict(t.bench_options)
        if not _task_available(task):
            continue
        scales = _with_suffix(task, SWEEP_SCALES) + ([WATER_SCALE] if task == "water" else [])
        cases.append({"task": task, "engines": ["polars", "dask"], "scales": scales, "options": options})
        eff = _with_suffix(task, [EFFICIENCY_SCALE])
        cases.append({"task": task, "engines": ["polars", "dask"], "scales": eff, "options": options,
                      "cores": 1})
        cases.append({"task": task, "engines": ["dask"], "schedulers": ["local:1", "local:2"], "scales": eff,
                      "options": options})
    if not cases:
        msg = "the sweep suite is empty: this uda has no task module yet"
        raise UserError(msg)
    return {"name": "sweep", "description": "scale sweep for uda size", "seed": 1, "repeats": 2,
            "warmup": 0, "timeout_s": 900, "cold": "cached", "cases": cases}


def validate_suite() -> dict[str, Any]:
    """The sweep's tasks at ``medium``, a scale the sweep leaves out: ``uda size --check`` compares
    what the sweep predicts for these cases with what they measured."""
    cases = []
    for t in in_suite("validate"):
        if _task_available(t.name):
            cases.append({"task": t.name, "engines": ["polars", "dask"], "scales": _with_suffix(t.name, ["medium"]),
                          "options": dict(t.bench_options)})
    if not cases:
        msg = "the validate suite is empty: this uda has no task module yet"
        raise UserError(msg)
    return {"name": "validate", "description": "medium, to check the sweep's predictions", "seed": 1,
            "repeats": 2, "warmup": 0, "timeout_s": 1800, "cold": "cached", "cases": cases}


#: Built-in suites by name.
BUILTIN = {"default": default_suite, "sweep": sweep_suite, "validate": validate_suite}


def generate(data: None, *, engine: str = "uda", scheduler: str | None = None,
             scale: str = "tiny", seed: int = 1, **options: Any) -> TaskResult:
    """Run ``uda generate`` end to end into a temporary folder (a benchmark case).

    Parameters
    ----------
    data
        Unused (the case makes its own data).
    engine, scheduler
        Recorded only; the generator has one implementation.
    scale, seed
        Passed to ``uda generate``.
    **options
        More ``uda generate`` options, e.g. ``workers=2`` becomes ``--workers 2``.

    Returns
    -------
    TaskResult
        ``rows_in``/``bytes_in`` are the rows and bytes written; the answer is every
        table's content checksum, so repeats and engines must produce identical data.
    """
    with tempfile.TemporaryDirectory(prefix="uda-gen-") as tmp:
        out = Path(tmp) / "ds"
        cmd = [sys.executable, "-c", "from uda.cli.main import main; main()", "generate",
               "--scale", str(scale), "--seed", str(seed), "--out", str(out)]
        for key, value in options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            msg = f"uda generate failed: {last}"
            raise RuntimeError(msg)
        manifest = json.loads((out / "manifest.json").read_text())
    tables = manifest["tables"]
    names = sorted(tables)
    return TaskResult(
        task="generate", engine=engine,
        answer={"tables": names, "checksums": [str(tables[n]["checksum"]) for n in names]},
        rows_in=sum(int(t["rows"]) for t in tables.values()),
        bytes_in=sum(int(t["bytes"]) for t in tables.values()),
        summary={"tables": len(names)},
    )
