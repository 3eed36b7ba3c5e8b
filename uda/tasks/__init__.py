"""Analytic tasks, each with a Polars and a Dask implementation."""
