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


def test_no_module_imports_a_module_that_imports_it_back():
    """The layers point down: no import cycle among the package's modules, lazy imports included."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "bandits_jax"
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bandits_jax"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("bandits_jax"))
    assert len(graph) > 20 and sum(map(len, graph.values())) > 40  # the scan found the imports

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt != "bandits_jax" and nxt not in seen:  # the package __init__ only re-exports
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(name for name in graph if name != "bandits_jax" and name in reach(name))
    assert cycles == [], f"modules on an import cycle: {cycles}"
