"""Run a benchmark suite: each case in its own process, with limits, repeats and answer checks.

A *suite* (TOML or JSON file, or the built-in ``default``) lists case entries; each entry
expands into a matrix of engines x schedulers x scales. Every case runs in a fresh Python
process that imports the task, makes one cold call (first call, Numba compile included
only with ``cold = "compile"``), ``warmup`` discarded calls and ``repeats`` warm calls, each
measured with :mod:`uda.harness.measure`. The parent watches the child's process tree and
kills it when it passes ``timeout_s`` or ``memory_mb``. Cases of the same task, scale and
options on different engines must give the same answer
(:func:`uda.tasks.base.compare_answers`); a case that disagrees with the reference engine
is a ``wrong_answer`` and its time does not count.

The modules:

* :mod:`~uda.harness.runner.suite`: the suite spec (``load_suite``, ``expand_suite``, scale checks);
* :mod:`~uda.harness.runner.datasets`: the dataset cache (a scale's folder, generated with
  :func:`uda.generate.generate` in a process of its own when missing, and its record);
* :mod:`~uda.harness.runner.child`: the case's process and its event protocol;
* :mod:`~uda.harness.runner.supervise`: supervision (limits, signals) and ``run_suite``;
* :mod:`~uda.harness.runner.summary`: summary statistics of a case and the answer check.
"""
