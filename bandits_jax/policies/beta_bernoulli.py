"""Beta-Bernoulli Thompson sampling (PyBandits' ``SmabBernoulli``): the context-free conjugate
policy. Each action's success probability has the exact posterior ``Beta(n_successes,
n_failures)``, counted from ``Beta(1, 1)``; the context only says how many rows to draw for.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import BetaBernoulli, Feedback
    >>> policy = BetaBernoulli()
    >>> state = policy.init(2)
    >>> fb = Feedback(jnp.zeros((3, 0)), jnp.array([0, 0, 1]), jnp.array([1, 1, 0]), jnp.ones(3, bool))
    >>> state, _ = policy.update(jax.random.key(0), state, fb)
    >>> state.n_successes.tolist(), state.n_failures.tolist()
    ([3, 1], [1, 2])
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax import _random
from bandits_jax.likelihoods import Bernoulli, BernoulliStats, SoftBernoulliStats, counts
from bandits_jax.policies.base import (
    CountingPolicy,
    Prediction,
    select,
)
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["BetaBernoulli"]


@dataclasses.dataclass(frozen=True)
class BetaBernoulli(CountingPolicy):
    """Beta-Bernoulli Thompson sampling; its state is the likelihood's counters, which are the
    posterior's parameters."""

    likelihood: Bernoulli = Bernoulli()

    def predict(
        self,
        key: PRNGKeyArray,
        state: BernoulliStats | SoftBernoulliStats,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """One Beta draw per row (of ``context``) and action; the context's values are unused."""
        return _predict(key, state, context.shape[0], strategy, action_mask)


@partial(jax.jit, static_argnums=(2,))
def _predict(
    key, state: BernoulliStats | SoftBernoulliStats, n_rows: int, strategy, action_mask
) -> Prediction:
    draw_key, strategy_key = jax.random.split(key)
    a, b = counts(state)  # float32; soft rewards' fractions included
    # counts start at 1, so Marsaglia-Tsang without jax.random.gamma's general machinery (exact;
    # a fraction of the compile cost, see _random.gamma_ge1); logits from log X - log Y stay finite
    probs, logits = _random.beta_ge1(draw_key, a, b, (n_rows, a.shape[0]))
    mean = jnp.broadcast_to(a / (a + b), probs.shape)
    return select(logits, probs, mean, strategy_key, strategy, action_mask)
