"""Action-selection strategies, applied on device and vectorised over rows.

A strategy is an equinox module called as ``strategy(probs, key) -> chosen`` with ``probs`` of
shape ``(n_rows, n_actions)`` (one Thompson draw per row and action) and ``chosen`` the index of the
selected action per row. Numeric settings are pytree leaves, so changing them does not recompile.

Your own strategy saves with the model once it is registered (:func:`register_strategy`): its
fields may be numbers, strings and numeric arrays, which a saved file stores exactly. Loading
builds only registered classes (the built-in ones are registered under their class names), so
register yours before loading a model that uses it.

Examples:
    >>> @register_strategy
    ... class Greedy90(Strategy):
    ...     threshold: float = 0.9
    ...
    ...     def __call__(self, probs, key):
    ...         return jnp.argmax(jnp.where(probs >= self.threshold, 1.0, probs), axis=-1)
    >>> registered_strategies()["bandits_jax.strategy.Greedy90"] is Greedy90
    True
"""

from __future__ import annotations

import threading

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


class Strategy(eqx.Module):
    """Base class of every strategy."""

    def __call__(self, probs: Float[Array, "n_rows n_actions"], key: PRNGKeyArray) -> Int[Array, " n_rows"]:
        raise NotImplementedError


class ClassicBandit(Strategy):
    """Thompson sampling: pick the action with the highest sampled probability.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> ClassicBandit()(jnp.array([[0.2, 0.9]]), jax.random.key(0)).tolist()
        [1]
    """

    def __call__(self, probs, key):
        return jnp.argmax(probs, axis=-1)


class BestActionIdentificationBandit(Strategy):
    """Top-two Thompson sampling (PyBandits' ``BestActionIdentificationBandit``).

    With probability ``exploit_p`` pick the best sampled action, otherwise the second best (the
    best where only one action is allowed, i.e. the second best is ``-inf``).
    """

    exploit_p: float = 0.5

    def __check_init__(self):
        if not isinstance(self.exploit_p, jax.Array) and not 0.0 <= float(self.exploit_p) <= 1.0:
            raise ValueError(f"exploit_p must lie in [0, 1], got {self.exploit_p!r}")

    def __call__(self, probs, key):
        if probs.shape[-1] < 2:
            return jnp.zeros(probs.shape[:-1], jnp.int32)
        values, top2 = jax.lax.top_k(probs, 2)
        exploit = jax.random.uniform(key, probs.shape[:-1]) < self.exploit_p
        exploit = exploit | (values[..., 1] == -jnp.inf)
        return jnp.where(exploit, top2[..., 0], top2[..., 1])


# ---------------------------------------------------------------------------------- registry
_REGISTRY: dict = {}
_NAMES: dict = {}
_REGISTRY_LOCK = threading.Lock()


def register_strategy(cls=None, *, name=None):
    """Register a :class:`Strategy` subclass so that models using it save and load (a decorator,
    bare or called with ``name=``). The name stored in saved files is ``name``, by default
    ``"module.QualifiedName"``; registering the same class again is a no-op, and a class defined
    again under the same module and name (a notebook cell run twice) replaces the old one.

    Raises:
        TypeError: ``cls`` is not a Strategy subclass, or ``name`` not a non-empty string.
        ValueError: the name is already registered to another class, or the class under
            another name.
    """

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, Strategy)) or cls is Strategy:
            raise TypeError(
                f"register_strategy takes a subclass of bandits_jax.strategy.Strategy, got {cls!r}"
            )
        key = f"{cls.__module__}.{cls.__qualname__}" if name is None else name
        if not isinstance(key, str) or not key:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        with _REGISTRY_LOCK:  # every check first, then both maps change together
            old = _REGISTRY.get(key, cls)
            if old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"strategy name {key!r} is already registered to {old!r}")
            if _NAMES.get(cls, key) != key:
                raise ValueError(f"{cls!r} is already registered as {_NAMES[cls]!r}")
            if old is not cls:  # the same class defined again (a rerun notebook cell): the new one wins
                del _NAMES[old]
            _REGISTRY[key] = cls
            _NAMES[cls] = key
        return cls

    return register if cls is None else register(cls)


def registered_strategies() -> dict:
    """A copy of the registry: saved name -> class."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


def strategy_name(cls) -> str | None:
    """The name ``cls`` is saved under, or None if it is not registered."""
    with _REGISTRY_LOCK:
        return _NAMES.get(cls)


for _builtin in (ClassicBandit, BestActionIdentificationBandit):
    register_strategy(_builtin, name=_builtin.__name__)
del _builtin
