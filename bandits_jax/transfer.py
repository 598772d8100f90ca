"""Transfer learning: evolve a trained bandit into a new action set or a larger network.

:func:`edit_model_on_the_fly` merges a trained model into a *template*, a model built (usually
with ``cold_start``) the way the evolved model should look. The merge is pytree surgery on the
stacked state: one gather over the action axis and one block copy per leaf, for all actions at
once.

Examples:
    >>> from bandits_jax.cmab import CmabBernoulli
    >>> from bandits_jax.transfer import edit_model_on_the_fly
    >>> old = CmabBernoulli.cold_start(["a", "b"], n_features=3, random_seed=0)
    >>> template = CmabBernoulli.cold_start(["a", "b", "c"], n_features=4, random_seed=1)
    >>> new = edit_model_on_the_fly(old, template)
    >>> new.action_ids, new.input_dim
    (('a', 'b', 'c'), 4)
"""

from __future__ import annotations

import logging
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax._bandit import Bandit
from bandits_jax.config import CmabConfig
from bandits_jax.likelihoods import BernoulliStats, SoftBernoulliStats, counts
from bandits_jax.policies.base import stats_of
from bandits_jax.policies.forgetting import DecayedCounts, ForgettingState

__all__ = ["check_network_growth", "edit_model_on_the_fly"]

logger = logging.getLogger(__name__)

Mab = TypeVar("Mab", bound=Bandit)

# The evolved model's key is fold_in(template key, tag): a stream of its own, not a copy of the
# template's, and the template itself is left untouched.
_KEY_TAG = 0x7472616E


def edit_model_on_the_fly(current_mab: Mab, new_mab: Mab) -> Mab:
    """A new model with ``new_mab``'s actions and settings and ``current_mab``'s learning.

    ``new_mab`` is the template: it fixes the action set and its order, the strategy and every
    setting (network structure, prior, ``update_kwargs``). For an action in both models the result
    keeps ``current_mab``'s learned state: ``n_successes``, ``n_failures`` and the posterior
    ``loc`` / ``scale`` (which is also the prior the next update starts from). Actions only in the
    template start from the template's state; actions only in ``current_mab`` are dropped.

    The network may grow. New input features (more ``n_features``) take the template's rows of
    the first layer's weight; a wider hidden layer keeps the old top-left block of every weight
    and bias it touches and takes the rest from the template. The old block is copied bit for bit,
    so with the template's default prior mean of 0 the posterior mean of an old action is the same
    function as before on contexts whose new features are 0.

    Neither argument is modified; the result has a PRNG key of its own, derived from the
    template's. What was done is logged at INFO level on the ``bandits_jax.transfer`` logger.

    Args:
        current_mab: the trained model, a :class:`~bandits_jax.cmab.CmabBernoulli` or a
            :class:`~bandits_jax.smab.SmabBernoulli`.
        new_mab: the template, of the same kind.

    Returns:
        A new model of ``new_mab``'s class.

    Raises:
        TypeError: the two are not both CMABs or both SMABs.
        ValueError: the networks cannot carry the learned state over: a different
            ``activation`` or ``use_residual_connections``, fewer features, a different number of
            hidden layers, or a narrower hidden layer in the template. The message names an action
            in common, the setting, and both values. Multi-objective models carry their state only
            to a template of the same ``n_objectives`` (and, for a CMAB, the same network: it
            does not grow yet). (With no action in common nothing is carried over, so any
            structure is accepted.)

    Examples:
        >>> from bandits_jax.smab import SmabBernoulli
        >>> old = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
        >>> old.update(actions=["a", "a"], rewards=[1, 1])
        >>> new = edit_model_on_the_fly(old, SmabBernoulli.cold_start(["c", "a"], random_seed=1))
        >>> [(a, new.actions[a].n_successes) for a in new.action_ids]
        [('c', 1), ('a', 3)]
    """
    # Class-agnostic: models of one kind merge, and the template checks what it can carry over.
    if not (
        isinstance(current_mab, Bandit) and isinstance(new_mab, Bandit) and current_mab._kind == new_mab._kind
    ):
        raise TypeError(
            "current_mab and new_mab must both be CmabBernoulli or both SmabBernoulli (models of one "
            f"kind), got current_mab={type(current_mab).__name__}, new_mab={type(new_mab).__name__}"
        )
    # Both models' state (padded to their action buckets) and key, each read as one consistent pair.
    old_state, _ = current_mab._padded_snapshot()
    new_state, new_key = new_mab._padded_snapshot()
    index = {aid: i for i, aid in enumerate(current_mab.action_ids)}
    src = np.full(jax.tree.leaves(new_state)[0].shape[0], -1, dtype=np.int32)
    src[: len(new_mab.action_ids)] = [index.get(aid, -1) for aid in new_mab.action_ids]
    common = [aid for aid in new_mab.action_ids if aid in index]
    if common:
        new_mab._check_transfer(current_mab, common)
        old_state = _conform(old_state, new_state, src[src >= 0], common)
        state, key = _merge(old_state, new_state, src, new_key)
        if isinstance(new_state, ForgettingState):  # the template's setting, as every other
            state = state._replace(decay_factor=new_state.decay_factor)
    else:  # nothing to carry over; the arrays are immutable, so sharing them is safe
        state, key = new_state, jax.random.fold_in(new_key, _KEY_TAG)
    _log_merge(current_mab.action_ids, new_mab.action_ids, common)
    return type(new_mab)._from_padded(
        new_mab.action_ids, new_mab._config, state, new_mab.strategy, key, new_mab.exploration
    )


@jax.jit
def _merge(old_state, new_state, src, template_key):
    """Every leaf grafted in one compiled call (one dispatch instead of several per leaf), and the
    evolved model's key. ``src[j]`` is the old index of template action ``j`` or -1; it is
    traced, so a new overlap pattern of the same sizes does not recompile. Both states are padded
    to their action buckets, so only a new pair of buckets compiles."""
    has_old = src >= 0
    src = jnp.maximum(src, 0)
    state = jax.tree.map(lambda old, new: _graft(old, new, src, has_old), old_state, new_state)
    return state, jax.random.fold_in(template_key, _KEY_TAG)


def _conform(old_state, new_state, used: np.ndarray, common: list):
    """``old_state`` in the structure of the template's state: whole counters become soft ones
    (fractions 0) or soft ones whole ones (refused if an action carried over has a fraction);
    forgetting's wrapper is dropped or added (decayed counts start at the raw counts, as
    PyBandits seeds them)."""
    old_base = old_state.base if isinstance(old_state, ForgettingState) else old_state
    new_base = new_state.base if isinstance(new_state, ForgettingState) else new_state
    target = type(stats_of(new_base))

    def convert(node):
        if not isinstance(node, (BernoulliStats, SoftBernoulliStats)) or type(node) is target:
            return node
        if target is SoftBernoulliStats:
            zeros = jnp.zeros(node.n_successes.shape, jnp.float32)
            return SoftBernoulliStats(node.n_successes, node.n_failures, zeros, zeros)
        fractions = np.asarray(node.frac_successes)[used], np.asarray(node.frac_failures)[used]
        if any((f != 0).any() for f in fractions):
            raise ValueError(
                f"cannot transfer action(s) {common!r} into new_mab: current_mab counts soft rewards "
                "(fractional n_successes / n_failures) and new_mab takes only 0/1 rewards; build "
                "new_mab with use_soft_rewards=True"
            )
        return BernoulliStats(node.n_successes, node.n_failures)

    is_stats = lambda node: isinstance(node, (BernoulliStats, SoftBernoulliStats))  # noqa: E731
    old_base = jax.tree.map(convert, old_base, is_leaf=is_stats)
    if not isinstance(new_state, ForgettingState):
        return old_base
    decayed = None
    if new_state.decayed is not None:
        if isinstance(old_state, ForgettingState) and old_state.decayed is not None:
            decayed = old_state.decayed
        else:
            dtype = new_state.decayed.decayed_n_successes.dtype
            decayed = DecayedCounts(*(c.astype(dtype) for c in counts(stats_of(old_base))))
    return ForgettingState(old_base, jnp.ones((_n(old_base),), new_state.decay_factor.dtype), decayed)


def _n(state) -> int:
    return jax.tree.leaves(state)[0].shape[0]


def _graft(old: jax.Array, new: jax.Array, src: jax.Array, has_old: jax.Array) -> jax.Array:
    """One leaf of the merged state: ``new``, except that for each action ``j`` with
    ``has_old[j]`` the leading block of shape ``old.shape[1:]`` is ``old[src[j]]``."""
    block = (slice(None), *(slice(0, n) for n in old.shape[1:]))
    keep = jnp.asarray(has_old).reshape((-1,) + (1,) * (new.ndim - 1))
    kept = jnp.where(keep, old[src].astype(new.dtype), new[block])
    return new.at[block].set(kept)


def check_network_growth(current: CmabConfig, new: CmabConfig, common: list) -> None:
    """Raise a ValueError if the learned networks do not fit into the template's, else log how they
    grow (the CMAB's transfer hook)."""

    def refuse(key: str, why: str, cur, tpl) -> None:
        others = f" (and {len(common) - 1} other action(s) in common)" if len(common) > 1 else ""
        raise ValueError(
            f"cannot transfer action {common[0]!r}{others} into new_mab: {key} {why}: "
            f"current_mab has {key}={cur!r}, new_mab has {key}={tpl!r}"
        )

    for key in ("activation", "use_residual_connections"):
        if getattr(current, key) != getattr(new, key):
            refuse(key, "differs", getattr(current, key), getattr(new, key))
    if new.n_features < current.n_features:
        refuse("n_features", "is smaller in the template", current.n_features, new.n_features)
    cur_h, new_h = list(current.hidden_dim_list), list(new.hidden_dim_list)
    if len(cur_h) != len(new_h):
        refuse("hidden_dim_list", "has a different number of hidden layers", cur_h, new_h)
    narrower = [i for i, (c, n) in enumerate(zip(cur_h, new_h)) if n < c]
    if narrower:
        refuse("hidden_dim_list", f"has a narrower hidden layer {narrower[0]}", cur_h, new_h)
    _log_growth(current, new)


def _residual_pattern(config: CmabConfig) -> list[bool]:
    """Which hidden layers add their input (see :class:`~bandits_jax.bnn.MLP`)."""
    w = config.widths
    return [config.use_residual_connections and w[i + 1] >= w[i] for i in range(len(w) - 2)]


def _log_growth(current: CmabConfig, new: CmabConfig) -> None:
    if new.n_features > current.n_features:
        logger.info(
            "input features %d -> %d: %d new feature(s) take their first-layer weights from the template",
            current.n_features,
            new.n_features,
            new.n_features - current.n_features,
        )
    for i, (c, n) in enumerate(zip(current.hidden_dim_list, new.hidden_dim_list)):
        if n > c:
            logger.info(
                "hidden layer %d width %d -> %d: the old block is kept, %d new unit(s) from the template",
                i,
                c,
                n,
                n - c,
            )
    before, after = _residual_pattern(current), _residual_pattern(new)
    changed = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
    if changed:
        logger.warning(
            "residual connection of hidden layer(s) %s switched %s by the new widths %s: the "
            "transferred networks compute a different function",
            changed,
            ["on" if after[i] else "off" for i in changed],
            list(new.widths),
        )


def _log_merge(current_ids: tuple, new_ids: tuple, common: list) -> None:
    kept = set(common)
    fresh = [a for a in new_ids if a not in kept]
    dropped = [a for a in current_ids if a not in kept]
    logger.info(
        "merged into %d action(s): %d transferred %s, %d new from the template %s, %d dropped %s",
        len(new_ids),
        len(common),
        common,
        len(fresh),
        fresh,
        len(dropped),
        dropped,
    )
