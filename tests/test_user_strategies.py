"""User strategies that save (issue 12 item 5): a registered Strategy subclass, array fields
included, round-trips through save/load and get_state/from_state exactly; an unregistered one is
refused when saving (naming the fix) and a file naming an unknown strategy loads nothing."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax import persistence
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.persistence import ModelFormatError
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import ClassicBandit, Strategy, register_strategy, registered_strategies


@register_strategy
class Weighted(Strategy):
    """Argmax of the draws times per-action weights (an array field), above a floor."""

    weights: jax.Array
    floor: float = 0.0
    label: str = eqx.field(static=True, default="w")

    def __call__(self, probs, key):
        return jnp.argmax(jnp.maximum(probs * self.weights, self.floor), axis=-1)


@register_strategy(name="tests.Named")
class Named(ClassicBandit):
    pass


def test_a_registered_strategy_with_an_array_field_round_trips(tmp_path):
    strategy = Weighted(weights=jnp.array([0.5, 2.0, 1.0], jnp.float32), floor=0.1, label="x")
    mab = CmabBernoulli.cold_start(["a", "b", "c"], n_features=2, strategy=strategy, random_seed=0)
    header = json.loads(mab.get_state()[1])["strategy"]
    assert header["class"] == "tests.test_user_strategies.Weighted"
    assert header["fields"]["weights"] == {"array": [0.5, 2.0, 1.0], "dtype": "<f4", "shape": [3]}
    x = np.random.default_rng(0).normal(size=(32, 2))
    expected = CmabBernoulli.from_state(mab.get_state()).predict_arrays(x).actions
    for back in (CmabBernoulli.from_state(mab.get_state()), _saved_and_loaded(mab, tmp_path)):
        assert type(back.strategy) is Weighted
        np.testing.assert_array_equal(back.strategy.weights, strategy.weights)
        assert back.strategy.weights.dtype == jnp.float32
        assert (back.strategy.floor, back.strategy.label) == (0.1, "x")
        np.testing.assert_array_equal(back.predict_arrays(x).actions, expected)
    # the weights matter (a control): plain argmax picks otherwise on some rows
    plain = CmabBernoulli.from_state(mab.get_state())
    plain = CmabBernoulli(
        action_ids=plain.action_ids,
        config=plain.config,
        state=plain.state,
        strategy=ClassicBandit(),
        key=plain.key,
    )
    assert (plain.predict_arrays(x).actions != expected).any()


def _saved_and_loaded(mab, tmp_path):
    path = tmp_path / "m.npz"
    mab.save(path)
    return type(mab).load(path)


def test_a_custom_name_and_the_smab():
    mab = SmabBernoulli.cold_start(["a", "b"], strategy=Named(), random_seed=0)
    assert json.loads(mab.get_state()[1])["strategy"] == {"class": "tests.Named", "fields": {}}
    assert type(SmabBernoulli.from_state(mab.get_state()).strategy) is Named
    assert registered_strategies()["tests.Named"] is Named


def test_an_unregistered_strategy_is_refused_when_saving_and_an_unknown_one_when_loading(tmp_path):
    class Unregistered(ClassicBandit):
        pass

    mab = SmabBernoulli.cold_start(["a"], strategy=Unregistered(), random_seed=0)
    with pytest.raises(TypeError, match="register_strategy"):
        mab.get_state()
    path = tmp_path / "m.npz"
    SmabBernoulli.cold_start(["a"], strategy=Named(), random_seed=0).save(path)
    with np.load(path, allow_pickle=False) as archive:
        members = {name: archive[name].copy() for name in archive.files}
    header = json.loads(members["header"].tobytes())
    arrays = [members[f"arr_{i}"] for i in range(len(header["arrays"]))]
    header["strategy"]["class"] = "tests.Nowhere"
    header["sha256"] = persistence._digest(header, arrays)  # re-signed: only the name is wrong
    members["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **members)
    with pytest.raises(ModelFormatError, match="unknown strategy 'tests.Nowhere'"):
        SmabBernoulli.load(path)


def test_unsaveable_fields_are_refused():
    for bad in (jnp.array([np.nan, 1.0]), np.array(["a", "b"])):
        mab = SmabBernoulli.cold_start(["a", "b"], strategy=Weighted(weights=bad), random_seed=0)
        with pytest.raises(TypeError, match="weights"):
            mab.get_state()


def test_registration_rules():
    with pytest.raises(TypeError, match="subclass of bandits_jax.strategy.Strategy"):
        register_strategy(int)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(Named, name="another")

    class Other(ClassicBandit):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_strategy(Other, name="tests.Named")
    register_strategy(Named, name="tests.Named")  # again: a no-op

    def define():
        class Again(ClassicBandit):
            pass

        return Again

    first, second = define(), define()  # the same class defined twice (a rerun notebook cell)
    register_strategy(first)
    register_strategy(second)
    names = {v: k for k, v in registered_strategies().items()}
    assert second in names and first not in names


def test_a_refused_registration_changes_nothing():
    from bandits_jax.strategy import strategy_name

    def define():
        class Twice(ClassicBandit):
            pass

        return Twice

    first, second = define(), define()
    register_strategy(first, name="tests.twice.one")
    register_strategy(second, name="tests.twice.two")
    with pytest.raises(ValueError, match="already registered as"):
        register_strategy(second, name="tests.twice.one")  # the redefinition, already under another name
    assert strategy_name(first) == "tests.twice.one" and strategy_name(second) == "tests.twice.two"
