"""PyBandits' strategy families (issue 13, items 2, 3 and 5): cost control, dynamic pricing and
best-action identification as CMAB and sMAB classes; their strategies against brute-force NumPy
references of PyBandits' rules; ``tune_subsidy_factor`` against PyBandits' loop on the same draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli, CmabBernoulliBAI, CmabBernoulliCC, CmabBernoulliDP
from bandits_jax.smab import SmabBernoulli, SmabBernoulliBAI, SmabBernoulliCC, SmabBernoulliDP
from bandits_jax.strategy import (
    BestActionIdentificationBandit,
    CostControlBandit,
    DynamicPricingBandit,
    MultiObjectiveBandit,
    MultiObjectiveCostControlBandit,
    pareto_front,
)
from bandits_jax.subsidy_factor import _sweep, tune_subsidy_factor
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import count_compiles


def _pybandits_cost_control(p: dict, costs: dict, subsidy_factor: float):
    """PyBandits 8.4.1's CostControlBandit on one draw, written out: best value by argmax, the
    feasible set ``p >= best * (1 - s)``, then ``sorted((cost, -p, action))[0]``; an empty feasible
    set falls back to the best action."""
    best = max(p.values())
    feasible = {a: v for a, v in p.items() if v >= best * (1 - subsidy_factor)}
    if not feasible:
        return max(p, key=p.get)
    return sorted((costs[a], -v, a) for a, v in feasible.items())[0][2]


@pytest.mark.parametrize("subsidy_factor", [0.0, 0.1, 0.35, 0.8, 1.0])
def test_cost_control_matches_pybandits_rule_row_by_row(subsidy_factor):
    rng = np.random.default_rng(0)
    n_rows, n_actions = 2000, 5
    probs = rng.uniform(size=(n_rows, n_actions)).astype(np.float32)
    probs[::7, 1] = probs[::7, 3]  # exact ties in reward
    costs = rng.choice([0.0, 1.0, 2.5, 4.0], size=n_actions).astype(np.float32)  # ties in cost
    ids = [f"a{i}" for i in range(n_actions)]  # sorted ids: PyBandits' last tie-break is our order
    chosen = np.asarray(CostControlBandit(costs, subsidy_factor)(jnp.asarray(probs), jax.random.key(0)))
    expected = [
        ids.index(
            _pybandits_cost_control(
                dict(zip(ids, row.tolist())), dict(zip(ids, costs.tolist())), subsidy_factor
            )
        )
        for row in probs
    ]
    np.testing.assert_array_equal(chosen, expected)
    if subsidy_factor == 0.35:  # negative control: the rule is not a plain argmax here
        assert (chosen != probs.argmax(axis=1)).mean() > 0.2


def test_cost_control_never_picks_masked_actions_and_handles_negative_rewards():
    costs = jnp.array([0.0, 5.0, 1.0])
    probs = jnp.array([[-jnp.inf, 0.5, 0.49], [-2.0, -1.0, -1.2], [-jnp.inf, -jnp.inf, 0.1]])
    chosen = CostControlBandit(costs, 0.5)(probs, jax.random.key(0)).tolist()
    # row 0: the free action is masked, 2 is feasible and cheaper; row 1: negative best, the
    # threshold -0.5 admits nobody, so the best (PyBandits' fallback); row 2: the only allowed one
    assert chosen == [2, 1, 2]


def test_dynamic_pricing_matches_argmax_revenue():
    rng = np.random.default_rng(1)
    probs = rng.uniform(size=(1000, 4)).astype(np.float32)
    prices = np.array([1.0, 2.5, 0.0, 4.0], np.float32)
    chosen = np.asarray(DynamicPricingBandit(prices)(jnp.asarray(probs), jax.random.key(0)))
    np.testing.assert_array_equal(chosen, (probs * prices).argmax(axis=1))
    masked = jnp.asarray(probs).at[:, 3].set(-jnp.inf)  # price 0 * -inf must not become NaN
    chosen = np.asarray(DynamicPricingBandit(prices)(masked, jax.random.key(0)))
    np.testing.assert_array_equal(chosen, (probs[:, :3] * prices[:3]).argmax(axis=1))


@pytest.mark.parametrize(
    "make",
    [
        lambda costs, **kw: CmabBernoulliCC.cold_start(costs, n_features=2, **kw),
        lambda costs, **kw: SmabBernoulliCC.cold_start(costs, **kw),
    ],
)
@pytest.mark.parametrize(
    "costs, kwargs, error, match",
    [
        ({"a": -1.0, "b": 1.0}, {}, ValueError, "action_ids_cost\\['a'\\]"),
        ({"a": float("nan"), "b": 1.0}, {}, ValueError, "action_ids_cost"),
        ({"a": "1", "b": 1.0}, {}, TypeError, "action_ids_cost"),
        ({"a": True, "b": 1.0}, {}, TypeError, "action_ids_cost"),
        ({}, {}, TypeError, "action_ids_cost"),
        (["a", "b"], {}, TypeError, "action_ids_cost"),
        ({"a": 1.0, "b": 2.0}, {"subsidy_factor": 1.5}, ValueError, "subsidy_factor"),
        ({"a": 1.0, "b": 2.0}, {"strategy": CostControlBandit([1.0, 2.0])}, TypeError, "strategy"),
    ],
)
def test_cost_control_classes_refuse_bad_arguments(make, costs, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(costs, **kwargs)


def test_a_family_refuses_a_strategy_that_does_not_fit():
    mab = SmabBernoulliCC.cold_start({"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="one value per action"):
        mab.with_strategy(CostControlBandit([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="CostControlBandit"):
        mab.with_strategy(DynamicPricingBandit([1.0, 2.0]))
    with pytest.raises(TypeError, match="DynamicPricingBandit"):
        SmabBernoulliDP.cold_start({"a": 1.0}).with_strategy(CostControlBandit([1.0]))


def test_new_costs_and_subsidy_compile_nothing():
    mab = CmabBernoulliCC.cold_start({"a": 1.0, "b": 2.0, "c": 0.5}, n_features=2, random_seed=0)
    ctx = np.zeros((4, 2))
    mab.predict(ctx)
    other = mab.with_subsidy_factor(0.9).with_strategy(CostControlBandit([3.0, 0.0, 1.0], 0.1))
    with count_compiles() as names:
        other.predict(ctx)
    assert names == []
    with count_compiles() as names:  # negative control: a new row bucket does compile
        other.predict(np.zeros((40, 2)))
    assert names


@pytest.mark.parametrize(
    "model",
    [
        lambda: CmabBernoulliCC.cold_start(
            {"a": 1.0, "b": 2.5}, n_features=2, subsidy_factor=0.3, random_seed=1
        ),
        lambda: CmabBernoulliDP.cold_start({"a": 9.0, "b": 12.0}, n_features=2, random_seed=1),
        lambda: CmabBernoulliBAI.cold_start(["a", "b"], n_features=2, exploit_p=0.7, random_seed=1),
        lambda: SmabBernoulliCC.cold_start({"a": 1.0, "b": 2.5}, subsidy_factor=0.3, random_seed=1),
        lambda: SmabBernoulliDP.cold_start({"a": 9.0, "b": 12.0}, random_seed=1),
        lambda: SmabBernoulliBAI.cold_start(["a", "b"], exploit_p=0.7, random_seed=1),
    ],
)
def test_every_family_saves_loads_and_transfers(model, tmp_path):
    mab = model()
    contextual = hasattr(mab, "input_dim")
    if contextual:
        mab.update(["a", "b", "a"], [1, 0, 1], np.ones((3, 2)))
    else:
        mab.update(["a", "b", "a"], [1, 0, 1])
    path = tmp_path / "m.npz"
    mab.save(path)
    back = type(mab).load(path)
    assert type(back) is type(mab) and type(back.strategy) is type(mab.strategy)
    for x, y in zip(jax.tree.leaves(back.strategy), jax.tree.leaves(mab.strategy), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for x, y in zip(jax.tree.leaves(back.state), jax.tree.leaves(mab.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # a sibling class cannot load it (the class is part of the file)
    sibling = CmabBernoulli if contextual else SmabBernoulli
    with pytest.raises(ValueError, match="holds a"):
        sibling.load(path)
    # transfer: the template's strategy (costs, prices) and action set win; learned counts stay
    if isinstance(mab.strategy, CostControlBandit):
        template = (
            CmabBernoulliCC.cold_start({"b": 7.0, "a": 0.0, "c": 1.0}, n_features=2)
            if contextual
            else SmabBernoulliCC.cold_start({"b": 7.0, "a": 0.0, "c": 1.0})
        )
        merged = edit_model_on_the_fly(mab, template)
        assert merged.action_ids_cost == {"b": 7.0, "a": 0.0, "c": 1.0}
        assert merged.actions["a"].n_successes == mab.actions["a"].n_successes
    elif isinstance(mab.strategy, DynamicPricingBandit):
        kwargs = {"n_features": 2} if contextual else {}
        template = type(mab).cold_start({"c": 3.0, "a": 4.5}, **kwargs)
        merged = edit_model_on_the_fly(mab, template)
        assert type(merged) is type(mab) and merged.action_ids_price == {"c": 3.0, "a": 4.5}
        assert merged.actions["a"].n_successes == mab.actions["a"].n_successes
    else:
        kwargs = {"n_features": 2} if contextual else {}
        template = type(mab).cold_start(["a", "c"], exploit_p=0.2, **kwargs)
        merged = edit_model_on_the_fly(mab, template)
        assert merged.exploit_p == pytest.approx(0.2) and merged.action_ids == ("a", "c")
        assert merged.actions["a"].n_successes == mab.actions["a"].n_successes


def test_tune_subsidy_factor_sweep_matches_pybandits_loop():
    """The compiled sweep against PyBandits' Python loop (its select rule, independent credit,
    Kneedle knee of each bootstrap resample) on the same draws and bootstrap indices."""
    rng = np.random.default_rng(3)
    n_draws, n_actions, n_points, n_boot = 300, 3, 11, 50
    p_sel = rng.beta([8, 7, 3], [2, 3, 7], size=(n_draws, n_actions)).astype(np.float32)
    p_cred = rng.beta([8, 7, 3], [2, 3, 7], size=(n_draws, n_actions)).astype(np.float32)
    costs = np.array([5.0, 2.0, 0.0], np.float32)
    factors = np.linspace(0, 1, n_points)
    idx = rng.integers(0, n_draws, (n_boot, n_draws))
    weights = np.stack([np.bincount(i, minlength=n_draws) for i in idx]).astype(np.float32)
    credit, p_select, knees = _sweep(
        jnp.asarray(p_sel),
        jnp.asarray(p_cred),
        jnp.asarray(costs),
        jnp.asarray(factors, jnp.float32),
        jnp.asarray(weights),
        n_actions,
    )
    ids = ["a0", "a1", "a2"]
    cost_map = dict(zip(ids, costs.tolist()))
    ref_credit = np.empty((n_draws, n_points))
    for j, s in enumerate(factors):
        for d in range(n_draws):
            chosen = _pybandits_cost_control(dict(zip(ids, p_sel[d].tolist())), cost_map, float(s))
            ref_credit[d, j] = p_cred[d, ids.index(chosen)]
    np.testing.assert_allclose(np.asarray(credit), ref_credit, rtol=1e-6)

    def knee(x, y):  # PyBandits' _detect_knee
        x_n = (x - x[0]) / (x[-1] - x[0])
        if y.max() == y.min():
            return x[0]
        y_n = (y - y.min()) / (y.max() - y.min())
        return x[int(np.argmax(y_n - (y_n[0] + (y_n[-1] - y_n[0]) * x_n)))]

    ref_knees = [knee(factors, ref_credit[i].mean(axis=0)) for i in idx]
    np.testing.assert_allclose(np.asarray(knees), ref_knees, atol=1e-6)
    assert len(set(np.round(ref_knees, 6))) >= 1 and 0 < np.median(ref_knees) < 1  # a real knee


def test_tune_subsidy_factor_leaves_the_model_alone_and_is_reproducible():
    mab = SmabBernoulliCC.cold_start({"cheap": 0.0, "mid": 1.0, "dear": 4.0}, random_seed=0)
    mab.update(
        ["cheap"] * 100 + ["mid"] * 100 + ["dear"] * 100,
        [1] * 60 + [0] * 40 + [1] * 80 + [0] * 20 + [1] * 85 + [0] * 15,
    )
    key, state = mab.key, mab.state
    a = tune_subsidy_factor(mab, n_samples=400, n_points=21, n_bootstrap=100, random_seed=5)
    b = tune_subsidy_factor(mab, n_samples=400, n_points=21, n_bootstrap=100, random_seed=5)
    assert a.subsidy_factor == b.subsidy_factor and a.subsidy_factor_ci == b.subsidy_factor_ci
    assert np.array_equal(jax.random.key_data(mab.key), jax.random.key_data(key))
    assert mab.subsidy_factor == 0.5 and a.mab.subsidy_factor == a.subsidy_factor
    assert a.subsidy_factor_ci[0] <= a.subsidy_factor <= a.subsidy_factor_ci[1]
    frontier = a.frontier
    assert frontier["mean_reward_pct"][0] == pytest.approx(100)
    # factor 0 is Thompson sampling (mostly the best, "dear"); factor 1 always the cheapest
    assert frontier["p_select[dear]"][0] > 0.5 and frontier["p_select[cheap]"][-1] == 1.0
    np.testing.assert_allclose(sum(frontier[f"p_select[{a}]"] for a in mab.action_ids), 1.0, atol=1e-6)
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(mab.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(TypeError, match="cost-control"):
        tune_subsidy_factor(SmabBernoulli.cold_start(["a", "b"]))
    with pytest.raises(ValueError, match="n_points"):
        tune_subsidy_factor(mab, n_points=2)
    with pytest.raises(ValueError, match="context"):
        tune_subsidy_factor(mab, context=np.zeros((2, 2)))
    cmab = CmabBernoulliCC.cold_start({"a": 1.0, "b": 0.0}, n_features=2)
    with pytest.raises(ValueError, match="context"):
        tune_subsidy_factor(cmab)
    result = tune_subsidy_factor(
        cmab, context=np.zeros((5, 2)), n_samples=20, n_points=5, n_bootstrap=10, random_seed=0
    )
    assert len(result.frontier["mean_reward"]) == 5


def _play(mab, probs, n_rounds, batch, rng):
    """Rounds of predict -> Bernoulli rewards -> update on an sMAB; the chosen action indices."""
    chosen = []
    for _ in range(n_rounds):
        actions, _ = mab.predict(batch)
        idx = np.array([mab.action_ids.index(a) for a in actions])
        rewards = (rng.uniform(size=batch) < probs[idx]).astype(int).tolist()
        mab.update(actions, rewards)
        chosen.append(idx)
    return np.concatenate(chosen)


def test_cost_control_policy_beats_uniform_on_reward_and_cost():
    """True rates 0.5 / 0.48 / 0.2 at costs 5 / 1 / 0 with subsidy 0.3: the cost-control target is
    the middle action (within 30% of the best, 5x cheaper; the free one is 60% worse). Over 30
    rounds of 20 the policy must earn more than uniform random (0.393 a row) and pay less (2.0) in
    the second half (seeds 0-4 measured: cost 0.99-1.9 a row over all rounds, under 1.3 in the
    second half; the early rounds explore the dear action while every posterior is wide)."""
    probs = np.array([0.5, 0.48, 0.2])
    mab = SmabBernoulliCC.cold_start(
        {"best": 5.0, "near": 1.0, "free": 0.0}, subsidy_factor=0.3, random_seed=0
    )
    chosen = _play(mab, probs, 30, 20, np.random.default_rng(0))
    costs = np.array([5.0, 1.0, 0.0])
    late = chosen[len(chosen) // 2 :]
    assert probs[late].mean() > probs.mean() and costs[late].mean() < 0.75 * costs.mean()
    assert (chosen[-100:] == 1).mean() > 0.5  # settles on the target


def test_dynamic_pricing_policy_beats_uniform_on_revenue():
    """Buy rates 0.9 / 0.5 / 0.2 at prices 1 / 3 / 4: expected revenue 0.9 / 1.5 / 0.8. Over 30
    rounds of 20 the policy's expected revenue per row must beat uniform's (1.067)."""
    probs = np.array([0.9, 0.5, 0.2])
    prices = np.array([1.0, 3.0, 4.0])
    mab = SmabBernoulliDP.cold_start({"p1": 1.0, "p3": 3.0, "p4": 4.0}, random_seed=0)
    chosen = _play(mab, probs, 30, 20, np.random.default_rng(1))
    assert (probs * prices)[chosen].mean() > (probs * prices).mean() + 0.2


def test_bai_classes_run_top_two_thompson():
    mab = SmabBernoulliBAI.cold_start(["a", "b"], exploit_p=1.0, random_seed=0)
    assert isinstance(mab.strategy, BestActionIdentificationBandit) and mab.exploit_p == 1.0
    with pytest.raises(ValueError, match="exploit_p"):
        CmabBernoulliBAI.cold_start(["a", "b"], n_features=2, exploit_p=2.0)


def _brute_front(row: np.ndarray) -> set:
    """PyBandits 8.4.1's ``_get_exact_pareto_front`` on one row of ``(n_actions, n_objectives)``."""
    front = set()
    for i, this in enumerate(row):
        dominated = any(
            not (np.array_equal(this, other) or any(this[k] > other[k] for k in range(len(this))))
            for j, other in enumerate(row)
            if j != i
        )
        if not dominated:
            front.add(i)
    return front


def test_pareto_front_and_multi_objective_choice_match_brute_force():
    rng = np.random.default_rng(4)
    probs = rng.uniform(size=(500, 6, 3)).round(1).astype(np.float32)  # rounding makes ties
    probs[::9, 2] = probs[::9, 4]  # identical vectors: neither dominates the other
    front = np.asarray(pareto_front(jnp.asarray(probs)))
    for row, mask in zip(probs, front):
        assert set(np.flatnonzero(mask)) == _brute_front(row)
    chosen = np.asarray(MultiObjectiveBandit()(jnp.asarray(probs), jax.random.key(0)))
    assert all(front[r, c] for r, c in enumerate(chosen))
    # uniform among the front: rows whose front has two members pick each about half the time
    two = front.sum(axis=1) == 2
    first = np.array([np.flatnonzero(m)[0] for m in front[two]])
    share = (chosen[two] == first).mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / two.sum())
    # a masked action (-inf) is never chosen
    masked = jnp.asarray(probs).at[:, 0].set(-jnp.inf)
    assert not np.any(np.asarray(MultiObjectiveBandit()(masked, jax.random.key(1))) == 0)


def test_multi_objective_cost_control_matches_its_rule_row_by_row():
    """Per objective PyBandits' cost-control choice (brute force above), then the exact front of
    those candidates; the pick is one of them."""
    rng = np.random.default_rng(5)
    probs = rng.uniform(0.1, 1, size=(400, 4, 2)).astype(np.float32)
    ids = ["a0", "a1", "a2", "a3"]
    costs = np.array([3.0, 0.0, 2.0, 1.0], np.float32)
    cost_map = dict(zip(ids, costs.tolist()))
    for s in (0.0, 0.3, 1.0):
        chosen = np.asarray(MultiObjectiveCostControlBandit(costs, s)(jnp.asarray(probs), jax.random.key(0)))
        for row, c in zip(probs, chosen):
            picks = sorted(
                {
                    ids.index(_pybandits_cost_control(dict(zip(ids, row[:, k].tolist())), cost_map, s))
                    for k in range(2)
                }
            )
            assert c in {picks[i] for i in _brute_front(row[picks])}
        if s == 1.0:
            assert np.all(chosen == 1)  # the cheapest action, whatever the rewards
        if s == 0.0:  # the extremes: each objective's best
            assert all(c in set(row.argmax(axis=0).tolist()) for row, c in zip(probs, chosen))
        if s == 0.3:  # negative control: cost matters, so it is not plain multi-objective TS
            assert np.mean(chosen == 1) > np.mean(
                np.asarray(MultiObjectiveBandit()(jnp.asarray(probs), jax.random.key(0))) == 1
            )
    masked = jnp.asarray(probs).at[:, 1, 0].set(-jnp.inf)  # the free action masked
    assert not np.any(np.asarray(MultiObjectiveCostControlBandit(costs, 1.0)(masked, jax.random.key(0))) == 1)


# ---------------------------------------------------------------------------------- review regressions
def test_strategy_numbers_are_checked_whatever_their_type():
    for bad, error in (
        (jnp.array(5.0), ValueError),
        ("0.5", TypeError),
        (True, TypeError),
        (None, TypeError),
    ):
        with pytest.raises(error, match="subsidy_factor"):
            SmabBernoulliCC.cold_start({"a": 1.0, "b": 2.5}, subsidy_factor=bad)
        if bad is not None:  # None is PyBandits' default 0.5 there
            with pytest.raises(error, match="exploit_p"):
                SmabBernoulliBAI.cold_start(["a", "b"], exploit_p=bad)
    assert float(CostControlBandit([1.0], jnp.array(0.3)).subsidy_factor) == pytest.approx(0.3)
    for costs in ({"a": 1e300}, {"a": 10**400}):
        with pytest.raises(ValueError, match="action_ids_cost"):
            SmabBernoulliCC.cold_start(costs)
    with pytest.raises(ValueError, match="costs"):
        CostControlBandit([1e300])


def test_plain_models_refuse_strategies_that_do_not_fit():
    with pytest.raises(ValueError, match="one value per action"):
        SmabBernoulli.cold_start(["a", "b", "c"], strategy=CostControlBandit([1.0, 2.0]))
    with pytest.raises(ValueError, match="one value per action"):
        CmabBernoulli.cold_start(["a", "b"], n_features=2, strategy=DynamicPricingBandit([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="reward vectors"):
        SmabBernoulli.cold_start(["a", "b"], strategy=MultiObjectiveBandit())


def test_public_values_read_as_given():
    mab = CmabBernoulliCC.cold_start({"a": 0.1, "b": 2.5}, n_features=2)
    assert mab.action_ids_cost == {"a": 0.1, "b": 2.5}  # not 0.10000000149011612
    with pytest.raises(ValueError, match="cannot be written as a PyBandits state"):
        mab.to_pybandits_state()


def test_tune_subsidy_factor_takes_any_cost_control_model_and_reports_grid_values():
    mab = CmabBernoulli.cold_start(["a", "b"], n_features=2, strategy=CostControlBandit([1.0, 2.0], 0.3))
    result = tune_subsidy_factor(
        mab, context=np.zeros((2, 2)), n_samples=50, n_points=5, n_bootstrap=5, random_seed=0
    )
    assert type(result.mab) is CmabBernoulli and float(result.mab.strategy.subsidy_factor) == pytest.approx(
        result.subsidy_factor
    )
    # an odd number of bootstrap knees: the median is one of them, a float64 grid value exactly
    assert result.subsidy_factor in {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(result.frontier["subsidy_factor"].tolist()) == {0.0, 0.25, 0.5, 0.75, 1.0}
    with pytest.raises(ValueError, match="too large"):
        tune_subsidy_factor(mab, context=np.full((1, 2), 1e30), n_samples=5, n_points=3, n_bootstrap=2)
