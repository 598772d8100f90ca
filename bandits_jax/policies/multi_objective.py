"""Multi-objective rewards on the contract: ``MultiObjective(base, n_objectives)`` keeps one
independent ``base`` model per action *and objective* (PyBandits' ``BetaMO`` / BNN ``models``
lists: a Beta posterior or a Bayesian MLP per objective) and lets a multi-objective strategy
(:class:`~bandits_jax.strategy.MultiObjectiveBandit`: a random member of the Pareto front of the
sampled reward vectors, or :class:`~bandits_jax.strategy.MultiObjectiveCostControlBandit`) choose.

The state is the base's state for ``n_actions * n_objectives`` "arms", every leaf reshaped to a
leading ``(n_actions, n_objectives)``: the action axis stays first (the object API's padding,
persistence and transfer see one entry per action), and the base runs unchanged on the flattened
arms, so its compiled code, its vmap over arms and its guarantees carry over. Rewards have a
trailing objective axis: ``Feedback.rewards`` is ``(n_rows, n_objectives)``. An action whose fit
goes non-finite in any objective keeps every objective's state bit for bit.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import BetaBernoulli, Feedback
    >>> from bandits_jax.strategy import MultiObjectiveBandit
    >>> policy = MultiObjective(BetaBernoulli(), n_objectives=2)
    >>> state = policy.init(3)
    >>> state.n_successes.shape
    (3, 2)
    >>> pred = policy.predict(jax.random.key(0), state, jnp.zeros((4, 0)), MultiObjectiveBandit())
    >>> pred.actions.shape, pred.probs.shape
    ((4,), (4, 3, 2))
    >>> fb = Feedback(jnp.zeros((2, 0)), jnp.array([0, 2]), jnp.array([[1, 0], [1, 1]]), jnp.ones(2, bool))
    >>> state, info = policy.update(jax.random.key(1), state, fb)
    >>> state.n_successes.tolist()
    [[2, 1], [1, 1], [2, 2]]
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo
from bandits_jax.strategy import ClassicBandit, MultiObjectiveBandit, Strategy

__all__ = ["MultiObjective"]


def _split(tree: Any, n_objectives: int) -> Any:
    """Leaves ``(n_actions * n_objectives, ...)`` -> ``(n_actions, n_objectives, ...)``."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] // n_objectives, n_objectives) + x.shape[1:]), tree)


def _merge(tree: Any) -> Any:
    """Leaves ``(n_actions, n_objectives, ...)`` -> ``(n_actions * n_objectives, ...)``."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), tree)


@dataclasses.dataclass(frozen=True)
class MultiObjective(PolicyBase):
    """``n_objectives`` independent ``base`` models per action (see the module docstring).

    Attributes:
        base: any policy on the contract (e.g. :class:`~bandits_jax.policies.BetaBernoulli`,
            :class:`~bandits_jax.policies.BnnTS`).
        n_objectives: the length of every reward vector (at least 1).
    """

    base: Any
    n_objectives: int = 2

    def __post_init__(self):
        if isinstance(self.base, MultiObjective):
            raise TypeError("base must not itself be a MultiObjective policy")
        n = self.n_objectives
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_objectives must be a positive int, got {n!r}")

    @property
    def likelihood(self) -> Any:
        return self.base.likelihood

    @property
    def n_features(self) -> int | None:
        return getattr(self.base, "n_features", None)

    @classmethod
    def example(cls, n_features: int) -> MultiObjective:
        """Two objectives on a small Bayesian MLP, for tests and demos."""
        from bandits_jax.policies.bnn_ts import BnnTS

        return cls(BnnTS.example(n_features), 2)

    def init(self, n_actions: int, **base_prior: Any) -> Any:
        """The base's ``init(n_actions * n_objectives, **base_prior)``, split per action."""
        return _split(self.base.init(n_actions * self.n_objectives, **base_prior), self.n_objectives)

    def predict(
        self,
        key: PRNGKeyArray,
        state: Any,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = MultiObjectiveBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """Every arm's draw from the base (one call), ``probs``, ``logits`` and ``mean_probs`` of
        shape ``(n_rows, n_actions, n_objectives)``; the strategy sees ``-inf`` in every objective
        of a masked action, and must choose among reward vectors (a single-objective built-in such
        as ``ClassicBandit`` is refused)."""
        from bandits_jax.strategy import (
            BestActionIdentificationBandit,
            ClassicBandit,
            CostControlBandit,
            DynamicPricingBandit,
        )

        if isinstance(
            strategy, (ClassicBandit, BestActionIdentificationBandit, CostControlBandit, DynamicPricingBandit)
        ):
            raise TypeError(
                f"{type(strategy).__name__} compares single rewards; a MultiObjective policy needs a "
                "multi-objective strategy (MultiObjectiveBandit, MultiObjectiveCostControlBandit)"
            )
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: Any, grouped: GroupedFeedback
    ) -> tuple[Any, UpdateInfo]:
        """Each action's rows go to each of its objectives' models with that objective's reward
        (``grouped.rewards`` ``(n_actions, rows, n_objectives)``); ``info`` per action (``ok``
        False if any objective's fit went non-finite; then the action keeps its whole state;
        ``losses`` ``(n_actions, n_objectives, n_steps)``)."""
        return _update_grouped(self, key, state, grouped)

    def input_overflow(self, state: Any, grouped: GroupedFeedback) -> Bool[Array, "n_actions rows"]:
        check = getattr(self.base, "input_overflow", None)
        if check is None:
            return grouped.valid & False
        bad = check(_merge(state), _expand(grouped, self.n_objectives))
        return bad.reshape(grouped.valid.shape[:1] + (self.n_objectives,) + bad.shape[1:]).any(axis=1)


def _expand(grouped: GroupedFeedback, n_objectives: int) -> GroupedFeedback:
    """Each action's rows repeated for its objectives' arms, with that objective's reward."""

    def repeat(x):
        return jnp.repeat(x, n_objectives, axis=0)

    rewards = grouped.rewards
    if rewards.ndim == 2:  # a scalar reward counts for every objective
        rewards = jnp.broadcast_to(rewards[..., None], rewards.shape + (n_objectives,))
    per_arm = jnp.moveaxis(rewards, 2, 1).reshape((rewards.shape[0] * n_objectives, rewards.shape[1]))
    return GroupedFeedback(repeat(grouped.context), per_arm, repeat(grouped.valid))


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: MultiObjective, key, state, context, strategy, action_mask) -> Prediction:
    draw_key, strategy_key = jax.random.split(key)
    out = policy.base.predict(draw_key, _merge(state), context, ClassicBandit(), None)
    k = policy.n_objectives

    def per_action(x):
        return x.reshape(x.shape[0], -1, k)

    probs, logits, mean = per_action(out.probs), per_action(out.logits), per_action(out.mean_probs)
    seen = probs if action_mask is None else jnp.where(action_mask[None, :, None], probs, -jnp.inf)
    return Prediction(strategy(seen, strategy_key), probs, logits, mean)


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(policy: MultiObjective, key, state, grouped: GroupedFeedback):
    k = policy.n_objectives
    new, info = policy.base.update_grouped(key, _merge(state), _expand(grouped, k))
    new = _split(new, k)
    ok = info.ok.reshape(-1, k).all(axis=1)
    kept = jax.tree.map(lambda n, o: jnp.where(ok.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, state)
    losses = info.losses.reshape((grouped.valid.shape[0], k) + info.losses.shape[1:])
    return kept, UpdateInfo(losses, ok, grouped.valid.sum(axis=1).astype(jnp.int32))
