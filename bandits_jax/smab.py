"""Context-free Bernoulli bandit: Beta-Bernoulli Thompson sampling (PyBandits' ``SmabBernoulli``).

The functional core (:func:`init`, :func:`predict`, :func:`update`) works on a :class:`SmabState`
with a leading action axis; :class:`SmabBernoulli` is the object API on top, running the policy
:class:`~bandits_jax.policies.BetaBernoulli` through the same base as the contextual bandit.

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
import functools
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, no_type_check

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from bandits_jax import _validation as val
from bandits_jax._bandit import Bandit, make_exploration
from bandits_jax._families import (
    BestActionIdentificationFamily,
    CostControlFamily,
    DynamicPricingFamily,
    MultiObjectiveFamily,
    ids_and_values,
    no_strategy,
)
from bandits_jax.likelihoods import BernoulliStats, SoftBernoulli, host_counts, saturating_add
from bandits_jax.policies.base import stats_of
from bandits_jax.policies.beta_bernoulli import BetaBernoulli
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
    "SmabBernoulli",
    "SmabBernoulliBAI",
    "SmabBernoulliCC",
    "SmabBernoulliDP",
    "SmabBernoulliMO",
    "SmabBernoulliMOCC",
    "SmabConfig",
    "SmabState",
    "init",
    "predict",
    "update",
]

#: Beta posterior of each action: ``Beta(n_successes, n_failures)``, both counted from 1 (the
#: Bernoulli likelihood's counters are the whole state of the Beta-Bernoulli policy).
SmabState = BernoulliStats


def init(n_actions: int) -> SmabState:
    """Every action at ``Beta(1, 1)`` (built with NumPy: no compilation per action count)."""
    ones = jnp.asarray(np.ones((n_actions,), np.int32))
    return SmabState(ones, ones)


def _predict(state: SmabState, key: PRNGKeyArray, strategy: Strategy, n: int, action_mask=None):
    out = BetaBernoulli().predict(key, state, jnp.zeros((n, 0)), strategy, action_mask)
    return out.actions, out.probs


predict = jax.jit(_predict, static_argnums=3)
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


@no_type_check  # the fields are checked with PyBandits' error messages, not by a type checker
@dataclasses.dataclass(frozen=True)
class SmabConfig:
    """The reward options of a :class:`SmabBernoulli` (PyBandits' names): soft rewards in [0, 1]
    and forgetting (``decay_factor`` in (0, 1], data; see
    :mod:`bandits_jax.policies.forgetting`)."""

    use_soft_rewards: bool = False
    decay_factor: float | None = None
    #: None: one reward per row; an int >= 1: reward vectors (the multi-objective classes)
    n_objectives: int | None = None

    def __post_init__(self):
        from bandits_jax._validation import check_decay_factor

        if self.n_objectives is not None:
            n = self.n_objectives
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"n_objectives must be a positive int, got {n!r}")
            object.__setattr__(self, "n_objectives", int(n))
            if self.use_soft_rewards or self.decay_factor is not None:
                raise ValueError(
                    "use_soft_rewards and decay_factor are not available for multi-objective models yet"
                )

        if not isinstance(self.use_soft_rewards, (bool, np.bool_)):
            raise TypeError(f"use_soft_rewards must be a bool, got {self.use_soft_rewards!r}")
        object.__setattr__(self, "use_soft_rewards", bool(self.use_soft_rewards))
        if self.decay_factor is not None:
            check_decay_factor(self.decay_factor)
            object.__setattr__(self, "decay_factor", float(self.decay_factor))


_PLAIN = SmabConfig()


@dataclasses.dataclass(frozen=True)
class SmabActionView:
    action_id: Any
    n_successes: int | float | list  # a float for soft rewards; a list per objective for MO models
    n_failures: int | float | list


class _Actions(Mapping):
    def __init__(self, ids: tuple, state: Any):
        self._ids, self._index = ids, {a: i for i, a in enumerate(ids)}
        self._s, self._f = host_counts(stats_of(state))

    def __getitem__(self, aid) -> SmabActionView:
        i = self._index[aid]
        # a Python number, or a list of one per objective for a multi-objective model
        return SmabActionView(aid, self._s[i].tolist(), self._f[i].tolist())

    def __iter__(self) -> Iterator:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class SmabBernoulli(Bandit):
    """Stochastic (context-free) Bernoulli bandit with Beta-Bernoulli Thompson sampling.

    Safe under threads: each call validates its input, then advances the key and swaps the state
    as one atomic step, so concurrent updates are all counted and no two predicts share a draw.
    """

    _kind: ClassVar[str] = "smab"
    _rows_per_batch: ClassVar[bool] = True  # counting is cheap: one program per batch bucket

    def __init__(self, *, action_ids, state: SmabState, strategy: Strategy, key: jax.Array):
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        if not isinstance(state, SmabState) or state.n_successes.shape != (len(ids),):
            raise ValueError(
                f"state must be a SmabState with one entry per action ({len(ids)}), got {state!r}"
            )
        self.__dict__.update(self._build(ids, None, state, strategy, key).__dict__)

    @classmethod
    def cold_start(
        cls,
        action_ids,
        strategy: Strategy = ClassicBandit(),
        random_seed: int | None = None,
        epsilon=None,
        default_action=None,
        default_action_fraction=None,
        limited_actions=None,
        limited_action_fraction=None,
        use_soft_rewards=False,
        decay_factor=None,
    ) -> SmabBernoulli:
        """Every action starts at ``Beta(1, 1)``; ``random_seed=None`` draws the seed from NumPy's
        global generator. ``epsilon`` and ``default_action``: epsilon-greedy on top of the strategy,
        as :meth:`bandits_jax.cmab.CmabBernoulli.cold_start` (exploiting rows pick by the posterior
        mean). ``use_soft_rewards``: ``update`` takes rewards in [0, 1], counted as PyBandits
        (``r`` success and ``1 - r`` failure per row). ``decay_factor`` in (0, 1]: PyBandits'
        forgetting, each update of an action first shrinks its (decayed) counts toward the prior,
        ``n <- 1 + decay_factor * (n - 1) + new``, and the draws come from those; the raw counts
        (``actions[a].n_successes``) still add up everything."""
        ids = val.action_ids_tuple(action_ids)
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        config = SmabConfig(use_soft_rewards, decay_factor)
        exploration = make_exploration(
            epsilon, default_action, ids, default_action_fraction, limited_actions, limited_action_fraction
        )
        key = val.key_from_seed(val.random_seed(random_seed))
        state = cls._cold_state(config, val.action_bucket(len(ids)))
        return cls._from_padded(ids, config, state, strategy, key, exploration)

    @classmethod
    def from_pybandits_state(cls, state, random_seed: int | None = None) -> SmabBernoulli:
        """The model PyBandits 8.x's ``SmabBernoulli.get_state()`` describes (JSON text or the
        ``(class_name, json)`` pair): counts (fractional with soft rewards), ``decay_factor`` and
        the decayed counts, strategy and exploration settings.

        Raises:
            ValueError (or TypeError) naming the problem; nothing is built then.
        """
        from bandits_jax import pybandits_compat as compat

        data = compat.read_state(state, "SmabBernoulli")
        ids, state, soft, decay = compat.smab_parts(data)
        config = SmabConfig(soft, decay)
        strategy = compat.strategy_of(data)
        exploration = compat.exploration_of(data, ids)
        return cls._build(ids, config, state, strategy, compat.key_of(data, random_seed), exploration)

    def to_pybandits_state(self) -> tuple[str, str]:
        """``(class_name, json)`` as PyBandits 8.4.1's ``SmabBernoulli.get_state()`` writes it."""
        from bandits_jax import pybandits_compat as compat

        return compat.to_pybandits_state(self)

    # ------------------------------------------------------------------ hooks of the base
    @classmethod
    def _policy_of(cls, config: SmabConfig | None) -> Any:
        vectors = (config or _PLAIN).n_objectives is not None
        if vectors != issubclass(cls, MultiObjectiveFamily):
            raise ValueError(
                f"a {cls.__name__} cannot run n_objectives={(config or _PLAIN).n_objectives!r} "
                f"(use {'SmabBernoulliMO' if vectors else 'SmabBernoulli'})"
            )
        return _policy(config or _PLAIN)

    @classmethod
    def _cold_state(cls, config: SmabConfig | None, n_actions: int) -> Any:
        config = config or _PLAIN
        if config == _PLAIN:
            return init(n_actions)
        policy = _policy(config)
        if config.decay_factor is None:
            return policy.init(n_actions)
        return policy.init(n_actions, decay_factor=config.decay_factor)

    def _config_json(self) -> dict | None:
        config = self._config or _PLAIN
        if config == _PLAIN:
            return None  # older files: None
        fields = dataclasses.asdict(config)
        if config.n_objectives is None:  # as written before multi-objective models existed
            del fields["n_objectives"]
        return fields

    @classmethod
    def _config_from_json(cls, fields: Any) -> SmabConfig:
        if fields is None:
            return _PLAIN
        names = {"use_soft_rewards", "decay_factor"}
        if not isinstance(fields, dict) or set(fields) - {"n_objectives"} != names:
            raise ValueError(f"an sMAB config must hold use_soft_rewards and decay_factor, got {fields!r}")
        return SmabConfig(**fields)

    def _check_transfer(self, current, common: list) -> None:
        old = (current._config or _PLAIN).n_objectives
        new = (self._config or _PLAIN).n_objectives
        if old != new:
            raise ValueError(
                f"cannot carry action {common[0]!r} over: the template has n_objectives={new!r} and the "
                f"current model n_objectives={old!r} (reward vectors of another length)"
            )

    # ------------------------------------------------------------------ read-only properties
    @property
    def actions(self) -> Mapping[Any, SmabActionView]:
        return _Actions(self._action_ids, self._snapshot()[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(actions={list(self._action_ids)!r}, strategy={self._strategy!r})"

    # ------------------------------------------------------------------ predict and update
    def predict_arrays(
        self, n_samples: int = 1, forbidden_actions=None, top_k=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chosen action *ids* ``(n_samples,)`` as a NumPy array (feed them straight back to
        :meth:`update`) and the sampled probabilities ``(n_samples, n_actions)``.
        ``forbidden_actions`` and ``top_k`` (ids ``(n_samples, top_k)``, best first) as
        :meth:`bandits_jax.cmab.CmabBernoulli.predict_arrays`."""
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)):
            raise TypeError(f"n_samples must be a positive int, got {n_samples!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        n = int(n_samples)
        out = self._predict_padded(_no_features(val.bucket(n)), n, forbidden_actions, top_k)
        return out.actions, out.probs

    def predict(self, n_samples: int = 1, forbidden_actions=None, top_k=None) -> tuple[list, list[dict]]:
        """PyBandits' form: the chosen action ids (with ``top_k``, a list per sample, best first)
        and per sample ``{action_id: prob}``."""
        chosen, probs = self.predict_arrays(n_samples, forbidden_actions, top_k)
        return chosen.tolist(), val.row_dicts(self._action_ids, probs)

    def update(self, actions, rewards) -> None:
        """Add the batch's successes and failures to each action's Beta posterior.

        Counters saturate at 2**31 - 1 (a :class:`~bandits_jax.cmab.CounterSaturationWarning` says
        so) instead of wrapping around.
        """
        idx = val.as_action_indices(actions, self._index)
        rew = self._check_rewards(rewards)
        n = val.check_lengths(actions=idx, rewards=rew)
        self._update_rows(idx, rew, _no_features(n))


@functools.lru_cache(maxsize=8)
def _policy(config: SmabConfig) -> Any:
    """The policy of an sMAB config: Beta-Bernoulli, on soft counts, with forgetting."""
    from bandits_jax.policies.forgetting import Forgetting

    policy = BetaBernoulli(SoftBernoulli()) if config.use_soft_rewards else BetaBernoulli()
    if config.n_objectives is not None:
        from bandits_jax.policies.multi_objective import MultiObjective

        return MultiObjective(policy, config.n_objectives)
    return policy if config.decay_factor is None else Forgetting(policy)


def _no_features(n: int) -> np.ndarray:
    """A context of ``n`` rows and no columns (the sMAB's predictions only need a row count)."""
    return np.zeros((n, 0), np.float32)


# ---------------------------------------------------------------------------------- strategy families
class SmabBernoulliCC(CostControlFamily, SmabBernoulli):
    """PyBandits' ``SmabBernoulliCC``: Beta-Bernoulli Thompson sampling with action costs and
    :class:`~bandits_jax.strategy.CostControlBandit` (see
    :class:`bandits_jax.cmab.CmabBernoulliCC`).

    Examples:
        >>> mab = SmabBernoulliCC.cold_start({"a": 1.0, "b": 2.0}, subsidy_factor=0.3)
        >>> mab.action_ids_cost, mab.subsidy_factor
        ({'a': 1.0, 'b': 2.0}, 0.3)
    """

    @classmethod
    def cold_start(cls, action_ids_cost, subsidy_factor=0.5, **kwargs) -> SmabBernoulliCC:
        """``action_ids_cost``: ``{action_id: cost >= 0}``; ``subsidy_factor`` in [0, 1]; any other
        argument of :meth:`SmabBernoulli.cold_start` but ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        ids, costs = ids_and_values(action_ids_cost, "action_ids_cost")
        return super().cold_start(list(ids), strategy=CostControlBandit(costs, subsidy_factor), **kwargs)


class SmabBernoulliDP(DynamicPricingFamily, SmabBernoulli):
    """PyBandits' ``SmabBernoulliDP``: each draw picks the action of the highest sampled revenue
    ``price * P(buy)`` (:class:`~bandits_jax.strategy.DynamicPricingBandit`)."""

    @classmethod
    def cold_start(cls, action_ids_price, **kwargs) -> SmabBernoulliDP:
        """``action_ids_price``: ``{action_id: price >= 0}``; any other argument of
        :meth:`SmabBernoulli.cold_start` but ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        ids, prices = ids_and_values(action_ids_price, "action_ids_price")
        return super().cold_start(list(ids), strategy=DynamicPricingBandit(prices), **kwargs)


class SmabBernoulliBAI(BestActionIdentificationFamily, SmabBernoulli):
    """PyBandits' ``SmabBernoulliBAI``: top-two Thompson sampling
    (:class:`~bandits_jax.strategy.BestActionIdentificationBandit`)."""

    @classmethod
    def cold_start(cls, action_ids, exploit_p=None, **kwargs) -> SmabBernoulliBAI:
        """``exploit_p`` in [0, 1] (None: PyBandits' 0.5); any other argument of
        :meth:`SmabBernoulli.cold_start` but ``strategy``."""
        no_strategy(kwargs, cls.__name__)
        strategy = BestActionIdentificationBandit(0.5 if exploit_p is None else exploit_p)
        return super().cold_start(action_ids, strategy=strategy, **kwargs)


class SmabBernoulliMO(MultiObjectiveFamily, SmabBernoulli):
    """PyBandits' ``SmabBernoulliMO``: ``n_objectives`` Beta posteriors per action (one per reward
    of the vector), and each draw picks a random Pareto-optimal action
    (:class:`~bandits_jax.strategy.MultiObjectiveBandit`). ``update`` takes one reward vector per
    row; ``predict`` returns ``{action_id: [p_1, ..., p_K]}`` per sample.

    Examples:
        >>> mab = SmabBernoulliMO.cold_start(["a", "b"], n_objectives=2, random_seed=0)
        >>> mab.update(["a", "b"], [[1, 0], [0, 1]])
        >>> mab.actions["a"].n_successes, mab.actions["b"].n_successes
        ([2, 1], [1, 2])
    """

    @classmethod
    def cold_start(cls, action_ids, n_objectives=2, random_seed=None, **kwargs) -> SmabBernoulliMO:
        """``n_objectives`` >= 1; ``random_seed`` as :meth:`SmabBernoulli.cold_start` (its other
        options, epsilon-greedy, soft rewards and forgetting, are not available here yet)."""
        _no_options(kwargs, cls.__name__)
        return cls._mo_model(action_ids, n_objectives, MultiObjectiveBandit(), random_seed)

    def predict(self, n_samples: int = 1, forbidden_actions=None, top_k=None) -> tuple[list, list[dict]]:
        """The chosen action ids and per sample ``{action_id: [p_1, ..., p_K]}`` (PyBandits' form);
        ``forbidden_actions`` as :meth:`SmabBernoulli.predict` (``top_k``: not available)."""
        self._no_top_k(top_k)
        chosen, probs = self.predict_arrays(n_samples, forbidden_actions)
        return chosen.tolist(), self._vector_rows(probs)

    def __init__(self, *, action_ids, state: SmabState, strategy: Strategy, key: jax.Array):
        ids = val.action_ids_tuple(list(action_ids) if isinstance(action_ids, tuple) else action_ids)
        shape = np.shape(getattr(state, "n_successes", None))
        if not isinstance(state, SmabState) or len(shape) != 2 or shape[0] != len(ids):
            raise ValueError(
                f"state must be a SmabState of counters (n_actions, n_objectives), one row per action "
                f"({len(ids)}), got {state!r}"
            )
        config = SmabConfig(n_objectives=shape[1])
        self.__dict__.update(self._build(ids, config, state, strategy, key).__dict__)

    @classmethod
    def _mo_model(cls, action_ids, n_objectives, strategy, random_seed):
        cls._check_n_objectives(n_objectives)
        ids = val.action_ids_tuple(action_ids)
        config = SmabConfig(n_objectives=n_objectives)
        key = val.key_from_seed(val.random_seed(random_seed))
        return cls._from_padded(
            ids, config, cls._cold_state(config, val.action_bucket(len(ids))), strategy, key
        )


class SmabBernoulliMOCC(CostControlFamily, SmabBernoulliMO):
    """PyBandits' ``SmabBernoulliMOCC``: :class:`SmabBernoulliMO` with action costs
    (:class:`~bandits_jax.strategy.MultiObjectiveCostControlBandit`).

    Examples:
        >>> mab = SmabBernoulliMOCC.cold_start({"a": 1.0, "b": 0.0}, n_objectives=2, subsidy_factor=0.2)
        >>> mab.action_ids_cost, mab.subsidy_factor
        ({'a': 1.0, 'b': 0.0}, 0.2)
    """

    _strategy_type = MultiObjectiveCostControlBandit

    @classmethod
    def cold_start(
        cls, action_ids_cost, n_objectives=2, subsidy_factor=0.5, random_seed=None, **kwargs
    ) -> SmabBernoulliMOCC:
        """``action_ids_cost``: ``{action_id: cost >= 0}``; ``subsidy_factor`` in [0, 1]."""
        _no_options(kwargs, cls.__name__)
        ids, costs = ids_and_values(action_ids_cost, "action_ids_cost")
        strategy = MultiObjectiveCostControlBandit(costs, subsidy_factor)
        return cls._mo_model(list(ids), n_objectives, strategy, random_seed)


def _no_options(kwargs: dict, family: str) -> None:
    if kwargs:
        raise TypeError(
            f"{family}.cold_start got unexpected argument(s) {sorted(kwargs)} (epsilon-greedy, action "
            "controls, soft rewards and forgetting are not available for multi-objective models yet)"
        )
