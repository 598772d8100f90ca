"""JAX properties of the functional core: vmap == loop, jit == eager, no retrace, routing."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import core, inference
from bandits_jax.inference import fit
from tests.conftest import count_compiles


def batch(key, n_rows=32, n_features=3, n_actions=2):
    kx, ka, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n_rows, n_features))
    a = jax.random.randint(ka, (n_rows,), 0, n_actions)
    y = jax.random.bernoulli(ky, 0.5, (n_rows,)).astype(jnp.int32)
    return x, a, y


@pytest.fixture(params=[(), (4,)], ids=["linear", "hidden4"])
def config(request):
    # fits start at the posterior itself: the loop below calls the one-action fit without the
    # default init_scale's start noise
    return core.CmabConfig(n_features=3, hidden_dim_list=request.param, num_steps=20, init_scale=None)


def routed(config, key, n_actions=2):
    state = core.init(config, n_actions)
    x, a, y = batch(key, n_actions=n_actions)
    rows, valid = core.route(n_actions, a, jnp.ones(a.shape, bool), 32)
    return state, x[rows], y[rows].astype(jnp.float32), valid


def test_vmapped_fit_equals_loop_over_actions(config, getkey):
    state, x, y, valid = routed(config, getkey(), n_actions=3)
    key = getkey()
    together = fit(config, state.loc, state.scale, x, y, valid, key)
    # Every action's draws are its slice of the update's draws.
    draws = inference.draws(config, state.loc, x, key)
    fit_one = jax.jit(partial(inference._fit_one, config))
    for i in range(3):
        one = core.action_view(state, i)
        alone = fit_one(one.loc, one.scale, x[i], y[i], valid[i], jax.tree.map(lambda d, i=i: d[i], draws))
        for a, b in zip(
            jax.tree.leaves((together.loc, together.scale)), jax.tree.leaves((alone.loc, alone.scale))
        ):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(together.losses[i], alone.losses, rtol=1e-5)


def test_jit_equals_eager(getkey):
    # SGD, not Adam: Adam divides by the gradient's running RMS, which turns rounding-level
    # differences of near-zero gradients into step-size-level ones.
    config = core.CmabConfig(
        n_features=3, hidden_dim_list=(4,), num_steps=3, optimizer_type="sgd", step_size=1e-2
    )
    state, x, y, valid = routed(config, getkey())
    key = getkey()
    jitted = fit(config, state.loc, state.scale, x, y, valid, key)
    with jax.disable_jit():
        eager = fit(config, state.loc, state.scale, x, y, valid, key)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_update_is_not_retraced_for_same_bucket(getkey):
    config = core.CmabConfig(n_features=3, num_steps=7)
    state = core.init(config, 2)
    x, a, y = batch(getkey())
    core.update(config, state, x, a, y, getkey(), rows_per_action=32)
    x2, a2, y2 = batch(getkey())
    # Keys drawn outside the block: under JAX_CHECK_TRACER_LEAKS (CI) JAX turns some caches off, so
    # the eager key construction compiles again each time; the update itself must not.
    k1, k2 = getkey(), getkey()
    with count_compiles() as compiled:
        state2, _ = core.update(config, state, x2, a2, y2, k1, rows_per_action=32)
        core.update(config, state2, x, a, y, k2, rows_per_action=32)
    assert compiled == []
    with count_compiles() as compiled:  # negative control: a new static argument recompiles
        core.update(config, state, x, a, y, getkey(), rows_per_action=16)
    assert any("update" in name for name in compiled), compiled


def test_route_groups_rows_by_action_valid_first(getkey):
    a = jnp.array([2, 0, 2, 1, 0, 2, 1])
    mask = jnp.array([True, True, True, True, False, True, True])
    rows, valid = core.route(3, a, mask, 4)
    assert valid.sum(axis=1).tolist() == [1, 2, 3]
    for action in range(3):
        got = rows[action][valid[action]].tolist()
        want = [i for i in range(7) if a[i] == action and mask[i]]
        assert got == want
        # valid rows come first (minibatching relies on it)
        assert valid[action].tolist() == sorted(valid[action].tolist(), reverse=True)


def test_update_counts_successes_and_failures(getkey):
    config = core.CmabConfig(n_features=3, num_steps=3)
    state = core.init(config, 3)
    x, a, y = batch(getkey(), n_actions=3)
    mask = jnp.arange(32) < 30
    new, info = core.update(config, state, x, a, y, getkey(), mask)
    a, y, m = np.asarray(a), np.asarray(y), np.asarray(mask)
    for i in range(3):
        sel = (a == i) & m
        assert int(new.n_successes[i]) == 1 + y[sel].sum()
        assert int(new.n_failures[i]) == 1 + (1 - y[sel]).sum()
        assert int(info.n_rows[i]) == sel.sum()


def test_action_without_rows_keeps_posterior_bit_for_bit(getkey):
    config = core.CmabConfig(n_features=3, num_steps=10, dist_type="studentt")
    state = core.init(config, 3)
    x, _, y = batch(getkey())
    a = jnp.zeros(32, jnp.int32)  # only action 0 gets rows
    new, _ = core.update(config, state, x, a, y, getkey())
    for old_leaf, new_leaf in zip(jax.tree.leaves(state.loc), jax.tree.leaves(new.loc)):
        np.testing.assert_array_equal(old_leaf[1:], new_leaf[1:])
        assert not np.array_equal(old_leaf[0], new_leaf[0])


def test_nonfinite_fit_keeps_previous_posterior(getkey):
    # A huge step size on huge contexts overflows the ELBO.
    config = core.CmabConfig(n_features=3, num_steps=20, step_size=1e30)
    state = core.init(config, 2)
    x, a, y = batch(getkey())
    new, info = core.update(config, state, x * 1e30, a, y, getkey())
    assert not bool(info.ok.any())
    for old_leaf, new_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        np.testing.assert_array_equal(old_leaf, new_leaf)


def test_minibatch_update_runs_and_learns_direction(getkey):
    config = core.CmabConfig(n_features=1, num_steps=300, batch_size=16, step_size=0.1)
    state = core.init(config, 1)
    x = jax.random.normal(getkey(), (256, 1))
    y = jax.random.bernoulli(getkey(), jax.nn.sigmoid(3 * x[:, 0])).astype(jnp.int32)
    new, info = core.update(config, state, x, jnp.zeros(256, jnp.int32), y, getkey())
    assert bool(info.ok.all())
    assert float(new.loc.layers[0].weight[0, 0, 0]) > 1.0


def test_predict_shapes_and_strategy(getkey):
    config = core.CmabConfig(n_features=3, hidden_dim_list=(5,))
    state = core.init(config, 4)
    out = core.predict(state, jnp.ones((6, 3)), getkey())
    assert out.actions.shape == (6,) and out.probs.shape == (6, 4) and out.logits.shape == (6, 4)
    np.testing.assert_array_equal(out.actions, jnp.argmax(out.probs, axis=1))
    np.testing.assert_allclose(out.probs, jax.nn.sigmoid(out.logits), rtol=1e-6)


def test_predict_draws_are_independent_per_row(getkey):
    config = core.CmabConfig(n_features=2)
    state = core.init(config, 1)
    out = core.predict(state, jnp.ones((4096, 2)), getkey())
    # identical rows, prior N(0, 10^2) per weight: logit = w1 + w2 + b ~ N(0, 300)
    logits = np.asarray(out.logits[:, 0])
    assert abs(logits.std() - np.sqrt(300)) < 5 * np.sqrt(300) / np.sqrt(2 * 4096)
    # One draw per row, not one shared: all but a few distinct (float32 uniforms carry 23 random
    # bits, so about n^2 / 2^24 = 1 collision among 4096 rows is expected).
    assert len(np.unique(logits)) >= 4086


def test_predict_under_vmap_over_states(getkey):
    config = core.CmabConfig(n_features=3)
    states = jax.vmap(lambda _: core.init(config, 2))(jnp.arange(5))
    keys = jax.random.split(getkey(), 5)
    out = jax.vmap(core.predict, in_axes=(0, None, 0))(states, jnp.ones((3, 3)), keys)
    assert out.probs.shape == (5, 3, 2)
    single = core.predict(core.init(config, 2), jnp.ones((3, 3)), keys[2])
    np.testing.assert_allclose(out.logits[2], single.logits, rtol=1e-6)


def test_optimizer_settings_take_effect(getkey):
    """Clipping, particles and the optimizer choice all change the fit (they reach the SVI)."""
    x, a, y = batch(getkey())
    key = getkey()
    base = core.CmabConfig(n_features=3, num_steps=5)
    variants = [
        base,
        core.CmabConfig(n_features=3, num_steps=5, gradient_clip_norm=1e-3),
        core.CmabConfig(n_features=3, num_steps=5, num_particles=3),
        core.CmabConfig(n_features=3, num_steps=5, optimizer_type="sgd", step_size=1e-4),
    ]
    fits = [core.update(cfg, core.init(cfg, 2), x, a, y, key)[0].loc.layers[0].weight for cfg in variants]
    for other in fits[1:]:
        assert not np.allclose(fits[0], other)
    # With SGD the clipped step is at most step_size * clip_norm per action.
    sgd = core.CmabConfig(
        n_features=3, num_steps=1, optimizer_type="sgd", step_size=1.0, gradient_clip_norm=0.5
    )
    new = core.update(sgd, core.init(sgd, 2), x, a, y, key)[0]
    moved = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(new.loc)])
    assert float(jnp.linalg.norm(moved)) <= 2 * 0.5 + 1e-5  # two actions, each moved at most 0.5


@pytest.mark.parametrize("n_actions, n_rows", [(1, 5), (3, 40), (7, 100)])
def test_host_grouping_is_the_device_route(n_actions, n_rows):
    from bandits_jax._bandit import group_rows as _group_rows

    actions = np.random.default_rng(n_rows).integers(0, n_actions, n_rows).astype(np.int32)
    rows, valid = _group_rows(n_actions, actions)
    per_action = rows.shape[1]  # the bucket of the largest count
    assert per_action >= np.bincount(actions).max()
    dev_rows, dev_valid = core.route(n_actions, jnp.asarray(actions), jnp.ones(n_rows, bool), per_action)
    np.testing.assert_array_equal(valid, dev_valid)
    np.testing.assert_array_equal(rows[valid], np.asarray(dev_rows)[valid])
    for a in range(n_actions):  # each action's own rows, in batch order
        np.testing.assert_array_equal(rows[a][valid[a]], np.flatnonzero(actions == a))
