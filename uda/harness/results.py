"""The versioned results format: one JSON file per run, machine facts, packages, git commit."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psutil

from uda.errors import UserError
from uda.versions import package_versions

SCHEMA = "uda-bench-results"
SCHEMA_VERSION = 1
STATUSES = ("ok", "timeout", "oom", "error", "wrong_answer")

#: Distributions whose versions every results file records.
PACKAGES = ("uda", "numpy", "numba", "llvmlite", "polars", "pyarrow", "dask", "distributed",
            "pandas", "psutil", "click", "rich", "matplotlib")

_REPO = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """Facts about this machine that results depend on.

    Returns
    -------
    dict
        ``hostname``, ``cpu_model``, ``cores_logical``, ``cores_physical``,
        ``cpu_affinity`` (cores this process may use), ``memory_bytes``, ``os``,
        ``kernel``, ``machine``, ``python``, ``load_avg_1m`` (load when recorded).
    """
    try:
        affinity = len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error):
        affinity = psutil.cpu_count()
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores_logical": psutil.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": affinity,
        "memory_bytes": psutil.virtual_memory().total,
        "os": f"{platform.system()} {_os_release()}".strip(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg_1m": load,
    }


def _os_release() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        return ""


def git_facts(path: Path = _REPO) -> dict[str, Any]:
    """The git commit of the uda checkout and whether it has uncommitted changes."""
    def _git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                                  timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def source_digest() -> str:
    """SHA-256 over the Python sources of the imported ``uda`` and ``uda.cli`` packages.

    Unlike the git commit it sees uncommitted edits, so cases run on different code (an
    edit during a sweep) can be told apart.
    """
    h = hashlib.sha256()
    for name in ("uda", "uda.cli"):  # located, not imported: the harness sits below the CLI
        root = Path(importlib.util.find_spec(name).origin).parent
        for f in sorted(root.rglob("*.py")):
            if name == "uda" and f.is_relative_to(root / "cli"):
                continue
            h.update(f"{name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def new_run_id() -> str:
    """A unique, sortable run id: UTC time plus a random suffix."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:6]}"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (used for the dataset manifest checksum)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def new_results(*, suite: dict[str, Any]) -> dict[str, Any]:
    """The skeleton of a results object for one run of ``suite``."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "run_id": new_run_id(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "suite": suite,
        "machine": machine_facts(),
        "packages": package_versions(PACKAGES),
        "git": git_facts(),
        "source_sha256": source_digest(),
        "datasets": {},
        "cases": [],
    }


def write_results(results: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``results`` to ``out_dir/<run_id>.json``; never overwrites an existing file."""
    from uda.store import make_folder

    out = make_folder(out_dir, "the results folder (--out)")
    text = json.dumps(results, indent=1, allow_nan=False, default=jsonable)
    for _ in range(5):
        path = out / f"{results['run_id']}.json"
        try:
            with open(path, "x") as f:
                f.write(text + "\n")
            return path
        except FileExistsError:
            results["run_id"] = new_run_id()
            text = json.dumps(results, indent=1, allow_nan=False, default=jsonable)
    msg = f"could not find a free results file name in {out}; retry"
    raise UserError(msg)


def jsonable(value: Any) -> Any:
    """``json.dumps``' ``default``: NumPy scalars and arrays as Python values, anything else as its string."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a results file written by ``uda bench`` (a path or an fsspec URL).

    Raises
    ------
    UserError
        When the file is missing, is not JSON, or is not a uda results object of a
        schema version this uda reads.
    """
    from uda.store import split_location

    p = os.fspath(path)
    fs, where = split_location(p)
    if (Path(where).is_dir() if fs is None else fs.isdir(where)):
        msg = f"{p} is a folder; pass a results file <run-id>.json written by `uda bench`"
        raise UserError(msg)
    data = read_json(p, "pass a file written by `uda bench`")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        msg = f"{p} is not a uda results file (no \"schema\": \"{SCHEMA}\"); pass a file written by `uda bench`"
        raise UserError(msg)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        msg = f"{p} has results schema version {version!r}; this uda reads version {SCHEMA_VERSION}, re-run `uda bench`"
        raise UserError(msg)
    cases = data.get("cases")
    if not isinstance(cases, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str)
                                              and c.get("status") in STATUSES for c in cases):
        msg = f"{p}: \"cases\" must be a list of cases with an id and a known status; the file is damaged, re-run `uda bench`"
        raise UserError(msg)
    problem = _check_results(data)
    if problem:
        msg = f"{p}: {problem}; the file is damaged, re-run `uda bench`"
        raise UserError(msg)
    return data


def read_json(p: str, hint: str, *, nan: bool = False) -> Any:
    """The JSON document at ``p`` (a path or fsspec URL) with one-line errors ending in
    ``hint``: missing, unreadable, larger than :data:`MAX_RESULTS_BYTES`, not JSON, nested
    too deep, or (unless ``nan``, which reads them as None) holding NaN or Infinity."""
    from uda.store import parse_json, read_location, split_location

    fs, where = split_location(p)
    try:
        size = Path(where).stat().st_size if fs is None else fs.size(where)
    except (FileNotFoundError, NotADirectoryError):
        size = 0  # said below, by the read
    except OSError as exc:
        msg = f"cannot read {p} ({exc.strerror or exc.__class__.__name__})"
        raise UserError(msg) from None
    if size > MAX_RESULTS_BYTES:
        msg = f"{p} is {size:,} bytes, more than a results file can be ({MAX_RESULTS_BYTES:,}); {hint}"
        raise UserError(msg)
    try:
        text = read_location(p)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        msg = f"{p} does not exist; {hint}"
        raise UserError(msg) from None
    except PermissionError:
        msg = f"cannot read {p} (permission denied)"
        raise UserError(msg) from None
    try:
        return parse_json(text, p, "a results file", hint, limit=MAX_RESULTS_BYTES,
                          parse_constant=(lambda name: None) if nan else _no_constant)
    except ValueError as exc:  # NaN or Infinity: uda writes results with allow_nan=False
        msg = f"{p} holds {exc}, which uda never writes; the file is damaged, re-run the command that wrote it"
        raise UserError(msg) from None


#: Largest results file read (a run of thousands of cases is a few MB).
MAX_RESULTS_BYTES = 256 * 2**20
_MEASURE_KEYS = ("wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "peak_rss_bytes", "base_rss_bytes",
                 "processes", "rows_per_s")


def _no_constant(name: str) -> float:
    msg = f"{name}"
    raise ValueError(msg)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 and math.isfinite(v)


def _check_results(data: dict[str, Any]) -> str | None:
    """The first problem of a results object's shape (``None`` if none); every field is optional."""
    for key in ("machine", "git", "suite", "datasets", "packages"):
        if key in data and not isinstance(data[key], dict):
            return f"{key!r} must be an object"
    machine = data.get("machine") or {}
    for key in ("memory_bytes", "cpu_affinity", "cores_logical", "cores_physical", "load_avg_1m"):
        if machine.get(key) is not None and not _number(machine[key]):
            return f"machine.{key} must be a number >= 0, got {str(machine[key])[:40]!r}"
    for key in ("cpu_model", "os", "kernel", "machine", "python", "hostname"):
        if machine.get(key) is not None and not isinstance(machine[key], str):
            return f"machine.{key} must be a string"
    git = data.get("git") or {}
    if git.get("commit") is not None and not isinstance(git["commit"], str):
        return "git.commit must be a string"
    for key, ds in (data.get("datasets") or {}).items():
        if not isinstance(ds, dict) or not isinstance(ds.get("tables", {}), dict) \
                or not isinstance(ds.get("params", {}), dict):
            return f"dataset {key[:60]!r} must be an object with tables and params objects"
        if not all(ds.get(k) is None or _number(ds[k]) for k in ("rows", "bytes")):
            return f"dataset {key[:60]!r}: rows and bytes must be numbers"
        for name, t in ds.get("tables", {}).items():
            if not isinstance(t, dict) or not all(t.get(k) is None or _number(t[k]) for k in ("rows", "bytes")):
                return f"dataset {key[:60]!r}: table {name[:60]!r} needs rows and bytes as numbers"
        for k, v in ds.get("params", {}).items():
            if k in ("sensors", "days", "stations", "water_sites", "water_interval_s") and v is not None \
                    and not (_number(v) and v > 0):
                return f"dataset {key[:60]!r}: params.{k} must be a positive number, got {str(v)[:40]!r}"
    for c in data["cases"]:
        cid = c["id"][:80]
        for key in ("task", "engine"):
            if not isinstance(c.get(key), str):
                return f"case {cid!r}: {key} must be a string"
        for key in ("scheduler", "scale", "dataset", "message"):
            if c.get(key) is not None and not isinstance(c[key], str):
                return f"case {cid!r}: {key} must be a string"
        for key in ("options", "limits", "quality", "task_summary", "answer_check"):
            if c.get(key) is not None and not isinstance(c[key], dict):
                return f"case {cid!r}: {key} must be an object"
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (c.get("quality") or {}).values()):
            return f"case {cid!r}: quality values must be finite numbers"
        for key in ("rows_in", "bytes_in", "elapsed_s", "setup_s", "case_peak_rss_bytes"):
            if c.get(key) is not None and not _number(c[key]):
                return f"case {cid!r}: {key} must be a number >= 0, got {str(c[key])[:40]!r}"
        warm = c.get("warm")
        if warm is not None and not isinstance(warm, list):
            return f"case {cid!r}: warm must be a list of measurements"
        for m in ([c["cold"]] if c.get("cold") is not None else []) + list(warm or []):
            if not isinstance(m, dict):
                return f"case {cid!r}: a measurement must be an object"
            for k in _MEASURE_KEYS:
                if m.get(k) is not None and not _number(m[k]):
                    return f"case {cid!r}: measurement {k} must be a number >= 0, got {str(m[k])[:40]!r}"
        summary = c.get("summary")
        if summary is not None and not isinstance(summary, dict):
            return f"case {cid!r}: summary must be an object"
        for k, v in (summary or {}).items():
            if v is not None and not _number(v) and not (k == "cold_overhead_s" and isinstance(v, int | float)
                                                         and math.isfinite(v)):
                return f"case {cid!r}: summary {k} must be a number, got {str(v)[:40]!r}"
    return None


def warm_values(case: dict[str, Any], metric: str = "wall_s") -> list[float]:
    """The warm repeats' values of ``metric`` for one case (empty when none)."""
    return [float(m[metric]) for m in case.get("warm") or [] if m.get(metric) is not None]


def engine_name(case: dict[str, Any]) -> str:
    """``polars``, ``dask-threads``, ``dask-local:2`` …, with ``@N`` for a case limited to N cores.

    The engine label of a case in the report's tables and of the sizing fits' curves.
    """
    label = case["engine"] if not case.get("scheduler") else f"{case['engine']}-{case['scheduler']}"
    cores = (case.get("limits") or {}).get("cores")
    return label if cores is None else f"{label}@{cores}"
