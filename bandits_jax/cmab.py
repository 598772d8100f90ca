"""PyBandits-style object API for the contextual Bernoulli bandit with Bayesian-NN arms.

Examples:
    >>> import numpy as np
    >>> from bandits_jax.cmab import CmabBernoulli
    >>> mab = CmabBernoulli.cold_start(action_ids={"a", "b"}, n_features=3,
    ...                                update_kwargs={"num_steps": 50}, random_seed=0)
    >>> ctx = np.random.default_rng(0).normal(size=(8, 3))
    >>> actions, probs, logits = mab.predict(ctx)
    >>> info = mab.update(actions=actions, rewards=[1, 0] * 4, context=ctx)
    >>> sorted(mab.actions)
    ['a', 'b']
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax import core
from bandits_jax._object import (
    CounterSaturationWarning,
    ModelLock,
    pad_actions,
    unpad_actions,
    warn_saturated,
)
from bandits_jax.bnn import MLP, logits_from_noise, n_units
from bandits_jax.config import CmabConfig, make_config
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "ActionView",
    "ArrayPrediction",
    "CmabBernoulli",
    "CounterSaturationWarning",
    "SviDivergenceWarning",
]


# The object API's key advances as ``key, sub = jax.random.split(key)`` per call (the simulation
# replays the same chain). Splitting inside the jitted call, rather than in a separate one, saves a
# fresh process about 0.2 s of compiling the split on its own.
@partial(jax.jit, static_argnames=("config",))
def _update(config, state, x, y, valid, key):
    key, sub = jax.random.split(key)
    new_state, info = core.update_grouped(config, state, x, y, valid, sub)
    # Contexts finite in float32 can still overflow the network (1e20 squared is inf in the
    # predictive variance); such a batch is refused before anything changes.
    return new_state, info, key, _overflowing_rows(state, x, valid)


def _overflowing_rows(state, x, valid):
    """Which of each action's rows give a non-finite mean or variance of some layer under that
    action's posterior (a zero-noise draw is non-finite exactly then: ``0 * sqrt(inf)`` is NaN)."""

    def one(loc, scale, rows):
        rows = rows.astype(loc.layers[0].weight.dtype)
        eps = jnp.zeros((rows.shape[0], n_units(loc)), rows.dtype)
        return jnp.isfinite(logits_from_noise(loc, scale, rows, eps))

    return valid & ~jax.vmap(one)(state.loc, state.scale, x)


def _group_rows(n_actions: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`bandits_jax.core.route` for a batch without padding: each action's row
    indices ``(n_actions, rows_per_action)``, valid rows first, and the validity mask.
    ``rows_per_action`` is a power-of-two bucket of the largest action's count, so a new batch in a
    seen bucket compiles nothing."""
    order = np.argsort(actions, kind="stable")
    counts = np.bincount(actions, minlength=n_actions)
    starts = np.cumsum(counts) - counts
    offsets = np.arange(val.bucket(int(counts.max())))
    valid = offsets[None, :] < counts[:, None]
    rows = order[np.minimum(starts[:, None] + offsets[None, :], len(actions) - 1)]
    return rows, valid


@jax.jit
def _predict(state, context, key, strategy, action_mask):
    key, sub = jax.random.split(key)
    return core.predict(state, context, sub, strategy, action_mask), key


class ArrayPrediction(NamedTuple):
    """:meth:`CmabBernoulli.predict_arrays`' result: per row the chosen action *id* (what
    :meth:`~CmabBernoulli.update` takes back), its position in ``action_ids``, and every action's
    sampled probability and logit (columns in ``action_ids`` order)."""

    actions: np.ndarray
    action_indices: np.ndarray
    probs: np.ndarray
    logits: np.ndarray


def _check_finite_logits(logits: np.ndarray) -> None:
    if not np.isfinite(logits).all():
        row = int(np.argwhere(~np.isfinite(logits))[0][0])
        raise ValueError(
            f"context row {row} is too large for the model: its logits overflow float32 "
            "(rescale the features); nothing was changed"
        )


class SviDivergenceWarning(RuntimeWarning):
    """An action's SVI fit went non-finite; its previous posterior and counts were kept."""


@dataclasses.dataclass(frozen=True)
class ActionView:
    """Read-only view of one action: its counters and its posterior ``loc`` / ``scale`` pytrees."""

    action_id: Any
    n_successes: int
    n_failures: int
    loc: MLP
    scale: MLP


class _Actions(Mapping):
    """Read-only mapping ``action_id -> ActionView`` over a state (views are built on access)."""

    def __init__(self, action_ids: tuple, state: core.CmabState):
        self._ids = action_ids
        self._index = {a: i for i, a in enumerate(action_ids)}
        self._state = state
        self._counts = None

    def __getitem__(self, action_id) -> ActionView:
        i = self._index[action_id]
        if self._counts is None:
            self._counts = (np.asarray(self._state.n_successes), np.asarray(self._state.n_failures))
        one = core.action_view(self._state, i)
        return ActionView(action_id, int(self._counts[0][i]), int(self._counts[1][i]), one.loc, one.scale)

    def __iter__(self) -> Iterator:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"Actions({list(self._ids)!r})"


class CmabBernoulli:
    """Contextual Bernoulli bandit: one Bayesian MLP per action, Thompson sampling, streaming SVI.

    Build it with :meth:`cold_start`. The model holds the action ids in a fixed order, a
    :class:`~bandits_jax.config.CmabConfig`, the functional :class:`~bandits_jax.core.CmabState`,
    the strategy and one PRNG key; every method validates its input first and assigns new state
    only at the end, so a call that raises leaves the model exactly as it was.
    """

    def __init__(
        self,
        *,
        action_ids: Sequence,
        config: CmabConfig,
        state: core.CmabState,
        strategy: Strategy,
        key: jax.Array,
    ):
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        if not isinstance(config, CmabConfig):
            raise TypeError(f"config must be a CmabConfig, got {type(config).__name__}")
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        if not isinstance(state, core.CmabState) or state.n_actions != len(ids):
            raise ValueError(f"state must be a CmabState with one entry per action ({len(ids)})")
        capacity = val.action_bucket(len(ids))
        padded = pad_actions(state, core.init(config, capacity), len(ids)) if capacity > len(ids) else state
        self._setup(ids, config, padded, strategy, key)

    def _setup(self, ids: tuple, config: CmabConfig, padded_state, strategy: Strategy, key) -> None:
        """Fill in a model whose state is already padded to ``action_bucket(len(ids))`` actions:
        the actions beyond ``len(ids)`` are masked out of every prediction and get no rows, so a
        new action count in a seen bucket compiles nothing."""
        self._action_ids = ids
        self._index = {a: i for i, a in enumerate(ids)}
        self._ids_array = val.ids_array(ids)
        self._mask = np.arange(val.action_bucket(len(ids))) < len(ids)
        self._config = config
        self._state = padded_state
        self._strategy = strategy
        self._key = key
        self._lock = ModelLock()

    @classmethod
    def _from_padded(cls, ids, config, padded_state, strategy, key) -> CmabBernoulli:
        mab = cls.__new__(cls)
        mab._setup(ids, config, padded_state, strategy, key)
        return mab

    @classmethod
    def cold_start(
        cls,
        action_ids,
        n_features: numbers.Integral,
        hidden_dim_list: Sequence[numbers.Integral] | None = None,
        activation: str = "tanh",
        use_residual_connections: bool | np.bool_ = False,
        dist_type: str = "normal",
        dist_params_init: Mapping[str, numbers.Real] | None = None,
        update_kwargs: Mapping[str, Any] | None = None,
        strategy: Strategy = ClassicBandit(),
        random_seed: int | None = None,
    ) -> CmabBernoulli:
        """A model whose every action's posterior is the prior.

        Args:
            action_ids: the actions; a set is sorted to fix the order, a list keeps its order.
            n_features: number of context columns.
            hidden_dim_list: widths of the hidden layers; None is Bayesian logistic regression.
            activation: ``tanh``, ``relu``, ``sigmoid`` or ``gelu``.
            use_residual_connections: add each hidden layer's (zero-padded) input to its output.
            dist_type: prior family of every weight, ``normal`` or ``studentt``.
            dist_params_init: ``mu`` (0), ``sigma`` (10) and ``nu`` (5, Student-t only).
            update_kwargs: SVI settings (see :class:`~bandits_jax.config.CmabConfig` for the keys
                and why the defaults are what they are).
            strategy: action selection, e.g. :class:`~bandits_jax.strategy.ClassicBandit`.
            random_seed: seed of the model's PRNG key; None draws it from NumPy's global
                generator, so ``np.random.seed(...)`` makes a script repeatable.

        Examples:
            >>> mab = CmabBernoulli.cold_start(["x", "y"], n_features=2, hidden_dim_list=[8])
            >>> mab.actions["x"].n_successes, mab.input_dim, mab.hidden_dim_list
            (1, 2, [8])
        """
        ids = val.action_ids_tuple(action_ids)
        config = make_config(
            n_features,
            hidden_dim_list,
            activation,
            use_residual_connections,
            dist_type,
            dist_params_init,
            update_kwargs,
        )
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        key = val.key_from_seed(val.random_seed(random_seed))
        return cls._from_padded(ids, config, core.init(config, val.action_bucket(len(ids))), strategy, key)

    # ------------------------------------------------------------------ read-only properties
    @property
    def action_ids(self) -> tuple:
        """Action ids in the order of the state's action axis."""
        return self._action_ids

    @property
    def actions(self) -> Mapping[Any, ActionView]:
        """Read-only mapping from action id to its :class:`ActionView`."""
        with self._lock:
            return _Actions(self._action_ids, self._state)

    @property
    def config(self) -> CmabConfig:
        return self._config

    @property
    def state(self) -> core.CmabState:
        """The functional state (immutable arrays) for use with :mod:`bandits_jax.core`."""
        return self._snapshot()[0]

    def _snapshot(self) -> tuple[core.CmabState, jax.Array]:
        """``(state, key)`` read together (one consistent pair under concurrent calls)."""
        with self._lock:
            state, key = self._state, self._key
        return unpad_actions(state, len(self._action_ids)), key

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = ModelLock()

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def input_dim(self) -> int:
        return self._config.n_features

    @property
    def hidden_dim_list(self) -> list[int] | None:
        return list(self._config.hidden_dim_list) or None

    @property
    def activation(self) -> str:
        return self._config.activation

    @property
    def use_residual_connections(self) -> bool:
        return self._config.use_residual_connections

    @property
    def dist_type(self) -> str:
        return self._config.dist_type

    @property
    def dist_params_init(self) -> dict[str, float]:
        return self._config.dist_params_init

    @property
    def update_kwargs(self) -> dict[str, Any]:
        return self._config.update_kwargs

    def __repr__(self) -> str:
        return (
            f"CmabBernoulli(actions={list(self._action_ids)!r}, n_features={self.input_dim}, "
            f"hidden_dim_list={self.hidden_dim_list}, activation={self.activation!r}, "
            f"dist_type={self.dist_type!r}, strategy={self._strategy!r})"
        )

    # ------------------------------------------------------------------ predict
    def predict_arrays(self, context) -> ArrayPrediction:
        """Thompson sampling as NumPy arrays (no Python object per row): the chosen action *ids*
        (feed them straight back to :meth:`update`), their indices into :attr:`action_ids`, and the
        sampled probabilities and logits, each ``(n_rows, n_actions)``.

        Rows are padded to a bucket (4 significant bits: under 12.5% padding), so a new batch
        size in a seen bucket does not recompile.

        Raises:
            ValueError: ``context`` is malformed, or so large that a draw overflows the model's
                float32 (nothing changes then, not even the PRNG key).
        """
        ctx = val.as_context(context, self.input_dim)
        n, n_actions = ctx.shape[0], len(self._action_ids)
        padded = np.zeros((val.fine_bucket(n), ctx.shape[1]), np.float32)
        padded[:n] = ctx
        with self._lock:
            out, new_key = _predict(self._state, padded, self._key, self._strategy, self._mask)
            chosen = np.asarray(out.actions)[:n]
            probs = np.asarray(out.probs)[:n, :n_actions]
            logits = np.asarray(out.logits)[:n, :n_actions]
            _check_finite_logits(logits)
            self._key = new_key
        return ArrayPrediction(self._ids_array[chosen], chosen, probs, logits)

    def predict(self, context) -> tuple[list, list[dict], list[dict]]:
        """PyBandits' form: per row the chosen action id, ``{action_id: prob}`` and
        ``{action_id: logit}`` of the row's Thompson draw."""
        out = self.predict_arrays(context)
        ids = self._action_ids
        actions = list(map(ids.__getitem__, out.action_indices.tolist()))
        return actions, val.row_dicts(ids, out.probs), val.row_dicts(ids, out.logits)

    # ------------------------------------------------------------------ update
    def update(self, actions, rewards, context) -> core.UpdateInfo:
        """Streaming Bayesian update: each action is fitted on its own rows of the batch.

        Safe under threads: updates of one model run one at a time, each on the state the previous
        one left, so none is lost.

        Args:
            actions: the action id chosen for each row.
            rewards: 0/1 reward of each row.
            context: ``(n_rows, n_features)`` array.

        Returns:
            :class:`~bandits_jax.core.UpdateInfo` as NumPy arrays (loss traces, ``ok`` flags).

        Raises:
            ValueError / TypeError naming the argument; the model is then unchanged. If an
            action's fit goes non-finite, an :class:`SviDivergenceWarning` names it and that action
            keeps its previous posterior and counts. Counters saturate at 2**31 - 1 with a
            :class:`CounterSaturationWarning` instead of wrapping around.
        """
        idx = val.as_action_indices(actions, self._index)
        rew = val.as_rewards(rewards)
        ctx = val.as_context(context, self.input_dim)
        val.check_lengths(actions=idx, rewards=rew, context=ctx)
        n_actions = len(self._action_ids)
        rows, valid = _group_rows(val.action_bucket(n_actions), idx)
        x = ctx[rows]
        y = rew.astype(np.float32, copy=False)[rows]
        with self._lock:
            old = self._state
            state, info, new_key, overflow = _update(self._config, old, x, y, valid, self._key)
            overflow = np.asarray(overflow)
            if overflow.any():
                a, j = np.argwhere(overflow)[0]
                raise ValueError(
                    f"context row {int(rows[a, j])} is too large for the model: the network of action "
                    f"{self._action_ids[a]!r} overflows float32 on it (rescale the features); "
                    "nothing was updated"
                )
            info = core.UpdateInfo(*(np.asarray(v)[:n_actions] for v in info))
            self._state, self._key = state, new_key
        if not info.ok.all():
            bad = [self._action_ids[i] for i in np.flatnonzero(~info.ok)]
            warnings.warn(
                f"SVI went non-finite for action(s) {bad!r}; their previous posterior and counts "
                "were kept. Try a smaller update_kwargs['optimizer_kwargs']['step_size'] or "
                "'gradient_clip_norm'.",
                SviDivergenceWarning,
                stacklevel=2,
            )
        successes = np.bincount(idx, weights=rew, minlength=n_actions) * info.ok
        failures = np.bincount(idx, minlength=n_actions) * info.ok - successes
        warn_saturated(self._action_ids, old, successes, failures)
        return info

    def posterior_mean_logits(self, context) -> np.ndarray:
        """``(n_rows, n_actions)`` logits under each action's posterior mean (no sampling).

        Raises:
            ValueError: ``context`` is malformed or overflows the model's float32.
        """
        ctx = val.as_context(context, self.input_dim)
        n = ctx.shape[0]
        padded = np.zeros((val.fine_bucket(n), ctx.shape[1]), np.float32)
        padded[:n] = ctx
        with self._lock:
            state = self._state
        logits = np.asarray(core.posterior_mean_logits(state, padded))[:n, : len(self._action_ids)]
        _check_finite_logits(logits)
        return logits

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the model to ``path``: a versioned JSON header and the exact arrays, no pickle.

        The write is atomic (a temporary file in the same folder, then a rename). Action ids must
        be str or int. See :mod:`bandits_jax.persistence` for the format.

        Examples:
            >>> import os, tempfile
            >>> mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, random_seed=0)
            >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
            >>> mab.save(path)
            >>> CmabBernoulli.load(path).action_ids
            ('a', 'b')
        """
        from bandits_jax import persistence  # persistence imports this module

        persistence.save(self, path)

    @classmethod
    def load(cls, path) -> CmabBernoulli:
        """The model written by :meth:`save`: parameters, counts, strategy and PRNG key exactly.

        Raises:
            ValueError (:class:`~bandits_jax.persistence.ModelFormatError`): the file is truncated
                or corrupt, holds another class, or comes from a newer format version.
        """
        from bandits_jax import persistence

        return persistence.load(cls, path)

    def get_state(self) -> tuple[str, str]:
        """``(class_name, json_string)`` of the whole model, for keeping models in a database."""
        from bandits_jax import persistence

        return persistence.get_state(self)

    @classmethod
    def from_state(cls, state) -> CmabBernoulli:
        """The model from :meth:`get_state`'s JSON string (or its whole tuple); errors as :meth:`load`.

        Examples:
            >>> mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, random_seed=0)
            >>> name, text = mab.get_state()
            >>> name, CmabBernoulli.from_state(text).input_dim
            ('CmabBernoulli', 2)
        """
        from bandits_jax import persistence

        return persistence.from_state(cls, state)
