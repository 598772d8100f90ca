"""Gaussian rewards (issue 13, item 1): the likelihood with a learned noise std, its SVI posterior
against the closed-form conjugate one, PyBandits' standardisation rules, ``CmabGaussian``'s object
API (validation, save/load, transfer, forgetting) and a simulation in which it beats uniform."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli, CmabGaussian
from bandits_jax.config import CmabConfig
from bandits_jax.likelihoods import Gaussian, GaussianStats
from bandits_jax.policies import BnnTS, Feedback, Uniform
from bandits_jax.simulation import GaussianRewardEnv, LogisticEnv, simulate_policies
from bandits_jax.transfer import edit_model_on_the_fly


def _linear_data(n, noise, seed=1, w=(1.0, -0.5, 0.3), bias=0.2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(w))).astype(np.float32)
    y = (x @ np.asarray(w) + bias + noise * rng.normal(size=n)).astype(np.float32)
    return x, y


def _fit_one_action(config, x, y, key, sigma):
    policy = BnnTS.from_config(config)
    state = policy.init(1, mu=0.0, sigma=sigma, **config.reward_data)
    n = len(y)
    fb = Feedback(jnp.asarray(x), jnp.zeros(n, jnp.int32), jnp.asarray(y), jnp.ones(n, bool))
    new, info = policy.update(key, state, fb)
    assert bool(info.ok.all())
    return policy, new


@pytest.mark.parametrize("seed", [0, 1])
def test_svi_matches_the_conjugate_posterior_of_bayesian_linear_regression(seed):
    """No hidden layer, a Normal prior N(0, s^2) and the noise pinned at its true value (its
    log-sigma prior has std 1e-3): the model is Bayesian linear regression. The mean-field family's
    optimum then has exactly the conjugate posterior's mean and the variances 1 / diag(precision)
    (Bishop, PRML 10.1.2). SVI with 32 particles and a cosine-decayed step size reaches it: measured
    mean errors 0.01-0.02 posterior sds and sd errors under 1.5%, so the tolerances below (0.1 sd,
    5%) leave room for other platforms' float rounding while a wrong likelihood scale (e.g. a
    noise std off by 2x) moves the sds by 2x and the means by many sds."""
    noise, s, n = 0.5, 1.0, 60
    config = CmabConfig(
        n_features=3,
        reward_type="gaussian",
        reward_loc=0.0,
        reward_scale=1.0,
        noise_sigma=noise,
        noise_log_sigma_prior_std=1e-3,
        sigma=s,
        num_steps=4000,
        step_size=0.02,
        num_particles=32,
        lr_scheduler_type="cosine_decay_schedule",
        lr_scheduler_kwargs=(("decay_steps", 4000),),
    )
    x, y = _linear_data(n, noise)
    _, state = _fit_one_action(config, x, y, jax.random.key(seed), s)
    design = np.c_[x, np.ones(n)].astype(np.float64)
    precision = np.eye(4) / s**2 + design.T @ design / noise**2
    cov = np.linalg.inv(precision)
    exact_mean = cov @ design.T @ y / noise**2
    layer, scale_layer = state.loc.layers[0], state.scale.layers[0]
    mean = np.r_[np.asarray(layer.weight[0, :, 0]), np.asarray(layer.bias[0])]
    sd = np.r_[np.asarray(scale_layer.weight[0, :, 0]), np.asarray(scale_layer.bias[0])]
    mf_sd = 1 / np.sqrt(np.diag(precision))
    np.testing.assert_array_less(np.abs(mean - exact_mean), 0.1 * mf_sd)
    np.testing.assert_allclose(sd, mf_sd, rtol=0.05)
    # and the exact marginal sds, which the mean-field ones approach for a near-orthogonal design
    # (here within 5%; the correlation the family ignores makes the difference)
    gap = np.abs(np.sqrt(np.diag(cov)) / mf_sd - 1).max()
    np.testing.assert_allclose(sd, np.sqrt(np.diag(cov)), rtol=gap + 0.05)
    assert abs(float(np.exp(state.stats.noise_loc[0])) - noise) < 0.01  # pinned


def test_svi_learns_the_noise_std():
    """With a loose noise prior the posterior of log sigma finds the true noise: 400 rows give a
    relative sd of about 1 / sqrt(2 * 400) = 3.5% for the noise estimate; 15% allows the SVI's
    own error. Negative control: the same fit with the noise pinned at 2x stays at 2x."""
    noise = 0.5
    x, y = _linear_data(400, noise, seed=3)
    base = dict(
        n_features=3,
        reward_type="gaussian",
        reward_loc=0.0,
        reward_scale=1.0,
        sigma=1.0,
        num_steps=2000,
        step_size=0.02,
        num_particles=4,
        lr_scheduler_type="cosine_decay_schedule",
        lr_scheduler_kwargs=(("decay_steps", 2000),),
    )
    _, state = _fit_one_action(
        CmabConfig(**base, noise_log_sigma_prior_std=1.0), x, y, jax.random.key(0), 1.0
    )
    learned = float(Gaussian().noise_std(state.stats)[0])
    assert abs(learned / noise - 1) < 0.15, learned
    pinned = CmabConfig(**base, noise_sigma=2 * noise, noise_log_sigma_prior_std=1e-3)
    _, state = _fit_one_action(pinned, x, y, jax.random.key(0), 1.0)
    assert abs(float(Gaussian().noise_std(state.stats)[0]) / (2 * noise) - 1) < 0.01


def test_standardisation_is_fitted_on_each_actions_first_batch_and_then_kept():
    lik = Gaussian()
    stats = lik.init_stats(3)
    y = jnp.array([[1.0, 3.0, 0.0], [5.0, 5.0, 0.0], [7.0, 0.0, 0.0]])
    valid = jnp.array([[True, True, False], [True, True, False], [True, False, False]])
    first = lik.prepare(stats, y, valid)
    # mean and population std; no spread -> max(|mean|, 1) (PyBandits' rule)
    np.testing.assert_allclose(first.reward_loc, [2.0, 5.0, 7.0])
    np.testing.assert_allclose(first.reward_scale, [1.0, 5.0, 7.0])
    # noise prior: log std of the targets, or 0 (sigma = 1) with one row or no spread
    np.testing.assert_allclose(first.noise_loc, [0.0, 0.0, 0.0], atol=1e-6)
    second = lik.prepare(first, y + 10, valid)  # fitted once: a later batch changes nothing
    np.testing.assert_array_equal(second.reward_loc, first.reward_loc)
    np.testing.assert_array_equal(second.noise_loc, first.noise_loc)
    untouched = lik.prepare(stats, y, jnp.zeros_like(valid))  # an action without rows stays unset
    assert bool(jnp.isnan(untouched.reward_loc).all() & jnp.isnan(untouched.noise_loc).all())
    # a noise_sigma guess in reward units is divided by the scale
    guess = lik.prepare(
        lik.init_stats(1, reward_loc=0.0, reward_scale=4.0, noise_sigma=2.0), y[:1], valid[:1]
    )
    np.testing.assert_allclose(guess.noise_loc, [np.log(0.5)], rtol=1e-6)


def _model(**kwargs):
    args = dict(
        action_ids=["a", "b", "c"],
        n_features=2,
        fit_reward_standardization=True,
        update_kwargs={"num_steps": 60},
        random_seed=0,
    )
    return CmabGaussian.cold_start(**{**args, **kwargs})


def _batch(n=30, seed=0):
    rng = np.random.default_rng(seed)
    ctx = rng.normal(size=(n, 2))
    actions = [["a", "b", "c"][i % 3] for i in range(n)]
    rewards = (100 + 10 * ctx[:, 0] + rng.normal(size=n)).tolist()
    return actions, rewards, ctx


def test_object_api_predicts_reward_units_and_counts_observations():
    mab = _model()
    actions, means, noise = mab.predict(np.zeros((4, 2)))
    assert len(actions) == 4 and set(means[0]) == {"a", "b", "c"}
    assert all(np.isnan(v) for v in noise[0].values())  # no guess, no update yet
    acts, rewards, ctx = _batch()
    info = mab.update(acts, rewards, ctx)
    assert info.ok.all()
    view = mab.actions["a"]
    assert view.count == 10 and view.n_successes == 1 and view.n_failures == 1  # PyBandits' forms
    np.testing.assert_allclose(view.mean, np.mean(rewards[0::3]), rtol=1e-5)
    _, means, noise = mab.predict(ctx[:5])
    # means are in reward units (about 100), noise stds finite and positive
    assert all(60 < v < 140 for row in means for v in row.values())
    assert all(0 < v < 50 for row in noise for v in row.values())
    np.testing.assert_allclose(mab.posterior_mean(ctx[:5]).mean(), 100, atol=25)
    stats = mab.state.stats
    assert isinstance(stats, GaussianStats)
    np.testing.assert_allclose(stats.reward_loc[0], np.mean(rewards[0::3]), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fit_reward_standardization": False}, "reward_loc and reward_scale"),
        ({"fit_reward_standardization": False, "reward_loc": 0.0}, "reward_loc and reward_scale"),
        ({"reward_loc": 1.0}, "both unset"),
        ({"fit_reward_standardization": False, "reward_loc": 0.0, "reward_scale": 0.0}, "reward_scale"),
        ({"noise_sigma": -1.0}, "noise_sigma"),
        ({"noise_sigma": float("nan")}, "noise_sigma"),
        ({"noise_log_sigma_prior_std": 0.0}, "noise_log_sigma_prior_std"),
        ({"policy": "linear_ts"}, "policy"),
    ],
)
def test_cold_start_refuses_bad_settings(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _model(**kwargs)


@pytest.mark.parametrize(
    "rewards, error",
    [
        ([float("nan")] * 30, ValueError),
        ([float("inf")] * 30, ValueError),
        ([1e39] * 30, ValueError),  # finite in float64, not in float32
        (["1"] * 30, TypeError),
        ([[1.0]] * 30, ValueError),
        ([1.0] * 29, ValueError),
        (None, TypeError),
    ],
)
def test_bad_rewards_leave_the_model_unchanged(rewards, error):
    mab = _model()
    acts, good, ctx = _batch()
    mab.update(acts, good, ctx)
    before = mab.get_state()
    with pytest.raises(error):
        mab.update(acts, rewards, ctx)
    assert mab.get_state() == before


def test_gaussian_and_bernoulli_classes_do_not_mix():
    gaussian = _model()
    with pytest.raises(ValueError, match="CmabGaussian"):
        CmabBernoulli(
            action_ids=gaussian.action_ids,
            config=gaussian.config,
            state=gaussian.state,
            strategy=gaussian.strategy,
            key=gaussian.key,
        )
    bernoulli = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2)
    with pytest.raises((TypeError, ValueError)):
        edit_model_on_the_fly(bernoulli, gaussian)
    with pytest.raises((TypeError, ValueError)):
        edit_model_on_the_fly(gaussian, bernoulli)


def test_save_load_is_exact_and_unset_values_survive(tmp_path):
    mab = _model(action_ids=["a", "b", "c", "d"])  # "d" never updated: its NaN stay NaN
    acts, rewards, ctx = _batch()
    mab.update(acts, rewards, ctx)
    path = tmp_path / "g.npz"
    mab.save(path)
    back = CmabGaussian.load(path)
    assert type(back) is CmabGaussian and back.config == mab.config
    for a, b in zip(jax.tree.leaves(mab.state), jax.tree.leaves(back.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.isnan(np.asarray(back.state.stats.reward_loc)[3])
    _, header = mab.get_state()
    assert '"format_version":5' in header
    # the loaded model predicts exactly as the original (same key, same state)
    np.testing.assert_array_equal(mab.predict_arrays(ctx).probs, back.predict_arrays(ctx).probs)
    # a Bernoulli model still writes version 2
    assert '"format_version":2' in CmabBernoulli.cold_start(["a"], n_features=2).get_state()[1]


def test_transfer_carries_learned_stats_and_takes_the_template_settings():
    current = _model()
    acts, rewards, ctx = _batch()
    current.update(acts, rewards, ctx)
    template = _model(action_ids=["b", "c", "d"], n_features=3, noise_log_sigma_prior_std=0.3)
    merged = edit_model_on_the_fly(current, template)
    assert merged.action_ids == ("b", "c", "d") and merged.config == template.config
    old, new = current.state.stats, merged.state.stats
    for field in ("n_observations", "reward_mean", "reward_loc", "reward_scale", "noise_loc", "noise_scale"):
        np.testing.assert_array_equal(
            np.asarray(getattr(new, field))[:2], np.asarray(getattr(old, field))[1:]
        )
    assert int(new.n_observations[2]) == 0 and float(new.noise_scale[2]) == pytest.approx(0.3)


def test_forgetting_widens_log_sigma_too():
    mab = _model(decay_factor=0.5)
    acts, rewards, ctx = _batch()
    mab.update(acts, rewards, ctx)
    before = float(mab.state.base.stats.noise_scale[0])
    policy = mab._policy.base
    widened = policy.forget(mab.state.base, jnp.full((3,), 0.5), jnp.ones(3, bool))
    assert float(widened.stats.noise_scale[0]) == pytest.approx(2 * before)
    cold = _model().state  # cold actions are not widened
    assert float(policy.forget(cold, jnp.full((3,), 0.5), jnp.ones(3, bool)).stats.noise_scale[0]) == 0.5


def test_non_finite_fit_keeps_everything_including_the_standardisation():
    mab = _model(update_kwargs={"num_steps": 20, "optimizer_kwargs": {"step_size": 1e30}})
    acts, rewards, ctx = _batch()
    before = mab.get_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = mab.update(acts, rewards, ctx)
    assert not info.ok.any() and caught
    stats_before = CmabGaussian.from_state(before).state.stats
    for a, b in zip(stats_before, mab.state.stats):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_simulation_gaussian_policy_beats_uniform_on_common_draws():
    """A logistic environment's probabilities scaled to rewards of 0-10 with noise std 1: the
    Gaussian BNN (no hidden layer) must have lower cumulative regret than uniform random on the
    same draws for each of 3 seeds (its per-round regret falls well below uniform's within a few
    rounds of 64 rows)."""
    env = GaussianRewardEnv(
        LogisticEnv.random(3, 3, key=jax.random.key(0), logit_scale=3.0), noise_std=1.0, scale=10.0
    )
    bnn = BnnTS.from_config(
        CmabConfig(n_features=3, reward_type="gaussian", fit_reward_standardization=True, num_steps=100)
    )
    policies = {"bnn": bnn, "uniform": Uniform(likelihood=Gaussian())}
    init = {"bnn": {"sigma": 1.0, "reward_loc": None, "reward_scale": None}}
    for seed in range(3):
        out = simulate_policies(policies, env, jax.random.key(seed), 8, 64, init_data=init)
        bnn_regret = float(out["bnn"].cumulative_regret[-1])
        uniform_regret = float(out["uniform"].cumulative_regret[-1])
        assert bnn_regret < 0.6 * uniform_regret, (seed, bnn_regret, uniform_regret)


def test_gaussian_reward_env_draws_noise_around_the_expected_rewards():
    env = GaussianRewardEnv(
        LogisticEnv.random(2, 2, key=jax.random.key(0)), noise_std=2.0, scale=5.0, shift=1.0
    )
    ctx, expected = env.sample(jax.random.key(1), 20000)
    rewards = env.sample_rewards(jax.random.key(2), ctx, Gaussian())
    resid = np.asarray(rewards - expected)
    # mean 0 and std 2 within 4 standard errors (2/sqrt(40000) = 0.01 for the mean)
    assert abs(resid.mean()) < 0.04 and abs(resid.std() - 2.0) < 0.04
    assert float(expected.min()) >= 1.0 and float(expected.max()) <= 6.0
    with pytest.raises(ValueError, match="noise_std"):
        GaussianRewardEnv(env.base, noise_std=-1.0)


def test_config_refuses_gaussian_fields_on_bernoulli_rewards():
    with pytest.raises(ValueError, match="Gaussian"):
        CmabConfig(n_features=2, noise_sigma=1.0)
    with pytest.raises(ValueError, match="reward_type"):
        CmabConfig(n_features=2, reward_type="poisson")
    config = CmabConfig(n_features=2, reward_type="gaussian", fit_reward_standardization=True)
    assert dataclasses.replace(config, noise_sigma=1.0).reward_data["noise_sigma"] == 1.0


# ---------------------------------------------------------------------------------- review regressions
def test_rewards_near_float32s_limit_standardise_without_overflow():
    mab = _model()
    ctx = np.random.default_rng(0).normal(size=(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spurious divergence warning for the other actions
        mab.update(["a", "a"], [2e19, -2e19], ctx)
        mab.update(["b", "b"], [3e38, 3e38], ctx)
    stats = mab.state.stats
    np.testing.assert_allclose(stats.reward_scale[:2], [2e19, 3e38], rtol=1e-6)
    np.testing.assert_allclose(stats.reward_mean[:2], [0.0, 3e38], rtol=1e-6)
    # and exact on ordinary values (power-of-two scaling)
    np.testing.assert_array_equal(
        Gaussian()
        .prepare(Gaussian().init_stats(1), jnp.array([[1.0, 3.0]]), jnp.ones((1, 2), bool))
        .reward_loc,
        [2.0],
    )


def test_settings_beyond_float32_and_pybandits_export_are_refused():
    for kwargs in ({"reward_scale": 1e300, "reward_loc": 0.0}, {"noise_sigma": 1e300}):
        with pytest.raises(ValueError, match="float32"):
            _model(**kwargs)
    with pytest.raises(ValueError, match="CmabGaussian cannot be written"):
        _model().to_pybandits_state()
    with pytest.raises(TypeError, match="rewards"):
        _model().update(["a"], {0: 1.0}, np.zeros((1, 2)))


def test_piecewise_gaussian_pieces_draw_their_own_noise():
    from bandits_jax.simulation import PiecewiseEnv, round_draws

    pieces = [
        GaussianRewardEnv(LogisticEnv.random(2, 3, key=jax.random.key(s)), noise_std=0.0, scale=10.0)
        for s in (0, 1)
    ]
    env = PiecewiseEnv(pieces, period=5)
    for t in (0, 7):
        draws = round_draws(jax.random.key(0), t, 4, env, Gaussian())
        np.testing.assert_array_equal(draws.rewards, draws.expected)  # noise 0 in both pieces


def test_paper_wheel_plays_gaussian_rewards_and_the_bnn_beats_uniform():
    """The wheel with the paper's Gaussian rewards (delta 0.5, std 0.01): its rewards are the paper's
    means plus N(0, 0.01**2) noise, and a Gaussian BNN (one hidden layer) has under 0.8x uniform
    random's regret over 20 rounds of 64 rows on the same draws (measured on keys 0-3: 0.42-0.72;
    this key 0.43)."""
    from bandits_jax.simulation import WheelEnv, round_draws

    env = WheelEnv(0.5, rewards="paper")
    draws = round_draws(jax.random.key(0), 0, 2000, env, Gaussian())
    np.testing.assert_array_equal(draws.expected, env.reward_means(draws.context))
    resid = np.asarray(draws.rewards - draws.expected)
    assert abs(resid.std() - 0.01) < 0.001
    with pytest.raises(ValueError, match="rewards"):
        WheelEnv(0.5, rewards="gaussian")
    bnn = BnnTS.from_config(
        CmabConfig(
            n_features=2,
            hidden_dim_list=(16,),
            reward_type="gaussian",
            fit_reward_standardization=True,
            num_steps=200,
        )
    )
    init = {"bnn": {"sigma": 1.0, "reward_loc": None, "reward_scale": None}}
    out = simulate_policies(
        {"bnn": bnn, "uniform": Uniform(likelihood=Gaussian())},
        env,
        jax.random.key(1),
        20,
        64,
        init_data=init,
    )
    assert float(out["bnn"].cumulative_regret[-1]) < 0.8 * float(out["uniform"].cumulative_regret[-1])
