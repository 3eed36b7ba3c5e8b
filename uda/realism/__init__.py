"""Fidelity report (``uda realism``): the statistics of a sensor table that decide which forecaster wins.

A *signature* summarises a :class:`~uda.forecasting.panel.Panel` (series × regular time grid) by
per-series statistics, each then given as median and interquartile range over series:

- how much of the variance a daily profile explains (time of day; time of day × day type),
- how long deviations from that profile persist (autocorrelation at lag 1 step, 1 h, 1 day),
- whether the last value or the time-of-day average forecasts better (MAE ratios at
  15/30/60 min, chronological 80/20 split, average fitted on the first 80 %),
- how strongly series move with their neighbours,
- how data go missing (share, run lengths), the value distribution relative to the
  series mean, and the weekday/weekend contrast.

:func:`compare` sets a subject signature beside a reference one and gives a verdict per
statistic against a band around the reference (see :data:`STATS` and docs/realism.md).
Committed signatures of real tables live in ``uda/data/realism/*.json``.

Modules: :mod:`~uda.realism.stats` (the statistics, their bands, per-series computation),
:mod:`~uda.realism.signature` (a panel's signature, resampling), :mod:`~uda.realism.reference`
(committed references, bands, verdicts) and :mod:`~uda.realism.plot` (the PNG).
"""
