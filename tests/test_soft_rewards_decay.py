"""Soft rewards (``use_soft_rewards``) and forgetting (``decay_factor``), PyBandits' semantics, on
the policy contract and through the object API (issue 12, items 2 and 3)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.likelihoods import Bernoulli, SoftBernoulli, SoftBernoulliStats, host_counts
from bandits_jax.persistence import ModelFormatError
from bandits_jax.policies import BetaBernoulli, BnnTS, Feedback, Forgetting, LinearTS, Network, SviSettings
from bandits_jax.simulation.environments import LogisticEnv, PiecewiseEnv
from bandits_jax.simulation.run import simulate_policies
from bandits_jax.smab import SmabBernoulli
from bandits_jax.transfer import edit_model_on_the_fly
from tests.conftest import count_compiles


def trees_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


# ------------------------------------------------------------------ soft counters
def test_soft_counters_match_a_float64_reference_over_many_batches():
    rng = np.random.default_rng(0)
    lik = SoftBernoulli()
    stats = lik.init_stats(3)
    ref_s, ref_f = np.ones(3), np.ones(3)
    for _ in range(200):
        y = rng.choice([0.0, 1.0, 0.5, 0.1, 0.9, 1 / 3], size=(3, 16))
        valid = rng.random((3, 16)) < 0.7
        valid[2] = False  # an action without rows keeps its counts
        stats = lik.update_stats(stats, jnp.asarray(y, jnp.float32), jnp.asarray(valid))
        ref_s += np.where(valid, y, 0).sum(1)
        ref_f += np.where(valid, 1 - y, 0).sum(1)
    s, f = host_counts(stats)
    # float32 sums of <= 16 rewards per batch (error <= 16 * 2**-24 each) over 200 batches
    np.testing.assert_allclose(s, ref_s, rtol=0, atol=200 * 16 * 2**-24 * 2)
    np.testing.assert_allclose(f, ref_f, rtol=0, atol=200 * 16 * 2**-24 * 2)
    assert s[2] == 1 and f[2] == 1
    # every row adds exactly 1 in total: whole parts and fractions add to an integer
    np.testing.assert_allclose(s + f, np.round(ref_s + ref_f), atol=1e-4)
    assert ((np.asarray(stats.frac_successes) >= 0) & (np.asarray(stats.frac_successes) < 1)).all()


def test_soft_counters_stay_exact_beyond_float32_integers():
    """A count of 2**25 + 0.5 is not a float32 (negative control below); whole part + fraction
    holds it exactly."""
    lik = SoftBernoulli()
    big = jnp.asarray(np.full((1,), 2**25, np.int32))
    stats = SoftBernoulliStats(big, big, jnp.zeros(1), jnp.zeros(1))
    for _ in range(3):
        stats = lik.update_stats(stats, jnp.array([[0.5]]), jnp.array([[True]]))
    s, f = host_counts(stats)
    assert s[0] == 2**25 + 1.5 and f[0] == 2**25 + 1.5
    assert np.float32(2**25) + np.float32(0.5) == np.float32(2**25)  # what a float32 count would do


def test_binary_and_soft_likelihoods_give_the_same_counts_on_0_1_rewards():
    y = jnp.array([[1.0, 0.0, 1.0, 1.0]])
    valid = jnp.array([[True, True, True, False]])
    hard = Bernoulli().update_stats(Bernoulli().init_stats(1), y, valid)
    soft = SoftBernoulli().update_stats(SoftBernoulli().init_stats(1), y, valid)
    assert [c.tolist() for c in host_counts(hard)] == [[3], [2]]
    assert [c.tolist() for c in host_counts(soft)] == [[3.0], [2.0]]


# ------------------------------------------------------------------ soft rewards, object API
@pytest.mark.parametrize("make", ["smab", "cmab", "linear_ts"])
def test_soft_rewards_are_counted_as_pybandits_does(make):
    model = _model(make, use_soft_rewards=True)
    rewards = [0.25, 1.0, 0.5, 0.0, 0.75]
    actions = ["a", "a", "b", "a", "b"]
    _update(model, actions, rewards)
    assert model.use_soft_rewards
    a, b = model.actions["a"], model.actions["b"]
    assert (a.n_successes, a.n_failures) == (1 + 1.25, 1 + 1.75)
    assert (b.n_successes, b.n_failures) == (1 + 1.25, 1 + 0.75)
    assert isinstance(a.n_successes, float)


@pytest.mark.parametrize("make", ["smab", "cmab"])
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([0.5, 1.5], ValueError),
        ([0.5, -0.1], ValueError),
        ([0.5, float("nan")], ValueError),
        ([0.5, float("inf")], ValueError),
        ([0.5, "1"], TypeError),
        ([0.5, None], TypeError),
        ("01", TypeError),
        ([[0.5, 0.5]], ValueError),
    ],
)
def test_bad_soft_rewards_are_refused_and_change_nothing(make, bad, error):
    model = _model(make, use_soft_rewards=True)
    _update(model, ["a", "b"], [0.5, 0.5])
    state, key = model.state, model.key
    with pytest.raises(error, match="rewards"):
        _update(model, ["a", "b"][: len(bad)] if isinstance(bad, list) else ["a", "b"], bad)
    assert trees_equal(model.state, state) and trees_equal(
        jax.random.key_data(model.key), jax.random.key_data(key)
    )


def test_a_binary_model_refuses_soft_rewards_and_names_the_flag():
    model = _model("smab")
    with pytest.raises(ValueError, match="use_soft_rewards=True"):
        model.update(["a"], [0.5])
    assert model.actions["a"].n_successes == 1


def test_soft_rewards_move_the_beta_posterior_mean_to_the_reward_mean():
    """Beta(1 + sum r, 1 + sum (1 - r)): after n rows of mean reward m the posterior mean is
    (1 + n m) / (2 + n); the sampled probabilities average to it within 5 standard errors."""
    model = SmabBernoulli.cold_start(["a", "b"], random_seed=0, use_soft_rewards=True)
    model.update(["a"] * 400, [0.3] * 400)
    expected = (1 + 400 * 0.3) / (2 + 400)
    _, probs = model.predict_arrays(4000)
    a, b = 1 + 120, 1 + 280
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(probs[:, 0].mean() - expected) < 5 * sd / math.sqrt(4000)


# ------------------------------------------------------------------ forgetting: Beta
def test_beta_decay_follows_pybandits_rule_exactly():
    """n <- 1 + d (n - 1) + new for the actions with rows (PyBandits' BaseBeta._update); the raw
    counts add up everything; actions without rows keep their decayed counts."""
    d = 0.8
    model = SmabBernoulli.cold_start(["a", "b", "c"], random_seed=0, decay_factor=d)
    rng = np.random.default_rng(1)
    ref = {k: [1.0, 1.0] for k in "abc"}
    raw = {k: [1, 1] for k in "abc"}
    for _ in range(30):
        actions = list(rng.choice(["a", "b"], size=7))
        rewards = list(rng.integers(0, 2, size=7))
        model.update(actions, rewards)
        for k in set(actions):
            s = sum(r for x, r in zip(actions, rewards) if x == k)
            n = actions.count(k)
            ref[k] = [1 + d * (ref[k][0] - 1) + s, 1 + d * (ref[k][1] - 1) + n - s]
            raw[k] = [raw[k][0] + s, raw[k][1] + n - s]
    decayed = model.state.decayed
    for i, k in enumerate("abc"):
        np.testing.assert_allclose(
            [decayed.decayed_n_successes[i], decayed.decayed_n_failures[i]], ref[k], rtol=1e-5
        )
        assert [model.actions[k].n_successes, model.actions[k].n_failures] == raw[k]
    # the decayed counts are bounded: 1 + rows per update / (1 - d)
    assert float(decayed.decayed_n_successes.max() + decayed.decayed_n_failures.max()) < 2 + 2 * 7 / (1 - d)


def test_beta_draws_come_from_the_decayed_counts():
    """After many successes then many failures, the decayed posterior's mean is near the recent
    rate while the raw counts' mean is not (negative control: decay_factor=1 draws from raw)."""
    means = {}
    for d in (0.5, 1.0):
        model = SmabBernoulli.cold_start(["a"], random_seed=0, decay_factor=d)
        for rewards in ([1] * 50, [1] * 50, [0] * 50):
            model.update(["a"] * 50, rewards)
        means[d] = model.predict_arrays(2000)[1][:, 0].mean()
    decayed_mean = (1 + 0.5 * 50 + 0.25 * 50 * 0 + 0.25 * 50) / (2 + 0.25 * 50 + 0.5 * 50 + 50)  # hand rule
    assert abs(means[0.5] - decayed_mean) < 0.03
    assert abs(means[1.0] - 101 / 152) < 0.03


def test_decay_of_one_draws_exactly_as_no_decay():
    plain = SmabBernoulli.cold_start(["a", "b"], random_seed=3)
    one = SmabBernoulli.cold_start(["a", "b"], random_seed=3, decay_factor=1.0)
    for m in (plain, one):
        m.update(["a", "b", "a"], [1, 0, 1])
    np.testing.assert_array_equal(plain.predict_arrays(50)[1], one.predict_arrays(50)[1])


# ------------------------------------------------------------------ forgetting: the BNN
def test_bnn_forget_divides_scales_except_on_a_first_fit_or_without_rows():
    policy = BnnTS(Network(2, (3,)), svi=SviSettings(num_steps=5))
    state = policy.init(3, sigma=1.0)
    state = state._replace(stats=state.stats._replace(n_successes=jnp.array([2, 1, 5], jnp.int32)))
    out = policy.forget(state, jnp.full((3,), 0.5), jnp.array([True, True, False]))
    for new, old in zip(jax.tree.leaves(out.scale), jax.tree.leaves(state.scale)):
        np.testing.assert_allclose(new[0], old[0] / 0.5)
        np.testing.assert_array_equal(new[1], old[1])  # first fit: nothing to forget yet
        np.testing.assert_array_equal(new[2], old[2])  # no rows this update
    assert trees_equal(out.loc, state.loc)


def test_bnn_with_decay_widens_the_prior_of_each_fit_and_keeps_a_failed_fit_out():
    x = jax.random.normal(jax.random.key(0), (16, 2))
    fb = Feedback(x, jnp.zeros(16, jnp.int32), jnp.ones(16, jnp.int32), jnp.ones(16, bool))
    # each fit starts at the (widened) posterior itself, so 30 steps show the width it starts from
    base = BnnTS(Network(2), svi=SviSettings(num_steps=30, step_size=0.05, init_scale=None))
    widths = {}
    for d in (1.0, 0.5):
        policy = Forgetting(base)
        state = policy.init(2, decay_factor=d, sigma=1.0)
        for i in range(4):
            state, info = policy.update(jax.random.key(i), state, fb)
            assert bool(info.ok.all())
        widths[d] = float(state.base.scale.layers[0].weight[0].mean())
    assert widths[0.5] > 1.3 * widths[1.0]  # each fit starts from a prior twice as wide
    # a fit that diverges keeps the action as it was, not widened
    wild = Forgetting(BnnTS(Network(2), svi=SviSettings(num_steps=30, step_size=1e30, optimizer_type="sgd")))
    state = wild.init(2, decay_factor=0.5, sigma=1.0)
    state = state._replace(
        base=state.base._replace(stats=state.base.stats._replace(n_successes=jnp.array([3, 1])))
    )
    new, info = wild.update(jax.random.key(0), state, fb)
    assert not bool(info.ok[0])
    assert trees_equal(new.base, state.base)


def test_a_new_decay_factor_compiles_nothing():
    """decay_factor is data: a second value (and a sweep over it) reuses the compiled update."""
    policy = Forgetting(BetaBernoulli())
    fb = Feedback(jnp.zeros((8, 0)), jnp.arange(8) % 2, jnp.ones(8, jnp.int32), jnp.ones(8, bool))
    state = policy.init(2, decay_factor=0.9)
    policy.update(jax.random.key(0), state, fb)
    policy.predict(jax.random.key(0), state, jnp.zeros((8, 0)))
    with count_compiles() as compiled:
        other = policy.init(2, decay_factor=0.3)
        other, _ = policy.update(jax.random.key(0), other, fb)
        policy.predict(jax.random.key(0), other, jnp.zeros((8, 0)))
    assert compiled == []
    with count_compiles() as compiled:  # negative control: a new batch size compiles
        policy.update(
            jax.random.key(0),
            other,
            fb._replace(
                context=jnp.zeros((9, 0)),
                actions=jnp.zeros(9, jnp.int32),
                rewards=jnp.ones(9, jnp.int32),
                mask=jnp.ones(9, bool),
            ),
        )
    assert compiled


def test_forgetting_refuses_policies_without_a_rule():
    with pytest.raises(TypeError, match="forgetting rule"):
        Forgetting(LinearTS(2))
    with pytest.raises(ValueError, match="replay"):
        Forgetting(BnnTS(Network(2), replay_capacity=8))


# ------------------------------------------------------------------ forgetting follows a drift
def _switching_env():
    w = jnp.zeros((1, 2))
    pieces = [LogisticEnv(w, jnp.array([1.5, -1.5])), LogisticEnv(w, jnp.array([-1.5, 1.5]))]
    return PiecewiseEnv(pieces, period=30)  # the best action switches from 0 to 1 at round 30


@pytest.mark.parametrize(
    ("policy", "prior"),
    [
        (BetaBernoulli(), {}),
        (BnnTS(Network(1), svi=SviSettings(num_steps=50, step_size=0.1)), {"sigma": 1.0}),
    ],
    ids=["beta", "bnn"],
)
def test_decay_makes_the_policy_follow_a_switched_reward(policy, prior):
    """Reward probabilities 0.82 / 0.18 swap at round 30 (20 rows a round). With decay_factor 0.7
    the played arm's evidence shrinks to 0.7**k of its weight after k updates, so its mean falls
    below 1/2 within about 3 rounds of the switch: from round 40 on the new best arm gets >= 90%
    of the rows. Without decay (negative control) 600 rows of evidence hold the posterior, and it
    gets far fewer. Same draws for both (common random numbers), 4 seeds."""
    players = {"stationary": policy, "forgetting": Forgetting(policy)}
    init = {"stationary": prior, "forgetting": {"decay_factor": 0.7, **prior}}
    shares = {name: [] for name in players}
    for seed in range(4):
        out = simulate_policies(players, _switching_env(), jax.random.key(seed), 60, 20, init_data=init)
        for name in players:
            shares[name].append(float((np.asarray(out[name].actions)[40:] == 1).mean()))
        assert out["forgetting"].regret[30:].sum() < out["stationary"].regret[30:].sum()
    assert min(shares["forgetting"]) >= 0.9, shares
    assert np.mean(shares["stationary"]) < 0.5, shares


def test_a_sweep_over_decay_factors_is_one_program_and_each_run_its_own_simulation():
    from bandits_jax.simulation import sweep

    players = {"beta": Forgetting(BetaBernoulli())}
    env = _switching_env()

    def run(factors):
        data = {"beta": {"decay_factor": np.asarray(factors, np.float32)}}
        return sweep(players, env, [1, 1], 40, 10, init_data=data)  # one seed: only the factor differs

    run([1.0, 0.7])
    with count_compiles() as compiled:
        out = run([0.5, 0.9])
    assert not any("sweep" in name for name in compiled), compiled
    one = simulate_policies(
        players, env, jax.random.key(1), 40, 10, init_data={"beta": {"decay_factor": 0.9}}
    )
    np.testing.assert_array_equal(np.asarray(out["beta"].actions[1]), np.asarray(one["beta"].actions))
    # control: the factor matters (run 0, the same seed, forgets faster and plays otherwise)
    assert not np.array_equal(np.asarray(out["beta"].actions[0]), np.asarray(out["beta"].actions[1]))


# ------------------------------------------------------------------ object API: bad values, persistence, transfer
@pytest.mark.parametrize("make", ["smab", "cmab"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (1.5, ValueError),
        (-0.5, ValueError),
        (float("nan"), ValueError),
        (True, TypeError),
        ("0.9", TypeError),
        ([0.9], ValueError),
    ],
)
def test_bad_decay_factors_are_refused(make, value, error):
    with pytest.raises(error, match="decay_factor"):
        _model(make, decay_factor=value)


def test_bad_use_soft_rewards_is_refused():
    for make in ("smab", "cmab", "linear_ts"):
        with pytest.raises(TypeError, match="use_soft_rewards"):
            _model(make, use_soft_rewards="yes")


def test_decay_needs_a_policy_with_a_rule_in_the_object_api():
    with pytest.raises(ValueError, match="decay_factor"):
        CmabBernoulli.cold_start(["a", "b"], n_features=2, policy="linear_ts", decay_factor=0.9)


@pytest.mark.parametrize("make", ["smab", "cmab", "linear_ts"])
def test_soft_and_decayed_models_round_trip_exactly(make, tmp_path):
    decay = None if make == "linear_ts" else 0.9
    model = _model(make, use_soft_rewards=True, decay_factor=decay)
    _update(model, ["a", "b", "a"], [0.2, 1.0, 0.7])
    copies = [type(model).load(_saved(model, tmp_path)), type(model).from_state(model.get_state())]
    expected = model.predict_arrays(*_predict_args(make))
    for loaded in copies:
        assert trees_equal(loaded.state, model.state)
        assert loaded.use_soft_rewards and loaded.decay_factor == decay
        assert loaded.actions["a"].n_successes == model.actions["a"].n_successes
        assert trees_equal(loaded.predict_arrays(*_predict_args(make)), expected)
    header = model.get_state()[1]
    assert '"format_version":4' in header


def test_plain_models_still_save_as_version_2(tmp_path):
    model = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    assert '"format_version":2' in model.get_state()[1]


def test_a_hand_edited_decay_or_fraction_is_refused():
    import base64
    import json

    from bandits_jax import persistence

    model = SmabBernoulli.cold_start(["a", "b"], random_seed=0, use_soft_rewards=True, decay_factor=0.9)
    model.update(["a"], [0.5])
    for leaf, bad in (("decay_factor", 1.5), ("frac_successes", 1.0), ("decayed_n_failures", 0.5)):
        data = json.loads(model.get_state()[1])
        names = [a["name"] for a in data["arrays"]]
        i = next(k for k, n in enumerate(names) if n.endswith("." + leaf))
        arr = np.frombuffer(base64.b64decode(data["data"][i]), np.dtype(data["arrays"][i]["dtype"])).copy()
        arr[0] = bad
        data["data"][i] = base64.b64encode(arr.tobytes()).decode()
        body = {k: v for k, v in data.items() if k not in ("data", "sha256")}
        arrays = [
            np.frombuffer(base64.b64decode(t), np.dtype(a["dtype"])).reshape(a["shape"])
            for t, a in zip(data["data"], data["arrays"])
        ]
        data["sha256"] = persistence._digest(body, arrays)
        with pytest.raises(ModelFormatError, match=leaf):
            SmabBernoulli.from_state(json.dumps(data))


def test_transfer_takes_the_templates_reward_options():
    old = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    old.update(["a", "a", "b"], [1, 0, 1])
    template = SmabBernoulli.cold_start(["a", "c"], random_seed=1, use_soft_rewards=True, decay_factor=0.8)
    new = edit_model_on_the_fly(old, template)
    assert new.use_soft_rewards and new.decay_factor == 0.8
    assert (new.actions["a"].n_successes, new.actions["a"].n_failures) == (2, 2)
    np.testing.assert_array_equal(new.state.decayed.decayed_n_successes, [2.0, 1.0])  # seeded from raw
    new.update(["a"], [0.5])
    # soft counts do not fit a binary template: refused, naming the flag; whole ones do
    with pytest.raises(ValueError, match="use_soft_rewards"):
        edit_model_on_the_fly(new, SmabBernoulli.cold_start(["a"], random_seed=2))
    back = edit_model_on_the_fly(new, SmabBernoulli.cold_start(["c"], random_seed=2))
    assert back.decay_factor is None and back.actions["c"].n_successes == 1
    # a template's decay factor replaces the current one for the actions carried over
    again = edit_model_on_the_fly(
        new, SmabBernoulli.cold_start(["a"], random_seed=2, use_soft_rewards=True, decay_factor=0.5)
    )
    np.testing.assert_allclose(np.asarray(again.state.decay_factor), [0.5])
    assert again.actions["a"].n_successes == new.actions["a"].n_successes


def test_cmab_transfer_keeps_the_posterior_and_adds_forgetting():
    old = _model("cmab")
    _update(old, ["a", "b", "a"], [1, 0, 1])
    template = CmabBernoulli.cold_start(
        ["a", "b"],
        n_features=2,
        update_kwargs={"num_steps": 5},
        random_seed=1,
        decay_factor=0.9,
        use_soft_rewards=True,
    )
    new = edit_model_on_the_fly(old, template)
    assert trees_equal(new.state.base.loc, old.state.loc)
    assert new.decay_factor == 0.9 and new.state.decayed is None


def test_reset_restores_the_decayed_counts():
    model = SmabBernoulli.cold_start(["a", "b"], random_seed=0, decay_factor=0.5)
    model.update(["a", "b"], [1, 1])
    model.reset(["a"])
    assert model.state.decayed.decayed_n_successes.tolist() == [1.0, 2.0]
    assert model.decay_factor == 0.5 and model.state.decay_factor.tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ helpers
def _model(make, **options):
    if make == "smab":
        return SmabBernoulli.cold_start(["a", "b"], random_seed=0, **options)
    if make == "cmab":
        return CmabBernoulli.cold_start(
            ["a", "b"], n_features=2, update_kwargs={"num_steps": 5}, random_seed=0, **options
        )
    return CmabBernoulli.cold_start(["a", "b"], n_features=2, policy="linear_ts", random_seed=0, **options)


def _update(model, actions, rewards):
    if isinstance(model, SmabBernoulli):
        return model.update(actions, rewards)
    context = np.linspace(-1, 1, 2 * len(actions), dtype=np.float32).reshape(len(actions), 2)
    return model.update(actions, rewards, context)


def _predict_args(make):
    return (3,) if make == "smab" else (np.ones((3, 2), np.float32),)


def _saved(model, tmp_path):
    path = tmp_path / "model.npz"
    model.save(path)
    return path


# ------------------------------------------------------------------ review findings (regressions)
def test_tiny_complex_and_listed_decay_factors_are_refused():
    for value, error in ((1e-50, ValueError), (1e-40, ValueError), (np.complex128(0.5), TypeError)):
        with pytest.raises(error, match="decay_factor"):
            SmabBernoulli.cold_start(["a"], decay_factor=value)
    smallest = float(np.finfo(np.float32).tiny)
    assert SmabBernoulli.cold_start(["a"], decay_factor=smallest).decay_factor == smallest


def test_saturated_soft_counts_stay_at_the_int32_maximum():
    lik = SoftBernoulli()
    top = np.iinfo(np.int32).max
    stats = SoftBernoulliStats(jnp.array([top - 1], jnp.int32), jnp.array([1]), jnp.zeros(1), jnp.zeros(1))
    seen = []
    for r in (0.5, 0.7, 0.9, 0.2):
        stats = lik.update_stats(stats, jnp.array([[r]]), jnp.array([[True]]))
        seen.append(host_counts(stats)[0][0])
    assert seen == sorted(seen) and seen[-1] == top  # never decreases, held at the maximum


def test_soft_rewards_take_jax_arrays_as_the_binary_path_does():
    model = SmabBernoulli.cold_start(["a"], random_seed=0, use_soft_rewards=True)
    model.update(["a", "a"], jnp.array([0.25, 1.0]))
    assert model.actions["a"].n_successes == 2.25


def test_a_cmab_with_decay_shows_its_posterior_and_builds_from_its_state():
    model = _model("cmab", decay_factor=0.9)
    _update(model, ["a", "b"], [1, 0])
    view = model.actions["a"]
    assert view.loc is not None and trees_equal(view.loc, jax.tree.map(lambda x: x[0], model.state.base.loc))
    for state in (model.state, model.state.base):  # its own state, or a plain BnnState (wrapped)
        again = CmabBernoulli(
            action_ids=["a", "b"], config=model.config, state=state, strategy=model.strategy, key=model.key
        )
        assert trees_equal(again.state.base, model.state.base) and again.decay_factor == 0.9


def test_posterior_mean_of_a_forgetting_counting_policy_is_its_decayed_mean():
    model = CmabBernoulli.cold_start(
        ["a", "b"], n_features=2, policy="beta_bernoulli", random_seed=0, decay_factor=0.5
    )
    x = np.ones((3, 2), np.float32)
    model.update(["a", "a", "b"], [1, 1, 0], x)
    model.update(["a"], [0], x[:1])
    d = model.state.decayed
    expected = np.log(np.asarray(d.decayed_n_successes) / np.asarray(d.decayed_n_failures))
    np.testing.assert_allclose(model.posterior_mean_logits(x), np.broadcast_to(expected, (3, 2)), rtol=1e-5)
    # the decayed mean, not the raw counts' (3/2 for "a")
    assert not np.isclose(expected[0], np.log(3 / 2))


def test_policy_forgetting_by_name_takes_decay_factor():
    model = CmabBernoulli.cold_start(
        ["a", "b"],
        n_features=2,
        policy="forgetting",
        decay_factor=0.5,
        random_seed=0,
        policy_kwargs={"base": "beta_bernoulli"},
    )
    assert model.decay_factor == 0.5 and model.policy_name == "forgetting"
    plain = CmabBernoulli.cold_start(
        ["a", "b"], n_features=2, policy="forgetting", random_seed=0, policy_kwargs={"base": "beta_bernoulli"}
    )
    assert plain.decay_factor == 1.0


def test_simulate_with_a_decaying_config_forgets():
    from bandits_jax.config import CmabConfig
    from bandits_jax.simulation import simulate

    env = _switching_env()
    outs = {}
    for decay in (None, 0.5):
        config = CmabConfig(n_features=1, num_steps=30, sigma=1.0, decay_factor=decay)
        outs[decay] = np.asarray(simulate(config, env, jax.random.key(0), 40, 20).policy.regret)
    assert outs[0.5][30:].sum() < outs[None][30:].sum()
    with pytest.raises(ValueError, match="decay_factor"):
        from bandits_jax import core

        core.init(CmabConfig(n_features=1, decay_factor=0.5), 2)
