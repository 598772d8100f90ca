"""The functional core of the Bayesian-NN contextual bandit with configuration-first signatures
(``init`` / ``predict`` / ``update`` on pytrees), kept for code written against them.

Everything here is a thin layer over the policy :class:`~bandits_jax.policies.BnnTS` (one module
per algorithm lives in :mod:`bandits_jax.policies`, on one contract with the PRNG key first). The
functions are safe under ``jax.jit``, ``jax.vmap`` and ``lax.scan`` and do not validate their
inputs (the object API in :mod:`bandits_jax.cmab` does). The prior's ``mu`` and ``sigma`` of the
:class:`~bandits_jax.config.CmabConfig` are data: two configurations that differ only there share
compiled code.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax import core
    >>> cfg = core.CmabConfig(n_features=2, num_steps=10)
    >>> state = core.init(cfg, n_actions=3)
    >>> ctx = jnp.ones((4, 2))
    >>> pred = core.predict(state, ctx, jax.random.key(0))
    >>> pred.actions.shape, pred.probs.shape
    ((4,), (4, 3))
    >>> state, info = core.update(cfg, state, ctx, pred.actions, jnp.array([1, 0, 1, 1]), jax.random.key(1))
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Real

from bandits_jax.config import CmabConfig, Network
from bandits_jax.likelihoods import saturating_add
from bandits_jax.policies.base import Feedback, GroupedFeedback, Prediction, UpdateInfo, route, select
from bandits_jax.policies.bnn_ts import BnnState, BnnTS
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "CmabConfig",
    "CmabState",
    "Prediction",
    "UpdateInfo",
    "action_view",
    "init",
    "posterior_mean_logits",
    "predict",
    "prediction_from_logits",
    "route",
    "saturating_add",
    "update",
    "update_grouped",
]

#: The state of a CMAB: :class:`~bandits_jax.policies.bnn_ts.BnnState` (``loc``, ``scale``,
#: ``stats``; ``n_successes`` / ``n_failures`` read through to the likelihood's counters).
CmabState = BnnState


def init(config: CmabConfig, n_actions: int, dtype: Any = None) -> BnnState:
    """Cold-start state: every weight's posterior is the prior ``(mu, sigma)`` (with the config's
    ``use_layerwise_scaling`` and ``bias_std``), counters at 1.

    Raises:
        ValueError: the config has a ``decay_factor``: these functions keep a plain
            :class:`BnnState`; forgetting runs as the policy
            :class:`~bandits_jax.policies.Forgetting` (or through ``CmabBernoulli``).
    """
    _check_no_decay(config)
    return BnnTS.from_config(config).init(
        n_actions,
        config.mu,
        config.sigma,
        dtype,
        use_layerwise_scaling=config.use_layerwise_scaling,
        bias_std=config.bias_std,
    )


def _check_no_decay(config: CmabConfig | None) -> None:
    if config is not None and config.decay_factor is not None:
        raise ValueError(
            "config.decay_factor is not None: bandits_jax.core keeps a plain BnnState and does not "
            "forget; use bandits_jax.policies.Forgetting(BnnTS.from_config(config)) or CmabBernoulli"
        )


def predict(
    state: BnnState,
    context: Float[ArrayLike, "n_rows n_features"],
    key: PRNGKeyArray,
    strategy: Strategy = ClassicBandit(),
    action_mask: Bool[ArrayLike, " n_actions"] | None = None,
    config: CmabConfig | None = None,
) -> Prediction:
    """Thompson sampling: one posterior draw per row and action, then the strategy picks per row
    among the actions where ``action_mask`` is True. The state carries the network's structure, so
    no configuration is needed."""
    policy = BnnTS.from_config(config) if config is not None else _policy_of(state)
    return policy.predict(key, state, context, strategy, action_mask)


def prediction_from_logits(
    logits: Float[Array, "n_rows n_actions"],
    key: PRNGKeyArray,
    strategy: Strategy,
    action_mask: Bool[Array, " n_actions"] | None = None,
) -> Prediction:
    """The strategy's choice per row from sampled Bernoulli logits (no mean scores: they are the
    sampled ones)."""
    probs = jax.nn.sigmoid(logits)
    return select(logits, probs, probs, key, strategy, action_mask)


def update(
    config: CmabConfig,
    state: BnnState,
    context: Float[ArrayLike, "n_rows n_features"],
    actions: Int[ArrayLike, " n_rows"],
    rewards: Real[ArrayLike, " n_rows"],
    key: PRNGKeyArray,
    mask: Bool[ArrayLike, " n_rows"] | None = None,
    rows_per_action: int | None = None,
) -> tuple[BnnState, UpdateInfo]:
    """Streaming Bayesian update of every action on its own rows of the batch (``mask`` marks the
    real rows; ``rows_per_action`` is the static padded row count per action, default the batch
    size). Actions whose fit went non-finite keep their previous posterior and counters."""
    actions = jax.numpy.asarray(actions)
    mask = np.ones(actions.shape, bool) if mask is None else jax.numpy.asarray(mask)  # NumPy: no compile
    feedback = Feedback(jax.numpy.asarray(context), actions, jax.numpy.asarray(rewards), mask)
    _check_no_decay(config)
    return BnnTS.from_config(config).update(key, state, feedback, rows_per_action)


def update_grouped(
    config: CmabConfig,
    state: BnnState,
    context: Float[ArrayLike, "n_actions rows_per_action n_features"],
    rewards: Real[ArrayLike, "n_actions rows_per_action"],
    valid: Bool[ArrayLike, "n_actions rows_per_action"],
    key: PRNGKeyArray,
) -> tuple[BnnState, UpdateInfo]:
    """:func:`update` on rows already grouped by action (valid rows first), as the object API
    groups them with NumPy."""
    return BnnTS.from_config(config).update_grouped(key, state, GroupedFeedback(context, rewards, valid))


def action_view(state: Any, index: int) -> Any:
    """One action's slice of a state (no action axis)."""
    return jax.tree.map(lambda leaf: leaf[index], state)


def posterior_mean_logits(
    state: BnnState, context: Float[ArrayLike, "n_rows n_features"]
) -> Float[Array, "n_rows n_actions"]:
    """Logits of every row under every action's posterior mean (no sampling)."""
    return _policy_of(state).posterior_mean(state, context)


def _policy_of(state: BnnState) -> BnnTS:
    """A policy that can predict from ``state`` (whose pytree carries the network's structure)."""
    loc = state.loc
    return _policy_for(loc.widths, loc.activation, loc.use_residual_connections)


@functools.lru_cache(maxsize=256)
def _policy_for(widths: tuple[int, ...], activation: str, residual: bool) -> BnnTS:
    return BnnTS(Network(widths[0], tuple(widths[1:-1]), activation, residual))
