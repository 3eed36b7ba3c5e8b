"""Numba kernels: pure functions of NumPy arrays, ``cache=True``."""
