"""Cholesky factorisation and solves for the small symmetric positive definite matrices of the
linear posteriors (a few to a few dozen rows), written in plain ``jax.numpy`` operations.

Why not ``jax.scipy.linalg.cho_factor``: on CPU it calls LAPACK's ``potrf`` through jaxlib's FFI,
whose batched kernel (jaxlib 0.10.2) splits the batch into tasks on XLA's intra-op thread pool and
blocks until they finish. When as many such calls run at once as the pool has threads (two on a
2-core machine: a vmapped sweep's independent fits), every thread waits for tasks that no thread is
free to run, and the process hangs for good. Seen here with gdb: both ``tf_XLAEigen`` threads in
``CholeskyFactorization::Kernel`` -> ``ParallelBatchMap`` -> ``BlockingCounter::Wait``, reproduced
on a showdown cell of 10 seeds; jax 0.11.2 compiles that parallel path out. These loops are the
unblocked algorithm LAPACK runs for such sizes (column by column, one ``lax.fori_loop`` step per
column), batched by ``vmap`` like any other operation, with no custom call.

Examples:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 2.0], [2.0, 3.0]])
    >>> cholesky(a).tolist()
    [[2.0, 0.0], [1.0, 1.4142135381698608]]
    >>> cho_solve(cholesky(a), jnp.array([2.0, 1.0])).tolist()
    [0.5, 0.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["cho_solve", "cholesky"]


def cholesky(a: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """The lower Cholesky factor ``L`` of ``a = L L^T`` (only ``a``'s lower triangle is read);
    NaN where ``a`` is not positive definite."""
    d = a.shape[-1]
    idx = jnp.arange(d)

    def column(j, low):
        # columns < j are final and those >= j still 0, so this is a[:, j] - L[:, :j] @ L[j, :j]
        s = a[:, j] - low @ low[j]
        diag = jnp.sqrt(s[j])
        return low.at[:, j].set(jnp.where(idx > j, s / diag, jnp.where(idx == j, diag, 0)))

    return jax.lax.fori_loop(0, d, column, _zeros(a))


def cho_solve(low: Float[Array, "d d"], b: Float[Array, "d ..."]) -> Float[Array, "d ..."]:
    """``x`` with ``L L^T x = b`` for the factor ``L`` of :func:`cholesky` (``b`` a vector or a
    matrix of right-hand sides): forward, then back substitution."""
    vector = b.ndim == 1
    b = b[:, None] if vector else b
    d = low.shape[-1]

    def forward(j, y):  # L y = b; rows >= j of y still 0
        return y.at[j].set((b[j] - low[j] @ y) / low[j, j])

    def backward(i, x):  # L^T x = y; rows <= j of x still 0
        j = d - 1 - i
        return x.at[j].set((y[j] - low[:, j] @ x) / low[j, j])

    y = jax.lax.fori_loop(0, d, forward, _zeros(b, low))
    x = jax.lax.fori_loop(0, d, backward, _zeros(b, low))
    return x[:, 0] if vector else x


def _zeros(like: Array, *also: Array) -> Array:
    """Zeros shaped as ``like`` that depend on ``like`` and ``also`` (a loop's initial carry): under
    ``shard_map`` a carry must vary over the same mesh axes as the loop's output, which the inputs
    decide (``jnp.zeros_like`` would vary over none). Non-finite inputs still give exact zeros."""
    zeros = jnp.where(jnp.zeros(like.shape, bool), like, 0)
    for other in also:
        zeros = zeros + jnp.where(False, other.ravel()[0], 0).astype(like.dtype)
    return zeros
