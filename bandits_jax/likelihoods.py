"""Reward models: the one place that knows what a reward is.

A likelihood is a small static (frozen, hashable) object that a policy carries: the log-likelihood
of a reward given a score on the link scale, the mean reward of a score, a reward draw, the reward
domain the object API validates against, and the sufficient-statistic counters kept per action.
Policies, strategies and the simulation go through it; nothing else assumes Bernoulli rewards.

Examples:
    >>> import jax.numpy as jnp
    >>> from bandits_jax.likelihoods import Bernoulli
    >>> lik = Bernoulli()
    >>> float(lik.mean(jnp.array(0.0)))
    0.5
    >>> stats = lik.init_stats(2)
    >>> stats = lik.update_stats(stats, jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[True, True], [True, False]]))
    >>> stats.n_successes.tolist(), stats.n_failures.tolist()
    ([2, 2], [2, 1])
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Real

__all__ = ["Bernoulli", "BernoulliStats", "saturating_add"]


class BernoulliStats(NamedTuple):
    """Per-action counters of a Bernoulli reward, from 1 as in PyBandits (``Beta(1, 1)``)."""

    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]


def saturating_add(count: Int[Array, "*n"], add: Int[Array, "*n"]) -> Int[Array, "*n"]:
    """``count + add`` for ``add >= 0``, held at the dtype's maximum instead of wrapping around
    (int32 counters would turn negative after 2**31 events and make Beta draws NaN)."""
    top = jnp.iinfo(count.dtype).max
    add = add.astype(count.dtype)
    return jnp.where(count > top - add, top, count + add)


@dataclasses.dataclass(frozen=True)
class Bernoulli:
    """Binary rewards on a logit: ``y ~ Bernoulli(sigmoid(score))``. Values in [0, 1] act as soft
    labels in the log-likelihood; the object API accepts 0/1 only."""

    name = "bernoulli"

    def log_prob(self, y: Real[Array, "*n"], score: Float[Array, "*n"]) -> Float[Array, "*n"]:
        # Bernoulli(logits).log_prob(y) = y * logits - softplus(logits), as numpyro computes it.
        return y * score - jax.nn.softplus(score)

    def mean(self, score: Float[Array, "*n"]) -> Float[Array, "*n"]:
        return jax.nn.sigmoid(score)

    def sample(self, key: PRNGKeyArray, mean: Float[Array, "*n"]) -> Int[Array, "*n"]:
        """Rewards drawn given their mean (a probability)."""
        return (jax.random.uniform(key, mean.shape, mean.dtype) < mean).astype(jnp.int32)

    def init_stats(self, n_actions: int) -> BernoulliStats:
        # NumPy, not jnp: a new action count compiles nothing.
        ones = jnp.asarray(np.ones((n_actions,), np.int32))
        return BernoulliStats(ones, ones)

    def update_stats(
        self,
        stats: BernoulliStats,
        y: Real[Array, "n_actions rows"],
        valid: Bool[Array, "n_actions rows"],
        ok: Bool[Array, " n_actions"] | None = None,
    ) -> BernoulliStats:
        """Add each action's successes and failures from its grouped rows (saturating); an action
        whose ``ok`` is False keeps its counts."""
        n_rows = valid.sum(axis=1).astype(jnp.int32)
        successes = jnp.round(jnp.where(valid, y, 0).sum(axis=1)).astype(jnp.int32)
        if ok is not None:
            n_rows, successes = jnp.where(ok, n_rows, 0), jnp.where(ok, successes, 0)
        return BernoulliStats(
            saturating_add(stats.n_successes, successes),
            saturating_add(stats.n_failures, n_rows - successes),
        )

    def check_rewards(self, rewards: Any, name: str = "rewards") -> np.ndarray:
        """Host-side validation for the object API: binary rewards as an int array."""
        from bandits_jax import _validation

        return _validation.as_rewards(rewards, name)
