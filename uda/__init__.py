"""uda: a benchmarking suite for urban big-data analytics."""

__version__ = "0.1.0"
