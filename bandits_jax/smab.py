"""Context-free Bernoulli bandit: Beta-Bernoulli Thompson sampling (PyBandits' ``SmabBernoulli``).

The functional core (:func:`init`, :func:`predict`, :func:`update`) works on a :class:`SmabState`
with a leading action axis; :class:`SmabBernoulli` is the object API on top.

Examples:
    >>> from bandits_jax.smab import SmabBernoulli
    >>> mab = SmabBernoulli.cold_start(action_ids={"a", "b"}, random_seed=0)
    >>> actions, probs = mab.predict(n_samples=3)
    >>> mab.update(actions=["a", "b", "a"], rewards=[1, 0, 1])
    >>> mab.actions["a"].n_successes, mab.actions["a"].n_failures
    (3, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from bandits_jax import _validation as val
from bandits_jax._object import ModelLock, pad_actions, unpad_actions, warn_saturated
from bandits_jax.core import saturating_add
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["SmabBernoulli", "SmabState", "init", "predict", "update"]


class SmabState(NamedTuple):
    """Beta posterior of each action: ``Beta(n_successes, n_failures)``, both counted from 1."""

    n_successes: Int[Array, " n_actions"]
    n_failures: Int[Array, " n_actions"]


def init(n_actions: int) -> SmabState:
    """Every action at ``Beta(1, 1)`` (built with NumPy: no compilation per action count)."""
    ones = jnp.asarray(np.ones((n_actions,), np.int32))
    return SmabState(ones, ones)


def _predict(state: SmabState, key: PRNGKeyArray, strategy: Strategy, n: int, action_mask=None):
    draw_key, strategy_key = jax.random.split(key)
    a = state.n_successes.astype(jnp.float32)
    b = state.n_failures.astype(jnp.float32)
    probs = jax.random.beta(draw_key, a, b, (n, a.shape[0]))
    seen = probs if action_mask is None else jnp.where(action_mask, probs, -jnp.inf)
    return strategy(seen, strategy_key), probs


predict = jax.jit(_predict, static_argnums=3)


@partial(jax.jit, static_argnums=3)
def _predict_advancing(state: SmabState, key: PRNGKeyArray, strategy: Strategy, n: int, action_mask):
    """:func:`predict` with the object API's key advance (``key, sub = split(key)``) compiled in,
    as in :mod:`bandits_jax.cmab` (no separate compilation of the split)."""
    key, sub = jax.random.split(key)
    return _predict(state, sub, strategy, n, action_mask), key


predict.__doc__ = """Thompson sampling: ``predict(state, key, strategy, n, action_mask=None)`` draws
``n`` rows of one Beta sample per action and lets the strategy pick per row among the actions where
``action_mask`` is True (default all). Returns ``(actions, probs)``."""


@jax.jit
def update(
    state: SmabState, actions: Int[Array, " n"], rewards: Int[Array, " n"], mask: Array | None = None
) -> SmabState:
    """Add each action's successes and failures (``mask`` drops padded rows). Counters saturate at
    the int32 maximum instead of wrapping around."""
    w = jnp.ones_like(rewards) if mask is None else mask.astype(rewards.dtype)
    k = state.n_successes.shape[0]
    succ = jnp.zeros((k,), jnp.int32).at[actions].add((rewards * w).astype(jnp.int32))
    total = jnp.zeros((k,), jnp.int32).at[actions].add(w.astype(jnp.int32))
    return SmabState(saturating_add(state.n_successes, succ), saturating_add(state.n_failures, total - succ))


@dataclasses.dataclass(frozen=True)
class SmabActionView:
    action_id: Any
    n_successes: int
    n_failures: int


class _Actions(Mapping):
    def __init__(self, ids: tuple, state: SmabState):
        self._ids, self._index = ids, {a: i for i, a in enumerate(ids)}
        self._s, self._f = np.asarray(state.n_successes), np.asarray(state.n_failures)

    def __getitem__(self, aid) -> SmabActionView:
        i = self._index[aid]
        return SmabActionView(aid, int(self._s[i]), int(self._f[i]))

    def __iter__(self) -> Iterator:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class SmabBernoulli:
    """Stochastic (context-free) Bernoulli bandit with Beta-Bernoulli Thompson sampling.

    Safe under threads: each call validates its input, then advances the key and swaps the state
    as one atomic step, so concurrent updates are all counted and no two predicts share a draw.
    """

    def __init__(self, *, action_ids, state: SmabState, strategy: Strategy, key: jax.Array):
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        if not isinstance(state, SmabState) or state.n_successes.shape != (len(ids),):
            raise ValueError(
                f"state must be a SmabState with one entry per action ({len(ids)}), got {state!r}"
            )
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        # The action axis is padded to a bucket (masked, never chosen): a new action count in a
        # seen bucket compiles nothing.
        self._setup(ids, pad_actions(state, init(val.action_bucket(len(ids))), len(ids)), strategy, key)

    def _setup(self, ids: tuple, padded_state: SmabState, strategy: Strategy, key: jax.Array) -> None:
        self._action_ids = ids
        self._index = {a: i for i, a in enumerate(ids)}
        self._ids_array = val.ids_array(ids)
        self._capacity = val.action_bucket(len(ids))
        self._mask = np.arange(self._capacity) < len(ids)
        self._state = padded_state
        self._strategy = strategy
        self._key = key
        self._lock = ModelLock()

    @classmethod
    def _from_padded(cls, ids, padded_state, strategy, key) -> SmabBernoulli:
        mab = cls.__new__(cls)
        mab._setup(ids, padded_state, strategy, key)
        return mab

    @classmethod
    def cold_start(
        cls, action_ids, strategy: Strategy = ClassicBandit(), random_seed: int | None = None
    ) -> SmabBernoulli:
        """Every action starts at ``Beta(1, 1)``; ``random_seed=None`` draws the seed from NumPy's
        global generator."""
        ids = val.action_ids_tuple(action_ids)
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        key = val.key_from_seed(val.random_seed(random_seed))
        return cls(action_ids=ids, state=init(len(ids)), strategy=strategy, key=key)

    @property
    def action_ids(self) -> tuple:
        return self._action_ids

    @property
    def actions(self) -> Mapping[Any, SmabActionView]:
        return _Actions(self._action_ids, self._snapshot()[0])

    @property
    def state(self) -> SmabState:
        """The functional state of the real actions (immutable arrays)."""
        return self._snapshot()[0]

    def _snapshot(self) -> tuple[SmabState, jax.Array]:
        """``(state, key)`` read together (one consistent pair under concurrent calls)."""
        with self._lock:
            state, key = self._state, self._key
        return unpad_actions(state, len(self._action_ids)), key

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    def __repr__(self) -> str:
        return f"SmabBernoulli(actions={list(self._action_ids)!r}, strategy={self._strategy!r})"

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = ModelLock()

    def predict_arrays(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The chosen action *ids* ``(n_samples,)`` as a NumPy array (feed them straight back to
        :meth:`update`) and the sampled probabilities ``(n_samples, n_actions)``."""
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)):
            raise TypeError(f"n_samples must be a positive int, got {n_samples!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        n_actions = len(self._action_ids)
        with self._lock:
            (chosen, probs), new_key = _predict_advancing(
                self._state, self._key, self._strategy, val.bucket(n_samples), self._mask
            )
            chosen = np.asarray(chosen)[:n_samples]
            probs = np.asarray(probs)[:n_samples, :n_actions]
            self._key = new_key
        return self._ids_array[chosen], probs

    def predict(self, n_samples: int = 1) -> tuple[list, list[dict]]:
        """PyBandits' form: the chosen action ids and per sample ``{action_id: prob}``."""
        chosen, probs = self.predict_arrays(n_samples)
        return chosen.tolist(), val.row_dicts(self._action_ids, probs)

    def update(self, actions, rewards) -> None:
        """Add the batch's successes and failures to each action's Beta posterior.

        Counters saturate at 2**31 - 1 (a :class:`CounterSaturationWarning` says so) instead of
        wrapping around.
        """
        idx = val.as_action_indices(actions, self._index)
        rew = val.as_rewards(rewards)
        n = val.check_lengths(actions=idx, rewards=rew)
        size = val.bucket(n)
        mask = np.arange(size) < n
        successes = np.bincount(idx, weights=rew, minlength=self._capacity)
        totals = np.bincount(idx, minlength=self._capacity)
        with self._lock:
            old = self._state
            new = update(old, np.pad(idx, (0, size - n)), np.pad(rew, (0, size - n)), mask)
            self._state = new
        warn_saturated(self._action_ids, old, successes, totals - successes)

    # ------------------------------------------------------------------ persistence
    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the model to ``path`` atomically, as :meth:`CmabBernoulli.save
        <bandits_jax.cmab.CmabBernoulli.save>` does."""
        from bandits_jax import persistence  # persistence imports this module

        persistence.save(self, path)

    @classmethod
    def load(cls, path) -> SmabBernoulli:
        """The model written by :meth:`save`; a ValueError for a corrupt, foreign or newer file."""
        from bandits_jax import persistence

        return persistence.load(cls, path)

    def get_state(self) -> tuple[str, str]:
        """``(class_name, json_string)`` of the whole model.

        Examples:
            >>> mab = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
            >>> SmabBernoulli.from_state(mab.get_state()[1]).action_ids
            ('a', 'b')
        """
        from bandits_jax import persistence

        return persistence.get_state(self)

    @classmethod
    def from_state(cls, state) -> SmabBernoulli:
        """The model from :meth:`get_state`'s JSON string (or its whole tuple)."""
        from bandits_jax import persistence

        return persistence.from_state(cls, state)
