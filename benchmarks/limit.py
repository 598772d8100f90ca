"""How far the update is from the limit: a minimal hand-written loop of the same maths.

    python benchmarks/limit.py                 # 300 rounds (about half a minute on 2 cores)
    python benchmarks/limit.py --repeats 1000 --json limit.json
    python benchmarks/limit.py --pin-cpu 0     # one CPU: no thread hand-offs inside XLA

The tutorial workload: 200 rows, 3 features, 2 actions (exactly 100 rows each), Bayesian logistic
regression (no hidden layer), Normal prior ``mu=0, sigma=10``, mean-field Normal guide starting at
the prior, 200 Adam steps of size 0.1, one particle, analytic KL (numpyro's
``TraceMeanField_ELBO`` for this model). Timings are warm, the median of ``--repeats`` calls each
(``block_until_ready``), interleaved round by round in a fresh random order so that load from
other processes hits all alike; the "paired" figures compare calls of the same round:

    limit     a minimal jitted loop of the same maths: ``vmap`` over actions, ``lax.scan`` over
              steps, exactly 100 rows per action (no masks, no padding), Adam written out, the
              guide noise drawn inside from the key (one flat threefry call, as the library
              draws it: on one key both give the same posterior, which the script checks), the
              prior as traced inputs (as the library's state), the loss trace returned.
    compiled  ``bandits_jax.core.update_grouped`` on the rows grouped as the object API groups them
              (a power-of-two bucket: 128 rows per action, valid mask), inputs already on device.
    object    ``CmabBernoulli.update(actions, rewards, context)`` end to end (validation, grouping,
              id mapping, transfers, the compiled call, results back as NumPy).
    (ref.)    the limit with its noise passed in instead of drawn: not a fair bound (the update
              must draw it), shown because on 2 cores XLA splits the 1,600-number threefry draw
              over both threads, which costs a sizeable part of every figure above.

``object - compiled`` is the object API's overhead over the compiled update (host work, plus the
key split and overflow check its jitted wrapper adds, which run beside the SVI loop). The host work
is also measured as the calling thread's CPU time (``time.thread_time``) per call, object minus
compiled: XLA runs the program on its own worker threads, so this counts the Python and NumPy work
(validation, grouping, id mapping, transfers, dispatch) and is far less sensitive to other
processes' load than the wall-clock difference. The first
call of each (tracing and XLA compilation, in this process) is printed too. Only
``bandits_jax.core`` and ``bandits_jax.cmab`` are used; without ``core.update_grouped`` the
compiled figure falls back to ``core.update`` with ``rows_per_action=128`` (routing inside).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time

ROWS, FEATURES, ACTIONS, STEPS = 200, 3, 2, 200
MU, SIGMA, STEP_SIZE = 0.0, 10.0, 0.1
# optax.adam's defaults.
B1, B2, ADAM_EPS = 0.9, 0.999, 1e-8


def tutorial_batch(seed: int = 0):
    """200 rows, 3 features, 2 actions with exactly 100 rows each (shuffled), 0/1 rewards."""
    import numpy as np

    rng = np.random.default_rng(seed)
    context = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    actions = rng.permutation(np.arange(ROWS) % ACTIONS).astype(np.int32)
    rewards = rng.integers(0, 2, ROWS).astype(np.int32)
    return context, actions, rewards


def group_rows(n_actions: int, actions, rows_per_action: int | None = None):
    """Each action's row indices, valid rows first, padded to a power-of-two bucket (the object
    API's grouping, written out here so that the script does not depend on its internals)."""
    import numpy as np

    order = np.argsort(actions, kind="stable")
    counts = np.bincount(actions, minlength=n_actions)
    starts = np.cumsum(counts) - counts
    width = rows_per_action or 1 << (int(counts.max()) - 1).bit_length()
    offsets = np.arange(width)
    valid = offsets[None, :] < counts[:, None]
    rows = order[np.minimum(starts[:, None] + offsets[None, :], len(actions) - 1)]
    return rows, valid


def make_limit(num_steps: int = STEPS, step_size: float = STEP_SIZE):
    """The minimal jitted loop: ``limit(prior_loc, prior_scale, x, y, key)`` with ``prior_*`` of
    shape ``(n_actions, n_features + 1)`` (weights, then the bias), ``x`` of shape
    ``(n_actions, rows, n_features)``, ``y`` ``(n_actions, rows)``; returns the posterior
    ``(loc, scale)`` and the ``(n_actions, num_steps)`` loss trace."""
    import jax
    import jax.numpy as jnp

    def neg_elbo(params, prior_loc, prior_scale, eps, x, y):
        loc, log_scale = params[0], params[1]
        scale = jnp.exp(log_scale)
        w = loc + scale * eps
        logits = x @ w[:-1] + w[-1]
        log_lik = jnp.sum(y * logits - jax.nn.softplus(logits))
        # KL(Normal(loc, scale) || Normal(prior_loc, prior_scale)), as numpyro writes it.
        var_ratio = jnp.square(scale / prior_scale)
        t1 = jnp.square((loc - prior_loc) / prior_scale)
        kl = 0.5 * jnp.sum(var_ratio + t1 - 1.0 - jnp.log(var_ratio))
        return kl - log_lik

    loss_and_grad = jax.value_and_grad(neg_elbo)

    def fit_one(prior_loc, prior_scale, x, y, eps):
        params = jnp.stack([prior_loc, jnp.log(prior_scale)])
        zeros = jnp.zeros_like(params)

        def step(carry, e):
            p, m, v, t = carry
            loss, g = loss_and_grad(p, prior_loc, prior_scale, e, x, y)
            t = t + 1
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            tf = t.astype(p.dtype)
            m_hat = m / (1 - B1**tf)
            v_hat = v / (1 - B2**tf)
            p = p - step_size * m_hat / (jnp.sqrt(v_hat) + ADAM_EPS)
            return (p, m, v, t), loss

        (p, _, _, _), losses = jax.lax.scan(step, (params, zeros, zeros, jnp.zeros((), jnp.int32)), eps)
        return p[0], jnp.exp(p[1]), losses

    @jax.jit
    def limit(prior_loc, prior_scale, x, y, key):
        n_actions, n_weights = prior_loc.shape
        # One flat draw of every action's and step's noise, as the library draws it.
        eps = jax.random.normal(key, (n_actions * num_steps * n_weights,), x.dtype)
        eps = eps.reshape(n_actions, num_steps, n_weights)
        return jax.vmap(fit_one)(prior_loc, prior_scale, x, y.astype(x.dtype), eps)

    @jax.jit
    def limit_predrawn(prior_loc, prior_scale, x, y, eps):
        return jax.vmap(fit_one)(prior_loc, prior_scale, x, y.astype(x.dtype), eps)

    limit.predrawn = limit_predrawn
    return limit


def _flat_posterior(state):
    """``(n_actions, n_weights)`` posterior means of a state, leaves in pytree order (for a
    network without hidden layer: the weights, then the bias, as in the limit)."""
    import jax
    import jax.numpy as jnp

    leaves = jax.tree.leaves(state.loc)
    return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


# HLO instructions that launch no work of their own on XLA:CPU.
_FREE_OPS = {"parameter", "get-tuple-element", "constant", "tuple", "bitcast"}


def loop_kernels(jitted, *args, trip_count: int = STEPS) -> dict[str, int]:
    """The work items (fusions, dots, copies, ...) XLA:CPU runs per SVI step: the instructions of
    the body of the optimised program's ``while`` loop with ``trip_count`` iterations. On this
    workload each costs about as much as its arithmetic, so their number sets the time per step."""
    import re

    text = jitted.lower(*args).compile().as_text()
    body = None
    for line in text.splitlines():
        if " while(" in line and f'"known_trip_count":{{"n":"{trip_count}"}}' in line:
            body = re.search(r"body=%?([\w.\-]+)", line).group(1)
    if body is None:
        return {}
    kinds: dict[str, int] = {}
    inside = False
    for line in text.splitlines():
        if not inside:
            inside = line.startswith((f"%{body} ", f"{body} "))
            continue
        if line.startswith("}"):
            break
        m = re.search(r"= (?:\S+|\([^)]*\)) ([\w-]+)\(", line)
        if m and m.group(1) not in _FREE_OPS:
            kinds[m.group(1)] = kinds.get(m.group(1), 0) + 1
    return kinds


def _timed_first(fn) -> float:
    import jax

    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def _quartiles(ts: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ts, n=4)
    return q[0], q[2]


def run(repeats: int) -> dict:
    import jax
    import numpy as np

    from bandits_jax import core
    from bandits_jax.cmab import CmabBernoulli

    context, actions, rewards = tutorial_batch()
    rows, valid = group_rows(ACTIONS, actions)
    per_action = ROWS // ACTIONS

    # (a) the limit: exactly 100 rows per action, no masks.
    limit = make_limit()
    x_exact = jax.device_put(context[rows[:, :per_action]])
    y_exact = jax.device_put(rewards[rows[:, :per_action]].astype(np.float32))
    n_weights = FEATURES + 1
    prior_loc = jax.device_put(np.full((ACTIONS, n_weights), MU, np.float32))
    prior_scale = jax.device_put(np.full((ACTIONS, n_weights), SIGMA, np.float32))
    key = jax.random.key(1)
    eps = jax.device_put(
        np.asarray(jax.random.normal(key, (ACTIONS * STEPS * n_weights,))).reshape(ACTIONS, STEPS, n_weights)
    )

    def call_limit():
        return limit(prior_loc, prior_scale, x_exact, y_exact, key)

    def call_predrawn():
        return limit.predrawn(prior_loc, prior_scale, x_exact, y_exact, eps)

    # (b) the compiled update on the object API's grouping (128 rows per action, valid mask).
    ids = [f"a{i}" for i in range(ACTIONS)]
    mab = CmabBernoulli.cold_start(
        action_ids=ids,
        n_features=FEATURES,
        dist_params_init={"mu": MU, "sigma": SIGMA},
        update_kwargs={"num_steps": STEPS, "optimizer_kwargs": {"step_size": STEP_SIZE}},
        random_seed=0,
    )
    config, state = mab.config, mab.state
    if hasattr(core, "update_grouped"):
        compiled_name = "core.update_grouped"
        xg = jax.device_put(context[rows])
        yg = jax.device_put(rewards[rows].astype(np.float32))
        vg = jax.device_put(valid)

        def call_compiled():
            return core.update_grouped(config, state, xg, yg, vg, key)

        compiled_program = (
            jax.jit(lambda *a: core.update_grouped(config, *a)),
            (state, xg, yg, vg, key),
        )
    else:  # the grouped entry point moved: route inside the program instead
        compiled_name = f"core.update (rows_per_action={valid.shape[1]})"
        xd, ad, rd = (jax.device_put(a) for a in (context, actions, rewards))

        def call_compiled():
            return core.update(config, state, xd, ad, rd, key, rows_per_action=valid.shape[1])

        compiled_program = (
            jax.jit(lambda *a: core.update(config, *a, rows_per_action=valid.shape[1])),
            (state, xd, ad, rd, key),
        )

    # (c) the object API, end to end, on the ids and NumPy arrays a user would pass.
    id_list = [ids[i] for i in actions]
    reward_list = rewards.tolist()

    def call_object():
        return mab.update(actions=id_list, rewards=reward_list, context=context)

    calls = {"limit": call_limit, "compiled": call_compiled, "object": call_object, "predrawn": call_predrawn}
    first = {name: _timed_first(fn) for name, fn in calls.items()}

    # Same maths: on the same key the limit reproduces the compiled update's posterior (while the
    # library draws its noise as one flat normal vector from the update's key, as it does now).
    try:
        new_state = call_compiled()[0]
        agreement = float(np.abs(np.asarray(_flat_posterior(new_state)) - np.asarray(call_limit()[0])).max())
    except Exception:  # noqa: BLE001 (a state of another structure: nothing to compare)
        agreement = None

    kernels = {}
    programs = {
        "limit": (limit, (prior_loc, prior_scale, x_exact, y_exact, key)),
        "compiled": compiled_program,
        "predrawn": (limit.predrawn, (prior_loc, prior_scale, x_exact, y_exact, eps)),
    }
    for name, (fn, args) in programs.items():
        try:
            kernels[name] = loop_kernels(fn, *args)
        except Exception:  # noqa: BLE001 (a diagnostic only)
            kernels[name] = {}

    for fn in calls.values():  # a few warm-up calls each
        for _ in range(3):
            jax.block_until_ready(fn())
    times = {name: [] for name in calls}
    cpu = {name: [] for name in calls}  # the calling thread's CPU time (time.thread_time)
    # A fresh random order every round: a call timed right after the compiled update runs measurably
    # slower (about 0.05 ms for the object API) than after another call, so a fixed order biases.
    order = list(calls)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for name in order:
            t, c = time.perf_counter(), time.thread_time()
            jax.block_until_ready(calls[name]())
            cpu[name].append(time.thread_time() - c)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    # Paired statistics, robust to load that drifts over the run: per round, each call against the
    # limit (or the compiled update) timed next to it.
    paired_ratio = {
        name: statistics.median(t / lim for t, lim in zip(ts, times["limit"])) for name, ts in times.items()
    }
    paired_overhead = statistics.median(o - c for o, c in zip(times["object"], times["compiled"]))
    return {
        "workload": {
            "rows": ROWS,
            "features": FEATURES,
            "actions": ACTIONS,
            "steps": STEPS,
            "rows_per_action": per_action,
            "padded_rows_per_action": int(valid.shape[1]),
        },
        "compiled_entry_point": compiled_name,
        "repeats": repeats,
        "first_s": first,
        "median_s": median,
        "min_s": {name: min(ts) for name, ts in times.items()},
        "quartiles_s": {name: _quartiles(ts) for name, ts in times.items()},
        "ratio_to_limit": {name: median[name] / median["limit"] for name in calls},
        "paired_ratio_to_limit": paired_ratio,
        "host_overhead_s": median["object"] - median["compiled"],
        "paired_host_overhead_s": paired_overhead,
        "thread_cpu_median_s": {name: statistics.median(ts) for name, ts in cpu.items()},
        "host_work_s": statistics.median(cpu["object"]) - statistics.median(cpu["compiled"]),
        "max_abs_loc_difference_limit_vs_compiled": agreement,
        "kernels_per_step": kernels,
    }


def print_table(res: dict) -> None:
    w = res["workload"]
    print(
        f"limit benchmark: {w['rows']} rows x {w['features']} features, {w['actions']} actions "
        f"({w['rows_per_action']} rows each, padded to {w['padded_rows_per_action']}), "
        f"{w['steps']} Adam steps; {res['repeats']} interleaved warm rounds"
        + (f", pinned to CPU {res['pinned_cpu']}" if res.get("pinned_cpu") is not None else "")
    )
    print()
    labels = {
        "limit": "minimal jitted loop (the limit)",
        "compiled": res["compiled_entry_point"],
        "object": "CmabBernoulli.update",
        "predrawn": "(ref.) limit, noise passed in",
    }
    head = (
        f"| {'':<34} | {'median (ms)':>11} | {'IQR (ms)':>15} | {'min (ms)':>8} | {'x limit':>7} "
        f"| {'x limit, paired':>15} | {'first call (s)':>14} | {'kernels/step':>12} |"
    )
    print(head)
    print("|" + "|".join("-" * len(cell) for cell in head.split("|")[1:-1]) + "|")
    for name, label in labels.items():
        lo, hi = res["quartiles_s"][name]
        print(
            f"| {label:<34} | {res['median_s'][name] * 1e3:>11.3f} | {f'{lo * 1e3:.3f}-{hi * 1e3:.3f}':>15} "
            f"| {res['min_s'][name] * 1e3:>8.3f} | {res['ratio_to_limit'][name]:>6.2f}x "
            f"| {res['paired_ratio_to_limit'][name]:>14.2f}x | {res['first_s'][name]:>14.2f} "
            f"| {sum(res['kernels_per_step'].get(name, {}).values()) or '-':>12} |"
        )
    print()
    print(
        f"object API overhead (object - compiled): {res['host_overhead_s'] * 1e3:.3f} ms from the medians, "
        f"{res['paired_host_overhead_s'] * 1e3:.3f} ms median of the paired differences"
    )
    cpu = res["thread_cpu_median_s"]
    print(
        f"object API host work (the calling thread's CPU time, object - compiled): "
        f"{res['host_work_s'] * 1e3:.3f} ms ({cpu['object'] * 1e3:.3f} - {cpu['compiled'] * 1e3:.3f} ms; "
        "XLA's worker threads not counted, so load from other processes inflates it far less than "
        "the wall-clock figures)"
    )
    print("targets (issue 10): compiled within 1.3x of the limit, object API overhead under 0.25 ms")
    diff = res["max_abs_loc_difference_limit_vs_compiled"]
    if diff is not None:
        print(
            f"same maths: on one key the limit and the compiled update's posterior means differ by {diff:.1e}"
        )
    print("first calls: tracing and compiling in this process, in table order")
    for name in ("limit", "compiled"):
        kinds = res["kernels_per_step"].get(name)
        if kinds:
            print(
                f"kernels per SVI step, {labels[name]}: "
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=300, help="interleaved warm rounds (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this file")
    parser.add_argument(
        "--pin-cpu",
        type=int,
        metavar="CPU",
        help="run on this one CPU only (set before JAX starts: XLA then runs every kernel on one "
        "thread, with no hand-offs between threads; steadier figures on a loaded machine)",
    )
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    if args.pin_cpu is not None:
        os.sched_setaffinity(0, {args.pin_cpu})
    res = run(args.repeats)
    res["pinned_cpu"] = args.pin_cpu
    print_table(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    assert math.isfinite(res["median_s"]["limit"])


if __name__ == "__main__":
    main()
