"""Pieces shared by the object APIs (:mod:`bandits_jax.cmab`, :mod:`bandits_jax.smab`): the
model lock, the padding of the action axis to a bucket, and the warning of saturated counters."""

from __future__ import annotations

import numbers
import threading
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CounterSaturationWarning",
    "Exploration",
    "ModelLock",
    "make_exploration",
    "pad_actions",
    "unpad_actions",
    "warn_saturated_ids",
]


class CounterSaturationWarning(RuntimeWarning):
    """A success or failure counter reached 2**31 - 1 and is held there instead of wrapping."""


def ModelLock() -> threading.RLock:  # noqa: N802 (a factory named like the type it returns)
    """The lock that makes a model's key advance and state swap one atomic step.

    Re-entrant, so a method may call another of the same model while holding it.
    """
    return threading.RLock()


def pad_actions(state, padded_prior, n_actions: int):
    """``state`` (``n_actions`` on the leading axis) followed by ``padded_prior``'s rows beyond
    ``n_actions``. Done with NumPy, so a new action count compiles nothing."""
    capacity = jax.tree.leaves(padded_prior)[0].shape[0]
    if capacity == n_actions:
        return state
    return jax.tree.map(
        lambda s, p: jnp.asarray(np.concatenate([np.asarray(s), np.asarray(p)[n_actions:]])),
        state,
        padded_prior,
    )


def unpad_actions(state, n_actions: int):
    """The first ``n_actions`` entries of every leaf (with NumPy: no compilation per count)."""
    if jax.tree.leaves(state)[0].shape[0] == n_actions:
        return state
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[:n_actions]), state)


def warn_saturated_ids(ids: list, stacklevel: int = 3) -> None:
    """The :class:`CounterSaturationWarning` naming the actions whose counters saturated
    (``stacklevel`` counted from the caller, as if it called ``warnings.warn`` itself)."""
    top = np.iinfo(np.int32).max
    warnings.warn(
        f"the counters of action(s) {ids!r} reached {top} (2**31 - 1) and are held there; later "
        "rewards of these actions are not counted",
        CounterSaturationWarning,
        stacklevel=stacklevel + 1,
    )


class Exploration(NamedTuple):
    """PyBandits' exploration controls on top of the strategy.

    ``epsilon``: a row explores with this probability, picking ``default_action`` (with probability
    ``default_action_fraction``, 1 when None) or else a uniformly random allowed action, and
    otherwise applies the strategy to the posterior *mean*. ``limited_actions``: on each row they
    compete only with probability ``limited_action_fraction`` (otherwise they are masked out, unless
    that would leave no action)."""

    epsilon: float | None = None
    default_action: Any = None
    default_action_fraction: float | None = None
    limited_actions: frozenset | None = None
    limited_action_fraction: float | None = None


def _fraction(name: str, value: Any, *, open_low: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not (0.0 < v <= 1.0 if open_low else 0.0 <= v <= 1.0):  # NaN fails too
        raise ValueError(f"{name} must lie in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}")
    return v


def _known_id(name: str, value: Any, ids: tuple) -> Any:
    if isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, str) and type(value) is not str:  # np.str_ and other str subclasses
        value = str(value)
    try:
        known = type(value) in (str, int) and value in ids
    except TypeError:
        known = False
    if not known:
        raise ValueError(f"{name} must be one of the actions {list(ids)!r}, got {value!r}")
    return value


def make_exploration(
    epsilon: Any,
    default_action: Any,
    ids: tuple,
    default_action_fraction: Any = None,
    limited_actions: Any = None,
    limited_action_fraction: Any = None,
) -> Exploration | None:
    """``cold_start``'s exploration arguments, validated with PyBandits' rules (naming them):
    ``epsilon`` None or 0 means no epsilon-greedy (PyBandits' falsy epsilon), and then a
    ``default_action`` is an error; ``default_action_fraction`` needs both; ``limited_actions`` and
    ``limited_action_fraction`` go together, and the default action is never limited."""
    if epsilon is not None:
        epsilon = _fraction("epsilon", epsilon)
    if not epsilon:
        epsilon = None
        if default_action is not None:
            raise ValueError(
                f"default_action {default_action!r} needs epsilon > 0: it is the action exploring rows pick"
            )
    if default_action is not None:
        default_action = _known_id("default_action", default_action, ids)
    if default_action_fraction is not None:
        if default_action is None:
            raise ValueError("default_action_fraction needs epsilon > 0 and a default_action")
        default_action_fraction = _fraction("default_action_fraction", default_action_fraction, open_low=True)
    if limited_actions is not None:
        if isinstance(limited_actions, (str, bytes)) or not isinstance(limited_actions, Iterable):
            raise TypeError(f"limited_actions must be a set of action ids, got {limited_actions!r}")
        limited_actions = frozenset(_known_id("limited_actions", a, ids) for a in limited_actions) or None
    if (limited_actions is None) != (limited_action_fraction is None):
        raise ValueError("limited_actions and limited_action_fraction must be given together")
    if limited_actions is not None:
        if default_action is not None and default_action in limited_actions:
            raise ValueError(f"limited_actions must not hold the default_action {default_action!r}")
        limited_action_fraction = _fraction("limited_action_fraction", limited_action_fraction)
    else:
        limited_actions = None
    if epsilon is None and limited_actions is None:
        return None
    return Exploration(
        epsilon, default_action, default_action_fraction, limited_actions, limited_action_fraction
    )
