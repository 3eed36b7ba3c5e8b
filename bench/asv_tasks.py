"""asv: whole task pipelines (read, transform, kernels, answer) on the tiny dataset, per engine."""

from __future__ import annotations

import importlib.util
import inspect
import os

from .asv_data import first_of, tiny_dataset

try:
    from uda.tasks.registry import TASKS as REGISTRY
except ImportError:  # up to 9825fce, before the task registry: uda.tasks.base.TASKS
    REGISTRY = None

if REGISTRY is not None:
    #: Task name -> its ``run`` as ``"module:function"``.
    ENTRIES = {name: t.run for name, t in REGISTRY.items()}
    #: The answer-quality measure tracked for each task (a key of ``TaskResult.quality``):
    #: each task's ``quality`` in the registry.
    QUALITY = {name: t.quality for name, t in REGISTRY.items()}
else:
    from uda.tasks.base import TASKS as ENTRIES  # name -> "module:function" up to 9825fce

    # bench/asv_tasks.py's own mapping up to 9825fce (the registry's ``quality`` now)
    QUALITY = {"route": "relative_gap", "flow": "ridge_mae_h1", "water": "multivariate_f1",
               "standardise": "traffic_integrated_share", "utilisation": "drift_f1"}

#: Every registered task whose module exists in this revision.
TASKS = [name for name, entry in ENTRIES.items()
         if importlib.util.find_spec(entry.partition(":")[0]) is not None]
ENGINES = ["polars", "dask"]


def _run(path: str, task: str, engine: str):
    options = {"scheduler": "threads"} if engine == "dask" else {}
    if REGISTRY is not None:
        # leave the shared dataset as generated
        return REGISTRY[task](path, engine=engine, **options, **REGISTRY[task].keep_data_options())
    # Before the registry the same work: the run function itself, with write=False where it takes
    # one (standardise, utilisation: the registry's keep_data_options now).
    run = first_of(ENTRIES[task])
    if "write" in inspect.signature(run).parameters:
        options["write"] = False
    return run(path, engine=engine, **options)


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
