"""Benchmark harness: runner, results schema, report, compare, sizing."""
