"""Migration from and to PyBandits 8.x: read the JSON its ``get_state()`` writes, and write it back.

:meth:`CmabBernoulli.from_pybandits_state <bandits_jax.cmab.CmabBernoulli.from_pybandits_state>`
and :meth:`SmabBernoulli.from_pybandits_state <bandits_jax.smab.SmabBernoulli.from_pybandits_state>`
build a model whose posterior (every layer's ``mu`` / ``sigma``, the prior family and its ``nu``),
counts, strategy, exploration settings and ``update_kwargs`` are PyBandits'. Its posterior-mean
logits then equal PyBandits' ``forward_pass`` at the ``mu`` weights up to float32 rounding (PyBandits
computes in float64): tests/test_pybandits_migration.py checks it on states written by real
PyBandits 8.4.1 (``benchmarks/make_pybandits_fixtures.py``). ``to_pybandits_state()`` writes the
model back in PyBandits' form, where it can be expressed there.

Soft rewards (``use_soft_rewards``, fractional counts) and ``decay_factor`` (with an sMAB's decayed
counts) carry over both ways. What PyBandits has and this library does not yet is refused with a
clear error, before anything is built: categorical features and embeddings,
a shared backbone, the adaptive window (``delta``), actions whose networks or settings differ, and
strategies other than ``ClassicBandit`` / ``BestActionIdentificationBandit``. PyBandits 8.4.1's own
``get_state`` writes a CMAB's ``BestActionIdentificationBandit`` as ``{}`` (its ``exploit_p`` is
lost, and PyBandits' ``from_state`` reads it back as ``ClassicBandit``); such a state loads as
``ClassicBandit`` here too.
"""

from __future__ import annotations

import json
import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax._object import make_exploration
from bandits_jax.bnn import MLP
from bandits_jax.config import DEFAULT_INIT_SCALE, CmabConfig
from bandits_jax.likelihoods import BernoulliStats, SoftBernoulliStats, host_counts
from bandits_jax.policies.base import stats_of
from bandits_jax.policies.forgetting import DecayedCounts, ForgettingState
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit, Strategy

__all__ = ["PYBANDITS_VERSION", "read_state", "to_pybandits_state"]

#: The PyBandits release whose state format this module reads and writes.
PYBANDITS_VERSION = "8.4.1"


class _Refused(ValueError):
    pass


def read_state(state: Any, expected_class: str) -> dict:
    """The parsed top-level dict of a PyBandits ``get_state()`` (JSON text, or its
    ``(class_name, json)`` tuple), checked to be of ``expected_class``."""
    if isinstance(state, tuple):
        if len(state) != 2 or state[0] != expected_class:
            raise ValueError(
                f"state must be PyBandits' ({expected_class!r}, json) pair, got class {state[0]!r}"
            )
        state = state[1]
    if isinstance(state, bytes):
        state = state.decode("utf-8")
    if not isinstance(state, str):
        raise TypeError(f"state must be the JSON text of PyBandits' get_state(), got {type(state).__name__}")
    try:
        data = json.loads(state)
    except json.JSONDecodeError as err:
        raise ValueError(f"state is not valid JSON: {err}") from None
    try:
        manager = data["actions_manager"]
        actions = manager["meta_model"]["actions"]
    except (KeyError, TypeError):
        raise ValueError("state must hold actions_manager.meta_model.actions (PyBandits 8.x)") from None
    if not isinstance(actions, dict) or not actions:
        raise ValueError("state holds no actions")
    if manager.get("delta") is not None:
        raise _Refused("the adaptive window (actions_manager.delta) is not supported here")
    if not isinstance(manager.get("use_soft_rewards", False), bool):
        raise ValueError(
            f"actions_manager.use_soft_rewards must be a bool, got {manager['use_soft_rewards']!r}"
        )
    if manager["meta_model"].get("backbone") is not None:
        raise _Refused("a shared backbone (meta_model.backbone) is not supported here")
    return data


def strategy_of(data: dict) -> Strategy:
    spec = data.get("strategy") or {}
    if spec == {}:
        return ClassicBandit()
    if set(spec) == {"exploit_p"}:
        return BestActionIdentificationBandit(exploit_p=float(spec["exploit_p"]))
    raise _Refused(
        f"strategy {spec!r} is not one this library reads (ClassicBandit, BestActionIdentificationBandit)"
    )


def exploration_of(data: dict, ids: tuple):
    limited = data.get("limited_actions")
    return make_exploration(
        data.get("epsilon"),
        data.get("default_action"),
        ids,
        data.get("default_action_fraction"),
        None if limited is None else list(limited),
        data.get("limited_action_fraction"),
    )


def key_of(data: dict, random_seed: Any):
    seed = random_seed if random_seed is not None else data.get("random_seed")
    return val.key_from_seed(val.random_seed(seed))


def soft_rewards_of(data: dict) -> bool:
    """PyBandits' ``use_soft_rewards`` (the actions manager's flag)."""
    return bool(data["actions_manager"].get("use_soft_rewards", False))


def counts_of(model: dict, aid: Any, soft: bool) -> tuple[Any, Any]:
    """An action's ``n_successes`` and ``n_failures``: whole numbers >= 1, or with soft rewards
    any real numbers >= 1."""
    out = []
    for name in ("n_successes", "n_failures"):
        value = model.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 1
        ):
            raise ValueError(f"action {aid!r} has {name}={value!r}; counts must be finite numbers >= 1")
        if not soft and value != math.floor(value):
            raise ValueError(
                f"action {aid!r} has {name}={value!r}: fractional counts need soft rewards, but "
                "actions_manager.use_soft_rewards is false"
            )
        if math.floor(value) > np.iinfo(np.int32).max:
            raise _Refused(f"action {aid!r} has {name}={value!r}, beyond the int32 counters")
        out.append(value)
    return out[0], out[1]


def stats_of_counts(counts: list[tuple[Any, Any]], soft: bool):
    """The likelihood's counters of per-action ``(n_successes, n_failures)``."""
    s = np.asarray([c[0] for c in counts], np.float64)
    f = np.asarray([c[1] for c in counts], np.float64)
    if not soft:
        return BernoulliStats(jnp.asarray(s.astype(np.int32)), jnp.asarray(f.astype(np.int32)))
    (whole_s, frac_s), (whole_f, frac_f) = _split(s), _split(f)
    return SoftBernoulliStats(
        jnp.asarray(whole_s), jnp.asarray(whole_f), jnp.asarray(frac_s), jnp.asarray(frac_f)
    )


def _split(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts as an int32 whole part and a float32 fraction in [0, 1): a fraction that float32
    rounds up to 1.0 (PyBandits' float64 sums give 1.9999999999999998) carries into the whole
    part, held at the int32 maximum as the counters saturate."""
    whole = np.floor(counts)
    fraction = (counts - whole).astype(np.float32)
    carry = fraction >= 1.0
    top = np.iinfo(np.int32).max
    whole = np.minimum(whole + carry, top).astype(np.int32)
    return whole, np.where(carry | (whole == top), np.float32(0), fraction).astype(np.float32)


def decay_of(actions: dict, ids: tuple) -> float | None:
    """The actions' common ``decay_factor`` (None: no forgetting); one value for all here."""
    for aid in ids:
        value = actions[aid].get("decay_factor")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"action {aid!r} has decay_factor={value!r}; a number in (0, 1] or null")
    values = {actions[aid].get("decay_factor") for aid in ids}
    if len(values) != 1:
        raise _Refused(
            f"the actions' decay_factor values differ ({sorted(map(str, values))}); one for all is supported here"
        )
    (value,) = values
    if value is not None:
        val.check_decay_factor(value)
        value = float(value)
    return value


def _decayed_of(actions: dict, ids: tuple, counts: list[tuple[Any, Any]]) -> DecayedCounts:
    """An sMAB's decayed counts (PyBandits seeds missing ones from the raw counts)."""
    out = []
    for aid, raw in zip(ids, counts):
        pair = []
        for name, seed in zip(("decayed_n_successes", "decayed_n_failures"), raw):
            value = actions[aid].get(name)
            value = seed if value is None else value
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not abs(value) <= float(np.finfo(np.float32).max)  # held in float32 (1e39: inf)
                or value < 1
            ):
                raise ValueError(
                    f"action {aid!r} has {name}={value!r}; decayed counts must be finite numbers >= 1"
                )
            pair.append(float(value))
        out.append(pair)
    arr = np.asarray(out, np.float64)
    dtype = jnp.result_type(float)
    return DecayedCounts(jnp.asarray(arr[:, 0], dtype), jnp.asarray(arr[:, 1], dtype))


def _smab_parts(data: dict) -> tuple[tuple, Any, bool, float | None]:
    """``(ids, state, use_soft_rewards, decay_factor)`` of a PyBandits sMAB state."""
    actions = data["actions_manager"]["meta_model"]["actions"]
    ids = val.action_ids_tuple(list(actions))
    soft = soft_rewards_of(data)
    counts = [counts_of(actions[aid], aid, soft) for aid in ids]
    stats = stats_of_counts(counts, soft)
    decay = decay_of(actions, ids)
    if decay is None:
        return ids, stats, soft, decay
    factor = jnp.full((len(ids),), decay, jnp.result_type(float))
    return ids, ForgettingState(stats, factor, _decayed_of(actions, ids, counts)), soft, decay


# ------------------------------------------------------------------------------------------ cMAB
_SAME = ("activation", "use_residual_connections", "update_kwargs", "calibrate_output_bias")


def _array(params: dict, name: str, aid: Any) -> np.ndarray:
    try:
        arr = np.asarray(params[name], np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"action {aid!r}: a layer parameter lacks a numeric {name!r}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"action {aid!r}: a layer's {name!r} is not finite")
    return arr


def _uniform(values: list[np.ndarray], what: str) -> float:
    flat = np.concatenate([np.ravel(v) for v in values])
    if not np.allclose(flat, flat[0], rtol=1e-6, atol=0):
        raise _Refused(f"{what} differs between weights; a single value is supported here")
    return float(flat[0])


def _prior_of(layers_init: list[dict], aid: Any) -> dict[str, Any]:
    """``dist_params_init``, ``use_layerwise_scaling`` and ``bias_std`` that rebuild PyBandits'
    initial layer parameters (``bnn_layer_params_init``)."""
    mus = [_array(p[k], "mu", aid) for p in layers_init for k in ("weight", "bias")]
    mu = _uniform(mus, f"action {aid!r}: the prior's mu")
    weight_sigmas = [_array(p["weight"], "sigma", aid) for p in layers_init]
    per_layer = [_uniform([s], f"action {aid!r}: a layer's prior sigma") for s in weight_sigmas]
    fan_in = [s.shape[0] for s in weight_sigmas]
    bias = _uniform(
        [_array(p["bias"], "sigma", aid) for p in layers_init], f"action {aid!r}: the bias prior sigma"
    )
    if all(math.isclose(s, per_layer[0], rel_tol=1e-6) for s in per_layer):
        # one sigma for every weight (with a single layer, layerwise scaling looks the same: the
        # weights' sigma and the biases' sigma rebuild the same prior either way)
        sigma, layerwise = per_layer[0], False
    else:
        scaled = [s * math.sqrt(f) for s, f in zip(per_layer, fan_in)]
        if not all(math.isclose(s, scaled[0], rel_tol=1e-5) for s in scaled):
            raise _Refused(
                f"action {aid!r}: the layers' prior sigmas follow neither one value nor layerwise scaling"
            )
        sigma, layerwise = scaled[0], True
    # float32's precision (the state here, and what to_pybandits_state writes): 0.699999988 -> 0.7
    mu, sigma, bias = (float(f"{v:.7g}") for v in (mu, sigma, bias))
    bias_std = None if math.isclose(bias, sigma, rel_tol=1e-6) else bias
    nus = [p[k].get("nu") for p in layers_init for k in ("weight", "bias")]
    out = {
        "dist_params_init": {"mu": mu, "sigma": sigma},
        "use_layerwise_scaling": layerwise,
        "bias_std": bias_std,
    }
    if any(n is not None for n in nus):
        out["dist_type"] = "studentt"
        out["dist_params_init"]["nu"] = _uniform(
            [np.asarray(n, np.float64) for n in nus], f"action {aid!r}: nu"
        )
    else:
        out["dist_type"] = "normal"
    return out


def _cmab_parts(data: dict) -> tuple[tuple, dict, list[tuple[list, list]], Any]:
    """``(ids, cold_start keyword arguments, per action [(weight, bias)] of mu and of sigma,
    counters)`` of a PyBandits CMAB state, every action checked to share the network and settings."""
    actions = data["actions_manager"]["meta_model"]["actions"]
    ids = val.action_ids_tuple(list(actions))
    first = actions[ids[0]]
    kwargs: dict[str, Any] | None = None
    posteriors, counts = [], []
    for aid in ids:
        model = actions[aid]
        if not isinstance(model, dict) or "model_params" not in model:
            raise ValueError(f"action {aid!r} is not a PyBandits Bayesian neural network")
        for name in _SAME:
            if model.get(name) != first.get(name):
                raise _Refused(
                    f"actions {ids[0]!r} and {aid!r} differ in {name}; one setting for all is supported here"
                )
        features = model.get("feature_config") or {}
        if features.get("categorical_features_configs"):
            raise _Refused("categorical features (embeddings) are not supported here yet")
        params = model["model_params"]
        if params.get("embedding_params") is not None:
            raise _Refused("embeddings are not supported here yet")
        layers, layers_init = (
            params.get("bnn_layer_params"),
            params.get("bnn_layer_params_init") or params.get("bnn_layer_params"),
        )
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"action {aid!r} has no bnn_layer_params")
        prior = _prior_of(layers_init, aid)
        widths = [_array(layers[0]["weight"], "mu", aid).shape[0]] + [
            _array(p["weight"], "mu", aid).shape[1] for p in layers
        ]
        if widths[-1] != 1:
            raise _Refused(
                f"action {aid!r} has {widths[-1]} outputs; one (a Bernoulli logit) is supported here"
            )
        update_kwargs = {k: v for k, v in (model.get("update_kwargs") or {}).items() if v is not None}
        if update_kwargs.get("epochs") is not None:
            update_kwargs.pop("num_steps", None)  # PyBandits writes both; epochs takes precedence
        action_kwargs = {
            "n_features": int(widths[0]),
            "hidden_dim_list": [int(w) for w in widths[1:-1]] or None,
            "activation": model.get("activation", "tanh"),
            "use_residual_connections": bool(model.get("use_residual_connections", False)),
            "update_kwargs": update_kwargs,
            "calibrate_output_bias": bool(model.get("calibrate_output_bias", False)),
            **prior,
        }
        if kwargs is None:
            kwargs = action_kwargs
        elif action_kwargs != kwargs:
            raise _Refused(
                f"actions {ids[0]!r} and {aid!r} differ in network or prior; one for all is supported here"
            )
        mu = [(_array(p["weight"], "mu", aid), _array(p["bias"], "mu", aid)) for p in layers]
        sigma = [(_array(p["weight"], "sigma", aid), _array(p["bias"], "sigma", aid)) for p in layers]
        if any((s <= 0).any() for pair in sigma for s in pair):
            raise ValueError(f"action {aid!r} has a sigma that is not > 0")
        posteriors.append((mu, sigma))
        counts.append(counts_of(model, aid, soft_rewards_of(data)))
    kwargs["use_soft_rewards"] = soft_rewards_of(data)
    kwargs["decay_factor"] = decay_of(actions, ids)
    return ids, kwargs, posteriors, stats_of_counts(counts, kwargs["use_soft_rewards"])


def _malformed(parse):
    """``parse`` with a malformed structure (a missing key, a list too short, a non-dict) reported
    as a ValueError naming it, as every other refusal here."""

    def wrapped(data: dict):
        try:
            return parse(data)
        except (KeyError, IndexError, AttributeError, OverflowError) as err:
            raise ValueError(
                f"state is not a PyBandits 8.x state this library reads: {type(err).__name__} {err}"
            ) from None

    wrapped.__doc__ = parse.__doc__
    return wrapped


smab_parts = _malformed(_smab_parts)
cmab_parts = _malformed(_cmab_parts)


def stacked_mlp(template: MLP, per_action: list[list[tuple[np.ndarray, np.ndarray]]]) -> MLP:
    """``template`` (an MLP with a leading action axis) with every layer's weight and bias
    replaced by ``per_action``'s, stacked over actions (shapes must match: checked by the caller)."""
    layers = template.layers
    dtype = layers[0].weight.dtype
    weights = [jnp.asarray(np.stack([a[i][0] for a in per_action]), dtype) for i in range(len(layers))]
    biases = [jnp.asarray(np.stack([a[i][1] for a in per_action]), dtype) for i in range(len(layers))]
    for i, layer in enumerate(layers):
        if weights[i].shape != layer.weight.shape or biases[i].shape != layer.bias.shape:
            raise ValueError(
                f"layer {i} of the state is {weights[i].shape[1:]} / {biases[i].shape[1:]}, the network "
                f"needs {layer.weight.shape[1:]} / {layer.bias.shape[1:]}"
            )
    out = eqx.tree_at(lambda m: [layer.weight for layer in m.layers], template, weights)
    return eqx.tree_at(lambda m: [layer.bias for layer in m.layers], out, biases)


# ------------------------------------------------------------------------------------------ writing
def _pybandits_update_kwargs(update_kwargs: dict) -> dict:
    out = {
        "num_steps": update_kwargs["num_steps"],
        "method": "advi",
        "optimizer_type": update_kwargs["optimizer_type"],
        "optimizer_kwargs": dict(update_kwargs["optimizer_kwargs"]),
        "batch_size": update_kwargs["batch_size"],
        "early_stopping_kwargs": update_kwargs.get("early_stopping_kwargs"),
        "lr_scheduler_type": update_kwargs.get("lr_scheduler_type"),
        "lr_scheduler_kwargs": update_kwargs.get("lr_scheduler_kwargs"),
        "restore_best_svi_state": update_kwargs.get("restore_best_svi_state", False),
        "num_particles": update_kwargs["num_particles"],
        "gradient_clip_norm": update_kwargs["gradient_clip_norm"],
        "kl_annealing_fraction": update_kwargs.get("kl_annealing_fraction"),
        "epochs": update_kwargs.get("epochs"),
    }
    return out


def _layer_dicts(loc: MLP, scale: MLP, a: int, nu: float | None) -> list[dict]:
    out = []
    for ll, sl in zip(loc.layers, scale.layers, strict=True):
        layer = {}
        for name in ("weight", "bias"):
            params = {
                "mu": np.asarray(getattr(ll, name)[a], np.float64).tolist(),
                "sigma": np.asarray(getattr(sl, name)[a], np.float64).tolist(),
            }
            if nu is not None:
                params["nu"] = np.full(np.shape(params["mu"]), nu).tolist()
            layer[name] = params
        out.append(layer)
    return out


def _numbers(values: Any) -> list:
    """Counts as JSON numbers: ints for whole counts, floats (shortest repr of float64) else."""
    arr = np.asarray(values)
    return arr.tolist() if arr.dtype.kind in "iu" else [float(v) for v in arr.astype(np.float64)]


def to_pybandits_state(mab: Any) -> tuple[str, str]:
    """``(class_name, json)`` in PyBandits 8.4.1's ``get_state()`` form (see the module docstring)."""
    if not getattr(mab, "_pybandits_exportable", True):
        raise ValueError(
            f"a {type(mab).__name__} cannot be written as a PyBandits state yet (only CmabBernoulli and "
            "SmabBernoulli models are)"
        )
    strategy = mab.strategy
    if type(strategy) is ClassicBandit:
        strategy_json: dict = {}
    elif type(strategy) is BestActionIdentificationBandit:
        strategy_json = {"exploit_p": float(strategy.exploit_p)}
    else:
        raise ValueError(f"strategy {type(strategy).__name__} cannot be expressed in PyBandits' state")
    exploration = mab.exploration
    top = {
        "epsilon": None if exploration is None else exploration.epsilon,
        "default_action": None if exploration is None else exploration.default_action,
        "default_action_fraction": None if exploration is None else exploration.default_action_fraction,
        "limited_actions": None
        if exploration is None or exploration.limited_actions is None
        else [a for a in mab.action_ids if a in exploration.limited_actions],
        "limited_action_fraction": None if exploration is None else exploration.limited_action_fraction,
        "version": PYBANDITS_VERSION,
        "random_seed": None,
    }
    for aid in mab.action_ids:
        if not isinstance(aid, str):
            raise ValueError(f"PyBandits' action ids are strings; this model has {aid!r}")
    state, _ = mab._snapshot()
    decay = mab.decay_factor
    decayed = state.decayed if isinstance(state, ForgettingState) else None
    state = state.base if isinstance(state, ForgettingState) else state
    n_s, n_f = (_numbers(c) for c in host_counts(stats_of(state)))
    if mab._kind == "cmab":  # the object-API base's hook: no import of the classes here
        config = mab.config
        if not isinstance(config, CmabConfig):
            raise ValueError(f"policy {mab.policy_name!r} cannot be expressed in PyBandits (its BNN only)")
        if config.init_scale not in (None, DEFAULT_INIT_SCALE):
            raise ValueError(
                "update_kwargs['init_scale'] has no PyBandits counterpart (PyBandits starts each fit "
                f"its own way); build the model with the default {DEFAULT_INIT_SCALE} or None"
            )
        nu = config.nu if config.dist_type == "studentt" else None
        cold = type(mab)._cold_state(config, 1)
        cold = cold.base if isinstance(cold, ForgettingState) else cold
        actions = {}
        for a, aid in enumerate(mab.action_ids):
            actions[aid] = {
                "activation": config.activation,
                "n_successes": n_s[a],
                "n_failures": n_f[a],
                "decay_factor": decay,
                "model_params": {
                    "bnn_layer_params": _layer_dicts(state.loc, state.scale, a, nu),
                    "bnn_layer_params_init": _layer_dicts(cold.loc, cold.scale, 0, nu),
                    "embedding_params": None,
                    "embedding_params_init": None,
                },
                "update_kwargs": _pybandits_update_kwargs(config.update_kwargs),
                "use_residual_connections": config.use_residual_connections,
                "feature_config": {"n_features": config.n_features, "categorical_features_configs": []},
                "random_seed": None,
                "calibrate_output_bias": config.calibrate_output_bias,
                "bias_calibrated": bool(config.calibrate_output_bias and (n_s[a], n_f[a]) != (1, 1)),
            }
        meta = {"actions": actions, "backbone": None, "random_seed": None}
        name = "CmabBernoulli"
    else:
        decayed_s, decayed_f = (None, None) if decayed is None else (_numbers(c) for c in decayed)
        actions = {
            aid: {
                "n_successes": n_s[a],
                "n_failures": n_f[a],
                "decay_factor": decay,
                "decayed_n_successes": None if decayed is None else decayed_s[a],
                "decayed_n_failures": None if decayed is None else decayed_f[a],
            }
            for a, aid in enumerate(mab.action_ids)
        }
        meta = {"actions": actions}
        name = "SmabBernoulli"
    data = {
        "actions_manager": {
            "meta_model": meta,
            "delta": None,
            "use_soft_rewards": mab.use_soft_rewards,
            "actions_with_change": [],
        },
        "strategy": strategy_json,
        **top,
    }
    return name, json.dumps(data)
