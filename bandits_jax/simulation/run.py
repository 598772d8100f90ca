"""``simulate``: one experiment as a ``lax.scan`` over rounds (any policies, or a CmabConfig with its baselines). Part of :mod:`bandits_jax.simulation` (see its docstring)."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Real

from bandits_jax import core, smab
from bandits_jax._bandit import predict_step
from bandits_jax.config import CmabConfig
from bandits_jax.policies import BetaBernoulli, BnnTS, Feedback, Forgetting, Policy, Uniform
from bandits_jax.simulation.environments import Environment, LogisticEnv  # noqa: F401 (doctests)
from bandits_jax.strategy import ClassicBandit, Strategy

# ---------------------------------------------------------------------------------- simulate
ORACLE = "oracle"


class Trace(NamedTuple):
    """One policy's record of a simulation (a sweep adds a leading run axis to every field).

    ``best_reward[t]`` is the round's best possible expected reward (the sum over its rows of the
    largest expected reward), the same for every policy of a simulation; ``update_ok[t, a]`` is
    False where action ``a``'s update of round ``t`` went non-finite (always True for the oracle).
    """

    actions: Int[Array, "n_rounds batch_size"]
    rewards: Real[Array, "n_rounds batch_size"]
    regret: Float[Array, " n_rounds"]
    cumulative_regret: Float[Array, " n_rounds"]
    best_reward: Float[Array, " n_rounds"]
    update_ok: Bool[Array, "n_rounds n_actions"]


class SimulationResult(NamedTuple):
    """The CMAB ``policy`` and the three baselines, all played on the same contexts and reward draws.

    ``update_ok[t, a]`` is False where action ``a``'s SVI fit of round ``t`` went non-finite (see
    :class:`~bandits_jax.core.UpdateInfo`); it is ``policy.update_ok``.
    """

    policy: Trace
    random: Trace
    oracle: Trace
    smab: Trace
    update_ok: Bool[Array, "n_rounds n_actions"]


class PoliciesState(NamedTuple):
    """What a simulation of any policies carries from round to round, per policy name: its state,
    its PRNG key and its running regret (the oracle's too)."""

    states: dict[str, Any]
    keys: dict[str, PRNGKeyArray]
    env_key: PRNGKeyArray
    total_regret: dict[str, Float[Array, ""]]


class SimulationState(NamedTuple):
    """What a simulation of the CMAB and its baselines carries from round to round; running sums of
    regret in the order ``(policy, random, oracle, smab)``; ``random`` and ``random_key`` are the
    uniform-random policy's counters and key (build states with :func:`init_simulation`)."""

    cmab: core.CmabState
    smab: smab.SmabState
    policy_key: PRNGKeyArray
    smab_key: PRNGKeyArray
    env_key: PRNGKeyArray
    total_regret: Float[Array, "4"]
    random: Any = None
    random_key: Any = None


class RoundDraws(NamedTuple):
    """One round's contexts, every action's expected reward and every action's drawn reward per row
    (common random numbers: every policy sees these)."""

    context: Float[Array, "batch_size n_features"]
    expected: Float[Array, "batch_size n_actions"]
    rewards: Real[Array, "batch_size n_actions"]


def round_draws(
    env_key: PRNGKeyArray, t: int | Int[Array, ""], batch_size: int, env: Environment, likelihood: Any
) -> RoundDraws:
    """Round ``t``'s draws: ``ctx_key, reward_key, _ = split(fold_in(env_key, t), 3)``, contexts and
    expected rewards from ``env.sample_round(ctx_key, batch_size, t)`` (for a stationary environment
    ``env.sample(ctx_key, batch_size)``), and the reward of every row and action from
    ``env.draw_rewards(reward_key, expected, likelihood)`` (``likelihood.sample`` unless the
    environment draws its own noise)."""
    ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
    context, expected = env.sample_round(ctx_key, batch_size, t)
    return RoundDraws(context, expected, env.draw_rewards(reward_key, expected, likelihood, t))


def policy_key(key: PRNGKeyArray, name: str) -> PRNGKeyArray:
    """The PRNG key of policy ``name`` in a simulation of key ``key`` (it does not depend on which
    other policies play): ``fold_in(split(key)[1], crc32(name) % 2**31)``."""
    return jax.random.fold_in(jax.random.split(key)[1], zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _items(policies: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The policies as a hashable (static) tuple of ``(name, policy)``, checked."""
    if not isinstance(policies, Mapping) or not policies:
        raise TypeError(f"policies must be a non-empty mapping of name -> policy, got {policies!r}")
    items = tuple(policies.items())
    for name, policy in items:
        if not isinstance(name, str) or name == ORACLE:
            raise ValueError(f"policy names must be strings other than {ORACLE!r}, got {name!r}")
        if not isinstance(policy, Policy):
            raise TypeError(f"policy {name!r} does not implement bandits_jax.policies.Policy: {policy!r}")
        try:
            hash(policy)
        except TypeError:
            raise TypeError(f"policy {name!r} must be hashable (a frozen dataclass): {policy!r}") from None
    return items


def _likelihood(items) -> Any:
    """The reward model of a simulation: the policies' likelihood, which they must share."""
    likelihoods = {policy.likelihood for _, policy in items}
    if len(likelihoods) != 1:
        raise ValueError(f"every policy of a simulation must have the same likelihood, got {likelihoods}")
    return likelihoods.pop()


def _policy_features(policy) -> int | None:
    n = getattr(policy, "n_features", None)
    if n is None:
        n = getattr(getattr(policy, "network", None), "n_features", None)
    return n


def _check_policies(items, env: Environment, n_actions: int | None) -> int:
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a bandits_jax.simulation.Environment, got {env!r}")
    for name, policy in items:
        n = _policy_features(policy)
        if n is not None and n != env.n_features:
            raise ValueError(f"policy {name!r} has n_features {n} but the environment has {env.n_features}")
    if n_actions is not None and n_actions != env.n_actions:
        raise ValueError(f"n_actions is {n_actions} but the environment has {env.n_actions} actions")
    _likelihood(items)
    return env.n_actions


def _init_states(
    items, n_actions: int, init_data: Mapping[str, Mapping[str, Any]] | None, key, env_key, keys=None
) -> PoliciesState:
    init_data = dict(init_data or {})
    unknown = set(init_data) - {name for name, _ in items}
    if unknown:
        raise ValueError(f"init_data names policies that do not play: {sorted(unknown)}")
    states = {name: policy.init(n_actions, **init_data.get(name, {})) for name, policy in items}
    if keys is None:
        keys = {name: policy_key(key, name) for name, _ in items}
    dtype = jnp.result_type(float)
    total = {name: jnp.zeros((), dtype) for name in (*(n for n, _ in items), ORACLE)}
    return PoliciesState(states, keys, env_key, total)


def init_policies(
    policies: Mapping[str, Any],
    env: Environment,
    key: PRNGKeyArray,
    n_actions: int | None = None,
    *,
    init_data: Mapping[str, Mapping[str, Any]] | None = None,
) -> PoliciesState:
    """Cold start of a simulation of ``policies``: ``policy.init(n_actions, **init_data[name])``
    each (the init data may be traced: this is how :func:`sweep` varies priors), the environment's
    key ``split(key)[0]`` and every policy's :func:`policy_key`."""
    items = _items(policies)
    n_actions = _check_policies(items, env, n_actions)
    return _init_states(items, n_actions, init_data, key, jax.random.split(key)[0])


def _round(items, env: Environment, batch_size: int, strategy: Strategy, sim: PoliciesState, t):
    draws = round_draws(sim.env_key, t, batch_size, env, _likelihood(items))
    expected = draws.expected
    n_actions = expected.shape[-1]
    best = jnp.max(expected, axis=-1)
    rows = jnp.arange(batch_size)
    mask = jnp.ones((batch_size,), bool)
    states, keys, total, out = {}, {}, {}, {}

    def record(name, chosen, ok):
        chosen = chosen.astype(jnp.int32)
        regret = jnp.sum(best - expected[rows, chosen]).astype(sim.total_regret[name].dtype)
        total[name] = sim.total_regret[name] + regret
        out[name] = (chosen, draws.rewards[rows, chosen], regret, total[name], jnp.sum(best), ok)

    for name, policy in items:
        # The object API's steps: key, sub = split(key) before predict and again before update.
        (chosen, _, _), key = predict_step(
            policy, sim.states[name], sim.keys[name], draws.context, strategy, None
        )
        key, sub = jax.random.split(key)
        feedback = Feedback(draws.context, chosen, draws.rewards[rows, chosen], mask)
        states[name], info = policy.update(sub, sim.states[name], feedback)
        keys[name] = key
        record(name, chosen, info.ok)
    record(ORACLE, jnp.argmax(expected, axis=-1), jnp.ones((n_actions,), bool))
    return PoliciesState(states, keys, sim.env_key, total), out


@partial(jax.jit, static_argnames=("items", "n_rounds", "batch_size"))
def _play(items, env, state: PoliciesState, first_round, strategy, *, n_rounds: int, batch_size: int):
    ts = first_round + jnp.arange(n_rounds, dtype=jnp.int32)
    state, out = jax.lax.scan(partial(_round, items, env, batch_size, strategy), state, ts)
    return state, {name: Trace(*fields) for name, fields in out.items()}


def play_rounds(
    policies: Mapping[str, Any],
    env: Environment,
    state: PoliciesState,
    first_round: int | Int[Array, ""],
    n_rounds: int,
    batch_size: int,
    strategy: Strategy = ClassicBandit(),
) -> tuple[PoliciesState, dict[str, Trace]]:
    """Play rounds ``first_round .. first_round + n_rounds - 1`` of ``policies`` from ``state`` (one
    jitted ``lax.scan``); chained calls equal one call over all the rounds."""
    _check_sizes(n_rounds, batch_size)
    _check_strategy(strategy)
    items = _items(policies)
    return _play(
        items, env, state, jnp.int32(first_round), strategy, n_rounds=n_rounds, batch_size=batch_size
    )


def simulate_policies(
    policies: Mapping[str, Any],
    env: Environment,
    key: PRNGKeyArray,
    n_rounds: int,
    batch_size: int,
    n_actions: int | None = None,
    strategy: Strategy = ClassicBandit(),
    *,
    init_data: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Trace]:
    """One simulated experiment of any policies: one :class:`Trace` per policy name, plus ``"oracle"``.

    Every round, :func:`round_draws` gives the contexts and every row's and action's reward (drawn by
    the policies' shared ``likelihood``); each policy predicts with
    :func:`bandits_jax._bandit.predict_step` and updates on the rewards of its choices with
    ``policy.update`` (its key advancing as the object API's does), so all of them play the same
    rows and reward draws. Policy ``name`` plays with :func:`policy_key` ``(key, name)``.

    Examples:
        >>> import jax
        >>> from bandits_jax.policies import LinearTS, Uniform
        >>> env = LogisticEnv.random(3, 2, key=jax.random.key(0))
        >>> out = simulate_policies({"lin": LinearTS(3), "uniform": Uniform()}, env, jax.random.key(1), 4, 8)
        >>> sorted(out), out["lin"].cumulative_regret.shape
        (['lin', 'oracle', 'uniform'], (4,))
    """
    _check_sizes(n_rounds, batch_size)
    _check_strategy(strategy)
    state = init_policies(policies, env, key, n_actions, init_data=init_data)
    return play_rounds(policies, env, state, 0, n_rounds, batch_size, strategy)[1]


# The CMAB and its baselines, as the generic simulation's players.
def _legacy_items(config: CmabConfig):
    policy = BnnTS.from_config(config)
    if config.decay_factor is not None:
        policy = Forgetting(policy)
    return (("policy", policy), ("random", Uniform()), ("smab", BetaBernoulli()))


_LEGACY_ORDER = ("policy", "random", ORACLE, "smab")


def _legacy_state(key):
    """``(keys by name, env_key)`` of the documented legacy schedule."""
    policy_key_, smab_key, env_key = jax.random.split(key, 3)
    return {"policy": policy_key_, "random": jax.random.fold_in(key, 1), "smab": smab_key}, env_key


def _to_generic(s: SimulationState) -> PoliciesState:
    states = {"policy": s.cmab, "random": s.random, "smab": s.smab}
    keys = {"policy": s.policy_key, "random": s.random_key, "smab": s.smab_key}
    return PoliciesState(states, keys, s.env_key, {n: s.total_regret[i] for i, n in enumerate(_LEGACY_ORDER)})


def _from_generic(g: PoliciesState) -> SimulationState:
    total = jnp.stack([g.total_regret[n] for n in _LEGACY_ORDER])
    return SimulationState(
        g.states["policy"],
        g.states["smab"],
        g.keys["policy"],
        g.keys["smab"],
        g.env_key,
        total,
        g.states["random"],
        g.keys["random"],
    )


def _legacy_result(traces: Mapping[str, Trace]) -> SimulationResult:
    return SimulationResult(
        traces["policy"], traces["random"], traces[ORACLE], traces["smab"], traces["policy"].update_ok
    )


def _prior(config: CmabConfig, prior_mu, prior_sigma) -> dict[str, Any]:
    """The CMAB policy's ``init`` data: the prior (``prior_mu`` / ``prior_sigma`` override the
    config's) and, with forgetting, ``decay_factor``."""
    prior = {
        "mu": config.mu if prior_mu is None else prior_mu,
        "sigma": config.sigma if prior_sigma is None else prior_sigma,
    }
    # the network options only where set (a sweep turns every value into per-run data)
    if config.use_layerwise_scaling:
        prior["use_layerwise_scaling"] = True
    if config.bias_std is not None:
        prior["bias_std"] = config.bias_std
    if config.decay_factor is not None:
        prior["decay_factor"] = config.decay_factor
    return prior


def init_simulation(
    config: CmabConfig,
    env: Environment,
    key: PRNGKeyArray,
    n_actions: int | None = None,
    *,
    prior_mu: float | Float[Array, ""] | None = None,
    prior_sigma: float | Float[Array, ""] | None = None,
) -> SimulationState:
    """Cold start of a simulation of the CMAB and its baselines: :func:`bandits_jax.core.init`, with
    the prior's ``mu`` / ``sigma`` replaced where given (they may be traced values)."""
    n_actions = _check_problem(config, env, n_actions)
    keys, env_key = _legacy_state(key)
    items = _legacy_items(config)
    init_data = {"policy": _prior(config, prior_mu, prior_sigma)}
    return _from_generic(_init_states(items, n_actions, init_data, key, env_key, keys))


@partial(jax.jit, static_argnames=("config", "n_rounds", "batch_size"))
def run_rounds(
    config: CmabConfig,
    env: Environment,
    state: SimulationState,
    first_round: int | Int[Array, ""],
    n_rounds: int,
    batch_size: int,
    strategy: Strategy = ClassicBandit(),
) -> tuple[SimulationState, SimulationResult]:
    """Play rounds ``first_round .. first_round + n_rounds - 1`` from ``state`` (one ``lax.scan``).

    Chaining calls over consecutive round ranges gives exactly the result of one call over all of
    them (concatenate the traces along the round axis); ``first_round`` is traced, so every chunk of
    the same length shares one compiled program.
    """
    g, traces = _play(
        _legacy_items(config),
        env,
        _to_generic(state),
        first_round,
        strategy,
        n_rounds=n_rounds,
        batch_size=batch_size,
    )
    return _from_generic(g), _legacy_result(traces)


def simulate(
    config: CmabConfig | Mapping[str, Any],
    env: Environment,
    key: PRNGKeyArray,
    n_rounds: int,
    batch_size: int,
    n_actions: int | None = None,
    strategy: Strategy = ClassicBandit(),
    *,
    prior_mu: float | Float[Array, ""] | None = None,
    prior_sigma: float | Float[Array, ""] | None = None,
    init_data: Mapping[str, Mapping[str, Any]] | None = None,
) -> SimulationResult | dict[str, Trace]:
    """One simulated experiment: ``n_rounds`` rounds of predict -> reward draw -> update.

    With a mapping of policies as first argument this is :func:`simulate_policies` (one
    :class:`Trace` per name, plus the oracle). With a :class:`~bandits_jax.config.CmabConfig` it
    plays the CMAB (:class:`~bandits_jax.policies.BnnTS`) as ``policy``, with
    :class:`~bandits_jax.policies.Uniform` as ``random`` and
    :class:`~bandits_jax.policies.BetaBernoulli` as ``smab``, on the same rows and reward draws. Pure:
    the cold start is :func:`init_simulation` and the rounds one jitted :func:`run_rounds` scan, so
    it works under ``jax.jit`` and ``jax.vmap`` (which is what :func:`sweep` does).

    Args:
        config: the CMAB's static configuration; ``config.n_features`` must equal the environment's.
            Or a mapping name -> policy.
        env: an :class:`Environment`.
        key: PRNG key of the whole experiment (see the module docstring for how it is split).
        n_rounds, batch_size: rounds, and rows (decisions) per round.
        n_actions: defaults to ``env.n_actions``; when given it must match it.
        strategy: action selection of every policy.
        prior_mu, prior_sigma: override ``config.mu`` / ``config.sigma`` (may be traced).
        init_data: with a mapping of policies, each one's ``init`` keyword arguments by name.

    Returns:
        A :class:`SimulationResult` (or a dict of :class:`Trace`) with a leading round axis.

    Examples:
        >>> import jax
        >>> from bandits_jax.config import CmabConfig
        >>> env = LogisticEnv.random(3, 2, key=jax.random.key(0))
        >>> out = simulate(CmabConfig(n_features=3, num_steps=10), env, jax.random.key(1), 3, 4)
        >>> out.oracle.cumulative_regret.tolist()
        [0.0, 0.0, 0.0]
    """
    if isinstance(config, Mapping):
        if prior_mu is not None or prior_sigma is not None:
            raise TypeError("prior_mu / prior_sigma go with a CmabConfig; pass init_data with policies")
        return simulate_policies(
            config, env, key, n_rounds, batch_size, n_actions, strategy, init_data=init_data
        )
    if init_data is not None:
        raise TypeError(
            "init_data goes with a mapping of policies; pass prior_mu / prior_sigma with a CmabConfig"
        )
    _check_sizes(n_rounds, batch_size)
    _check_strategy(strategy)
    state = init_simulation(config, env, key, n_actions, prior_mu=prior_mu, prior_sigma=prior_sigma)
    return run_rounds(config, env, state, 0, n_rounds, batch_size, strategy)[1]


# ---------------------------------------------------------------------------------- checks
def _check_problem(config: CmabConfig, env: Environment, n_actions: int | None) -> int:
    if not isinstance(config, CmabConfig):
        raise TypeError(f"config must be a CmabConfig, got {config!r}")
    if not isinstance(env, Environment):
        raise TypeError(f"env must be a bandits_jax.simulation.Environment, got {env!r}")
    if config.n_features != env.n_features:
        raise ValueError(f"config.n_features is {config.n_features} but the environment has {env.n_features}")
    if n_actions is not None and n_actions != env.n_actions:
        raise ValueError(f"n_actions is {n_actions} but the environment has {env.n_actions} actions")
    return env.n_actions


def _check_sizes(n_rounds, batch_size, names=("n_rounds", "batch_size")) -> None:
    for name, value in zip(names, (n_rounds, batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_strategy(strategy) -> None:
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")


def _config_dict(config: CmabConfig) -> dict[str, Any]:
    """A JSON-friendly view of a configuration (for saved results)."""
    out = dataclasses.asdict(config)
    out["hidden_dim_list"] = list(config.hidden_dim_list)
    out["optimizer_kwargs"] = dict(config.optimizer_kwargs)
    return out
