"""Validation of user input for the object API (every error names the argument it is about), and
the conversion of its outputs to PyBandits' Python forms."""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any

import jax
import numpy as np


def action_ids_tuple(action_ids: Any) -> tuple:
    """Action ids in a fixed order: a set is sorted (its iteration order is not repeatable)."""
    if isinstance(action_ids, (str, bytes)) or not isinstance(action_ids, Iterable):
        raise TypeError(f"action_ids must be a non-empty set or list of ids, got {action_ids!r}")
    if isinstance(action_ids, (set, frozenset)) or type(action_ids).__name__ == "dict_keys":
        try:
            ids = tuple(sorted(action_ids))
        except TypeError:
            ids = tuple(sorted(action_ids, key=repr))
    else:
        ids = tuple(action_ids)
    if not ids:
        raise ValueError("action_ids must not be empty")
    ids = tuple(action_id(aid) for aid in ids)
    if len(set(ids)) != len(ids):
        dupes = sorted({repr(a) for a in ids if ids.count(a) > 1})
        raise ValueError(f"action_ids must be unique, duplicated: {', '.join(dupes)}")
    return ids


def action_id(aid: Any, name: str = "action_ids") -> str | int:
    """One action id as a plain ``str`` or ``int`` (NumPy scalars are converted).

    Floats and bools are refused: ``1.0 == 1 == True`` hash alike, so they would silently alias
    integer ids, and a NaN id could never be found again.
    """
    if isinstance(aid, str):
        return str(aid)
    if isinstance(aid, numbers.Integral) and not isinstance(aid, (bool, np.bool_)):
        return int(aid)
    raise TypeError(f"{name} must hold str or int ids, got {aid!r} ({type(aid).__name__})")


def as_context(context: Any, n_features: int, dtype=np.float32) -> np.ndarray:
    """A float array of shape ``(n_rows >= 1, n_features)``, finite in the model's ``dtype``
    (a value such as 1e39 is finite in float64 but infinite in float32)."""
    # Fast path for the common case (a real 2-D array of the right width): one cast and one
    # isfinite on the cast (a NaN, an infinity or a value beyond float32 all show up there). Any
    # doubt falls through to the full checks below, which name the offending value.
    if type(context) is np.ndarray and context.dtype.kind in "fiu" and context.ndim == 2:
        if context.shape[0] and context.shape[1] == n_features:
            # a finite sum means every entry is finite (a NaN or an infinity makes the sum NaN or
            # infinite); a sum that overflows falls through to the full checks
            with np.errstate(over="ignore", invalid="ignore"):
                cast = context.astype(dtype, copy=False)
                finite = math.isfinite(cast.sum())
            if finite:
                return cast
    try:
        arr = np.asarray(context)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"context must be a 2-D array of numbers: {err}") from err
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"context must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"context must be 2-D (n_rows, {n_features}), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("context must not be empty (at least one row)")
    if arr.shape[1] != n_features:
        raise ValueError(f"context must have {n_features} columns (n_features), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"context must be finite, found {arr[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
    with np.errstate(over="ignore"):
        cast = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(cast)):
        bad = np.argwhere(~np.isfinite(cast))[0]
        raise ValueError(
            f"context must be finite in the model's {np.dtype(dtype).name}, found {arr[tuple(bad)]} at "
            f"row {bad[0]}, column {bad[1]} (largest allowed magnitude {float(np.finfo(dtype).max):.3g})"
        )
    return cast


def as_action_indices(actions: Any, index: dict, name: str = "actions") -> np.ndarray:
    """Indices of ``actions`` in the model's action order; unknown ids are a ValueError."""
    # Fast path: a list of exactly str / int ids that are all known (type() is exact, so bools,
    # floats and subclasses fall through to the full checks below, as does an unknown id).
    if type(actions) is list and set(map(type, actions)) <= _ID_TYPES:
        try:
            return np.fromiter(map(index.__getitem__, actions), np.int32, len(actions))
        except KeyError:
            pass
    if isinstance(actions, (str, bytes)) or not isinstance(actions, Iterable):
        raise TypeError(f"{name} must be a list of action ids, got {actions!r}")
    if isinstance(actions, np.ndarray) and actions.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {actions.shape}")
    actions = list(actions.tolist() if isinstance(actions, np.ndarray) else actions)
    # 1.0 and True would find the id 1 in the dict: ids are str or int, nothing else.
    odd = set(map(type, actions)) - _ID_TYPES
    for kind in odd:
        if not issubclass(kind, (str, numbers.Integral)) or issubclass(kind, (bool, np.bool_)):
            bad = next(a for a in actions if type(a) is kind)
            raise TypeError(f"{name} must hold action ids (str or int), got {bad!r} ({kind.__name__})")
    try:
        out = np.fromiter((index[a] for a in actions), dtype=np.int32, count=len(actions))
    except (KeyError, TypeError):
        unknown = []
        for a in actions:
            try:
                known = a in index
            except TypeError:
                known = False
            if not known and a not in unknown:
                unknown.append(a)
        raise ValueError(
            f"{name} holds unknown action id(s) {unknown[:5]!r}; known: {list(index)!r}"
        ) from None
    return out


_ID_TYPES = {str, int}
_REWARD_TYPES = {int, float, bool}


def as_rewards(rewards: Any, name: str = "rewards") -> np.ndarray:
    """Binary rewards as an int array."""
    # Fast path: a non-empty list or 1-D array of real numbers that are all 0 or 1. Anything else
    # (ragged, empty, object dtype, a 2 or a NaN) falls through to the full checks below.
    # A list of plain Python 0/1 numbers (the usual case) skips NumPy's element-wise checks:
    # set equality is exact for int, float and bool (NaN, 2 or 0.5 are not in {0, 1}).
    if (
        type(rewards) is list
        and rewards
        and set(map(type, rewards)) <= _REWARD_TYPES
        and set(rewards) <= {0, 1}
    ):
        return np.fromiter(rewards, np.int32, len(rewards))
    if type(rewards) is list or type(rewards) is np.ndarray:
        try:
            arr = np.asarray(rewards)
        except Exception:
            arr = None
        if arr is not None and arr.ndim == 1 and arr.size and arr.dtype.kind in "biuf":
            if arr.dtype.kind == "b" or ((arr == 0) | (arr == 1)).all():
                return arr.astype(np.int32)
    if isinstance(rewards, (str, bytes)) or not isinstance(rewards, (Sequence, np.ndarray, Iterable)):
        raise TypeError(f"{name} must be a list of 0/1 rewards, got {rewards!r}")
    try:
        arr = np.asarray(list(rewards) if not isinstance(rewards, np.ndarray) else rewards)
    except Exception as err:
        raise ValueError(f"{name} must be a 1-D list of 0/1 values: {err}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and (not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)) or np.iscomplexobj(arr)):
        raise TypeError(f"{name} must hold real 0/1 numbers, got dtype {arr.dtype}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        bad = arr[~((arr == 0) | (arr == 1))][0]
        raise ValueError(
            f"{name} must be binary (0 or 1), got {bad!r} (a model built with use_soft_rewards=True "
            "takes rewards in [0, 1])"
        )
    return arr.astype(np.int32)


def as_soft_rewards(rewards: Any, name: str = "rewards") -> np.ndarray:
    """Soft rewards: real numbers in [0, 1] (bools as 0/1) as a float32 array."""
    arr = _real_rewards(rewards, name, "in [0, 1]")
    inside = (arr >= 0) & (arr <= 1)  # False for NaN
    if not inside.all():
        raise ValueError(f"{name} must lie in [0, 1] (soft rewards), got {float(arr[~inside][0])!r}")
    return arr.astype(np.float32)


def as_real_rewards(rewards: Any, name: str = "rewards") -> np.ndarray:
    """Continuous rewards (a Gaussian model's): real numbers finite in float32, as a float32 array."""
    arr = _real_rewards(rewards, name, "(finite)")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(
            f"{name} must be finite real numbers within float32's range, got {float(arr[bad][0])!r} "
            f"at position {int(np.argmax(bad))}"
        )
    return out


def _real_rewards(rewards: Any, name: str, what: str) -> np.ndarray:
    """``rewards`` as a 1-D float64 array of real numbers (bools as 0/1); the range is the
    caller's to check."""
    if isinstance(rewards, (str, bytes, Mapping)) or not isinstance(
        rewards, (Sequence, np.ndarray, Iterable)
    ):
        raise TypeError(f"{name} must be a list of real rewards {what}, got {rewards!r}")
    if not isinstance(rewards, (np.ndarray, list, tuple)) and hasattr(rewards, "__array__"):
        rewards = np.asarray(rewards)  # a JAX array (its elements would be 0-d arrays)
    items = rewards if isinstance(rewards, np.ndarray) else list(rewards)
    if not isinstance(items, np.ndarray) and any(
        isinstance(r, (Sequence, np.ndarray)) and not isinstance(r, (str, bytes)) for r in items
    ):
        raise ValueError(f"{name} must be 1-D (one reward per row), got nested values")
    if not isinstance(items, np.ndarray) and not all(
        isinstance(r, (numbers.Real, np.bool_)) and not isinstance(r, np.datetime64) for r in items
    ):
        bad = next(r for r in items if not isinstance(r, (numbers.Real, np.bool_)))
        raise TypeError(f"{name} must hold real numbers {what}, got {bad!r} ({type(bad).__name__})")
    try:
        arr = np.asarray(items)
    except Exception as err:
        raise ValueError(f"{name} must be a 1-D list of real numbers {what}: {err}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.dtype.kind not in "biuf"):
        raise TypeError(f"{name} must hold real numbers {what}, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def check_decay_factor(decay_factor: Any, name: str = "decay_factor") -> None:
    """ValueError / TypeError unless ``decay_factor`` is a real scalar in (0, 1] (a traced value,
    a sweep's, is checked by nobody)."""
    if isinstance(decay_factor, jax.core.Tracer):
        return
    if isinstance(decay_factor, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a number in (0, 1], got {decay_factor!r}")
    if np.iscomplexobj(decay_factor):
        raise TypeError(f"{name} must be a real number in (0, 1], got {decay_factor!r}")
    try:
        value = np.asarray(decay_factor, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in (0, 1], got {decay_factor!r}") from None
    if value.ndim != 0 or not 0.0 < float(value) <= 1.0:  # NaN fails the comparison too
        raise ValueError(f"{name} must be a scalar in (0, 1], got {decay_factor!r}")
    if np.float32(value) < np.finfo(np.float32).tiny:  # held in float32: 0 or subnormal there
        raise ValueError(
            f"{name} must be at least {np.finfo(np.float32).tiny:.3g} (float32's smallest normal "
            f"number, the state's precision), got {decay_factor!r}"
        )


def check_lengths(**named: Sized) -> int:
    lengths = {k: len(v) for k, v in named.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"lengths must match: {', '.join(f'{k}={n}' for k, n in lengths.items())}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{' and '.join(lengths)} must not be empty")
    return n


def random_seed(seed: Any) -> int:
    """The seed, or one drawn from NumPy's global generator (so ``np.random.seed`` repeats runs)."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"random_seed must be an int or None, got {seed!r}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"random_seed must lie in [0, 2**64), got {seed!r}")
    return int(seed)


def key_from_seed(seed: int) -> jax.Array:
    """The PRNG key of a seed in ``[0, 2**64)``.

    ``jax.random.key`` keeps only the low 32 bits of a seed unless x64 is enabled (``2**32`` and
    ``0`` give the same key), so the high word is folded in separately: seeds below ``2**32`` give
    exactly ``jax.random.key(seed)``, larger ones distinct keys, in either mode.
    """
    key = jax.random.key(seed & 0xFFFFFFFF)
    return jax.random.fold_in(key, seed >> 32) if seed >> 32 else key


def bucket(n: int) -> int:
    """The power-of-two bucket a size ``n >= 1`` is padded to."""
    return 1 << (int(n) - 1).bit_length()


def fine_bucket(n: int, bits: int = 4) -> int:
    """``n`` rounded up to ``bits`` significant binary digits: padding under ``2**(2-bits)`` of
    ``n`` (12.5% for 4 bits) with ``2**(bits-1)`` buckets per octave. For predict, where compiling
    is cheap and every padded row costs a forward pass."""
    shift = max(int(n - 1).bit_length() - bits, 0)
    return ((int(n) - 1 >> shift) + 1) << shift


def ids_array(action_ids: tuple) -> np.ndarray:
    """The ids as a NumPy array (str or int dtype where all ids are one kind, object otherwise),
    indexable by an array of action indices."""
    kinds = {type(a) for a in action_ids}
    if kinds == {str}:
        return np.array(action_ids, dtype=str)
    if kinds == {int} and all(-(2**63) <= a < 2**63 for a in action_ids):
        return np.array(action_ids, dtype=np.int64)
    out = np.empty(len(action_ids), dtype=object)
    out[:] = list(action_ids)
    return out


def action_bucket(n: int) -> int:
    """The size the action axis of ``n`` actions is padded to: 2 significant binary digits
    (1, 2, 3, 4, 6, 8, 12, 16, 24, ...), so a service that adds actions over time compiles a handful
    of programs (15 for every count up to 200) while padding costs at most a third more compute
    (none up to 4 actions)."""
    return fine_bucket(n, bits=2)


# ---------------------------------------------------------------------------------- output
def row_dicts(ids: tuple, values: np.ndarray) -> list[dict]:
    """``[{id: value}]`` per row, built from the columns (one ``tolist`` per action)."""
    columns = values.T.tolist()
    if len(ids) <= _LITERAL_MAX_ACTIONS:
        return _literal_rows(len(ids))(*ids, columns)
    return list(map(dict, map(zip, itertools.repeat(ids), zip(*columns))))


# A dict display ``{k0: v0, k1: v1, ...}`` in a comprehension builds a row's dict in about 60% of
# the time of ``dict(zip(ids, row))`` (3.5 ms against 5.8 ms for 10,000 rows x 5 actions), which
# is most of the cost of PyBandits-style predictions. The source holds only argument names; the
# action ids and values are passed in.
_LITERAL_MAX_ACTIONS = 64


@functools.cache
def _literal_rows(n: int):
    keys = [f"k{i}" for i in range(n)]
    values = [f"v{i}" for i in range(n)]
    row = ", ".join(f"{k}: {v}" for k, v in zip(keys, values))
    source = f"lambda {', '.join(keys)}, columns: [{{{row}}} for ({', '.join(values)},) in zip(*columns)]"
    return eval(source)  # noqa: S307 (generated from integers only)
