"""Pure logic of the PyBandits comparison: workload definitions, child-result parsing, statistics
and tables. Standard library only, so the PyBandits child process (another virtualenv, without
bandits_jax's dependencies) imports it too, and the unit tests run without PyBandits.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

LIBS = ("pybandits", "bandits_jax")
RESULT_MARKER = "@@RESULT "


# ---------------------------------------------------------------------------------- workloads
@dataclasses.dataclass(frozen=True)
class Workload:
    """One timed task, run in a fresh child process per repeat, in both libraries.

    ``kind`` selects the child's code (``import``, ``update``, ``predict``, ``transfer``,
    ``simulate``, ``ope``); ``params`` are its sizes; ``metrics`` are the names the child reports (one
    table row each); ``warm_calls`` is how many timed calls follow the first one in a child.

    ``pybandits_reference`` names another workload's metric that stands in for PyBandits in this
    workload's (single) row, where PyBandits has nothing different to run: PyBandits has no
    persistent compilation cache, so its fresh-process first call is the reference for ours with
    the cache. Such a workload runs bandits_jax children only, interleaved with the children of
    the workload that reports the reference (see :func:`schedule`).
    """

    name: str
    kind: str
    params: Mapping[str, Any]
    metrics: tuple[str, ...]
    processes: int = 3
    quick_processes: int = 2
    warm_calls: int = 5
    quick_warm_calls: int = 2
    pybandits_reference: str | None = None

    def n_processes(self, quick: bool) -> int:
        return self.quick_processes if quick else self.processes

    def n_warm(self, quick: bool) -> int:
        return self.quick_warm_calls if quick else self.warm_calls

    def libs(self, libs: Sequence[str] = LIBS) -> tuple[str, ...]:
        """The libraries that run this workload's children, in ``libs``' order."""
        return tuple(lib for lib in libs if not (self.pybandits_reference and lib == "pybandits"))


# The user's tutorial: 200 rows, 3 features, 2 actions, 200 SVI steps, linear (seed_tutorial.py).
TUTORIAL = {"rows": 200, "features": 3, "actions": 2, "steps": 200, "hidden": None}


def _update(name, rows, features, actions, steps, hidden, family=None, **kw) -> Workload:
    params = {"rows": rows, "features": features, "actions": actions, "steps": steps, "hidden": hidden}
    if family is not None:  # another model family than CmabBernoulli (e.g. "gaussian": CmabGaussian)
        params["family"] = family
    return Workload(name, "update", params, (f"{name}: first call (fresh process)", f"{name}: warm"), **kw)


WORKLOADS: tuple[Workload, ...] = (
    Workload("import", "import", {}, ("import",), processes=5, quick_processes=3),
    _update("tutorial update", **TUTORIAL),
    Workload(
        "tutorial update, persistent compilation cache",
        "update",
        {**TUTORIAL, "compilation_cache": True},
        ("tutorial update: first call, persistent cache",),
        quick_warm_calls=0,
        warm_calls=0,
        pybandits_reference="tutorial update: first call (fresh process)",
    ),
    # --quick: one process each, but 3 warm calls (a median, not one sample) where a target applies.
    _update("1000x10x5, 1000 steps, linear", 1000, 10, 5, 1000, None, quick_processes=1, quick_warm_calls=3),
    _update(
        "1000x10x5, 1000 steps, hidden [16]", 1000, 10, 5, 1000, [16], quick_processes=1, quick_warm_calls=3
    ),
    _update(
        "10000x10x5, 1000 steps, linear", 10_000, 10, 5, 1000, None, quick_processes=1, quick_warm_calls=1
    ),
    # PyBandits' model families beyond the Bernoulli bandit (issue 13): the tutorial's sizes
    *(
        _update(f"tutorial update, {cls}", **TUTORIAL, family=family, quick_processes=1, quick_warm_calls=3)
        for cls, family in (
            ("CmabGaussian", "gaussian"),
            ("CmabBernoulliCC", "cc"),
            ("CmabBernoulliDP", "dp"),
            ("CmabBernoulliMO", "mo"),
        )
    ),
    Workload(
        "predict x 5 actions",
        "predict",
        {"rows": (1, 100, 10_000), "features": 10, "actions": 5},
        tuple(f"predict {n:,} rows{s}" for n in (1, 100, 10_000) for s in ("", " (arrays)")),
        warm_calls=20,
        quick_warm_calls=10,
        quick_processes=1,
    ),
    # --quick: one process per library (a PyBandits child spends ~18 s fitting the model to be
    # transferred, for a ~10 ms call), with more warm calls in it; likewise for predict above.
    Workload(
        "transfer (tutorial models)",
        "transfer",
        dict(TUTORIAL),
        ("transfer",),
        warm_calls=20,
        quick_warm_calls=10,
        quick_processes=1,
    ),
    # Offline policy evaluation (issue 14): a BNN model's Thompson distribution by 1,000 draws per
    # logged row, every estimator with 1,000 bootstrap resamples. One process, one call each: a
    # PyBandits call takes about half an hour at full size (BANDITS_JAX_OPE_DRAWS / _ROWS scale it down).
    Workload(
        "offline evaluation",
        "ope",
        {"rows": 100_000, "actions": 10, "features": 5, "draws": 1000, "bootstrap": 1000, "steps": 100},
        ("offline evaluation: first call", "offline evaluation: warm"),
        processes=1,
        quick_processes=1,
        warm_calls=1,
        quick_warm_calls=1,
    ),
    Workload(
        "simulation 10 rounds x batch 100",
        "simulate",
        {"rounds": 10, "batch": 100, "features": 5, "actions": 3, "steps": 200},
        ("simulation: first call", "simulation: warm"),
        quick_warm_calls=1,
        quick_processes=1,
    ),
)


def workload(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(f"unknown workload {name!r}; known: {[w.name for w in WORKLOADS]}")


def schedule(workloads: Iterable[Workload], quick: bool, libs: Sequence[str] = LIBS) -> list[tuple[str, str]]:
    """``(workload name, library)`` in run order: per workload, the libraries alternate A B A B.

    A workload with a ``pybandits_reference`` joins the rounds of the workload reporting that
    metric (when it is in ``workloads``): A B B' A B B' ..., so that its bandits_jax children and
    the reference's PyBandits children share the machine's drifts; otherwise it runs on its own.
    """
    workloads = list(workloads)
    rounds: dict[str, list[list[tuple[str, str]]]] = {}
    hosts: dict[str, str] = {}
    for w in workloads:
        rounds[w.name] = [[(w.name, lib) for lib in w.libs(libs)] for _ in range(w.n_processes(quick))]
        for m in w.metrics:
            hosts[m] = w.name
    for w in workloads:
        host = hosts.get(w.pybandits_reference) if w.pybandits_reference else None
        if host is None or host == w.name:
            continue
        own, rounds[w.name] = rounds[w.name], []
        for i, group in enumerate(own):
            if i < len(rounds[host]):
                rounds[host][i].extend(group)
            else:
                rounds[host].append(group)
    return [entry for w in workloads for group in rounds[w.name] for entry in group]


def apply_references(
    agg: dict[str, dict[str, dict[str, Any]]], workloads: Iterable[Workload]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Fill the PyBandits cell of each workload with a ``pybandits_reference`` from that metric's
    PyBandits cell (marked with ``"reference"``, which :func:`speed_table` footnotes). In place."""
    for w in workloads:
        ref = w.pybandits_reference
        if ref and "pybandits" in agg.get(ref, {}):
            for metric in w.metrics:
                if metric in agg:
                    agg[metric]["pybandits"] = {**agg[ref]["pybandits"], "reference": ref}
    return agg


def map_in_threads(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> list[Any]:
    """``[fn(x) for x in items]`` with up to ``jobs`` calls at once (each typically waits on a child
    process), results in ``items``' order; ``jobs <= 1`` runs them one after the other."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        return list(pool.map(fn, items))


# ---------------------------------------------------------------------------------- learning
@dataclasses.dataclass(frozen=True)
class LearningSetup:
    """Sizes of the learning-quality experiment (shared by every policy)."""

    seeds: int
    rounds: int
    batch: int
    num_steps: int


LEARNING_FULL = LearningSetup(seeds=10, rounds=20, batch=100, num_steps=1000)
LEARNING_QUICK = LearningSetup(seeds=10, rounds=5, batch=50, num_steps=100)
# PyBandits refits (and recompiles) every action on every update, about 4 s each on 2 cores (2 min
# per seed on the logistic environment, 3 actions x 5 rounds x 2 settings), so --quick plays it on
# the first seed of the two small environments only (no interval); the full run plays every seed.
LEARNING_QUICK_PYBANDITS_SEEDS = {"logistic": 1, "non-linear": 1, "digits": 0}
ENVIRONMENTS = {
    "logistic": {"kind": "logistic", "features": 5, "actions": 3},
    "non-linear": {"kind": "mlp", "features": 5, "actions": 3, "hidden": 16},
    "digits": {"kind": "digits"},
}
# (b) matched settings: the same prior family and width, optimizer, step size and steps in both.
MATCHED = {"dist_type": "normal", "sigma": 1.0, "step_size": 0.01}
POLICIES = (
    "PyBandits defaults",
    "bandits_jax defaults",
    "PyBandits matched",
    "bandits_jax matched",
    "uniform random",
    "linear TS (Laplace)",
)


def reusable_pybandits(
    earlier: Mapping[str, Any], setup: LearningSetup
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """PyBandits' regrets per environment from an earlier run's ``learning`` record, and the seeds
    they cover.

    Raises:
        ValueError: the earlier run had another setup (other draws) or lacks an environment.
    """
    if dict(earlier.get("setup", {})) != vars(setup):
        raise ValueError(f"reused run had setup {earlier.get('setup')}, this run {vars(setup)}")
    missing = [env for env in ENVIRONMENTS if env not in earlier.get("regrets", {})]
    if missing:
        raise ValueError(f"reused run lacks environment(s) {missing}")
    pb = [p for p in POLICIES if p.startswith("PyBandits")]
    reuse = {env: {p: earlier["regrets"][env][p] for p in pb} for env in ENVIRONMENTS}
    seeds = {env: int(earlier.get("pybandits_seeds", {}).get(env, 0)) for env in ENVIRONMENTS}
    return reuse, seeds


# ---------------------------------------------------------------------------------- child results
def encode_result(payload: Mapping[str, Any]) -> str:
    """The line a child prints last: the marker and one JSON object."""
    return RESULT_MARKER + json.dumps(payload, sort_keys=True)


def parse_child_output(stdout: str) -> dict[str, Any]:
    """The payload of the last marked line of a child's stdout.

    Raises:
        ValueError: no marked line, or it is not a JSON object (the message quotes the tail).
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                payload = json.loads(line[len(RESULT_MARKER) :])
            except json.JSONDecodeError as err:
                raise ValueError(f"child result is not JSON: {line[:200]!r}") from err
            if not isinstance(payload, dict):
                raise ValueError(f"child result is not a JSON object: {line[:200]!r}")
            return payload
    tail = "\n".join(stdout.splitlines()[-5:])
    raise ValueError(f"no {RESULT_MARKER.strip()} line in the child's output; its tail was:\n{tail}")


def aggregate(runs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Pool the children's samples: ``{metric: {lib: {"median", "n", "samples", "peak_rss_mib"}}}``.

    Each run is ``(lib, payload)`` with ``payload = {"metrics": {name: [seconds, ...]},
    "peak_rss_mib": float}``; a payload with ``"error"`` marks every metric of that workload failed.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lib, payload in runs:
        rss = payload.get("peak_rss_mib")
        for metric, samples in payload.get("metrics", {}).items():
            cell = out.setdefault(metric, {}).setdefault(lib, {"samples": [], "peak_rss_mib": None})
            cell["samples"].extend(float(s) for s in samples)
            if rss is not None:
                cell["peak_rss_mib"] = max(rss, cell["peak_rss_mib"] or 0.0)
        for metric in payload.get("failed_metrics", []):
            cell = out.setdefault(metric, {}).setdefault(lib, {"samples": [], "peak_rss_mib": None})
            cell["error"] = payload.get("error", "failed")
    for cells in out.values():
        for cell in cells.values():
            cell["n"] = len(cell["samples"])
            cell["median"] = statistics.median(cell["samples"]) if cell["samples"] else None
    return out


def ratio(reference: float | None, ours: float | None) -> float | None:
    """PyBandits time over bandits_jax time (how many times faster we are), None if unknown."""
    if reference is None or ours is None or ours <= 0:
        return None
    return reference / ours


def format_seconds(t: float | None) -> str:
    if t is None:
        return "failed"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.0f} us"


def format_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def format_mib(m: float | None) -> str:
    return "-" if m is None else f"{m:,.0f}"


def speed_table(
    agg: Mapping[str, Mapping[str, Mapping[str, Any]]], order: Sequence[str] | None = None
) -> str:
    """Markdown table: workload | PyBandits median | bandits_jax median | ratio | peak RSS of each."""
    head = (
        "| workload | PyBandits median | bandits_jax median | ratio (PyBandits / bandits_jax) "
        "| peak RSS PyBandits (MiB) | peak RSS bandits_jax (MiB) |"
    )
    lines = [head, "|" + "---|" * 6]
    notes: list[str] = []
    names = list(order) if order is not None else list(agg)
    for metric in names:
        if metric not in agg:
            continue
        cells = agg[metric]
        pb, bj = cells.get("pybandits", {}), cells.get("bandits_jax", {})
        mark = ""
        if pb.get("reference"):
            notes.append(
                f'{"†" * (len(notes) + 1)} PyBandits\' figure is its "{pb["reference"]}": '
                "it has no counterpart to run for this row."
            )
            mark = "†" * len(notes)
        lines.append(
            f"| {metric} | {_cell(pb)}{mark} | {_cell(bj)} "
            f"| {format_ratio(ratio(pb.get('median'), bj.get('median')))} "
            f"| {format_mib(pb.get('peak_rss_mib'))} | {format_mib(bj.get('peak_rss_mib'))} |"
        )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _cell(cell: Mapping[str, Any]) -> str:
    if not cell:
        return "-"
    if cell.get("median") is None:
        return "failed" if "error" in cell else "-"
    return f"{format_seconds(cell['median'])} (n={cell['n']})"


# ---------------------------------------------------------------------------------- intervals
# Two-sided 97.5% quantiles of Student's t for df = 1..30 (beyond that the normal 1.96 is within 2%).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish-Fisher expansion around the normal quantile: error < 1e-3 for df > 30.
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (half-width nan for one value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_ci needs at least one value")
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return mean, math.nan
    half = t_quantile_975(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return mean, half


def learning_table(regrets: Mapping[str, Mapping[str, Sequence[float] | str]], setup: LearningSetup) -> str:
    """Markdown table: policy | each environment's mean final cumulative regret +- 95% half-width.

    ``regrets[env][policy]`` is the list of per-seed final cumulative regrets, or an error string.
    """
    envs = list(regrets)
    lines = [
        f"Mean cumulative regret after {setup.rounds} rounds x batch {setup.batch} "
        f"({setup.num_steps} SVI steps per update), 95% interval over seeds; lower is better.",
        "",
        "| policy | " + " | ".join(envs) + " |",
        "|---|" + "---|" * len(envs),
    ]
    policies = [p for p in POLICIES if any(p in regrets[e] for e in envs)]
    policies += sorted({p for e in envs for p in regrets[e]} - set(policies))
    for policy in policies:
        cells = []
        for env in envs:
            value = regrets[env].get(policy)
            if value is None:
                cells.append("-")
            elif isinstance(value, str):
                cells.append(value[:60] if value.startswith("not run") else f"failed: {value[:60]}")
            else:
                mean, half = mean_ci(value)
                cells.append(f"{mean:.1f} ± {half:.1f} (n={len(value)})")
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Paired comparisons: every policy plays the same draws per seed, so per-seed differences cancel
# the environment's noise and give a much tighter interval than the two marginal ones.
PAIRS = (
    ("bandits_jax defaults", "PyBandits defaults"),
    ("bandits_jax matched", "PyBandits matched"),
    ("bandits_jax defaults", "linear TS (Laplace)"),
)


def paired_table(regrets: Mapping[str, Mapping[str, Sequence[float] | str]]) -> str:
    """Markdown table: per pair ``(a, b)`` and environment, the mean per-seed difference a - b with
    its 95% interval (negative: ``a`` has less regret); ``-`` where either side is missing, failed
    or has fewer than two seeds in common."""
    envs = list(regrets)
    lines = [
        "Paired difference of cumulative regret (same draws per seed), mean ± 95% interval; "
        "negative favours the first policy.",
        "",
        "| difference | " + " | ".join(envs) + " |",
        "|---|" + "---|" * len(envs),
    ]
    for a, b in PAIRS:
        cells = []
        for env in envs:
            va, vb = regrets[env].get(a), regrets[env].get(b)
            usable = all(isinstance(v, list | tuple) and len(v) >= 2 for v in (va, vb))
            if not usable:  # missing, failed ("..." strings) or a single seed
                cells.append("-")
                continue
            diffs = [x - y for x, y in zip(va, vb)]
            mean, half = mean_ci(diffs)
            cells.append(f"{mean:+.1f} ± {half:.1f} (n={len(diffs)})")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
