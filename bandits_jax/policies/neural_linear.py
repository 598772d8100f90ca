"""NeuralLinear (Riquelme, Tucker & Snoek, 2018): a neural network learns a representation from
every action's data, and an exact Bayesian linear model per action on its last hidden layer does
the Thompson sampling.

An update (1) adds the batch to a replay buffer per action (:mod:`bandits_jax.policies.replay`),
(2) trains the shared network on every action's buffered rows (one output unit per action on a
shared body, the likelihood's negative log-likelihood of each row under its action's unit, plus an
L2 penalty; ``num_steps`` Adam steps warm-started from the current weights, as Riquelme retrains the
representation on all the data seen), and (3) refits each action's head on its buffered rows from
the prior ``N(0, sigma**2 I)``: the Laplace posterior of a generalised linear model on the features
``phi(x) = [x, body(x), 1]`` (``[body(x), 1]`` without ``head_context``), the exact MAP by damped Newton and the Hessian there
(:func:`bandits_jax.policies.linear_ts.laplace_fit`; for Bernoulli rewards Bayesian logistic
regression, where Riquelme's head is a Gaussian linear regression: our rewards go through the
likelihood seam, so the head's model is the reward model). Because the features move when the body
is retrained, every head is refitted from the whole buffer, never streamed.

Thompson draws are exact for the head: a row's score under ``w ~ N(m, S)`` is ``N(phi @ m,
phi^T S phi)``.

The body is shared by every action, so unlike the per-action policies an update changes the head of
an action that got no rows (its features moved). The state keeps the body once per action slot
(every leaf has the leading action axis, which the object API pads and persistence checks); all
slots hold the same trained body, and the body is read from the slot that has seen the most
rows (the one a transfer of a trained model keeps). Memory: ``n_actions`` copies of the body.

References:
    C. Riquelme, G. Tucker and J. Snoek, "Deep Bayesian Bandits Showdown: An Empirical Comparison
    of Bayesian Deep Networks for Thompson Sampling", ICLR 2018.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import Feedback, NeuralLinear
    >>> from bandits_jax.config import Network
    >>> policy = NeuralLinear(Network(2, (8,)), replay_capacity=16, num_steps=5)
    >>> state = policy.init(3)
    >>> pred = policy.predict(jax.random.key(0), state, jnp.ones((4, 2)))
    >>> fb = Feedback(jnp.ones((4, 2)), pred.actions, jnp.array([1, 0, 1, 1]), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(1), state, fb)
    >>> state.head_mean.shape, state.buffer.valid.shape
    ((3, 11), (3, 16))
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax.bnn import MLP, random_mlp
from bandits_jax.config import Network
from bandits_jax.likelihoods import (
    Bernoulli,
    BernoulliStats,
    Gaussian,
    GaussianStats,
    SoftBernoulliStats,
    counts,
    point_fit,
)
from bandits_jax.policies import linear_ts, replay
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo
from bandits_jax.policies.linear_ts import NoisePosterior, laplace_fit, thompson_prediction
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["NeuralLinear", "NeuralLinearState"]


class NeuralLinearState(NamedTuple):
    """Per action slot: the network (the shared body, the same in every slot, and the action's own
    output unit), the head's Gaussian posterior on ``[body(x), 1]`` and its prior scale (data), the
    replay buffer and the likelihood's counters. With Gaussian rewards the head is the conjugate
    Normal-inverse-gamma regression (as :class:`~bandits_jax.policies.LinearTS`'s): ``head_cov``
    is then the weights' covariance per unit noise variance, ``noise`` the noise variance's
    posterior and ``noise_prior`` its prior ``IG(a0, b0)`` (data; None for other rewards)."""

    net: MLP
    head_mean: Float[Array, "n_actions dim"]
    head_cov: Float[Array, "n_actions dim dim"]
    head_sigma: Float[Array, " n_actions"]
    buffer: replay.ReplayBuffer
    stats: BernoulliStats | SoftBernoulliStats | GaussianStats
    noise: NoisePosterior | None = None
    noise_prior: NoisePosterior | None = None

    @property
    def n_actions(self) -> int:
        return self.head_mean.shape[0]


def _check_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(name: str, value, minimum: float = 0.0, strict: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and jnp.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class NeuralLinear(PolicyBase):
    """NeuralLinear Thompson sampling (static settings; see the module docstring).

    Attributes:
        network: the body's structure (at least one hidden layer; its last one is the head's
            feature vector).
        replay_capacity: rows kept per action (the most recent).
        num_steps: Adam steps of the body per update, on every action's buffered rows.
        step_size: Adam's learning rate.
        batch_size: rows per step, drawn uniformly from the buffered slots; None: all of them.
        weight_decay: L2 penalty per weight (times the number of buffered rows' mean loss scale:
            the loss is a mean over rows, the penalty ``weight_decay * sum(w**2)``).
        newton_steps: damped Newton iterations of each head's refit.
        head_context: give the head the raw context as well as the body's features, so that it
            contains the linear model (measured on the non-linear environment: without it, the
            head on a body trained on little data had higher regret than linear TS).
        likelihood: the reward model (Bernoulli: a Laplace head; Gaussian: the exact
            Normal-inverse-gamma head on standardised targets, and the body fitted by squared
            error on them, as Riquelme's).
    """

    network: Network
    replay_capacity: int = 1024
    num_steps: int = 100
    step_size: float = 0.01
    batch_size: int | None = None
    weight_decay: float = 3e-3
    newton_steps: int = 10
    head_context: bool = True
    likelihood: Bernoulli | Gaussian = Bernoulli()

    #: the body is shared: an update may change an action that got no rows (see the contract tests)
    shares_across_actions: ClassVar[bool] = True

    def __post_init__(self):
        if not isinstance(self.network, Network):
            raise TypeError(f"network must be a bandits_jax.config.Network, got {self.network!r}")
        from bandits_jax.config import CmabConfig

        CmabConfig(**dataclasses.asdict(self.network))  # validates the structure, naming its fields
        if not self.network.hidden_dim_list:
            raise ValueError("network.hidden_dim_list must have at least one hidden layer (the features)")
        _check_int("replay_capacity", self.replay_capacity)
        _check_int("num_steps", self.num_steps, 0)
        _check_float("step_size", self.step_size)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size)
        _check_float("weight_decay", self.weight_decay, strict=False)
        _check_int("newton_steps", self.newton_steps)

    @classmethod
    def example(cls, n_features: int) -> NeuralLinear:
        """A small instance (8 hidden units, 32 rows per action, 10 steps), for tests and demos."""
        return cls(Network(n_features, (8,)), replay_capacity=32, num_steps=10, newton_steps=5)

    @property
    def n_features(self) -> int:
        return self.network.n_features

    @property
    def dim(self) -> int:
        """The head's dimension: the last hidden layer's width plus an intercept (plus the context's
        width with ``head_context``)."""
        return self.network.hidden_dim_list[-1] + 1 + self.network.n_features * self.head_context

    def init(
        self,
        n_actions: int,
        sigma: float | Array = 1.0,
        seed: int | Array = 0,
        dtype=None,
        *,
        a0: float | Array | None = None,
        b0: float | Array | None = None,
        **reward_data: Any,
    ) -> NeuralLinearState:
        """Cold start: a random body from ``seed`` (data; LeCun-normal weights, the same in every
        slot), action ``a``'s output unit from ``fold_in(key(seed), a)``, every head at its prior
        ``N(0, sigma**2 I)``, empty buffers, counters at 1. A state of ``n`` actions is the first
        ``n`` actions of a state of more. Gaussian rewards only: the noise prior ``IG(a0, b0)`` and
        the likelihood's ``reward_data``, as :meth:`LinearTS.init <bandits_jax.policies.LinearTS.init>`."""
        a0, b0, reward_data = linear_ts.noise_prior_data(self.likelihood, a0, b0, reward_data)
        return _init(self, n_actions, jnp.asarray(sigma), jnp.asarray(seed), dtype, a0, b0, reward_data)

    def features(
        self, state: NeuralLinearState, context: Float[ArrayLike, "n_rows n_features"]
    ) -> Float[Array, "n_rows dim"]:
        """The head's features ``[x, body(x), 1]`` (``[body(x), 1]`` without ``head_context``) of
        every row under the state's body."""
        return _features(self.head_context, state, jnp.asarray(context))

    def predict(
        self,
        key: PRNGKeyArray,
        state: NeuralLinearState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """One exact draw of every row's score per action from its head's posterior."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: NeuralLinearState, grouped: GroupedFeedback
    ) -> tuple[NeuralLinearState, UpdateInfo]:
        """Buffer the rows, retrain the body on every action's buffer, refit every head. A batch
        without rows changes nothing; a body whose training goes non-finite is not kept (every
        ``info.ok`` False, the heads refitted on the previous body: the new rows still count);
        a head whose refit is not finite keeps its previous posterior (its ``ok`` False)."""
        return _update_grouped(self, key, state, grouped)


def _body_slot(state: NeuralLinearState) -> Array:
    """The slot whose body is read: the one that has seen the most rows (all slots hold the same
    body once a model has been updated; after a transfer, the trained one)."""
    if isinstance(state.stats, GaussianStats):
        return jnp.argmax(state.stats.n_observations)
    successes, failures = counts(state.stats)
    return jnp.argmax(successes + failures)


def _body(state: NeuralLinearState) -> MLP:
    slot = _body_slot(state)
    return jax.tree.map(lambda leaf: leaf[slot], state.net)


def _design(body: MLP, context: Array, head_context: bool) -> Array:
    context = context.astype(body.layers[0].weight.dtype)
    phi = jax.vmap(body.features)(context)
    parts = [context] if head_context else []
    return jnp.concatenate([*parts, phi, jnp.ones((*phi.shape[:-1], 1), phi.dtype)], axis=-1)


@partial(jax.jit, static_argnums=(0,))
def _features(head_context: bool, state: NeuralLinearState, context) -> Array:
    return _design(_body(state), context, head_context)


@partial(jax.jit, static_argnums=(0, 1, 4))
def _init(policy: NeuralLinear, n_actions: int, sigma, seed, dtype, a0=None, b0=None, reward_data=None):
    dtype = jnp.result_type(float) if dtype is None else dtype
    net = policy.network
    key = jax.random.key(seed.astype(jnp.uint32))
    body_key, out_key = jax.random.split(key)
    body = random_mlp(
        body_key,
        net.n_features,
        net.hidden_dim_list,
        net.activation,
        net.use_residual_connections,
        dtype=dtype,
    )
    width = net.hidden_dim_list[-1]

    def output_weight(a):
        return jax.random.normal(jax.random.fold_in(out_key, a), (width, 1), dtype) / jnp.sqrt(width).astype(
            dtype
        )

    stacked = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n_actions, *leaf.shape)), body)
    out_weight = jax.vmap(output_weight)(jnp.arange(n_actions))
    stacked = _replace_output(stacked, out_weight, jnp.zeros((n_actions, 1), dtype))
    d = policy.dim
    sigma = jnp.broadcast_to(sigma.astype(dtype), (n_actions,))
    eye = jnp.eye(d, dtype=dtype)
    row = {"context": jnp.zeros((net.n_features,), dtype), "reward": jnp.zeros((), dtype)}
    parts = (
        stacked,
        jnp.zeros((n_actions, d), dtype),
        sigma[:, None, None] ** 2 * eye,
        sigma,
        replay.init(n_actions, policy.replay_capacity, row),
    )
    if isinstance(policy.likelihood, Gaussian):
        full = partial(jnp.broadcast_to, shape=(n_actions,))
        prior = NoisePosterior(full(a0.astype(dtype)), full(b0.astype(dtype)))
        stats = policy.likelihood.init_stats(n_actions, **(reward_data or {}), dtype=dtype)
        return NeuralLinearState(*parts, stats, prior, prior)
    return NeuralLinearState(*parts, policy.likelihood.init_stats(n_actions))


def _replace_output(net: MLP, weight: Array, bias: Array) -> MLP:
    """``net`` with its output layer's weight and bias replaced (stacked layers included)."""
    return eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), net, (weight, bias))


@partial(jax.jit, static_argnums=(0,))
def _predict(policy, key, state: NeuralLinearState, context, strategy, action_mask) -> Prediction:
    x = _design(_body(state), jnp.asarray(context), policy.head_context)
    if state.noise is not None:
        return linear_ts.nig_thompson_prediction(
            key,
            policy.likelihood,
            state.stats,
            x,
            state.head_mean,
            state.head_cov,
            state.noise,
            strategy,
            action_mask,
        )
    return thompson_prediction(
        key, policy.likelihood, x, state.head_mean, state.head_cov, strategy, action_mask
    )


def _train_body(policy: NeuralLinear, key, state: NeuralLinearState, buffer: replay.ReplayBuffer, y):
    """``num_steps`` Adam steps of the body and every output unit on every action's buffer, whose
    targets are ``y`` (the rewards; standardised for Gaussian rewards, fitted by squared error)."""
    body = _body(state)
    heads = (state.net.layers[-1].weight, state.net.layers[-1].bias)  # (n_actions, width, 1), (n_actions, 1)
    params = (body.layers[:-1], heads)
    x = buffer.rows["context"]  # (n_actions, capacity, n_features)
    weight = buffer.valid.astype(x.dtype)
    n_actions, capacity = weight.shape
    lik = point_fit(policy.likelihood)  # Gaussian: half the squared error on standardised targets

    def loss_fn(params, rows):
        hidden, (w, b) = params
        net = eqx.tree_at(lambda m: m.layers[:-1], body, tuple(hidden))
        xs, ys, ws = rows
        phi = jax.vmap(jax.vmap(net.features))(xs)  # (n_actions, rows, width)
        score = jnp.einsum("arw,aw->ar", phi, w[..., 0]) + b
        nll = -jnp.sum(ws * lik.log_prob(ys, score)) / jnp.maximum(ws.sum(), 1.0)
        penalty = sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(params))
        return nll + policy.weight_decay * penalty

    opt = optax.adam(policy.step_size)

    def step(carry, step_key):
        params, opt_state = carry
        if policy.batch_size is None:
            rows = (x, y, weight)
        else:  # the same number of slots of every action, drawn uniformly
            per_action = max(1, policy.batch_size // n_actions)
            idx = jax.random.randint(step_key, (n_actions, per_action), 0, capacity)
            take = jax.vmap(lambda arr, i: arr[i])
            rows = (take(x, idx), take(y, idx), take(weight, idx))
        loss, grads = jax.value_and_grad(loss_fn)(params, rows)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    keys = jax.random.split(key, policy.num_steps)
    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), keys)
    hidden, (w, b) = params
    trained = eqx.tree_at(lambda m: m.layers[:-1], body, tuple(hidden))
    stacked = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n_actions, *leaf.shape)), trained)
    return _replace_output(stacked, w, b), losses


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(policy: NeuralLinear, key, state: NeuralLinearState, grouped: GroupedFeedback):
    dtype = state.head_mean.dtype
    lik = policy.likelihood
    y = grouped.rewards.astype(dtype)
    rows = {"context": grouped.context.astype(dtype), "reward": y}
    buffer = replay.add(state.buffer, rows, grouped.valid)
    stats = lik.prepare(state.stats, y, grouped.valid)  # a Gaussian's standardisation, on a first batch
    # the buffer's targets (padding slots zeroed: no extreme value there turns non-finite)
    targets = jnp.where(buffer.valid, lik.targets(stats, buffer.rows["reward"]), 0).astype(dtype)
    net, losses = _train_body(policy, key, state, buffer, targets)
    net_ok = jnp.isfinite(losses).all() & jnp.all(
        jnp.asarray([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(net)])
    )
    net = jax.tree.map(lambda new, old: jnp.where(net_ok, new, old), net, state.net)
    body = jax.tree.map(lambda leaf, s=_body_slot(state): leaf[s], net)
    # empty slots zeroed (their zero weight would not cancel an extreme context)
    contexts = jnp.where(buffer.valid[..., None], buffer.rows["context"], 0)
    x = jax.vmap(partial(_design, body, head_context=policy.head_context))(
        contexts
    )  # (n_actions, capacity, dim)
    weight = buffer.valid.astype(dtype)
    eye = jnp.eye(policy.dim, dtype=dtype)
    precision0 = eye[None] / jnp.square(state.head_sigma)[:, None, None]
    mean0 = jnp.zeros_like(state.head_mean)
    if state.noise is None:
        fit = jax.vmap(partial(laplace_fit, lik, policy.newton_steps))
        mean, _, cov = fit(mean0, precision0, x, targets, weight)
        head_ok = jnp.isfinite(mean).all(-1) & jnp.isfinite(cov).all((-2, -1))
        noise = None
    else:
        a0, b0 = state.noise_prior
        mean, _, cov, a, b = jax.vmap(linear_ts.nig_fit)(mean0, precision0, a0, b0, x, targets, weight)
        head_ok = jnp.isfinite(mean).all(-1) & jnp.isfinite(cov).all((-2, -1)) & jnp.isfinite(b) & (b > 0)
        noise = NoisePosterior(a, b)
    ok = head_ok & net_ok
    any_rows = grouped.valid.any()
    keep_head = head_ok & any_rows

    def choose(keep, new, old):
        return jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - keep.ndim)), new, old)

    net = jax.tree.map(lambda new, old: jnp.where(any_rows, new, old), net, state.net)
    buffer = jax.tree.map(lambda new, old: jnp.where(any_rows, new, old), buffer, state.buffer)
    if noise is not None:
        noise = jax.tree.map(partial(choose, keep_head), noise, state.noise)
        loc, scale = linear_ts.noise_latent(noise)
        # the noise report of every action with new rows (the others keep their stats as they
        # are; their head's ``noise`` is refitted all the same, its features having moved)
        new_stats = lik.update_stats(stats, y, grouped.valid, keep_head, (loc, scale))
        # an action whose head failed keeps its stats as they were (prepare's changes undone)
        stats = jax.tree.map(lambda n, o: jnp.where(keep_head, n, o), new_stats, state.stats)
    else:
        stats = lik.update_stats(state.stats, y, grouped.valid)
    new_state = NeuralLinearState(
        net,
        choose(keep_head, mean, state.head_mean),
        choose(keep_head, cov, state.head_cov),
        state.head_sigma,
        buffer,
        stats,
        noise,
        state.noise_prior,
    )
    n = state.head_mean.shape[0]
    info = UpdateInfo(
        jnp.broadcast_to(losses, (n, policy.num_steps)), ok, grouped.valid.sum(axis=1).astype(jnp.int32)
    )
    return new_state, info
