"""Validation errors name the settings as the caller wrote them: a CmabConfig built directly (or a
BnnTS / SviSettings, validated through ``as_config``) names the core's fields, while make_config and
CmabBernoulli.cold_start (PyBandits' arguments) name ``update_kwargs[...]`` / ``dist_params_init[...]``."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bandits_jax import config as config_module
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.config import CmabConfig, make_config
from bandits_jax.policies import BnnTS, Network, SviSettings

NAN, INF = float("nan"), float("inf")

# (field, bad value, error type, core name, PyBandits arguments, PyBandits name)
CASES = [
    ("mu", NAN, ValueError, "mu", {"dist_params_init": {"mu": NAN}}, "dist_params_init['mu']"),
    ("mu", "x", TypeError, "mu", {"dist_params_init": {"mu": "x"}}, "dist_params_init['mu']"),
    ("sigma", -1.0, ValueError, "sigma", {"dist_params_init": {"sigma": -1.0}}, "dist_params_init['sigma']"),
    ("sigma", None, TypeError, "sigma", {"dist_params_init": {"sigma": None}}, "dist_params_init['sigma']"),
    ("nu", 0.0, ValueError, "nu", {"dist_params_init": {"nu": 0.0}}, "dist_params_init['nu']"),
    (
        "num_steps",
        0,
        ValueError,
        "num_steps",
        {"update_kwargs": {"num_steps": 0}},
        "update_kwargs['num_steps']",
    ),
    (
        "num_steps",
        1.5,
        TypeError,
        "num_steps",
        {"update_kwargs": {"num_steps": 1.5}},
        "update_kwargs['num_steps']",
    ),
    (
        "num_steps",
        True,
        TypeError,
        "num_steps",
        {"update_kwargs": {"num_steps": True}},
        "update_kwargs['num_steps']",
    ),
    (
        "step_size",
        -1.0,
        ValueError,
        "step_size",
        {"update_kwargs": {"optimizer_kwargs": {"step_size": -1.0}}},
        "update_kwargs['optimizer_kwargs']['step_size']",
    ),
    (
        "step_size",
        "x",
        TypeError,
        "step_size",
        {"update_kwargs": {"optimizer_kwargs": {"step_size": "x"}}},
        "update_kwargs['optimizer_kwargs']['step_size']",
    ),
    (
        "batch_size",
        0,
        ValueError,
        "batch_size",
        {"update_kwargs": {"batch_size": 0}},
        "update_kwargs['batch_size']",
    ),
    (
        "num_particles",
        "2",
        TypeError,
        "num_particles",
        {"update_kwargs": {"num_particles": "2"}},
        "update_kwargs['num_particles']",
    ),
    (
        "gradient_clip_norm",
        INF,
        ValueError,
        "gradient_clip_norm",
        {"update_kwargs": {"gradient_clip_norm": INF}},
        "update_kwargs['gradient_clip_norm']",
    ),
    (
        "optimizer_type",
        "nope",
        ValueError,
        "optimizer_type",
        {"update_kwargs": {"optimizer_type": "nope"}},
        "update_kwargs['optimizer_type']",
    ),
    (
        "optimizer_type",
        5,
        TypeError,
        "optimizer_type",
        {"update_kwargs": {"optimizer_type": 5}},
        "update_kwargs['optimizer_type']",
    ),
    (
        "optimizer_type",
        "scale_by_adam",  # takes no learning_rate
        ValueError,
        "optimizer_type",
        {"update_kwargs": {"optimizer_type": "scale_by_adam"}},
        "update_kwargs['optimizer_type']",
    ),
    (
        "optimizer_kwargs",
        {"nonsense": 1},
        ValueError,
        "optimizer_kwargs['nonsense']",
        {"update_kwargs": {"optimizer_kwargs": {"nonsense": 1}}},
        "update_kwargs['optimizer_kwargs']['nonsense']",
    ),
    (
        "optimizer_kwargs",
        {"b1": "x"},  # fails in optax, found by the traced probe
        TypeError,
        "optimizer_kwargs['b1']",
        {"update_kwargs": {"optimizer_kwargs": {"b1": "x"}}},
        "update_kwargs['optimizer_kwargs']['b1']",
    ),
    (
        "optimizer_kwargs",
        {"b1": NAN},  # not JSON data
        ValueError,
        "optimizer_kwargs['b1']",
        {"update_kwargs": {"optimizer_kwargs": {"b1": NAN}}},
        "update_kwargs['optimizer_kwargs']['b1']",
    ),
    (
        "optimizer_kwargs",
        {"b1": {"a": 1}},  # not hashable JSON data
        TypeError,
        "optimizer_kwargs['b1']",
        {"update_kwargs": {"optimizer_kwargs": {"b1": {"a": 1}}}},
        "update_kwargs['optimizer_kwargs']['b1']",
    ),
    (
        "optimizer_kwargs",
        {1: 0.9},
        TypeError,
        "optimizer_kwargs keys",
        {"update_kwargs": {"optimizer_kwargs": {1: 0.9}}},
        "update_kwargs['optimizer_kwargs'] keys",
    ),
]
IDS = [f"{c[0]}={c[1]!r}" for c in CASES]

SVI_FIELDS = {f.name for f in dataclasses.fields(SviSettings)}


def _starts_with(name: str) -> str:
    return "^" + re.escape(name) + r"[ \[]"


def _assert_core_message(message: str, core: str) -> None:
    assert re.match(_starts_with(core), message), message
    assert "update_kwargs" not in message
    assert "dist_params_init" not in message


@pytest.mark.parametrize("field, bad, error, core, pybandits, pybandits_name", CASES, ids=IDS)
def test_direct_config_names_the_field(field, bad, error, core, pybandits, pybandits_name):
    with pytest.raises(error) as info:
        CmabConfig(n_features=2, **{field: bad})
    assert type(info.value) is error
    _assert_core_message(str(info.value), core)


# Under the test run's runtime type checker (jaxtyping + beartype) a value outside make_config's or
# SviSettings' annotations is refused before validation; those cases are the direct ones only.
PYBANDITS_CASES = [c for c in CASES if not (c[0] in ("mu", "sigma") and c[2] is TypeError)]
PYBANDITS_IDS = [i for i, c in zip(IDS, CASES) if c in PYBANDITS_CASES]


@pytest.mark.parametrize(
    "field, bad, error, core, pybandits, pybandits_name", PYBANDITS_CASES, ids=PYBANDITS_IDS
)
def test_make_config_names_the_pybandits_key(field, bad, error, core, pybandits, pybandits_name):
    with pytest.raises(error, match=_starts_with(pybandits_name)) as info:
        make_config(2, **pybandits)
    assert type(info.value) is error


@pytest.mark.parametrize(
    "field, bad, error, core, pybandits, pybandits_name", PYBANDITS_CASES, ids=PYBANDITS_IDS
)
def test_cold_start_names_the_pybandits_key(field, bad, error, core, pybandits, pybandits_name):
    with pytest.raises(error, match=_starts_with(pybandits_name)) as info:
        CmabBernoulli.cold_start(["a", "b"], n_features=2, random_seed=0, **pybandits)
    assert type(info.value) is error
    # The names do not leak: the next direct construction names the field again.
    with pytest.raises(error) as again:
        CmabConfig(n_features=2, **{field: bad})
    _assert_core_message(str(again.value), core)


# Values within SviSettings' annotations (optimizer_kwargs as (key, value) pairs).
POLICY_CASES = [
    ("num_steps", 0, ValueError, "num_steps"),
    ("num_steps", True, TypeError, "num_steps"),
    ("step_size", -1.0, ValueError, "step_size"),
    ("batch_size", 0, ValueError, "batch_size"),
    ("num_particles", -3, ValueError, "num_particles"),
    ("gradient_clip_norm", INF, ValueError, "gradient_clip_norm"),
    ("optimizer_type", "nope", ValueError, "optimizer_type"),
    ("optimizer_type", "scale_by_adam", ValueError, "optimizer_type"),
    ("optimizer_kwargs", (("nonsense", 1),), ValueError, "optimizer_kwargs['nonsense']"),
    ("optimizer_kwargs", (("b1", "x"),), TypeError, "optimizer_kwargs['b1']"),
    ("optimizer_kwargs", (("b1", NAN),), ValueError, "optimizer_kwargs['b1']"),
    ("optimizer_kwargs", (("step_size", 0.1),), ValueError, "optimizer_kwargs['step_size']"),
]


@pytest.mark.parametrize(
    "field, bad, error, core", POLICY_CASES, ids=[f"{c[0]}={c[1]!r}" for c in POLICY_CASES]
)
def test_policy_settings_name_the_field(field, bad, error, core):
    with pytest.raises(error) as info:
        BnnTS(Network(2), svi=SviSettings(**{field: bad}))
    assert type(info.value) is error
    _assert_core_message(str(info.value), core)


@pytest.mark.parametrize(
    "field, bad, error, core",
    [("sigma", -1.0, ValueError, "sigma"), ("nu", -2.0, ValueError, "nu"), ("mu", INF, ValueError, "mu")],
)
def test_prior_values_through_the_policy_name_the_field(field, bad, error, core):
    policy = BnnTS(Network(2))
    with pytest.raises(error) as info:
        if field == "nu":
            BnnTS(Network(2), nu=bad)
        else:
            policy.as_config(**{field: bad})
    _assert_core_message(str(info.value), core)


def test_replacing_a_field_of_a_pybandits_config_names_the_field():
    config = make_config(2, update_kwargs={"num_steps": 5})
    with pytest.raises(ValueError) as info:
        dataclasses.replace(config, num_steps=0)
    _assert_core_message(str(info.value), "num_steps")


def test_unknown_optimizer_kwarg_hint_names_the_learning_rate_each_way():
    with pytest.raises(ValueError) as info:
        CmabConfig(n_features=2, optimizer_kwargs={"nonsense": 1})
    assert "the learning rate is step_size" in str(info.value)
    with pytest.raises(ValueError) as info:
        make_config(2, update_kwargs={"optimizer_kwargs": {"nonsense": 1}})
    assert "the learning rate is update_kwargs['optimizer_kwargs']['step_size']" in str(info.value)


@pytest.mark.parametrize("build", ["direct", "make_config"])
def test_optimizer_is_checked_once_per_config(monkeypatch, build):
    calls = []
    check = config_module._check_optimizer

    def counting(config, *args, **kwargs):
        calls.append(config)
        return check(config, *args, **kwargs)

    monkeypatch.setattr(config_module, "_check_optimizer", counting)
    kwargs = {"optimizer_kwargs": {"b1": 0.81}}
    if build == "direct":
        CmabConfig(n_features=2, **kwargs)
    else:
        make_config(2, update_kwargs=kwargs)
    assert len(calls) == 1


def test_cold_start_traces_the_optimizer_once():
    """The policy validates its own config again, but the traced probe is cached: one trace."""
    misses = config_module._probe.cache_info().misses
    CmabBernoulli.cold_start(
        ["a", "b"], n_features=3, update_kwargs={"optimizer_kwargs": {"b1": 0.8123}}, random_seed=0
    )
    assert config_module._probe.cache_info().misses == misses + 1
