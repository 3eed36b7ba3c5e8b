"""What a report reads: a results file of ``uda bench`` or the output of ``uda run ... --out``, as a results object."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from uda.errors import UserError
from uda.harness.results import SCHEMA, SCHEMA_VERSION, load_results

# ---------------------------------------------------------------- inputs

#: Files a ``uda run ... --out`` folder holds its result in, in the order they are looked for.
RUN_FILES = ("summary.json", "utilisation.json")
_READ_HINT = ("pass a results file <run-id>.json of `uda bench`, or the --out file or folder of "
              "`uda run flow|route|water|utilisation`")


def _read_json(p: str) -> Any:
    """A JSON document at ``p`` (a path or fsspec URL), with one-line errors."""
    from uda.harness.results import read_json

    return read_json(p, _READ_HINT, nan=True)


def _is_folder(p: str) -> bool:
    from uda.store import split_location

    fs, where = split_location(p)
    return Path(where).is_dir() if fs is None else fs.isdir(where)


def load_report_input(path: str | os.PathLike) -> dict[str, Any]:
    """A results object from a ``uda bench`` results file or a ``uda run`` result.

    A ``uda run`` result (``flow --out FILE``; ``route``, ``water`` or ``utilisation``
    ``--out FOLDER``, or the file inside; or any of them with ``--json``) becomes a results
    object with one case: its task, engine and quality, and the time the task reported
    for itself when it reports one (one call, not measured by the harness: no repeats,
    no memory).

    Raises
    ------
    UserError
        When the path is missing, is not JSON, or is neither kind of result.
    """
    p = os.fspath(path).rstrip("/") or "/"
    if _is_folder(p):
        from uda.store import split_location

        fs, where = split_location(p)
        inside = [n for n in RUN_FILES if (Path(where, n).is_file() if fs is None else fs.isfile(f"{where}/{n}"))]
        if not inside:
            msg = f"{p} is a folder without a uda result (no {' or '.join(RUN_FILES)}); {_READ_HINT}"
            raise UserError(msg)
        p = f"{p}/{inside[0]}"
    data = _read_json(p)
    if isinstance(data, dict) and "schema" in data:
        return load_results(p)
    res = run_output_results(data, source=p)
    if res is None:
        msg = f"{p} is not a uda result (neither a `uda bench` results file nor a `uda run` result); {_READ_HINT}"
        raise UserError(msg)
    return res


def is_finite(v: Any) -> bool:
    """Whether ``v`` is a finite int or float (not a bool, not NaN or infinite)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _run_quality(data: dict[str, Any]) -> tuple[str, dict[str, float], float | None] | None:
    """``(task, quality, rows_in)`` of a ``uda run`` result, or ``None`` when it is not one."""
    q: dict[str, Any] = {}
    if isinstance(data.get("models"), dict) and "protocol" in data:  # flow --out / --json
        for m, by_h in data["models"].items():
            for h, sc in (by_h or {}).items() if isinstance(by_h, dict) else ():
                if isinstance(sc, dict):
                    q[f"{m}_mae_h{h}"] = sc.get("mae")
        return "flow", q, None
    if isinstance(data.get("funnel"), dict) and isinstance(data.get("totals"), dict):  # utilisation
        rows = 0.0
        for t, v in data["totals"].items():
            if isinstance(v, dict) and is_finite(v.get("collected")) and is_finite(v.get("used")):
                q[f"{t}_used_share"] = v["used"] / max(1, v["collected"])
                rows += v["collected"]
        detectors = data.get("detectors")
        for k, v in detectors.items() if isinstance(detectors, dict) else ():
            if isinstance(v, dict) and is_finite(v.get("precision")) and is_finite(v.get("recall")):
                q[f"{k}_f1"] = 2 * v["precision"] * v["recall"] / max(1e-12, v["precision"] + v["recall"])
        return "utilisation", q, rows or None
    if isinstance(data.get("task"), str) and isinstance(data.get("quality"), dict):  # route, water --json
        return data["task"], dict(data["quality"]), data.get("rows_in")
    if isinstance(data.get("detectors"), dict) and ("best_detector" in data or "mass_balance" in data):
        for name, d in data["detectors"].items():  # water --out summary.json
            if not isinstance(d, dict):
                continue
            f1 = (d.get("per_sample") or {}).get("f1") if isinstance(d.get("per_sample"), dict) else d.get("f1")
            q[f"{name}_f1"] = f1
        mb = data.get("mass_balance")
        if isinstance(mb, dict):
            q["mass_balance_f1"] = mb.get("f1")
        table = data.get("table") if isinstance(data.get("table"), dict) else {}
        return "water", q, table.get("rows")
    return None


def run_output_results(data: Any, *, source: str) -> dict[str, Any] | None:
    """A one-case results object from a ``uda run`` result (``None`` if ``data`` is not one)."""
    if not isinstance(data, dict):
        return None
    found = _run_quality(data)
    if found is None:
        return None
    task, quality, rows = found
    quality = {str(k): float(v) for k, v in quality.items() if is_finite(v)}
    engine = data.get("engine") if isinstance(data.get("engine"), str) else "unrecorded"
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    secs = data.get("seconds", summary.get("seconds"))
    if isinstance(secs, dict):
        secs = secs.get("total")
    if secs is None and isinstance(summary.get("stage_seconds"), dict):
        parts = [v for v in summary["stage_seconds"].values() if is_finite(v)]
        secs = sum(parts) if parts else None
    timed = is_finite(secs) and secs > 0
    rows = float(rows) if is_finite(rows) and rows > 0 else None
    case = {
        "id": f"{task}/{engine}/-", "task": task, "engine": engine, "scheduler": None, "scale": None,
        "status": "ok", "message": "", "options": {}, "limits": {"source": "uda run"},
        "rows_in": rows, "quality": quality, "answer_check": {"status": "unchecked", "reason": "one run"},
        "cold": {"wall_s": float(secs)} if timed else None, "warm": [],
        "summary": ({"wall_s_median": float(secs), "wall_s_min": float(secs), "wall_s_max": float(secs),
                     "n_warm": 0, "rows_per_s": rows / secs if rows else None} if timed else None),
    }
    name = Path(source).parent.name if Path(source).name in RUN_FILES else Path(source).stem
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": name, "created_utc": "",
            "suite": {"name": f"uda run {task}", "source": source}, "origin": "uda run",
            "machine": {}, "packages": {}, "git": {}, "datasets": {}, "cases": [case]}
