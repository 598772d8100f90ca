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
