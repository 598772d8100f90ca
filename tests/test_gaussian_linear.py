"""Gaussian rewards for the linear-posterior policies (issue 11: the paper's wheel needs them):
linear TS's and NeuralLinear's conjugate Normal-inverse-gamma posteriors against the closed form,
their Thompson draws against the Student-t they must follow (with a negative control), LinUCB's
bound against NumPy, the ensemble's point fits on standardised targets, failures leaving a state
as it was, and learning on common draws. The contract tests cover them too (``[gaussian]``)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from scipy import stats as sps

from bandits_jax import policies
from bandits_jax.config import Network
from bandits_jax.likelihoods import Gaussian
from bandits_jax.policies import Feedback, LinearTS, LinUCB, NeuralLinear

LOC, SCALE = 3.0, 2.0  # a fixed standardisation: targets are (reward - 3) / 2


def rows(seed, n=60, n_actions=2, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    a = rng.integers(0, n_actions, n).astype(np.int32)
    y = (LOC + x @ np.array([1.0, -2.0]) + 0.5 * a + noise * rng.normal(size=n)).astype(np.float32)
    return x, a, y


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def feedback(x, a, y):
    return Feedback(jnp.asarray(x), jnp.asarray(a), jnp.asarray(y), jnp.ones(len(y), bool))


def nig_closed_form(phi, t, sigma, a0, b0):
    """Bayesian linear regression with unknown noise, all rows at once, in float64."""
    phi, t = np.asarray(phi, np.float64), np.asarray(t, np.float64)
    prec0 = np.eye(phi.shape[1]) / sigma**2
    prec = prec0 + phi.T @ phi
    mean = np.linalg.solve(prec, phi.T @ t)
    a = a0 + len(t) / 2
    b = b0 + 0.5 * (t @ t - mean @ prec @ mean)
    return mean, prec, np.linalg.inv(prec), a, b


def test_linear_ts_streams_the_exact_normal_inverse_gamma_posterior():
    """Two streamed batches give the closed-form posterior of all rows at once (conjugacy): mean,
    precision, covariance and the noise's IG(a, b), per action, on the standardised targets."""
    policy = LinearTS(2, likelihood=Gaussian())
    state = policy.init(2, sigma=2.0, a0=3.0, b0=2.0, reward_loc=LOC, reward_scale=SCALE)
    x, a, y = rows(0, n=80)
    key = jax.random.key(0)
    state, info = policy.update(key, state, feedback(x[:30], a[:30], y[:30]))
    state, info = policy.update(key, state, feedback(x[30:], a[30:], y[30:]))
    assert bool(info.ok.all())
    for action in range(2):
        m = a == action
        phi = np.c_[x[m], np.ones(m.sum())]
        mean, prec, cov, an, bn = nig_closed_form(phi, (y[m] - LOC) / SCALE, 2.0, 3.0, 2.0)
        np.testing.assert_allclose(state.mean[action], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(state.precision[action], prec, rtol=1e-5)
        np.testing.assert_allclose(state.cov[action], cov, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(state.noise.a[action], an, rtol=1e-6)
        np.testing.assert_allclose(state.noise.b[action], bn, rtol=1e-4)
        # the likelihood's noise report is the fitted posterior's (exp E[log sigma], reward units)
        expected_std = SCALE * np.exp(0.5 * (np.log(bn) - scipy.special.digamma(an)))
        np.testing.assert_allclose(policy.likelihood.noise_std(state.stats)[action], expected_std, rtol=1e-4)
    assert state.stats.n_observations.tolist() == np.bincount(a, minlength=2).tolist()


def test_linear_ts_fits_the_standardisation_on_the_first_batch():
    policy = LinearTS(2, likelihood=Gaussian())
    x, a, y = rows(1)
    state, _ = policy.update(jax.random.key(0), policy.init(2), feedback(x, a, y))
    for action in range(2):
        np.testing.assert_allclose(state.stats.reward_loc[action], y[a == action].mean(), rtol=1e-5)
        np.testing.assert_allclose(state.stats.reward_scale[action], y[a == action].std(), rtol=1e-4)


@pytest.mark.parametrize("a0", [1.5, 20.0])
def test_linear_ts_draws_follow_the_posterior_student_t(a0):
    """A row's Thompson score under the NIG posterior is Student-t with 2a degrees of freedom,
    location ``x @ m`` and scale ``sqrt(b / a * x^T S x)`` (times the reward scale, plus its
    location): KS test on 20,000 draws; a Normal of the same variance is rejected at a0 = 1.5
    (3 degrees of freedom), the negative control."""
    policy = LinearTS(2, likelihood=Gaussian())
    state = policy.init(1, sigma=1.0, a0=a0, b0=2.0, reward_loc=LOC, reward_scale=SCALE)
    x, _, y = rows(2, n=5)
    state, _ = policy.update(jax.random.key(0), state, feedback(x, np.zeros(5, np.int32), y))
    ctx = np.array([0.3, -0.7], np.float32)
    pred = policy.predict(jax.random.key(1), state, np.broadcast_to(ctx, (20_000, 2)))
    draws = np.asarray(pred.probs[:, 0], np.float64)
    phi = np.r_[ctx, 1.0]
    an, bn = float(state.noise.a[0]), float(state.noise.b[0])
    loc = LOC + SCALE * phi @ np.asarray(state.mean[0])
    scale = SCALE * np.sqrt(bn / an * phi @ np.asarray(state.cov[0]) @ phi)
    t = sps.t(df=2 * an, loc=loc, scale=scale)
    assert sps.kstest(draws, t.cdf).pvalue > 1e-3
    np.testing.assert_allclose(pred.mean_probs[0, 0], loc, rtol=1e-5)
    if a0 == 1.5:  # the Normal with the t's variance is told apart: the draws are not Normal
        normal = sps.norm(loc=loc, scale=float(t.std()))
        assert sps.kstest(draws, normal.cdf).pvalue < 1e-6


def test_lin_ucb_gaussian_bound_matches_numpy():
    policy = LinUCB(2, likelihood=Gaussian())
    state = policy.init(2, alpha=jnp.array([0.5, 2.0]), reward_loc=LOC, reward_scale=SCALE)
    x, a, y = rows(3)
    state, _ = policy.update(jax.random.key(0), state, feedback(x, a, y))
    ctx = np.random.default_rng(4).normal(size=(6, 2)).astype(np.float32)
    pred = policy.predict(jax.random.key(1), state, ctx)
    post = state.posterior
    phi = np.c_[ctx, np.ones(6)]
    for action, alpha in enumerate([0.5, 2.0]):
        mean = phi @ np.asarray(post.mean[action], np.float64)
        var = float(post.noise.b[action]) / (float(post.noise.a[action]) - 1)
        sd = np.sqrt(var * np.einsum("ni,ij,nj->n", phi, np.asarray(post.cov[action], np.float64), phi))
        np.testing.assert_allclose(pred.probs[:, action], LOC + SCALE * (mean + alpha * sd), rtol=1e-5)
        np.testing.assert_allclose(pred.mean_probs[:, action], LOC + SCALE * mean, rtol=1e-5)
    np.testing.assert_array_equal(pred.actions, np.argmax(np.asarray(pred.probs), axis=1))


def test_neural_linear_gaussian_head_is_the_conjugate_posterior_on_its_features():
    """After an update, each head is the closed-form NIG posterior from the prior on the buffered
    rows' features under the (retrained) body, and the body was fitted to standardised targets."""
    policy = NeuralLinear(Network(2, (8,)), replay_capacity=64, num_steps=30, likelihood=Gaussian())
    state = policy.init(2, sigma=1.5, a0=4.0, b0=3.0, reward_loc=LOC, reward_scale=SCALE)
    x, a, y = rows(5, n=40)
    key = jax.random.key(0)
    state, _ = policy.update(key, state, feedback(x[:20], a[:20], y[:20]))
    state, info = policy.update(key, state, feedback(x[20:], a[20:], y[20:]))
    assert bool(info.ok.all())
    assert np.isfinite(info.losses).all() and info.losses[0, -1] < info.losses[0, 0]
    for action in range(2):
        m = a == action
        phi = np.asarray(policy.features(state, x[m]), np.float64)
        mean, _, cov, an, bn = nig_closed_form(phi, (y[m] - LOC) / SCALE, 1.5, 4.0, 3.0)
        np.testing.assert_allclose(state.head_mean[action], mean, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(state.head_cov[action], cov, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(state.noise.a[action], an)
        np.testing.assert_allclose(state.noise.b[action], bn, rtol=1e-3)
    assert state.noise_prior.a.tolist() == [4.0, 4.0]


def test_ensemble_gaussian_members_fit_standardised_targets_and_score_in_reward_units():
    policy = policies.Ensemble(Network(2, (8,)), n_members=4, num_steps=300, likelihood=Gaussian())
    x, a, y = rows(6, n=200, n_actions=1, noise=0.05)
    y = 100.0 + 10.0 * (y - LOC)  # rewards far from 0, with a large scale
    state, info = policy.update(jax.random.key(0), policy.init(1), feedback(x, a, y))
    assert bool(info.ok.all())
    np.testing.assert_allclose(state.stats.reward_loc[0], y.mean(), rtol=1e-5)
    pred = policy.predict(jax.random.key(1), state, x)
    # members that fit the standardised targets predict the rewards in reward units
    resid = np.asarray(pred.mean_probs[:, 0]) - y
    assert np.sqrt(np.mean(resid**2)) < 0.2 * y.std(), np.sqrt(np.mean(resid**2))


@pytest.mark.parametrize("name", ["linear_ts", "neural_linear", "ensemble", "lin_ucb"])
def test_a_non_finite_gaussian_update_leaves_the_action_as_it_was(name):
    """A NaN reward (the object API refuses one; the functional core must not corrupt anything)
    makes that action's fit non-finite: it keeps its posterior and stats, ``ok`` False."""
    policy = dataclasses.replace(policies.REGISTRY[name].example(2), likelihood=Gaussian())
    x, a, y = rows(7, n=30)
    state, _ = policy.update(jax.random.key(0), policy.init(2), feedback(x, a, y))
    bad = y.copy()
    bad[np.flatnonzero(a == 1)[0]] = np.nan
    new, info = policy.update(jax.random.key(1), state, feedback(x, a, bad))
    assert not bool(info.ok[1])
    if name == "neural_linear":  # the body's fit fails (documented: every ok False, the previous
        # body kept and the heads refitted on it); the head whose rows hold the NaN is kept, and
        # so are its stats
        assert not bool(info.ok.any())
        assert_trees_equal(state.net, new.net)
        np.testing.assert_array_equal(state.head_mean[1], new.head_mean[1])
        np.testing.assert_array_equal(state.noise.b[1], new.noise.b[1])
        assert_trees_equal(jax.tree.map(lambda v: v[1], state.stats), jax.tree.map(lambda v: v[1], new.stats))
        return
    post = lambda s: s.posterior if name == "lin_ucb" else s  # noqa: E731
    pick = lambda s: jax.tree.map(lambda leaf: np.asarray(leaf[1]), post(s).stats)  # noqa: E731
    for old, now in zip(jax.tree.leaves(pick(state)), jax.tree.leaves(pick(new)), strict=True):
        np.testing.assert_array_equal(old, now)
    if name in ("linear_ts", "lin_ucb"):
        np.testing.assert_array_equal(post(state).mean[1], post(new).mean[1])
        np.testing.assert_array_equal(post(state).noise.b[1], post(new).noise.b[1])
        assert bool(info.ok[0]) and not np.array_equal(post(state).mean[0], post(new).mean[0])


def test_a_first_batch_that_fails_leaves_no_standardisation_behind():
    """A NaN reward in an action's first batch: its fit fails and what ``prepare`` settled (the
    standardisation, the noise guess) is undone, so the action is still cold (NaN: unset)."""
    for name in ("linear_ts", "neural_linear", "ensemble"):
        policy = dataclasses.replace(policies.REGISTRY[name].example(2), likelihood=Gaussian())
        x, a, y = rows(8, n=30)
        y[np.flatnonzero(a == 1)[0]] = np.nan
        state, info = policy.update(jax.random.key(0), policy.init(2), feedback(x, a, y))
        assert not bool(info.ok[1]), name
        stats = state.posterior.stats if name == "lin_ucb" else state.stats
        assert int(stats.n_observations[1]) == 0, name
        assert np.isnan(stats.reward_loc[1]) and np.isnan(stats.noise_loc[1]), name
        assert np.isnan(policy.likelihood.noise_std(stats)[1]), name


def test_padding_rows_with_extreme_contexts_change_nothing():
    """Masked rows hold other actions' rows: an infinite context there is inert (zeroed before any
    product), for both likelihoods."""
    x, a, y = rows(9, n=20)
    for lik in (Gaussian(), None):
        policy = LinearTS(2) if lik is None else LinearTS(2, likelihood=lik)
        yy = (y > LOC).astype(np.int32) if lik is None else y
        state = policy.init(2)
        fb = feedback(x, a, yy)
        clean, info = policy.update(jax.random.key(0), state, fb)
        dirty_x = np.array(x)
        dirty_x[-1] = np.inf
        mask = np.arange(20) < 19
        dirty, info_dirty = policy.update(
            jax.random.key(0),
            state,
            Feedback(jnp.asarray(dirty_x), fb.actions, fb.rewards, jnp.asarray(mask)),
        )
        reference, _ = policy.update(jax.random.key(0), state, fb._replace(mask=jnp.asarray(mask)))
        assert bool(info_dirty.ok.all())
        assert_trees_equal(dirty, reference)


def test_gamma_draws_of_a_non_finite_shape_are_nan_not_a_hang():
    from bandits_jax import _random

    out = _random.gamma_ge1(jax.random.key(0), jnp.array([2.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.isnan(out[1:]).all()


def test_gaussian_only_arguments_are_checked():
    gaussian = LinearTS(2, likelihood=Gaussian())
    for name, bad in (
        ("reward_scale", {"reward_loc": 0.0, "reward_scale": -2.0}),
        ("reward_scale", {"reward_loc": 0.0, "reward_scale": 0.0}),
        ("reward_scale", {"reward_loc": 0.0, "reward_scale": 1e39}),
        ("reward_loc", {"reward_loc": float("nan"), "reward_scale": 1.0}),
        ("noise_sigma", {"noise_sigma": -1.0}),
        ("noise_log_sigma_prior_std", {"noise_log_sigma_prior_std": 0.0}),
        ("a0", {"a0": 1e39}),
        ("b0", {"b0": 1e39}),
    ):
        for make in (gaussian.init, LinUCB(2, likelihood=Gaussian()).init):
            with pytest.raises(ValueError, match=name):
                make(2, **bad)
        if name not in ("a0", "b0"):
            with pytest.raises(ValueError, match=name):
                dataclasses.replace(policies.Ensemble.example(2), likelihood=Gaussian()).init(2, **bad)
    with pytest.raises(ValueError, match="both given"):
        gaussian.init(2, reward_scale=2.0)
    with pytest.raises(TypeError, match="reward_sd"):
        gaussian.init(2, reward_sd=2.0)
    # traced data passes unchecked: a sweep over the noise prior compiles one program
    a = jax.jit(jax.vmap(lambda a0: gaussian.init(2, a0=a0).noise.a))(jnp.array([2.0, 3.0]))
    assert a.tolist() == [[2.0, 2.0], [3.0, 3.0]]

    with pytest.raises(TypeError, match="a0"):
        LinearTS(2).init(2, a0=3.0)
    with pytest.raises(TypeError, match="reward_loc"):
        LinUCB(2).init(2, reward_loc=0.0)
    with pytest.raises(TypeError, match="reward_scale"):
        policies.Ensemble.example(2).init(2, reward_scale=1.0)
    gaussian = LinearTS(2, likelihood=Gaussian())
    for bad in ({"a0": 1.0}, {"a0": float("nan")}, {"b0": 0.0}, {"b0": -1.0}, {"b0": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            gaussian.init(2, **bad)
    with pytest.raises(TypeError, match="a0"):
        gaussian.init(2, a0=True)


def test_gaussian_linear_ts_learns_a_linear_gaussian_bandit():
    """On common draws of a linear environment with Gaussian rewards, linear TS with the conjugate
    posterior has under half uniform random's regret (the environment is its own model)."""
    from bandits_jax.simulation import GaussianRewardEnv, LogisticEnv, simulate_policies

    env = GaussianRewardEnv(LogisticEnv.random(3, 3, key=jax.random.key(3)), noise_std=0.5, scale=10.0)
    players = {
        "linear_ts": LinearTS(3, likelihood=Gaussian()),
        "uniform": policies.Uniform(likelihood=Gaussian()),
    }
    out = simulate_policies(players, env, jax.random.key(0), 15, 40)
    regret = {k: float(v.cumulative_regret[-1]) for k, v in out.items()}
    assert regret["linear_ts"] < 0.5 * regret["uniform"], regret


def test_bernoulli_policies_do_not_take_the_noise_prior():
    from bandits_jax.cmab import CmabBernoulli
    from bandits_jax.policies.spec import init_parameters

    assert "a0" not in init_parameters(LinearTS(2)) and "reward_loc" not in init_parameters(LinearTS(2))
    assert {"a0", "b0", "reward_loc"} <= set(init_parameters(LinearTS(2, likelihood=Gaussian())))
    with pytest.raises(ValueError, match="a0"):
        CmabBernoulli.cold_start(["a", "b"], 2, policy="linear_ts", policy_kwargs={"a0": 3.0})


OBJECT_POLICIES = {
    "linear_ts": ({"a0": 3.0}, None),
    "lin_ucb": ({"alpha": 0.5}, None),
    "neural_linear": ({"num_steps": 5, "replay_capacity": 32}, [4]),
    "ensemble": ({"n_members": 2, "num_steps": 5}, [4]),
    # epsilon 0: an exploring row's scores are uniform draws on [0, 1), not rewards (documented)
    "epsilon_greedy": ({"epsilon": 0.0}, None),
}


@pytest.mark.parametrize("name", sorted(OBJECT_POLICIES))
def test_cmab_gaussian_runs_every_linear_and_neural_policy_by_name(name, tmp_path):
    """``CmabGaussian.cold_start(policy=...)``: predictions in reward units with the noise std,
    counts, save/load exactly, and the same errors as for the Bayesian MLP."""
    from bandits_jax.cmab import CmabGaussian

    kwargs, hidden = OBJECT_POLICIES[name]
    mab = CmabGaussian.cold_start(
        ["a", "b"],
        n_features=2,
        hidden_dim_list=hidden,
        reward_loc=100.0,
        reward_scale=10.0,
        policy=name,
        policy_kwargs=kwargs,
        random_seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    actions, means, noise = mab.predict(x)
    rewards = 100.0 + 10.0 * x[:, 0] + rng.normal(size=40)
    mab.update(actions, rewards.tolist(), x)
    seen = {a: actions.count(a) for a in ("a", "b")}
    assert [mab.actions[a].count for a in ("a", "b")] == [seen["a"], seen["b"]]
    for a in ("a", "b"):
        if seen[a]:
            np.testing.assert_allclose(
                mab.actions[a].mean, rewards[np.asarray(actions) == a].mean(), rtol=1e-5
            )
    actions, means, noise = mab.predict(x[:3])
    # reward units: the sampled means of a trained action lie near the rewards (100 +- 30)
    trained = max(seen, key=seen.get)
    assert all(60 < row[trained] < 140 for row in means), means
    assert all(np.isfinite(row[trained]) and row[trained] > 0 for row in noise)
    pm = mab.posterior_mean(x[:3])
    assert pm.shape == (3, 2) and 60 < pm[:, ["a", "b"].index(trained)].mean() < 140
    path = tmp_path / "m.zip"
    mab.save(path)
    back = CmabGaussian.load(path)
    np.testing.assert_array_equal(back.posterior_mean(x[:3]), pm)
    np.testing.assert_array_equal(back.noise_std(), mab.noise_std())


def test_cmab_gaussian_policy_errors_name_the_argument():
    from bandits_jax.cmab import CmabGaussian
    from bandits_jax.transfer import edit_model_on_the_fly

    std = {"reward_loc": 0.0, "reward_scale": 1.0}
    for kwargs, match in (
        ({"decay_factor": 0.9, "policy": "linear_ts"}, "decay_factor"),
        ({"policy": "beta_bernoulli"}, "beta_bernoulli"),
        ({"policy": "linear_ts", "policy_kwargs": {"a0": 0.5}}, "a0"),
        ({"policy": "linear_ts", "policy_kwargs": {"b0": -1.0}}, "b0"),
        ({"policy": "lin_ucb", "policy_kwargs": {"reward_sd": 1.0}}, "reward_sd"),
    ):
        with pytest.raises(ValueError, match=match):
            CmabGaussian.cold_start(["a", "b"], n_features=2, **std, **kwargs)
    with pytest.raises(ValueError, match="reward_loc and reward_scale"):
        CmabGaussian.cold_start(["a", "b"], n_features=2, policy="linear_ts")
    # a transfer keeps the policy: actions may be added, another policy is refused
    mab = CmabGaussian.cold_start(["a", "b"], n_features=2, **std, policy="linear_ts", random_seed=0)
    x = np.random.default_rng(1).normal(size=(20, 2))
    mab.update(["a"] * 20, (1.0 + x[:, 0]).tolist(), x)
    grown = edit_model_on_the_fly(
        mab, CmabGaussian.cold_start(["a", "b", "c"], n_features=2, **std, policy="linear_ts")
    )
    np.testing.assert_array_equal(grown.posterior_mean(x[:2])[:, :2], mab.posterior_mean(x[:2]))
    with pytest.raises(ValueError, match="NeuralLinear"):
        edit_model_on_the_fly(
            mab,
            CmabGaussian.cold_start(
                ["a", "b"], n_features=2, hidden_dim_list=[4], **std, policy="neural_linear"
            ),
        )
