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
    "Gaussian",
    "GaussianStats",
    "SoftBernoulli",
    "SoftBernoulliStats",
    "counts",
    "host_counts",
    "host_tallies",
    "point_fit",
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


def host_tallies(stats: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two saturating counters of a state's stats on the host (the success and failure counts,
    or for :class:`GaussianStats` zeros and the number of observations), which the object API
    bounds to warn before a counter would saturate."""
    if isinstance(stats, GaussianStats):
        n = np.asarray(stats.n_observations, np.int64)
        return np.zeros_like(n), n
    return host_counts(stats)


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

    def log_prob(
        self, y: Real[Array, "*n"], score: Float[Array, "*n"], latent: Any = None
    ) -> Float[Array, "*n"]:
        # Bernoulli(logits).log_prob(y) = y * logits - softplus(logits), as numpyro computes it.
        return y * score - jax.nn.softplus(score)

    # The hooks below let a fitted policy (BnnTS) handle rewards that need more than a score: a
    # Bernoulli reward needs none of them (identities), see :class:`Gaussian`.
    def is_cold(self, stats: Any) -> Bool[Array, " n_actions"]:
        """Which actions have learned nothing yet (counters at the prior's 1 and 1)."""
        successes, failures = counts(stats)
        return (successes == 1) & (failures == 1)

    def prepare(
        self, stats: Any, y: Real[Array, "n_actions rows"], valid: Bool[Array, "n_actions rows"]
    ) -> Any:
        """``stats`` after what an update must settle before its fit (nothing for Bernoulli)."""
        return stats

    def targets(self, stats: Any, y: Real[Array, "n_actions rows"]) -> Real[Array, "n_actions rows"]:
        """What the network is fitted to (the rewards themselves for Bernoulli)."""
        return y

    def scores(self, stats: Any, raw: Float[Array, "n_rows n_actions"]) -> Float[Array, "n_rows n_actions"]:
        """The network's outputs on the scale the strategies compare (the logit for Bernoulli)."""
        return raw

    def link(self, mean: Float[Array, " n_actions"]) -> Float[Array, " n_actions"]:
        """The score of a mean target (``calibrate_output_bias``): the logit of the clipped rate."""
        rate = jnp.clip(mean, 1e-6, 1 - 1e-6)
        return jnp.log(rate / (1 - rate))

    def latent_prior(self, stats: Any) -> tuple[Array, Array] | None:
        """The prior ``(loc, scale)`` of the likelihood's own latents fitted with the weights, with
        a leading action axis (None: there are none)."""
        return None

    def host_tally(self, idx: np.ndarray, rewards: np.ndarray, rows: np.ndarray, n_actions: int):
        """Host-side upper bounds of what an update adds to each counter (see ``host_tallies``)."""
        successes = np.bincount(idx, rewards, minlength=n_actions)  # float64: exact sums
        return successes, rows[:n_actions] - successes

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


class GaussianStats(NamedTuple):
    """Per-action state of a :class:`Gaussian` reward (PyBandits' ``GaussianBayesianNeuralNetwork``
    fields), every field with a leading action axis:

    - ``n_successes``, ``n_failures``: PyBandits' pseudo-counts, which stay at their prior's 1 and
      1 (not meaningful for real rewards); ``n_observations`` (int32, saturating) and
      ``reward_mean`` (the running mean of the raw rewards) count instead.
    - ``reward_loc``, ``reward_scale``: the standardisation; the network is fitted to
      ``(reward - reward_loc) / reward_scale``. NaN until fitted on an action's first batch
      (``fit_reward_standardization``); until then 0 and 1 are used.
    - ``noise_sigma``: the initial guess of the noise std in reward units (NaN: the std of the
      first batch's targets).
    - ``noise_loc``, ``noise_scale``: the mean-field Normal posterior of ``log sigma`` in target
      units, fitted with the weights and carried across updates like them (``noise_loc`` NaN until
      the first update, ``noise_scale`` the prior's std until then).
    """

    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]
    n_observations: Int[Array, " n_actions"]
    reward_mean: Float[Array, " n_actions"]
    reward_loc: Float[Array, " n_actions"]
    reward_scale: Float[Array, " n_actions"]
    noise_sigma: Float[Array, " n_actions"]
    noise_loc: Float[Array, " n_actions"]
    noise_scale: Float[Array, " n_actions"]


# A batch std at or below this is no spread (PyBandits' ``_numerical_eps``).
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """Real-valued rewards, ``y ~ Normal(mu(x), sigma)`` with one learned noise std per action
    (PyBandits' ``GaussianBayesianNeuralNetwork``): ``log sigma`` is a latent of the model with a
    Normal prior, fitted by SVI with the weights, its posterior carried across updates. The network
    is fitted to standardised targets (see :class:`GaussianStats`); its scores, and so the
    strategies' comparisons, are in reward units.

    Examples:
        >>> import jax.numpy as jnp
        >>> lik = Gaussian()
        >>> stats = lik.init_stats(1, reward_loc=10.0, reward_scale=2.0)
        >>> stats = lik.prepare(stats, jnp.array([[9.0, 13.0]]), jnp.array([[True, True]]))
        >>> lik.targets(stats, jnp.array([[9.0, 13.0]])).tolist()
        [[-0.5, 1.5]]
        >>> round(float(jnp.exp(stats.noise_loc[0])), 6)  # the first batch's target std
        1.0
    """

    name = "gaussian"

    def log_prob(
        self, y: Real[Array, "*n"], score: Float[Array, "*n"], latent: Any = None
    ) -> Float[Array, "*n"]:
        """``Normal(score, exp(latent[0])).log_prob(y)`` (``latent``: one action's ``log sigma``)."""
        log_sigma = latent[..., 0]
        z = (y - score) * jnp.exp(-log_sigma)
        return -0.5 * z * z - log_sigma - 0.5 * jnp.log(2 * jnp.pi).astype(z.dtype)

    def mean(self, score: Float[Array, "*n"]) -> Float[Array, "*n"]:
        return score

    def sample(self, key: PRNGKeyArray, mean: Float[Array, "*n"]) -> Float[Array, "*n"]:
        """Rewards of unit noise std around ``mean`` (an environment with other noise draws its own,
        see :class:`bandits_jax.simulation.GaussianRewardEnv`)."""
        return mean + _random.normal(key, mean.shape, mean.dtype)

    def init_stats(
        self,
        n_actions: int,
        reward_loc: Any = None,
        reward_scale: Any = None,
        noise_sigma: Any = None,
        noise_log_sigma_prior_std: Any = 0.5,
        dtype: Any = None,
    ) -> GaussianStats:
        """Cold-start stats (None: fitted or guessed on the first update, see the class)."""
        dtype = jnp.result_type(float) if dtype is None else dtype

        def full(value):
            value = jnp.nan if value is None else value
            return jnp.broadcast_to(jnp.asarray(value, dtype), (n_actions,))

        ones = jnp.asarray(np.ones((n_actions,), np.int32))
        return GaussianStats(
            ones,
            ones,
            jnp.asarray(np.zeros((n_actions,), np.int32)),
            full(0.0),
            full(reward_loc),
            full(reward_scale),
            full(noise_sigma),
            full(None),
            full(noise_log_sigma_prior_std),
        )

    def is_cold(self, stats: GaussianStats) -> Bool[Array, " n_actions"]:
        return stats.n_observations == 0

    #: :meth:`init_stats`' data and whether each must be > 0 (else any real number)
    REWARD_DATA = {
        "reward_loc": False,
        "reward_scale": True,
        "noise_sigma": True,
        "noise_log_sigma_prior_std": True,
    }

    def check_reward_data(self, reward_data: dict) -> dict:
        """Policies' ``init(**reward_data)`` checked as :class:`~bandits_jax.config.CmabConfig`
        checks its fields (TypeError for an unknown name, ValueError naming a value that is not
        finite in float32, not > 0 where it must be, or ``reward_loc`` / ``reward_scale`` given one
        without the other); traced values pass unchecked. Returns the data as arrays (None kept:
        fitted or guessed on the first update)."""
        unknown = sorted(set(reward_data) - set(self.REWARD_DATA))
        if unknown:
            raise TypeError(
                f"unexpected keyword(s) {unknown}; Gaussian rewards take {sorted(self.REWARD_DATA)}"
            )
        for name, value in reward_data.items():
            if value is None or isinstance(value, jax.core.Tracer):
                continue
            if isinstance(value, (bool, str, np.bool_)):
                raise TypeError(f"{name} must be a real number, got {value!r}")
            with np.errstate(over="ignore", invalid="ignore"):
                v = np.asarray(value, dtype=np.float64)
                ok = np.isfinite(v).all() and np.isfinite(v.astype(np.float32)).all()
            if not ok or (self.REWARD_DATA[name] and not (v > 0).all()):
                need = "finite (in float32) and > 0" if self.REWARD_DATA[name] else "finite (in float32)"
                raise ValueError(f"{name} must be {need}, got {value!r}")
        if (reward_data.get("reward_loc") is None) != (reward_data.get("reward_scale") is None):
            raise ValueError(
                "reward_loc and reward_scale are either both given (a fixed standardisation) or both "
                "unset (fitted on each action's first batch)"
            )
        return {k: (None if v is None else jnp.asarray(v)) for k, v in reward_data.items()}

    @staticmethod
    def _loc_scale(stats: GaussianStats) -> tuple[Array, Array]:
        """The standardisation in use: 0 and 1 while it is still to be fitted (PyBandits')."""
        loc, scale = stats.reward_loc, stats.reward_scale
        return jnp.where(jnp.isnan(loc), 0.0, loc), jnp.where(jnp.isnan(scale), 1.0, scale)

    def prepare(
        self, stats: GaussianStats, y: Real[Array, "n_actions rows"], valid: Bool[Array, "n_actions rows"]
    ) -> GaussianStats:
        """PyBandits' ``prepare_rewards`` for every action with rows: fit the standardisation on its
        first batch (mean, and std or ``max(|mean|, 1)`` without spread) if it is still to be
        fitted, and centre the ``log sigma`` prior on ``log(noise_sigma / reward_scale)`` or on the
        log std of the batch's targets (0 with one row or no spread) on its first update."""
        y = y.astype(stats.reward_mean.dtype)
        n = valid.sum(axis=1)
        has = n > 0
        mean, std = _masked_mean_std(y, valid)
        fit = jnp.isnan(stats.reward_loc) & has
        stats = stats._replace(
            reward_loc=jnp.where(fit, mean, stats.reward_loc),
            reward_scale=jnp.where(
                fit, jnp.where(std > _EPS, std, jnp.maximum(jnp.abs(mean), 1.0)), stats.reward_scale
            ),
        )
        loc, scale = self._loc_scale(stats)
        _, target_std = _masked_mean_std((y - loc[:, None]) / scale[:, None], valid)
        guess = jnp.where((n > 1) & (target_std > _EPS), target_std, 1.0)
        sigma = jnp.where(jnp.isnan(stats.noise_sigma), guess, stats.noise_sigma / scale)
        first = jnp.isnan(stats.noise_loc) & has
        return stats._replace(noise_loc=jnp.where(first, jnp.log(sigma), stats.noise_loc))

    def targets(
        self, stats: GaussianStats, y: Real[Array, "n_actions rows"]
    ) -> Float[Array, "n_actions rows"]:
        loc, scale = self._loc_scale(stats)
        return (y.astype(loc.dtype) - loc[:, None]) / scale[:, None]

    def scores(
        self, stats: GaussianStats, raw: Float[Array, "n_rows n_actions"]
    ) -> Float[Array, "n_rows n_actions"]:
        """Network outputs mapped back to reward units: ``raw * reward_scale + reward_loc``."""
        loc, scale = self._loc_scale(stats)
        return raw * scale.astype(raw.dtype) + loc.astype(raw.dtype)

    def link(self, mean: Float[Array, " n_actions"]) -> Float[Array, " n_actions"]:
        """The output bias of a mean target is the mean itself (PyBandits' calibration)."""
        return mean

    def latent_prior(self, stats: GaussianStats) -> tuple[Array, Array]:
        """``log sigma``'s prior per action, shape ``(n_actions, 1)`` (an action not yet prepared
        has no rows in this update: its 0 is never used)."""
        loc = jnp.where(jnp.isnan(stats.noise_loc), 0.0, stats.noise_loc)
        return loc[:, None], stats.noise_scale[:, None]

    def noise_std(self, stats: GaussianStats) -> Float[Array, " n_actions"]:
        """The noise std at ``log sigma``'s posterior mean, in reward units (NaN before the first
        update without a ``noise_sigma`` guess)."""
        _, scale = self._loc_scale(stats)
        return jnp.where(jnp.isnan(stats.noise_loc), stats.noise_sigma, jnp.exp(stats.noise_loc) * scale)

    def update_stats(
        self,
        stats: GaussianStats,
        y: Real[Array, "n_actions rows"],
        valid: Bool[Array, "n_actions rows"],
        ok: Bool[Array, " n_actions"] | None = None,
        latent: tuple[Array, Array] | None = None,
    ) -> GaussianStats:
        """Count each action's rows, fold them into its running mean and take ``log sigma``'s new
        posterior (``latent``); an action whose ``ok`` is False or that has no rows keeps its
        stats."""
        n = valid.sum(axis=1).astype(jnp.int32)
        if ok is not None:
            n = jnp.where(ok, n, 0)
        total = saturating_add(stats.n_observations, n)
        dtype = stats.reward_mean.dtype
        batch_mean, _ = _masked_mean_std(y.astype(dtype), valid)  # no overflow near float32's limit
        weight = n.astype(dtype) / jnp.maximum(total, 1).astype(dtype)
        new_mean = stats.reward_mean + (batch_mean - stats.reward_mean) * weight
        fresh = n > 0
        out = stats._replace(n_observations=total, reward_mean=jnp.where(fresh, new_mean, stats.reward_mean))
        if latent is not None:
            out = out._replace(
                noise_loc=jnp.where(fresh, latent[0][:, 0].astype(dtype), stats.noise_loc),
                noise_scale=jnp.where(fresh, latent[1][:, 0].astype(dtype), stats.noise_scale),
            )
        return out

    def forget(self, stats: GaussianStats, factor: Float[Array, " n_actions"]) -> GaussianStats:
        """PyBandits' ``_inflate_extra_params``: ``log sigma``'s posterior std divided by the decay
        factor too (``factor`` is 1 where an action is not widened)."""
        return stats._replace(noise_scale=stats.noise_scale / factor.astype(stats.noise_scale.dtype))

    def host_tally(self, idx: np.ndarray, rewards: np.ndarray, rows: np.ndarray, n_actions: int):
        return np.zeros(n_actions), rows[:n_actions].astype(np.float64)

    def check_rewards(self, rewards: Any, name: str = "rewards") -> np.ndarray:
        """Host-side validation for the object API: finite real rewards as a float32 array."""
        from bandits_jax import _validation

        return _validation.as_real_rewards(rewards, name)


@dataclasses.dataclass(frozen=True)
class _UnitNoise:
    """A Gaussian likelihood's log-density at ``log sigma = 0`` (see :func:`point_fit`)."""

    base: Gaussian

    def log_prob(self, y: Array, score: Array, latent: Any = None) -> Array:
        return self.base.log_prob(y, score, jnp.zeros((*jnp.shape(score), 1), score.dtype))


def point_fit(likelihood: Any) -> Any:
    """The reward model a point-estimate fit (NeuralLinear's body, an ensemble's members) takes the
    negative log-likelihood of: a :class:`Gaussian` at unit noise on its standardised targets, so
    half the squared error (Riquelme et al.'s loss), any other likelihood as it is."""
    return _UnitNoise(likelihood) if isinstance(likelihood, Gaussian) else likelihood


def _masked_mean_std(y: Float[Array, "n rows"], valid: Bool[Array, "n rows"]) -> tuple[Array, Array]:
    """Each row's mean and (population) std over its valid entries (0 and 0 without any),
    computed on the values divided by their largest magnitude, so that rewards near float32's
    limit (whose squares or sums overflow) give a finite mean and std."""
    n = jnp.maximum(valid.sum(axis=1), 1).astype(y.dtype)
    y = jnp.where(valid, y, 0)
    # scaled by the power of two of the largest magnitude (exact), in two halves: 2**-128 itself
    # is subnormal, which XLA:CPU flushes to zero
    _, e = jnp.frexp(jnp.abs(y).max(axis=1, keepdims=True))
    lo, hi = e // 2, e - e // 2

    def scale(x, sign):
        return jnp.ldexp(jnp.ldexp(x, sign * lo), sign * hi)

    z = scale(y, -1)
    mean = z.sum(axis=1, keepdims=True) / n[:, None]
    var = jnp.where(valid, (z - mean) ** 2, 0).sum(axis=1, keepdims=True) / n[:, None]
    return scale(mean, 1)[:, 0], scale(jnp.sqrt(var), 1)[:, 0]
