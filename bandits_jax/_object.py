"""Pieces shared by the object APIs (:mod:`bandits_jax.cmab`, :mod:`bandits_jax.smab`): the
model lock, the padding of the action axis to a bucket, and the warning of saturated counters."""

from __future__ import annotations

import numbers
import threading
import warnings
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
    """Epsilon-greedy on top of the strategy (PyBandits' ``epsilon`` and ``default_action``): a
    row explores with probability ``epsilon``, picking ``default_action`` (or, where it is None, a
    uniformly random allowed action), and otherwise applies the strategy to the posterior *mean*."""

    epsilon: float
    default_action: Any = None


def make_exploration(epsilon: Any, default_action: Any, ids: tuple) -> Exploration | None:
    """``cold_start``'s ``epsilon`` and ``default_action``, validated (naming them). ``epsilon``
    None or 0 means no exploration (PyBandits' falsy epsilon), and then a ``default_action`` is an
    error, as in PyBandits."""
    if epsilon is not None:
        if isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, numbers.Real):
            raise TypeError(f"epsilon must be a number in [0, 1], got {epsilon!r}")
        if not 0.0 <= float(epsilon) <= 1.0:  # NaN fails too
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon!r}")
    if not epsilon:
        if default_action is not None:
            raise ValueError(
                f"default_action {default_action!r} needs epsilon > 0: it is the action exploring rows pick"
            )
        return None
    if default_action is not None:
        if isinstance(default_action, np.integer):
            default_action = int(default_action)
        try:
            known = default_action in ids and type(default_action) in (str, int)
        except TypeError:
            known = False
        if not known:
            raise ValueError(
                f"default_action must be one of the actions {list(ids)!r}, got {default_action!r}"
            )
    return Exploration(float(epsilon), default_action)
