"""Environments: the wheel bandit against an independent NumPy definition, the round index through
``round_draws`` (piecewise-stationary environments), label noise, and argument checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import simulation
from bandits_jax.policies import LinearTS, Uniform
from bandits_jax.simulation import PiecewiseEnv, WheelEnv

PAPER_MU = (1.2, 1.0, 50.0)


# ---------------------------------------------------------------------------------- the wheel
def wheel_means_reference(x, delta, mu=PAPER_MU):
    """The paper's definition, written as its reference code's if/else per context (float64)."""
    mu_1, mu_2, mu_3 = mu
    out = np.empty((len(x), 5))
    for i, (x1, x2) in enumerate(np.asarray(x, np.float64)):
        out[i] = [mu_1, mu_2, mu_2, mu_2, mu_2]
        if np.linalg.norm([x1, x2]) > delta:
            if x1 > 0:
                action = 1 if x2 > 0 else 2
            else:
                action = 3 if x2 > 0 else 4
            out[i, action] = mu_3
    return out


def grid_points(delta):
    """Every quadrant inside and outside the radius, the axes, the boundary and just across it."""
    d = np.float32(delta)
    pts = [(0.0, 0.0)]
    for sx, sy in [(1, 1), (1, -1), (-1, 1), (-1, -1)]:
        for r in (0.5 * d, d - 1e-3, d + 1e-3, 0.5 * (d + 1), 0.999):
            pts.append((sx * r / math.sqrt(2), sy * r / math.sqrt(2)))
            pts.append((sx * r * 0.9, sy * r * math.sqrt(1 - 0.81)))
    for r in (0.5 * d, d, d + 1e-3, 0.999):  # on the axes, where the quadrant's <= 0 side decides
        pts += [(r, 0.0), (-r, 0.0), (0.0, r), (0.0, -r)]
    return np.asarray(pts, np.float32)


@pytest.mark.parametrize("delta", simulation.WHEEL_DELTAS)
def test_wheel_means_match_the_paper(delta):
    env = WheelEnv(np.float32(delta))  # the boundary points are exact in float32
    x = grid_points(delta)
    got = env.reward_means(x)
    np.testing.assert_array_equal(got, wheel_means_reference(x, np.float32(delta)).astype(got.dtype))
    # The boundary itself is inside (||x|| <= delta): action 0's disc.
    on_boundary = np.isclose(np.linalg.norm(x.astype(np.float64), axis=1), np.float32(delta), rtol=0, atol=0)
    assert on_boundary.sum() == 4
    assert (env.reward_means(x[on_boundary]).argmax(axis=1) == 0).all()
    # Every quadrant's ring action appears outside the radius.
    assert set(np.asarray(env.reward_means(x)).argmax(axis=1).tolist()) == {0, 1, 2, 3, 4}


def test_wheel_bernoulli_scale():
    x = np.array([[0.0, 0.1], [0.6, 0.6], [-0.7, -0.7]], np.float32)  # inside, ring 1, ring 4
    np.testing.assert_allclose(
        WheelEnv(0.5).expected_rewards(x),
        [[0.6, 0.5, 0.5, 0.5, 0.5], [0.6, 1.0, 0.5, 0.5, 0.5], [0.6, 0.5, 0.5, 0.5, 1.0]],
        rtol=1e-6,
    )
    exact = WheelEnv(0.5, bernoulli_scale=50)  # the plain division: the paper's ratios, gap 0.004
    np.testing.assert_allclose(exact.expected_rewards(x), wheel_means_reference(x, 0.5) / 50, rtol=1e-6)
    custom = WheelEnv(0.5, mu=(0.8, 0.2, 3.0), bernoulli_scale=1.6)
    np.testing.assert_allclose(
        custom.expected_rewards(x), np.minimum(wheel_means_reference(x, 0.5, (0.8, 0.2, 3.0)) / 1.6, 1)
    )


def test_wheel_contexts_are_uniform_in_the_disc():
    n = 20_000
    sampled = WheelEnv(0.5).sample_context(jax.random.key(0), n)
    assert sampled.shape == (n, 2) and sampled.dtype == jnp.result_type(float)
    x = np.asarray(sampled, np.float64)
    radius = np.linalg.norm(x, axis=1)
    assert radius.max() <= 1 + 1e-6
    for delta in simulation.WHEEL_DELTAS:  # P(||x|| <= delta) = delta**2 for uniform on the disc
        p = delta**2
        assert abs(np.mean(radius <= delta) - p) < 5 * math.sqrt(p * (1 - p) / n), delta
    quadrants = 2 * (x[:, 0] <= 0) + (x[:, 1] <= 0)
    for q in range(4):
        assert abs(np.mean(quadrants == q) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)


@pytest.mark.parametrize("scale", [2.0, 50.0])
def test_wheel_optimal_action_inside_and_outside(scale):
    env = WheelEnv(0.7, bernoulli_scale=scale)
    x = env.sample_context(jax.random.key(1), 2000)
    best = np.asarray(env.expected_rewards(x).argmax(axis=1))
    outside = np.linalg.norm(np.asarray(x, np.float64), axis=1) > 0.7
    assert 0 < outside.sum() < len(x)
    assert (best[~outside] == 0).all()
    np.testing.assert_array_equal(best[outside], np.asarray(env.quadrant_action(x))[outside])
    np.testing.assert_array_equal(best, np.asarray(env.reward_means(x).argmax(axis=1)))


def test_wheel_jit_and_vmap_over_deltas():
    x = grid_points(0.7)
    stack = WheelEnv.paper()
    assert stack.delta.shape == (len(simulation.WHEEL_DELTAS),)
    traces = []

    @jax.jit
    def probs(env, x):
        traces.append(None)
        return env.expected_rewards(x)

    for delta in simulation.WHEEL_DELTAS:  # delta is data: one trace for every value
        np.testing.assert_array_equal(probs(WheelEnv(delta), x), WheelEnv(delta).expected_rewards(x))
    assert len(traces) == 1
    probs(WheelEnv(0.7, bernoulli_scale=3.0), x)  # negative control: a static setting retraces
    assert len(traces) == 2

    vmapped = jax.vmap(lambda env: env.expected_rewards(x))(stack)
    built = jax.vmap(lambda d: WheelEnv(d).expected_rewards(x))(jnp.asarray(simulation.WHEEL_DELTAS))
    for i, delta in enumerate(simulation.WHEEL_DELTAS):
        np.testing.assert_array_equal(vmapped[i], WheelEnv(delta).expected_rewards(x))
        np.testing.assert_array_equal(built[i], vmapped[i])
    keys = jax.random.split(jax.random.key(2), len(simulation.WHEEL_DELTAS))
    contexts = jax.jit(jax.vmap(lambda env, k: env.sample_context(k, 3)))(stack, keys)
    assert contexts.shape == (len(simulation.WHEEL_DELTAS), 3, 2)


def test_wheel_paper_rewards():
    env = WheelEnv(0.5)
    x = env.sample_context(jax.random.key(3), 4000)
    r = np.asarray(env.sample_paper_rewards(jax.random.key(4), x), np.float64)
    noise = r - np.asarray(env.reward_means(x), np.float64)
    assert abs(noise.mean()) < 5 * 0.01 / math.sqrt(noise.size)
    assert abs(noise.std() / 0.01 - 1) < 0.02


def test_wheel_simulates_and_sweeps():
    env = WheelEnv(0.5)
    out = simulation.simulate_policies(
        {"lin": LinearTS(2), "uniform": Uniform()}, env, jax.random.key(5), 3, 8
    )
    assert out["lin"].actions.shape == (3, 8)
    np.testing.assert_array_equal(out["oracle"].regret, 0)
    for name in ("lin", "uniform"):
        assert np.isfinite(out[name].cumulative_regret).all() and (out[name].regret >= -1e-6).all()
    swept = simulation.sweep({"uniform": Uniform()}, WheelEnv.paper(), [0, 1, 2, 3, 4], 2, 8, env_axis=0)
    assert swept["uniform"].regret.shape == (5, 2)


# ---------------------------------------------------------------------------------- round index
def test_sample_round_defaults_to_sample(getkey):
    key = getkey()
    for env in (
        simulation.LogisticEnv.random(3, 2, key=getkey()),
        simulation.MLPEnv.random(3, 2, key=getkey()),
        simulation.ClassificationEnv.from_arrays(np.eye(3), [0, 1, 2]),
        WheelEnv(0.9),
    ):
        for got, want in zip(env.sample_round(key, 5, 7), env.sample(key, 5)):
            np.testing.assert_array_equal(got, want)


def make_piecewise(period=4, n_pieces=3):
    return PiecewiseEnv.random(2, 3, n_pieces, period, key=jax.random.key(11))


def test_piecewise_changes_piece_at_the_right_rounds():
    env = make_piecewise()
    assert (env.n_pieces, env.period, env.n_actions, env.n_features) == (3, 4, 3, 2)
    want_piece = [(t // 4) % 3 for t in range(16)]
    assert [int(env.piece_index(t)) for t in range(16)] == want_piece
    env_key = jax.random.key(12)
    draws_at = jax.jit(lambda t: simulation.round_draws(env_key, t, 6, env, Uniform().likelihood))
    for t in range(16):
        draws = draws_at(jnp.int32(t))  # t traced, as inside the simulation's scan
        eager = simulation.round_draws(env_key, t, 6, env, Uniform().likelihood)
        np.testing.assert_allclose(draws.expected, eager.expected, rtol=1e-6)
        np.testing.assert_allclose(
            draws.expected, env.piece(want_piece[t]).expected_rewards(draws.context), rtol=1e-6
        )
        for other in range(16):  # the expected-reward function is the same exactly within a piece
            same = np.allclose(env.expected_rewards_at(draws.context, other), draws.expected, rtol=1e-6)
            assert same == (want_piece[other] == want_piece[t]), (t, other)
    # Without a round: piece 0, round 0.
    key = jax.random.key(13)
    for got, want in zip(env.sample(key, 5), env.piece(0).sample(key, 5)):
        np.testing.assert_array_equal(got, want)
    x = env.sample_context(key, 5)
    np.testing.assert_array_equal(env.expected_rewards(x), env.expected_rewards_at(x, 0))


def test_piecewise_from_a_sequence_equals_the_stack():
    stacked = make_piecewise()
    listed = PiecewiseEnv([stacked.piece(i) for i in range(3)], period=4)
    assert listed.n_pieces == 3
    for a, b in zip(jax.tree.leaves(listed), jax.tree.leaves(stacked)):
        np.testing.assert_array_equal(a, b)
    wheels = PiecewiseEnv((WheelEnv(0.5), WheelEnv(0.95)), period=2)
    x = jnp.array([[0.6, 0.0]])
    assert int(wheels.expected_rewards_at(x, 1).argmax()) == 2
    assert int(wheels.expected_rewards_at(x, 2).argmax()) == 0
    with pytest.raises(ValueError, match="pieces"):
        PiecewiseEnv((WheelEnv(0.5), WheelEnv(0.5, bernoulli_scale=3.0)), period=2)
    with pytest.raises(ValueError, match="pieces"):
        PiecewiseEnv((WheelEnv(0.5), stacked.piece(0)), period=2)
    with pytest.raises(ValueError, match="pieces"):
        PiecewiseEnv((), period=2)
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="period"):
            PiecewiseEnv(stacked.pieces, period=bad)


def test_piecewise_simulation_regret_follows_the_piece():
    env = make_piecewise(period=2)
    key = jax.random.key(14)
    out = simulation.simulate_policies({"lin": LinearTS(2), "uniform": Uniform()}, env, key, 6, 8)
    np.testing.assert_array_equal(out["oracle"].regret, 0)
    assert np.isfinite(out["lin"].cumulative_regret).all()
    env_key = jax.random.split(key)[0]  # the documented key schedule
    pieces_differ = False
    for t in range(6):
        context = simulation.round_draws(env_key, t, 8, env, Uniform().likelihood).context
        best = env.expected_rewards_at(context, t).max(axis=1).sum()
        np.testing.assert_allclose(out["oracle"].best_reward[t], best, rtol=1e-5)
        pieces_differ |= not np.isclose(best, env.expected_rewards(context).max(axis=1).sum(), rtol=1e-5)
    assert pieces_differ  # the check above can tell piece 0 from the piece in play


# ---------------------------------------------------------------------------------- label noise
def classification(label_noise=0.0):
    x = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [3.0, 3.0], [1.0, 2.0]])
    return simulation.ClassificationEnv.from_arrays(x, [1, 0, 2, 0, 3], label_noise=label_noise)


@pytest.mark.parametrize("noise", [0.0, 0.25, 0.9])
def test_label_noise_expected_rewards(noise):
    env = classification(noise)
    labels = np.asarray(env.labels)
    want = (1 - noise) * (np.arange(4) == labels[:, None]) + noise / 4
    np.testing.assert_allclose(env.expected_rewards(env.features), want, rtol=1e-6, atol=1e-7)
    key = jax.random.key(15)
    ctx, expected = env.sample(key, 40)
    rows = np.asarray(jax.random.randint(key, (40,), 0, 5))  # the documented row draw
    np.testing.assert_array_equal(ctx, env.features[rows])
    np.testing.assert_allclose(expected, want[rows], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(expected.sum(axis=1), 1, rtol=1e-6)
    assert (np.asarray(expected).argmax(axis=1) == labels[rows]).all()


def test_label_noise_zero_is_todays_output():
    env = classification()
    key = jax.random.key(16)
    ctx, expected = env.sample(key, 30)
    rows = jax.random.randint(key, (30,), 0, 5)
    today = jax.nn.one_hot(env.labels[rows], env.n_classes, dtype=env.features.dtype)
    assert expected.dtype == today.dtype
    np.testing.assert_array_equal(expected, today)
    np.testing.assert_array_equal(
        env.expected_rewards(ctx), jax.nn.one_hot(env.labels[rows], 4, dtype=env.features.dtype)
    )


def test_label_noise_is_data():
    env = classification()
    noises = jnp.array([0.0, 0.4])
    out = jax.vmap(lambda e: e.expected_rewards(env.features))(
        jax.vmap(lambda n: simulation.ClassificationEnv(env.features, env.labels, 4, n))(noises)
    )
    np.testing.assert_allclose(out[1], classification(0.4).expected_rewards(env.features), rtol=1e-6)
    np.testing.assert_array_equal(out[0], env.expected_rewards(env.features))


def test_load_sklearn_label_noise():
    pytest.importorskip("sklearn")
    env = simulation.load_sklearn("iris", label_noise=0.3)
    np.testing.assert_allclose(env.expected_rewards(env.features[:2]).max(axis=1), 0.7 + 0.1, rtol=1e-6)


# ---------------------------------------------------------------------------------- checks
@pytest.mark.parametrize("delta", [0.0, 1.0, float("nan"), -0.1, 1.5, [0.5, 1.0], np.array([0.5, 0.0]), []])
def test_wheel_rejects_bad_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        WheelEnv(delta)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mu": (1.0, 1.2, 50.0)}, "mu"),
        ({"mu": (1.2, -0.1, 50.0)}, "mu"),
        ({"mu": (1.2, 1.0)}, "mu"),
        ({"std": -1.0}, "std"),
        ({"bernoulli_scale": 1.2}, "bernoulli_scale"),
        ({"bernoulli_scale": float("nan")}, "bernoulli_scale"),
    ],
)
def test_wheel_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WheelEnv(0.5, **kwargs)


@pytest.mark.parametrize("noise", [1.0, -0.1, 1.5, float("nan")])
def test_classification_rejects_bad_label_noise(noise):
    with pytest.raises(ValueError, match="label_noise"):
        classification(noise)
    with pytest.raises(ValueError, match="label_noise"):
        simulation.ClassificationEnv(jnp.eye(2), jnp.array([0, 1]), 2, noise)


def test_numpy_inputs_are_accepted():
    env = WheelEnv(np.float32(0.5), mu=np.array([1.2, 1.0, 50.0]), std=np.float64(0.01), bernoulli_scale=2)
    x = np.array([[0.6, 0.6]], np.float64)
    assert int(env.reward_means(x).argmax()) == 1
    assert classification(np.float32(0.2)).label_noise.dtype == jnp.result_type(float)
    PiecewiseEnv([env, WheelEnv(np.float64(0.9))], period=np.int64(3))
