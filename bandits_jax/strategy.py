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
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray


def _check_unit(name: str, value) -> None:
    """A strategy's probability-like number: a real scalar in [0, 1] (unless traced)."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}") from err
    if arr.shape != () or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real scalar in [0, 1], got {value!r}")
    if not 0.0 <= float(arr) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


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

    exploit_p: float | Float[Array, ""] = 0.5

    def __check_init__(self):
        _check_unit("exploit_p", self.exploit_p)

    def __call__(self, probs, key):
        if probs.shape[-1] < 2:
            return jnp.zeros(probs.shape[:-1], jnp.int32)
        values, top2 = jax.lax.top_k(probs, 2)
        exploit = jax.random.uniform(key, probs.shape[:-1]) < self.exploit_p
        exploit = exploit | (values[..., 1] == -jnp.inf)
        return jnp.where(exploit, top2[..., 0], top2[..., 1])


def _per_action(values: Array, n_actions: int, fill: float) -> Array:
    """A strategy's per-action data for ``n_actions`` columns: the object API pads its action axis
    to a bucket (those columns are masked to ``-inf``), so shorter data is padded with ``fill``."""
    values = jnp.asarray(values)
    if values.shape[0] < n_actions:
        values = jnp.concatenate([values, jnp.full((n_actions - values.shape[0],), fill, values.dtype)])
    return values


def _check_per_action(name: str, values, allow_empty: bool = False) -> None:
    """Concrete per-action data (costs, prices): a 1-D array of finite numbers >= 0."""
    if isinstance(values, jax.core.Tracer):
        return
    try:
        arr = np.asarray(values)
    except Exception as err:  # noqa: BLE001 (ragged input)
        raise ValueError(f"{name} must be a 1-D array of numbers >= 0: {err}") from err
    if arr.ndim != 1 or (arr.size == 0 and not allow_empty):
        raise ValueError(f"{name} must be a non-empty 1-D array (one per action), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf" or arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):
        finite = np.isfinite(arr) & np.isfinite(arr.astype(np.float32))  # finite in float32 too
    bad = ~(finite & (arr >= 0))
    if bad.any():
        raise ValueError(
            f"{name} must be finite (in float32) and >= 0, got {arr[bad][0]!r} at position {int(np.argmax(bad))}"
        )


def _per_action_array(name: str, values) -> Array:
    """Checked per-action data as an array of the default float width."""
    if isinstance(values, jax.core.Tracer):
        return values
    _check_per_action(name, values)
    return jnp.asarray(np.asarray(values), jnp.result_type(float))


class CostControlBandit(Strategy):
    """PyBandits' ``CostControlBandit`` (Daulton et al. 2019; Sinha et al. 2021): per row, the
    feasible actions are those whose sampled reward is at least ``(1 - subsidy_factor)`` times the
    best sampled reward; among them the cheapest is picked, ties broken by the higher sampled
    reward (then by action order). ``subsidy_factor=0`` is Thompson sampling, 1 always the cheapest
    allowed action. ``costs`` (one per action, in the model's action order) and ``subsidy_factor``
    are data: a new value compiles nothing. If no action passes the threshold (a negative best
    reward, e.g. Gaussian), the best one is picked, as PyBandits falls back.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> s = CostControlBandit(costs=jnp.array([3.0, 1.0, 2.0]), subsidy_factor=0.2)
        >>> s(jnp.array([[0.9, 0.5, 0.8], [0.9, 0.85, 0.1]]), jax.random.key(0)).tolist()
        [2, 1]
    """

    costs: Float[Array, " n_actions"] = eqx.field(converter=lambda v: _per_action_array("costs", v))
    subsidy_factor: float | Float[Array, ""] = 0.5

    def __check_init__(self):
        _check_unit("subsidy_factor", self.subsidy_factor)

    def with_subsidy_factor(self, subsidy_factor: float) -> CostControlBandit:
        """The same costs with another ``subsidy_factor`` (PyBandits' method)."""
        return CostControlBandit(self.costs, subsidy_factor)

    def __call__(self, probs, key):
        return cost_control_choice(
            probs, _per_action(self.costs, probs.shape[-1], jnp.inf), self.subsidy_factor
        )


def cost_control_choice(
    probs: Float[Array, "n_rows n_actions"], costs: Float[Array, " n_actions"], subsidy_factor
) -> Int[Array, " n_rows"]:
    """:class:`CostControlBandit`'s rule on arrays (``-inf`` marks an action that may not be chosen)."""
    best = probs.max(axis=-1, keepdims=True)
    feasible = (probs >= best * (1 - subsidy_factor)) | (probs == best)
    feasible = feasible & (probs > -jnp.inf)
    cost = jnp.where(feasible, costs.astype(probs.dtype), jnp.inf)
    cheapest = feasible & (cost == cost.min(axis=-1, keepdims=True))
    return jnp.argmax(jnp.where(cheapest, probs, -jnp.inf), axis=-1)


class DynamicPricingBandit(Strategy):
    """PyBandits' ``DynamicPricingBandit``: per row the action of the highest sampled revenue
    ``price * P(purchase)`` (``prices`` one per action, data).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> s = DynamicPricingBandit(prices=jnp.array([10.0, 4.0]))
        >>> s(jnp.array([[0.3, 0.9], [0.5, 0.9]]), jax.random.key(0)).tolist()
        [1, 0]
    """

    prices: Float[Array, " n_actions"] = eqx.field(converter=lambda v: _per_action_array("prices", v))

    def __call__(self, probs, key):
        prices = _per_action(self.prices, probs.shape[-1], 0.0).astype(probs.dtype)
        revenue = jnp.where(probs > -jnp.inf, prices * probs, -jnp.inf)  # 0 * -inf would be NaN
        return jnp.argmax(revenue, axis=-1)


def pareto_front(scores: Float[Array, "n_rows n_actions n_objectives"]) -> Array:
    """Which actions of each row are Pareto-optimal (PyBandits' exact front): an action is
    dominated when another's vector differs from it and is at least as large in every objective.
    An action with a ``-inf`` objective (masked) is never on the front while another is allowed."""
    allowed = jnp.all(scores > -jnp.inf, axis=-1)
    this, other = scores[:, :, None, :], scores[:, None, :, :]  # (n, i, j, k)
    beats = jnp.all(other >= this, axis=-1) & jnp.any(other != this, axis=-1) & allowed[:, None, :]
    return allowed & ~jnp.any(beats, axis=-1)


def _uniform_among(key, candidates: Array) -> Array:
    """A uniformly random True column of each row (the first column where a row has none)."""
    u = jax.random.uniform(key, candidates.shape)
    return jnp.argmax(jnp.where(candidates, u, -1.0), axis=-1)


class MultiObjectiveBandit(Strategy):
    """PyBandits' ``MultiObjectiveBandit`` (Yahyaa and Manderick 2015): ``probs`` hold one
    sampled value per row, action and objective, ``(n_rows, n_actions, n_objectives)``; each row
    picks uniformly at random among its Pareto-optimal actions.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> p = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.1, 0.05]]])
        >>> int(MultiObjectiveBandit()(p, jax.random.key(0))[0]) in (0, 1)
        True
    """

    def __call__(self, probs, key):
        return _uniform_among(key, pareto_front(probs))


class MultiObjectiveCostControlBandit(Strategy):
    """Multi-objective cost control, as PyBandits' ``MultiObjectiveCostControlBandit`` documents
    it: for each objective, :class:`CostControlBandit`'s choice on that objective alone (the
    cheapest action within ``subsidy_factor`` of that objective's best); the Pareto front of those
    (at most ``n_objectives``) candidates; a uniformly random member of it. ``subsidy_factor=0``
    keeps each objective's best (the front's extremes), 1 the cheapest action. PyBandits 8.4.1's
    code applies this only to its quantitative actions (for discrete actions its choice ignores the
    costs, against its docstring); this follows the docstring.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> s = MultiObjectiveCostControlBandit(costs=jnp.array([5.0, 1.0, 0.0]), subsidy_factor=0.2)
        >>> s(jnp.array([[[0.9, 0.8], [0.85, 0.75], [0.2, 0.9]]]), jax.random.key(0)).tolist()
        [1]
    """

    costs: Float[Array, " n_actions"] = eqx.field(converter=lambda v: _per_action_array("costs", v))
    subsidy_factor: float | Float[Array, ""] = 0.5

    def __check_init__(self):
        _check_unit("subsidy_factor", self.subsidy_factor)

    def with_subsidy_factor(self, subsidy_factor: float) -> MultiObjectiveCostControlBandit:
        return MultiObjectiveCostControlBandit(self.costs, subsidy_factor)

    def __call__(self, probs, key):
        n_actions = probs.shape[1]
        costs = _per_action(self.costs, n_actions, jnp.inf)
        masked = jnp.any(probs == -jnp.inf, axis=-1, keepdims=True)
        probs = jnp.where(masked, -jnp.inf, probs)  # a masked action is out in every objective

        def choice(p):
            return cost_control_choice(p, costs, self.subsidy_factor)

        picks = jax.vmap(choice, in_axes=2, out_axes=1)(probs)  # (n_rows, n_objectives)
        candidates = jnp.any(jax.nn.one_hot(picks, n_actions, dtype=bool), axis=1)
        return _uniform_among(key, pareto_front(jnp.where(candidates[..., None], probs, -jnp.inf)))


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


for _builtin in (
    ClassicBandit,
    BestActionIdentificationBandit,
    CostControlBandit,
    DynamicPricingBandit,
    MultiObjectiveBandit,
    MultiObjectiveCostControlBandit,
):
    register_strategy(_builtin, name=_builtin.__name__)
del _builtin
