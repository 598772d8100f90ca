"""Thompson sampling with Bayesian-MLP arms fitted by streaming mean-field SVI (the library's heart).

Every action is a Bayesian MLP (:mod:`bandits_jax.bnn`) with a mean-field Normal posterior; an
update is one streaming SVI fit per action on its own rows (:func:`bandits_jax.inference.fit`:
``lax.scan`` over steps, ``vmap`` over actions), whose prior is the previous posterior. The
policy's static settings are the network's structure, the prior *family* and the SVI settings;
the prior's location and scale are data given to :meth:`BnnTS.init`, so a new ``sigma`` compiles
nothing and a sweep over priors is a ``vmap`` over them.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import BnnTS, Feedback
    >>> policy = BnnTS(Network(n_features=2), svi=SviSettings(num_steps=10))
    >>> state = policy.init(3, sigma=1.0)
    >>> pred = policy.predict(jax.random.key(0), state, jnp.ones((4, 2)))
    >>> pred.actions.shape, pred.probs.shape
    ((4,), (4, 3))
    >>> fb = Feedback(jnp.ones((4, 2)), pred.actions, jnp.array([1, 0, 1, 1]), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(1), state, fb)
    >>> int(state.stats.n_successes.sum() + state.stats.n_failures.sum())
    10
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax import _random
from bandits_jax.bnn import MLP, init_mlp, logits_from_noise, n_units
from bandits_jax.config import CmabConfig, Network, SviSettings
from bandits_jax.likelihoods import (
    Bernoulli,
    BernoulliStats,
    Gaussian,
    GaussianStats,
    SoftBernoulli,
    SoftBernoulliStats,
)
from bandits_jax.policies import replay
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo, select, stats_of
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["BnnReplayState", "BnnState", "BnnTS", "Network", "SviSettings"]


class BnnState(NamedTuple):
    """Every action's mean-field Normal posterior (``loc``, ``scale``: MLP pytrees), which is also
    the prior of its next update (a Student-t of that location and scale for ``dist_type=
    "studentt"``), and the likelihood's counters; leading action axis on every leaf."""

    loc: MLP
    scale: MLP
    stats: BernoulliStats | SoftBernoulliStats | GaussianStats

    @property
    def n_actions(self) -> int:
        return self.stats.n_successes.shape[0]

    @property
    def n_successes(self):
        return self.stats.n_successes

    @property
    def n_failures(self):
        return self.stats.n_failures


class BnnReplayState(NamedTuple):
    """:class:`BnnState` of a BNN with a replay buffer (``BnnTS(replay_capacity=...)``): the
    posterior, the counters, the original prior (data: every fit is regularised to it) and each
    action's most recent rows."""

    loc: MLP
    scale: MLP
    stats: BernoulliStats | SoftBernoulliStats
    prior_loc: MLP
    prior_scale: MLP
    buffer: replay.ReplayBuffer

    @property
    def n_actions(self) -> int:
        return self.stats.n_successes.shape[0]

    @property
    def n_successes(self):
        return self.stats.n_successes

    @property
    def n_failures(self):
        return self.stats.n_failures


@dataclasses.dataclass(frozen=True)
class BnnTS(PolicyBase):
    """Bayesian-MLP Thompson sampling (static settings; see the module docstring).

    Attributes:
        network: the MLP's structure.
        svi: the SVI settings (steps, optimizer, minibatch, particles, clipping).
        dist_type: prior family of every weight, ``normal`` or ``studentt``.
        nu: degrees of freedom of the Student-t prior.
        likelihood: the reward model: :class:`~bandits_jax.likelihoods.Bernoulli` (logit scores),
            its soft variant, or :class:`~bandits_jax.likelihoods.Gaussian` (real rewards, a
            learned noise std per action, scores in reward units; streaming only).
        replay_capacity: None (streaming: each update fits the new rows, the previous posterior
            as its prior) or the rows kept per action: each update then fits *every* buffered row
            of an action to the original prior, the guide warm-started at the current posterior
            (no compounding of the mean-field approximation, at the cost of a fit over the
            buffer; state :class:`BnnReplayState`).
        calibrate_output_bias: PyBandits' option: on an action's first update (its counters still
            at the prior's 1 and 1, so again after ``reset``), the output bias's prior mean becomes
            ``logit(clip(mean reward, 1e-6, 1 - 1e-6))`` of that update's rows before the fit (the
            guide starts there); a fit that goes non-finite leaves the action's posterior and
            prior as they were (with replay its rows are still buffered and counted, so that
            action is not calibrated again).
    """

    network: Network
    svi: SviSettings = SviSettings()
    dist_type: str = "normal"
    nu: float = 5.0
    likelihood: Bernoulli | Gaussian = Bernoulli()
    replay_capacity: int | None = None
    calibrate_output_bias: bool = False

    def __post_init__(self):
        if not isinstance(self.likelihood, (Bernoulli, Gaussian)):
            raise TypeError(f"likelihood must be a Bernoulli or Gaussian likelihood, got {self.likelihood!r}")
        if isinstance(self.likelihood, Gaussian) and self.replay_capacity is not None:
            raise ValueError(
                "replay_capacity is not available with Gaussian rewards (its noise latent is "
                "fitted by streaming updates only); use replay_capacity=None"
            )
        if self.replay_capacity is not None and (
            isinstance(self.replay_capacity, bool)
            or not isinstance(self.replay_capacity, int)
            or self.replay_capacity < 1
        ):
            raise ValueError(f"replay_capacity must be None or a positive int, got {self.replay_capacity!r}")
        if not isinstance(self.calibrate_output_bias, bool):
            raise TypeError(f"calibrate_output_bias must be a bool, got {self.calibrate_output_bias!r}")
        if not isinstance(self.network, Network) or not isinstance(self.svi, SviSettings):
            raise TypeError("network must be a Network and svi an SviSettings")
        config = self.as_config()  # validates every setting together (names as in CmabConfig)
        # normalised values (NumPy scalars to Python, optimizer_kwargs to sorted pairs): hashable
        object.__setattr__(self, "network", config.network)
        object.__setattr__(self, "svi", config.svi)
        object.__setattr__(self, "nu", config.nu)

    @classmethod
    def example(cls, n_features: int) -> BnnTS:
        """A small instance (one hidden layer of 4, 20 SGD steps), for tests and demos."""
        return cls(
            Network(n_features, (4,)), svi=SviSettings(num_steps=20, optimizer_type="sgd", step_size=0.01)
        )

    @classmethod
    def from_config(cls, config: CmabConfig) -> BnnTS:
        """The policy of a :class:`~bandits_jax.config.CmabConfig` (its prior values are data: see
        :meth:`init`)."""
        return _from_config(config)

    def as_config(self, mu: float = 0.0, sigma: float = 10.0) -> CmabConfig:
        return CmabConfig(
            **dataclasses.asdict(self.network),
            **dataclasses.asdict(self.svi),
            dist_type=self.dist_type,
            nu=self.nu,
            mu=mu,
            sigma=sigma,
            calibrate_output_bias=self.calibrate_output_bias,
            use_soft_rewards=isinstance(self.likelihood, SoftBernoulli),
            # a Gaussian's standardisation is data of the state (here: to be fitted)
            reward_type=self.likelihood.name if isinstance(self.likelihood, Gaussian) else "bernoulli",
            fit_reward_standardization=isinstance(self.likelihood, Gaussian),
        )

    def init(
        self,
        n_actions: int,
        mu: float | Array = 0.0,
        sigma: float | Array | None = None,
        dtype=None,
        use_layerwise_scaling: bool | Array = False,
        bias_std: float | Array | None = None,
        **reward_data: Any,
    ) -> BnnState | BnnReplayState:
        """Cold start: every weight's posterior is the prior ``(mu, sigma)``, counters at 1.
        ``mu`` and ``sigma`` are traced: new values compile nothing. ``sigma`` None is PyBandits'
        default for the reward model: 10 for Bernoulli rewards, 1 for Gaussian ones (on
        standardised targets; a prior of 10 there makes the first fits diverge). PyBandits' network options:
        ``use_layerwise_scaling`` divides each layer's weight sigma by the square root of its fan-in
        (biases keep ``sigma``); ``bias_std`` is the biases' sigma instead of ``sigma``.
        ``reward_data``: a Gaussian likelihood's ``reward_loc``, ``reward_scale``, ``noise_sigma``
        and ``noise_log_sigma_prior_std`` (data too; see
        :class:`~bandits_jax.likelihoods.GaussianStats`)."""
        if reward_data and not isinstance(self.likelihood, Gaussian):
            raise TypeError(f"unexpected keyword(s) {sorted(reward_data)} for {self.likelihood.name} rewards")
        if sigma is None:
            sigma = 1.0 if isinstance(self.likelihood, Gaussian) else 10.0
        bias = sigma if bias_std is None else bias_std
        return _init(
            self,
            n_actions,
            jnp.asarray(mu),
            jnp.asarray(sigma),
            dtype,
            jnp.asarray(use_layerwise_scaling).astype(bool),  # traced in a sweep
            jnp.asarray(bias),
            self.likelihood.check_reward_data(reward_data) if reward_data else {},
        )

    def predict(
        self,
        key: PRNGKeyArray,
        state: BnnState | BnnReplayState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """One independent posterior draw per row and action (local reparameterisation: one
        forward pass, no weight sample), then the strategy's choice among the allowed actions."""
        return _predict(self.likelihood, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: BnnState | BnnReplayState, grouped: GroupedFeedback
    ) -> tuple[BnnState | BnnReplayState, UpdateInfo]:
        """Streaming SVI of every action on its own rows. An action whose fit goes non-finite, or
        that has no rows, keeps its posterior and counters bit for bit (``info.ok`` False for the
        former)."""
        return _update_grouped(self, key, state, grouped)

    def forget(
        self, state: BnnState, decay_factor: Float[Array, " n_actions"], fresh: Bool[Array, " n_actions"]
    ) -> BnnState:
        """PyBandits' ``decay_factor`` rule (see :mod:`bandits_jax.policies.forgetting`): every
        scale of each ``fresh`` action divided by its ``decay_factor``, unless the action has
        learned nothing yet (counters at the prior's 1 and 1)."""
        widen = fresh & ~self.likelihood.is_cold(state.stats)
        factor = jnp.where(widen, decay_factor, 1.0)
        scale = jax.tree.map(
            lambda s: s / factor.astype(s.dtype).reshape((-1,) + (1,) * (s.ndim - 1)), state.scale
        )
        stats = state.stats
        if isinstance(self.likelihood, Gaussian):  # log sigma's posterior widens too (PyBandits)
            stats = self.likelihood.forget(stats, factor)
        return state._replace(scale=scale, stats=stats)

    def input_overflow(
        self, state: BnnState | BnnReplayState, grouped: GroupedFeedback
    ) -> Bool[Array, "n_actions rows"]:
        """Which of each action's valid rows give a non-finite mean or variance of some layer under
        that action's posterior (contexts finite in float32 can still overflow the network: 1e20
        squared is infinite in the predictive variance). A zero-noise draw is non-finite exactly
        then (``0 * sqrt(inf)`` is NaN). The object API refuses such a batch before anything
        changes."""

        def one(loc, scale, rows):
            rows = rows.astype(loc.layers[0].weight.dtype)
            eps = jnp.zeros((rows.shape[0], n_units(loc)), rows.dtype)
            return jnp.isfinite(logits_from_noise(loc, scale, rows, eps))

        return grouped.valid & ~jax.vmap(one)(state.loc, state.scale, grouped.context)

    def posterior_mean(
        self, state: BnnState | BnnReplayState, context: Float[ArrayLike, "n_rows n_features"]
    ) -> Float[Array, "n_rows n_actions"]:
        """Every row's score (logit; reward units for Gaussian rewards) under every action's
        posterior mean."""
        return self.likelihood.scores(stats_of(state), _posterior_mean(state, context))


@functools.lru_cache(maxsize=256)
def _from_config(config: CmabConfig) -> BnnTS:
    return BnnTS(
        network=config.network,
        svi=config.svi,
        dist_type=config.dist_type,
        nu=config.nu,
        calibrate_output_bias=config.calibrate_output_bias,
        likelihood=_likelihood_of(config),
    )


def _likelihood_of(config: CmabConfig) -> Bernoulli | Gaussian:
    if getattr(config, "reward_type", "bernoulli") == "gaussian":
        return Gaussian()
    return SoftBernoulli() if config.use_soft_rewards else Bernoulli()


@partial(jax.jit, static_argnums=(0, 1, 4))
def _init(
    policy: BnnTS, n_actions: int, mu, sigma, dtype, layerwise=False, bias_sigma=None, reward_data=None
) -> BnnState | BnnReplayState:
    net = policy.network

    def one(fill, fill_bias=None):
        return init_mlp(
            net.n_features,
            net.hidden_dim_list,
            net.activation,
            net.use_residual_connections,
            fill_weight=fill,
            fill_bias=fill_bias,
            dtype=dtype,
        )

    dtype = jnp.result_type(float) if dtype is None else dtype
    stack = partial(jax.tree.map, lambda leaf: jnp.broadcast_to(leaf, (n_actions, *leaf.shape)))
    bias_sigma = sigma if bias_sigma is None else bias_sigma
    prior_scale = one(sigma.astype(dtype), bias_sigma.astype(dtype))
    # PyBandits' use_layerwise_scaling (traced: toggling it compiles nothing): sigma / sqrt(fan-in)
    prior_scale = eqx.tree_at(
        lambda m: [layer.weight for layer in m.layers],
        prior_scale,
        [
            layer.weight / jnp.where(layerwise, jnp.sqrt(jnp.asarray(layer.weight.shape[0], dtype)), 1)
            for layer in prior_scale.layers
        ],
    )
    loc, scale = stack(one(mu.astype(dtype))), stack(prior_scale)
    if isinstance(policy.likelihood, Gaussian):
        return BnnState(
            loc, scale, policy.likelihood.init_stats(n_actions, **(reward_data or {}), dtype=dtype)
        )
    if policy.replay_capacity is None:
        return BnnState(loc, scale, policy.likelihood.init_stats(n_actions))
    row = {"context": jnp.zeros((net.n_features,), dtype), "reward": jnp.zeros((), dtype)}
    buffer = replay.init(n_actions, policy.replay_capacity, row)
    return BnnReplayState(loc, scale, policy.likelihood.init_stats(n_actions), loc, scale, buffer)


@partial(jax.jit, static_argnums=(0,))
def _predict(likelihood, key, state: BnnState | BnnReplayState, context, strategy, action_mask) -> Prediction:
    draw_key, strategy_key = jax.random.split(key)
    dtype = jax.tree.leaves(state.loc)[0].dtype
    context = context.astype(dtype)
    # Every action's noise in one flat draw (see bandits_jax._random).
    eps = _random.normal(draw_key, (state.n_actions, context.shape[0], n_units(state.loc)), dtype)
    logits = jax.vmap(lambda loc, scale, e: logits_from_noise(loc, scale, context, e))(
        state.loc, state.scale, eps
    ).T
    mean_logits = _posterior_mean(state, context)
    logits = likelihood.scores(state.stats, logits)
    mean_logits = likelihood.scores(state.stats, mean_logits)
    mean = likelihood.mean
    return select(logits, mean(logits), mean(mean_logits), strategy_key, strategy, action_mask)


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(
    policy: BnnTS, key, state: BnnState | BnnReplayState, grouped: GroupedFeedback
) -> tuple[BnnState | BnnReplayState, UpdateInfo]:
    from bandits_jax.inference import fit  # inference imports the policy's settings types

    lik = policy.likelihood
    dtype = jax.tree.leaves(state.loc)[0].dtype
    x = grouped.context.astype(dtype)
    y = grouped.rewards.astype(dtype)
    n_rows = grouped.valid.sum(axis=1).astype(jnp.int32)
    original = state
    if policy.calibrate_output_bias:
        calibrated = _calibrated_output_bias(lik, state, y, grouped.valid)
        if policy.replay_capacity is not None:  # the replay fit's prior is the original one
            state = state._replace(
                prior_loc=_calibrated_output_bias(lik, state, y, grouped.valid, state.prior_loc)
            )
    if policy.replay_capacity is None:
        prepared = lik.prepare(state.stats, y, grouped.valid)  # e.g. a Gaussian's standardisation
        # padding rows hold other actions' rewards: zero them, so no extreme value there turns
        # into an infinite target (whose masked gradient would still be NaN)
        targets = jnp.where(grouped.valid, lik.targets(prepared, y), 0)
        prior_loc = calibrated if policy.calibrate_output_bias else state.loc
        latent = lik.latent_prior(prepared)
        result = fit(policy, prior_loc, state.scale, x, targets, grouped.valid, key, latent=latent)
        loc = result.loc
        if policy.calibrate_output_bias:  # a failed fit leaves the action as it was
            loc = jax.tree.map(lambda new, old: _where_rows(result.ok, new, old), loc, state.loc)
        if latent is None:
            stats = lik.update_stats(prepared, y, grouped.valid, result.ok)
        else:
            new = lik.update_stats(
                prepared, y, grouped.valid, result.ok, (result.latent_loc, result.latent_scale)
            )
            # a failed fit leaves what prepare settled undone too
            stats = jax.tree.map(lambda n, o: jnp.where(result.ok, n, o), new, state.stats)
        return BnnState(loc, result.scale, stats), UpdateInfo(result.losses, result.ok, n_rows)
    if policy.calibrate_output_bias:
        state = state._replace(loc=calibrated)
    buffer = replay.add(state.buffer, {"context": x, "reward": y}, grouped.valid)
    rows = buffer.rows
    result = fit(
        policy,
        state.prior_loc,
        state.prior_scale,
        rows["context"],
        rows["reward"],
        buffer.valid,
        key,
        start=(state.loc, state.scale),
    )
    # an action without new rows keeps everything bit for bit; a non-finite fit keeps the posterior
    # (the fit falls back to its start) but its rows are buffered and counted
    fresh = grouped.valid.any(axis=1)

    def keep(new, old):
        return jnp.where(fresh.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    loc = jax.tree.map(keep, result.loc, state.loc)
    scale = jax.tree.map(keep, result.scale, state.scale)
    prior_loc = state.prior_loc
    if policy.calibrate_output_bias:  # a failed fit leaves the calibration undone too
        revert = partial(jax.tree.map, lambda new, old: _where_rows(result.ok, new, old))
        loc, prior_loc = revert(loc, original.loc), revert(prior_loc, original.prior_loc)
    stats = policy.likelihood.update_stats(state.stats, y, grouped.valid)
    new_state = BnnReplayState(loc, scale, stats, prior_loc, state.prior_scale, buffer)
    return new_state, UpdateInfo(result.losses, result.ok, n_rows)


def _where_rows(rows, new, old):
    return jnp.where(rows.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def _calibrated_output_bias(likelihood, state, y, valid, loc=None):
    """``loc`` (default ``state.loc``) with the output bias's mean at the score of this batch's
    mean target (``logit(clip(mean reward))`` for Bernoulli rewards; a Gaussian's standardised mean)
    for every action that has rows and no data yet (PyBandits' ``calibrate_output_bias``: for
    Bernoulli rewards, counters still at the prior's 1 and 1)."""
    loc = state.loc if loc is None else loc
    stats = stats_of(state)
    n = valid.sum(axis=1)
    first = likelihood.is_cold(stats) & (n > 0)
    targets = likelihood.targets(likelihood.prepare(stats, y, valid), y)
    mean = jnp.where(valid, targets, 0).sum(axis=1) / jnp.maximum(n, 1)
    bias = loc.layers[-1].bias
    new_bias = _where_rows(
        first, jnp.broadcast_to(likelihood.link(mean)[:, None].astype(bias.dtype), bias.shape), bias
    )
    return eqx.tree_at(lambda m: m.layers[-1].bias, loc, new_bias)


@jax.jit
def _posterior_mean(state: BnnState | BnnReplayState, context) -> Any:
    context = context.astype(jax.tree.leaves(state.loc)[0].dtype)
    return jax.vmap(lambda net: jax.vmap(net)(context))(state.loc).T
