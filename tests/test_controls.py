"""Exploration and action-set controls of the object API (issue 12 item 1): PyBandits' ``epsilon``
and ``default_action``, ``forbidden_actions`` per predict call and a per-row ``top_k`` ranking, for
CMAB and sMAB alike (one implementation in the object-API base)."""

import json
import math

import jax
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import count_compiles

N = 10_000


def _within(fraction: float, p: float, n: int = N, z: float = 5.0) -> None:
    """``fraction`` of ``n`` Bernoulli(p) draws lies within ``z`` standard errors of ``p``."""
    assert abs(fraction - p) <= z * math.sqrt(p * (1 - p) / n), (fraction, p)


def _smab_a_ahead(**kwargs) -> SmabBernoulli:
    """'a' at Beta(3, 1) (mean 0.75), 'b' at Beta(1, 1) (mean 0.5): Thompson sampling picks 'b' in
    about a quarter of the draws (P(Beta(1,1) > Beta(3,1)) = 1/4), the posterior mean never."""
    mab = SmabBernoulli.cold_start(["a", "b"], random_seed=0, **kwargs)
    mab.update(["a", "a"], [1, 1])
    return mab


def test_plain_thompson_sampling_is_the_reference_of_the_epsilon_tests():
    # negative control for the next test: without epsilon the draw, not the mean, decides
    chosen, _ = _smab_a_ahead().predict_arrays(N)
    _within(float(np.mean(chosen == "b")), 0.25)


def test_epsilon_explores_at_its_rate_and_exploits_the_posterior_mean():
    # exploring rows pick uniformly from both actions, exploiting rows the mean's best ('a'):
    # P(b) = epsilon / 2 (PyBandits' Thompson draw on exploiting rows would give 0.1 + 0.8 / 4)
    chosen, _ = _smab_a_ahead(epsilon=0.2).predict_arrays(N)
    _within(float(np.mean(chosen == "b")), 0.1)


def test_default_action_is_what_exploring_rows_pick():
    chosen, _ = _smab_a_ahead(epsilon=0.2, default_action="b").predict_arrays(N)
    _within(float(np.mean(chosen == "b")), 0.2)
    assert set(chosen.tolist()) == {"a", "b"}


def test_epsilon_one_explores_every_row_uniformly_over_the_allowed_actions():
    mab = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=1, epsilon=1.0)
    x = np.random.default_rng(0).normal(size=(N, 2))
    chosen = mab.predict_arrays(x, forbidden_actions={"c"}).actions
    assert "c" not in set(chosen.tolist())
    _within(float(np.mean(chosen == "a")), 0.5)


def test_forbidden_actions_are_never_chosen_and_cost_no_compile():
    mab = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=2)
    rng = np.random.default_rng(1)
    mab.update(["a"] * 50, [1] * 50, rng.normal(size=(50, 2)))  # 'a' is the likely pick
    x = rng.normal(size=(N, 2))
    out = mab.predict_arrays(x, forbidden_actions={"a"})
    assert "a" not in set(out.actions.tolist()) and set(out.actions.tolist()) == {"b", "c"}
    assert out.probs.shape == (N, 3)  # every action's draw is still reported
    assert np.mean(mab.predict_arrays(x).actions == "a") > 0.5  # control: allowed, it is chosen
    with count_compiles() as compiled:
        mab.predict_arrays(x, forbidden_actions={"b"})
        mab.predict_arrays(x, forbidden_actions=["c", "a"])
    assert compiled == []


def test_a_new_epsilon_compiles_nothing():
    x = np.ones((4, 2))
    CmabBernoulli.cold_start(["a", "b"], n_features=2, epsilon=0.1, random_seed=0).predict(x)
    with count_compiles() as compiled:
        CmabBernoulli.cold_start(["a", "b"], n_features=2, epsilon=0.7, random_seed=0).predict(x)
    assert not [name for name in compiled if "predict_step" in name]


def test_without_options_the_draws_are_the_plain_steps():
    x = np.random.default_rng(2).normal(size=(16, 2))
    a = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=3)
    b = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=3)
    out_a = a.predict_arrays(x)
    out_b = b.predict_arrays(x, forbidden_actions=set())  # an empty set: same mask, same draws
    np.testing.assert_array_equal(out_a.probs, out_b.probs)
    np.testing.assert_array_equal(out_a.actions, out_b.actions)


@pytest.mark.parametrize("epsilon", [None, 0.3])
def test_top_k_ranks_the_allowed_actions_best_first(epsilon):
    ids = ["a", "b", "c", "d", "e"]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 3))
    mab = CmabBernoulli.cold_start(ids, n_features=3, random_seed=4, epsilon=epsilon)
    mab.update(list(rng.choice(ids, 100)), list(rng.integers(0, 2, 100)), rng.normal(size=(100, 3)))
    twin = CmabBernoulli.from_state(mab.get_state())  # same state and key
    ranked = mab.predict_arrays(x, forbidden_actions={"c"}, top_k=3)
    single = twin.predict_arrays(x, forbidden_actions={"c"})
    assert ranked.actions.shape == (500, 3) and ranked.action_indices.shape == (500, 3)
    np.testing.assert_array_equal(ranked.actions[:, 0], single.actions)  # the single pick first
    np.testing.assert_array_equal(ranked.probs, single.probs)
    for row in ranked.action_indices:
        assert len(set(row.tolist())) == 3 and 2 not in row  # distinct, never forbidden
    if epsilon is None:  # plain Thompson: the three largest draws of the allowed actions, in order
        draws = np.where(np.arange(5) == 2, -np.inf, ranked.probs)
        np.testing.assert_array_equal(ranked.action_indices, np.argsort(-draws, axis=1, kind="stable")[:, :3])


def test_top_k_in_pybandits_form_and_for_the_smab():
    mab = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=5)
    actions, probs, _ = mab.predict(np.zeros((2, 2)), top_k=2)
    assert [len(row) for row in actions] == [2, 2] and all(set(r) <= {"a", "b", "c"} for r in actions)
    for row, p in zip(actions, probs):
        assert p[row[0]] >= p[row[1]]
    chosen, probs = SmabBernoulli.cold_start(["a", "b", "c"], random_seed=0).predict(4, top_k=3)
    assert all(sorted(row) == ["a", "b", "c"] for row in chosen)
    assert all(p[row[0]] >= p[row[1]] >= p[row[2]] for row, p in zip(chosen, probs))


BAD_PREDICT = [
    ({"forbidden_actions": {"a", "b", "c"}}, ValueError, "forbids every action"),
    ({"forbidden_actions": {"z"}}, ValueError, "unknown action id(s) ['z']"),
    ({"forbidden_actions": "a"}, TypeError, "forbidden_actions must be a set of action ids"),
    ({"forbidden_actions": {"b"}}, ValueError, "default_action 'b'"),
    ({"top_k": 0}, ValueError, "top_k must lie in [1, 3]"),
    ({"top_k": 3, "forbidden_actions": {"a"}}, ValueError, "top_k must lie in [1, 2]"),
    ({"top_k": 1.0}, TypeError, "top_k must be an int"),
    ({"top_k": True}, TypeError, "top_k must be an int"),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_PREDICT)
def test_bad_controls_raise_and_change_nothing(kwargs, exc, message):
    mab = CmabBernoulli.cold_start(
        ["a", "b", "c"], n_features=2, random_seed=6, epsilon=0.5, default_action="b"
    )
    key = jax.random.key_data(mab.key)
    with pytest.raises(exc, match=None) as info:
        mab.predict(np.zeros((2, 2)), **kwargs)
    assert message in str(info.value)
    np.testing.assert_array_equal(jax.random.key_data(mab.key), key)


def test_top_k_needs_an_argmax_strategy():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, strategy=BestActionIdentificationBandit())
    with pytest.raises(ValueError, match="needs ClassicBandit"):
        mab.predict(np.zeros((1, 2)), top_k=2)


BAD_SETTINGS = [
    ({"epsilon": 1.5}, ValueError, "epsilon must lie in [0, 1]"),
    ({"epsilon": -0.1}, ValueError, "epsilon must lie in [0, 1]"),
    ({"epsilon": float("nan")}, ValueError, "epsilon must lie in [0, 1]"),
    ({"epsilon": True}, TypeError, "epsilon must be a number"),
    ({"epsilon": "0.1"}, TypeError, "epsilon must be a number"),
    ({"default_action": "a"}, ValueError, "needs epsilon > 0"),
    ({"epsilon": 0, "default_action": "a"}, ValueError, "needs epsilon > 0"),
    ({"epsilon": 0.1, "default_action": "z"}, ValueError, "default_action must be one of the actions"),
    ({"epsilon": 0.1, "default_action": True}, ValueError, "default_action must be one of the actions"),
]


BAD_PYBANDITS_RULES = [
    ({"epsilon": 0.1, "default_action_fraction": 0.5}, ValueError, "default_action_fraction needs"),
    ({"epsilon": 0.1, "default_action": "a", "default_action_fraction": 0.0}, ValueError, "(0, 1]"),
    ({"limited_actions": {"a"}}, ValueError, "must be given together"),
    ({"limited_action_fraction": 0.5}, ValueError, "must be given together"),
    (
        {"limited_actions": {"z"}, "limited_action_fraction": 0.5},
        ValueError,
        "limited_actions must be one of",
    ),
    ({"limited_actions": "a", "limited_action_fraction": 0.5}, TypeError, "limited_actions must be a set"),
    (
        {"limited_actions": {"a"}, "limited_action_fraction": 1.5},
        ValueError,
        "limited_action_fraction must lie",
    ),
    (
        {"epsilon": 0.1, "default_action": "a", "limited_actions": {"a"}, "limited_action_fraction": 0.5},
        ValueError,
        "must not hold the default_action",
    ),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_SETTINGS + BAD_PYBANDITS_RULES)
def test_bad_settings_name_the_argument(kwargs, exc, message):
    for build in (
        lambda: CmabBernoulli.cold_start(["a", 1], n_features=2, **kwargs),
        lambda: SmabBernoulli.cold_start(["a", 1], **kwargs),
    ):
        with pytest.raises(exc) as info:
            build()
        assert message in str(info.value)


def test_settings_save_load_and_transfer(tmp_path):
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, random_seed=7, epsilon=0.25, default_action="b")
    mab.save(tmp_path / "m.npz")
    back = CmabBernoulli.load(tmp_path / "m.npz")
    assert (back.epsilon, back.default_action) == (0.25, "b")
    x = np.random.default_rng(4).normal(size=(64, 2))
    np.testing.assert_array_equal(back.predict_arrays(x).actions, mab.predict_arrays(x).actions)
    # version 3 only where the settings need it; a plain model stays readable by version-2 readers
    assert json.loads(mab.get_state()[1])["format_version"] == 3
    plain = CmabBernoulli.cold_start(["a", "b"], n_features=2, random_seed=7)
    assert json.loads(plain.get_state()[1])["format_version"] == 2
    assert CmabBernoulli.from_state(plain.get_state()).epsilon is None
    # the template fixes the settings: gained, kept or dropped
    template = CmabBernoulli.cold_start(["b", "c"], n_features=2, epsilon=0.5, default_action="c")
    moved = edit_model_on_the_fly(mab, template)
    assert (moved.epsilon, moved.default_action) == (0.5, "c")
    assert edit_model_on_the_fly(mab, plain).epsilon is None
    smab = SmabBernoulli.cold_start(["x", "y"], epsilon=0.1, random_seed=0)
    assert SmabBernoulli.from_state(smab.get_state()).epsilon == 0.1


def test_default_action_fraction_splits_the_exploring_rows():
    # 'a' is the mean's best; exploring rows (epsilon 0.4) pick the default 'b' with probability
    # 0.5 and a uniform action (a or b) otherwise: P(b) = 0.4 * (0.5 + 0.5 / 2) = 0.3
    chosen, _ = _smab_a_ahead(epsilon=0.4, default_action="b", default_action_fraction=0.5).predict_arrays(N)
    _within(float(np.mean(chosen == "b")), 0.3)


def test_limited_actions_compete_at_their_rate():
    # 'n' (Beta(41, 1)) is limited to compete on 20% of the rows, against 'a' (Beta(2, 1)) and 'b'
    # (Beta(1, 1)). Competing, it wins with P(X > max(A, B)) = int 41 x^40 x^2 x dx = 41/44 and comes
    # last with P(X < min(A, B)) = 1 - 41/42 - 41/43 + 41/44; sitting out, it is never chosen
    mab = SmabBernoulli.cold_start(
        ["a", "b", "n"], random_seed=1, limited_actions={"n"}, limited_action_fraction=0.2
    )
    mab.update(["n"] * 40 + ["a"], [1] * 41)
    assert mab.limited_actions == frozenset({"n"}) and mab.epsilon is None
    chosen, _ = mab.predict_arrays(N)
    _within(float(np.mean(chosen == "n")), 0.2 * 41 / 44)
    # a limited action is still ranked, last on the rows where it sits out
    ranked, _ = mab.predict_arrays(N, top_k=3)
    assert {tuple(sorted(r)) for r in ranked.tolist()} == {("a", "b", "n")}
    last = 1 - 41 / 42 - 41 / 43 + 41 / 44
    _within(float(np.mean(ranked[:, 2] == "n")), 0.8 + 0.2 * last)
    _within(float(np.mean(ranked[:, 0] == "n")), 0.2 * 41 / 44)
    # never masked down to nothing: limiting every action leaves them all competing
    every = SmabBernoulli.cold_start(
        ["a", "b"], random_seed=0, limited_actions={"a", "b"}, limited_action_fraction=0.0
    )
    assert set(every.predict_arrays(1000)[0].tolist()) == {"a", "b"}


def test_fractions_and_limited_actions_save_and_transfer():
    kwargs = dict(
        epsilon=0.2,
        default_action="a",
        default_action_fraction=0.3,
        limited_actions={"c", "b"},
        limited_action_fraction=0.6,
    )
    mab = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, random_seed=8, **kwargs)
    back = CmabBernoulli.from_state(mab.get_state())
    assert back.exploration == mab.exploration
    assert json.loads(mab.get_state()[1])["exploration"]["limited_actions"] == ["b", "c"]
    x = np.random.default_rng(5).normal(size=(256, 2))
    np.testing.assert_array_equal(back.predict_arrays(x).actions, mab.predict_arrays(x).actions)
    template = CmabBernoulli.cold_start(
        ["a", "c"], n_features=2, limited_actions={"c"}, limited_action_fraction=0.1
    )
    moved = edit_model_on_the_fly(mab, template)
    assert moved.limited_actions == frozenset({"c"}) and moved.epsilon is None
