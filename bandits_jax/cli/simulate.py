"""``bandits-jax simulate``: a vectorised sweep of simulated experiments, saved as JSON and a plot.

Writes ``DIR/results.json`` with the fields:
    ``configuration``: every option, the resolved sizes and the CMAB configuration;
    ``policy_cumulative_regret``, ``random_cumulative_regret``, ``smab_cumulative_regret``:
    runs x rounds lists of cumulative expected regret (the oracle's is 0 by definition);
    ``policy_mean_reward``, ``random_mean_reward``, ``smab_mean_reward``, ``oracle_mean_reward``:
    runs x rounds lists of each round's observed reward rate;
    ``policies``: per policy name, ``{"cumulative_regret": runs x rounds, "mean_reward": runs x
    rounds}`` (with ``--policies``, the named registry policies; by default ``policy``, ``random``
    and ``smab``, the same curves as the three fields above, which only the default writes);
    ``svi_divergences``: how many (run, round, action) fits went non-finite;
    ``wall_time_s`` (the sweep, compilation included), ``device_count``, ``process_count``, ``devices``,
    ``jax_version``, ``bandits_jax_version``.
and ``DIR/regret.png``: mean cumulative regret over runs with a 10-90 % band, one curve per policy
(needs matplotlib, the ``sim`` extra; ``--no-plot`` skips it).

``--policies bnn_ts,linear_ts,uniform`` plays registry policies (:data:`bandits_jax.policies.REGISTRY`)
instead of the default Bayesian-NN CMAB with its uniform-random and sMAB baselines: ``bnn_ts`` is
the CMAB of ``--hidden`` and ``--num-steps``, ``linear_ts`` exact linear Thompson sampling, the
others their defaults; all play the same contexts and reward draws, with the oracle.

Several processes (hosts): start the same command on every process with ``--coordinator
HOST:PORT --num-processes N --process-id I`` (or the environment variables
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``). Each process calls
``jax.distributed.initialize`` first, the sweep's runs are laid over every process's devices, the
results are gathered to every process, and process 0 alone checks ``--out``, prints, and writes
the files (the others print nothing and exit 0 once the results are gathered). On CPU the
processes talk through JAX's default gloo collectives.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SYNTHETIC = ("logistic", "nonlinear")
DATASETS = ("digits", "wine", "iris", "breast_cancer")
EXTRA_HINT = "pip install 'bandits_jax[sim]'"
DEFAULT_ACTIONS, DEFAULT_FEATURES = 3, 4
# jax.random.key takes a Python int that fits in int64 (without jax_enable_x64 only its low 32 bits
# matter, so seeds that differ by a multiple of 2**32 give the same key).
SEED_RANGE = (-(2**63), 2**63 - 1)
REDUCE_HINT = "reduce --runs, --batch-size, --rounds, --num-steps or the --hidden widths"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(low: int, high: int):
    """An argparse type: an integer seed in ``[low, high]``."""

    def seed(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
        return value

    return seed


def is_out_of_memory(err: BaseException) -> bool:
    """A host ``MemoryError`` or XLA's RESOURCE_EXHAUSTED / out-of-memory runtime error."""
    if isinstance(err, MemoryError):
        return True
    import jax

    text = str(err)
    return isinstance(err, jax.errors.JaxRuntimeError) and (
        "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()
    )


def out_of_memory_message(err: BaseException, hint: str = REDUCE_HINT) -> str:
    """One line: XLA's first line (or the error's type) and what to reduce."""
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return f"out of memory ({detail}); {hint}"


def _distributed(args) -> str | None:
    """Why ``--coordinator`` / ``--num-processes`` / ``--process-id`` do not make a job, else None.
    Single-process when none is given (or ``--num-processes 1`` alone)."""
    coordinator = getattr(args, "coordinator", None)
    n = getattr(args, "num_processes", None)
    pid = getattr(args, "process_id", None)
    if coordinator is None and pid is None and n in (None, 1):
        return None
    if coordinator is None or n is None or pid is None:
        return "several processes need --coordinator, --num-processes and --process-id together"
    if ":" not in coordinator:
        return f"--coordinator must be HOST:PORT, got {coordinator!r}"
    if pid >= n:
        return f"--process-id {pid} must be below --num-processes {n}"
    return None


def _is_multiprocess(args) -> bool:
    return getattr(args, "coordinator", None) is not None


def _process_id(args) -> int:
    return getattr(args, "process_id", None) or 0


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


def _policy_names(text: str) -> tuple[str, ...]:
    """Comma-separated, distinct names of :data:`bandits_jax.policies.REGISTRY`."""
    from bandits_jax.policies import REGISTRY

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in REGISTRY]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct comma-separated policy names from {sorted(REGISTRY)}, got {text!r}"
        )
    return names


def players(names, config) -> dict:
    """The registry policies called ``names``, built for ``config``'s problem."""
    from bandits_jax import policies

    out = {}
    for name in names:
        cls = policies.REGISTRY[name]
        if cls is policies.BnnTS:
            out[name] = policies.BnnTS.from_config(config)
        elif cls is policies.LinearTS:
            out[name] = policies.LinearTS(config.n_features)
        elif cls in (policies.Uniform, policies.BetaBernoulli):
            out[name] = cls()
        else:
            out[name] = cls.example(config.n_features)
    return out


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
    p.add_argument(
        "--seed",
        type=_seed(*SEED_RANGE),
        default=0,
        help="seed of the environments and runs, from -2**63 to 2**63 - 1 (default 0)",
    )
    p.add_argument(
        "--environment",
        default="logistic",
        choices=SYNTHETIC + DATASETS,
        help="logistic or nonlinear (a new random one per run), or a scikit-learn data set "
        "(needs the sim extra) (default logistic)",
    )
    p.add_argument(
        "--policies",
        type=_policy_names,
        default=None,
        help="comma-separated registry policies to compare, e.g. bnn_ts,linear_ts,uniform "
        "(default: the Bayesian-NN CMAB as 'policy' with 'random' and 'smab' baselines)",
    )
    p.add_argument("--out", type=Path, default=Path("simulation_results"), help="output folder")
    p.add_argument("--no-plot", action="store_true", help="skip regret.png (no matplotlib needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = p.add_argument_group("several processes (jax.distributed; all three, or none)")
    dist.add_argument(
        "--coordinator",
        default=os.environ.get("JAX_COORDINATOR_ADDRESS") or None,
        metavar="HOST:PORT",
        help="process 0's address (default $JAX_COORDINATOR_ADDRESS)",
    )
    dist.add_argument(
        "--num-processes",
        type=_positive_int,
        default=os.environ.get("JAX_NUM_PROCESSES") or None,  # a string default: argparse parses it
        help="how many processes run this command (default $JAX_NUM_PROCESSES, else one)",
    )
    dist.add_argument(
        "--process-id",
        type=_seed(0, 2**31 - 1),
        default=os.environ.get("JAX_PROCESS_ID") or None,
        help="this process's index, 0 to N-1 (default $JAX_PROCESS_ID)",
    )
    p.set_defaults(func=run)
    return p


def _fail(message: str, status: int = 2) -> int:
    print(f"bandits-jax simulate: error: {message}", file=sys.stderr)
    return status


def _check_out(out: Path) -> str | None:
    """None once ``out`` is a folder this process can write in (created if need be), else why not."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out {out}: cannot create the folder ({err.strerror or err})"
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".bandits-jax-probe-"):
            pass
    except OSError as err:
        return f"--out {out}: cannot create files in the folder ({err.strerror or err})"
    for name in ("results.json", "regret.png"):
        if (out / name).exists() and not (out / name).is_file():
            return f"--out {out}: {out / name} exists and is not a file"
    return None


def _memory_sizes(jax) -> tuple[int | None, int | None]:
    """Bytes of the host's RAM and of the devices' memory together (None where unknown)."""
    try:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        host = None
    try:
        stats = [d.memory_stats() for d in jax.devices()]
    except Exception:  # a backend without memory statistics
        stats = [None]
    devices = sum(s["bytes_limit"] for s in stats) if all(s and s.get("bytes_limit") for s in stats) else None
    return host, devices


def _check_memory(args, n_actions: int, n_features: int, jax) -> str | None:
    """None unless a lower bound of what the run must hold already exceeds the memory there is:
    the results (int32 actions and rewards of every policy and the oracle per run, round and row),
    which also come back to the host, and each run's posterior (a float32 mean and scale per weight
    and action)."""
    widths = (n_features, *args.hidden, 1)
    n_weights = sum(a * b + b for a, b in zip(widths, widths[1:]))
    n_players = 4 if getattr(args, "policies", None) is None else len(args.policies) + 1
    results = 8 * n_players * args.runs * args.rounds * args.batch_size
    posterior = 8 * args.runs * n_actions * n_weights
    host, devices = _memory_sizes(jax)
    if devices is None:  # the CPU backend: the devices' memory is the host's
        checks = [("the host's memory", host, results + posterior)]
    else:
        checks = [("the devices' memory", devices, results + posterior), ("the host's memory", host, results)]
    for where, limit, need in checks:
        if limit is not None and need > limit:
            return (
                f"--runs {args.runs} x --rounds {args.rounds} x --batch-size {args.batch_size} "
                f"(hidden {list(args.hidden)}) needs at least {need / 2**30:.1f} GiB, more than "
                f"{where} ({limit / 2**30:.1f} GiB); {REDUCE_HINT}"
            )
    return None


def _build_env(args, jax):
    from bandits_jax import simulation

    if args.environment in SYNTHETIC:
        n_actions = DEFAULT_ACTIONS if args.actions is None else args.actions
        n_features = DEFAULT_FEATURES if args.features is None else args.features
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


def _sweep(args, config, env, env_axis, jax):
    """The vectorised sweep with a progress bar; (results on the host, wall seconds)."""
    from tqdm.auto import tqdm

    from bandits_jax import simulation

    keys = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 0), args.runs)
    quiet = args.no_progress or jax.process_index() != 0
    with tqdm(total=args.rounds, unit="round", desc="simulate", disable=quiet, file=sys.stderr) as bar:
        bar.set_postfix_str("compiling")

        def progress(done: int) -> None:
            bar.set_postfix_str("")
            bar.update(done - bar.n)

        start = time.perf_counter()
        # One round per chunk: a progress tick per round, one compiled program, same result as one scan.
        out = simulation.sweep(
            config if args.policies is None else players(args.policies, config),
            env,
            keys,
            args.rounds,
            args.batch_size,
            env_axis=env_axis,
            chunk_rounds=1,
            callback=progress,
        )
        out = simulation.gather(out)  # every process must call it under jax.distributed
        return out, time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        return _fail(f"regret.png needs matplotlib, an optional extra: {EXTRA_HINT} (or pass --no-plot)")
    if args.environment in DATASETS and importlib.util.find_spec("sklearn") is None:
        return _fail(
            f"the {args.environment!r} environment needs scikit-learn, an optional extra: {EXTRA_HINT}"
        )

    why = _distributed(args)
    if why is not None:
        return _fail(why)
    # Before anything expensive: a bad --out would otherwise only show once the sweep is done.
    # Only process 0 writes, so only it needs a usable --out.
    if _process_id(args) == 0:
        why = _check_out(args.out)
        if why is not None:
            return _fail(why)

    import jax
    import numpy as np

    if _is_multiprocess(args):  # first, before anything touches a device
        jax.distributed.initialize(
            coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
        )

    import bandits_jax
    from bandits_jax import simulation
    from bandits_jax.config import CmabConfig

    if args.environment in SYNTHETIC:  # sizes known before the per-run environments are built
        n_actions = DEFAULT_ACTIONS if args.actions is None else args.actions
        n_features = DEFAULT_FEATURES if args.features is None else args.features
        why = _check_memory(args, n_actions, n_features, jax)
        if why is not None:
            return _fail(why)
    try:
        env, env_axis = _build_env(args, jax)
    except ValueError as err:
        return _fail(str(err))
    except (MemoryError, jax.errors.JaxRuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        return _fail(out_of_memory_message(err), status=1)
    why = _check_memory(args, env.n_actions, env.n_features, jax)
    if why is not None:
        return _fail(why)
    config = CmabConfig(n_features=env.n_features, hidden_dim_list=args.hidden, num_steps=args.num_steps)
    lead = jax.process_index() == 0
    if lead:
        print(
            f"simulate: {args.runs} runs x {args.rounds} rounds x {args.batch_size} rows, "
            f"{env.n_actions} actions, {env.n_features} features, hidden {list(args.hidden)}, "
            f"{args.num_steps} SVI steps, environment {args.environment!r}, {jax.device_count()} device(s)"
            + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
        )
    try:
        out, wall = _sweep(args, config, env, env_axis, jax)
    except (MemoryError, jax.errors.JaxRuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        return _fail(out_of_memory_message(err), status=1)
    if not lead:  # process 0 writes; the others are done once the results are gathered
        return 0

    def rows(x) -> list:
        return np.asarray(x, np.float64).tolist()

    def mean_reward(trace) -> list:
        return rows(np.asarray(trace.rewards).mean(axis=-1))

    legacy = args.policies is None
    traces = {n: t for n, t in (out._asdict() if legacy else out).items() if n != "update_ok"}
    played = [n for n in traces if n != simulation.ORACLE]
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
            "policies": played,
            "cmab_config": simulation._config_dict(config),
        },
    }
    if legacy:
        for name in ("policy", "random", "smab"):
            results[f"{name}_cumulative_regret"] = rows(traces[name].cumulative_regret)
        for name in ("policy", "random", "smab"):
            results[f"{name}_mean_reward"] = mean_reward(traces[name])
    results["oracle_mean_reward"] = mean_reward(traces[simulation.ORACLE])
    results["policies"] = {
        name: {
            "cumulative_regret": rows(traces[name].cumulative_regret),
            "mean_reward": mean_reward(traces[name]),
        }
        for name in played
    }
    results.update(
        {
            "svi_divergences": int(sum((~np.asarray(traces[n].update_ok)).sum() for n in played)),
            "wall_time_s": wall,
            "device_count": jax.device_count(),
            "process_count": jax.process_count(),
            "devices": [str(d) for d in jax.devices()],
            "jax_version": jax.__version__,
            "bandits_jax_version": bandits_jax.__version__,
        }
    )
    json_path = args.out / "results.json"
    try:  # checked before the sweep; this catches what changed since (a full disk, a removed folder)
        args.out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))
    except OSError as err:
        return _fail(f"--out {args.out}: cannot write {json_path} ({err.strerror or err})", status=1)

    width = max(8, *(len(n) for n in traces))
    print(f"{'policy':<{width}} {'final cumulative regret (mean +- sd over runs)':>48}  {'reward rate':>11}")
    for name, trace in traces.items():
        final = np.asarray(trace.cumulative_regret)[:, -1]
        rate = np.asarray(trace.rewards).mean()
        print(f"{name:<{width}} {final.mean():>38.2f} +- {final.std():<7.2f}  {rate:>11.3f}")
    print(f"wall time {wall:.1f} s (compilation included); wrote {json_path}")
    if not args.no_plot:
        png = args.out / "regret.png"
        ax = simulation.plot_regret(
            out if legacy else traces, title=f"{args.environment}: {args.runs} runs, batch {args.batch_size}"
        )
        ax.figure.savefig(png, dpi=120)
        print(f"wrote {png}")
    return 0
