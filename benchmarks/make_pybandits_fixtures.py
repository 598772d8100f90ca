"""Write the PyBandits 8.4.1 fixtures that tests/test_pybandits_migration.py reads.

    python benchmarks/make_pybandits_fixtures.py          # uses (and if needed creates) the venv

Runs real PyBandits 8.4.1 in its own virtual environment (``benchmarks/.pybandits-venv``, as
``compare_pybandits.py`` makes it) and commits its output as data, so the tests need no PyBandits:
for each model a JSON file in ``tests/data/pybandits/`` with PyBandits' ``get_state()`` after a few
updates on fixed data, a context, and PyBandits' own posterior-mean logits on that context (its
``forward_pass`` with every weight at its ``mu``), or for the sMAB the Beta counts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "pybandits"

CHILD = r"""
import json, sys
import numpy as np
from pybandits.cmab import CmabBernoulli
from pybandits.smab import SmabBernoulli
from pybandits.strategy import BestActionIdentificationBandit

out = sys.argv[1]
rng = np.random.default_rng(0)


def mean_logits(mab, context):
    cols = []
    for aid, model in mab.actions.items():
        n = len(context)
        weights = [
            (np.repeat(np.asarray(l.weight.params["mu"])[None], n, 0), np.repeat(np.asarray(l.bias.params["mu"])[None], n, 0))
            for l in model.model_params.bnn_layer_params
        ]
        cols.append((aid, [float(ws) for _, ws in model.forward_pass(weights, context)]))
    return {aid: col for aid, col in cols}


def cmab(name, update_rounds=2, soft=False, **kwargs):
    mab = CmabBernoulli.cold_start(**kwargs)
    n_features = kwargs["n_features"]
    ids = sorted(mab.actions)
    for _ in range(update_rounds):
        x = rng.normal(size=(40, n_features))
        actions = [ids[i % len(ids)] for i in range(40)]
        rewards = rng.uniform(size=40).round(3).tolist() if soft else rng.integers(0, 2, 40).tolist()
        mab.update(context=x, actions=actions, rewards=rewards)
    context = rng.normal(size=(16, n_features))
    cls, state = mab.get_state()
    data = {"class": cls, "state": state, "context": context.tolist(), "mean_logits": mean_logits(mab, context)}
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(data, f, indent=1)


cmab("cmab_studentt_hidden", action_ids={"a", "b", "c"}, n_features=3, hidden_dim_list=[4],
     update_kwargs={"num_steps": 30, "optimizer_kwargs": {"step_size": 0.01}})
cmab("cmab_normal_residual_epsilon", action_ids={"x", "y"}, n_features=2, hidden_dim_list=[3, 3],
     use_residual_connections=True, dist_type="normal", dist_params_init={"mu": 0.0, "sigma": 2.0},
     update_kwargs={"num_steps": 20, "optimizer_kwargs": {"step_size": 0.05}, "restore_best_svi_state": False},
     epsilon=0.1, default_action="x")
cmab("cmab_linear_bai", action_ids={"p", "q"}, n_features=4, strategy=BestActionIdentificationBandit(exploit_p=0.7),
     update_kwargs={"num_steps": 10})
cmab("cmab_soft_decay", action_ids={"g", "h"}, n_features=2, hidden_dim_list=[3], use_soft_rewards=True,
     decay_factor=0.9, update_kwargs={"num_steps": 20, "optimizer_kwargs": {"step_size": 0.01}}, soft=True)

smab = SmabBernoulli.cold_start(action_ids={"s1", "s2", "s3"}, epsilon=0.2, limited_actions={"s3"}, limited_action_fraction=0.5)
smab.update(actions=["s1", "s2", "s1", "s3"], rewards=[1, 0, 1, 1])
cls, state = smab.get_state()
counts = {aid: [m.n_successes, m.n_failures] for aid, m in smab.actions.items()}
with open(f"{out}/smab_epsilon_limited.json", "w") as f:
    json.dump({"class": cls, "state": state, "counts": counts}, f, indent=1)

# soft rewards and forgetting: the state after two updates, then one more update and the raw and
# decayed counts PyBandits holds after it
smab = SmabBernoulli.cold_start(action_ids={"u", "v", "w"}, use_soft_rewards=True, decay_factor=0.8)
for _ in range(2):
    smab.update(actions=["u", "v", "u", "u", "v"], rewards=rng.uniform(size=5).round(3).tolist())
cls, state = smab.get_state()
following = {"actions": ["u", "u", "w", "v"], "rewards": rng.uniform(size=4).round(3).tolist()}
smab.update(**following)
after = {
    aid: [m.n_successes, m.n_failures, m.decayed_n_successes, m.decayed_n_failures] for aid, m in smab.actions.items()
}
with open(f"{out}/smab_soft_decay.json", "w") as f:
    json.dump({"class": cls, "state": state, "next_update": following, "counts_after": after}, f, indent=1)
print("wrote fixtures to", out)
"""


def main() -> None:
    sys.path.insert(0, str(HERE))
    from compare_pybandits import child_env, ensure_pybandits_venv

    py = ensure_pybandits_venv()
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(py), "-c", CHILD, str(OUT)], check=True, env=child_env("pybandits"))


if __name__ == "__main__":
    main()
