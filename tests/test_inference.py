"""The fused ELBO of ``inference.fit`` against numpyro's own SVI machinery on the same model.

``inference._neg_elbo`` writes out numpyro's ``TraceMeanField_ELBO`` for the BNN model and the
mean-field Normal guide, so that one update traces and compiles less. These tests keep it honest:
the reference below is the numpyro model and guide the library used before (one sample site for
all weights, masked and scaled Bernoulli likelihood, constrained positive guide scale).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer import SVI, TraceMeanField_ELBO
from numpyro.optim import optax_to_numpyro

from bandits_jax import core, inference


def reference(config, loc, scale):
    """numpyro model and guide of one action, and its flat prior parameters."""
    prior_loc, unravel = ravel_pytree(loc)
    prior_scale, _ = ravel_pytree(scale)

    def model(x, y, mask, data_scale):
        w = numpyro.sample("w", inference._prior(config, prior_loc, prior_scale).to_event(1))
        logits = jax.vmap(unravel(w))(x)
        with numpyro.handlers.scale(scale=data_scale):
            numpyro.sample("obs", dist.Bernoulli(logits=logits).mask(mask).to_event(1), obs=y)

    def guide(x, y, mask, data_scale):
        q_loc = numpyro.param("loc", prior_loc)
        q_scale = numpyro.param("scale", prior_scale, constraint=dist.constraints.positive)
        numpyro.sample("w", dist.Normal(q_loc, q_scale).to_event(1))

    return model, guide, prior_loc, prior_scale, unravel


def problem(config, key, rows=40):
    """One action's posterior moved away from the prior, and a masked batch."""
    state = core.init(config, 1)
    one = core.action_view(state, 0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    loc = jax.tree.map(lambda leaf: leaf + 0.3 * jax.random.normal(k1, leaf.shape), one.loc)
    scale = jax.tree.map(lambda leaf: leaf * 0.05, one.scale)
    x = jax.random.normal(k2, (rows, config.n_features))
    y = jax.random.bernoulli(k3, 0.4, (rows,)).astype(jnp.float32)
    mask = jnp.arange(rows) < rows - 7
    return loc, scale, x, y, mask, k4


@pytest.mark.parametrize("dist_type", ["normal", "studentt"])
@pytest.mark.parametrize("hidden", [(), (4,)], ids=["linear", "hidden4"])
@pytest.mark.parametrize("data_scale", [1.0, 2.5])
def test_neg_elbo_equals_numpyro_trace_mean_field_elbo(dist_type, hidden, data_scale, getkey):
    config = core.CmabConfig(n_features=3, hidden_dim_list=hidden, dist_type=dist_type, sigma=2.0)
    loc, scale, x, y, mask, key = problem(config, getkey())
    model, guide, prior_loc, prior_scale, unravel = reference(config, loc, scale)
    q_loc = prior_loc + 0.1
    q_log_scale = jnp.log(prior_scale) - 0.2

    def numpyro_loss(q_loc, q_log_scale):
        params = {"loc": q_loc, "scale": jnp.exp(q_log_scale)}
        return TraceMeanField_ELBO().loss(key, params, model, guide, x, y, mask, data_scale)

    # numpyro draws the guide's noise with the guide's seed (second half of the key), split once
    # more by its seed handler at the sample site.
    guide_seed = jax.random.split(key)[1]
    eps = jax.random.normal(jax.random.split(guide_seed)[1], prior_loc.shape)
    prior = inference._prior(config, prior_loc, prior_scale)
    ours = partial(inference._neg_elbo, config, unravel, prior)

    ref_loss, ref_grad = jax.value_and_grad(numpyro_loss, argnums=(0, 1))(q_loc, q_log_scale)
    params = jnp.stack([q_loc, q_log_scale])
    loss, grad = jax.value_and_grad(ours)(params, eps, x, y, mask, jnp.float32(data_scale))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for g, r in zip(grad, ref_grad):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_fit_reaches_numpyro_svi_optimum(getkey):
    """A whole fit against numpyro's SVI with the same optimizer from the same start. The noise
    differs (each draws its own), so the two final iterates agree up to the stochastic-gradient
    noise of Adam at step size 0.01 around the common optimum. Measured over 4 seeds of either
    method, a final mean varies by at most 0.1 posterior sd and a final sd by at most 2%, so the
    difference of two runs has an sd of about 0.14 sd and 3%: we allow 0.5 sd and 10% (over 3.5
    standard deviations of that noise; a missing likelihood scale or a KL off by a factor moves
    the sd by tens of percent)."""
    config = core.CmabConfig(n_features=3, num_steps=3000, step_size=0.01, num_particles=4, sigma=3.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (rng.random(200) < 1 / (1 + np.exp(-(x @ np.array([1.0, -1.0, 0.5]))))).astype(np.float32)
    mask = np.ones(200, bool)
    state = core.init(config, 1)
    one = core.action_view(state, 0)
    model, guide, _, _, _ = reference(config, one.loc, one.scale)
    svi = SVI(
        model, guide, optax_to_numpyro(optax.adam(config.step_size)), TraceMeanField_ELBO(num_particles=4)
    )
    ref = svi.run(getkey(), config.num_steps, x, y, mask, 1.0, progress_bar=False)
    ours = inference.fit(config, state.loc, state.scale, x[None], y[None], mask[None], getkey())
    assert bool(ours.ok[0])
    loc = ravel_pytree(jax.tree.map(lambda leaf: leaf[0], ours.loc))[0]
    sd = ravel_pytree(jax.tree.map(lambda leaf: leaf[0], ours.scale))[0]
    ref_loc, ref_sd = ref.params["loc"], ref.params["scale"]
    assert np.all(np.abs(loc - ref_loc) < 0.5 * ref_sd), (loc, ref_loc, ref_sd)
    assert np.all(np.abs(sd / ref_sd - 1) < 0.1), (sd, ref_sd)


def test_predrawn_and_per_step_draws_agree_in_distribution(monkeypatch, getkey):
    """Above ``_PREDRAW_LIMIT`` numbers each step draws its own noise; both paths fit the same
    objective, so a long fit ends at the same optimum (same tolerance argument as above; the
    minibatch of half the rows adds noise, hence 0.5 sd and 25%)."""
    config = core.CmabConfig(
        n_features=3, num_steps=1500, step_size=0.01, num_particles=2, batch_size=64, init_scale=None
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 128, 3)).astype(np.float32)
    y = (rng.random((2, 128)) < 1 / (1 + np.exp(-x[..., 0] + x[..., 1]))).astype(np.float32)
    mask = np.ones((2, 128), bool)
    state = core.init(config, 2)
    assert isinstance(inference.draws(config, state.loc, x, getkey()), inference._Draws)
    pre = inference.fit(config, state.loc, state.scale, x, y, mask, getkey())
    monkeypatch.setattr(inference, "_PREDRAW_LIMIT", 0)
    per_step_config = core.CmabConfig(  # a new static config: a fresh trace under the patch
        n_features=3, num_steps=1501, step_size=0.01, num_particles=2, batch_size=64, init_scale=None
    )
    assert not isinstance(inference.draws(per_step_config, state.loc, x, getkey()), inference._Draws)
    per_step = inference.fit(per_step_config, state.loc, state.scale, x, y, mask, getkey())
    assert bool(pre.ok.all()) and bool(per_step.ok.all())
    for a, b, s in zip(jax.tree.leaves(pre.loc), jax.tree.leaves(per_step.loc), jax.tree.leaves(pre.scale)):
        assert np.all(np.abs(a - b) < 0.5 * s), (a, b, s)
    for a, b in zip(jax.tree.leaves(pre.scale), jax.tree.leaves(per_step.scale)):
        np.testing.assert_allclose(a, b, rtol=0.25)


# ------------------------------------------------------------------ init_scale (guide start)
def test_init_scale_starts_the_guide_at_a_narrowed_draw_of_the_prior():
    """With a step too small to move it, the fit returns its start: scales min(prior, init_scale)
    and locations prior + that scale times standard normal noise (so their spread is the scale);
    an action without rows keeps its prior exactly."""
    from bandits_jax.policies import BnnTS, Feedback, Network, SviSettings

    svi = SviSettings(num_steps=1, optimizer_type="sgd", step_size=1e-12, init_scale=0.05)
    policy = BnnTS(Network(3, (64,)), svi=svi)
    state = policy.init(2, mu=0.5, sigma=10.0)
    x = jnp.ones((8, 3))
    fb = Feedback(x, jnp.zeros(8, jnp.int32), jnp.ones(8, jnp.int32), jnp.ones(8, bool))
    new, info = policy.update(jax.random.key(0), state, fb)
    assert bool(info.ok.all())
    scales = jnp.concatenate([leaf[0].ravel() for leaf in jax.tree.leaves(new.scale)])
    locs = jnp.concatenate([leaf[0].ravel() for leaf in jax.tree.leaves(new.loc)])
    np.testing.assert_allclose(scales, 0.05, rtol=1e-5)
    # 64 * 3 + 64 + 64 + 1 = 321 draws: the sample sd is within 4 standard errors (sd * 4 / sqrt(640))
    z = (locs - 0.5) / 0.05
    assert abs(float(z.std()) - 1.0) < 4 / np.sqrt(2 * z.size)
    assert abs(float(z.mean())) < 4 / np.sqrt(z.size)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new)):  # action 1 had no rows
        np.testing.assert_array_equal(a[1], b[1])
    # a prior narrower than init_scale is kept as the start's scale
    narrow = policy.init(2, mu=0.0, sigma=0.01)
    new, _ = policy.update(jax.random.key(0), narrow, fb)
    np.testing.assert_allclose(
        jnp.concatenate([leaf[0].ravel() for leaf in jax.tree.leaves(new.scale)]), 0.01, rtol=1e-5
    )


def test_init_scale_is_validated_and_named():
    from bandits_jax.cmab import CmabBernoulli
    from bandits_jax.config import CmabConfig

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"^init_scale"):
            CmabConfig(n_features=2, init_scale=bad)
        with pytest.raises(ValueError, match=r"update_kwargs\['init_scale'\]"):
            CmabBernoulli.cold_start(["a"], n_features=2, update_kwargs={"init_scale": bad})
    mab = CmabBernoulli.cold_start(["a"], n_features=2, update_kwargs={"init_scale": 0.1})
    assert mab.update_kwargs["init_scale"] == 0.1 and mab.config.svi.init_scale == 0.1


def test_a_config_saved_before_init_scale_loads_as_starting_at_the_prior():
    import dataclasses

    from bandits_jax.cmab import CmabBernoulli
    from bandits_jax.config import CmabConfig

    fields = dataclasses.asdict(CmabConfig(n_features=2, hidden_dim_list=(3,)))
    del fields["init_scale"]
    assert CmabBernoulli._config_from_json(fields).init_scale is None
