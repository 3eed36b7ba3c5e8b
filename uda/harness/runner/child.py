"""A case's own process: import the task, open the data, make the cold, warm-up and warm calls, measure
each, and report them as JSON events (one line each) for the supervising process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from uda.engines import connect_client, local_cluster
from uda.harness.measure import TreeSampler, measure_call
from uda.harness.results import jsonable, source_digest


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
    fh.write(json.dumps(event, default=jsonable, allow_nan=True) + "\n")
    fh.flush()


def _worker_pids(address: str) -> Callable[[], list[int]]:
    """Process ids of a distributed cluster's workers running on this machine."""
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
    clusters = contextlib.ExitStack()
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
                n = int(scheduler.split(":", 1)[1] or 2)
                # no dashboard: its server would run in the measured process tree
                cluster = clusters.enter_context(local_cluster(n, dashboard=False, silence_logs=logging.WARNING))
                scheduler = cluster.scheduler_address
            elif scheduler and "://" in scheduler:
                extra = _worker_pids(scheduler)
            _emit(fh, event="ready", setup_s=time.perf_counter() - t0, source=source_digest())
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
            clusters.close()
    return 0
