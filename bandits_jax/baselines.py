"""Exact linear Thompson sampling with configuration-first signatures, kept for code written
against them: a thin layer over the policy :class:`bandits_jax.policies.LinearTS` (see there for
the model and the references).

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
import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Real

from bandits_jax import _random
from bandits_jax.policies.base import Feedback, Prediction
from bandits_jax.policies.linear_ts import LinearTS, LinearTSState, map_objective
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


@dataclasses.dataclass(frozen=True)
class LinearTSConfig:
    """Settings of the linear Thompson-sampling baseline: the policy's static settings plus the
    prior's ``prior_sigma`` (1.0; see :meth:`bandits_jax.policies.LinearTS.init`)."""

    n_features: int
    prior_sigma: float = 1.0
    newton_steps: int = 20
    fit_intercept: bool = True

    def __post_init__(self):
        self.policy  # noqa: B018 (validates the static settings)
        if not self.prior_sigma > 0:
            raise ValueError(f"prior_sigma must be positive, got {self.prior_sigma!r}")

    @property
    def policy(self) -> LinearTS:
        return _policy(self.n_features, self.newton_steps, self.fit_intercept)

    @property
    def dim(self) -> int:
        return self.policy.dim


@functools.lru_cache(maxsize=64)
def _policy(n_features: int, newton_steps: int, fit_intercept: bool) -> LinearTS:
    return LinearTS(n_features, newton_steps, fit_intercept)


def init(config: LinearTSConfig, n_actions: int, dtype=None) -> LinearTSState:
    """Every action's posterior is the prior ``N(0, prior_sigma**2 I)``."""
    return config.policy.init(n_actions, config.prior_sigma, dtype)


def predict(
    state: LinearTSState,
    context: Float[Array, "n_rows n_features"],
    key: PRNGKeyArray,
    strategy: Strategy = ClassicBandit(),
) -> Prediction:
    """Thompson sampling: one independent posterior draw per row and action, exact. The intercept
    is appended when the state is one wider than the context."""
    fit_intercept = state.mean.shape[-1] == context.shape[-1] + 1
    return _policy(context.shape[-1], 20, fit_intercept).predict(key, state, context, strategy)


def update(
    config: LinearTSConfig,
    state: LinearTSState,
    context: Float[Array, "n_rows n_features"],
    actions: Int[Array, " n_rows"],
    rewards: Real[Array, " n_rows"],
    mask: Bool[Array, " n_rows"] | None = None,
) -> LinearTSState:
    """Streaming Laplace update of every action on its own rows (``mask``: which rows are real);
    an action with no rows keeps its posterior exactly."""
    if mask is None:
        mask = jnp.ones(actions.shape, bool)
    new, _ = config.policy.update(jax.random.key(0), state, Feedback(context, actions, rewards, mask))
    return new


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
        context, probs = env.sample_round(ctx_key, batch_size, t)
        outcomes = (_random.uniform(reward_key, probs.shape, probs.dtype) < probs).astype(jnp.int32)
        pkey, predict_key = jax.random.split(pkey)
        chosen = predict(st, context, predict_key, strategy).actions
        rewards = outcomes[rows, chosen]
        st = update(config, st, context, chosen, rewards)
        regret = jnp.sum(jnp.max(probs, axis=-1) - probs[rows, chosen])
        return (st, pkey), (chosen.astype(jnp.int32), rewards, regret)

    _, (actions, rewards, regret) = jax.lax.scan(one_round, (state, policy_key), jnp.arange(n_rounds))
    return LinearTSTrace(actions, rewards, regret, jnp.cumsum(regret))
