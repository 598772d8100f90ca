"""Simulated bandit experiments as compiled programs: environments, ``simulate`` and ``sweep``.

An *environment* is an equinox module (a pytree) with ``sample_context(key, n) -> (n, n_features)``
and ``expected_rewards(context) -> (n, n_actions)`` (``reward_probs`` is its old name). Rewards are
drawn by a likelihood (:mod:`bandits_jax.likelihoods`, the one the simulated policies share) given
their expected value: nothing here assumes Bernoulli rewards.

:func:`simulate_policies` (or :func:`simulate` with a mapping) plays any policies
(:mod:`bandits_jax.policies`) for ``n_rounds`` rounds as one ``lax.scan``: every round,
:func:`round_draws` gives the contexts and the reward of every row and action (common random
numbers: every policy and the oracle see the same), then each policy predicts with
:func:`bandits_jax._bandit.predict_step` (the object API's step, not a copy) and updates on the
rewards of its own choices. The result is one :class:`Trace` per policy plus ``"oracle"`` (the best
action, expected regret 0). :func:`simulate` with a :class:`~bandits_jax.config.CmabConfig` is the
original experiment on top of it: the CMAB (:class:`~bandits_jax.policies.BnnTS`) as ``policy``,
with :class:`~bandits_jax.policies.Uniform` as ``random`` and
:class:`~bandits_jax.policies.BetaBernoulli` (the context-free sMAB) as ``smab``, so a result
shows what the context buys. :func:`sweep` runs many experiments at once: ``vmap`` over seeds and
over any policy's init data (priors), the run axis sharded over every device.

Regret:
    Per round, the expected regret of a policy is ``sum_i max_a p(x_i, a) - p(x_i, a_i)`` over the
    round's ``batch_size`` rows, with ``p = env.expected_rewards``; ``cumulative_regret`` is its
    running sum over rounds and ``best_reward`` the round's ``sum_i max_a p(x_i, a)``.

Keys:
    Round ``t`` uses ``ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t),
    3)``: contexts and expected rewards from ``env.sample_round(ctx_key, batch_size, t)``
    (``env.sample(ctx_key, batch_size)`` for a stationary environment) and the reward of every row
    and action from ``likelihood.sample(reward_key, expected)`` (for Bernoulli, ``u[i, a] < p[i,
    a]`` with ``u = jax.random.uniform(reward_key, (batch_size * n_actions,))`` reshaped to
    ``(batch_size, n_actions)``: draws of more than one axis are drawn flat, which XLA:CPU compiles
    several times faster; see :mod:`bandits_jax._random`). Each policy's
    key advances exactly as :class:`~bandits_jax.cmab.CmabBernoulli`'s does (``key, sub =
    split(key)`` before ``predict`` and again before ``update``), so a model whose ``_key`` is the
    policy's key replays a simulation exactly. With policies, ``env_key = split(key)[0]`` and policy
    ``name`` plays with :func:`policy_key` ``(key, name)``. With a configuration, ``policy_key,
    smab_key, env_key = jax.random.split(key, 3)`` and the random policy's key is
    ``jax.random.fold_in(key, 1)``.

What a sweep can vary:
    Settings that live in the state are traced, so one compiled program serves every value: the
    seed, any policy's ``init`` data (``init_data``; with a configuration the prior's
    ``prior_mu`` and ``prior_sigma``, which override ``config.mu`` / ``config.sigma``), and the
    environment itself (``env_axis=0``: one environment per run). A policy's static settings, as
    everything in the :class:`~bandits_jax.config.CmabConfig` (step size, ``num_steps``, hidden
    widths, prior family), are compiled in; :func:`sweep_configs` sweeps those with a Python loop
    over compiled programs, one per configuration.

Devices:
    :func:`sweep` lays the run axis over a 1-D :class:`jax.sharding.Mesh` of ``devices`` (default
    every device, ``jax.devices()``), padding the runs to a multiple of the device count, and runs
    the vectorised program on each device's share with :func:`jax.shard_map`. Runs are independent,
    so the results equal one device's for the same keys (tested on fake CPU devices with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``).

Multi-host:
    JAX's own distributed runtime does it. Start the same script on every process (host), call
    ``jax.distributed.initialize()`` first (with ``coordinator_address``, ``num_processes`` and
    ``process_id``, or nothing on a cluster JAX detects, e.g. SLURM or Cloud TPU), then call
    :func:`sweep` with the same arguments on every process. ``jax.devices()`` then lists the devices
    of all processes, so the default mesh spans them; each process builds only its own devices'
    shares of the inputs (:func:`jax.make_array_from_callback` from its copy of the arguments, since
    ``device_put`` cannot place data on another host's device) and runs its share. The results are
    global arrays of which each process holds its own runs: :func:`gather` (every process calls it;
    ``process_allgather``) gives all runs on every process, to save from process 0. Tested with two
    local CPU processes (gloo collectives): the gathered result equals one process's bit for bit
    (``tests/test_multihost.py``, which also runs ``bandits-jax simulate --coordinator ...``).

Examples:
    >>> import jax
    >>> from bandits_jax import simulation
    >>> from bandits_jax.config import CmabConfig
    >>> env = simulation.LogisticEnv.random(n_features=3, n_actions=2, key=jax.random.key(0))
    >>> cfg = CmabConfig(n_features=3, num_steps=10)
    >>> out = simulation.simulate(cfg, env, jax.random.key(1), n_rounds=4, batch_size=8)
    >>> out.policy.cumulative_regret.shape, out.random.actions.shape
    ((4,), (4, 8))
"""

from __future__ import annotations

from bandits_jax.simulation.environments import (  # noqa: F401 (re-exported, private names included)
    SKLEARN_DATASETS,
    WHEEL_DELTAS,
    ClassificationEnv,
    Environment,
    GaussianRewardEnv,
    LogisticEnv,
    MLPEnv,
    PiecewiseEnv,
    QuadraticEnv,
    WheelEnv,
    _GaussianContextEnv,
    load_sklearn,
)
from bandits_jax.simulation.plot import (  # noqa: F401 (re-exported, private names included)
    plot_regret,
)
from bandits_jax.simulation.run import (  # noqa: F401 (re-exported, private names included)
    _LEGACY_ORDER,
    ORACLE,
    PoliciesState,
    RoundDraws,
    SimulationResult,
    SimulationState,
    Trace,
    _check_policies,
    _check_problem,
    _check_sizes,
    _check_strategy,
    _config_dict,
    _from_generic,
    _init_states,
    _items,
    _legacy_items,
    _legacy_result,
    _legacy_state,
    _likelihood,
    _play,
    _policy_features,
    _prior,
    _round,
    _to_generic,
    init_policies,
    init_simulation,
    play_rounds,
    policy_key,
    round_draws,
    run_rounds,
    simulate,
    simulate_policies,
)
from bandits_jax.simulation.sweep import (  # noqa: F401 (re-exported, private names included)
    _RUNS,
    _as_keys,
    _per_run,
    _put,
    _put_keys,
    _sweep_init,
    _sweep_rounds,
    _sweep_run_state,
    gather,
    grid,
    sweep,
    sweep_configs,
)

__all__ = [
    "ClassificationEnv",
    "Environment",
    "GaussianRewardEnv",
    "LogisticEnv",
    "MLPEnv",
    "PiecewiseEnv",
    "PoliciesState",
    "QuadraticEnv",
    "RoundDraws",
    "SimulationResult",
    "SimulationState",
    "Trace",
    "WHEEL_DELTAS",
    "WheelEnv",
    "gather",
    "grid",
    "init_policies",
    "init_simulation",
    "load_sklearn",
    "play_rounds",
    "plot_regret",
    "policy_key",
    "round_draws",
    "run_rounds",
    "simulate",
    "simulate_policies",
    "sweep",
    "sweep_configs",
]
