"""Static configuration of a CMAB: network structure, prior and SVI settings.

`CmabConfig` is a frozen, hashable dataclass, passed to the jitted functions as a static argument:
two models with equal configurations share their compiled code.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import optax

from bandits_jax.bnn import ACTIVATIONS

DIST_TYPES = ("normal", "studentt")
DEFAULT_DIST_PARAMS = {"mu": 0.0, "sigma": 10.0, "nu": 5.0}
# Keys follow PyBandits' update_kwargs where they exist.
UPDATE_KEYS = (
    "num_steps",
    "batch_size",
    "optimizer_type",
    "optimizer_kwargs",
    "num_particles",
    "gradient_clip_norm",
)


@dataclasses.dataclass(frozen=True)
class CmabConfig:
    """Everything about a CMAB that is fixed at compile time.

    Defaults of the SVI settings, and why:
        num_steps=1000: enough Adam steps to converge from a cold prior on a few hundred rows; the
            tutorial's 200 also learns visibly with the default step size.
        step_size=0.1: the guide starts at the prior (sigma=10, log-scale 2.3) and must travel to
            a posterior scale of a few tenths (log-scale about -1.5) within 200 steps; Adam moves a
            parameter by at most about ``step_size`` per step and less under gradient noise, so
            smaller steps leave the posterior far too wide after 200 steps (measured on the
            tutorial's data: scales 3x the converged ones at 0.05, 2x at 0.1), while larger ones
            make the final iterate noisy. PyBandits' 0.001 barely moves the posterior.
        num_particles=1, batch_size=None (full batch), gradient_clip_norm=None, optimizer "adam".
    """

    n_features: int
    hidden_dim_list: tuple[int, ...] = ()
    activation: str = "tanh"
    use_residual_connections: bool = False
    dist_type: str = "normal"
    mu: float = 0.0
    sigma: float = 10.0
    nu: float = 5.0
    num_steps: int = 1000
    step_size: float = 0.1
    optimizer_type: str = "adam"
    optimizer_kwargs: tuple[tuple[str, Any], ...] = ()
    batch_size: int | None = None
    num_particles: int = 1
    gradient_clip_norm: float | None = None

    def __post_init__(self):
        _check_positive_int("n_features", self.n_features)
        if not isinstance(self.hidden_dim_list, tuple):
            raise TypeError(f"hidden_dim_list must be a tuple here, got {self.hidden_dim_list!r}")
        for w in self.hidden_dim_list:
            _check_positive_int("hidden_dim_list", w)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.use_residual_connections, bool):
            raise TypeError(f"use_residual_connections must be a bool, got {self.use_residual_connections!r}")
        if self.dist_type not in DIST_TYPES:
            raise ValueError(f"dist_type must be one of {list(DIST_TYPES)}, got {self.dist_type!r}")
        _check_finite("dist_params_init['mu']", self.mu)
        _check_finite("dist_params_init['sigma']", self.sigma, positive=True)
        _check_finite("dist_params_init['nu']", self.nu, positive=True)
        _check_positive_int("update_kwargs['num_steps']", self.num_steps)
        _check_finite("update_kwargs['optimizer_kwargs']['step_size']", self.step_size, positive=True)
        if not hasattr(optax, self.optimizer_type) or not callable(getattr(optax, self.optimizer_type)):
            raise ValueError(
                f"update_kwargs['optimizer_type'] must name an optax optimizer such as 'adam', "
                f"got {self.optimizer_type!r}"
            )
        if self.batch_size is not None:
            _check_positive_int("update_kwargs['batch_size']", self.batch_size)
        _check_positive_int("update_kwargs['num_particles']", self.num_particles)
        if self.gradient_clip_norm is not None:
            _check_finite("update_kwargs['gradient_clip_norm']", self.gradient_clip_norm, positive=True)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.n_features, *self.hidden_dim_list, 1)

    @property
    def update_kwargs(self) -> dict[str, Any]:
        """The SVI settings in PyBandits' ``update_kwargs`` form."""
        return {
            "num_steps": self.num_steps,
            "batch_size": self.batch_size,
            "optimizer_type": self.optimizer_type,
            "optimizer_kwargs": {"step_size": self.step_size, **dict(self.optimizer_kwargs)},
            "num_particles": self.num_particles,
            "gradient_clip_norm": self.gradient_clip_norm,
        }

    @property
    def dist_params_init(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma, "nu": self.nu}


def make_config(
    n_features: int,
    hidden_dim_list: Sequence[int] | None = None,
    activation: str = "tanh",
    use_residual_connections: bool = False,
    dist_type: str = "normal",
    dist_params_init: Mapping[str, float] | None = None,
    update_kwargs: Mapping[str, Any] | None = None,
) -> CmabConfig:
    """Build a :class:`CmabConfig` from PyBandits-style arguments, validating every one.

    Raises:
        ValueError / TypeError naming the argument (and the key, for dicts) on bad input.
    """
    if hidden_dim_list is None:
        hidden = ()
    elif isinstance(hidden_dim_list, (str, bytes)) or not isinstance(hidden_dim_list, Sequence):
        raise TypeError(f"hidden_dim_list must be None or a list of positive ints, got {hidden_dim_list!r}")
    else:
        hidden = tuple(hidden_dim_list)
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a str, got {activation!r}")
    if not isinstance(dist_type, str):
        raise TypeError(f"dist_type must be a str, got {dist_type!r}")
    dist_params = dict(DEFAULT_DIST_PARAMS)
    if dist_params_init is not None:
        if not isinstance(dist_params_init, Mapping):
            raise TypeError(f"dist_params_init must be a dict, got {dist_params_init!r}")
        unknown = set(dist_params_init) - set(DEFAULT_DIST_PARAMS)
        if unknown:
            raise ValueError(
                f"dist_params_init has unknown key(s) {sorted(map(str, unknown))}; "
                f"expected some of {list(DEFAULT_DIST_PARAMS)}"
            )
        dist_params.update(dist_params_init)
    upd = _parse_update_kwargs(update_kwargs)
    return CmabConfig(
        n_features=n_features,
        hidden_dim_list=hidden,
        activation=activation,
        use_residual_connections=use_residual_connections,
        dist_type=dist_type,
        mu=dist_params["mu"],
        sigma=dist_params["sigma"],
        nu=dist_params["nu"],
        **upd,
    )


def _parse_update_kwargs(update_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if update_kwargs is None:
        return {}
    if not isinstance(update_kwargs, Mapping):
        raise TypeError(f"update_kwargs must be a dict, got {update_kwargs!r}")
    unknown = set(update_kwargs) - set(UPDATE_KEYS)
    if unknown:
        raise ValueError(
            f"update_kwargs has unknown key(s) {sorted(map(str, unknown))}; expected some of {list(UPDATE_KEYS)}"
        )
    out = {k: v for k, v in update_kwargs.items() if k != "optimizer_kwargs"}
    opt_kwargs = update_kwargs.get("optimizer_kwargs") or {}
    if not isinstance(opt_kwargs, Mapping):
        raise TypeError(f"update_kwargs['optimizer_kwargs'] must be a dict, got {opt_kwargs!r}")
    opt_kwargs = dict(opt_kwargs)
    if "step_size" in opt_kwargs:
        out["step_size"] = opt_kwargs.pop("step_size")
    if "learning_rate" in opt_kwargs:
        raise ValueError("update_kwargs['optimizer_kwargs'] takes 'step_size', not 'learning_rate'")
    out["optimizer_kwargs"] = tuple(sorted(opt_kwargs.items()))
    return out


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_finite(name: str, value: Any, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value!r}")
