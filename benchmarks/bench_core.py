"""Core benchmark: update and predict timings, first call vs warm, and memory over many updates.

    python benchmarks/bench_core.py            # full table (a few minutes on 2 CPU cores)
    python benchmarks/bench_core.py --quick    # fewer repeats

First calls are measured in fresh processes (import, cold start, then the timed call), so they
include tracing and XLA compilation exactly as a user's script sees them. Warm figures are the
median of several calls in one process after a first call. Peak RSS is read in a fresh process
after 1, 100 and 1,000 tutorial-size updates, and after models of 1, 2, ..., 200 actions (each
cold-started, asked for a prediction and updated once) with the number of XLA compilations they
caused: the action axis is padded to buckets, so a service that adds actions over time compiles a
handful of programs, not three per action count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

# PyBandits 8.4.1 on a 2-core CPU (the reference figures, seconds).
PYBANDITS = {
    "tutorial update": (15.0, 6.0),
    "1000x10x5, 1000 steps, linear": (None, 15.0),
    "predict 10000 rows x 5 actions": (None, 0.6),
}

WORKLOADS = {
    "tutorial update": dict(rows=200, features=3, actions=2, steps=200, hidden=None),
    "1000x10x5, 1000 steps, linear": dict(rows=1000, features=10, actions=5, steps=1000, hidden=None),
    "1000x10x5, 1000 steps, hidden [16]": dict(rows=1000, features=10, actions=5, steps=1000, hidden=[16]),
}


def _model_and_batch(rows, features, actions, steps, hidden, seed=0):
    import numpy as np

    from bandits_jax.cmab import CmabBernoulli

    rng = np.random.default_rng(seed)
    mab = CmabBernoulli.cold_start(
        action_ids=[f"a{i}" for i in range(actions)],
        n_features=features,
        hidden_dim_list=hidden,
        update_kwargs={"num_steps": steps},
        random_seed=seed,
    )
    ctx = rng.normal(size=(rows, features))
    acts = [f"a{i}" for i in rng.integers(0, actions, rows)]
    rewards = rng.integers(0, 2, rows).tolist()
    return mab, ctx, acts, rewards


def child_first(name: str) -> None:
    """In a fresh process: time the first update of a workload (compilation included)."""
    start = time.perf_counter()
    mab, ctx, acts, rewards = _model_and_batch(**WORKLOADS[name])
    setup = time.perf_counter() - start
    t = time.perf_counter()
    mab.update(actions=acts, rewards=rewards, context=ctx)
    first = time.perf_counter() - t
    print(json.dumps({"first": first, "import_and_setup": setup}))


def child_memory() -> None:
    import resource

    mab, ctx, acts, rewards = _model_and_batch(**WORKLOADS["tutorial update"])
    out = {}
    for i in range(1, 1001):
        mab.update(actions=acts, rewards=rewards, context=ctx)
        if i in (1, 100, 1000):
            out[i] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    print(json.dumps(out))


def child_action_counts(top: int) -> None:
    """In a fresh process: models of 1..top actions, each cold-started, predicted and updated once;
    XLA compilations counted through jax.monitoring (every backend compile reports its duration)."""
    import resource

    import jax
    import numpy as np

    from bandits_jax.cmab import CmabBernoulli

    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    rng = np.random.default_rng(0)
    ctx = rng.normal(size=(32, 4))
    start = time.perf_counter()
    for n in range(1, top + 1):
        mab = CmabBernoulli.cold_start(
            [f"a{i}" for i in range(n)], n_features=4, update_kwargs={"num_steps": 20}, random_seed=n
        )
        chosen = mab.predict_arrays(ctx).actions
        mab.update(actions=chosen, rewards=rng.integers(0, 2, 32), context=ctx)
    print(
        json.dumps(
            {
                "counts": top,
                "compilations": len(compiles),
                "compile_s": sum(compiles),
                "wall_s": time.perf_counter() - start,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def _fresh(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child-first")
    parser.add_argument("--child-memory", action="store_true")
    parser.add_argument("--child-action-counts", type=int)
    parser.add_argument("--only-action-counts", action="store_true", help="only the action-count table")
    args = parser.parse_args()
    if args.child_first:
        return child_first(args.child_first)
    if args.child_memory:
        return child_memory()
    if args.child_action_counts:
        return child_action_counts(args.child_action_counts)
    if args.only_action_counts:
        return _print_action_counts(_fresh("--child-action-counts", "200"))

    import numpy as np

    repeats = 5 if args.quick else 9
    fresh = 1 if args.quick else 3
    rows = []
    for name, spec in WORKLOADS.items():
        firsts = [_fresh("--child-first", name)["first"] for _ in range(fresh)]
        mab, ctx, acts, rewards = _model_and_batch(**spec)
        mab.update(actions=acts, rewards=rewards, context=ctx)  # compile
        warm = _median_time(lambda: mab.update(actions=acts, rewards=rewards, context=ctx), repeats)
        rows.append((name, statistics.median(firsts), warm))

    mab, _, _, _ = _model_and_batch(rows=10, features=10, actions=5, steps=10, hidden=None)
    rng = np.random.default_rng(1)
    predict_rows = []
    for n in (1, 100, 10_000):
        ctx = rng.normal(size=(n, 10))
        mab.predict_arrays(ctx)
        mab.predict(ctx)
        arrays = _median_time(lambda: mab.predict_arrays(ctx), repeats * 3)
        lists = _median_time(lambda: mab.predict(ctx), repeats * 3)
        predict_rows.append((n, arrays, lists))
    memory = _fresh("--child-memory")

    print(
        f"bandits_jax core benchmark (median of {repeats} warm calls; first call in {fresh} fresh process(es))"
    )
    print()
    print(
        f"| {'update workload':<36} | {'first (s)':>9} | {'warm (ms)':>9} | {'PyBandits warm (s)':>18} | {'speed-up':>8} |"
    )
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 11}|{'-' * 20}|{'-' * 10}|")
    results = {"update": {}, "predict": {}, "memory_mib": memory}
    for name, first, warm in rows:
        ref = PYBANDITS.get(name, (None, None))[1]
        speed = f"{ref / warm:,.0f}x" if ref else "-"
        print(f"| {name:<36} | {first:>9.2f} | {warm * 1e3:>9.2f} | {ref if ref else '-':>18} | {speed:>8} |")
        results["update"][name] = {"first_s": first, "warm_s": warm}
    print()
    print(
        f"| {'predict, 5 actions':<20} | {'arrays (ms)':>11} | {'lists (ms)':>10} | {'vs PyBandits 0.6 s (arrays / lists)':>36} |"
    )
    print(f"|{'-' * 22}|{'-' * 13}|{'-' * 12}|{'-' * 38}|")
    for n, arrays, lists in predict_rows:
        ratio = f"{0.6 / arrays:,.0f}x / {0.6 / lists:,.0f}x" if n == 10_000 else "-"
        print(f"| {f'{n:,} rows':<20} | {arrays * 1e3:>11.3f} | {lists * 1e3:>10.3f} | {ratio:>36} |")
        results["predict"][n] = {"arrays_s": arrays, "lists_s": lists}
    print()
    print(
        "peak RSS (MiB) after 1 / 100 / 1000 tutorial updates: "
        + " / ".join(f"{v:.0f}" for v in memory.values())
    )
    results["action_counts"] = _print_action_counts(_fresh("--child-action-counts", "200"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def _print_action_counts(counts: dict) -> dict:
    print()
    print(
        f"models of 1..{counts['counts']} actions (cold start + predict + update each): "
        f"{counts['compilations']} XLA compilations ({counts['compile_s']:.1f} s of compiling, "
        f"{counts['wall_s']:.1f} s in all), peak RSS {counts['peak_rss_mib']:.0f} MiB"
    )
    return counts


if __name__ == "__main__":
    main()
