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
    3)``: contexts and expected rewards from ``env.sample(ctx_key, batch_size)`` and the reward of
    every row and action from ``likelihood.sample(reward_key, expected)`` (for Bernoulli, ``u[i, a]
    < p[i, a]`` with ``u = jax.random.uniform(reward_key, (batch_size, n_actions))``). Each policy's
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

import abc
import dataclasses
import itertools
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Key, PRNGKeyArray, Real

from bandits_jax import core, smab
from bandits_jax._bandit import predict_step
from bandits_jax.config import CmabConfig
from bandits_jax.policies import BetaBernoulli, BnnTS, Feedback, Policy, Uniform
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "ClassificationEnv",
    "Environment",
    "LogisticEnv",
    "MLPEnv",
    "PoliciesState",
    "RoundDraws",
    "SimulationResult",
    "SimulationState",
    "Trace",
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

SKLEARN_DATASETS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
}
_RUNS = "runs"


# ---------------------------------------------------------------------------------- environments
class Environment(eqx.Module):
    """A contextual bandit problem: contexts and each action's expected reward.

    Subclasses implement ``n_actions``, ``n_features``, :meth:`sample_context` and
    :meth:`expected_rewards`. The reward *distribution* is not the environment's: rewards are drawn
    by a likelihood (:mod:`bandits_jax.likelihoods`, the policies' own) given their expected value,
    :meth:`sample_rewards`. ``reward_probs`` is the old name of :meth:`expected_rewards` (for
    Bernoulli rewards the expected reward is the probability of a 1).
    """

    @property
    @abc.abstractmethod
    def n_actions(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_features(self) -> int: ...

    @abc.abstractmethod
    def sample_context(self, key: PRNGKeyArray, n: int) -> Float[Array, "n n_features"]:
        """``n`` i.i.d. contexts."""

    @abc.abstractmethod
    def expected_rewards(self, context: Float[Array, "n n_features"]) -> Float[Array, "n n_actions"]:
        """Each action's expected reward, per row."""

    def reward_probs(self, context: Float[Array, "n n_features"]) -> Float[Array, "n n_actions"]:
        """Alias of :meth:`expected_rewards` (its name before rewards went through a likelihood)."""
        return self.expected_rewards(context)

    def sample_rewards(
        self, key: PRNGKeyArray, context: Float[Array, "n n_features"], likelihood: Any
    ) -> Array:
        """Every action's reward per row, drawn by ``likelihood.sample`` given its expected value."""
        return likelihood.sample(key, self.expected_rewards(context))

    def sample(
        self, key: PRNGKeyArray, n: int
    ) -> tuple[Float[Array, "n n_features"], Float[Array, "n n_actions"]]:
        """Contexts and their expected rewards; ``sample(key, n)[0] == sample_context(key, n)``."""
        context = self.sample_context(key, n)
        return context, self.expected_rewards(context)


class _GaussianContextEnv(Environment):
    """Contexts ``x ~ N(0, I)``; sizes read off the first weight's rows and the last one's columns."""

    @property
    @abc.abstractmethod
    def _layers(self) -> tuple[Array, Array]:
        """The first weight ``(n_features, .)`` and the last ``(., n_actions)``."""

    @property
    def n_actions(self) -> int:
        return self._layers[1].shape[-1]

    @property
    def n_features(self) -> int:
        return self._layers[0].shape[-2]

    def sample_context(self, key, n):
        return jax.random.normal(key, (n, self.n_features), self._layers[0].dtype)


class LogisticEnv(_GaussianContextEnv):
    """Linear logits per action: ``p(x, a) = sigmoid(x @ weight[:, a] + bias[a])``, ``x ~ N(0, I)``.

    A linear Bayesian network (``hidden_dim_list=()``) is well specified here.

    Examples:
        >>> import jax
        >>> env = LogisticEnv.random(n_features=4, n_actions=3, key=jax.random.key(0))
        >>> env.reward_probs(env.sample_context(jax.random.key(1), 5)).shape
        (5, 3)
    """

    weight: Float[Array, "n_features n_actions"]
    bias: Float[Array, " n_actions"]

    @property
    def _layers(self) -> tuple[Array, Array]:
        return self.weight, self.weight

    def expected_rewards(self, context):
        return jax.nn.sigmoid(context @ self.weight + self.bias)

    @classmethod
    def random(
        cls,
        n_features: int,
        n_actions: int,
        *,
        key: PRNGKeyArray,
        logit_scale: float = 2.0,
        bias_scale: float = 0.5,
    ) -> LogisticEnv:
        """Weights ``N(0, logit_scale**2 / n_features)`` (so each logit has standard deviation
        ``logit_scale``) and biases ``N(0, bias_scale**2)``. Works under ``jax.vmap`` over keys."""
        w_key, b_key = jax.random.split(key)
        weight = jax.random.normal(w_key, (n_features, n_actions)) * (logit_scale / math.sqrt(n_features))
        return cls(weight, jax.random.normal(b_key, (n_actions,)) * bias_scale)


class MLPEnv(_GaussianContextEnv):
    """Non-linear logits: a random one-hidden-layer tanh network, ``x ~ N(0, I)``.

    ``p(x, a) = sigmoid(tanh(x @ w1 + b1) @ w2[:, a] + b2[a])``. The hidden pre-activations have
    standard deviation 2, well into tanh's curved range, so a linear model is misspecified: an
    environment on which to compare ``hidden_dim_list`` settings (with few rounds, the linear model's
    fewer weights can still win; measure).

    Examples:
        >>> import jax
        >>> env = MLPEnv.random(n_features=4, n_actions=3, key=jax.random.key(0), hidden=8)
        >>> env.w1.shape, env.w2.shape
        ((4, 8), (8, 3))
    """

    w1: Float[Array, "n_features hidden"]
    b1: Float[Array, " hidden"]
    w2: Float[Array, "hidden n_actions"]
    b2: Float[Array, " n_actions"]

    @property
    def _layers(self) -> tuple[Array, Array]:
        return self.w1, self.w2

    def expected_rewards(self, context):
        return jax.nn.sigmoid(jnp.tanh(context @ self.w1 + self.b1) @ self.w2 + self.b2)

    @classmethod
    def random(
        cls,
        n_features: int,
        n_actions: int,
        *,
        key: PRNGKeyArray,
        hidden: int = 16,
        input_scale: float = 2.0,
        logit_scale: float = 3.0,
    ) -> MLPEnv:
        """Hidden pre-activations with standard deviation ``input_scale``, output weights
        ``N(0, logit_scale**2 / hidden)``. Works under ``jax.vmap`` over keys."""
        k1, k2, k3, k4 = jax.random.split(key, 4)
        return cls(
            jax.random.normal(k1, (n_features, hidden)) * (input_scale / math.sqrt(n_features)),
            jax.random.normal(k2, (hidden,)) * 0.5,
            jax.random.normal(k3, (hidden, n_actions)) * (logit_scale / math.sqrt(hidden)),
            jax.random.normal(k4, (n_actions,)) * 0.5,
        )


class ClassificationEnv(Environment):
    """A labelled data set as a bandit: context = a row's features, action = a class guess,
    reward 1 exactly when the guess is the row's label.

    Contexts are rows drawn uniformly with replacement. :meth:`sample` knows each drawn row's
    label; :meth:`expected_rewards` of an arbitrary context uses the label of its nearest row (exact for
    the data set's own rows, ``O(n x n_samples)``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> env = ClassificationEnv.from_arrays(jnp.eye(3), jnp.array([2, 0, 1]), standardize=False)
        >>> env.reward_probs(jnp.eye(3)[:1]).tolist()
        [[0.0, 0.0, 1.0]]
    """

    features: Float[Array, "n_samples n_features"]
    labels: Int[Array, " n_samples"]
    n_classes: int = eqx.field(static=True)

    @property
    def n_actions(self) -> int:
        return self.n_classes

    @property
    def n_features(self) -> int:
        return self.features.shape[-1]

    def _rows(self, key, n):
        return jax.random.randint(key, (n,), 0, self.features.shape[-2])

    def sample_context(self, key, n):
        return self.features[self._rows(key, n)]

    def sample(self, key, n):
        rows = self._rows(key, n)
        return self.features[rows], jax.nn.one_hot(
            self.labels[rows], self.n_classes, dtype=self.features.dtype
        )

    def expected_rewards(self, context):
        dist = jnp.sum(jnp.square(context[:, None, :] - self.features[None, :, :]), axis=-1)
        labels = self.labels[jnp.argmin(dist, axis=1)]
        return jax.nn.one_hot(labels, self.n_classes, dtype=self.features.dtype)

    @classmethod
    def from_arrays(
        cls,
        features: ArrayLike | Sequence[Any],
        labels: ArrayLike | Sequence[Any],
        *,
        standardize: bool = True,
    ) -> ClassificationEnv:
        """Build from ``(n_samples, n_features)`` features and any hashable labels.

        Labels are mapped to ``0..n_classes-1`` in sorted order; ``standardize`` scales every column
        to mean 0 and standard deviation 1 (constant columns become 0).
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"features must be a non-empty 2-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        classes, y = np.unique(np.asarray(labels), return_inverse=True)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must have one entry per row: {y.shape[0]} labels, {x.shape[0]} rows")
        if standardize:
            std = x.std(axis=0)
            x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
        return cls(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), len(classes))


def load_sklearn(name: str, *, standardize: bool = True) -> ClassificationEnv:
    """A :class:`ClassificationEnv` from one of scikit-learn's bundled data sets (no download).

    Args:
        name: ``"digits"`` (64 features, 10 classes), ``"wine"`` (13, 3), ``"iris"`` (4, 3) or
            ``"breast_cancer"`` (30, 2).
        standardize: scale every feature column to mean 0, standard deviation 1.

    Raises:
        ValueError: an unknown name.
        ImportError: scikit-learn is not installed (it is the optional ``sim`` extra).

    Examples:
        >>> env = load_sklearn("wine")
        >>> env.n_features, env.n_actions
        (13, 3)
    """
    if name not in SKLEARN_DATASETS:
        raise ValueError(
            f"unknown scikit-learn data set {name!r}; expected one of {sorted(SKLEARN_DATASETS)}"
        )
    try:
        from sklearn import datasets
    except ImportError as err:
        raise ImportError(
            f"the {name!r} environment needs scikit-learn, an optional extra: "
            "pip install 'bandits_jax[sim]' (or pip install scikit-learn)"
        ) from err
    data = getattr(datasets, SKLEARN_DATASETS[name])()
    return ClassificationEnv.from_arrays(data.data, data.target, standardize=standardize)


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
    expected rewards from ``env.sample(ctx_key, batch_size)``, and the reward of every row and
    action from ``likelihood.sample(reward_key, expected)``."""
    ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
    context, expected = env.sample(ctx_key, batch_size)
    return RoundDraws(context, expected, likelihood.sample(reward_key, expected))


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
    return (("policy", BnnTS.from_config(config)), ("random", Uniform()), ("smab", BetaBernoulli()))


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
    return {
        "mu": config.mu if prior_mu is None else prior_mu,
        "sigma": config.sigma if prior_sigma is None else prior_sigma,
    }


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


def _sweep_run_state(items, legacy, env, key, data, n_actions):
    if legacy:
        keys, env_key = _legacy_state(key)
        return _init_states(items, n_actions, data, key, env_key, keys)
    return _init_states(items, n_actions, data, key, jax.random.split(key)[0])


@partial(jax.jit, static_argnames=("items", "legacy", "n_actions", "mesh", "env_axis"))
def _sweep_init(items, env, keys, data, *, legacy, n_actions, mesh, env_axis):
    def local(env, keys, data):
        init = partial(_sweep_run_state, items, legacy, n_actions=n_actions)
        return jax.vmap(init, in_axes=(env_axis, 0, 0))(env, keys, data)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(_RUNS)), out_specs=P(_RUNS))(
        env, keys, data
    )


@partial(jax.jit, static_argnames=("items", "n_rounds", "batch_size", "mesh", "env_axis"))
def _sweep_rounds(items, env, state, first_round, strategy, *, n_rounds, batch_size, mesh, env_axis):
    def local(env, state, first_round, strategy):
        body = partial(_play, items, n_rounds=n_rounds, batch_size=batch_size)
        return jax.vmap(lambda e, s: body(e, s, first_round, strategy), in_axes=(env_axis, 0))(env, state)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(), P()), out_specs=P(_RUNS))(
        env, state, first_round, strategy
    )


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
    # Padding runs repeat the last run: valid inputs whose results are dropped.
    take = np.minimum(np.arange(padded), n_runs - 1)
    runs = NamedSharding(mesh, P(_RUNS))
    keys = _put_keys(keys[take], runs)
    data = _put(jax.tree.map(lambda x: x[take], data), runs)
    if env_axis == 0:
        env = _put(jax.tree.map(lambda x: x[take], env), runs)
    else:
        env = _put(env, NamedSharding(mesh, P()))

    state = _sweep_init(
        items, env, keys, data, legacy=legacy, n_actions=n_actions, mesh=mesh, env_axis=env_axis
    )
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


# ---------------------------------------------------------------------------------- plotting
def plot_regret(
    result: SimulationResult | Mapping[str, Trace],
    ax=None,
    *,
    policies: Sequence[str] | None = None,
    label: str = "",
    band: tuple[float, float] = (10.0, 90.0),
    title: str = "",
):
    """Mean cumulative regret over runs, with a percentile ``band`` over runs, one curve per policy.

    Args:
        result: a sweep's result (leading run axis): a :class:`SimulationResult` or a dict of
            :class:`Trace` by policy name.
        ax: matplotlib axes to draw on; default a new figure (matplotlib's object API, so no pyplot
            state and no backend change), reachable as ``ax.figure``.
        policies: which traces to draw (default every policy but the oracle); the oracle is drawn
            as the zero line.
        label: prefix of the legend entries (e.g. the setting of this sweep).

    Returns:
        The axes.

    Raises:
        ImportError: matplotlib is not installed (it is the optional ``sim`` extra).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib, an optional extra: pip install 'bandits_jax[sim]'"
        ) from err
    names = {"policy": "Bayesian-NN CMAB", "random": "uniform random", "smab": "sMAB (no context)"}
    if ax is None:
        ax = Figure(figsize=(6.4, 4.0), layout="constrained").add_subplot()
    traces = result._asdict() if isinstance(result, SimulationResult) else dict(result)
    if policies is None:
        policies = (
            ("policy", "random", "smab")
            if isinstance(result, SimulationResult)
            else [n for n in traces if n != ORACLE]
        )
    for name in policies:
        curves = np.asarray(traces[name].cumulative_regret)
        rounds = np.arange(1, curves.shape[1] + 1)
        (line,) = ax.plot(rounds, curves.mean(axis=0), label=f"{label}{names.get(name, name)}")
        lo, hi = np.percentile(curves, band, axis=0)
        ax.fill_between(rounds, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="k", linewidth=0.8, linestyle="--", label="oracle" if not label else None)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative expected regret")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax


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
