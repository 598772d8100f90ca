"""Defects an adversarial pass found (issue 9), each pinned by a test that failed before the fix:
threads, counters, huge values, recompiles per action count, ids vs indices, seeds and odd ids."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import core, smab
from bandits_jax.cmab import CmabBernoulli, CounterSaturationWarning
from bandits_jax.smab import SmabBernoulli, SmabState
from bandits_jax.strategy import BestActionIdentificationBandit
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import assert_unchanged, count_compiles, snapshot

TOP = 2**31 - 1


def cmab(**kw):
    kw.setdefault("action_ids", ["a", "b"])
    kw.setdefault("n_features", 3)
    kw.setdefault("update_kwargs", {"num_steps": 5})
    kw.setdefault("random_seed", 0)
    return CmabBernoulli.cold_start(**kw)


def run_threads(n_threads, work):
    """``work(i)`` in ``n_threads`` real threads released together; re-raises the first error."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def body(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------- threads
def test_concurrent_cmab_updates_are_all_counted():
    mab = cmab()
    rng = np.random.default_rng(0)
    ctx = rng.normal(size=(16, 3))
    acts = ["a", "b"] * 8
    mab.update(actions=acts, rewards=[1] * 16, context=ctx)  # compile before the race
    n_threads, calls = 4, 8

    def work(i):
        for _ in range(calls):
            mab.update(actions=acts, rewards=[1, 0] * 8, context=ctx)

    run_threads(n_threads, work)
    rows = n_threads * calls * 8  # per action
    assert mab.actions["a"].n_successes == 1 + 8 + rows
    assert mab.actions["b"].n_failures == 1 + rows


def test_concurrent_smab_updates_are_all_counted():
    mab = SmabBernoulli.cold_start(["x", "y", "z"], random_seed=0)
    mab.update(actions=["x"], rewards=[1])
    n_threads, calls = 4, 100

    def work(i):
        for _ in range(calls):
            mab.update(actions=["x", "y", "z"], rewards=[1, 0, 1])

    run_threads(n_threads, work)
    total = n_threads * calls
    assert mab.actions["x"].n_successes == 2 + total
    assert mab.actions["y"].n_failures == 1 + total
    assert mab.actions["z"].n_successes == 1 + total


@pytest.mark.parametrize("kind", ["cmab", "smab"])
def test_concurrent_predicts_never_share_a_draw(kind):
    if kind == "cmab":
        mab = cmab(action_ids=["a", "b", "c"])
        ctx = np.random.default_rng(1).normal(size=(4, 3))

        def draw():
            return mab.predict_arrays(ctx).probs
    else:
        mab = SmabBernoulli.cold_start(["a", "b", "c"], random_seed=0)

        def draw():
            return mab.predict_arrays(4)[1]

    draw()
    results = []
    lock = threading.Lock()

    def work(i):
        for _ in range(30):
            p = draw()
            with lock:
                results.append(p.tobytes())

    run_threads(8, work)
    assert len(results) == 240
    assert len(set(results)) == len(results), "two predicts returned the same Thompson draws"


def test_a_model_copies_and_pickles_with_its_lock():
    import copy
    import pickle

    mab = cmab()
    for twin in (copy.deepcopy(mab), pickle.loads(pickle.dumps(mab))):
        twin.update(actions=["a"], rewards=[1], context=np.ones((1, 3)))
        assert twin.actions["a"].n_successes == 2 and mab.actions["a"].n_successes == 1


# ------------------------------------------------------------------------- counters
def test_smab_counters_saturate_instead_of_wrapping():
    big = jnp.array([TOP - 5, 3], jnp.int32)
    mab = SmabBernoulli(
        action_ids=["x", "y"], state=SmabState(big, big), strategy=mab_strategy(), key=jax.random.key(0)
    )
    with pytest.warns(CounterSaturationWarning, match="'x'"):
        mab.update(actions=["x"] * 10, rewards=[1] * 10)
    assert mab.actions["x"].n_successes == TOP
    assert mab.actions["y"].n_successes == 3
    actions, probs = mab.predict_arrays(64)
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    assert set(actions.tolist()) <= {"x", "y"}


def mab_strategy():
    from bandits_jax.strategy import ClassicBandit

    return ClassicBandit()


def test_functional_counters_saturate():
    state = SmabState(jnp.array([TOP - 1, TOP], jnp.int32), jnp.array([1, TOP - 2], jnp.int32))
    out = smab.update(state, jnp.array([0, 0, 1, 1, 1]), jnp.array([1, 1, 0, 0, 0]))
    assert out.n_successes.tolist() == [TOP, TOP]
    assert out.n_failures.tolist() == [1, TOP]
    assert core.saturating_add(jnp.array([5], jnp.int32), jnp.array([7])).tolist() == [12]


def test_cmab_counters_saturate_instead_of_wrapping():
    mab = cmab()
    state = mab.state._replace(stats=mab.state.stats._replace(n_successes=jnp.array([TOP - 5, 1], jnp.int32)))
    mab = CmabBernoulli(
        action_ids=mab.action_ids, config=mab.config, state=state, strategy=mab.strategy, key=mab._key
    )
    with pytest.warns(CounterSaturationWarning, match="'a'"):
        mab.update(actions=["a"] * 10, rewards=[1] * 10, context=np.ones((10, 3)))
    assert mab.actions["a"].n_successes == TOP
    assert mab.actions["a"].n_failures == 1


# ------------------------------------------------------------------------- huge values
@pytest.mark.parametrize("value", [1e20, 1e30, 3.5e38, 1e300])
def test_huge_contexts_are_refused_and_change_nothing(value):
    mab = cmab()
    ctx = np.ones((4, 3))
    ctx[2, 1] = value
    before = snapshot(mab)
    with pytest.raises(ValueError, match="context"):
        mab.predict(ctx)
    with pytest.raises(ValueError, match="context"):
        mab.predict_arrays(ctx)
    with pytest.raises(ValueError, match="context"):
        mab.update(actions=["a", "b", "a", "b"], rewards=[1, 0, 1, 0], context=ctx)
    if value > 3.4028235e38:  # the mean alone overflows only beyond float32's range
        with pytest.raises(ValueError, match="context"):
            mab.posterior_mean_logits(ctx)
    else:
        assert np.isfinite(mab.posterior_mean_logits(ctx)).all()
    assert_unchanged(before, mab)
    # the same model still works on ordinary values
    assert np.isfinite(mab.predict_arrays(np.ones((4, 3))).probs).all()


def test_large_but_representable_contexts_still_work():
    mab = cmab(dist_params_init={"sigma": 1.0})
    ctx = np.full((2, 3), 1e5)
    assert np.isfinite(mab.predict_arrays(ctx).logits).all()
    mab.update(actions=["a", "b"], rewards=[1, 0], context=ctx)


# ------------------------------------------------------------------------- action buckets
def test_a_new_action_count_in_a_seen_bucket_compiles_nothing():
    rng = np.random.default_rng(0)
    ctx = rng.normal(size=(16, 3))

    def use(n_actions):
        ids = [f"a{i}" for i in range(n_actions)]
        mab = cmab(action_ids=ids)
        out = mab.predict_arrays(ctx)
        mab.update(actions=out.actions, rewards=[1, 0] * 8, context=ctx)
        assert mab.state.n_actions == n_actions and mab.actions[ids[-1]].n_failures >= 1
        s = SmabBernoulli.cold_start(ids, random_seed=0)
        s.update(actions=s.predict_arrays(16)[0], rewards=[1] * 16)
        return mab

    use(5)  # bucket 6
    with count_compiles() as compiled:
        mab = use(6)
    assert compiled == []
    # the padded sixth slot of a 5-action model is never chosen
    five = cmab(action_ids=[f"a{i}" for i in range(5)])
    chosen = five.predict_arrays(rng.normal(size=(2000, 3))).action_indices
    assert set(chosen.tolist()) == set(range(5))
    assert mab.state.n_successes.shape == (6,)
    with count_compiles() as compiled:  # negative control: a new bucket (8) compiles
        use(7)
    assert any("update_step" in name for name in compiled), compiled


def test_padded_actions_survive_save_and_transfer(tmp_path):
    mab = cmab(action_ids=[f"a{i}" for i in range(5)])
    ctx = np.random.default_rng(0).normal(size=(10, 3))
    mab.update(actions=[f"a{i % 5}" for i in range(10)], rewards=[1] * 10, context=ctx)
    mab.save(tmp_path / "m.npz")
    loaded = CmabBernoulli.load(tmp_path / "m.npz")
    for a, b in zip(jax.tree.leaves(mab.state), jax.tree.leaves(loaded.state)):
        np.testing.assert_array_equal(a, b)
    template = cmab(action_ids=[f"a{i}" for i in range(7)], random_seed=1)
    grown = edit_model_on_the_fly(mab, template)
    assert grown.action_ids == template.action_ids
    assert grown.actions["a4"].n_successes == 3 and grown.actions["a6"].n_successes == 1
    np.testing.assert_array_equal(grown.posterior_mean_logits(ctx)[:, :5], mab.posterior_mean_logits(ctx))


# ------------------------------------------------------------------------- ids, not indices
def test_predict_arrays_returns_ids_that_update_takes_back():
    mab = cmab(action_ids=[1, 0])  # integer ids overlapping the indices 0..K-1
    ctx = np.random.default_rng(0).normal(size=(50, 3))
    out = mab.predict_arrays(ctx)
    assert out.actions.tolist() == [mab.action_ids[i] for i in out.action_indices.tolist()]
    np.testing.assert_array_equal(out.action_indices, out.probs.argmax(axis=1))
    n_id0 = int(np.sum(out.actions == 0))
    mab.update(actions=out.actions, rewards=[1] * 50, context=ctx)
    assert mab.actions[0].n_successes == 1 + n_id0
    assert mab.actions[1].n_successes == 1 + 50 - n_id0
    s = SmabBernoulli.cold_start(["b", "a"], random_seed=0)
    ids, probs = s.predict_arrays(20)
    assert set(ids.tolist()) <= {"a", "b"}
    np.testing.assert_array_equal(ids, np.array(s.action_ids)[probs.argmax(axis=1)])


# ------------------------------------------------------------------------- smaller items
@pytest.mark.parametrize("seed", [2**64, -1, 2**70])
def test_out_of_range_seed_is_a_value_error(seed):
    with pytest.raises(ValueError, match="random_seed"):
        cmab(random_seed=seed)
    with pytest.raises(ValueError, match="random_seed"):
        SmabBernoulli.cold_start(["a"], random_seed=seed)


def test_seeds_above_32_bits_are_distinct_and_small_seeds_unchanged():
    def first_draw(seed):
        return cmab(random_seed=seed).predict_arrays(np.ones((1, 3))).probs

    assert not np.array_equal(first_draw(0), first_draw(2**32))
    assert not np.array_equal(first_draw(5), first_draw(2**32 + 5))
    np.testing.assert_array_equal(first_draw(2**64 - 1), first_draw(2**64 - 1))
    mab = cmab(random_seed=7)
    np.testing.assert_array_equal(jax.random.key_data(mab._key), jax.random.key_data(jax.random.key(7)))


def test_complex_rewards_are_refused():
    mab = cmab()
    before = snapshot(mab)
    with pytest.raises(TypeError, match="rewards"):
        mab.update(actions=["a", "b"], rewards=[1 + 0j, 0], context=np.ones((2, 3)))
    with pytest.raises(TypeError, match="rewards"):
        mab.update(actions=["a", "b"], rewards=np.array([1, 0], complex), context=np.ones((2, 3)))
    assert_unchanged(before, mab)
    s = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    with pytest.raises(TypeError, match="rewards"):
        s.update(actions=["a"], rewards=[1 + 0j])


@pytest.mark.parametrize("ids", [[1.5, "b"], [1.0, 2.0], [True, False], [np.float64(1), 2]])
def test_float_and_bool_action_ids_are_refused(ids):
    with pytest.raises(TypeError, match="action_ids"):
        cmab(action_ids=ids)
    with pytest.raises(TypeError, match="action_ids"):
        SmabBernoulli.cold_start(ids)


def test_float_or_bool_actions_do_not_alias_integer_ids():
    mab = cmab(action_ids=[0, 1])
    before = snapshot(mab)
    for actions in ([1.0, 0], [True, 0], np.array([1.0, 0.0])):
        with pytest.raises(TypeError, match="actions"):
            mab.update(actions=actions, rewards=[1, 0], context=np.ones((2, 3)))
    assert_unchanged(before, mab)
    mab.update(actions=np.array([1, 0]), rewards=[1, 0], context=np.ones((2, 3)))  # NumPy ints are ids
    assert mab.actions[1].n_successes == 2


def test_numpy_scalar_ids_become_plain_ids():
    mab = cmab(action_ids=[np.int64(3), np.int64(4)])
    assert mab.action_ids == (3, 4) and all(type(a) is int for a in mab.action_ids)


def test_constructor_refuses_duplicated_ids_so_no_such_template_exists():
    mab = cmab()
    with pytest.raises(ValueError, match="unique"):
        CmabBernoulli(
            action_ids=["a", "a"], config=mab.config, state=mab.state, strategy=mab.strategy, key=mab._key
        )
    s = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    with pytest.raises(ValueError, match="unique"):
        SmabBernoulli(action_ids=("a", "a"), state=s.state, strategy=s.strategy, key=s._key)
    with pytest.raises(ValueError, match="state"):
        CmabBernoulli(
            action_ids=["a", "b", "c"],
            config=mab.config,
            state=mab.state,
            strategy=mab.strategy,
            key=mab._key,
        )
    # the templates that do exist still merge
    assert edit_model_on_the_fly(mab, cmab(action_ids=["b", "c"])).action_ids == ("b", "c")


# ------------------------------------------------------------------------- top-two Thompson
@pytest.mark.parametrize("exploit_p", [0.2, 0.7])
def test_best_action_identification_picks_the_top_action_exploit_p_of_the_time(exploit_p):
    """Each row's pick is the best sampled action with probability exploit_p, else the second best,
    independently per row: the count of top picks is Binomial(n, exploit_p). Bound: 5 standard
    errors (two-sided false-failure rate below 1e-6 with a fixed key anyway)."""
    n, k = 20_000, 4
    probs = jax.random.uniform(jax.random.key(3), (n, k))
    picks = np.asarray(BestActionIdentificationBandit(exploit_p=exploit_p)(probs, jax.random.key(4)))
    order = np.argsort(-np.asarray(probs), axis=1)
    top, second = picks == order[:, 0], picks == order[:, 1]
    assert np.all(top | second)
    se = np.sqrt(exploit_p * (1 - exploit_p) / n)
    assert abs(top.mean() - exploit_p) < 5 * se
    # negative control: the same check rejects a strategy with another exploit_p
    other = np.asarray(BestActionIdentificationBandit(exploit_p=exploit_p + 0.1)(probs, jax.random.key(4)))
    assert abs((other == order[:, 0]).mean() - exploit_p) > 5 * se


def test_best_action_identification_through_the_object_api():
    mab = cmab(action_ids=["a", "b", "c"], strategy=BestActionIdentificationBandit(exploit_p=0.8))
    out = mab.predict_arrays(np.random.default_rng(0).normal(size=(5000, 3)))
    best = out.probs.argmax(axis=1)
    rate = np.mean(out.action_indices == best)
    assert abs(rate - 0.8) < 5 * np.sqrt(0.8 * 0.2 / 5000)


def test_best_action_identification_never_picks_a_masked_action():
    probs = jnp.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.4]])
    mask = jnp.array([False, True, False])
    out = core.prediction_from_logits(
        jnp.log(probs / (1 - probs)), jax.random.key(0), BestActionIdentificationBandit(0.0), mask
    )
    assert out.actions.tolist() == [1, 1]
