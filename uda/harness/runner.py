"""Run a benchmark suite: each case in its own process, with limits, repeats and answer checks.

A *suite* (TOML or JSON file, or the built-in ``default``) lists case entries; each entry
expands into a matrix of engines x schedulers x scales. Every case runs in a fresh Python
process that imports the task, makes one cold call (first call, Numba compile included
only with ``cold = "compile"``), ``warmup`` discarded calls and ``repeats`` warm calls, each
measured with :mod:`uda.harness.measure`. The parent watches the child's process tree and
kills it when it passes ``timeout_s`` or ``memory_mb``. Cases of the same task, scale and
options on different engines must give the same answer
(:func:`uda.tasks.base.compare_answers`); a case that disagrees with the reference engine
is a ``wrong_answer`` and its time does not count.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from uda.errors import UserError
from uda.harness import results as _results
from uda.harness.measure import TreeSampler, kill_tree, measure_call

#: Settings a suite (or one of its entries) may set, with their defaults.
DEFAULTS: dict[str, Any] = {
    "repeats": 3,
    "warmup": 0,
    "timeout_s": 600.0,
    "memory_mb": None,      # None: half of this machine's memory
    "cold": "cached",       # "cached": reuse Numba's on-disk cache; "compile": fresh cache per case
    "rtol": 1e-6,
    "atol": 1e-9,
    "cores": None,          # None: every core this process may use; N: the case runs on N cores
}
ENTRY_KEYS = {"task", "target", "engines", "schedulers", "scales", "options", "dataset", "data",
              *DEFAULTS}
SUITE_KEYS = {"name", "description", "seed", "datasets_dir", "pythonpath", "reference_engine",
              "cases", *DEFAULTS}
COLD_MODES = ("compile", "cached")
_POLL_S = 0.05


@dataclasses.dataclass
class Case:
    """One cell of the matrix: a task on one engine, scheduler and scale."""

    id: str
    task: str
    target: str
    engine: str
    scheduler: str | None
    scale: str | None
    dataset: str | None
    needs_data: bool
    options: dict[str, Any]
    repeats: int
    warmup: int
    timeout_s: float
    memory_mb: float
    cold: str
    rtol: float
    atol: float
    cores: int | None = None

    def check_key(self) -> str:
        """Cases with equal keys must give the same answer."""
        return json.dumps([self.task, self.target, self.scale, self.dataset, self.options],
                          sort_keys=True, default=str)


# ---------------------------------------------------------------- suites

def load_suite(spec: str | os.PathLike) -> dict[str, Any]:
    """Load a suite: ``"default"`` (built in) or a ``.toml`` / ``.json`` file.

    Returns
    -------
    dict
        The suite with ``source`` (where it came from) and ``base_dir`` (folder that
        relative ``pythonpath``/``dataset`` entries are resolved against) added.
    """
    from uda.harness import suites

    name = str(spec)
    if name in suites.BUILTIN:
        suite = suites.BUILTIN[name]()
        suite.setdefault("name", name)
        suite["source"] = f"builtin:{name}"
        suite["base_dir"] = str(Path.cwd())
        return suite
    p = Path(name)
    if not p.is_file():
        msg = (f"unknown suite {name!r}: not a built-in suite ({', '.join(sorted(suites.BUILTIN))}) "
               "and no such file; pass --suite default or a .toml/.json suite file")
        raise UserError(msg)
    try:
        if p.suffix.lower() == ".toml":
            suite = tomllib.loads(p.read_text())
        elif p.suffix.lower() == ".json":
            suite = json.loads(p.read_text())
        else:
            msg = f"suite file {p} must end in .toml or .json"
            raise UserError(msg)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"suite file {p} is not valid {p.suffix[1:].upper()} ({str(exc).splitlines()[0]}); fix its syntax"
        raise UserError(msg) from None
    if not isinstance(suite, dict):
        msg = f"suite file {p} must hold a table/object with a \"cases\" list"
        raise UserError(msg)
    suite.setdefault("name", p.stem)
    suite["source"] = str(p)
    suite["base_dir"] = str(p.resolve().parent)
    return suite


def _positive(entry: dict[str, Any], key: str, where: str, *, integer: bool, allow_zero: bool) -> None:
    value = entry.get(key)
    if value is None:
        return
    kind = int if integer else (int, float)
    ok = (isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
          and (value > 0 or (allow_zero and value == 0)))
    if not ok:
        msg = (f"{where}: {key} must be a {'whole' if integer else 'finite'} number "
               f"{'>= 0' if allow_zero else '> 0'}, got {_show(value)}")
        raise UserError(msg)


def _clip(text: str) -> str:
    """Text from a suite file for an error message: one line, at most 60 characters."""
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _show(value: Any) -> str:
    """A value from a suite file for an error message (its repr, short, one line)."""
    return _clip(repr(value))


#: Numeric settings: (whole number, zero allowed).
_NUMBERS = {"repeats": (True, True), "warmup": (True, True), "timeout_s": (False, False),
            "memory_mb": (False, False), "rtol": (False, True), "atol": (False, True),
            "cores": (True, False)}
#: ``uda generate`` options a scale may override, and how each value is checked.
SCALE_OVERRIDES = ("sensors", "days", "stations", "lines", "cards", "water-sites", "districts", "start",
                   "defects", "workers", "chunk-rows", "tables")
#: Sensor tables a scale may generate alone (``tables=water``).
SCALE_TABLES = ("traffic", "passenger", "water")


def _check_settings(where: str, settings: dict[str, Any]) -> None:
    """Check the limit and repeat settings of a suite or of one of its entries."""
    for key, (integer, zero) in _NUMBERS.items():
        _positive(settings, key, where, integer=integer, allow_zero=zero)
    cold = settings.get("cold")
    if cold is not None and cold not in COLD_MODES:
        msg = f"{where}: cold must be one of {', '.join(COLD_MODES)}, got {_show(cold)}"
        raise UserError(msg)


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        msg = f"{where}: {key} must be a list of names, got {_show(value)}"
        raise UserError(msg)
    return value


def check_scale(scale: str, *, where: str = "--scale") -> str:
    """Return ``scale`` if ``uda generate`` can make it (a preset with valid overrides), else a :class:`UserError`."""
    from uda.scales import PRESETS, resolve_scale

    if not isinstance(scale, str):
        msg = f"{where}: scales must be names such as \"tiny\" or \"small:sensors=600\", got {_show(scale)}"
        raise UserError(msg)
    preset, overrides = parse_scale(scale)
    if preset not in PRESETS:
        msg = f"{where}: unknown scale {_show(preset)}; choose one of: {', '.join(PRESETS)}"
        raise UserError(msg)
    sizes: dict[str, int | str] = {}
    for key, value in overrides.items():
        if key not in SCALE_OVERRIDES:
            msg = f"{where}: scale {_show(scale)} overrides {key!r}; allowed: {', '.join(SCALE_OVERRIDES)}"
            raise UserError(msg)
        if key == "defects":
            from uda.synth.profiles import resolve_profile

            resolve_profile(value)
        elif key == "start":
            sizes[key] = value
        elif key == "tables":
            if value not in SCALE_TABLES:
                msg = f"{where}: scale {_show(scale)}: tables={value} must be one of {', '.join(SCALE_TABLES)}"
                raise UserError(msg)
        elif not value.isdigit() or (key in ("workers", "chunk-rows") and int(value) < 1):
            msg = f"{where}: scale {_show(scale)}: {key}={value} must be a positive whole number"
            raise UserError(msg)
        elif key not in ("workers", "chunk-rows"):
            sizes[key.replace("-", "_")] = int(value)
    try:
        resolve_scale(preset, **sizes)
    except UserError as exc:
        msg = f"{where}: scale {_show(scale)}: {exc}"
        raise UserError(msg) from None
    return scale


def check_suite_settings(suite: dict[str, Any]) -> None:
    """Check a suite's own settings (not its entries): types and ranges, before any case runs."""
    from uda.engines import ENGINES

    src = suite.get("source", "suite")
    _check_settings(src, suite)
    seed = suite.get("seed", 1)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        msg = f"{src}: seed must be a whole number >= 0, got {_show(seed)}"
        raise UserError(msg)
    for key in ("name", "description", "datasets_dir"):
        if key in suite and not isinstance(suite[key], str):
            msg = f"{src}: {key} must be a string, got {_show(suite[key])}"
            raise UserError(msg)
    _string_list(suite.get("pythonpath"), "pythonpath", src)
    ref = suite.get("reference_engine", "polars")
    if ref not in ENGINES:
        msg = f"{src}: reference_engine must be one of {', '.join(ENGINES)}, got {_show(ref)}"
        raise UserError(msg)


def expand_suite(suite: dict[str, Any], *, engines: list[str] | None = None,
                 schedulers: list[str] | None = None, scales: list[str] | None = None,
                 tasks: list[str] | None = None, repeats: int | None = None) -> list[Case]:
    """Expand a suite's entries into cases, applying command-line overrides.

    Parameters
    ----------
    suite
        As returned by :func:`load_suite`.
    engines, schedulers, scales
        Replace every entry's lists (``schedulers`` apply to the Dask engine only).
    tasks
        Keep only these tasks.
    repeats
        Replace every entry's number of warm repeats.
    """
    from uda.engines import ENGINES, check_engine
    from uda.tasks.base import TASKS

    src = suite.get("source", "suite")
    unknown = set(suite) - SUITE_KEYS - {"source", "base_dir"}
    if unknown:
        msg = f"{src}: unknown suite setting(s) {_clip(', '.join(sorted(map(str, unknown))))}; allowed: {', '.join(sorted(SUITE_KEYS))}"
        raise UserError(msg)
    entries = suite.get("cases")
    if not isinstance(entries, list) or not entries:
        msg = f"{src}: the suite needs a non-empty \"cases\" list"
        raise UserError(msg)
    check_suite_settings(suite)
    for e in engines or []:
        check_engine(e)
    for sc in scales or []:
        check_scale(sc)
    base = Path(suite.get("base_dir", "."))
    defaults = {**DEFAULTS, **{k: suite[k] for k in DEFAULTS if k in suite}}
    if defaults["memory_mb"] is None:
        defaults["memory_mb"] = psutil.virtual_memory().total / 2**20 / 2
    cases: list[Case] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{src}: case {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("task"), str) or not entry["task"]:
            msg = f"{where} needs a \"task\" name"
            raise UserError(msg)
        bad = set(entry) - ENTRY_KEYS
        if bad:
            msg = f"{where}: unknown key(s) {_clip(', '.join(sorted(map(str, bad))))}; allowed: {', '.join(sorted(ENTRY_KEYS))}"
            raise UserError(msg)
        task = entry["task"]
        custom = entry.get("target")
        if custom is not None and (not isinstance(custom, str) or custom.count(":") != 1):
            msg = f"{where}: target must be \"module:function\", got {_show(custom)}"
            raise UserError(msg)
        target = custom or TASKS.get(task)
        if not target or ":" not in target:
            msg = (f"{where}: unknown task {_show(task)} (known: {', '.join(sorted(TASKS))}); "
                   "or give target = \"module:function\"")
            raise UserError(msg)
        _check_settings(where, entry)
        settings = {**defaults, **{k: entry[k] for k in DEFAULTS if k in entry}}
        if repeats is not None:
            settings["repeats"] = repeats
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            msg = f"{where}: options must be a table/object of keyword arguments"
            raise UserError(msg)
        if not isinstance(entry.get("data", True), bool):
            msg = f"{where}: data must be true or false, got {_show(entry['data'])}"
            raise UserError(msg)
        needs_data = entry.get("data", True)
        dataset = entry.get("dataset")
        if dataset is not None:
            if not isinstance(dataset, str) or not dataset or "\0" in dataset:
                msg = f"{where}: dataset must be a folder path, got {_show(dataset)}"
                raise UserError(msg)
            dataset = str((base / dataset).resolve()) if not Path(dataset).is_absolute() else dataset
        entry_engines = _string_list(entry.get("engines"), "engines", where)
        if custom is None:
            for e in entry_engines:
                if e not in ENGINES:
                    msg = f"{where}: unknown engine {_show(e)}; choose from: {', '.join(ENGINES)}"
                    raise UserError(msg)
        e_engines = engines or entry_engines or ["polars"]
        entry_scheds = [check_scheduler(x) for x in _string_list(entry.get("schedulers"), "schedulers", where)]
        if "scales" in entry and not isinstance(entry["scales"], list):
            msg = f"{where}: scales must be a list of names such as \"tiny\", got {_show(entry['scales'])}"
            raise UserError(msg)
        e_scales = scales or entry.get("scales") or ([None] if dataset or not needs_data else [])
        if not e_scales:
            msg = f"{where}: give scales = [...] or a dataset path (or data = false)"
            raise UserError(msg)
        for scale in e_scales:
            if scale is not None and (needs_data or custom is None):
                check_scale(scale, where=where)
            elif scale is not None:
                if not isinstance(scale, str):
                    check_scale(scale, where=where)  # raises: not a name
                parse_scale(scale)
        if tasks and task not in tasks:
            continue  # checked all the same: a suite is valid as a whole or not at all
        for engine in e_engines:
            scheds = [None]
            if engine == "dask":
                scheds = [check_scheduler(str(x)) for x in schedulers or entry_scheds or ["threads"]]
            for sched in scheds:
                for scale in e_scales:
                    cores = None if settings["cores"] is None else int(settings["cores"])
                    cid = _case_id(task, engine, sched, scale, options, settings["cold"], cores)
                    if cid in seen:
                        continue
                    seen.add(cid)
                    cases.append(Case(id=cid, task=task, target=target, engine=engine,
                                      scheduler=sched, scale=scale, dataset=dataset,
                                      needs_data=needs_data, options=dict(options),
                                      repeats=int(settings["repeats"]),
                                      warmup=int(settings["warmup"]),
                                      timeout_s=float(settings["timeout_s"]),
                                      memory_mb=float(settings["memory_mb"]),
                                      cold=settings["cold"], rtol=float(settings["rtol"]),
                                      atol=float(settings["atol"]), cores=cores))
    if not cases:
        msg = f"{src}: no case left after filtering (--task/--engine/--scale); check the names"
        raise UserError(msg)
    return cases


def check_scheduler(scheduler: str) -> str:
    """Return ``scheduler`` if the harness can run it, else raise a :class:`UserError`."""
    from uda.engines import LOCAL_SCHEDULERS

    if scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if "://" in scheduler:
        from uda.engines import parse_scheduler_address

        parse_scheduler_address(scheduler)
        return scheduler
    if scheduler == "local":
        return "local:2"
    if scheduler.startswith("local:") and scheduler[6:].isdigit() and int(scheduler[6:]) > 0:
        return scheduler
    msg = (f"unknown scheduler {scheduler!r}; use {', '.join(LOCAL_SCHEDULERS)}, local[:N] "
           "(a LocalCluster of N worker processes) or a scheduler address such as tcp://127.0.0.1:8786")
    raise UserError(msg)


def _case_id(task: str, engine: str, scheduler: str | None, scale: str | None,
             options: dict[str, Any], cold: str, cores: int | None = None) -> str:
    eng = engine if scheduler is None else f"{engine}-{scheduler}"
    parts = [task, eng, scale or "-"]
    if options:
        parts.append(",".join(f"{k}={options[k]}" for k in sorted(options)))
    if cold == "compile":
        parts.append("compile")
    if cores is not None:
        parts.append(f"cores={cores}")
    return "/".join(parts)


# ---------------------------------------------------------------- datasets

def parse_scale(scale: str) -> tuple[str, dict[str, str]]:
    """Split ``"preset:key=value,..."`` (a preset with ``uda generate`` overrides) into its parts."""
    preset, _, rest = scale.partition(":")
    overrides: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip() or not all(ch.isalnum() or ch in "_-" for ch in key + value.strip()):
            msg = f"scale {scale!r}: override {item!r} is not key=value; write e.g. small:sensors=600,days=7"
            raise UserError(msg)
        overrides[key.strip().replace("_", "-")] = value.strip()
    return preset, overrides


def dataset_dir(scale: str, seed: int, datasets_dir: str | os.PathLike) -> Path:
    """Where the dataset of ``scale`` (a preset, optionally with overrides) and ``seed`` lives."""
    preset, overrides = parse_scale(scale)
    name = "-".join([preset, *(f"{k}{v}" for k, v in sorted(overrides.items()))])
    return Path(datasets_dir) / f"{name}-seed{seed}"


def ensure_dataset(scale: str, *, seed: int, datasets_dir: str | os.PathLike,
                   log: Callable[[str], None] | None = None) -> Path:
    """Return the dataset folder for ``scale``/``seed``, generating it with ``uda generate`` if missing.

    ``scale`` is a preset name, optionally with overrides: ``"medium:sensors=600,days=14"``.
    """
    path = dataset_dir(scale, seed, datasets_dir)
    if (path / "manifest.json").is_file():
        return path
    if importlib.util.find_spec("uda.cli.generate") is None:
        msg = f"dataset {path} is missing and this uda has no `uda generate`; generate it or pass dataset = PATH"
        raise UserError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"generating dataset {path} (scale {scale}, seed {seed})")
    preset, overrides = parse_scale(scale)
    cmd = [sys.executable, "-c", "from uda.cli.main import main; main()", "generate",
           "--scale", preset, "--seed", str(seed), "--out", str(path)]
    for key, value in overrides.items():
        cmd += [f"--{key}", value]
    if path.exists():
        cmd.append("--force")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        msg = f"`uda generate --scale {scale} --seed {seed}` failed: {last}"
        raise UserError(msg)
    return path


def describe_dataset(path: str | os.PathLike, *, scale: str | None = None,
                     seed: int | None = None) -> dict[str, Any]:
    """The results file's record of a dataset: manifest checksum, parameters, table sizes."""
    p = Path(path)
    manifest = json.loads((p / "manifest.json").read_text())
    tables = {name: {"rows": t.get("rows"), "bytes": t.get("bytes"), "checksum": t.get("checksum")}
              for name, t in manifest.get("tables", {}).items()}
    return {
        "path": str(p),
        "scale": scale if scale is not None else manifest.get("params", {}).get("scale"),
        "seed": seed if seed is not None else manifest.get("params", {}).get("seed"),
        "manifest_sha256": _results.file_digest(p / "manifest.json"),
        "params": manifest.get("params", {}),
        "rows": sum(t["rows"] or 0 for t in tables.values()),
        "bytes": sum(t["bytes"] or 0 for t in tables.values()),
        "tables": tables,
    }


# ---------------------------------------------------------------- child process

def _import_target(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _answer_arrays(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in answer.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "O":
            arr = np.asarray(value, dtype=str)
        out[str(key)] = arr
    return out


def _emit(fh, **event: Any) -> None:
    fh.write(json.dumps(event, default=_results._jsonable, allow_nan=True) + "\n")
    fh.flush()


def _worker_pids(address: str) -> Callable[[], list[int]]:
    """Process ids of a distributed cluster's workers running on this machine."""
    import socket

    from uda.engines import connect_client

    client = connect_client(address)
    local = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
    try:
        local.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    pids: list[int] = []

    def refresh() -> list[int]:
        return pids

    try:
        for addr, pid in client.run(os.getpid).items():
            host = addr.split("://")[-1].rsplit(":", 1)[0].strip("[]")
            if host in local:
                pids.append(int(pid))
    finally:
        client.close()
    return refresh


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a case's process: ``child_main([spec.json, events.jsonl])``."""
    spec_path, events_path = argv or sys.argv[1:3]
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("cores") and hasattr(os, "sched_setaffinity"):
        # before the task's imports: Dask worker processes inherit the affinity
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:int(spec["cores"])])
    sys.path[:0] = spec.get("pythonpath", [])
    work = Path(spec_path).parent
    cluster = None
    with open(events_path, "a") as fh:
        try:
            t0 = time.perf_counter()
            fn = _import_target(spec["target"])
            data = None
            if spec.get("dataset"):
                from uda.store import open_dataset

                data = open_dataset(spec["dataset"])
            scheduler = spec.get("scheduler")
            extra = None
            if scheduler and scheduler.startswith("local:"):
                from distributed import LocalCluster

                n = int(scheduler.split(":", 1)[1] or 2)
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
                scheduler = cluster.scheduler_address
            elif scheduler and "://" in scheduler:
                extra = _worker_pids(scheduler)
            _emit(fh, event="ready", setup_s=time.perf_counter() - t0, source=_results.source_digest())
            sampler = TreeSampler(extra_pids=extra).start()
            options = dict(spec.get("options", {}))
            if spec.get("pass_scale"):
                options.setdefault("scale", spec.get("scale"))
                options.setdefault("seed", spec.get("seed"))
            first = None
            n_calls = 1 + spec["warmup"] + spec["repeats"]
            for i in range(n_calls):
                res, m = measure_call(lambda: fn(data, engine=spec["engine"], scheduler=scheduler,
                                                 **options), sampler=sampler)
                for attr in ("answer", "quality", "rows_in", "bytes_in"):
                    if not hasattr(res, attr):
                        msg = f"{spec['target']} returned {type(res).__name__}, not a TaskResult (no {attr})"
                        raise TypeError(msg)
                phase = "cold" if i == 0 else ("warmup" if i <= spec["warmup"] else "warm")
                rows = int(res.rows_in or 0)
                _emit(fh, event="call", phase=phase, measurement=m.to_dict(rows=rows),
                      rows_in=rows, bytes_in=int(res.bytes_in or 0),
                      quality={k: float(v) for k, v in (res.quality or {}).items()})
                arrays = _answer_arrays(res.answer or {})
                if first is None:
                    first = arrays
                    np.savez(work / "answer.npz", **arrays)
                else:
                    from uda.tasks.base import compare_answers

                    problems = compare_answers(first, arrays, rtol=spec["rtol"], atol=spec["atol"])
                    if problems:
                        _emit(fh, event="failed", status="wrong_answer",
                              message="answer changed between calls: " + "; ".join(problems[:3]))
                        return 0
            sampler.stop()
            _emit(fh, event="done", summary=getattr(res, "summary", {}) or {})
        except MemoryError:
            _emit(fh, event="failed", status="oom", message="MemoryError raised in the case process")
        except BaseException as exc:  # noqa: BLE001 - every failure of a case is recorded
            text = str(exc).strip().splitlines()
            message = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
            tb = traceback.format_exc().strip().splitlines()[-12:]
            _emit(fh, event="failed", status="error", message=message, traceback=tb)
        finally:
            if cluster is not None:
                cluster.close()
    return 0


# ---------------------------------------------------------------- parent side

def _run_child(case: Case, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one case's process under its limits; returns the case's raw record."""
    spec_path = work / "spec.json"
    events_path = work / "events.jsonl"
    spec_path.write_text(json.dumps(spec, default=str))
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    if case.cores is not None:
        # thread pools sized to the cores (Polars, Numba, BLAS read these when they start)
        for var in ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS"):
            env[var] = str(case.cores)
    if case.cold == "compile":
        cache = work / "numba-cache"
        cache.mkdir()
        env["NUMBA_CACHE_DIR"] = str(cache)
    # os._exit: skip interpreter teardown once the events are written (after heavy Numba
    # compilation, LLVM's teardown has been seen to abort the process).
    cmd = [sys.executable, "-c", "import os, sys; from uda.harness.runner import child_main; "
           "code = child_main(); sys.stdout.flush(); sys.stderr.flush(); os._exit(code)",
           str(spec_path), str(events_path)]
    limit = int(case.memory_mb * 2**20)
    started = time.perf_counter()
    with open(work / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=err, env=env, start_new_session=True)
        watcher = TreeSampler(proc.pid)
        status, message = None, ""
        try:
            while True:
                try:
                    proc.wait(timeout=_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                try:
                    rss = watcher.sample()
                except psutil.Error:
                    rss = 0
                elapsed = time.perf_counter() - started
                if rss > limit:
                    status = "oom"
                    message = f"process tree RSS {rss / 2**20:.0f} MiB passed the limit of {case.memory_mb:.0f} MiB"
                elif elapsed > case.timeout_s:
                    status = "timeout"
                    message = f"still running after the limit of {case.timeout_s:g} s"
                if status:
                    kill_tree(proc.pid, group=True)
                    proc.wait()
                    break
        except BaseException:
            # Ctrl-C, SIGTERM (see _signals_end_cases) or any failure of the harness: the case
            # runs in its own session and would not get the signal, so end its whole tree
            # (Dask workers included) before giving up.
            kill_tree(proc.pid, group=True)
            proc.wait()
            raise
    elapsed = time.perf_counter() - started
    events = []
    if events_path.is_file():
        for line in events_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    calls = [e for e in events if e.get("event") == "call"]
    failed = next((e for e in events if e.get("event") == "failed"), None)
    done = any(e.get("event") == "done" for e in events)
    record: dict[str, Any] = {"elapsed_s": elapsed, "case_peak_rss_bytes": watcher.peak_rss}
    if status is None:
        if failed is not None:
            status, message = failed["status"], failed.get("message", "")
            if failed.get("traceback"):
                record["traceback"] = failed["traceback"]
        elif done and proc.returncode == 0:
            status = "ok"
        else:
            tail = (work / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:]
            if proc.returncode in (-9, 137):
                status = "oom"
                message = "killed by SIGKILL (probably the system out-of-memory killer)"
            else:
                status = "error"
                message = f"case process exited with status {proc.returncode}" + (f": {tail[0]}" if tail else "")
    record.update(status=status, message=message)
    cold = next((c for c in calls if c["phase"] == "cold"), None)
    warm = [c for c in calls if c["phase"] == "warm"]
    record["cold"] = cold["measurement"] if cold else None
    record["warm"] = [c["measurement"] for c in warm]
    last = calls[-1] if calls else {}
    record["rows_in"] = last.get("rows_in")
    record["bytes_in"] = last.get("bytes_in")
    record["quality"] = last.get("quality", {})
    setup = next((e for e in events if e.get("event") == "ready"), None)
    record["setup_s"] = setup.get("setup_s") if setup else None
    record["source_sha256"] = setup.get("source") if setup else None
    record["task_summary"] = next((e.get("summary") for e in events if e.get("event") == "done"), {})
    return record


class Terminated(SystemExit):
    """Raised in the harness by ``SIGTERM`` or ``SIGHUP`` so running cases are ended first."""


@contextlib.contextmanager
def _signals_end_cases() -> Iterator[None]:
    """Turn ``SIGTERM`` and ``SIGHUP`` into :class:`Terminated` (exit status 128 + signal).

    Python's default for these signals ends the process at once, which would orphan a
    case's process tree (it runs in its own session). ``SIGINT`` already raises
    ``KeyboardInterrupt``. Only the main thread can set handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        print(f"uda bench: {name} received; ending the running case and its processes", file=sys.stderr)
        raise Terminated(128 + signum)

    wanted = [sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig]
    old = {sig: signal.signal(sig, handler) for sig in wanted}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def summarise(case: dict[str, Any]) -> dict[str, Any] | None:
    """Summary statistics of an ``ok`` case's measurements (``None`` otherwise: its time does not count)."""
    if case["status"] != "ok":
        return None
    calls = ([case["cold"]] if case.get("cold") else []) + list(case.get("warm") or [])
    timed = case.get("warm") or ([case["cold"]] if case.get("cold") else [])
    if not timed:
        return None
    wall = np.array([m["wall_s"] for m in timed])
    cpu = np.array([m["cpu_s"] for m in timed])
    med = float(np.median(wall))
    rows = case.get("rows_in") or 0
    out = {
        "wall_s_median": med,
        "wall_s_min": float(wall.min()),
        "wall_s_max": float(wall.max()),
        "wall_s_q1": float(np.percentile(wall, 25)),
        "wall_s_q3": float(np.percentile(wall, 75)),
        "cpu_s_median": float(np.median(cpu)),
        "peak_rss_bytes": int(max(m["peak_rss_bytes"] for m in calls)),
        "warm_peak_rss_bytes": int(max(m["peak_rss_bytes"] for m in timed)),
        "rows_per_s": rows / med if med > 0 else None,
        "cold_wall_s": case["cold"]["wall_s"] if case.get("cold") else None,
        "n_warm": len(case.get("warm") or []),
    }
    if out["cold_wall_s"] is not None and case.get("warm"):
        out["cold_overhead_s"] = out["cold_wall_s"] - med
    return out


def check_answers(cases: list[dict[str, Any]], answers: dict[str, dict[str, np.ndarray]],
                  *, reference_engine: str = "polars") -> None:
    """Cross-engine answer check: mark cases disagreeing with their group's reference ``wrong_answer``."""
    from uda.tasks.base import compare_answers

    groups: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        groups.setdefault(c.pop("_check_key"), []).append(c)
    for group in groups.values():
        ok = [c for c in group if c["status"] == "ok" and c["id"] in answers]
        if len(ok) < 2:
            for c in ok:
                c["answer_check"] = {"status": "unchecked", "reason": "no other engine ran this case"}
            continue
        ref = next((c for c in ok if c["engine"] == reference_engine), ok[0])
        ref["answer_check"] = {"status": "reference"}
        for c in ok:
            if c is ref:
                continue
            if c.get("source_sha256") != ref.get("source_sha256"):
                c["answer_check"] = {"status": "unchecked", "reference": ref["id"],
                                     "reason": "the uda source changed between this case and the "
                                               "reference (edited during the run); rerun on a fixed tree"}
                continue
            problems = compare_answers(answers[ref["id"]], answers[c["id"]],
                                       rtol=c["limits"]["rtol"], atol=c["limits"]["atol"])
            if problems:
                c["status"] = "wrong_answer"
                c["message"] = f"answer differs from {ref['id']}: {problems[0]}"
                c["answer_check"] = {"status": "differs", "reference": ref["id"], "problems": problems[:10]}
            else:
                c["answer_check"] = {"status": "agrees", "reference": ref["id"]}


def _load_answer(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_suite(suite: dict[str, Any], *, out_dir: str | os.PathLike | None = "results",
              engines: list[str] | None = None, schedulers: list[str] | None = None,
              scales: list[str] | None = None, tasks: list[str] | None = None,
              repeats: int | None = None,
              progress: Callable[[str, int, int], None] | None = None,
              log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Path | None]:
    """Run every case of ``suite`` and write the results file.

    Parameters
    ----------
    suite
        As returned by :func:`load_suite`.
    out_dir
        Folder for ``<run_id>.json``; ``None`` writes nothing.
    engines, schedulers, scales, tasks, repeats
        Overrides, see :func:`expand_suite`.
    progress
        Optional ``progress(case_id, done, total)`` called before each case and at the end.
    log
        Optional callable for one-line notes (dataset generation).

    Returns
    -------
    tuple
        ``(results object, path of the results file or None)``.
    """
    cases = expand_suite(suite, engines=engines, schedulers=schedulers, scales=scales,
                         tasks=tasks, repeats=repeats)
    seed = int(suite.get("seed", 1))
    base = Path(suite.get("base_dir", "."))
    datasets_dir = Path(suite.get("datasets_dir", "datasets"))
    if not datasets_dir.is_absolute():
        datasets_dir = Path.cwd() / datasets_dir
    pythonpath = [str((base / p).resolve()) for p in suite.get("pythonpath", [])]
    public_suite = {k: v for k, v in suite.items() if k not in ("cases", "base_dir")}
    public_suite["entries"] = copy.deepcopy(suite.get("cases"))
    res = _results.new_results(suite=public_suite)
    answers: dict[str, dict[str, np.ndarray]] = {}
    ds_errors: dict[str, str] = {}
    records = []
    with _signals_end_cases(), tempfile.TemporaryDirectory(prefix="uda-bench-") as tmp:
        for n, case in enumerate(cases):
            if progress:
                progress(case.id, n, len(cases))
            record: dict[str, Any] = {
                "id": case.id, "task": case.task, "target": case.target, "engine": case.engine,
                "scheduler": case.scheduler, "scale": case.scale, "dataset": None,
                "options": case.options,
                "limits": {"timeout_s": case.timeout_s, "memory_mb": case.memory_mb,
                           "repeats": case.repeats, "warmup": case.warmup, "cold": case.cold,
                           "rtol": case.rtol, "atol": case.atol, "cores": case.cores},
                "_check_key": case.check_key(),
            }
            ds_path = None
            if case.needs_data:
                try:
                    if case.dataset:
                        ds_path = Path(case.dataset)
                        key = str(ds_path)
                        if key not in res["datasets"] and key not in ds_errors:
                            res["datasets"][key] = describe_dataset(ds_path)
                    else:
                        key = f"{case.scale}-seed{seed}"
                        if key not in res["datasets"] and key not in ds_errors:
                            p = ensure_dataset(case.scale, seed=seed, datasets_dir=datasets_dir, log=log)
                            res["datasets"][key] = describe_dataset(p, scale=case.scale, seed=seed)
                    if key in ds_errors:
                        raise UserError(ds_errors[key])
                    ds_path = Path(res["datasets"][key]["path"])
                    record["dataset"] = key
                except (UserError, OSError, json.JSONDecodeError) as exc:
                    ds_errors.setdefault(key, str(exc))
                    record.update(status="error", message=f"dataset: {exc}", cold=None, warm=[],
                                  rows_in=None, bytes_in=None, quality={})
                    record["summary"] = None
                    records.append(record)
                    continue
            work = Path(tmp) / f"case-{n:04d}"
            work.mkdir()
            spec = {"target": case.target, "engine": case.engine, "scheduler": case.scheduler,
                    "dataset": str(ds_path) if ds_path else None, "options": case.options,
                    "warmup": case.warmup, "repeats": case.repeats, "rtol": case.rtol,
                    "atol": case.atol, "pythonpath": pythonpath, "scale": case.scale,
                    "seed": seed, "pass_scale": not case.needs_data and case.scale is not None,
                    "cores": case.cores}
            record.update(_run_child(case, spec, work))
            if record["status"] == "ok":
                answer = _load_answer(work / "answer.npz")
                if answer is not None:
                    answers[case.id] = answer
            records.append(record)
            shutil.rmtree(work, ignore_errors=True)
        if progress:
            progress("", len(cases), len(cases))
    check_answers(records, answers, reference_engine=suite.get("reference_engine", "polars"))
    for r in records:
        r["summary"] = summarise(r)
    res["cases"] = records
    path = _results.write_results(res, out_dir) if out_dir is not None else None
    return res, path
