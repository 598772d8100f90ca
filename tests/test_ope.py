"""Offline policy evaluation (bandits_jax.ope): every estimator against Open Bandit Pipeline's and
PyBandits' own numbers on the same inputs (fixtures written by benchmarks/make_ope_fixtures.py in
their own virtual environments; neither library is needed here), the bootstrap, the evaluation
policy's distribution, validation, evaluate and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits_jax import ope

DATA = Path(__file__).parent / "data" / "ope"


@pytest.fixture(scope="module")
def logged():
    with np.load(DATA / "logged.npz") as f:
        return {k: f[k] for k in f.files}


def _inputs(logged, policy: str) -> dict:
    pi = logged["estimated_policy_deterministic" if policy == "deterministic" else "estimated_policy"]
    return {
        "action": logged["action"],
        "reward": logged["reward"],
        "propensity_score": logged["propensity_score"],
        "estimated_policy": pi,
        "expected_reward": logged["expected_reward"],
        "expected_importance_weight": logged["expected_importance_weight"],
    }


def _rows_and_value(est, inputs):
    with jax.enable_x64(True):
        rows = est.estimate_sample_rewards(**{k: inputs[k] for k in est.requires})
        return rows, rows.mean()


inf = float("inf")
# obp 0.5.7 fixture key (class|setting) -> our estimator. Not listed: obp's IPW / BalancedIPW with
# a clipping lambda_ (neither is one of PyBandits' estimators; DR's clipping is dros-pess, listed).
OBP = {
    "InverseProbabilityWeighting|default": ope.InverseProbabilityWeighting(),
    "SelfNormalizedInverseProbabilityWeighting|default": ope.SelfNormalizedInverseProbabilityWeighting(),
    "SelfNormalizedInverseProbabilityWeighting|lambda_3": ope.SelfNormalizedInverseProbabilityWeighting(),
    "DirectMethod|default": ope.DirectMethod(),
    "DoublyRobust|default": ope.DoublyRobust(),
    "DoublyRobust|lambda_3": ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=3.0),
    "DoublyRobust|lambda_0.5": ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=0.5),
    "SelfNormalizedDoublyRobust|default": ope.SelfNormalizedDoublyRobust(),
    "SwitchDoublyRobust|default": ope.SwitchDoublyRobust(),
    "SwitchDoublyRobust|lambda_2": ope.SwitchDoublyRobust(switch_threshold=2.0),
    "SwitchDoublyRobust|lambda_0.5": ope.SwitchDoublyRobust(switch_threshold=0.5),
    "SwitchDoublyRobust|lambda_tie": None,  # the threshold is in the JSON (a weight in the data)
    "DoublyRobustWithShrinkage|default": ope.DoublyRobustWithOptimisticShrinkage(),
    "DoublyRobustWithShrinkage|lambda_1": ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=1.0),
    "DoublyRobustWithShrinkage|lambda_10": ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=10.0),
    "DoublyRobustWithShrinkage|lambda_inf": ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=inf),
    "SubGaussianInverseProbabilityWeighting|default": ope.SubGaussianInverseProbabilityWeighting(),
    "SubGaussianInverseProbabilityWeighting|lambda_0.1": ope.SubGaussianInverseProbabilityWeighting(
        shrinkage_factor=0.1
    ),
    "SubGaussianInverseProbabilityWeighting|lambda_0.5": ope.SubGaussianInverseProbabilityWeighting(
        shrinkage_factor=0.5
    ),
    "SubGaussianDoublyRobust|default": ope.SubGaussianDoublyRobust(),
    "SubGaussianDoublyRobust|lambda_0.1": ope.SubGaussianDoublyRobust(shrinkage_factor=0.1),
    "SubGaussianDoublyRobust|lambda_0.5": ope.SubGaussianDoublyRobust(shrinkage_factor=0.5),
    "BalancedInverseProbabilityWeighting|default": ope.BalancedInverseProbabilityWeighting(),
}


def _expected(name: str):
    arrays = np.load(DATA / f"{name}_expected.npz")
    meta = json.loads((DATA / f"{name}_expected.json").read_text())
    return arrays, meta


def _cases(name: str, table: dict, policies: dict) -> list:
    cases = []
    for key, est in table.items():
        for policy in policies.get(key, ("stochastic", "deterministic")):
            cases.append(pytest.param(key, est, policy, id=f"{key}|{policy}"))
    return cases


# obp's replay counts only rows where the policy's probability is exactly 1 (a deterministic
# policy); obp's DRos at lambda 0 is 0/0 = NaN on the rows a deterministic policy never takes
OBP_POLICIES = {"DoublyRobustWithShrinkage|default": ("stochastic",)}
OBP_CASES = _cases("obp", OBP, OBP_POLICIES) + [
    pytest.param(
        "ReplayMethod|default", ope.ReplayMethod(), "deterministic", id="ReplayMethod|default|deterministic"
    )
]


@pytest.mark.parametrize("key, est, policy", OBP_CASES)
def test_matches_obp(logged, key, est, policy):
    arrays, meta = _expected("obp")
    entry = meta["entries"][f"{key}|{policy}|value"]
    if est is None:
        kwargs = entry["kwargs"]
        est = ope.SwitchDoublyRobust(switch_threshold=float(kwargs["lambda_"]))
    rows, value = _rows_and_value(est, _inputs(logged, policy))
    np.testing.assert_allclose(value, arrays[f"{key}|{policy}|value"], rtol=1e-6)
    np.testing.assert_allclose(rows, arrays[f"{key}|{policy}|rows"], rtol=1e-6, atol=1e-12)


def test_obp_fixture_covers_every_class(logged):
    """Every obp estimator class in the fixture is checked (a key added there without a mapping
    here fails), and the mapping is not vacuous: a wrong hyperparameter misses obp's value."""
    arrays, meta = _expected("obp")
    classes = {k.split("|")[0] for k in meta["entries"]}
    mapped = {k.split("|")[0] for k in OBP} | {"ReplayMethod"}
    assert classes == mapped
    key = "SwitchDoublyRobust|lambda_0.5|stochastic"
    _, wrong = _rows_and_value(ope.SwitchDoublyRobust(switch_threshold=2.0), _inputs(logged, "stochastic"))
    assert abs(wrong - float(arrays[f"{key}|value"])) > 1e-3


# PyBandits 8.4.1 where its definition is obp's (or, for replay on a stochastic policy, where obp has
# none); its DR family's residual agrees with obp's only on a deterministic policy (module docstring)
PYBANDITS = {
    "ReplayMethod|default": (ope.ReplayMethod(), ("stochastic", "deterministic")),
    "InverseProbabilityWeighting|default": (
        ope.InverseProbabilityWeighting(),
        ("stochastic", "deterministic"),
    ),
    "SelfNormalizedInverseProbabilityWeighting|default": (
        ope.SelfNormalizedInverseProbabilityWeighting(),
        ("stochastic", "deterministic"),
    ),
    "DirectMethod|default": (ope.DirectMethod(), ("stochastic", "deterministic")),
    "DoublyRobust|default": (ope.DoublyRobust(), ("deterministic",)),
    "SelfNormalizedDoublyRobust|default": (ope.SelfNormalizedDoublyRobust(), ("deterministic",)),
    "DoublyRobustWithOptimisticShrinkage|default": (
        ope.DoublyRobustWithOptimisticShrinkage(),
        ("stochastic", "deterministic"),
    ),
    "DoublyRobustWithOptimisticShrinkage|shrinkage_factor_1": (
        ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=1.0),
        ("deterministic",),
    ),
    "DoublyRobustWithPessimisticShrinkage|shrinkage_factor_3": (
        ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=3.0),
        ("deterministic",),
    ),
    "SubGaussianInverseProbabilityWeighting|default": (
        ope.SubGaussianInverseProbabilityWeighting(),
        ("stochastic", "deterministic"),
    ),
    "SubGaussianDoublyRobust|default": (ope.SubGaussianDoublyRobust(), ("deterministic",)),
}


@pytest.mark.parametrize(
    "key, est, policy",
    [pytest.param(k, e, p, id=f"{k}|{p}") for k, (e, ps) in PYBANDITS.items() for p in ps],
)
def test_matches_pybandits(logged, key, est, policy):
    arrays, meta = _expected("pybandits")
    assert meta["entries"][f"{key}|{policy}|value"]["name"] == est.name
    rows, value = _rows_and_value(est, _inputs(logged, policy))
    np.testing.assert_allclose(value, arrays[f"{key}|{policy}|value"], rtol=1e-6)
    np.testing.assert_allclose(rows, arrays[f"{key}|{policy}|rows"], rtol=1e-6, atol=1e-12)


def test_pybandits_divergences_are_real(logged):
    """Where we follow obp and not PyBandits, the fixtures do differ (so the choice matters):
    DR's residual on a stochastic policy, Switch-DR's direction at its default."""
    arrays, _ = _expected("pybandits")
    inputs = _inputs(logged, "stochastic")
    _, ours = _rows_and_value(ope.DoublyRobust(), inputs)
    assert abs(ours - float(arrays["DoublyRobust|default|stochastic|value"])) > 1e-3
    _, dm = _rows_and_value(ope.DirectMethod(), inputs)
    np.testing.assert_allclose(arrays["SwitchDoublyRobust|default|stochastic|value"], dm, rtol=1e-12)


def test_float32_default_agrees(logged):
    """Without x64 the same estimators run in float32, within float32's rounding of obp's values."""
    arrays, _ = _expected("obp")
    inputs = _inputs(logged, "stochastic")
    value = ope.DoublyRobust().estimate_policy_value(**inputs)
    np.testing.assert_allclose(value, arrays["DoublyRobust|default|stochastic|value"], rtol=1e-5)


# ------------------------------------------------------------------------------ bootstrap
def test_bootstrap_standard_error_matches_the_delta_method():
    """IPW's bootstrap std is the standard error of a mean, std(w r) / sqrt(n): within 8% at 2000
    resamples (the relative sd of a bootstrap sd estimate is about 1 / sqrt(2 B) = 1.6%)."""
    rng = np.random.default_rng(1)
    n, k = 3000, 4
    action = rng.integers(0, k, n)
    reward = (rng.random(n) < 0.4).astype(int)
    pi = rng.dirichlet(np.ones(k), n)
    table = ope.estimate(
        ["ipw", "snips"],
        action=action,
        reward=reward,
        propensity_score=np.full(n, 1 / k),
        estimated_policy=pi,
        n_bootstrap_samples=2000,
        random_state=0,
    )
    s = pi[np.arange(n), action] * k * reward
    assert table.std[0] == pytest.approx(s.std(ddof=1) / math.sqrt(n), rel=0.08)
    for i in range(2):
        assert table.lower[i] < table.value[i] < table.upper[i]
        # a percentile interval of a near-Normal statistic: half-width about 1.96 std
        assert (table.upper[i] - table.lower[i]) / 2 == pytest.approx(1.96 * table.std[i], rel=0.1)


def test_bootstrap_is_one_compiled_call_and_hyperparameters_are_data(logged):
    """A new hyperparameter or alpha compiles nothing (it is data); a new number of resamples
    does (negative control: the count does see compilations)."""
    inputs = _inputs(logged, "stochastic")

    def run(est, n_boot=50):
        return ope.estimate([est], n_bootstrap_samples=n_boot, random_state=0, **inputs)

    run(ope.SwitchDoublyRobust(switch_threshold=1.0))
    before = ope._estimate_all._cache_size()
    a = run(ope.SwitchDoublyRobust(switch_threshold=0.3, alpha=0.1))
    assert ope._estimate_all._cache_size() == before
    b = run(ope.SwitchDoublyRobust(switch_threshold=1.0))
    assert a.value != b.value
    run(ope.SwitchDoublyRobust(switch_threshold=1.0), n_boot=51)
    assert ope._estimate_all._cache_size() == before + 1


def test_self_normalised_resamples_renormalise():
    """Each resample re-normalises SNIPS on itself: with constant rewards 1 every resample's SNIPS
    is exactly 1 (a bootstrap of fixed per-row values would spread)."""
    rng = np.random.default_rng(2)
    n = 500
    table = ope.estimate(
        ["snips", "ipw"],
        action=rng.integers(0, 3, n),
        reward=np.ones(n, int),
        propensity_score=np.full(n, 1 / 3),
        estimated_policy=rng.dirichlet(np.ones(3), n),
        n_bootstrap_samples=300,
        random_state=0,
    )
    assert table.lower[0] == pytest.approx(1.0, abs=1e-6) and table.upper[0] == pytest.approx(1.0, abs=1e-6)
    assert table.std[1] > 0.01


def test_pybandits_interval_method_signature(logged):
    """PyBandits' method returns (value, lower, upper, std); our interval is percentile, theirs
    BCa, so they agree to within the bootstrap's own noise (a few percent of the width)."""
    arrays, _ = _expected("pybandits")
    est = ope.InverseProbabilityWeighting(n_bootstrap_samples=2000, random_state=0)
    value, low, high, std = est.estimate_policy_value_with_confidence_interval(
        **_inputs(logged, "stochastic")
    )
    key = "InverseProbabilityWeighting|bootstrap2000_seed0|stochastic"
    width = float(arrays[f"{key}|ci_high"] - arrays[f"{key}|ci_low"])
    assert value == pytest.approx(float(arrays[f"{key}|ci_value"]), rel=1e-5)
    assert low == pytest.approx(float(arrays[f"{key}|ci_low"]), abs=0.1 * width)
    assert high == pytest.approx(float(arrays[f"{key}|ci_high"]), abs=0.1 * width)
    assert std == pytest.approx(float(arrays[f"{key}|ci_std"]), rel=0.1)


@pytest.mark.slow
def test_intervals_cover_the_truth():
    """IPW and DR 95% intervals cover the true policy value in about 95% of 200 repetitions (all
    repetitions vmapped in one call). The truth is exact: contexts are 20 equally likely types. The
    reward model is biased (DR stays unbiased). Binomial sd of the rate at 200 repetitions is 1.5%,
    so [0.90, 0.99] fails a true 95% with probability under 1%; a negative control (a shifted
    truth) is covered far less often."""
    n_types, k, n, reps = 20, 4, 400, 200
    rng = np.random.default_rng(0)
    q = rng.uniform(0.1, 0.9, (n_types, k))
    mu = rng.dirichlet(np.ones(k) * 2, n_types)
    pi = rng.dirichlet(np.ones(k) * 0.7, n_types)
    truth = float(np.mean(np.sum(pi * q, axis=1)))
    q_hat = np.clip(q + rng.normal(0, 0.15, q.shape), 0, 1)

    types = rng.integers(0, n_types, (reps, n))
    u = rng.random((reps, n, 1))
    action = (u > np.cumsum(mu[types], axis=2)).sum(axis=2)
    reward = (rng.random((reps, n)) < q[types, action]).astype(np.float32)
    at = np.arange(n)

    def one(t, a, r, key):
        rows = ope.rows(a, r, jnp.asarray(pi)[t], jnp.asarray(mu)[t, a], jnp.asarray(q_hat)[t])
        ests = (ope.InverseProbabilityWeighting(), ope.DoublyRobust())
        return ope._estimate_all(ests, rows, key, 500, 500)[:3]

    del at
    keys = jax.random.split(jax.random.key(0), reps)
    point, lower, upper = jax.vmap(one)(jnp.asarray(types), jnp.asarray(action), jnp.asarray(reward), keys)
    lower, upper = np.asarray(lower), np.asarray(upper)
    covered = ((lower <= truth) & (truth <= upper)).mean(axis=0)
    assert np.all((covered >= 0.90) & (covered <= 0.99)), covered
    shifted = truth + 2 * float(np.mean(upper - lower)) / 2
    assert np.all(((lower <= shifted) & (shifted <= upper)).mean(axis=0) < 0.7)
    assert abs(float(np.mean(point[:, 1])) - truth) < 3 * float(np.std(point[:, 1])) / math.sqrt(reps)


# ----------------------------------------------------------------- the policy's distribution
def _fitted_linear_ts(n_features=3, n_actions=2, seed=0):
    from bandits_jax.policies import Feedback, LinearTS

    rng = np.random.default_rng(seed)
    policy = LinearTS(n_features=n_features)
    state = policy.init(n_actions)
    x = rng.normal(size=(60, n_features)).astype(np.float32)
    a = rng.integers(0, n_actions, 60)
    r = (rng.random(60) < 0.5).astype(np.float32)
    state, _ = policy.update(
        jax.random.key(1), state, Feedback(jnp.asarray(x), jnp.asarray(a), jnp.asarray(r), jnp.ones(60, bool))
    )
    return policy, state


def test_thompson_distribution_matches_closed_form():
    """Two-action linear TS: a row's score draws are independent Normals, so P(action 1) =
    Phi((m1 - m0) / sqrt(v0 + v1)). Monte-Carlo frequencies lie within 4.5 of their own reported
    standard errors of it (all 40 rows; sigmoid is monotone, so the argmax is the score's)."""
    policy, state = _fitted_linear_ts()
    x = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    dist = ope.action_distribution(policy, x, state=state, n_draws=4000, random_seed=0)
    xt = np.concatenate([x, np.ones((40, 1), np.float32)], axis=1).astype(np.float64)
    mean, cov = np.asarray(state.mean, np.float64), np.asarray(state.cov, np.float64)
    m = xt @ mean.T
    v = np.einsum("ni,aij,nj->na", xt, cov, xt)
    p1 = stats.norm.cdf((m[:, 1] - m[:, 0]) / np.sqrt(v[:, 0] + v[:, 1]))
    probs, se = np.asarray(dist.probs), np.asarray(dist.stderr)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    exact_se = np.sqrt(p1 * (1 - p1) / 4000)
    assert np.all(np.abs(probs[:, 1] - p1) <= 4.5 * exact_se + 1e-6)
    np.testing.assert_allclose(se[:, 1], exact_se, atol=2e-3)
    assert dist.group_probs.shape == (10, 40, 2) and not dist.exact
    # negative control: the closed form of another state is far off
    assert np.max(np.abs(probs[:, 1] - (1 - p1))) > 0.1


def test_exact_distributions():
    """LinUCB is a function of the row (one-hot of its choice); epsilon-greedy is (1 - eps) on the
    mean's argmax plus eps / K, and Monte-Carlo through the generic path agrees with it."""
    from bandits_jax.policies import EpsilonGreedy, LinUCB
    from bandits_jax.strategy import ClassicBandit

    x = np.random.default_rng(4).normal(size=(30, 3)).astype(np.float32)
    lin = LinUCB(n_features=3)
    state = lin.init(3)
    dist = ope.action_distribution(lin, x, state=state)
    chosen = np.asarray(lin.predict(jax.random.key(9), state, jnp.asarray(x)).actions)
    assert dist.exact and dist.n_draws == 0
    np.testing.assert_array_equal(np.asarray(dist.probs), np.eye(3)[chosen])

    base, base_state = _fitted_linear_ts(n_actions=3)
    eg = EpsilonGreedy(base=base)
    eg_state = eg.init(3, epsilon=0.3)._replace(base=base_state)
    exact = ope.action_distribution(eg, x, state=eg_state)
    mc = ope._mc_counts(
        eg,
        eg_state,
        jax.random.key(0),
        jnp.asarray(x),
        ClassicBandit(),
        jnp.ones(3, bool),
        None,
        1,
        3000,
        0,
        500,
    )
    mc = np.asarray(mc[0][0]) / 3000
    p = np.asarray(exact.probs)
    assert exact.exact
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.unique(np.round(p.astype(np.float64), 5)), [0.1, 0.8], atol=1e-5)
    assert np.all(np.abs(mc - p) <= 4.5 * np.sqrt(p * (1 - p) / 3000) + 1e-6)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("action", np.array([0.5] * 10), "action must hold integer"),
        ("action", np.full(10, 7), "action must lie in"),
        ("reward", np.array([np.nan] + [1.0] * 9), "reward must be finite"),
        ("reward", np.ones(9), "reward has 9 rows"),
        ("propensity_score", np.zeros(10), "propensity_score must lie in"),
        ("propensity_score", np.full(10, 1.5), "propensity_score must lie in"),
        ("estimated_policy", np.full((10, 3), 0.5), "rows must sum to 1"),
        ("estimated_policy", np.ones(10), "estimated_policy must have shape"),
        ("expected_reward", np.ones((10, 4)), "disagree on n_actions"),
        ("expected_importance_weight", -np.ones(10), "expected_importance_weight must be >= 0"),
    ],
)
def test_bad_inputs_name_the_field(field, value, message):
    data = {
        "action": np.arange(10) % 3,
        "reward": np.ones(10),
        "propensity_score": np.full(10, 1 / 3),
        "estimated_policy": np.full((10, 3), 1 / 3),
        "expected_reward": np.full((10, 3), 0.5),
        "expected_importance_weight": np.ones(10),
    }
    data[field] = value
    with pytest.raises((ValueError, TypeError), match=message):
        ope.estimate(**data, n_bootstrap_samples=10, random_state=0)


def test_bad_estimators_and_hyperparameters():
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        ope.estimator("nope")
    assert isinstance(ope.estimator("DoublyRobust"), ope.DoublyRobust)
    with pytest.raises(ValueError, match="shrinkage_factor must lie in"):
        ope.SubGaussianInverseProbabilityWeighting(shrinkage_factor=1.5)
    with pytest.raises(ValueError, match="shrinkage_factor must be > 0"):
        ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=0.0)
    with pytest.raises(ValueError, match="alpha"):
        ope.InverseProbabilityWeighting(alpha=1.0)
    with pytest.raises(ValueError, match="switch_threshold"):
        ope.SwitchDoublyRobust(switch_threshold=float("nan"))
    with pytest.raises(ValueError, match="missing input"):
        ope.estimate(
            ["dr"], action=[0, 1], reward=[1, 0], propensity_score=[0.5, 0.5], estimated_policy=np.eye(2)
        )
    with pytest.raises(TypeError, match="list of names"):
        ope.estimate(
            "ipw", action=[0, 1], reward=[1, 0], propensity_score=[0.5, 0.5], estimated_policy=np.eye(2)
        )


# ------------------------------------------------------------------------ evaluate and CLI
def _cmab_case(policy="linear_ts", n=300, seed=0):
    from bandits_jax.cmab import CmabBernoulli

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    ids = ["a", "b", "c"]
    action = rng.integers(0, 3, n)
    reward = (rng.random(n) < 0.3 + 0.4 * (x[:, 0] > 0) * (action == 1)).astype(int)
    mab = CmabBernoulli.cold_start(action_ids=ids, n_features=3, random_seed=0, policy=policy)
    mab.update(context=x[:100], actions=[ids[i] for i in action[:100]], rewards=list(reward[:100]))
    logged = {
        "context": x,
        "action": np.array(ids)[action],
        "reward": reward,
        "propensity_score": np.full(n, 1 / 3),
    }
    return mab, logged


def test_evaluate_a_model_leaves_it_unchanged():
    mab, logged = _cmab_case()
    state, key = mab._padded_snapshot()
    table = ope.evaluate(mab, logged, n_mc_experiments=100, n_bootstrap_samples=100, random_seed=0)
    assert table.estimator == tuple(ope.ESTIMATORS)
    assert all(np.isfinite(table.value)) and all(m > 0 for m in table.mc_error[:-1])
    assert math.isnan(table.mc_error[-1])  # b-ipw: its classifier learns from one draw per row
    assert all(lo <= v <= hi for v, lo, hi in zip(table.value, table.lower, table.upper))
    after, key_after = mab._padded_snapshot()
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state, after)))
    assert bool(jnp.array_equal(jax.random.key_data(key), jax.random.key_data(key_after)))
    again = ope.evaluate(mab, logged, n_mc_experiments=100, n_bootstrap_samples=100, random_seed=0)
    np.testing.assert_equal(again.to_dict(), table.to_dict())  # one seed: the same table
    assert "| ipw |" in table.to_markdown() and table.to_dict()["estimator"][0] == "rep"


def test_evaluate_refuses_bad_logged_data():
    mab, logged = _cmab_case()
    bad = dict(logged, action=np.array(["a"] * 299 + ["zzz"]))
    with pytest.raises(ValueError, match="action holds unknown action id"):
        ope.evaluate(mab, bad, n_mc_experiments=10, n_bootstrap_samples=10)
    with pytest.raises(ValueError, match="context"):
        ope.evaluate(
            mab, dict(logged, context=logged["context"][:10]), n_mc_experiments=10, n_bootstrap_samples=10
        )
    with pytest.raises(ValueError, match="propensity_score"):
        ope.evaluate(
            mab, dict(logged, propensity_score=np.zeros(300)), n_mc_experiments=10, n_bootstrap_samples=10
        )
    with pytest.raises(ValueError, match="unknown field"):
        ope.evaluate(mab, dict(logged, rewards=logged["reward"]), n_mc_experiments=10, n_bootstrap_samples=10)


def test_evaluate_recovers_a_known_value():
    """A deterministic evaluation policy (LinUCB after fitting) on uniformly logged data: IPW, DR
    and DM agree with the exact value of that policy under the simulator's reward probabilities
    to within their intervals plus the reward model's error."""
    mab, logged = _cmab_case("lin_ucb", n=3000, seed=1)
    table = ope.evaluate(mab, logged, ["ipw", "snips", "dr"], n_bootstrap_samples=500, random_seed=0)
    x = logged["context"]
    chosen = np.asarray(mab.predict(context=x)[0])  # the model's own decision (LinUCB: deterministic)
    q = np.stack([np.full(len(x), 0.3), 0.3 + 0.4 * (x[:, 0] > 0), np.full(len(x), 0.3)], axis=1)
    truth = float(np.mean(q[np.arange(len(x)), np.searchsorted(["a", "b", "c"], chosen)]))
    for i in range(3):
        half = (table.upper[i] - table.lower[i]) / 2
        assert abs(table.value[i] - truth) < 1.5 * half, (table.estimator[i], table.value[i], truth)
    assert table.mc_error == (0.0, 0.0, 0.0)


def test_evaluate_smab():
    from bandits_jax.smab import SmabBernoulli

    mab = SmabBernoulli.cold_start(action_ids=["x", "y"], random_seed=0)
    mab.update(actions=["x"] * 20 + ["y"] * 20, rewards=[1] * 15 + [0] * 5 + [1] * 5 + [0] * 15)
    n = 400
    rng = np.random.default_rng(0)
    action = rng.integers(0, 2, n)
    reward = (rng.random(n) < np.where(action == 0, 0.7, 0.2)).astype(int)
    logged = {"action": np.array(["x", "y"])[action], "reward": reward, "propensity_score": np.full(n, 0.5)}
    table = ope.evaluate(
        mab, logged, ["ipw", "dm"], n_mc_experiments=200, n_bootstrap_samples=200, random_seed=0
    )
    assert table.value[0] > 0.55  # it mostly plays x (0.7)


def test_cli_evaluate(tmp_path, capsys):
    from bandits_jax.cli import main

    mab, logged = _cmab_case()
    mab.save(tmp_path / "model.npz")
    np.savez(tmp_path / "logged.npz", **logged)
    out = tmp_path / "ope.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "model.npz"),
            "--data",
            str(tmp_path / "logged.npz"),
            "--estimators",
            "ipw,dr",
            "--n-mc",
            "50",
            "--n-bootstrap",
            "50",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["table"]["estimator"] == ["ipw", "dr"] and result["n_rows"] == 300
    assert "| dr |" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", **dict(logged, propensity_score=np.full(300, 2.0)))
    code = main(["evaluate", "--model", str(tmp_path / "model.npz"), "--data", str(tmp_path / "bad.npz")])
    assert code == 2
    assert "propensity_score must lie in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "m", "--data", "d", "--estimators", "nope"])


# ------------------------------------------------------------------ edge cases (review findings)
def test_overflowing_draws_are_refused():
    """A row whose draws overflow float32 is refused as the model's predict refuses it, in the
    Monte-Carlo and the exact paths (not silently counted)."""
    from bandits_jax.cmab import CmabBernoulli
    from bandits_jax.policies import LinUCB

    mab = CmabBernoulli.cold_start(action_ids=["a", "b"], n_features=2, random_seed=0)
    x = np.array([[0.1, 0.2], [1e20, 1e20]], np.float32)
    with pytest.raises(ValueError, match="context row 1 is too large"):
        ope.action_distribution(mab, x, n_draws=20, random_seed=0)
    with pytest.raises(ValueError, match="context row 1 is too large"):
        mab.predict(context=x)
    lin = LinUCB(n_features=2)
    with pytest.raises(ValueError, match="context row 0 is too large"):
        ope.action_distribution(lin, np.full((2, 2), 1e30, np.float32), state=lin.init(2))
    assert ope.action_distribution(mab, x[:1], n_draws=20, random_seed=0).probs.shape == (1, 2)


def test_resamples_without_weight_are_left_out():
    """3 of 200 rows carry the policy's weight: about 5% of resamples hold none of them
    ((197/200)**200), where SNIPS and replay are undefined; they are left out of the intervals
    (rewards are all 1, so every defined resample gives exactly 1), not NaN and not 0."""
    a = np.ones(200, int)
    a[:3] = 0
    table = ope.estimate(
        ["snips", "rep", "ipw"],
        action=a,
        reward=np.ones(200),
        propensity_score=np.full(200, 0.5),
        estimated_policy=np.eye(2)[np.zeros(200, int)],
        n_bootstrap_samples=4000,
        random_state=0,
    )
    for i in (0, 1):
        assert table.value[i] == pytest.approx(1.0)
        assert table.lower[i] == pytest.approx(1.0) and table.upper[i] == pytest.approx(1.0)
        assert table.std[i] == pytest.approx(0.0, abs=1e-6)
    assert table.lower[2] == 0.0 and table.std[2] > 0.01  # IPW is defined (0) on those resamples


def test_subgaussian_at_full_shrinkage_keeps_zero_weights():
    """At shrinkage 1 the sub-Gaussian weight is w / w = 1 for w > 0 and 0 for w = 0 (not 0/0)."""
    est = ope.SubGaussianInverseProbabilityWeighting(shrinkage_factor=1.0)
    rows = est.estimate_sample_rewards(
        action=np.arange(10) % 2,
        reward=np.ones(10),
        propensity_score=np.full(10, 0.5),
        estimated_policy=np.eye(2)[np.zeros(10, int)],
    )
    np.testing.assert_array_equal(rows, np.tile([1.0, 0.0], 5))


def test_values_must_be_finite_in_the_compute_precision():
    data = {
        "action": np.arange(4) % 2,
        "reward": np.ones(4),
        "propensity_score": np.full(4, 0.5),
        "estimated_policy": np.full((4, 2), 0.5),
    }
    with pytest.raises(ValueError, match="propensity_score must lie in"):
        ope.estimate(["ipw"], **dict(data, propensity_score=np.full(4, 1e-50)), n_bootstrap_samples=5)
    with pytest.raises(ValueError, match="reward must be finite in float32"):
        ope.estimate(["ipw"], **dict(data, reward=np.full(4, 1e39)), n_bootstrap_samples=5)
    with jax.enable_x64(True):  # finite in float64: computed
        table = ope.estimate(["ipw"], **dict(data, reward=np.full(4, 1e39)), n_bootstrap_samples=5)
        assert table.value[0] == pytest.approx(1e39)


def test_estimate_takes_the_estimators_bootstrap_settings_and_compiles_once():
    """estimate() uses the instances' n_bootstrap_samples and random_state when not given (two
    calls with one seed agree), and a new seed compiles nothing."""
    rng = np.random.default_rng(5)
    data = {
        "action": rng.integers(0, 2, 300),
        "reward": rng.integers(0, 2, 300),
        "propensity_score": np.full(300, 0.5),
        "estimated_policy": rng.dirichlet([1, 1], 300),
    }
    a = ope.estimate([ope.InverseProbabilityWeighting(n_bootstrap_samples=77, random_state=3)], **data)
    b = ope.estimate([ope.InverseProbabilityWeighting(n_bootstrap_samples=77, random_state=3)], **data)
    np.testing.assert_equal(a.to_dict(), b.to_dict())
    assert a.n_bootstrap_samples == 77
    before = ope._estimate_all._cache_size()
    c = ope.estimate([ope.InverseProbabilityWeighting(n_bootstrap_samples=77, random_state=4)], **data)
    assert ope._estimate_all._cache_size() == before and c.lower != a.lower
    with pytest.raises(ValueError, match="disagree on n_bootstrap_samples"):
        ope.estimate([ope.InverseProbabilityWeighting(n_bootstrap_samples=5), "dm"], **data)
    with pytest.raises(TypeError, match="random_state must be an int"):
        ope.InverseProbabilityWeighting(random_state=True)
    twice = ope.estimate(
        [
            ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=1.0),
            ope.DoublyRobustWithOptimisticShrinkage(shrinkage_factor=10.0),
        ],
        **data,
        expected_reward=np.full((300, 2), 0.5),
        n_bootstrap_samples=10,
    )
    assert twice.estimator[0] != twice.estimator[1] and "shrinkage_factor=1.0" in twice.estimator[0]


def test_fit_reward_model_validates_and_cross_fits():
    """Bad inputs are refused naming the argument; on a linear-logistic problem the cross-fitted
    reward model is close to the true probabilities (mean absolute error under 0.05 on 4000 rows;
    the model is the truth's family), and a row never predicts itself (folds differ)."""
    from bandits_jax.policies import LinearTS

    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=(n, 2)).astype(np.float32)
    a = rng.integers(0, 2, n)
    true = 1 / (1 + np.exp(-np.stack([x[:, 0], -x[:, 1]], axis=1)))
    r = (rng.random(n) < true[np.arange(n), a]).astype(int)
    q = ope.fit_reward_model(x, a, r, 2, random_seed=0)
    assert np.mean(np.abs(q - true)) < 0.05
    one_fold = ope.fit_reward_model(x, a, r, 2, n_folds=1, random_seed=0)
    assert not np.allclose(q, one_fold)
    with pytest.raises(ValueError, match="action must lie in"):
        ope.fit_reward_model(x, a + 5, r, 2)
    with pytest.raises(ValueError, match="reward has 5 rows"):
        ope.fit_reward_model(x, a, r[:5], 2)
    with pytest.raises(ValueError, match="context has 10 rows"):
        ope.fit_reward_model(x[:10], a, r, 2)
    with pytest.raises(ValueError, match="n_features=3"):
        ope.fit_reward_model(x, a, r, 2, model=LinearTS(n_features=3))
    with pytest.raises(ValueError, match="reward"):
        ope.fit_reward_model(x, a, r + 4.5, 2, model=LinearTS(n_features=2))


def test_mc_error_matches_the_spread_over_seeds():
    """The batch-means Monte-Carlo error of a value agrees with the spread of that value over
    independent draw seeds (20 seeds: the sd of a sd estimate is about 16%; the ratio must lie
    in [0.6, 1.6]), also with a draw count of no small divisor (97: unequal rest)."""
    mab, logged = _cmab_case("linear_ts", n=200)
    for n_draws in (100, 97):
        values, errors = [], []
        for seed in range(20):
            t = ope.evaluate(
                mab, logged, ["ipw"], n_mc_experiments=n_draws, n_bootstrap_samples=2, random_seed=seed
            )
            values.append(t.value[0])
            errors.append(t.mc_error[0])
        ratio = np.mean(errors) / np.std(values, ddof=1)
        assert 0.6 < ratio < 1.6, (n_draws, ratio)


def test_model_controls_match_its_predict():
    """With the object's exploration controls (epsilon with a default action) the distribution
    is the model's own decision: 300 calls of predict on 10 rows agree with 3000 draws within 5
    binomial standard errors per cell."""
    from bandits_jax.cmab import CmabBernoulli

    mab, logged = _cmab_case("linear_ts")
    ctl = CmabBernoulli.cold_start(
        action_ids=["a", "b", "c"],
        n_features=3,
        random_seed=0,
        policy="linear_ts",
        epsilon=0.3,
        default_action="c",
    )
    ctl.update(
        context=logged["context"][:100],
        actions=list(logged["action"][:100]),
        rewards=list(logged["reward"][:100]),
    )
    x = logged["context"][:10]
    dist = np.asarray(ope.action_distribution(ctl, x, n_draws=3000, random_seed=0).probs)
    picks = np.array([np.searchsorted(["a", "b", "c"], ctl.predict(context=x)[0]) for _ in range(300)])
    freq = np.stack([(picks == k).mean(axis=0) for k in range(3)], axis=1)
    se = np.sqrt(dist * (1 - dist) / 300 + dist * (1 - dist) / 3000) + 1e-3
    assert np.all(np.abs(freq - dist) < 5 * se)
    assert np.all(dist[:, 2] >= 0.3 - 5 * np.sqrt(0.3 * 0.7 / 3000))  # explores to the default


def test_cli_refuses_unreadable_data(tmp_path, capsys):
    from bandits_jax.cli import main

    mab, _ = _cmab_case()
    mab.save(tmp_path / "model.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    code = main(["evaluate", "--model", str(tmp_path / "model.npz"), "--data", str(tmp_path / "bad.npz")])
    assert code == 2 and "cannot read logged data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "m", "--data", "d", "--estimators", "ipw,InverseProbabilityWeighting"])


def test_parquet_columns(tmp_path, monkeypatch):
    """.parquet logged data (pyarrow is optional: a stand-in module serves its table here):
    context columns context_0, context_1, ... in numeric order, the other fields by name."""
    import sys
    import types

    columns = {
        "action": ["a", "b"],
        "reward": [1, 0],
        "propensity_score": [0.5, 0.5],
        "context_10": [3.0, 4.0],
        "context_2": [1.0, 2.0],
    }
    table = types.SimpleNamespace(to_pydict=lambda: columns)
    parquet = types.ModuleType("pyarrow.parquet")
    parquet.read_table = lambda path: table
    monkeypatch.setitem(sys.modules, "pyarrow", types.ModuleType("pyarrow"))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", parquet)
    logged = ope.load_logged_data(tmp_path / "logged.parquet")
    np.testing.assert_array_equal(logged.context, [[1.0, 3.0], [2.0, 4.0]])
    assert list(logged.action) == ["a", "b"] and logged.expected_reward is None
    with pytest.raises(ValueError, match="must be a .npz or .parquet"):
        ope.load_logged_data(tmp_path / "logged.csv")


def test_evaluate_with_a_given_or_pluggable_reward_model():
    """DM uses logged_data.expected_reward when given (exactly: q constant 0.25 gives 0.25), and a
    policy passed as reward_model otherwise."""
    from bandits_jax.policies import LinearTS

    mab, logged = _cmab_case("lin_ucb")
    given = dict(logged, expected_reward=np.full((300, 3), 0.25))
    table = ope.evaluate(mab, given, ["dm"], n_bootstrap_samples=20, random_seed=0)
    assert table.value[0] == pytest.approx(0.25)
    plug = ope.evaluate(
        mab, logged, ["dm"], n_bootstrap_samples=20, random_seed=0, reward_model=LinearTS(n_features=3)
    )
    default = ope.evaluate(mab, logged, ["dm"], n_bootstrap_samples=20, random_seed=0)
    assert plug.value[0] == pytest.approx(default.value[0], rel=1e-6)  # the default is this model
    with pytest.raises(ValueError, match="n_features=2"):
        ope.evaluate(mab, logged, ["dm"], n_bootstrap_samples=20, reward_model=LinearTS(n_features=2))


def test_functional_core_under_jit_and_vmap(logged):
    """ope.rows + ope.policy_value trace: vmapped over estimators' hyperparameters and jitted, they
    equal the checked path's values."""
    inputs = _inputs(logged, "stochastic")
    with jax.enable_x64(True):
        r = jax.jit(ope.rows)(
            jnp.asarray(inputs["action"]),
            jnp.asarray(inputs["reward"], float),
            jnp.asarray(inputs["estimated_policy"]),
            jnp.asarray(inputs["propensity_score"]),
            jnp.asarray(inputs["expected_reward"]),
        )
        lams = jnp.asarray([0.5, 2.0, 10.0])
        values = jax.jit(jax.vmap(lambda lam: ope.policy_value(_pess(lam), r)))(lams)
        for lam, v in zip([0.5, 2.0, 10.0], np.asarray(values)):
            expected = ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=lam).estimate_policy_value(
                **inputs
            )
            assert float(v) == pytest.approx(expected, rel=1e-12)


def _pess(lam):
    """A pessimistic DRos whose shrinkage is traced (the estimators are pytrees)."""
    est = ope.DoublyRobustWithPessimisticShrinkage(shrinkage_factor=1.0)
    return jax.tree.unflatten(jax.tree.structure(est), [est.alpha, lam])
