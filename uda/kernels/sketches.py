"""Mergeable sketches in Numba: HyperLogLog distinct counts and a log-bucket quantile sketch.

Both sketches are plain NumPy arrays updated in place, so a partition's sketch is built
where the partition is read and sketches from many partitions merge exactly:

* **HyperLogLog** (Flajolet, Fusy, Gandouet & Meunier, AofA 2007) with ``2**p`` one-byte
  registers; merge is the element-wise maximum. The standard error of the estimate is
  ``1.04 / sqrt(2**p)`` (1.6 % at the default ``p = 12``); small cardinalities use linear
  counting, which is exact in practice below a few hundred distinct values.
* **Log-bucket quantile sketch** (the fixed-bucket form of DDSketch, Masson, Rim & Lee,
  VLDB 2019): value ``x > 0`` goes to bucket ``ceil(log_gamma(x))`` with
  ``gamma = (1 + alpha) / (1 - alpha)``; negatives mirror that, zeros have their own count.
  Any quantile returned lies within relative error ``alpha`` of the exact order statistic
  of the same rank, for values with ``MIN_ABS <= |x| <= MAX_ABS`` (outside they are clamped).
  Merge is the element-wise sum of counts, so merging equals a single pass exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from uda.kernels.rng import mix64

#: HyperLogLog precision (registers = 2**p).
HLL_P = 12
#: Relative accuracy of the quantile sketch.
QS_ALPHA = 0.005
#: Smallest and largest magnitudes the quantile sketch resolves (others are clamped).
MIN_ABS = 1e-6
MAX_ABS = 1e12

_SALT = np.uint64(0x2545F4914F6CDD1D)


# ------------------------------------------------------------------------- HyperLogLog


def hll_new(p: int = HLL_P) -> np.ndarray:
    """An empty HyperLogLog sketch with ``2**p`` registers (``4 <= p <= 18``)."""
    if not 4 <= p <= 18:
        msg = f"HyperLogLog precision {p} is outside 4..18"
        raise ValueError(msg)
    return np.zeros(1 << p, dtype=np.uint8)


@njit(cache=True, nogil=True)
def hll_add(registers: np.ndarray, keys: np.ndarray) -> None:
    """Add integer ``keys`` (any int dtype; hashed with splitmix64) to ``registers`` in place."""
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    shift = np.uint64(64 - p)
    for i in range(keys.shape[0]):
        h = mix64(np.uint64(np.int64(keys[i])) ^ _SALT)
        idx = np.int64(h >> shift)
        w = h << np.uint64(p)
        # rank = position of the leftmost 1-bit of the remaining 64 - p bits, 1-based
        rank = 1
        top = np.uint64(1) << np.uint64(63)
        while rank <= 64 - p and (w & top) == np.uint64(0):
            w = w << np.uint64(1)
            rank += 1
        if rank > registers[idx]:
            registers[idx] = rank


@njit(cache=True, nogil=True)
def hll_merge(into: np.ndarray, other: np.ndarray) -> None:
    """Merge sketch ``other`` into ``into`` (element-wise maximum), in place."""
    for i in range(into.shape[0]):
        if other[i] > into[i]:
            into[i] = other[i]


def hll_estimate(registers: np.ndarray) -> float:
    """Estimated number of distinct keys added to ``registers``."""
    m = registers.shape[0]
    alpha = 0.7213 / (1.0 + 1.079 / m) if m >= 128 else {16: 0.673, 32: 0.697, 64: 0.709}[m]
    z = float(np.sum(np.ldexp(1.0, -registers.astype(np.int64))))
    est = alpha * m * m / z
    zeros = int(np.count_nonzero(registers == 0))
    if est <= 2.5 * m and zeros > 0:
        return m * math.log(m / zeros)
    return est


def hll_error(registers: np.ndarray) -> float:
    """The standard relative error ``1.04 / sqrt(m)`` of this sketch's estimate."""
    return 1.04 / math.sqrt(registers.shape[0])


# ------------------------------------------------------------------------- quantile sketch


def qs_bins(alpha: float = QS_ALPHA) -> int:
    """Buckets per sign needed to cover ``MIN_ABS..MAX_ABS`` at relative accuracy ``alpha``."""
    gamma = (1.0 + alpha) / (1.0 - alpha)
    return int(math.ceil(math.log(MAX_ABS / MIN_ABS) / math.log(gamma))) + 2


def qs_new(alpha: float = QS_ALPHA) -> np.ndarray:
    """An empty quantile sketch: ``[zeros, positive buckets..., negative buckets...]`` counts."""
    if not 0.0 < alpha < 0.5:
        msg = f"quantile sketch accuracy {alpha} is outside (0, 0.5)"
        raise ValueError(msg)
    return np.zeros(1 + 2 * qs_bins(alpha), dtype=np.int64)


@njit(cache=True, nogil=True)
def qs_add(counts: np.ndarray, values: np.ndarray, alpha: float) -> int:
    """Add finite ``values`` to the sketch ``counts`` in place; returns how many were added."""
    nb = (counts.shape[0] - 1) // 2
    lg = math.log((1.0 + alpha) / (1.0 - alpha))
    off = math.log(MIN_ABS) / lg
    added = 0
    for i in range(values.shape[0]):
        x = np.float64(values[i])
        if not np.isfinite(x):
            continue
        added += 1
        a = abs(x)
        if a < MIN_ABS * 0.5:
            counts[0] += 1
            continue
        if a < MIN_ABS:
            a = MIN_ABS
        elif a > MAX_ABS:
            a = MAX_ABS
        b = int(math.ceil(math.log(a) / lg - off))
        if b < 0:
            b = 0
        elif b >= nb:
            b = nb - 1
        if x > 0:
            counts[1 + b] += 1
        else:
            counts[1 + nb + b] += 1
    return added


@njit(cache=True, nogil=True)
def qs_merge(into: np.ndarray, other: np.ndarray) -> None:
    """Merge sketch ``other`` into ``into`` (element-wise sum), in place."""
    for i in range(into.shape[0]):
        into[i] += other[i]


def qs_count(counts: np.ndarray) -> int:
    """Number of values in the sketch."""
    return int(counts.sum())


def qs_quantile(counts: np.ndarray, q: float | np.ndarray, alpha: float = QS_ALPHA) -> np.ndarray:
    """Quantiles ``q`` (0..1) from the sketch; NaN when it is empty.

    The estimate for ``q`` is the bucket value holding the order statistic of rank
    ``floor(q * (n - 1))`` (0-based), within relative error ``alpha`` of it.
    """
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    n = int(counts.sum())
    if n == 0:
        return np.full(q.shape, np.nan)
    nb = (counts.shape[0] - 1) // 2
    gamma = (1.0 + alpha) / (1.0 - alpha)
    lg = math.log(gamma)
    off = math.log(MIN_ABS) / lg
    idx = np.arange(nb)
    # a bucket b holds (gamma**(b+off-1), gamma**(b+off)]; its representative 2*g**(b+off)/(g+1)
    rep = 2.0 * np.exp((idx + off) * lg) / (gamma + 1.0)
    values = np.concatenate([-rep[::-1], [0.0], rep])
    ordered = np.concatenate([counts[1 + nb:][::-1], counts[:1], counts[1:1 + nb]])
    cum = np.cumsum(ordered)
    ranks = np.floor(q * (n - 1)).astype(np.int64)
    pos = np.searchsorted(cum, ranks, side="right")
    return values[np.minimum(pos, values.size - 1)]
