"""Write reference fixtures for off-policy evaluation (OPE) from Open Bandit Pipeline and PyBandits.

Each library runs in its own virtual environment (both git-ignored); the outputs are committed as
data under ``tests/data/ope/`` so the tests need neither library:

    # obp 0.5.7 pins Python < 3.11 and numpy 1.23.5 / scipy 1.9.3 / scikit-learn 1.1.3 / pandas 1.5.2 /
    # torch 1.12.0 (obp.utils imports torch); matplotlib 3.6.2 because seaborn 0.11.2 (also pinned)
    # calls matplotlib.cm.register_cmap, which matplotlib 3.9 removed.
    /root/.pyenv/versions/3.10.13/bin/python -m venv benchmarks/.obp-venv   # any CPython 3.10
    benchmarks/.obp-venv/bin/pip install obp==0.5.7 matplotlib==3.6.2
    benchmarks/.obp-venv/bin/python benchmarks/make_ope_fixtures.py --source obp

    # PyBandits 8.4.1, in the venv benchmarks/compare_pybandits.py makes
    benchmarks/.pybandits-venv/bin/python benchmarks/make_ope_fixtures.py --source pybandits

Run them from the repository root, in either order. ``tests/data/ope/logged.npz`` (the logged data
and evaluation policies) is kept: each run regenerates the data, compares it with the file (numpy's
``exp`` differs by an ulp or so between numpy 1.23 and 2.x, so a difference under 1e-12 is reported,
not fatal) and computes on the file's arrays, so both libraries' fixtures use byte-identical inputs.
The committed file was written by the PyBandits venv (numpy 2.x); to rewrite it, run that one first
with ``--write-inputs`` (``benchmarks/.pybandits-venv/bin/python benchmarks/make_ope_fixtures.py
--write-inputs --source pybandits``), then the obp one. Where the file is missing, the first run writes it.

Outputs: ``tests/data/ope/{obp,pybandits}_expected.npz`` with keys
``"{ClassName}|{setting}|{policy}|value"`` (0-d float64: the policy value) and ``"...|rows"`` ((n,)
float64: the per-row estimates whose mean is the value), and for PyBandits' bootstrap intervals
``"...|ci_value"``, ``ci_low``, ``ci_high``, ``ci_std``; policy is ``stochastic``
(``estimated_policy``) or ``deterministic`` (``estimated_policy_deterministic``). The JSON next to
each lists, per key, the class, the exact constructor kwargs (float infinity written as the string
``"inf"``) and the versions; at its top, the calls made and a per-class formula read from the
library's source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "ope"
INPUTS = OUT / "logged.npz"

SEED = 20240601
N_ROWS = 400
N_ACTIONS = 5
POLICIES = {"stochastic": "estimated_policy", "deterministic": "estimated_policy_deterministic"}


# --------------------------------------------------------------------------------------------------
# logged data


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def make_inputs() -> dict[str, np.ndarray]:
    """The synthetic logged data set (only ``default_rng`` draws of ``standard_normal``/``random``,
    whose streams numpy keeps stable, and elementwise arithmetic).

    Logging policy: 0.6 * softmax(2 N(0,1)) + 0.4 / K, so propensities lie in [0.08, 0.68].
    Evaluation policy: 0.95 * softmax(2 N(0,1)) + 0.05 * logging policy, so the importance weight
    of the logged action lies in [0.05, 1 / 0.08) (here about 0.05 .. 9). The deterministic policy
    is the one-hot argmax of the stochastic one.
    """
    rng = np.random.default_rng(SEED)
    n, k = N_ROWS, N_ACTIONS
    rows = np.arange(n)
    logging_policy = 0.6 * _softmax(2.0 * rng.standard_normal((n, k))) + 0.4 / k
    estimated_policy = 0.95 * _softmax(2.0 * rng.standard_normal((n, k))) + 0.05 * logging_policy
    # inverse-CDF sampling of the logged action
    u = rng.random(n)
    action = np.minimum((u[:, None] > np.cumsum(logging_policy, axis=1)).sum(axis=1), k - 1).astype(np.int64)
    propensity_score = logging_policy[rows, action]
    true_logits = rng.standard_normal((n, k)) - 0.3
    true_reward_prob = _sigmoid(true_logits)
    reward = (rng.random(n) < true_reward_prob[rows, action]).astype(np.int64)
    expected_reward = _sigmoid(true_logits + 0.4 * rng.standard_normal((n, k)))
    deterministic = np.zeros((n, k))
    deterministic[rows, estimated_policy.argmax(axis=1)] = 1.0
    true_weight = estimated_policy[rows, action] / propensity_score
    expected_importance_weight = true_weight * np.exp(0.2 * rng.standard_normal(n))
    return {
        "action": action,
        "propensity_score": propensity_score.astype(np.float64),
        "reward": reward,
        "expected_reward": expected_reward.astype(np.float64),
        "estimated_policy": estimated_policy.astype(np.float64),
        "estimated_policy_deterministic": deterministic,
        "expected_importance_weight": expected_importance_weight.astype(np.float64),
        "logging_policy": logging_policy.astype(np.float64),
        "true_reward_prob": true_reward_prob.astype(np.float64),
    }


def load_or_write_inputs(force_write: bool) -> dict[str, np.ndarray]:
    fresh = make_inputs()
    if force_write or not INPUTS.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(INPUTS, **fresh)
        print(f"wrote {INPUTS.relative_to(ROOT)}")
        return fresh
    with np.load(INPUTS) as f:
        stored = {name: f[name] for name in f.files}
    for name, arr in fresh.items():
        if name not in stored:
            raise SystemExit(f"{INPUTS} lacks {name}: rerun with --write-inputs")
        same = np.array_equal(stored[name], arr) and stored[name].dtype == arr.dtype
        if not same:
            diff = np.abs(stored[name].astype(np.float64) - arr.astype(np.float64)).max()
            if diff > 1e-12:
                raise SystemExit(f"{name}: regenerated data differs from {INPUTS} by {diff}")
            print(f"note: {name} regenerated within {diff:.1e} of the stored file; using the stored one")
    return stored


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(kwargs: dict) -> dict:
    out = {}
    for key, val in kwargs.items():
        if isinstance(val, float) and np.isinf(val):
            out[key] = "inf" if val > 0 else "-inf"
        else:
            out[key] = val
    return out


def _tie_weight(data: dict[str, np.ndarray], policy: str) -> float:
    """An importance weight that occurs in the data (computed as both libraries compute it), so a
    threshold equal to it tells <= from < (and >= from >)."""
    pi = data[POLICIES[policy]]
    w = pi[np.arange(N_ROWS), data["action"]] / data["propensity_score"]
    positive = np.sort(w[w > 0])
    return float(positive[len(positive) // 2])


def _write(source: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    npz = OUT / f"{source}_expected.npz"
    np.savez_compressed(npz, **arrays)
    with open(OUT / f"{source}_expected.json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {npz.relative_to(ROOT)} ({len(arrays)} arrays) and {source}_expected.json")


# --------------------------------------------------------------------------------------------------
# obp

OBP_FORMULAS = {
    "_notation": (
        "i indexes rows; w_i = action_dist[i, a_i, 0] / pscore_i (unclipped importance weight); "
        "q(x_i,a) = estimated_rewards_by_reg_model[i, a, 0]; q(x_i,pi) = np.average(q(x_i,:), "
        "weights=action_dist[i, :, 0]) = sum_a pi(a|x_i) q(x_i,a) / sum_a pi(a|x_i); "
        "mean() is over all n rows; value = estimate_policy_value(...) = mean(rows)"
    ),
    "ReplayMethod": (
        "m_i = (action_dist[i, a_i, 0] == 1) (exact float equality, so a stochastic policy with no "
        "probability-1 entry gives m = 0 everywhere); rows = m * r / mean(m) if sum(m) > 0 else "
        "np.zeros_like(m) (all False, i.e. 0); value = sum(m*r)/sum(m), or 0 when nothing matches"
    ),
    "InverseProbabilityWeighting": "r_i * min(w_i, lambda_) (np.minimum; default lambda_=inf: no clipping)",
    "SelfNormalizedInverseProbabilityWeighting": (
        "r_i * w_i / mean(w) (inherits the lambda_ field from IPW but ignores it: no clipping)"
    ),
    "DirectMethod": "q(x_i,pi)",
    "DoublyRobust": "q(x_i,pi) + min(w_i, lambda_) * (r_i - q(x_i,a_i)) (default lambda_=inf)",
    "SelfNormalizedDoublyRobust": (
        "q(x_i,pi) + w_i * (r_i - q(x_i,a_i)) / mean(w) (normaliser: mean of the unclipped w over all "
        "rows; inherits lambda_ from DR but ignores it)"
    ),
    "SwitchDoublyRobust": (
        "q(x_i,pi) + 1{w_i <= lambda_} * w_i * (r_i - q(x_i,a_i)) (inclusive <=: the DR correction "
        "is kept where w <= lambda_, dropped (DM) where w > lambda_; default lambda_=inf: DR)"
    ),
    "DoublyRobustWithShrinkage": (
        "q(x_i,pi) + w_hat_i * (r_i - q(x_i,a_i)), w_hat = lambda_ * w / (w**2 + lambda_) if "
        "lambda_ < inf else w (optimistic shrinkage, default lambda_=0.0). At lambda_=0 w_hat = 0/w**2 = 0 "
        "for w > 0 but 0/0 = NaN where w = 0, so with a deterministic policy the default DRos gives NaN "
        "rows (every row whose logged action the policy does not take) and a NaN value"
    ),
    "SubGaussianInverseProbabilityWeighting": (
        "r_i * w_i / (1 - lambda_ + lambda_ * w_i) (lambda_ in [0, 1], default 0: IPW)"
    ),
    "SubGaussianDoublyRobust": (
        "q(x_i,pi) + w_i / (1 - lambda_ + lambda_ * w_i) * (r_i - q(x_i,a_i)) (lambda_ in [0, 1], default 0: DR)"
    ),
    "BalancedInverseProbabilityWeighting": (
        "v_i = min(estimated_importance_weights_i, lambda_) (given weights, not pi/pscore; action_dist and "
        "action are only validated); r_i * v_i / mean(v) (self-normalised; default lambda_=inf)"
    ),
}


def obp_settings(data: dict[str, np.ndarray], policy: str) -> list[tuple[str, str, dict]]:
    inf = float("inf")
    tie = _tie_weight(data, policy)
    return [
        ("ReplayMethod", "default", {}),
        ("InverseProbabilityWeighting", "default", {}),
        ("InverseProbabilityWeighting", "lambda_3", {"lambda_": 3.0}),
        ("InverseProbabilityWeighting", "lambda_0.5", {"lambda_": 0.5}),
        ("SelfNormalizedInverseProbabilityWeighting", "default", {}),
        ("SelfNormalizedInverseProbabilityWeighting", "lambda_3", {"lambda_": 3.0}),
        ("DirectMethod", "default", {}),
        ("DoublyRobust", "default", {}),
        ("DoublyRobust", "lambda_3", {"lambda_": 3.0}),
        ("DoublyRobust", "lambda_0.5", {"lambda_": 0.5}),
        ("SelfNormalizedDoublyRobust", "default", {}),
        ("SelfNormalizedDoublyRobust", "lambda_3", {"lambda_": 3.0}),
        ("SwitchDoublyRobust", "default", {}),
        ("SwitchDoublyRobust", "lambda_2", {"lambda_": 2.0}),
        ("SwitchDoublyRobust", "lambda_0.5", {"lambda_": 0.5}),
        ("SwitchDoublyRobust", "lambda_tie", {"lambda_": tie}),
        ("DoublyRobustWithShrinkage", "default", {}),
        ("DoublyRobustWithShrinkage", "lambda_1", {"lambda_": 1.0}),
        ("DoublyRobustWithShrinkage", "lambda_10", {"lambda_": 10.0}),
        ("DoublyRobustWithShrinkage", "lambda_inf", {"lambda_": inf}),
        ("SubGaussianInverseProbabilityWeighting", "default", {}),
        ("SubGaussianInverseProbabilityWeighting", "lambda_0.1", {"lambda_": 0.1}),
        ("SubGaussianInverseProbabilityWeighting", "lambda_0.5", {"lambda_": 0.5}),
        ("SubGaussianDoublyRobust", "default", {}),
        ("SubGaussianDoublyRobust", "lambda_0.1", {"lambda_": 0.1}),
        ("SubGaussianDoublyRobust", "lambda_0.5", {"lambda_": 0.5}),
        ("BalancedInverseProbabilityWeighting", "default", {}),
        ("BalancedInverseProbabilityWeighting", "lambda_2", {"lambda_": 2.0}),
    ]


def run_obp(data: dict[str, np.ndarray]) -> None:
    import warnings

    import obp
    import obp.ope as ope

    n = N_ROWS
    reward, action, pscore = data["reward"], data["action"], data["propensity_score"]
    q3 = data["expected_reward"][:, :, None]
    inputs_by_class = {
        "ReplayMethod": ("reward", "action", "action_dist"),
        "DirectMethod": ("action_dist", "estimated_rewards_by_reg_model"),
        "BalancedInverseProbabilityWeighting": (
            "reward",
            "action",
            "action_dist",
            "estimated_importance_weights",
        ),
    }
    ipw_inputs = ("reward", "action", "action_dist", "pscore")
    dr_inputs = (*ipw_inputs, "estimated_rewards_by_reg_model")
    arrays: dict[str, np.ndarray] = {}
    entries: dict[str, dict] = {}
    calls: dict[str, str] = {}
    versions = {
        "obp_version": obp.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }
    for policy, policy_key in POLICIES.items():
        action_dist = data[policy_key][:, :, None]
        available = {
            "reward": reward,
            "action": action,
            "action_dist": action_dist,
            "pscore": pscore,
            "estimated_rewards_by_reg_model": q3,
            "estimated_importance_weights": data["expected_importance_weight"],
        }
        for cls_name, label, kwargs in obp_settings(data, policy):
            if cls_name not in ope.__all_estimators__:
                raise SystemExit(f"obp {obp.__version__} has no {cls_name}")
            est = getattr(ope, cls_name)(**kwargs)
            if cls_name in inputs_by_class:
                names = inputs_by_class[cls_name]
            elif "DoublyRobust" in cls_name:
                names = dr_inputs
            else:
                names = ipw_inputs
            call = {name: available[name] for name in names}
            calls[cls_name] = (
                "value = estimate_policy_value(" + ", ".join(names) + ", position=None); "
                "rows = _estimate_round_rewards(" + ", ".join(names) + ", position=np.zeros(n, int))"
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = float(est.estimate_policy_value(**call, position=None))
                # several _estimate_round_rewards lack position's None default: pass zeros, as
                # estimate_policy_value does before calling it
                rows = np.asarray(
                    est._estimate_round_rewards(**call, position=np.zeros(n, dtype=int)), dtype=np.float64
                )
            if not np.allclose(rows.mean(), value, rtol=1e-12, atol=1e-12, equal_nan=True):
                raise SystemExit(f"{cls_name} {label} {policy}: mean(rows) {rows.mean()} != value {value}")
            key = f"{cls_name}|{label}|{policy}"
            arrays[f"{key}|value"] = np.float64(value)
            arrays[f"{key}|rows"] = rows
            entry = {
                "class": cls_name,
                "setting": label,
                "policy": policy,
                "policy_input": policy_key,
                "kwargs": _jsonable(kwargs),
                "estimator_name": est.estimator_name,
                **versions,
            }
            if caught:
                entry["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
            for suffix in ("value", "rows"):
                entries[f"{key}|{suffix}"] = entry
    meta = {
        "library": "obp (Open Bandit Pipeline)",
        **versions,
        "scipy_version": __import__("scipy").__version__,
        "regenerate": "benchmarks/.obp-venv/bin/python benchmarks/make_ope_fixtures.py --source obp",
        "inputs": "tests/data/ope/logged.npz",
        "inputs_sha256": _sha256(INPUTS),
        "input_mapping": {
            "action_dist": "estimated_policy[:, :, None] (stochastic) or estimated_policy_deterministic[:, :, None]",
            "pscore": "propensity_score",
            "estimated_rewards_by_reg_model": "expected_reward[:, :, None]",
            "estimated_importance_weights": "expected_importance_weight (the same array for both policies)",
            "position": "None (len_list = 1)",
        },
        "estimators": (
            "every class in obp.ope.__all_estimators__ (the 11 standard-bandit estimators); not covered: the "
            "*Tuning variants, (SelfNormalized)MarginalizedInverseProbabilityWeighting, the MultiLoggers*, "
            "Slate* and Kernelized* (continuous-action) estimators"
        ),
        "lambda_tie": "SwitchDoublyRobust|lambda_tie uses an importance weight that occurs in the data (the median positive w for that policy), so a row sits exactly at the threshold",
        "calls": calls,
        "formulas": OBP_FORMULAS,
        "entries": entries,
    }
    _write("obp", arrays, meta)


# --------------------------------------------------------------------------------------------------
# PyBandits

PYBANDITS_FORMULAS = {
    "_notation": (
        "i indexes rows; w_i = estimated_policy[i, a_i] / propensity_score_i; qpi_i = "
        "np.average(expected_reward[i, :], weights=estimated_policy[i, :]) (the DirectMethod row); "
        "mean() is over all n rows; value = mean(estimate_sample_rewards(...)). The doubly robust family "
        "(GeneralizedDoublyRobust) computes DM rows, then runs its IPW-type estimator on the residual "
        "reward r - qpi: its residual is against q(x_i, pi), NOT obp's q(x_i, a_i)"
    ),
    "ReplayMethod": (
        "p_i = estimated_policy[i, a_i] (no == 1 test); r_i * p_i / mean(p) if any(p != 0) else zeros. "
        "Equals obp's Replay for a one-hot policy; for a stochastic policy it weights r by "
        "pi(a_i|x_i)/mean(pi(a|x)), where obp's Replay gives 0"
    ),
    "InverseProbabilityWeighting": "r_i * w_i (no clipping parameter)",
    "SelfNormalizedInverseProbabilityWeighting": "r_i * w_i / mean(w)",
    "DirectMethod": "qpi_i (as obp's DirectMethod)",
    "DoublyRobust": (
        "qpi_i + w_i * (r_i - qpi_i) (obp: q(x_i,pi) + w_i * (r_i - q(x_i,a_i)); the two agree for a one-hot "
        "policy, where w_i != 0 only if a_i is the policy's action and then qpi_i = q(x_i,a_i))"
    ),
    "SelfNormalizedDoublyRobust": "qpi_i + w_i * (r_i - qpi_i) / mean(w)",
    "SwitchDoublyRobust": (
        "qpi_i + 1{w_i >= switch_threshold} * w_i * (r_i - qpi_i): the correction is KEPT where "
        "w >= threshold (inclusive) and dropped where w < threshold, the opposite of obp's 1{w <= lambda_}; "
        "default switch_threshold=inf keeps no row, so the default is DM (obp's default is DR)"
    ),
    "DoublyRobustWithOptimisticShrinkage": (
        "qpi_i + w_hat_i * (r_i - qpi_i), w_hat = 0 if shrinkage_factor == 0 (default; explicit zeros, no "
        "NaN, unlike obp's DRos at lambda_=0), w if shrinkage_factor == inf, else "
        "shrinkage_factor * w / (w**2 + shrinkage_factor)"
    ),
    "DoublyRobustWithPessimisticShrinkage": (
        "qpi_i + min(shrinkage_factor, w_i) * (r_i - qpi_i) (shrinkage_factor > 0, default inf: DR); "
        "obp's DoublyRobust(lambda_) clipping, with PyBandits' residual"
    ),
    "SubGaussianInverseProbabilityWeighting": (
        "r_i * w_i, i.e. plain IPW for every shrinkage_factor: the class defines _shrink_weights(w) = "
        "w / (1 - s + s * w) but estimate_sample_rewards (inherited from IPW, shrinkage_method=None) never "
        "calls it, so shrinkage_factor is accepted and ignored (PyBandits 8.4.1). obp: r_i * w_i / (1 - "
        "lambda_ + lambda_ * w_i)"
    ),
    "SubGaussianDoublyRobust": (
        "qpi_i + w_i * (r_i - qpi_i), i.e. PyBandits' DoublyRobust: it has no shrinkage_factor field "
        "(extra='forbid' rejects one), builds its SubGaussianInverseProbabilityWeighting with the default "
        "shrinkage, and passes its own identity _shrink_weights"
    ),
    "BalancedInverseProbabilityWeighting": (
        "r_i * expected_importance_weight_i (no self-normalisation, no clipping, the policy unused); "
        "obp's BalancedInverseProbabilityWeighting self-normalises: r_i * v_i / mean(v)"
    ),
}

PYBANDITS_CI_NOTE = (
    "estimate_policy_value_with_confidence_interval returns (mean(rows), low, high, std) from "
    "scipy.stats.bootstrap(data=(rows,), statistic=np.mean, confidence_level=1 - alpha, "
    "n_resamples=n_bootstrap_samples, batch=bootstrap_batch_size, random_state=random_state) with "
    "scipy's default method='BCa' (bias-corrected and accelerated); std is its standard_error. The "
    "resamples depend on scipy's version and its RNG use, so compare low/high/std with a tolerance or "
    "only against the same scipy"
)


def pybandits_settings(data: dict[str, np.ndarray], policy: str) -> list[tuple[str, str, dict]]:
    inf = float("inf")
    tie = _tie_weight(data, policy)
    return [
        ("ReplayMethod", "default", {}),
        ("InverseProbabilityWeighting", "default", {}),
        ("SelfNormalizedInverseProbabilityWeighting", "default", {}),
        ("DirectMethod", "default", {}),
        ("DoublyRobust", "default", {}),
        ("SelfNormalizedDoublyRobust", "default", {}),
        ("SwitchDoublyRobust", "default", {}),
        ("SwitchDoublyRobust", "switch_threshold_2", {"switch_threshold": 2.0}),
        ("SwitchDoublyRobust", "switch_threshold_0.5", {"switch_threshold": 0.5}),
        ("SwitchDoublyRobust", "switch_threshold_tie", {"switch_threshold": tie}),
        ("DoublyRobustWithOptimisticShrinkage", "default", {}),
        ("DoublyRobustWithOptimisticShrinkage", "shrinkage_factor_1", {"shrinkage_factor": 1.0}),
        ("DoublyRobustWithOptimisticShrinkage", "shrinkage_factor_10", {"shrinkage_factor": 10.0}),
        ("DoublyRobustWithOptimisticShrinkage", "shrinkage_factor_inf", {"shrinkage_factor": inf}),
        ("DoublyRobustWithPessimisticShrinkage", "default", {}),
        ("DoublyRobustWithPessimisticShrinkage", "shrinkage_factor_3", {"shrinkage_factor": 3.0}),
        ("DoublyRobustWithPessimisticShrinkage", "shrinkage_factor_0.5", {"shrinkage_factor": 0.5}),
        ("SubGaussianInverseProbabilityWeighting", "default", {}),
        ("SubGaussianInverseProbabilityWeighting", "shrinkage_factor_0.1", {"shrinkage_factor": 0.1}),
        ("SubGaussianInverseProbabilityWeighting", "shrinkage_factor_0.5", {"shrinkage_factor": 0.5}),
        ("SubGaussianDoublyRobust", "default", {}),
        ("BalancedInverseProbabilityWeighting", "default", {}),
    ]


PYBANDITS_CI = {
    "InverseProbabilityWeighting": {"n_bootstrap_samples": 2000, "random_state": 0},
    "DoublyRobust": {"n_bootstrap_samples": 2000, "random_state": 0},
}


def run_pybandits(data: dict[str, np.ndarray]) -> None:
    from importlib.metadata import version

    import scipy
    from pybandits import offline_policy_estimator as ope

    arrays: dict[str, np.ndarray] = {}
    entries: dict[str, dict] = {}
    versions = {
        "pybandits_version": version("pybandits"),
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "python_version": platform.python_version(),
    }
    for policy, policy_key in POLICIES.items():
        call = {
            "action": data["action"],
            "reward": data["reward"],
            "propensity_score": data["propensity_score"],
            "estimated_policy": data[policy_key],
            "expected_reward": data["expected_reward"],
            "expected_importance_weight": data["expected_importance_weight"],
        }
        call_text = (
            f"(action=action, reward=reward, propensity_score=propensity_score, estimated_policy={policy_key}, "
            "expected_reward=expected_reward, expected_importance_weight=expected_importance_weight)"
        )
        for cls_name, label, kwargs in pybandits_settings(data, policy):
            cls = getattr(ope, cls_name)
            est = cls(**kwargs)
            rows = np.asarray(est.estimate_sample_rewards(**call), dtype=np.float64)
            key = f"{cls_name}|{label}|{policy}"
            arrays[f"{key}|value"] = np.float64(rows.mean())
            arrays[f"{key}|rows"] = rows
            entry = {
                "class": cls_name,
                "name": cls.name,
                "setting": label,
                "policy": policy,
                "policy_input": policy_key,
                "kwargs": _jsonable(kwargs),
                **versions,
            }
            for suffix in ("value", "rows"):
                entries[f"{key}|{suffix}"] = entry
        for cls_name, kwargs in PYBANDITS_CI.items():
            cls = getattr(ope, cls_name)
            est = cls(**kwargs)
            value, low, high, std = est.estimate_policy_value_with_confidence_interval(**call)
            label = "bootstrap2000_seed0"
            key = f"{cls_name}|{label}|{policy}"
            rows = np.asarray(est.estimate_sample_rewards(**call), dtype=np.float64)
            if not np.isclose(value, rows.mean(), rtol=1e-12, atol=0):
                raise SystemExit(f"{key}: CI value {value} != mean(rows) {rows.mean()}")
            entry = {
                "class": cls_name,
                "name": cls.name,
                "setting": label,
                "policy": policy,
                "policy_input": policy_key,
                "kwargs": _jsonable(kwargs),
                "resolved_fields": {
                    "alpha": est.alpha,
                    "n_bootstrap_samples": est.n_bootstrap_samples,
                    "random_state": est.random_state,
                    "bootstrap_batch_size": est.bootstrap_batch_size,
                },
                "call": f"value, low, high, std = estimate_policy_value_with_confidence_interval{call_text}",
                "bootstrap_method": "BCa (scipy.stats.bootstrap default)",
                **versions,
            }
            for name, val in (("ci_value", value), ("ci_low", low), ("ci_high", high), ("ci_std", std)):
                arrays[f"{key}|{name}"] = np.float64(val)
                entries[f"{key}|{name}"] = entry
    meta = {
        "library": "pybandits",
        **versions,
        "regenerate": "benchmarks/.pybandits-venv/bin/python benchmarks/make_ope_fixtures.py --source pybandits",
        "inputs": "tests/data/ope/logged.npz",
        "inputs_sha256": _sha256(INPUTS),
        "switch_threshold_tie": "SwitchDoublyRobust|switch_threshold_tie uses an importance weight that occurs in the data (the median positive w for that policy), so a row sits exactly at the threshold",
        "call": "rows = estimate_sample_rewards(action=action, reward=reward, propensity_score=propensity_score, "
        "estimated_policy=<policy_input>, expected_reward=expected_reward, expected_importance_weight="
        "expected_importance_weight) (every class gets all six; each uses what it needs); value = rows.mean()",
        "confidence_interval": PYBANDITS_CI_NOTE,
        "formulas": PYBANDITS_FORMULAS,
        "entries": entries,
    }
    _write("pybandits", arrays, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", choices=["obp", "pybandits"], help="which library to run (in its own venv)"
    )
    parser.add_argument(
        "--write-inputs", action="store_true", help="(re)write tests/data/ope/logged.npz from the generator"
    )
    args = parser.parse_args()
    if args.source is None and not args.write_inputs:
        parser.error("give --source and/or --write-inputs")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    data = load_or_write_inputs(args.write_inputs)
    if args.source == "obp":
        run_obp(data)
    elif args.source == "pybandits":
        run_pybandits(data)


if __name__ == "__main__":
    main()
