"""Offline policy evaluation (OPE): the value of an evaluation policy estimated from data that
another (logging) policy collected, compiled.

**Estimators.** Every estimator PyBandits 8.4.1 has, with its class name, short ``name`` and
hyperparameters (``switch_threshold``, ``shrinkage_factor``), as a frozen dataclass whose
hyperparameters are pytree data (a new value compiles nothing). On logged row ``i`` with reward
``r``, logged action ``a``, logging propensity ``p = mu(a | x)``, evaluation-policy distribution
``pi(. | x)``, importance weight ``w = pi(a | x) / p`` and reward model ``q(x, .)`` (DM/DR only),
with ``q(x, pi) = sum_b pi(b | x) q(x, b)``, the per-row values ("sample rewards") are:

================================================  ============  ===============================================
class                                             ``name``      sample reward
================================================  ============  ===============================================
:class:`ReplayMethod`                             ``rep``       ``r pi(a|x) / mean(pi(a|x))``
:class:`InverseProbabilityWeighting`              ``ipw``       ``w r``
:class:`SelfNormalizedInverseProbabilityWeighting` ``snips``     ``w r / mean(w)``
:class:`DirectMethod`                             ``dm``        ``q(x, pi)``
:class:`DoublyRobust`                             ``dr``        ``q(x, pi) + w (r - q(x, a))``
:class:`SelfNormalizedDoublyRobust`               ``sndr``      ``q(x, pi) + w (r - q(x, a)) / mean(w)``
:class:`SwitchDoublyRobust`                       ``switch-dr`` ``q(x, pi) + [w <= tau] w (r - q(x, a))``
:class:`DoublyRobustWithOptimisticShrinkage`      ``dros-opt``  DR with ``w -> lambda w / (w**2 + lambda)``
:class:`DoublyRobustWithPessimisticShrinkage`     ``dros-pess`` DR with ``w -> min(w, lambda)``
:class:`SubGaussianInverseProbabilityWeighting`   ``sg-ipw``    ``r w / (1 - lambda + lambda w)``
:class:`SubGaussianDoublyRobust`                  ``sg-dr``     DR with ``w -> w / (1 - lambda + lambda w)``
:class:`BalancedInverseProbabilityWeighting`      ``b-ipw``     ``r v / mean(v)``, ``v = expected_importance_weight``
================================================  ============  ===============================================

The policy value is the mean of the sample rewards. The formulas are Open Bandit Pipeline's (obp
0.5), which define these estimators as their papers do; replay generalises obp's (rows where the
deterministic policy agrees with the log) to a stochastic policy as PyBandits does, and the two
agree on a deterministic policy. PyBandits 8.4.1 departs from obp in places, which we do not
copy (tests/test_ope.py checks both references): its doubly robust family takes the residual
against ``q(x, pi)`` instead of ``q(x, a)`` (still unbiased, with a worse control variate; the two
agree on a deterministic policy), its Switch-DR keeps the weights *at or above* the threshold (so
its default ``inf`` gives DM, where obp's gives DR), its sub-Gaussian IPW and DR ignore the
shrinkage (plain IPW and DR whatever ``shrinkage_factor``), and its balanced IPW does not
self-normalise. At ``shrinkage_factor=0`` DRos is DM here, where obp's gives NaN on rows the
policy never takes (``0 / 0``).

**Confidence intervals.** Percentile bootstrap over logged rows: all estimators are evaluated on
the same resamples in one compiled call (``lax.map`` over batches of resamples, so memory stays at a
few resamples' rows), and each resample re-normalises what the estimator normalises (the
self-normalised and replay estimators), which a bootstrap of fixed per-row values does not.
``std`` is the resamples' standard deviation (the bootstrap standard error). PyBandits uses
scipy's BCa interval on the fixed per-row values; obp uses percentiles, as here.

**The evaluation policy's distribution.** :func:`action_distribution` gives ``pi(. | x)`` for any
policy on the contract (or a fitted object): Monte-Carlo over Thompson draws on device, with the
standard error of every probability, and exact where the policy is deterministic (LinUCB), uniform
or epsilon-greedy. :func:`evaluate` puts it together with a reward model fitted on the logged data
(cross-fitted exact linear TS by default: no sklearn) and returns a tidy table.

Examples:
    >>> import numpy as np
    >>> from bandits_jax import ope
    >>> rng = np.random.default_rng(0)
    >>> n, k = 1000, 3
    >>> action = rng.integers(0, k, n)
    >>> reward = (rng.random(n) < 0.2 + 0.3 * (action == 2)).astype(int)
    >>> always_2 = np.eye(k)[np.full(n, 2)]
    >>> table = ope.estimate(
    ...     ["ipw", "snips"], action=action, reward=reward, propensity_score=np.full(n, 1 / k),
    ...     estimated_policy=always_2, n_bootstrap_samples=200, random_state=0)
    >>> table.estimator
    ('ipw', 'snips')
    >>> bool(abs(table.value[1] - reward[action == 2].mean()) < 1e-6)
    True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from bandits_jax import _validation as val

__all__ = [
    "ESTIMATORS",
    "ActionDistribution",
    "BalancedInverseProbabilityWeighting",
    "BaseOfflinePolicyEstimator",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithOptimisticShrinkage",
    "DoublyRobustWithPessimisticShrinkage",
    "InverseProbabilityWeighting",
    "LoggedData",
    "OPEResult",
    "ReplayMethod",
    "Rows",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedInverseProbabilityWeighting",
    "SubGaussianDoublyRobust",
    "SubGaussianInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "action_distribution",
    "estimate",
    "estimator",
    "evaluate",
    "fit_reward_model",
    "load_logged_data",
    "policy_value",
    "rows",
]


# ----------------------------------------------------------------------------------- rows
class Rows(NamedTuple):
    """What every estimator needs of a logged row, ``(n_rows,)`` each: the reward, the importance
    weight ``pi(a|x) / p``, ``pi(a|x)``, the reward model at the logged action and under ``pi``, and
    the expected importance weight (NaN where not given)."""

    reward: Float[Array, " n_rows"]
    weight: Float[Array, " n_rows"]
    policy_prob: Float[Array, " n_rows"]
    q_logged: Float[Array, " n_rows"]
    q_policy: Float[Array, " n_rows"]
    balanced_weight: Float[Array, " n_rows"]


@jax.jit
def _rows(
    action, reward, propensity_score, estimated_policy, expected_reward, expected_importance_weight
) -> Rows:
    n = action.shape[0]
    at = jnp.arange(n)
    pi_a = estimated_policy[at, action]
    q_a = expected_reward[at, action]
    q_pi = jnp.sum(estimated_policy * expected_reward, axis=1)
    return Rows(reward, pi_a / propensity_score, pi_a, q_a, q_pi, expected_importance_weight)


def rows(
    action: Array,
    reward: Array,
    estimated_policy: Array,
    propensity_score: Array | None = None,
    expected_reward: Array | None = None,
    expected_importance_weight: Array | None = None,
) -> Rows:
    """The functional core's input: what every estimator needs of each logged row, from traced
    arrays (no checks: validate with :func:`estimate` or :func:`check_data` first). Use it with
    :func:`policy_value` inside your own ``jit`` / ``vmap`` (e.g. over simulated data sets)."""
    n = action.shape[0]
    dtype = jnp.result_type(reward, float)
    nan1 = jnp.full((n,), jnp.nan, dtype)
    return _rows(
        action,
        jnp.asarray(reward, dtype),
        jnp.ones((n,), dtype) if propensity_score is None else propensity_score,
        estimated_policy,
        jnp.full(estimated_policy.shape, jnp.nan, dtype) if expected_reward is None else expected_reward,
        nan1 if expected_importance_weight is None else expected_importance_weight,
    )


def policy_value(estimator: Any, rows: Rows) -> Array:
    """``estimator``'s policy value on :func:`rows` (traceable: jit, vmap and grad through it)."""
    return jnp.mean(estimator._sample_rewards(rows))


# ------------------------------------------------------------------------------ estimators
ESTIMATORS: dict[str, type] = {}


_META = ("n_bootstrap_samples", "random_state")


def _register(cls):
    """Frozen dataclass, pytree whose fields are all data (a new hyperparameter compiles nothing)
    except ``n_bootstrap_samples`` and ``random_state``, and one registry line under its name.
    Unflattening bypasses ``__init__``: leaves may be tracers or placeholders, never checked."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    data = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _META)

    def flatten(est):
        return tuple(getattr(est, f) for f in data), tuple(getattr(est, f) for f in _META)

    def unflatten(aux, children):
        est = object.__new__(cls)
        for name, value in zip(data + _META, tuple(children) + tuple(aux)):
            object.__setattr__(est, name, value)
        return est

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    ESTIMATORS[cls.name] = cls
    return cls


class BaseOfflinePolicyEstimator:
    """What every estimator shares (PyBandits' base class and arguments).

    Args:
        alpha: significance level of the confidence interval, in (0, 1).
        n_bootstrap_samples: bootstrap resamples for the interval (PyBandits' default 10000).
        random_state: seed of the resamples (None: drawn from NumPy's global generator).
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ("action", "reward", "propensity_score", "estimated_policy")

    def __post_init__(self):
        alpha = self.alpha
        if not (_is_real(alpha) and 0.0 < float(alpha) < 1.0):
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        _positive_int("n_bootstrap_samples", self.n_bootstrap_samples)
        if self.random_state is not None:
            _seed("random_state", self.random_state)
        self._check_hyperparameters()

    def _check_hyperparameters(self) -> None:
        pass

    # per row, on the rows given (a resample re-normalises on itself)
    def _sample_rewards(self, rows: Rows) -> Array:
        raise NotImplementedError

    def _weights(self, rows: Rows) -> Array:
        """The per-row weights whose Kish effective sample size the table reports."""
        return rows.weight

    def _defined(self, rows: Rows) -> Array:
        """Whether the estimate is defined on these rows (a bootstrap resample in which no row
        carries weight has no self-normalised estimate; it is left out of the interval)."""
        return jnp.asarray(True)

    def estimate_sample_rewards(self, **data: Any) -> np.ndarray:
        """The per-row values whose mean is the policy value (PyBandits' method), float64 NumPy
        when x64 is enabled, float32 otherwise. Arguments are PyBandits' input names."""
        rows = _prepare(self.requires, data)
        return np.asarray(_sample_rewards_jit(self, rows))

    def estimate_policy_value(self, **data: Any) -> float:
        """The policy value (the mean of :meth:`estimate_sample_rewards`)."""
        return float(self.estimate_sample_rewards(**data).mean())

    def estimate_policy_value_with_confidence_interval(
        self, **data: Any
    ) -> tuple[float, float, float, float]:
        """``(value, lower, upper, std)`` as PyBandits returns them: the value, the percentile
        bootstrap interval at level ``1 - alpha`` and the bootstrap standard error."""
        table = estimate(
            [self],
            n_bootstrap_samples=self.n_bootstrap_samples,
            random_state=self.random_state,
            **data,
        )
        return table.value[0], table.lower[0], table.upper[0], table.std[0]


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and not math.isnan(float(x))


def _seed(name: str, value) -> int:
    """A seed (None: drawn from NumPy's global generator), its errors naming ``name``."""
    try:
        return val.random_seed(value)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("random_seed", name, 1)) from None


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _dr(rows: Rows, weight: Array) -> Array:
    return rows.q_policy + weight * (rows.reward - rows.q_logged)


_DR_INPUTS = ("action", "reward", "propensity_score", "estimated_policy", "expected_reward")


@_register
class ReplayMethod(BaseOfflinePolicyEstimator):
    """Replay (Li et al., 2011): the mean reward of the rows where the evaluation policy would have
    taken the logged action, weighted by ``pi(a|x)`` for a stochastic policy (0 if it never does)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "rep"
    requires: ClassVar[tuple[str, ...]] = ("action", "reward", "estimated_policy")

    def _sample_rewards(self, rows):
        mean = jnp.mean(rows.policy_prob)
        return jnp.where(mean > 0, rows.reward * rows.policy_prob / jnp.where(mean > 0, mean, 1), 0.0)

    def _weights(self, rows):
        return rows.policy_prob

    def _defined(self, rows):
        return jnp.mean(rows.policy_prob) > 0


@_register
class InverseProbabilityWeighting(BaseOfflinePolicyEstimator):
    """Inverse probability weighting (Strehl et al., 2010): ``mean(w r)``."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "ipw"

    def _sample_rewards(self, rows):
        return rows.weight * rows.reward


@_register
class SelfNormalizedInverseProbabilityWeighting(BaseOfflinePolicyEstimator):
    """Self-normalised IPW (Swaminathan & Joachims, 2015): ``sum(w r) / sum(w)``."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "snips"

    def _sample_rewards(self, rows):
        return rows.weight * rows.reward / jnp.mean(rows.weight)

    def _defined(self, rows):
        return jnp.mean(rows.weight) > 0


@_register
class DirectMethod(BaseOfflinePolicyEstimator):
    """Direct method (Beygelzimer & Langford, 2009): the reward model under the policy,
    ``mean(q(x, pi))``."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "dm"
    requires: ClassVar[tuple[str, ...]] = ("action", "estimated_policy", "expected_reward")

    def _sample_rewards(self, rows):
        return rows.q_policy

    def _weights(self, rows):
        return jnp.ones_like(rows.q_policy)


@_register
class DoublyRobust(BaseOfflinePolicyEstimator):
    """Doubly robust (Dudik et al., 2014): ``mean(q(x, pi) + w (r - q(x, a)))``."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "dr"
    requires: ClassVar[tuple[str, ...]] = _DR_INPUTS

    def _shrink(self, weight):
        return weight

    def _sample_rewards(self, rows):
        return _dr(rows, self._shrink(rows.weight))

    def _weights(self, rows):
        return self._shrink(rows.weight)


@_register
class SelfNormalizedDoublyRobust(DoublyRobust):
    """Self-normalised DR (Kallus & Uehara, 2019): DR with the weights divided by their mean."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "sndr"

    def _shrink(self, weight):
        return weight / jnp.mean(weight)

    def _defined(self, rows):
        return jnp.mean(rows.weight) > 0


@_register
class SwitchDoublyRobust(DoublyRobust):
    """Switch-DR (Wang et al., 2017): DR on the rows whose weight is at most ``switch_threshold``,
    DM on the others (``inf``: DR everywhere; 0: DM wherever ``w > 0``)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    switch_threshold: float = float("inf")
    name: ClassVar[str] = "switch-dr"

    def _check_hyperparameters(self):
        if not _is_real(self.switch_threshold):
            raise ValueError(f"switch_threshold must be a real number, got {self.switch_threshold!r}")

    def _shrink(self, weight):
        return jnp.where(weight <= self.switch_threshold, weight, 0.0)


@_register
class DoublyRobustWithOptimisticShrinkage(DoublyRobust):
    """DRos (Su et al., 2020): DR with ``w -> lambda w / (w**2 + lambda)``, ``lambda =
    shrinkage_factor >= 0`` (0: DM, ``inf``: DR)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    shrinkage_factor: float = 0.0
    name: ClassVar[str] = "dros-opt"

    def _check_hyperparameters(self):
        if not (_is_real(self.shrinkage_factor) and float(self.shrinkage_factor) >= 0):
            raise ValueError(f"shrinkage_factor must be >= 0, got {self.shrinkage_factor!r}")

    def _shrink(self, weight):
        lam = jnp.asarray(self.shrinkage_factor, weight.dtype)
        shrunk = lam * weight / (weight**2 + jnp.where(lam > 0, lam, 1.0))
        return jnp.where(lam == jnp.inf, weight, jnp.where(lam > 0, shrunk, 0.0))


@_register
class DoublyRobustWithPessimisticShrinkage(DoublyRobust):
    """Pessimistic DRos (Su et al., 2020): DR with the weights clipped, ``w -> min(w, lambda)``,
    ``lambda = shrinkage_factor > 0`` (``inf``: DR)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    shrinkage_factor: float = float("inf")
    name: ClassVar[str] = "dros-pess"

    def _check_hyperparameters(self):
        if not (_is_real(self.shrinkage_factor) and float(self.shrinkage_factor) > 0):
            raise ValueError(f"shrinkage_factor must be > 0, got {self.shrinkage_factor!r}")

    def _shrink(self, weight):
        return jnp.minimum(weight, self.shrinkage_factor)


def _subgaussian(weight, lam):
    # at lambda = 1 a zero weight would be 0 / 0: it stays 0
    denominator = 1.0 - lam + lam * weight
    return jnp.where(weight > 0, weight / jnp.where(weight > 0, denominator, 1.0), 0.0)


def _check_unit(value) -> None:
    if not (_is_real(value) and 0.0 <= float(value) <= 1.0):
        raise ValueError(f"shrinkage_factor must lie in [0, 1], got {value!r}")


@_register
class SubGaussianInverseProbabilityWeighting(BaseOfflinePolicyEstimator):
    """Sub-Gaussian IPW (Metelli et al., 2021): IPW with ``w -> w / (1 - lambda + lambda w)``,
    ``lambda = shrinkage_factor`` in [0, 1] (0: IPW)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    shrinkage_factor: float = 0.0
    name: ClassVar[str] = "sg-ipw"

    def _check_hyperparameters(self):
        _check_unit(self.shrinkage_factor)

    def _sample_rewards(self, rows):
        return rows.reward * self._weights(rows)

    def _weights(self, rows):
        return _subgaussian(rows.weight, self.shrinkage_factor)


@_register
class SubGaussianDoublyRobust(DoublyRobust):
    """Sub-Gaussian DR (Metelli et al., 2021): DR with the sub-Gaussian weights of
    :class:`SubGaussianInverseProbabilityWeighting` (``shrinkage_factor`` 0: DR)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    shrinkage_factor: float = 0.0
    name: ClassVar[str] = "sg-dr"

    def _check_hyperparameters(self):
        _check_unit(self.shrinkage_factor)

    def _shrink(self, weight):
        return _subgaussian(weight, self.shrinkage_factor)


@_register
class BalancedInverseProbabilityWeighting(BaseOfflinePolicyEstimator):
    """Balanced IPW (Sondhi et al., 2020): IPW with ``expected_importance_weight`` ``v`` in place
    of ``w``, self-normalised as obp does, ``mean(r v) / mean(v)`` (PyBandits 8.4.1 does not
    normalise). The weights come from a classifier of "logged" vs "the evaluation policy's"
    actions (:func:`evaluate` fits one)."""

    alpha: float = 0.05
    n_bootstrap_samples: int = 10000
    random_state: int | None = None
    name: ClassVar[str] = "b-ipw"
    requires: ClassVar[tuple[str, ...]] = ("action", "reward", "expected_importance_weight")

    def _sample_rewards(self, rows):
        return rows.reward * rows.balanced_weight / jnp.mean(rows.balanced_weight)

    def _weights(self, rows):
        return rows.balanced_weight

    def _defined(self, rows):
        return jnp.mean(rows.balanced_weight) > 0


def estimator(spec: Any) -> BaseOfflinePolicyEstimator:
    """An estimator from its short name (``"ipw"``), its class name, its class, or an instance."""
    if isinstance(spec, BaseOfflinePolicyEstimator):
        return spec
    if (
        isinstance(spec, type)
        and issubclass(spec, BaseOfflinePolicyEstimator)
        and spec in ESTIMATORS.values()
    ):
        return spec()
    if isinstance(spec, str):
        by_class = {cls.__name__: cls for cls in ESTIMATORS.values()}
        cls = ESTIMATORS.get(spec) or by_class.get(spec)
        if cls is not None:
            return cls()
    raise ValueError(
        f"unknown estimator {spec!r}; known: {sorted(ESTIMATORS)} (or their class names, or instances)"
    )


@jax.jit
def _sample_rewards_jit(est, rows: Rows):
    return est._sample_rewards(rows)


# ------------------------------------------------------------------------ validation of data
_FLOAT_FIELDS = (
    "reward",
    "propensity_score",
    "estimated_policy",
    "expected_reward",
    "expected_importance_weight",
)
_ALL_FIELDS = ("action",) + _FLOAT_FIELDS


def check_data(data: Mapping[str, Any], required: Sequence[str], n_actions: int | None = None) -> dict:
    """The arrays of ``data`` checked as the estimators need them (NumPy, float64 / int64): a
    ``ValueError`` or ``TypeError`` naming the field, before anything is computed. Values must be
    finite in the precision the estimators compute in (float32 unless x64 is enabled), and so
    must ``1 / propensity_score``."""
    dtype = np.dtype(jnp.result_type(float))
    unknown = set(data) - set(_ALL_FIELDS)
    if unknown:
        raise ValueError(f"unknown input(s) {sorted(unknown)}; the estimators take {list(_ALL_FIELDS)}")
    missing = [name for name in required if data.get(name) is None]
    if missing:
        raise ValueError(f"missing input(s) {missing} (required by the chosen estimators)")
    out: dict[str, np.ndarray] = {}
    if data.get("action") is None:  # b-ipw alone needs no action: its length comes from reward
        n = None
    else:
        action = np.asarray(data["action"])
        if action.dtype == bool or not np.issubdtype(action.dtype, np.integer):
            raise TypeError(f"action must hold integer action indices, got dtype {action.dtype}")
        if action.ndim != 1 or action.shape[0] == 0:
            raise ValueError(f"action must be a non-empty 1-D array, got shape {action.shape}")
        n = action.shape[0]
        out["action"] = action.astype(np.int64)
    for name in _FLOAT_FIELDS:
        if data.get(name) is None:
            continue
        arr = np.asarray(data[name])
        if arr.dtype == bool and name == "reward":
            arr = arr.astype(np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        two_d = name in ("estimated_policy", "expected_reward")
        if arr.ndim != (2 if two_d else 1):
            shape = "(n_rows, n_actions)" if two_d else "(n_rows,)"
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if n is None:
            n = arr.shape[0]
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows, action has {n}: the lengths must agree")
        arr = arr.astype(np.float64)
        with np.errstate(over="ignore"):
            finite = np.isfinite(arr.astype(dtype))
        if not np.all(finite):
            bad = np.argwhere(~finite)[0]
            raise ValueError(
                f"{name} must be finite in {dtype.name}, found {arr[tuple(bad)]} at row {bad[0]} "
                f"(largest magnitude {float(np.finfo(dtype).max):.3g})"
            )
        out[name] = arr
    if n == 0:
        raise ValueError("the logged data must have at least one row")
    width = {out[k].shape[1] for k in ("estimated_policy", "expected_reward") if k in out}
    if len(width) > 1:
        raise ValueError(f"estimated_policy and expected_reward disagree on n_actions: {sorted(width)}")
    if n_actions is None:
        n_actions = width.pop() if width else None
    elif width and width.pop() != n_actions:
        raise ValueError(f"estimated_policy / expected_reward must have {n_actions} columns (n_actions)")
    if "action" in out and n_actions is not None:
        bad = (out["action"] < 0) | (out["action"] >= n_actions)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"action must lie in [0, {n_actions}), found {out['action'][i]} at row {i}")
    if "propensity_score" in out:
        p = out["propensity_score"]
        q = p.astype(dtype)  # XLA:CPU flushes subnormals to 0: the inverse must be finite in dtype
        with np.errstate(divide="ignore", over="ignore"):
            bad = ~((p > 0) & (p <= 1) & (q >= np.finfo(dtype).tiny) & np.isfinite(np.reciprocal(q)))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"propensity_score must lie in (0, 1] with a finite inverse in {dtype.name}, "
                f"found {p[i]} at row {i}"
            )
    if "estimated_policy" in out:
        pi = out["estimated_policy"]
        if (pi < 0).any() or (pi > 1).any():
            raise ValueError("estimated_policy must hold probabilities in [0, 1]")
        total = pi.sum(axis=1)
        bad = np.abs(total - 1) > 1e-4
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"estimated_policy's rows must sum to 1, row {i} sums to {total[i]}")
    if "expected_importance_weight" in out and (out["expected_importance_weight"] < 0).any():
        raise ValueError("expected_importance_weight must be >= 0")
    return out


def _prepare(required: Sequence[str], data: Mapping[str, Any], dtype=None) -> Rows:
    checked = check_data(data, required)
    return _rows_of(checked, dtype)


def _rows_of(checked: Mapping[str, np.ndarray], dtype=None) -> Rows:
    dtype = dtype or jnp.result_type(float)
    n = next(len(v) for v in checked.values())
    k = max((checked[f].shape[1] for f in ("estimated_policy", "expected_reward") if f in checked), default=1)
    nan1, nan2 = np.full(n, np.nan), np.full((n, k), np.nan)
    action = checked.get("action", np.zeros(n, np.int64))
    return _rows(
        jnp.asarray(action, jnp.int32),
        jnp.asarray(checked.get("reward", nan1), dtype),
        jnp.asarray(checked.get("propensity_score", np.ones(n)), dtype),
        jnp.asarray(checked.get("estimated_policy", nan2), dtype),
        jnp.asarray(checked.get("expected_reward", nan2), dtype),
        jnp.asarray(checked.get("expected_importance_weight", nan1), dtype),
    )


# ---------------------------------------------------------------------------- the estimate
class OPEResult(NamedTuple):
    """A tidy table, one entry per estimator: its ``name``, the policy ``value``, the percentile
    bootstrap interval ``lower`` / ``upper`` at its ``1 - alpha``, the bootstrap standard error
    ``std``, the Kish effective sample size of its weights ``ess`` (``(sum w)**2 / sum w**2``), and
    ``mc_error``, the Monte-Carlo standard error of ``value`` from estimating the evaluation
    policy's distribution by draws (0 where it is exact; NaN where the distribution was given,
    under 4 draws, and for balanced IPW, whose classifier learns from one draw per row). An
    estimator undefined on a resample (no row carrying weight) leaves it out of its interval."""

    estimator: tuple[str, ...]
    value: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    std: tuple[float, ...]
    ess: tuple[float, ...]
    mc_error: tuple[float, ...]
    n_rows: int
    n_bootstrap_samples: int

    def to_dict(self) -> dict[str, list]:
        """Columns as lists (for ``pandas.DataFrame(result.to_dict())`` or JSON)."""
        cols = ("estimator", "value", "lower", "upper", "std", "ess", "mc_error")
        return {c: list(getattr(self, c)) for c in cols}

    def to_markdown(self) -> str:
        lines = [
            "| estimator | value | lower | upper | std | ess | mc_error |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, name in enumerate(self.estimator):
            nums = (self.value, self.lower, self.upper, self.std, self.ess, self.mc_error)
            lines.append(f"| {name} | " + " | ".join(f"{c[i]:.6g}" for c in nums) + " |")
        return "\n".join(lines)


@partial(jax.jit, static_argnames=("n_boot", "batch"))
def _estimate_all(estimators: tuple, rows: Rows, key, n_boot: int, batch: int):
    """Values, bootstrap intervals, standard errors and ESS of every estimator, on the same
    resamples (one compiled call)."""
    n = rows.reward.shape[0]

    def resample(k):
        idx = jax.random.randint(k, (n,), 0, n)
        r = jax.tree.map(lambda x: x[idx], rows)
        return jnp.stack(
            [jnp.where(e._defined(r), jnp.mean(e._sample_rewards(r)), jnp.nan) for e in estimators]
        )

    point = _values(estimators, rows)
    boot = jax.lax.map(resample, jax.random.split(key, n_boot), batch_size=batch)  # (n_boot, E)
    alphas = jnp.stack([jnp.asarray(e.alpha, boot.dtype) for e in estimators])
    # resamples where an estimator is undefined (NaN) are left out of its interval
    lower = jax.vmap(jnp.nanquantile)(boot.T, alphas / 2)
    upper = jax.vmap(jnp.nanquantile)(boot.T, 1 - alphas / 2)
    defined = jnp.sum(~jnp.isnan(boot), axis=0)
    std = jnp.where(defined > 1, jnp.nanstd(boot, axis=0, ddof=1), jnp.nan)

    def kish(w):
        w = jnp.abs(w)
        return jnp.sum(w) ** 2 / jnp.maximum(jnp.sum(w * w), jnp.finfo(w.dtype).tiny)

    ess = jnp.stack([kish(e._weights(rows)) for e in estimators])
    return point, lower, upper, std, ess


def _values(estimators: tuple, rows: Rows) -> Array:
    return jnp.stack([jnp.mean(e._sample_rewards(rows)) for e in estimators])


@jax.jit
def _values_per_group(estimators: tuple, rows_per_group: Rows):
    return jax.vmap(lambda r: _values(estimators, r))(rows_per_group)


def _batch_size(n_rows: int, n_boot: int) -> int:
    """Resamples per step of the bootstrap: about 4M gathered values at a time."""
    return max(1, min(n_boot, (1 << 22) // max(1, 6 * n_rows)))


def estimate(
    estimators: Sequence[Any] | None = None,
    *,
    n_bootstrap_samples: int | None = None,
    random_state: int | None = None,
    action: Any = None,
    reward: Any = None,
    propensity_score: Any = None,
    estimated_policy: Any = None,
    expected_reward: Any = None,
    expected_importance_weight: Any = None,
) -> OPEResult:
    """Every estimator's value, bootstrap interval, standard error and effective sample size on
    the given arrays (PyBandits' input names), all in one compiled call.

    Args:
        estimators: names, classes or instances (None: all twelve with their defaults, those whose
            inputs are given).
        n_bootstrap_samples: resamples shared by every estimator (None: the estimators' own,
            which must then agree; PyBandits' default 10000).
        random_state: seed of the resamples (None: the estimators' own if they agree, else drawn
            from NumPy's global generator).
        action: ``(n_rows,)`` logged action indices; reward: ``(n_rows,)``; propensity_score:
            ``(n_rows,)`` logging probabilities in (0, 1]; estimated_policy: ``(n_rows,
            n_actions)`` the evaluation policy's distribution; expected_reward: ``(n_rows,
            n_actions)`` a reward model (DM / DR family); expected_importance_weight:
            ``(n_rows,)`` (balanced IPW).

    Raises:
        ValueError / TypeError naming the field on bad data or an unknown estimator.
    """
    data = {
        "action": action,
        "reward": reward,
        "propensity_score": propensity_score,
        "estimated_policy": estimated_policy,
        "expected_reward": expected_reward,
        "expected_importance_weight": expected_importance_weight,
    }
    given = {k: v for k, v in data.items() if v is not None}
    ests = _estimators(estimators, set(given))
    n_bootstrap_samples, random_state = _bootstrap_settings(ests, n_bootstrap_samples, random_state)
    required = sorted({f for e in ests for f in e.requires})
    checked = check_data(given, required)
    return _run(ests, checked, n_bootstrap_samples, random_state)


def _bootstrap_settings(ests: tuple, n_bootstrap_samples, random_state) -> tuple[int, Any]:
    """The resamples' number and seed: the arguments, else the estimators' own (which must agree
    on the number; a seed is taken only if they all give the same)."""
    if n_bootstrap_samples is None:
        counts = {e.n_bootstrap_samples for e in ests}
        if len(counts) > 1:
            raise ValueError(
                f"the estimators disagree on n_bootstrap_samples {sorted(counts)}; pass n_bootstrap_samples"
            )
        n_bootstrap_samples = counts.pop()
    if random_state is None:
        seeds = {e.random_state for e in ests}
        random_state = seeds.pop() if len(seeds) == 1 else None
    return _positive_int("n_bootstrap_samples", n_bootstrap_samples), random_state


def _estimators(spec: Sequence[Any] | None, given: set | None = None) -> tuple:
    if spec is None:
        ests = tuple(cls() for cls in ESTIMATORS.values())
        if given is not None:
            ests = tuple(e for e in ests if set(e.requires) <= given)
        if not ests:
            raise ValueError("no estimator has all its inputs: give action, reward, propensity_score, ...")
        return ests
    if isinstance(spec, (str, BaseOfflinePolicyEstimator)) or not isinstance(spec, Sequence):
        raise TypeError(f"estimators must be a list of names, classes or instances, got {spec!r}")
    ests = tuple(estimator(s) for s in spec)
    if not ests:
        raise ValueError("estimators must not be empty")
    names = [e.name for e in ests]
    if len(set(map(repr, ests))) != len(ests):
        raise ValueError(f"estimators repeats an estimator: {names}")
    return ests


def _run(ests: tuple, checked: dict, n_bootstrap_samples, random_state, mc_error=None) -> OPEResult:
    n_boot = _positive_int("n_bootstrap_samples", n_bootstrap_samples)
    seed = _seed("random_state", random_state)
    rows = _rows_of(checked)
    n = int(rows.reward.shape[0])
    point, lower, upper, std, ess = _estimate_all(
        _traced(ests), rows, val.key_from_seed(seed), n_boot, _batch_size(n, n_boot)
    )
    fl = lambda x: tuple(float(v) for v in np.asarray(x, np.float64))  # noqa: E731
    mc = tuple(float("nan") for _ in ests) if mc_error is None else fl(mc_error)
    return OPEResult(_labels(ests), fl(point), fl(lower), fl(upper), fl(std), fl(ess), mc, n, n_boot)


def _traced(ests: tuple) -> tuple:
    """The estimators with placeholders in their static fields, so that a compiled call depends
    only on their classes (a new seed or resample count of an estimator compiles nothing)."""
    return tuple(dataclasses.replace(e, n_bootstrap_samples=1, random_state=None) for e in ests)


def _labels(ests: tuple) -> tuple[str, ...]:
    """Short names; an estimator whose name repeats is labelled with its hyperparameters too,
    ``dros-opt(shrinkage_factor=1.0)``."""
    names = [e.name for e in ests]
    out = []
    for e, name in zip(ests, names):
        if names.count(name) > 1:
            fields = [f.name for f in dataclasses.fields(e) if f.name not in _META]
            name += "(" + ", ".join(f"{f}={getattr(e, f)!r}" for f in fields) + ")"
        out.append(name)
    return tuple(out)


# ------------------------------------------------------- the evaluation policy's distribution
class ActionDistribution(NamedTuple):
    """``pi(. | x)`` per row, ``(n_rows, n_actions)``; ``stderr`` the Monte-Carlo standard error
    of each probability, ``sqrt(p (1 - p) / n_draws)`` (0 where exact); ``n_draws`` (0 where
    exact); ``group_probs`` ``(n_groups, n_rows, n_actions)``: the frequencies within equal groups
    of ``group_draws`` draws each (None where exact or under 4 draws), from which :func:`evaluate`
    takes the Monte-Carlo error of an estimate by batch means."""

    probs: Float[Array, "n_rows n_actions"]
    stderr: Float[Array, "n_rows n_actions"]
    n_draws: int
    exact: bool
    group_probs: Float[Array, "n_groups n_rows n_actions"] | None = None
    group_draws: int = 0


def _predict_once(policy, state, key, context, strategy, action_mask, controls):
    from bandits_jax._bandit import predict_step  # the object's whole decision (its controls too)

    (chosen, probs, logits), _ = predict_step(policy, state, key, context, strategy, action_mask, controls)
    finite = jnp.all(jnp.isfinite(probs) & jnp.isfinite(logits), axis=1)
    return chosen, finite


@partial(jax.jit, static_argnames=("policy", "n_groups", "per_group", "rest", "chunk"))
def _mc_counts(
    policy, state, key, context, strategy, action_mask, controls, n_groups, per_group, rest, chunk
):
    """Counts of the chosen action per row over independent predictions: ``n_groups`` groups of
    ``per_group`` (``(n_groups, n_rows, n_padded_actions)`` int32), ``rest`` more draws
    (``(n_rows, n_padded_actions)``), and whether every draw of a row was finite; ``chunk`` draws
    are vmapped at once."""
    n = context.shape[0]
    at = jnp.arange(n)

    def add(carry, keys):
        counts, finite = carry
        chosen, ok = jax.vmap(
            lambda k: _predict_once(policy, state, k, context, strategy, action_mask, controls)
        )(keys)
        counts = counts.at[jnp.broadcast_to(at, chosen.shape), chosen].add(1)
        return counts, finite & jnp.all(ok, axis=0)

    def draws(key, size):
        carry = (jnp.zeros((n, action_mask.shape[0]), jnp.int32), jnp.ones(n, bool))
        steps, left = divmod(size, chunk)
        k_steps, k_left = jax.random.split(key)
        if steps:
            keys = jax.random.split(k_steps, steps * chunk).reshape(steps, chunk)
            carry, _ = jax.lax.scan(lambda c, ks: (add(c, ks), None), carry, keys)
        if left:
            carry = add(carry, jax.random.split(k_left, left))
        return carry

    k_groups, k_rest = jax.random.split(key)
    groups, finite = jax.lax.map(lambda k: draws(k, per_group), jax.random.split(k_groups, n_groups))
    rest_counts, rest_finite = draws(k_rest, rest)
    return groups, rest_counts, jnp.all(finite, axis=0) & rest_finite


@partial(jax.jit, static_argnames=("policy",))
def _exact_probs(policy, state, key, context, strategy, action_mask):
    """The distribution of a policy whose choice is a function of the row (LinUCB), uniform, or
    epsilon-greedy over one (ClassicBandit's argmax, no object controls), and whether each row's
    scores were finite."""
    from bandits_jax.policies.epsilon_greedy import EpsilonGreedy
    from bandits_jax.policies.uniform import Uniform

    n = context.shape[0]
    allowed = jnp.broadcast_to(action_mask, (n, action_mask.shape[0])).astype(jnp.result_type(float))
    uniform = allowed / allowed.sum(axis=1, keepdims=True)
    if isinstance(policy, Uniform):
        return uniform, jnp.ones(n, bool)
    if isinstance(policy, EpsilonGreedy):
        mean = policy.base.predict(key, state.base, context).mean_probs
        greedy = jax.nn.one_hot(strategy(jnp.where(action_mask, mean, -jnp.inf), key), action_mask.shape[0])
        eps = state.epsilon[0].astype(uniform.dtype)
        return (1 - eps) * greedy + eps * uniform, jnp.all(jnp.isfinite(mean), axis=1)
    out = policy.predict(key, state, context, strategy, action_mask)
    finite = jnp.all(jnp.isfinite(out.probs) & jnp.isfinite(out.logits), axis=1)
    return jax.nn.one_hot(out.actions, action_mask.shape[0], dtype=uniform.dtype), finite


def _is_exact(policy, strategy, controls) -> bool:
    from bandits_jax.policies.epsilon_greedy import EpsilonGreedy
    from bandits_jax.policies.lin_ucb import LinUCB
    from bandits_jax.policies.uniform import Uniform
    from bandits_jax.strategy import ClassicBandit

    return (
        controls is None
        and type(strategy) is ClassicBandit
        and isinstance(policy, (LinUCB, Uniform, EpsilonGreedy))
    )


def _is_model(obj) -> bool:
    return hasattr(obj, "_padded_snapshot") and hasattr(obj, "action_ids")


def _check_finite(finite) -> None:
    finite = np.asarray(finite)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(
            f"context row {row} is too large for the model: its draws overflow float32 (rescale the features)"
        )


def action_distribution(
    policy_or_model: Any,
    context: Any = None,
    *,
    state: Any = None,
    n_draws: int = 1000,
    random_seed: int | None = None,
    strategy: Any = None,
    n_rows: int | None = None,
) -> ActionDistribution:
    """The evaluation policy's action distribution on every row of ``context``.

    Args:
        policy_or_model: a fitted object (``CmabBernoulli``, ``SmabBernoulli``, ...: its strategy
            and exploration settings included, the model untouched) or a policy on the contract
            with its ``state``.
        context: ``(n_rows, n_features)``; None for a non-contextual model (give ``n_rows``; every
            row has the same distribution, drawn once).
        n_draws: Monte-Carlo predictions per row (ignored where the distribution is exact).
        random_seed: seed of the draws (None: drawn from NumPy's global generator).
        strategy: a policy's strategy (default ClassicBandit; a model brings its own).

    Returns:
        :class:`ActionDistribution`, columns in the model's action order.

    Raises:
        ValueError: a context row whose draws overflow float32 (as the model's ``predict``).
    """
    from bandits_jax.policies.base import n_actions_of
    from bandits_jax.strategy import ClassicBandit, Strategy

    n_draws = _positive_int("n_draws", n_draws)
    key = val.key_from_seed(_seed("random_seed", random_seed))
    controls = None
    if _is_model(policy_or_model):
        if state is not None or strategy is not None:
            raise ValueError("state and strategy come with the model; give them only with a policy")
        mab = policy_or_model
        policy, strategy = mab._policy, mab._strategy
        state, _ = mab._padded_snapshot()
        mask, controls, _ = mab._call_controls(None, None)
        n_actions = len(mab.action_ids)
        width = getattr(mab, "input_dim", None)
        mask = jnp.asarray(mask)
    else:
        policy = policy_or_model
        if not hasattr(policy, "predict") or not hasattr(policy, "init"):
            raise TypeError(
                f"expected a fitted model or a policy on the contract, got {type(policy).__name__}"
            )
        if state is None:
            raise ValueError("state is required with a policy (the state its init / update returned)")
        try:
            n_actions = n_actions_of(state)
        except (AttributeError, TypeError, IndexError):
            raise TypeError(
                f"state must be the policy's state (from its init / update), got {type(state).__name__}"
            ) from None
        strategy = ClassicBandit() if strategy is None else strategy
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        mask = jnp.ones(n_actions, bool)
        width = getattr(policy, "n_features", None)
    if context is None:
        if width:
            raise ValueError("context is required for a contextual policy")
        n = _positive_int("n_rows", n_rows) if n_rows is not None else 1
        rows = jnp.zeros((1, 0), jnp.float32)  # every row alike: one row, broadcast below
    else:
        rows = jnp.asarray(val.as_context(context, width if width is not None else np.shape(context)[-1]))
        n = rows.shape[0]

    def widen(x):
        return x if x is None or x.shape[-2] == n else jnp.broadcast_to(x, x.shape[:-2] + (n, x.shape[-1]))

    if _is_exact(policy, strategy, controls):
        probs, finite = _exact_probs(policy, state, key, rows, strategy, mask)
        _check_finite(finite)
        probs = widen(probs[:, :n_actions])
        return ActionDistribution(probs, jnp.zeros_like(probs), 0, True, None, 0)
    n_groups = min(10, n_draws // 2)
    n_groups = n_groups if n_groups >= 2 else 1
    per_group = n_draws // n_groups
    rest = n_draws - n_groups * per_group
    chunk = max(1, min(per_group, (1 << 21) // max(1, rows.shape[0] * mask.shape[0])))
    groups, rest_counts, finite = _mc_counts(
        policy, state, key, rows, strategy, mask, controls, n_groups, per_group, rest, chunk
    )
    _check_finite(finite)
    dtype = jnp.result_type(float)
    groups = groups[:, :, :n_actions]
    probs = (groups.sum(axis=0) + rest_counts[:, :n_actions]).astype(dtype) / n_draws
    stderr = jnp.sqrt(probs * (1 - probs) / n_draws)
    group_probs = widen(groups.astype(dtype) / per_group) if n_groups > 1 else None
    return ActionDistribution(widen(probs), widen(stderr), n_draws, False, group_probs, per_group)


# ------------------------------------------------------------------------------ reward model
def fit_reward_model(
    context: Any,
    action: Any,
    reward: Any,
    n_actions: int,
    *,
    model: Any = None,
    n_folds: int = 2,
    random_seed: int | None = None,
) -> np.ndarray:
    """``expected_reward`` ``(n_rows, n_actions)`` for DM / DR: the posterior mean reward of a
    policy fitted on the logged rows, cross-fitted (each row's estimate comes from a fit on the
    other folds, so a row never predicts itself).

    Args:
        context: ``(n_rows, n_features)`` (None: no features, a per-action mean).
        action: ``(n_rows,)`` indices; reward: ``(n_rows,)``.
        model: a policy on the contract (its ``init(n_actions)`` is the prior); None: exact linear
            TS (Bayesian logistic regression for 0/1 rewards, Bayesian linear regression with the
            logged rewards' mean and std as its standardisation otherwise).
        n_folds: cross-fitting folds (1: fit and predict on all rows).

    Raises:
        ValueError / TypeError naming the argument: bad shapes or lengths, actions outside
        ``[0, n_actions)``, non-finite values, rewards outside the model's domain, a model of
        another width, a fit that does not stay finite.
    """
    from bandits_jax.likelihoods import Bernoulli, Gaussian
    from bandits_jax.policies.base import Feedback
    from bandits_jax.policies.linear_ts import LinearTS

    n_actions = _positive_int("n_actions", n_actions)
    checked = check_data({"action": action, "reward": reward}, ("action", "reward"), n_actions)
    action, reward = checked["action"], checked["reward"]
    n = action.shape[0]
    if context is None:  # one constant column: with linear TS's intercept, a per-action mean
        ctx = np.zeros((n, 1), np.float32)
    else:
        width = np.shape(context)[-1] if np.ndim(context) == 2 else -1
        ctx = val.as_context(context, width)
        if ctx.shape[0] != n:
            raise ValueError(f"context has {ctx.shape[0]} rows, action has {n}: the lengths must agree")
    if model is not None:
        if not (hasattr(model, "init") and hasattr(model, "update") and hasattr(model, "predict")):
            raise TypeError(f"model must be a policy on the contract, got {type(model).__name__}")
        features = getattr(model, "n_features", None)
        if features is not None and features != ctx.shape[1]:
            raise ValueError(f"model has n_features={features}, the context has {ctx.shape[1]} columns")
        model.likelihood.check_rewards(reward, name="reward")
    n_folds = _positive_int("n_folds", n_folds)
    if n_folds > n:
        raise ValueError(f"n_folds must be at most the number of rows ({n}), got {n_folds}")
    binary = bool(np.isin(reward, (0.0, 1.0)).all())
    init_data: dict = {}
    if model is None:
        likelihood = Bernoulli() if binary else Gaussian()
        model = LinearTS(n_features=ctx.shape[1], likelihood=likelihood)
        if not binary:
            scale = float(reward.std()) or max(abs(float(reward.mean())), 1.0)
            init_data = {"reward_loc": float(reward.mean()), "reward_scale": scale}
    seed = _seed("random_seed", random_seed)
    key = val.key_from_seed(seed)
    folds = np.random.default_rng(seed).permutation(n) % n_folds
    state0 = model.init(n_actions, **init_data)
    out = np.empty((n, n_actions), np.float64)
    ctx_j = jnp.asarray(ctx)
    act_j = jnp.asarray(action, jnp.int32)
    rew_j = jnp.asarray(reward, jnp.result_type(float))
    for f in range(n_folds):
        train = folds != f if n_folds > 1 else np.ones(n, bool)
        k_fit, k_pred = jax.random.split(jax.random.fold_in(key, f))
        state, info = model.update(k_fit, state0, Feedback(ctx_j, act_j, rew_j, jnp.asarray(train)))
        if not bool(np.all(np.asarray(info.ok))):
            raise ValueError(
                "the reward model's fit did not stay finite (rescale the context or the rewards)"
            )
        mean = np.asarray(model.predict(k_pred, state, ctx_j).mean_probs, np.float64)[:, :n_actions]
        test = folds == f if n_folds > 1 else np.ones(n, bool)
        out[test] = mean[test]
    return out


def _importance_weights(context, action, policy_probs, n_actions, n_folds, seed) -> np.ndarray:
    """Balanced IPW's ``expected_importance_weight`` (Sondhi et al., 2020): a classifier of
    ``(x, a)`` pairs, label 0 for the logged action and 1 for one drawn from the evaluation policy,
    gives ``P(1 | x, a) / P(0 | x, a) = pi(a|x) / mu(a|x)`` at the logged action. The classifier is
    exact linear TS's Bayesian logistic regression per action, cross-fitted; probabilities are
    clipped to [1e-8, 1 - 1e-8] as PyBandits does."""
    n = action.shape[0]
    rng = np.random.default_rng(seed)
    cum = np.cumsum(policy_probs, axis=1)
    drawn = np.minimum((rng.random((n, 1)) * cum[:, -1:] > cum).sum(axis=1), n_actions - 1)
    ctx = np.zeros((n, 1), np.float32) if context is None else context
    both_ctx = np.concatenate([ctx, ctx])
    both_act = np.concatenate([action, drawn])
    label = np.concatenate([np.zeros(n), np.ones(n)])
    # folds over logged rows: a row's pair (logged and drawn) stays in one fold
    order = rng.permutation(n) % n_folds
    prob = np.empty(n)
    from bandits_jax.policies.base import Feedback
    from bandits_jax.policies.linear_ts import LinearTS

    model = LinearTS(n_features=ctx.shape[1])
    state0 = model.init(n_actions)
    key = jax.random.key(seed)
    for f in range(n_folds):
        train = np.concatenate([order != f] * 2) if n_folds > 1 else np.ones(2 * n, bool)
        fb = Feedback(
            jnp.asarray(both_ctx), jnp.asarray(both_act, jnp.int32), jnp.asarray(label), jnp.asarray(train)
        )
        k_fit, k_pred = jax.random.split(jax.random.fold_in(key, f))
        state, _ = model.update(k_fit, state0, fb)
        mean = np.asarray(model.predict(k_pred, state, jnp.asarray(ctx)).mean_probs, np.float64)
        test = order == f if n_folds > 1 else np.ones(n, bool)
        prob[test] = mean[np.arange(n), action][test]
    prob = np.clip(prob, 1e-8, 1 - 1e-8)
    return prob / (1 - prob)


# ------------------------------------------------------------------------------- logged data
class LoggedData(NamedTuple):
    """Logged rows: ``action`` (the model's action ids, or indices for a policy), ``reward``,
    ``propensity_score`` (the logging policy's probability of the logged action, in (0, 1]),
    ``context`` (None for a non-contextual bandit), and optionally your own ``expected_reward``
    ``(n_rows, n_actions)`` and ``expected_importance_weight``."""

    action: Any
    reward: Any
    propensity_score: Any = None
    context: Any = None
    expected_reward: Any = None
    expected_importance_weight: Any = None


def load_logged_data(path: str | os.PathLike) -> LoggedData:
    """Read logged data from ``.npz`` (arrays named as :class:`LoggedData`'s fields) or
    ``.parquet`` (needs pyarrow; columns ``action``, ``reward``, ``propensity_score``, context
    columns ``context_0``, ``context_1``, ... or one list column ``context``)."""
    path = os.fspath(path)
    fields = LoggedData._fields
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                extra = sorted(set(data.files) - set(fields))
                if extra:
                    raise ValueError(f"{path}: unknown array(s) {extra}; expected some of {list(fields)}")
                return LoggedData(**{k: data[k] for k in data.files})
        except ValueError:
            raise
        except Exception as err:  # truncated, empty, not a zip, pickled objects
            raise ValueError(
                f"cannot read logged data {path!r}: not a readable .npz of arrays ({type(err).__name__}: {err})"
            ) from None
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as err:
            raise ImportError("reading .parquet needs pyarrow (pip install pyarrow)") from err
        table = pq.read_table(path).to_pydict()
        ctx_cols = sorted((c for c in table if c.startswith("context_")), key=lambda c: int(c.split("_")[1]))
        out: dict[str, Any] = {k: np.asarray(table[k]) for k in fields if k in table and k != "context"}
        if "context" in table:
            out["context"] = np.asarray(table["context"], np.float64)
        elif ctx_cols:
            out["context"] = np.stack([np.asarray(table[c], np.float64) for c in ctx_cols], axis=1)
        return LoggedData(**out)
    raise ValueError(f"logged data must be a .npz or .parquet file, got {path!r}")


def _as_logged(logged_data: Any) -> LoggedData:
    if isinstance(logged_data, LoggedData):
        return logged_data
    if isinstance(logged_data, (str, os.PathLike)):
        return load_logged_data(logged_data)
    if isinstance(logged_data, Mapping) or hasattr(logged_data, "files"):
        keys = list(logged_data.files if hasattr(logged_data, "files") else logged_data)
        extra = sorted(set(keys) - set(LoggedData._fields))
        if extra:
            raise ValueError(
                f"logged_data has unknown field(s) {extra}; expected some of {list(LoggedData._fields)}"
            )
        if "action" not in keys or "reward" not in keys:
            raise ValueError("logged_data needs at least 'action' and 'reward'")
        return LoggedData(**{k: logged_data[k] for k in keys})
    raise TypeError(
        f"logged_data must be a LoggedData, a mapping of arrays or a path, got {type(logged_data).__name__}"
    )


# ---------------------------------------------------------------------------------- evaluate
def evaluate(
    model_or_policy: Any,
    logged_data: Any,
    estimators: Sequence[Any] | None = None,
    *,
    state: Any = None,
    strategy: Any = None,
    n_mc_experiments: int = 1000,
    n_bootstrap_samples: int | None = None,
    random_seed: int | None = None,
    reward_model: Any = None,
    n_folds: int = 2,
) -> OPEResult:
    """Evaluate a fitted model (or a policy and its ``state``) on logged data.

    The evaluation policy's distribution comes from :func:`action_distribution`
    (``n_mc_experiments`` draws per row, PyBandits' name, or exact); the reward model of DM / DR
    from ``logged_data.expected_reward`` if given, else from ``reward_model`` (a policy on the
    contract, fitted by :func:`fit_reward_model`; None: cross-fitted exact linear TS); balanced
    IPW's weights from ``logged_data.expected_importance_weight`` if given, else from a
    cross-fitted classifier. The table's ``mc_error`` is each value's Monte-Carlo standard error
    (batch means over groups of the draws).

    Args:
        estimators: names, classes or instances (None: all twelve).
        n_bootstrap_samples: resamples shared by all estimators (None: the estimators' own, which
            must then agree; 10000 for the defaults).
        random_seed: one seed for the draws, the reward model and the resamples.

    Raises:
        ValueError / TypeError naming the field on bad logged data (nothing is computed).
    """
    logged = _as_logged(logged_data)
    ests = _estimators(estimators)
    n_bootstrap_samples, _ = _bootstrap_settings(ests, n_bootstrap_samples, 0)
    _positive_int("n_mc_experiments", n_mc_experiments)
    _positive_int("n_folds", n_folds)
    seed = _seed("random_seed", random_seed)
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, 4)
    # the logged rows, checked before anything runs
    if _is_model(model_or_policy):
        mab = model_or_policy
        n_actions = len(mab.action_ids)
        action = val.as_action_indices(logged.action, mab._index, name="action")
        width = getattr(mab, "input_dim", None)
    else:
        from bandits_jax.policies.base import n_actions_of

        if state is None:
            raise ValueError("state is required with a policy (the state its init / update returned)")
        n_actions = n_actions_of(state)
        action = logged.action
        width = getattr(model_or_policy, "n_features", None)
    required = {"action", "reward"} | {f for e in ests for f in e.requires}
    required -= {"estimated_policy", "expected_reward", "expected_importance_weight"}
    given = {
        "action": action,
        "reward": logged.reward,
        "propensity_score": logged.propensity_score,
        "expected_reward": logged.expected_reward,
        "expected_importance_weight": logged.expected_importance_weight,
    }
    checked = check_data({k: v for k, v in given.items() if v is not None}, sorted(required), n_actions)
    n = checked["action"].shape[0]
    context = None
    if width:
        if logged.context is None:
            raise ValueError("logged_data.context is required for a contextual model")
        context = val.as_context(logged.context, width)
        if context.shape[0] != n:
            raise ValueError(f"context has {context.shape[0]} rows, action has {n}: the lengths must agree")
    elif logged.context is not None and np.size(logged.context):
        raise ValueError("logged_data.context must be None for a non-contextual model")
    dist = action_distribution(
        model_or_policy,
        context,
        state=state,
        n_draws=n_mc_experiments,
        random_seed=int(seeds[0]),
        strategy=strategy,
        n_rows=n,
    )
    checked["estimated_policy"] = np.asarray(dist.probs, np.float64)
    needs = {f for e in ests for f in e.requires}
    if "expected_reward" in needs and "expected_reward" not in checked:
        checked["expected_reward"] = fit_reward_model(
            context,
            checked["action"],
            checked["reward"],
            n_actions,
            model=reward_model,
            n_folds=n_folds,
            random_seed=int(seeds[1]),
        )
    if "expected_importance_weight" in needs and "expected_importance_weight" not in checked:
        checked["expected_importance_weight"] = _importance_weights(
            context, checked["action"], checked["estimated_policy"], n_actions, n_folds, int(seeds[2])
        )
    mc_error = None
    if dist.exact:
        mc_error = np.zeros(len(ests))
    elif dist.group_probs is not None:
        groups = dist.group_probs
        base = _rows_of(checked)
        per_group = jax.vmap(
            lambda pi: _rows(
                jnp.asarray(checked["action"], jnp.int32),
                base.reward,
                jnp.asarray(checked.get("propensity_score", np.ones(n)), base.reward.dtype),
                pi,
                jnp.asarray(
                    checked.get("expected_reward", np.full((n, n_actions), np.nan)), base.reward.dtype
                ),
                base.balanced_weight,
            )
        )(groups.astype(base.reward.dtype))
        vals = np.asarray(_values_per_group(_traced(ests), per_group), np.float64)
        # batch means: the groups' spread over sqrt(groups), scaled to all the draws
        n_groups = vals.shape[0]
        scale = math.sqrt(n_groups * dist.group_draws / dist.n_draws)
        mc_error = vals.std(axis=0, ddof=1) / math.sqrt(n_groups) * scale
    if mc_error is not None:  # balanced IPW's classifier learns from one draw of the policy per row
        mc_error = np.where([e.name == "b-ipw" for e in ests], np.nan, mc_error)
    return _run(ests, checked, n_bootstrap_samples, int(seeds[3]), mc_error)
