"""Transfer learning: edit_model_on_the_fly carries learned state into a grown model.

The reference for every merge is a plain NumPy loop over the template's actions (copy the old block
into the template's slice), independent of the library's vectorised pytree surgery.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandits_jax import core
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.likelihoods import BernoulliStats
from bandits_jax.smab import SmabBernoulli, SmabState
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import assert_unchanged, snapshot

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT.parent / "shared" / "seed_tutorial.py"
POOL = ("a", "b", "c", "d", 7)  # an int id too: ids are any hashable


def make(action_ids=("a", "b"), n_features=3, **kw):
    kw.setdefault("update_kwargs", {"num_steps": 3})
    kw.setdefault("random_seed", 0)
    return CmabBernoulli.cold_start(action_ids=action_ids, n_features=n_features, **kw)


def randomised(mab, seed):
    """``mab`` with every parameter and count drawn at random: distinct values everywhere, so a
    misplaced copy cannot pass by accident (a cold model is constant)."""
    rng = np.random.default_rng(seed)
    s = mab.state
    state = core.CmabState(
        jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), s.loc),
        jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.1, 2.0, size=x.shape), x.dtype), s.scale),
        BernoulliStats(
            jnp.asarray(rng.integers(1, 1000, s.n_actions), jnp.int32),
            jnp.asarray(rng.integers(1, 1000, s.n_actions), jnp.int32),
        ),
    )
    return CmabBernoulli(
        action_ids=mab.action_ids, config=mab.config, state=state, strategy=mab.strategy, key=mab._key
    )


def expected_merge(current, template):
    """Reference: per template action, the template's arrays with the old block overwritten."""
    out = []
    for leaf_old, leaf_new in zip(jax.tree.leaves(current.state), jax.tree.leaves(template.state)):
        old, new = np.asarray(leaf_old), np.array(leaf_new)
        for j, aid in enumerate(template.action_ids):
            if aid in current.action_ids:
                i = current.action_ids.index(aid)
                new[(j, *(slice(0, n) for n in old.shape[1:]))] = old[i]
        out.append(new)
    return out


def assert_merged(result, current, template):
    assert result.action_ids == template.action_ids
    assert result.config == template.config
    assert result.strategy == template.strategy
    for got, want in zip(jax.tree.leaves(result.state), expected_merge(current, template), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), want)  # bit for bit


def exercise(mab, n_rows=4):
    """Predict, then update on the predictions: the model works end to end."""
    ctx = np.random.default_rng(0).normal(size=(n_rows, mab.input_dim))
    actions, probs, _ = mab.predict(ctx)
    info = mab.update(actions=actions, rewards=[1, 0] * (n_rows // 2), context=ctx)
    assert np.all(info.ok)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(mab.state))


# ---------------------------------------------------------------------------------- the tutorial
def test_user_tutorial_script_runs_unchanged():
    if not TUTORIAL.is_file():
        pytest.skip(f"the user's tutorial is not here: {TUTORIAL} (it lives in ../shared)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, str(TUTORIAL)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Continued training complete." in proc.stdout
    assert proc.stdout.count("✓") == 2


def test_tutorial_flow_train_evolve_continue(caplog):
    """The tutorial's three steps, checked in detail: counts, blocks, cold action, logs."""
    rng = np.random.default_rng(42)
    v1 = make({"action_A", "action_B"}, 3, update_kwargs={"num_steps": 20}, random_seed=1)
    ctx = rng.normal(size=(64, 3))
    actions, _, _ = v1.predict(ctx)
    v1.update(
        actions=actions,
        rewards=[int(rng.random() < (0.7 if a == "action_A" else 0.3)) for a in actions],
        context=ctx,
    )
    template = make({"action_A", "action_B", "action_C"}, 4, update_kwargs={"num_steps": 20}, random_seed=2)
    before_v1, before_t = snapshot(v1), snapshot(template)

    with caplog.at_level(logging.INFO, logger="bandits_jax.transfer"):
        v2 = edit_model_on_the_fly(v1, template)

    assert_unchanged(before_v1, v1)
    assert_unchanged(before_t, template)
    assert_merged(v2, v1, template)
    assert v2.input_dim == 4 and v2.action_ids == ("action_A", "action_B", "action_C")
    for aid in v1.actions:
        old, new = v1.actions[aid], v2.actions[aid]
        assert (new.n_successes, new.n_failures) == (old.n_successes, old.n_failures)
        for tree_old, tree_new in ((old.loc, new.loc), (old.scale, new.scale)):
            np.testing.assert_array_equal(tree_new.layers[0].weight[:3], tree_old.layers[0].weight)
            np.testing.assert_array_equal(tree_new.layers[0].bias, tree_old.layers[0].bias)
        assert float(new.loc.layers[0].weight[3, 0]) == 0.0  # the template's prior mean
        assert float(new.scale.layers[0].weight[3, 0]) == 10.0  # and prior scale
    cold = v2.actions["action_C"]
    assert (cold.n_successes, cold.n_failures) == (1, 1)
    assert not np.array_equal(jax.random.key_data(v2._key), jax.random.key_data(template._key))

    messages = [r.getMessage() for r in caplog.records if r.name == "bandits_jax.transfer"]
    assert any("3 -> 4" in m and "1 new feature" in m for m in messages), messages
    assert any("3 action(s)" in m and "2 transferred" in m and "1 new" in m for m in messages), messages

    ctx2 = rng.normal(size=(64, 4))
    actions2, _, _ = v2.predict(ctx2)
    v2.update(actions=actions2, rewards=[int(rng.random() < 0.5) for _ in actions2], context=ctx2)
    n_rows = {a: actions2.count(a) for a in v2.action_ids}
    for aid in v2.action_ids:
        act = v2.actions[aid]
        start = v1.actions[aid] if aid in v1.actions else cold
        assert act.n_successes + act.n_failures == start.n_successes + start.n_failures + n_rows[aid]
    assert_unchanged(before_v1, v1)  # the evolved model shares nothing mutable with its sources


@pytest.mark.parametrize("hidden", [None, [5]])
def test_feature_growth_preserves_posterior_mean_logits(hidden):
    """3 -> 4 features, widths unchanged: on contexts whose new feature is 0, the old actions'
    posterior-mean logits are the trained model's, so what was learned is really kept."""
    rng = np.random.default_rng(0)
    v1 = make(["x", "y"], 3, hidden_dim_list=hidden, update_kwargs={"num_steps": 30})
    ctx = rng.normal(size=(32, 3))
    v1.update(actions=["x", "y"] * 16, rewards=(ctx[:, 0] > 0).astype(int).tolist(), context=ctx)
    v2 = edit_model_on_the_fly(v1, make(["y", "z", "x"], 4, hidden_dim_list=hidden, random_seed=5))

    test_ctx = rng.normal(size=(16, 3))
    before = v1.posterior_mean_logits(test_ctx)
    after = v2.posterior_mean_logits(np.hstack([test_ctx, np.zeros((16, 1))]))
    assert np.ptp(before) > 0.1  # the model did learn something worth preserving
    for j, aid in enumerate(v2.action_ids):
        if aid in v1.action_ids:
            np.testing.assert_allclose(after[:, j], before[:, v1.action_ids.index(aid)], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------- properties
_structures = st.fixed_dictionaries(
    {
        "n_features": st.integers(1, 3),
        "grow_features": st.integers(0, 2),
        "hidden": st.lists(st.integers(1, 3), max_size=2),
        "grow_hidden": st.lists(st.integers(0, 2), min_size=2, max_size=2),
        "activation": st.sampled_from(["tanh", "relu"]),
        "residual": st.booleans(),
    }
)
_id_lists = st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True)


def _pair(structure, old_ids, new_ids, seed):
    hidden = structure["hidden"]
    grown = [w + g for w, g in zip(hidden, structure["grow_hidden"])]
    common = dict(activation=structure["activation"], use_residual_connections=structure["residual"])
    current = randomised(make(old_ids, structure["n_features"], hidden_dim_list=hidden, **common), seed)
    n_new = structure["n_features"] + structure["grow_features"]
    template = randomised(
        make(new_ids, n_new, hidden_dim_list=grown, strategy=BestActionIdentificationBandit(0.3), **common),
        seed + 1,
    )
    return current, template


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structure=_structures, old_ids=_id_lists, new_ids=_id_lists, seed=st.integers(0, 2**16))
def test_any_growth_keeps_old_block_bit_for_bit(structure, old_ids, new_ids, seed):
    current, template = _pair(structure, old_ids, new_ids, seed)
    before_c, before_t = snapshot(current), snapshot(template)
    ids_c, ids_t, cfg_c, cfg_t = current.action_ids, template.action_ids, current.config, template.config

    result = edit_model_on_the_fly(current, template)

    assert_merged(result, current, template)
    for aid in result.action_ids:
        if aid in current.action_ids:  # counts kept; new actions have the template's
            src = current.actions[aid]
        else:
            src = template.actions[aid]
        assert (result.actions[aid].n_successes, result.actions[aid].n_failures) == (
            src.n_successes,
            src.n_failures,
        )
    assert_unchanged(before_c, current)
    assert_unchanged(before_t, template)
    assert (current.action_ids, template.action_ids, current.config, template.config) == (
        ids_c,
        ids_t,
        cfg_c,
        cfg_t,
    )


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structure=_structures, old_ids=_id_lists, new_ids=_id_lists, seed=st.integers(0, 2**16))
def test_any_evolved_model_predicts_and_updates(structure, old_ids, new_ids, seed):
    """Fewer examples than the property above: each new shape compiles predict and update."""
    current, template = _pair(structure, old_ids, new_ids, seed)
    before = snapshot(current)
    result = edit_model_on_the_fly(current, template)
    exercise(result)
    assert_unchanged(before, current)


@settings(max_examples=10, deadline=None)
@given(old_ids=_id_lists, new_ids=_id_lists, seed=st.integers(0, 2**16))
def test_smab_merge_keeps_counts_and_takes_template_actions(old_ids, new_ids, seed):
    rng = np.random.default_rng(seed)

    def smab(ids, strategy):
        mab = SmabBernoulli.cold_start(list(ids), strategy=strategy, random_seed=seed)
        counts = [jnp.asarray(rng.integers(1, 1000, len(ids)), jnp.int32) for _ in range(2)]
        return SmabBernoulli(
            action_ids=mab.action_ids, state=SmabState(*counts), strategy=strategy, key=mab._key
        )

    current, template = smab(old_ids, ClassicBandit()), smab(new_ids, BestActionIdentificationBandit(0.2))
    before_c, before_t = snapshot(current), snapshot(template)
    result = edit_model_on_the_fly(current, template)
    assert isinstance(result, SmabBernoulli)
    assert result.action_ids == template.action_ids and result.strategy == template.strategy
    for aid in result.action_ids:
        src = current.actions[aid] if aid in current.action_ids else template.actions[aid]
        assert (result.actions[aid].n_successes, result.actions[aid].n_failures) == (
            src.n_successes,
            src.n_failures,
        )
    assert_unchanged(before_c, current)
    assert_unchanged(before_t, template)
    result.update(actions=[result.action_ids[0]], rewards=[1])
    assert result.actions[result.action_ids[0]].n_successes == (
        current.actions[result.action_ids[0]].n_successes + 1
        if result.action_ids[0] in current.action_ids
        else template.actions[result.action_ids[0]].n_successes + 1
    )
    assert len(result.predict(n_samples=3)[0]) == 3


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("current_kw", "template_kw", "key", "values"),
    [
        ({"activation": "tanh"}, {"activation": "relu"}, "activation", ("'tanh'", "'relu'")),
        (
            {"use_residual_connections": False},
            {"use_residual_connections": True},
            "use_residual_connections",
            ("False", "True"),
        ),
        ({"n_features": 3}, {"n_features": 2}, "n_features", ("3", "2")),
        ({"hidden_dim_list": [4]}, {"hidden_dim_list": [4, 4]}, "hidden_dim_list", ("[4]", "[4, 4]")),
        ({"hidden_dim_list": [4, 4]}, {"hidden_dim_list": None}, "hidden_dim_list", ("[4, 4]", "[]")),
        ({"hidden_dim_list": [4, 4]}, {"hidden_dim_list": [4, 3]}, "hidden_dim_list", ("[4, 4]", "[4, 3]")),
    ],
)
def test_incompatible_structure_is_refused(current_kw, template_kw, key, values):
    current = randomised(make(["a", "b"], **current_kw), 0)
    template = make(["b", "c"], **template_kw)
    before_c, before_t = snapshot(current), snapshot(template)
    with pytest.raises(ValueError) as err:
        edit_model_on_the_fly(current, template)
    message = str(err.value)
    assert key in message and "'b'" in message, message  # the key and the action in common
    assert f"current_mab has {key}={values[0]}" in message and f"new_mab has {key}={values[1]}" in message
    assert_unchanged(before_c, current)
    assert_unchanged(before_t, template)


@settings(max_examples=10, deadline=None)
@given(
    n_features=st.integers(1, 4),
    hidden=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    data=st.data(),
)
def test_any_shrink_is_refused_and_changes_nothing(n_features, hidden, data):
    layer = data.draw(st.integers(-1, len(hidden) - 1), label="layer to shrink (-1: features)")
    shrunk_features = n_features - 1 if layer == -1 else n_features
    shrunk = [w - 1 if i == layer else w for i, w in enumerate(hidden)]
    if shrunk_features < 1 or 0 in shrunk:
        shrunk_features, shrunk = n_features, hidden[:-1]  # cannot narrow a width-1 layer: drop one
    current = randomised(make(["a"], n_features, hidden_dim_list=hidden), 1)
    template = make(["a"], shrunk_features, hidden_dim_list=shrunk)
    before = snapshot(current)
    with pytest.raises(ValueError, match="n_features|hidden_dim_list"):
        edit_model_on_the_fly(current, template)
    assert_unchanged(before, current)


def test_cmab_and_smab_cannot_merge():
    cmab, smab = make(), SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    for args in ((cmab, smab), (smab, cmab)):
        with pytest.raises(TypeError, match="current_mab.*new_mab"):
            edit_model_on_the_fly(*args)
    with pytest.raises(TypeError, match="current_mab"):
        edit_model_on_the_fly({"a": 1}, cmab)


# ---------------------------------------------------------------------------------- details
def test_no_action_in_common_is_the_template_with_a_new_key():
    """Nothing is carried over, so no structure needs to match."""
    current = randomised(make(["a"], 3, hidden_dim_list=[4], activation="relu"), 0)
    template = randomised(make(["z"], 2), 1)
    result = edit_model_on_the_fly(current, template)
    assert_merged(result, current, template)
    assert not np.array_equal(jax.random.key_data(result._key), jax.random.key_data(template._key))


def test_template_settings_rule_and_result_is_deterministic():
    current = randomised(make(["a", "b"], 2, update_kwargs={"num_steps": 7}), 0)
    template = make(
        ["b", "a"],
        2,
        dist_type="studentt",
        update_kwargs={"num_steps": 3, "optimizer_kwargs": {"step_size": 0.05}},
    )
    one, two = edit_model_on_the_fly(current, template), edit_model_on_the_fly(current, template)
    assert one.update_kwargs == template.update_kwargs and one.dist_type == "studentt"
    assert one.action_ids == ("b", "a")
    for x, y in zip(jax.tree.leaves(one.state), jax.tree.leaves(two.state)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(jax.random.key_data(one._key), jax.random.key_data(two._key))


def test_switched_residual_connection_is_logged_as_a_warning(caplog):
    """3 -> 4 features with a hidden width of 3: the residual of that layer no longer applies."""
    current = make(["a"], 3, hidden_dim_list=[3], use_residual_connections=True)
    template = make(["a"], 4, hidden_dim_list=[3], use_residual_connections=True)
    with caplog.at_level(logging.INFO, logger="bandits_jax.transfer"):
        edit_model_on_the_fly(current, template)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("residual" in m and "[0]" in m for m in warnings), warnings
