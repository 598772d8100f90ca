"""``bandits-jax simulate``: a vectorised sweep of simulated experiments, saved as JSON and a plot.

Writes ``DIR/results.json`` with the fields:
    ``configuration``: every option, the resolved sizes and the CMAB configuration;
    ``policy_cumulative_regret``, ``random_cumulative_regret``, ``smab_cumulative_regret``:
    runs x rounds lists of cumulative expected regret (the oracle's is 0 by definition);
    ``policy_mean_reward``, ``random_mean_reward``, ``smab_mean_reward``, ``oracle_mean_reward``:
    runs x rounds lists of each round's observed reward rate;
    ``svi_divergences``: how many (run, round, action) fits went non-finite;
    ``wall_time_s`` (the sweep, compilation included), ``device_count``, ``devices``,
    ``jax_version``, ``bandits_jax_version``.
and ``DIR/regret.png``: mean cumulative regret over runs with a 10-90 % band, policy vs random vs
sMAB (needs matplotlib, the ``sim`` extra; ``--no-plot`` skips it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

SYNTHETIC = ("logistic", "nonlinear")
DATASETS = ("digits", "wine", "iris", "breast_cancer")
EXTRA_HINT = "pip install 'bandits_jax[sim]'"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _widths(text: str) -> tuple[int, ...]:
    """``""`` or ``"0"``: no hidden layer; ``"16"`` or ``"16,8"``: hidden widths."""
    if text.strip() in ("", "0"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive widths such as 16 or 16,8, got {text!r}"
        ) from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"hidden widths must be positive, got {text!r}")
    return widths


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "simulate",
        help="many simulated bandit experiments at once (vmapped, sharded over devices); "
        "writes results.json and regret.png",
        description="Run --runs independent simulated experiments of the Bayesian-NN contextual bandit "
        "as one compiled, vectorised program, with uniform-random, oracle and context-free sMAB "
        "baselines on the same draws, and save the regret curves.",
    )
    p.add_argument("--runs", type=_positive_int, default=16, help="independent experiments (default 16)")
    p.add_argument("--rounds", type=_positive_int, default=30, help="rounds per experiment (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="decisions per round (default 64)")
    p.add_argument(
        "--actions", type=_positive_int, default=None, help="actions of a synthetic environment (default 3)"
    )
    p.add_argument(
        "--features", type=_positive_int, default=None, help="features of a synthetic environment (default 4)"
    )
    p.add_argument(
        "--hidden",
        type=_widths,
        default=(),
        help="the model's hidden widths, e.g. 16 or 16,8 (default: none, Bayesian logistic regression)",
    )
    p.add_argument("--num-steps", type=_positive_int, default=100, help="SVI steps per update (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the environments and runs (default 0)")
    p.add_argument(
        "--environment",
        default="logistic",
        choices=SYNTHETIC + DATASETS,
        help="logistic or nonlinear (a new random one per run), or a scikit-learn data set "
        "(needs the sim extra) (default logistic)",
    )
    p.add_argument("--out", type=Path, default=Path("simulation_results"), help="output folder")
    p.add_argument("--no-plot", action="store_true", help="skip regret.png (no matplotlib needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _fail(message: str) -> int:
    print(f"bandits-jax simulate: error: {message}", file=sys.stderr)
    return 2


def _build_env(args, jax):
    from bandits_jax import simulation

    if args.environment in SYNTHETIC:
        n_actions = 3 if args.actions is None else args.actions
        n_features = 4 if args.features is None else args.features
        make = simulation.LogisticEnv.random if args.environment == "logistic" else simulation.MLPEnv.random
        env_keys = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 1), args.runs)
        return jax.vmap(lambda k: make(n_features, n_actions, key=k))(env_keys), 0
    env = simulation.load_sklearn(args.environment)
    for name, given, actual in (
        ("--actions", args.actions, env.n_actions),
        ("--features", args.features, env.n_features),
    ):
        if given is not None and given != actual:
            raise ValueError(
                f"{name} {given} does not match the {args.environment!r} data set, which has {actual}"
            )
    return env, None


def run(args: argparse.Namespace) -> int:
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        return _fail(f"regret.png needs matplotlib, an optional extra: {EXTRA_HINT} (or pass --no-plot)")
    if args.environment in DATASETS and importlib.util.find_spec("sklearn") is None:
        return _fail(
            f"the {args.environment!r} environment needs scikit-learn, an optional extra: {EXTRA_HINT}"
        )

    import jax
    import numpy as np
    from tqdm.auto import tqdm

    import bandits_jax
    from bandits_jax import simulation
    from bandits_jax.config import CmabConfig

    try:
        env, env_axis = _build_env(args, jax)
    except ValueError as err:
        return _fail(str(err))
    config = CmabConfig(n_features=env.n_features, hidden_dim_list=args.hidden, num_steps=args.num_steps)
    keys = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 0), args.runs)
    print(
        f"simulate: {args.runs} runs x {args.rounds} rounds x {args.batch_size} rows, "
        f"{env.n_actions} actions, {env.n_features} features, hidden {list(args.hidden)}, "
        f"{args.num_steps} SVI steps, environment {args.environment!r}, {jax.device_count()} device(s)"
    )
    with tqdm(
        total=args.rounds, unit="round", desc="simulate", disable=args.no_progress, file=sys.stderr
    ) as bar:
        bar.set_postfix_str("compiling")

        def progress(done: int) -> None:
            bar.set_postfix_str("")
            bar.update(done - bar.n)

        start = time.perf_counter()
        # One round per chunk: a progress tick per round, one compiled program, same result as one scan.
        out = simulation.sweep(
            config,
            env,
            keys,
            args.rounds,
            args.batch_size,
            env_axis=env_axis,
            chunk_rounds=1,
            callback=progress,
        )
        out = jax.device_get(out)
        wall = time.perf_counter() - start

    def rows(x) -> list:
        return np.asarray(x, np.float64).tolist()

    def mean_reward(trace) -> list:
        return rows(np.asarray(trace.rewards).mean(axis=-1))

    results = {
        "configuration": {
            "environment": args.environment,
            "runs": args.runs,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "n_actions": env.n_actions,
            "n_features": env.n_features,
            "hidden": list(args.hidden),
            "num_steps": args.num_steps,
            "seed": args.seed,
            "cmab_config": simulation._config_dict(config),
        },
        "policy_cumulative_regret": rows(out.policy.cumulative_regret),
        "random_cumulative_regret": rows(out.random.cumulative_regret),
        "smab_cumulative_regret": rows(out.smab.cumulative_regret),
        "policy_mean_reward": mean_reward(out.policy),
        "random_mean_reward": mean_reward(out.random),
        "smab_mean_reward": mean_reward(out.smab),
        "oracle_mean_reward": mean_reward(out.oracle),
        "svi_divergences": int((~np.asarray(out.update_ok)).sum()),
        "wall_time_s": wall,
        "device_count": jax.device_count(),
        "devices": [str(d) for d in jax.devices()],
        "jax_version": jax.__version__,
        "bandits_jax_version": bandits_jax.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "results.json"
    json_path.write_text(json.dumps(results, indent=1))

    print(f"{'policy':<8} {'final cumulative regret (mean +- sd over runs)':>48}  {'reward rate':>11}")
    for name in ("policy", "random", "smab", "oracle"):
        final = np.asarray(getattr(out, name).cumulative_regret)[:, -1]
        rate = np.asarray(getattr(out, name).rewards).mean()
        print(f"{name:<8} {final.mean():>38.2f} +- {final.std():<7.2f}  {rate:>11.3f}")
    print(f"wall time {wall:.1f} s (compilation included); wrote {json_path}")
    if not args.no_plot:
        png = args.out / "regret.png"
        ax = simulation.plot_regret(
            out, title=f"{args.environment}: {args.runs} runs, batch {args.batch_size}"
        )
        ax.figure.savefig(png, dpi=120)
        print(f"wrote {png}")
    return 0
