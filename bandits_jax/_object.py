"""Pieces shared by the object APIs (:mod:`bandits_jax.cmab`, :mod:`bandits_jax.smab`): the
model lock, the padding of the action axis to a bucket, and the warning of saturated counters."""

from __future__ import annotations

import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CounterSaturationWarning",
    "ModelLock",
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
