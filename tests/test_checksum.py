"""The content checksum is a multiset hash: order- and split-independent, value-sensitive."""

import numpy as np
import pyarrow as pa

from uda.kernels.checksum import finish_checksum, table_hash_sum


def _table(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": pa.array(rng.integers(0, 50, n), pa.int32()),
        "x": pa.array(rng.normal(size=n).astype(np.float32)),
        "name": pa.array([f"s{i % 7}" for i in range(n)]),
        "ts": pa.array(rng.integers(0, 10**12, n), pa.timestamp("ms")),
    })


def test_order_and_split_independent():
    t = _table()
    whole = table_hash_sum(t)
    perm = np.random.default_rng(1).permutation(t.num_rows)
    assert table_hash_sum(t.take(perm)) == whole
    parts = table_hash_sum(t.slice(0, 333)) + table_hash_sum(t.slice(333))
    assert parts % (1 << 64) == whole


def test_sensitive_to_values_and_columns():
    t = _table()
    changed = t.set_column(1, "x", pa.array(np.r_[t["x"].to_numpy()[:-1], np.float32(9.5)]))
    assert table_hash_sum(changed) != table_hash_sum(t)
    swapped = t.select(["x", "id", "name", "ts"])
    assert table_hash_sum(swapped) != table_hash_sum(t)
    schema = {"a": "int32"}
    assert finish_checksum(1, 2, schema) != finish_checksum(1, 3, schema)


def test_nulls_hash_differently_from_zero():
    a = pa.table({"v": pa.array([0.0, 1.0])})
    b = pa.table({"v": pa.array([None, 1.0], pa.float64())})
    assert table_hash_sum(a) != table_hash_sum(b)
