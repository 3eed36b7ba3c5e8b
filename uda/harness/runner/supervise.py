"""Running a suite: each case's process started under its limits and watched (time, memory of its
process tree, signals), its events read back, the answers checked and the results file written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from uda.errors import UserError
from uda.harness.measure import TreeSampler, kill_tree
from uda.harness.results import new_results, write_results
from uda.harness.runner.datasets import describe_dataset, ensure_dataset
from uda.harness.runner.suite import Case, expand_suite
from uda.harness.runner.summary import check_answers, summarise

#: Seconds between two checks of a running case (its exit, its process tree's memory and time).
_POLL_S = 0.05


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
    cmd = [sys.executable, "-c", "import os, sys; from uda.harness.runner.child import child_main; "
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
    res = new_results(suite=public_suite)
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
    path = write_results(res, out_dir) if out_dir is not None else None
    return res, path
