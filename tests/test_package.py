"""Package-level properties: no global side effects at import, the opt-in cache, the CLI demo."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, **env) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ROOT, **env},
    )
    return out.stdout.strip()


def test_import_has_no_global_side_effects():
    code = (
        "import logging, jax\n"
        "before = (jax.config.jax_enable_x64, jax.config.jax_compilation_cache_dir, len(logging.getLogger().handlers))\n"
        "import bandits_jax, bandits_jax.cmab, bandits_jax.smab, bandits_jax.strategy, bandits_jax.core\n"
        "after = (jax.config.jax_enable_x64, jax.config.jax_compilation_cache_dir, len(logging.getLogger().handlers))\n"
        "print(before == after)"
    )
    assert _run(code) == "True"


def test_compilation_cache_is_opt_in(tmp_path):
    code = (
        "import jax, bandits_jax\n"
        "print(jax.config.jax_compilation_cache_dir)\n"
        f"bandits_jax.enable_compilation_cache({str(tmp_path)!r})\n"
        "from bandits_jax.cmab import CmabBernoulli\n"
        "m = CmabBernoulli.cold_start(['a', 'b'], n_features=2, update_kwargs={'num_steps': 3}, random_seed=0)\n"
        "m.update(actions=['a', 'b'], rewards=[1, 0], context=[[0.0, 1.0], [1.0, 0.0]])\n"
        "print(jax.config.jax_compilation_cache_dir)"
    )
    before, after = _run(code).splitlines()
    assert before == "None" and after == str(tmp_path)
    assert any(os.scandir(tmp_path))  # compiled programs were written


def test_demo_cli_runs_and_learns():
    out = subprocess.run(
        [sys.executable, "-m", "bandits_jax.cli", "demo", "--rounds", "4", "--num-steps", "100"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    ).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 4
    last_best = float(lines[-1][1].rstrip("%")) / 100
    assert last_best > 0.5  # chance is 1/3
