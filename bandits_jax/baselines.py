"""Reference policies to measure the Bayesian-NN bandit against: exact linear Thompson sampling.

:func:`init`, :func:`predict` and :func:`update` are pure functions on a :class:`LinearTSState`
pytree, the same shape of API as :mod:`bandits_jax.core`, so they jit, vmap and scan alike.

The model (one per action ``a``) is Bayesian logistic regression on the context plus an intercept,
``y ~ Bernoulli(sigmoid(x~ @ w_a))`` with ``x~ = [x, 1]``, and a full-covariance Gaussian posterior
``N(mean_a, precision_a^-1)``, updated by the **Laplace approximation** in streaming form: the
previous posterior is the prior of the next batch (as in the neural model), the new mean is the
exact MAP of ``log N(w; mean0, precision0^-1) + sum_i log p(y_i | x~_i, w)`` (damped Newton, which
converges quadratically on this strictly concave objective) and the new precision is the negative
Hessian there, ``precision0 + X~^T diag(p (1 - p)) X~``. This is the Laplace-TS of Chapelle & Li
(2011) with the full covariance instead of a diagonal one; the deep-bandit benchmark of Riquelme
et al. (2018) finds linear posteriors of this kind hard to beat.

Thompson sampling needs one independent weight draw per row and action. The logit of row ``x~``
under ``w ~ N(m, S)`` is exactly ``N(x~ @ m, x~^T S x~)``, so a draw costs two matrix products and
no weight sample (the linear case of the local reparameterisation that :mod:`bandits_jax.bnn` uses).

References:
    O. Chapelle and L. Li, "An Empirical Evaluation of Thompson Sampling", NeurIPS 2011.
    C. Riquelme, G. Tucker and J. Snoek, "Deep Bayesian Bandits Showdown", ICLR 2018.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax import baselines
    >>> cfg = baselines.LinearTSConfig(n_features=2)
    >>> state = baselines.init(cfg, n_actions=3)
    >>> ctx = jnp.ones((4, 2))
    >>> pred = baselines.predict(state, ctx, jax.random.key(0))
    >>> pred.actions.shape, pred.probs.shape
    ((4,), (4, 3))
    >>> state = baselines.update(cfg, state, ctx, pred.actions, jnp.array([1, 0, 1, 1]))
    >>> state.mean.shape, state.cov.shape
    ((3, 3), (3, 3, 3))
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from bandits_jax.core import Prediction, prediction_from_logits
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "LinearTSConfig",
    "LinearTSState",
    "LinearTSTrace",
    "init",
    "map_objective",
    "predict",
    "simulate",
    "update",
]

# Newton step lengths tried per iteration; the best (lowest objective) wins and 0 is among them,
# so the objective never increases. Full steps are taken near the optimum (quadratic convergence).
_STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.015625, 0.0)


@dataclasses.dataclass(frozen=True)
class LinearTSConfig:
    """Static settings of the linear Thompson-sampling baseline.

    Attributes:
        n_features: context columns (an intercept is appended when ``fit_intercept``).
        prior_sigma: standard deviation of the isotropic Normal prior on every weight. 1.0 by
            default: with standardised features a unit change of one feature moving the logit by
            more than a few units is a priori unlikely, and a wide prior (PyBandits' 10) makes the
            first rounds of Thompson sampling close to uniform random.
        newton_steps: damped Newton iterations per update (each batch's MAP is reached to float
            precision in well under 20 from the previous mean on the benchmarks' problems).
        fit_intercept: append a constant 1 to every context.
    """

    n_features: int
    prior_sigma: float = 1.0
    newton_steps: int = 20
    fit_intercept: bool = True

    def __post_init__(self):
        if not isinstance(self.n_features, int) or self.n_features < 1:
            raise ValueError(f"n_features must be a positive int, got {self.n_features!r}")
        if not self.prior_sigma > 0:
            raise ValueError(f"prior_sigma must be positive, got {self.prior_sigma!r}")
        if not isinstance(self.newton_steps, int) or self.newton_steps < 1:
            raise ValueError(f"newton_steps must be a positive int, got {self.newton_steps!r}")

    @property
    def dim(self) -> int:
        return self.n_features + int(self.fit_intercept)


class LinearTSState(NamedTuple):
    """Gaussian posterior of every action's weights, stacked on a leading action axis.

    ``cov`` is ``inv(precision)``, kept so that :func:`predict` solves nothing.
    """

    mean: Float[Array, "n_actions dim"]
    precision: Float[Array, "n_actions dim dim"]
    cov: Float[Array, "n_actions dim dim"]

    @property
    def n_actions(self) -> int:
        return self.mean.shape[0]


def init(config: LinearTSConfig, n_actions: int, dtype=None) -> LinearTSState:
    """Every action's posterior is the prior ``N(0, prior_sigma**2 I)``."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    d = config.dim
    eye = jnp.eye(d, dtype=dtype)
    mean = jnp.zeros((n_actions, d), dtype)
    precision = jnp.broadcast_to(eye / config.prior_sigma**2, (n_actions, d, d))
    cov = jnp.broadcast_to(eye * config.prior_sigma**2, (n_actions, d, d))
    return LinearTSState(mean, precision, cov)


def _design(context: Array, fit_intercept: bool, dtype) -> Array:
    context = context.astype(dtype)
    if fit_intercept:
        context = jnp.concatenate([context, jnp.ones((context.shape[0], 1), dtype)], axis=1)
    return context


@jax.jit
def predict(
    state: LinearTSState,
    context: Float[Array, "n_rows n_features"],
    key: PRNGKeyArray,
    strategy: Strategy = ClassicBandit(),
) -> Prediction:
    """Thompson sampling: one independent posterior draw per row and action, exact.

    The intercept is appended when the state is one wider than the context.
    """
    draw_key, strategy_key = jax.random.split(key)
    dtype = state.mean.dtype
    x = _design(context, state.mean.shape[-1] == context.shape[-1] + 1, dtype)
    mean = x @ state.mean.T  # (n_rows, n_actions)
    var = jnp.einsum("ni,aij,nj->na", x, state.cov, x)
    noise = jax.random.normal(draw_key, mean.shape, dtype)
    logits = mean + jnp.sqrt(jnp.maximum(var, 0.0)) * noise
    return prediction_from_logits(logits, strategy_key, strategy)


def map_objective(w, mean0, precision0, x, y, weight):
    """Negative log posterior (up to a constant) that :func:`update` minimises, for one action."""
    z = x @ w
    nll = jnp.sum(weight * (jax.nn.softplus(z) - y * z))
    diff = w - mean0
    return nll + 0.5 * diff @ precision0 @ diff


def _laplace_one(mean0, precision0, x, y, weight, newton_steps):
    """Streaming Laplace update of one action: MAP by damped Newton, then the Hessian there."""
    steps = jnp.asarray(_STEP_LENGTHS, x.dtype)

    def hessian(w):
        p = jax.nn.sigmoid(x @ w)
        return precision0 + (x * (weight * p * (1 - p))[:, None]).T @ x, p

    def newton(_, w):
        h, p = hessian(w)
        grad = x.T @ (weight * (p - y)) + precision0 @ (w - mean0)
        direction = -jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(h), grad)
        candidates = w[None, :] + steps[:, None] * direction[None, :]
        values = jax.vmap(lambda c: map_objective(c, mean0, precision0, x, y, weight))(candidates)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        return candidates[jnp.argmin(values)]

    w = jax.lax.fori_loop(0, newton_steps, newton, mean0)
    precision, _ = hessian(w)
    precision = 0.5 * (precision + precision.T)
    chol = jax.scipy.linalg.cho_factor(precision, lower=True)
    cov = jax.scipy.linalg.cho_solve(chol, jnp.eye(w.shape[0], dtype=w.dtype))
    return w, precision, 0.5 * (cov + cov.T)


@partial(jax.jit, static_argnames=("config",))
def update(
    config: LinearTSConfig,
    state: LinearTSState,
    context: Float[Array, "n_rows n_features"],
    actions: Int[Array, " n_rows"],
    rewards: Float[Array, " n_rows"],
    mask: Bool[Array, " n_rows"] | None = None,
) -> LinearTSState:
    """Streaming Laplace update of every action on its own rows of the batch.

    Args:
        config: static settings.
        state: current posterior, the prior of this update.
        context, actions, rewards: the batch; ``actions`` index the action axis, ``rewards`` in
            {0, 1} (values in [0, 1] act as soft labels).
        mask: which rows are real (default all); masked rows change nothing.

    Returns:
        The new state. An action with no rows keeps its posterior exactly.
    """
    dtype = state.mean.dtype
    x = _design(context, config.fit_intercept, dtype)
    y = rewards.astype(dtype)
    if mask is None:
        mask = jnp.ones(actions.shape, bool)
    # Per-action row weights over the whole batch: the Hessian costs n_rows x dim^2 per action,
    # small next to a gather for the sizes this baseline is meant for.
    weight = ((actions[None, :] == jnp.arange(state.n_actions)[:, None]) & mask[None, :]).astype(dtype)
    fit = jax.vmap(partial(_laplace_one, newton_steps=config.newton_steps), in_axes=(0, 0, None, None, 0))
    mean, precision, cov = fit(state.mean, state.precision, x, y, weight)
    return LinearTSState(mean, precision, cov)


class LinearTSTrace(NamedTuple):
    """A simulation of the baseline: the fields of :class:`bandits_jax.simulation.Trace`."""

    actions: Int[Array, "n_rounds batch_size"]
    rewards: Int[Array, "n_rounds batch_size"]
    regret: Float[Array, " n_rounds"]
    cumulative_regret: Float[Array, " n_rounds"]


@partial(jax.jit, static_argnames=("config", "n_rounds", "batch_size"))
def simulate(
    config: LinearTSConfig,
    env,
    key: PRNGKeyArray,
    n_rounds: int,
    batch_size: int,
    strategy: Strategy = ClassicBandit(),
) -> LinearTSTrace:
    """Play the baseline on an environment of :mod:`bandits_jax.simulation` (one ``lax.scan``).

    Contexts and reward draws follow :func:`bandits_jax.simulation.simulate`'s key scheme
    (``env_key = split(key, 3)[2]``; round ``t`` uses ``split(fold_in(env_key, t), 3)`` for the
    contexts and the per-row-and-action uniforms), so with the same ``key`` the baseline plays
    exactly the rows and reward draws that the Bayesian-NN policy and the random baseline play there:
    regrets are paired.
    """
    policy_key, _, env_key = jax.random.split(key, 3)
    state = init(config, env.n_actions)
    rows = jnp.arange(batch_size)

    def one_round(carry, t):
        st, pkey = carry
        ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
        context, probs = env.sample(ctx_key, batch_size)
        outcomes = (jax.random.uniform(reward_key, probs.shape, probs.dtype) < probs).astype(jnp.int32)
        pkey, predict_key = jax.random.split(pkey)
        chosen = predict(st, context, predict_key, strategy).actions
        rewards = outcomes[rows, chosen]
        st = update(config, st, context, chosen, rewards)
        regret = jnp.sum(jnp.max(probs, axis=-1) - probs[rows, chosen])
        return (st, pkey), (chosen.astype(jnp.int32), rewards, regret)

    _, (actions, rewards, regret) = jax.lax.scan(one_round, (state, policy_key), jnp.arange(n_rounds))
    return LinearTSTrace(actions, rewards, regret, jnp.cumsum(regret))
