"""The object API's fast paths (issue 10) lose no check: each validator's fast path falls back to
the full checks, with the same exception and message, on any bad input; the counter-saturation
warning, now checked against a host-side upper bound of the counters, still fires exactly when a
counter would pass 2**31 - 1, also for a model built, loaded or restored with counts near the top."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import _validation as val
from bandits_jax.cmab import CmabBernoulli, CounterSaturationWarning
from bandits_jax.smab import SmabBernoulli, SmabState
from bandits_jax.strategy import ClassicBandit

TOP = 2**31 - 1
INDEX = {"a": 0, "b": 1, 1: 2}


# ------------------------------------------------------------------------- validators
# (input, exception type, exact message): the messages the full validators gave before the fast
# paths existed.
BAD_IDS = [
    (["a", "c"], ValueError, "actions holds unknown action id(s) ['c']; known: ['a', 'b', 1]"),
    (["a", True], TypeError, "actions must hold action ids (str or int), got True (bool)"),
    (["a", 1.0], TypeError, "actions must hold action ids (str or int), got 1.0 (float)"),
    (["a", ["a"]], TypeError, "actions must hold action ids (str or int), got ['a'] (list)"),
    (["a", None], TypeError, "actions must hold action ids (str or int), got None (NoneType)"),
    (np.array([["a"]]), ValueError, "actions must be 1-D, got shape (1, 1)"),
    ("ab", TypeError, "actions must be a list of action ids, got 'ab'"),
]

_SOFT_HINT = " (a model built with use_soft_rewards=True takes rewards in [0, 1])"
BAD_REWARDS = [
    ([0, 2], ValueError, "rewards must be binary (0 or 1), got np.int64(2)" + _SOFT_HINT),
    ([0, float("nan")], ValueError, "rewards must be binary (0 or 1), got np.float64(nan)" + _SOFT_HINT),
    ([0.5], ValueError, "rewards must be binary (0 or 1), got np.float64(0.5)" + _SOFT_HINT),
    ([True, 1.0, 2], ValueError, "rewards must be binary (0 or 1), got np.float64(2.0)" + _SOFT_HINT),
    (np.array([0, 3]), ValueError, "rewards must be binary (0 or 1), got np.int64(3)" + _SOFT_HINT),
    (
        [[0, 1], [1]],
        ValueError,
        "rewards must be a 1-D list of 0/1 values: setting an array element with a sequence. The "
        "requested array has an inhomogeneous shape after 1 dimensions. The detected shape was "
        "(2,) + inhomogeneous part.",
    ),
    ([0, 1j], TypeError, "rewards must hold real 0/1 numbers, got dtype complex128"),
    (["a", "b"], TypeError, "rewards must hold real 0/1 numbers, got dtype <U1"),
    ([2**70], TypeError, "rewards must hold real 0/1 numbers, got dtype object"),
    (np.array([[0, 1]]), ValueError, "rewards must be 1-D, got shape (1, 2)"),
    ("01", TypeError, "rewards must be a list of 0/1 rewards, got '01'"),
]


def _ctx(value, dtype=np.float64):
    out = np.zeros((2, 3), dtype)
    out[1, 2] = value
    return out


BAD_CONTEXTS = [
    (_ctx(np.nan), ValueError, "context must be finite, found nan at row 1, column 2"),
    (_ctx(np.inf, np.float32), ValueError, "context must be finite, found inf at row 1, column 2"),
    (
        _ctx(1e39),
        ValueError,
        "context must be finite in the model's float32, found 1e+39 at row 1, column 2 "
        "(largest allowed magnitude 3.4e+38)",
    ),
    (
        _ctx(1e300),
        ValueError,
        "context must be finite in the model's float32, found 1e+300 at row 1, column 2 "
        "(largest allowed magnitude 3.4e+38)",
    ),
    (np.ones((2, 2)), ValueError, "context must have 3 columns (n_features), got shape (2, 2)"),
    (np.ones((0, 3)), ValueError, "context must not be empty (at least one row)"),
    (np.ones(3), ValueError, "context must be 2-D (n_rows, 3), got shape (3,)"),
    (np.ones((1, 3), bool), TypeError, "context must hold real numbers, got dtype bool"),
    (np.ones((1, 3), np.complex64), TypeError, "context must hold real numbers, got dtype complex64"),
]


def _raises(exc, message, fn, *args):
    with pytest.raises(exc) as info:
        fn(*args)
    assert type(info.value) is exc and str(info.value) == message


@pytest.mark.parametrize(("actions", "exc", "message"), BAD_IDS)
def test_action_ids_fast_path_falls_back_to_the_full_message(actions, exc, message):
    _raises(exc, message, val.as_action_indices, actions, INDEX)


@pytest.mark.parametrize(("rewards", "exc", "message"), BAD_REWARDS)
def test_rewards_fast_path_falls_back_to_the_full_message(rewards, exc, message):
    _raises(exc, message, val.as_rewards, rewards)


@pytest.mark.parametrize(("context", "exc", "message"), BAD_CONTEXTS)
def test_context_fast_path_falls_back_to_the_full_message(context, exc, message):
    _raises(exc, message, val.as_context, context, 3)


def test_fast_paths_agree_with_the_full_checks_on_good_input():
    # the fast paths take lists and arrays; tuples and generators take the full path
    for actions in (["a", 1, "b"], ("a", 1, "b"), iter(["a", 1, "b"]), [np.str_("a"), np.int64(1), "b"]):
        out = val.as_action_indices(actions, INDEX)
        assert out.dtype == np.int32 and out.tolist() == [0, 2, 1]
    assert val.as_action_indices(np.array(["b", "a"]), INDEX).tolist() == [1, 0]
    assert val.as_action_indices([], INDEX).tolist() == []
    for rewards in (
        [0, 1, 1],
        [False, True, True],
        [0.0, 1.0, 1.0],
        [0, 1.0, True],
        [np.int64(0), 1, np.float32(1)],
        np.array([0, 1, 1], np.uint8),
        (0, 1, 1),
    ):
        out = val.as_rewards(rewards)
        assert out.dtype == np.int32 and out.tolist() == [0, 1, 1]
    assert val.as_rewards([]).tolist() == []
    for context in (np.ones((2, 3)), np.ones((2, 3), np.float32), np.ones((2, 3), np.int64), [[1, 1, 1]] * 2):
        out = val.as_context(context, 3)
        assert out.dtype == np.float32 and out.tolist() == [[1.0] * 3] * 2
    big = _ctx(3.0e38)  # finite in float32: accepted by both paths
    assert np.isfinite(val.as_context(big, 3)).all()
    # finite entries whose float32 sum overflows (the fast path's test) are accepted, silently
    huge = np.full((2, 3), 3.0e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (val.as_context(huge, 3) == huge).all()
        assert (val.as_context(-huge, 3) == -huge).all()


def test_the_object_api_keeps_its_errors_and_changes_nothing():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=3, update_kwargs={"num_steps": 3}, random_seed=0)
    key = jax.random.key_data(mab.key).tolist()
    ctx = np.zeros((2, 3))
    _raises(
        ValueError,
        "actions holds unknown action id(s) ['c']; known: ['a', 'b']",
        mab.update,
        ["a", "c"],
        [0, 1],
        ctx,
    )
    _raises(
        ValueError,
        "rewards must be binary (0 or 1), got np.int64(2)" + _SOFT_HINT,
        mab.update,
        ["a", "b"],
        [0, 2],
        ctx,
    )
    _raises(
        ValueError,
        "context must be finite, found nan at row 1, column 2",
        mab.update,
        ["a", "b"],
        [0, 1],
        _ctx(np.nan),
    )
    _raises(
        ValueError,
        "lengths must match: actions=2, rewards=3, context=2",
        mab.update,
        ["a", "b"],
        [0, 1, 1],
        ctx,
    )
    assert jax.random.key_data(mab.key).tolist() == key
    assert mab.actions["a"].n_successes == 1 and mab.actions["a"].n_failures == 1


# ------------------------------------------------------------------------- counter saturation
def _no_saturation_warning():
    cm = warnings.catch_warnings()
    cm.__enter__()
    warnings.simplefilter("error", CounterSaturationWarning)
    return cm


def cmab_near_top(successes, failures):
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=3, update_kwargs={"num_steps": 3}, random_seed=0)
    stats = mab.state.stats._replace(
        n_successes=jnp.array(successes, jnp.int32), n_failures=jnp.array(failures, jnp.int32)
    )
    state = mab.state._replace(stats=stats)
    return CmabBernoulli(
        action_ids=mab.action_ids, config=mab.config, state=state, strategy=mab.strategy, key=mab.key
    )


def _update(mab, actions, rewards):
    mab.update(actions=actions, rewards=rewards, context=np.ones((len(actions), 3)))


def _check_warns_exactly_at_the_top(mab):
    """``a``'s successes sit at TOP - 3 and ``b``'s failures at TOP - 2."""
    cm = _no_saturation_warning()
    try:
        _update(mab, ["a", "a", "b"], [1, 1, 0])  # a: TOP - 1, b failures: TOP - 1
        _update(mab, ["a", "b"], [1, 0])  # exactly TOP each: held, not passed
    finally:
        cm.__exit__(None, None, None)
    assert mab.actions["a"].n_successes == TOP and mab.actions["b"].n_failures == TOP
    with pytest.warns(CounterSaturationWarning, match=r"\['a'\]"):
        _update(mab, ["a"], [1])
    with pytest.warns(CounterSaturationWarning, match=r"\['b'\]"):
        _update(mab, ["b"], [0])
    with pytest.warns(CounterSaturationWarning, match=r"\['a', 'b'\]"):
        _update(mab, ["a", "b"], [1, 0])
    assert mab.actions["a"].n_successes == TOP and mab.actions["b"].n_failures == TOP


def test_saturation_warns_exactly_at_the_top_for_a_model_built_by_init():
    _check_warns_exactly_at_the_top(cmab_near_top([TOP - 3, 1], [1, TOP - 2]))


def test_saturation_warns_exactly_at_the_top_after_save_and_load(tmp_path):
    near = cmab_near_top([TOP - 3, 1], [1, TOP - 2])
    near.save(tmp_path / "m.npz")
    _check_warns_exactly_at_the_top(CmabBernoulli.load(tmp_path / "m.npz"))
    _check_warns_exactly_at_the_top(CmabBernoulli.from_state(near.get_state()))


def test_saturation_bound_follows_a_state_put_in_place_another_way():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=3, update_kwargs={"num_steps": 3}, random_seed=0)
    _update(mab, ["a", "b"], [1, 0])  # the bound now tracks small counts
    near = cmab_near_top([TOP - 3, 1], [1, TOP - 2])
    with mab._lock:  # a state swapped in without the update path (as a transfer could)
        mab._state = near._state
    _check_warns_exactly_at_the_top(mab)


def test_saturation_bound_is_exact_without_saturation():
    mab = CmabBernoulli.cold_start(
        ["a", "b", "c"], n_features=3, update_kwargs={"num_steps": 3}, random_seed=0
    )
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.choice(["a", "b", "c"], size=17).tolist()
        _update(mab, actions, rng.integers(0, 2, 17).tolist())
    state, hi_s, hi_f = mab._count_bound
    assert state is mab._state
    assert hi_s.tolist() == [mab.actions[a].n_successes for a in "abc"]
    assert hi_f.tolist() == [mab.actions[a].n_failures for a in "abc"]


def test_smab_saturation_warns_exactly_at_the_top():
    state = SmabState(jnp.array([TOP - 2, 3], jnp.int32), jnp.array([3, 3], jnp.int32))
    mab = SmabBernoulli(action_ids=["x", "y"], state=state, strategy=ClassicBandit(), key=jax.random.key(0))
    cm = _no_saturation_warning()
    try:
        mab.update(actions=["x", "x"], rewards=[1, 1])
    finally:
        cm.__exit__(None, None, None)
    with pytest.warns(CounterSaturationWarning, match=r"\['x'\]"):
        mab.update(actions=["x", "y"], rewards=[1, 1])
    assert mab.actions["x"].n_successes == TOP and mab.actions["y"].n_successes == 4
