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

from bandits_jax import _random

__all__ = [
    "Bernoulli",
    "BernoulliStats",
    "SoftBernoulli",
    "SoftBernoulliStats",
    "counts",
    "host_counts",
    "saturating_add",
]


class BernoulliStats(NamedTuple):
    """Per-action counters of a Bernoulli reward, from 1 as in PyBandits (``Beta(1, 1)``)."""

    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]


class SoftBernoulliStats(NamedTuple):
    """Per-action counters of soft rewards in [0, 1] (:class:`SoftBernoulli`): a row of reward
    ``r`` adds ``r`` to the successes and ``1 - r`` to the failures, as PyBandits counts them.
    Each count is held as a whole part (int32, from 1, saturating like :class:`BernoulliStats`)
    plus a fraction in [0, 1) (float32), so it stays exact to float32's resolution of the
    fraction however large it grows (a float32 count would stop moving at 2**24).
    :func:`counts` gives the totals."""

    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]
    frac_successes: Float[Array, " n_actions"]
    frac_failures: Float[Array, " n_actions"]


def counts(stats: Any) -> tuple[Float[Array, " n_actions"], Float[Array, " n_actions"]]:
    """The success and failure totals of either kind of counters, as float32 on the device (for
    use inside compiled code; :func:`host_counts` reads them exactly on the host)."""
    s, f = stats.n_successes.astype(jnp.float32), stats.n_failures.astype(jnp.float32)
    if isinstance(stats, SoftBernoulliStats):
        s, f = s + stats.frac_successes, f + stats.frac_failures
    return s, f


def host_counts(stats: Any) -> tuple[np.ndarray, np.ndarray]:
    """The success and failure totals on the host: int64 for whole counts, float64 (whole part
    plus fraction, the fraction in its shortest decimal form) for soft ones."""
    s, f = np.asarray(stats.n_successes, np.int64), np.asarray(stats.n_failures, np.int64)
    if isinstance(stats, SoftBernoulliStats):
        return s + _shortest(stats.frac_successes), f + _shortest(stats.frac_failures)
    return s, f


def _shortest(fractions: Any) -> np.ndarray:
    """float32 fractions as the float64 of their shortest decimal form (0.05, not the float32's
    0.0499999523...), which reads back as the same float32."""
    flat = [float(str(v)) for v in np.asarray(fractions, np.float32).ravel()]
    return np.asarray(flat, np.float64).reshape(np.shape(fractions))


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
        # drawn flat: XLA:CPU compiles it several times faster (see bandits_jax._random)
        return (_random.uniform(key, mean.shape, mean.dtype) < mean).astype(jnp.int32)

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


@dataclasses.dataclass(frozen=True)
class SoftBernoulli(Bernoulli):
    """:class:`Bernoulli` for soft rewards in [0, 1] (PyBandits' ``use_soft_rewards=True``): the
    same log-likelihood (a reward is a soft label), counters that add fractions
    (:class:`SoftBernoulliStats`), and an object API that accepts any real number in [0, 1].

    Examples:
        >>> import jax.numpy as jnp
        >>> lik = SoftBernoulli()
        >>> stats = lik.update_stats(lik.init_stats(1), jnp.array([[0.25, 1.0]]), jnp.array([[True, True]]))
        >>> [float(c[0]) for c in counts(stats)]
        [2.25, 1.75]
    """

    name = "soft_bernoulli"

    def init_stats(self, n_actions: int) -> SoftBernoulliStats:
        ones = jnp.asarray(np.ones((n_actions,), np.int32))
        zeros = jnp.asarray(np.zeros((n_actions,), np.float32))
        return SoftBernoulliStats(ones, ones, zeros, zeros)

    def update_stats(
        self,
        stats: SoftBernoulliStats,
        y: Real[Array, "n_actions rows"],
        valid: Bool[Array, "n_actions rows"],
        ok: Bool[Array, " n_actions"] | None = None,
    ) -> SoftBernoulliStats:
        """Add each action's reward mass to its successes and the rest of its rows to its
        failures; an action whose ``ok`` is False keeps its counts."""
        n_rows = valid.sum(axis=1).astype(jnp.int32)
        mass = jnp.where(valid, y, 0).astype(jnp.float32).sum(axis=1)
        if ok is not None:
            n_rows, mass = jnp.where(ok, n_rows, 0), jnp.where(ok, mass, 0.0)
        whole = jnp.floor(mass)
        part = mass - whole  # in [0, 1): the batch's fraction, added to the kept one below
        whole_s = whole.astype(jnp.int32)
        # the failures' mass is n_rows - mass = (n_rows - whole - 1) + (1 - part) when part > 0
        has_part = part > 0
        whole_f = n_rows - whole_s - has_part.astype(jnp.int32)
        part_f = jnp.where(has_part, 1.0 - part, 0.0)
        frac_s, carry_s = _carry(stats.frac_successes + part)
        frac_f, carry_f = _carry(stats.frac_failures + part_f)
        n_s = saturating_add(stats.n_successes, whole_s + carry_s)
        n_f = saturating_add(stats.n_failures, whole_f + carry_f)
        # a saturated count is held at the int32 maximum exactly (its fraction would wrap around)
        top = jnp.iinfo(jnp.int32).max
        return SoftBernoulliStats(
            n_s, n_f, jnp.where(n_s == top, 0.0, frac_s), jnp.where(n_f == top, 0.0, frac_f)
        )

    def check_rewards(self, rewards: Any, name: str = "rewards") -> np.ndarray:
        """Host-side validation for the object API: real rewards in [0, 1] as a float32 array."""
        from bandits_jax import _validation

        return _validation.as_soft_rewards(rewards, name)


def _carry(total: Float[Array, " n"]) -> tuple[Float[Array, " n"], Int[Array, " n"]]:
    """``total`` (a kept fraction plus a batch's, so in [0, 2] after rounding) split into a
    fraction in [0, 1) and the whole units it carries."""
    carry = jnp.floor(total)
    return total - carry, carry.astype(jnp.int32)
