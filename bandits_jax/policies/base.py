"""The policy contract, written once (as optax's ``GradientTransformation`` and blackjax's
``base.py``): the types that flow in and out of every policy, and the protocol they implement.

A policy is a frozen, hashable dataclass of its *static* settings (so equal settings share compiled
code); values a sweep varies (prior location and scale, ...) are *data*: arguments of ``init`` that
end up in the state. Its methods are pure and call module-level jitted functions:

- ``init(n_actions, **prior) -> state``: a pytree whose every leaf has a leading action axis;
- ``predict(key, state, context, strategy, action_mask) -> Prediction``: one Thompson draw (or the
  policy's own score) per row and action, then the strategy's choice per row;
- ``update_grouped(key, state, grouped) -> (state, UpdateInfo)``: every action fitted on its own
  rows (``GroupedFeedback``, the layout a ``vmap`` over actions wants);
- ``update(key, state, feedback) -> (state, UpdateInfo)``: the same from a flat batch
  (``Feedback``), routed to the actions on the device (:class:`PolicyBase` writes this once);
- ``example(n_features)``: a small instance, which the contract tests (tests/test_contract.py)
  run every registered policy through: adding a policy is one module and one registry line.

The PRNG key is always the first argument. An action without rows keeps its state bit for bit, and
masked rows change nothing. The reward model is the policy's ``likelihood``
(:mod:`bandits_jax.likelihoods`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Real

__all__ = [
    "CountingPolicy",
    "Feedback",
    "GroupedFeedback",
    "Policy",
    "PolicyBase",
    "Prediction",
    "UpdateInfo",
    "route",
    "select",
]


class Feedback(NamedTuple):
    """A flat batch: per row its context, the chosen action's index, the reward, and whether the
    row is real (padding rows are False)."""

    context: Float[Array, "n_rows n_features"]
    actions: Int[Array, " n_rows"]
    rewards: Real[Array, " n_rows"]
    mask: Bool[Array, " n_rows"]


class GroupedFeedback(NamedTuple):
    """A batch grouped by action: row ``j`` of action ``a`` is ``context[a, j]`` with reward
    ``rewards[a, j]`` where ``valid[a, j]``; valid rows come first."""

    context: Float[Array, "n_actions rows n_features"]
    rewards: Real[Array, "n_actions rows"]
    valid: Bool[Array, "n_actions rows"]


class Prediction(NamedTuple):
    """Per row: the chosen action index; per row and action: the sampled mean reward (``probs``, a
    probability for Bernoulli rewards), the draw on the likelihood's link scale (``logits``), and the
    posterior-mean reward (``mean_probs``: what epsilon-greedy exploits). An unused field costs
    nothing inside a jitted caller (XLA drops it)."""

    actions: Int[Array, " n_rows"]
    probs: Float[Array, "n_rows n_actions"]
    logits: Float[Array, "n_rows n_actions"]
    mean_probs: Float[Array, "n_rows n_actions"]


class UpdateInfo(NamedTuple):
    """Diagnostics of an update: the loss trace per action (``(n_actions, 0)`` for closed-form
    policies), whether each action's fit stayed finite (False: it kept its previous state), and
    how many rows each action got."""

    losses: Float[Array, "n_actions n_steps"]
    ok: Bool[Array, " n_actions"]
    n_rows: Int[Array, " n_actions"]


@runtime_checkable
class Policy(Protocol):
    """What every policy implements (see the module docstring)."""

    likelihood: Any

    @classmethod
    def example(cls, n_features: int) -> Policy: ...

    def init(self, n_actions: int, **prior: Any) -> Any: ...

    def predict(
        self,
        key: PRNGKeyArray,
        state: Any,
        context: Array,
        strategy: Any = ...,
        action_mask: Array | None = ...,
    ) -> Prediction: ...

    def update_grouped(
        self, key: PRNGKeyArray, state: Any, grouped: GroupedFeedback
    ) -> tuple[Any, UpdateInfo]: ...

    def update(self, key: PRNGKeyArray, state: Any, feedback: Feedback) -> tuple[Any, UpdateInfo]: ...


def select(
    logits: Float[Array, "n_rows n_actions"],
    probs: Float[Array, "n_rows n_actions"],
    mean_probs: Float[Array, "n_rows n_actions"],
    key: PRNGKeyArray,
    strategy: Any,
    action_mask: Bool[Array, " n_actions"] | None = None,
) -> Prediction:
    """The strategy's choice per row from the sampled scores (shared by every policy). The strategy
    sees ``-inf`` for actions where ``action_mask`` is False, so it never picks them while another
    action is allowed (the mask is traced: a new mask compiles nothing)."""
    seen = probs if action_mask is None else jnp.where(action_mask, probs, -jnp.inf)
    return Prediction(strategy(seen, key), probs, logits, mean_probs)


def count_update(likelihood: Any, stats: Any, grouped: GroupedFeedback) -> tuple[Any, UpdateInfo]:
    """The update of a policy whose state is only the likelihood's counters (exact, no fit): the
    new counters and an :class:`UpdateInfo` with no loss trace. Call it inside a jitted function."""
    stats = likelihood.update_stats(stats, grouped.rewards.astype(jnp.float32), grouped.valid)
    n = grouped.valid.shape[0]
    info = UpdateInfo(
        jnp.zeros((n, 0), jnp.float32), jnp.ones((n,), bool), grouped.valid.sum(axis=1).astype(jnp.int32)
    )
    return stats, info


def route(
    n_actions: int,
    actions: Int[Array, " n_rows"],
    mask: Bool[Array, " n_rows"],
    rows_per_action: int,
) -> tuple[Int[Array, "n_actions rows_per_action"], Bool[Array, "n_actions rows_per_action"]]:
    """Indices of each action's rows, padded to ``rows_per_action``, valid rows first.

    Rows beyond ``rows_per_action`` for one action are dropped, so it must be at least the largest
    per-action count (the batch size is always safe).
    """
    n_rows = actions.shape[0]
    group = jnp.where(mask, actions, n_actions)
    order = jnp.argsort(group, stable=True)
    counts = jnp.zeros((n_actions,), jnp.int32).at[actions].add(mask.astype(jnp.int32))
    starts = jnp.cumsum(counts) - counts
    offsets = jnp.arange(rows_per_action)
    valid = offsets[None, :] < counts[:, None]
    idx = jnp.clip(starts[:, None] + offsets[None, :], 0, n_rows - 1)
    return order[idx], valid


def stats_of(state: Any) -> Any:
    """The likelihood's counters of a policy state (``.n_successes`` / ``.n_failures`` for
    Bernoulli), wherever the policy keeps them: the state itself, its ``stats``, or a nested state
    (a wrapper's ``base``, LinUCB's ``posterior``)."""
    if hasattr(state, "stats"):
        return state.stats
    if hasattr(state, "n_successes"):
        return state
    for name in getattr(state, "_fields", ()):
        sub = getattr(state, name)
        if isinstance(sub, tuple):
            try:
                return stats_of(sub)
            except TypeError:
                pass
    raise TypeError(f"the policy state {type(state).__name__} has no likelihood counters")


def n_actions_of(state: Any) -> int:
    """The length of the leading action axis of a policy state."""
    return jax.tree.leaves(state)[0].shape[0]


class PolicyBase:
    """Mixin of the generic parts of the contract: ``update`` from a flat batch is a routing on the
    device plus the policy's own ``update_grouped``."""

    def update(
        self, key: PRNGKeyArray, state: Any, feedback: Feedback, rows_per_action: int | None = None
    ) -> tuple[Any, UpdateInfo]:
        """``update_grouped`` on ``feedback`` routed to its actions (``rows_per_action`` static,
        default the batch size)."""
        return _route_and_update(self, key, state, feedback, rows_per_action or feedback.actions.shape[0])


class CountingPolicy(PolicyBase):
    """Mixin of a policy whose state is only its likelihood's counters (no settings, no fit):
    ``example``, ``init`` and the exact counting ``update_grouped``; the subclass writes
    ``predict``."""

    @classmethod
    def example(cls, n_features: int) -> Any:
        """The policy (it has no settings; ``n_features`` is ignored), for tests and demos."""
        return cls()

    def init(self, n_actions: int) -> Any:
        """The likelihood's counters of ``n_actions`` actions (``Beta(1, 1)`` for Bernoulli)."""
        return self.likelihood.init_stats(n_actions)

    def update_grouped(
        self, key: PRNGKeyArray, state: Any, grouped: GroupedFeedback
    ) -> tuple[Any, UpdateInfo]:
        """Add each action's rows to its counters (exact, saturating; the key is unused)."""
        return _count_update(self, state, grouped)


@partial(jax.jit, static_argnums=(0,))
def _count_update(policy, state, grouped: GroupedFeedback):
    return count_update(policy.likelihood, state, grouped)


@partial(jax.jit, static_argnames=("policy", "rows_per_action"))
def _route_and_update(policy, key, state, feedback: Feedback, rows_per_action: int):
    rows, valid = route(n_actions_of(state), feedback.actions, feedback.mask, rows_per_action)
    grouped = GroupedFeedback(feedback.context[rows], feedback.rewards[rows], valid)
    return policy.update_grouped(key, state, grouped)
