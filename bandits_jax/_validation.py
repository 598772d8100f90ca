"""Validation of user input for the object API (every error names the argument it is about), and
the conversion of its outputs to PyBandits' Python forms."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

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
    for aid in ids:
        if not isinstance(aid, Hashable) or isinstance(aid, (list, dict, set)):
            raise TypeError(f"action_ids must hold hashable ids, got {aid!r}")
    if len(set(ids)) != len(ids):
        dupes = sorted({repr(a) for a in ids if ids.count(a) > 1})
        raise ValueError(f"action_ids must be unique, duplicated: {', '.join(dupes)}")
    return ids


def as_context(context: Any, n_features: int) -> np.ndarray:
    """A finite float array of shape ``(n_rows >= 1, n_features)``."""
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
    return arr


def as_action_indices(actions: Any, index: dict, name: str = "actions") -> np.ndarray:
    """Indices of ``actions`` in the model's action order; unknown ids are a ValueError."""
    if isinstance(actions, (str, bytes)) or not isinstance(actions, Iterable):
        raise TypeError(f"{name} must be a list of action ids, got {actions!r}")
    actions = list(actions.tolist() if isinstance(actions, np.ndarray) else actions)
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


def as_rewards(rewards: Any, name: str = "rewards") -> np.ndarray:
    """Binary rewards as an int array."""
    if isinstance(rewards, (str, bytes)) or not isinstance(rewards, (Sequence, np.ndarray, Iterable)):
        raise TypeError(f"{name} must be a list of 0/1 rewards, got {rewards!r}")
    try:
        arr = np.asarray(list(rewards) if not isinstance(rewards, np.ndarray) else rewards)
    except Exception as err:
        raise ValueError(f"{name} must be a 1-D list of 0/1 values: {err}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must hold 0/1 numbers, got dtype {arr.dtype}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        bad = arr[~((arr == 0) | (arr == 1))][0]
        raise ValueError(f"{name} must be binary (0 or 1), got {bad!r}")
    return arr.astype(np.int32)


def check_lengths(**named: Sequence) -> int:
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
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"random_seed must be an int or None, got {seed!r}")
    return int(seed)


def bucket(n: int) -> int:
    """The power-of-two bucket a size ``n >= 1`` is padded to."""
    return 1 << (int(n) - 1).bit_length()


def fine_bucket(n: int, bits: int = 4) -> int:
    """``n`` rounded up to ``bits`` significant binary digits: padding under ``2**(2-bits)`` of
    ``n`` (12.5% for 4 bits) with ``2**(bits-1)`` buckets per octave. For predict, where compiling
    is cheap and every padded row costs a forward pass."""
    shift = max(int(n - 1).bit_length() - bits, 0)
    return ((int(n) - 1 >> shift) + 1) << shift


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
