"""Versioned, pickle-free persistence of bandit models (``save`` / ``load``, ``get_state`` /
``from_state`` on :class:`~bandits_jax.cmab.CmabBernoulli` and
:class:`~bandits_jax.smab.SmabBernoulli`).

A saved model is data: a JSON header and the arrays of its state, bit for bit. Nothing is pickled
and nothing but the library's own classes is ever constructed from a file.

The header holds ``format`` and ``format_version`` (this module writes version
:data:`FORMAT_VERSION` and reads any version up to it), ``library_version``, ``class``, the
``config`` (the :class:`~bandits_jax.config.CmabConfig` fields, CMAB only), the ``action_ids`` in
order (str or int), the ``counts`` (``n_successes`` / ``n_failures``, for people reading the
header), the ``strategy`` (class name and numeric fields), the PRNG key's implementation, a
manifest of the ``arrays`` (name, dtype, shape) and a ``sha256`` of the header and every array.

Two containers carry it:

- a file (``save`` / ``load``): an uncompressed ``.npz`` archive with the member ``header`` (the
  UTF-8 JSON as ``uint8``) and ``arr_0``, ``arr_1``, ... in manifest order; written to a temporary
  file in the same folder, synced, then renamed over the target, so a crash never leaves a half
  written file behind; read with ``allow_pickle=False``;
- a string (``get_state`` / ``from_state``): one JSON object, the header plus ``data``, each
  array's raw bytes in base64.

Loading checks the format, the version, the class and the checksum before building anything, and
builds the model only when every part is valid: a truncated or corrupt input raises
:class:`ModelFormatError` (a ``ValueError``) and loads nothing.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import numbers
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import core, smab
from bandits_jax import strategy as strategy_module
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.config import CmabConfig
from bandits_jax.smab import SmabBernoulli

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFormatError", "from_state", "get_state", "load", "save"]

FORMAT = "bandits_jax.model"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
_KEY_ARRAY = "key"


class ModelFormatError(ValueError):
    """A saved model cannot be read: corrupt, truncated, of another class or of a newer format."""


# ---------------------------------------------------------------------------------- public API
def save(model: CmabBernoulli | SmabBernoulli, path: str | os.PathLike) -> None:
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
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = set(archive.files)
            if "header" not in names:
                raise ModelFormatError("the archive has no 'header'")
            header = _parse_header(archive["header"].tobytes())
            _check_identity(cls, header)
            expected = {"header"} | {f"arr_{i}" for i in range(len(header["arrays"]))}
            if names != expected:
                raise ModelFormatError(f"the archive holds {sorted(names)}, expected {sorted(expected)}")
            arrays = [archive[f"arr_{i}"] for i in range(len(header["arrays"]))]
        return _decode(cls, header, arrays)


def get_state(model: CmabBernoulli | SmabBernoulli) -> tuple[str, str]:
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
        if not isinstance(data, list) or len(data) != len(header["arrays"]):
            raise ModelFormatError("'data' must list one base64 string per array of the manifest")
        arrays = []
        for spec, text in zip(header["arrays"], data):
            raw = base64.b64decode(text, validate=True)
            dtype = _dtype(spec["dtype"])
            arrays.append(np.frombuffer(raw, dtype).reshape(spec["shape"]).copy())
        return _decode(cls, header, arrays)


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

    if isinstance(model, CmabBernoulli):
        config = _config_to_json(model.config)
    elif isinstance(model, SmabBernoulli):
        config = None
    else:
        raise TypeError(f"model must be a CmabBernoulli or SmabBernoulli, got {type(model).__name__}")
    leaves, _ = jax.tree_util.tree_flatten_with_path(model.state)
    names = [jax.tree_util.keystr(path) for path, _ in leaves]
    arrays = [np.asarray(leaf) for _, leaf in leaves]
    key = model._key
    arrays.append(np.asarray(jax.random.key_data(key)))
    names.append(_KEY_ARRAY)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "class": type(model).__name__,
        "config": config,
        "action_ids": _action_ids_to_json(model.action_ids),
        "counts": {
            "n_successes": np.asarray(model.state.n_successes).tolist(),
            "n_failures": np.asarray(model.state.n_failures).tolist(),
        },
        "strategy": _strategy_to_json(model.strategy),
        "key_impl": str(jax.random.key_impl(key)),
        "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in zip(names, arrays)],
    }
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


def _config_to_json(config: CmabConfig) -> dict:
    out = dataclasses.asdict(config)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"config holds a value that cannot be saved as JSON: {err}") from None
    return out


def _strategy_to_json(strategy) -> dict:
    name = type(strategy).__name__
    if getattr(strategy_module, name, None) is not type(strategy):
        raise TypeError(
            f"strategy must be one of bandits_jax.strategy's classes to be saved, got {type(strategy)!r}"
        )
    fields = {}
    for field in dataclasses.fields(strategy):
        value = getattr(strategy, field.name)
        if isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0:
            value = np.asarray(value).item()
        if not isinstance(value, (bool, int, float)):
            raise TypeError(f"strategy field {field.name!r} must be a number to be saved, got {value!r}")
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
    header = json.loads(raw)
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


def _check_identity(cls: type, header: dict) -> None:
    if header.get("class") != cls.__name__:
        raise ModelFormatError(
            f"it holds a {header.get('class')!r}, not a {cls.__name__!r}; "
            f"load it with {header.get('class')}'s own method"
        )
    if not isinstance(header.get("arrays"), list):
        raise ModelFormatError("the header has no manifest of arrays")


def _decode(cls: type, header: dict, arrays: list[np.ndarray]):
    """Build the model only after every part has been checked."""
    manifest = header["arrays"]
    for spec, a in zip(manifest, arrays, strict=True):
        if a.dtype != _dtype(spec["dtype"]) or list(a.shape) != list(spec["shape"]):
            raise ModelFormatError(f"array {spec['name']!r} is {a.dtype}{list(a.shape)}, header says {spec}")
    if _digest(header, arrays) != header.get("sha256"):
        raise ModelFormatError("checksum mismatch: the data is corrupt")

    action_ids = tuple(header["action_ids"])
    if not action_ids or len(set(action_ids)) != len(action_ids):
        raise ModelFormatError("action_ids must be unique and non-empty")
    if issubclass(cls, CmabBernoulli):
        config = _config_from_json(header["config"])
        skeleton = core.init(config, len(action_ids))
    else:
        config = None
        skeleton = smab.init(len(action_ids))
    paths, treedef = jax.tree_util.tree_flatten_with_path(skeleton)
    expected = [jax.tree_util.keystr(p) for p, _ in paths] + [_KEY_ARRAY]
    if [spec["name"] for spec in manifest] != expected:
        raise ModelFormatError(
            f"the arrays {[s['name'] for s in manifest]} do not match the model's {expected}"
        )
    for (_, leaf), a, spec in zip(paths, arrays, manifest):
        if leaf.shape != a.shape:
            raise ModelFormatError(
                f"array {spec['name']!r} has shape {a.shape}, the model needs {leaf.shape}"
            )
        if jax.dtypes.canonicalize_dtype(a.dtype) != a.dtype:
            raise ModelFormatError(
                f"array {spec['name']!r} was saved as {a.dtype}, which JAX cannot hold exactly here; "
                "enable it first with jax.config.update('jax_enable_x64', True)"
            )
    state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in arrays[:-1]])
    counts = header["counts"]
    if counts != {
        "n_successes": arrays[expected.index(".n_successes")].tolist(),
        "n_failures": arrays[expected.index(".n_failures")].tolist(),
    }:
        raise ModelFormatError("the counts in the header do not match the arrays")
    key = jax.random.wrap_key_data(jnp.asarray(arrays[-1]), impl=header["key_impl"])
    strategy = _strategy_from_json(header["strategy"])
    if config is None:
        return cls(action_ids=action_ids, state=state, strategy=strategy, key=key)
    return cls(action_ids=action_ids, config=config, state=state, strategy=strategy, key=key)


def _config_from_json(fields: dict) -> CmabConfig:
    names = {f.name for f in dataclasses.fields(CmabConfig)}
    if not isinstance(fields, dict) or set(fields) != names:
        raise ModelFormatError(f"config must hold exactly the fields {sorted(names)}, got {fields!r}")
    fields = dict(fields)
    fields["hidden_dim_list"] = tuple(fields["hidden_dim_list"])
    fields["optimizer_kwargs"] = tuple((k, _tuples(v)) for k, v in fields["optimizer_kwargs"])
    return CmabConfig(**fields)


def _tuples(value):
    """JSON turned tuples into lists; the config must be hashable again."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _strategy_from_json(spec: dict):
    cls = getattr(strategy_module, spec["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, strategy_module.Strategy)):
        raise ModelFormatError(f"unknown strategy {spec['class']!r}")
    return cls(**spec["fields"])


def _dtype(text: str) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.kind not in "biuf":
        raise ModelFormatError(f"arrays must be numeric, got dtype {text!r}")
    return dtype


# ---------------------------------------------------------------------------------- files
def _as_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the target's folder, sync it, then rename it over ``path``:
    a reader sees the old file or the new one, never a part of either."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
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
