"""The one object-API base under :class:`~bandits_jax.cmab.CmabBernoulli` and
:class:`~bandits_jax.smab.SmabBernoulli`: action ids <-> indices, validated entry points, the
public read-only ``key``, the single jitted key-advancing steps (which the simulation runs too, so a
model with a simulation's key replays it by construction), the action axis padded to a bucket, the
model lock, and the hooks that :mod:`bandits_jax.persistence` and :mod:`bandits_jax.transfer` call
instead of checking classes.

A model holds its action ids in a fixed order, a policy (:mod:`bandits_jax.policies`), the
policy's state padded to ``action_bucket(n_actions)`` actions (the padding is masked out of every
prediction and gets no rows), the strategy and one PRNG key. Every call validates its input first
and assigns new state only at the end, holding the model's lock while it advances the key and
swaps the state: a call that raises changes nothing, concurrent updates are all kept, and no two
predicts share a draw.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from functools import partial
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits_jax import _validation as val
from bandits_jax import persistence
from bandits_jax._object import (
    Exploration,
    ModelLock,
    make_exploration,
    pad_actions,
    unpad_actions,
    warn_saturated_ids,
)
from bandits_jax.likelihoods import SoftBernoulli, host_tallies
from bandits_jax.policies.base import GroupedFeedback, UpdateInfo, stats_of
from bandits_jax.strategy import ClassicBandit, Strategy

__all__ = [
    "ArrayPrediction",
    "Bandit",
    "Controls",
    "Exploration",
    "SviDivergenceWarning",
    "make_exploration",
    "predict_step",
    "update_step",
]


# ------------------------------------------------------------------------ the key-advancing steps
# A model's key advances as ``key, sub = jax.random.split(key)`` per call, inside the jitted step
# (a separate split would cost a fresh process about 0.2 s of compiling it on its own). The
# simulation scans these same functions, so its draws are the object API's.
class Controls(NamedTuple):
    """The traced data of :class:`~bandits_jax._object.Exploration` for :func:`predict_step`: a
    field left None (epsilon-greedy or limited actions unused) is absent from the program."""

    epsilon: Any = None  # float32 scalar
    default: Any = None  # int32 scalar, -1 for none
    default_fraction: Any = None  # float32 scalar
    limited: Any = None  # (n_actions,) bool
    limited_fraction: Any = None  # float32 scalar


@partial(jax.jit, static_argnames=("policy", "top_k"))
def predict_step(policy, state, key, context, strategy, action_mask, controls=None, top_k=None):
    """``(chosen, probs, logits), new_key`` of one prediction (jitted; ``policy`` and ``top_k``
    static). ``action_mask`` (traced) marks the actions allowed in this call.

    ``controls`` (:class:`Controls`, traced: new values compile nothing): ``limited`` actions
    compete on a row only with probability ``limited_fraction`` (masked out otherwise, unless
    nothing would be left); with ``epsilon``, each row explores with that probability, picking
    ``default`` with probability ``default_fraction`` (-1: none) or else a uniformly random
    allowed action, and otherwise applies the strategy to the posterior *mean* scores. ``top_k``:
    ``chosen`` is ``(n_rows, top_k)``, the allowed actions ranked best first by the scores an
    argmax strategy sees (the Thompson draw; with ``epsilon``, the mean on exploiting rows and a
    random order, the default first, on exploring ones), so its first column is the single pick.
    Without either, the draws are exactly those of the plain step (the controls' noise comes from
    a key folded off the draw's)."""
    key, sub = jax.random.split(key)
    out = policy.predict(sub, state, context, strategy, action_mask)
    chosen = out.actions
    if controls is None and top_k is None:
        return (chosen, out.probs, out.logits), key
    n, n_actions = out.probs.shape
    allowed = jnp.broadcast_to(action_mask, (n, n_actions))
    scores = jnp.where(allowed, out.probs, -jnp.inf)
    if controls is not None:
        k_limit, k_strategy, k_coin, k_default, k_order, k_greedy = jax.random.split(
            jax.random.fold_in(sub, _CONTROLS_STREAM), 6
        )
        if controls.limited is not None:
            compete = jax.random.uniform(k_limit, (n,)) < controls.limited_fraction
            narrowed = allowed & ~(controls.limited & ~compete[:, None])
            allowed = jnp.where(narrowed.any(axis=1, keepdims=True), narrowed, allowed)
            scores = jnp.where(allowed, out.probs, -jnp.inf)
            chosen = strategy(scores, k_strategy)
        if controls.epsilon is not None:
            mean = jnp.where(allowed, out.mean_probs, -jnp.inf)
            coin = jax.random.uniform(k_coin, (n,)) < controls.epsilon
            use_default = (controls.default >= 0) & (
                jax.random.uniform(k_default, (n,)) < controls.default_fraction
            )
            # a random order of the allowed actions (uniform scores in [0, 1)), the default first
            order = jax.random.uniform(k_order, (n, n_actions))
            first = use_default[:, None] & (jnp.arange(n_actions) == controls.default)
            order = jnp.where(allowed, jnp.where(first, 2.0, order), -jnp.inf)
            chosen = jnp.where(coin, jnp.argmax(order, axis=1), strategy(mean, k_greedy))
            scores = jnp.where(coin[:, None], order, mean)
    if top_k is not None:
        # actions a row's limit masked out rank after its allowed ones (and before forbidden ones)
        low = jnp.min(jnp.where(allowed, scores, jnp.inf), axis=1, keepdims=True) - 1.0
        scores = jnp.where(action_mask & ~allowed, low, scores)
        chosen = jax.lax.top_k(scores, top_k)[1]
    return (chosen, out.probs, out.logits), key


# the fold_in constant of the controls' noise (any fixed number off the draw's key)
_CONTROLS_STREAM = 0x45505331


@partial(jax.jit, static_argnames=("policy",))
def update_step(policy, state, key, grouped: GroupedFeedback):
    """``new_state, info, new_key, overflow`` of one update on grouped rows (jitted). ``overflow``
    marks rows that the policy's network cannot represent (see ``input_overflow``), if it says."""
    key, sub = jax.random.split(key)
    new_state, info = policy.update_grouped(sub, state, grouped)
    check = getattr(policy, "input_overflow", None)
    overflow = check(state, grouped) if check is not None else grouped.valid & False
    return new_state, info, key, overflow


class ArrayPrediction(NamedTuple):
    """``predict_arrays``' result: per row the chosen action *id* (what ``update`` takes back), its
    position in ``action_ids``, and every action's sampled probability and logit (columns in
    ``action_ids`` order)."""

    actions: np.ndarray
    action_indices: np.ndarray
    probs: np.ndarray
    logits: np.ndarray


class SviDivergenceWarning(RuntimeWarning):
    """An action's fit went non-finite; its previous posterior and counts were kept."""


def group_rows(n_actions: int, actions: np.ndarray, per_batch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`bandits_jax.policies.base.route` for a batch without padding: each
    action's row indices ``(n_actions, rows_per_action)``, valid rows first, and the validity mask.
    ``rows_per_action`` is a power-of-two bucket of the largest action's count (of the batch size
    with ``per_batch``, for policies whose update is so cheap that one program per batch bucket
    beats one per spread of the rows), so a new batch in a seen bucket compiles nothing."""
    rows, valid, _ = _group_rows(n_actions, actions, per_batch)
    return rows, valid


def _group_rows(
    n_actions: int, actions: np.ndarray, per_batch: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_rows` plus each action's row count (computed once, reused for the counters)."""
    order = np.argsort(actions, kind="stable")
    counts = np.bincount(actions, minlength=n_actions)
    ends = np.cumsum(counts)
    offsets = _offsets(val.bucket(len(actions) if per_batch else int(counts.max())))
    valid = offsets < counts[:, None]
    # a padded slot points at its action's last row (or the row before an action without rows):
    # any real row will do, the mask hides it
    rows = order[np.minimum((ends - counts)[:, None] + offsets, len(actions) - 1)]
    return rows, valid, counts


@functools.lru_cache(maxsize=64)
def _offsets(width: int) -> np.ndarray:
    out = np.arange(width)
    out.flags.writeable = False
    return out


_COUNTER_TOP = int(np.iinfo(np.int32).max)


def _counters(state) -> tuple[np.ndarray, np.ndarray]:
    """The state's two saturating counters on the host (successes and failures, int64, float64 for
    soft rewards; a Gaussian's zeros and observations): sums cannot wrap."""
    return host_tallies(stats_of(state))


def check_per_action_data(strategy: Strategy, ids: tuple) -> None:
    """ValueError unless a strategy's per-action data (``costs``, ``prices``) is one value per
    action."""
    for field in ("costs", "prices"):
        values = getattr(strategy, field, None)
        if values is not None and np.shape(values)[:1] != (len(ids),):
            raise ValueError(
                f"the strategy's {field} must give one value per action ({len(ids)}), got shape "
                f"{np.shape(values)}"
            )


class Bandit:
    """The object-API base (see the module docstring). Subclasses set ``_kind`` (models of one kind
    merge in ``edit_model_on_the_fly``) and implement the persistence hooks."""

    _kind: ClassVar[str]
    #: rows per action padded to the batch's bucket rather than the largest action's (see group_rows)
    _rows_per_batch: ClassVar[bool] = False
    #: format-v1 array names that a subclass reads under new names (see persistence)
    _v1_names: ClassVar[dict[str, str]] = {}

    def _setup(
        self,
        ids: tuple,
        config: Any,
        policy: Any,
        padded_state: Any,
        strategy: Strategy,
        key,
        exploration: Exploration | None = None,
    ) -> None:
        self._check_strategy(strategy, ids)
        if exploration is not None and exploration.default_action is not None:
            if exploration.default_action not in ids:
                raise ValueError(
                    f"default_action {exploration.default_action!r} is not one of the actions {list(ids)!r}"
                )
        self._exploration = exploration
        self._action_ids = ids
        self._index = {a: i for i, a in enumerate(ids)}
        self._ids_array = val.ids_array(ids)
        self._mask = np.arange(val.action_bucket(len(ids))) < len(ids)
        self._config = config
        self._policy = policy
        self._state = padded_state
        self._strategy = strategy
        self._key = key
        self._lock = ModelLock()
        # host-side upper bounds of the counters (see _update_rows), from the actual counts
        self._count_bound = (padded_state, *_counters(padded_state))

    @classmethod
    def _from_padded(
        cls, ids: tuple, config: Any, padded_state: Any, strategy: Strategy, key, exploration=None
    ) -> Bandit:
        """A model whose state is already padded to ``action_bucket(len(ids))`` actions."""
        mab = cls.__new__(cls)
        mab._setup(ids, config, cls._policy_of(config), padded_state, strategy, key, exploration)
        return mab

    @classmethod
    def _build(cls, ids: tuple, config: Any, state: Any, strategy: Strategy, key, exploration=None) -> Bandit:
        """A model from an unpadded state (validated): the constructor's and loading's path."""
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a bandits_jax.strategy.Strategy, got {strategy!r}")
        if jax.tree.leaves(state)[0].shape[0] != len(ids):
            raise ValueError(f"state must hold one entry per action ({len(ids)})")
        policy = cls._policy_of(config)
        prior = cls._cold_state(config, val.action_bucket(len(ids)))
        if jax.tree.structure(prior) != jax.tree.structure(state):
            raise ValueError(f"state must be a {type(prior).__name__} of this model's structure")
        for p, s in zip(jax.tree.leaves(prior), jax.tree.leaves(state)):
            if np.shape(p)[1:] != np.shape(s)[1:]:
                raise ValueError(
                    f"state's arrays must have this model's shapes after the action axis: got "
                    f"{np.shape(s)[1:]} where the config gives {np.shape(p)[1:]}"
                )
        mab = cls.__new__(cls)
        mab._setup(ids, config, policy, pad_actions(state, prior, len(ids)), strategy, key, exploration)
        return mab

    # ------------------------------------------------------------------ hooks of a subclass
    @classmethod
    def _policy_of(cls, config: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def _cold_state(cls, config: Any, n_actions: int) -> Any:
        """The prior state of ``n_actions`` actions."""
        raise NotImplementedError

    def _config_json(self) -> dict | None:
        return None

    @classmethod
    def _config_from_json(cls, fields: Any) -> Any:
        return None

    def _check_rewards(self, rewards: Any) -> np.ndarray:
        """The object API's reward validation: the likelihood's (a multi-objective model checks
        one vector per row)."""
        return self._policy.likelihood.check_rewards(rewards)

    def _host_tally(self, idx: np.ndarray, rewards: np.ndarray, rows: np.ndarray, n_actions: int):
        """Upper bounds of what an update adds to each counter (see ``_update_rows``)."""
        return self._policy.likelihood.host_tally(idx, rewards, rows, n_actions)

    @classmethod
    def _check_strategy(cls, strategy: Strategy, ids: tuple) -> None:
        """Refuse (TypeError / ValueError) a strategy this class cannot run with these actions: by
        default a multi-objective strategy (it needs reward vectors: the ``...MO`` classes), and
        per-action data (a cost-control strategy's ``costs``, a pricing one's ``prices``) that is
        not one value per action."""
        from bandits_jax.strategy import MultiObjectiveBandit, MultiObjectiveCostControlBandit

        if isinstance(strategy, (MultiObjectiveBandit, MultiObjectiveCostControlBandit)):
            raise TypeError(
                f"{type(strategy).__name__} chooses among reward vectors; a {cls.__name__} has one reward "
                "per row (use a multi-objective class such as CmabBernoulliMO or SmabBernoulliMO)"
            )
        check_per_action_data(strategy, ids)

    def with_strategy(self, strategy: Strategy) -> Bandit:
        """A copy of this model (same state and key) that runs ``strategy`` (checked as the
        constructor checks it)."""
        with self._lock:
            state, key = self._state, self._key
        return type(self)._from_padded(
            self._action_ids, self._config, state, strategy, key, self._exploration
        )

    def _check_transfer(self, current: Bandit, common: list) -> None:
        """Refuse (ValueError) to carry ``current``'s learned state for ``common`` actions into
        this template; by default anything fits."""

    # ------------------------------------------------------------------ read-only properties
    @property
    def action_ids(self) -> tuple:
        """Action ids in the order of the state's action axis."""
        return self._action_ids

    @property
    def state(self) -> Any:
        """The policy's state of the real actions (immutable arrays, leading action axis)."""
        return self._snapshot()[0]

    @property
    def key(self) -> jax.Array:
        """The model's PRNG key (read-only: it advances by one split per predict and update)."""
        return self._snapshot()[1]

    @property
    def policy(self) -> Any:
        """The policy (static settings) the model runs."""
        return self._policy

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def exploration(self) -> Exploration | None:
        """The epsilon-greedy settings (``epsilon``, ``default_action``), None without them."""
        return self.__dict__.get("_exploration")

    @property
    def epsilon(self) -> float | None:
        """PyBandits' ``epsilon``: the probability that a row explores (None: never)."""
        exploration = self.exploration
        return None if exploration is None else exploration.epsilon

    @property
    def default_action(self) -> Any:
        """PyBandits' ``default_action``: the action an exploring row picks (None: a random one)."""
        exploration = self.exploration
        return None if exploration is None else exploration.default_action

    @property
    def default_action_fraction(self) -> float | None:
        """PyBandits' ``default_action_fraction``: how often an exploring row picks the default
        action rather than a random one (None: always)."""
        exploration = self.exploration
        return None if exploration is None else exploration.default_action_fraction

    @property
    def limited_actions(self) -> frozenset | None:
        """PyBandits' ``limited_actions``: actions that compete on a row only with probability
        :attr:`limited_action_fraction`."""
        exploration = self.exploration
        return None if exploration is None else exploration.limited_actions

    @property
    def use_soft_rewards(self) -> bool:
        """PyBandits' flag: whether ``update`` takes any reward in [0, 1] (else only 0/1)."""
        return isinstance(self._policy.likelihood, SoftBernoulli)

    @property
    def decay_factor(self) -> float | None:
        """PyBandits' forgetting factor in (0, 1] (None: the model never forgets)."""
        config = self._config
        if hasattr(config, "decay_factor"):
            return config.decay_factor
        return dict(getattr(config, "init", ())).get("decay_factor")

    @property
    def limited_action_fraction(self) -> float | None:
        exploration = self.exploration
        return None if exploration is None else exploration.limited_action_fraction

    def _snapshot(self) -> tuple[Any, jax.Array]:
        """``(state, key)`` read together: one consistent pair under concurrent calls."""
        with self._lock:
            state, key = self._state, self._key
        return unpad_actions(state, len(self._action_ids)), key

    def _padded_snapshot(self) -> tuple[Any, jax.Array]:
        with self._lock:
            return self._state, self._key

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = ModelLock()

    # ------------------------------------------------------------------ predict and update
    def _call_controls(self, forbidden_actions, top_k) -> tuple[np.ndarray, Any, int | None]:
        """The action mask, :class:`Controls` and ``top_k`` of one predict call, validated (before
        anything changes): forbidden ids must be known and leave an action allowed, the default
        action must be allowed, ``top_k`` must be an int from 1 to the number of allowed actions
        and needs an argmax strategy."""
        mask = self._mask
        if forbidden_actions is not None:
            if isinstance(forbidden_actions, (str, bytes)) or not isinstance(forbidden_actions, Iterable):
                raise TypeError(f"forbidden_actions must be a set of action ids, got {forbidden_actions!r}")
            idx = val.as_action_indices(list(forbidden_actions), self._index, name="forbidden_actions")
            mask = mask.copy()
            mask[idx] = False
            if not mask.any():
                raise ValueError(
                    "forbidden_actions forbids every action; at least one must stay allowed "
                    f"(actions: {list(self._action_ids)!r})"
                )
        controls = None
        exploration = self.exploration
        if exploration is not None:
            controls = Controls()
            if exploration.epsilon is not None:
                default = -1
                if exploration.default_action is not None:
                    default = self._index[exploration.default_action]
                    if not mask[default]:
                        raise ValueError(
                            f"forbidden_actions holds the default_action {exploration.default_action!r}, "
                            "which exploring rows pick; allow it or build the model without a default_action"
                        )
                fraction = exploration.default_action_fraction
                controls = controls._replace(
                    epsilon=np.float32(exploration.epsilon),
                    default=np.int32(default),
                    default_fraction=np.float32(1.0 if fraction is None else fraction),
                )
            if exploration.limited_actions is not None:
                limited = np.zeros(len(mask), bool)
                limited[[self._index[a] for a in exploration.limited_actions]] = True
                controls = controls._replace(
                    limited=limited, limited_fraction=np.float32(exploration.limited_action_fraction)
                )
        if top_k is not None:
            if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)):
                raise TypeError(f"top_k must be an int, got {top_k!r}")
            allowed = int(mask.sum())
            if not 1 <= top_k <= allowed:
                raise ValueError(f"top_k must lie in [1, {allowed}] (the allowed actions), got {top_k!r}")
            if type(self._strategy).__call__ is not ClassicBandit.__call__:
                raise ValueError(
                    f"top_k ranks the actions by their sampled scores, which needs ClassicBandit's argmax; "
                    f"this model's strategy is {type(self._strategy).__name__}"
                )
            top_k = int(top_k)
        return mask, controls, top_k

    def _predict_padded(
        self, context: np.ndarray, n: int, forbidden_actions=None, top_k=None
    ) -> ArrayPrediction:
        """Thompson sampling on ``context`` (already padded to a row bucket, ``n`` real rows).
        Non-finite draws (a context too large for the model) raise before the key advances."""
        n_actions = len(self._action_ids)
        mask, controls, top_k = self._call_controls(forbidden_actions, top_k)
        # only the options in use are passed: the plain call is the simulation's, same program
        options = {k: v for k, v in (("controls", controls), ("top_k", top_k)) if v is not None}
        with self._lock:
            (chosen, probs, logits), new_key = predict_step(
                self._policy, self._state, self._key, context, self._strategy, mask, **options
            )
            chosen = np.asarray(chosen)[:n]
            probs = np.asarray(probs)[:n, :n_actions]
            logits = np.asarray(logits)[:n, :n_actions]
            bad = ~(np.isfinite(probs) & np.isfinite(logits))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise ValueError(
                    f"context row {row} is too large for the model: its draws overflow float32 "
                    "(rescale the features); nothing was changed"
                )
            self._key = new_key
        return ArrayPrediction(self._ids_array[chosen], chosen, probs, logits)

    def _update_rows(self, idx: np.ndarray, rewards: np.ndarray, context: np.ndarray) -> UpdateInfo:
        """Group the validated rows by action with NumPy (no sort or gather in the compiled
        program), run the update step, and swap in the new state and key under the lock.

        Counter saturation is checked against a host-side upper bound of every counter (the
        state's own counters, plus every count added since): only when an update could push the
        bound past 2**31 - 1 are the device counters read. The bound belongs to one state object;
        a state put in place any other way (built, loaded, transferred) is read afresh."""
        n_actions = len(self._action_ids)
        rows, valid, counts = _group_rows(len(self._mask), idx, self._rows_per_batch)
        grouped = GroupedFeedback(context[rows], rewards.astype(np.float32, copy=False)[rows], valid)
        saturated = None
        with self._lock:
            old = self._state
            state, info, new_key, overflow = update_step(self._policy, old, self._key, grouped)
            # host bookkeeping while the update runs: the counters' upper bounds assume every fit
            # succeeds (a failed one adds nothing, so they stay upper bounds)
            successes, failures = self._host_tally(idx, rewards, counts, n_actions)
            bound = self.__dict__.get("_count_bound")
            if bound is None or bound[0] is not old:
                bound = (old, *_counters(old))
            hi_s, hi_f = bound[1][:n_actions] + successes, bound[2][:n_actions] + failures
            overflow = np.asarray(overflow)
            if overflow.any():
                a, j = np.argwhere(overflow)[0]
                raise ValueError(
                    f"context row {int(rows[a, j])} is too large for the model: the network of action "
                    f"{self._action_ids[a]!r} overflows float32 on it (rescale the features); "
                    "nothing was updated"
                )
            info = UpdateInfo(*(np.asarray(v)[:n_actions] for v in info))
            self._state, self._key = state, new_key
            ok = info.ok
            if hi_s.max() > _COUNTER_TOP or hi_f.max() > _COUNTER_TOP:
                old_s, old_f = _counters(old)
                ok_rows = ok.reshape((-1,) + (1,) * (successes.ndim - 1))
                add_s, add_f = successes * ok_rows, failures * ok_rows
                over = (old_s[:n_actions] + add_s > _COUNTER_TOP) | (old_f[:n_actions] + add_f > _COUNTER_TOP)
                over = over.reshape(n_actions, -1).any(axis=1)  # any objective of an action
                if over.any():
                    saturated = [self._action_ids[i] for i in np.flatnonzero(over)]
                hi_s, hi_f = _counters(state)
            self._count_bound = (state, hi_s, hi_f)
        if not ok.all():
            bad = [self._action_ids[i] for i in np.flatnonzero(~ok)]
            warnings.warn(
                f"the fit went non-finite for action(s) {bad!r}; their previous posterior and counts "
                "were kept. Try a smaller update_kwargs['optimizer_kwargs']['step_size'] or "
                "'gradient_clip_norm'.",
                SviDivergenceWarning,
                stacklevel=3,
            )
        if saturated:
            warn_saturated_ids(saturated, stacklevel=2)
        return info

    # ------------------------------------------------------------------ reset
    def reset(self, action_ids=None) -> None:
        """Put every action (or those in ``action_ids``) back at the prior: posterior, counters and
        anything else the policy learned (replay buffers), as ``cold_start`` made them. Settings,
        strategy and the PRNG key stay. PyBandits resets one action's model at a time; here it is
        one call for any set of actions, under the model's lock.

        Raises:
            ValueError / TypeError: an unknown id or a malformed ``action_ids``; nothing changes.
        """
        selected = np.zeros(len(self._mask), bool)
        if action_ids is None:
            selected[: len(self._action_ids)] = True
        else:
            if isinstance(action_ids, (str, bytes)) or not isinstance(action_ids, Iterable):
                raise TypeError(f"action_ids must be a list of action ids, got {action_ids!r}")
            selected[val.as_action_indices(list(action_ids), self._index, name="action_ids")] = True
        cold = self._cold_state(self._config, len(self._mask))
        with self._lock:
            self._state = jax.tree.map(
                lambda c, s: jnp.where(selected.reshape((-1,) + (1,) * (s.ndim - 1)), c, s), cold, self._state
            )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path``: a versioned JSON header and the exact arrays, no pickle.

        The write is atomic (a temporary file in the same folder, then a rename). Action ids must
        be str or int. See :mod:`bandits_jax.persistence` for the format.
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Bandit:
        """The model written by :meth:`save`: parameters, counts, strategy and PRNG key exactly.

        Raises:
            ValueError (:class:`~bandits_jax.persistence.ModelFormatError`): the file is truncated
                or corrupt, holds another class, or comes from a newer format version.
        """
        return persistence.load(cls, path)

    def get_state(self) -> tuple[str, str]:
        """``(class_name, json_string)`` of the whole model, for keeping models in a database."""
        return persistence.get_state(self)

    @classmethod
    def from_state(cls, state: str | bytes | tuple[str, str]) -> Bandit:
        """The model from :meth:`get_state`'s JSON string (or its whole tuple); errors as :meth:`load`."""
        return persistence.from_state(cls, state)
