"""The linear Thompson-sampling baseline against independent references, and that it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import baselines


def _data(key, n=60, d=3):
    kx, ky, kw = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, d))
    w = jax.random.normal(kw, (d + 1,))
    p = jax.nn.sigmoid(x @ w[:-1] + w[-1])
    return x, (jax.random.uniform(ky, (n,)) < p).astype(jnp.int32)


def test_laplace_matches_scipy_map_and_closed_form_hessian(getkey):
    optimize = pytest.importorskip("scipy.optimize")
    cfg = baselines.LinearTSConfig(n_features=3, prior_sigma=2.0)
    x, y = _data(getkey())
    actions = jnp.arange(x.shape[0]) % 2
    state = baselines.update(cfg, baselines.init(cfg, 2), x, actions, y)
    xt = np.c_[np.asarray(x, np.float64), np.ones(x.shape[0])]
    for a in range(2):
        rows = np.asarray(actions) == a
        xa, ya = xt[rows], np.asarray(y, np.float64)[rows]

        def neg_log_post(w, xa=xa, ya=ya):
            z = xa @ w
            return np.sum(np.logaddexp(0, z) - ya * z) + 0.5 * w @ w / 4.0

        ref = optimize.minimize(neg_log_post, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
        p = 1 / (1 + np.exp(-xa @ ref))
        precision = np.eye(4) / 4.0 + (xa * (p * (1 - p))[:, None]).T @ xa
        # float32 resolves the gradient at the MAP only to about eps32 x (sum of |row terms|, ~30
        # here), which moves the MAP by up to a few 1e-4 through the inverse Hessian; x64 is exact.
        tol = 1e-6 if state.mean.dtype == np.float64 else 5e-4
        np.testing.assert_allclose(state.mean[a], ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(state.precision[a], precision, rtol=tol, atol=4 * tol)
        np.testing.assert_allclose(state.cov[a], np.linalg.inv(precision), rtol=1e-3, atol=1e-5)


def test_laplace_float32_reaches_the_map_on_many_rows():
    """Near the MAP a full Newton step lowers the objective (a sum over 2,000 rows) by less than
    its float32 rounding; a strict argmin over the step lengths then stalled on noise up to 1.2e-3
    from the MAP on these problems (2% of a posterior sd). The fit must get within the accuracy
    float32 gradients allow: eps32 x sum |row terms| (~2e-4) through the inverse Hessian
    (~1 / (2000 x 0.2)), about 1e-6; 2e-5 leaves a margin and still catches the stall."""
    from bandits_jax.likelihoods import Bernoulli
    from bandits_jax.policies import linear_ts

    rng = np.random.default_rng(0)
    fit = jax.jit(lambda *a: linear_ts.laplace_fit(Bernoulli(), 20, *a))
    n, d = 2000, 22
    for _ in range(5):
        x = rng.normal(size=(n, d)).astype(np.float32)
        y = (rng.random(n) < 1 / (1 + np.exp(-x @ (rng.normal(size=d) * 0.5)))).astype(np.float32)
        w32 = np.asarray(
            fit(np.zeros(d, np.float32), np.eye(d, dtype=np.float32), x, y, np.ones(n, np.float32))[0]
        )
        assert w32.dtype == np.float32
        # the float64 MAP by plain Newton (prior N(0, I))
        x64, w = x.astype(np.float64), np.zeros(d)
        for _ in range(30):
            p = 1 / (1 + np.exp(-x64 @ w))
            w -= np.linalg.solve(np.eye(d) + (x64 * (p * (1 - p))[:, None]).T @ x64, x64.T @ (p - y) + w)
        np.testing.assert_allclose(w32, w, rtol=0, atol=2e-5)


def test_action_without_rows_and_masked_rows_change_nothing(getkey):
    cfg = baselines.LinearTSConfig(n_features=3)
    x, y = _data(getkey(), n=20)
    state = baselines.init(cfg, 3)
    new = baselines.update(cfg, state, x, jnp.zeros(20, jnp.int32), y)
    for leaf_old, leaf_new in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        np.testing.assert_array_equal(leaf_old[1:], leaf_new[1:])
    # Masked rows are ignored: the same as updating on the unmasked rows alone.
    mask = jnp.arange(20) < 12
    masked = baselines.update(cfg, state, x, jnp.zeros(20, jnp.int32), y, mask=mask)
    subset = baselines.update(cfg, state, x[:12], jnp.zeros(12, jnp.int32), y[:12])
    for a, b in zip(jax.tree.leaves(masked), jax.tree.leaves(subset)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_predict_draws_have_the_closed_form_logit_distribution(getkey):
    cfg = baselines.LinearTSConfig(n_features=2)
    x, y = _data(getkey(), n=40, d=2)
    state = baselines.update(cfg, baselines.init(cfg, 2), x, jnp.arange(40) % 2, y)
    row = jnp.array([0.7, -1.2])
    pred = baselines.predict(state, jnp.tile(row, (20_000, 1)), getkey())
    xt = jnp.append(row, 1.0)
    mean = state.mean @ xt
    sd = jnp.sqrt(jnp.einsum("i,aij,j->a", xt, state.cov, xt))
    np.testing.assert_allclose(pred.logits.mean(0), mean, atol=4 * float(sd.max()) / np.sqrt(20_000) * 1.5)
    np.testing.assert_allclose(pred.logits.std(0), sd, rtol=0.03)
    np.testing.assert_array_equal(pred.actions, jnp.argmax(pred.probs, axis=1))


def test_jit_vmap_over_runs_equals_loop(getkey):
    cfg = baselines.LinearTSConfig(n_features=2, newton_steps=5)
    x, y = _data(getkey(), n=16, d=2)
    acts = jnp.arange(16) % 3
    states = jax.vmap(lambda s: baselines.init(cfg, 3))(jnp.arange(2))
    vm = jax.vmap(lambda s: baselines.update(cfg, s, x, acts, y))(states)
    one = baselines.update(cfg, baselines.init(cfg, 3), x, acts, y)
    for a, b in zip(jax.tree.leaves(vm), jax.tree.leaves(one)):  # float32: reductions round differently
        np.testing.assert_allclose(a[1], b, rtol=1e-3, atol=1e-4)


def test_learns_on_a_logistic_environment():
    simulation = pytest.importorskip("bandits_jax.simulation")
    env = simulation.LogisticEnv.random(n_features=3, n_actions=3, key=jax.random.key(0), logit_scale=3.0)
    cfg = baselines.LinearTSConfig(n_features=3)
    trace = baselines.simulate(cfg, env, jax.random.key(1), n_rounds=8, batch_size=50)
    assert trace.actions.shape == (8, 50) and trace.cumulative_regret.shape == (8,)
    # Uniform random's expected regret per round, by Monte Carlo over 20,000 contexts.
    probs = env.reward_probs(env.sample_context(jax.random.key(2), 20_000))
    random_per_round = 50 * float(jnp.mean(probs.max(axis=1) - probs.mean(axis=1)))
    assert float(trace.regret[-3:].mean()) < 0.35 * random_per_round


def test_config_validation():
    with pytest.raises(ValueError, match="prior_sigma"):
        baselines.LinearTSConfig(n_features=2, prior_sigma=0.0)
    with pytest.raises(ValueError, match="n_features"):
        baselines.LinearTSConfig(n_features=0)
