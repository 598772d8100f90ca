"""The library's own samplers against exact distributions (scipy): the loop-light Beta draw of the
Beta-Bernoulli policy (Marsaglia-Tsang gamma variables, bandits_jax._random)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits_jax import _random

N = 20_000
# Kolmogorov-Smirnov at level 1e-4 for N draws: D < sqrt(-log(1e-4 / 2) / (2 N)) ~= 0.0157; a wrong
# sampler (see the negative control) is far outside it.
D_CRIT = float(np.sqrt(-np.log(1e-4 / 2) / (2 * N)))


@pytest.mark.parametrize("a, b", [(1, 1), (1, 50), (3, 7), (2, 1), (40, 3), (1000, 20000), (1e6, 1e6)])
def test_beta_draws_follow_the_beta_distribution(a, b):
    probs, logits = jax.jit(lambda k: _random.beta_ge1(k, jnp.float32(a), jnp.float32(b), (N,)))(
        jax.random.key(7)
    )
    p = np.asarray(probs, np.float64)
    assert stats.kstest(p, stats.beta(a, b).cdf).statistic < D_CRIT
    np.testing.assert_allclose(np.asarray(logits), np.log(p) - np.log1p(-p), rtol=1e-3, atol=1e-3)


def test_the_ks_check_can_fail():
    probs, _ = _random.beta_ge1(jax.random.key(7), jnp.float32(3), jnp.float32(7), (N,))
    assert stats.kstest(np.asarray(probs, np.float64), stats.beta(3, 8).cdf).statistic > D_CRIT


def test_extreme_counts_stay_finite_and_ordered():
    a = jnp.array([2.0**31 - 1, 1.0, 2.0**31 - 1])
    b = jnp.array([1.0, 2.0**31 - 1, 2.0**31 - 1])
    probs, logits = jax.jit(lambda k: _random.beta_ge1(k, a, b, (1000, 3)))(jax.random.key(0))
    assert bool(jnp.isfinite(logits).all())
    assert bool((logits[:, 0] > 15).all() & (logits[:, 1] < -15).all())
    np.testing.assert_allclose(np.asarray(probs[:, 2]).mean(), 0.5, atol=1e-3)


def test_gamma_matches_under_jit_and_eagerly():
    """One accept decision per element (no recomputation that could disagree)."""
    alpha = jnp.full((5000,), 20000.0)
    jitted = jax.jit(_random.gamma_ge1)(jax.random.key(0), alpha)
    assert bool((jitted > 0).all())
    assert stats.kstest(np.asarray(jitted, np.float64), stats.gamma(20000.0).cdf).statistic < float(
        np.sqrt(-np.log(1e-4 / 2) / (2 * 5000))
    )
