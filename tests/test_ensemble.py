"""Ensemble sampling (bandits_jax.policies.ensemble): shapes, member diversity, the uniform member
pick, replay against streaming, stored bootstrap weights, learning in a simulation, validation.
The generic contract (vmap == loop, jit == eager, ...) is tests/test_contract.py's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import simulation
from bandits_jax.config import Network
from bandits_jax.policies import Feedback, Uniform
from bandits_jax.policies.ensemble import Ensemble
from tests.conftest import count_compiles

N_FEATURES, N_ACTIONS = 3, 3
NET = Network(N_FEATURES, (4,))
# One replay policy for most tests: equal settings share compiled code.
REPLAY = Ensemble(NET, n_members=4, num_steps=5, step_size=0.05, replay_capacity=64)


def feedback(key, n_rows=32, n_actions=N_ACTIONS):
    kx, ka, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n_rows, N_FEATURES))
    a = jax.random.randint(ka, (n_rows,), 0, n_actions)
    y = jax.random.bernoulli(ky, 0.6, (n_rows,)).astype(jnp.int32)
    return Feedback(x, a, y, jnp.ones((n_rows,), bool))


def take(tree, a):
    return jax.tree.map(lambda x: x[a], tree)


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_shapes():
    policy = REPLAY
    state = policy.init(N_ACTIONS)
    w0, w1 = state.params.layers[0].weight, state.params.layers[1].weight
    assert w0.shape == (N_ACTIONS, 4, N_FEATURES, 4) and w1.shape == (N_ACTIONS, 4, 4, 1)
    assert state.n_members == 4 and state.n_actions == N_ACTIONS
    assert_trees_equal(state.anchor, state.params)  # anchored to the initial weights
    assert state.buffer.rows["x"].shape == (N_ACTIONS, 64, N_FEATURES)
    assert state.buffer.rows["w"].shape == (N_ACTIONS, 64, 4)
    pred = policy.predict(jax.random.key(0), state, np.ones((6, N_FEATURES)))  # NumPy input
    assert pred.actions.shape == (6,) and pred.logits.shape == (6, N_ACTIONS)
    assert policy.member_scores(state, np.ones((6, N_FEATURES))).shape == (6, N_ACTIONS, 4)
    new, info = policy.update(jax.random.key(1), state, feedback(jax.random.key(2)))
    assert info.losses.shape == (N_ACTIONS, 5) and info.ok.shape == (N_ACTIONS,)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    np.testing.assert_array_equal(new.n_seen, info.n_rows)
    # streaming: no buffer; prior_scale=None: no anchor (shapes only: nothing compiles)
    plain = jax.eval_shape(lambda: Ensemble(NET, n_members=4, prior_scale=None).init(N_ACTIONS))
    assert plain.buffer is None and plain.anchor is None


def test_init_is_a_prefix_over_actions_and_its_seed_is_data():
    policy = Ensemble.example(N_FEATURES)
    big = policy.init(N_ACTIONS, seed=3)
    with count_compiles() as compiled:
        other = policy.init(N_ACTIONS, seed=4)
    assert compiled == []  # a new seed compiles nothing
    assert not np.array_equal(other.params.layers[0].weight, big.params.layers[0].weight)
    with count_compiles() as compiled:  # negative control: a new action count compiles
        small = policy.init(2, seed=3)
    assert compiled != []
    assert_trees_equal(small, take(big, slice(0, 2)))
    traced = jax.eval_shape(lambda s: policy.init(2, seed=s), jnp.int32(3))  # a traced seed works
    assert traced.params.layers[0].weight.shape == small.params.layers[0].weight.shape


def test_settings_are_hashable_and_equal_settings_hash_equal():
    a = Ensemble(NET, n_members=3, num_steps=10, step_size=0.05)
    b = Ensemble(Network(N_FEATURES, (4,)), n_members=3, num_steps=10, step_size=0.05)
    assert a == b and hash(a) == hash(b)
    assert a != Ensemble(NET, n_members=3, num_steps=10, step_size=0.05, replay_capacity=8)


def test_members_differ_at_init_and_after_an_update():
    policy = Ensemble.example(N_FEATURES)
    ctx = jax.random.normal(jax.random.key(0), (50, N_FEATURES))
    state = policy.init(N_ACTIONS)
    for s in (state, policy.update(jax.random.key(1), state, feedback(jax.random.key(2)))[0]):
        scores = np.asarray(policy.member_scores(s, ctx))  # (rows, actions, K)
        spread = scores.std(axis=-1)
        assert (spread > 1e-3).mean() > 0.9, spread
        first = np.asarray(s.params.layers[0].weight)
        for k in range(1, policy.n_members):
            assert not np.allclose(first[:, 0], first[:, k])


def test_member_pick_is_uniform_and_independent_per_row_and_action():
    """Every drawn logit is one member's score; each member is picked with frequency 1/K (within 4
    binomial standard errors), and the picks of two actions agree as often as independence says."""
    policy = REPLAY
    state = policy.init(N_ACTIONS)
    n = 4000
    ctx = jnp.ones((n, N_FEATURES))
    pred = policy.predict(jax.random.key(7), state, ctx)
    scores = np.asarray(policy.member_scores(state, ctx))
    match = np.isclose(np.asarray(pred.logits)[..., None], scores, rtol=0, atol=1e-6)  # (n, A, K)
    assert (match.sum(-1) == 1).all()  # members' scores are distinct: the pick is identified
    picks = match.argmax(-1)  # (n, A)
    p = 1 / policy.n_members
    se = np.sqrt(n * p * (1 - p))
    for a in range(N_ACTIONS):
        counts = np.bincount(picks[:, a], minlength=policy.n_members)
        assert np.all(np.abs(counts - n * p) < 4 * se), counts
    agree = (picks[:, 0] == picks[:, 1]).sum()
    assert abs(agree - n * p) < 4 * se, agree
    mean = jax.nn.sigmoid(scores.mean(-1))
    np.testing.assert_allclose(pred.mean_probs, mean, rtol=1e-5)


def _two_batches(reward_first, reward_second, n=32):
    """Action 0 sees ``n`` rows at one context with reward ``reward_first``, then ``n`` more there
    with reward ``reward_second``."""
    ctx = jnp.tile(jnp.array([[1.0, 0.0, 0.0]]), (n, 1))
    actions = jnp.zeros((n,), jnp.int32)
    mask = jnp.ones((n,), bool)
    return (
        Feedback(ctx, actions, jnp.full((n,), reward_first), mask),
        Feedback(ctx, actions, jnp.full((n,), reward_second), mask),
    )


def test_replay_refits_old_rows_that_streaming_forgets():
    """32 rewards of 1 then 32 of 0 at one context: refitting the buffer sees both batches (mean
    near 1/2); streaming fits the second batch from the first fit's weights and ends near 0."""
    first, second = _two_batches(1, 0)
    settings = dict(n_members=3, num_steps=300, step_size=0.05, bootstrap=False)
    probs = {}
    for name, capacity in (("stream", None), ("replay", 64)):
        policy = Ensemble(Network(N_FEATURES, (4,)), replay_capacity=capacity, **settings)
        state = policy.init(1)
        state, _ = policy.update(jax.random.key(0), state, first)
        after_first = float(policy.predict(jax.random.key(1), state, first.context[:1]).mean_probs[0, 0])
        assert after_first > 0.9, (name, after_first)
        state, info = policy.update(jax.random.key(2), state, second)
        assert bool(info.ok.all())
        probs[name] = float(policy.predict(jax.random.key(3), state, first.context[:1]).mean_probs[0, 0])
        if capacity is not None:
            assert int(state.buffer.valid.sum()) == 64
            assert float(state.buffer.rows["y"].sum()) == 32.0  # both batches are in the buffer
    assert probs["stream"] < 0.15, probs
    assert 0.35 < probs["replay"] < 0.65, probs


def test_bootstrap_weights_are_drawn_once_stored_and_reused():
    policy = REPLAY
    state = policy.init(N_ACTIONS)
    fb1, fb2 = feedback(jax.random.key(1)), feedback(jax.random.key(2))
    state1, _ = policy.update(jax.random.key(3), state, fb1)
    w = np.asarray(state1.buffer.rows["w"])
    valid = np.asarray(state1.buffer.valid)
    assert set(np.unique(w[valid]).tolist()) == {0.0, 2.0}  # double or nothing: mean 1
    assert (w[~valid] == 0).all()
    n = w[valid].size
    assert abs((w[valid] == 2).sum() - n / 2) < 4 * np.sqrt(n / 4)
    assert not all(np.array_equal(w[valid][:, 0], w[valid][:, k]) for k in range(1, 4))  # per member

    # The next update appends new rows and leaves the stored weights of the old ones as they were.
    state2, _ = policy.update(jax.random.key(4), state1, fb2)
    np.testing.assert_array_equal(np.asarray(state2.buffer.rows["w"])[valid], w[valid])

    # The refit uses the stored weights: changing member 0's of action 0 changes that member alone.
    altered = state1.buffer.rows["w"].at[0, :, 0].set(jnp.where(state1.buffer.valid[0], 2.0 - w[0, :, 0], 0))
    state1b = state1._replace(buffer=state1.buffer._replace(rows={**state1.buffer.rows, "w": altered}))
    state2b, _ = policy.update(jax.random.key(4), state1b, fb2)
    w0, w0b = np.asarray(state2.params.layers[0].weight), np.asarray(state2b.params.layers[0].weight)
    assert not np.allclose(w0[0, 0], w0b[0, 0])
    np.testing.assert_array_equal(w0[0, 1:], w0b[0, 1:])
    assert_trees_equal(take(state2.params, slice(1, None)), take(state2b.params, slice(1, None)))

    # Without bootstrap nothing per member is stored.
    plain = Ensemble(Network(N_FEATURES, (4,)), n_members=4, replay_capacity=8, bootstrap=False)
    assert set(plain.init(2).buffer.rows) == {"x", "y"}


def test_a_non_finite_fit_keeps_that_action_and_reports_it():
    policy = REPLAY
    state, _ = policy.update(jax.random.key(0), policy.init(N_ACTIONS), feedback(jax.random.key(1)))
    fb = feedback(jax.random.key(2))
    bad = int(jnp.argmax(fb.actions == 1))  # one row of action 1 overflows the network
    fb = fb._replace(context=fb.context.at[bad, 0].set(jnp.inf))
    new, info = policy.update(jax.random.key(3), state, fb)
    assert info.ok.tolist() == [True, False, True]
    assert_trees_equal(take(new, 1), take(state, 1))  # members, buffer, counters, n_seen
    assert not np.array_equal(new.params.layers[0].weight[0], state.params.layers[0].weight[0])
    np.testing.assert_array_equal(new.n_seen - state.n_seen, np.where(info.ok, info.n_rows, 0))


def test_members_are_vmapped_not_looped():
    """The traced update has the same number of lines for 2 and 7 members (a Python loop over
    members would repeat the fit's equations per member). Traced only: nothing compiles."""

    def lines(k):
        policy = Ensemble(NET, n_members=k, num_steps=3, replay_capacity=8)
        state = jax.eval_shape(lambda: policy.init(N_ACTIONS))
        jaxpr = jax.make_jaxpr(policy.update)(jax.random.key(0), state, feedback(jax.random.key(1)))
        return len(str(jaxpr).splitlines())

    assert lines(2) == lines(7)


def test_the_ensemble_learns_to_beat_uniform():
    env = simulation.LogisticEnv.random(3, 3, key=jax.random.key(0))
    players = {
        "ens": Ensemble.example(3),
        "ens_replay": Ensemble(
            Network(3, (4,)), n_members=3, num_steps=10, step_size=0.05, replay_capacity=128
        ),
        "uniform": Uniform(),
    }
    out = simulation.simulate_policies(players, env, jax.random.key(1), 40, 16)
    regret = {name: float(trace.cumulative_regret[-1]) for name, trace in out.items()}
    assert regret["ens"] < 0.8 * regret["uniform"], regret
    assert regret["ens_replay"] < 0.5 * regret["uniform"], regret
    assert bool(out["ens"].update_ok.all() & out["ens_replay"].update_ok.all())


@pytest.mark.parametrize(
    "kwargs, error, field",
    [
        (dict(network=(3, 4)), TypeError, "network"),
        (dict(network=Network(0)), ValueError, "n_features"),
        (dict(network=Network(3, (4,), activation="nope")), ValueError, "activation"),
        (dict(n_members=0), ValueError, "n_members"),
        (dict(n_members=2.5), TypeError, "n_members"),
        (dict(n_members=True), TypeError, "n_members"),
        (dict(num_steps=0), ValueError, "num_steps"),
        (dict(step_size=-0.1), ValueError, "step_size"),
        (dict(step_size=float("nan")), ValueError, "step_size"),
        (dict(optimizer_type="nope"), ValueError, "optimizer_type"),
        (dict(prior_scale=0.0), ValueError, "prior_scale"),
        (dict(prior_scale=float("inf")), ValueError, "prior_scale"),
        (dict(prior_scale="1"), TypeError, "prior_scale"),
        (dict(replay_capacity=0), ValueError, "replay_capacity"),
        (dict(replay_capacity=8.0), TypeError, "replay_capacity"),
        (dict(bootstrap=1), TypeError, "bootstrap"),
        (dict(likelihood="bernoulli"), TypeError, "likelihood"),
    ],
)
def test_bad_settings_raise_naming_the_field(kwargs, error, field):
    kwargs = {"network": NET, **kwargs}
    with pytest.raises(error, match=field):
        Ensemble(**kwargs)
