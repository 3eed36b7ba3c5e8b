"""asv: whole task pipelines (read, transform, kernels, answer) on the tiny dataset, per engine."""

from __future__ import annotations

import importlib.util
import os

from uda.tasks.registry import TASKS as REGISTRY

from .asv_data import tiny_dataset

#: Every registered task whose module exists in this revision.
TASKS = [name for name, t in REGISTRY.items()
         if importlib.util.find_spec(t.run.partition(":")[0]) is not None]
ENGINES = ["polars", "dask"]
#: The answer-quality measure tracked for each task (a key of ``TaskResult.quality``):
#: each task's ``quality`` in the registry.
QUALITY = {name: t.quality for name, t in REGISTRY.items()}


def _run(path: str, task: str, engine: str):
    options = {"scheduler": "threads"} if engine == "dask" else {}
    # leave the shared dataset as generated
    return REGISTRY[task](path, engine=engine, **options, **REGISTRY[task].keep_data_options())


class Tasks:
    """Each registered task's ``run`` on the tiny dataset (seed 1), Polars and Dask."""

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
        return _run(path, task, engine).quality[QUALITY[task]]

    track_quality.unit = "quality (Task.quality in uda/tasks/registry.py)"
