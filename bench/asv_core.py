"""asv: counter-based random numbers and the order-independent table checksum."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from uda.kernels.checksum import fold_float, fold_int, table_hash_sum
from uda.kernels.rng import normal_pair, stream_key, subkey, uniform


@njit(nogil=True)
def _uniform_sum(key, n):
    s = 0.0
    for i in range(n):
        s += uniform(key, np.uint64(i))
    return s


@njit(nogil=True)
def _normal_sum(key, n):
    s = 0.0
    for i in range(n):
        z0, z1 = normal_pair(key, np.uint64(i))
        s += z0 + z1
    return s


@njit(nogil=True)
def _subkey_sum(key, n):
    s = np.uint64(0)
    for i in range(n):
        s += subkey(key, np.uint64(i))
    return s


class RandomDraws:
    """Draws from the counter-based streams (inlined into a loop, as the generators use them)."""

    params = [[1_000_000, 4_000_000]]
    param_names = ["draws"]

    def setup(self, n):
        self.key = stream_key(1, "bench")
        _uniform_sum(self.key, 10)  # compile (module-local loops are not cached)
        _normal_sum(self.key, 10)
        _subkey_sum(self.key, 10)

    def time_uniform(self, n):
        _uniform_sum(self.key, n)

    def time_normal_pairs(self, n):
        _normal_sum(self.key, n)

    def time_subkeys(self, n):
        _subkey_sum(self.key, n)


class Checksum:
    """Row-hash folding of numeric columns and the whole-table content hash."""

    params = [[100_000, 2_000_000]]
    param_names = ["rows"]

    def setup(self, n):
        rng = np.random.default_rng(5)
        self.f = rng.normal(size=n).astype(np.float32)
        self.i = rng.integers(0, 1 << 40, n)
        self.table = pa.table({
            "sensor_id": pa.array(rng.integers(0, 5000, n).astype(np.int32)),
            "ts": pa.array(np.arange(n, dtype=np.int64) * 300_000, pa.timestamp("ms")),
            "flow": pa.array(self.f), "speed": pa.array(rng.uniform(5, 90, n).astype(np.float32)),
        })
        h = np.zeros(4, np.uint64)
        fold_float(h, self.f[:4], np.uint64(1))  # compile / load cache
        fold_int(h, self.i[:4], np.uint64(1))
        table_hash_sum(self.table.slice(0, 4))

    def time_fold_float32(self, n):
        fold_float(np.zeros(n, np.uint64), self.f, np.uint64(7))

    def time_fold_int64(self, n):
        fold_int(np.zeros(n, np.uint64), self.i, np.uint64(7))

    def time_table_hash_sum(self, n):
        table_hash_sum(self.table)

    def peakmem_table_hash_sum(self, n):
        table_hash_sum(self.table)
