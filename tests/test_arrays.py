"""Array helpers against NumPy."""

import numpy as np
import pytest

from uda.arrays import repeated_key, unique_values


@pytest.mark.parametrize("a", [np.array([], np.int64), np.array([5]), np.array([3, 1, 3, 2, 1, 9]),
                               np.random.default_rng(0).integers(-50, 50, (20, 30))])
def test_unique_values_equals_numpy(a):
    np.testing.assert_array_equal(unique_values(a), np.unique(a))


def test_repeated_key():
    assert repeated_key(np.array([4, 0, 2]), 5) is None
    assert repeated_key(np.array([4, 0, 2, 4, 0]), 5) == 0
