"""``bandits-jax evaluate``: offline evaluation of a saved model on logged data, every chosen
estimator with its bootstrap interval (:mod:`bandits_jax.ope` has the details).

Example: ``bandits-jax evaluate --model model.npz --data logged.npz --estimators ipw,snips,dr
--n-mc 1000 --n-bootstrap 1000 --seed 0 --out ope.json``. The logged data holds ``action`` (the
model's action ids), ``reward``, ``propensity_score`` and, for a contextual model, ``context``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bandits_jax.cli.simulate import SEED_RANGE, _positive_int, _seed


def _estimator_names(text: str) -> tuple[str, ...]:
    from bandits_jax import ope

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated estimator names, got {text!r}")
    for name in names:
        try:
            ope.estimator(name)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    if len({ope.estimator(name).name for name in names}) != len(names):
        raise argparse.ArgumentTypeError(f"estimator names must be distinct, got {text!r}")
    return names


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="offline policy evaluation of a saved model on logged data (IPW, DR, ... with bootstrap intervals)",
        description="Estimate the value of a saved model's policy on logged data (.npz or .parquet: action, "
        "reward, propensity_score, context) with every chosen estimator, a percentile bootstrap interval each, "
        "and print the table (Markdown); --out writes it as JSON.",
    )
    p.add_argument("--model", type=Path, required=True, help="a model file written by model.save(path)")
    p.add_argument("--data", type=Path, required=True, help="logged data, .npz or .parquet")
    p.add_argument(
        "--estimators",
        type=_estimator_names,
        default=None,
        help="comma-separated short names (rep, ipw, snips, dm, dr, sndr, switch-dr, dros-opt, dros-pess, "
        "sg-ipw, sg-dr, b-ipw; default all)",
    )
    p.add_argument("--n-mc", type=_positive_int, default=1000, help="Thompson draws per row (default 1000)")
    p.add_argument(
        "--n-bootstrap", type=_positive_int, default=1000, help="bootstrap resamples (default 1000)"
    )
    p.add_argument("--seed", type=_seed(0, SEED_RANGE[1]), default=0)
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    p.set_defaults(func=run)
    return p


def _fail(message: str, status: int = 2) -> int:
    print(f"bandits-jax evaluate: error: {message}", file=sys.stderr)
    return status


def load_model(path: Path):
    """The model saved at ``path``, of whichever class it holds."""
    import numpy as np

    from bandits_jax import cmab, persistence, smab

    try:
        with np.load(path, allow_pickle=False) as archive:
            name = json.loads(archive["header"].tobytes()).get("class")
    except Exception as err:
        raise persistence.ModelFormatError(
            f"cannot load {str(path)!r}: not a bandits_jax model file ({err})"
        ) from None
    cls = getattr(cmab, str(name), None) or getattr(smab, str(name), None)
    if not isinstance(cls, type) or not hasattr(cls, "load"):
        raise persistence.ModelFormatError(f"cannot load {str(path)!r}: unknown model class {name!r}")
    return cls.load(path)


def run(args: argparse.Namespace) -> int:
    from bandits_jax import ope

    for flag, path in (("--model", args.model), ("--data", args.data)):
        if not path.is_file():
            return _fail(f"{flag} {path}: no such file")
    try:
        model = load_model(args.model)
        logged = ope.load_logged_data(args.data)
        table = ope.evaluate(
            model,
            logged,
            args.estimators,
            n_mc_experiments=args.n_mc,
            n_bootstrap_samples=args.n_bootstrap,
            random_seed=args.seed,
        )
    except (ValueError, TypeError, ImportError) as err:
        return _fail(str(err))
    print(table.to_markdown())
    if args.out is not None:
        payload = {
            "model": str(args.model),
            "data": str(args.data),
            "n_rows": table.n_rows,
            "n_bootstrap_samples": table.n_bootstrap_samples,
            "n_mc_experiments": args.n_mc,
            "seed": args.seed,
            # NaN (an undefined interval or error) as null: JSON has no NaN
            "table": {
                k: [None if isinstance(v, float) and v != v else v for v in col]
                for k, col in table.to_dict().items()
            },
        }
        try:
            args.out.write_text(json.dumps(payload, indent=2, allow_nan=False))
        except OSError as err:
            return _fail(f"--out {args.out}: cannot write ({err.strerror or err})", status=1)
        print(f"wrote {args.out}")
    return 0
