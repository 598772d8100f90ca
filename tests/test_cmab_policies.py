"""Every registered policy through the object API by name (issue 11): ``CmabBernoulli.cold_start(...,
policy=name)`` predicts, updates, refuses bad input without changing anything, saves and loads
exactly, and transfers to a template of the same policy. Parametrised over the registry, so a new
policy is covered with no test written for it."""

import jax
import numpy as np
import pytest

from bandits_jax import policies
from bandits_jax.cmab import CmabBernoulli, PolicyConfig
from bandits_jax.policies import spec
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import assert_unchanged, snapshot

NAMES = sorted(n for n in policies.REGISTRY if n != "bnn_ts")
# small settings per policy (the defaults are sized for real problems)
SMALL = {
    "neural_linear": ({"num_steps": 5, "replay_capacity": 32}, [4]),
    "ensemble": ({"n_members": 2, "num_steps": 5}, [4]),
}


def model(name, ids=("a", "b", "c"), seed=0, n_features=3):
    kwargs, hidden = SMALL.get(name, (None, None))
    return CmabBernoulli.cold_start(
        list(ids),
        n_features=n_features,
        hidden_dim_list=hidden,
        policy=name,
        policy_kwargs=kwargs,
        random_seed=seed,
    )


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def batch(rng, n=16, n_features=3, ids=("a", "b", "c")):
    return list(rng.choice(list(ids), n)), list(rng.integers(0, 2, n)), rng.normal(size=(n, n_features))


def test_the_default_policy_is_the_bayesian_mlp():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=2)
    assert mab.policy_name == "bnn_ts" and isinstance(mab.policy, policies.BnnTS)


def test_predict_update_and_counts(name):
    mab = model(name)
    assert mab.policy_name == name and isinstance(mab.config, PolicyConfig)
    rng = np.random.default_rng(0)
    actions, rewards, ctx = batch(rng)
    chosen, probs, logits = mab.predict(ctx)
    assert len(chosen) == 16 and set(chosen) <= {"a", "b", "c"} and set(probs[0]) == {"a", "b", "c"}
    info = mab.update(actions, rewards, ctx)
    assert bool(np.all(info.ok))
    for aid in "abc":
        rows = [r for a, r in zip(actions, rewards) if a == aid]
        assert mab.actions[aid].n_successes == 1 + sum(rows)
        assert mab.actions[aid].n_failures == 1 + len(rows) - sum(rows)
    assert mab.posterior_mean_logits(ctx).shape == (16, 3)


def test_bad_input_changes_nothing(name):
    mab = model(name)
    rng = np.random.default_rng(1)
    actions, rewards, ctx = batch(rng)
    mab.update(actions, rewards, ctx)
    before = snapshot(mab)
    for args in (
        (actions, rewards, ctx[:, :2]),  # wrong width
        (actions[:-1], rewards, ctx),  # lengths differ
        (["zzz"] + actions[1:], rewards, ctx),  # unknown id
        (actions, [2] + rewards[1:], ctx),  # reward outside {0, 1}
        (actions, rewards, np.where(np.arange(16)[:, None] == 3, np.nan, ctx)),  # NaN context
    ):
        with pytest.raises((ValueError, TypeError)):
            mab.update(*args)
        assert_unchanged(before, mab)
    with pytest.raises(ValueError):
        mab.predict(ctx[:, :2])
    assert_unchanged(before, mab)


def test_save_and_load_are_exact(name, tmp_path):
    mab = model(name)
    rng = np.random.default_rng(2)
    mab.update(*batch(rng))
    path = tmp_path / "model.zip"
    mab.save(path)
    loaded = CmabBernoulli.load(path)
    assert loaded.config == mab.config and loaded.policy == mab.policy
    a, b = snapshot(mab), snapshot(loaded)
    for x, y in zip(a[0] + [a[1]], b[0] + [b[1]], strict=True):
        np.testing.assert_array_equal(x, y)
    ctx = rng.normal(size=(8, 3))
    np.testing.assert_array_equal(mab.predict_arrays(ctx).probs, loaded.predict_arrays(ctx).probs)
    again = CmabBernoulli.from_state(mab.get_state())
    assert again.config == mab.config


def test_transfer_keeps_learned_actions_and_refuses_another_policy(name):
    mab = model(name)
    rng = np.random.default_rng(3)
    mab.update(*batch(rng))
    new = edit_model_on_the_fly(mab, model(name, ids=("c", "a", "d"), seed=1))
    assert new.action_ids == ("c", "a", "d")
    for aid in "ca":
        assert new.actions[aid].n_successes == mab.actions[aid].n_successes
    assert new.actions["d"].n_successes == 1
    other = "linear_ts" if name != "linear_ts" else "lin_ucb"
    with pytest.raises(ValueError, match="cannot carry action"):
        edit_model_on_the_fly(mab, model(other))
    with pytest.raises(ValueError, match="cannot carry action"):
        edit_model_on_the_fly(mab, CmabBernoulli.cold_start(["a"], n_features=3))


def test_bad_policy_arguments_are_named():
    with pytest.raises(ValueError, match="policy must be one of"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="nope")
    with pytest.raises(ValueError, match="unknown key"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="linear_ts", policy_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match="hidden_dim_list"):
        CmabBernoulli.cold_start(["a"], n_features=2, hidden_dim_list=[4], policy="linear_ts")
    with pytest.raises(ValueError, match="update_kwargs"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="linear_ts", update_kwargs={"num_steps": 3})
    with pytest.raises(ValueError, match="policy_kwargs is for policies other than 'bnn_ts'"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy_kwargs={"sigma": 1.0})
    with pytest.raises(ValueError, match="hidden layer"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="neural_linear")
    with pytest.raises(ValueError, match="alpha"):
        CmabBernoulli.cold_start(["a"], n_features=2, policy="lin_ucb", policy_kwargs={"alpha": -1.0})


def test_policy_settings_round_trip_through_json():
    for name in policies.REGISTRY:
        policy = policies.REGISTRY[name].example(3)
        assert spec.from_json(spec.to_json(policy)) == policy
    with pytest.raises(ValueError):
        spec.from_json({"type": "os.system", "fields": {}})


def test_exploration_and_action_controls_work_for_every_policy(name):
    # the controls live in the object-API base, over any policy's Prediction (draws and means)
    kwargs, hidden = SMALL.get(name, (None, None))
    mab = CmabBernoulli.cold_start(
        ["a", "b", "c"],
        n_features=3,
        hidden_dim_list=hidden,
        policy=name,
        policy_kwargs=kwargs,
        random_seed=1,
        epsilon=0.5,
        default_action="b",
    )
    rng = np.random.default_rng(1)
    mab.update(*batch(rng))
    ctx = rng.normal(size=(400, 3))
    out = mab.predict_arrays(ctx, forbidden_actions={"a"}, top_k=2)
    assert out.actions.shape == (400, 2) and "a" not in set(out.actions.ravel().tolist())
    assert (out.actions[:, 0] != out.actions[:, 1]).all()
    # about half the rows explore and pick the default 'b' first; the rest rank by the mean
    assert 0.4 < np.mean(out.actions[:, 0] == "b") <= 1.0


def test_reset_puts_actions_back_at_the_prior_for_every_policy(name):
    cold = model(name)
    mab = model(name)
    rng = np.random.default_rng(2)
    mab.update(*batch(rng, n=24))
    learned = jax.tree.map(np.asarray, mab.state)
    key = np.asarray(jax.random.key_data(mab.key))
    mab.reset(["b"])
    for now, before, prior in zip(
        jax.tree.leaves(mab.state), jax.tree.leaves(learned), jax.tree.leaves(cold.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(now)[1], np.asarray(prior)[1])  # 'b' is cold again
        np.testing.assert_array_equal(np.asarray(now)[[0, 2]], before[[0, 2]])  # 'a' and 'c' kept
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(mab.key)), key)
    with pytest.raises(ValueError, match="action_ids holds unknown"):
        mab.reset(["zz"])
    mab.reset()
    for now, prior in zip(jax.tree.leaves(mab.state), jax.tree.leaves(cold.state), strict=True):
        np.testing.assert_array_equal(np.asarray(now), np.asarray(prior))
