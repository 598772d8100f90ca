"""The Bayesian MLP's replay option (``BnnTS(replay_capacity=...)``): every update fits each action's
buffered rows to the *original* prior, the guide warm-started at the current posterior. The
contract tests cover it as the variant ``bnn_ts[replay]``."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.inference import fit
from bandits_jax.policies import BnnReplayState, BnnTS, Feedback, Network, SviSettings

POLICY = BnnTS(
    Network(3, (4,)), svi=SviSettings(num_steps=15, step_size=0.01, init_scale=0.1), replay_capacity=8
)


def batch(key, n=6):
    kx, ka, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, 3))
    return Feedback(
        x,
        jax.random.randint(ka, (n,), 0, 2),
        jax.random.bernoulli(ky, 0.5, (n,)).astype(jnp.int32),
        jnp.ones(n, bool),
    )


def test_the_prior_stays_the_original_and_every_fit_sees_every_buffered_row():
    state = POLICY.init(2, mu=0.0, sigma=2.0)
    assert isinstance(state, BnnReplayState)
    s1, _ = POLICY.update(jax.random.key(1), state, batch(jax.random.key(10)))
    s2, info = POLICY.update(jax.random.key(2), s1, batch(jax.random.key(11)))
    for a, b in zip(
        jax.tree.leaves((state.prior_loc, state.prior_scale)), jax.tree.leaves((s2.prior_loc, s2.prior_scale))
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        s2.buffer.valid.sum(axis=1), [min(8, int(c)) for c in s2.stats.n_successes + s2.stats.n_failures - 2]
    )
    # the second update is exactly one fit of the buffer to the original prior, started at s1
    rows = s2.buffer.rows
    expected = fit(
        POLICY,
        state.prior_loc,
        state.prior_scale,
        rows["context"],
        rows["reward"],
        s2.buffer.valid,
        jax.random.split(jax.random.key(2))[1] if False else jax.random.key(2),
        start=(s1.loc, s1.scale),
    )
    fresh = np.asarray(info.n_rows) > 0
    for got, want, old in zip(
        jax.tree.leaves(s2.loc), jax.tree.leaves(expected.loc), jax.tree.leaves(s1.loc)
    ):
        np.testing.assert_allclose(np.asarray(got)[fresh], np.asarray(want)[fresh], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(np.asarray(got)[~fresh], np.asarray(old)[~fresh])


def test_streaming_and_replay_differ_only_by_the_option():
    streaming = dataclasses.replace(POLICY, replay_capacity=None)
    a, _ = streaming.update(jax.random.key(0), streaming.init(2), batch(jax.random.key(3)))
    b, _ = POLICY.update(jax.random.key(0), POLICY.init(2), batch(jax.random.key(3)))
    # first update from the cold prior: same prior, same start, same rows -> the same posterior
    for x, y in zip(jax.tree.leaves((a.loc, a.scale)), jax.tree.leaves((b.loc, b.scale))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_capacity_is_refused(bad):
    with pytest.raises((ValueError, TypeError), match="replay_capacity"):
        BnnTS(Network(3), replay_capacity=bad)
