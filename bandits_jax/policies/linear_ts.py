"""Exact linear Thompson sampling: a full-covariance Gaussian posterior per action, updated by the
streaming Laplace approximation (the baseline that the deep-bandit literature finds hard to beat).

Each action's score is linear in the context plus an intercept, ``score = x~ @ w_a`` with
``x~ = [x, 1]``, under the policy's likelihood (Bernoulli: Bayesian logistic regression). An update
makes the previous posterior the prior of the new rows, finds the exact MAP of
``log N(w; mean0, precision0^-1) + sum_i log p(y_i | x~_i @ w)`` by damped Newton (the objective is
strictly concave for Bernoulli, so it converges quadratically) and takes the negative Hessian there
as the new precision. The likelihood's first and second derivatives come from ``jax.grad``, so the
code assumes no particular reward model. This is the Laplace-TS of Chapelle & Li (2011) with the
full covariance.

A Thompson draw of a row's score under ``w ~ N(m, S)`` is exactly ``N(x~ @ m, x~^T S x~)``: two
matrix products and no weight sample.

With Gaussian rewards (:class:`~bandits_jax.likelihoods.Gaussian`) the posterior is exact instead:
Bayesian linear regression with an unknown noise variance, the Normal-inverse-gamma model of
Riquelme et al.'s ``LinearFullPosteriorSampling``. On the likelihood's standardised targets ``t``,
``sigma**2 ~ IG(a0, b0)`` and ``w | sigma**2 ~ N(0, sigma**2 * prior_sigma**2 I)``; an update is
the conjugate one (``precision += X^T X``, ``a += n / 2``, ``b`` by the residuals), and a draw
takes ``sigma**2`` from its posterior, then the score ``N(x~ @ m, sigma**2 x~^T S x~)``.

References:
    O. Chapelle and L. Li, "An Empirical Evaluation of Thompson Sampling", NeurIPS 2011.
    C. Riquelme, G. Tucker and J. Snoek, "Deep Bayesian Bandits Showdown", ICLR 2018.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import Feedback, LinearTS
    >>> policy = LinearTS(n_features=2)
    >>> state = policy.init(3, sigma=1.0)
    >>> pred = policy.predict(jax.random.key(0), state, jnp.ones((4, 2)))
    >>> fb = Feedback(jnp.ones((4, 2)), pred.actions, jnp.array([1, 0, 1, 1]), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(1), state, fb)
    >>> state.mean.shape, state.cov.shape
    ((3, 3), (3, 3, 3))
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax import _linalg, _random
from bandits_jax.likelihoods import Bernoulli, BernoulliStats, Gaussian, GaussianStats, SoftBernoulliStats
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo, select
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "LinearTS",
    "LinearTSState",
    "NoisePosterior",
    "laplace_fit",
    "map_objective",
    "nig_fit",
    "nig_thompson_prediction",
    "score_moments",
    "thompson_prediction",
]

# Newton step lengths tried per iteration; the best (lowest objective) wins and 0 is among them,
# so the objective never increases. Full steps are taken near the optimum (quadratic convergence).
_STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.015625, 0.0)
#: The noise variance's default prior ``IG(a0, b0)`` with Gaussian rewards (Riquelme et al.'s).
NOISE_PRIOR = (6.0, 6.0)


class NoisePosterior(NamedTuple):
    """The inverse-gamma posterior ``sigma**2 ~ IG(a, b)`` of each action's noise variance, in the
    likelihood's target units (Gaussian rewards: the standardised ones)."""

    a: Float[Array, " n_actions"]
    b: Float[Array, " n_actions"]


class LinearTSState(NamedTuple):
    """Gaussian posterior of every action's weights and the likelihood's counters, leading action
    axis. ``cov`` is ``inv(precision)``, kept so that predict solves nothing. With Gaussian rewards
    the posterior is the conjugate Normal-inverse-gamma one: the weights are ``N(mean, sigma**2
    cov)`` given the noise variance ``sigma**2``, whose posterior is ``noise`` (None otherwise)."""

    mean: Float[Array, "n_actions dim"]
    precision: Float[Array, "n_actions dim dim"]
    cov: Float[Array, "n_actions dim dim"]
    stats: BernoulliStats | SoftBernoulliStats | GaussianStats
    noise: NoisePosterior | None = None

    @property
    def n_actions(self) -> int:
        return self.mean.shape[0]


@dataclasses.dataclass(frozen=True)
class LinearTS(PolicyBase):
    """Linear Thompson sampling with a streaming Laplace posterior, or with Gaussian rewards the
    exact Normal-inverse-gamma one (static settings).

    Attributes:
        n_features: context columns (an intercept is appended when ``fit_intercept``).
        newton_steps: damped Newton iterations per update (each batch's MAP is reached to float
            precision in well under 20 from the previous mean on the benchmarks' problems; unused
            with Gaussian rewards, whose update is closed-form).
        fit_intercept: append a constant 1 to every context.
        likelihood: the reward model (Bernoulli: the Laplace posterior; Gaussian: the exact
            Normal-inverse-gamma one, see the module docstring).
    """

    n_features: int
    newton_steps: int = 20
    fit_intercept: bool = True
    likelihood: Bernoulli | Gaussian = Bernoulli()

    def __post_init__(self):
        if isinstance(self.n_features, bool) or not isinstance(self.n_features, int) or self.n_features < 1:
            raise ValueError(f"n_features must be a positive int, got {self.n_features!r}")
        if (
            isinstance(self.newton_steps, bool)
            or not isinstance(self.newton_steps, int)
            or self.newton_steps < 1
        ):
            raise ValueError(f"newton_steps must be a positive int, got {self.newton_steps!r}")

    @classmethod
    def example(cls, n_features: int) -> LinearTS:
        """A small instance (5 Newton steps), for tests and demos."""
        return cls(n_features, newton_steps=5)

    @property
    def dim(self) -> int:
        return self.n_features + int(self.fit_intercept)

    def init(
        self,
        n_actions: int,
        sigma: float | Array = 1.0,
        dtype=None,
        *,
        a0: float | Array | None = None,
        b0: float | Array | None = None,
        **reward_data: Any,
    ) -> LinearTSState:
        """Every action's posterior is the prior ``N(0, sigma**2 I)`` (``sigma`` is data: 1.0 by
        default, since with standardised features a unit change of one feature moving the score by
        more than a few units is a priori unlikely, and a wide prior makes the first rounds of
        Thompson sampling close to uniform random).

        Gaussian rewards only: the noise variance's prior ``IG(a0, b0)`` in target units (Riquelme
        et al.'s 6 and 6 when None: prior mean 1.2, a standardised reward's variance) and ``reward_data``,
        the likelihood's ``reward_loc``, ``reward_scale``, ``noise_sigma``, ... (see
        :class:`~bandits_jax.likelihoods.GaussianStats`); all of them data."""
        a0, b0, reward_data = noise_prior_data(self.likelihood, a0, b0, reward_data)
        return _init(self, n_actions, jnp.asarray(sigma), dtype, a0, b0, reward_data)

    def predict(
        self,
        key: PRNGKeyArray,
        state: LinearTSState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """One exact, independent posterior draw of every row's score per action."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: LinearTSState, grouped: GroupedFeedback
    ) -> tuple[LinearTSState, UpdateInfo]:
        """Streaming Laplace update (Gaussian rewards: the conjugate one) of every action on its own
        rows (the key is unused: the update is deterministic). An action without rows keeps its posterior exactly; one whose update is
        not finite keeps it too (``info.ok`` False)."""
        return _update_grouped(self, state, grouped)


def _design(context: Array, fit_intercept: bool, dtype) -> Array:
    context = context.astype(dtype)
    if fit_intercept:
        ones = jnp.ones((*context.shape[:-1], 1), dtype)
        context = jnp.concatenate([context, ones], axis=-1)
    return context


def noise_prior_data(likelihood, a0, b0, reward_data: dict) -> tuple[Array, Array, dict]:
    """``init``'s Gaussian-only arguments, checked, as data: ``(a0, b0, reward_data)`` (the
    defaults :data:`NOISE_PRIOR` for None). Other likelihoods take none of them (TypeError)."""
    if not isinstance(likelihood, Gaussian):
        if reward_data or a0 is not None or b0 is not None:
            extra = sorted(reward_data) + [n for n, v in (("a0", a0), ("b0", b0)) if v is not None]
            raise TypeError(f"unexpected keyword(s) {extra} for {likelihood.name} rewards")
    a0 = NOISE_PRIOR[0] if a0 is None else a0
    b0 = NOISE_PRIOR[1] if b0 is None else b0
    _check_noise_prior(a0, b0)
    data = likelihood.check_reward_data(reward_data) if reward_data else {}
    return jnp.asarray(a0), jnp.asarray(b0), data


def _check_noise_prior(a0, b0) -> None:
    """``a0 > 1`` (the sampler's domain, and a finite prior mean) and ``b0 > 0``, finite."""
    for name, value, low in (("a0", a0, 1.0), ("b0", b0, 0.0)):
        if isinstance(value, jax.core.Tracer):  # traced (a sweep): checked by nobody
            continue
        if isinstance(value, (bool, str)) or isinstance(value, np.bool_):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        with np.errstate(over="ignore", invalid="ignore"):
            v = np.asarray(value, dtype=float)
            # data of the float32 state: finite there too (1e39 would turn into inf)
            finite = np.isfinite(v).all() and np.isfinite(v.astype(np.float32)).all()
        if not (finite and (v > low).all()):
            bound = "> 1" if name == "a0" else "> 0"
            raise ValueError(f"{name} must be finite (in float32) and {bound}, got {value!r}")


@partial(jax.jit, static_argnums=(0, 1, 3))
def _init(
    policy: LinearTS, n_actions: int, sigma, dtype, a0=None, b0=None, reward_data=None
) -> LinearTSState:
    dtype = jnp.result_type(float) if dtype is None else dtype
    d = policy.dim
    eye = jnp.eye(d, dtype=dtype)
    sigma = sigma.astype(dtype)
    mean = jnp.zeros((n_actions, d), dtype)
    precision = jnp.broadcast_to(eye / sigma**2, (n_actions, d, d))
    cov = jnp.broadcast_to(eye * sigma**2, (n_actions, d, d))
    if isinstance(policy.likelihood, Gaussian):
        stats = policy.likelihood.init_stats(n_actions, **(reward_data or {}), dtype=dtype)
        full = partial(jnp.broadcast_to, shape=(n_actions,))
        noise = NoisePosterior(full(a0.astype(dtype)), full(b0.astype(dtype)))
        return LinearTSState(mean, precision, cov, stats, noise)
    return LinearTSState(mean, precision, cov, policy.likelihood.init_stats(n_actions))


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: LinearTS, key, state: LinearTSState, context, strategy, action_mask) -> Prediction:
    x = _design(context, policy.fit_intercept, state.mean.dtype)
    if state.noise is not None:
        return nig_thompson_prediction(
            key, policy.likelihood, state.stats, x, state.mean, state.cov, state.noise, strategy, action_mask
        )
    return thompson_prediction(key, policy.likelihood, x, state.mean, state.cov, strategy, action_mask)


def score_moments(x: Array, mean: Array, cov: Array) -> tuple[Array, Array]:
    """Each row's score mean ``x @ m_a`` and standard deviation ``sqrt(x^T S_a x)`` under every
    action's Gaussian weights ``N(m_a, S_a)``: ``(n_rows, n_actions)`` each."""
    var = jnp.einsum("ni,aij,nj->na", x, cov, x)
    return x @ mean.T, jnp.sqrt(jnp.maximum(var, 0.0))


def thompson_prediction(key, likelihood, x, mean, cov, strategy, action_mask) -> Prediction:
    """One exact Thompson draw of every row's score per action under Gaussian weights (no weight
    sample: the score of a row is Normal with :func:`score_moments`), then the strategy's choice.
    Shared by the policies with a Gaussian linear posterior (LinearTS, NeuralLinear's head)."""
    draw_key, strategy_key = jax.random.split(key)
    m, sd = score_moments(x, mean, cov)
    logits = m + sd * _random.normal(draw_key, m.shape, m.dtype)
    return select(logits, likelihood.mean(logits), likelihood.mean(m), strategy_key, strategy, action_mask)


def nig_thompson_prediction(
    key, likelihood, stats, x, mean, cov, noise: NoisePosterior, strategy, action_mask
) -> Prediction:
    """One exact Thompson draw of every row's score per action under the Normal-inverse-gamma
    posterior ``sigma**2 ~ IG(a, b)``, ``w | sigma**2 ~ N(m, sigma**2 S)``: a noise variance per
    row and action, then the score ``N(x @ m, sigma**2 x^T S x)``, mapped to reward units by the
    likelihood (``scores``) before the strategy's choice. Shared by LinearTS and NeuralLinear's
    head with Gaussian rewards."""
    draw_key, noise_key, strategy_key = jax.random.split(key, 3)
    m, sd = score_moments(x, mean, cov)
    gamma = _random.gamma_ge1(noise_key, jnp.broadcast_to(noise.a, m.shape).astype(m.dtype))
    noise_sd = jnp.sqrt(noise.b.astype(m.dtype) / gamma)
    raw = m + noise_sd * sd * _random.normal(draw_key, m.shape, m.dtype)
    scores, mean_scores = likelihood.scores(stats, raw), likelihood.scores(stats, m)
    return select(
        scores, likelihood.mean(scores), likelihood.mean(mean_scores), strategy_key, strategy, action_mask
    )


def nig_fit(mean0, precision0, a0, b0, x, t, weight):
    """The conjugate Normal-inverse-gamma update of one Bayesian linear regression: the prior
    ``sigma**2 ~ IG(a0, b0)``, ``w | sigma**2 ~ N(mean0, sigma**2 inv(precision0))`` and the rows
    ``t_i ~ N(x_i @ w, sigma**2)`` (each counted ``weight_i`` times, 0 or 1). Returns ``(mean,
    precision, cov, a, b)``; ``b`` adds half the weighted residual sum of squares and the prior's
    quadratic form at the new mean (the form that has no cancelling terms in float32)."""
    xw = x * weight[:, None]
    precision = precision0 + xw.T @ x
    precision = 0.5 * (precision + precision.T)
    low = _linalg.cholesky(precision)
    mean = _linalg.cho_solve(low, precision0 @ mean0 + xw.T @ t)
    cov = _linalg.cho_solve(low, jnp.eye(mean.shape[0], dtype=mean.dtype))
    resid = t - x @ mean
    diff = mean - mean0
    a = a0 + 0.5 * weight.sum()
    b = b0 + 0.5 * (weight @ (resid * resid) + diff @ precision0 @ diff)
    return mean, precision, 0.5 * (cov + cov.T), a, b


def noise_latent(noise: NoisePosterior) -> tuple[Array, Array]:
    """The mean and std of ``log sigma`` under ``sigma**2 ~ IG(a, b)`` (``0.5 (log b -
    digamma(a))`` and ``0.5 sqrt(trigamma(a))``), shaped ``(n_actions, 1)`` as a Gaussian
    likelihood's latent posterior, so that its ``noise_std`` reports the fitted noise."""
    a, b = noise
    loc = 0.5 * (jnp.log(b) - jax.scipy.special.digamma(a))
    scale = 0.5 * jnp.sqrt(jax.scipy.special.polygamma(1, a))
    return loc[:, None], scale[:, None]


def map_objective(likelihood, w, mean0, precision0, x, y, weight):
    """Negative log posterior (up to a constant) that an update minimises, for one action."""
    z = x @ w
    nll = -jnp.sum(weight * likelihood.log_prob(y, z))
    diff = w - mean0
    return nll + 0.5 * diff @ precision0 @ diff


def laplace_fit(likelihood, newton_steps, mean0, precision0, x, y, weight):
    """Laplace posterior of one generalised linear model: the MAP of
    ``log N(w; mean0, inv(precision0)) + sum_i weight_i log p(y_i | x_i @ w)`` by damped Newton
    from ``mean0``, and the negative Hessian there. Returns ``(mean, precision, cov)``."""
    steps = jnp.asarray(_STEP_LENGTHS, x.dtype)
    # d/dz and d2/dz2 of one row's negative log-likelihood, for any reward model.
    nll = lambda yi, zi: -likelihood.log_prob(yi, zi)  # noqa: E731
    d1 = jax.vmap(jax.grad(nll, argnums=1))
    d2 = jax.vmap(jax.grad(jax.grad(nll, argnums=1), argnums=1))

    def hessian(w):
        z = x @ w
        return precision0 + (x * (weight * d2(y, z))[:, None]).T @ x, z

    def newton(_, w):
        h, z = hessian(w)
        grad = x.T @ (weight * d1(y, z)) + precision0 @ (w - mean0)
        direction = -_linalg.cho_solve(_linalg.cholesky(h), grad)
        candidates = w[None, :] + steps[:, None] * direction[None, :]
        values = jax.vmap(lambda c: map_objective(likelihood, c, mean0, precision0, x, y, weight))(candidates)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        # The longest step whose objective is the lowest up to rounding: near the optimum the
        # decrease of a full step falls below the objective's float32 rounding (a sum over many
        # rows), and a strict argmin would stall there on noise, short of the MAP.
        best = jnp.min(values)
        tol = 8 * jnp.finfo(values.dtype).eps * jnp.abs(best)
        return candidates[jnp.argmax(values <= best + tol)]

    w = jax.lax.fori_loop(0, newton_steps, newton, mean0)
    precision, _ = hessian(w)
    precision = 0.5 * (precision + precision.T)
    cov = _linalg.cho_solve(_linalg.cholesky(precision), jnp.eye(w.shape[0], dtype=w.dtype))
    return w, precision, 0.5 * (cov + cov.T)


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(policy: LinearTS, state: LinearTSState, grouped: GroupedFeedback):
    dtype = state.mean.dtype
    # padding rows hold other actions' rows: zeroed, so that no extreme context there (1e20, inf)
    # reaches a product that its zero weight would not cancel
    x = _design(jnp.where(grouped.valid[..., None], grouped.context, 0), policy.fit_intercept, dtype)
    y = grouped.rewards.astype(dtype)
    weight = grouped.valid.astype(dtype)
    if state.noise is not None:
        return _update_nig(policy.likelihood, state, x, y, grouped.valid)
    fit = jax.vmap(partial(laplace_fit, policy.likelihood, policy.newton_steps))
    mean, precision, cov = fit(state.mean, state.precision, x, y, weight)
    finite = (
        jnp.isfinite(mean).all(-1) & jnp.isfinite(cov).all((-2, -1)) & jnp.isfinite(precision).all((-2, -1))
    )
    keep = finite & grouped.valid.any(axis=1)

    def choose(new, old):
        return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    stats = policy.likelihood.update_stats(state.stats, y, grouped.valid, finite)
    new_state = LinearTSState(
        choose(mean, state.mean), choose(precision, state.precision), choose(cov, state.cov), stats
    )
    losses = jnp.zeros((state.mean.shape[0], 0), dtype)
    return new_state, UpdateInfo(losses, finite, grouped.valid.sum(axis=1).astype(jnp.int32))


def _update_nig(likelihood, state: LinearTSState, x, y, valid):
    """The conjugate update of every action on its own standardised rows (Gaussian rewards)."""
    dtype = state.mean.dtype
    prepared = likelihood.prepare(state.stats, y, valid)  # the standardisation, on a first batch
    # padding rows hold other actions' rewards: zeroed, so no extreme value there turns non-finite
    t = jnp.where(valid, likelihood.targets(prepared, y), 0).astype(dtype)
    fit = jax.vmap(nig_fit)
    mean, precision, cov, a, b = fit(
        state.mean, state.precision, state.noise.a, state.noise.b, x, t, valid.astype(dtype)
    )
    finite = (
        jnp.isfinite(mean).all(-1)
        & jnp.isfinite(cov).all((-2, -1))
        & jnp.isfinite(precision).all((-2, -1))
        & jnp.isfinite(b)
        & (b > 0)
    )
    keep = finite & valid.any(axis=1)

    def choose(new, old):
        return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    noise = NoisePosterior(choose(a, state.noise.a), choose(b, state.noise.b))
    new_stats = likelihood.update_stats(prepared, y, valid, finite, noise_latent(noise))
    # a failed fit leaves what prepare settled undone too
    stats = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_stats, state.stats)
    new_state = LinearTSState(
        choose(mean, state.mean), choose(precision, state.precision), choose(cov, state.cov), stats, noise
    )
    losses = jnp.zeros((state.mean.shape[0], 0), dtype)
    return new_state, UpdateInfo(losses, finite, valid.sum(axis=1).astype(jnp.int32))


_laplace_one = laplace_fit  # the former private name
