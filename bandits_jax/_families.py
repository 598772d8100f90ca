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
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bandits_jax import _validation as val
from bandits_jax.strategy import (
    BestActionIdentificationBandit,
    CostControlBandit,
    DynamicPricingBandit,
    Strategy,
)


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
        if not (np.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"{name}[{action_id!r}] must be finite and >= 0, got {value!r}")
        values.append(float(value))
    return ids, np.asarray(values)


class _StrategyFamily:
    """Mixin: the strategy class a family runs (``_strategy_type``) and the name of its per-action
    data (``_per_action``: the strategy field and PyBandits' argument), checked in ``_setup``."""

    _strategy_type: ClassVar[type]
    _per_action: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def _check_strategy(cls, strategy: Strategy, ids: tuple) -> None:
        if not isinstance(strategy, cls._strategy_type):
            raise TypeError(
                f"a {cls.__name__} runs a {cls._strategy_type.__name__} strategy, got {type(strategy).__name__}"
            )
        if cls._per_action is not None:
            field, argument = cls._per_action
            n = np.shape(getattr(strategy, field))[0]
            if n != len(ids):
                raise ValueError(
                    f"{argument} must give one value per action ({len(ids)}), got {n} in the strategy"
                )

    def _values(self) -> dict:
        field, _ = self._per_action
        return dict(zip(self.action_ids, np.asarray(getattr(self.strategy, field)).tolist()))

    def with_strategy(self, strategy: Strategy):
        """A copy of this model (same state and key) that runs ``strategy`` (checked as above)."""
        with self._lock:
            state, key = self._state, self._key
        return type(self)._from_padded(
            self._action_ids, self._config, state, strategy, key, self._exploration
        )


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
