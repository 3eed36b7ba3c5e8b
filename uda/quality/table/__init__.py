"""``uda run quality --table``: profile any table (CSV or Parquet, local or an fsspec URL) in one streaming scan.

=====================================  ==============================================================
``uda.quality.table.schema``           declared or inferred schema (TOML), durations, the needs spec
``uda.quality.table.reading``          open the table, column types, the time column, typed batches
``uda.quality.table.state``            per-group arrays, exact hash sets and counters, column states
``uda.quality.table.profile``          :class:`~uda.quality.table.profile.TableProfiler` (one batch at
                                       a time) and :func:`~uda.quality.table.profile.profile_table`
``uda.quality.table.report``           the profile from the scan state: columns, time, groups, plot bins
``uda.quality.table.funnel``           collected -> valid -> standardised -> usable for one analytic
=====================================  ==============================================================

``uda run quality --table FILE`` reads the table in batches (Polars streaming) and passes each
batch once through the Numba kernels of :mod:`uda.kernels.profile` and :mod:`uda.kernels.timeline` and
the sketches of :mod:`uda.kernels.sketches`: the timeline and each numeric column on worker threads, while the main
thread reads and codes the next batch. Memory holds two batches, per-group counters, the sketches
and the exact-duplicate structures described below, not the table. Measures, per column and per group:

* completeness: nulls (null, NaN, and for CSV the pandas missing tokens), sentinels (declared,
  or detected among :data:`SENTINEL_CANDIDATES`: a negative candidate in a column whose other
  values are all >= 0, a positive one above twice every other value), longest run of nulls;
* validity: values outside the declared range (schema, or uda's contract when the column maps
  to a known parameter), values not in the allowed set, cells that do not parse as the column's
  type (CSV), and for text columns the mix of cell classes (integer, number, date, boolean, text);
* uniqueness: rows repeating an earlier row exactly, rows repeating an earlier value of the key;
* timeliness of the time column per group: step (the most frequent positive difference between
  consecutive times), gaps (differences of at least 1.5 steps), the longest gap, missing steps,
  irregular steps (not a multiple of the step), duplicated and out-of-order times;
* stuck runs (``stuck_min`` identical consecutive values, zeros exempt by default), robust
  outliers (beyond 3 inter-quartile ranges from the quartiles), distinct values (HyperLogLog) and
  quantiles (log-bucket sketch), with their error bounds.

Exactness. Counts are exact. Time duplicates and exact duplicate rows come from the timeline in
file order when every group's times are non-decreasing (the usual delivery; only the rows at a
repeated time and each group's first row at its last time are hashed); otherwise the
timeline is re-read sorted by (group, time) by Polars' streaming engine (one more read of two
columns). A key other than (group, time) and tables without a time column use an exact hash
set of 64-bit row hashes (8 bytes per distinct key); a hash collision, probability below
n^2 / 2^65, could only under-count.
"""
