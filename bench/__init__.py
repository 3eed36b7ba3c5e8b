"""asv benchmarks of uda's computational core (``asv_*.py``) and stand-alone bench scripts (``bench_*.py``)."""
