"""Pure functional core of the contextual bandit: ``init``, ``predict`` and ``update`` on pytrees.

Every action's posterior and counters are stacked on a leading action axis in a :class:`CmabState`.
The functions are jitted with the :class:`~bandits_jax.config.CmabConfig` as a static argument, and
are safe to call under ``jax.jit``, ``jax.vmap`` and ``lax.scan`` (the simulation does exactly
that). They do not validate their inputs: the object API in :mod:`bandits_jax.cmab` does.

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

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Real

from bandits_jax import _random
from bandits_jax.bnn import MLP, init_mlp, logits_from_noise, n_units
from bandits_jax.config import CmabConfig
from bandits_jax.inference import fit
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "CmabConfig",
    "CmabState",
    "Prediction",
    "UpdateInfo",
    "init",
    "predict",
    "update",
    "update_grouped",
]


class CmabState(NamedTuple):
    """State of a CMAB; every leaf has a leading action axis.

    ``loc`` / ``scale`` are the mean-field Normal posterior, which is also the prior of the next
    update (for ``dist_type="studentt"`` the prior is a Student-t with this location and scale).
    ``n_successes`` / ``n_failures`` count rewards from 1, as in PyBandits.
    """

    loc: MLP
    scale: MLP
    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]

    @property
    def n_actions(self) -> int:
        return self.n_successes.shape[0]


class Prediction(NamedTuple):
    """Output of :func:`predict`: per row, the chosen action index, sampled probabilities and logits."""

    actions: Int[Array, " n_rows"]
    probs: Float[Array, "n_rows n_actions"]
    logits: Float[Array, "n_rows n_actions"]


class UpdateInfo(NamedTuple):
    """Diagnostics of :func:`update`: per-action SVI loss trace and whether the fit stayed finite."""

    losses: Float[Array, "n_actions num_steps"]
    ok: Bool[Array, " n_actions"]
    n_rows: Int[Array, " n_actions"]


@partial(jax.jit, static_argnums=(0, 1, 2))
def init(config: CmabConfig, n_actions: int, dtype=None) -> CmabState:
    """Cold-start state: every weight's posterior is the prior ``(mu, sigma)``, counters at 1.

    Jitted (one small compilation per configuration instead of one per leaf operation).
    """

    def one(fill):
        return init_mlp(
            config.n_features,
            config.hidden_dim_list,
            config.activation,
            config.use_residual_connections,
            fill_weight=fill,
            dtype=dtype,
        )

    stack = partial(jax.tree.map, lambda leaf: jnp.broadcast_to(leaf, (n_actions, *leaf.shape)))
    ones = jnp.ones((n_actions,), jnp.int32)
    return CmabState(stack(one(config.mu)), stack(one(config.sigma)), ones, ones)


@jax.jit
def predict(
    state: CmabState,
    context: Float[Array, "n_rows n_features"],
    key: PRNGKeyArray,
    strategy: Strategy = ClassicBandit(),
    action_mask: Bool[Array, " n_actions"] | None = None,
) -> Prediction:
    """Thompson sampling: one posterior draw per row and action, then the strategy picks per row.

    The state carries the network's structure, so no configuration is needed. Cost is one forward
    pass per row and action (local reparameterisation), memory ``O(rows x actions x width)``.
    Actions where ``action_mask`` is False are never chosen (the mask is traced: a new mask
    compiles nothing); their draws are still returned.
    """
    draw_key, strategy_key = jax.random.split(key)
    dtype = jax.tree.leaves(state.loc)[0].dtype
    context = context.astype(dtype)
    # Every action's noise in one flat draw (see bandits_jax._random).
    unit_counts = n_units(state.loc)  # bias shapes end in the width, action axis or not
    eps = _random.normal(draw_key, (state.n_actions, context.shape[0], unit_counts), dtype)
    logits = jax.vmap(lambda loc, scale, e: logits_from_noise(loc, scale, context, e))(
        state.loc, state.scale, eps
    ).T
    return prediction_from_logits(logits, strategy_key, strategy, action_mask)


def prediction_from_logits(
    logits: Float[Array, "n_rows n_actions"],
    key: PRNGKeyArray,
    strategy: Strategy,
    action_mask: Bool[Array, " n_actions"] | None = None,
) -> Prediction:
    """The strategy's choice per row from sampled logits (shared by every Thompson policy).

    The strategy sees ``-inf`` for actions where ``action_mask`` is False, so it never picks them
    while another action is allowed.
    """
    probs = jax.nn.sigmoid(logits)
    seen = probs if action_mask is None else jnp.where(action_mask, probs, -jnp.inf)
    return Prediction(strategy(seen, key), probs, logits)


def route(
    n_actions: int,
    actions: Int[Array, " n_rows"],
    mask: Bool[Array, " n_rows"],
    rows_per_action: int,
) -> tuple[Int[Array, "n_actions rows_per_action"], Bool[Array, "n_actions rows_per_action"]]:
    """Indices of each action's rows, padded to ``rows_per_action``, valid rows first.

    Rows beyond ``rows_per_action`` for one action are dropped, so it must be at least the largest
    per-action count (the object API picks a power-of-two bucket; ``None`` in :func:`update` means
    the whole batch, always safe).
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


@partial(jax.jit, static_argnames=("config", "rows_per_action"))
def update(
    config: CmabConfig,
    state: CmabState,
    context: Float[Array, "n_rows n_features"],
    actions: Int[Array, " n_rows"],
    rewards: Real[Array, " n_rows"],
    key: PRNGKeyArray,
    mask: Bool[Array, " n_rows"] | None = None,
    rows_per_action: int | None = None,
) -> tuple[CmabState, UpdateInfo]:
    """Streaming Bayesian update of every action on its own rows of the batch.

    Args:
        config: static settings (the SVI steps, optimizer, prior family).
        state: current state; its posterior is this update's prior and the guide's start.
        context, actions, rewards: the batch; ``actions`` are indices into the action axis,
            ``rewards`` in {0, 1} (values in [0, 1] act as soft labels).
        key: PRNG key of this update's SVI draws (see :func:`bandits_jax.inference.fit`).
        mask: which rows are real (padding is False); default all.
        rows_per_action: static padded row count per action (default: the batch size).

    Returns:
        The new state and an :class:`UpdateInfo`. Actions whose fit went non-finite keep their
        previous posterior and counters (``info.ok`` is False for them).
    """
    if mask is None:
        mask = jnp.ones(actions.shape, bool)
    rows, valid = route(state.n_actions, actions, mask, rows_per_action or actions.shape[0])
    return update_grouped(config, state, context[rows], rewards[rows], valid, key)


@partial(jax.jit, static_argnames=("config",))
def update_grouped(
    config: CmabConfig,
    state: CmabState,
    context: Float[Array, "n_actions rows_per_action n_features"],
    rewards: Real[Array, "n_actions rows_per_action"],
    valid: Bool[Array, "n_actions rows_per_action"],
    key: PRNGKeyArray,
) -> tuple[CmabState, UpdateInfo]:
    """:func:`update` on rows already grouped by action: row ``j`` of action ``a`` is
    ``context[a, j]`` with reward ``rewards[a, j]`` where ``valid[a, j]`` (valid rows first).

    This is what :func:`update` runs after :func:`route`; the object API groups the rows with
    NumPy instead, which keeps the sort and gathers out of the compiled program.
    """
    dtype = jax.tree.leaves(state.loc)[0].dtype
    x = context.astype(dtype)
    y = rewards.astype(dtype)
    result = fit(config, state.loc, state.scale, x, y, valid, key)
    n_rows = valid.sum(axis=1).astype(jnp.int32)
    successes = jnp.round(jnp.where(valid, y, 0).sum(axis=1)).astype(jnp.int32)
    ok = result.ok
    new_state = CmabState(
        result.loc,
        result.scale,
        saturating_add(state.n_successes, jnp.where(ok, successes, 0)),
        saturating_add(state.n_failures, jnp.where(ok, n_rows - successes, 0)),
    )
    return new_state, UpdateInfo(result.losses, ok, n_rows)


def saturating_add(count: Int[Array, "*n"], add: Int[Array, "*n"]) -> Int[Array, "*n"]:
    """``count + add`` for ``add >= 0``, held at the dtype's maximum instead of wrapping around
    (int32 counters would turn negative after 2**31 events and make Beta draws NaN)."""
    top = jnp.iinfo(count.dtype).max
    add = add.astype(count.dtype)
    return jnp.where(count > top - add, top, count + add)


def action_view(state: CmabState, index: int) -> CmabState:
    """One action's slice of the state (no action axis)."""
    return jax.tree.map(lambda leaf: leaf[index], state)


@jax.jit
def posterior_mean_logits(
    state: CmabState, context: Float[Array, "n_rows n_features"]
) -> Float[Array, "n_rows n_actions"]:
    """Logits of every row under every action's posterior mean (no sampling)."""
    context = context.astype(jax.tree.leaves(state.loc)[0].dtype)
    return jax.vmap(lambda net: jax.vmap(net)(context))(state.loc).T
