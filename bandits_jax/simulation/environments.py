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
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

SKLEARN_DATASETS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
}


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
