"""The showdown runner (bandits_jax.showdown, ``bandits-jax showdown``): its files agree with each
other and with the per-seed curves they save, its intervals with scipy's, its seeds with a direct
sweep; a finished environment is resumed only while its settings are unchanged; bad names end in
one error line and exit status 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from bandits_jax import cli, showdown, simulation
from bandits_jax.policies import BnnTS, LinearTS, Network, SviSettings

ROOT = Path(__file__).resolve().parents[1]
SEEDS, ROUNDS, BATCH = [0, 1], 2, 8
ENVS = ["wheel:0.5", "logistic"]


def tiny_bnn(n_features):
    return BnnTS(
        Network(n_features, (3,)), svi=SviSettings(num_steps=5, optimizer_type="sgd", step_size=0.01)
    )


TINY = {"bnn_ts": tiny_bnn, "linear_ts": LinearTS.example}


def run(out, policies=None, envs=("logistic",), **kwargs):
    kwargs = {
        "seeds": SEEDS,
        "n_rounds": ROUNDS,
        "batch_size": BATCH,
        "progress": False,
        "plot": False,
        **kwargs,
    }
    return showdown.run_showdown(
        {"linear_ts": LinearTS.example} if policies is None else policies, list(envs), out_dir=out, **kwargs
    )


@pytest.fixture
def count_sweeps(monkeypatch):
    """Every call of simulation.sweep, by the environment it ran on (the runner's only way to play)."""
    calls = []
    real = simulation.sweep

    def counting(players, env, *args, **kwargs):
        calls.append(type(env).__name__)
        return real(players, env, *args, **kwargs)

    monkeypatch.setattr(simulation, "sweep", counting)
    return calls


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("showdown")
    result = showdown.run_showdown(
        TINY, ENVS, SEEDS, ROUNDS, BATCH, out, progress=False, plot=True, init_data={"bnn_ts": {"sigma": 1.0}}
    )
    return out, result


# ---------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("df", [*range(1, 31), 49, 100, 501])
@pytest.mark.parametrize("level", [0.95, 0.9, 0.5])
def test_t_quantile_matches_scipy(df, level):
    np.testing.assert_allclose(
        showdown.t_quantile(level, df), scipy.stats.t.ppf(0.5 + level / 2, df), rtol=1e-9
    )


def test_t_interval_matches_scipy_and_degenerates_to_none():
    x = np.array([3.0, 1.5, 4.0, 2.5, 7.0])
    lo, hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy.stats.sem(x))
    got = showdown.t_interval(x)
    np.testing.assert_allclose([got["low"], got["high"]], [lo, hi], rtol=1e-9)
    assert got["n"] == 5 and got["mean"] == pytest.approx(x.mean())
    assert showdown.t_interval([2.0]) == {"mean": 2.0, "half_width": None, "low": None, "high": None, "n": 1}
    assert showdown.t_interval([1.0, np.inf])["half_width"] is None


# ---------------------------------------------------------------------------------- outputs
def test_files_exist(tiny):
    out, result = tiny
    for name in (
        "showdown.json",
        "showdown.md",
        "showdown.png",
        "cells/wheel_0.5.json",
        "cells/logistic.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "showdown.json").read_text()) == json.loads(json.dumps(result))
    assert result["settings"]["policies"] == ["bnn_ts", "linear_ts", "uniform"]  # the normaliser is added
    assert (
        set(result["versions"]) == {"bandits_jax", "jax", "jaxlib"}
        and result["versions"]["jax"] == jax.__version__
    )
    assert result["settings"]["seeds"] == SEEDS
    cell = result["environments"]["logistic"]
    assert "BnnTS(network=Network(n_features=5, hidden_dim_list=(3,)" in cell["policies"]["bnn_ts"]
    assert cell["n_features"] == 5 and result["environments"]["wheel:0.5"]["n_actions"] == 5
    assert np.asarray(cell["cumulative_regret"]["uniform"]).shape == (len(SEEDS), ROUNDS)


def test_uniform_normalised_is_one_exactly(tiny):
    _, result = tiny
    for cell in result["environments"].values():
        norm = cell["summary"]["uniform"]["normalised"]
        assert norm["mean"] == 1.0 and norm["half_width"] == 0.0 and norm["low"] == norm["high"] == 1.0


def test_summaries_equal_hand_computations_from_the_saved_curves(tiny):
    out, _ = tiny
    result = json.loads((out / "showdown.json").read_text())
    q = scipy.stats.t.ppf(0.975, len(SEEDS) - 1)
    for cell in result["environments"].values():
        final = {name: np.asarray(c)[:, -1] for name, c in cell["cumulative_regret"].items()}
        for name, s in cell["summary"].items():
            for field, per_seed in (
                ("cumulative_regret", final[name]),
                ("normalised", final[name] / final["uniform"]),
                ("paired_difference", final[name] - final["linear_ts"]),
            ):
                half = q * per_seed.std(ddof=1) / np.sqrt(len(per_seed))
                np.testing.assert_allclose(s[field]["mean"], per_seed.mean(), rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(s[field]["half_width"], half, rtol=1e-9, atol=1e-12)
        assert cell["summary"]["linear_ts"]["paired_difference"]["mean"] == 0.0


def markdown_tables(text):
    """{section title: {policy: {environment: cell text}}} of showdown.md."""
    tables, title, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("|") and title and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells[1:]
            else:
                tables.setdefault(title, {})[cells[0]] = dict(zip(header, cells[1:]))
    return tables


def test_markdown_numbers_equal_the_json(tiny):
    out, result = tiny
    tables = markdown_tables((out / "showdown.md").read_text())
    assert len(tables) == len(showdown.TABLES)
    for (field, title, digits), table in zip(showdown.TABLES, tables.values()):
        assert table.keys() == set(result["settings"]["policies"])
        for policy, row in table.items():
            assert list(row) == ENVS
            for env, text in row.items():
                mean, half = map(float, re.fullmatch(r"(-?\d+\.\d+) ± (\d+\.\d+)", text).groups())
                interval = result["environments"][env]["summary"][policy][field]
                assert mean == pytest.approx(interval["mean"], abs=0.51 * 10**-digits)
                assert half == pytest.approx(interval["half_width"], abs=0.51 * 10**-digits)
        assert title in (out / "showdown.md").read_text()


def test_seeds_and_environments_are_those_documented(tiny):
    """A direct sweep of linear TS alone on per-seed environments from key(10_000 + seed) gives the
    showdown's curves: a policy's draws do not depend on which others play."""
    _, result = tiny
    envs = jax.vmap(lambda k: simulation.LogisticEnv.random(5, 3, key=k))(
        jnp.stack([jax.random.key(10_000 + s) for s in SEEDS])
    )
    direct = simulation.sweep({"linear_ts": LinearTS.example(5)}, envs, SEEDS, ROUNDS, BATCH, env_axis=0)
    np.testing.assert_array_equal(
        np.asarray(direct["linear_ts"].cumulative_regret, np.float64),
        result["environments"]["logistic"]["cumulative_regret"]["linear_ts"],
    )
    one = showdown.make_environment("logistic", [3])[0]
    ref = simulation.LogisticEnv.random(5, 3, key=jax.random.key(10_003))
    np.testing.assert_array_equal(one.weight[0], ref.weight)


# ---------------------------------------------------------------------------------- resume
def test_resume_loads_a_finished_cell_and_reruns_on_changed_settings(tmp_path, count_sweeps):
    first = run(tmp_path)
    assert count_sweeps == ["LogisticEnv"] and not first["environments"]["logistic"]["resumed"]
    again = run(tmp_path)
    assert count_sweeps == ["LogisticEnv"], "a finished cell with the same settings ran again"
    assert again["environments"]["logistic"]["resumed"]
    assert again["environments"]["logistic"]["summary"] == first["environments"]["logistic"]["summary"]
    # One more environment: only it runs.
    run(tmp_path, envs=("logistic", "wheel"))
    assert count_sweeps == ["LogisticEnv", "WheelEnv"]
    # Each setting in the hash reruns the cell: sizes, seeds, a policy's settings, init data.
    for change in (
        {"n_rounds": ROUNDS + 1},
        {"batch_size": BATCH + 1},
        {"seeds": [0, 2]},
        {"policies": {"linear_ts": lambda n: LinearTS(n, newton_steps=3)}},
        {"init_data": {"linear_ts": {"sigma": 2.0}}},
    ):
        before = len(count_sweeps)
        run(tmp_path, **change)
        assert len(count_sweeps) == before + 1, change
    # resume=False reruns although the settings match the saved cell.
    before = len(count_sweeps)
    run(tmp_path, init_data={"linear_ts": {"sigma": 2.0}}, resume=False)
    assert len(count_sweeps) == before + 1


def test_an_unreadable_cell_is_rerun(tmp_path, count_sweeps):
    run(tmp_path)
    (tmp_path / "cells" / "logistic.json").write_text('{"hash": ')  # a crash mid-write
    assert not run(tmp_path)["environments"]["logistic"]["resumed"]
    assert len(count_sweeps) == 2
    assert not list((tmp_path / "cells").glob(".*tmp")), "atomic writes leave no temporary file"


# ---------------------------------------------------------------------------------- names
def test_unknown_names_raise_before_anything_runs(tmp_path, count_sweeps):
    with pytest.raises(ValueError, match="unknown policy 'nope'; choose from bnn_ts"):
        run(tmp_path, policies=["linear_ts", "nope"])
    with pytest.raises(ValueError, match="unknown environment 'mars'; choose from wheel"):
        run(tmp_path, envs=("logistic", "mars"))
    with pytest.raises(ValueError, match="delta must be a number in"):
        run(tmp_path, envs=("wheel:1.2",))
    assert count_sweeps == []


def test_default_policies_build_for_every_name():
    for name in showdown.POLICIES:
        policy = showdown.default_policy(name, 4)
        assert hash(policy) == hash(showdown.default_policy(name, 4))  # hashable, equal settings


def test_missing_scikit_learn_is_one_clear_error(tmp_path, monkeypatch, capsys, count_sweeps):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    with pytest.raises(ImportError, match="needs scikit-learn"):
        run(tmp_path, envs=("logistic", "wine"))
    assert cli.main(["showdown", "--envs", "wine", "--out", str(tmp_path)]) == 2
    assert "needs scikit-learn" in one_error_line(capsys.readouterr().err)
    assert count_sweeps == []


def test_a_scikit_learn_environment_is_shared_by_all_seeds():
    pytest.importorskip("sklearn")
    env, axis, text = showdown.make_environment("wine", [0, 1, 2])
    assert axis is None and env.n_features == 13 and text == "load_sklearn('wine')"


# ---------------------------------------------------------------------------------- progress
def test_progress_without_tqdm_is_a_line_per_round(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    run(tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "showdown logistic: round 1/2 (1/2 in all)" in err
    assert "showdown logistic: round 2/2 (2/2 in all)" in err


# ---------------------------------------------------------------------------------- CLI
def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bandits-jax showdown: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--policies", "linear_ts,nope", "'nope'; choose from bnn_ts, linear_ts"),
        ("--policies", "beta_bernoulli", "'beta_bernoulli'; choose from bnn_ts"),
        ("--policies", ",", "expected comma-separated policy names"),
        ("--policies", "uniform,uniform", "must be distinct"),
        ("--envs", "wheel,mars", "'mars'; choose from wheel, wheel_gaussian, nonlinear"),
        ("--envs", "wheel:1.5", "delta must be a number in (0, 1), got '1.5'"),
        ("--envs", "logistic:2", "'logistic:2'; choose from wheel"),
        ("--seeds", "0", "expected a positive integer"),
    ],
)
def test_cli_rejects_bad_values_in_one_line(tmp_path, capsys, monkeypatch, option, value, expected):
    def loud(*args, **kwargs):
        raise AssertionError("the showdown started")

    monkeypatch.setattr(showdown, "run_showdown", loud)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["showdown", f"{option}={value}", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line


def test_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert cli.main(["showdown", "--out", str(tmp_path / "f")]) == 2
    assert "exists and is not a folder" in one_error_line(capsys.readouterr().err)


def test_cli_end_to_end_and_resume(tmp_path, capsys):
    argv = ["showdown", "--policies=lin_ucb,epsilon_greedy", "--envs=wheel:0.7,quadratic", "--seeds=2"]
    argv += ["--rounds=2", "--batch=8", f"--out={tmp_path}", "--no-progress", "--no-plot"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("| epsilon_greedy |") == 3 and "resumed" not in printed
    result = json.loads((tmp_path / "showdown.json").read_text())
    assert result["settings"]["policies"] == ["lin_ucb", "epsilon_greedy", "linear_ts", "uniform"]
    assert list(result["environments"]) == ["wheel:0.7", "quadratic"]
    assert "LinUCB(n_features=2" in result["environments"]["wheel:0.7"]["policies"]["lin_ucb"]
    assert not (tmp_path / "showdown.png").exists()
    assert cli.main(argv) == 0
    assert "resumed from" in capsys.readouterr().out
    assert cli.main([*argv, "--no-resume"]) == 0
    assert "resumed" not in capsys.readouterr().out


def test_cli_bad_name_exit_code_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bandits_jax.cli", "showdown", "--envs", "mars", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "'mars'; choose from wheel" in one_error_line(proc.stderr)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- QuadraticEnv
def test_quadratic_env_is_its_closed_form(getkey):
    env = simulation.QuadraticEnv.random(4, 3, key=getkey())
    np.testing.assert_array_equal(env.quad, np.swapaxes(env.quad, -1, -2))
    x = np.asarray(env.sample_context(getkey(), 6), np.float64)
    q, w, b = (np.asarray(a, np.float64) for a in (env.quad, env.weight, env.bias))
    logits = np.stack([np.einsum("ni,ij,nj->n", x, q[a], x) for a in range(3)], axis=1) + x @ w + b
    np.testing.assert_allclose(
        env.expected_rewards(jnp.asarray(x, jnp.float32)), 1 / (1 + np.exp(-logits)), rtol=1e-5
    )
    np.testing.assert_array_equal(
        jax.jit(lambda e, c: e.expected_rewards(c))(env, jnp.asarray(x, jnp.float32)),
        env.expected_rewards(jnp.asarray(x, jnp.float32)),
    )
    assert (env.n_features, env.n_actions) == (4, 3)


def test_default_init_data_goes_to_policies_built_by_name_only(tmp_path, monkeypatch):
    seen = []

    class Stop(Exception):
        pass

    def capture(players, env, *args, init_data=None, **kwargs):
        seen.append((sorted(players), init_data))
        raise Stop

    monkeypatch.setattr(simulation, "sweep", capture)
    for policies, init_data in (
        (["bnn_ts"], None),
        ({"bnn_ts": tiny_bnn}, None),
        (["bnn_ts", "lin_ucb"], {"bnn_ts": {"sigma": 3.0}, "lin_ucb": {"alpha": 2.0}}),
    ):
        with pytest.raises(Stop):
            run(tmp_path, policies=policies, init_data=init_data)
    assert seen == [
        (["bnn_ts", "linear_ts", "uniform"], {"bnn_ts": {"sigma": 1.0}}),
        (["bnn_ts", "linear_ts", "uniform"], {}),
        (
            ["bnn_ts", "lin_ucb", "linear_ts", "uniform"],
            {"bnn_ts": {"sigma": 3.0}, "lin_ucb": {"alpha": 2.0}},
        ),
    ]
    assert showdown.DEFAULT_INIT_DATA == {"bnn_ts": {"sigma": 1.0}}


def test_the_gaussian_wheel_plays_every_policy_with_a_gaussian_likelihood(tmp_path, count_sweeps):
    """``wheel_gaussian`` is the paper's wheel (real rewards): the policies built by name get a
    Gaussian likelihood and the environment's fixed standardisation (the caller's init data wins);
    a policy object with binary rewards is refused before anything runs."""
    from bandits_jax.likelihoods import Gaussian

    gaussian_example = lambda n: LinearTS(n, newton_steps=2, likelihood=Gaussian())  # noqa: E731
    with pytest.raises(ValueError, match="policy 'mine' must have a Gaussian likelihood"):
        run(tmp_path, policies={"mine": LinearTS.example}, envs=("wheel_gaussian:0.5",))
    with pytest.raises(ValueError, match="policy 'mine' must have binary rewards"):
        run(tmp_path, policies={"mine": gaussian_example}, envs=("logistic",))
    assert count_sweeps == []
    out = run(
        tmp_path,
        policies={"mine": gaussian_example},
        envs=("wheel_gaussian:0.5",),
        init_data={"linear_ts": {"reward_scale": 5.0, "reward_loc": 1.0}},
    )
    cell = out["environments"]["wheel_gaussian:0.5"]
    assert count_sweeps == ["WheelEnv"] and cell["description"] == "WheelEnv(0.5, rewards='paper')"
    assert all("likelihood=Gaussian()" in text for text in cell["policies"].values())
    settings = json.loads((tmp_path / "cells" / "wheel_gaussian_0.5.json").read_text())["settings"]
    assert "'linear_ts', {'reward_scale': 5.0, 'reward_loc': 1.0}" in settings["init_data"]
    assert "'mine'" not in settings["init_data"] and "'uniform'" not in settings["init_data"]
    assert all(np.isfinite(c).all() for c in cell["cumulative_regret"].values())
    assert cell["summary"]["uniform"]["normalised"]["mean"] == 1.0
    for name in showdown.POLICIES:
        assert isinstance(showdown.default_policy(name, 2, Gaussian()).likelihood, Gaussian)
    assert showdown.environment_likelihood("wheel_gaussian:0.9") == Gaussian()
    assert showdown.environment_likelihood("wheel:0.9") is None


def test_environment_init_data_merges_the_standardisation_as_one_setting(tmp_path, count_sweeps):
    merge = showdown._environment_init_data
    by_name = {"linear_ts", "uniform"}
    env = "wheel_gaussian:0.9"
    assert merge(env, {}, by_name, {}) == {"linear_ts": {"reward_loc": 0.0, "reward_scale": 10.0}}
    # asking for a fitted standardisation drops both defaults; one half given drops both too
    fitted = {"linear_ts": {"reward_loc": None, "reward_scale": None}}
    assert merge(env, fitted, by_name, fitted) == fitted
    assert merge(env, {}, by_name, {"linear_ts": {"reward_scale": 3.0}}) == {
        "linear_ts": {"reward_scale": 3.0}
    }
    assert merge("wheel:0.9", {}, by_name, {}) == {}
    # Gaussian-only data on a Bernoulli cell fails before any cell runs (here the second one)
    with pytest.raises(ValueError, match=r"init_data\['linear_ts'\] has \['a0'\].*'wheel:0.5'"):
        run(
            tmp_path,
            policies=["linear_ts"],
            envs=("wheel_gaussian:0.5", "wheel:0.5"),
            init_data={"linear_ts": {"a0": 3.0}},
        )
    with pytest.raises(ValueError, match="do not play"):
        run(tmp_path, policies=["linear_ts"], init_data={"bnn_ts": {"sigma": 3.0}})
    assert count_sweeps == []
