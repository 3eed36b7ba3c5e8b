"""Suites: loading a suite file (or a built-in suite), checking it, and expanding its entries into cases.

A *suite* (TOML or JSON file, or the built-in ``default``) lists case entries; each entry
expands into a matrix of engines x schedulers x scales (:class:`Case`). A suite is checked
as a whole before any case runs: unknown keys, bad numbers, unknown engines, schedulers,
scales or tasks are one-line errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

import psutil

from uda.contract import GENERATED_TABLES
from uda.engines import ENGINES, check_engine, check_scheduler
from uda.errors import UserError
from uda.harness import suites
from uda.scales import PRESETS, resolve_scale
from uda.synth.profiles import resolve_profile
from uda.tasks.registry import TASKS

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


def load_suite(spec: str | os.PathLike) -> dict[str, Any]:
    """Load a suite: ``"default"`` (built in) or a ``.toml`` / ``.json`` file.

    Returns
    -------
    dict
        The suite with ``source`` (where it came from) and ``base_dir`` (folder that
        relative ``pythonpath``/``dataset`` entries are resolved against) added.
    """
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
SCALE_TABLES = tuple(GENERATED_TABLES)
#: Scale overrides that set how the generator works rather than the city's sizes.
GENERATOR_SETTINGS = ("defects", "workers", "chunk-rows", "tables")


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
    if not isinstance(scale, str):
        msg = f"{where}: scales must be names such as \"tiny\" or \"small:sensors=600\", got {_show(scale)}"
        raise UserError(msg)
    preset, overrides = parse_scale(scale)
    if preset not in PRESETS:
        msg = f"{where}: unknown scale {_show(preset)}; choose one of: {', '.join(PRESETS)}"
        raise UserError(msg)
    for key, value in overrides.items():
        if key not in SCALE_OVERRIDES:
            msg = f"{where}: scale {_show(scale)} overrides {key!r}; allowed: {', '.join(SCALE_OVERRIDES)}"
            raise UserError(msg)
        if key == "defects":
            resolve_profile(value)
        elif key == "start":
            continue
        elif key == "tables":
            if value not in SCALE_TABLES:
                msg = f"{where}: scale {_show(scale)}: tables={value} must be one of {', '.join(SCALE_TABLES)}"
                raise UserError(msg)
        elif not value.isdigit() or (key in ("workers", "chunk-rows") and int(value) < 1):
            msg = f"{where}: scale {_show(scale)}: {key}={value} must be a positive whole number"
            raise UserError(msg)
    try:
        resolve_scale(preset, **scale_sizes(overrides))
    except UserError as exc:
        msg = f"{where}: scale {_show(scale)}: {exc}"
        raise UserError(msg) from None
    return scale


def scale_sizes(overrides: dict[str, str]) -> dict[str, int | str]:
    """The :func:`uda.scales.resolve_scale` keywords of a scale's checked overrides.

    ``start`` stays text, the other sizes become whole numbers; the generator's settings
    (:data:`GENERATOR_SETTINGS`) are left out.
    """
    return {key.replace("-", "_"): value if key == "start" else int(value)
            for key, value in overrides.items() if key not in GENERATOR_SETTINGS}


def check_suite_settings(suite: dict[str, Any]) -> None:
    """Check a suite's own settings (not its entries): types and ranges, before any case runs."""
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
        target = custom or (TASKS[task].run if task in TASKS else None)
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
        if custom is None:
            TASKS[task].check_options(options, where=where, skip_unloadable=True)  # before any case runs
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
