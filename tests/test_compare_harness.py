"""The PyBandits comparison's own logic, without PyBandits (or JAX) involved."""

import importlib.util
import math
import statistics
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_lib.py"
_spec = importlib.util.spec_from_file_location("compare_lib", _PATH)
lib = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("compare_lib", lib)
_spec.loader.exec_module(lib)


def _load_compare_pybandits():
    path = _PATH.parent / "compare_pybandits.py"  # standard library only at import time
    spec = importlib.util.spec_from_file_location("compare_pybandits_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workloads_cover_the_issue_and_have_unique_metrics():
    kinds = {w.kind for w in lib.WORKLOADS}
    assert kinds == {"import", "update", "predict", "transfer", "simulate", "ope"}
    ope = lib.workload("offline evaluation").params  # issue 14's size
    assert (ope["rows"], ope["actions"], ope["draws"], ope["bootstrap"]) == (100_000, 10, 1000, 1000)
    metrics = [m for w in lib.WORKLOADS for m in w.metrics]
    assert len(metrics) == len(set(metrics))
    names = [w.name for w in lib.WORKLOADS]
    assert len(names) == len(set(names))
    tutorial = lib.workload("tutorial update")
    assert dict(tutorial.params) == {"rows": 200, "features": 3, "actions": 2, "steps": 200, "hidden": None}
    big = lib.workload("1000x10x5, 1000 steps, hidden [16]").params
    assert (big["rows"], big["features"], big["actions"], big["steps"], big["hidden"]) == (
        1000,
        10,
        5,
        1000,
        [16],
    )
    assert lib.workload("predict x 5 actions").params["rows"] == (1, 100, 10_000)
    with pytest.raises(KeyError, match="unknown workload"):
        lib.workload("nope")


def test_schedule_alternates_libraries_per_workload():
    w = lib.workload("import")
    order = lib.schedule([w], quick=False)
    assert [lib_ for _, lib_ in order] == ["pybandits", "bandits_jax"] * w.processes
    quick = lib.schedule(lib.WORKLOADS, quick=True)
    assert len(quick) == sum(len(w.libs()) * w.quick_processes for w in lib.WORKLOADS)
    # Every PyBandits child is followed by a bandits_jax child of the same workload (A B A B).
    for i, (name, lib_) in enumerate(quick):
        if lib_ == "pybandits":
            assert quick[i + 1] == (name, "bandits_jax")


def test_quick_mode_spares_pybandits_where_it_costs_least():
    # No second PyBandits run of its own fresh-process first call for the persistent-cache row.
    cached = lib.workload("tutorial update, persistent compilation cache")
    assert cached.libs() == ("bandits_jax",)
    assert cached.pybandits_reference in lib.workload("tutorial update").metrics
    # Transfer: one process per library in --quick, more warm calls in it.
    transfer = lib.workload("transfer (tutorial models)")
    assert transfer.n_processes(quick=True) == 1 and transfer.n_warm(quick=True) >= 5
    assert transfer.n_processes(quick=False) >= 2


def test_reference_workload_interleaves_with_its_host():
    host = lib.Workload("host", "update", {}, ("host: first", "host: warm"), processes=2, quick_processes=2)
    guest = lib.Workload(
        "guest", "update", {}, ("guest: first",), quick_processes=3, pybandits_reference="host: first"
    )
    other = lib.Workload("other", "import", {}, ("other",), quick_processes=1)
    order = lib.schedule([host, guest, other], quick=True)
    assert order == [
        ("host", "pybandits"),
        ("host", "bandits_jax"),
        ("guest", "bandits_jax"),
        ("host", "pybandits"),
        ("host", "bandits_jax"),
        ("guest", "bandits_jax"),
        ("guest", "bandits_jax"),  # more guest processes than host rounds: appended after them
        ("other", "pybandits"),
        ("other", "bandits_jax"),
    ]
    # Without its host in the list, the guest runs on its own (bandits_jax only).
    assert lib.schedule([guest], quick=True) == [("guest", "bandits_jax")] * 3


def test_apply_references_copies_the_pybandits_cell_and_the_table_marks_it():
    guest = lib.Workload("guest", "update", {}, ("guest: first",), pybandits_reference="host: first")
    runs = [
        ("pybandits", {"metrics": {"host: first": [30.0, 34.0]}, "peak_rss_mib": 700.0}),
        ("bandits_jax", {"metrics": {"host: first": [3.0]}, "peak_rss_mib": 380.0}),
        ("bandits_jax", {"metrics": {"guest: first": [1.0, 1.5]}, "peak_rss_mib": 250.0}),
    ]
    agg = lib.apply_references(lib.aggregate(runs), [guest])
    cell = agg["guest: first"]["pybandits"]
    assert cell["median"] == 32.0 and cell["n"] == 2 and cell["reference"] == "host: first"
    assert "reference" not in agg["host: first"]["pybandits"]
    table = lib.speed_table(agg, order=["host: first", "guest: first"])
    assert "| guest: first | 32.00 s (n=2)† | 1.25 s (n=2) | 26x | 700 | 250 |" in table
    assert '† PyBandits\' figure is its "host: first"' in table
    # A failed reference leaves the row's PyBandits cell empty rather than inventing one.
    assert "pybandits" not in lib.apply_references(lib.aggregate(runs[1:]), [guest])["guest: first"]


def test_map_in_threads_keeps_order_and_runs_at_once():
    import threading
    import time

    assert lib.map_in_threads(lambda x: x * 2, [1, 2, 3], jobs=1) == [2, 4, 6]
    barrier = threading.Barrier(2, timeout=10)

    def wait_for_the_other(x):
        barrier.wait()  # only returns when two calls are in flight together
        time.sleep(0.01 * (3 - x))  # finish in reverse order
        return x

    assert lib.map_in_threads(wait_for_the_other, [1, 2], jobs=2) == [1, 2]


def test_parse_child_output_takes_the_last_marked_line():
    out = (
        "noise\n" + lib.encode_result({"a": 1}) + "\nmore\n" + lib.encode_result({"a": 2}) + "\ntrailing log"
    )
    assert lib.parse_child_output(out) == {"a": 2}
    with pytest.raises(ValueError, match="no @@RESULT line"):
        lib.parse_child_output("Traceback ...\nBoom")
    with pytest.raises(ValueError, match="not JSON"):
        lib.parse_child_output(lib.RESULT_MARKER + "{oops")
    with pytest.raises(ValueError, match="not a JSON object"):
        lib.parse_child_output(lib.RESULT_MARKER + "[1, 2]")


def test_aggregate_pools_samples_and_keeps_peak_memory_and_failures():
    runs = [
        ("pybandits", {"metrics": {"m": [3.0, 5.0]}, "peak_rss_mib": 900.0}),
        ("bandits_jax", {"metrics": {"m": [0.1]}, "peak_rss_mib": 300.0}),
        ("pybandits", {"metrics": {"m": [4.0]}, "peak_rss_mib": 950.0}),
        ("bandits_jax", {"metrics": {"m": [0.3, 0.2]}, "peak_rss_mib": 310.0}),
        ("pybandits", {"error": "boom", "failed_metrics": ["x"]}),
    ]
    agg = lib.aggregate(runs)
    assert agg["m"]["pybandits"]["median"] == 4.0 and agg["m"]["pybandits"]["n"] == 3
    assert agg["m"]["bandits_jax"]["median"] == 0.2
    assert agg["m"]["pybandits"]["peak_rss_mib"] == 950.0
    assert agg["x"]["pybandits"]["median"] is None and agg["x"]["pybandits"]["error"] == "boom"
    table = lib.speed_table(agg, order=["m", "x", "absent"])
    lines = table.splitlines()
    assert lines[0].startswith("| workload | PyBandits median | bandits_jax median | ratio")
    assert "| m | 4.00 s (n=3) | 200.00 ms (n=3) | 20x | 950 | 310 |" in lines
    assert "| x | failed | - | - | - | - |" in lines
    assert len(lines) == 4


def test_ratio_and_formatting():
    assert lib.ratio(6.0, 0.003) == pytest.approx(2000)
    assert lib.ratio(None, 1.0) is None and lib.ratio(1.0, 0.0) is None
    assert (
        lib.format_ratio(2000.0) == "2,000x"
        and lib.format_ratio(2.5) == "2.50x"
        and lib.format_ratio(None) == "-"
    )
    assert lib.format_seconds(2.0) == "2.00 s"
    assert lib.format_seconds(0.0035) == "3.50 ms"
    assert lib.format_seconds(2e-5) == "20 us"


def test_mean_ci_matches_the_t_interval():
    vals = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean, half = lib.mean_ci(vals)
    assert mean == 3.0
    assert half == pytest.approx(2.776 * statistics.stdev(vals) / math.sqrt(5), rel=1e-6)
    assert math.isnan(lib.mean_ci([2.0])[1])
    with pytest.raises(ValueError):
        lib.mean_ci([])
    # The large-df expansion joins the table smoothly and tends to the normal quantile.
    assert lib.t_quantile_975(31) == pytest.approx(2.040, abs=2e-3)
    assert lib.t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)


def test_learning_table_rows_columns_and_failures():
    setup = lib.LearningSetup(seeds=3, rounds=5, batch=50, num_steps=100)
    regrets = {
        "logistic": {"uniform random": [60.0, 62.0, 64.0], "PyBandits defaults": "exit code 1: boom"},
        "digits": {"uniform random": [40.0, 40.0, 40.0], "PyBandits defaults": "not run (--quick)"},
    }
    table = lib.learning_table(regrets, setup)
    assert "after 5 rounds x batch 50 (100 SVI steps" in table
    assert "| policy | logistic | digits |" in table
    assert "| PyBandits defaults | failed: exit code 1: boom | not run (--quick) |" in table
    assert "| uniform random | 62.0 ± 5.0 (n=3) | 40.0 ± 0.0 (n=3) |" in table


def test_paired_table_differences_per_seed():
    regrets = {
        "logistic": {
            "bandits_jax defaults": [10.0, 20.0, 30.0],
            "PyBandits defaults": [12.0, 21.0, 33.0],
            "bandits_jax matched": [1.0],
            "PyBandits matched": [2.0],
        },
        "digits": {"bandits_jax defaults": [5.0, 5.0], "PyBandits defaults": "not run (--quick)"},
    }
    table = lib.paired_table(regrets)
    half = lib.t_quantile_975(2) * statistics.stdev([-2.0, -1.0, -3.0]) / math.sqrt(3)
    assert f"| bandits_jax defaults − PyBandits defaults | -2.0 ± {half:.1f} (n=3) | - |" in table
    assert "| bandits_jax matched − PyBandits matched | - | - |" in table  # one seed: no interval


def test_reusable_pybandits_takes_its_regrets_only_from_the_same_setup():
    setup = lib.LearningSetup(seeds=3, rounds=5, batch=50, num_steps=100)
    regrets = {env: {p: [float(i), 1.0, 2.0] for i, p in enumerate(lib.POLICIES)} for env in lib.ENVIRONMENTS}
    earlier = {
        "setup": vars(setup),
        "pybandits_seeds": dict.fromkeys(lib.ENVIRONMENTS, 3),
        "regrets": regrets,
    }
    reuse, seeds = lib.reusable_pybandits(earlier, setup)
    assert seeds == dict.fromkeys(lib.ENVIRONMENTS, 3)
    for env in lib.ENVIRONMENTS:
        assert set(reuse[env]) == {"PyBandits defaults", "PyBandits matched"}
        assert reuse[env]["PyBandits matched"] == regrets[env]["PyBandits matched"]
    other = lib.LearningSetup(seeds=3, rounds=20, batch=50, num_steps=100)
    with pytest.raises(ValueError, match="setup"):
        lib.reusable_pybandits(earlier, other)
    del earlier["regrets"]["digits"]
    with pytest.raises(ValueError, match="digits"):
        lib.reusable_pybandits(earlier, setup)


class _FakeRun:
    """Stands in for subprocess.run: answers the environment check, records the rest."""

    def __init__(self, version, missing):
        self.answers = [(version, missing)]
        self.calls = []

    def __call__(self, cmd, **kwargs):
        import subprocess

        self.calls.append(list(cmd))
        if "-c" in cmd:  # the check script: version line, then the missing requirements
            version, missing = self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]
            return subprocess.CompletedProcess(cmd, 0, f"{version}\n{' '.join(missing)}\n", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_pybandits_venv_reuse_installs_missing_extras(tmp_path, monkeypatch):
    cp = _load_compare_pybandits()
    # The simulator's undeclared runtime dependency is part of every environment made here.
    assert "pandas" in cp.VENV_EXTRAS.values() and "sklearn" in cp.VENV_EXTRAS.values()
    monkeypatch.setattr(cp, "VENV", tmp_path / "venv")
    py = cp.venv_python()
    py.parent.mkdir(parents=True)
    py.touch()
    pandas_req = next(r for r, m in cp.VENV_EXTRAS.items() if m == "pandas")

    fake = _FakeRun(cp.PYBANDITS_VERSION, [pandas_req])
    monkeypatch.setattr(cp.subprocess, "run", fake)
    assert cp.ensure_pybandits_venv() == py
    installs = [c for c in fake.calls if "install" in c]
    assert installs == [[str(py), "-m", "pip", "install", "--quiet", pandas_req]]
    # The check passes each requirement with the module it provides.
    check = fake.calls[0]
    assert check[check.index("-c") + 2 :] == [x for rm in cp.VENV_EXTRAS.items() for x in rm]

    fake = _FakeRun(cp.PYBANDITS_VERSION, [])
    monkeypatch.setattr(cp.subprocess, "run", fake)
    cp.ensure_pybandits_venv()
    assert not [c for c in fake.calls if "install" in c]


def test_pybandits_venv_creation_installs_pybandits_with_the_extras(tmp_path, monkeypatch):
    cp = _load_compare_pybandits()
    monkeypatch.setattr(cp, "VENV", tmp_path / "venv")
    fake = _FakeRun(cp.PYBANDITS_VERSION, [])
    monkeypatch.setattr(cp.subprocess, "run", fake)
    cp.ensure_pybandits_venv()  # no python there yet: create, then check
    assert any(c[1:3] == ["-m", "venv"] for c in fake.calls)
    assert [str(cp.venv_python()), "-m", "pip", "install", "--quiet"] + [
        f"pybandits=={cp.PYBANDITS_VERSION}",
        *cp.VENV_EXTRAS,
    ] in fake.calls

    fake = _FakeRun(cp.PYBANDITS_VERSION, ["pandas<3"])  # still missing after the install
    monkeypatch.setattr(cp.subprocess, "run", fake)
    with pytest.raises(RuntimeError, match="missing"):
        cp.ensure_pybandits_venv()


def test_venv_check_script_reports_missing_modules():
    import subprocess

    script = _load_compare_pybandits()._VENV_CHECK.replace('m.version("pybandits")', '"9.9"')
    res = subprocess.run(
        [sys.executable, "-c", script, "json-req", "json", "nope-req", "no_such_module_xyz"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.splitlines() == ["9.9", "nope-req"]


def test_bench_sweep_runs_pybandits_without_our_path_or_device_split(monkeypatch):
    path = _PATH.parent / "bench_sweep.py"  # standard library only at import time
    spec = importlib.util.spec_from_file_location("bench_sweep_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("PYTHONPATH", "/repo")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    env = bench.pybandits_env(None)
    assert "PYTHONPATH" not in env and "XLA_FLAGS" not in env
    assert bench.pybandits_env("--xla_cpu_foo=1")["XLA_FLAGS"] == "--xla_cpu_foo=1"
    # The issue's configuration.
    assert (bench.ROUNDS, bench.BATCH, bench.ACTIONS, bench.FEATURES, bench.STEPS) == (10, 100, 5, 10, 100)
