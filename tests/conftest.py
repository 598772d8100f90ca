import itertools

import jax
import numpy as np
import pytest


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key per call (equinox's test idiom)."""
    counter = itertools.count()
    return lambda: jax.random.key(next(counter))


def snapshot(mab):
    """Every array the model holds, copied to NumPy, plus its PRNG key's data."""
    leaves = [np.array(x) for x in jax.tree.leaves(mab.state)]
    return leaves, np.array(jax.random.key_data(mab._key))


def assert_unchanged(before, mab):
    after = snapshot(mab)
    assert len(before[0]) == len(after[0])
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before[1], after[1])
