"""asv: whole task pipelines (read, transform, kernels, answer) on the tiny dataset, per engine."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os

from uda.tasks.base import TASKS as REGISTRY

from .asv_data import tiny_dataset

#: Every registered task whose module exists in this revision.
TASKS = [t for t in REGISTRY if importlib.util.find_spec(f"uda.tasks.{t}") is not None]
ENGINES = ["polars", "dask"]
#: The answer-quality measure tracked for each task (a key of ``TaskResult.quality``).
QUALITY = {
    "route": "relative_gap",
    "flow": "ridge_mae_h1",
    "water": "multivariate_f1",
    "standardise": "traffic_integrated_share",
    "utilisation": "drift_f1",
}


def _run(path: str, task: str, engine: str):
    module = importlib.import_module(f"uda.tasks.{task}")
    options = {"scheduler": "threads"} if engine == "dask" else {}
    if "write" in inspect.signature(module.run).parameters:
        options["write"] = False  # leave the shared dataset as generated
    return module.run(path, engine=engine, **options)


class Tasks:
    """``uda.tasks.<task>.run`` on the tiny dataset (seed 1), Polars and Dask."""

    params = [TASKS, ENGINES]
    param_names = ["task", "engine"]
    timeout = 600

    def setup_cache(self):
        return tiny_dataset(os.getcwd())

    def setup(self, path, task, engine):
        _run(path, task, engine)  # compile / load cache, warm the file cache

    def time_run(self, path, task, engine):
        _run(path, task, engine)

    def peakmem_run(self, path, task, engine):
        _run(path, task, engine)

    def track_quality(self, path, task, engine):
        if task not in QUALITY:
            msg = f"add the quality measure of task {task!r} to QUALITY in bench/asv_tasks.py"
            raise KeyError(msg)
        return _run(path, task, engine).quality[QUALITY[task]]

    track_quality.unit = "quality (QUALITY in bench/asv_tasks.py)"
