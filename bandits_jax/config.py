"""Configuration of a CMAB: network structure, prior and SVI settings.

`CmabConfig` is the whole configuration in one frozen, hashable dataclass (the object API's
``config``). It splits into the parts that change the compiled program, :class:`Network` and
:class:`SviSettings` (plus the prior *family*), which the policy
(:class:`~bandits_jax.policies.BnnTS`) holds as static settings, and the prior's values ``mu`` and
``sigma``, which are data: a new ``sigma`` compiles nothing.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, no_type_check

import jax
import jax.numpy as jnp
import numpy as np
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
    "init_scale",
    "kl_annealing_fraction",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "restore_best_svi_state",
    "early_stopping_kwargs",
    "epochs",
)
# PyBandits' EarlyStopping defaults
EARLY_STOPPING_DEFAULTS = {"patience": 10, "tolerance": 1e-4, "diff_type": "relative"}


class _Names:
    """How validation errors name the settings: a setting is named by its :class:`CmabConfig`
    field unless ``overrides`` spells it otherwise."""

    __slots__ = ("overrides",)

    def __init__(self, overrides: Mapping[str, str] | None = None):
        self.overrides = dict(overrides or {})

    def __call__(self, field: str) -> str:
        return self.overrides.get(field, field)


# A CmabConfig built directly (or through BnnTS / SviSettings) names its own fields; make_config,
# which takes PyBandits' arguments, names them as the user wrote them. Either way construction is
# the one validation: make_config sets the names for the CmabConfig it builds (see _ERROR_NAMES).
_CORE_NAMES = _Names()
_PYBANDITS_NAMES = _Names(
    {
        **{k: f"dist_params_init[{k!r}]" for k in DEFAULT_DIST_PARAMS},
        **{k: f"update_kwargs[{k!r}]" for k in UPDATE_KEYS},
        "step_size": "update_kwargs['optimizer_kwargs']['step_size']",
    }
)
_ERROR_NAMES: contextvars.ContextVar[_Names] = contextvars.ContextVar(
    "bandits_jax_config_error_names", default=_CORE_NAMES
)


@dataclasses.dataclass(frozen=True)
class Network:
    """The Bayesian MLP's structure (validated with the rest by :class:`CmabConfig`)."""

    n_features: int
    hidden_dim_list: tuple[int, ...] = ()
    activation: str = "tanh"
    use_residual_connections: bool = False


#: The default ``init_scale`` (see :class:`CmabConfig` for the measurement behind it).
DEFAULT_INIT_SCALE = 0.1


@dataclasses.dataclass(frozen=True)
class SviSettings:
    """The SVI settings that shape the compiled fit (see :class:`CmabConfig` for the defaults and
    why)."""

    num_steps: int = 1000
    step_size: float = 0.1
    optimizer_type: str = "adam"
    optimizer_kwargs: tuple[tuple[str, Any], ...] = ()
    batch_size: int | None = None
    num_particles: int = 1
    gradient_clip_norm: float | None = None
    init_scale: float | None = DEFAULT_INIT_SCALE
    kl_annealing_fraction: float | None = None
    lr_scheduler_type: str | None = None
    lr_scheduler_kwargs: tuple[tuple[str, Any], ...] = ()
    restore_best_svi_state: bool = False
    early_stopping_kwargs: tuple[tuple[str, Any], ...] | None = None
    epochs: int | None = None


# The field annotations are the normalised types; __init__ takes wider input on purpose (NumPy
# scalars, a dict of optimizer_kwargs) and checks it itself in __post_init__, naming the setting.
@no_type_check
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
        init_scale=0.1: each fit starts the guide at a draw of the current posterior narrowed to
            scales of at most 0.1 (None: at the posterior itself). A cold hidden layer started at its
            prior mean is symmetric (every unit gets the same gradient) and at sigma 10 far too
            wide; a linear model loses nothing. Measured with the README's learning table (10
            seeds, 5 rounds x 50 rows, 100 steps; paired against None, then again on the held-out
            seeds 10-19): non-linear environment (a hidden layer of 16) -12.2 +- 5.1 and -12.6 +-
            5.9 regret, logistic (linear model) +0.1 +- 1.0 and -0.1 +- 1.9, digits -2.5 +- 5.2 and
            -0.5 +- 4.7; at 20 rounds x 100 rows and 1000 steps on the non-linear one -8.6 +- 12.2
            and -8.4 +- 6.1. Step size 0.01 on top helps at 100 steps (-28.8) but not at 1000
            (+12.3 +- 14.8), so it stays 0.1. Files saved before this setting existed load with
            None, as they ran.
        num_particles=1, batch_size=None (full batch), gradient_clip_norm=None, optimizer "adam".

    Construction validates everything, the optimizer included: ``optax.<optimizer_type>`` is built
    with ``learning_rate=step_size`` and ``optimizer_kwargs`` (see :func:`optimizer`) and its
    ``init``/``update`` are traced with :func:`jax.eval_shape` on the fit's ``(2, n_weights)``
    parameter array (no compilation); the updates must keep that shape and dtype. A bad optimizer is
    refused here, naming ``optimizer_type`` or the offending ``optimizer_kwargs[key]``, not at the
    first update.

    Errors name the fields (``num_steps``, ``sigma``, ``optimizer_kwargs['b1']``, ...); built by
    :func:`make_config` they name PyBandits' arguments instead (``update_kwargs['num_steps']``,
    ``dist_params_init['sigma']``, ``update_kwargs['optimizer_kwargs']['b1']``, ...).

    NumPy scalars become Python ``int``/``float``/``bool`` (also inside ``optimizer_kwargs``, whose
    lists become tuples and which is stored sorted by key), so every configuration is hashable,
    saves as JSON, and equals the one built from plain Python values. ``optimizer_kwargs`` values
    must therefore be JSON data: numbers, strings, bools, None, or lists/tuples of those.
    """

    n_features: int
    hidden_dim_list: tuple[int, ...] = ()
    activation: str = "tanh"
    use_residual_connections: bool = False
    dist_type: str = "normal"
    mu: float = 0.0
    sigma: float = 10.0
    nu: float = 5.0
    use_layerwise_scaling: bool = False
    bias_std: float | None = None
    calibrate_output_bias: bool = False
    use_soft_rewards: bool = False
    decay_factor: float | None = None
    reward_type: str = "bernoulli"
    fit_reward_standardization: bool = False
    reward_loc: float | None = None
    reward_scale: float | None = None
    noise_sigma: float | None = None
    noise_log_sigma_prior_std: float = 0.5
    n_objectives: int | None = None
    num_steps: int = 1000
    step_size: float = 0.1
    optimizer_type: str = "adam"
    optimizer_kwargs: tuple[tuple[str, Any], ...] = ()
    batch_size: int | None = None
    num_particles: int = 1
    gradient_clip_norm: float | None = None
    init_scale: float | None = DEFAULT_INIT_SCALE
    kl_annealing_fraction: float | None = None
    lr_scheduler_type: str | None = None
    lr_scheduler_kwargs: tuple[tuple[str, Any], ...] = ()
    restore_best_svi_state: bool = False
    early_stopping_kwargs: tuple[tuple[str, Any], ...] | None = None
    epochs: int | None = None

    def __post_init__(self):
        name = _ERROR_NAMES.get()  # how errors name the settings (make_config: PyBandits' names)
        # NumPy scalars -> Python scalars first: hashing, equality and JSON then see plain values.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "optimizer_kwargs":
                value = _plain_optimizer_kwargs(value, name)
            elif field.name == "early_stopping_kwargs":
                value = None if value is None else _plain_early_stopping(value, name)
            elif field.name == "lr_scheduler_kwargs":
                value = _plain_optimizer_kwargs(
                    value, name, field="lr_scheduler_kwargs", reserved=("init_value",)
                )
            elif field.name == "hidden_dim_list" and isinstance(value, tuple):
                value = tuple(_plain_scalar(w) for w in value)
            else:
                value = _plain_scalar(value)
            object.__setattr__(self, field.name, value)
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
        _check_finite(name("mu"), self.mu)
        _check_finite(name("sigma"), self.sigma, positive=True)
        _check_finite(name("nu"), self.nu, positive=True)
        if not isinstance(self.use_layerwise_scaling, bool):
            raise TypeError(f"use_layerwise_scaling must be a bool, got {self.use_layerwise_scaling!r}")
        if self.bias_std is not None:
            _check_finite("bias_std", self.bias_std, positive=True)
        if not isinstance(self.calibrate_output_bias, bool):
            raise TypeError(f"calibrate_output_bias must be a bool, got {self.calibrate_output_bias!r}")
        if not isinstance(self.use_soft_rewards, bool):
            raise TypeError(f"use_soft_rewards must be a bool, got {self.use_soft_rewards!r}")
        if self.decay_factor is not None:
            from bandits_jax._validation import check_decay_factor

            check_decay_factor(self.decay_factor)
            object.__setattr__(self, "decay_factor", float(self.decay_factor))
        _check_reward_model(self)
        _check_positive_int(name("num_steps"), self.num_steps)
        _check_finite(name("step_size"), self.step_size, positive=True)
        if self.batch_size is not None:
            _check_positive_int(name("batch_size"), self.batch_size)
        _check_positive_int(name("num_particles"), self.num_particles)
        if self.gradient_clip_norm is not None:
            _check_finite(name("gradient_clip_norm"), self.gradient_clip_norm, positive=True)
        if self.init_scale is not None:
            _check_finite(name("init_scale"), self.init_scale, positive=True)
        if self.kl_annealing_fraction is not None:
            _check_finite(name("kl_annealing_fraction"), self.kl_annealing_fraction, positive=True)
            if self.kl_annealing_fraction > 1:
                raise ValueError(
                    f"{name('kl_annealing_fraction')} must lie in (0, 1], got {self.kl_annealing_fraction!r}"
                )
        if self.epochs is not None:
            _check_positive_int(name("epochs"), self.epochs)
        if not isinstance(self.restore_best_svi_state, bool):
            raise TypeError(
                f"{name('restore_best_svi_state')} must be a bool, got {self.restore_best_svi_state!r}"
            )
        _check_optimizer(self, name)
        _check_schedule(self, name)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.n_features, *self.hidden_dim_list, 1)

    @property
    def network(self) -> Network:
        return Network(self.n_features, self.hidden_dim_list, self.activation, self.use_residual_connections)

    @property
    def svi(self) -> SviSettings:
        return SviSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SviSettings)})

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
            "init_scale": self.init_scale,
            "kl_annealing_fraction": self.kl_annealing_fraction,
            "lr_scheduler_type": self.lr_scheduler_type,
            "lr_scheduler_kwargs": dict(self.lr_scheduler_kwargs) if self.lr_scheduler_type else None,
            "restore_best_svi_state": self.restore_best_svi_state,
            "early_stopping_kwargs": None
            if self.early_stopping_kwargs is None
            else dict(self.early_stopping_kwargs),
            "epochs": self.epochs,
        }

    @property
    def dist_params_init(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma, "nu": self.nu}

    @property
    def reward_data(self) -> dict[str, float | None]:
        """A Gaussian model's standardisation and noise prior (data of its cold state; empty for
        Bernoulli rewards). With ``fit_reward_standardization`` and no values the standardisation
        is fitted on each action's first batch (values given with it count as already fitted)."""
        if self.reward_type != "gaussian":
            return {}
        return {
            "reward_loc": self.reward_loc,
            "reward_scale": self.reward_scale,
            "noise_sigma": self.noise_sigma,
            "noise_log_sigma_prior_std": self.noise_log_sigma_prior_std,
        }


REWARD_TYPES = ("bernoulli", "gaussian")


def _check_reward_model(config: CmabConfig) -> None:
    """The reward model's settings (PyBandits' ``GaussianBayesianNeuralNetwork`` rules)."""
    if config.n_objectives is not None:
        _check_positive_int("n_objectives", config.n_objectives)
        if config.reward_type != "bernoulli" or config.use_soft_rewards or config.decay_factor is not None:
            raise ValueError(
                "n_objectives (reward vectors) is not available with Gaussian or soft rewards or "
                "decay_factor yet"
            )
    if config.reward_type not in REWARD_TYPES:
        raise ValueError(f"reward_type must be one of {list(REWARD_TYPES)}, got {config.reward_type!r}")
    if not isinstance(config.fit_reward_standardization, bool):
        raise TypeError(
            f"fit_reward_standardization must be a bool, got {config.fit_reward_standardization!r}"
        )
    gaussian_fields = ("reward_loc", "reward_scale", "noise_sigma")
    if config.reward_type != "gaussian":
        changed = [f for f in gaussian_fields if getattr(config, f) is not None]
        if config.fit_reward_standardization or config.noise_log_sigma_prior_std != 0.5:
            changed.append("fit_reward_standardization / noise_log_sigma_prior_std")
        if changed:
            raise ValueError(f"{', '.join(changed)} belong to Gaussian rewards (reward_type='gaussian')")
        return
    if config.use_soft_rewards:
        raise ValueError("use_soft_rewards is for Bernoulli rewards; a Gaussian model takes any real reward")
    # data of the float32 state: finite there too (1e300 would turn into inf)
    if config.reward_loc is not None:
        _check_finite("reward_loc", config.reward_loc)
        _check_float32("reward_loc", config.reward_loc)
    if config.reward_scale is not None:
        _check_finite("reward_scale", config.reward_scale, positive=True)
        _check_float32("reward_scale", config.reward_scale)
    if config.noise_sigma is not None:
        _check_finite("noise_sigma", config.noise_sigma, positive=True)
        _check_float32("noise_sigma", config.noise_sigma)
    _check_finite("noise_log_sigma_prior_std", config.noise_log_sigma_prior_std, positive=True)
    _check_float32("noise_log_sigma_prior_std", config.noise_log_sigma_prior_std)
    if not config.fit_reward_standardization and (config.reward_loc is None or config.reward_scale is None):
        raise ValueError(
            "reward_loc and reward_scale must both be given when fit_reward_standardization=False "
            "(reward_loc=0, reward_scale=1 trains on the raw rewards, whose scale the weight prior then "
            "has to fit), or pass fit_reward_standardization=True to fit them on each action's first batch"
        )
    if config.fit_reward_standardization and (config.reward_loc is None) != (config.reward_scale is None):
        raise ValueError(
            "with fit_reward_standardization=True, reward_loc and reward_scale are either both unset "
            "(fitted on the first batch) or both given"
        )


def make_config(
    n_features: numbers.Integral,
    hidden_dim_list: Sequence[numbers.Integral] | None = None,
    activation: str = "tanh",
    use_residual_connections: bool | np.bool_ = False,
    dist_type: str = "normal",
    dist_params_init: Mapping[str, numbers.Real] | None = None,
    update_kwargs: Mapping[str, Any] | None = None,
    use_layerwise_scaling=False,
    bias_std=None,
    calibrate_output_bias=False,
    use_soft_rewards=False,
    decay_factor=None,
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
    token = _ERROR_NAMES.set(_PYBANDITS_NAMES)  # CmabConfig validates, naming these arguments
    try:
        return CmabConfig(
            n_features=n_features,
            hidden_dim_list=hidden,
            activation=activation,
            use_residual_connections=use_residual_connections,
            dist_type=dist_type,
            mu=dist_params["mu"],
            sigma=dist_params["sigma"],
            nu=dist_params["nu"],
            use_layerwise_scaling=use_layerwise_scaling,
            bias_std=bias_std,
            calibrate_output_bias=calibrate_output_bias,
            use_soft_rewards=use_soft_rewards,
            decay_factor=decay_factor,
            **upd,
        )
    finally:
        _ERROR_NAMES.reset(token)


def _parse_update_kwargs(update_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if update_kwargs is None:
        return {}
    if not isinstance(update_kwargs, Mapping):
        raise TypeError(f"update_kwargs must be a dict, got {update_kwargs!r}")
    unknown = set(update_kwargs) - set(UPDATE_KEYS) - {"method"}
    if unknown:
        raise ValueError(
            f"update_kwargs has unknown key(s) {sorted(map(str, unknown))}; expected some of {list(UPDATE_KEYS)}"
        )
    if update_kwargs.get("epochs") is not None and "num_steps" in update_kwargs:
        warnings.warn(
            "update_kwargs has both 'epochs' and 'num_steps': 'epochs' takes precedence (as in PyBandits)",
            UserWarning,
            stacklevel=4,
        )
    method = update_kwargs.get("method", "advi")
    if method == "fullrank_advi":
        raise NotImplementedError(
            "update_kwargs['method'] = 'fullrank_advi' is not implemented: the posterior here is "
            "mean-field (one scale per weight, what predict draws from and what save, transfer and "
            "the contract tests handle); a full-rank guide needs a per-action Cholesky factor of all "
            "the weights in the state. Use 'advi' (the default)."
        )
    if method != "advi":
        raise ValueError(
            f"update_kwargs['method'] must be 'advi' (or PyBandits' 'fullrank_advi'), got {method!r}"
        )
    out = {k: v for k, v in update_kwargs.items() if k not in ("optimizer_kwargs", "method")}
    opt_kwargs = update_kwargs.get("optimizer_kwargs") or {}
    if not isinstance(opt_kwargs, Mapping):
        raise TypeError(f"update_kwargs['optimizer_kwargs'] must be a dict, got {opt_kwargs!r}")
    opt_kwargs = dict(opt_kwargs)
    if "step_size" in opt_kwargs:
        out["step_size"] = opt_kwargs.pop("step_size")
    if "learning_rate" in opt_kwargs:
        raise ValueError(
            "update_kwargs['optimizer_kwargs']['learning_rate'] is not a key here: the learning rate "
            "is update_kwargs['optimizer_kwargs']['step_size']"
        )
    out["optimizer_kwargs"] = opt_kwargs  # CmabConfig normalises it to sorted (key, value) pairs
    schedule_kwargs = update_kwargs.get("lr_scheduler_kwargs")
    if schedule_kwargs is None:
        out.pop("lr_scheduler_kwargs", None)
    elif not isinstance(schedule_kwargs, Mapping):
        raise TypeError(f"update_kwargs['lr_scheduler_kwargs'] must be a dict, got {schedule_kwargs!r}")
    elif schedule_kwargs and update_kwargs.get("lr_scheduler_type") is None:
        raise ValueError("update_kwargs['lr_scheduler_kwargs'] needs update_kwargs['lr_scheduler_type']")
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


def _check_float32(name: str, value: float) -> None:
    """A value stored in a float32 state: finite and, if not 0, not flushed to 0 there."""
    tiny, top = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    if abs(value) > top or (value != 0 and abs(value) < tiny):
        raise ValueError(f"{name} must lie within float32's range (about 1e-38 to 3e38), got {value!r}")


# ---------------------------------------------------------------------------------- optimizer


def optimizer(config: CmabConfig | SviSettings) -> optax.GradientTransformation:
    """The SVI's optimizer: ``optax.<optimizer_type>(learning_rate=step_size, **optimizer_kwargs)``,
    preceded by ``optax.clip_by_global_norm(gradient_clip_norm)`` when that is set."""
    factory = getattr(optax, config.optimizer_type)
    return _build_optimizer(
        factory, learning_rate(config), config.optimizer_kwargs, config.gradient_clip_norm
    )


def learning_rate(config: CmabConfig | SviSettings) -> float | optax.Schedule:
    """``step_size``, or with ``lr_scheduler_type`` the optax schedule
    ``optax.<lr_scheduler_type>(init_value=step_size, **lr_scheduler_kwargs)`` (PyBandits' form),
    stepped once per SVI step and restarted by every update."""
    if config.lr_scheduler_type is None:
        return config.step_size
    return getattr(optax, config.lr_scheduler_type)(
        init_value=config.step_size, **dict(config.lr_scheduler_kwargs)
    )


_SCHEDULE_TYPE = "the name of an optax schedule that takes init_value, such as 'exponential_decay' or 'cosine_decay_schedule'"


def _check_schedule(config: CmabConfig, names: _Names = _CORE_NAMES) -> None:
    """Refuse a learning-rate schedule that cannot be built or does not give a scalar rate."""
    type_key, kwargs_key = names("lr_scheduler_type"), names("lr_scheduler_kwargs")
    name = config.lr_scheduler_type
    if name is None:
        if config.lr_scheduler_kwargs:
            raise ValueError(f"{kwargs_key} needs {type_key}")
        return
    if not isinstance(name, str):
        raise TypeError(f"{type_key} must be {_SCHEDULE_TYPE}, got {name!r}")
    factory = None if name.startswith("_") else getattr(optax, name, None)
    try:
        parameters = inspect.signature(factory).parameters if callable(factory) else {}
    except (TypeError, ValueError):
        parameters = {}
    if "init_value" not in parameters:
        raise ValueError(f"{type_key} must be {_SCHEDULE_TYPE}, got {name!r}")
    try:
        schedule = learning_rate(config)
        rate = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as err:  # noqa: BLE001 (optax raises anything on bad arguments)
        raise ValueError(f"{kwargs_key} cannot build optax.{name}: {err}") from None
    if getattr(rate, "shape", None) != ():
        raise ValueError(f"{type_key} {name!r} must give a scalar learning rate per step, got {rate!r}")


def _build_optimizer(factory, step_size, kwargs, clip) -> optax.GradientTransformation:
    opt = factory(learning_rate=step_size, **dict(kwargs))
    if clip is not None and isinstance(opt, optax.GradientTransformation):
        opt = optax.chain(optax.clip_by_global_norm(clip), opt)
    return opt


_EXPECTED_TYPE = (
    "the name of an optax optimizer factory that takes a learning_rate and returns an "
    "optax.GradientTransformation, such as 'adam', 'adamw' or 'sgd'"
)


def _check_optimizer(config: CmabConfig, names: _Names = _CORE_NAMES) -> None:
    """Refuse an optimizer that cannot run the fit, naming the setting to blame (see CmabConfig)."""
    type_key, kwargs_key = names("optimizer_type"), names("optimizer_kwargs")
    name = config.optimizer_type
    if not isinstance(name, str):
        raise TypeError(f"{type_key} must be {_EXPECTED_TYPE}, got {name!r}")
    factory = None if name.startswith("_") else getattr(optax, name, None)
    try:
        parameters = inspect.signature(factory).parameters if callable(factory) else {}
    except (TypeError, ValueError):  # no introspectable signature
        parameters = {}
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if "learning_rate" not in parameters and not var_keyword:
        raise ValueError(f"{type_key} must be {_EXPECTED_TYPE}, got {name!r}")
    kwargs = dict(config.optimizer_kwargs)
    if not var_keyword:
        accepted = [
            k
            for k, p in parameters.items()
            if k != "learning_rate"
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        for key in kwargs:
            if key not in accepted:
                raise ValueError(
                    f"{kwargs_key}[{key!r}] is not an argument of optax.{name}; expected some of "
                    f"{accepted} (the learning rate is {names('step_size')})"
                )
    widths = config.widths
    n_weights = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    dtype = jnp.result_type(float)  # the default float: float64 under jax_enable_x64
    probe = functools.partial(
        _probe, factory, config.step_size, clip=config.gradient_clip_norm, n=n_weights, dtype=dtype
    )
    error = probe(config.optimizer_kwargs)
    if error is None:
        return
    # Blame the key that fails on its own (with the factory's required arguments, if any).
    required = tuple(
        (k, v)
        for k, v in config.optimizer_kwargs
        if k in parameters and parameters[k].default is inspect.Parameter.empty
    )
    if probe(required) is None:
        for key, value in config.optimizer_kwargs:
            if (key, value) in required:
                continue
            alone = probe(tuple(sorted((*required, (key, value)))))
            if alone is not None:
                raise alone[0](
                    f"{kwargs_key}[{key!r}] = {value!r} does not work with optax.{name}: {alone[1]}"
                ) from None
    if kwargs:
        raise error[0](
            f"{kwargs_key} {kwargs!r} does not work with optax.{name} (no single key is to blame): {error[1]}"
        ) from None
    raise error[0](f"{type_key} must be {_EXPECTED_TYPE}; optax.{name} does not work: {error[1]}") from None


@functools.lru_cache(maxsize=256)
def _probe(factory, step_size, kwargs, clip, n, dtype) -> tuple[type, str] | None:
    """None if the optimizer works on a ``(2, n)`` parameter array of ``dtype``, else the error type
    to raise and what went wrong. Traced with ``jax.eval_shape``: nothing is compiled or run."""
    try:
        opt = _build_optimizer(factory, step_size, kwargs, clip)
    except Exception as err:  # whatever the factory raises on these arguments
        return _error(err, "building it raised")
    if not isinstance(opt, optax.GradientTransformation):
        return ValueError, f"it returned {type(opt).__name__}, not an optax.GradientTransformation"
    params = jax.ShapeDtypeStruct((2, n), dtype)

    def step(p):
        return opt.update(p, opt.init(p), p)[0]

    try:
        updates = jax.eval_shape(step, params)
    except Exception as err:  # whatever init/update raise while tracing
        return _error(err, "its init/update(grads, state, params) raised")
    if not (isinstance(updates, jax.ShapeDtypeStruct) and updates.shape == params.shape):
        return ValueError, (
            f"its updates of a {params.shape} {params.dtype} parameter array are {updates}, "
            "not an array of that shape"
        )
    if updates.dtype != params.dtype:
        return TypeError, f"its updates of {params.dtype} parameters are {updates.dtype}"
    return None


def _error(err: Exception, what: str) -> tuple[type, str]:
    message = str(err).strip().splitlines()
    message = message[0] if message else ""
    if len(message) > 300:
        message = message[:297] + "..."
    return (
        TypeError if isinstance(err, TypeError) else ValueError
    ), f"{what} {type(err).__name__}: {message}"


# ----------------------------------------------------------------------- plain Python values


def _plain_scalar(value: Any) -> Any:
    """A NumPy scalar as the Python scalar it holds (np.bool_ -> bool, np.int64 -> int, ...)."""
    if isinstance(value, np.generic) and isinstance(value, (np.bool_, np.number, np.str_)):
        return value.item()
    return value


def _plain_early_stopping(value: Any, names: _Names = _CORE_NAMES) -> tuple[tuple[str, Any], ...]:
    """``early_stopping_kwargs`` (PyBandits' ``EarlyStopping``: ``patience``, ``tolerance``,
    ``diff_type``; a dict or pairs) completed with its defaults, as sorted pairs."""
    key = names("early_stopping_kwargs")
    if isinstance(value, Mapping):
        given = dict(value)
    elif isinstance(value, (tuple, list)) and all(
        isinstance(p, (tuple, list)) and len(p) == 2 for p in value
    ):
        given = dict(tuple(p) for p in value)
    else:
        raise TypeError(f"{key} must be a dict or None, got {value!r}")
    unknown = set(given) - set(EARLY_STOPPING_DEFAULTS)
    if unknown:
        raise ValueError(
            f"{key} has unknown key(s) {sorted(map(str, unknown))}; expected some of {list(EARLY_STOPPING_DEFAULTS)}"
        )
    out = {**EARLY_STOPPING_DEFAULTS, **{k: _plain_scalar(v) for k, v in given.items()}}
    _check_positive_int(f"{key}['patience']", out["patience"])
    _check_finite(f"{key}['tolerance']", out["tolerance"], positive=True)
    if out["diff_type"] not in ("relative", "absolute"):
        raise ValueError(f"{key}['diff_type'] must be 'relative' or 'absolute', got {out['diff_type']!r}")
    out["tolerance"] = float(out["tolerance"])
    return tuple(sorted(out.items()))


def _plain_optimizer_kwargs(
    value: Any,
    names: _Names = _CORE_NAMES,
    field: str = "optimizer_kwargs",
    reserved=("step_size", "learning_rate"),
) -> tuple[tuple[str, Any], ...]:
    """``optimizer_kwargs`` (or ``lr_scheduler_kwargs``: ``field``; a dict or ``(key, value)``
    pairs) as sorted pairs of JSON data; the ``reserved`` keys are set from ``step_size``."""
    kwargs_key = names(field)
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (tuple, list)) and all(
        isinstance(p, (tuple, list)) and len(p) == 2 for p in value
    ):
        pairs = [tuple(p) for p in value]
    else:
        raise TypeError(f"{kwargs_key} must be a dict, got {value!r}")
    out = {}
    for key, v in pairs:
        key = _plain_scalar(key)
        if not isinstance(key, str):
            raise TypeError(f"{kwargs_key} keys must be strings, got {key!r}")
        if key in out:
            raise ValueError(f"{kwargs_key}[{key!r}] is given twice")
        if key in reserved:
            what = "an optimizer keyword" if field == "optimizer_kwargs" else "a schedule keyword"
            raise ValueError(
                f"{kwargs_key}[{key!r}] is not {what} here: the learning rate is the config's step_size field"
            )
        out[key] = _plain_kwarg(key, v, names)
    return tuple(sorted(out.items()))


def _plain_kwarg(key: str, value: Any, names: _Names = _CORE_NAMES) -> Any:
    """One optimizer keyword's value as hashable JSON data: NumPy scalars to Python, lists to tuples."""
    kwargs_key = names("optimizer_kwargs")
    value = _plain_scalar(value)
    if value is None:
        return None
    if isinstance(value, np.dtype):  # e.g. adam's mu_dtype: optax takes the name as well
        return value.name
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(
                f"{kwargs_key}[{key!r}] must be finite (the config is saved as JSON), got {value!r}"
            )
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain_kwarg(key, v, names) for v in value)
    raise TypeError(
        f"{kwargs_key}[{key!r}] must be a number, string, bool, None or a list of those (the config "
        f"is hashed and saved as JSON), got {type(value).__name__} {value!r}"
    )
