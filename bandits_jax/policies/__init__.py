"""Policies on one contract (:mod:`bandits_jax.policies.base`): one module per algorithm and one
registry line each.

Examples:
    >>> from bandits_jax import policies
    >>> sorted(policies.REGISTRY)
    ['beta_bernoulli', 'bnn_ts', 'ensemble', 'epsilon_greedy', 'forgetting', 'lin_ucb', 'linear_ts', 'neural_linear', 'uniform']
"""

from bandits_jax.policies.base import Feedback, GroupedFeedback, Policy, PolicyBase, Prediction, UpdateInfo
from bandits_jax.policies.beta_bernoulli import BetaBernoulli
from bandits_jax.policies.bnn_ts import BnnReplayState, BnnState, BnnTS, Network, SviSettings
from bandits_jax.policies.ensemble import Ensemble, EnsembleState
from bandits_jax.policies.epsilon_greedy import EpsilonGreedy, EpsilonGreedyState
from bandits_jax.policies.forgetting import Forgetting, ForgettingState
from bandits_jax.policies.lin_ucb import LinUCB, LinUCBState
from bandits_jax.policies.linear_ts import LinearTS
from bandits_jax.policies.multi_objective import MultiObjective
from bandits_jax.policies.neural_linear import NeuralLinear, NeuralLinearState
from bandits_jax.policies.uniform import Uniform

# One line per algorithm: name -> the policy class (built with its own settings).
REGISTRY = {
    "bnn_ts": BnnTS,
    "linear_ts": LinearTS,
    "lin_ucb": LinUCB,
    "epsilon_greedy": EpsilonGreedy,
    "ensemble": Ensemble,
    "neural_linear": NeuralLinear,
    "beta_bernoulli": BetaBernoulli,
    "uniform": Uniform,
    "forgetting": Forgetting,
}

__all__ = [
    "REGISTRY",
    "BetaBernoulli",
    "BnnReplayState",
    "BnnState",
    "BnnTS",
    "Ensemble",
    "EnsembleState",
    "EpsilonGreedy",
    "EpsilonGreedyState",
    "Feedback",
    "Forgetting",
    "ForgettingState",
    "GroupedFeedback",
    "LinUCB",
    "LinUCBState",
    "LinearTS",
    "MultiObjective",
    "Network",
    "NeuralLinear",
    "NeuralLinearState",
    "Policy",
    "PolicyBase",
    "Prediction",
    "SviSettings",
    "Uniform",
    "UpdateInfo",
]
