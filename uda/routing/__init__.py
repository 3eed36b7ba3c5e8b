"""Route optimisation's domain, engine-free: what ``uda run route`` computes, apart from how.

=================  ==============================================================================
module             holds
=================  ==============================================================================
``network``        the generated city's road graph, zones and sensors (``CityGraph``, ``read_city``)
``assignment``     option checks, ``RouteAssignment`` (labelled result, summary), TNTP runs
``travel_times``   link travel times per slot from sensor aggregates, the slot rule, the peak slot
``od``             OD demand: gravity model, smart-card trip patterns, an OD matrix file
``sites``          p-median site choice on zone-to-zone travel times
=================  ==============================================================================

The Numba kernels (shortest paths, assignment, p-median) are in :mod:`uda.kernels`; the
Polars and Dask aggregations, the task's ``run`` and its output files in :mod:`uda.tasks.route`.
"""
