"""Forgetting (PyBandits' ``decay_factor``) on top of a policy, so that it follows a reward that
drifts: old evidence is discounted on every update of an action, with the factor as *data* (a
sweep over it compiles nothing).

Two rules, each PyBandits' own:

- a *counting* policy (Beta-Bernoulli) keeps, beside its raw counters, *decayed* counts that
  shrink toward the ``Beta(1, 1)`` prior before each update's rows are added,
  ``n <- 1 + decay_factor * (n - 1) + new``, and draws from those: with no new rows the
  posterior's weight of evidence falls geometrically, so an arm's counts never exceed
  ``1 + rows per update / (1 - decay_factor)``;
- a fitted policy (the Bayesian MLP, streaming) widens its posterior before each fit, every
  ``scale`` divided by ``decay_factor`` (PyBandits multiplies each ``sigma`` by
  ``1 / decay_factor``, so the variance grows by ``1 / decay_factor**2``), except on an action's
  first fit (nothing learned yet to forget). Its ``forget(state, decay_factor, fresh)`` says how.

Only actions that get rows in an update forget, as in PyBandits (an action's model is updated only
with its own rows). ``decay_factor`` is in (0, 1]; 1 forgets nothing (the draws are those of the
base policy).

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import BetaBernoulli, Feedback, Forgetting
    >>> policy = Forgetting(BetaBernoulli())
    >>> state = policy.init(2, decay_factor=0.5)
    >>> fb = Feedback(jnp.zeros((4, 0)), jnp.array([0, 0, 0, 1]), jnp.array([1, 1, 1, 0]), jnp.ones(4, bool))
    >>> state, _ = policy.update(jax.random.key(0), state, fb)
    >>> state, _ = policy.update(jax.random.key(1), state, fb)
    >>> state.base.n_successes.tolist(), state.decayed.decayed_n_successes.tolist()
    ([7, 1], [5.5, 1.0])
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax._validation import check_decay_factor
from bandits_jax.likelihoods import BernoulliStats, counts
from bandits_jax.policies.base import (
    CountingPolicy,
    GroupedFeedback,
    PolicyBase,
    Prediction,
    UpdateInfo,
    stats_of,
)
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["DecayedCounts", "Forgetting", "ForgettingState", "check_decay_factor"]


class DecayedCounts(NamedTuple):
    """A counting policy's effective counts after decay (default float width, from 1, PyBandits'
    names)."""

    decayed_n_successes: Float[Array, " n_actions"]
    decayed_n_failures: Float[Array, " n_actions"]


class ForgettingState(NamedTuple):
    """The base policy's state, the decay factor (repeated per action, data) and, for a counting
    base, its decayed counts (None for a fitted one, whose posterior itself forgets)."""

    base: Any
    decay_factor: Float[Array, " n_actions"]
    decayed: DecayedCounts | None

    @property
    def n_actions(self) -> int:
        return self.decay_factor.shape[0]


@dataclasses.dataclass(frozen=True)
class Forgetting(PolicyBase):
    """``base`` with forgetting (see the module docstring).

    Attributes:
        base: a counting policy (:class:`~bandits_jax.policies.BetaBernoulli`) or one with a
            ``forget`` rule (:class:`~bandits_jax.policies.BnnTS` without a replay buffer).
    """

    base: Any
    #: the base :func:`bandits_jax.policies.spec.build` gives it by name
    default_base: ClassVar[str] = "bnn_ts"

    def __post_init__(self):
        if isinstance(self.base, Forgetting):
            raise TypeError("base must not itself be a Forgetting policy")
        if not (isinstance(self.base, CountingPolicy) or callable(getattr(self.base, "forget", None))):
            raise TypeError(
                f"decay_factor needs a counting policy (beta_bernoulli) or one with a forgetting rule "
                f"(bnn_ts); {type(self.base).__name__} has none"
            )
        if getattr(self.base, "replay_capacity", None) is not None:
            raise ValueError(
                "decay_factor widens a streaming posterior before each fit; a policy with a replay "
                "buffer refits its buffer to the original prior instead (use replay_capacity=None)"
            )

    @property
    def likelihood(self) -> Any:
        return self.base.likelihood

    @property
    def n_features(self) -> int | None:
        return getattr(self.base, "n_features", None)

    @property
    def counting(self) -> bool:
        return isinstance(self.base, CountingPolicy)

    @classmethod
    def example(cls, n_features: int) -> Forgetting:
        """Forgetting on a small Bayesian MLP, for tests and demos."""
        from bandits_jax.policies.bnn_ts import BnnTS

        return cls(BnnTS.example(n_features))

    def init(self, n_actions: int, decay_factor: ArrayLike = 1.0, **base_prior: Any) -> ForgettingState:
        """The base's ``init(n_actions, **base_prior)`` and ``decay_factor`` in (0, 1] (a scalar;
        checked unless traced), stored once per action."""
        check_decay_factor(decay_factor)
        base = self.base.init(n_actions, **base_prior)
        return _init(self.counting, base, jnp.asarray(decay_factor, jnp.result_type(float)))

    def predict(
        self,
        key: PRNGKeyArray,
        state: ForgettingState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """The base's prediction; a counting base draws from its decayed counts."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: ForgettingState, grouped: GroupedFeedback
    ) -> tuple[ForgettingState, UpdateInfo]:
        """Forget, then the base's update, for the actions with rows. An action whose fit goes
        non-finite keeps its state bit for bit (not widened)."""
        return _update_grouped(self, key, state, grouped)

    def input_overflow(
        self, state: ForgettingState, grouped: GroupedFeedback
    ) -> Bool[Array, "n_actions rows"]:
        check = getattr(self.base, "input_overflow", None)
        return grouped.valid & False if check is None else check(state.base, grouped)

    def posterior_mean(self, state: ForgettingState, context) -> Array:
        """The base's posterior-mean scores (a counting base's: the logits of its decayed means)."""
        own = getattr(self.base, "posterior_mean", None)
        if own is not None:
            return own(state.base, context)
        p = self.predict(jax.random.key(0), state, context).mean_probs
        return jnp.log(p) - jnp.log1p(-p)


def effective_state(policy: Forgetting, state: ForgettingState) -> Any:
    """The state the base predicts from: a counting base's decayed counts (its raw counts where
    ``decay_factor`` is 1, exact however large), else the base's own state."""
    if not policy.counting:
        return state.base
    raw_s, raw_f = counts(stats_of(state.base))
    same = state.decay_factor == 1.0
    return BernoulliStats(
        jnp.where(same, raw_s, state.decayed.decayed_n_successes),
        jnp.where(same, raw_f, state.decayed.decayed_n_failures),
    )


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: Forgetting, key, state: ForgettingState, context, strategy, action_mask) -> Prediction:
    return policy.base.predict(key, effective_state(policy, state), context, strategy, action_mask)


@partial(jax.jit, static_argnums=(0,))
def _init(counting: bool, base, decay_factor) -> ForgettingState:
    n_actions = jax.tree.leaves(base)[0].shape[0]
    factor = jnp.broadcast_to(decay_factor, (n_actions,))
    decayed = DecayedCounts(*(c.astype(factor.dtype) for c in counts(stats_of(base)))) if counting else None
    return ForgettingState(base, factor, decayed)


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(policy: Forgetting, key, state: ForgettingState, grouped: GroupedFeedback):
    fresh = grouped.valid.any(axis=1)
    d = state.decay_factor
    if policy.counting:
        base, info = policy.base.update_grouped(key, state.base, grouped)
        dtype = state.decayed.decayed_n_successes.dtype
        mass = jnp.where(grouped.valid, grouped.rewards, 0).astype(dtype).sum(axis=1)
        n = grouped.valid.sum(axis=1).astype(dtype)
        old = state.decayed

        def decay(count, new):
            return jnp.where(fresh, 1.0 + d * (count - 1.0) + new, count)

        decayed = DecayedCounts(decay(old.decayed_n_successes, mass), decay(old.decayed_n_failures, n - mass))
        return ForgettingState(base, d, decayed), info
    widened = policy.base.forget(state.base, d, fresh)
    base, info = policy.base.update_grouped(key, widened, grouped)
    kept = jax.tree.map(
        lambda new, old: jnp.where(info.ok.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), base, state.base
    )
    return ForgettingState(kept, d, None), info
