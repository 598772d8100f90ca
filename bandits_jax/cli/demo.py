"""``bandits-jax demo``: a small contextual-bandit experiment end to end (cold start, a few rounds
of predict/update on a synthetic problem)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bandits_jax.cli import simulate as _simulate_cli


def run(args: argparse.Namespace) -> int:
    try:
        return _run_demo(args)
    except (MemoryError, RuntimeError) as err:  # jax.errors.JaxRuntimeError is a RuntimeError
        if not _simulate_cli.is_out_of_memory(err):
            raise
        hint = "reduce --batch-size, --actions, --features or --num-steps"
        print(f"bandits-jax demo: error: {_simulate_cli.out_of_memory_message(err, hint)}", file=sys.stderr)
        return 1


def _run_demo(args: argparse.Namespace) -> int:
    from bandits_jax.cmab import CmabBernoulli

    rng = np.random.default_rng(args.seed)
    n_actions, n_features = args.actions, args.features
    # Each action's reward logit is linear in the context, so the best action depends on the row.
    true_w = rng.normal(scale=2.0, size=(n_features, n_actions))
    mab = CmabBernoulli.cold_start(
        action_ids=[f"action_{i}" for i in range(n_actions)],
        n_features=n_features,
        update_kwargs={"num_steps": args.num_steps},
        random_seed=args.seed,
    )
    index = {a: i for i, a in enumerate(mab.action_ids)}
    print(
        f"demo: {n_actions} actions, {n_features} features, {args.rounds} rounds x {args.batch_size} rows, "
        f"{args.num_steps} SVI steps per update"
    )
    print(f"{'round':>5}  {'best chosen':>11}  {'reward rate':>11}  {'oracle rate':>11}  {'update ms':>9}")
    for r in range(args.rounds):
        ctx = rng.normal(size=(args.batch_size, n_features))
        p = 1.0 / (1.0 + np.exp(-(ctx @ true_w)))
        actions, _, _ = mab.predict(ctx)
        chosen = np.array([index[a] for a in actions])
        rewards = (rng.random(args.batch_size) < p[np.arange(args.batch_size), chosen]).astype(int)
        start = time.perf_counter()
        mab.update(actions=actions, rewards=rewards.tolist(), context=ctx)
        ms = 1e3 * (time.perf_counter() - start)
        best = np.mean(chosen == p.argmax(axis=1))
        print(
            f"{r + 1:>5}  {best:>11.0%}  {rewards.mean():>11.2f}  {p.max(axis=1).mean():>11.2f}  {ms:>9.1f}"
        )
    print(f"chance level of choosing the best action: {1 / n_actions:.0%}")
    return 0
