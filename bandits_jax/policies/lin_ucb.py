"""Disjoint LinUCB: an upper confidence bound on each action's linear score, on the sufficient
statistics of linear Thompson sampling (:mod:`bandits_jax.policies.linear_ts`).

Each action's posterior ``w_a ~ N(m_a, S_a)`` is exactly linear TS's (the same streaming Laplace
update, run by the same compiled function). Instead of a draw, a row ``x~ = [x, 1]`` scores action
``a`` by its optimistic bound on the likelihood's link scale (the logit for Bernoulli rewards),

``score(x, a) = x~ @ m_a + alpha_a * sqrt(x~^T S_a x~)``,

and the strategy picks from ``likelihood.mean(score)`` (ClassicBandit: the argmax). With Gaussian
rewards and noise variance 1 this is the disjoint LinUCB of Li et al. (``S_a = inv(A_a)`` with
``A_a = I + sum x~ x~^T``; :class:`~bandits_jax.likelihoods.Gaussian` rewards use linear TS's
Normal-inverse-gamma posterior, the bound's variance ``E[sigma**2] x~^T S_a x~`` in standardised
units mapped back to rewards); with Bernoulli rewards it is the Laplace-approximate UCB of the
generalised linear bandit. ``alpha`` (the width of the bound) is *data* in the state, one per
action, so a sweep over it compiles nothing. The prediction is deterministic given the state: the
key only feeds the strategy.

References:
    L. Li, W. Chu, J. Langford and R. E. Schapire, "A Contextual-Bandit Approach to Personalized
    News Article Recommendation", WWW 2010 (Algorithm 1).
    L. Li, Y. Lu and D. Zhou, "Provably Optimal Algorithms for Generalized Linear Contextual
    Bandits", ICML 2017.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from bandits_jax.policies import Feedback
    >>> from bandits_jax.policies.lin_ucb import LinUCB
    >>> policy = LinUCB(n_features=2)
    >>> state = policy.init(3, sigma=1.0, alpha=1.0)
    >>> fb = Feedback(jnp.ones((4, 2)), jnp.array([0, 0, 1, 1]), jnp.zeros(4), jnp.ones(4, bool))
    >>> state, info = policy.update(jax.random.key(0), state, fb)
    >>> pred = policy.predict(jax.random.key(1), state, jnp.ones((1, 2)))
    >>> pred.actions.tolist()  # 0 and 1 failed; 2 is untried: the widest bound wins
    [2]
    >>> state.alpha.tolist(), state.posterior.cov.shape
    ([1.0, 1.0, 1.0], (3, 3, 3))
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from bandits_jax.likelihoods import Bernoulli, Gaussian
from bandits_jax.policies import linear_ts
from bandits_jax.policies.base import GroupedFeedback, PolicyBase, Prediction, UpdateInfo, select
from bandits_jax.policies.linear_ts import LinearTS, LinearTSState
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = ["LinUCB", "LinUCBState"]


class LinUCBState(NamedTuple):
    """Linear TS's posterior of every action and the width ``alpha`` of each action's bound."""

    posterior: LinearTSState
    alpha: Float[Array, " n_actions"]

    @property
    def n_actions(self) -> int:
        return self.alpha.shape[0]


@dataclasses.dataclass(frozen=True)
class LinUCB(PolicyBase):
    """Disjoint LinUCB on linear TS's posterior (streaming Laplace; Normal-inverse-gamma with
    Gaussian rewards) (static settings).

    Attributes:
        n_features: context columns (an intercept is appended when ``fit_intercept``).
        newton_steps: damped Newton iterations per update (as :class:`LinearTS`).
        fit_intercept: append a constant 1 to every context.
        likelihood: the reward model; the bound is on its link scale.
    """

    n_features: int
    newton_steps: int = 20
    fit_intercept: bool = True
    likelihood: Bernoulli | Gaussian = Bernoulli()

    def __post_init__(self):
        self.posterior_policy  # noqa: B018 (validates the settings as LinearTS does)

    @property
    def posterior_policy(self) -> LinearTS:
        """The linear TS whose posterior this policy keeps: equal settings, so both share the
        compiled update."""
        return LinearTS(self.n_features, self.newton_steps, self.fit_intercept, self.likelihood)

    @property
    def dim(self) -> int:
        return self.posterior_policy.dim

    @classmethod
    def example(cls, n_features: int) -> LinUCB:
        """A small instance (5 Newton steps), for tests and demos."""
        return cls(n_features, newton_steps=5)

    def init(
        self,
        n_actions: int,
        sigma: ArrayLike = 1.0,
        alpha: ArrayLike = 1.0,
        dtype=None,
        *,
        a0: ArrayLike | None = None,
        b0: ArrayLike | None = None,
        **reward_data: Any,
    ) -> LinUCBState:
        """The prior ``N(0, sigma**2 I)`` of every action (as :meth:`LinearTS.init`, with its
        Gaussian-only ``a0``, ``b0`` and ``reward_data``) and the bound's width ``alpha >= 0`` (a
        scalar, or one per action). All are data: new values compile nothing (a scalar and a
        per-action ``alpha`` are two shapes, so two compilations)."""
        _check_alpha(alpha)
        posterior = self.posterior_policy.init(n_actions, sigma, dtype, a0=a0, b0=b0, **reward_data)
        return _with_alpha(posterior, jnp.asarray(alpha))

    def predict(
        self,
        key: PRNGKeyArray,
        state: LinUCBState,
        context: Float[ArrayLike, "n_rows n_features"],
        strategy: Strategy = ClassicBandit(),
        action_mask: Bool[Array, " n_actions"] | None = None,
    ) -> Prediction:
        """Every row's upper confidence bound per action: ``logits`` is the bound on the link scale,
        ``probs`` its mean reward and ``mean_probs`` the posterior mean's (the key only feeds the
        strategy)."""
        return _predict(self, key, state, context, strategy, action_mask)

    def update_grouped(
        self, key: PRNGKeyArray, state: LinUCBState, grouped: GroupedFeedback
    ) -> tuple[LinUCBState, UpdateInfo]:
        """Linear TS's update of every action's posterior (streaming Laplace; with Gaussian
        rewards the conjugate one; ``alpha`` unchanged; the key is unused)."""
        posterior, info = linear_ts._update_grouped(self.posterior_policy, state.posterior, grouped)
        return LinUCBState(posterior, state.alpha), info


def _check_alpha(alpha) -> None:
    if isinstance(alpha, jax.core.Tracer):  # traced (a sweep over alpha): checked by nobody
        return
    value = np.asarray(alpha, dtype=float)
    if not (np.isfinite(value) & (value >= 0)).all():
        raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")


@jax.jit
def _with_alpha(posterior: LinearTSState, alpha) -> LinUCBState:
    alpha = jnp.broadcast_to(alpha.astype(posterior.mean.dtype), posterior.mean.shape[:1])
    return LinUCBState(posterior, alpha)


@partial(jax.jit, static_argnums=(0,))
def _predict(policy: LinUCB, key, state: LinUCBState, context, strategy, action_mask) -> Prediction:
    post = state.posterior
    x = linear_ts._design(context, policy.fit_intercept, post.mean.dtype)
    mean, sd = linear_ts.score_moments(x, post.mean, post.cov)
    if post.noise is not None:  # Gaussian rewards: the weights' covariance is sigma**2 cov
        sd = sd * jnp.sqrt(post.noise.b / (post.noise.a - 1)).astype(sd.dtype)
    lik = policy.likelihood
    # on the reward scale (Gaussian rewards are fitted standardised; Bernoulli: the logit itself)
    logits, mean = lik.scores(post.stats, mean + state.alpha * sd), lik.scores(post.stats, mean)
    return select(logits, lik.mean(logits), lik.mean(mean), key, strategy, action_mask)
