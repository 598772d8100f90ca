"""PyBandits' network options for the Bayesian MLP (issue 12 item 4): ``use_layerwise_scaling``
(each layer's weight prior sigma divided by the square root of its fan-in, biases unscaled) and
``bias_std`` (the biases' prior sigma), as PyBandits 8.4.1's ``cold_start`` of its priors builds
them; data in the state (no new program), saved, loaded and carried by transfer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.policies import BnnTS, GroupedFeedback, Network
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import count_compiles


def _scales(mab, aid="a"):
    return [(np.asarray(layer.weight), np.asarray(layer.bias)) for layer in mab.actions[aid].scale.layers]


@pytest.mark.parametrize("residual", [False, True])
def test_layerwise_scaling_and_bias_std_set_each_layers_prior(residual):
    mab = CmabBernoulli.cold_start(
        ["a", "b"],
        n_features=4,
        hidden_dim_list=[9, 16],
        use_residual_connections=residual,
        dist_params_init={"sigma": 3.0},
        use_layerwise_scaling=True,
        bias_std=0.5,
        random_seed=0,
    )
    for (weight, bias), fan_in in zip(_scales(mab), (4, 9, 16), strict=True):
        assert weight.shape[0] == fan_in
        np.testing.assert_allclose(weight, 3.0 / math.sqrt(fan_in), rtol=1e-6)
        np.testing.assert_array_equal(bias, 0.5)
    only_bias = CmabBernoulli.cold_start(["a"], n_features=4, hidden_dim_list=[9], bias_std=0.25)
    for weight, bias in _scales(only_bias):
        np.testing.assert_array_equal(weight, 10.0)  # the default sigma, unscaled
        np.testing.assert_array_equal(bias, 0.25)
    plain = CmabBernoulli.cold_start(["a"], n_features=4, hidden_dim_list=[9])
    assert all((w == 10.0).all() and (b == 10.0).all() for w, b in _scales(plain))


def test_the_options_are_data_and_survive_save_load_and_transfer():
    kwargs = dict(n_features=3, hidden_dim_list=[4], random_seed=1)
    mab = CmabBernoulli.cold_start(["a", "b"], use_layerwise_scaling=True, bias_std=0.5, **kwargs)
    x = np.random.default_rng(0).normal(size=(8, 3))
    mab.update(["a", "b"] * 4, [1, 0] * 4, x)
    with count_compiles() as compiled:  # the options change data, not the update's program
        CmabBernoulli.cold_start(["a", "b"], **kwargs).update(["a", "b"] * 4, [1, 0] * 4, x)
    assert not [name for name in compiled if "update" in name]
    back = CmabBernoulli.from_state(mab.get_state())
    assert (back.config.use_layerwise_scaling, back.config.bias_std) == (True, 0.5)
    for (w1, b1), (w2, b2) in zip(_scales(back), _scales(mab), strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    # a new action and new input rows take the template's prior
    template = CmabBernoulli.cold_start(
        ["a", "c"], n_features=5, hidden_dim_list=[4], use_layerwise_scaling=True, bias_std=0.5
    )
    moved = edit_model_on_the_fly(mab, template)
    np.testing.assert_allclose(_scales(moved, "c")[0][0], 10.0 / math.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(_scales(moved, "a")[0][0][3:], 10.0 / math.sqrt(5), rtol=1e-6)


def test_functional_init_takes_the_same_options():
    policy = BnnTS(Network(2, (3,)))
    state = policy.init(2, sigma=2.0, use_layerwise_scaling=True, bias_std=1.0)
    weights = [np.asarray(layer.weight) for layer in state.scale.layers]
    np.testing.assert_allclose(weights[0], 2.0 / math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(weights[1], 2.0 / math.sqrt(3), rtol=1e-6)
    assert jax.tree.structure(state) == jax.tree.structure(policy.init(2))


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"use_layerwise_scaling": "yes"}, TypeError, "use_layerwise_scaling must be a bool"),
        ({"bias_std": 0.0}, ValueError, "bias_std must be a finite positive number"),
        ({"bias_std": float("nan")}, ValueError, "bias_std must be a finite positive number"),
        ({"bias_std": 1.0, "policy": "linear_ts"}, ValueError, "policy 'linear_ts' takes its settings"),
        ({"calibrate_output_bias": 1}, TypeError, "calibrate_output_bias must be a bool"),
    ],
)
def test_bad_options_are_named(kwargs, exc, message):
    with pytest.raises(exc) as info:
        CmabBernoulli.cold_start(["a"], n_features=2, **kwargs)
    assert message in str(info.value)


# ------------------------------------------------------------------ calibrate_output_bias
FROZEN = {
    "num_steps": 1,
    "optimizer_kwargs": {"step_size": 1e-9},
    "init_scale": None,
}  # the fit leaves the start as it is


def _bias(mab, aid):
    return float(np.asarray(mab.actions[aid].loc.layers[-1].bias)[0])


def test_calibrate_output_bias_sets_the_first_updates_logit_once_per_lifetime():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, calibrate_output_bias=True, update_kwargs=FROZEN)
    mab.update(["a"] * 4 + ["b"] * 2, [1, 1, 1, 0, 0, 0], np.zeros((6, 2)))
    assert _bias(mab, "a") == pytest.approx(math.log(0.75 / 0.25), abs=1e-5)
    assert _bias(mab, "b") == pytest.approx(math.log(1e-6 / (1 - 1e-6)), rel=1e-5)  # clipped at 1e-6
    mab.update(["a"] * 4, [0, 0, 0, 0], np.zeros((4, 2)))  # not the first update: no recalibration
    assert _bias(mab, "a") == pytest.approx(math.log(3), abs=1e-5)
    mab.reset(["a"])
    mab.update(["a"] * 2, [1, 0], np.zeros((2, 2)))  # after reset, the first update again
    assert _bias(mab, "a") == pytest.approx(0.0, abs=1e-5)
    mab.update(["a"] * 5, [1, 1, 1, 1, 0], np.zeros((5, 2)))
    assert _bias(mab, "a") == pytest.approx(0.0, abs=1e-5)
    plain = CmabBernoulli.cold_start(["a"], n_features=2, update_kwargs=FROZEN)  # control: off
    plain.update(["a"] * 4, [1, 1, 1, 0], np.zeros((4, 2)))
    assert _bias(plain, "a") == pytest.approx(0.0, abs=1e-5)
    assert CmabBernoulli.from_state(mab.get_state()).config.calibrate_output_bias is True


def test_calibration_of_a_failed_fit_changes_nothing_and_replay_calibrates_its_prior():
    diverging = {"num_steps": 5, "optimizer_type": "sgd", "optimizer_kwargs": {"step_size": 1e38}}
    mab = CmabBernoulli.cold_start(["a"], n_features=2, calibrate_output_bias=True, update_kwargs=diverging)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        info = mab.update(["a"] * 4, [1, 1, 1, 0], np.ones((4, 2)) * 100)
    assert not info.ok[0] and _bias(mab, "a") == 0.0 and mab.actions["a"].n_successes == 1
    policy = BnnTS(Network(2), replay_capacity=8, calibrate_output_bias=True)
    state = policy.init(1, sigma=1.0)
    grouped = GroupedFeedback(jnp.zeros((1, 4, 2)), jnp.array([[1.0, 1.0, 1.0, 0.0]]), jnp.ones((1, 4), bool))
    new, _ = policy.update_grouped(jax.random.key(0), state, grouped)
    np.testing.assert_allclose(np.asarray(new.prior_loc.layers[-1].bias), [[math.log(3)]], rtol=1e-5)


def test_replay_calibration_is_undone_by_a_failed_fit():
    from bandits_jax.policies import SviSettings

    svi = SviSettings(5, step_size=1e38, optimizer_type="sgd")
    policy = BnnTS(Network(2), svi=svi, replay_capacity=8, calibrate_output_bias=True)
    state = policy.init(1, sigma=1.0)
    grouped = GroupedFeedback(
        jnp.full((1, 4, 2), 100.0), jnp.array([[1.0, 1.0, 1.0, 0.0]]), jnp.ones((1, 4), bool)
    )
    new, info = policy.update_grouped(jax.random.key(0), state, grouped)
    assert not bool(info.ok[0])
    np.testing.assert_array_equal(np.asarray(new.prior_loc.layers[-1].bias), 0.0)
    np.testing.assert_array_equal(np.asarray(new.loc.layers[-1].bias), 0.0)
