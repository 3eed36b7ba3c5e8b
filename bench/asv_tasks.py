"""asv: whole task pipelines (read, transform, kernels, answer) on the tiny dataset, per engine."""

from __future__ import annotations

import importlib
import os

from .asv_data import tiny_dataset

TASKS = ["route", "flow", "water"]
ENGINES = ["polars", "dask"]
#: The answer-quality measure tracked for each task (a key of ``TaskResult.quality``).
QUALITY = {
    "route": ("relative_gap", "relative gap"),
    "flow": ("ridge_mae_h1", "veh/h"),
    "water": ("multivariate_f1", "F1"),
}


def _run(path: str, task: str, engine: str):
    module = importlib.import_module(f"uda.tasks.{task}")
    options = {"scheduler": "threads"} if engine == "dask" else {}
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
        return _run(path, task, engine).quality[QUALITY[task][0]]

    track_quality.unit = "quality (see bench/asv_tasks.py QUALITY)"
