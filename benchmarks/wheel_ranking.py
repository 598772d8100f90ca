"""Riquelme et al.'s ranking on their wheel bandit (Gaussian rewards), as the README reports it.

Runs NeuralLinear as the paper configures it (one ReLU layer of 50 units; here 200 Adam steps per
update and weight decay 3e-4, chosen on seeds 0-9 and reported on seeds 100-119), the showdown's
mean-field BNN, exact linear TS (the Normal-inverse-gamma posterior) and uniform random on
``wheel_gaussian:DELTA`` through :func:`bandits_jax.showdown.run_showdown` (common draws per seed,
resumable: a finished cell in ``--out`` is not rerun), and prints one table per horizon: regret
normalised by uniform's and the paired difference against linear TS, mean +- 95% t-interval.

    python benchmarks/wheel_ranking.py --deltas 0.95 --rounds 20,60 --seeds 20
"""

from __future__ import annotations

import argparse
import time

from bandits_jax import policies as p
from bandits_jax.likelihoods import Gaussian
from bandits_jax.showdown import default_policy, run_showdown

SEED_OFFSET = 100  # seeds 0-9 chose NeuralLinear's steps and weight decay; these are held out


def players() -> dict:
    lik = Gaussian()
    return {
        "neural_linear": lambda n: p.NeuralLinear(
            p.Network(n, (50,), activation="relu"),
            replay_capacity=2048,
            num_steps=200,
            weight_decay=3e-4,
            likelihood=lik,
        ),
        "bnn_ts": lambda n: default_policy("bnn_ts", n, lik),
        "linear_ts": lambda n: p.LinearTS(n, likelihood=lik),
        "uniform": lambda n: p.Uniform(likelihood=lik),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", default="0.95", help="comma-separated wheel deltas")
    parser.add_argument("--rounds", default="20", help="comma-separated horizons (rounds of --batch rows)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="wheel_ranking")
    args = parser.parse_args()
    makers = players()
    init = {name: {"reward_loc": 0.0, "reward_scale": 10.0} for name in makers if name != "uniform"}
    init["bnn_ts"]["sigma"] = 1.0
    seeds = list(range(SEED_OFFSET, SEED_OFFSET + args.seeds))
    for rounds in [int(r) for r in args.rounds.split(",")]:
        envs = [f"wheel_gaussian:{d}" for d in args.deltas.split(",")]
        start = time.perf_counter()
        out = run_showdown(
            makers,
            envs,
            seeds=seeds,
            n_rounds=rounds,
            batch_size=args.batch,
            out_dir=f"{args.out}/{rounds}x{args.batch}",
            progress=False,
            plot=False,
            init_data=init,
        )
        print(
            f"\n{rounds} rounds x {args.batch} rows, {len(seeds)} seeds ({time.perf_counter() - start:.0f} s)"
        )
        print("| delta | policy | regret / uniform's | paired vs linear TS |")
        print("|---|---|---|---|")
        for env in envs:
            for name, s in out["environments"][env]["summary"].items():
                if name == "uniform":
                    continue
                norm, paired = s["normalised"], s["paired_difference"]
                print(
                    f"| {env.split(':')[1]} | {name} | {norm['mean']:.3f} ± {norm['half_width']:.3f} | "
                    f"{paired['mean']:+.0f} ± {paired['half_width']:.0f} |"
                )


if __name__ == "__main__":
    main()
