"""Simulation: simulate == a hand-written loop over the core and over the object API, sweep ==
separate simulate calls, sharded == one device, learning beats random, the CLI and the notebook.

Compilation dominates this file's time, so the tests share one configuration and one set of
sizes: the single-run program (``simulate`` / ``run_rounds``) and the vectorised sweep program
(one round per chunk, as the CLI runs it) are each compiled once and reused.
"""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bandits_jax import _random, cli, core, policies, simulation, smab
from bandits_jax.cli import simulate as _simulate_cli
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.config import CmabConfig
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import ClassicBandit
from tests.conftest import count_compiles

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES, N_ACTIONS, BATCH, ROUNDS, RUNS, STEPS = 4, 3, 16, 3, 3, 20
CFG = CmabConfig(n_features=N_FEATURES, num_steps=STEPS)


def make_envs(seed: int, n: int = RUNS) -> simulation.LogisticEnv:
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.vmap(lambda k: simulation.LogisticEnv.random(N_FEATURES, N_ACTIONS, key=k))(keys)


def env_of(envs, i):
    return jax.tree.map(lambda x: x[i], envs)


ENVS = make_envs(100)
KEYS = jax.random.split(jax.random.key(7), RUNS)


def run_sweep(keys=KEYS, envs=ENVS, n_rounds=ROUNDS, **kwargs):
    """The CLI's way of sweeping: one environment per run, one round per chunk."""
    return simulation.sweep(CFG, envs, keys, n_rounds, BATCH, env_axis=0, chunk_rounds=1, **kwargs)


def assert_traces_equal(got, want, rtol=1e-5, atol=1e-5):
    for name in ("policy", "random", "oracle", "smab"):
        g, w = getattr(got, name), getattr(want, name)
        np.testing.assert_array_equal(np.asarray(g.actions), np.asarray(w.actions), err_msg=name)
        np.testing.assert_array_equal(np.asarray(g.rewards), np.asarray(w.rewards), err_msg=name)
        np.testing.assert_allclose(g.regret, w.regret, rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(
            g.cumulative_regret, w.cumulative_regret, rtol=rtol, atol=atol, err_msg=name
        )
    np.testing.assert_array_equal(np.asarray(got.update_ok), np.asarray(want.update_ok))


SHARDED_SCRIPT = """
import sys, jax, numpy as np
sys.path[:0] = [{root!r}, {tests!r}]
import test_simulation as t
assert jax.device_count() == 2, jax.devices()
out = t.run_sweep()  # the runs are padded to a multiple of 2, half on each device
np.savez({out!r}, *[np.asarray(x) for x in jax.tree.leaves(out)])
"""

NOTEBOOK_SCRIPT = """
import nbclient, nbformat
nb = nbformat.read({src!r}, as_version=4)
nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={{"metadata": {{"path": {cwd!r}}}}}
).execute()
nbformat.write(nb, {out!r})
"""


@pytest.fixture(scope="module", autouse=True)
def background(request, tmp_path_factory):
    """The two checks that need a process of their own (two fake CPU devices; a notebook kernel)
    start before the other tests and compile while they do; their tests wait for them."""
    selected = {item.name for item in request.session.items}
    tmp = tmp_path_factory.mktemp("background")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    scripts = {}
    if "test_sweep_sharded_over_two_devices_equals_one_device" in selected:
        out = tmp / "sharded.npz"
        code = SHARDED_SCRIPT.format(root=str(ROOT), tests=str(Path(__file__).parent), out=str(out))
        extra = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
        scripts["sharded"] = (code, extra, out)
    wanted = ("nbclient", "nbformat", "ipykernel", "matplotlib")
    if "test_simulation_sweep_notebook_runs" in selected and all(importlib.util.find_spec(m) for m in wanted):
        out = tmp / "executed.ipynb"
        src = ROOT / "notebooks" / "simulation_sweep.ipynb"
        code = NOTEBOOK_SCRIPT.format(src=str(src), cwd=str(src.parent), out=str(out))
        scripts["notebook"] = (code, {}, out)
    jobs = {}
    for name, (code, extra, out) in scripts.items():
        log = tmp / f"{name}.log"
        with log.open("w") as f:
            proc = subprocess.Popen(
                [sys.executable, "-c", code], env={**env, **extra}, stdout=f, stderr=subprocess.STDOUT
            )
        jobs[name] = (proc, log, out)
    yield jobs
    for proc, _, _ in jobs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def swept():
    return run_sweep()


# ---------------------------------------------------------------------------------- environments
def test_environments_shapes_and_probabilities(getkey):
    for env in (
        simulation.LogisticEnv.random(5, 4, key=getkey()),
        simulation.MLPEnv.random(5, 4, key=getkey(), hidden=8),
    ):
        ctx = env.sample_context(getkey(), 7)
        probs = env.reward_probs(ctx)
        assert (env.n_features, env.n_actions) == (5, 4)
        assert ctx.shape == (7, 5) and probs.shape == (7, 4)
        assert np.all((np.asarray(probs) > 0) & (np.asarray(probs) < 1))
        key = getkey()
        ctx2, probs2 = env.sample(key, 7)
        np.testing.assert_array_equal(ctx2, env.sample_context(key, 7))
        np.testing.assert_array_equal(probs2, env.reward_probs(ctx2))


def test_classification_env_rewards_the_label(getkey):
    x = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    env = simulation.ClassificationEnv.from_arrays(x, ["b", "a", "c", "a"])
    assert (env.n_features, env.n_actions) == (2, 3)
    np.testing.assert_allclose(env.features.mean(axis=0), 0.0, atol=1e-6)
    key = getkey()
    ctx, probs = env.sample(key, 50)
    np.testing.assert_array_equal(ctx, env.sample_context(key, 50))
    # The sampled rows' one-hot labels equal the nearest-row lookup of reward_probs.
    np.testing.assert_array_equal(probs, env.reward_probs(ctx))
    np.testing.assert_array_equal(env.reward_probs(env.features).argmax(axis=1), [1, 0, 2, 0])
    with pytest.raises(ValueError, match="one entry per row"):
        simulation.ClassificationEnv.from_arrays(x, [0, 1])


def test_sklearn_loader(monkeypatch):
    pytest.importorskip("sklearn")
    env = simulation.load_sklearn("digits")
    assert (env.n_features, env.n_actions, env.features.shape[0]) == (64, 10, 1797)
    with pytest.raises(ValueError, match="unknown scikit-learn data set"):
        simulation.load_sklearn("mnist")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"bandits_jax\[sim\]"):
        simulation.load_sklearn("wine")


# ---------------------------------------------------------------------------------- simulate
def core_loop(env, key, n_rounds):
    """The documented key schedule, played round by round with the jitted core functions (the
    random baseline is the Uniform policy and the sMAB the BetaBernoulli one, whose keys advance as
    the object API's: one split before predict and one before update)."""
    policy_key, smab_key, env_key = jax.random.split(key, 3)
    random_key = jax.random.fold_in(key, 1)
    state, s_state = core.init(CFG, N_ACTIONS), smab.init(N_ACTIONS)
    u_state = policies.Uniform().init(N_ACTIONS)
    rows = np.arange(BATCH)
    actions, rewards, regrets = [], [], []
    for t in range(n_rounds):
        ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
        ctx, probs = env.sample(ctx_key, BATCH)
        outcome = np.asarray(_random.uniform(reward_key, probs.shape) < probs).astype(np.int32)
        policy_key, sub = jax.random.split(policy_key)
        chosen = np.asarray(core.predict(state, ctx, sub).actions)
        policy_key, sub = jax.random.split(policy_key)
        state, _ = core.update(CFG, state, ctx, chosen, outcome[rows, chosen], sub, rows_per_action=BATCH)
        smab_key, sub = jax.random.split(smab_key)
        s_chosen = np.asarray(smab.predict(s_state, sub, ClassicBandit(), BATCH)[0])
        smab_key, _ = jax.random.split(smab_key)
        s_state = smab.update(s_state, s_chosen, outcome[rows, s_chosen])
        random_key, sub = jax.random.split(random_key)
        r_chosen = np.asarray(policies.Uniform().predict(sub, u_state, ctx).actions)
        random_key, _ = jax.random.split(random_key)
        p = np.asarray(probs, np.float64)
        round_actions = [chosen, r_chosen, p.argmax(axis=1), s_chosen]
        actions.append(round_actions)
        rewards.append([outcome[rows, a] for a in round_actions])
        regrets.append([np.sum(p.max(axis=1) - p[rows, a]) for a in round_actions])
    return state, np.array(actions), np.array(rewards), np.array(regrets)


def test_simulate_equals_a_loop_over_the_core():
    env, key = env_of(ENVS, 0), KEYS[0]
    out = simulation.simulate(CFG, env, key, ROUNDS, BATCH)
    sim_state, again = simulation.run_rounds(
        CFG, env, simulation.init_simulation(CFG, env, key), 0, ROUNDS, BATCH
    )
    assert_traces_equal(again, out, rtol=0, atol=0)
    state, actions, rewards, regrets = core_loop(env, key, ROUNDS)
    for i, name in enumerate(("policy", "random", "oracle", "smab")):
        trace = getattr(out, name)
        np.testing.assert_array_equal(trace.actions, actions[:, i], err_msg=name)
        np.testing.assert_array_equal(trace.rewards, rewards[:, i], err_msg=name)
        np.testing.assert_allclose(trace.regret, regrets[:, i], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(trace.cumulative_regret, np.cumsum(regrets[:, i]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.oracle.regret, 0.0)
    for got, want in zip(jax.tree.leaves(sim_state.cmab), jax.tree.leaves(state)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert bool(np.all(out.update_ok))


def test_simulate_equals_a_loop_over_the_object_api():
    env, key = env_of(ENVS, 1), KEYS[1]
    sim_state, out = simulation.run_rounds(
        CFG, env, simulation.init_simulation(CFG, env, key), 0, ROUNDS, BATCH
    )
    ids = ["a", "b", "c"]
    mab = CmabBernoulli.cold_start(ids, N_FEATURES, update_kwargs={"num_steps": STEPS}, random_seed=0)
    sab = SmabBernoulli.cold_start(ids, random_seed=0)
    assert mab.config == CFG
    policy_key, smab_key, env_key = jax.random.split(key, 3)
    mab._key, sab._key = policy_key, smab_key
    rows = np.arange(BATCH)
    for t in range(ROUNDS):
        ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
        ctx, probs = env.sample(ctx_key, BATCH)
        outcome = np.asarray(_random.uniform(reward_key, probs.shape) < probs).astype(int)
        pred = mab.predict_arrays(np.asarray(ctx))
        chosen = pred.action_indices
        np.testing.assert_array_equal(chosen, out.policy.actions[t])
        mab.update(pred.actions, outcome[rows, chosen], np.asarray(ctx))
        s_ids = sab.predict_arrays(BATCH)[0]
        s_chosen = np.array([ids.index(a) for a in s_ids.tolist()])
        np.testing.assert_array_equal(s_chosen, out.smab.actions[t])
        sab.update(s_ids, outcome[rows, s_chosen])
    for got, want in zip(jax.tree.leaves(sim_state.cmab), jax.tree.leaves(mab.state)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(sim_state.smab.n_successes, sab.state.n_successes)


def test_simulate_rejects_bad_input():
    env = env_of(ENVS, 0)
    with pytest.raises(ValueError, match="n_features"):
        simulation.simulate(dataclasses.replace(CFG, n_features=5), env, KEYS[0], 2, 4)
    with pytest.raises(ValueError, match="n_rounds must be a positive int"):
        simulation.simulate(CFG, env, KEYS[0], 0, 4)
    with pytest.raises(ValueError, match="n_actions is 4"):
        simulation.simulate(CFG, env, KEYS[0], 2, 4, n_actions=4)
    with pytest.raises(ValueError, match="env_axis"):
        simulation.sweep(CFG, env, [0, 1], 2, 4, env_axis=1)
    with pytest.raises(ValueError, match="leading axis of 2 runs"):
        simulation.sweep(CFG, ENVS, [0, 1], 2, 4, env_axis=0)
    with pytest.raises(ValueError, match="one value per run"):
        simulation.sweep(CFG, env, [0, 1], 2, 4, prior_sigma=[1.0, 2.0, 3.0])


def test_prior_settings_are_the_configurations_prior():
    env = env_of(ENVS, 0)
    state = simulation.init_simulation(CFG, env, KEYS[0], prior_mu=0.5, prior_sigma=2.0).cmab
    want = core.init(dataclasses.replace(CFG, mu=0.5, sigma=2.0), N_ACTIONS)
    for got, ref in zip(jax.tree.leaves(state), jax.tree.leaves(want)):
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == ref.dtype


# ---------------------------------------------------------------------------------- any policies
FOUR = {name: cls.example(N_FEATURES) for name, cls in policies.REGISTRY.items()}


def policy_loop(policy, env, key, name, n_rounds, **init):
    """One policy of a generic simulation played round by round with its own predict / update,
    on the documented draws and with its documented key."""
    env_key, k = jax.random.split(key)[0], simulation.policy_key(key, name)
    state = policy.init(N_ACTIONS, **init)
    rows = np.arange(BATCH)
    actions, rewards, regrets = [], [], []
    for t in range(n_rounds):
        ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
        ctx, probs = env.sample(ctx_key, BATCH)
        outcome = np.asarray(_random.uniform(reward_key, probs.shape) < probs).astype(np.int32)
        k, sub = jax.random.split(k)
        chosen = np.asarray(policy.predict(sub, state, ctx).actions)
        k, sub = jax.random.split(k)
        feedback = policies.Feedback(ctx, chosen, outcome[rows, chosen], np.ones(BATCH, bool))
        state, _ = policy.update(sub, state, feedback)
        p = np.asarray(probs, np.float64)
        actions.append(chosen)
        rewards.append(outcome[rows, chosen])
        regrets.append(np.sum(p.max(axis=1) - p[rows, chosen]))
    return np.array(actions), np.array(rewards), np.array(regrets)


def test_simulate_any_policies_on_the_same_draws_equals_their_own_loops():
    env, key = env_of(ENVS, 0), KEYS[0]
    out = simulation.simulate_policies(FOUR, env, key, ROUNDS, BATCH)
    assert set(out) == {*FOUR, "oracle"}
    # One round_draws per round for everyone: the same best possible reward in every trace.
    for name, trace in out.items():
        np.testing.assert_array_equal(trace.best_reward, out["oracle"].best_reward, err_msg=name)
        assert trace.actions.shape == (ROUNDS, BATCH) and trace.update_ok.shape == (ROUNDS, N_ACTIONS)
    np.testing.assert_array_equal(out["oracle"].regret, 0.0)
    # The Mapping form of simulate is the same call.
    again = simulation.simulate(FOUR, env, key, ROUNDS, BATCH)
    for name in out:
        np.testing.assert_array_equal(again[name].actions, out[name].actions)
    for name in ("linear_ts", "uniform", "beta_bernoulli"):
        actions, rewards, regrets = policy_loop(FOUR[name], env, key, name, ROUNDS)
        np.testing.assert_array_equal(out[name].actions, actions, err_msg=name)
        np.testing.assert_array_equal(out[name].rewards, rewards, err_msg=name)
        np.testing.assert_allclose(out[name].regret, regrets, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(out[name].cumulative_regret, np.cumsum(regrets), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="other than 'oracle'"):
        simulation.simulate_policies({"oracle": policies.Uniform()}, env, key, 2, 4)
    with pytest.raises(ValueError, match="has n_features 5"):
        simulation.simulate_policies({"lin": policies.LinearTS(5)}, env, key, 2, 4)
    with pytest.raises(ValueError, match="do not play"):
        simulation.simulate_policies({"u": policies.Uniform()}, env, key, 2, 4, init_data={"x": {}})


def test_uniform_regrets_more_than_bnn_ts_on_a_logistic_env():
    env = env_of(make_envs(12), 0)
    players = {"bnn_ts": policies.BnnTS.from_config(CFG), "uniform": policies.Uniform()}
    out = simulation.simulate_policies(players, env, jax.random.key(11), 15, BATCH)
    bnn, uniform = float(out["bnn_ts"].cumulative_regret[-1]), float(out["uniform"].cumulative_regret[-1])
    # Measured with this key: bnn_ts / uniform about 0.3.
    assert bnn < 0.6 * uniform, (bnn, uniform)


def test_sweep_over_a_policys_init_data_compiles_once():
    players = {"linear_ts": policies.LinearTS.example(N_FEATURES), "uniform": policies.Uniform()}

    def run(sigma, players=players, keys=KEYS):
        return simulation.sweep(
            players,
            ENVS,
            keys,
            ROUNDS,
            BATCH,
            env_axis=0,
            chunk_rounds=1,
            init_data={"linear_ts": {"sigma": sigma}},
        )

    first = run(np.array([1.0, 1.0, 1.0], np.float32))
    assert set(first) == {"linear_ts", "uniform", "oracle"}
    assert first["linear_ts"].cumulative_regret.shape == (RUNS, ROUNDS)
    sigma = np.array([0.3, 3.0, 30.0], np.float32)
    with count_compiles() as compiled:
        out = run(sigma, keys=[3, 4, 5])
    assert not any("sweep" in name for name in compiled), compiled
    # Negative control: a new static setting is a new program.
    other = {**players, "linear_ts": policies.LinearTS(N_FEATURES, newton_steps=4)}
    with count_compiles() as compiled:
        run(sigma, players=other)
    assert any("sweep" in name for name in compiled), compiled
    # Run 1 of the sweep is its own simulation with that seed and sigma.
    one = simulation.simulate_policies(
        players, env_of(ENVS, 1), jax.random.key(4), ROUNDS, BATCH, init_data={"linear_ts": {"sigma": 3.0}}
    )
    for name in one:
        np.testing.assert_array_equal(out[name].actions[1], one[name].actions, err_msg=name)
        np.testing.assert_allclose(out[name].cumulative_regret[1], one[name].cumulative_regret, rtol=1e-5)


# ---------------------------------------------------------------------------------- sweep
def test_sweep_equals_separate_simulate_calls(swept):
    assert swept.policy.actions.shape == (RUNS, ROUNDS, BATCH)
    assert swept.policy.cumulative_regret.shape == (RUNS, ROUNDS)
    assert swept.update_ok.shape == (RUNS, ROUNDS, N_ACTIONS)
    for i in range(RUNS):
        one = simulation.simulate(CFG, env_of(ENVS, i), KEYS[i], ROUNDS, BATCH)
        assert_traces_equal(jax.tree.map(lambda x, i=i: x[i], swept), one)


def test_sweep_takes_seeds_and_traced_settings_without_recompiling(swept):
    sigma = np.array([10.0, 1.0, 10.0], np.float32)
    with count_compiles() as compiled:
        out = run_sweep(keys=[3, 4, 5], prior_sigma=sigma)
    assert not any("sweep" in name for name in compiled), compiled
    one = simulation.simulate(CFG, env_of(ENVS, 1), jax.random.key(4), ROUNDS, BATCH, prior_sigma=1.0)
    assert_traces_equal(jax.tree.map(lambda x: x[1], out), one)


def test_sweep_sharded_over_two_devices_equals_one_device(swept, background):
    proc, log, path = background["sharded"]
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    sharded = np.load(path)
    leaves = jax.tree.leaves(swept)
    assert len(sharded.files) == len(leaves)
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(sharded[f"arr_{i}"], np.asarray(leaf))


def test_learned_policy_beats_random_on_logistic_env():
    out = run_sweep(keys=jax.random.split(jax.random.key(11), RUNS), envs=make_envs(12), n_rounds=15)
    policy = np.asarray(out.policy.cumulative_regret[:, -1])
    random = np.asarray(out.random.cumulative_regret[:, -1])
    # Measured: policy/random about 0.3 at these sizes; the oracle's regret is 0 by definition.
    assert np.all(policy < 0.7 * random), (policy, random)
    assert policy.mean() < 0.5 * random.mean(), (policy, random)
    # Learning shows in the per-round regret: the last rounds cost far less than the first.
    per_round = np.asarray(out.policy.regret).mean(axis=0)
    assert per_round[-5:].mean() < 0.5 * per_round[:2].mean()
    np.testing.assert_array_equal(out.oracle.cumulative_regret, 0.0)


def test_sweep_configs_stacks_static_settings(swept):
    # Equal configurations, so the compiled sweep is reused; distinct ones compile one program each.
    out = simulation.sweep_configs([CFG, CFG], ENVS, KEYS, ROUNDS, BATCH, env_axis=0, chunk_rounds=1)
    assert out.policy.regret.shape == (2, RUNS, ROUNDS)
    for i in range(2):
        assert_traces_equal(jax.tree.map(lambda x, i=i: x[i], out), swept, rtol=0, atol=0)


def test_grid_orders_seeds_fastest():
    keys, settings = simulation.grid([5, 6], prior_sigma=[1.0, 2.0], prior_mu=[0.0, 3.0])
    assert keys.shape == (8,)
    np.testing.assert_array_equal(jax.random.key_data(keys[1]), jax.random.key_data(jax.random.key(6)))
    assert settings["prior_sigma"].tolist() == [1.0] * 4 + [2.0] * 4
    assert settings["prior_mu"].tolist() == [0.0, 0.0, 3.0, 3.0] * 2


# ---------------------------------------------------------------------------------- CLI
def cli_args(out: Path, *extra: str) -> list[str]:
    # The sizes of the tests above, so the CLI reuses their compiled sweep.
    return [
        "simulate",
        f"--runs={RUNS}",
        f"--rounds={ROUNDS}",
        f"--batch-size={BATCH}",
        f"--actions={N_ACTIONS}",
        f"--features={N_FEATURES}",
        f"--num-steps={STEPS}",
        "--no-progress",
        f"--out={out}",
        *extra,
    ]


def test_cli_simulate_writes_results_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(cli_args(tmp_path / "out")) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    png = (tmp_path / "out" / "regret.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    for name in ("policy", "random", "smab"):
        curves = np.array(results[f"{name}_cumulative_regret"])
        assert curves.shape == (RUNS, ROUNDS)
        assert np.all(np.diff(curves, axis=1) >= -1e-6)
    config = results["configuration"]
    assert (config["runs"], config["rounds"], config["batch_size"]) == (RUNS, ROUNDS, BATCH)
    assert (config["n_actions"], config["n_features"], config["environment"]) == (
        N_ACTIONS,
        N_FEATURES,
        "logistic",
    )
    assert config["cmab_config"]["num_steps"] == STEPS
    assert results["device_count"] == jax.device_count()
    assert results["wall_time_s"] > 0
    assert np.array(results["oracle_mean_reward"]).shape == (RUNS, ROUNDS)
    assert "final cumulative regret" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--runs=0"], "--runs: expected a positive integer"),
        (["--rounds", "-3"], "--rounds: expected a positive integer"),
        (["--environment=nope"], "--environment: invalid choice: 'nope'"),
        (["--hidden=4,x"], "comma-separated positive widths"),
    ],
)
def test_cli_simulate_rejects_bad_options(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(cli_args(tmp_path, *extra))
    assert exc.value.code != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_cli_simulate_explains_a_missing_extra_or_a_mismatched_data_set(tmp_path, capsys, monkeypatch):
    if _simulate_cli.importlib.util.find_spec("sklearn") is not None:
        assert cli.main(cli_args(tmp_path, "--environment=wine")) == 2
        assert "--features 4 does not match the 'wine' data set, which has 13" in capsys.readouterr().err
    real = _simulate_cli.importlib.util.find_spec
    monkeypatch.setattr(
        _simulate_cli.importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    assert cli.main(cli_args(tmp_path)) == 2
    assert "needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_cli_exit_code_in_a_real_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bandits_jax.cli", "simulate", "--runs", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--runs: expected a positive integer, got '0'" in proc.stderr


# ---------------------------------------------------------------------------------- notebook
def test_simulation_sweep_notebook_runs(background):
    if "notebook" not in background:
        pytest.skip("needs nbclient, nbformat, ipykernel and matplotlib (the test and sim extras)")
    import nbformat

    proc, log, path = background["notebook"]
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    nb = nbformat.read(path, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("final cumulative regret" in o.get("text", "") for o in outputs)
