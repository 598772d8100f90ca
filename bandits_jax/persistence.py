"""Versioned, pickle-free persistence of bandit models (``save`` / ``load``, ``get_state`` /
``from_state`` on :class:`~bandits_jax.cmab.CmabBernoulli` and
:class:`~bandits_jax.smab.SmabBernoulli`), class-agnostic: it calls the object API's hooks
(:class:`bandits_jax._bandit.Bandit`) and imports no model class.

A saved model is data: a JSON header and the arrays of its state, bit for bit. Nothing is pickled
and nothing but the library's own classes is ever constructed from a file.

The header holds ``format`` and ``format_version`` (this module writes version
:data:`FORMAT_VERSION` and reads any version up to it), ``library_version``, ``class``, the
``config`` (the :class:`~bandits_jax.config.CmabConfig` fields, CMAB only), the ``action_ids`` in
order (str or int), the ``counts`` (``n_successes`` / ``n_failures``, for people reading the
header), the ``strategy`` (class name and numeric fields), the PRNG key's implementation, a
manifest of the ``arrays`` (name, dtype, shape) and a ``sha256`` of the header and every array.
A model with exploration settings adds ``exploration`` (``epsilon``, ``default_action``,
``default_action_fraction``, ``limited_actions``, ``limited_action_fraction``) and is
written as version 3, which older readers refuse rather than drop the settings; a model with soft
rewards or forgetting (its config says so, its state holds fractional or decayed counts) as
version 4; a model with Gaussian rewards (``CmabGaussian``: its stats hold NaN for a
standardisation or noise prior not fitted yet) or reward vectors (``n_objectives``) as version 5;
any other model as version 2, as before.

Two containers carry it:

- a file (``save`` / ``load``): an uncompressed ``.npz`` archive with the member ``header`` (the
  UTF-8 JSON as ``uint8``) and ``arr_0``, ``arr_1``, ... in manifest order; written to a temporary
  file in the same folder, synced, then renamed over the target, so a crash never leaves a half
  written file behind; read with ``allow_pickle=False``;
- a string (``get_state`` / ``from_state``): one JSON object, the header plus ``data``, each
  array's raw bytes in base64.

Loading checks the format, the version, the class and the checksum before building anything, and
builds the model only when every part is valid: a truncated or corrupt input raises
:class:`ModelFormatError` (a ``ValueError``) naming what is wrong, and loads nothing. The content
is not trusted either, as a hand-edited input can carry a valid checksum:

- sizes before data: the manifest must match, name for name and shape for shape, the model that
  the header's config describes (computed abstractly with ``jax.eval_shape``, so a config of any
  size allocates nothing); a file member whose declared size exceeds what the manifest implies
  (plus a small ``.npy`` preamble), a header member above :data:`_MAX_HEADER_BYTES` and a base64
  string of another length than its array's are refused before anything is inflated or decoded;
- values before building: every float array finite, every posterior ``scale`` > 0, every count
  >= 1, action ids unique str or int, the key data of the shape and dtype of its ``key_impl``.

Saving writes to ``.{name}.{pid}.{random}.bandits-jax-tmp`` next to the target. A save first
removes the temporaries of the same target left by writers that no longer run (killed mid-save);
a live writer's temporary is never touched, so concurrent saves to one path all succeed. Saving
through a symbolic link writes the link's target and keeps the link.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import numbers
import os
import re
import tempfile
import zipfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import strategy as strategy_module
from bandits_jax.policies.base import stats_of

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFormatError", "from_state", "get_state", "load", "save"]

FORMAT = "bandits_jax.model"
FORMAT_VERSION = 5
# what a model without version-3 settings (``exploration``) is written as
_PLAIN_VERSION = 2
# Version 1 (bandits_jax before the policy contract) kept a CMAB's counters at the top of its state;
# version 2 keeps them under the likelihood's ``stats``. A v1 file's arrays are read under the names
# its class maps them to (``cls._v1_names``); its checksum covers the header as written.
_ZIP_MAGIC = b"PK\x03\x04"
_KEY_ARRAY = "key"
_MAX_HEADER_BYTES = 16 << 20  # the JSON header of a file; a real one is a few kB per 100 actions
_NPY_PREAMBLE_BYTES = 4096  # what a .npy member may hold besides its data (magic and header)
_TMP_SUFFIX = ".bandits-jax-tmp"
_TMP_MIDDLE = re.compile(r"([0-9]+)\.[a-z0-9_]+")  # "{pid}.{random}", random as tempfile makes it


class ModelFormatError(ValueError):
    """A saved model cannot be read: corrupt, truncated, of another class or of a newer format."""


# ---------------------------------------------------------------------------------- public API
def save(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring for the format)."""
    target = _as_path(path)
    header, arrays = _encode(model)
    buffer = io.BytesIO()  # serialise fully first: a refused model never touches the disk
    members = {"header": np.frombuffer(_json_bytes(header), np.uint8)}
    members.update({f"arr_{i}": a for i, a in enumerate(arrays)})
    np.savez(buffer, **members)
    _atomic_write(target, buffer.getvalue())


def load(cls: type, path: str | os.PathLike):
    """Read a model of class ``cls`` written by :func:`save`."""
    target = _as_path(path)
    with open(target, "rb") as f:
        data = f.read()
    with _reading(repr(target)):
        if not data.startswith(_ZIP_MAGIC):
            raise ModelFormatError("not a bandits_jax model file (no .npz archive)")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _members(archive)
            if "header" not in members:
                raise ModelFormatError("the archive has no 'header'")
            header = _parse_header(_read_member(archive, members["header"], None).tobytes())
            _check_identity(cls, header)
            plan = _plan(cls, header)
            expected = {"header"} | {f"arr_{i}" for i in range(len(plan.specs))}
            if set(members) != expected:
                raise ModelFormatError(f"the archive holds {sorted(members)}, expected {sorted(expected)}")
            arrays = [_read_member(archive, members[f"arr_{i}"], s) for i, s in enumerate(plan.specs)]
        return _decode(cls, header, arrays, plan)


def get_state(model: Any) -> tuple[str, str]:
    """``(class_name, json_string)``: the whole model as one JSON string (PyBandits' form)."""
    header, arrays = _encode(model)
    header["data"] = [base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii") for a in arrays]
    return type(model).__name__, _json_bytes(header).decode("utf-8")


def from_state(cls: type, state: str | bytes | tuple[str, str]):
    """A model of class ``cls`` from :func:`get_state`'s JSON string (or its whole tuple)."""
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], str):
        if state[0] != cls.__name__:
            raise ModelFormatError(
                f"state holds a {state[0]}, not a {cls.__name__}; use {state[0]}.from_state"
            )
        state = state[1]
    if not isinstance(state, (str, bytes, bytearray)):
        raise TypeError(f"state must be the JSON string from get_state(), got {type(state).__name__}")
    with _reading("state"):
        header = _parse_header(state)
        _check_identity(cls, header)
        data = header.pop("data", None)
        plan = _plan(cls, header)
        if not isinstance(data, list) or len(data) != len(plan.specs):
            raise ModelFormatError("'data' must list one base64 string per array of the manifest")
        arrays = [_from_base64(spec, text) for spec, text in zip(plan.specs, data)]
        return _decode(cls, header, arrays, plan)


@contextlib.contextmanager
def _reading(source: str):
    """Every failure while reading untrusted data becomes one ModelFormatError naming ``source``."""
    try:
        yield
    except ModelFormatError as err:
        raise ModelFormatError(f"cannot load {source}: {err}") from None
    except Exception as err:  # whatever damaged data raises: zip, npy, JSON, base64, shape errors
        raise ModelFormatError(
            f"cannot load {source}: it is truncated or corrupt ({type(err).__name__}: {err})"
        ) from err


# ---------------------------------------------------------------------------------- encode
def _encode(model) -> tuple[dict, list[np.ndarray]]:
    """The header (with its checksum) and the arrays of ``model``."""
    from bandits_jax import __version__  # the package is initialised by the time anyone saves

    # The object API's hooks (bandits_jax._bandit.Bandit): this module knows no model class.
    if not callable(getattr(model, "_config_json", None)) or not callable(getattr(model, "_snapshot", None)):
        raise TypeError(
            f"model must be a bandits_jax model such as CmabBernoulli, got {type(model).__name__}"
        )
    config = model._config_json()
    if config is not None:
        config = _config_to_json(config)
    state, key = model._snapshot()  # one consistent (state, key) pair under concurrent calls
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    names = [jax.tree_util.keystr(path) for path, _ in leaves]
    arrays = [np.asarray(leaf) for _, leaf in leaves]
    arrays.append(np.asarray(jax.random.key_data(key)))
    names.append(_KEY_ARRAY)
    header = {
        "format": FORMAT,
        "format_version": _PLAIN_VERSION,
        "library_version": __version__,
        "class": type(model).__name__,
        "config": config,
        "action_ids": _action_ids_to_json(model.action_ids),
        "counts": {
            "n_successes": np.asarray(stats_of(state).n_successes).tolist(),
            "n_failures": np.asarray(stats_of(state).n_failures).tolist(),
        },
        "strategy": _strategy_to_json(model.strategy),
        "key_impl": str(jax.random.key_impl(key)),
        "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in zip(names, arrays)],
    }
    exploration = getattr(model, "exploration", None)
    if exploration is not None:
        # only a model with these settings needs version 3: the others stay readable by version 2
        header["format_version"] = 3
        limited = exploration.limited_actions
        header["exploration"] = {
            "epsilon": exploration.epsilon,
            "default_action": exploration.default_action,
            "default_action_fraction": exploration.default_action_fraction,
            # in the model's action order, so the header is deterministic
            "limited_actions": None if limited is None else [a for a in model.action_ids if a in limited],
            "limited_action_fraction": exploration.limited_action_fraction,
        }
    if getattr(model, "use_soft_rewards", False) or getattr(model, "decay_factor", None) is not None:
        header["format_version"] = 4  # older readers would not know the config's fields
    if (config or {}).get("reward_type", "bernoulli") != "bernoulli" or (config or {}).get("n_objectives"):
        # nor the Gaussian stats, whose NaN mean "not fitted yet", nor multi-objective counters
        header["format_version"] = 5
    header["sha256"] = _digest(header, arrays)
    return header, arrays


def _action_ids_to_json(action_ids: tuple) -> list:
    out = []
    for aid in action_ids:
        if isinstance(aid, str):
            out.append(aid)
        elif isinstance(aid, numbers.Integral) and not isinstance(aid, bool):
            out.append(int(aid))
        else:
            raise TypeError(f"action_ids must be str or int to be saved, got {aid!r} ({type(aid).__name__})")
    return out


def _config_to_json(config: dict) -> dict:
    out = dict(config)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"config holds a value that cannot be saved as JSON: {err}") from None
    return out


def _strategy_to_json(strategy) -> dict:
    name = strategy_module.strategy_name(type(strategy))
    if name is None:
        raise TypeError(
            f"strategy {type(strategy).__qualname__} must be registered to be saved: decorate the class "
            "with bandits_jax.strategy.register_strategy"
        )
    fields = {}
    for field in dataclasses.fields(strategy):
        value = getattr(strategy, field.name)
        if isinstance(value, (jax.Array, np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
                raise TypeError(
                    f"strategy field {field.name!r} must hold finite numbers to be saved, got {value!r}"
                )
            if arr.ndim == 0:
                value = arr.item()
            else:
                value = {"array": arr.tolist(), "dtype": arr.dtype.str, "shape": list(arr.shape)}
        elif isinstance(value, float) and not math.isfinite(value):
            raise TypeError(f"strategy field {field.name!r} must be finite to be saved, got {value!r}")
        elif not isinstance(value, (bool, int, float, str)):
            raise TypeError(
                f"strategy field {field.name!r} must be a number, a string or a numeric array to be "
                f"saved, got {value!r}"
            )
        fields[field.name] = value
    return {"class": name, "fields": fields}


def _digest(header: dict, arrays: list[np.ndarray]) -> str:
    body = {k: v for k, v in header.items() if k not in ("sha256", "data")}
    h = hashlib.sha256(_json_bytes(body))
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------- decode
def _parse_header(raw: str | bytes) -> dict:
    header = json.loads(raw, parse_constant=_refuse_constant)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFormatError(f"not a bandits_jax model (no format {FORMAT!r} in the header)")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"format_version must be a positive int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"format_version {version} (written by bandits_jax {header.get('library_version')!r}) is "
            f"newer than this bandits_jax reads (up to {FORMAT_VERSION}); upgrade bandits_jax to load it"
        )
    return header


def _refuse_constant(name: str):
    raise ModelFormatError(f"the header holds {name}, which bandits_jax never writes")


def _check_identity(cls: type, header: dict) -> None:
    if header.get("class") != cls.__name__:
        raise ModelFormatError(
            f"it holds a {header.get('class')!r}, not a {cls.__name__!r}; "
            f"load it with {header.get('class')}'s own method"
        )
    if not isinstance(header.get("arrays"), list):
        raise ModelFormatError("the header has no manifest of arrays")


class _Spec(NamedTuple):
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)


class _Plan(NamedTuple):
    """What the arrays must be, known from the header alone."""

    specs: list[_Spec]
    action_ids: tuple
    config: Any
    treedef: Any
    scales: frozenset[int]  # indices of the posterior scale leaves
    counts: frozenset[int]  # indices of the likelihood's counters


def _plan(cls: type, header: dict) -> _Plan:
    """Check the manifest against the model that the header describes, before reading any array.

    The model's skeleton comes from ``jax.eval_shape``: a config of any size allocates nothing.
    """
    specs = [_spec(entry) for entry in header["arrays"]]
    if header["format_version"] == 1:
        specs = [spec._replace(name=cls._v1_names.get(spec.name, spec.name)) for spec in specs]
    action_ids = _action_ids_from_json(header.get("action_ids"))
    try:
        config = cls._config_from_json(header.get("config"))
    except ModelFormatError:
        raise
    except (TypeError, ValueError) as err:
        raise ModelFormatError(f"its config is not valid: {err}") from None
    skeleton = jax.eval_shape(functools.partial(cls._cold_state, config, len(action_ids)))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(skeleton)
    expected = [jax.tree_util.keystr(p) for p, _ in leaves] + [_KEY_ARRAY]
    if [spec.name for spec in specs] != expected:
        raise ModelFormatError(f"the arrays {[s.name for s in specs]} do not match the model's {expected}")
    for spec, (_, leaf) in zip(specs, leaves):
        if spec.shape != tuple(leaf.shape):
            raise ModelFormatError(
                f"array {spec.name!r} has shape {list(spec.shape)} in the manifest; the model that "
                f"its config describes needs {list(leaf.shape)}"
            )
        if spec.dtype.kind != np.dtype(leaf.dtype).kind:
            raise ModelFormatError(f"array {spec.name!r} is {spec.dtype}, the model needs {leaf.dtype}")
        if jax.dtypes.canonicalize_dtype(spec.dtype) != spec.dtype:
            raise ModelFormatError(
                f"array {spec.name!r} was saved as {spec.dtype}, which JAX cannot hold exactly here; "
                "enable it first with jax.config.update('jax_enable_x64', True)"
            )
    key_impl = header.get("key_impl")
    try:
        key = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=key_impl)))
    except (TypeError, ValueError, KeyError):
        raise ModelFormatError(f"key_impl {key_impl!r} is no PRNG implementation of this JAX") from None
    if (specs[-1].dtype, specs[-1].shape) != (np.dtype(key.dtype), tuple(key.shape)):
        raise ModelFormatError(
            f"the key data is {specs[-1].dtype}{list(specs[-1].shape)}, key_impl {key_impl!r} "
            f"needs {np.dtype(key.dtype)}{list(key.shape)}"
        )
    scales = frozenset(i for i, (p, _) in enumerate(leaves) if getattr(p[0], "name", None) == "scale")
    counts = frozenset(i for i, (p, _) in enumerate(leaves) if getattr(p[-1], "name", None) in _COUNTERS)
    return _Plan(specs, action_ids, config, treedef, scales, counts)


def _spec(entry) -> _Spec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ModelFormatError(f"manifest entries must name their array, got {entry!r}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ModelFormatError(f"array {entry['name']!r} has no valid shape in the manifest: {shape!r}")
    if not isinstance(entry.get("dtype"), str):
        raise ModelFormatError(f"array {entry['name']!r} has no dtype in the manifest")
    return _Spec(entry["name"], _dtype(entry["dtype"]), tuple(shape))


def _action_ids_from_json(ids) -> tuple:
    if not isinstance(ids, list) or not ids:
        raise ModelFormatError(f"action_ids must be a non-empty list, got {ids!r}")
    for aid in ids:
        if not isinstance(aid, str) and (isinstance(aid, bool) or not isinstance(aid, int)):
            raise ModelFormatError(f"action_ids must be str or int, got {aid!r}")
    if len(set(ids)) != len(ids):
        raise ModelFormatError("action_ids must be unique and non-empty")
    return tuple(ids)


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    members = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise ModelFormatError(f"the archive holds {name!r} twice")
        members[name] = info
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec: _Spec | None) -> np.ndarray:
    """One ``.npy`` member (``spec=None``: the header), sizes checked before a byte is inflated."""
    name = repr(info.filename.removesuffix(".npy"))
    if spec is not None:
        name += f" ({spec.name})"
    limit = _MAX_HEADER_BYTES if spec is None else spec.nbytes
    if info.file_size > limit + _NPY_PREAMBLE_BYTES:
        raise ModelFormatError(
            f"member {name} declares {info.file_size} bytes, more than the {limit + _NPY_PREAMBLE_BYTES} "
            f"allowed for {'a header' if spec is None else 'its manifest entry'}"
        )
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ModelFormatError(f"member {name} is .npy version {version}, not 1.0 or 2.0")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran_order, dtype = read_header(f, max_header_size=_NPY_PREAMBLE_BYTES)
        if spec is None:  # the header: JSON bytes, a length that only the member itself tells
            if dtype != np.uint8 or len(shape) != 1 or shape[0] > limit:
                raise ModelFormatError(f"member {name} holds {dtype}{list(shape)}, not up to {limit} bytes")
            spec = _Spec(name, dtype, tuple(shape))
        elif (dtype, tuple(shape)) != (spec.dtype, spec.shape):
            raise ModelFormatError(
                f"member {name} holds {dtype}{list(shape)}, the manifest says {spec.dtype}{list(spec.shape)}"
            )
        raw = f.read(spec.nbytes)
        if len(raw) != spec.nbytes or f.read(1):
            raise ModelFormatError(f"member {name} does not hold exactly {spec.nbytes} bytes of data")
    return np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran_order else "C").copy()


def _from_base64(spec: _Spec, text) -> np.ndarray:
    """One array of a state string, its length checked before decoding."""
    length = 4 * -(-spec.nbytes // 3)
    if not isinstance(text, str) or len(text) != length:
        got = f"{len(text)} characters" if isinstance(text, str) else type(text).__name__
        raise ModelFormatError(
            f"array {spec.name!r} must be {length} characters of base64 ({spec.nbytes} bytes), got {got}"
        )
    raw = base64.b64decode(text, validate=True)
    if len(raw) != spec.nbytes:
        raise ModelFormatError(f"array {spec.name!r} decodes to {len(raw)} bytes, not {spec.nbytes}")
    return np.frombuffer(raw, spec.dtype).reshape(spec.shape).copy()


# The likelihood's counters (other integer leaves, such as a replay buffer's write position, may be 0).
_COUNTERS = ("n_successes", "n_failures")


# float leaves with a range: soft counts' fractions, decayed counts, the forgetting factor
_RANGES = {
    "frac_successes": (0.0, 1.0, False, "fractions of counts outside [0, 1)"),
    "frac_failures": (0.0, 1.0, False, "fractions of counts outside [0, 1)"),
    "decayed_n_successes": (1.0, np.inf, True, "decayed counts that are not >= 1"),
    "decayed_n_failures": (1.0, np.inf, True, "decayed counts that are not >= 1"),
    "decay_factor": (np.finfo(np.float32).tiny, 1.0, True, "a decay_factor outside (0, 1]"),
    "reward_scale": (np.finfo(np.float32).tiny, np.inf, True, "a reward_scale that is not > 0"),
    "noise_sigma": (np.finfo(np.float32).tiny, np.inf, True, "a noise_sigma that is not > 0"),
    "noise_scale": (np.finfo(np.float32).tiny, np.inf, True, "a noise posterior scale that is not > 0"),
    "n_observations": (0, np.inf, True, "observation counts that are not >= 0"),
}
# float leaves (a Gaussian's stats) where NaN means "not fitted yet"; infinities are still refused
_UNSET_IS_NAN = frozenset({"reward_loc", "reward_scale", "noise_sigma", "noise_loc"})


def _check_values(plan: _Plan, arrays: list[np.ndarray]) -> None:
    """Finite floats, scales > 0, counts >= 1 (they start at 1 and only grow; a Beta(0, b) draw
    would be NaN): what a hand edit with a new checksum may break."""
    for i, (spec, a) in enumerate(zip(plan.specs[:-1], arrays)):
        leaf = spec.name.rsplit(".", 1)[-1]
        if leaf in _UNSET_IS_NAN:
            if np.isinf(a).any():
                raise ModelFormatError(f"array {spec.name!r} holds infinite values")
            a = a[~np.isnan(a)]  # the range below applies to the values that are set
        if a.dtype.kind == "f":
            if not np.isfinite(a).all():
                raise ModelFormatError(f"array {spec.name!r} holds values that are not finite")
            if i in plan.scales and not (a > 0).all():
                raise ModelFormatError(f"array {spec.name!r} holds posterior scales that are not > 0")
        elif i in plan.counts and not (a >= 1).all():
            raise ModelFormatError(f"array {spec.name!r} holds counts that are not >= 1")
        if leaf in _RANGES:
            low, high, closed, what = _RANGES[leaf]
            if not ((a >= low) & ((a <= high) if closed else (a < high))).all():
                raise ModelFormatError(f"array {spec.name!r} holds {what}")


def _decode(cls: type, header: dict, arrays: list[np.ndarray], plan: _Plan):
    """Build the model only after every part has been checked."""
    for spec, a in zip(plan.specs, arrays, strict=True):
        if (a.dtype, a.shape) != (spec.dtype, spec.shape):
            raise ModelFormatError(
                f"array {spec.name!r} is {a.dtype}{list(a.shape)}, the manifest says {spec}"
            )
    if _digest(header, arrays) != header.get("sha256"):
        raise ModelFormatError("checksum mismatch: the data is corrupt")
    _check_values(plan, arrays)
    names = [spec.name.rsplit(".", 1)[-1] for spec in plan.specs]
    if header.get("counts") != {
        "n_successes": arrays[names.index("n_successes")].tolist(),
        "n_failures": arrays[names.index("n_failures")].tolist(),
    }:
        raise ModelFormatError("the counts in the header do not match the arrays")
    strategy = _strategy_from_json(header["strategy"])
    exploration = _exploration_from_json(header.get("exploration"), plan.action_ids)
    state = jax.tree_util.tree_unflatten(plan.treedef, [jnp.asarray(a) for a in arrays[:-1]])
    key = jax.random.wrap_key_data(jnp.asarray(arrays[-1]), impl=header["key_impl"])
    return cls._build(plan.action_ids, plan.config, state, strategy, key, exploration)


def _exploration_from_json(spec: Any, action_ids: tuple):
    if spec is None:
        return None
    from bandits_jax._object import make_exploration

    names = (
        "epsilon",
        "default_action",
        "default_action_fraction",
        "limited_actions",
        "limited_action_fraction",
    )
    if not isinstance(spec, dict) or set(spec) != set(names):
        raise ModelFormatError(f"exploration must hold exactly {list(names)}, got {spec!r}")
    try:
        exploration = make_exploration(
            spec["epsilon"], spec["default_action"], action_ids, *(spec[k] for k in names[2:])
        )
    except (TypeError, ValueError) as err:
        raise ModelFormatError(f"exploration: {err}") from None
    if exploration is None:
        raise ModelFormatError(f"exploration must set epsilon or limited_actions, got {spec!r}")
    return exploration


def _strategy_from_json(spec: dict):
    if not isinstance(spec, dict) or not isinstance(spec.get("fields"), dict):
        raise ModelFormatError(f"strategy must hold class and fields, got {spec!r}")
    name = spec.get("class")
    cls = strategy_module.registered_strategies().get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFormatError(
            f"unknown strategy {spec.get('class')!r}: register its class with "
            "bandits_jax.strategy.register_strategy before loading"
        )
    fields = {}
    for name, value in spec["fields"].items():
        if isinstance(value, dict):  # a numeric array
            try:
                dtype = _dtype(value["dtype"])
                arr = np.asarray(value["array"], dtype=dtype)
                ok = arr.shape == tuple(value["shape"]) and dtype.kind in "biuf"
            except (KeyError, TypeError, ValueError) as err:
                raise ModelFormatError(f"strategy field {name!r} is not a valid array: {err}") from None
            if not ok:
                raise ModelFormatError(f"strategy field {name!r} does not match its dtype and shape")
            value = jnp.asarray(arr)
        fields[name] = value
    try:
        return cls(**fields)
    except (TypeError, ValueError) as err:
        raise ModelFormatError(f"strategy {spec['class']!r} cannot be built from its fields: {err}") from None


def _dtype(text: str) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.kind not in "biuf" or not dtype.isnative:
        raise ModelFormatError(f"arrays must be numeric in this machine's byte order, got dtype {text!r}")
    return dtype


# ---------------------------------------------------------------------------------- files
def _as_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the target's folder, sync it, then rename it over ``path``:
    a reader sees the old file or the new one, never a part of either. A symbolic link is
    followed (its target is written, the link stays); the temporaries that killed writers left
    next to the target are removed first."""
    path = os.path.realpath(path)
    folder, base = os.path.split(path)
    _remove_stale_temporaries(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0o600); keep the mode of the file we replace, if any
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Remove ``.{base}.{pid}.{random}.bandits-jax-tmp`` files whose writer no longer runs.

    Only this target's temporaries (``{pid}.{random}`` holds exactly one dot, so another target's
    never matches) and only those of dead processes: a concurrent writer keeps its own.
    """
    prefix = f".{base}."
    try:
        names = os.listdir(folder)
    except OSError:
        return  # the save itself reports a missing or unreadable folder
    for name in names:
        if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
            continue
        match = _TMP_MIDDLE.fullmatch(name[len(prefix) : -len(_TMP_SUFFIX)])
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (when unsure: yes, so its file is kept)."""
    if os.name != "posix" or pid <= 0:
        return True  # on Windows os.kill would terminate the process, not probe it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True  # PermissionError: another user's live process
    return True


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
