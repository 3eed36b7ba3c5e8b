"""The water task (``uda run water``) on Polars or Dask: :func:`run` on a generated dataset,
:func:`run_table` on an external table.

- :mod:`~uda.tasks.water.dataset`: :func:`run`, reading a generated dataset and its truth.
- :mod:`~uda.tasks.water.table`: :func:`run_table`, the train/test protocol on any table.
- :mod:`~uda.tasks.water.options`: option names, the train fraction, windows per sampling step.
- :mod:`~uda.tasks.water.steps`: the engine-neutral per-block step and assembling results.
- :mod:`~uda.tasks.water.polars`, :mod:`~uda.tasks.water.dask`: the two engines.
- :mod:`~uda.tasks.water.outputs`: summary, result tables, ``summary.json`` and the plot.

The domain code (guidelines, indices, detectors, mass balance, scoring) is in :mod:`uda.waterq`.
"""

from uda.tasks.water.dataset import run
from uda.tasks.water.table import run_table

__all__ = ["run", "run_table"]
