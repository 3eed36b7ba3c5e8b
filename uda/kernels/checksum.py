"""Order-independent content checksum of a table (a multiset hash of its rows).

Each row hashes to 64 bits by folding its column values through ``mix64``; the table's
checksum is the sum of the row hashes modulo 2**64. The sum does not depend on row order
or on how rows are split across files, so two generations with different chunk sizes or
worker counts can be compared, and partial sums from files or partitions simply add up.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from uda.kernels.rng import mix64

_NULL = np.uint64(0x6A09E667F3BCC908)


@njit(cache=True, nogil=True)
def fold_column(row_hash: np.ndarray, values: np.ndarray, salt: np.uint64) -> None:
    """Fold one column (as uint64 bit patterns) into the running row hashes, in place."""
    for i in range(row_hash.shape[0]):
        row_hash[i] = mix64(row_hash[i] ^ mix64(values[i] + salt))


@njit(cache=True, nogil=True)
def fold_float(row_hash: np.ndarray, values: np.ndarray, salt: np.uint64) -> None:
    """Fold a float column (any width, hashed as float64 bits, -0.0 as 0.0) in place."""
    tmp = np.empty(1, np.float64)
    bits = tmp.view(np.uint64)
    for i in range(row_hash.shape[0]):
        x = np.float64(values[i])
        tmp[0] = 0.0 if x == 0.0 else x
        row_hash[i] = mix64(row_hash[i] ^ mix64(bits[0] + salt))


@njit(cache=True, nogil=True)
def fold_int(row_hash: np.ndarray, values: np.ndarray, salt: np.uint64) -> None:
    """Fold an integer column (hashed as its int64 two's-complement bits) in place."""
    for i in range(row_hash.shape[0]):
        row_hash[i] = mix64(row_hash[i] ^ mix64(np.uint64(np.int64(values[i])) + salt))


@njit(cache=True, nogil=True)
def sum_hashes(row_hash: np.ndarray) -> np.uint64:
    """Sum of the final row hashes modulo 2**64."""
    acc = np.uint64(0)
    for i in range(row_hash.shape[0]):
        acc += mix64(row_hash[i])
    return acc


def _column_bits(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column's values as uint64 bit patterns (strings via a stable hash)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        enc = pc.dictionary_encode(col)
        words = np.array(
            [
                int.from_bytes(hashlib.blake2b(str(s).encode(), digest_size=8).digest(), "little")
                for s in enc.dictionary.to_pylist()
            ],
            dtype=np.uint64,
        )
        idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        bits = words[idx] if len(words) else np.zeros(len(col), dtype=np.uint64)
    else:
        if pa.types.is_date32(t):
            col = col.cast(pa.int32())
        elif pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_duration(t):
            col = col.cast(pa.int64())
        elif pa.types.is_boolean(t):
            col = col.cast(pa.uint8())
        arr = col.fill_null(0).to_numpy(zero_copy_only=False) if col.null_count else col.to_numpy(zero_copy_only=False)
        arr = np.ascontiguousarray(arr)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
            arr = np.where(arr == 0.0, 0.0, arr)  # -0.0 == 0.0
            bits = arr.view(np.uint64).copy()
        else:
            bits = arr.astype(np.int64).view(np.uint64).copy()
    if col.null_count:
        mask = col.is_null().to_numpy(zero_copy_only=False)
        bits[mask] = _NULL
    return bits


def table_hash_sum(table: pa.Table) -> int:
    """Sum (mod 2**64) of the row hashes of ``table``; add sums of parts to combine."""
    n = table.num_rows
    if n == 0:
        return 0
    row_hash = np.zeros(n, dtype=np.uint64)
    for j, name in enumerate(table.column_names):
        salt = np.uint64(int.from_bytes(hashlib.blake2b(f"{j}:{name}".encode(), digest_size=8).digest(), "little"))
        col = table.column(name)
        values = _plain_numeric(col)
        if values is None:
            fold_column(row_hash, _column_bits(col), salt)
        elif values.dtype.kind == "f":
            fold_float(row_hash, values, salt)
        else:
            fold_int(row_hash, values, salt)
    return int(sum_hashes(row_hash))


def _plain_numeric(col: pa.ChunkedArray) -> np.ndarray | None:
    """A null-free numeric or temporal column as a NumPy array without copying, else None."""
    t = col.type
    if col.null_count or not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)):
        return None
    if pa.types.is_float16(t):
        return None
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    values = arr.to_numpy(zero_copy_only=False)
    return values.view(np.int64) if pa.types.is_timestamp(t) else values


def finish_checksum(hash_sum: int, rows: int, schema: dict[str, str]) -> str:
    """The table checksum from its combined row-hash sum, row count and schema."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sorted(schema.items())).encode())
    h.update(int(hash_sum % (1 << 64)).to_bytes(8, "little"))
    h.update(int(rows).to_bytes(8, "little"))
    return "mh1-" + h.hexdigest()
