"""CmabConfig validation at construction: the optimizer is built and checked when the config is made,
and NumPy scalars become plain Python values (so every config saves as JSON)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.config import CmabConfig
from bandits_jax.inference import _optimizer


def make(**kw):
    kw.setdefault("action_ids", ["a", "b"])
    kw.setdefault("n_features", 2)
    kw.setdefault("random_seed", 0)
    return CmabBernoulli.cold_start(**kw)


# ------------------------------------------------------------------ defect 4: deferred validation

BAD_OPTIMIZER_TYPES = [
    "chain",
    "scale_by_adam",
    "sigmoid_binary_cross_entropy",
    "GradientTransformation",
    "lbfgs",
]


@pytest.mark.parametrize("name", BAD_OPTIMIZER_TYPES)
def test_cold_start_refuses_what_is_not_an_optimizer(name):
    with pytest.raises((ValueError, TypeError), match=r"update_kwargs\['optimizer_type'\]") as info:
        make(update_kwargs={"optimizer_type": name})
    assert "such as 'adam'" in str(info.value)


@pytest.mark.parametrize("name", [*BAD_OPTIMIZER_TYPES, 5, None])
def test_config_refuses_what_is_not_an_optimizer(name):
    with pytest.raises((ValueError, TypeError), match=r"^optimizer_type must be"):
        CmabConfig(n_features=2, optimizer_type=name)


@pytest.mark.parametrize(
    "optimizer_kwargs, key",
    [
        ({"nonsense": 1}, "nonsense"),
        ({"b1": "x"}, "b1"),
        ({"b1": [0.9]}, "b1"),
        ({"b1": 0.9, "b2": "y"}, "b2"),
        ({"b1": jnp.asarray(0.9)}, "b1"),
        ({"b1": {"a": 1}}, "b1"),
        ({"b1": float("nan"), "b2": 0.99}, "b1"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_cold_start_refuses_bad_optimizer_kwargs_naming_the_key(optimizer_kwargs, key):
    with pytest.raises(
        (ValueError, TypeError), match=rf"update_kwargs\['optimizer_kwargs'\]\['{key}'\]"
    ) as info:
        make(update_kwargs={"optimizer_kwargs": optimizer_kwargs})
    assert "Non-hashable" not in str(info.value)


def test_config_refuses_bad_optimizer_kwargs_naming_the_key():
    with pytest.raises(ValueError, match=r"\['nonsense'\]"):
        CmabConfig(n_features=2, optimizer_kwargs=(("nonsense", 1),))
    with pytest.raises(TypeError, match=r"\['b1'\]"):
        CmabConfig(n_features=2, optimizer_kwargs=(("b1", "x"),))
    with pytest.raises(ValueError, match=r"\['step_size'\]"):
        CmabConfig(n_features=2, optimizer_kwargs=(("step_size", 0.1),))
    with pytest.raises(ValueError, match="twice"):
        CmabConfig(n_features=2, optimizer_kwargs=(("b1", 0.8), ("b1", 0.9)))
    with pytest.raises(TypeError, match=r"^optimizer_kwargs must be a dict"):
        CmabConfig(n_features=2, optimizer_kwargs=5)


def test_failure_that_no_single_key_explains_names_all_optimizer_kwargs(monkeypatch):
    """An optimizer that works with either key alone but not with both: the whole dict is named."""

    def picky(learning_rate, a=0.0, b=0.0):
        if a and b:
            raise ValueError("a and b exclude each other")
        return optax.sgd(learning_rate)

    monkeypatch.setattr(optax, "picky", picky, raising=False)
    CmabConfig(n_features=2, optimizer_type="picky", optimizer_kwargs=(("a", 1.0),))
    with pytest.raises(ValueError, match=r"^optimizer_kwargs \{'a': 1.0, 'b': 1.0\}"):
        CmabConfig(n_features=2, optimizer_type="picky", optimizer_kwargs=(("a", 1.0), ("b", 1.0)))


@pytest.mark.parametrize("flaw", ["not_a_transformation", "shape", "dtype", "pytree"])
def test_optimizer_must_work_on_the_fit_parameter_layout(monkeypatch, flaw):
    """The updates must have the (2, n_weights) parameters' shape and dtype."""

    def factory(learning_rate):
        sgd = optax.sgd(learning_rate)
        if flaw == "not_a_transformation":
            return (sgd.init, sgd.update)
        change = {
            "shape": lambda u: u.T,
            "dtype": lambda u: u.astype(jnp.int32),
            "pytree": lambda u: (u, u),
        }[flaw]

        def update(grads, state, params=None):
            updates, state = sgd.update(grads, state, params)
            return change(updates), state

        return optax.GradientTransformation(sgd.init, update)

    monkeypatch.setattr(optax, "flawed", factory, raising=False)
    with pytest.raises((ValueError, TypeError), match=r"^optimizer_type must be"):
        CmabConfig(n_features=3, hidden_dim_list=(4,), optimizer_type="flawed")


def test_lists_in_optimizer_kwargs_become_tuples():
    """Lists are stored as (hashable) tuples; what an optimizer accepts as a tuple then works."""
    cfg = CmabConfig(n_features=2, optimizer_kwargs={"nesterov": True, "b1": np.float64(0.8)})
    assert cfg.optimizer_kwargs == (("b1", 0.8), ("nesterov", True))
    hash(cfg)
    from bandits_jax import config as config_module

    assert config_module._plain_kwarg("k", [1, [2.0, np.int64(3)]]) == (1, (2.0, 3))


@pytest.mark.parametrize(
    "update_kwargs",
    [
        {"optimizer_type": "adam", "optimizer_kwargs": {"b1": 0.8, "b2": 0.99}},
        {"optimizer_type": "adamw", "optimizer_kwargs": {"weight_decay": 1e-3, "mu_dtype": "float32"}},
        {"optimizer_type": "adam", "optimizer_kwargs": {"mu_dtype": np.dtype("float32")}},
        {"optimizer_type": "sgd", "optimizer_kwargs": {"momentum": 0.9, "nesterov": True}},
        {"optimizer_type": "adafactor", "gradient_clip_norm": 1.0},
        {"optimizer_type": "adam", "gradient_clip_norm": 0.5},
    ],
)
def test_valid_optimizers_are_accepted(update_kwargs):
    mab = make(hidden_dim_list=[3], update_kwargs=update_kwargs)
    opt = _optimizer(mab.config)
    assert isinstance(opt, optax.GradientTransformation)


def test_optimizer_check_compiles_nothing(caplog):
    """The check traces (jax.eval_shape) but never compiles: no XLA compilation, and fast."""
    # Warm-up outside the measurement: imports and optax's own lazy set-up.
    CmabConfig(n_features=1, optimizer_kwargs={"b1": 0.85})
    caplog.set_level(logging.DEBUG)
    with jax.log_compiles():
        caplog.clear()
        start = time.perf_counter()
        for n in range(2, 7):  # new configurations: nothing cached
            CmabConfig(n_features=n, hidden_dim_list=(n + 1,), optimizer_kwargs={"b1": 0.8 + n / 100})
        elapsed = (time.perf_counter() - start) / 5
    compiles = [r.getMessage() for r in caplog.records if "compil" in r.getMessage().lower()]
    assert compiles == []
    assert elapsed < 0.1, elapsed


# ------------------------------------------------------------------ defect 5: NumPy scalars


PLAIN = dict(
    n_features=3,
    hidden_dim_list=[4],
    use_residual_connections=True,
    dist_params_init={"mu": 0.5, "sigma": 2.0, "nu": 4.0},
    update_kwargs={
        "num_steps": 5,
        "batch_size": 8,
        "num_particles": 2,
        "gradient_clip_norm": 1.5,
        "optimizer_kwargs": {"step_size": 0.05, "b1": 0.8, "eps": 1e-6},
    },
)

NUMPY_VARIANTS = {
    "n_features": lambda kw: kw.update(n_features=np.int64(3)),
    "hidden_dim_list": lambda kw: kw.update(hidden_dim_list=[np.int32(4)]),
    "use_residual_connections": lambda kw: kw.update(use_residual_connections=np.bool_(True)),
    "mu": lambda kw: kw["dist_params_init"].update(mu=np.float32(0.5)),
    "sigma": lambda kw: kw["dist_params_init"].update(sigma=np.float64(2.0)),
    "nu": lambda kw: kw["dist_params_init"].update(nu=np.int64(4)),
    "num_steps": lambda kw: kw["update_kwargs"].update(num_steps=np.int64(5)),
    "batch_size": lambda kw: kw["update_kwargs"].update(batch_size=np.uint8(8)),
    "num_particles": lambda kw: kw["update_kwargs"].update(num_particles=np.int16(2)),
    "gradient_clip_norm": lambda kw: kw["update_kwargs"].update(gradient_clip_norm=np.float64(1.5)),
    "step_size": lambda kw: kw["update_kwargs"]["optimizer_kwargs"].update(step_size=np.float64(0.05)),
    "b1": lambda kw: kw["update_kwargs"]["optimizer_kwargs"].update(b1=np.float64(0.8)),
    "eps": lambda kw: kw["update_kwargs"]["optimizer_kwargs"].update(eps=np.float64(1e-6)),
}


def _plain_types(value):
    if isinstance(value, tuple):
        return all(_plain_types(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


@pytest.mark.parametrize("variant", sorted(NUMPY_VARIANTS))
def test_numpy_scalar_arguments_give_a_model_that_saves_and_loads(tmp_path, variant):
    import copy

    kw = copy.deepcopy(PLAIN)
    NUMPY_VARIANTS[variant](kw)
    mab = make(**kw)
    plain = make(**copy.deepcopy(PLAIN)).config
    assert mab.config == plain
    assert hash(mab.config) == hash(plain)
    assert all(_plain_types(getattr(mab.config, f.name)) for f in dataclasses.fields(CmabConfig))
    json.dumps(dataclasses.asdict(mab.config), allow_nan=False)

    path = tmp_path / "model"
    mab.save(path)
    loaded = CmabBernoulli.load(path)
    assert loaded.config == plain


def test_direct_config_normalises_numpy_scalars():
    cfg = CmabConfig(
        n_features=np.int64(2),
        hidden_dim_list=(np.int64(3),),
        use_residual_connections=np.bool_(False),
        sigma=np.float32(2.0),
        num_steps=np.int32(7),
        step_size=np.float64(0.25),
        optimizer_kwargs=(("b1", np.float64(0.5)),),
        batch_size=np.int64(4),
    )
    plain = CmabConfig(
        n_features=2,
        hidden_dim_list=(3,),
        sigma=2.0,
        num_steps=7,
        step_size=0.25,
        optimizer_kwargs=(("b1", 0.5),),
        batch_size=4,
    )
    assert cfg == plain and hash(cfg) == hash(plain)
    assert type(cfg.n_features) is int and type(cfg.use_residual_connections) is bool
    assert type(cfg.sigma) is float and type(cfg.optimizer_kwargs[0][1]) is float
    json.dumps(dataclasses.asdict(cfg), allow_nan=False)


def test_numpy_bool_is_still_not_an_int():
    with pytest.raises(TypeError, match="n_features"):
        CmabConfig(n_features=np.bool_(True))
    with pytest.raises(TypeError, match="use_residual_connections"):
        CmabConfig(n_features=2, use_residual_connections=np.int64(1))
