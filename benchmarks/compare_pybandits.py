"""Side by side with PyBandits 8.4.1: speed, peak memory and learning quality, in one run.

    python benchmarks/compare_pybandits.py --quick             # about 15 min on a 2-core CPU
    python benchmarks/compare_pybandits.py --json results.json # the full run (hours: PyBandits)
    python benchmarks/compare_pybandits.py --only speed        # or --only learning

PyBandits pins a jax that conflicts with ours, so it lives in its own virtual environment, made
once in ``benchmarks/.pybandits-venv`` (git-ignored) with ``pip install pybandits==8.4.1
scikit-learn "pandas<3"`` and reused after (pandas: PyBandits' simulator imports it without
declaring it; a reused environment gets whatever of these is missing). Every timed workload runs
in fresh child processes, alternating the libraries (PyBandits, bandits_jax, PyBandits,
bandits_jax, ...) so that drifts of a shared machine hit both alike. A child times its *first*
call (tracing and compilation included, as a user's script sees it) and then its *warm* calls (the
same call again in the same process); the table gives the median over all children's samples and
each library's peak RSS in those children. PyBandits has no persistent compilation cache, so the
cached first call of ours is set against its fresh-process first call (the same children, marked
in the table) rather than against a second run of the same thing.

Learning quality: both libraries play the same contexts and the same reward draws (common random
numbers, generated once per seed with :mod:`bandits_jax.simulation`'s key scheme and handed to the
PyBandits child as arrays), so regrets are paired across policies. Nothing is timed there, so the
environments run side by side (``--jobs``, default one per CPU core; the regrets do not depend on it).

The workload definitions, parsing and tables are in ``compare_lib.py`` (unit-tested without
PyBandits).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import compare_lib as lib  # noqa: E402

PYBANDITS_VERSION = "8.4.1"
VENV = HERE / ".pybandits-venv"
RESULTS = HERE / "results"


# ---------------------------------------------------------------------------------- environments
def venv_python() -> Path:
    return VENV / "bin" / "python"


# Installed next to PyBandits, as {pip requirement: module to import}: scikit-learn for the digits
# environment, and pandas, which PyBandits' simulators (``pybandits.cmab_simulator``) import but
# 8.4.1 does not declare (it came with older bokeh releases); pandas 2, as in PyBandits' days.
VENV_EXTRAS = {"scikit-learn": "sklearn", "pandas<3": "pandas"}
_VENV_CHECK = """import importlib.metadata as m, importlib.util as u, sys
print(m.version("pybandits"))
print(" ".join(r for r, mod in zip(sys.argv[1::2], sys.argv[2::2]) if u.find_spec(mod) is None))
"""


def _venv_state(py: Path) -> tuple[str | None, list[str]]:
    """(installed pybandits version or None, the VENV_EXTRAS requirements whose module is missing)."""
    args = [x for req_mod in VENV_EXTRAS.items() for x in req_mod]
    res = subprocess.run([str(py), "-c", _VENV_CHECK, *args], capture_output=True, text=True)
    lines = res.stdout.splitlines()
    if res.returncode != 0 or not lines:
        return None, list(VENV_EXTRAS)
    return lines[0].strip(), (lines[1].split() if len(lines) > 1 else [])


def ensure_pybandits_venv() -> Path:
    """Create (once) and return the PyBandits virtualenv's python; reuse it when the version matches,
    installing whatever of VENV_EXTRAS it lacks."""
    py = venv_python()
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    if py.exists():
        version, missing = _venv_state(py)
        if version == PYBANDITS_VERSION:
            if missing:
                print(f"adding {' '.join(missing)} to {VENV} ...", flush=True)
                subprocess.run([*pip, *missing], check=True)
            return py
    print(f"creating {VENV} with pybandits=={PYBANDITS_VERSION} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"pybandits=={PYBANDITS_VERSION}", *VENV_EXTRAS], check=True)
    version, missing = _venv_state(py)
    if version != PYBANDITS_VERSION or missing:
        raise RuntimeError(
            f"expected pybandits {PYBANDITS_VERSION} and {list(VENV_EXTRAS)} in {VENV}, "
            f"got version {version!r}, missing {missing}"
        )
    return py


def child_env(library: str) -> dict[str, str]:
    env = dict(os.environ, TQDM_DISABLE="1", LOGURU_LEVEL="WARNING", PYTHONHASHSEED="0")
    if library == "bandits_jax":
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    else:
        env.pop("PYTHONPATH", None)  # PyBandits' process must not see this repository
    return env


def run_child(library: str, args: list[str], python: str, timeout: float) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--child", library, *args]
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, env=child_env(library), timeout=timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    try:
        return lib.parse_child_output(res.stdout)
    except ValueError as err:
        tail = "\n".join(res.stderr.strip().splitlines()[-8:])
        return {"error": f"exit code {res.returncode}: {err}\nstderr tail:\n{tail}"}


# ---------------------------------------------------------------------------------- child helpers
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _batch(rows: int, features: int, actions: int, seed: int = 0, family: str | None = None):
    import numpy as np

    rng = np.random.default_rng(seed)
    ctx = rng.normal(size=(rows, features))
    acts = [f"a{i}" for i in rng.integers(0, actions, rows)]
    if family == "gaussian":  # real rewards of mean 5 and std 2 about a linear signal
        rewards = (5 + ctx[:, 0] + 2 * rng.normal(size=rows)).tolist()
    elif family == "mo":  # two binary objectives per row
        rewards = rng.integers(0, 2, (rows, 2)).tolist()
    else:
        rewards = rng.integers(0, 2, rows).tolist()
    return ctx, acts, rewards


def _new_model(
    library: str,
    features: int,
    actions: int,
    steps: int,
    hidden,
    seed: int = 0,
    family: str | None = None,
    **extra,
):
    ids = [f"a{i}" for i in range(actions)]
    kwargs = {"update_kwargs": {"num_steps": steps}, "random_seed": seed, **extra}
    if hidden:
        kwargs["hidden_dim_list"] = list(hidden)
    # the family's class and its PyBandits arguments (both libraries' defaults otherwise)
    name, actions_arg = "CmabBernoulli", {"action_ids": ids}
    if family == "gaussian":  # standardisation fitted on the first batch
        name, kwargs["fit_reward_standardization"] = "CmabGaussian", True
    elif family == "cc":
        name, actions_arg = "CmabBernoulliCC", {"action_ids_cost": {a: float(i) for i, a in enumerate(ids)}}
    elif family == "dp":
        name, actions_arg = "CmabBernoulliDP", {"action_ids_price": {a: 1.0 + i for i, a in enumerate(ids)}}
    elif family == "mo":
        name, kwargs["n_objectives"] = "CmabBernoulliMO", 2
    if library == "pybandits":
        import pybandits.cmab

        if "action_ids" in actions_arg:
            actions_arg = {"action_ids": set(ids)}
        return getattr(pybandits.cmab, name).cold_start(**actions_arg, n_features=features, **kwargs)
    import bandits_jax.cmab

    return getattr(bandits_jax.cmab, name).cold_start(**actions_arg, n_features=features, **kwargs)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------- speed children
def child_workload(library: str, name: str, quick: bool, cache_dir: str | None) -> dict:
    w = lib.workload(name)
    p = dict(w.params)
    n_warm = w.n_warm(quick)
    metrics: dict[str, list[float]] = {}

    if w.kind == "import":
        t = time.perf_counter()
        if library == "pybandits":
            import pybandits.cmab  # noqa: F401
        else:
            import bandits_jax.cmab  # noqa: F401
        metrics["import"] = [time.perf_counter() - t]

    elif w.kind == "update":
        if p.pop("compilation_cache", False) and library == "bandits_jax":
            import bandits_jax

            bandits_jax.enable_compilation_cache(cache_dir)
        family = p.get("family")
        ctx, acts, rewards = _batch(p["rows"], p["features"], p["actions"], family=family)
        mab = _new_model(library, p["features"], p["actions"], p["steps"], p["hidden"], family=family)
        first = _time(lambda: mab.update(actions=acts, rewards=rewards, context=ctx))
        metrics[w.metrics[0]] = [first]
        if len(w.metrics) > 1:
            metrics[w.metrics[1]] = [
                _time(lambda: mab.update(actions=acts, rewards=rewards, context=ctx)) for _ in range(n_warm)
            ]

    elif w.kind == "predict":
        import numpy as np

        mab = _new_model(library, p["features"], p["actions"], steps=10, hidden=None)
        rng = np.random.default_rng(1)
        for n in p["rows"]:
            ctx = rng.normal(size=(n, p["features"]))
            mab.predict(context=ctx)
            lists = [_time(lambda: mab.predict(context=ctx)) for _ in range(n_warm)]
            metrics[f"predict {n:,} rows"] = lists
            if library == "bandits_jax":
                mab.predict_arrays(ctx)
                metrics[f"predict {n:,} rows (arrays)"] = [
                    _time(lambda: mab.predict_arrays(ctx)) for _ in range(n_warm)
                ]
            else:  # PyBandits returns lists only: its arrays row compares against the same call
                metrics[f"predict {n:,} rows (arrays)"] = lists

    elif w.kind == "transfer":
        if library == "pybandits":
            from pybandits.transfer import edit_model_on_the_fly
        else:
            from bandits_jax.transfer import edit_model_on_the_fly
        ctx, acts, rewards = _batch(p["rows"], p["features"], p["actions"])
        v1 = _new_model(library, p["features"], p["actions"], p["steps"], None)
        v1.update(actions=acts, rewards=rewards, context=ctx)
        template = _new_model(library, p["features"] + 1, p["actions"] + 1, p["steps"], None, seed=1)
        edit_model_on_the_fly(v1, template)
        metrics["transfer"] = [_time(lambda: edit_model_on_the_fly(v1, template)) for _ in range(n_warm)]

    elif w.kind == "simulate":
        calls = [_simulation(library, p, seed) for seed in range(1 + n_warm)]
        metrics[w.metrics[0]] = calls[:1]
        metrics[w.metrics[1]] = calls[1:]

    elif w.kind == "ope":
        rows = int(os.environ.get("BANDITS_JAX_OPE_ROWS", p["rows"]))
        p["draws"] = int(os.environ.get("BANDITS_JAX_OPE_DRAWS", p["draws"]))
        evaluate = _ope_evaluator(library, p, rows)
        metrics[w.metrics[0]] = [_time(evaluate)]
        metrics[w.metrics[1]] = [_time(evaluate) for _ in range(n_warm)]

    else:
        raise ValueError(f"unknown workload kind {w.kind!r}")
    return {"metrics": metrics, "peak_rss_mib": _peak_rss_mib()}


def _ope_logged(rows: int, features: int, actions: int):
    """Uniformly logged rows (propensity 1 / actions) of a logistic environment: the same arrays
    in both libraries."""
    import numpy as np

    rng = np.random.default_rng(7)
    ctx = rng.normal(size=(rows, features))
    act = rng.integers(0, actions, rows)
    w = rng.normal(size=(actions, features))
    prob = 1 / (1 + np.exp(-(ctx @ w.T)[np.arange(rows), act]))
    reward = (rng.random(rows) < prob).astype(int)
    return ctx, act, reward


def _ope_evaluator(library: str, p: dict, rows: int):
    """A fitted BNN model (default network, ``steps`` SVI steps on 1,000 rows) and the call that
    evaluates it on ``rows`` logged rows with every estimator. PyBandits: its
    ``OfflinePolicyEvaluator`` with the logged propensities, logistic-regression reward and
    importance-weight models (``fast_fit``: no Optuna search), ``n_mc_experiments`` Thompson runs
    on all cores; it evaluates the test half of the rows (``split_prop=0.5``), we all of them."""
    import numpy as np

    ctx, act, reward = _ope_logged(rows, p["features"], p["actions"])
    ids = [f"a{i}" for i in range(p["actions"])]
    train = min(1000, rows)
    mab = _new_model(library, p["features"], p["actions"], p["steps"], None)
    mab.update(actions=[ids[i] for i in act[:train]], rewards=reward[:train].tolist(), context=ctx[:train])
    if library == "pybandits":
        import pandas as pd
        from pybandits import offline_policy_estimator as ope_mod
        from pybandits.offline_policy_evaluator import OfflinePolicyEvaluator

        cols = [f"x{j}" for j in range(p["features"])]
        frame = pd.DataFrame(ctx, columns=cols)
        frame["batch"] = np.arange(rows) * 100 // rows
        frame["action"] = [ids[i] for i in act]
        frame["reward"] = reward
        frame["propensity"] = 1.0 / p["actions"]
        classes = [
            getattr(ope_mod, name)
            for name in (
                "ReplayMethod", "InverseProbabilityWeighting", "SelfNormalizedInverseProbabilityWeighting",
                "DirectMethod", "DoublyRobust", "SelfNormalizedDoublyRobust", "SwitchDoublyRobust",
                "DoublyRobustWithOptimisticShrinkage", "DoublyRobustWithPessimisticShrinkage",
                "SubGaussianInverseProbabilityWeighting", "SubGaussianDoublyRobust",
                "BalancedInverseProbabilityWeighting",
            )
        ]  # fmt: skip
        evaluator = OfflinePolicyEvaluator(
            split_prop=0.5,
            propensity_score_model_type="propensity_score",
            propensity_score_feature="propensity",
            expected_reward_model_type="logreg",
            importance_weights_model_type="logreg",
            fast_fit=True,
            ope_estimators=[c(n_bootstrap_samples=p["bootstrap"], random_state=0) for c in classes],
            batch_feature="batch",
            action_feature="action",
            reward_feature="reward",
            contextual_features=cols,
        )
        return lambda: evaluator.evaluate(
            mab, frame, n_mc_experiments=p["draws"], visualize=False, n_cores=os.cpu_count()
        )
    from bandits_jax import ope

    logged = ope.LoggedData(
        action=np.asarray(ids)[act],
        reward=reward,
        propensity_score=np.full(rows, 1.0 / p["actions"]),
        context=ctx,
    )
    return lambda: ope.evaluate(
        mab, logged, n_mc_experiments=p["draws"], n_bootstrap_samples=p["bootstrap"], random_seed=0
    )


def _simulation(library: str, p: dict, seed: int) -> float:
    """Seconds for one simulation: ``rounds`` of predict -> Bernoulli rewards -> update on a
    logistic environment. bandits_jax runs :func:`bandits_jax.simulation.simulate` (one compiled
    scan); PyBandits runs the same loop through its object API, as its users write it."""
    import numpy as np

    f, a = p["features"], p["actions"]
    if library == "bandits_jax":
        import jax

        from bandits_jax import simulation
        from bandits_jax.config import CmabConfig

        t = time.perf_counter()
        env = simulation.LogisticEnv.random(f, a, key=jax.random.key(seed))
        out = simulation.simulate(
            CmabConfig(n_features=f, num_steps=p["steps"]), env, jax.random.key(seed), p["rounds"], p["batch"]
        )
        jax.block_until_ready(out)
        return time.perf_counter() - t

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    weight = rng.normal(size=(f, a)) * 2 / np.sqrt(f)
    bias = rng.normal(size=a) * 0.5
    mab = _new_model(library, f, a, p["steps"], None, seed=seed)
    ids = [f"a{i}" for i in range(a)]
    for _ in range(p["rounds"]):
        ctx = rng.normal(size=(p["batch"], f))
        probs = 1 / (1 + np.exp(-(ctx @ weight + bias)))
        chosen, _, _ = mab.predict(context=ctx)
        idx = np.array([ids.index(c) for c in chosen])
        rewards = (rng.random(p["batch"]) < probs[np.arange(p["batch"]), idx]).astype(int).tolist()
        mab.update(actions=chosen, rewards=rewards, context=ctx)
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------- learning children
def _env_spec(env_name: str):
    return lib.ENVIRONMENTS[env_name]


def _hidden(env_name: str):
    # A hidden layer where the environment is non-linear, the linear model elsewhere.
    return [16] if _env_spec(env_name)["kind"] == "mlp" else None


def child_learning_data(env_name: str, setup: lib.LearningSetup, path: str) -> dict:
    """bandits_jax child: per seed, the contexts, reward probabilities and uniforms every policy
    plays, exactly as :func:`bandits_jax.simulation.simulate` draws them for ``jax.random.key(seed)``;
    plus the bandits_jax policies, the uniform-random and the linear-TS baselines on them."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bandits_jax import _random, baselines, simulation
    from bandits_jax.config import CmabConfig

    spec = _env_spec(env_name)
    seeds = list(range(setup.seeds))
    keys = jax.vmap(jax.random.key)(np.asarray(seeds))
    env_keys = jax.vmap(lambda s: jax.random.key(10_000 + s))(np.asarray(seeds))
    if spec["kind"] == "logistic":
        envs = jax.vmap(lambda k: simulation.LogisticEnv.random(spec["features"], spec["actions"], key=k))(
            env_keys
        )
        env_axis = 0
    elif spec["kind"] == "mlp":
        envs = jax.vmap(
            lambda k: simulation.MLPEnv.random(
                spec["features"], spec["actions"], key=k, hidden=spec["hidden"]
            )
        )(env_keys)
        env_axis = 0
    else:
        envs = simulation.load_sklearn(spec["kind"])
        env_axis = None

    def one_env(i):
        return envs if env_axis is None else jax.tree.map(lambda x: x[i], envs)

    def draws(env, key):
        env_key = jax.random.split(key, 3)[2]

        def one(t):
            ctx_key, reward_key, _ = jax.random.split(jax.random.fold_in(env_key, t), 3)
            ctx, probs = env.sample(ctx_key, setup.batch)
            return ctx, probs, _random.uniform(reward_key, probs.shape, probs.dtype)

        return jax.vmap(one)(jnp.arange(setup.rounds))

    ctxs, probs, unif = zip(*(draws(one_env(i), keys[i]) for i in seeds))
    np.savez(path, contexts=np.stack(ctxs), probs=np.stack(probs), uniforms=np.stack(unif))

    n_features = ctxs[0].shape[-1]
    hidden = tuple(_hidden(env_name) or ())
    defaults = CmabConfig(n_features=n_features, hidden_dim_list=hidden, num_steps=setup.num_steps)
    matched = dataclasses.replace(
        defaults,
        dist_type=lib.MATCHED["dist_type"],
        sigma=lib.MATCHED["sigma"],
        step_size=lib.MATCHED["step_size"],
        init_scale=None,  # each fit starts at the posterior, as the README's matched row measured
    )
    out: dict[str, list[float]] = {}
    for label, cfg in (("bandits_jax defaults", defaults), ("bandits_jax matched", matched)):
        res = simulation.sweep(cfg, envs, keys, setup.rounds, setup.batch, env_axis=env_axis)
        out[label] = np.asarray(res.policy.cumulative_regret[:, -1]).tolist()
        out["uniform random"] = np.asarray(res.random.cumulative_regret[:, -1]).tolist()
    ts_cfg = baselines.LinearTSConfig(n_features=n_features)
    out["linear TS (Laplace)"] = [
        float(
            baselines.simulate(ts_cfg, one_env(i), keys[i], setup.rounds, setup.batch).cumulative_regret[-1]
        )
        for i in seeds
    ]
    return {"regrets": out, "peak_rss_mib": _peak_rss_mib()}


def child_learning_pybandits(env_name: str, setup: lib.LearningSetup, path: str, n_seeds: int) -> dict:
    """PyBandits child: its defaults and the matched settings on the arrays of ``path``."""
    import numpy as np

    data = np.load(path)
    ctxs, probs, unif = data["contexts"], data["probs"], data["uniforms"]
    n_actions = probs.shape[-1]
    ids = [f"a{i}" for i in range(n_actions)]
    index = {a: i for i, a in enumerate(ids)}
    settings = {
        "PyBandits defaults": {},
        "PyBandits matched": {
            "dist_type": lib.MATCHED["dist_type"],
            "dist_params_init": {"mu": 0.0, "sigma": lib.MATCHED["sigma"]},
            "update_kwargs": {
                "num_steps": setup.num_steps,
                "optimizer_type": "adam",
                "optimizer_kwargs": {"step_size": lib.MATCHED["step_size"]},
            },
        },
    }
    from pybandits.cmab import CmabBernoulli

    out: dict[str, list[float]] = {}
    for label, extra in settings.items():
        out[label] = []
        for seed in range(n_seeds):
            kwargs = {"update_kwargs": {"num_steps": setup.num_steps}, **extra}
            if _hidden(env_name):
                kwargs["hidden_dim_list"] = _hidden(env_name)
            mab = CmabBernoulli.cold_start(
                action_ids=set(ids), n_features=ctxs.shape[-1], random_seed=seed, **kwargs
            )
            total = 0.0
            for t in range(ctxs.shape[1]):
                ctx, p, u = ctxs[seed, t].astype(np.float64), probs[seed, t], unif[seed, t]
                chosen, _, _ = mab.predict(context=ctx)
                idx = np.array([index[c] for c in chosen])
                rows = np.arange(len(idx))
                rewards = (u[rows, idx] < p[rows, idx]).astype(int).tolist()
                total += float(np.sum(p.max(axis=1) - p[rows, idx]))
                mab.update(actions=list(chosen), rewards=rewards, context=ctx)
            out[label].append(total)
    return {"regrets": out, "peak_rss_mib": _peak_rss_mib()}


# ---------------------------------------------------------------------------------- orchestration
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores visible, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run_speed(pb_python: str, quick: bool, log) -> tuple[dict, list]:
    runs = []
    cache_dir = tempfile.mkdtemp(prefix="bandits-jax-xla-")
    try:
        for w in lib.WORKLOADS:
            if w.params.get("compilation_cache"):
                # Fill the persistent cache once, untimed, as a user's earlier session would have.
                run_child(
                    "bandits_jax", ["--workload", w.name, "--cache-dir", cache_dir], sys.executable, 900
                )
        for name, library in lib.schedule(lib.WORKLOADS, quick):
            python = pb_python if library == "pybandits" else sys.executable
            args = ["--workload", name, "--cache-dir", cache_dir] + (["--quick"] if quick else [])
            t = time.perf_counter()
            payload = run_child(library, args, python, timeout=1800)
            if "error" in payload:
                payload["failed_metrics"] = list(lib.workload(name).metrics)
                log(f"  {name} [{library}] FAILED: {payload['error']}")
            else:
                log(f"  {name} [{library}] {time.perf_counter() - t:.1f} s")
            runs.append((library, payload))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return lib.apply_references(lib.aggregate(runs), lib.WORKLOADS), runs


def run_learning(
    pb_python: str,
    setup: lib.LearningSetup,
    pybandits_seeds: dict[str, int],
    log,
    jobs: int = 1,
    reuse: dict | None = None,
) -> dict:
    """Per environment, the bandits_jax child (data, our policies, baselines) then the PyBandits
    child on its data; up to ``jobs`` environments at once (nothing here is timed). ``reuse``:
    PyBandits' regrets per environment from an earlier run on the same draws (not rerun)."""
    tmp = tempfile.mkdtemp(prefix="bandits-jax-learning-")

    def one_env(env_name: str) -> dict:
        path = os.path.join(tmp, f"{env_name}.npz")
        common = ["--env", env_name, "--setup", json.dumps(vars(setup)), "--data", path]
        t = time.perf_counter()
        ours = run_child("bandits_jax", ["--learning", *common], sys.executable, 3600)
        log(f"  learning {env_name} [bandits_jax + baselines] {time.perf_counter() - t:.1f} s")
        if "error" in ours:
            return {p: ours["error"] for p in lib.POLICIES}
        regrets = dict(ours.get("regrets", {}))
        if reuse is not None:
            regrets.update({p: reuse[env_name][p] for p in lib.POLICIES if p.startswith("PyBandits")})
            return regrets
        if pybandits_seeds[env_name] == 0:
            regrets.update({p: "not run (--quick)" for p in lib.POLICIES if p.startswith("PyBandits")})
            return regrets
        t = time.perf_counter()
        pb = run_child(
            "pybandits",
            ["--learning", *common, "--pb-seeds", str(pybandits_seeds[env_name])],
            pb_python,
            3 * 3600,
        )
        log(f"  learning {env_name} [pybandits] {time.perf_counter() - t:.1f} s")
        if "error" in pb:
            regrets.update({p: pb["error"] for p in lib.POLICIES if p.startswith("PyBandits")})
        else:
            regrets.update(pb["regrets"])
        return regrets

    envs = list(lib.ENVIRONMENTS)
    try:
        return dict(zip(envs, lib.map_in_threads(one_env, envs, jobs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer processes, calls and rounds (~15 min, 2 cores)"
    )
    parser.add_argument("--json", help="also write every result to this file")
    parser.add_argument("--only", choices=("speed", "learning"))
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="learning-quality environments run at once (default: CPU cores); untimed, same regrets",
    )
    parser.add_argument(
        "--pybandits-seeds",
        type=int,
        help="learning quality: play PyBandits on this many seeds of every environment "
        "(default: all in the full run; --quick: the first seed of the small environments)",
    )
    parser.add_argument(
        "--reuse-pybandits",
        metavar="JSON",
        help="learning quality: take PyBandits' regrets from an earlier --json run of the same "
        "setup (its draws are the same: common random numbers) instead of playing it again",
    )
    parser.add_argument("--child", choices=lib.LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--learning", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--pb-seeds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.learning:
            setup = lib.LearningSetup(**json.loads(args.setup))
            if args.child == "bandits_jax":
                payload = child_learning_data(args.env, setup, args.data)
            else:
                payload = child_learning_pybandits(args.env, setup, args.data, args.pb_seeds)
        else:
            payload = child_workload(args.child, args.workload, args.quick, args.cache_dir)
        print(lib.encode_result(payload), flush=True)
        return

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", file=sys.stderr, flush=True)

    try:
        pb_python = str(ensure_pybandits_venv())
    except (subprocess.CalledProcessError, RuntimeError, OSError) as err:
        sys.exit(f"could not set up PyBandits {PYBANDITS_VERSION} in {VENV}: {err}")
    log(f"machine: {machine()}")
    result: dict = {"machine": machine(), "quick": args.quick, "pybandits": PYBANDITS_VERSION}
    if args.only in (None, "speed"):
        log("speed workloads (A B A B: pybandits, bandits_jax, ...)")
        agg, runs = run_speed(pb_python, args.quick, log)
        order = [m for w in lib.WORKLOADS for m in w.metrics]
        result["speed"] = agg
        print(f"\n## Speed ({'--quick' if args.quick else 'full'}; {machine()})\n")
        print(lib.speed_table(agg, order))
    if args.only in (None, "learning"):
        setup = lib.LEARNING_QUICK if args.quick else lib.LEARNING_FULL
        pb_seeds = (
            lib.LEARNING_QUICK_PYBANDITS_SEEDS if args.quick else dict.fromkeys(lib.ENVIRONMENTS, setup.seeds)
        )
        if args.pybandits_seeds is not None:
            pb_seeds = dict.fromkeys(lib.ENVIRONMENTS, min(args.pybandits_seeds, setup.seeds))
        reuse = None
        if args.reuse_pybandits:
            earlier = json.loads(Path(args.reuse_pybandits).read_text())["learning"]
            reuse, pb_seeds = lib.reusable_pybandits(earlier, setup)
        log(f"learning quality: {setup}, PyBandits on {pb_seeds} seed(s)" + (" (reused)" if reuse else ""))
        regrets = run_learning(pb_python, setup, pb_seeds, log, jobs=args.jobs, reuse=reuse)
        result["learning"] = {
            "setup": vars(setup),
            "pybandits_seeds": pb_seeds,
            "jobs": args.jobs,
            "regrets": regrets,
        }
        print("\n## Learning quality\n")
        print(lib.learning_table(regrets, setup))
        print()
        print(lib.paired_table(regrets))
    result["wall_s"] = time.perf_counter() - started
    log(f"done in {result['wall_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
