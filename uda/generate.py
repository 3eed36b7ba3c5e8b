"""``uda generate``: build the city, generate its data in parallel chunks, write a dataset.

The model inputs and chunk generators are :class:`uda.synth.plan.Plan`'s; department
feeds with defects are written by :mod:`uda.synth.feeds`; what the dataset holds is the
contract of :mod:`uda.contract`. This module runs the chunks on a thread pool and writes
the dataset (:class:`uda.store.DatasetWriter`, manifest last).
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.parquet as pq

from uda import __version__
from uda.city import build_city
from uda.contract import (
    FEED_TABLES,
    GENERATED_TABLES,
    SPECS,
    chunk_stem,
    partitioned_by,
    range_meta,
)
from uda.errors import UserError
from uda.scales import Scale
from uda.store import DatasetWriter, FilePart, write_part
from uda.synth import feeds
from uda.synth.plan import CHUNK_TABLES, Plan
from uda.synth.profiles import DefectProfile, resolve_profile
from uda.synth.standards import dictionary_table
from uda.versions import package_versions

DEFAULT_CHUNK_ROWS = 2_000_000
GENERATOR_VERSION = 1
#: Whether :func:`generate` has moved the objects of the modules it loads into the
#: collector's permanent generation in this process (done once; see :func:`_freeze_loaded`).
_froze = False


def _freeze_loaded() -> None:
    """Keep the cyclic garbage collector off the objects that exist now, once per process.

    The first generation in a process imports Numba's typing and lowering registries,
    SciPy's BLAS check and pandas (through pyarrow): millions of long-lived objects that
    every later full collection, and the one at interpreter exit, walks again. That walk
    is most of the 0.2–0.4 s a ``uda generate`` process spends exiting. ``gc.freeze``
    leaves them alone; they stay alive and are still freed by reference counting.
    """
    global _froze
    if not _froze:
        _froze = True
        gc.freeze()


def manifest_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape generated data (the manifest's ``versions``).

    From the installed metadata (:func:`uda.versions.package_versions`): generating does not import Polars.
    """
    v = package_versions(("numpy", "numba", "pyarrow", "polars"))
    return {"uda": __version__, "python": platform.python_version(), "numpy": v["numpy"], "numba": v["numba"],
            "pyarrow": v["pyarrow"], "polars": v["polars"] or "not installed"}


#: Parquet encodings of the generated tables beyond ``store.PARQUET_OPTIONS``: dictionary
#: pages only for columns with few distinct values, timestamps and card ids delta-encoded.
#: The content (and so every checksum) is what the default encodings hold; the files are
#: smaller and cost less CPU to write (docs/performance.md, Generation).
_DELTA = "DELTA_BINARY_PACKED"
ENCODINGS: dict[str, dict[str, Any]] = {
    "traffic": {"use_dictionary": ["sensor_id", "flow", "speed", "occupancy"], "column_encoding": {"ts": _DELTA}},
    "taps": {"use_dictionary": ["station_id", "direction"], "column_encoding": {"card_id": _DELTA, "ts": _DELTA}},
    "trips": {"use_dictionary": ["origin", "dest"],
              "column_encoding": {"card_id": _DELTA, "t_in": _DELTA, "t_out": _DELTA}},
}


def _alternate(*lists: list) -> list:
    """Items of ``lists`` taken in turn (a, b, c, a, b, c, ...) until all are used."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def generate(out: str | os.PathLike, *, scale: Scale, seed: int, workers: int | None = None,
             chunk_rows: int = DEFAULT_CHUNK_ROWS, force: bool = False,
             tables: tuple[str, ...] = tuple(GENERATED_TABLES),
             progress: Callable[[str, int, int], None] | None = None,
             defects: str | DefectProfile = "none") -> dict[str, Any]:
    """Generate a dataset into ``out`` atomically.

    Parameters
    ----------
    out
        Dataset folder to create.
    scale
        Sizes (see :mod:`uda.scales`).
    seed
        Random seed; the same seed and scale give the same table checksums whatever
        ``workers`` and ``chunk_rows``.
    workers
        Parallel chunk writers (threads; the Numba kernels release the GIL). Default: CPU count.
    chunk_rows
        Target rows per chunk (and per file); bounds memory to about
        ``workers * chunk_rows * 60`` bytes.
    force
        Replace an existing dataset at ``out``.
    tables
        Sensor tables to generate (the city and truth tables are always written).
    progress
        Optional callback ``progress(stage, done_rows, total_rows)``.
    defects
        ``"none"`` (the canonical tables in ``raw/``), ``"realistic"``, ``"severe"``, a
        ``.toml`` profile path or a :class:`uda.synth.profiles.DefectProfile`. With defects the
        canonical tables move to ``truth/`` (``true_traffic``, ``true_taps``, ``true_water``)
        and each district's feeds are written to ``raw/feeds/`` (see :mod:`uda.synth.feeds`).

    Returns
    -------
    dict
        The manifest written.

    Notes
    -----
    The cyclic garbage collector is off while this runs (the caller's setting is
    restored), and the first call in a process freezes the objects of the modules loaded
    by then (``gc.freeze``), so that neither the run nor the interpreter's exit walks
    them again (docs/performance.md, Generation).
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        msg = f"--workers {workers} is impossible; use 1 or more"
        raise UserError(msg)
    if chunk_rows < 1000:
        msg = f"--chunk-rows {chunk_rows} is too small; use at least 1000"
        raise UserError(msg)
    unknown = set(tables) - set(GENERATED_TABLES)
    if unknown:
        msg = f"unknown table(s) {', '.join(sorted(unknown))}; choose from {', '.join(GENERATED_TABLES)}"
        raise UserError(msg)
    profile = defects if isinstance(defects, DefectProfile) else resolve_profile(defects)
    t0 = time.perf_counter()
    # no cyclic collections while generating: the run makes few reference cycles, and the
    # collections that the first Numba dispatch and the imports under it would trigger
    # walk every object of the loaded modules (docs/performance.md, Generation)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(out, scale=scale, seed=seed, workers=workers, chunk_rows=chunk_rows, force=force,
                         tables=tables, progress=progress, profile=profile, t0=t0)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(out: str | os.PathLike, *, scale: Scale, seed: int, workers: int, chunk_rows: int, force: bool,
              tables: tuple[str, ...], progress: Callable[[str, int, int], None] | None,
              profile: DefectProfile, t0: float) -> dict[str, Any]:
    """:func:`generate` after its arguments are checked."""
    with DatasetWriter(out, force=force) as w:
        city = build_city(scale, seed)
        plan = Plan(city, seed, defer=True)
        _freeze_loaded()
        setup = feeds.feed_setup(city, profile, seed, tables) if profile.active else None

        by_kind = {kind: [(kind, r, rows) for r, rows in plan.chunk_jobs(kind, chunk_rows)] if kind in tables else []
                   for kind in CHUNK_TABLES}
        # traffic needs only the road model, so its first chunks start at once; the rest of
        # the jobs alternate kinds, so that the passenger chunks (partly Python) run beside
        # traffic kernels that release the GIL rather than beside each other; the water
        # chunks, the smallest jobs, come last, so the workers finish close together (any
        # other kind of CHUNK_TABLES runs after the passenger and traffic chunks, before water)
        first, rest = by_kind["traffic"][:workers], by_kind["traffic"][workers:]
        others = [job for kind, kind_jobs in by_kind.items()
                  if kind not in ("traffic", "passenger", "water") for job in kind_jobs]
        jobs = first + _alternate(rest, by_kind["passenger"]) + others + by_kind["water"]
        total = sum(j[2] for j in jobs)

        def run(job: tuple[str, Any, int]) -> list[tuple[str, FilePart]]:
            kind, (a, b), _ = job
            out: list[tuple[str, FilePart]] = []
            for name, tab in plan.chunk(kind, a, b).items():
                stem = chunk_stem(name, a)
                if setup is not None and name in FEED_TABLES:  # true rows, district feeds, defects
                    out += feeds.write_chunk(w.root, tab, name, stem, setup)
                    continue
                # beside department feeds, trips keep pyarrow's default encodings
                options = ENCODINGS.get(name, {}) if setup is None else {}
                rel = f"{'raw' if name in SPECS else 'truth'}/{name}/{stem}.parquet"
                out.append((name, write_part(w.root, rel, tab, meta=range_meta(name, a, b - 1), **options)))
            return out

        parts: dict[str, list[FilePart]] = {}
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = []
        try:
            futures += [pool.submit(run, j) for j in first]
            # meanwhile, on this thread: the passenger and water inputs, then their jobs
            plan.prepare_passenger()
            plan.prepare_water()
            futures += [pool.submit(run, j) for j in jobs[len(first):]]
            small = list(city.tables.items()) + list(plan.truth_tables().items())
            small_parts = [(name, write_part(w.root, f"{'city' if name in city.tables else 'truth'}/{name}.parquet",
                                             tab), tab.schema) for name, tab in small]
            if setup is not None:
                dic = dictionary_table(setup.standards)
                small_parts.append(("feed_dictionary", write_part(w.root, "raw/feed_dictionary.parquet", dic),
                                    dic.schema))
            for name, part, schema in small_parts:
                w.add_table(name, [part], schema)
            versions = manifest_versions()  # package metadata look-ups, while the chunks run
            done = 0
            results = []
            for job, fut in zip(jobs, futures, strict=True):
                results.append(fut.result())
                done += job[2]
                if progress is not None:
                    progress(job[0], done, total)
        except BaseException:
            # a failed chunk, a full disk or Ctrl-C: drop the queued chunks instead of
            # generating them all before the error reaches the user
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        # tables in the manifest in the same order whatever the order the jobs ran in
        kinds = list(by_kind)
        for i in sorted(range(len(jobs)), key=lambda i: (kinds.index(jobs[i][0]), jobs[i][1])):
            for name, part in results[i]:
                parts.setdefault(name, []).append(part)
        for name, plist in parts.items():
            schema = pq.read_schema(w.root / plist[0].path)
            w.add_table(name, plist, schema, partitioned_by=partitioned_by(name))
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "params": {**scale.as_dict(), "seed": seed, "grid_side": scale.grid_side,
                       **{f"{name}_interval_s": spec.interval_s for name, spec in SPECS.items() if spec.interval_s},
                       "defects": profile.name, "tables": list(tables),
                       **({"defect_profile": profile.as_dict()} if profile.active else {})},
            "run": {"workers": workers, "chunk_rows": chunk_rows, "seconds": round(time.perf_counter() - t0, 3),
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
            "versions": versions,
        }
        w.commit(manifest)
    manifest["tables"] = w.tables
    return manifest

