"""Simulated bandit experiments as compiled programs: environments, ``simulate`` and ``sweep``.

An *environment* is an equinox module (a pytree) with ``sample_context(key, n) -> (n, n_features)``
and ``reward_probs(context) -> (n, n_actions)``. :func:`simulate` runs one experiment,
predict -> reward draw -> update for every round, as one ``lax.scan`` over the functional core
(:func:`bandits_jax.core.predict` and :func:`bandits_jax.core.update`: the same code the object API
runs, not a copy). Every round it also plays three baselines on the same contexts and the same
reward draws (common random numbers): uniform random, the oracle (the best action, expected regret
0) and a context-free Beta-Bernoulli Thompson sampler (:mod:`bandits_jax.smab`), so a result shows
what the context buys. :func:`sweep` runs many experiments at once: ``vmap`` over seeds and over
numeric settings, the run axis sharded over every device.

Regret:
    Per round, the expected regret of a policy is ``sum_i max_a p(x_i, a) - p(x_i, a_i)`` over the
    round's ``batch_size`` rows, with ``p = env.reward_probs``; ``cumulative_regret`` is its running
    sum over rounds.

Keys:
    ``policy_key, smab_key, env_key = jax.random.split(key, 3)``. Round ``t`` uses
    ``ctx_key, reward_key, random_key = jax.random.split(jax.random.fold_in(env_key, t), 3)``:
    contexts and probabilities from ``env.sample(ctx_key, batch_size)``, one uniform per row and
    action ``u = jax.random.uniform(reward_key, (batch_size, n_actions))`` (the reward of action
    ``a`` in row ``i`` is ``u[i, a] < p[i, a]``, shared by every policy), and the random baseline's
    actions from ``random_key``. The policy's key advances exactly as
    :class:`~bandits_jax.cmab.CmabBernoulli`'s does (``policy_key, sub = split(policy_key)``
    before ``predict`` and again before ``update``), and the sMAB's as
    :class:`~bandits_jax.smab.SmabBernoulli`'s, so a model whose ``_key`` is ``policy_key`` replays
    a simulation exactly.

What a sweep can vary:
    Settings that live in the state are traced, so one compiled program serves every value: the
    seed, the prior's ``prior_mu`` and ``prior_sigma`` (the cold-start posterior is the prior; they
    override ``config.mu`` / ``config.sigma``), and the environment itself (``env_axis=0``: one
    environment per run). Everything in the static :class:`~bandits_jax.config.CmabConfig` (step
    size, ``num_steps``, hidden widths, prior family) is compiled in, since the optimizer is built
    from it; :func:`sweep_configs` sweeps those with a Python loop over compiled programs, one per
    configuration.

Devices:
    :func:`sweep` lays the run axis over a 1-D :class:`jax.sharding.Mesh` of ``devices`` (default
    every device, ``jax.devices()``), padding the runs to a multiple of the device count, and runs
    the vectorised program on each device's share with :func:`jax.shard_map`. Runs are independent,
    so the results equal one device's for the same keys (tested on fake CPU devices with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``).

Multi-host:
    JAX's own distributed runtime does it; nothing here is host-aware. Start the same script on every
    host, call ``jax.distributed.initialize()`` first (with ``coordinator_address``,
    ``num_processes`` and ``process_id``, or nothing on a cluster JAX detects, e.g. SLURM or Cloud
    TPU), then call :func:`sweep` with the same arguments on every process. ``jax.devices()`` then
    lists the devices of all hosts, so the default mesh spans them and each host runs its share. The
    results are global arrays of which each process holds its own runs: gather them with
    ``jax.experimental.multihost_utils.process_allgather(result)`` before saving from process 0.
    (Only the single-host path is tested here.)

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
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Key, PRNGKeyArray

from bandits_jax import core, smab
from bandits_jax.config import CmabConfig
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "ClassificationEnv",
    "Environment",
    "LogisticEnv",
    "MLPEnv",
    "SimulationResult",
    "SimulationState",
    "Trace",
    "grid",
    "init_simulation",
    "load_sklearn",
    "plot_regret",
    "run_rounds",
    "simulate",
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
    """A contextual Bernoulli bandit problem: contexts and each action's reward probability."""

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
    def reward_probs(self, context: Float[Array, "n n_features"]) -> Float[Array, "n n_actions"]:
        """Probability that each action's reward is 1, per row."""

    def sample(
        self, key: PRNGKeyArray, n: int
    ) -> tuple[Float[Array, "n n_features"], Float[Array, "n n_actions"]]:
        """Contexts and their reward probabilities; ``sample(key, n)[0] == sample_context(key, n)``."""
        context = self.sample_context(key, n)
        return context, self.reward_probs(context)


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

    def reward_probs(self, context):
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

    def reward_probs(self, context):
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
    label; :meth:`reward_probs` of an arbitrary context uses the label of its nearest row (exact for
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

    def reward_probs(self, context):
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
class Trace(NamedTuple):
    """One policy's record of a simulation (a sweep adds a leading run axis to every field)."""

    actions: Int[Array, "n_rounds batch_size"]
    rewards: Int[Array, "n_rounds batch_size"]
    regret: Float[Array, " n_rounds"]
    cumulative_regret: Float[Array, " n_rounds"]


class SimulationResult(NamedTuple):
    """The CMAB ``policy`` and the three baselines, all played on the same contexts and reward draws.

    ``update_ok[t, a]`` is False where action ``a``'s SVI fit of round ``t`` went non-finite (see
    :class:`~bandits_jax.core.UpdateInfo`).
    """

    policy: Trace
    random: Trace
    oracle: Trace
    smab: Trace
    update_ok: Bool[Array, "n_rounds n_actions"]


class SimulationState(NamedTuple):
    """What a simulation carries from round to round; running sums of regret in the order
    ``(policy, random, oracle, smab)``."""

    cmab: core.CmabState
    smab: smab.SmabState
    policy_key: PRNGKeyArray
    smab_key: PRNGKeyArray
    env_key: PRNGKeyArray
    total_regret: Float[Array, "4"]


def init_simulation(
    config: CmabConfig,
    env: Environment,
    key: PRNGKeyArray,
    n_actions: int | None = None,
    *,
    prior_mu: float | Float[Array, ""] | None = None,
    prior_sigma: float | Float[Array, ""] | None = None,
) -> SimulationState:
    """Cold start of a simulation: :func:`bandits_jax.core.init`, with the prior's ``mu`` / ``sigma``
    replaced where given (they may be traced values: this is how :func:`sweep` varies them)."""
    n_actions = _check_problem(config, env, n_actions)
    state = core.init(config, n_actions)
    if prior_mu is not None:
        state = state._replace(loc=jax.tree.map(lambda x: jnp.full_like(x, prior_mu), state.loc))
    if prior_sigma is not None:
        state = state._replace(scale=jax.tree.map(lambda x: jnp.full_like(x, prior_sigma), state.scale))
    policy_key, smab_key, env_key = jax.random.split(key, 3)
    dtype = jax.tree.leaves(state.loc)[0].dtype
    return SimulationState(state, smab.init(n_actions), policy_key, smab_key, env_key, jnp.zeros((4,), dtype))


def _round(config: CmabConfig, env: Environment, batch_size: int, strategy: Strategy, carry, t):
    sim: SimulationState = carry
    ctx_key, reward_key, random_key = jax.random.split(jax.random.fold_in(sim.env_key, t), 3)
    context, probs = env.sample(ctx_key, batch_size)
    n_actions = probs.shape[-1]
    outcomes = (jax.random.uniform(reward_key, probs.shape, probs.dtype) < probs).astype(jnp.int32)
    best = jnp.max(probs, axis=-1)
    rows = jnp.arange(batch_size)

    policy_key, predict_key = jax.random.split(sim.policy_key)
    chosen = core.predict(sim.cmab, context, predict_key, strategy).actions
    policy_key, update_key = jax.random.split(policy_key)
    rewards = outcomes[rows, chosen]
    cmab_state, info = core.update(
        config, sim.cmab, context, chosen, rewards, update_key, rows_per_action=batch_size
    )

    smab_key, smab_predict_key = jax.random.split(sim.smab_key)
    smab_chosen, _ = smab.predict(sim.smab, smab_predict_key, strategy, batch_size)
    smab_state = smab.update(sim.smab, smab_chosen, outcomes[rows, smab_chosen])

    all_actions = jnp.stack(
        [
            chosen,
            jax.random.randint(random_key, (batch_size,), 0, n_actions),
            jnp.argmax(probs, axis=-1),
            smab_chosen,
        ]
    ).astype(jnp.int32)
    all_rewards = outcomes[rows[None, :], all_actions]
    regret = jnp.sum(best[None, :] - probs[rows[None, :], all_actions], axis=1)
    regret = regret.astype(sim.total_regret.dtype)  # an environment of another float width
    total = sim.total_regret + regret
    new = SimulationState(cmab_state, smab_state, policy_key, smab_key, sim.env_key, total)
    return new, (all_actions, all_rewards, regret, total, info.ok)


def _traces(out) -> SimulationResult:
    actions, rewards, regret, total, ok = out  # leading round axis; policies on axis 1
    traces = [Trace(actions[:, i], rewards[:, i], regret[:, i], total[:, i]) for i in range(4)]
    return SimulationResult(*traces, ok)


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
    ts = first_round + jnp.arange(n_rounds, dtype=jnp.int32)
    state, out = jax.lax.scan(partial(_round, config, env, batch_size, strategy), state, ts)
    return state, _traces(out)


def simulate(
    config: CmabConfig,
    env: Environment,
    key: PRNGKeyArray,
    n_rounds: int,
    batch_size: int,
    n_actions: int | None = None,
    strategy: Strategy = ClassicBandit(),
    *,
    prior_mu: float | Float[Array, ""] | None = None,
    prior_sigma: float | Float[Array, ""] | None = None,
) -> SimulationResult:
    """One simulated experiment: ``n_rounds`` rounds of predict -> reward draw -> update.

    Each round draws ``batch_size`` contexts, lets the CMAB choose an action per row with
    :func:`bandits_jax.core.predict`, draws the Bernoulli rewards of the chosen actions and updates
    with :func:`bandits_jax.core.update` (``rows_per_action=batch_size``). The random, oracle and
    sMAB baselines play the same rows and reward draws. Pure: the cold start is
    :func:`init_simulation` and the rounds one jitted :func:`run_rounds` scan, so it works under
    ``jax.jit`` and ``jax.vmap`` (which is what :func:`sweep` does).

    Args:
        config: the CMAB's static configuration; ``config.n_features`` must equal the environment's.
        env: an :class:`Environment`.
        key: PRNG key of the whole experiment (see the module docstring for how it is split).
        n_rounds, batch_size: rounds, and rows (decisions) per round.
        n_actions: defaults to ``env.n_actions``; when given it must match it.
        strategy: action selection of the CMAB and of the sMAB baseline.
        prior_mu, prior_sigma: override ``config.mu`` / ``config.sigma`` (may be traced).

    Returns:
        A :class:`SimulationResult` whose traces have a leading round axis.

    Examples:
        >>> import jax
        >>> from bandits_jax.config import CmabConfig
        >>> env = LogisticEnv.random(3, 2, key=jax.random.key(0))
        >>> out = simulate(CmabConfig(n_features=3, num_steps=10), env, jax.random.key(1), 3, 4)
        >>> out.oracle.cumulative_regret.tolist()
        [0.0, 0.0, 0.0]
    """
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


def _per_run(name: str, value, default: float, n_runs: int) -> np.ndarray:
    arr = np.asarray(default if value is None else value, np.float32)
    if arr.shape not in ((), (n_runs,)):
        raise ValueError(
            f"{name} must be a scalar or have one value per run ({n_runs}), got shape {arr.shape}"
        )
    return np.array(np.broadcast_to(arr, (n_runs,)))


@partial(jax.jit, static_argnames=("config", "n_actions", "mesh", "env_axis"))
def _sweep_init(config, env, keys, mu, sigma, *, n_actions, mesh, env_axis):
    def local(env, keys, mu, sigma):
        init = partial(init_simulation, config, n_actions=n_actions)
        return jax.vmap(
            lambda e, k, m, s: init(e, k, prior_mu=m, prior_sigma=s), in_axes=(env_axis, 0, 0, 0)
        )(env, keys, mu, sigma)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(
        local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(_RUNS), P(_RUNS)), out_specs=P(_RUNS)
    )(env, keys, mu, sigma)


@partial(jax.jit, static_argnames=("config", "n_rounds", "batch_size", "mesh", "env_axis"))
def _sweep_rounds(config, env, state, first_round, strategy, *, n_rounds, batch_size, mesh, env_axis):
    def local(env, state, first_round, strategy):
        body = partial(run_rounds, config, n_rounds=n_rounds, batch_size=batch_size, strategy=strategy)
        return jax.vmap(lambda e, s: body(e, s, first_round), in_axes=(env_axis, 0))(env, state)

    env_spec = P() if env_axis is None else P(_RUNS)
    return jax.shard_map(local, mesh=mesh, in_specs=(env_spec, P(_RUNS), P(), P()), out_specs=P(_RUNS))(
        env, state, first_round, strategy
    )


def sweep(
    config: CmabConfig,
    env: Environment,
    keys: Key[Array, " n_runs"] | Int[ArrayLike, " n_runs"] | Sequence[int],
    n_rounds: int,
    batch_size: int,
    n_actions: int | None = None,
    strategy: Strategy = ClassicBandit(),
    *,
    prior_mu: ArrayLike | Sequence[float] | None = None,
    prior_sigma: ArrayLike | Sequence[float] | None = None,
    env_axis: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    chunk_rounds: int | None = None,
    callback: Callable[[int], Any] | None = None,
) -> SimulationResult:
    """Many independent experiments as one compiled, vectorised program: :func:`simulate` per run.

    Args:
        config, n_rounds, batch_size, n_actions, strategy: as in :func:`simulate`, shared by all runs.
        env: shared by all runs, or with a leading run axis on every leaf if ``env_axis=0`` (e.g.
            ``jax.vmap(lambda k: LogisticEnv.random(5, 3, key=k))(env_keys)``).
        keys: one PRNG key per run, or integer seeds (run ``i`` then uses ``jax.random.key(seeds[i])``).
        prior_mu, prior_sigma: a scalar or one value per run (traced: no recompilation per value);
            default ``config.mu`` / ``config.sigma``.
        devices: the devices to shard the run axis over (default ``jax.devices()``); runs are
            padded to a multiple of their number and the padding is dropped from the result.
        chunk_rounds: play the rounds in chunks of this many (one compiled program per chunk
            length; a shorter last chunk compiles once more) and call ``callback(rounds_done)``
            after each, e.g. to move a progress bar. The result equals one unchunked scan.
        callback: see ``chunk_rounds``.

    Returns:
        A :class:`SimulationResult` with a leading run axis on every field, then the round axis.

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
    n_actions = _check_problem(config, env, n_actions)
    mu = _per_run("prior_mu", prior_mu, config.mu, n_runs)
    sigma = _per_run("prior_sigma", prior_sigma, config.sigma, n_runs)
    if chunk_rounds is None:
        chunk_rounds = n_rounds
    _check_sizes(chunk_rounds, 1, names=("chunk_rounds", "batch_size"))

    devices = list(jax.devices() if devices is None else devices)
    mesh = Mesh(np.asarray(devices), (_RUNS,))
    padded = -(-n_runs // len(devices)) * len(devices)
    # Padding runs repeat the last run: valid inputs whose results are dropped.
    take = np.minimum(np.arange(padded), n_runs - 1)
    runs = NamedSharding(mesh, P(_RUNS))
    keys, mu, sigma = (jax.device_put(x[take], runs) for x in (keys, mu, sigma))
    if env_axis == 0:
        env = jax.device_put(jax.tree.map(lambda x: x[take], env), runs)
    else:
        env = jax.device_put(env, NamedSharding(mesh, P()))

    state = _sweep_init(config, env, keys, mu, sigma, n_actions=n_actions, mesh=mesh, env_axis=env_axis)
    chunks = []
    for start in range(0, n_rounds, chunk_rounds):
        length = min(chunk_rounds, n_rounds - start)
        state, out = _sweep_rounds(
            config,
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
    return jax.tree.map(lambda x: x[:n_runs], out) if padded != n_runs else out


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
    result: SimulationResult,
    ax=None,
    *,
    policies: Sequence[str] = ("policy", "random", "smab"),
    label: str = "",
    band: tuple[float, float] = (10.0, 90.0),
    title: str = "",
):
    """Mean cumulative regret over runs, with a percentile ``band`` over runs, one curve per policy.

    Args:
        result: a sweep's result (leading run axis).
        ax: matplotlib axes to draw on; default a new figure (matplotlib's object API, so no pyplot
            state and no backend change), reachable as ``ax.figure``.
        policies: which traces to draw; the oracle is drawn as the zero line.
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
    for name in policies:
        curves = np.asarray(getattr(result, name).cumulative_regret)
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
