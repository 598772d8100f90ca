"""A bounded replay buffer per action: a fixed-capacity ring buffer that lives in a policy's state
(jittable, every leaf with the leading action axis), for policies that retrain on the rows they
have seen rather than only on the newest batch (NeuralLinear, ensembles, the BNN's replay option).

Each action keeps its most recent ``capacity`` rows; a batch with more rows for one action than
the capacity keeps that batch's last ``capacity`` of them. Slots hold any pytree of per-row arrays
(a context, a reward, a bootstrap weight per ensemble member, ...).

Examples:
    >>> import jax.numpy as jnp
    >>> from bandits_jax.policies import replay
    >>> buf = replay.init(2, 3, {"x": jnp.zeros(4), "y": jnp.zeros(())})
    >>> rows = {"x": jnp.ones((2, 5, 4)), "y": jnp.arange(10.0).reshape(2, 5)}
    >>> valid = jnp.array([[True] * 5, [True, True, False, False, False]])
    >>> buf = replay.add(buf, rows, valid)
    >>> buf.rows["y"].tolist(), buf.valid.sum(axis=1).tolist()
    ([[2.0, 3.0, 4.0], [5.0, 6.0, 0.0]], [3, 2])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

__all__ = ["ReplayBuffer", "add", "init"]


class ReplayBuffer(NamedTuple):
    """``rows``: a pytree of ``(n_actions, capacity, ...)`` arrays; ``valid[a, i]``: slot ``i`` of
    action ``a`` holds a row; ``head[a]``: the slot the next row of action ``a`` goes to."""

    rows: Any
    valid: Bool[Array, "n_actions capacity"]
    head: Int[Array, " n_actions"]

    @property
    def capacity(self) -> int:
        return self.valid.shape[-1]


def init(n_actions: int, capacity: int, example_row: Any) -> ReplayBuffer:
    """An empty buffer of ``capacity`` slots per action, each shaped like ``example_row`` (a
    pytree of arrays, one row without the action and slot axes)."""

    def slots(leaf):
        leaf = jnp.asarray(leaf)
        return jnp.zeros((n_actions, capacity, *leaf.shape), leaf.dtype)

    return ReplayBuffer(
        jax.tree.map(slots, example_row),
        jnp.zeros((n_actions, capacity), bool),
        jnp.zeros((n_actions,), jnp.int32),
    )


def add(buffer: ReplayBuffer, rows: Any, valid: Bool[Array, "n_actions n_rows"]) -> ReplayBuffer:
    """The buffer with each action's valid rows written after its previous ones (valid rows first
    in each action's batch, as :class:`~bandits_jax.policies.GroupedFeedback` lays them out),
    overwriting the oldest when full. An action without valid rows keeps its slots bit for bit."""
    capacity = buffer.capacity
    n_rows = valid.shape[-1]
    count = valid.sum(axis=-1).astype(jnp.int32)  # (n_actions,)
    start = jnp.maximum(count - capacity, 0)  # rows before it are overwritten in this same batch
    j = jnp.arange(n_rows, dtype=jnp.int32)
    keep = valid & (j[None, :] >= start[:, None])
    slot = (buffer.head[:, None] + j[None, :] - start[:, None]) % capacity
    slot = jnp.where(keep, slot, capacity)  # out of bounds: dropped by the scatter

    def write(old, new):
        return jax.vmap(lambda o, s, n: o.at[s].set(n.astype(o.dtype), mode="drop"))(old, slot, new)

    new_rows = jax.tree.map(write, buffer.rows, rows)
    new_valid = jax.vmap(lambda o, s: o.at[s].set(True, mode="drop"))(buffer.valid, slot)
    head = (buffer.head + jnp.minimum(count, capacity)) % capacity
    return ReplayBuffer(new_rows, new_valid, head)
