"""The command line's failure modes: a bad --out, --seed or size, or running out of memory end in
one ``bandits-jax ...: error:`` line and a non-zero status, never a traceback, and an unusable
--out is found before anything expensive runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bandits_jax import cli, simulation
from bandits_jax.cli import simulate as _simulate_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--runs=2", "--rounds=2", "--batch-size=8", "--num-steps=5", "--no-progress", "--no-plot"]
OOM = "RESOURCE_EXHAUSTED: Out of memory allocating 1125899906842624 bytes."


def simulate(out, *extra: str) -> list[str]:
    return ["simulate", *TINY, f"--out={out}", *extra]


@pytest.fixture
def no_simulation(monkeypatch):
    """Building the environments or running the sweep fails the test: checks must come first."""

    def loud(*args, **kwargs):
        raise AssertionError("the simulation started")

    monkeypatch.setattr(_simulate_cli, "_build_env", loud)
    monkeypatch.setattr(simulation, "sweep", loud)


def one_error_line(err: str, prog: str = "bandits-jax simulate") -> str:
    """stderr is one line, ``PROG: error: ...``: no traceback, no usage block."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ")
    return lines[0]


def unusable_out(tmp_path: Path, kind: str) -> Path:
    if kind == "a file":
        (tmp_path / "f").write_text("")
        return tmp_path / "f"
    if kind == "below a file":
        (tmp_path / "f").write_text("")
        return tmp_path / "f" / "sub" / "dir"
    # A folder nobody may create files in, root included.
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    return Path("/proc/self")


@pytest.mark.parametrize("kind", ["a file", "below a file", "an unwritable folder"])
def test_simulate_refuses_an_unusable_out_before_simulating(tmp_path, capsys, no_simulation, kind):
    out = unusable_out(tmp_path, kind)
    assert cli.main(simulate(out)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--out {out}" in line


def test_simulate_refuses_an_out_whose_results_file_is_a_folder(tmp_path, capsys, no_simulation):
    (tmp_path / "results.json").mkdir()
    assert cli.main(simulate(tmp_path)) == 2
    assert "results.json" in one_error_line(capsys.readouterr().err)


def test_simulate_creates_out_and_leaves_no_probe(tmp_path, capsys, monkeypatch):
    def stop(*args, **kwargs):
        raise ValueError("stop here")

    monkeypatch.setattr(_simulate_cli, "_build_env", stop)
    out = tmp_path / "a" / "b"
    assert cli.main(simulate(out)) == 2
    assert "stop here" in one_error_line(capsys.readouterr().err)
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.parametrize("seed", [str(2**64), str(2**63), str(-(2**63) - 1), "1.5"])
def test_simulate_rejects_a_seed_jax_does_not_take(tmp_path, capsys, no_simulation, seed):
    with pytest.raises(SystemExit) as exc:
        cli.main(simulate(tmp_path, f"--seed={seed}"))
    assert exc.value.code == 2
    assert "argument --seed" in one_error_line(capsys.readouterr().err)


def test_simulate_takes_the_ends_of_jaxs_seed_range():
    parse = cli.build_parser().parse_args
    for seed in (2**63 - 1, -(2**63)):
        assert parse(["simulate", f"--seed={seed}"]).seed == seed
        jax.random.key(seed)


@pytest.mark.parametrize("seed", [str(2**64), "-1"])
def test_demo_rejects_a_seed_it_cannot_use(capsys, seed):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", f"--seed={seed}"])
    assert exc.value.code == 2
    assert "argument --seed" in one_error_line(capsys.readouterr().err, "bandits-jax demo")


def test_simulate_refuses_sizes_that_cannot_fit(tmp_path, capsys, no_simulation):
    assert cli.main(simulate(tmp_path, f"--batch-size={10**13}")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--batch-size" in line and "GiB" in line
    assert not (tmp_path / "results.json").exists()


def test_simulate_policies_writes_one_regret_array_per_policy(tmp_path, capsys):
    assert cli.main(simulate(tmp_path, "--policies=linear_ts,uniform")) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results["policies"]) == ["linear_ts", "uniform"]
    assert results["configuration"]["policies"] == ["linear_ts", "uniform"]
    for name in ("linear_ts", "uniform"):
        curves = np.array(results["policies"][name]["cumulative_regret"])
        assert curves.shape == (2, 2)
        assert np.all(np.diff(curves, axis=1) >= -1e-6)
    assert np.array(results["oracle_mean_reward"]).shape == (2, 2)
    assert "policy_cumulative_regret" not in results  # the default's players did not play
    out = capsys.readouterr().out
    assert "linear_ts" in out and "uniform" in out and "oracle" in out


@pytest.mark.parametrize("value", ["nope", "uniform,uniform", ","])
def test_simulate_rejects_unknown_policies(tmp_path, capsys, no_simulation, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(simulate(tmp_path, f"--policies={value}"))
    assert exc.value.code == 2
    assert "argument --policies" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("error", [jax.errors.JaxRuntimeError(OOM), MemoryError()])
def test_simulate_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch, error):
    def sweep(*args, **kwargs):
        raise error

    monkeypatch.setattr(simulation, "sweep", sweep)
    assert cli.main(simulate(tmp_path)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "out of memory" in line
    for option in ("--runs", "--batch-size", "--rounds", "--num-steps", "--hidden"):
        assert option in line
    assert not (tmp_path / "results.json").exists()


def test_simulate_other_runtime_errors_still_raise(tmp_path, monkeypatch):
    def sweep(*args, **kwargs):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(simulation, "sweep", sweep)
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
        cli.main(simulate(tmp_path))


def test_demo_out_of_memory_is_one_line(capsys, monkeypatch):
    from bandits_jax.cmab import CmabBernoulli

    def cold_start(*args, **kwargs):
        raise jax.errors.JaxRuntimeError(OOM)

    monkeypatch.setattr(CmabBernoulli, "cold_start", cold_start)
    assert cli.main(["demo", "--rounds=1", "--batch-size=8", "--num-steps=5"]) == 1
    line = one_error_line(capsys.readouterr().err, "bandits-jax demo")
    assert "out of memory" in line and "--batch-size" in line


def test_bad_out_exit_code_in_a_real_process(tmp_path):
    (tmp_path / "f").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "bandits_jax.cli", *simulate(tmp_path / "f" / "sub")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bandits-jax simulate: error: --out {tmp_path / 'f' / 'sub'}: cannot create the folder "
        "(Not a directory)"
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--num-processes=2"], "need --coordinator, --num-processes and --process-id together"),
        (["--coordinator=127.0.0.1:1", "--process-id=0"], "together"),
        (["--coordinator=host", "--num-processes=2", "--process-id=0"], "must be HOST:PORT"),
        (["--coordinator=h:1", "--num-processes=2", "--process-id=2"], "must be below --num-processes 2"),
    ],
)
def test_simulate_rejects_an_incomplete_process_group_before_jax_starts(
    tmp_path, capsys, no_simulation, monkeypatch, extra, message
):
    def loud(*args, **kwargs):
        raise AssertionError("jax.distributed.initialize was called")

    monkeypatch.setattr(jax.distributed, "initialize", loud)
    assert cli.main(simulate(tmp_path, *extra)) == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_simulate_reads_the_process_group_from_jax_environment_variables(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    args = cli.build_parser().parse_args(simulate("out"))
    assert (args.coordinator, args.num_processes, args.process_id) == ("10.0.0.1:1234", 4, 3)
    assert _simulate_cli._distributed(args) is None


def test_simulate_rejects_a_bad_process_id_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("JAX_PROCESS_ID", "x")
    with pytest.raises(SystemExit) as exit_:
        cli.main(simulate("out"))
    assert exit_.value.code == 2
    assert "--process-id: expected an integer, got 'x'" in one_error_line(capsys.readouterr().err)


def test_simulate_one_process_needs_no_process_group(tmp_path):
    args = cli.build_parser().parse_args(simulate(tmp_path, "--num-processes=1"))
    assert _simulate_cli._distributed(args) is None and not _simulate_cli._is_multiprocess(args)
