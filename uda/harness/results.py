"""The versioned results format: one JSON file per run, machine facts, packages, git commit."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psutil

from uda.errors import UserError

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


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


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
    import uda
    import uda.cli

    h = hashlib.sha256()
    for pkg in (uda, uda.cli):
        root = Path(pkg.__file__).parent
        for f in sorted(root.rglob("*.py")):
            if pkg is uda and f.is_relative_to(root / "cli"):
                continue
            h.update(f"{pkg.__name__}/{f.relative_to(root).as_posix()}\0".encode())
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
        "packages": package_versions(),
        "git": git_facts(),
        "source_sha256": source_digest(),
        "datasets": {},
        "cases": [],
    }


def write_results(results: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``results`` to ``out_dir/<run_id>.json``; never overwrites an existing file."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create the results folder {out} ({exc.strerror}); choose a writable --out"
        raise UserError(msg) from None
    text = json.dumps(results, indent=1, allow_nan=False, default=_jsonable)
    for _ in range(5):
        path = out / f"{results['run_id']}.json"
        try:
            with open(path, "x") as f:
                f.write(text + "\n")
            return path
        except FileExistsError:
            results["run_id"] = new_run_id()
            text = json.dumps(results, indent=1, allow_nan=False, default=_jsonable)
    msg = f"could not find a free results file name in {out}; retry"
    raise UserError(msg)


def _jsonable(value: Any) -> Any:
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
    from uda.store import read_location

    p = os.fspath(path)
    try:
        data = json.loads(read_location(p))
    except (FileNotFoundError, IsADirectoryError):
        msg = f"results file {p} does not exist; pass a JSON file written by `uda bench`"
        raise UserError(msg) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{p} is not valid JSON ({exc.__class__.__name__}); pass a file written by `uda bench`"
        raise UserError(msg) from None
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
    return data


def warm_values(case: dict[str, Any], metric: str = "wall_s") -> list[float]:
    """The warm repeats' values of ``metric`` for one case (empty when none)."""
    return [float(m[metric]) for m in case.get("warm") or [] if m.get(metric) is not None]
