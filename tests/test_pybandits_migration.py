"""Migration from PyBandits 8.4.1 (issue 12 item 6): states written by real PyBandits
(``benchmarks/make_pybandits_fixtures.py``, committed in tests/data/pybandits/) load as models whose
posterior-mean logits equal PyBandits' own, and models write states in PyBandits' form.

Tolerance of the logits: PyBandits' forward pass runs in float64 on the same ``mu`` weights, ours
in float32; the difference is float32 rounding through a few layers, about eps32 (1.2e-7) times
the logits' magnitude (up to ~16 here) per layer: 2e-5 absolute leaves a margin of 3 and would
still catch one wrong weight, bias or activation (those move the logits by O(0.1) or more)."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit

DATA = Path(__file__).parent / "data" / "pybandits"
CMAB = sorted(DATA.glob("cmab_*.json"))


def _fixture(name):
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize("path", CMAB, ids=lambda p: p.stem)
def test_posterior_mean_logits_equal_pybandits(path):
    fixture = json.loads(path.read_text())
    mab = CmabBernoulli.from_pybandits_state(fixture["state"], random_seed=0)
    ours = mab.posterior_mean_logits(np.asarray(fixture["context"]))
    theirs = np.stack([fixture["mean_logits"][aid] for aid in mab.action_ids], axis=1)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)
    # control: the logits are far from trivial, and the actions far from equal
    assert np.abs(theirs).max() > 1 and np.abs(theirs[:, 0] - theirs[:, -1]).max() > 0.1
    data = json.loads(fixture["state"])["actions_manager"]["meta_model"]["actions"]
    for aid in mab.action_ids:  # soft counts: a float32 fraction (error < 6e-8) over an exact whole part
        assert (mab.actions[aid].n_successes, mab.actions[aid].n_failures) == pytest.approx(
            (data[aid]["n_successes"], data[aid]["n_failures"]), rel=0, abs=1e-6
        )


def test_settings_come_across():
    mab = CmabBernoulli.from_pybandits_state(_fixture("cmab_normal_residual_epsilon.json")["state"])
    assert (mab.dist_type, mab.hidden_dim_list, mab.use_residual_connections) == ("normal", [3, 3], True)
    assert (mab.epsilon, mab.default_action) == (0.1, "x")
    assert mab.dist_params_init["sigma"] == 2.0
    kw = mab.update_kwargs
    assert (kw["num_steps"], kw["optimizer_kwargs"]["step_size"], kw["restore_best_svi_state"]) == (
        20,
        0.05,
        False,
    )
    studentt = CmabBernoulli.from_pybandits_state(_fixture("cmab_studentt_hidden.json")["state"])
    assert (studentt.dist_type, studentt.dist_params_init["nu"], studentt.dist_params_init["sigma"]) == (
        "studentt",
        5.0,
        10.0,
    )
    assert studentt.update_kwargs["restore_best_svi_state"] is True  # PyBandits' default, kept
    # PyBandits 8.4.1 writes its CMAB's BestActionIdentificationBandit as {} and reads it back as
    # ClassicBandit; so do we
    assert (
        type(CmabBernoulli.from_pybandits_state(_fixture("cmab_linear_bai.json")["state"]).strategy)
        is ClassicBandit
    )
    # the migrated model learns and predicts like any other
    x = np.random.default_rng(0).normal(size=(6, 2))
    assert mab.update(["x", "y"] * 3, [1, 0] * 3, x).ok.all()
    assert set(mab.predict(x)[0]) <= {"x", "y"}


def test_smab_counts_and_settings():
    fixture = _fixture("smab_epsilon_limited.json")
    mab = SmabBernoulli.from_pybandits_state(("SmabBernoulli", fixture["state"]), random_seed=0)
    for aid, (n_s, n_f) in fixture["counts"].items():
        assert (mab.actions[aid].n_successes, mab.actions[aid].n_failures) == (n_s, n_f)
    assert (mab.epsilon, mab.limited_actions, mab.limited_action_fraction) == (0.2, frozenset({"s3"}), 0.5)


def _keys(tree):
    """The nested key structure of a JSON object (lists: their first element's)."""
    if isinstance(tree, dict):
        return {k: _keys(v) for k, v in tree.items()}
    if isinstance(tree, list) and tree and isinstance(tree[0], (dict, list)):
        return [_keys(tree[0])]
    return None


def test_written_states_have_pybandits_form_and_round_trip():
    mab = CmabBernoulli.cold_start(
        ["u", "v"],
        n_features=3,
        hidden_dim_list=[4],
        dist_type="studentt",
        use_layerwise_scaling=True,
        bias_std=0.7,
        epsilon=0.2,
        default_action="u",
        strategy=BestActionIdentificationBandit(0.6),
        update_kwargs={"num_steps": 20},
        random_seed=0,
    )
    mab.update(["u", "v"] * 5, [1, 0] * 5, np.random.default_rng(1).normal(size=(10, 3)))
    name, text = mab.to_pybandits_state()
    assert name == "CmabBernoulli"
    ours, theirs = json.loads(text), json.loads(_fixture("cmab_studentt_hidden.json")["state"])
    assert set(ours) == set(theirs)
    action = lambda d: next(iter(d["actions_manager"]["meta_model"]["actions"].values()))  # noqa: E731
    assert _keys(action(ours)) == _keys(action(theirs))
    assert ours["strategy"] == {"exploit_p": 0.6}
    back = CmabBernoulli.from_pybandits_state(text, random_seed=0)
    assert back.config == mab.config and back.exploration == mab.exploration
    assert type(back.strategy) is BestActionIdentificationBandit and back.strategy.exploit_p == 0.6
    for a, b in zip(jax.tree.leaves(back.state), jax.tree.leaves(mab.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    smab = SmabBernoulli.cold_start(["a", "b"], epsilon=0.3, random_seed=0)
    smab.update(["a", "b", "a"], [1, 0, 0])
    again = SmabBernoulli.from_pybandits_state(smab.to_pybandits_state())
    assert [again.actions[a].n_successes for a in "ab"] == [2, 1] and again.epsilon == 0.3


def _edited(name, edit):
    data = json.loads(_fixture(name)["state"])
    edit(data)
    return json.dumps(data)


def _actions(data):
    return data["actions_manager"]["meta_model"]["actions"]


REFUSED = [
    (lambda d: _actions(d)["a"].update(decay_factor=0.9), "decay_factor values differ"),
    (lambda d: _actions(d)["a"].update(n_successes=2.5), "fractional counts need soft rewards"),
    (lambda d: [a.update(decay_factor=1.5) for a in _actions(d).values()], "decay_factor"),
    (lambda d: _actions(d)["b"].update(activation="relu"), "differ in activation"),
    (
        lambda d: _actions(d)["a"]["feature_config"].update(categorical_features_configs=[{"x": 1}]),
        "categorical",
    ),
    (lambda d: d["actions_manager"].update(use_soft_rewards="yes"), "use_soft_rewards"),
    (lambda d: d["actions_manager"].update(delta=5), "adaptive window"),
    (lambda d: d.update(strategy={"weight": 0.5}), "strategy"),
    (lambda d: d.update(epsilon=2.0), "epsilon must lie in [0, 1]"),
    (lambda d: d.pop("actions_manager"), "actions_manager"),
]


@pytest.mark.parametrize(("edit", "message"), REFUSED)
def test_what_is_not_supported_is_refused_by_name(edit, message):
    with pytest.raises(ValueError, match=None) as info:
        CmabBernoulli.from_pybandits_state(_edited("cmab_studentt_hidden.json", edit))
    assert message in str(info.value)


def test_bad_input_and_models_pybandits_cannot_hold():
    with pytest.raises(ValueError, match="not valid JSON"):
        CmabBernoulli.from_pybandits_state("{")
    with pytest.raises(ValueError, match="'CmabBernoulli', json"):
        CmabBernoulli.from_pybandits_state(("SmabBernoulli", "{}"))
    with pytest.raises(TypeError, match="JSON text"):
        CmabBernoulli.from_pybandits_state(3)
    with pytest.raises(ValueError, match="policy 'linear_ts'"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="linear_ts").to_pybandits_state()
    with pytest.raises(ValueError, match="init_scale"):
        CmabBernoulli.cold_start(["a"], n_features=2, update_kwargs={"init_scale": 0.3}).to_pybandits_state()
    with pytest.raises(ValueError, match="action ids are strings"):
        CmabBernoulli.cold_start([1, 2], n_features=2).to_pybandits_state()


def test_malformed_structures_are_value_errors():
    for edit in (
        lambda d: _actions(d)["a"]["model_params"]["bnn_layer_params"][0].pop("weight"),
        lambda d: _actions(d)["a"].update(n_successes=float("inf")),
        lambda d: _actions(d)["a"]["model_params"]["bnn_layer_params"][0]["weight"].update(mu=[1.0, 2.0]),
    ):
        with pytest.raises(ValueError):
            CmabBernoulli.from_pybandits_state(_edited("cmab_studentt_hidden.json", edit))


def test_epochs_come_across_without_the_both_keys_warning():
    import warnings

    mab = CmabBernoulli.cold_start(["a"], n_features=2, update_kwargs={"epochs": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = CmabBernoulli.from_pybandits_state(mab.to_pybandits_state())
    assert back.config.epochs == 3


def test_soft_rewards_and_decay_come_across_and_update_as_pybandits_does():
    """PyBandits 8.4.1's sMAB with soft rewards and decay_factor 0.8: its raw and decayed counts
    load, and one more update here gives the counts PyBandits computed after the same update
    (float32 decayed counts of magnitude ~5: 1e-5 absolute)."""
    fixture = _fixture("smab_soft_decay.json")
    mab = SmabBernoulli.from_pybandits_state(fixture["state"], random_seed=0)
    assert mab.use_soft_rewards and mab.decay_factor == 0.8
    mab.update(**fixture["next_update"])
    decayed = mab.state.decayed
    for i, aid in enumerate(mab.action_ids):
        n_s, n_f, d_s, d_f = fixture["counts_after"][aid]
        assert (mab.actions[aid].n_successes, mab.actions[aid].n_failures) == pytest.approx(
            (n_s, n_f), abs=1e-5
        )
        assert (float(decayed.decayed_n_successes[i]), float(decayed.decayed_n_failures[i])) == pytest.approx(
            (d_s, d_f), abs=1e-5
        )
    # and back: PyBandits' form with the flag, the factor and both kinds of counts
    text = mab.to_pybandits_state()[1]
    data = json.loads(text)
    assert data["actions_manager"]["use_soft_rewards"] is True
    action = data["actions_manager"]["meta_model"]["actions"]["u"]
    assert action["decay_factor"] == 0.8
    assert action["decayed_n_successes"] == pytest.approx(fixture["counts_after"]["u"][2], abs=1e-5)
    again = SmabBernoulli.from_pybandits_state(text, random_seed=0)
    for a, b in zip(jax.tree.leaves(again.state), jax.tree.leaves(mab.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


def test_a_cmab_with_soft_rewards_and_decay_comes_across_and_back():
    fixture = _fixture("cmab_soft_decay.json")
    mab = CmabBernoulli.from_pybandits_state(fixture["state"], random_seed=0)
    assert mab.use_soft_rewards and mab.decay_factor == 0.9 and mab.policy_name == "bnn_ts"
    assert isinstance(mab.actions["g"].n_successes, float)
    x = np.random.default_rng(0).normal(size=(4, 2))
    mab.update(["g", "h", "g", "h"], [0.25, 0.5, 1.0, 0.0], x)  # learns soft rewards, forgetting
    data = json.loads(mab.to_pybandits_state()[1])
    assert data["actions_manager"]["use_soft_rewards"] is True
    assert {a["decay_factor"] for a in data["actions_manager"]["meta_model"]["actions"].values()} == {0.9}
    back = CmabBernoulli.from_pybandits_state(json.dumps(data), random_seed=0)
    assert back.config == mab.config
    for a, b in zip(jax.tree.leaves(back.state), jax.tree.leaves(mab.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


def test_pybandits_float64_soft_sums_and_saturated_counts_load_and_save():
    """PyBandits adds soft rewards in float64 (1 + 0.2 + 0.6 + 0.2 = 1.9999999999999998, whose
    fraction rounds to 1.0 in float32: it carries into the whole part); a count at the int32
    maximum (what a saturated model here writes) loads."""
    fixture = _fixture("smab_soft_decay.json")
    data = json.loads(fixture["state"])
    actions = data["actions_manager"]["meta_model"]["actions"]
    actions["u"]["n_successes"] = 1 + 0.2 + 0.6 + 0.2
    actions["v"]["n_failures"] = float(np.iinfo(np.int32).max)
    mab = SmabBernoulli.from_pybandits_state(json.dumps(data), random_seed=0)
    assert mab.actions["u"].n_successes == 2.0 and mab.actions["v"].n_failures == np.iinfo(np.int32).max
    again = SmabBernoulli.from_state(mab.get_state())  # its own format reads it back
    assert again.actions["u"].n_successes == 2.0
    for name, value, message in (
        ("decayed_n_successes", 1e39, "decayed counts"),
        ("decay_factor", [0.8], "decay_factor"),
        ("n_successes", 2.0**31 + 1, "int32"),
    ):
        bad = json.loads(fixture["state"])
        for action in bad["actions_manager"]["meta_model"]["actions"].values():
            action[name] = value
        with pytest.raises(ValueError, match=message):
            SmabBernoulli.from_pybandits_state(json.dumps(bad))
