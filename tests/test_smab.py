from math import exp, lgamma, log

import numpy as np
import pytest

from bandits_jax.smab import SmabBernoulli
from tests.conftest import assert_unchanged, snapshot


def test_counts_and_predict_form():
    mab = SmabBernoulli.cold_start(action_ids={"x", "y"}, random_seed=0)
    mab.update(actions=["x", "x", "y"], rewards=[1, 1, 0])
    assert (mab.actions["x"].n_successes, mab.actions["x"].n_failures) == (3, 1)
    assert (mab.actions["y"].n_successes, mab.actions["y"].n_failures) == (1, 2)
    actions, probs = mab.predict(n_samples=5)
    assert len(actions) == 5 and all(a == max(p, key=p.get) for a, p in zip(actions, probs))


def test_thompson_sampling_matches_beta_posterior():
    """Exact posterior Beta(s, f): how often x is chosen vs the closed form of P(p_x > p_y)."""
    mab = SmabBernoulli.cold_start(action_ids=["x", "y"], random_seed=1)
    mab.update(actions=["x"] * 6 + ["y"] * 6, rewards=[1, 1, 1, 1, 0, 0] + [1, 1, 0, 0, 0, 0])
    # x ~ Beta(5, 3), y ~ Beta(3, 5). For integer a_y:
    # P(p_y > p_x) = sum_{i<a_y} B(a_x+i, b_x+b_y) / ((b_y+i) B(1+i, b_y) B(a_x, b_x))
    a_x, b_x, a_y, b_y = 5, 3, 3, 5

    def lbeta(a, b):
        return lgamma(a) + lgamma(b) - lgamma(a + b)

    p_y = sum(
        exp(lbeta(a_x + i, b_x + b_y) - log(b_y + i) - lbeta(1 + i, b_y) - lbeta(a_x, b_x))
        for i in range(a_y)
    )
    p = 1 - p_y
    n = 20_000
    chosen, _ = mab.predict_arrays(n_samples=n)
    freq = np.mean(chosen == "x")
    # binomial standard error; 5 of them
    assert abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_bad_input_changes_nothing():
    mab = SmabBernoulli.cold_start(action_ids={"x", "y"}, random_seed=0)
    before = snapshot(mab)
    for kwargs, error in [
        (dict(actions=["x", "q"], rewards=[1, 0]), ValueError),
        (dict(actions=["x", "y"], rewards=[1, 3]), ValueError),
        (dict(actions=["x", "y"], rewards=[1]), ValueError),
        (dict(actions=[], rewards=[]), ValueError),
    ]:
        with pytest.raises(error):
            mab.update(**kwargs)
    with pytest.raises(ValueError, match="n_samples"):
        mab.predict(n_samples=0)
    assert_unchanged(before, mab)


def test_reset_puts_counts_back_at_the_prior():
    mab = SmabBernoulli.cold_start(["x", "y"], random_seed=0)
    mab.update(["x", "y", "y"], [1, 0, 1])
    mab.reset(["y"])
    assert (mab.actions["x"].n_successes, mab.actions["y"].n_successes, mab.actions["y"].n_failures) == (
        2,
        1,
        1,
    )
    with pytest.raises(TypeError, match="action_ids must be a list"):
        mab.reset("x")
    mab.reset()
    assert mab.actions["x"].n_successes == 1
