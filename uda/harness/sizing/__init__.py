"""Sizing: models of time and memory that follow each task's design, fitted on measured sweeps.

A task's cost is the sum of a few **terms**, each a size of the city or its data that
the task's code really depends on, times a coefficient fitted on measurements:

* time = fixed cost + cost per input row (+ per series, or per assignment iteration on
  the network for route);
* memory = fixed + the block (or group) of rows in flight + the structures that grow
  with the city (per link, per zone pair, per sensor-day), because the tasks stream:
  their memory is not proportional to the rows.

:data:`~uda.harness.sizing.models.DESIGNS` lists the terms per task; ``docs/harness.md`` says why. The coefficients are
non-negative least squares over the measured scales of one task and engine (warm median
wall time, CPU time, peak RSS of the process tree). The error is stated on held-out data:
the model is refitted without the largest measured scale and its prediction for that
scale is compared with the measurement.

The sizes of a measured scale come from its dataset description in the results (rows per
table, nodes, links, zones, districts, files); those of a user's city (N sensors at
interval I over D days, optionally stations and water sites) from the generator's
formulas (street grid, zones, file chunks) and, for the rows a task reads, from the
measured dataset scaled to the city.

Cores come from measurement: the sweep runs every task on one and on two cores, and on a
LocalCluster of one and of two workers; the speed-up gives the parallel fraction
(Amdahl), from which the cores or workers that meet a deadline follow.

The modules:

* :mod:`~uda.harness.sizing.models`: the terms of each task's models and the size formulas
  (street grid, file chunks, flow's blocks, route's network stages), sizes of a measured dataset;
* :mod:`~uda.harness.sizing.fitting`: the points of results files, the fit per term, the held-out
  error, the curves of the report;
* :mod:`~uda.harness.sizing.probes`: route's network stages measured by a probe on the
  target's street network;
* :mod:`~uda.harness.sizing.city`: ``uda size`` for a city (:func:`~uda.harness.sizing.city.size`,
  the duration parser of its options, cores and cluster from the measured efficiency);
* :mod:`~uda.harness.sizing.check`: ``uda size --check``, predicted / measured on unseen results.
"""
