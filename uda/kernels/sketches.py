"""Mergeable sketches in Numba: HyperLogLog distinct counts and a log-bucket quantile sketch.

Both sketches are plain NumPy arrays updated in place, so a partition's sketch is built
where the partition is read and sketches from many partitions merge exactly:

* **HyperLogLog** (Flajolet, Fusy, Gandouet & Meunier, AofA 2007) with ``2**p`` one-byte
  registers; merge is the element-wise maximum. The standard error of the estimate is
  ``1.04 / sqrt(2**p)`` (1.6 % at the default ``p = 12``); small cardinalities use linear
  counting, which is exact in practice below a few hundred distinct values.
* **Log-linear quantile sketch** (fixed buckets, as in HdrHistogram and the fixed-bucket
  form of DDSketch, Masson, Rim & Lee, VLDB 2019): a value's bucket is the top bits of its
  float32 pattern, the exponent plus ``QS_MANTISSA_BITS`` mantissa bits (one shift, no
  logarithm). Each bucket spans ``hi / lo <= 1 + 2**-QS_MANTISSA_BITS``, so its harmonic-mean
  representative is within relative error ``QS_ALPHA = 2**-m / (2 + 2**-m)`` (0.39 % for
  m = 7) of every value in it; negatives use a mirrored set of buckets. Any quantile returned
  lies within ``QS_ALPHA`` of the exact order statistic of the same rank. Merge is the
  element-wise sum of counts, so merging equals a single pass exactly.
"""

from __future__ import annotations

import math

import llvmlite.ir as llvm_ir
import numpy as np
from numba import njit
from numba.core import types as nb_types
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import intrinsic

from uda.kernels.rng import mix64

#: HyperLogLog precision (registers = 2**p).
HLL_P = 12
#: Mantissa bits kept by the quantile sketch's buckets.
QS_MANTISSA_BITS = 7
#: Relative accuracy of the quantile sketch.
QS_ALPHA = 2.0**-QS_MANTISSA_BITS / (2.0 + 2.0**-QS_MANTISSA_BITS)
#: Buckets per sign (8 exponent bits + the kept mantissa bits).
QS_BUCKETS = 1 << (8 + QS_MANTISSA_BITS)
_SHIFT = np.uint32(23 - QS_MANTISSA_BITS)
_F32_MAX = float(np.finfo(np.float32).max)

#: XORed into a key before it is hashed (splitmix64) for a HyperLogLog register.
HLL_SALT = np.uint64(0x2545F4914F6CDD1D)


# ------------------------------------------------------------------------- HyperLogLog


def hll_new(p: int = HLL_P) -> np.ndarray:
    """An empty HyperLogLog sketch with ``2**p`` registers (``4 <= p <= 18``)."""
    if not 4 <= p <= 18:
        msg = f"HyperLogLog precision {p} is outside 4..18"
        raise ValueError(msg)
    return np.zeros(1 << p, dtype=np.uint8)


@njit(inline="always", cache=True)
def hll_update(registers: np.ndarray, key: np.uint64, p: int) -> None:
    """Add one uint64 ``key`` to ``registers`` (``2**p`` of them) in place: index from the top ``p`` bits
    of its hash, rank from the other ``64 - p`` bits (1 + their leading zeros, one count-leading-zeros
    instruction, at most ``64 - p + 1``)."""
    h = mix64(key ^ HLL_SALT)
    idx = np.int64(h >> np.uint64(64 - p))
    rank = min(np.int64(leading_zeros(h << np.uint64(p))) + 1, 64 - p + 1)
    if rank > registers[idx]:
        registers[idx] = rank


@njit(cache=True, nogil=True)
def hll_add(registers: np.ndarray, keys: np.ndarray) -> None:
    """Add integer ``keys`` (any int dtype; hashed with splitmix64) to ``registers`` in place."""
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    for i in range(keys.shape[0]):
        hll_update(registers, np.uint64(np.int64(keys[i])), p)


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


def qs_new() -> np.ndarray:
    """An empty quantile sketch: ``QS_BUCKETS`` counts for positive values, then as many for negative."""
    return np.zeros(2 * QS_BUCKETS, dtype=np.int64)


@njit(inline="always", cache=True)
def qs_bucket(x: float, tmp: np.ndarray, bits: np.ndarray) -> int:
    """Bucket of finite ``x``: the top bits of its float32 pattern (sign, exponent, QS_MANTISSA_BITS).

    ``tmp`` is a one-element float32 scratch array and ``bits`` its uint32 view: a bit cast
    without a function call, so the mapping costs a shift.
    """
    a = abs(x)
    if a > _F32_MAX:
        a = _F32_MAX
    tmp[0] = a
    b = np.int64(bits[0] >> _SHIFT)
    return b if x >= 0 else QS_BUCKETS + b


@intrinsic
def _f32_bits(typingctx, x):
    """The uint32 bit pattern of float ``x`` rounded to float32 (an LLVM bit cast, no trip through memory)."""
    if not isinstance(x, nb_types.Float):
        return None
    sig = nb_types.uint32(x)

    def codegen(context, builder, signature, args):
        v = args[0]
        if signature.args[0] != nb_types.float32:
            v = builder.fptrunc(v, llvm_ir.FloatType())  # rounds to nearest, as a store into float32
        return builder.bitcast(v, llvm_ir.IntType(32))

    return sig, codegen


@njit(inline="always", cache=True)
def qs_bucket_of(x: float) -> int:
    """:func:`qs_bucket` without the scratch arrays (same bucket for every finite ``x``)."""
    a = abs(x)
    if a > _F32_MAX:
        a = _F32_MAX
    b = np.int64(_f32_bits(a) >> _SHIFT)
    return b if x >= 0 else QS_BUCKETS + b


@njit(cache=True, nogil=True)
def qs_add(counts: np.ndarray, values: np.ndarray) -> int:
    """Add finite ``values`` to the sketch ``counts`` in place; returns how many were added."""
    tmp = np.empty(1, np.float32)
    bits = tmp.view(np.uint32)
    added = 0
    for i in range(values.shape[0]):
        x = np.float64(values[i])
        if not np.isfinite(x):
            continue
        added += 1
        counts[qs_bucket(x, tmp, bits)] += 1
    return added


@njit(cache=True, nogil=True)
def qs_merge(into: np.ndarray, other: np.ndarray) -> None:
    """Merge sketch ``other`` into ``into`` (element-wise sum), in place."""
    for i in range(into.shape[0]):
        into[i] += other[i]


def qs_count(counts: np.ndarray) -> int:
    """Number of values in the sketch."""
    return int(counts.sum())


def qs_representatives() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-negative bucket: lower bound, upper bound (a bucket holds ``[lo, hi)``) and representative."""
    inf_bits = np.uint64(0x7F800000)  # exponent 255: never used (values are clamped to the float32 maximum)
    idx = np.arange(QS_BUCKETS, dtype=np.uint64)
    lo = np.minimum(idx << np.uint64(_SHIFT), inf_bits).astype(np.uint32).view(np.float32).astype(np.float64)
    hi = np.minimum((idx + np.uint64(1)) << np.uint64(_SHIFT), inf_bits).astype(np.uint32).view(np.float32)
    hi = hi.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rep = np.where(lo + hi > 0, 2.0 * lo * hi / (lo + hi), 0.0)  # harmonic mean
    rep = np.where(np.isfinite(hi), rep, lo)  # the top bucket holds the clamped float32 maximum
    return lo, hi, rep


def qs_quantile(counts: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """Quantiles ``q`` (0..1) from the sketch; NaN when it is empty.

    The estimate for ``q`` is the representative of the bucket holding the order statistic of
    rank ``floor(q * (n - 1))`` (0-based): within relative error :data:`QS_ALPHA` of it (plus
    2**-24 for rounding float64 inputs to float32), for magnitudes from 2**-126 (smaller ones,
    zeros included, come back as 0) up to the float32 maximum (larger ones are clamped).
    """
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    n = int(counts.sum())
    if n == 0:
        return np.full(q.shape, np.nan)
    _, _, rep = qs_representatives()
    values = np.concatenate([-rep[::-1], rep])
    ordered = np.concatenate([counts[QS_BUCKETS:][::-1], counts[:QS_BUCKETS]])
    cum = np.cumsum(ordered)
    ranks = np.floor(q * (n - 1)).astype(np.int64)
    pos = np.searchsorted(cum, ranks, side="right")
    return values[np.minimum(pos, values.size - 1)]
