"""Forecasting: panels and calendar, the model registry, the models, the protocol and the one evaluator.

Modules, bottom up: :mod:`~uda.forecasting.panel` (``Panel``, ``Calendar``, ``Context``),
:mod:`~uda.forecasting.neighbours` (adjacency, neighbour signals),
:mod:`~uda.forecasting.models` (the ``Forecaster`` interface and the naive baselines),
:mod:`~uda.forecasting.holtwinters`, :mod:`~uda.forecasting.ridge` (the ridge family),
:mod:`~uda.forecasting.registry` (alias -> configured instance),
:mod:`~uda.forecasting.protocol` (splits, origins, scoring a block, metrics) and
:mod:`~uda.forecasting.evaluation` (block by block; a panel is the one-block case).
The Numba kernels are in :mod:`uda.kernels.forecast` and :mod:`uda.kernels.linear`.
"""
