"""Data quality: the rules, the one-scan metrics of a generated dataset, and the profile of any table.

==========================  ===================================================================
``uda.quality.rules``       the record rules (range, duplicate, stuck, skew, late, drift, reference)
                            and the funnel stages, applied per row by standardisation
``uda.quality.feeds``       department feeds as standardisation reads them: feed dictionary, parsing
``uda.quality.scan``        ``uda run utilisation``'s quality scan: one pass per table and district,
                            Polars threads or Dask tasks over Numba (:mod:`uda.kernels.quality`)
``uda.quality.metrics``     the ISO/IEC 25012 / 25024 measures from a merged scan state
``uda.quality.table``       ``uda run quality --table``: the streaming profile of any CSV/Parquet table
==========================  ===================================================================

The sketches (HyperLogLog, the log-bucket quantile sketch) are Numba kernels in
:mod:`uda.kernels.sketches`. Nothing is imported here, so importing a submodule stays light.
"""
