"""Environments: an equinox module per reward model, sampled on device. Part of :mod:`bandits_jax.simulation` (see its docstring)."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from bandits_jax import _random

SKLEARN_DATASETS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
}

#: The wheel's exploration parameters in Riquelme et al. (2018), from easiest to hardest.
WHEEL_DELTAS = (0.5, 0.7, 0.9, 0.95, 0.99)


def _concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array, or None when it is traced (inside ``jit`` / ``vmap``): checks of
    values run only where the values are known."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def _float_array(x) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(float))


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
        """Every action's reward per row, drawn by :meth:`draw_rewards` given its expected value."""
        return self.draw_rewards(key, self.expected_rewards(context), likelihood)

    def draw_rewards(
        self,
        key: PRNGKeyArray,
        expected: Float[Array, "n n_actions"],
        likelihood: Any,
        t: int | Int[ArrayLike, ""] | None = None,
    ) -> Array:
        """Rewards given their expected values in round ``t``: ``likelihood.sample`` (Bernoulli:
        0/1 draws), unless the environment has its own noise (:class:`GaussianRewardEnv`)."""
        return likelihood.sample(key, expected)

    def sample(
        self, key: PRNGKeyArray, n: int
    ) -> tuple[Float[Array, "n n_features"], Float[Array, "n n_actions"]]:
        """Contexts and their expected rewards; ``sample(key, n)[0] == sample_context(key, n)``."""
        context = self.sample_context(key, n)
        return context, self.expected_rewards(context)

    def sample_round(
        self, key: PRNGKeyArray, n: int, t: int | Int[ArrayLike, ""]
    ) -> tuple[Float[Array, "n n_features"], Float[Array, "n n_actions"]]:
        """Round ``t``'s contexts and expected rewards (``t`` may be traced); what
        :func:`~bandits_jax.simulation.round_draws` calls. A stationary environment ignores ``t``:
        this default is :meth:`sample`, so its simulations draw exactly what :meth:`sample` draws.
        """
        del t
        return self.sample(key, n)


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
        return _random.normal(key, (n, self.n_features), self._layers[0].dtype)  # flat: fast to compile


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


class QuadraticEnv(_GaussianContextEnv):
    """Quadratic logits per action: ``p(x, a) = sigmoid(x @ quad[a] @ x + x @ weight[:, a] + bias[a])``,
    ``x ~ N(0, I)``, each ``quad[a]`` symmetric.

    The quadratic form dominates (see :meth:`random`), so a linear model is misspecified: which
    action is best changes along curved boundaries, and a linear policy can only learn the
    average. Smaller than :class:`MLPEnv`'s network and with no saturating hidden layer.

    Examples:
        >>> import jax
        >>> env = QuadraticEnv.random(n_features=4, n_actions=3, key=jax.random.key(0))
        >>> env.quad.shape, env.reward_probs(env.sample_context(jax.random.key(1), 5)).shape
        ((3, 4, 4), (5, 3))
    """

    quad: Float[Array, "n_actions n_features n_features"]
    weight: Float[Array, "n_features n_actions"]
    bias: Float[Array, " n_actions"]

    @property
    def _layers(self) -> tuple[Array, Array]:
        return self.weight, self.weight

    def expected_rewards(self, context):
        quadratic = jnp.einsum("ni,aij,nj->na", context, self.quad, context)
        return jax.nn.sigmoid(quadratic + context @ self.weight + self.bias)

    @classmethod
    def random(
        cls,
        n_features: int,
        n_actions: int,
        *,
        key: PRNGKeyArray,
        quad_scale: float = 2.0,
        logit_scale: float = 1.0,
        bias_scale: float = 0.5,
    ) -> QuadraticEnv:
        """``quad[a] = (B + B.T) / 2`` with ``B`` i.i.d. ``N(0, s**2)``, ``s = quad_scale /
        sqrt(n_features * (n_features + 2))``, so the quadratic term has standard deviation about
        ``quad_scale`` over contexts and draws; linear weights ``N(0, logit_scale**2 / n_features)``
        and biases ``N(0, bias_scale**2)`` as :meth:`LogisticEnv.random`. Works under
        ``jax.vmap`` over keys."""
        q_key, w_key, b_key = jax.random.split(key, 3)
        b = jax.random.normal(q_key, (n_actions, n_features, n_features))
        quad = (b + jnp.swapaxes(b, -1, -2)) * (0.5 * quad_scale / math.sqrt(n_features * (n_features + 2)))
        weight = jax.random.normal(w_key, (n_features, n_actions)) * (logit_scale / math.sqrt(n_features))
        return cls(quad, weight, jax.random.normal(b_key, (n_actions,)) * bias_scale)


class ClassificationEnv(Environment):
    """A labelled data set as a bandit: context = a row's features, action = a class guess,
    reward 1 exactly when the guess is the row's label.

    Contexts are rows drawn uniformly with replacement. :meth:`sample` knows each drawn row's
    label; :meth:`expected_rewards` of an arbitrary context uses the label of its nearest row (exact for
    the data set's own rows, ``O(n x n_samples)``).

    Label noise: with probability ``label_noise`` (data, in ``[0, 1)``; it may be traced or vmapped)
    a round's reward is for a uniformly random class instead of the row's label, so the expected
    reward of guess ``a`` for a row of label ``y`` is ``(1 - label_noise) * [a == y] + label_noise /
    n_classes``. Those expected rewards are what :meth:`sample` and :meth:`expected_rewards` return
    (the likelihood then draws the 0/1 reward); the best guess is still the label. The default 0
    gives the one-hot labels exactly.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> env = ClassificationEnv.from_arrays(jnp.eye(3), jnp.array([2, 0, 1]), standardize=False)
        >>> env.reward_probs(jnp.eye(3)[:1]).tolist()
        [[0.0, 0.0, 1.0]]
        >>> noisy = ClassificationEnv.from_arrays(jnp.eye(3), [2, 0, 1], standardize=False, label_noise=0.3)
        >>> print(noisy.reward_probs(jnp.eye(3)[:1]))
        [[0.1 0.1 0.8]]
    """

    features: Float[Array, "n_samples n_features"]
    labels: Int[Array, " n_samples"]
    n_classes: int = eqx.field(static=True)
    label_noise: Float[Array, ""] = eqx.field(default=0.0, converter=_float_array)

    def __check_init__(self):
        noise = _concrete(self.label_noise)
        if noise is not None and not (noise.ndim == 0 and 0 <= noise < 1):
            raise ValueError(f"label_noise must be a float in [0, 1), got {noise!r}")

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

    def _label_rewards(self, labels):
        dtype = self.features.dtype
        noise = self.label_noise.astype(dtype)
        # With noise 0 this is x * 1 + 0 on 0/1 values: the one-hot labels bit for bit.
        return jax.nn.one_hot(labels, self.n_classes, dtype=dtype) * (1 - noise) + noise / self.n_classes

    def sample(self, key, n):
        rows = self._rows(key, n)
        return self.features[rows], self._label_rewards(self.labels[rows])

    def expected_rewards(self, context):
        dist = jnp.sum(jnp.square(context[:, None, :] - self.features[None, :, :]), axis=-1)
        return self._label_rewards(self.labels[jnp.argmin(dist, axis=1)])

    @classmethod
    def from_arrays(
        cls,
        features: ArrayLike | Sequence[Any],
        labels: ArrayLike | Sequence[Any],
        *,
        standardize: bool = True,
        label_noise: float | Float[ArrayLike, ""] = 0.0,
    ) -> ClassificationEnv:
        """Build from ``(n_samples, n_features)`` features and any hashable labels.

        Labels are mapped to ``0..n_classes-1`` in sorted order; ``standardize`` scales every column
        to mean 0 and standard deviation 1 (constant columns become 0); ``label_noise`` as in the
        class docstring.
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
        return cls(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), len(classes), label_noise)


def load_sklearn(
    name: str, *, standardize: bool = True, label_noise: float | Float[ArrayLike, ""] = 0.0
) -> ClassificationEnv:
    """A :class:`ClassificationEnv` from one of scikit-learn's bundled data sets (no download).

    Args:
        name: ``"digits"`` (64 features, 10 classes), ``"wine"`` (13, 3), ``"iris"`` (4, 3) or
            ``"breast_cancer"`` (30, 2).
        standardize: scale every feature column to mean 0, standard deviation 1.
        label_noise: the probability that a reward is for a random class (see
            :class:`ClassificationEnv`).

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
    return ClassificationEnv.from_arrays(
        data.data, data.target, standardize=standardize, label_noise=label_noise
    )


# ---------------------------------------------------------------------------------- the wheel
class WheelEnv(Environment):
    """The wheel bandit (Riquelme, Tucker & Snoek, 2018): contexts uniform in the unit disc, 5
    actions, and a high-reward outer ring that only exploration finds.

    Reward means, :meth:`reward_means` (exactly the paper's): action 0 always has mean ``mu_1``.
    Inside the disc of radius ``delta`` (``||x|| <= delta``) actions 1-4 have mean ``mu_2 < mu_1``, so
    action 0 is optimal. Outside it (``||x|| > delta``) the action of ``x``'s quadrant has mean
    ``mu_3 >> mu_1`` and the other three ``mu_2``: action 1 for ``x_1 > 0, x_2 > 0``, 2 for ``x_1 > 0,
    x_2 <= 0``, 3 for ``x_1 <= 0, x_2 > 0``, 4 for ``x_1 <= 0, x_2 <= 0`` (the order of the paper's
    reference code, ``sample_wheel_bandit_data``, shifted by one: there the safe action is the last).
    The paper's rewards are ``N(mean, std**2)`` (:meth:`sample_paper_rewards`), with ``mu = (1.2,
    1.0, 50)``, ``std = 0.01`` and ``delta`` in :data:`WHEEL_DELTAS`. What makes the wheel hard: a
    learner soon sees that action 0 beats actions 1-4 in most of the disc, stops trying them, and
    misses the ring, a fraction ``1 - delta**2`` of the contexts that shrinks as ``delta -> 1``.

    Bernoulli rewards: our likelihoods draw 0/1 rewards, so :meth:`expected_rewards` (a probability)
    is ``min(reward_means / bernoulli_scale, 1)``: ``mu_1 / s``, ``mu_2 / s`` and ``min(mu_3 / s,
    1)`` on the ring for ``s = bernoulli_scale``, the same regions, optimal actions and order. It
    saturates on the ring rather than being affine over all three levels because no affine map into
    ``[0, 1]`` keeps the wheel's trap: an affine map keeps the ratio ``(mu_3 - mu_1) / (mu_1 - mu_2) = 244``, so the inside gap would be at most
    ``1 / 244`` (``s = mu_3 = 50`` gives 0.024 / 0.02 / 1.0). Resolving a Bernoulli gap ``g`` near
    ``p`` takes about ``8 p (1 - p) / g**2`` draws per action: some ``10**4`` for that gap (one
    draw in the paper, where the gap is 20 noise standard deviations), so nothing would teach the
    learner that action 0 is the safe choice, and the trap would disappear. The default ``s = 2``
    gives 0.6 / 0.5 / 1.0: an inside gap of 0.1 (about 200 draws per action) and a ring still worth
    0.4 more than action 0. The price is the cost ratio: a missed ring context costs 4 inside
    mistakes, not 244. A larger ``s`` moves toward the paper's ratio ``(s - mu_1) / (mu_1 - mu_2)``
    at the price of a smaller gap ``(mu_1 - mu_2) / s`` (``s = 5``: 0.24 / 0.2 / 1.0, ratio 19).

    ``rewards="paper"`` plays the paper's wheel itself, for Gaussian rewards (a
    :class:`~bandits_jax.likelihoods.Gaussian` likelihood, e.g. ``CmabGaussian``):
    :meth:`expected_rewards` is then :meth:`reward_means` and the rewards are drawn as
    :meth:`sample_paper_rewards` does (another likelihood is refused).

    ``delta`` is data (traced under ``jit``, and ``jax.vmap`` can map over it); ``mu``, ``std``,
    ``bernoulli_scale`` and ``rewards`` are static. A ``delta`` with a leading axis is a stack of wheels for
    ``jax.vmap`` or :func:`~bandits_jax.simulation.sweep` (``env_axis=0``), e.g. :meth:`paper`.

    Args:
        delta: the inner radius, in ``(0, 1)`` (checked when it is concrete); or one per run.
        mu: the means ``(mu_1, mu_2, mu_3)``, with ``0 <= mu_2 < mu_1 < mu_3``.
        std: the standard deviation of the paper's Gaussian rewards (not used by Bernoulli rewards).
        bernoulli_scale: ``s`` above, greater than ``mu_1``.
        rewards: ``"bernoulli"`` (probabilities, above) or ``"paper"`` (the Gaussian rewards).

    Raises:
        ValueError: an argument outside its range, naming it.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> env = WheelEnv(0.5)
        >>> x = jnp.array([[0.1, 0.2], [0.6, -0.3], [-0.7, 0.1]])
        >>> print(env.reward_means(x))
        [[ 1.2  1.   1.   1.   1. ]
         [ 1.2  1.  50.   1.   1. ]
         [ 1.2  1.   1.  50.   1. ]]
        >>> print(env.expected_rewards(x))
        [[0.6 0.5 0.5 0.5 0.5]
         [0.6 0.5 1.  0.5 0.5]
         [0.6 0.5 0.5 1.  0.5]]
        >>> env.sample_context(jax.random.key(0), 4).shape
        (4, 2)

    References:
        Riquelme, Tucker & Snoek, "Deep Bayesian Bandits Showdown: An Empirical Comparison of
        Bayesian Deep Networks for Thompson Sampling", ICLR 2018 (the wheel bandit).
    """

    delta: Float[Array, "*runs"]
    mu: tuple[float, float, float] = eqx.field(static=True)
    std: float = eqx.field(static=True)
    bernoulli_scale: float = eqx.field(static=True)
    rewards: str = eqx.field(static=True)

    def __init__(
        self,
        delta: float | Sequence[float] | Real[ArrayLike, "*runs"],
        mu: Sequence[float] | Real[ArrayLike, "3"] = (1.2, 1.0, 50.0),
        std: float | Real[ArrayLike, ""] = 0.01,
        *,
        bernoulli_scale: float | Real[ArrayLike, ""] = 2.0,
        rewards: str = "bernoulli",
    ):
        if rewards not in ("bernoulli", "paper"):
            raise ValueError(f"rewards must be 'bernoulli' or 'paper', got {rewards!r}")
        d = _concrete(delta)
        if d is not None and not (d.size > 0 and np.all((d > 0) & (d < 1))):
            raise ValueError(f"delta must be in (0, 1) (exclusive), got {delta!r}")
        m = np.asarray(mu, dtype=np.float64)
        if m.shape != (3,) or not np.all(np.isfinite(m)) or not 0 <= m[1] < m[0] < m[2]:
            raise ValueError(f"mu must be three finite means with 0 <= mu_2 < mu_1 < mu_3, got {mu!r}")
        std = float(std)
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be finite and non-negative, got {std!r}")
        scale = float(bernoulli_scale)
        if not (math.isfinite(scale) and scale > m[0]):
            raise ValueError(f"bernoulli_scale must be finite and greater than mu_1 = {m[0]}, got {scale!r}")
        self.delta = _float_array(delta)
        self.mu = tuple(float(v) for v in m)
        self.std = std
        self.bernoulli_scale = scale
        self.rewards = rewards

    @property
    def n_actions(self) -> int:
        return 5

    @property
    def n_features(self) -> int:
        return 2

    @classmethod
    def paper(cls, deltas: Sequence[float] | Real[ArrayLike, " n"] = WHEEL_DELTAS, **kwargs: Any) -> WheelEnv:
        """The paper's wheels as one stack, a leading axis over ``deltas`` (default
        :data:`WHEEL_DELTAS`): for ``jax.vmap``, or for a sweep with ``env_axis=0`` and one run per
        delta (repeat them, ``np.repeat(WHEEL_DELTAS, n_seeds)``, for several seeds each)."""
        return cls(jnp.asarray(deltas), **kwargs)

    def sample_context(self, key, n):
        # Uniform in the disc: the radius's CDF is r**2, so r = sqrt(U); no rejection loop to jit.
        u = _random.uniform(key, (n, 2), self.delta.dtype)
        radius, angle = jnp.sqrt(u[:, 0]), 2 * jnp.pi * u[:, 1]
        return radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)

    def quadrant_action(self, context: Real[ArrayLike, "n 2"]) -> Int[Array, " n"]:
        """The ring action of each context's quadrant (1 to 4, see the class docstring)."""
        context = jnp.asarray(context)
        return (1 + 2 * (context[:, 0] <= 0) + (context[:, 1] <= 0)).astype(jnp.int32)

    def reward_means(self, context: Real[ArrayLike, "n 2"]) -> Float[Array, "n 5"]:
        """Each action's mean reward in the paper, per row."""
        context = jnp.asarray(context)
        dtype = jnp.result_type(context.dtype, self.delta.dtype)
        mu_1, mu_2, mu_3 = self.mu
        # ||x|| > delta as x.x > delta**2, both in one dtype: no square root, and exact on the axes.
        outside = jnp.sum(jnp.square(context.astype(dtype)), axis=-1) > jnp.square(self.delta.astype(dtype))
        ring = outside[:, None] & (jnp.arange(5) == self.quadrant_action(context)[:, None])
        base = jnp.where(jnp.arange(5) == 0, mu_1, mu_2).astype(dtype)
        return jnp.where(ring, jnp.asarray(mu_3, dtype), base)

    def expected_rewards(self, context):
        if self.rewards == "paper":
            return self.reward_means(context)
        return jnp.minimum(self.reward_means(context) / self.bernoulli_scale, 1)

    def draw_rewards(self, key, expected, likelihood, t=None):
        if self.rewards == "paper":  # N(mean, std**2), the paper's noise
            if getattr(likelihood, "name", None) != "gaussian":
                raise ValueError(
                    "WheelEnv(rewards='paper') draws real rewards: the policies need a Gaussian "
                    f"likelihood, not {likelihood!r} (use the default rewards='bernoulli' for theirs)"
                )
            return expected + self.std * _random.normal(key, expected.shape, expected.dtype)
        return likelihood.sample(key, expected)

    def sample_paper_rewards(self, key: PRNGKeyArray, context: Real[ArrayLike, "n 2"]) -> Float[Array, "n 5"]:
        """Every action's reward per row as in the paper, ``N(reward_means, std**2)``."""
        means = self.reward_means(context)
        return means + self.std * _random.normal(key, means.shape, means.dtype)


# ---------------------------------------------------------------------------------- non-stationary
class PiecewiseEnv(Environment):
    """A piecewise-stationary environment: ``n_pieces`` environments of one class, each played for
    ``period`` rounds in turn; round ``t`` plays piece ``(t // period) % n_pieces`` (cycling).

    The round reaches the environment through :meth:`sample_round` (what
    :func:`~bandits_jax.simulation.round_draws` calls), so a simulation's regret is measured against
    the piece in play. :meth:`sample`, :meth:`sample_context` and :meth:`expected_rewards`, which
    have no round, are piece 0's (round 0's); :meth:`expected_rewards_at` takes the round.

    Args:
        pieces: one environment whose every leaf has a leading axis of ``n_pieces`` (e.g.
            ``jax.vmap`` over a constructor), or a sequence of environments of one class and equal
            shapes (stacked here).
        period: rounds per piece, a positive int (static).

    Examples:
        >>> import jax
        >>> env = PiecewiseEnv.random(n_features=2, n_actions=3, n_pieces=2, period=10, key=jax.random.key(0))
        >>> env.n_pieces, [int(env.piece_index(t)) for t in (0, 9, 10, 25)]
        (2, [0, 0, 1, 0])
        >>> ctx, expected = env.sample_round(jax.random.key(1), 4, 10)
        >>> bool((expected == env.expected_rewards_at(ctx, 10)).all())
        True
    """

    pieces: Environment
    period: int = eqx.field(static=True)
    n_pieces: int = eqx.field(static=True)

    # eqx.Module, not Environment, in the hint: a doctest run imports this file a second time, and
    # the hint's Environment would be the other copy's. The isinstance checks below are exact.
    def __init__(self, pieces: eqx.Module | Sequence[eqx.Module], period: int | np.integer):
        if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1:
            raise ValueError(f"period must be a positive int, got {period!r}")
        if isinstance(pieces, Environment):
            leaves = jax.tree.leaves(pieces)
            sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
            if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
                raise ValueError(
                    "pieces must be a sequence of environments, or one whose every leaf has the same "
                    f"non-empty leading axis (one entry per piece); got leaf shapes {[np.shape(x) for x in leaves]}"
                )
            stacked, n_pieces = pieces, sizes.pop()
        else:
            pieces = tuple(pieces)
            if not pieces or not all(isinstance(p, Environment) for p in pieces):
                raise ValueError(f"pieces must be a non-empty sequence of environments, got {pieces!r}")
            first = pieces[0]
            structure = jax.tree.structure(first)
            shapes = [np.shape(x) for x in jax.tree.leaves(first)]
            for i, piece in enumerate(pieces):
                if type(piece) is not type(first) or jax.tree.structure(piece) != structure:
                    raise ValueError(
                        f"pieces must share one class and settings; piece {i} differs from piece 0"
                    )
                if [np.shape(x) for x in jax.tree.leaves(piece)] != shapes:
                    raise ValueError(f"pieces must have equal shapes; piece {i} differs from piece 0")
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *pieces)
            n_pieces = len(pieces)
        self.pieces = stacked
        self.period = int(period)
        self.n_pieces = int(n_pieces)

    @classmethod
    def random(
        cls,
        n_features: int,
        n_actions: int,
        n_pieces: int,
        period: int,
        *,
        key: PRNGKeyArray,
        **kwargs: Any,
    ) -> PiecewiseEnv:
        """``n_pieces`` independent :meth:`LogisticEnv.random` pieces (``kwargs`` go to it), from
        ``split(key, n_pieces)``. Works under ``jax.vmap`` over keys."""
        keys = jax.random.split(key, n_pieces)
        return cls(
            jax.vmap(lambda k: LogisticEnv.random(n_features, n_actions, key=k, **kwargs))(keys), period
        )

    def piece_index(self, t: int | Int[ArrayLike, ""]) -> Int[Array, ""]:
        """The piece that round ``t`` plays, ``(t // period) % n_pieces``."""
        return (jnp.asarray(t, jnp.int32) // self.period) % self.n_pieces

    def piece(self, i: int | Int[ArrayLike, ""]) -> Environment:
        """Piece ``i`` as an environment of its own (``i`` may be traced)."""
        return jax.tree.map(lambda x: x[i], self.pieces)

    @property
    def n_actions(self) -> int:
        return self.piece(0).n_actions

    @property
    def n_features(self) -> int:
        return self.piece(0).n_features

    def sample_context(self, key, n):
        return self.piece(0).sample_context(key, n)

    def expected_rewards(self, context):
        return self.piece(0).expected_rewards(context)

    def sample(self, key, n):
        return self.piece(0).sample(key, n)

    def sample_round(self, key, n, t):
        return self.piece(self.piece_index(t)).sample_round(key, n, t)

    def draw_rewards(self, key, expected, likelihood, t=None):
        """The rewards of the piece in play in round ``t`` (piece 0 without a round)."""
        return self.piece(0 if t is None else self.piece_index(t)).draw_rewards(key, expected, likelihood, t)

    def expected_rewards_at(
        self, context: Float[ArrayLike, "n n_features"], t: int | Int[ArrayLike, ""]
    ) -> Float[Array, "n n_actions"]:
        """Each action's expected reward, per row, in round ``t``."""
        return self.piece(self.piece_index(t)).expected_rewards(jnp.asarray(context))


class GaussianRewardEnv(Environment):
    """Any environment with real rewards: ``expected + noise_std * N(0, 1)`` per row and action,
    whatever the policies' likelihood (for :class:`~bandits_jax.likelihoods.Gaussian` rewards,
    e.g. ``CmabGaussian``). ``scale`` and ``shift`` map the base's expected rewards (e.g. a
    logistic environment's probabilities) to ``shift + scale * expected``.

    Examples:
        >>> import jax
        >>> env = GaussianRewardEnv(LogisticEnv.random(2, 3, key=jax.random.key(0)), noise_std=0.5, scale=10.0)
        >>> ctx, expected = env.sample(jax.random.key(1), 4)
        >>> expected.shape, bool((expected >= 0).all() & (expected <= 10).all())
        ((4, 3), True)
    """

    base: Environment
    noise_std: Float[Array, ""]
    scale: Float[Array, ""]
    shift: Float[Array, ""]

    def __init__(
        self, base: Environment, noise_std: float | Float[ArrayLike, ""] = 1.0, scale=1.0, shift=0.0
    ):
        if not isinstance(base, Environment):
            raise TypeError(f"base must be an Environment, got {base!r}")
        for name, value in (("noise_std", noise_std), ("scale", scale), ("shift", shift)):
            concrete = _concrete(value)
            if concrete is not None and (concrete.shape != () or not np.isfinite(concrete)):
                raise ValueError(f"{name} must be a finite scalar, got {value!r}")
            if concrete is not None and name == "noise_std" and concrete < 0:
                raise ValueError(f"noise_std must be >= 0, got {value!r}")
        self.base = base
        self.noise_std = _float_array(noise_std)
        self.scale = _float_array(scale)
        self.shift = _float_array(shift)

    @property
    def n_actions(self) -> int:
        return self.base.n_actions

    @property
    def n_features(self) -> int:
        return self.base.n_features

    def sample_context(self, key, n):
        return self.base.sample_context(key, n)

    def expected_rewards(self, context):
        return self.shift + self.scale * self.base.expected_rewards(context)

    def sample_round(self, key, n, t):
        context, expected = self.base.sample_round(key, n, t)
        return context, self.shift + self.scale * expected

    def draw_rewards(self, key, expected, likelihood, t=None):
        noise = _random.normal(key, expected.shape, expected.dtype)
        return expected + self.noise_std.astype(expected.dtype) * noise
