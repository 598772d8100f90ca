"""Statistical checks against independent references (kept few; marked slow)."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

from bandits_jax import core
from bandits_jax.cmab import CmabBernoulli


@pytest.mark.slow
def test_svi_posterior_matches_nuts_on_logistic_regression():
    """Bayesian logistic regression (3 features + bias, N(0, 10^2) prior, 300 rows): the SVI
    posterior of one update against NUTS on the same model and data.

    Tolerances: for a near-Gaussian posterior with nearly uncorrelated coordinates (independent
    standard-normal features), the mean-field optimum's mean lies within a small fraction of a
    posterior sd of the exact mean, and its sd within about 30% of the exact marginal sd (mean
    field shrinks it by the correlation it ignores). NUTS with 2000 draws adds Monte-Carlo error of
    about 0.03 sd and the final Adam iterate (lr 0.01) a few hundredths of an sd, so we allow
    |mean difference| < 0.25 sd and an sd ratio in [0.7, 1.3].
    """
    rng = np.random.default_rng(0)
    n, w_true, b_true = 300, np.array([1.5, -1.0, 0.5]), -0.3
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w_true + b_true)))).astype(np.int32)

    def model(x, y):
        w = numpyro.sample("w", dist.Normal(0, 10).expand([3]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0, 10))
        numpyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.key(0), x, y)
    s = mcmc.get_samples()
    draws = np.concatenate([np.asarray(s["w"]), np.asarray(s["b"])[:, None]], axis=1)
    ref_mean, ref_sd = draws.mean(0), draws.std(0)

    # One streaming update from the cold prior, run long enough to converge.
    state = core.init(core.CmabConfig(n_features=3), 1)
    actions = np.zeros(n, np.int32)
    config = core.CmabConfig(n_features=3, num_steps=6000, step_size=0.01, num_particles=4)
    new, info = core.update(config, state, x, actions, y, jax.random.key(2))
    assert bool(info.ok.all())
    loc = np.concatenate(
        [np.asarray(new.loc.layers[0].weight[0, :, 0]), np.asarray(new.loc.layers[0].bias[0])]
    )
    sd = np.concatenate(
        [np.asarray(new.scale.layers[0].weight[0, :, 0]), np.asarray(new.scale.layers[0].bias[0])]
    )
    assert np.all(np.abs(loc - ref_mean) < 0.25 * ref_sd), (loc, ref_mean, ref_sd)
    assert np.all((sd / ref_sd > 0.7) & (sd / ref_sd < 1.3)), (sd, ref_sd)


@pytest.mark.slow
def test_policy_learns_best_action_per_context():
    """Three actions whose best choice depends on the context: after a few updates the policy
    picks the best action far more often than chance (1/3)."""
    rng = np.random.default_rng(0)
    w = np.array([[3.0, -3.0, 0.0], [0.0, 0.0, 3.0]])  # (features, actions)
    mab = CmabBernoulli.cold_start(
        action_ids=["x", "y", "z"], n_features=2, update_kwargs={"num_steps": 300}, random_seed=0
    )
    index = {a: i for i, a in enumerate(mab.action_ids)}
    for _ in range(5):
        ctx = rng.normal(size=(200, 2))
        p = 1 / (1 + np.exp(-(ctx @ w)))
        actions, _, _ = mab.predict(ctx)
        chosen = np.array([index[a] for a in actions])
        rewards = (rng.random(200) < p[np.arange(200), chosen]).astype(int)
        mab.update(actions=actions, rewards=rewards, context=ctx)
    ctx = rng.normal(size=(2000, 2))
    chosen = mab.predict_arrays(ctx).action_indices
    best = (ctx @ w).argmax(axis=1)
    assert np.mean(chosen == best) > 0.75
