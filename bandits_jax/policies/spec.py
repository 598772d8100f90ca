"""Policies by name, and their settings as JSON: how the object API builds any registered policy
(``CmabBernoulli.cold_start(..., policy="neural_linear")``) and how a saved model names it.

A policy is a frozen dataclass of settings whose values are numbers, strings, tuples, None and
other known dataclasses (a :class:`~bandits_jax.config.Network`, a likelihood, a base policy);
:func:`to_json` writes it as ``{"type": class name, "fields": {...}}`` and :func:`from_json` reads
it back equal (and so sharing compiled code with the original).

Examples:
    >>> from bandits_jax.policies import spec
    >>> policy, init = spec.build("lin_ucb", 3, policy_kwargs={"alpha": 2.0, "newton_steps": 5})
    >>> policy, init
    (LinUCB(n_features=3, newton_steps=5, fit_intercept=True, likelihood=Bernoulli()), {'alpha': 2.0})
    >>> spec.from_json(spec.to_json(policy)) == policy
    True
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build", "from_json", "init_parameters", "to_json", "with_likelihood", "with_soft_rewards"]


def _known_types() -> dict[str, type]:
    from bandits_jax.config import Network, SviSettings
    from bandits_jax.likelihoods import Bernoulli, Gaussian, SoftBernoulli
    from bandits_jax.policies import REGISTRY

    return {
        cls.__name__: cls
        for cls in (*REGISTRY.values(), Network, SviSettings, Bernoulli, SoftBernoulli, Gaussian)
    }


def with_likelihood(policy: Any, likelihood: Any, what: str = "these rewards") -> Any:
    """``policy`` (or the base it wraps) with ``likelihood``: the same settings, another reward
    model (ValueError naming the policy if it has none to replace)."""
    names = {f.name for f in dataclasses.fields(policy) if f.init}
    if "likelihood" in names:
        return dataclasses.replace(policy, likelihood=likelihood)
    if "base" in names:
        return dataclasses.replace(policy, base=with_likelihood(policy.base, likelihood, what))
    raise ValueError(f"policy {type(policy).__name__} has no likelihood to take {what}")


def with_soft_rewards(policy: Any) -> Any:
    """``policy`` (or the base it wraps) with the :class:`~bandits_jax.likelihoods.SoftBernoulli`
    likelihood: the same settings, rewards in [0, 1]."""
    from bandits_jax.likelihoods import SoftBernoulli

    return with_likelihood(policy, SoftBernoulli(), "soft rewards")


def to_json(obj: Any) -> Any:
    """A policy (or any value of its settings) as JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if type(obj).__name__ not in _known_types():
            raise TypeError(f"cannot save a policy setting of type {type(obj).__name__}: not a known type")
        fields = {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        return {"type": type(obj).__name__, "fields": fields}
    if isinstance(obj, tuple):
        return [to_json(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save a policy setting {obj!r} of type {type(obj).__name__}")


def from_json(data: Any) -> Any:
    """The policy (or setting) that :func:`to_json` wrote; ValueError if it is not one."""
    if isinstance(data, dict):
        types = _known_types()
        if (
            set(data) != {"type", "fields"}
            or data["type"] not in types
            or not isinstance(data["fields"], dict)
        ):
            raise ValueError(
                f"a saved policy setting must be {{'type': one of {sorted(types)}, 'fields': {{...}}}}"
            )
        try:
            return types[data["type"]](**{k: from_json(v) for k, v in data["fields"].items()})
        except TypeError as err:
            raise ValueError(f"saved {data['type']} settings do not fit: {err}") from None
    if isinstance(data, list):
        return tuple(from_json(v) for v in data)
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    raise ValueError(f"not a saved policy setting: {data!r}")


def init_parameters(policy: Any) -> tuple[str, ...]:
    """The data a policy's ``init`` takes besides the action count (``sigma``, ``seed``, ...)."""
    from bandits_jax.likelihoods import Gaussian

    gaussian = isinstance(getattr(policy, "likelihood", None), Gaussian)
    names = []
    for name, param in inspect.signature(policy.init).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            if hasattr(policy, "base"):  # passed on to a base policy
                names += init_parameters(policy.base)
            elif gaussian:  # the likelihood's data (standardisation, noise guess)
                names += [n for n in Gaussian.REWARD_DATA if n not in names]
        elif name in GAUSSIAN_ONLY and not gaussian:
            continue
        elif name not in ("n_actions", "dtype"):
            names.append(name)
    return tuple(names)


#: ``init`` arguments that only a policy with Gaussian rewards takes (its noise prior).
GAUSSIAN_ONLY = ("a0", "b0")


def build(
    name: str,
    n_features: int,
    hidden_dim_list: Sequence[int] | None = None,
    activation: str = "tanh",
    use_residual_connections: bool = False,
    policy_kwargs: Mapping[str, Any] | None = None,
    likelihood: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The registered policy ``name`` for contexts of ``n_features`` and its ``init`` data.

    ``policy_kwargs`` holds both kinds of values, told apart by name: the policy's settings
    (dataclass fields, e.g. ``num_steps``) and its ``init`` data (e.g. ``sigma``, ``alpha``,
    ``seed``). A policy with a ``network`` gets ``Network(n_features, hidden_dim_list, activation,
    use_residual_connections)`` unless ``policy_kwargs`` gives one; a linear one gets
    ``n_features`` (and refuses hidden layers); ``epsilon_greedy``'s ``base`` may be a registered
    name (default ``linear_ts``), built the same way. ``likelihood`` (None: the policy's default,
    Bernoulli) replaces the reward model, e.g. :class:`~bandits_jax.likelihoods.Gaussian` (whose
    policies take its init data, see :func:`init_parameters`).

    Raises:
        ValueError: an unknown name or key, or settings the policy refuses (naming them).
    """
    from bandits_jax.config import Network
    from bandits_jax.policies import REGISTRY

    if name not in REGISTRY:
        raise ValueError(f"policy must be one of {sorted(REGISTRY)}, got {name!r}")
    cls = REGISTRY[name]
    kwargs = dict(policy_kwargs or {})
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    settings = {k: v for k, v in kwargs.items() if k in fields}
    if "network" in fields and "network" not in settings:
        settings["network"] = Network(
            n_features, tuple(hidden_dim_list or ()), activation, use_residual_connections
        )
    elif "n_features" in fields and "n_features" not in settings:
        if hidden_dim_list:
            raise ValueError(
                f"hidden_dim_list must be None for the linear policy {name!r}, got {hidden_dim_list!r}"
            )
        settings["n_features"] = n_features
    if "base" in fields:
        base = settings.get("base", getattr(cls, "default_base", "linear_ts"))
        if isinstance(base, str):
            settings["base"] = build(base, n_features, hidden_dim_list, activation, use_residual_connections)[
                0
            ]
    try:
        policy = cls(**settings)
    except TypeError as err:
        raise ValueError(f"policy_kwargs do not fit policy {name!r}: {err}") from None
    if likelihood is not None:
        policy = with_likelihood(policy, likelihood, f"{likelihood.name} rewards")
    init = {k: v for k, v in kwargs.items() if k not in fields}
    unknown = set(init) - set(init_parameters(policy))
    if unknown:
        raise ValueError(
            f"policy_kwargs has unknown key(s) {sorted(unknown)} for policy {name!r}; expected settings "
            f"{sorted(fields)} or init data {sorted(init_parameters(policy))}"
        )
    return policy, init
