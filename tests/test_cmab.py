"""The object API: behaviour, reproducibility, recompilation and bad input."""

import math

import jax
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit
from tests.conftest import assert_unchanged, count_compiles, snapshot


def make(**kw):
    kw.setdefault("action_ids", {"a", "b", "c"})
    kw.setdefault("n_features", 3)
    kw.setdefault("update_kwargs", {"num_steps": 10})
    kw.setdefault("random_seed", 0)
    return CmabBernoulli.cold_start(**kw)


def test_cold_start_defaults_follow_pybandits():
    mab = make()
    assert mab.action_ids == ("a", "b", "c")  # a set is sorted
    assert mab.input_dim == 3 and mab.hidden_dim_list is None
    assert mab.dist_params_init == {"mu": 0.0, "sigma": 10.0, "nu": 5.0}
    for aid in mab.actions:
        act = mab.actions[aid]
        assert (act.n_successes, act.n_failures) == (1, 1)
        assert act.loc.layers[0].weight.shape == (3, 1)
        assert float(act.scale.layers[0].weight[0, 0]) == 10.0
    assert isinstance(mab.strategy, ClassicBandit)


def test_list_action_ids_keep_their_order():
    assert make(action_ids=["z", "a", "m"]).action_ids == ("z", "a", "m")


def test_actions_mapping_is_read_only():
    mab = make()
    with pytest.raises(TypeError):
        mab.actions["a"] = None
    with pytest.raises(AttributeError):
        mab.actions["a"].n_successes = 5


def test_hidden_layers_shape():
    mab = make(hidden_dim_list=[8, 4])
    loc = mab.actions["a"].loc
    assert [layer.weight.shape for layer in loc.layers] == [(3, 8), (8, 4), (4, 1)]
    assert mab.hidden_dim_list == [8, 4]


def test_predict_returns_pybandits_form():
    mab = make()
    ctx = np.random.default_rng(0).normal(size=(5, 3))
    actions, probs, logits = mab.predict(ctx)
    assert len(actions) == len(probs) == len(logits) == 5
    for a, p, z in zip(actions, probs, logits):
        assert set(p) == set(z) == {"a", "b", "c"}
        assert a == max(p, key=p.get)
        for k in p:
            assert math.isclose(p[k], 1 / (1 + math.exp(-z[k])), rel_tol=1e-5)
    arrays = mab.predict_arrays(ctx)
    assert arrays.actions.shape == (5,) and arrays.probs.shape == (5, 3)


def test_update_counts_each_actions_rows():
    mab = make()
    actions = ["a", "a", "b", "c", "a", "b"]
    rewards = [1, 0, 1, 1, 1, 0]
    mab.update(actions=actions, rewards=rewards, context=np.ones((6, 3)))
    assert (mab.actions["a"].n_successes, mab.actions["a"].n_failures) == (3, 2)
    assert (mab.actions["b"].n_successes, mab.actions["b"].n_failures) == (2, 2)
    assert (mab.actions["c"].n_successes, mab.actions["c"].n_failures) == (2, 1)


def test_same_seed_same_results_and_numpy_global_seed():
    ctx = np.random.default_rng(1).normal(size=(20, 3))
    results = []
    for _ in range(2):
        np.random.seed(42)
        mab = make(random_seed=None)
        actions, _, _ = mab.predict(ctx)
        mab.update(actions=actions, rewards=[1] * 20, context=ctx)
        results.append((actions, [np.asarray(x) for x in jax.tree.leaves(mab.state)]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    np.random.seed(43)
    other = make(random_seed=None).predict(ctx)[0]
    np.random.seed(42)
    same = make(random_seed=None).predict(ctx)[0]
    assert same == results[0][0] and other != same


def test_no_recompile_within_bucket():
    mab = make(action_ids=["a", "b"])
    rng = np.random.default_rng(0)

    def round_(n):
        ctx = rng.normal(size=(n, 3))
        mab.predict(ctx)
        acts = ["a"] * (n // 2) + ["b"] * (n - n // 2)
        mab.update(actions=acts, rewards=[1] * n, context=ctx)
        mab.posterior_mean_logits(ctx)

    round_(100)
    with count_compiles() as compiled:
        round_(103)  # same row buckets (104 predict, 128 update) and per-action bucket (64)
        round_(98)
    assert compiled == []
    # Negative control: the same counter sees the compilations of a new bucket (200 rows: predict
    # bucket 208, per-action bucket 128), named after what the object API runs.
    with count_compiles() as compiled:
        round_(200)
    assert any("update_step" in name for name in compiled), compiled
    assert any("predict_step" in name for name in compiled), compiled


def test_studentt_prior_and_strategies_run():
    mab = make(
        dist_type="studentt", hidden_dim_list=[4], strategy=BestActionIdentificationBandit(exploit_p=0.7)
    )
    ctx = np.random.default_rng(0).normal(size=(16, 3))
    actions, _, _ = mab.predict(ctx)
    info = mab.update(actions=actions, rewards=[0, 1] * 8, context=ctx)
    assert info.ok.all()


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "gelu"])
def test_every_activation_with_residuals_updates(activation):
    mab = make(hidden_dim_list=[4, 6], activation=activation, use_residual_connections=True)
    ctx = np.random.default_rng(0).normal(size=(8, 3))
    mab.update(actions=["a"] * 8, rewards=[1, 0] * 4, context=ctx)
    assert mab.actions["a"].n_successes == 5


# ---------------------------------------------------------------- bad input
BAD_UPDATES = [
    ("context", dict(context=np.ones(3)), ValueError),
    ("context", dict(context=np.ones((4, 2))), ValueError),
    ("context", dict(context=np.full((4, 3), np.nan)), ValueError),
    ("context", dict(context=np.full((4, 3), np.inf)), ValueError),
    ("context", dict(context=np.array([["x"] * 3] * 4)), TypeError),
    ("actions", dict(actions=["a", "a", "b", "zzz"]), ValueError),
    ("rewards", dict(rewards=[1, 0, 2, 1]), ValueError),
    ("rewards", dict(rewards=[1, 0, 0.5, 1]), ValueError),
    ("lengths", dict(rewards=[1, 0, 1]), ValueError),
    ("lengths", dict(actions=["a", "b"]), ValueError),
    ("empty", dict(actions=[], rewards=[], context=np.ones((0, 3))), ValueError),
]


@pytest.mark.parametrize(
    "name, change, error", BAD_UPDATES, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_UPDATES)]
)
def test_bad_update_raises_and_changes_nothing(name, change, error):
    mab = make()
    mab.update(actions=["a", "b"], rewards=[1, 0], context=np.ones((2, 3)))
    before = snapshot(mab)
    kwargs = dict(actions=["a", "a", "b", "c"], rewards=[1, 0, 1, 1], context=np.ones((4, 3)))
    kwargs.update(change)
    with pytest.raises(error, match=name):
        mab.update(**kwargs)
    assert_unchanged(before, mab)


@pytest.mark.parametrize(
    "context, error",
    [
        (np.ones(3), ValueError),
        (np.ones((2, 4)), ValueError),
        (np.array([[1.0, np.nan, 0.0]]), ValueError),
        (np.ones((0, 3)), ValueError),
        ([[1, 2], [3]], ValueError),
    ],
)
def test_bad_predict_raises_and_changes_nothing(context, error):
    mab = make()
    before = snapshot(mab)
    with pytest.raises(error, match="context"):
        mab.predict(context)
    assert_unchanged(before, mab)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(action_ids=set()), ValueError, "action_ids"),
        (dict(action_ids=["a", "a"]), ValueError, "action_ids"),
        (dict(action_ids="ab"), TypeError, "action_ids"),
        (dict(activation="softmax"), ValueError, "activation"),
        (dict(dist_type="cauchy"), ValueError, "dist_type"),
        (dict(hidden_dim_list=[4, 0]), ValueError, "hidden_dim_list"),
        (dict(hidden_dim_list=[4.5]), TypeError, "hidden_dim_list"),
        (dict(hidden_dim_list="8"), TypeError, "hidden_dim_list"),
        (dict(n_features=0), ValueError, "n_features"),
        (dict(dist_params_init={"sigma": -1.0}), ValueError, "sigma"),
        (dict(dist_params_init={"scale": 1.0}), ValueError, "dist_params_init"),
        (dict(update_kwargs={"num_stepz": 3}), ValueError, "num_stepz"),
        (dict(update_kwargs={"num_steps": 0}), ValueError, "num_steps"),
        (dict(update_kwargs={"optimizer_type": "nope"}), ValueError, "optimizer_type"),
        (dict(update_kwargs={"optimizer_kwargs": {"step_size": -1}}), ValueError, "step_size"),
        (dict(strategy="classic"), TypeError, "strategy"),
        (dict(random_seed="1"), TypeError, "random_seed"),
    ],
)
def test_bad_cold_start_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        make(**kwargs)


def test_bad_exploit_p():
    with pytest.raises(ValueError, match="exploit_p"):
        BestActionIdentificationBandit(exploit_p=1.5)


def test_divergent_fit_warns_and_keeps_model():
    from bandits_jax.cmab import SviDivergenceWarning

    mab = make(update_kwargs={"num_steps": 20, "optimizer_kwargs": {"step_size": 1e30}})
    before = snapshot(mab)
    with pytest.warns(SviDivergenceWarning, match="'a'"):
        mab.update(actions=["a"] * 4, rewards=[1, 0, 1, 0], context=np.ones((4, 3)))
    after = snapshot(mab)
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)


def test_buckets_bound_padding():
    from bandits_jax._validation import bucket, fine_bucket

    for n in range(1, 5000):
        assert n <= bucket(n) < 2 * n
        assert n <= fine_bucket(n) < n * 1.125 + 1
    assert len({fine_bucket(n) for n in range(1025, 2049)}) == 8


@pytest.mark.parametrize("n_actions", [1, 5, 64, 65])
def test_row_dicts_equal_a_dict_per_row(n_actions):
    from bandits_jax._validation import row_dicts

    ids = tuple(f"a{i}" for i in range(n_actions - 1)) + (7,)  # any hashable id
    values = np.arange(3 * n_actions, dtype=np.float32).reshape(3, n_actions)
    assert row_dicts(ids, values) == [dict(zip(ids, row)) for row in values.tolist()]


def test_reset_of_the_bayesian_mlp_returns_to_the_configured_prior():
    kwargs = dict(n_features=2, hidden_dim_list=[3], dist_params_init={"sigma": 2.0}, random_seed=0)
    cold = CmabBernoulli.cold_start(["a", "b"], **kwargs)
    mab = CmabBernoulli.cold_start(["a", "b"], update_kwargs={"num_steps": 5}, **kwargs)
    mab.update(["a", "b"] * 4, [1, 0] * 4, np.ones((8, 2)))
    mab.reset()
    for now, prior in zip(jax.tree.leaves(mab.state), jax.tree.leaves(cold.state), strict=True):
        np.testing.assert_array_equal(np.asarray(now), np.asarray(prior))
