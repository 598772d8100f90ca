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
repeats after it, sweep and loop alternating. PyBandits' ``CmabSimulator`` is timed only where ``import pybandits`` works in
this interpreter (its pinned jax conflicts with ours; ``compare_pybandits.py`` runs it from its own
virtual environment).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

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


def time_pybandits(n_runs: int) -> dict | None:
    """PyBandits' CmabSimulator on the same sizes, where it can be imported here."""
    try:
        import numpy as np
        from pybandits.cmab import CmabBernoulli
        from pybandits.cmab_simulator import CmabSimulator
    except ImportError:
        return None
    ids = {f"a{i}" for i in range(ACTIONS)}
    times = []
    for run in range(n_runs):
        context = np.random.default_rng(run).normal(size=(BATCH * ROUNDS, FEATURES))
        t = time.perf_counter()
        mab = CmabBernoulli.cold_start(
            action_ids=ids, n_features=FEATURES, update_kwargs={"num_steps": STEPS}, random_seed=run
        )
        # PyBandits 8.x fields; probs_reward=None draws a random ground truth per action.
        CmabSimulator(
            cmab=mab, context=context, n_updates=ROUNDS, batch_size=BATCH, random_seed=run, verbose=False
        ).run()
        times.append(time.perf_counter() - t)
    return {"warm_s": sum(times), "samples": times}


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
    args = parser.parse_args()
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

    try:
        pyb = time_pybandits(1)
    except Exception as err:  # PyBandits' simulator signature differs between versions
        print(f"PyBandits CmabSimulator: failed ({type(err).__name__}: {err}); not compared")
        pyb = None
    else:
        if pyb is None:
            print(
                "PyBandits CmabSimulator: skipped (`import pybandits` fails in this interpreter; "
                "benchmarks/compare_pybandits.py times PyBandits from its own virtual environment)"
            )
        else:
            tp = ROUNDS / pyb["warm_s"]
            print(f"PyBandits CmabSimulator, 1 run: {pyb['warm_s']:.2f} s, {tp:.3f} bandit-rounds/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "pybandits": pyb, "devices": [str(d) for d in devices]}, f, indent=1)


if __name__ == "__main__":
    main()
