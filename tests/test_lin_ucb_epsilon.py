"""LinUCB and epsilon-greedy: scores against an independent NumPy reference, the shared sufficient
statistics with linear TS, their data settings (alpha, epsilon) compiling nothing, the exploration
probabilities against their closed forms, and a learning check against uniform random."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import simulation
from bandits_jax.policies import BetaBernoulli, Feedback, LinearTS, Uniform
from bandits_jax.policies.epsilon_greedy import EpsilonGreedy
from bandits_jax.policies.lin_ucb import LinUCB
from tests.conftest import count_compiles

N_FEATURES = 3


def feedback(key, n_rows=64, n_actions=3, p=0.6):
    kx, ka, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n_rows, N_FEATURES))
    a = jax.random.randint(ka, (n_rows,), 0, n_actions)
    y = jax.random.bernoulli(ky, p, (n_rows,)).astype(jnp.int32)
    return Feedback(x, a, y, jnp.ones((n_rows,), bool))


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- LinUCB ---------------------------------------------------------------------------------------


def test_lin_ucb_scores_match_numpy(getkey):
    policy = LinUCB(N_FEATURES, newton_steps=5)
    alpha = np.array([0.0, 0.5, 2.0])
    state = policy.init(3, sigma=0.7, alpha=alpha)
    state, _ = policy.update(getkey(), state, feedback(getkey()))
    context = np.random.default_rng(0).normal(size=(11, N_FEATURES)).astype(np.float32)
    pred = policy.predict(getkey(), state, context)

    # Reference in float64 from the state's mean and precision (cov recomputed by NumPy).
    mean = np.asarray(state.posterior.mean, np.float64)
    cov = np.linalg.inv(np.asarray(state.posterior.precision, np.float64))
    x = np.concatenate([context.astype(np.float64), np.ones((11, 1))], axis=1)
    centre = x @ mean.T
    width = np.sqrt(np.einsum("ni,aij,nj->na", x, cov, x))
    score = centre + alpha * width
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    # float32 state: the Cholesky inverse of a well-conditioned 4x4 precision agrees to ~1e-6.
    np.testing.assert_allclose(pred.logits, score, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.probs, sigmoid(score), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred.mean_probs, sigmoid(centre), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(pred.actions, np.argmax(np.asarray(pred.probs), axis=1))
    assert (np.argmax(score, axis=1) == np.asarray(pred.actions)).mean() == 1.0
    # Deterministic given the state: another key, the same scores.
    assert_trees_equal(pred, policy.predict(getkey(), state, context))


def test_lin_ucb_state_is_linear_ts_state(getkey):
    lin_ucb, lin_ts = LinUCB(N_FEATURES, newton_steps=5), LinearTS(N_FEATURES, newton_steps=5)
    ucb_state, ts_state = lin_ucb.init(3, sigma=0.5, alpha=1.5), lin_ts.init(3, sigma=0.5)
    assert_trees_equal(ucb_state.posterior, ts_state)
    for _ in range(2):
        fb, key = feedback(getkey()), getkey()
        ucb_state, ucb_info = lin_ucb.update(key, ucb_state, fb)
        ts_state, ts_info = lin_ts.update(key, ts_state, fb)
        assert_trees_equal(ucb_state.posterior, ts_state)
        assert_trees_equal(ucb_info, ts_info)
    np.testing.assert_array_equal(ucb_state.alpha, [1.5, 1.5, 1.5])


def test_lin_ucb_new_alpha_compiles_nothing(getkey):
    policy = LinUCB(N_FEATURES, newton_steps=5)
    ctx = jax.random.normal(getkey(), (8, N_FEATURES))
    state, _ = policy.update(getkey(), policy.init(3, alpha=1.0), feedback(getkey()))
    before = policy.predict(getkey(), state, ctx)
    with count_compiles() as compiled:
        other = policy.init(3, alpha=2.5)
        other, _ = policy.update(getkey(), other, feedback(getkey()))
        after = policy.predict(getkey(), other, ctx)
    assert compiled == []
    assert not np.allclose(before.logits, after.logits)  # the new alpha is used
    # Negative control: the same counter sees a compile (settings no other test uses, so this holds
    # whatever ran before in the process).
    with count_compiles() as compiled:
        LinUCB(N_FEATURES, newton_steps=17).predict(getkey(), other, ctx)
    assert len(compiled) >= 1, compiled


@pytest.mark.parametrize("alpha", [-0.5, float("nan"), float("inf")])
def test_lin_ucb_bad_alpha_raises(alpha):
    with pytest.raises(ValueError, match="alpha"):
        LinUCB(N_FEATURES).init(3, alpha=alpha)


def test_larger_alpha_picks_the_less_explored_action(getkey):
    """Action 0 has 256 rows at a 60% success rate, action 1 has 4 at 50%: greedy (alpha=0) prefers
    action 0, a wide bound the barely explored action 1."""
    policy = LinUCB(N_FEATURES, newton_steps=5)
    state = policy.init(2)
    rich = feedback(getkey(), n_rows=256, p=0.6)._replace(actions=jnp.zeros((256,), jnp.int32))
    poor = Feedback(
        jnp.zeros((4, N_FEATURES)), jnp.ones((4,), jnp.int32), jnp.array([1, 0, 1, 0]), jnp.ones(4, bool)
    )
    state, _ = policy.update(getkey(), state, rich)
    state, _ = policy.update(getkey(), state, poor)
    ctx = jax.random.normal(getkey(), (500, N_FEATURES)) * 0.3
    share = {}
    for alpha in (0.0, 0.5, 2.0):
        pred = policy.predict(getkey(), state._replace(alpha=jnp.full((2,), alpha)), ctx)
        share[alpha] = float((pred.actions == 1).mean())
    assert share[0.0] <= share[0.5] <= share[2.0], share  # a wider bound only favours action 1 more
    assert share[0.0] < 0.3 and share[2.0] > 0.9, share


# --- EpsilonGreedy --------------------------------------------------------------------------------


def trained(base, getkey, n_actions):
    policy = EpsilonGreedy(base)
    return policy, lambda epsilon: policy.update(
        getkey(), policy.init(n_actions, epsilon=epsilon), feedback(getkey(), 256, n_actions, p=0.5)
    )[0]


@pytest.mark.parametrize(
    "base", [LinearTS(N_FEATURES, newton_steps=5), BetaBernoulli()], ids=["linear_ts", "beta"]
)
def test_epsilon_zero_is_greedy_on_the_base_mean(base, getkey):
    policy, make = trained(base, getkey, 4)
    state = make(0.0)
    ctx = np.random.default_rng(1).normal(size=(300, N_FEATURES))
    pred = policy.predict(getkey(), state, ctx)
    mean = base.predict(getkey(), state.base, ctx).mean_probs
    np.testing.assert_array_equal(pred.actions, np.argmax(np.asarray(mean), axis=1))
    np.testing.assert_array_equal(pred.mean_probs, mean)
    np.testing.assert_array_equal(pred.probs, mean)  # exploiting rows report the means they chose on
    if isinstance(base, LinearTS):
        assert len(set(np.asarray(pred.actions).tolist())) > 1  # the greedy choice varies by row


def test_epsilon_one_is_uniform_over_allowed_actions(getkey):
    policy, make = trained(LinearTS(N_FEATURES, newton_steps=5), getkey, 4)
    state = make(1.0)
    n = 6000
    mask = jnp.array([True, False, True, True])
    pred = policy.predict(
        jax.random.key(7), state, jax.random.normal(getkey(), (n, N_FEATURES)), action_mask=mask
    )
    counts = np.bincount(np.asarray(pred.actions), minlength=4)
    assert counts[1] == 0
    # Each allowed count is Binomial(n, 1/3): within 5 standard errors of n/3.
    se = np.sqrt(n * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts[[0, 2, 3]] - n / 3) < 5 * se), counts


@pytest.mark.parametrize(
    "mask", [None, jnp.array([True, True, False, True])], ids=["all_allowed", "one_masked"]
)
def test_exploration_rate(mask, getkey):
    """A row differs from the greedy choice iff it explores (probability epsilon) and its uniform
    pick among the n allowed actions is not the greedy one (probability (n - 1) / n)."""
    policy, make = trained(LinearTS(N_FEATURES, newton_steps=5), getkey, 4)
    epsilon, n_rows = 0.3, 6000
    state = make(epsilon)
    ctx = jax.random.normal(getkey(), (n_rows, N_FEATURES))
    pred = policy.predict(jax.random.key(3), state, ctx, action_mask=mask)
    allowed = np.ones(4, bool) if mask is None else np.asarray(mask)
    mean = np.where(allowed, np.asarray(pred.mean_probs), -np.inf)
    greedy = np.argmax(mean, axis=1)
    n_allowed = allowed.sum()
    p = epsilon * (n_allowed - 1) / n_allowed
    rate = float((np.asarray(pred.actions) != greedy).mean())
    assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n_rows), (rate, p)
    assert allowed[np.asarray(pred.actions)].all()


@pytest.mark.parametrize("epsilon", [-0.1, 1.5, float("nan"), np.array([0.1, 0.2])])
def test_bad_epsilon_raises(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy.example(N_FEATURES).init(3, epsilon=epsilon)


def test_epsilon_is_data(getkey):
    """A new epsilon compiles nothing, and a traced one (a sweep) skips the host-side check."""
    policy = EpsilonGreedy.example(N_FEATURES)
    ctx = jnp.ones((8, N_FEATURES))
    policy.predict(getkey(), policy.init(3, epsilon=0.1), ctx)
    with count_compiles() as compiled:
        policy.predict(getkey(), policy.init(3, epsilon=0.7), ctx)
    assert compiled == []
    with count_compiles() as compiled:  # negative control: settings no other test uses
        EpsilonGreedy(LinearTS(N_FEATURES, newton_steps=19)).predict(
            getkey(), policy.init(3, epsilon=0.7), ctx
        )
    assert len(compiled) >= 1, compiled
    states = jax.vmap(lambda e: policy.init(3, epsilon=e))(jnp.array([0.0, 0.5]))
    np.testing.assert_array_equal(states.epsilon, [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])


# --- learning -------------------------------------------------------------------------------------


def test_both_learn_better_than_uniform_random():
    env = simulation.LogisticEnv.random(3, 3, key=jax.random.key(0))
    players = {
        "lin_ucb": LinUCB.example(3),
        "epsilon_greedy": EpsilonGreedy.example(3),
        "uniform": Uniform(),
    }
    out = simulation.simulate_policies(players, env, jax.random.key(1), n_rounds=20, batch_size=16)
    regret = {name: float(trace.cumulative_regret[-1]) for name, trace in out.items()}
    assert regret["lin_ucb"] < 0.5 * regret["uniform"], regret
    assert regret["epsilon_greedy"] < 0.5 * regret["uniform"], regret
