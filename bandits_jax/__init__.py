"""bandits_jax: JAX-accelerated contextual bandits with Bayesian-neural-network arms.

Public API: :class:`~bandits_jax.cmab.CmabBernoulli`, :class:`~bandits_jax.smab.SmabBernoulli`,
the strategies in :mod:`bandits_jax.strategy`, the functional core in :mod:`bandits_jax.core`, and
simulated experiments and sweeps in :mod:`bandits_jax.simulation`, offline policy evaluation in
:mod:`bandits_jax.ope`.
Importing the package changes no global JAX setting.
"""

import importlib.metadata

from bandits_jax import core, ope, simulation, strategy
from bandits_jax.cmab import ActionView, CmabBernoulli, SviDivergenceWarning
from bandits_jax.compilation_cache import enable_compilation_cache
from bandits_jax.config import CmabConfig
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit

__version__ = importlib.metadata.version("bandits_jax")  # one source: pyproject.toml

__all__ = [
    "ActionView",
    "BestActionIdentificationBandit",
    "ClassicBandit",
    "CmabBernoulli",
    "CmabConfig",
    "SmabBernoulli",
    "SviDivergenceWarning",
    "core",
    "enable_compilation_cache",
    "ope",
    "simulation",
    "strategy",
    "__version__",
]
