"""``bandits-jax showdown``: every chosen policy on every chosen environment for S seeds, as one
vectorised sweep per environment; writes ``showdown.json``, ``showdown.md`` and ``showdown.png``
(with matplotlib) and resumes finished environments (:mod:`bandits_jax.showdown` has the details).

Example: ``bandits-jax showdown --policies bnn_ts,linear_ts --envs wheel:0.9,nonlinear --seeds 10
--rounds 20 --batch 100 --out DIR``. ``uniform`` (the normaliser) and ``linear_ts`` (the reference of
the paired differences) always play.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bandits_jax.cli.simulate import _positive_int


def _names(kind: str):
    """An argparse type: comma-separated, distinct names checked by :mod:`bandits_jax.showdown`."""

    def parse(text: str) -> tuple[str, ...]:
        from bandits_jax import showdown

        names = tuple(part.strip() for part in text.split(",") if part.strip())
        if not names:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind} names, got {text!r}")
        for name in names:
            try:
                if kind == "policy":
                    if name not in showdown.POLICIES:
                        raise ValueError(
                            f"unknown policy {name!r}; choose from {', '.join(showdown.POLICIES)}"
                        )
                else:
                    showdown.parse_environment(name)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"{kind} names must be distinct, got {text!r}")
        return names

    return parse


def add_parser(sub) -> argparse.ArgumentParser:
    from bandits_jax import showdown

    p = sub.add_parser(
        "showdown",
        help="every policy on every environment for S seeds (vmapped sweeps); regret tables and curves",
        description="Run every chosen policy on every chosen environment for --seeds seeds, all policies "
        "on the same draws per seed, and write the final cumulative regret (mean and 95% t-interval), "
        "normalised by uniform random's, and paired differences from linear TS's, as showdown.json, "
        "showdown.md and showdown.png. Finished environments are saved under DIR/cells and resumed.",
    )
    p.add_argument(
        "--policies",
        type=_names("policy"),
        default=showdown.DEFAULT_POLICIES,
        help=f"comma-separated, from {','.join(showdown.POLICIES)} "
        f"(default {','.join(showdown.DEFAULT_POLICIES)}; uniform and linear_ts always play)",
    )
    p.add_argument(
        "--envs",
        type=_names("environment"),
        default=showdown.DEFAULT_ENVIRONMENTS,
        help=f"comma-separated, from {','.join(showdown.ENVIRONMENTS)}, or wheel:DELTA, wheel_gaussian:DELTA "
        f"(default {','.join(showdown.DEFAULT_ENVIRONMENTS)})",
    )
    p.add_argument("--seeds", type=_positive_int, default=10, help="seeds 0..S-1, one run each (default 10)")
    p.add_argument("--rounds", type=_positive_int, default=20, help="rounds per run (default 20)")
    p.add_argument("--batch", type=_positive_int, default=100, help="rows per round (default 100)")
    p.add_argument("--out", type=Path, default=Path("showdown_results"), help="output folder")
    p.add_argument("--no-resume", action="store_true", help="rerun environments already saved in --out")
    p.add_argument("--no-plot", action="store_true", help="skip showdown.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _fail(message: str, status: int = 2) -> int:
    print(f"bandits-jax showdown: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from bandits_jax import showdown

    datasets = [
        e for e in args.envs if showdown.parse_environment(e)[0] in showdown.simulation.SKLEARN_DATASETS
    ]
    if datasets and importlib.util.find_spec("sklearn") is None:
        return _fail(
            f"the {datasets[0]!r} environment needs scikit-learn, an optional extra: pip install 'bandits_jax[sim]'"
        )
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out}: exists and is not a folder")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _fail(f"--out {args.out}: cannot create the folder ({err.strerror or err})")
    print(
        f"showdown: {', '.join(args.policies)} (+ uniform, linear_ts) on {', '.join(args.envs)}: "
        f"{args.seeds} seeds x {args.rounds} rounds x {args.batch} rows"
    )
    try:
        result = showdown.run_showdown(
            args.policies,
            args.envs,
            args.seeds,
            args.rounds,
            args.batch,
            args.out,
            resume=not args.no_resume,
            progress=not args.no_progress,
            plot=not args.no_plot,
        )
    except OSError as err:
        return _fail(f"--out {args.out}: cannot write ({err.strerror or err})", status=1)
    print((args.out / "showdown.md").read_text(), end="")
    resumed = [e for e, cell in result["environments"].items() if cell["resumed"]]
    if resumed:
        print(f"resumed from {args.out / 'cells'}: {', '.join(resumed)}")
    print(f"wall time {result['wall_time_s']:.1f} s; wrote {args.out / 'showdown.json'} and showdown.md")
    return 0
