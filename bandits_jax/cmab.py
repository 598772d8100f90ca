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
import functools
import numbers
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax._bandit import ArrayPrediction, Bandit, SviDivergenceWarning, make_exploration
from bandits_jax._families import (
    BestActionIdentificationFamily,
    CostControlFamily,
    DynamicPricingFamily,
    MultiObjectiveFamily,
    ids_and_values,
    no_strategy,
)
from bandits_jax._object import CounterSaturationWarning
from bandits_jax.bnn import MLP
from bandits_jax.config import CmabConfig, make_config
from bandits_jax.likelihoods import Gaussian, GaussianStats, host_counts
from bandits_jax.policies.base import UpdateInfo, stats_of
from bandits_jax.policies.bnn_ts import BnnState, BnnTS
from bandits_jax.strategy import (
    BestActionIdentificationBandit,
    ClassicBandit,
    CostControlBandit,
    DynamicPricingBandit,
    MultiObjectiveBandit,
    MultiObjectiveCostControlBandit,
    Strategy,
)

__all__ = [
    "ActionView",
    "ArrayPrediction",
    "CmabBernoulli",
    "CmabBernoulliBAI",
    "CmabBernoulliCC",
    "CmabBernoulliDP",
    "CmabBernoulliMO",
    "CmabBernoulliMOCC",
    "CmabGaussian",
    "CounterSaturationWarning",
    "SviDivergenceWarning",
]


@dataclasses.dataclass(frozen=True)
class ActionView:
    """Read-only view of one action: its counters, its posterior ``loc`` / ``scale`` pytrees (the
    Bayesian-MLP policy; None for other policies) and its whole slice of the policy's state.
    ``count`` and ``mean`` are PyBandits' properties: the rewards observed and their mean (for
    Bernoulli rewards the pseudo-counts ``n_successes + n_failures`` and the Beta mean)."""

    action_id: Any
    n_successes: int | float | list  # a float for soft rewards; a list per objective for MO models
    n_failures: int | float | list
    loc: MLP | None
    scale: MLP | None
    state: Any = None

    @property
    def _stats(self) -> Any:
        return None if self.state is None else stats_of(self.state)

    @property
    def count(self) -> int:
        stats = self._stats
        if isinstance(stats, GaussianStats):
            return int(stats.n_observations)
        if isinstance(self.n_successes, list):  # every objective counts every row
            return round(self.n_successes[0] + self.n_failures[0])
        return round(self.n_successes + self.n_failures)

    @property
    def mean(self) -> float | list:
        stats = self._stats
        if isinstance(stats, GaussianStats):
            return float(stats.reward_mean) if int(stats.n_observations) else 0.0
        if isinstance(self.n_successes, list):  # one Beta mean per objective
            return [s / (s + f) for s, f in zip(self.n_successes, self.n_failures)]
        return self.n_successes / (self.n_successes + self.n_failures)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """The configuration of a model that runs a policy other than the default Bayesian MLP: the
    context width, the policy (static settings) and its ``init`` data as sorted ``(name, value)``
    pairs (see :func:`bandits_jax.policies.spec.build`)."""

    n_features: int
    policy: Any
    init: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        from bandits_jax.policies import REGISTRY

        return next(n for n, cls in REGISTRY.items() if type(self.policy) is cls)


class _Actions(Mapping):
    """Read-only mapping ``action_id -> ActionView`` over a state (views are built on access)."""

    def __init__(self, action_ids: tuple, state: Any):
        self._ids = action_ids
        self._index = {a: i for i, a in enumerate(action_ids)}
        self._state = state
        self._counts = None

    def __getitem__(self, action_id) -> ActionView:
        i = self._index[action_id]
        if self._counts is None:
            self._counts = host_counts(stats_of(self._state))
        one = jax.tree.map(lambda leaf: leaf[i], self._state)
        net = getattr(one, "base", one)  # a ForgettingState holds the posterior in its base
        loc, scale = (net.loc, net.scale) if isinstance(net, BnnState) else (None, None)
        # a Python number, or a list of one per objective for a multi-objective model
        return ActionView(
            action_id, self._counts[0][i].tolist(), self._counts[1][i].tolist(), loc, scale, one
        )

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
        config: CmabConfig | PolicyConfig,
        state: Any,
        strategy: Strategy,
        key: jax.Array,
    ):
        if not isinstance(config, (CmabConfig, PolicyConfig)):
            raise TypeError(f"config must be a CmabConfig or a PolicyConfig, got {type(config).__name__}")
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        if isinstance(config, CmabConfig):
            from bandits_jax.policies.forgetting import ForgettingState

            if config.decay_factor is not None and isinstance(state, BnnState):  # forgetting from here on
                factor = jnp.full((state.n_actions,), config.decay_factor, jnp.result_type(float))
                state = ForgettingState(state, factor, None)
            inner = state.base if isinstance(state, ForgettingState) else state
            if not isinstance(inner, BnnState) or inner.n_actions != len(ids):
                raise ValueError(
                    f"state must be a CmabState (BnnState; with decay_factor also a ForgettingState "
                    f"of one) with one entry per action ({len(ids)})"
                )
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
        policy: str = "bnn_ts",
        policy_kwargs: Mapping[str, Any] | None = None,
        epsilon=None,
        default_action=None,
        default_action_fraction=None,
        limited_actions=None,
        limited_action_fraction=None,
        use_layerwise_scaling=False,
        bias_std=None,
        calibrate_output_bias=False,
        use_soft_rewards=False,
        decay_factor=None,
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
            policy: a registered policy name (:data:`bandits_jax.policies.REGISTRY`):
                ``"bnn_ts"`` (the default, this class's Bayesian MLP), ``"neural_linear"``,
                ``"ensemble"``, ``"linear_ts"``, ``"lin_ucb"``, ``"epsilon_greedy"``, ... The model
                then has the same API, validation, save/load and transfer (between models of the
                same policy settings).
            policy_kwargs: for a policy other than ``bnn_ts``, its settings and ``init`` data by
                name (e.g. ``{"num_steps": 50, "sigma": 1.0}``; see
                :func:`bandits_jax.policies.spec.build`). ``hidden_dim_list``, ``activation`` and
                ``use_residual_connections`` build its network if it has one; ``dist_params_init``
                and ``update_kwargs`` are the Bayesian MLP's and must be None then.
            epsilon: PyBandits' epsilon-greedy on top of the strategy: each predicted row explores
                with this probability (picking ``default_action``, or a uniformly random allowed
                action without one) and otherwise applies the strategy to the posterior *mean*.
                PyBandits applies the strategy to the Thompson draw there, which explores twice
                (the draw is already random); exploiting the mean is epsilon-greedy as Sutton and
                Barto define it. None or 0: plain Thompson sampling.
            default_action: the action exploring rows pick (needs ``epsilon``).
            use_layerwise_scaling: PyBandits' network option: each layer's weight prior sigma is
                ``sigma / sqrt(fan_in)`` (biases keep ``sigma``); data, so it compiles nothing.
            bias_std: the biases' prior sigma (None: ``sigma``), as PyBandits.
            calibrate_output_bias: on each action's first update, start its output bias at the
                logit of that batch's reward rate (PyBandits' option; see
                :class:`~bandits_jax.policies.BnnTS`).
            default_action_fraction: in (0, 1]: an exploring row picks ``default_action`` with
                this probability and a uniformly random allowed action otherwise (None: always
                the default), as PyBandits.
            limited_actions, limited_action_fraction: a set of actions (never the default one)
                that compete on a row only with probability ``limited_action_fraction`` and are
                masked out otherwise (unless no action would be left), as PyBandits, e.g. to
                keep new arms from being over-explored.
            use_soft_rewards: PyBandits' flag: ``update`` takes any real reward in [0, 1] (a soft
                label; the counters add ``r`` to the successes and ``1 - r`` to the failures, so
                ``n_successes`` is a float), not only 0/1.
            decay_factor: PyBandits' forgetting, in (0, 1] (None: none): before each fit of an
                action that has learned something, every posterior scale is divided by it, so
                the model follows a reward that drifts (see
                :mod:`bandits_jax.policies.forgetting`). Data: a new value compiles nothing.
                Policies other than ``bnn_ts`` take it where they have a forgetting rule.

        Examples:
            >>> mab = CmabBernoulli.cold_start(["x", "y"], n_features=2, hidden_dim_list=[8])
            >>> mab.actions["x"].n_successes, mab.input_dim, mab.hidden_dim_list
            (1, 2, [8])
        """
        ids = val.action_ids_tuple(action_ids)
        args = (n_features, hidden_dim_list, activation, use_residual_connections, dist_type)
        if policy != "bnn_ts" or policy_kwargs is not None:
            if (
                use_layerwise_scaling is not False
                or bias_std is not None
                or calibrate_output_bias is not False
            ):
                raise ValueError(
                    "use_layerwise_scaling, bias_std and calibrate_output_bias shape the Bayesian MLP's "
                    "prior (policy 'bnn_ts'); "
                    f"policy {policy!r} takes its settings in policy_kwargs"
                )
            config = _policy_config(policy, *args, dist_params_init, update_kwargs, policy_kwargs)
            config = _with_reward_options(config, use_soft_rewards, decay_factor)
        else:
            config = make_config(
                *args,
                dist_params_init,
                update_kwargs,
                use_layerwise_scaling,
                bias_std,
                calibrate_output_bias,
                use_soft_rewards,
                decay_factor,
            )
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        exploration = make_exploration(
            epsilon, default_action, ids, default_action_fraction, limited_actions, limited_action_fraction
        )
        key = val.key_from_seed(val.random_seed(random_seed))
        return cls._from_padded(
            ids, config, cls._cold_state(config, val.action_bucket(len(ids))), strategy, key, exploration
        )

    @classmethod
    def from_pybandits_state(cls, state, random_seed: int | None = None) -> CmabBernoulli:
        """The model PyBandits 8.x's ``CmabBernoulli.get_state()`` describes (its JSON text or the
        ``(class_name, json)`` pair): the same posterior, prior family, counts, strategy,
        exploration settings and ``update_kwargs``, so its posterior-mean logits equal PyBandits'
        up to float32 rounding. ``random_seed`` (else PyBandits' own, else drawn) seeds the key.

        Raises:
            ValueError (or TypeError) naming what is malformed or not supported here yet (see
            :mod:`bandits_jax.pybandits_compat`); nothing is built then.
        """
        from bandits_jax import pybandits_compat as compat

        data = compat.read_state(state, "CmabBernoulli")
        ids, kwargs, posteriors, stats = compat.cmab_parts(data)
        strategy = compat.strategy_of(data)
        exploration = compat.exploration_of(data, ids)
        config = make_config(
            kwargs["n_features"],
            kwargs["hidden_dim_list"],
            kwargs["activation"],
            kwargs["use_residual_connections"],
            kwargs["dist_type"],
            kwargs["dist_params_init"],
            kwargs["update_kwargs"],
            kwargs["use_layerwise_scaling"],
            kwargs["bias_std"],
            kwargs["calibrate_output_bias"],
            kwargs["use_soft_rewards"],
            kwargs["decay_factor"],
        )
        template = cls._cold_state(config, len(ids))
        cold = template.base if config.decay_factor is not None else template
        loc = compat.stacked_mlp(cold.loc, [mu for mu, _ in posteriors])
        scale = compat.stacked_mlp(cold.scale, [sigma for _, sigma in posteriors])
        state = BnnState(loc, scale, stats)
        if config.decay_factor is not None:
            state = template._replace(base=state)
        return cls._build(ids, config, state, strategy, compat.key_of(data, random_seed), exploration)

    def to_pybandits_state(self) -> tuple[str, str]:
        """``(class_name, json)`` as PyBandits 8.4.1's ``get_state()`` writes it, for its
        ``CmabBernoulli.from_state``: the Bayesian MLP's posterior, counts and settings.

        Raises:
            ValueError: the model cannot be expressed there (another policy, ``init_scale``, a
                strategy PyBandits lacks, non-string action ids).
        """
        from bandits_jax import pybandits_compat as compat

        return compat.to_pybandits_state(self)

    # ------------------------------------------------------------------ hooks of the base
    @classmethod
    def _policy_of(cls, config: CmabConfig | PolicyConfig) -> Any:
        vectors = isinstance(config, CmabConfig) and config.n_objectives is not None
        if vectors != issubclass(cls, MultiObjectiveFamily):
            raise ValueError(
                f"a {cls.__name__} cannot run config.n_objectives={getattr(config, 'n_objectives', None)!r} "
                f"(use {'CmabBernoulliMO' if vectors else 'CmabBernoulli'})"
            )
        if isinstance(config, CmabConfig):
            gaussian = config.reward_type == "gaussian"
        else:
            gaussian = isinstance(getattr(config.policy, "likelihood", None), Gaussian)
        if gaussian != (cls._kind == "cmab_gaussian"):
            raise ValueError(
                f"a {cls.__name__} cannot run {'Gaussian' if gaussian else 'Bernoulli'} rewards "
                f"(config.reward_type={getattr(config, 'reward_type', 'bernoulli')!r}); "
                f"use {'CmabGaussian' if gaussian else 'CmabBernoulli'}"
            )
        if isinstance(config, PolicyConfig):
            return config.policy
        policy = BnnTS.from_config(config)  # static settings; mu, sigma and decay are data
        if config.n_objectives is not None:
            from bandits_jax.policies.multi_objective import MultiObjective

            return MultiObjective(policy, config.n_objectives)
        return policy if config.decay_factor is None else _forgetting(policy)

    @classmethod
    def _cold_state(cls, config: CmabConfig | PolicyConfig, n_actions: int) -> Any:
        if isinstance(config, PolicyConfig):
            return config.policy.init(n_actions, **dict(config.init))
        prior = {
            "mu": config.mu,
            "sigma": config.sigma,
            "use_layerwise_scaling": config.use_layerwise_scaling,
            "bias_std": config.bias_std,
            **config.reward_data,
        }
        if config.decay_factor is not None:
            prior["decay_factor"] = config.decay_factor
        return cls._policy_of(config).init(n_actions, **prior)

    def _config_json(self) -> dict:
        if isinstance(self._config, PolicyConfig):
            from bandits_jax.policies import spec

            c = self._config
            return {"n_features": c.n_features, "policy": spec.to_json(c.policy), "init": dict(c.init)}
        return dataclasses.asdict(self._config)

    @classmethod
    def _config_from_json(cls, fields: Any) -> CmabConfig | PolicyConfig:
        if isinstance(fields, dict) and "policy" in fields:
            from bandits_jax.policies import spec

            if set(fields) != {"n_features", "policy", "init"} or not isinstance(fields["init"], dict):
                raise ValueError(f"a policy config must hold n_features, policy and init, got {fields!r}")
            policy = spec.from_json(fields["policy"])
            return PolicyConfig(fields["n_features"], policy, tuple(sorted(fields["init"].items())))
        names = {f.name for f in dataclasses.fields(CmabConfig)}
        if isinstance(fields, dict):  # settings added since a file was written take their old behaviour
            fields = {**_ADDED_FIELDS, **fields}
        if not isinstance(fields, dict) or set(fields) != names:
            raise ValueError(f"config must hold exactly the fields {sorted(names)}, got {fields!r}")
        fields = dict(fields)
        fields["hidden_dim_list"] = tuple(fields["hidden_dim_list"])
        for key in ("optimizer_kwargs", "lr_scheduler_kwargs", "early_stopping_kwargs"):
            if fields[key] is not None:
                fields[key] = tuple((k, _tuples(v)) for k, v in fields[key])
        return CmabConfig(**fields)

    def _check_transfer(self, current: Bandit, common: list) -> None:
        from bandits_jax.transfer import check_network_growth

        old, new = current._config, self._config
        if isinstance(old, CmabConfig) and isinstance(new, CmabConfig):
            if (old.n_objectives, new.n_objectives) != (None, None) and (
                old.n_objectives != new.n_objectives or old.network != new.network
            ):
                raise ValueError(
                    f"cannot carry action {common[0]!r} over: a multi-objective model transfers to a "
                    f"template of the same n_objectives and network (current n_objectives="
                    f"{old.n_objectives!r}, {old.network}; template n_objectives={new.n_objectives!r}, "
                    f"{new.network})"
                )
            check_network_growth(old, new, common)
        elif old != new and (
            type(old) is not type(new)
            or _learner(old.policy) != _learner(new.policy)
            or old.n_features != new.n_features
        ):
            raise ValueError(
                f"cannot carry action {common[0]!r} over: the template runs {_describe(new)} and the "
                f"current model {_describe(old)}; a transfer keeps the policy and its settings (only "
                "the Bayesian MLP's network can grow)"
            )

    # ------------------------------------------------------------------ read-only properties
    @property
    def actions(self) -> Mapping[Any, ActionView]:
        """Read-only mapping from action id to its :class:`ActionView`."""
        with self._lock:
            return _Actions(self._action_ids, self._state)

    @property
    def config(self) -> CmabConfig | PolicyConfig:
        return self._config

    @property
    def policy_name(self) -> str:
        """The registered name of the model's policy (``"bnn_ts"`` by default)."""
        return self._config.name if isinstance(self._config, PolicyConfig) else "bnn_ts"

    @property
    def input_dim(self) -> int:
        return self._config.n_features

    def _network(self) -> Any:
        if isinstance(self._config, PolicyConfig):
            return getattr(self._config.policy, "network", None)
        return self._config.network

    @property
    def hidden_dim_list(self) -> list[int] | None:
        net = self._network()
        return None if net is None else (list(net.hidden_dim_list) or None)

    @property
    def activation(self) -> str | None:
        net = self._network()
        return None if net is None else net.activation

    @property
    def use_residual_connections(self) -> bool | None:
        net = self._network()
        return None if net is None else net.use_residual_connections

    @property
    def dist_type(self) -> str | None:
        return None if isinstance(self._config, PolicyConfig) else self._config.dist_type

    @property
    def dist_params_init(self) -> dict[str, float]:
        """The prior's values (for another policy: its ``init`` data)."""
        if isinstance(self._config, PolicyConfig):
            return dict(self._config.init)
        return self._config.dist_params_init

    @property
    def update_kwargs(self) -> dict[str, Any]:
        """The SVI settings (empty for another policy: its settings are :attr:`policy`'s)."""
        if isinstance(self._config, PolicyConfig):
            return {}
        return self._config.update_kwargs

    def __repr__(self) -> str:
        if isinstance(self._config, PolicyConfig):
            return (
                f"{type(self).__name__}(actions={list(self._action_ids)!r}, n_features={self.input_dim}, "
                f"policy={self._config.policy!r}, strategy={self._strategy!r})"
            )
        return (
            f"{type(self).__name__}(actions={list(self._action_ids)!r}, n_features={self.input_dim}, "
            f"hidden_dim_list={self.hidden_dim_list}, activation={self.activation!r}, "
            f"dist_type={self.dist_type!r}, strategy={self._strategy!r})"
        )

    # ------------------------------------------------------------------ predict
    def predict_arrays(self, context, forbidden_actions=None, top_k=None) -> ArrayPrediction:
        """Thompson sampling as NumPy arrays (no Python object per row): the chosen action *ids*
        (feed them straight back to :meth:`update`), their indices into :attr:`action_ids`, and the
        sampled probabilities and logits, each ``(n_rows, n_actions)``.

        Rows are padded to a bucket (4 significant bits: under 12.5% padding), so a new batch
        size in a seen bucket does not recompile.

        Args:
            context: ``(n_rows, n_features)`` array.
            forbidden_actions: action ids not to choose in this call (PyBandits' argument); a
                traced mask, so a new set compiles nothing. The probabilities and logits still
                cover every action.
            top_k: rank the ``top_k`` best allowed actions per row (best first): ``actions`` and
                ``action_indices`` are then ``(n_rows, top_k)``, their first column the single
                pick. Needs the :class:`~bandits_jax.strategy.ClassicBandit` strategy.

        Raises:
            ValueError: ``context`` is malformed, or so large that a draw overflows the model's
                float32; ``forbidden_actions`` holds an unknown id, forbids every action or the
                ``default_action``; ``top_k`` is out of range. Nothing changes then, not even the
                PRNG key.
        """
        ctx = val.as_context(context, self.input_dim)
        n = ctx.shape[0]
        padded = np.zeros((val.fine_bucket(n), ctx.shape[1]), np.float32)
        padded[:n] = ctx
        return self._predict_padded(padded, n, forbidden_actions, top_k)

    def predict(self, context, forbidden_actions=None, top_k=None) -> tuple[list, list[dict], list[dict]]:
        """PyBandits' form: per row the chosen action id (with ``top_k``, the list of the ``top_k``
        best, best first), ``{action_id: prob}`` and ``{action_id: logit}`` of the row's Thompson
        draw. Arguments and errors as :meth:`predict_arrays`."""
        out = self.predict_arrays(context, forbidden_actions, top_k)
        ids = self._action_ids
        if top_k is None:
            actions = list(map(ids.__getitem__, out.action_indices.tolist()))
        else:
            actions = [list(map(ids.__getitem__, row)) for row in out.action_indices.tolist()]
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
        rew = self._check_rewards(rewards)
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
        logits = np.asarray(_posterior_mean_logits(self._policy, state, padded))[:n, : len(self._action_ids)]
        if not np.isfinite(logits).all():
            row = int(np.argwhere(~np.isfinite(logits))[0][0])
            raise ValueError(
                f"context row {row} is too large for the model: its logits overflow float32 "
                "(rescale the features)"
            )
        return logits


def _describe(config: CmabConfig | PolicyConfig) -> str:
    if isinstance(config, PolicyConfig):
        return f"{config.policy!r} on {config.n_features} features"
    return "bnn_ts (the Bayesian MLP)"


def _with_reward_options(config: PolicyConfig, use_soft_rewards, decay_factor) -> PolicyConfig:
    """``config`` whose policy takes soft rewards and forgets by ``decay_factor`` (validated)."""
    from bandits_jax.policies import spec

    if not isinstance(use_soft_rewards, (bool, np.bool_)):
        raise TypeError(f"use_soft_rewards must be a bool, got {use_soft_rewards!r}")
    policy, init = config.policy, dict(config.init)
    if use_soft_rewards:
        policy = spec.with_soft_rewards(policy)
    from bandits_jax.policies.forgetting import Forgetting

    if decay_factor is not None:
        val.check_decay_factor(decay_factor)
        if not isinstance(policy, Forgetting):  # policy="forgetting" is already the wrapper
            try:
                policy = _forgetting(policy)
            except TypeError as err:
                raise ValueError(f"decay_factor: {err}") from None
        init["decay_factor"] = float(decay_factor)
    elif isinstance(policy, Forgetting):  # its init's default, said out loud (mab.decay_factor)
        init.setdefault("decay_factor", 1.0)
    return dataclasses.replace(config, policy=policy, init=tuple(sorted(init.items())))


def _learner(policy: Any) -> Any:
    """What a transfer must keep equal: the policy without forgetting, soft or not (the counters
    are converted, see :mod:`bandits_jax.transfer`)."""
    from bandits_jax.policies import spec
    from bandits_jax.policies.forgetting import Forgetting

    return spec.with_soft_rewards(policy.base if isinstance(policy, Forgetting) else policy)


@functools.lru_cache(maxsize=256)
def _forgetting(policy: Any) -> Any:
    from bandits_jax.policies.forgetting import Forgetting

    return Forgetting(policy)


def _policy_config(
    name,
    n_features,
    hidden_dim_list,
    activation,
    residual,
    dist_type,
    dist_params_init,
    update_kwargs,
    kwargs,
) -> PolicyConfig:
    """A :class:`PolicyConfig` from ``cold_start``'s arguments (validated, naming them)."""
    from bandits_jax.policies import spec

    if not isinstance(name, str):
        raise TypeError(f"policy must be a registered policy name (str), got {name!r}")
    if name == "bnn_ts":
        raise ValueError(
            "policy_kwargs is for policies other than 'bnn_ts'; the Bayesian MLP takes "
            "dist_params_init and update_kwargs"
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"policy_kwargs must be a dict, got {kwargs!r}")
    for arg, value, default in (
        ("dist_type", dist_type, "normal"),
        ("dist_params_init", dist_params_init, None),
        ("update_kwargs", update_kwargs, None),
    ):
        if value != default:
            raise ValueError(
                f"{arg} is the Bayesian MLP's (policy='bnn_ts'); for policy {name!r} use policy_kwargs"
            )
    if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}")
    if hidden_dim_list is not None and (
        isinstance(hidden_dim_list, (str, bytes)) or not isinstance(hidden_dim_list, Sequence)
    ):
        raise TypeError(f"hidden_dim_list must be None or a list of positive ints, got {hidden_dim_list!r}")
    policy, init = spec.build(name, int(n_features), hidden_dim_list, activation, residual, kwargs)
    return PolicyConfig(int(n_features), policy, tuple(sorted(init.items())))


@partial(jax.jit, static_argnums=(0,))
def _posterior_mean_logits(policy, state, context) -> jax.Array:
    """Every row's logit under every action's posterior mean: the policy's own ``posterior_mean``
    where it has one, else the logit of its ``Prediction.mean_probs``."""
    own = getattr(policy, "posterior_mean", None)
    if own is not None:
        return own(state, context)
    p = policy.predict(jax.random.key(0), state, context).mean_probs
    if isinstance(getattr(policy, "likelihood", None), Gaussian):  # the mean reward is the score
        return p
    return jnp.log(p) - jnp.log1p(-p)


# CmabConfig fields added after format version 2 was fixed, with the value that reproduces how a
# model saved before them behaved.
_ADDED_FIELDS = {
    "init_scale": None,
    "kl_annealing_fraction": None,
    "lr_scheduler_type": None,
    "lr_scheduler_kwargs": (),
    "restore_best_svi_state": False,
    "early_stopping_kwargs": None,
    "use_layerwise_scaling": False,
    "bias_std": None,
    "calibrate_output_bias": False,
    "epochs": None,
    "use_soft_rewards": False,
    "decay_factor": None,
    "reward_type": "bernoulli",
    "fit_reward_standardization": False,
    "reward_loc": None,
    "reward_scale": None,
    "noise_sigma": None,
    "noise_log_sigma_prior_std": 0.5,
    "n_objectives": None,
}


def _tuples(value):
    """JSON turned tuples into lists; the config must be hashable again."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


#: CmabGaussian's default prior sigma (of weights fitted to standardised rewards)
GAUSSIAN_PRIOR_SIGMA = 1.0


class CmabGaussian(CmabBernoulli):
    """Contextual bandit with real-valued rewards (PyBandits' ``CmabGaussian``): each action is a
    Bayesian MLP of the reward's mean with a learned noise std per action
    (:class:`~bandits_jax.likelihoods.Gaussian`), fitted by streaming SVI on standardised rewards;
    Thompson sampling draws each action's mean reward and the strategy compares those draws.

    :meth:`predict` returns, as PyBandits does, per row the chosen action, ``{action_id: sampled
    mean reward}`` and ``{action_id: noise std}`` (for monitoring; the noise std at ``log sigma``'s
    posterior mean, NaN before an action's first update unless ``noise_sigma`` was given).
    ``mab.actions[a].count`` / ``.mean`` are the rewards observed and their mean; ``n_successes``
    and ``n_failures`` stay at PyBandits' pseudo-counts 1 and 1.

    Examples:
        >>> import numpy as np
        >>> mab = CmabGaussian.cold_start(["a", "b"], n_features=2, fit_reward_standardization=True,
        ...                               update_kwargs={"num_steps": 50}, random_seed=0)
        >>> ctx = np.random.default_rng(0).normal(size=(6, 2))
        >>> actions, means, noise = mab.predict(ctx)
        >>> info = mab.update(actions=["a", "b"] * 3, rewards=[10.5, 3.0, 9.0, 2.5, 11.0, 4.0], context=ctx)
        >>> mab.actions["a"].count, round(mab.actions["a"].mean, 4)
        (3, 10.1667)
    """

    _kind: ClassVar[str] = "cmab_gaussian"
    _pybandits_exportable: ClassVar[bool] = False

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
        epsilon=None,
        default_action=None,
        default_action_fraction=None,
        limited_actions=None,
        limited_action_fraction=None,
        use_layerwise_scaling=False,
        bias_std=None,
        calibrate_output_bias=False,
        decay_factor=None,
        fit_reward_standardization=False,
        reward_loc=None,
        reward_scale=None,
        noise_sigma=None,
        noise_log_sigma_prior_std=0.5,
        policy: str = "bnn_ts",
        policy_kwargs: Mapping[str, Any] | None = None,
    ) -> CmabGaussian:
        """A model whose every action's posterior is the prior; the arguments of
        :meth:`CmabBernoulli.cold_start` (the Bayesian MLP's) plus PyBandits' Gaussian ones:

        Args:
            fit_reward_standardization: fit ``reward_loc`` (mean) and ``reward_scale`` (std, or
                ``max(|mean|, 1)`` without spread) on each action's first batch and keep them.
                False (PyBandits' default): both must be given and stay fixed.
            reward_loc, reward_scale: the network is fitted to ``(reward - reward_loc) /
                reward_scale``; ``reward_loc=0, reward_scale=1`` trains on the raw rewards (then
                the weight prior must suit their scale).
            noise_sigma: the initial guess of the noise std in reward units (None: the std of each
                action's first batch of targets).
            noise_log_sigma_prior_std: the std of ``log sigma``'s initial prior (0.5).
            dist_params_init: as :meth:`CmabBernoulli.cold_start`, but ``sigma`` defaults to 1
                (the targets are standardised; PyBandits' default).
            calibrate_output_bias: start each action's output bias at its first batch's mean target.
            decay_factor: PyBandits' forgetting; ``log sigma``'s posterior widens with the weights'.
            policy, policy_kwargs: as :meth:`CmabBernoulli.cold_start`: ``linear_ts``, ``lin_ucb``,
                ``neural_linear`` (exact Normal-inverse-gamma posteriors; their noise prior
                ``IG(a0, b0)`` in ``policy_kwargs``, Riquelme et al.'s 6 and 6 by default),
                ``ensemble`` and ``epsilon_greedy`` play Gaussian rewards too, on the same
                standardisation (``decay_factor`` is the Bayesian MLP's only; an exploring row
                of ``epsilon_greedy`` reports the uniform draws on [0, 1) it chose by, not rewards).

        Raises:
            ValueError / TypeError naming the argument, as PyBandits would (e.g. neither
            ``fit_reward_standardization`` nor both ``reward_loc`` and ``reward_scale``).
        """

        def bernoulli(dist_params, **extra) -> CmabBernoulli:
            """The Bernoulli model of these arguments: it validates the ones both kinds share."""
            return CmabBernoulli.cold_start(
                action_ids,
                n_features,
                hidden_dim_list,
                activation,
                use_residual_connections,
                dist_type,
                dist_params,
                update_kwargs,
                strategy,
                random_seed,
                epsilon=epsilon,
                default_action=default_action,
                default_action_fraction=default_action_fraction,
                limited_actions=limited_actions,
                limited_action_fraction=limited_action_fraction,
                use_layerwise_scaling=use_layerwise_scaling,
                bias_std=bias_std,
                calibrate_output_bias=calibrate_output_bias,
                **extra,
            )

        if policy != "bnn_ts" or policy_kwargs is not None:
            if decay_factor is not None:
                raise ValueError(
                    f"decay_factor with Gaussian rewards is for policy 'bnn_ts' only, got policy {policy!r}"
                )
            # the reward arguments, checked as the Bayesian MLP's config checks them
            rewards = CmabConfig(
                n_features=1,
                reward_type="gaussian",
                fit_reward_standardization=fit_reward_standardization,
                reward_loc=reward_loc,
                reward_scale=reward_scale,
                noise_sigma=noise_sigma,
                noise_log_sigma_prior_std=noise_log_sigma_prior_std,
            ).reward_data
            kwargs = dict(policy_kwargs or {})
            gaussian_only = {k: kwargs.pop(k) for k in ("a0", "b0") if k in kwargs}
            base = bernoulli(dist_params_init, policy=policy, policy_kwargs=kwargs)
            if policy in ("forgetting", "beta_bernoulli"):
                raise ValueError(f"policy {policy!r} does not take Gaussian rewards")
            from bandits_jax.policies import spec

            learner = spec.with_likelihood(base.config.policy, Gaussian(), "Gaussian rewards")
            init = {**dict(base.config.init), **rewards, **gaussian_only}
            learner.init(1, **init)  # checks the Gaussian init data (a0, b0) before anything is kept
            config = PolicyConfig(base.config.n_features, learner, tuple(sorted(init.items())))
            state = cls._cold_state(config, len(base._mask))
            return cls._from_padded(
                base._action_ids, config, state, base.strategy, base.key, base.exploration
            )
        if dist_params_init is None or (
            isinstance(dist_params_init, Mapping) and "sigma" not in dist_params_init
        ):
            # the targets are standardised: O(1) weights (PyBandits' default sigma, not the
            # Bernoulli model's 10, which would leave the sampled means spread over ~10 reward sds)
            dist_params_init = {"sigma": GAUSSIAN_PRIOR_SIGMA, **(dist_params_init or {})}
        base = bernoulli(dist_params_init, decay_factor=decay_factor)
        config = dataclasses.replace(
            base.config,
            reward_type="gaussian",
            fit_reward_standardization=fit_reward_standardization,
            reward_loc=reward_loc,
            reward_scale=reward_scale,
            noise_sigma=noise_sigma,
            noise_log_sigma_prior_std=noise_log_sigma_prior_std,
        )
        state = cls._cold_state(config, len(base._mask))
        return cls._from_padded(base._action_ids, config, state, base.strategy, base.key, base.exploration)

    def predict(self, context, forbidden_actions=None, top_k=None) -> tuple[list, list[dict], list[dict]]:
        """PyBandits' form: per row the chosen action id (with ``top_k`` the ``top_k`` best),
        ``{action_id: sampled mean reward}`` and ``{action_id: noise std}``. Arguments and errors
        as :meth:`predict_arrays` (whose ``probs`` and ``logits`` are both the sampled means)."""
        out = self.predict_arrays(context, forbidden_actions, top_k)
        ids = self._action_ids
        if top_k is None:
            actions = list(map(ids.__getitem__, out.action_indices.tolist()))
        else:
            actions = [list(map(ids.__getitem__, row)) for row in out.action_indices.tolist()]
        noise = np.broadcast_to(self.noise_std(), out.probs.shape)
        return actions, val.row_dicts(ids, out.probs), val.row_dicts(ids, noise)

    def noise_std(self) -> np.ndarray:
        """Each action's noise std in reward units (in ``action_ids`` order), at ``log sigma``'s
        posterior mean; NaN before the first update unless ``noise_sigma`` was given."""
        with self._lock:
            state = self._state
        lik = self._policy.likelihood
        return np.asarray(lik.noise_std(stats_of(state)))[: len(self._action_ids)].astype(np.float64)

    def posterior_mean(self, context) -> np.ndarray:
        """``(n_rows, n_actions)`` mean reward of every action under its posterior mean."""
        return self.posterior_mean_logits(context)


# ---------------------------------------------------------------------------------- strategy families
class CmabBernoulliCC(CostControlFamily, CmabBernoulli):
    """PyBandits' ``CmabBernoulliCC``: a :class:`CmabBernoulli` whose actions carry costs; per row
    the cheapest action whose sampled reward is within ``subsidy_factor`` of the best is chosen
    (:class:`~bandits_jax.strategy.CostControlBandit`). Costs and the factor are data of the
    strategy: :meth:`with_subsidy_factor` and :func:`bandits_jax.subsidy_factor.tune_subsidy_factor`
    change them without compiling anything.

    Examples:
        >>> mab = CmabBernoulliCC.cold_start({"cheap": 1.0, "dear": 5.0}, n_features=2, subsidy_factor=0.2)
        >>> mab.action_ids_cost, mab.subsidy_factor
        ({'cheap': 1.0, 'dear': 5.0}, 0.2)
    """

    @classmethod
    def cold_start(cls, action_ids_cost, n_features, subsidy_factor=0.5, **kwargs) -> CmabBernoulliCC:
        """``action_ids_cost``: ``{action_id: cost >= 0}`` (the actions, in this order);
        ``subsidy_factor`` in [0, 1]; any other argument of :meth:`CmabBernoulli.cold_start` but
        ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        ids, costs = ids_and_values(action_ids_cost, "action_ids_cost")
        strategy = CostControlBandit(costs, subsidy_factor)
        return super().cold_start(list(ids), n_features, strategy=strategy, **kwargs)


class CmabBernoulliDP(DynamicPricingFamily, CmabBernoulli):
    """PyBandits' ``CmabBernoulliDP``: actions carry prices and each row gets the action of the
    highest sampled revenue ``price * P(buy)`` (:class:`~bandits_jax.strategy.DynamicPricingBandit`).

    Examples:
        >>> mab = CmabBernoulliDP.cold_start({"p9": 9.0, "p12": 12.0}, n_features=2)
        >>> mab.action_ids_price
        {'p9': 9.0, 'p12': 12.0}
    """

    @classmethod
    def cold_start(cls, action_ids_price, n_features, **kwargs) -> CmabBernoulliDP:
        """``action_ids_price``: ``{action_id: price >= 0}``; any other argument of
        :meth:`CmabBernoulli.cold_start` but ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        ids, prices = ids_and_values(action_ids_price, "action_ids_price")
        return super().cold_start(list(ids), n_features, strategy=DynamicPricingBandit(prices), **kwargs)


class CmabBernoulliBAI(BestActionIdentificationFamily, CmabBernoulli):
    """PyBandits' ``CmabBernoulliBAI``: top-two Thompson sampling
    (:class:`~bandits_jax.strategy.BestActionIdentificationBandit`) for best-action identification."""

    @classmethod
    def cold_start(cls, action_ids, n_features, exploit_p=None, **kwargs) -> CmabBernoulliBAI:
        """``exploit_p`` in [0, 1] (None: PyBandits' 0.5); any other argument of
        :meth:`CmabBernoulli.cold_start` but ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        strategy = BestActionIdentificationBandit(0.5 if exploit_p is None else exploit_p)
        return super().cold_start(action_ids, n_features, strategy=strategy, **kwargs)


class CmabBernoulliMO(MultiObjectiveFamily, CmabBernoulli):
    """PyBandits' ``CmabBernoulliMO``: ``n_objectives`` Bayesian MLPs per action (one per reward
    of the vector; :class:`~bandits_jax.policies.MultiObjective` over
    :class:`~bandits_jax.policies.BnnTS`), and each row picks a random Pareto-optimal action of its
    Thompson draws (:class:`~bandits_jax.strategy.MultiObjectiveBandit`). ``update`` takes one
    reward vector per row; ``predict`` returns ``{action_id: [p_1, ..., p_K]}`` per row.

    Examples:
        >>> import numpy as np
        >>> mab = CmabBernoulliMO.cold_start(["a", "b"], n_features=2, n_objectives=2,
        ...                                  update_kwargs={"num_steps": 20}, random_seed=0)
        >>> actions, probs, logits = mab.predict(np.zeros((3, 2)))
        >>> len(probs[0]["a"])
        2
        >>> info = mab.update(["a", "b"], [[1, 0], [0, 1]], np.zeros((2, 2)))
        >>> mab.actions["a"].n_successes
        [2, 1]
    """

    @classmethod
    def cold_start(
        cls,
        action_ids,
        n_features,
        n_objectives=2,
        hidden_dim_list=None,
        activation="tanh",
        use_residual_connections=False,
        dist_type="normal",
        dist_params_init=None,
        update_kwargs=None,
        random_seed=None,
        use_layerwise_scaling=False,
        bias_std=None,
        calibrate_output_bias=False,
        *,
        _strategy=None,
    ) -> CmabBernoulliMO:
        """The Bayesian MLP's arguments of :meth:`CmabBernoulli.cold_start` and ``n_objectives``
        (>= 1); epsilon-greedy, action controls, soft rewards and forgetting are not available
        for multi-objective models yet."""
        cls._check_n_objectives(n_objectives)
        strategy = MultiObjectiveBandit() if _strategy is None else _strategy
        base = CmabBernoulli.cold_start(
            action_ids,
            n_features,
            hidden_dim_list,
            activation,
            use_residual_connections,
            dist_type,
            dist_params_init,
            update_kwargs,
            random_seed=random_seed,
            use_layerwise_scaling=use_layerwise_scaling,
            bias_std=bias_std,
            calibrate_output_bias=calibrate_output_bias,
        )
        config = dataclasses.replace(base.config, n_objectives=n_objectives)
        state = cls._cold_state(config, len(base._mask))
        return cls._from_padded(base._action_ids, config, state, strategy, base.key)

    def predict(self, context, forbidden_actions=None, top_k=None) -> tuple[list, list[dict], list[dict]]:
        """Per row the chosen action id, ``{action_id: [p_1, ..., p_K]}`` and
        ``{action_id: [logit_1, ..., logit_K]}`` of its Thompson draws (``top_k``: not available)."""
        self._no_top_k(top_k)
        out = self.predict_arrays(context, forbidden_actions)
        actions = list(map(self._action_ids.__getitem__, out.action_indices.tolist()))
        return actions, self._vector_rows(out.probs), self._vector_rows(out.logits)


class CmabBernoulliMOCC(CostControlFamily, CmabBernoulliMO):
    """PyBandits' ``CmabBernoulliMOCC``: :class:`CmabBernoulliMO` with action costs
    (:class:`~bandits_jax.strategy.MultiObjectiveCostControlBandit`)."""

    _strategy_type = MultiObjectiveCostControlBandit

    @classmethod
    def cold_start(
        cls, action_ids_cost, n_features, n_objectives=2, subsidy_factor=0.5, **kwargs
    ) -> CmabBernoulliMOCC:
        """``action_ids_cost``: ``{action_id: cost >= 0}``; ``subsidy_factor`` in [0, 1]; any other
        argument of :meth:`CmabBernoulliMO.cold_start`."""
        ids, costs = ids_and_values(action_ids_cost, "action_ids_cost")
        strategy = MultiObjectiveCostControlBandit(costs, subsidy_factor)
        return super().cold_start(list(ids), n_features, n_objectives, _strategy=strategy, **kwargs)
