"""Reports of results files: a headline, relative tables, plots; Markdown, HTML, text, CSV, JSON.

A report answers first what a reader acts on (which engine is fastest at each scale and by
how much, how good the best method's answer is against its baseline, whether the engines
agreed), then shows the relative table (each engine's time as a ratio to the best, as
ClickBench does), the scaling plots with the sizing fit drawn through them, and every case.
Two results files give a side-by-side comparison with the ratio and confidence interval
of :func:`uda.harness.compare.compare_results`.

The modules, in the order a report is made:

* :mod:`~uda.harness.report.inputs` reads a results file of ``uda bench`` (any suite, a
  sweep included) or the output of ``uda run flow|route|water|utilisation --out`` (or
  their ``--json``): :func:`~uda.harness.report.inputs.load_report_input`;
* :mod:`~uda.harness.report.text` turns values into display strings (escaping, labels,
  units) and gives one row per case;
* :mod:`~uda.harness.report.headline` computes the headline (fastest engine, answer
  quality, agreement) and the relative table; :mod:`~uda.harness.report.comparison` the
  ratios of two runs;
* :mod:`~uda.harness.report.plots` draws the PNG plots;
* :mod:`~uda.harness.report.tables` gives the text tables, the CSV and the JSON object;
* :mod:`~uda.harness.report.documents` renders and writes the Markdown and HTML pages
  (``write_report``, ``write_comparison``).
"""
