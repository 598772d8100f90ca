"""Epsilon-greedy over any policy's posterior mean.

Per row, with probability ``epsilon`` the row *explores*: every action gets an independent uniform
score on [0, 1), so the strategy's pick is uniform over the allowed actions (with ClassicBandit).
Otherwise the row *exploits*: the scores are the base policy's posterior-mean rewards
(``Prediction.mean_probs``), so ClassicBandit picks the action of highest mean. Either way the
scores go through :func:`~bandits_jax.policies.base.select`, so the action mask and the strategy
apply as for every policy. An exploring row may pick the greedy action too: of ``n`` allowed
actions, a row differs from the greedy choice with probability ``epsilon * (n - 1) / n``.

The base policy learns as on its own (``update`` is the base's), and ``epsilon`` is *data* in the
state (one per action, so that every leaf has the action axis; all equal): a sweep over it compiles
nothing.

References:
    R. S. Sutton and A. G. Barto, "Reinforcement Learning: An Introduction", 2nd ed., 2018, §2.2.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import Feedback, LinearTS
    >>> from bandits_jax.policies.epsilon_greedy import EpsilonGreedy
    >>> policy = EpsilonGreedy(LinearTS(n_features=2))
    >>> state = policy.init(3, epsilon=0.0, sigma=1.0)
    >>> fb = Feedback(jnp.ones((4, 2)), jnp.array([1, 1, 2, 2]), jnp.array([1, 1, 0, 0]), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(0), state, fb)
    >>> policy.predict(jax.random.key(1), state, jnp.ones((3, 2))).actions.tolist()
    [1, 1, 1]
    >>> state.epsilon.tolist()
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax import _random
from bandits_jax.likelihoods import Gaussian
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo, select
from bandits_jax.policies.linear_ts import LinearTS
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["EpsilonGreedy", "EpsilonGreedyState"]


class EpsilonGreedyState(NamedTuple):
    """The base policy's state and the exploration probability (repeated per action)."""

    base: Any
    epsilon: Float[Array, " n_actions"]

    @property
    def n_actions(self) -> int:
        return self.epsilon.shape[0]


@dataclasses.dataclass(frozen=True)
class EpsilonGreedy(PolicyBase):
    """Epsilon-greedy on the posterior mean of ``base`` (any policy; static settings).

    Attributes:
        base: the policy that learns; only its ``mean_probs`` are used to choose.
    """

    base: Any

    @property
    def likelihood(self) -> Any:
        return self.base.likelihood

    @property
    def shares_across_actions(self) -> bool:
        """Whether an update of one action may change another (as the base's may)."""
        return getattr(self.base, "shares_across_actions", False)

    @property
    def n_features(self) -> int | None:
        return getattr(self.base, "n_features", None)

    @classmethod
    def example(cls, n_features: int) -> EpsilonGreedy:
        """Epsilon-greedy on a small linear TS, for tests and demos."""
        return cls(LinearTS.example(n_features))

    def init(self, n_actions: int, epsilon: ArrayLike = 0.1, **base_prior: Any) -> EpsilonGreedyState:
        """The base's ``init(n_actions, **base_prior)`` and ``epsilon`` in [0, 1] (a scalar;
        checked unless traced), stored once per action in the default float width."""
        _check_epsilon(epsilon)
        base = self.base.init(n_actions, **base_prior)
        return EpsilonGreedyState(base, _broadcast(n_actions, jnp.asarray(epsilon)))

    def predict(
        self,
        key: PRNGKeyArray,
        state: EpsilonGreedyState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """Explore or exploit per row. ``probs`` are the scores the strategy chose from (the base's
        mean rewards in an exploiting row, uniform draws in an exploring one), ``logits`` their
        logits, ``mean_probs`` the base's mean rewards."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: EpsilonGreedyState, grouped: GroupedFeedback
    ) -> tuple[EpsilonGreedyState, UpdateInfo]:
        """The base policy's update (``epsilon`` unchanged)."""
        base, info = self.base.update_grouped(key, state.base, grouped)
        return EpsilonGreedyState(base, state.epsilon), info


def _check_epsilon(epsilon) -> None:
    if isinstance(epsilon, jax.core.Tracer):  # traced (a sweep over epsilon): checked by nobody
        return
    value = np.asarray(epsilon, dtype=float)
    if value.ndim != 0 or not 0.0 <= float(value) <= 1.0:  # NaN fails the comparison too
        raise ValueError(f"epsilon must be a scalar in [0, 1], got {epsilon!r}")


@partial(jax.jit, static_argnums=(0,))
def _broadcast(n_actions: int, epsilon) -> Array:
    return jnp.broadcast_to(epsilon.astype(jnp.result_type(float)), (n_actions,))


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: EpsilonGreedy, key, state: EpsilonGreedyState, context, strategy, action_mask):
    base_key, coin_key, draw_key, strategy_key = jax.random.split(key, 4)
    mean = policy.base.predict(base_key, state.base, context).mean_probs
    epsilon = state.epsilon[0]
    explore = _random.uniform(coin_key, mean.shape[:1], epsilon.dtype) < epsilon
    probs = jnp.where(explore[:, None], _random.uniform(draw_key, mean.shape, mean.dtype), mean)
    if isinstance(policy.likelihood, Gaussian):  # mean rewards are the scores themselves
        logits = probs
    else:
        logits = jnp.log(probs) - jnp.log1p(-probs)
    return select(logits, probs, mean, strategy_key, strategy, action_mask)
