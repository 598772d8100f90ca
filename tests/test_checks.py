"""The test command's own checks are on: jaxtyping annotations are enforced and doctests collected.

Negative controls: each call below would run fine without the checker (the code casts or
broadcasts), so only an active jaxtyping check can make it raise.
"""

import importlib.metadata
import os
import re

import jax
import jax.numpy as jnp
import pytest
from jaxtyping import TypeCheckError

import bandits_jax
from bandits_jax import core
from bandits_jax.config import CmabConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_jaxtyping_checks_dtypes(jit):
    state = core.init(CmabConfig(n_features=2), 2)
    logits = jax.jit(core.posterior_mean_logits) if jit else core.posterior_mean_logits
    assert logits(state, jnp.ones((3, 2))).shape == (3, 2)
    # The body would cast an int context, but the annotation says Float (under jit: at trace time).
    with pytest.raises(TypeCheckError, match="context"):
        logits(state, jnp.ones((3, 2), jnp.int32))


def test_jaxtyping_checks_shared_shapes():
    count = jnp.zeros(3, jnp.int32)
    assert core.saturating_add(count, jnp.ones(3, jnp.int32)).shape == (3,)
    # (3,) + (1,) broadcasts fine, but both are annotated Int[Array, "*n"]: same shape required.
    with pytest.raises(TypeCheckError, match="add"):
        core.saturating_add(count, jnp.ones(1, jnp.int32))


def test_doctests_are_collected(request):
    assert request.config.option.doctestmodules
    assert "bandits_jax" in request.config.getini("testpaths")


def test_one_version_source():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        (declared,) = re.findall(r'^version = "([^"]+)"$', f.read(), re.M)
    assert bandits_jax.__version__ == importlib.metadata.version("bandits_jax") == declared
