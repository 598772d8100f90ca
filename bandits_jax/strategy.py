"""Action-selection strategies, applied on device and vectorised over rows.

A strategy is an equinox module called as ``strategy(probs, key) -> chosen`` with ``probs`` of
shape ``(n_rows, n_actions)`` (one Thompson draw per row and action) and ``chosen`` the index of the
selected action per row. Numeric settings are pytree leaves, so changing them does not recompile.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


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

    exploit_p: float = 0.5

    def __check_init__(self):
        if not isinstance(self.exploit_p, jax.Array) and not 0.0 <= float(self.exploit_p) <= 1.0:
            raise ValueError(f"exploit_p must lie in [0, 1], got {self.exploit_p!r}")

    def __call__(self, probs, key):
        if probs.shape[-1] < 2:
            return jnp.zeros(probs.shape[:-1], jnp.int32)
        values, top2 = jax.lax.top_k(probs, 2)
        exploit = jax.random.uniform(key, probs.shape[:-1]) < self.exploit_p
        exploit = exploit | (values[..., 1] == -jnp.inf)
        return jnp.where(exploit, top2[..., 0], top2[..., 1])
