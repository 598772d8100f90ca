"""PyBandits' ``tune_subsidy_factor``: the cost-control ``subsidy_factor`` at the knee of the
reward/subsidy curve, vectorised on the device.

For a grid of factors over [0, 1] every Monte-Carlo posterior draw is fed to
:class:`~bandits_jax.strategy.CostControlBandit`'s rule and the choice is credited with an
*independent* posterior draw of its reward (no Thompson optimism), so the mean credit estimates the
policy's mean reward at each factor. The knee (Kneedle, the point of largest distance above the
chord of the normalised curve) of bootstrap resamples of the draws gives the factor (their median)
and its interval. PyBandits loops over draws and factors in Python; here one compiled call
``vmap``s over the factors and the bootstrap resamples (as bincount weights: memory
``n_bootstrap x n_draws``, not ``x n_points`` more).

Examples:
    >>> import numpy as np
    >>> from bandits_jax.smab import SmabBernoulliCC
    >>> mab = SmabBernoulliCC.cold_start({"cheap": 1.0, "dear": 4.0}, random_seed=0)
    >>> mab.update(["cheap"] * 50 + ["dear"] * 50, [1] * 30 + [0] * 20 + [1] * 45 + [0] * 5)
    >>> result = tune_subsidy_factor(mab, n_samples=500, n_points=21, n_bootstrap=200, random_seed=0)
    >>> 0.0 <= result.subsidy_factor <= 1.0, result.mab.subsidy_factor == result.subsidy_factor
    (True, True)
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax.strategy import ClassicBandit, CostControlBandit, cost_control_choice

__all__ = ["SubsidyFactorTuningResult", "detect_knee", "tune_subsidy_factor"]


class SubsidyFactorTuningResult(NamedTuple):
    """``subsidy_factor`` (the bootstrap-median knee), ``subsidy_factor_ci`` (its bootstrap
    interval), ``mab`` (a copy of the model with the factor applied; same state and key) and
    ``frontier``: the sweep as columns of NumPy arrays, ``subsidy_factor``, ``mean_reward``,
    ``mean_reward_pct`` (percent of the reward at factor 0) and ``p_select[<id>]`` per action
    (PyBandits returns the same columns as a pandas DataFrame: ``pandas.DataFrame(frontier)``)."""

    subsidy_factor: float
    subsidy_factor_ci: tuple[float, float]
    mab: Any
    frontier: dict[str, np.ndarray]


def detect_knee(subsidy_factors: Any, rewards: Any) -> Any:
    """PyBandits' ``_detect_knee`` over the last axis of ``rewards`` (any leading axes): both axes
    normalised to [0, 1], the knee is the factor of largest distance above the chord joining the
    curve's ends; a flat curve gives the first factor."""
    x = jnp.asarray(subsidy_factors)
    y = jnp.asarray(rewards)
    x_range = x[-1] - x[0]
    y_min, y_max = y.min(axis=-1, keepdims=True), y.max(axis=-1, keepdims=True)
    y_range = y_max - y_min
    flat = (y_range == 0)[..., 0] | (x_range == 0)
    x_n = (x - x[0]) / jnp.where(x_range == 0, 1, x_range)
    y_n = (y - y_min) / jnp.where(y_range == 0, 1, y_range)
    chord = y_n[..., :1] + (y_n[..., -1:] - y_n[..., :1]) * x_n
    knee = x[jnp.argmax(y_n - chord, axis=-1)]
    return jnp.where(flat, x[0], knee)


@partial(jax.jit, static_argnames=("n_actions",))
def _sweep(p_sel, p_cred, costs, factors, boot_weights, n_actions):
    """Credit ``(n_draws, n_points)``, selection frequencies ``(n_points, n_actions)`` and the
    knee of every bootstrap resample (its draws' counts ``boot_weights``)."""

    def at(factor):
        chosen = cost_control_choice(p_sel, costs, factor)
        credit = jnp.take_along_axis(p_cred, chosen[:, None], axis=1)[:, 0]
        return credit, jnp.bincount(chosen, length=n_actions)

    credit, counts = jax.vmap(at, out_axes=(1, 0))(factors)
    n_draws = p_sel.shape[0]
    boot_means = boot_weights @ credit / n_draws
    return credit, counts / n_draws, detect_knee(factors, boot_means)


def _draws(mab, context, n_samples: int, key) -> jax.Array:
    """``n_samples`` posterior draws of every action's reward probability (contextual: one per
    row of ``context`` per pass), ``(n_draws, n_actions)``; the model is not touched."""
    n_actions = len(mab.action_ids)
    with mab._lock:
        state = mab._state
    mask = jnp.asarray(mab._mask)
    if context is None:
        rows = jnp.zeros((n_samples, 0), jnp.float32)
    else:
        rows = jnp.tile(jnp.asarray(context, jnp.float32), (n_samples, 1))
    out = mab._policy.predict(key, state, rows, ClassicBandit(), mask)
    if not (bool(jnp.isfinite(out.probs).all()) and bool(jnp.isfinite(out.logits).all())):
        raise ValueError(
            "context is too large for the model: its posterior draws overflow float32 (rescale it)"
        )
    return jnp.asarray(out.probs)[:, :n_actions]


def tune_subsidy_factor(
    mab: Any,
    context: Any = None,
    n_samples: int = 1000,
    n_points: int = 100,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.9,
    random_seed: int | None = None,
) -> SubsidyFactorTuningResult:
    """The ``subsidy_factor`` at the knee of a fitted cost-control model's reward curve (PyBandits'
    function, arguments and defaults; see the module docstring).

    Args:
        mab: a ``CmabBernoulliCC`` or ``SmabBernoulliCC`` (any model whose strategy is a
            :class:`~bandits_jax.strategy.CostControlBandit`); it is not modified.
        context: ``(n_rows, n_features)`` rows representative of the traffic (contextual models
            only; each of ``n_samples`` passes draws one sample per row).
        n_samples, n_points (>= 3), n_bootstrap, confidence_level (in (0, 1)), random_seed (None:
            drawn from NumPy's global generator).

    Raises:
        TypeError: ``mab`` is not a cost-control model. ValueError: bad sizes, a missing or
        superfluous ``context``.
    """
    if not isinstance(getattr(mab, "strategy", None), CostControlBandit):
        raise TypeError(
            "tune_subsidy_factor requires a cost-control bandit (strategy=CostControlBandit), "
            "e.g. SmabBernoulliCC or CmabBernoulliCC"
        )
    for name, value in (("n_samples", n_samples), ("n_points", n_points), ("n_bootstrap", n_bootstrap)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if n_points < 3:
        raise ValueError(f"n_points must be at least 3 to detect a knee, got {n_points}")
    if not (isinstance(confidence_level, numbers.Real) and 0 < confidence_level < 1):
        raise ValueError(f"confidence_level must lie in (0, 1), got {confidence_level!r}")
    contextual = hasattr(mab, "input_dim")
    if contextual:
        if context is None:
            raise ValueError("context is required for a contextual (cMAB) bandit")
        context = val.as_context(context, mab.input_dim)
    elif context is not None:
        raise ValueError("context must be None for a non-contextual (sMAB) bandit")
    seed = val.random_seed(random_seed)
    k_sel, k_cred, k_boot = jax.random.split(jax.random.key(seed), 3)
    p_sel = _draws(mab, context, int(n_samples), k_sel)
    p_cred = _draws(mab, context, int(n_samples), k_cred)
    n_draws, n_actions = p_sel.shape
    grid = np.linspace(0.0, 1.0, int(n_points))  # reported in float64: 0.2, not 0.2000000029...
    factors = jnp.asarray(grid, p_sel.dtype)
    idx = jax.random.randint(k_boot, (int(n_bootstrap), n_draws), 0, n_draws)
    weights = jax.vmap(lambda i: jnp.bincount(i, length=n_draws))(idx).astype(p_sel.dtype)
    costs = jnp.asarray(mab.strategy.costs)
    credit, p_select, knees = _sweep(p_sel, p_cred, costs, factors, weights, n_actions)
    knees = grid[np.rint(np.asarray(knees, np.float64) * (int(n_points) - 1)).astype(int)]
    factor = float(np.median(knees))
    ci = (
        float(np.percentile(knees, (1 - confidence_level) / 2 * 100)),
        float(np.percentile(knees, (1 + confidence_level) / 2 * 100)),
    )
    mean_reward = np.asarray(credit, np.float64).mean(axis=0)
    reference = mean_reward[0] if mean_reward[0] != 0 else np.nan
    frontier = {
        "subsidy_factor": grid,
        "mean_reward": mean_reward,
        "mean_reward_pct": mean_reward / reference * 100,
    }
    p_select = np.asarray(p_select, np.float64)
    for i, action_id in enumerate(mab.action_ids):
        frontier[f"p_select[{action_id}]"] = p_select[:, i]
    tuned = mab.with_strategy(mab.strategy.with_subsidy_factor(factor))
    return SubsidyFactorTuningResult(factor, ci, tuned, frontier)
