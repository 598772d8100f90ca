"""Command line: ``bandits-jax demo`` runs a small contextual-bandit experiment end to end;
``bandits-jax simulate`` runs many simulated experiments at once and saves their regret curves;
``bandits-jax showdown`` compares policies across environments and seeds; ``bandits-jax evaluate``
estimates a saved model's value on logged data (offline policy evaluation)."""

from __future__ import annotations

import argparse

from bandits_jax.cli import demo as _demo
from bandits_jax.cli import evaluate as _evaluate
from bandits_jax.cli import showdown as _showdown
from bandits_jax.cli import simulate
from bandits_jax.cli.simulate import SEED_RANGE, _positive_int, _seed


class _Parser(argparse.ArgumentParser):
    """Reports a bad option in one line, ``PROG: error: ...``, as the commands' own checks do
    (argparse's default prints the usage block first); subcommand parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bandits-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cold start, a few rounds of predict/update on a synthetic problem")
    demo.add_argument("--rounds", type=_positive_int, default=8)
    demo.add_argument("--batch-size", type=_positive_int, default=200)
    demo.add_argument("--actions", type=_positive_int, default=3)
    demo.add_argument("--features", type=_positive_int, default=4)
    demo.add_argument("--num-steps", type=_positive_int, default=300)
    # NumPy's default_rng takes no negative seed, jax.random.key none beyond int64.
    demo.add_argument("--seed", type=_seed(0, SEED_RANGE[1]), default=0)
    demo.set_defaults(func=_demo.run)
    simulate.add_parser(sub)
    _showdown.add_parser(sub)
    _evaluate.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
