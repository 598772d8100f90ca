"""Sweep benchmark: bandit-rounds per second of a vectorised sweep vs a Python loop of single runs.

    python benchmarks/bench_sweep.py             # 1, 16, 64 and 256 runs (a few minutes on 2 CPU cores)
    python benchmarks/bench_sweep.py --quick     # 1, 16 and 64 runs, 2 timed repeats
    python benchmarks/bench_sweep.py --json out.json
    python benchmarks/bench_sweep.py --cpu-devices 1   # the CPU as one device (JAX's default)

Every run is one simulated experiment of the issue's size: 10 rounds x 100 rows, 5 actions,
10 features, a linear Bayesian network and 100 SVI steps per update, on a random logistic
environment of its own. A *bandit-round* is one round of one run (100 decisions, one update of
every action); throughput is ``runs x rounds / seconds``.

* vectorised: one :func:`bandits_jax.simulation.sweep` call over all runs (one compiled program,
  ``vmap`` over runs, sharded over every device there is). On a CPU, ``--cpu-devices N`` (default:
  one per core) splits the host into N XLA devices with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, so that the sharded sweep keeps every
  core busy; JAX's default, one CPU device, leaves small per-run operations on one core;
* loop: a Python loop of :func:`bandits_jax.simulation.simulate` calls, one per run (one compiled
  program, reused by every call), as a user without ``sweep`` would write it.

The first call of each is timed separately (tracing and XLA compilation included: the sweep
compiles once per number of runs, the loop once for all); the table gives the median of the timed
repeats after it, sweep and loop alternating.

PyBandits 8.4.1's ``CmabSimulator`` runs the same configuration (10 rounds x batch 100, 5 actions,
10 features, 100 SVI steps, its default linear model) in a fresh process of the virtual
environment that ``compare_pybandits.py`` creates, ``benchmarks/.pybandits-venv`` (PyBandits pins
a jax that conflicts with ours), where that environment exists; ``--no-pybandits`` skips it. One
simulated round of 100 rows comes first, untimed (it pays the process's one-off costs), then
``--pybandits-runs`` runs (default 1: PyBandits takes about a minute per run, refitting every
action each round, so more runs add little). Its ground truth is the simulator's own random one
(a spline of the context per action, ``probs_reward=None``) rather than our logistic environment;
the work per round, a predict and an update of every action on 100 rows, is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUNDS, BATCH, ACTIONS, FEATURES, STEPS = 10, 100, 5, 10, 100


def _setup(n_runs: int, seed: int = 0):
    import jax

    from bandits_jax import simulation
    from bandits_jax.config import CmabConfig

    config = CmabConfig(n_features=FEATURES, num_steps=STEPS)
    env_keys = jax.random.split(jax.random.key(seed + 1), n_runs)
    envs = jax.vmap(lambda k: simulation.LogisticEnv.random(FEATURES, ACTIONS, key=k))(env_keys)
    keys = jax.random.split(jax.random.key(seed), n_runs)
    return config, envs, keys


def vectorised_call(n_runs: int):
    """A function running one sweep over ``n_runs`` runs (blocking until it is done)."""
    import jax

    from bandits_jax import simulation

    config, envs, keys = _setup(n_runs)

    def call():
        return jax.block_until_ready(simulation.sweep(config, envs, keys, ROUNDS, BATCH, env_axis=0))

    return call


def loop_call(n_runs: int):
    """A function running ``n_runs`` single simulate calls in a Python loop."""
    import jax

    from bandits_jax import simulation

    config, envs, keys = _setup(n_runs)
    one_envs = [jax.tree.map(lambda x, i=i: x[i], envs) for i in range(n_runs)]

    def call():
        outs = [simulation.simulate(config, one_envs[i], keys[i], ROUNDS, BATCH) for i in range(n_runs)]
        return jax.block_until_ready(outs)

    return call


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(n_runs: int, repeats: int) -> dict:
    """First calls, then ``repeats`` timed calls of each, alternating sweep and loop so that drifts
    of a shared machine hit both alike."""
    vec, loop = vectorised_call(n_runs), loop_call(n_runs)
    vec_first, out = _timed(vec)
    loop_first, _ = _timed(loop)
    vec_warm, loop_warm = [], []
    for _ in range(repeats):
        vec_warm.append(_timed(vec)[0])
        loop_warm.append(_timed(loop)[0])
    regret = (
        float(out.policy.cumulative_regret[:, -1].mean()),
        float(out.random.cumulative_regret[:, -1].mean()),
    )
    return {
        "vectorised": {"first_s": vec_first, "warm_s": statistics.median(vec_warm), "samples": vec_warm},
        "loop": {"first_s": loop_first, "warm_s": statistics.median(loop_warm), "samples": loop_warm},
        "regret_policy_random": regret,
    }


def pybandits_child(n_runs: int) -> dict:
    """In PyBandits' environment: ``n_runs`` CmabSimulator runs of the benchmark's size, after an
    untimed one-round warm-up; seconds per run (model creation included) and final regrets."""
    import importlib.metadata

    import numpy as np
    from pybandits.cmab import CmabBernoulli
    from pybandits.cmab_simulator import CmabSimulator

    ids = {f"a{i}" for i in range(ACTIONS)}

    def one(seed: int, n_updates: int):
        np.random.seed(seed)  # the simulator draws its random ground truth from NumPy's global state
        # Uniform on [0, 1): the domain of the splines of that ground truth.
        context = np.random.default_rng(seed).random(size=(BATCH * n_updates, FEATURES))
        t = time.perf_counter()
        mab = CmabBernoulli.cold_start(
            action_ids=ids, n_features=FEATURES, update_kwargs={"num_steps": STEPS}, random_seed=seed
        )
        # PyBandits 8.4.1: the model goes in as ``mab`` (its validators read that key), the context
        # holds batch_size x n_updates rows, probs_reward=None draws a random ground truth per action.
        sim = CmabSimulator(
            mab=mab, context=context, n_updates=n_updates, batch_size=BATCH, random_seed=seed, verbose=False
        )
        sim.run()
        return time.perf_counter() - t, float(sim.results["cum_regret"].iloc[-1])

    warmup_s, _ = one(10_000, 1)
    times, regrets = [], []
    for run in range(n_runs):
        seconds, regret = one(run, ROUNDS)
        times.append(seconds)
        regrets.append(regret)
    return {
        "version": importlib.metadata.version("pybandits"),
        "warmup_one_round_s": warmup_s,
        "samples": times,
        "total_s": sum(times),
        "throughput": n_runs * ROUNDS / sum(times),
        "cum_regret": regrets,
    }


def pybandits_python() -> tuple[str | None, str]:
    """The interpreter to run PyBandits with (this one if it has pybandits, else the
    compare_pybandits.py environment if it exists, missing extras installed), and why not if None."""
    import importlib.util

    if importlib.util.find_spec("pybandits") is not None:
        return sys.executable, "this interpreter"
    sys.path.insert(0, str(HERE))
    import compare_pybandits as cp

    if not cp.venv_python().exists():
        return None, f"no {cp.VENV}; `python benchmarks/compare_pybandits.py --only speed` creates it"
    try:
        return str(cp.ensure_pybandits_venv()), str(cp.VENV.relative_to(HERE.parent))
    except (subprocess.CalledProcessError, RuntimeError, OSError) as err:
        return None, f"could not prepare {cp.VENV}: {err}"


def pybandits_env(xla_flags: str | None) -> dict[str, str]:
    """The PyBandits child's environment: compare_pybandits.py's (no PYTHONPATH to this repository,
    quiet logs) with the caller's own XLA_FLAGS, not the host-device split made for our sweep."""
    sys.path.insert(0, str(HERE))
    import compare_pybandits as cp

    env = cp.child_env("pybandits")
    env.pop("XLA_FLAGS", None)
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    return env


def time_pybandits(n_runs: int, xla_flags: str | None) -> tuple[dict | None, str]:
    """PyBandits' CmabSimulator in a fresh child process: (its result or None, where / why not)."""
    python, where = pybandits_python()
    if python is None:
        return None, where
    sys.path.insert(0, str(HERE))
    import compare_lib

    env = pybandits_env(xla_flags)
    cmd = [python, str(Path(__file__).resolve()), "--pybandits-child", "--pybandits-runs", str(n_runs)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return None, f"{where}: timed out"
    try:
        return compare_lib.parse_child_output(res.stdout), where
    except ValueError as err:
        tail = "\n".join(res.stderr.strip().splitlines()[-8:])
        return None, f"{where}: exit code {res.returncode}: {err}\n{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1, 16 and 64 runs, 2 timed repeats")
    parser.add_argument("--runs", type=int, nargs="+", default=None, help="run counts (default 1 16 64 256)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats after the first call (3)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--cpu-devices", type=int, default=os.cpu_count(), help="XLA host devices on a CPU (default: cores)"
    )
    parser.add_argument("--no-pybandits", action="store_true", help="skip PyBandits' CmabSimulator")
    parser.add_argument(
        "--pybandits-runs", type=int, default=1, help="timed CmabSimulator runs (default 1: ~1 min each)"
    )
    parser.add_argument("--pybandits-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pybandits_child:  # in PyBandits' environment: no bandits_jax, no jax of ours
        sys.path.insert(0, str(HERE))
        import compare_lib

        print(compare_lib.encode_result(pybandits_child(args.pybandits_runs)), flush=True)
        return
    caller_xla_flags = os.environ.get("XLA_FLAGS")
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        # Before jax is imported: the flag is read once, when the CPU backend starts.
        flag = f"--xla_force_host_platform_device_count={args.cpu_devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    runs = args.runs or ([1, 16, 64] if args.quick else [1, 16, 64, 256])
    repeats = args.repeats or (2 if args.quick else 3)

    import jax

    devices = jax.devices()
    print(
        f"bench_sweep: {ROUNDS} rounds x {BATCH} rows, {ACTIONS} actions, {FEATURES} features, {STEPS} SVI "
        f"steps; {len(devices)} x {devices[0].device_kind} ({devices[0].platform}), "
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; jax {jax.__version__}"
    )
    print(
        f"median of {repeats} timed repeats after a first call; throughput in bandit-rounds/s (runs x rounds / s)"
    )
    header = (
        f"{'runs':>5} | {'sweep first s':>13} {'sweep s':>8} {'sweep r/s':>10} | "
        f"{'loop first s':>12} {'loop s':>8} {'loop r/s':>9} | {'speed-up':>8} | {'regret policy/random':>20}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for n in runs:
        m = measure(n, repeats)
        vec, loop = m["vectorised"], m["loop"]
        vec_tp = n * ROUNDS / vec["warm_s"]
        loop_tp = n * ROUNDS / loop["warm_s"]
        policy, random = m["regret_policy_random"]
        print(
            f"{n:>5} | {vec['first_s']:>13.2f} {vec['warm_s']:>8.3f} {vec_tp:>10.1f} | "
            f"{loop['first_s']:>12.2f} {loop['warm_s']:>8.3f} {loop_tp:>9.1f} | {vec_tp / loop_tp:>7.1f}x | "
            f"{policy:>9.1f} / {random:<8.1f}",
            flush=True,
        )
        rows.append({"runs": n, **m, "speedup": vec_tp / loop_tp})

    pyb = None
    if args.no_pybandits:
        print("PyBandits CmabSimulator: skipped (--no-pybandits)")
    else:
        pyb, where = time_pybandits(args.pybandits_runs, caller_xla_flags)
        if pyb is None:
            print(f"PyBandits CmabSimulator: not compared ({where})")
        else:
            pyb["where"] = where
            print(
                f"PyBandits {pyb['version']} CmabSimulator ({where}, fresh process): {args.pybandits_runs} "
                f"run(s) of the same size after an untimed one-round warm-up ({pyb['warmup_one_round_s']:.1f} s): "
                f"{pyb['total_s']:.1f} s, {pyb['throughput']:.3f} bandit-rounds/s; final regret "
                + ", ".join(f"{r:.1f}" for r in pyb["cum_regret"])
            )
            for row in rows:
                sweep_tp = row["runs"] * ROUNDS / row["vectorised"]["warm_s"]
                loop_tp = row["runs"] * ROUNDS / row["loop"]["warm_s"]
                row["vs_pybandits"] = {
                    "sweep": sweep_tp / pyb["throughput"],
                    "loop": loop_tp / pyb["throughput"],
                }
                print(
                    f"  {row['runs']:>4} runs: sweep {sweep_tp / pyb['throughput']:,.0f}x, "
                    f"loop {loop_tp / pyb['throughput']:,.0f}x PyBandits' throughput"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "pybandits": pyb, "devices": [str(d) for d in devices]}, f, indent=1)


if __name__ == "__main__":
    main()
