"""The issue's plainest test of a hidden layer: on the showdown's ``quadratic`` environment (logits
quadratic in the context), exact linear TS given the products ``x_i x_j`` by hand against linear TS
on the raw context and the neural policies, all on the same draws per seed.

    python benchmarks/quadratic_features.py --seeds 20 --rounds 20

``ProductFeatures`` wraps any policy on the contract and feeds it ``[x, x_i x_j (i <= j)]``; it is
a benchmark device (the oracle's feature map), not a library policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import jax.numpy as jnp
import numpy as np

from bandits_jax import policies as p
from bandits_jax.showdown import default_policy, run_showdown


def products(context):
    n = context.shape[-1]
    i, j = np.triu_indices(n)
    return jnp.concatenate([context, context[..., i] * context[..., j]], axis=-1)


@dataclasses.dataclass(frozen=True)
class ProductFeatures:
    """``base`` (a policy on ``n + n (n + 1) / 2`` features) played on ``[x, products of x]``."""

    base: Any

    @classmethod
    def example(cls, n_features: int) -> ProductFeatures:
        return cls(p.LinearTS(n_features + n_features * (n_features + 1) // 2))

    @property
    def likelihood(self):
        return self.base.likelihood

    def init(self, n_actions, **prior):
        return self.base.init(n_actions, **prior)

    def predict(self, key, state, context, strategy=None, action_mask=None):
        args = () if strategy is None else (strategy, action_mask)
        return self.base.predict(key, state, products(context), *args)

    def update(self, key, state, feedback):
        return self.base.update(key, state, feedback._replace(context=products(feedback.context)))

    def update_grouped(self, key, state, grouped):
        return self.base.update_grouped(key, state, grouped._replace(context=products(grouped.context)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", default="20", help="comma-separated horizons (rounds of --batch rows)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="quadratic_features")
    args = parser.parse_args()
    makers = {
        "linear_ts_products": lambda n: ProductFeatures(p.LinearTS(n + n * (n + 1) // 2)),
        "neural_linear": lambda n: default_policy("neural_linear", n),
        "ensemble": lambda n: default_policy("ensemble", n),
        "bnn_ts": lambda n: default_policy("bnn_ts", n),
        "linear_ts": lambda n: p.LinearTS(n),
        "uniform": lambda n: p.Uniform(),
    }
    for rounds in [int(r) for r in args.rounds.split(",")]:
        start = time.perf_counter()
        out = run_showdown(
            makers,
            ["quadratic"],
            seeds=list(range(args.seeds)),
            n_rounds=rounds,
            batch_size=args.batch,
            out_dir=f"{args.out}/{rounds}x{args.batch}",
            progress=False,
            plot=False,
        )
        print(
            f"\n{rounds} rounds x {args.batch} rows, {args.seeds} seeds ({time.perf_counter() - start:.0f} s)"
        )
        print("| policy | cumulative regret | regret / uniform's | paired vs linear TS |")
        print("|---|---|---|---|")
        for name, s in out["environments"]["quadratic"]["summary"].items():
            raw, norm, paired = s["cumulative_regret"], s["normalised"], s["paired_difference"]
            print(
                f"| {name} | {raw['mean']:.1f} ± {raw['half_width']:.1f} | {norm['mean']:.3f} ± "
                f"{norm['half_width']:.3f} | {paired['mean']:+.1f} ± {paired['half_width']:.1f} |"
            )


if __name__ == "__main__":
    main()
