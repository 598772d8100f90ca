"""The uniform-random policy: the baseline every policy must beat. Its scores are independent
uniform draws, so the strategy's pick is uniform over the allowed actions; its state is only the
likelihood's counters.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import Uniform
    >>> policy = Uniform()
    >>> pred = policy.predict(jax.random.key(0), policy.init(4), jnp.zeros((1000, 2)))
    >>> sorted(set(pred.actions.tolist()))
    [0, 1, 2, 3]
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax import _random
from bandits_jax.likelihoods import Bernoulli, BernoulliStats, Gaussian, GaussianStats, SoftBernoulliStats
from bandits_jax.policies.base import (
    CountingPolicy,
    Prediction,
    select,
)
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["Uniform"]


@dataclasses.dataclass(frozen=True)
class Uniform(CountingPolicy):
    """Uniform random choice among the allowed actions (it only counts rewards)."""

    likelihood: Bernoulli | Gaussian = Bernoulli()

    def predict(
        self,
        key: PRNGKeyArray,
        state: BernoulliStats | SoftBernoulliStats | GaussianStats,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        return _predict(key, state, context.shape[0], strategy, action_mask)


@partial(jax.jit, static_argnums=(2,))
def _predict(
    key, state: BernoulliStats | SoftBernoulliStats | GaussianStats, n_rows: int, strategy, action_mask
) -> Prediction:
    draw_key, strategy_key = jax.random.split(key)
    n_actions = state.n_successes.shape[0]
    scores = _random.uniform(draw_key, (n_rows, n_actions), jnp.float32)
    logits = jnp.log(scores) - jnp.log1p(-scores)
    return select(logits, scores, jnp.full_like(scores, 0.5), strategy_key, strategy, action_mask)
