"""Counter-based random numbers: every draw is a pure function of (key, counter).

Generators key their streams by (seed, table, unit) and index draws by position, so the
data do not depend on how the work is split into chunks, threads or processes.
``splitmix64``'s finaliser is the mixing function (Steele, Lea & Flood, OOPSLA 2014).
:func:`uniform_lanes` and :func:`subkeys` are the array forms for vectorised generators
(the department feeds' defects); :func:`rng_for` is a sequential NumPy generator seeded
from the same (seed, name) for small model inputs (the city, standards, event lists).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 2.0 * np.pi


@njit(inline="always", cache=True)
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: a bijective 64-bit mixer."""
    x = x ^ (x >> _S30)
    x = x * _C1
    x = x ^ (x >> _S27)
    x = x * _C2
    return x ^ (x >> _S31)


@njit(inline="always", cache=True)
def draw_u64(key: np.uint64, counter: np.uint64) -> np.uint64:
    """64 random bits for position ``counter`` of stream ``key``."""
    return mix64(key + (counter + np.uint64(1)) * _GOLDEN)


@njit(inline="always", cache=True)
def uniform(key: np.uint64, counter: np.uint64) -> float:
    """A uniform draw in the open interval (0, 1)."""
    return ((draw_u64(key, counter) >> _S11) + 0.5) * _INV53


@njit(inline="always", cache=True)
def normal(key: np.uint64, counter: np.uint64) -> float:
    """A standard normal draw (Box–Muller on two counter-based uniforms)."""
    c = counter * np.uint64(2)
    u1 = uniform(key, c)
    u2 = uniform(key, c + np.uint64(1))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(inline="always", cache=True)
def normal_pair(key: np.uint64, counter: np.uint64) -> tuple[float, float]:
    """Two independent standard normal draws from one Box–Muller transform."""
    c = counter * np.uint64(2)
    r = np.sqrt(-2.0 * np.log(uniform(key, c)))
    theta = _TWO_PI * uniform(key, c + np.uint64(1))
    return r * np.cos(theta), r * np.sin(theta)


@njit(cache=True)
def subkey(key: np.uint64, unit: np.uint64) -> np.uint64:
    """The key of sub-stream ``unit`` (a sensor, a day, a site) of stream ``key``."""
    return mix64(key ^ mix64(unit + _GOLDEN))


@njit(cache=True, nogil=True)
def uniform_lanes(keys: np.ndarray, counters: np.ndarray, lane: np.uint64) -> np.ndarray:
    """Uniform (0, 1) draws, one per row: :func:`uniform` of ``(keys[i], counters[i] * 16 + lane)``.

    The array form used by vectorised generators (up to 16 lanes of draws per counter).
    """
    out = np.empty(keys.size)
    for i in range(keys.size):
        out[i] = uniform(keys[i], counters[i] * np.uint64(16) + lane)
    return out


@njit(cache=True, nogil=True)
def subkeys(key: np.uint64, units: np.ndarray) -> np.ndarray:
    """:func:`subkey` of each of ``units`` (uint64) of stream ``key``."""
    out = np.empty(units.size, np.uint64)
    for i in range(units.size):
        out[i] = subkey(key, units[i])
    return out


def _seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """The ``SeedSequence`` of the named stream for ``seed`` (the name hashed to 32 bits)."""
    tag = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")
    return np.random.SeedSequence([int(seed), tag])


def stream_key(seed: int, name: str) -> np.uint64:
    """Root key of the named stream for ``seed`` (from ``numpy.random.SeedSequence``)."""
    state = _seed_sequence(seed, name).generate_state(2, dtype=np.uint32)
    return np.uint64((int(state[0]) << 32) | int(state[1]))


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A sequential NumPy generator for the named stream of ``seed`` (small model inputs:
    the city, standards, event lists), seeded as :func:`stream_key`."""
    return np.random.default_rng(_seed_sequence(seed, name))


def unit_key(seed: int, name: str, unit: int) -> np.uint64:
    """Key of sub-stream ``unit`` of the named stream for ``seed``."""
    return subkey(stream_key(seed, name), np.uint64(unit))
