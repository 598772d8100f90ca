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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax import core
from bandits_jax.bnn import MLP
from bandits_jax.config import CmabConfig, make_config
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["ActionView", "CmabBernoulli", "SviDivergenceWarning"]


# The object API's key advances as ``key, sub = jax.random.split(key)`` per call (the simulation
# replays the same chain). Splitting inside the jitted call, rather than in a separate one, saves a
# fresh process about 0.2 s of compiling the split on its own.
@partial(jax.jit, static_argnames=("config",))
def _update(config, state, x, y, valid, key):
    key, sub = jax.random.split(key)
    state, info = core.update_grouped(config, state, x, y, valid, sub)
    return state, info, key


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
def _predict(state, context, key, strategy):
    key, sub = jax.random.split(key)
    return core.predict(state, context, sub, strategy), key


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
        self._action_ids = tuple(action_ids)
        self._index = {a: i for i, a in enumerate(self._action_ids)}
        self._config = config
        self._state = state
        self._strategy = strategy
        self._key = key

    @classmethod
    def cold_start(
        cls,
        action_ids,
        n_features: int,
        hidden_dim_list: Sequence[int] | None = None,
        activation: str = "tanh",
        use_residual_connections: bool = False,
        dist_type: str = "normal",
        dist_params_init: Mapping[str, float] | None = None,
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
        seed = val.random_seed(random_seed)
        return cls(
            action_ids=ids,
            config=config,
            state=core.init(config, len(ids)),
            strategy=strategy,
            key=jax.random.key(seed),
        )

    # ------------------------------------------------------------------ read-only properties
    @property
    def action_ids(self) -> tuple:
        """Action ids in the order of the state's action axis."""
        return self._action_ids

    @property
    def actions(self) -> Mapping[Any, ActionView]:
        """Read-only mapping from action id to its :class:`ActionView`."""
        return _Actions(self._action_ids, self._state)

    @property
    def config(self) -> CmabConfig:
        return self._config

    @property
    def state(self) -> core.CmabState:
        """The functional state (immutable arrays) for use with :mod:`bandits_jax.core`."""
        return self._state

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
    def predict_arrays(self, context) -> core.Prediction:
        """Thompson sampling as NumPy arrays: chosen action *indices* into :attr:`action_ids`,
        sampled probabilities and logits, each ``(n_rows, n_actions)``.

        Rows are padded to a bucket (4 significant bits: under 12.5% padding), so a new batch
        size in a seen bucket does not recompile.
        """
        ctx = val.as_context(context, self.input_dim)
        n = ctx.shape[0]
        padded = np.zeros((val.fine_bucket(n), ctx.shape[1]), np.float32)
        padded[:n] = ctx
        out, new_key = _predict(self._state, padded, self._key, self._strategy)
        out = core.Prediction(*(np.asarray(x)[:n] for x in out))
        self._key = new_key
        return out

    def predict(self, context) -> tuple[list, list[dict], list[dict]]:
        """PyBandits' form: per row the chosen action id, ``{action_id: prob}`` and
        ``{action_id: logit}`` of the row's Thompson draw."""
        out = self.predict_arrays(context)
        ids = self._action_ids
        actions = list(map(ids.__getitem__, out.actions.tolist()))
        return actions, val.row_dicts(ids, out.probs), val.row_dicts(ids, out.logits)

    # ------------------------------------------------------------------ update
    def update(self, actions, rewards, context) -> core.UpdateInfo:
        """Streaming Bayesian update: each action is fitted on its own rows of the batch.

        Args:
            actions: the action id chosen for each row.
            rewards: 0/1 reward of each row.
            context: ``(n_rows, n_features)`` array.

        Returns:
            :class:`~bandits_jax.core.UpdateInfo` as NumPy arrays (loss traces, ``ok`` flags).

        Raises:
            ValueError / TypeError naming the argument; the model is then unchanged. If an
            action's fit goes non-finite, an :class:`SviDivergenceWarning` names it and that action
            keeps its previous posterior and counts.
        """
        idx = val.as_action_indices(actions, self._index)
        rew = val.as_rewards(rewards)
        ctx = val.as_context(context, self.input_dim)
        val.check_lengths(actions=idx, rewards=rew, context=ctx)
        rows, valid = _group_rows(len(self._action_ids), idx)
        x = ctx.astype(np.float32, copy=False)[rows]
        y = rew.astype(np.float32, copy=False)[rows]
        state, info, new_key = _update(self._config, self._state, x, y, valid, self._key)
        info = core.UpdateInfo(*(np.asarray(v) for v in info))
        if not info.ok.all():
            bad = [self._action_ids[i] for i in np.flatnonzero(~info.ok)]
            warnings.warn(
                f"SVI went non-finite for action(s) {bad!r}; their previous posterior and counts "
                "were kept. Try a smaller update_kwargs['optimizer_kwargs']['step_size'] or "
                "'gradient_clip_norm'.",
                SviDivergenceWarning,
                stacklevel=2,
            )
        self._state, self._key = state, new_key
        return info

    def posterior_mean_logits(self, context) -> np.ndarray:
        """``(n_rows, n_actions)`` logits under each action's posterior mean (no sampling)."""
        ctx = val.as_context(context, self.input_dim)
        return np.asarray(core.posterior_mean_logits(self._state, jnp.asarray(ctx, jnp.float32)))

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
