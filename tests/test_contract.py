"""The policy contract, tested once for every registered policy (a new policy gets these for free):
shapes, vmap over actions == a loop of one-action updates, jit == eager, no recompile within a
bucket (with a negative control), masked rows inert, an action without rows unchanged bit for bit,
the state an exact array pytree (save/load), and the action mask of predict.
Run under ``JAX_ENABLE_X64=1`` by CI as well."""

import dataclasses
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import policies
from bandits_jax.likelihoods import Gaussian
from bandits_jax.policies import Feedback, GroupedFeedback
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit
from tests.conftest import count_compiles

N_FEATURES, N_ACTIONS, N_ROWS = 3, 3, 32
NAMES = sorted(policies.REGISTRY)


# Options that change a registered policy's state or update, covered like a policy of their own.
VARIANTS = {
    "bnn_ts[replay]": lambda n: dataclasses.replace(policies.BnnTS.example(n), replay_capacity=16),
    # Gaussian rewards: the conjugate posteriors (linear TS, NeuralLinear's head), point fits on
    # standardised targets (the ensemble) and the BNN's noise latent. LinUCB's and epsilon-greedy's
    # Gaussian updates are linear TS's (their state wraps its posterior); their Gaussian scores have
    # their own tests in tests/test_gaussian_linear.py (the bound against NumPy, the object API).
    **{
        f"{name}[gaussian]": (
            lambda n, name=name: dataclasses.replace(
                policies.REGISTRY[name].example(n), likelihood=Gaussian()
            )
        )
        for name in ("bnn_ts", "ensemble", "linear_ts", "neural_linear")
    },
}


def gaussian(policy) -> bool:
    return isinstance(policy.likelihood, Gaussian)


@pytest.fixture(params=NAMES + sorted(VARIANTS))
def policy(request):
    if request.param in VARIANTS:
        return VARIANTS[request.param](N_FEATURES)
    return policies.REGISTRY[request.param].example(N_FEATURES)


def feedback(key, n_rows=N_ROWS, n_actions=N_ACTIONS, n_real=None):
    kx, ka, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n_rows, N_FEATURES))
    a = jax.random.randint(ka, (n_rows,), 0, n_actions)
    y = jax.random.bernoulli(ky, 0.6, (n_rows,)).astype(jnp.int32)
    mask = jnp.arange(n_rows) < (n_rows if n_real is None else n_real)
    return Feedback(x, a, y, mask)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_trees_equal(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_registry_lists_every_policy_once():
    assert NAMES == [
        "beta_bernoulli",
        "bnn_ts",
        "ensemble",
        "epsilon_greedy",
        "forgetting",
        "lin_ucb",
        "linear_ts",
        "neural_linear",
        "uniform",
    ]
    for cls in policies.REGISTRY.values():
        assert isinstance(cls.example(N_FEATURES), policies.Policy)


def test_init_stacks_every_leaf_on_the_action_axis(policy):
    state = policy.init(N_ACTIONS)
    assert all(x.shape[0] == N_ACTIONS for x in jax.tree.leaves(state))
    assert hash(policy) == hash(dataclasses.replace(policy))  # settings are static and hashable


def test_predict_shapes_and_choice(policy, getkey):
    state = policy.init(N_ACTIONS)
    pred = policy.predict(getkey(), state, jnp.ones((5, N_FEATURES)))
    assert pred.actions.shape == (5,)
    for field in (pred.probs, pred.logits, pred.mean_probs):
        assert field.shape == (5, N_ACTIONS)
    assert bool(jnp.isfinite(pred.probs).all() & jnp.isfinite(pred.mean_probs).all())
    assert not bool(jnp.isnan(pred.logits).any())  # a score of exactly 0 or 1 is a logit of -inf or inf
    np.testing.assert_array_equal(pred.actions, jnp.argmax(pred.probs, axis=1))
    if not gaussian(policy):  # a Gaussian's "probs" are mean rewards, any real number
        assert bool(((pred.probs >= 0) & (pred.probs <= 1)).all())


def test_predict_never_picks_a_masked_action(policy, getkey):
    state = policy.init(N_ACTIONS)
    mask = jnp.array([False, True, False])
    for strategy in (ClassicBandit(), BestActionIdentificationBandit(exploit_p=0.3)):
        pred = policy.predict(getkey(), state, jnp.ones((200, N_FEATURES)), strategy, mask)
        assert set(np.asarray(pred.actions).tolist()) == {1}
    # a new mask is data: nothing compiles
    with count_compiles() as compiled:
        policy.predict(
            getkey(), state, jnp.ones((200, N_FEATURES)), ClassicBandit(), jnp.array([True, True, False])
        )
    assert compiled == []


def test_update_counts_rows_per_action(policy, getkey):
    fb = feedback(getkey())
    state, info = policy.update(getkey(), policy.init(N_ACTIONS), fb)
    counts = np.bincount(np.asarray(fb.actions), minlength=N_ACTIONS)
    np.testing.assert_array_equal(info.n_rows, counts)
    assert bool(info.ok.all()) and info.losses.shape[0] == N_ACTIONS


def shares(policy) -> bool:
    """Whether the policy learns something shared by all actions (NeuralLinear's body), so that one
    action's rows may change another action's state by design."""
    return getattr(policy, "shares_across_actions", False)


def test_batched_update_equals_a_loop_of_one_action_updates(policy, getkey):
    """The update of all actions at once, restricted to action a, equals an update in which only
    action a has rows: no action's result depends on another action's rows (vmap == loop)."""
    if shares(policy):
        pytest.skip("the policy shares a representation across actions by design")
    state = policy.init(N_ACTIONS)
    fb = feedback(getkey())
    key = getkey()
    together, info = policy.update(key, state, fb)
    for a in range(N_ACTIONS):
        alone, info_a = policy.update(key, state, fb._replace(mask=fb.mask & (fb.actions == a)))
        pick = lambda tree, a=a: jax.tree.map(lambda x: x[a], tree)  # noqa: E731
        assert_trees_close(pick(together), pick(alone), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(info.losses[a], info_a.losses[a], rtol=1e-5, atol=1e-5)


def test_jit_equals_eager(policy, getkey):
    state = policy.init(N_ACTIONS)
    fb, key, ctx = feedback(getkey()), getkey(), jax.random.normal(getkey(), (7, N_FEATURES))
    jitted = policy.update(key, state, fb)
    pred = policy.predict(key, state, ctx)
    with jax.disable_jit():
        eager = policy.update(key, state, fb)
        pred_eager = policy.predict(key, state, ctx)
    # float32: XLA fuses (and so rounds) differently under jit; iterated fits (20 SGD or 5 Newton
    # steps) carry rounding-level differences of ~1e-7 up to ~1e-4, far below any learned change.
    assert_trees_close(jitted, eager, rtol=1e-3, atol=3e-4)
    assert_trees_close(pred, pred_eager, rtol=1e-4, atol=1e-5)


def test_second_update_and_predict_in_a_bucket_compile_nothing(policy, getkey):
    state = policy.init(N_ACTIONS)
    state, _ = policy.update(getkey(), state, feedback(getkey()))
    policy.predict(getkey(), state, jnp.ones((8, N_FEATURES)))
    with count_compiles() as compiled:
        state, _ = policy.update(getkey(), state, feedback(getkey()))
        policy.predict(getkey(), state, jnp.zeros((8, N_FEATURES)))
    assert compiled == []
    # Negative control: the same counter sees the compilation of a new batch size.
    with count_compiles() as compiled:
        policy.update(getkey(), state, feedback(getkey(), n_rows=2 * N_ROWS))
        policy.predict(getkey(), state, jnp.zeros((9, N_FEATURES)))
    assert len(compiled) >= 2, compiled


def test_masked_rows_change_nothing(policy, getkey):
    """Two batches that agree on their real rows and differ in every masked one give the same
    state bit for bit."""
    state = policy.init(N_ACTIONS)
    real = feedback(getkey(), n_real=20)
    other = feedback(getkey())
    garbage = Feedback(
        jnp.where(real.mask[:, None], real.context, other.context * 1e3),
        jnp.where(real.mask, real.actions, other.actions),
        jnp.where(real.mask, real.rewards, 1 - real.rewards),
        real.mask,
    )
    key = getkey()
    assert_trees_equal(policy.update(key, state, real), policy.update(key, state, garbage))


def test_an_action_without_rows_keeps_its_state_bit_for_bit(policy, getkey):
    state, _ = policy.update(getkey(), policy.init(N_ACTIONS), feedback(getkey()))
    fb = feedback(getkey())
    fb = fb._replace(actions=jnp.where(fb.actions == 2, 0, fb.actions))  # action 2 gets no row
    new, info = policy.update(getkey(), state, fb)
    assert int(info.n_rows[2]) == 0
    if shares(policy):  # its data and counters stay; what it learned moves with the shared part
        assert_trees_equal(
            jax.tree.map(lambda x: x[2], (state.buffer, state.stats)),
            jax.tree.map(lambda x: x[2], (new.buffer, new.stats)),
        )
    else:
        assert_trees_equal(jax.tree.map(lambda x: x[2], state), jax.tree.map(lambda x: x[2], new))


def test_a_batch_without_rows_changes_nothing(policy, getkey):
    state, _ = policy.update(getkey(), policy.init(N_ACTIONS), feedback(getkey()))
    new, info = policy.update(getkey(), state, feedback(getkey(), n_real=0))
    np.testing.assert_array_equal(info.n_rows, 0)
    assert_trees_equal(state, new)


def test_update_grouped_is_update_after_routing(policy, getkey):
    state, fb, key = policy.init(N_ACTIONS), feedback(getkey()), getkey()
    rows, valid = policies.base.route(N_ACTIONS, fb.actions, fb.mask, N_ROWS)
    grouped = GroupedFeedback(fb.context[rows], fb.rewards[rows], valid)
    assert_trees_equal(policy.update(key, state, fb), policy.update_grouped(key, state, grouped))


def test_state_is_an_exact_array_pytree(policy, getkey):
    """Every leaf of a state is an array: it saves and loads exactly (here through np.savez) and the
    rebuilt state predicts the same draws."""
    state, _ = policy.update(getkey(), policy.init(N_ACTIONS), feedback(getkey()))
    flat, treedef = jax.tree.flatten(state)
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(x) for x in flat])
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as archive:
        loaded = jax.tree.unflatten(treedef, [jnp.asarray(archive[f"arr_{i}"]) for i in range(len(flat))])
    assert_trees_equal(state, loaded)
    key, ctx = getkey(), jnp.ones((4, N_FEATURES))
    assert_trees_equal(policy.predict(key, state, ctx), policy.predict(key, loaded, ctx))


def test_vmap_over_states_equals_a_loop(policy, getkey):
    """A sweep is a vmap over runs: vmapped updates equal one-by-one updates."""
    keys = jax.random.split(getkey(), 2)
    states = jax.vmap(lambda k: policy.init(N_ACTIONS))(keys)
    fb = feedback(getkey())
    vm, _ = jax.vmap(lambda k, s: policy.update(k, s, fb))(keys, states)
    for i in range(2):
        one, _ = policy.update(keys[i], policy.init(N_ACTIONS), fb)
        # float32: vmapped and single reductions round differently (see test_jit_equals_eager)
        assert_trees_close(jax.tree.map(lambda x, i=i: x[i], vm), one, rtol=1e-3, atol=3e-4)


def test_works_in_the_default_float_width(policy):
    state = policy.init(N_ACTIONS)
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert all(x.dtype == jnp.result_type(float) for x in floats)  # float64 under JAX_ENABLE_X64
