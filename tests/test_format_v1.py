"""Files written by format version 1 (committed in tests/data, made by bandits_jax 0.1.0 before the
policy refactor) load forever: same counts, same posterior, same next Thompson draw."""

from pathlib import Path

import numpy as np
import pytest

from bandits_jax.cmab import CmabBernoulli
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("source", ["file", "state"])
def test_cmab_v1_loads_exactly(source):
    if source == "file":
        mab = CmabBernoulli.load(DATA / "cmab_v1.npz")
    else:
        mab = CmabBernoulli.from_state((DATA / "cmab_v1.json").read_text())
    assert mab.action_ids == ("a", "b", 7)
    assert mab.hidden_dim_list == [4] and mab.input_dim == 3
    assert mab.strategy == BestActionIdentificationBandit(exploit_p=0.7)
    counts = [(mab.actions[a].n_successes, mab.actions[a].n_failures) for a in mab.action_ids]
    assert sum(s + f for s, f in counts) == 30 + 2 * 3
    expected = np.load(DATA / "cmab_v1_expected.npz")
    np.testing.assert_array_equal(
        mab.posterior_mean_logits(expected["context"]), expected["posterior_mean_logits"]
    )
    np.testing.assert_array_equal(mab.predict_arrays(expected["context"]).probs, expected["probs"])


@pytest.mark.parametrize("source", ["file", "state"])
def test_smab_v1_loads_exactly(source):
    if source == "file":
        mab = SmabBernoulli.load(DATA / "smab_v1.npz")
    else:
        mab = SmabBernoulli.from_state((DATA / "smab_v1.json").read_text())
    assert mab.action_ids == ("x", "y")
    assert (mab.actions["x"].n_successes, mab.actions["x"].n_failures) == (2, 2)
    assert (mab.actions["y"].n_successes, mab.actions["y"].n_failures) == (2, 1)
