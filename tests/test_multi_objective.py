"""The multi-objective wrapper policy (issue 13, item 4, functional layer): one base model per
action and objective, checked against independent single-objective models, with the contract's
guarantees (actions without rows untouched, masked rows inert, a failed fit keeps the action)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.policies import BetaBernoulli, BnnTS, Feedback, Network, SviSettings
from bandits_jax.policies.multi_objective import MultiObjective
from bandits_jax.strategy import MultiObjectiveBandit, MultiObjectiveCostControlBandit, pareto_front


def _feedback(rng, n_rows, n_actions, n_objectives, n_features=0, mask=None):
    return Feedback(
        jnp.asarray(rng.normal(size=(n_rows, n_features)), jnp.float32),
        jnp.asarray(rng.integers(0, n_actions, n_rows), jnp.int32),
        jnp.asarray(rng.integers(0, 2, (n_rows, n_objectives)), jnp.int32),
        jnp.ones(n_rows, bool) if mask is None else jnp.asarray(mask),
    )


def test_beta_counts_equal_independent_single_objective_models():
    rng = np.random.default_rng(0)
    policy = MultiObjective(BetaBernoulli(), n_objectives=3)
    state = policy.init(4)
    fb = _feedback(rng, 50, 4, 3)
    state, info = policy.update(jax.random.key(0), state, fb)
    single = BetaBernoulli()
    for k in range(3):
        one, _ = single.update(jax.random.key(0), single.init(4), fb._replace(rewards=fb.rewards[:, k]))
        np.testing.assert_array_equal(state.n_successes[:, k], one.n_successes)
        np.testing.assert_array_equal(state.n_failures[:, k], one.n_failures)
    np.testing.assert_array_equal(info.n_rows, np.bincount(np.asarray(fb.actions), minlength=4))
    assert info.ok.shape == (4,) and bool(info.ok.all())


def test_bnn_objectives_fit_separately_and_keep_the_contract():
    rng = np.random.default_rng(1)
    base = BnnTS(Network(2, (3,)), svi=SviSettings(num_steps=30, step_size=0.05))
    policy = MultiObjective(base, n_objectives=2)
    state = policy.init(3, sigma=1.0)
    assert jax.tree.leaves(state)[0].shape[:2] == (3, 2)
    # rows only for actions 0 and 1; half of them masked out
    fb = _feedback(rng, 40, 2, 2, n_features=2, mask=np.arange(40) % 2 == 0)
    new, info = policy.update(jax.random.key(0), state, fb)
    assert info.losses.shape == (3, 2, 30) and bool(info.ok.all())
    for old_leaf, new_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        np.testing.assert_array_equal(old_leaf[2], new_leaf[2])  # action 2 had no rows
    # the objectives saw different rewards, so their posteriors differ
    assert not np.allclose(new.loc.layers[0].weight[0, 0], new.loc.layers[0].weight[0, 1])
    # masked rows change nothing: the same update without them gives the same state
    keep = np.asarray(fb.mask)
    only = Feedback(fb.context[keep], fb.actions[keep], fb.rewards[keep], fb.mask[keep])
    again, _ = policy.update(jax.random.key(0), state, only, rows_per_action=40)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(again)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_a_non_finite_fit_keeps_the_whole_action():
    rng = np.random.default_rng(2)
    base = BnnTS(Network(2), svi=SviSettings(num_steps=20, step_size=1e30))
    policy = MultiObjective(base, n_objectives=2)
    state = policy.init(2)
    new, info = policy.update(jax.random.key(0), state, _feedback(rng, 20, 2, 2, n_features=2))
    assert not info.ok.any()
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        np.testing.assert_array_equal(a, b)


def test_predict_gives_vectors_and_picks_from_the_pareto_front():
    policy = MultiObjective(BetaBernoulli(), n_objectives=2)
    state = policy.init(5)
    pred = policy.predict(jax.random.key(0), state, jnp.zeros((300, 0)), MultiObjectiveBandit())
    assert pred.probs.shape == (300, 5, 2) and pred.mean_probs.shape == (300, 5, 2)
    front = np.asarray(pareto_front(pred.probs))
    assert all(front[i, a] for i, a in enumerate(np.asarray(pred.actions)))
    masked = policy.predict(
        jax.random.key(0),
        state,
        jnp.zeros((300, 0)),
        MultiObjectiveBandit(),
        jnp.array([0, 1, 1, 1, 1], bool),
    )
    assert not np.any(np.asarray(masked.actions) == 0)
    cc = policy.predict(
        jax.random.key(0),
        state,
        jnp.zeros((10, 0)),
        MultiObjectiveCostControlBandit(jnp.array([0.0, 1, 1, 1, 1]), 1.0),
    )
    assert np.all(np.asarray(cc.actions) == 0)  # subsidy 1: the free action, whatever the draws


def test_multi_objective_thompson_avoids_a_dominated_action():
    """True means (0.8, 0.2), (0.2, 0.8) and (0.15, 0.15): the third is dominated. After 20 rounds
    of 30 rows, the policy must choose it far less than uniform random (1/3) in the last 10."""
    means = np.array([[0.8, 0.2], [0.2, 0.8], [0.15, 0.15]])
    policy = MultiObjective(BetaBernoulli(), n_objectives=2)
    state = policy.init(3)
    rng = np.random.default_rng(3)
    key = jax.random.key(0)
    late = []
    for t in range(20):
        key, k_pred, k_upd = jax.random.split(key, 3)
        actions = np.asarray(
            policy.predict(k_pred, state, jnp.zeros((30, 0)), MultiObjectiveBandit()).actions
        )
        rewards = (rng.uniform(size=(30, 2)) < means[actions]).astype(np.int32)
        state, _ = policy.update(
            k_upd,
            state,
            Feedback(jnp.zeros((30, 0)), jnp.asarray(actions), jnp.asarray(rewards), jnp.ones(30, bool)),
        )
        if t >= 10:
            late.append(actions)
    share = np.mean(np.concatenate(late) == 2)
    assert share < 0.1, share


def test_settings_are_checked():
    with pytest.raises(ValueError, match="n_objectives"):
        MultiObjective(BetaBernoulli(), n_objectives=0)
    with pytest.raises(TypeError, match="MultiObjective"):
        MultiObjective(MultiObjective(BetaBernoulli()), 2)


# ---------------------------------------------------------------------------------- object API
from bandits_jax.cmab import CmabBernoulli, CmabBernoulliMO, CmabBernoulliMOCC  # noqa: E402
from bandits_jax.config import CmabConfig  # noqa: E402
from bandits_jax.smab import SmabBernoulli, SmabBernoulliMO, SmabBernoulliMOCC  # noqa: E402
from bandits_jax.transfer import edit_model_on_the_fly  # noqa: E402


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_smab_mo_counts_predicts_and_validates():
    mab = SmabBernoulliMO.cold_start(["a", "b", "c"], n_objectives=3, random_seed=0)
    mab.update(["a", "b", "a"], [[1, 0, 1], [0, 1, 1], [1, 1, 0]])
    assert mab.actions["a"].n_successes == [3, 2, 2] and mab.actions["a"].n_failures == [1, 2, 2]
    assert mab.actions["c"].n_successes == [1, 1, 1]
    actions, probs = mab.predict(4, forbidden_actions=["c"])
    assert len(actions) == 4 and "c" not in actions and len(probs[0]["b"]) == 3
    before = mab.get_state()
    for bad, error in (
        ([[1, 0]], ValueError),  # wrong vector length
        ([[1, 0, 2]], ValueError),  # not binary
        ([1], TypeError),  # a scalar, not a vector
        ([[1, 0, 1], [1, 1, 1]], ValueError),  # one reward vector too many
        ("x", TypeError),
    ):
        with pytest.raises(error):
            mab.update(["a"], bad)
    with pytest.raises(ValueError, match="top_k"):
        mab.predict(2, top_k=1)
    assert mab.get_state() == before  # failed calls changed nothing, key included
    with pytest.raises(TypeError, match="epsilon"):
        SmabBernoulliMO.cold_start(["a"], epsilon=0.1)
    with pytest.raises(ValueError, match="n_objectives"):
        SmabBernoulliMO.cold_start(["a"], n_objectives=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SmabBernoulliMO.cold_start(["a", "b"], n_objectives=2, random_seed=3),
        lambda: SmabBernoulliMOCC.cold_start(
            {"a": 2.0, "b": 0.5}, n_objectives=2, subsidy_factor=0.3, random_seed=3
        ),
        lambda: CmabBernoulliMO.cold_start(
            ["a", "b"], n_features=2, update_kwargs={"num_steps": 10}, random_seed=3
        ),
        lambda: CmabBernoulliMOCC.cold_start(
            {"a": 2.0, "b": 0.5}, n_features=2, update_kwargs={"num_steps": 10}, random_seed=3
        ),
    ],
)
def test_mo_models_save_load_and_transfer(make, tmp_path):
    mab = make()
    contextual = hasattr(mab, "input_dim")
    args = (np.ones((3, 2)),) if contextual else ()
    mab.update(["a", "b", "a"], [[1, 0], [0, 1], [1, 1]], *args)
    path = tmp_path / "mo.npz"
    mab.save(path)
    back = type(mab).load(path)
    _leaves_equal(back.state, mab.state)
    _leaves_equal(back.strategy, mab.strategy)
    assert back.n_objectives == 2 and '"format_version":5' in mab.get_state()[1]
    # the template's costs and action set; learned counts carried; another n_objectives refused
    if contextual:
        template = CmabBernoulliMOCC.cold_start(
            {"c": 1.0, "a": 0.0}, n_features=2, update_kwargs={"num_steps": 10}
        )
        single = CmabBernoulli.cold_start(["a"], n_features=2)
    else:
        template = SmabBernoulliMOCC.cold_start({"c": 1.0, "a": 0.0}, n_objectives=2)
        single = SmabBernoulli.cold_start(["a"])
    merged = edit_model_on_the_fly(mab, template)
    assert merged.action_ids_cost == {"c": 1.0, "a": 0.0}
    assert merged.actions["a"].n_successes == mab.actions["a"].n_successes == [3, 2]
    for bad_template in (single,):
        with pytest.raises(ValueError, match="n_objectives"):
            edit_model_on_the_fly(mab, bad_template)
        with pytest.raises(ValueError, match="n_objectives"):
            edit_model_on_the_fly(bad_template, mab)


def test_cmab_mo_bad_rewards_leave_the_model_unchanged_and_settings_are_checked():
    mab = CmabBernoulliMO.cold_start(
        ["a", "b"], n_features=2, n_objectives=2, update_kwargs={"num_steps": 10}
    )
    before = mab.get_state()
    with pytest.raises(ValueError):
        mab.update(["a", "b"], [[1, 0], [1, 0, 1]], np.zeros((2, 2)))
    with pytest.raises(ValueError):
        mab.update(["a", "b"], [[1, 0]], np.zeros((2, 2)))  # lengths differ
    with pytest.raises(ValueError):
        mab.update(["a"], [[1, 0]], np.full((1, 2), np.nan))
    assert mab.get_state() == before
    with pytest.raises(TypeError):
        CmabBernoulliMO.cold_start(["a"], n_features=2, epsilon=0.1)
    with pytest.raises(ValueError, match="n_objectives"):
        CmabConfig(n_features=2, n_objectives=2, reward_type="gaussian", fit_reward_standardization=True)
    with pytest.raises(ValueError, match="CmabGaussian"):  # a Gaussian config runs in CmabGaussian only
        CmabBernoulli._policy_of(
            CmabConfig(n_features=2, reward_type="gaussian", fit_reward_standardization=True)
        )


def test_cmab_mo_avoids_a_dominated_action():
    """Context-free reward means (0.85, 0.15), (0.15, 0.85), (0.1, 0.1): after 8 rounds of 40
    rows the BNN policy must choose the dominated third action far less than uniform (1/3)."""
    means = np.array([[0.85, 0.15], [0.15, 0.85], [0.1, 0.1]])
    mab = CmabBernoulliMO.cold_start(
        ["x", "y", "z"],
        n_features=2,
        dist_params_init={"sigma": 2.0},
        update_kwargs={"num_steps": 100},
        random_seed=0,
    )
    rng = np.random.default_rng(0)
    late = []
    for t in range(8):
        ctx = rng.normal(size=(40, 2))
        actions, _, _ = mab.predict(ctx)
        idx = np.array([mab.action_ids.index(a) for a in actions])
        rewards = (rng.uniform(size=(40, 2)) < means[idx]).astype(int).tolist()
        mab.update(actions, rewards, ctx)
        if t >= 4:
            late.append(idx)
    assert np.mean(np.concatenate(late) == 2) < 0.15


def test_cmab_mo_action_view_counts_per_objective():
    mab = CmabBernoulliMO.cold_start(["a"], n_features=2, n_objectives=2, update_kwargs={"num_steps": 5})
    mab.update(["a", "a"], [[1, 0], [1, 1]], np.zeros((2, 2)))
    view = mab.actions["a"]
    assert view.count == 4 and view.mean == [3 / 4, 2 / 4]


def test_classes_configs_and_state_shapes_must_agree():
    """(Review) the class, the config's n_objectives and the state's shapes are checked together."""
    mo = CmabBernoulliMO.cold_start(["a", "b"], n_features=2, update_kwargs={"num_steps": 5}, random_seed=0)
    plain = CmabBernoulli.cold_start(["a", "b"], n_features=2, update_kwargs={"num_steps": 5}, random_seed=0)
    parts = dict(action_ids=["a", "b"], strategy=MultiObjectiveBandit(), key=mo.key)
    with pytest.raises(ValueError, match="n_objectives"):
        CmabBernoulli(config=mo.config, state=mo.state, **{**parts, "strategy": plain.strategy})
    with pytest.raises(ValueError, match="n_objectives"):
        CmabBernoulliMO(config=plain.config, state=plain.state, **parts)
    with pytest.raises(ValueError, match="shapes"):
        CmabBernoulliMO(config=mo.config, state=jax.tree.map(lambda x: x[:, 0], mo.state), **parts)
    again = CmabBernoulliMO(config=mo.config, state=mo.state, **parts)
    _leaves_equal(again.state, mo.state)
    smab = SmabBernoulliMO.cold_start(["a", "b"], n_objectives=3, random_seed=0)
    rebuilt = SmabBernoulliMO(
        action_ids=["a", "b"], state=smab.state, strategy=MultiObjectiveBandit(), key=smab.key
    )
    assert rebuilt.n_objectives == 3
    with pytest.raises(ValueError):
        SmabBernoulli(action_ids=["a", "b"], state=smab.state, strategy=plain.strategy, key=smab.key)
    for bad in (None, 0, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="n_objectives"):
            SmabBernoulliMO.cold_start(["a"], n_objectives=bad)
        with pytest.raises((TypeError, ValueError), match="n_objectives"):
            CmabBernoulliMO.cold_start(["a"], n_features=2, n_objectives=bad)
    # a cost-control strategy of the wrong length in a plain MO model
    with pytest.raises(ValueError, match="one value per action"):
        smab.with_strategy(MultiObjectiveCostControlBandit(np.ones(1), 0.0))


def test_mo_rewards_as_arrays_and_jax_rows_and_clear_errors():
    mab = SmabBernoulliMO.cold_start(["a", "b"], n_objectives=2, random_seed=0)
    mab.update(["a", "b"], np.array([[1, 0], [0, 1]]))
    mab.update(["a", "b"], jnp.array([[1, 1], [0, 0]]))
    mab.update(["a", "b"], [jnp.ones(2, jnp.int32), jnp.zeros(2, jnp.int32)])
    assert mab.actions["a"].n_successes == [4, 3] and mab.actions["b"].n_failures == [4, 3]
    before = mab.get_state()
    for bad, error in ((np.array(1), TypeError), (np.ones((2, 3)), ValueError), ([[[1], [0]]], TypeError)):
        with pytest.raises(error, match="rewards"):
            mab.update(["a"] * len(np.atleast_1d(bad)), bad)
    assert mab.get_state() == before


def test_policy_and_environment_refuse_a_mismatched_reward_model():
    from bandits_jax.likelihoods import Bernoulli
    from bandits_jax.simulation import WheelEnv, round_draws
    from bandits_jax.strategy import ClassicBandit

    policy = MultiObjective(BetaBernoulli(), n_objectives=2)
    with pytest.raises(TypeError, match="multi-objective strategy"):
        policy.predict(jax.random.key(0), policy.init(2), jnp.zeros((3, 0)), ClassicBandit())
    with pytest.raises(ValueError, match="Gaussian"):
        round_draws(jax.random.key(0), 0, 4, WheelEnv(0.5, rewards="paper"), Bernoulli())
