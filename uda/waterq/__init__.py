"""Water quality: the domain code behind ``uda run water``.

- :mod:`uda.waterq.guidelines`: parameters, guideline limits and their sources, plume signature.
- :mod:`uda.waterq.settings`: :class:`~uda.waterq.settings.WaterOptions`.
- :mod:`uda.waterq.block`: the sites' series (:class:`~uda.waterq.block.Block`), train/test split.
- :mod:`uda.waterq.indices`: CCME and weighted-arithmetic WQI, exceedance episodes.
- :mod:`uda.waterq.detectors`: the detector registry and the signature detectors.
- :mod:`uda.waterq.generic`: the detectors over every parameter, fitted on a training part.
- :mod:`uda.waterq.trees`: the supervised detector's gradient-boosted trees.
- :mod:`uda.waterq.events`: scoring alarms against events, per event and per sample.
- :mod:`uda.waterq.massbalance`: upstream-downstream mass balance.
- :mod:`uda.waterq.plot`: the site plot.

The compiled kernels are in :mod:`uda.kernels.wqi`, :mod:`uda.kernels.detect` and
:mod:`uda.kernels.residuals`; the Polars and Dask pipelines in :mod:`uda.tasks.water`.
"""
