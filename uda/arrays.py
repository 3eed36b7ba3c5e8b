"""Integer-array helpers where NumPy's own are slow on many distinct values.

NumPy 2.4's ``np.unique(a)`` (values only) hashes integer arrays and takes seconds on
millions of distinct values (3.7 s for 3 M, 28 s for 17 M, against 0.2 s and 1.5 s by
sorting); with ``return_counts`` or ``return_inverse`` it sorts and is fast. These helpers
give the same answers by sorting or by one pass over a mask.
"""

from __future__ import annotations

import numpy as np


def unique_values(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``a`` (as ``np.unique(a)``), by sorting."""
    s = np.sort(np.ravel(a))
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def repeated_key(key: np.ndarray, size: int) -> int | None:
    """The smallest value that occurs more than once in ``key`` (integers in ``[0, size)``),
    or None, in one pass over a ``size``-long mask."""
    seen = np.zeros(size, dtype=bool)
    seen[key] = True
    if int(np.count_nonzero(seen)) == key.size:
        return None
    return int(np.flatnonzero(np.bincount(key, minlength=size) > 1)[0])
