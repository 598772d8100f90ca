"""PyBandits' model families that differ from the Bernoulli bandit only in their strategy: cost
control (``...CC``: ``action_ids_cost`` and ``subsidy_factor``), dynamic pricing (``...DP``:
``action_ids_price``) and best-action identification (``...BAI``: ``exploit_p``). Each is a mixin
over :class:`~bandits_jax.cmab.CmabBernoulli` or :class:`~bandits_jax.smab.SmabBernoulli`: it builds
the strategy from PyBandits' arguments (costs and prices are data of the strategy, in the model's
action order, so new values compile nothing) and checks, on every path that builds a model (cold
start, load, transfer), that the strategy fits the family and the action set.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bandits_jax import _validation as val
from bandits_jax.strategy import (
    BestActionIdentificationBandit,
    CostControlBandit,
    DynamicPricingBandit,
    MultiObjectiveBandit,
    MultiObjectiveCostControlBandit,
    Strategy,
)


def _shortest(value: float) -> float:
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def ids_and_values(mapping: Any, name: str) -> tuple[tuple, np.ndarray]:
    """``action_ids_cost`` / ``action_ids_price``: the action ids (in the mapping's order) and
    their values, each a finite real number >= 0.

    Raises:
        TypeError / ValueError naming ``name`` and the action.
    """
    if not isinstance(mapping, Mapping) or not mapping:
        raise TypeError(f"{name} must be a non-empty dict of action id -> number >= 0, got {mapping!r}")
    ids = val.action_ids_tuple(list(mapping))
    values = []
    for action_id in ids:
        value = mapping[action_id]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}[{action_id!r}] must be a real number >= 0, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if not (abs(number) <= float(np.finfo(np.float32).max) and number >= 0):
            raise ValueError(f"{name}[{action_id!r}] must be finite (in float32) and >= 0, got {value!r}")
        values.append(number)
    return ids, np.asarray(values)


def no_strategy(kwargs: dict, family: str) -> None:
    """A family builds its strategy from PyBandits' arguments: refuse a ``strategy=`` too."""
    if "strategy" in kwargs:
        raise TypeError(f"{family} builds its strategy from its own arguments; do not pass strategy=")


class _StrategyFamily:
    """Mixin: the strategy class a family runs (``_strategy_type``) and the name of its per-action
    data (``_per_action``: the strategy field and PyBandits' argument), checked in ``_setup``."""

    _strategy_type: ClassVar[type]
    _per_action: ClassVar[tuple[str, str] | None] = None
    #: PyBandits' state format has no place for this family's settings here (to_pybandits_state)
    _pybandits_exportable: ClassVar[bool] = False

    @classmethod
    def _check_strategy(cls, strategy: Strategy, ids: tuple) -> None:
        if not isinstance(strategy, cls._strategy_type):
            kinds = cls._strategy_type if isinstance(cls._strategy_type, tuple) else (cls._strategy_type,)
            raise TypeError(
                f"a {cls.__name__} runs a {' or '.join(k.__name__ for k in kinds)} strategy, "
                f"got {type(strategy).__name__}"
            )
        if cls._per_action is not None:
            field, argument = cls._per_action
            n = np.shape(getattr(strategy, field))[0]
            if n != len(ids):
                raise ValueError(
                    f"{argument} must give one value per action ({len(ids)}), got {n} in the strategy"
                )
        from bandits_jax._bandit import check_per_action_data

        check_per_action_data(strategy, ids)  # e.g. a cost-control strategy in an MO model

    def _values(self) -> dict:
        """The strategy's per-action data by action id, each value the shortest decimal that reads
        back as the stored float32 (0.1, not 0.10000000149011612)."""
        field, _ = self._per_action
        values = np.asarray(getattr(self.strategy, field))
        # a float32-representable value reads as its shortest float32 decimal (also when loaded
        # into float64 under x64); a genuine float64 value as itself
        return dict(zip(self.action_ids, (_shortest(float(v)) for v in values)))


class CostControlFamily(_StrategyFamily):
    _strategy_type = CostControlBandit
    _per_action = ("costs", "action_ids_cost")

    @property
    def action_ids_cost(self) -> dict:
        """``{action_id: cost}`` (PyBandits' argument)."""
        return self._values()

    @property
    def subsidy_factor(self) -> float:
        return float(self.strategy.subsidy_factor)

    def with_subsidy_factor(self, subsidy_factor: float):
        """A copy of this model (same state and key) with another ``subsidy_factor``."""
        return self.with_strategy(self.strategy.with_subsidy_factor(subsidy_factor))


class DynamicPricingFamily(_StrategyFamily):
    _strategy_type = DynamicPricingBandit
    _per_action = ("prices", "action_ids_price")

    @property
    def action_ids_price(self) -> dict:
        """``{action_id: price}`` (PyBandits' argument)."""
        return self._values()


class BestActionIdentificationFamily(_StrategyFamily):
    _strategy_type = BestActionIdentificationBandit

    @property
    def exploit_p(self) -> float:
        return float(self.strategy.exploit_p)


class MultiObjectiveFamily(_StrategyFamily):
    """Reward vectors of ``n_objectives`` entries (PyBandits' ``...MO`` classes): the policy is
    :class:`~bandits_jax.policies.MultiObjective`; rewards, counts and sampled probabilities carry
    a trailing objective axis, and a Pareto strategy chooses."""

    _strategy_type = (MultiObjectiveBandit, MultiObjectiveCostControlBandit)

    @property
    def n_objectives(self) -> int:
        return self._config.n_objectives

    @classmethod
    def _check_n_objectives(cls, n_objectives: Any) -> None:
        if isinstance(n_objectives, (bool, np.bool_)) or not isinstance(n_objectives, numbers.Integral):
            raise TypeError(f"n_objectives must be a positive int, got {n_objectives!r}")
        if n_objectives < 1:
            raise ValueError(f"n_objectives must be a positive int, got {n_objectives!r}")

    def _check_rewards(self, rewards: Any) -> np.ndarray:
        """One reward vector of ``n_objectives`` entries per row, each entry checked as the
        likelihood checks a reward; an ``(n_rows, n_objectives)`` array."""
        k = self.n_objectives
        if not isinstance(rewards, (list, tuple, np.ndarray, str, bytes)) and hasattr(rewards, "__array__"):
            rewards = np.asarray(rewards)  # a JAX array
        elif isinstance(rewards, (list, tuple)) and rewards and isinstance(rewards[0], (list, tuple)):
            try:  # the usual list of equal-length lists: one array, the vectorised check below
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # NumPy's ragged-array warnings: take the row loop
                    candidate = np.asarray(rewards)
            except (ValueError, TypeError, Warning):
                candidate = None
            if candidate is not None and candidate.ndim == 2 and candidate.dtype.kind in "iuf":
                rewards = candidate
        if isinstance(rewards, np.ndarray) and rewards.ndim == 2 and rewards.dtype.kind in "biuf":
            if rewards.shape[1] != k:
                raise ValueError(
                    f"rewards must hold {k} rewards per row (one per objective), got shape {rewards.shape}"
                )
            return self._policy.likelihood.check_rewards(rewards.ravel(), "rewards").reshape(len(rewards), k)
        if (
            isinstance(rewards, (str, bytes))
            or not isinstance(rewards, (list, tuple, np.ndarray))
            or np.ndim(rewards) == 0
        ):
            raise TypeError(f"rewards must be a list of reward vectors ({k} each), got {rewards!r}")
        rows = list(rewards)
        flat = []
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple, np.ndarray, str, bytes)) and hasattr(row, "__array__"):
                row = np.asarray(row)  # a JAX row
            if (
                isinstance(row, (str, bytes))
                or not isinstance(row, (list, tuple, np.ndarray))
                or np.ndim(row) != 1
            ):
                raise TypeError(
                    f"rewards[{i}] must be a list of {k} rewards (one per objective), got {row!r}"
                )
            if len(row) != k:
                raise ValueError(f"rewards[{i}] must hold {k} rewards (one per objective), got {len(row)}")
            flat.extend(row.tolist() if isinstance(row, np.ndarray) else row)
        checked = self._policy.likelihood.check_rewards(flat, "rewards")
        return checked.reshape(len(rows), k)

    def _host_tally(self, idx: np.ndarray, rewards: np.ndarray, rows: np.ndarray, n_actions: int):
        successes = np.stack(
            [np.bincount(idx, rewards[:, j], minlength=n_actions) for j in range(self.n_objectives)], axis=1
        )
        return successes, rows[:n_actions, None] - successes

    def _vector_rows(self, probs: np.ndarray) -> list[dict]:
        """``[{action_id: [p_1, ..., p_K]}]`` per row of ``(n_rows, n_actions, K)`` draws."""
        ids = self._action_ids
        return [dict(zip(ids, row)) for row in np.asarray(probs).tolist()]

    def _no_top_k(self, top_k) -> None:
        if top_k is not None:
            raise ValueError(
                "top_k ranks single rewards; a multi-objective model has no ranking (use top_k=None)"
            )
