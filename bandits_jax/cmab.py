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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import jax
import numpy as np

from bandits_jax import _validation as val
from bandits_jax._bandit import ArrayPrediction, Bandit, SviDivergenceWarning
from bandits_jax._object import CounterSaturationWarning
from bandits_jax.bnn import MLP
from bandits_jax.config import CmabConfig, make_config
from bandits_jax.policies.base import UpdateInfo
from bandits_jax.policies.bnn_ts import BnnState, BnnTS
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "ActionView",
    "ArrayPrediction",
    "CmabBernoulli",
    "CounterSaturationWarning",
    "SviDivergenceWarning",
]


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

    def __init__(self, action_ids: tuple, state: BnnState):
        self._ids = action_ids
        self._index = {a: i for i, a in enumerate(action_ids)}
        self._state = state
        self._counts = None

    def __getitem__(self, action_id) -> ActionView:
        i = self._index[action_id]
        if self._counts is None:
            self._counts = (np.asarray(self._state.n_successes), np.asarray(self._state.n_failures))
        one = jax.tree.map(lambda leaf: leaf[i], (self._state.loc, self._state.scale))
        return ActionView(action_id, int(self._counts[0][i]), int(self._counts[1][i]), *one)

    def __iter__(self) -> Iterator:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"Actions({list(self._ids)!r})"


class CmabBernoulli(Bandit):
    """Contextual Bernoulli bandit: one Bayesian MLP per action, Thompson sampling, streaming SVI.

    Build it with :meth:`cold_start`. The model holds the action ids in a fixed order, a
    :class:`~bandits_jax.config.CmabConfig`, its policy (:class:`~bandits_jax.policies.BnnTS`) and
    the policy's state, the strategy and one PRNG key (see :mod:`bandits_jax._bandit`): every method
    validates its input first and assigns new state only at the end, so a call that raises leaves
    the model exactly as it was, and the model is safe to call from several threads.
    """

    _kind: ClassVar[str] = "cmab"
    _v1_names: ClassVar[dict[str, str]] = {
        ".n_successes": ".stats.n_successes",
        ".n_failures": ".stats.n_failures",
    }

    def __init__(
        self,
        *,
        action_ids: Sequence,
        config: CmabConfig,
        state: BnnState,
        strategy: Strategy,
        key: jax.Array,
    ):
        if not isinstance(config, CmabConfig):
            raise TypeError(f"config must be a CmabConfig, got {type(config).__name__}")
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        if not isinstance(state, BnnState) or state.n_actions != len(ids):
            raise ValueError(f"state must be a CmabState (BnnState) with one entry per action ({len(ids)})")
        mab = self._build(ids, config, state, strategy, key)
        self.__dict__.update(mab.__dict__)

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
        return cls._from_padded(
            ids, config, cls._cold_state(config, val.action_bucket(len(ids))), strategy, key
        )

    # ------------------------------------------------------------------ hooks of the base
    @classmethod
    def _policy_of(cls, config: CmabConfig) -> BnnTS:
        return BnnTS.from_config(config)  # static settings; mu and sigma are data

    @classmethod
    def _cold_state(cls, config: CmabConfig, n_actions: int) -> BnnState:
        return BnnTS.from_config(config).init(n_actions, config.mu, config.sigma)

    def _config_json(self) -> dict:
        return dataclasses.asdict(self._config)

    @classmethod
    def _config_from_json(cls, fields: Any) -> CmabConfig:
        names = {f.name for f in dataclasses.fields(CmabConfig)}
        if not isinstance(fields, dict) or set(fields) != names:
            raise ValueError(f"config must hold exactly the fields {sorted(names)}, got {fields!r}")
        fields = dict(fields)
        fields["hidden_dim_list"] = tuple(fields["hidden_dim_list"])
        fields["optimizer_kwargs"] = tuple((k, _tuples(v)) for k, v in fields["optimizer_kwargs"])
        return CmabConfig(**fields)

    def _check_transfer(self, current: Bandit, common: list) -> None:
        from bandits_jax.transfer import check_network_growth

        check_network_growth(current._config, self._config, common)

    # ------------------------------------------------------------------ read-only properties
    @property
    def actions(self) -> Mapping[Any, ActionView]:
        """Read-only mapping from action id to its :class:`ActionView`."""
        with self._lock:
            return _Actions(self._action_ids, self._state)

    @property
    def config(self) -> CmabConfig:
        return self._config

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
        n = ctx.shape[0]
        padded = np.zeros((val.fine_bucket(n), ctx.shape[1]), np.float32)
        padded[:n] = ctx
        return self._predict_padded(padded, n)

    def predict(self, context) -> tuple[list, list[dict], list[dict]]:
        """PyBandits' form: per row the chosen action id, ``{action_id: prob}`` and
        ``{action_id: logit}`` of the row's Thompson draw."""
        out = self.predict_arrays(context)
        ids = self._action_ids
        actions = list(map(ids.__getitem__, out.action_indices.tolist()))
        return actions, val.row_dicts(ids, out.probs), val.row_dicts(ids, out.logits)

    # ------------------------------------------------------------------ update
    def update(self, actions, rewards, context) -> UpdateInfo:
        """Streaming Bayesian update: each action is fitted on its own rows of the batch.

        Safe under threads: updates of one model run one at a time, each on the state the previous
        one left, so none is lost.

        Args:
            actions: the action id chosen for each row.
            rewards: 0/1 reward of each row.
            context: ``(n_rows, n_features)`` array.

        Returns:
            :class:`~bandits_jax.policies.UpdateInfo` as NumPy arrays (loss traces, ``ok`` flags).

        Raises:
            ValueError / TypeError naming the argument; the model is then unchanged. If an
            action's fit goes non-finite, an :class:`SviDivergenceWarning` names it and that action
            keeps its previous posterior and counts. Counters saturate at 2**31 - 1 with a
            :class:`CounterSaturationWarning` instead of wrapping around.
        """
        idx = val.as_action_indices(actions, self._index)
        rew = self._policy.likelihood.check_rewards(rewards)
        ctx = val.as_context(context, self.input_dim)
        val.check_lengths(actions=idx, rewards=rew, context=ctx)
        return self._update_rows(idx, rew, ctx)

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
        logits = np.asarray(self._policy.posterior_mean(state, padded))[:n, : len(self._action_ids)]
        if not np.isfinite(logits).all():
            row = int(np.argwhere(~np.isfinite(logits))[0][0])
            raise ValueError(
                f"context row {row} is too large for the model: its logits overflow float32 "
                "(rescale the features)"
            )
        return logits


def _tuples(value):
    """JSON turned tuples into lists; the config must be hashable again."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
