"""Ensemble sampling: per action, ``K`` point-estimate MLPs, each a randomly initialised, randomly
anchored and bootstrapped fit of that action's data; a Thompson draw is the score of a member
picked uniformly at random.

Each action ``a`` keeps ``K = n_members`` networks (:class:`~bandits_jax.bnn.MLP`, one output on the
likelihood's link scale: a logit for Bernoulli rewards). Member ``k`` starts at
``theta0_k = prior_scale * (LeCun-normal draw)`` (:func:`~bandits_jax.bnn.random_mlp`, zero biases)
and an update minimises, from the member's current weights, by ``num_steps`` full-batch optax steps,

``L_k(theta) = -sum_i w_ik log p(y_i | f_theta(x_i)) + 1/2 sum_j ((theta_j - theta0_kj) / s_j)**2``

with ``s_j = prior_scale / sqrt(fan_in)`` for a weight and ``prior_scale`` for a bias.

Regularisation: toward the member's *initial* weights (an anchored ensemble), not toward 0. The
anchors are draws from the prior ``N(0, s_j**2)`` that the penalty encodes, so each member is a
randomised MAP (Lu & Van Roy's perturbed prior; Pearce et al.'s anchored ensembles): for a linear
model with Gaussian noise, with the targets perturbed as well (there by added noise, here
approximately by the bootstrap weights), it is exactly a posterior draw, and in general the members
stay spread like the prior wherever the data say nothing. Decay toward 0 instead pulls every member
to the same point as the data grow, so the ensemble's spread, the exploration, collapses for reasons
unrelated to how much is known. ``prior_scale=None`` drops the penalty (plain LeCun initialisation,
as bootstrapped DQN).

Bootstrap (``bootstrap=True``): every row gets an independent weight ``w_ik in {0, 2}`` (twice a
Bernoulli(1/2): the "double or nothing" bootstrap of Osband & Van Roy) for each member, drawn once,
when the row arrives. It has the mean (1) and variance (1) of the Poisson(1) online bootstrap, so
the data's total weight against the anchor is that of the unweighted posterior, costs one uniform
per weight, and drops half of a member's rows, which keeps members apart on little data. With a
replay buffer the weights are stored next to their rows, so every retraining fits each member on
the same bootstrap sample of the buffer (a resample at each retraining would add noise that does
not shrink with data). Without bootstrap every weight is 1 and the members differ only by their
initialisation and anchor.

Data (``replay_capacity``): an int keeps a :class:`~bandits_jax.policies.replay.ReplayBuffer` of
each action's latest rows in the state and refits the whole buffer at each update, warm-started
from the current weights (the objective above, exactly, over the buffer). ``None`` streams: each
update fits only the new batch, from the current weights, and old rows persist only through that
warm start. There the penalty is scaled by ``n_new / n_seen`` (the batch's share of the rows the
action has seen, counted in the state): in the objective over all rows each row carries ``1 / N``
of the prior, so a batch carries its rows' share, and the full anchor pull is not re-applied
against every small batch (it undid the previous batches; on 6 seeds of a 3-action logistic
problem, 40 rounds of 16 rows, this cut the example policy's regret by a third).

Thompson step: for every row and action a member is picked uniformly at random, independently, and
its score is that row's draw for that action. Lu & Van Roy pick one member per round; with a batch
of rows that would make every row of the batch follow the same hypothesis, whereas independent picks
make each row an independent (approximate) posterior draw, as :class:`~bandits_jax.policies.BnnTS`
draws. ``mean_probs`` is the likelihood's mean of the members' *average score* (the ensemble's
point prediction on the link scale), not the average of their means.

``K`` is a ``vmap`` (members, their optimizer states and their losses), as are the actions; action
``a``'s update draws from ``fold_in(key, a)`` only, so no action's result depends on another's rows.

References:
    X. Lu and B. Van Roy, "Ensemble Sampling", NeurIPS 2017.
    I. Osband, C. Blundell, A. Pritzel and B. Van Roy, "Deep Exploration via Bootstrapped DQN",
    NeurIPS 2016.
    I. Osband and B. Van Roy, "Bootstrapped Thompson Sampling and Deep Exploration", 2015.
    T. Pearce, F. Leibfried, A. Brintrup, M. Zaki and A. Neely, "Uncertainty in Neural Networks:
    Approximately Bayesian Ensembling", AISTATS 2020.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.config import Network
    >>> from bandits_jax.policies import Feedback
    >>> from bandits_jax.policies.ensemble import Ensemble
    >>> policy = Ensemble(Network(2, (4,)), n_members=3, num_steps=10, step_size=0.05, replay_capacity=8)
    >>> state = policy.init(2, seed=0)
    >>> state.params.layers[0].weight.shape  # (action, member, in, out)
    (2, 3, 2, 4)
    >>> pred = policy.predict(jax.random.key(0), state, jnp.ones((5, 2)))
    >>> pred.actions.shape, pred.probs.shape
    ((5,), (5, 2))
    >>> fb = Feedback(jnp.ones((4, 2)), jnp.array([0, 0, 1, 0]), jnp.array([1, 0, 1, 1]), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(1), state, fb)
    >>> info.n_rows.tolist(), info.losses.shape, state.buffer.valid.sum(axis=1).tolist()
    ([3, 1], (2, 10), [3, 1])
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from bandits_jax import _random
from bandits_jax.bnn import MLP, random_mlp
from bandits_jax.config import CmabConfig, Network, SviSettings, optimizer
from bandits_jax.likelihoods import (
    Bernoulli,
    BernoulliStats,
    Gaussian,
    GaussianStats,
    SoftBernoulliStats,
    point_fit,
    saturating_add,
)
from bandits_jax.policies import replay
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo, select
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["Ensemble", "EnsembleState"]


class EnsembleState(NamedTuple):
    """Every action's members (``params``: an MLP whose leaves are ``(n_actions, n_members, ...)``),
    their anchors (the initial weights; None without ``prior_scale``), the replay buffer (rows
    ``x``, ``y`` and, with bootstrap, the per-member weights ``w``; None when streaming) and the
    likelihood's counters and ``n_seen``, the rows each action has been fitted on (it scales the
    streaming penalty); leading action axis on every leaf."""

    params: MLP
    anchor: MLP | None
    buffer: replay.ReplayBuffer | None
    stats: BernoulliStats | SoftBernoulliStats | GaussianStats
    n_seen: Int[Array, " n_actions"]

    @property
    def n_actions(self) -> int:
        return self.stats.n_successes.shape[0]

    @property
    def n_members(self) -> int:
        return self.params.layers[0].bias.shape[1]


@dataclasses.dataclass(frozen=True)
class Ensemble(PolicyBase):
    """Deep ensemble sampling (static settings; see the module docstring).

    Attributes:
        network: the members' structure (one output unit).
        n_members: members per action, ``K``.
        num_steps: optimizer steps per update (full batch: the new rows, or the whole buffer).
        step_size: the optimizer's learning rate.
        optimizer_type: an optax optimizer factory's name (``optax.<name>(learning_rate=step_size)``),
            applied to each member separately.
        prior_scale: scale of the prior that draws the anchors (and initial weights) and penalises
            the distance to them; None: no penalty, LeCun-normal initial weights.
        replay_capacity: None streams; an int keeps that many latest rows per action and refits
            them all at each update.
        bootstrap: weight every row by an independent ``2 * Bernoulli(1/2)`` per member, drawn once.
        likelihood: the reward model. With Gaussian rewards the members fit the standardised
            targets by squared error and score in reward units; no noise model is fitted, so the
            likelihood's ``noise_std`` reports the first batch's guess.
    """

    network: Network
    n_members: int = 10
    num_steps: int = 100
    step_size: float = 0.01
    optimizer_type: str = "adam"
    prior_scale: float | None = 1.0
    replay_capacity: int | None = None
    bootstrap: bool = True
    likelihood: Bernoulli | Gaussian = Bernoulli()

    def __post_init__(self):
        if not isinstance(self.network, Network):
            raise TypeError(f"network must be a bandits_jax.config.Network, got {self.network!r}")
        # CmabConfig validates the network, num_steps, step_size and the optimizer (naming them) and
        # normalises NumPy scalars to Python ones, so equal settings hash equal.
        config = CmabConfig(
            **dataclasses.asdict(self.network),
            num_steps=self.num_steps,
            step_size=self.step_size,
            optimizer_type=self.optimizer_type,
        )
        object.__setattr__(self, "network", config.network)
        object.__setattr__(self, "num_steps", config.num_steps)
        object.__setattr__(self, "step_size", config.step_size)
        object.__setattr__(self, "n_members", _positive_int("n_members", self.n_members))
        if self.prior_scale is not None:
            object.__setattr__(self, "prior_scale", _positive_float("prior_scale", self.prior_scale))
        if self.replay_capacity is not None:
            object.__setattr__(
                self, "replay_capacity", _positive_int("replay_capacity", self.replay_capacity)
            )
        if not isinstance(self.bootstrap, bool):
            raise TypeError(f"bootstrap must be a bool, got {self.bootstrap!r}")
        if not callable(getattr(self.likelihood, "log_prob", None)):
            raise TypeError(
                f"likelihood must be a bandits_jax.likelihoods likelihood, got {self.likelihood!r}"
            )

    @classmethod
    def example(cls, n_features: int) -> Ensemble:
        """A small instance (one hidden layer of 4, 3 members, 10 Adam steps, streaming), for tests
        and demos."""
        return cls(Network(n_features, (4,)), n_members=3, num_steps=10, step_size=0.05)

    @property
    def svi(self) -> SviSettings:
        """The optimizer settings in the form :func:`bandits_jax.config.optimizer` builds from."""
        return SviSettings(self.num_steps, self.step_size, self.optimizer_type)

    def init(
        self, n_actions: int, seed: int | Int[ArrayLike, ""] = 0, dtype=None, **reward_data: Any
    ) -> EnsembleState:
        """Fresh members: action ``a``'s are drawn from ``split(fold_in(key(seed), a), n_members)``,
        so a state of ``n`` actions is the first ``n`` actions of a state of more. ``seed`` is data
        (an int or a traced integer array): a new seed compiles nothing. ``reward_data``: a
        Gaussian likelihood's ``reward_loc``, ``reward_scale``, ... (data; see
        :class:`~bandits_jax.likelihoods.GaussianStats`)."""
        if reward_data and not isinstance(self.likelihood, Gaussian):
            raise TypeError(f"unexpected keyword(s) {sorted(reward_data)} for {self.likelihood.name} rewards")
        data = self.likelihood.check_reward_data(reward_data) if reward_data else {}
        return _init(self, n_actions, jnp.asarray(seed), dtype, data)

    def predict(
        self,
        key: PRNGKeyArray,
        state: EnsembleState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """Per row and action, the score of a member picked uniformly at random (independently per
        row and action), then the strategy's choice among the allowed actions."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: EnsembleState, grouped: GroupedFeedback
    ) -> tuple[EnsembleState, UpdateInfo]:
        """Fit every action's members on its new rows (or its whole buffer). An action without
        rows keeps its state bit for bit; one whose fit is not finite keeps it too (``info.ok``
        False). ``info.losses[a, t]`` is the objective at step ``t`` averaged over the members."""
        return _update_grouped(self, key, state, grouped)

    def member_scores(
        self, state: EnsembleState, context: Float[ArrayLike, "n_rows n_features"]
    ) -> Float[Array, "n_rows n_actions n_members"]:
        """Every member's score (on the link scale) of every row, per action."""
        return _member_scores(state.params, context)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite positive number or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number or None, got {value!r}")
    return float(value)


def _draw_members(policy: Ensemble, key, dtype) -> MLP:
    """One action's ``K`` initial members (stacked on a leading member axis)."""
    net = policy.network

    def one(k):
        mlp = random_mlp(
            k, net.n_features, net.hidden_dim_list, net.activation, net.use_residual_connections, dtype=dtype
        )
        return mlp if policy.prior_scale is None else jax.tree.map(lambda w: policy.prior_scale * w, mlp)

    return jax.vmap(one)(jax.random.split(key, policy.n_members))


@partial(jax.jit, static_argnums=(0, 1, 3))
def _init(policy: Ensemble, n_actions: int, seed, dtype, reward_data=None) -> EnsembleState:
    dtype = jnp.result_type(float) if dtype is None else dtype
    base = jax.random.key(seed)
    keys = jax.vmap(lambda a: jax.random.fold_in(base, a))(jnp.arange(n_actions))
    params = jax.vmap(lambda k: _draw_members(policy, k, dtype))(keys)
    anchor = None if policy.prior_scale is None else params
    buffer = None
    if policy.replay_capacity is not None:
        row = {"x": jnp.zeros((policy.network.n_features,), dtype), "y": jnp.zeros((), dtype)}
        if policy.bootstrap:
            row["w"] = jnp.zeros((policy.n_members,), dtype)
        buffer = replay.init(n_actions, policy.replay_capacity, row)
    if isinstance(policy.likelihood, Gaussian):
        stats = policy.likelihood.init_stats(n_actions, **(reward_data or {}), dtype=dtype)
    else:
        stats = policy.likelihood.init_stats(n_actions)
    return EnsembleState(params, anchor, buffer, stats, jnp.zeros((n_actions,), jnp.int32))


@jax.jit
def _member_scores(params: MLP, context) -> Array:
    context = context.astype(params.layers[0].weight.dtype)
    per_member = jax.vmap(lambda net: jax.vmap(net)(context))  # (K, n_rows)
    return jnp.transpose(jax.vmap(per_member)(params), (2, 0, 1))  # (n_rows, n_actions, K)


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: Ensemble, key, state: EnsembleState, context, strategy, action_mask) -> Prediction:
    pick_key, strategy_key = jax.random.split(key)
    scores = _member_scores(state.params, context)
    n_rows, n_actions, n_members = scores.shape
    pick = jax.random.randint(pick_key, (n_rows * n_actions,), 0, n_members).reshape(n_rows, n_actions)
    logits = jnp.take_along_axis(scores, pick[..., None], axis=-1)[..., 0]
    lik = policy.likelihood  # Gaussian rewards: members fit standardised targets, mapped back here
    logits, average = lik.scores(state.stats, logits), lik.scores(state.stats, scores.mean(axis=-1))
    return select(logits, lik.mean(logits), lik.mean(average), strategy_key, strategy, action_mask)


def _penalty(policy: Ensemble, params: MLP, anchor: MLP) -> Array:
    """``1/2 sum ((theta - theta0) / s)**2`` of one member (``s`` as in the module docstring)."""
    total = jnp.zeros((), params.layers[0].weight.dtype)
    for layer, layer0 in zip(params.layers, anchor.layers):
        fan_in = layer.weight.shape[0]
        total += fan_in * jnp.sum(jnp.square(layer.weight - layer0.weight))
        total += jnp.sum(jnp.square(layer.bias - layer0.bias))
    return 0.5 * total / policy.prior_scale**2


def _fit_action(policy: Ensemble, params: MLP, anchor: MLP | None, x, y, weight, prior_weight):
    """``num_steps`` optax steps of one action's ``K`` members (vmapped) on rows ``x, y`` weighted
    ``weight`` (``(rows, K)``: zero on masked rows). Returns the members and the mean loss per step."""
    opt = optimizer(policy.svi)
    lik = point_fit(policy.likelihood)  # Gaussian: half the squared error on standardised targets

    def member_loss(p, p0, w):
        nll = -jnp.sum(w * lik.log_prob(y, jax.vmap(p)(x)))
        return nll if p0 is None else nll + prior_weight * _penalty(policy, p, p0)

    value_and_grad = jax.vmap(jax.value_and_grad(member_loss), in_axes=(0, 0, 1))  # over members

    def step(carry, _):
        p, opt_state = carry
        loss, grads = value_and_grad(p, anchor, weight)
        updates, opt_state = jax.vmap(opt.update)(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss.mean()

    (params, _), losses = jax.lax.scan(step, (params, jax.vmap(opt.init)(params)), length=policy.num_steps)
    return params, losses


def _bootstrap_weights(policy: Ensemble, key, valid, dtype) -> Array:
    """``(rows, K)`` weights of one action's new rows: ``2 * Bernoulli(1/2)`` each (1 without
    bootstrap), 0 on masked rows."""
    shape = (valid.shape[0], policy.n_members)
    if policy.bootstrap:
        w = 2 * (_random.uniform(key, shape, dtype) < 0.5).astype(dtype)
    else:
        w = jnp.ones(shape, dtype)
    return jnp.where(valid[:, None], w, 0)


@partial(jax.jit, static_argnums=(0,))
def _update_grouped(
    policy: Ensemble, key, state: EnsembleState, grouped: GroupedFeedback
) -> tuple[EnsembleState, UpdateInfo]:
    dtype = state.params.layers[0].weight.dtype
    valid = grouped.valid
    n_actions = valid.shape[0]
    # Masked rows are zeroed, not only weighted 0: 0 * NaN would still reach the gradient.
    x = jnp.where(valid[..., None], grouped.context.astype(dtype), 0)
    y = jnp.where(valid, grouped.rewards.astype(dtype), 0)
    lik = policy.likelihood
    prepared = lik.prepare(state.stats, y, valid)  # a Gaussian's standardisation, on a first batch
    # Action a draws from fold_in(key, a) only: its result does not depend on other actions' rows.
    keys = jax.vmap(lambda a: jax.random.fold_in(key, a))(jnp.arange(n_actions))
    w = jax.vmap(lambda k, v: _bootstrap_weights(policy, k, v, dtype))(keys, valid)

    buffer = state.buffer
    if buffer is None:
        train_x, train_y, train_w = x, jnp.where(valid, lik.targets(prepared, y), 0), w
    else:
        rows = {"x": x, "y": y}
        if policy.bootstrap:
            rows["w"] = w
        buffer = replay.add(buffer, rows, valid)
        train_x = buffer.rows["x"]
        train_y = jnp.where(buffer.valid, lik.targets(prepared, buffer.rows["y"]), 0)
        stored = (
            buffer.rows["w"] if policy.bootstrap else jnp.ones((*buffer.valid.shape, policy.n_members), dtype)
        )
        train_w = jnp.where(buffer.valid[..., None], stored, 0)

    n_rows = valid.sum(axis=1).astype(jnp.int32)
    n_seen = saturating_add(state.n_seen, n_rows)
    if buffer is None:  # the batch's share of the prior (see the module docstring)
        prior_weight = (n_rows / jnp.maximum(n_seen, 1)).astype(dtype)
    else:
        prior_weight = jnp.ones((n_actions,), dtype)
    fit = jax.vmap(partial(_fit_action, policy))
    params, losses = fit(state.params, state.anchor, train_x, train_y, train_w, prior_weight)

    def finite(tree):
        leaves = [jnp.isfinite(leaf).reshape(n_actions, -1).all(axis=1) for leaf in jax.tree.leaves(tree)]
        return jnp.stack(leaves).all(axis=0)

    ok = finite(params) & jnp.isfinite(losses).all(axis=1)
    keep = ok & valid.any(axis=1)

    def choose(new, old):
        return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    params = jax.tree.map(choose, params, state.params)
    if buffer is not None:
        buffer = jax.tree.map(choose, buffer, state.buffer)
    stats = lik.update_stats(prepared, y, valid, ok)
    # a failed fit leaves what prepare settled undone too
    stats = jax.tree.map(lambda new, old: jnp.where(ok, new, old), stats, state.stats)
    n_seen = jnp.where(ok, n_seen, state.n_seen)
    return EnsembleState(params, state.anchor, buffer, stats, n_seen), UpdateInfo(losses, ok, n_rows)
