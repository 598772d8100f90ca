import contextlib
import gc
import itertools
import logging

import jax
import numpy as np
import pytest

_COMPILED = "Finished XLA compilation of "


@contextlib.contextmanager
def count_compiles():
    """Every XLA compilation inside the block, by name (``jit(_update)``, ...), as JAX itself
    reports it through the public ``jax.log_compiles``: whatever actually runs is counted, eager
    operations included."""
    names = []

    class _Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith(_COMPILED):
                names.append(message[len(_COMPILED) :].rsplit(" in ", 1)[0])

    handler = _Collect(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key per call (equinox's test idiom)."""
    counter = itertools.count()
    return lambda: jax.random.key(next(counter))


def snapshot(mab):
    """Every array the model holds (its padded actions included), copied to NumPy, plus its PRNG
    key's data."""
    leaves = [np.array(x) for x in jax.tree.leaves(mab._state)]
    return leaves, np.array(jax.random.key_data(mab._key))


def assert_unchanged(before, mab):
    after = snapshot(mab)
    assert len(before[0]) == len(after[0])
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before[1], after[1])


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every XLA:CPU executable keeps a few
    memory mappings of its own, and the whole suite compiles enough programs (eager per-primitive
    ones in the jit == eager tests included) to pass the kernel's limit of 65,530 mappings per
    process, where XLA segfaults while compiling; no module alone comes near it."""
    yield
    jax.clear_caches()
    gc.collect()
