"""The showdown: every chosen policy on every chosen environment for many seeds, as one vectorised
:func:`~bandits_jax.simulation.sweep` per environment, summarised as Riquelme et al. (2018) report it.

Per environment (a *cell*), all policies play in one mapping, so for a given seed they all see the
same contexts and reward draws (common random numbers: :func:`~bandits_jax.simulation.sweep` with
integer seeds, run ``i`` keyed by ``jax.random.key(seeds[i])``). Every summary is of the final
cumulative expected regret of each seed:

- ``cumulative_regret``: its mean over seeds with a two-sided 95% Student-t interval;
- ``normalised``: per seed, the policy's regret divided by uniform random's (``uniform`` always
  plays, as the normaliser), then the mean and t-interval of those ratios (uniform's is exactly 1);
- ``paired_difference``: per seed, the policy's regret minus linear TS's (``linear_ts`` always plays,
  as the reference), then the mean and t-interval of the differences: paired, so the environment
  and draw noise every policy shares cancels. Negative means fewer regrets than linear TS.

Environments by name (:func:`make_environment`): ``wheel`` (:class:`~bandits_jax.simulation.WheelEnv`
at ``delta = 0.95``, Bernoulli rewards; ``wheel:0.5`` for another ``delta``), ``wheel_gaussian``
(the same wheel with the paper's Gaussian rewards, ``WheelEnv(delta, rewards="paper")``; every
policy built by name plays it with a :class:`~bandits_jax.likelihoods.Gaussian` likelihood, and a
policy given as an object must have one), and, one random environment per seed drawn
from ``jax.random.key(10_000 + seed)`` with 5 features and 3 actions, ``logistic``
(:meth:`LogisticEnv.random`), ``nonlinear`` (:meth:`MLPEnv.random`, 16 hidden units), ``quadratic``
(:meth:`QuadraticEnv.random`) and ``piecewise`` (:meth:`PiecewiseEnv.random`, 2 logistic pieces of 5
rounds each); and scikit-learn's bundled data sets (``digits``, ``wine``, ``iris``,
``breast_cancer``; they need scikit-learn). Policies by registry name, built by
:func:`default_policy`, or any policy objects (see :func:`run_showdown`).

Files written to ``out_dir``: ``showdown.json`` (settings, package versions, per-seed regret curves
and the summaries), ``showdown.md`` (the three tables), ``showdown.png`` (mean cumulative regret
curves, one panel per environment; only when matplotlib is installed), and ``cells/<env>.json``, one
per finished environment with a hash of its settings: a rerun with ``resume=True`` loads a cell
whose settings hash matches instead of running it again.

Examples:
    >>> import tempfile
    >>> from bandits_jax.policies import LinearTS
    >>> out = run_showdown({"linear_ts": LinearTS.example}, ["logistic"], seeds=[0, 1], n_rounds=2,
    ...                    batch_size=8, out_dir=tempfile.mkdtemp(), progress=False, plot=False)
    >>> sorted(out["environments"]["logistic"]["summary"])
    ['linear_ts', 'uniform']
    >>> out["environments"]["logistic"]["summary"]["uniform"]["normalised"]["mean"]
    1.0

References:
    Riquelme, Tucker & Snoek, "Deep Bayesian Bandits Showdown: An Empirical Comparison of Bayesian
    Deep Networks for Thompson Sampling", ICLR 2018.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bandits_jax import policies as _policies
from bandits_jax import simulation

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "DEFAULT_POLICIES",
    "ENVIRONMENTS",
    "NORMALISER",
    "POLICIES",
    "REFERENCE",
    "default_policy",
    "environment_likelihood",
    "make_environment",
    "parse_environment",
    "run_showdown",
    "summarise",
    "t_interval",
    "t_quantile",
]

FORMAT = "bandits_jax.showdown/1"
#: The registry names :func:`default_policy` builds.
POLICIES = ("bnn_ts", "linear_ts", "neural_linear", "lin_ucb", "epsilon_greedy", "ensemble", "uniform")
#: Environment names (``wheel`` also as ``wheel:DELTA``).
ENVIRONMENTS = (
    "wheel",
    "wheel_gaussian",
    "nonlinear",
    "quadratic",
    "logistic",
    "piecewise",
    *simulation.SKLEARN_DATASETS,
)
#: Environments whose rewards are real numbers: every policy plays with a Gaussian likelihood there.
GAUSSIAN_ENVIRONMENTS = ("wheel_gaussian",)
DEFAULT_POLICIES = ("bnn_ts", "linear_ts", "neural_linear", "ensemble", "lin_ucb")
DEFAULT_ENVIRONMENTS = ("wheel", "nonlinear", "quadratic", "logistic")
NORMALISER = "uniform"
REFERENCE = "linear_ts"
WHEEL_DELTA = 0.95
#: Sizes of the random synthetic environments, and the offset of their keys from the seeds.
N_FEATURES, N_ACTIONS, HIDDEN, ENV_KEY_OFFSET = 5, 3, 16, 10_000
PIECES, PIECE_PERIOD = 2, 5
CONFIDENCE = 0.95


# ---------------------------------------------------------------------------------- policies
def default_policy(name: str, n_features: int, likelihood: Any = None) -> Any:
    """The showdown's policy ``name`` for contexts of ``n_features`` columns and rewards of
    ``likelihood`` (None: Bernoulli; the Gaussian environments pass
    :class:`~bandits_jax.likelihoods.Gaussian`).

    Settings (sized for about 20 rounds of 100 rows, a few thousand rows in all):

    - ``bnn_ts``: :class:`~bandits_jax.policies.BnnTS`, one hidden layer of 16 tanh units, 100 Adam
      steps of step size 0.01 per update, the guide starting at a draw of the prior narrowed to
      ``init_scale=0.1`` (streaming SVI); its prior ``N(0, 1)`` is init data,
      :data:`DEFAULT_INIT_DATA`. Measured on ``nonlinear`` (10 seeds, 20 rounds x 100 rows, paired
      against linear TS): the library's default start at the prior with step size 0.1 has +119
      +- 23 regret, starting at ``init_scale=0.1`` +72 +- 12, and with step size 0.01 as well +1.6
      +- 6.1 (prior sigma 1, 3 or 10 within noise; 300 steps worse, +32);
    - ``linear_ts``, ``lin_ucb``: their defaults (Laplace posterior, 20 Newton steps; LinUCB's
      ``alpha = 1``);
    - ``neural_linear``: a body of one hidden layer of 16, 2048 rows kept per action, 50 Adam steps
      per update, otherwise its defaults. The buffer bounds the data its heads are refitted on
      (linear TS keeps all of it in its statistics): measured on ``nonlinear`` (20 seeds, paired
      against linear TS), 512 rows gave -4.0 +- 4.3 at 20 rounds x 100 rows, 2048 rows -7.3 +- 3.6,
      and at 60 rounds 1024 rows -11.2 +- 9.1, 2048 rows -21.3 +- 9.6;
    - ``ensemble``: 10 members of one hidden layer of 16, each update refitting the latest 512 rows
      per action with 50 Adam steps, otherwise its defaults (streaming instead, the ensemble's
      default, had twice the regret on ``nonlinear`` and ``logistic``);
    - ``epsilon_greedy``: epsilon 0.1 (``init``'s default) over the default linear TS;
    - ``uniform``: uniform random.

    Raises:
        ValueError: an unknown name, naming the choices.

    Examples:
        >>> default_policy("lin_ucb", 5)
        LinUCB(n_features=5, newton_steps=20, fit_intercept=True, likelihood=Bernoulli())
    """
    p = _policies
    lik = {"likelihood": likelihood} if likelihood is not None else {}
    if name == "bnn_ts":
        svi = p.SviSettings(num_steps=100, step_size=0.01, init_scale=0.1)
        return p.BnnTS(p.Network(n_features, (HIDDEN,)), svi=svi, **lik)
    if name == "linear_ts":
        return p.LinearTS(n_features, **lik)
    if name == "lin_ucb":
        return p.LinUCB(n_features, **lik)
    if name == "neural_linear":
        return p.NeuralLinear(p.Network(n_features, (HIDDEN,)), replay_capacity=2048, num_steps=50, **lik)
    if name == "ensemble":
        return p.Ensemble(
            p.Network(n_features, (HIDDEN,)), n_members=10, num_steps=50, replay_capacity=512, **lik
        )
    if name == "epsilon_greedy":
        return p.EpsilonGreedy(p.LinearTS(n_features, **lik))
    if name == "uniform":
        return p.Uniform(**lik)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


#: ``init`` data of the policies :func:`default_policy` builds, by name (see there).
DEFAULT_INIT_DATA = {"bnn_ts": {"sigma": 1.0}}
#: ``init`` data that a Gaussian environment adds for every policy built by name but uniform (the
#: caller's ``init_data`` wins key by key). ``wheel_gaussian``: a fixed standardisation, rewards / 10
#: (the wheel's rewards lie in [1, 50]). Fitted on each action's first batch instead (PyBandits'
#: ``fit_reward_standardization``), a batch without a ring context gives a scale of about 0.01 and
#: the first reward of 50 becomes a target of thousands: measured at delta 0.95 (10 seeds, 20 rounds
#: x 100 rows, regret / uniform's), fitted 0.85 / 0.87 / 0.78 (BNN / linear TS / NeuralLinear),
#: raw rewards (scale 1) 0.83 / 0.45 / 0.44, scale 10 0.44 / 0.37 / 0.36.
ENV_INIT_DATA = {"wheel_gaussian": {"reward_loc": 0.0, "reward_scale": 10.0}}

PolicyMaker = Callable[..., Any]


def _policy_makers(chosen: Sequence[str] | Mapping[str, Any]) -> tuple[dict[str, PolicyMaker], set[str]]:
    """Name -> ``n_features -> policy``, with the normaliser and the reference added if absent, and
    the names built by :func:`default_policy`."""
    if isinstance(chosen, str):
        raise TypeError(f"policies must be a sequence of names or a mapping, got the string {chosen!r}")
    if isinstance(chosen, Mapping):
        makers = {}
        for name, value in chosen.items():
            # A policy object plays as it is; a function (or a class) gets each environment's
            # n_features. A class passes the protocol's isinstance check, hence the type test.
            if isinstance(value, _policies.Policy) and not isinstance(value, type):
                makers[name] = lambda _n, _lik=None, v=value: v
            elif callable(value):
                makers[name] = lambda n, _lik=None, f=value: f(n)
            else:
                raise TypeError(f"policy {name!r} must be a policy or a function n_features -> policy")
    else:
        names = list(chosen)
        for name in names:
            if name not in POLICIES:
                raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
        if len(set(names)) != len(names):
            raise ValueError(f"policies must be distinct, got {', '.join(names)}")
        makers = {name: (lambda n, lik=None, name=name: default_policy(name, n, lik)) for name in names}
    by_name = set() if isinstance(chosen, Mapping) else set(makers)
    for name in (REFERENCE, NORMALISER):
        if name not in makers:
            makers[name] = lambda n, lik=None, name=name: default_policy(name, n, lik)
            by_name.add(name)
    return makers, by_name


# ---------------------------------------------------------------------------------- environments
def parse_environment(name: str) -> tuple[str, float | None]:
    """``(kind, delta)``: ``"wheel:0.5"`` is ``("wheel", 0.5)``, ``"wheel"`` ``("wheel", 0.95)``,
    any other known name ``(name, None)``.

    Raises:
        ValueError: an unknown name or a bad ``delta``, naming the choices.

    Examples:
        >>> parse_environment("wheel:0.5"), parse_environment("logistic")
        (('wheel', 0.5), ('logistic', None))
    """
    if not isinstance(name, str):
        raise TypeError(f"an environment name must be a string, got {name!r}")
    kind, sep, arg = name.partition(":")
    wheels = ("wheel", "wheel_gaussian")
    if kind not in ENVIRONMENTS or (sep and kind not in wheels):
        raise ValueError(
            f"unknown environment {name!r}; choose from {', '.join(ENVIRONMENTS)} (or wheel:DELTA, "
            "wheel_gaussian:DELTA)"
        )
    if kind not in wheels:
        return kind, None
    if not sep:
        return kind, WHEEL_DELTA
    try:
        delta = float(arg)
    except ValueError:
        delta = math.nan
    if not 0 < delta < 1:
        raise ValueError(f"environment {name!r}: the wheel's delta must be a number in (0, 1), got {arg!r}")
    return kind, delta


def make_environment(name: str, seeds: Sequence[int]) -> tuple[Any, int | None, str]:
    """The environment ``name`` for these seeds: ``(env, env_axis, description)``, ``env_axis=0``
    with one random environment per seed (from ``jax.random.key(10_000 + seed)``), None for one
    shared environment (the wheel, a data set).

    Raises:
        ValueError: an unknown name; ImportError: a data set without scikit-learn.

    Examples:
        >>> env, axis, text = make_environment("nonlinear", [0, 1, 2])
        >>> env.w1.shape, axis, text
        ((3, 5, 16), 0, 'MLPEnv.random(5, 3, hidden=16), key(10000 + seed)')
    """
    kind, delta = parse_environment(name)
    if kind == "wheel":
        return simulation.WheelEnv(delta), None, f"WheelEnv({delta!r})"
    if kind == "wheel_gaussian":
        return simulation.WheelEnv(delta, rewards="paper"), None, f"WheelEnv({delta!r}, rewards='paper')"
    if kind in simulation.SKLEARN_DATASETS:
        return simulation.load_sklearn(kind), None, f"load_sklearn({kind!r})"
    makers = {
        "logistic": (
            lambda k: simulation.LogisticEnv.random(N_FEATURES, N_ACTIONS, key=k),
            "LogisticEnv.random",
        ),
        "nonlinear": (
            lambda k: simulation.MLPEnv.random(N_FEATURES, N_ACTIONS, key=k, hidden=HIDDEN),
            "MLPEnv.random",
        ),
        "quadratic": (
            lambda k: simulation.QuadraticEnv.random(N_FEATURES, N_ACTIONS, key=k),
            "QuadraticEnv.random",
        ),
        "piecewise": (
            lambda k: simulation.PiecewiseEnv.random(N_FEATURES, N_ACTIONS, PIECES, PIECE_PERIOD, key=k),
            "PiecewiseEnv.random",
        ),
    }
    make, what = makers[kind]
    keys = jax.vmap(jax.random.key)(jax.numpy.asarray([ENV_KEY_OFFSET + int(s) for s in seeds]))
    args = {
        "logistic": f"{N_FEATURES}, {N_ACTIONS}",
        "nonlinear": f"{N_FEATURES}, {N_ACTIONS}, hidden={HIDDEN}",
        "quadratic": f"{N_FEATURES}, {N_ACTIONS}",
        "piecewise": f"{N_FEATURES}, {N_ACTIONS}, {PIECES}, {PIECE_PERIOD}",
    }[kind]
    return jax.vmap(make)(keys), 0, f"{what}({args}), key({ENV_KEY_OFFSET} + seed)"


def environment_likelihood(name: str) -> Any:
    """The reward model the policies built by name play with on environment ``name``: a
    :class:`~bandits_jax.likelihoods.Gaussian` on the Gaussian environments (``wheel_gaussian``:
    the paper's wheel, real rewards of noise std 0.01), None (Bernoulli, the default) elsewhere."""
    from bandits_jax.likelihoods import Gaussian

    return Gaussian() if parse_environment(name)[0] in GAUSSIAN_ENVIRONMENTS else None


def _check_likelihoods(players: Mapping[str, Any], env_name: str, likelihood: Any) -> None:
    """A Gaussian environment needs every player's likelihood Gaussian (and a binary one none):
    a policy given as an object must carry the right one (ValueError naming it)."""
    from bandits_jax.likelihoods import Gaussian

    for name, policy in players.items():
        is_gaussian = isinstance(getattr(policy, "likelihood", None), Gaussian)
        if is_gaussian != (likelihood is not None):
            need = "a Gaussian likelihood" if likelihood is not None else "binary rewards (not Gaussian)"
            raise ValueError(f"policy {name!r} must have {need} to play environment {env_name!r}")


def _environment_init_data(env_name: str, init_data: Mapping, by_name: set[str], user: Mapping) -> dict:
    """``init_data`` with :data:`ENV_INIT_DATA` of ``env_name`` added for the policies built by
    name (but the normaliser), under what the caller gave for each."""
    extra = ENV_INIT_DATA.get(parse_environment(env_name)[0])
    out = {name: dict(fields) for name, fields in init_data.items()}
    if extra:
        for name in sorted(by_name - {NORMALISER}):
            given = {**out.get(name, {}), **user.get(name, {})}
            # the standardisation is one setting: a caller who gives either half gives both
            skip = _STANDARDISATION if _STANDARDISATION & set(given) else set()
            out[name] = {**{k: v for k, v in extra.items() if k not in skip}, **given}
    return out


_STANDARDISATION = {"reward_loc", "reward_scale"}


def _check_init_data(
    players: Mapping[str, Any], data: Mapping[str, Mapping[str, Any]], env_name: str
) -> None:
    """Every ``init_data`` key is one its policy's ``init`` takes on this environment (ValueError
    naming the policy, the environment and the keys), checked for all cells before any runs."""
    from bandits_jax.policies.spec import init_parameters

    absent = sorted(set(data) - set(players))
    if absent:
        raise ValueError(f"init_data names policies that do not play: {absent}")
    for name, fields in data.items():
        unknown = sorted(set(fields) - set(init_parameters(players[name])))
        if unknown:
            raise ValueError(
                f"init_data[{name!r}] has {unknown}, which policy {name!r} does not take on environment "
                f"{env_name!r} (it takes {list(init_parameters(players[name]))})"
            )


def _check_sklearn(kinds: Sequence[str]) -> None:
    import importlib.util

    needs = [k for k in kinds if k in simulation.SKLEARN_DATASETS]
    if needs and importlib.util.find_spec("sklearn") is None:
        raise ImportError(
            f"the {needs[0]!r} environment needs scikit-learn, an optional extra: "
            "pip install 'bandits_jax[sim]' (or pip install scikit-learn)"
        )


# ---------------------------------------------------------------------------------- statistics
def _t_two_sided(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(1, (df - 1) // 2):
        term *= (2 * k) / (2 * k + 1) * c2
        total += term
    return 2 / math.pi * (theta + s * total)


def t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom: ``t`` with
    ``P(|T| <= t) = level`` (standard library only, by bisection on the exact distribution).

    Examples:
        >>> round(t_quantile(0.95, 9), 4), round(t_quantile(0.95, 1), 3)
        (2.2622, 12.706)
    """
    if not (isinstance(df, (int, np.integer)) and df >= 1):
        raise ValueError(f"df must be a positive int, got {df!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, int(df)) < level:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _t_two_sided(mid, int(df)) < level else (lo, mid)
    return 0.5 * (lo + hi)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def t_interval(values: Sequence[float] | np.ndarray, level: float = CONFIDENCE) -> dict[str, Any]:
    """Mean and two-sided Student-t interval of i.i.d. values (e.g. one per seed).

    Returns ``{"mean", "half_width", "low", "high", "n"}``; with fewer than 2 values (or a
    non-finite one) the interval fields are None, and so is a non-finite mean (valid JSON).

    Examples:
        >>> t_interval([1.0, 2.0, 3.0])["half_width"]  # doctest: +ELLIPSIS
        2.4841...
    """
    x = np.asarray(values, np.float64).ravel()
    mean = float(x.mean()) if x.size else math.nan
    out = {"mean": _finite(mean), "half_width": None, "low": None, "high": None, "n": int(x.size)}
    if x.size >= 2 and np.all(np.isfinite(x)):
        half = t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
        out.update(half_width=half, low=mean - half, high=mean + half)
    return out


def summarise(
    curves: Mapping[str, np.ndarray],
    *,
    normaliser: str = NORMALISER,
    reference: str = REFERENCE,
    level: float = CONFIDENCE,
) -> dict[str, dict[str, Any]]:
    """Per policy, intervals of its final cumulative regret over seeds: ``cumulative_regret``,
    ``normalised`` (per-seed ratio to ``normaliser``'s) and ``paired_difference`` (per-seed
    difference from ``reference``'s; None if the reference did not play).

    Args:
        curves: name -> cumulative regret, ``(n_seeds, n_rounds)``, seeds in the same order.
    """
    final = {name: np.asarray(c, np.float64)[:, -1] for name, c in curves.items()}
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, f in final.items():
            out[name] = {
                "cumulative_regret": t_interval(f, level),
                "normalised": t_interval(f / final[normaliser], level),
                "paired_difference": t_interval(f - final[reference], level) if reference in final else None,
            }
    return out


# ---------------------------------------------------------------------------------- cells
def _versions() -> dict[str, str | None]:
    out = {}
    for dist in ("bandits_jax", "jax", "jaxlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _cell_path(out_dir: Path, env_name: str) -> Path:
    return out_dir / "cells" / (re.sub(r"[^A-Za-z0-9_.-]", "_", env_name) + ".json")


def _settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _load_cell(path: Path, digest: str) -> dict[str, Any] | None:
    """The saved cell if it is complete and its settings hash is ``digest``, else None."""
    try:
        cell = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("rerunning %s: cannot read it (%s)", path, err)
        return None
    if not isinstance(cell, dict) or cell.get("hash") != digest or "cumulative_regret" not in cell:
        return None
    return cell


def _write_json(path: Path, data: Any) -> None:
    """Atomically: a crash mid-write leaves the old file (or none), never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class _Progress:
    """A tqdm bar over every round of every cell if tqdm is installed, else a stderr line per chunk."""

    def __init__(self, total: int, enabled: bool):
        self.bar, self.enabled, self.total, self.done = None, enabled, total, 0
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="round", desc="showdown", file=sys.stderr)

    def start(self, env_name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"showdown {env_name}")

    def advance(self, env_name: str, rounds: int, cell_done: int, cell_total: int) -> None:
        self.done += rounds
        if self.bar is not None:
            self.bar.update(rounds)
        elif self.enabled:
            print(
                f"showdown {env_name}: round {cell_done}/{cell_total} ({self.done}/{self.total} in all)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_cell(players, env, env_axis, seeds, n_rounds, batch_size, init_data, progress, env_name):
    done = [0]

    def tick(rounds_done: int) -> None:
        progress.advance(env_name, rounds_done - done[0], rounds_done, n_rounds)
        done[0] = rounds_done

    start = time.perf_counter()
    out = simulation.sweep(
        players,
        env,
        list(seeds),
        n_rounds,
        batch_size,
        init_data=init_data,
        env_axis=env_axis,
        # One round per chunk moves the progress bar every round; the result equals one scan.
        chunk_rounds=1 if progress.enabled else None,
        callback=tick,
    )
    out = simulation.gather(out)
    wall = time.perf_counter() - start
    names = list(players)  # in the caller's order (a sweep's dict of traces is sorted by name)
    return {
        "cumulative_regret": {n: np.asarray(out[n].cumulative_regret, np.float64).tolist() for n in names},
        "reward_rate": {n: np.asarray(out[n].rewards, np.float64).mean(axis=(1, 2)).tolist() for n in names},
        "update_failures": {n: int((~np.asarray(out[n].update_ok)).sum()) for n in names},
        "wall_time_s": wall,
    }


# ---------------------------------------------------------------------------------- reports
def _fmt(interval: Mapping[str, Any] | None, digits: int) -> str:
    """``mean ± half_width`` as the Markdown tables show it (``n/a`` where undefined)."""
    if interval is None or interval["mean"] is None:
        return "n/a"
    if interval["half_width"] is None:
        return f"{interval['mean']:.{digits}f}"
    return f"{interval['mean']:.{digits}f} ± {interval['half_width']:.{digits}f}"


#: (summary field, title, digits) of the Markdown tables.
TABLES = (
    ("cumulative_regret", "Final cumulative regret (mean ± 95% t-interval over seeds)", 2),
    ("normalised", f"Cumulative regret / {NORMALISER}'s, per seed (mean ± 95% t-interval)", 3),
    ("paired_difference", f"Cumulative regret − {REFERENCE}'s, per seed (mean ± 95% t-interval)", 2),
)


def _markdown(result: Mapping[str, Any]) -> str:
    settings = result["settings"]
    envs = list(result["environments"])
    names = settings["policies"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [
        "# Showdown",
        "",
        f"{len(settings['seeds'])} seeds × {settings['n_rounds']} rounds × {settings['batch_size']} rows; "
        f"{versions}.",
    ]
    for field, title, digits in TABLES:
        lines += ["", f"## {title}", "", "| policy | " + " | ".join(envs) + " |"]
        lines.append("|---|" + "---|" * len(envs))
        for name in names:
            cells = [_fmt(result["environments"][e]["summary"][name][field], digits) for e in envs]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Environments:", ""]
    lines += [f"- `{e}`: {result['environments'][e]['description']}" for e in envs]
    return "\n".join(lines) + "\n"


def _plot(result: Mapping[str, Any], path: Path) -> bool:
    """``showdown.png`` with :func:`~bandits_jax.simulation.plot_regret`, one panel per environment;
    False (nothing written) without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    envs = result["environments"]
    fig = Figure(figsize=(4.8 * len(envs), 3.8), layout="constrained")
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    for ax, (env_name, cell) in zip(axes, envs.items()):
        # plot_regret reads only cumulative_regret (runs x rounds) of each trace.
        traces = {
            name: simulation.Trace(None, None, None, np.asarray(cell["cumulative_regret"][name]), None, None)
            for name in result["settings"]["policies"]
        }
        simulation.plot_regret(traces, ax=ax, title=f"{env_name} ({len(result['settings']['seeds'])} seeds)")
    fig.savefig(path, dpi=110)
    return True


# ---------------------------------------------------------------------------------- the runner
def run_showdown(
    policies: Sequence[str] | Mapping[str, Any] = DEFAULT_POLICIES,
    environments: Sequence[str] = DEFAULT_ENVIRONMENTS,
    seeds: int | Sequence[int] = 10,
    n_rounds: int = 20,
    batch_size: int = 100,
    out_dir: str | os.PathLike = "showdown",
    *,
    resume: bool = True,
    progress: bool = True,
    plot: bool = True,
    init_data: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the showdown and write its files to ``out_dir`` (see the module docstring).

    Args:
        policies: registry names (built by :func:`default_policy`), or a mapping name -> policy
            object or function ``n_features -> policy`` (e.g. ``LinearTS.example``). ``uniform`` and
            ``linear_ts`` are added with their defaults if absent (the normaliser and the reference).
        environments: names, see :func:`make_environment`.
        seeds: the seeds (one run each; every policy plays the same draws per seed), or a count
            ``S`` for ``range(S)``.
        n_rounds, batch_size: rounds per run and rows per round.
        out_dir: where the files go (created).
        resume: load a cell from ``out_dir/cells`` when its settings hash matches (environment,
            seeds, sizes, every policy's ``repr``, ``init_data`` and the package versions), rather
            than run it again; False reruns (and overwrites) every cell.
        progress: a progress bar on stderr (tqdm if installed, else one line per round).
        plot: write ``showdown.png`` if matplotlib is installed.
        init_data: per policy name, ``init`` keyword arguments (as :func:`~bandits_jax.simulation.sweep`),
            replacing those of :data:`DEFAULT_INIT_DATA`, which apply to the policies built by name
            (not to those of a mapping).

    Returns:
        What ``showdown.json`` holds.

    Raises:
        ValueError: an unknown policy or environment name (before anything runs);
        ImportError: a scikit-learn data set without scikit-learn.
    """
    makers, by_name = _policy_makers(policies)
    user_init_data = {name: dict(v) for name, v in (init_data or {}).items()}
    init_data = {
        **{
            name: dict(DEFAULT_INIT_DATA[name])
            for name in makers
            if name in by_name and name in DEFAULT_INIT_DATA
        },
        **(init_data or {}),
    }
    environments = list(environments)
    if not environments:
        raise ValueError("environments must name at least one environment")
    if len(set(environments)) != len(environments):
        raise ValueError(f"environments must be distinct, got {', '.join(environments)}")
    kinds = [parse_environment(e)[0] for e in environments]
    _check_sklearn(kinds)
    seeds = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a positive count or a non-empty sequence")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = _versions()

    start = time.perf_counter()
    bar = _Progress(len(environments) * n_rounds, progress)
    cells = {}
    try:
        # every cell's players and init data first: a bad combination fails before anything runs
        prepared = {}
        for env_name in environments:
            env, env_axis, description = make_environment(env_name, seeds)
            likelihood = environment_likelihood(env_name)
            players = {name: make(env.n_features, likelihood) for name, make in makers.items()}
            _check_likelihoods(players, env_name, likelihood)
            env_init_data = _environment_init_data(env_name, init_data, by_name, user_init_data)
            _check_init_data(players, env_init_data, env_name)
            prepared[env_name] = (env, env_axis, description, players, env_init_data)
        for env_name in environments:
            env, env_axis, description, players, env_init_data = prepared[env_name]
            settings = {
                "format": FORMAT,
                "environment": env_name,
                "description": description,
                "seeds": seeds,
                "n_rounds": n_rounds,
                "batch_size": batch_size,
                "policies": {name: repr(p) for name, p in players.items()},
                "init_data": repr(sorted(env_init_data.items())),
                "versions": versions,
            }
            digest = _settings_hash(settings)
            path = _cell_path(out_dir, env_name)
            cell = _load_cell(path, digest) if resume else None
            if cell is not None:
                logger.info("showdown: loaded %s from %s", env_name, path)
                bar.advance(env_name, n_rounds, n_rounds, n_rounds)
                resumed = True
            else:
                bar.start(env_name)
                cell = _run_cell(
                    players, env, env_axis, seeds, n_rounds, batch_size, env_init_data, bar, env_name
                )
                cell = {"hash": digest, "settings": settings, **cell}
                _write_json(path, cell)
                resumed = False
            cells[env_name] = {
                "description": description,
                "n_actions": env.n_actions,
                "n_features": env.n_features,
                "policies": settings["policies"],
                "hash": digest,
                "resumed": resumed,
                "wall_time_s": cell["wall_time_s"],
                "update_failures": cell["update_failures"],
                "summary": summarise({n: np.asarray(c) for n, c in cell["cumulative_regret"].items()}),
                "reward_rate": cell["reward_rate"],
                "cumulative_regret": cell["cumulative_regret"],
            }
    finally:
        bar.close()

    result = {
        "format": FORMAT,
        "settings": {
            "policies": list(makers),
            "environments": environments,
            "seeds": seeds,
            "n_rounds": n_rounds,
            "batch_size": batch_size,
            "normaliser": NORMALISER,
            "reference": REFERENCE,
            "confidence": CONFIDENCE,
            "init_data": repr(sorted(init_data.items())),
        },
        "versions": versions,
        "wall_time_s": time.perf_counter() - start,
        "environments": cells,
    }
    _write_json(out_dir / "showdown.json", result)
    (out_dir / "showdown.md").write_text(_markdown(result))
    if plot:
        _plot(result, out_dir / "showdown.png")
    return result
