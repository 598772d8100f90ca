"""``sweep``: many experiments as one vectorised program, the run axis sharded over devices and processes. Part of :mod:`bandits_jax.simulation` (see its docstring)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike, Int, Key

from bandits_jax.config import CmabConfig
from bandits_jax.simulation.environments import Environment, LogisticEnv  # noqa: F401 (doctests)
from bandits_jax.simulation.run import (
    SimulationResult,
    Trace,
    _check_policies,
    _check_problem,
    _check_sizes,
    _check_strategy,
    _init_states,
    _items,
    _legacy_items,
    _legacy_result,
    _legacy_state,
    _play,
    _prior,
)
from bandits_jax.strategy import ClassicBandit, Strategy

_RUNS = "runs"


# ---------------------------------------------------------------------------------- sweep
def _as_keys(keys_or_seeds) -> Key[Array, " n_runs"]:
    if isinstance(keys_or_seeds, jax.Array) and jax.dtypes.issubdtype(
        keys_or_seeds.dtype, jax.dtypes.prng_key
    ):
        keys = keys_or_seeds
    else:
        seeds = np.asarray(keys_or_seeds)
        if seeds.ndim != 1 or not np.issubdtype(seeds.dtype, np.integer):
            raise TypeError(
                f"keys must be a 1-D array of PRNG keys or of integer seeds, got {keys_or_seeds!r}"
            )
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    if keys.ndim != 1 or keys.shape[0] == 0:
        raise ValueError(f"keys must be a non-empty 1-D array (one per run), got shape {keys.shape}")
    return keys


def _per_run(name: str, value, n_runs: int) -> np.ndarray:
    """A scalar broadcast to ``(n_runs,)``, or an array whose leading axis has one entry per run."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" or arr.dtype == object:
        arr = arr.astype(np.float32)
    if arr.ndim == 0:
        return np.array(np.broadcast_to(arr, (n_runs,)))
    if arr.shape[0] != n_runs:
        raise ValueError(
            f"{name} must be a scalar or have one value per run ({n_runs}), got shape {arr.shape}"
        )
    return arr


# XLA:CPU's LLVM backend at optimisation level 1 instead of 2, for the sweep's own top-level
# programs only (a per-program compile option, no global setting; ``simulate`` may run nested in a
# caller's jit, where no options can be given): the 64-run bench_sweep's first call 4.2-4.7 s
# instead of 5.4-5.8 s, warm calls no slower (level 0 made them 4x slower). Level 1 may round the
# last float32 bit differently from level 2 where a device holds a different number of runs.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def _sweep_run_state(items, legacy, env, key, data, n_actions):
    if legacy:
        keys, env_key = _legacy_state(key)
        return _init_states(items, n_actions, data, key, env_key, keys)
    return _init_states(items, n_actions, data, key, jax.random.split(key)[0])


@partial(
    jax.jit,
    static_argnames=("items", "legacy", "n_actions", "mesh", "env_axis"),
    compiler_options=COMPILER_OPTIONS,
)
def _sweep_init(items, env, keys, data, *, legacy, n_actions, mesh, env_axis):
    def local(env, keys, data):
        init = partial(_sweep_run_state, items, legacy, n_actions=n_actions)
        return jax.vmap(init, in_axes=(env_axis, 0, 0))(env, keys, data)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(_RUNS)), out_specs=P(_RUNS))(
        env, keys, data
    )


@partial(
    jax.jit,
    static_argnames=("items", "n_rounds", "batch_size", "mesh", "env_axis"),
    compiler_options=COMPILER_OPTIONS,
)
def _sweep_rounds(items, env, state, first_round, strategy, *, n_rounds, batch_size, mesh, env_axis):
    def local(env, state, first_round, strategy):
        body = partial(_play, items, n_rounds=n_rounds, batch_size=batch_size)
        return jax.vmap(lambda e, s: body(e, s, first_round, strategy), in_axes=(env_axis, 0))(env, state)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(), P()), out_specs=P(_RUNS))(
        env, state, first_round, strategy
    )


@jax.jit
def _take_runs(tree, take):
    return jax.tree.map(lambda x: x[take], tree)


def _put(tree, sharding: NamedSharding):
    """Every array leaf of ``tree`` (the same global value on every process) as a global array laid
    out by ``sharding``. One process: :func:`jax.device_put`. Several (``jax.distributed``): each
    process builds only its addressable shards from its own copy of the global value, with
    :func:`jax.make_array_from_callback`, since ``device_put`` cannot place on other hosts' devices."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
            return x
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def _put_keys(keys, sharding: NamedSharding):
    """Typed PRNG keys as :func:`_put` places arrays: their raw key data, wrapped back on device."""
    if sharding.is_fully_addressable:
        return jax.device_put(keys, sharding)
    data = _put(jax.random.key_data(keys), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(keys))


def gather(result):
    """A sweep's result as host NumPy arrays on every process, for saving or printing.

    With one process this is :func:`jax.device_get`. Under ``jax.distributed`` a sweep's result is
    a global array of which each process holds its own runs; every process must call this (it is
    a collective, :func:`jax.experimental.multihost_utils.process_allgather`) and gets all runs.
    """
    if jax.process_count() == 1:
        return jax.device_get(result)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(result, tiled=True)


def sweep(
    config: CmabConfig | Mapping[str, Any],
    env: Environment,
    keys: Key[Array, " n_runs"] | Int[ArrayLike, " n_runs"] | Sequence[int],
    n_rounds: int,
    batch_size: int,
    n_actions: int | None = None,
    strategy: Strategy = ClassicBandit(),
    *,
    prior_mu: ArrayLike | Sequence[float] | None = None,
    prior_sigma: ArrayLike | Sequence[float] | None = None,
    init_data: Mapping[str, Mapping[str, Any]] | None = None,
    env_axis: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    chunk_rounds: int | None = None,
    callback: Callable[[int], Any] | None = None,
) -> SimulationResult | dict[str, Trace]:
    """Many independent experiments as one compiled, vectorised program: :func:`simulate` per run.

    Args:
        config: a :class:`~bandits_jax.config.CmabConfig` (the CMAB and its baselines: the result is
            a :class:`SimulationResult`) or a mapping name -> policy (a dict of :class:`Trace`).
        n_rounds, batch_size, n_actions, strategy: as in :func:`simulate`, shared by all runs.
        env: shared by all runs, or with a leading run axis on every leaf if ``env_axis=0`` (e.g.
            ``jax.vmap(lambda k: LogisticEnv.random(5, 3, key=k))(env_keys)``).
        keys: one PRNG key per run, or integer seeds (run ``i`` then uses ``jax.random.key(seeds[i])``).
        prior_mu, prior_sigma: with a configuration, a scalar or one value per run (traced: no
            recompilation per value); default ``config.mu`` / ``config.sigma``.
        init_data: with policies, each one's ``init`` keyword arguments by name, every value a
            scalar or an array with a leading run axis (traced, ``vmap``-ed with the seeds: e.g.
            ``{"bnn": {"sigma": sigmas}, "lin": {"sigma": sigmas}}``).
        devices: the devices to shard the run axis over (default ``jax.devices()``); runs are
            padded to a multiple of their number and the padding is dropped from the result.
        chunk_rounds: play the rounds in chunks of this many (one compiled program per chunk
            length; a shorter last chunk compiles once more) and call ``callback(rounds_done)``
            after each, e.g. to move a progress bar. The result equals one unchunked scan.
        callback: see ``chunk_rounds``.

    Returns:
        A :class:`SimulationResult` (or a dict of :class:`Trace`) with a leading run axis on every
        field, then the round axis.

    Examples:
        >>> import jax
        >>> from bandits_jax.config import CmabConfig
        >>> env = LogisticEnv.random(3, 2, key=jax.random.key(0))
        >>> cfg = CmabConfig(n_features=3, num_steps=10)
        >>> out = sweep(cfg, env, keys=[0, 1, 2, 3], n_rounds=3, batch_size=8,
        ...             prior_sigma=[1.0, 1.0, 10.0, 10.0])
        >>> out.policy.cumulative_regret.shape
        (4, 3)
    """
    _check_sizes(n_rounds, batch_size)
    _check_strategy(strategy)
    if env_axis not in (None, 0):
        raise ValueError(f"env_axis must be None (one environment) or 0 (one per run), got {env_axis!r}")
    keys = _as_keys(keys)
    n_runs = keys.shape[0]
    if env_axis == 0:
        sizes = {leaf.shape[0] for leaf in jax.tree.leaves(env)}
        if sizes != {n_runs}:
            raise ValueError(f"with env_axis=0 every environment leaf needs a leading axis of {n_runs} runs")
    legacy = not isinstance(config, Mapping)
    if legacy:
        if init_data is not None:
            raise TypeError("init_data goes with a mapping of policies; pass prior_mu / prior_sigma")
        n_actions = _check_problem(config, env, n_actions)
        items = _legacy_items(config)
        init_data = {"policy": _prior(config, prior_mu, prior_sigma)}
        data = {
            "policy": {
                k: _per_run(f"prior_{k}", v, n_runs).astype(np.float32)
                for k, v in init_data["policy"].items()
            }
        }
    else:
        if prior_mu is not None or prior_sigma is not None:
            raise TypeError("prior_mu / prior_sigma go with a CmabConfig; pass init_data with policies")
        items = _items(config)
        n_actions = _check_policies(items, env, n_actions)
        unknown = set(init_data or {}) - {name for name, _ in items}
        if unknown:
            raise ValueError(f"init_data names policies that do not play: {sorted(unknown)}")
        data = {
            name: {k: _per_run(f"init_data[{name!r}][{k!r}]", v, n_runs) for k, v in fields.items()}
            for name, fields in (init_data or {}).items()
        }
    if chunk_rounds is None:
        chunk_rounds = n_rounds
    _check_sizes(chunk_rounds, 1, names=("chunk_rounds", "batch_size"))

    devices = list(jax.devices() if devices is None else devices)
    mesh = Mesh(np.asarray(devices), (_RUNS,))
    padded = -(-n_runs // len(devices)) * len(devices)
    runs = NamedSharding(mesh, P(_RUNS))
    if padded != n_runs:
        # Padding runs repeat the last run: valid inputs whose results are dropped. One compiled
        # gather for the device arrays (an eager index compiles four small programs per leaf).
        take = np.minimum(np.arange(padded), n_runs - 1)
        data = jax.tree.map(lambda x: x[take], data)
        if env_axis == 0:
            keys, env = _take_runs((keys, env), take)
        else:
            keys = _take_runs(keys, take)
    keys = _put_keys(keys, runs)
    data = _put(data, runs)
    env = _put(env, runs if env_axis == 0 else NamedSharding(mesh, P()))

    state = _sweep_init(
        items, env, keys, data, legacy=legacy, n_actions=n_actions, mesh=mesh, env_axis=env_axis
    )
    # Wait for the (small) initial state before the rounds are dispatched: XLA:CPU (jax 0.10.2) was
    # seen to hang for good, every thread idle, with a pool worker of the rounds' program waiting
    # on its inputs (gdb; 5 times in long showdown cells); a program whose inputs are ready at
    # dispatch never waits on them there.
    state = jax.block_until_ready(state)
    chunks = []
    for start in range(0, n_rounds, chunk_rounds):
        length = min(chunk_rounds, n_rounds - start)
        state, out = _sweep_rounds(
            items,
            env,
            state,
            jnp.int32(start),
            strategy,
            n_rounds=length,
            batch_size=batch_size,
            mesh=mesh,
            env_axis=env_axis,
        )
        chunks.append(out)
        if callback is not None:
            jax.block_until_ready(out)
            callback(start + length)
    out = chunks[0] if len(chunks) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *chunks)
    if padded != n_runs:
        out = jax.tree.map(lambda x: x[:n_runs], out)
    return _legacy_result(out) if legacy else out


def sweep_configs(
    configs: Sequence[CmabConfig], env: Environment, keys, n_rounds: int, batch_size: int, **kwargs
):
    """Sweep static settings (step size, ``num_steps``, widths...): one :func:`sweep` per
    configuration, a Python loop over compiled programs, results stacked on a leading config axis.

    Examples:
        >>> import dataclasses, jax
        >>> from bandits_jax.config import CmabConfig
        >>> env = LogisticEnv.random(3, 2, key=jax.random.key(0))
        >>> base = CmabConfig(n_features=3, num_steps=10)
        >>> cfgs = [dataclasses.replace(base, step_size=s) for s in (0.01, 0.1)]
        >>> sweep_configs(cfgs, env, [0, 1], n_rounds=2, batch_size=4).policy.regret.shape
        (2, 2, 2)
    """
    outs = [sweep(c, env, keys, n_rounds, batch_size, **kwargs) for c in configs]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def grid(
    seeds: Sequence[int], **settings: Sequence[float]
) -> tuple[Key[Array, " n_runs"], dict[str, np.ndarray]]:
    """Every combination of seeds and settings as flat per-run arrays, seeds varying fastest.

    Reshape a sweep's results to ``(len(values_1), ..., len(seeds), ...)`` to split the run axis.

    Examples:
        >>> keys, settings = grid(range(3), prior_sigma=[1.0, 10.0])
        >>> keys.shape, settings["prior_sigma"].tolist()
        ((6,), [1.0, 1.0, 1.0, 10.0, 10.0, 10.0])
    """
    seeds = list(seeds)
    combos = list(itertools.product(*settings.values(), seeds))
    keys = _as_keys([c[-1] for c in combos])
    return keys, {name: np.asarray([c[i] for c in combos], np.float32) for i, name in enumerate(settings)}
