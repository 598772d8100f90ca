"""Persistence: save/load and get_state/from_state round trips are exact, writes are atomic, and
damaged, foreign or newer inputs are refused without loading anything."""

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandits_jax import __version__, core, persistence
from bandits_jax.cmab import CmabBernoulli
from bandits_jax.likelihoods import BernoulliStats
from bandits_jax.persistence import FORMAT_VERSION, ModelFormatError
from bandits_jax.smab import SmabBernoulli
from bandits_jax.strategy import BestActionIdentificationBandit, ClassicBandit
from bandits_jax.transfer import edit_model_on_the_fly


def trained_cmab(**kw):
    kw.setdefault("action_ids", ["a", "b", 3])
    kw.setdefault("n_features", 3)
    kw.setdefault("hidden_dim_list", [4])
    kw.setdefault("update_kwargs", {"num_steps": 5})
    kw.setdefault("random_seed", 0)
    mab = CmabBernoulli.cold_start(**kw)
    ctx = np.random.default_rng(0).normal(size=(12, mab.input_dim))
    actions, _, _ = mab.predict(ctx)
    mab.update(actions=actions, rewards=[1, 0, 0] * 4, context=ctx)
    return mab


def assert_same_model(a, b):
    assert type(a) is type(b)
    assert a.action_ids == b.action_ids
    assert [type(x) for x in a.action_ids] == [type(x) for x in b.action_ids]
    assert a.strategy == b.strategy
    assert getattr(a, "config", None) == getattr(b, "config", None)
    assert jax.tree.structure(a.state) == jax.tree.structure(b.state)
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bit for bit
    assert jax.random.key_impl(a._key) == jax.random.key_impl(b._key)
    np.testing.assert_array_equal(jax.random.key_data(a._key), jax.random.key_data(b._key))


def roundtrips(mab, tmp_path):
    """The model back from a file and from a state string."""
    path = tmp_path / "model.npz"
    mab.save(path)
    name, text = mab.get_state()
    assert name == type(mab).__name__
    json.loads(text)  # plain JSON
    return type(mab).load(path), type(mab).from_state(text)


# ---------------------------------------------------------------------------------- exact round trip
def test_cmab_round_trip_is_exact_and_continues_identically(tmp_path):
    mab = trained_cmab(strategy=BestActionIdentificationBandit(exploit_p=0.7))
    ctx = np.random.default_rng(1).normal(size=(9, 3))
    for copy in roundtrips(mab, tmp_path):
        assert_same_model(mab, copy)
        # same key: the same Thompson draws, then the same next update
        original = trained_cmab(strategy=BestActionIdentificationBandit(exploit_p=0.7))
        assert_same_model(original, mab)
        want, got = original.predict_arrays(ctx), copy.predict_arrays(ctx)
        for x, y in zip(want, got):
            np.testing.assert_array_equal(x, y)
        indices = got.action_indices
        actions = [copy.action_ids[i] for i in indices]
        info_want = original.update(actions=actions, rewards=[1, 0, 1] * 3, context=ctx)
        info_got = copy.update(actions=actions, rewards=[1, 0, 1] * 3, context=ctx)
        np.testing.assert_array_equal(info_want.losses, info_got.losses)
        assert_same_model(original, copy)


def test_smab_round_trip_is_exact_and_continues_identically(tmp_path):
    mab = SmabBernoulli.cold_start(
        [2, "x", "y"], strategy=BestActionIdentificationBandit(0.25), random_seed=3
    )
    mab.update(actions=["x", 2, 2, "y"], rewards=[1, 0, 1, 1])
    for copy in roundtrips(mab, tmp_path):
        assert_same_model(mab, copy)
        twin = SmabBernoulli.from_state(mab.get_state())  # the whole tuple is accepted too
        np.testing.assert_array_equal(twin.predict_arrays(16)[1], copy.predict_arrays(16)[1])


def test_evolved_model_survives_a_restart(tmp_path):
    """The state that transfer works on round-trips, and transfer works on a reloaded model."""
    v1 = trained_cmab(action_ids=["a", "b"], hidden_dim_list=None)
    v1.save(tmp_path / "v1.npz")
    template = CmabBernoulli.cold_start(["a", "b", "c"], n_features=4, random_seed=1)
    v2 = edit_model_on_the_fly(CmabBernoulli.load(tmp_path / "v1.npz"), template)
    assert_same_model(v2, edit_model_on_the_fly(v1, template))
    v2.save(tmp_path / "v2.npz")
    assert_same_model(v2, CmabBernoulli.load(tmp_path / "v2.npz"))


_configs = st.fixed_dictionaries(
    {
        "action_ids": st.lists(
            st.one_of(st.text(min_size=0, max_size=6), st.integers(-(2**70), 2**70)),
            min_size=1,
            max_size=4,
            unique=True,
        ),
        "n_features": st.integers(1, 4),
        "hidden_dim_list": st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=1, max_size=2)),
        "activation": st.sampled_from(["tanh", "relu", "sigmoid", "gelu"]),
        "use_residual_connections": st.booleans(),
        "dist_type": st.sampled_from(["normal", "studentt"]),
        "dist_params_init": st.fixed_dictionaries(
            {
                "mu": st.floats(-5, 5, allow_nan=False),
                "sigma": st.floats(1e-3, 100, allow_nan=False),
                "nu": st.floats(0.5, 50, allow_nan=False),
            }
        ),
        "update_kwargs": st.fixed_dictionaries(
            {
                "num_steps": st.integers(1, 500),
                "batch_size": st.one_of(st.none(), st.integers(1, 64)),
                "optimizer_kwargs": st.fixed_dictionaries(
                    {"step_size": st.floats(1e-4, 1.0)}, optional={"b1": st.floats(0.5, 0.99)}
                ),
                "gradient_clip_norm": st.one_of(st.none(), st.floats(0.1, 10)),
            }
        ),
        "strategy": st.one_of(
            st.just(ClassicBandit()),
            st.floats(0, 1).map(lambda p: BestActionIdentificationBandit(exploit_p=p)),
        ),
        "random_seed": st.integers(0, 2**31 - 1),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kw=_configs, seed=st.integers(0, 2**16))
def test_any_configuration_round_trips_exactly(tmp_path, kw, seed):
    mab = CmabBernoulli.cold_start(**kw)
    rng = np.random.default_rng(seed)
    s = mab.state  # random values: every position distinct, as after training
    state = core.CmabState(
        jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), s.loc),
        jax.tree.map(lambda x: jnp.asarray(rng.uniform(1e-3, 5, size=x.shape), x.dtype), s.scale),
        BernoulliStats(
            jnp.asarray(rng.integers(1, 2**31 - 1, s.n_actions), jnp.int32),
            jnp.asarray(rng.integers(1, 2**31 - 1, s.n_actions), jnp.int32),
        ),
    )
    mab = CmabBernoulli(
        action_ids=mab.action_ids, config=mab.config, state=state, strategy=mab.strategy, key=mab._key
    )
    for copy in roundtrips(mab, tmp_path):
        assert_same_model(mab, copy)


# ---------------------------------------------------------------------------------- atomic write
def _dir_listing(path):
    return sorted(os.listdir(path))


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_a_crash_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "model.npz"
    old = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    old.save(path)
    content = path.read_bytes()
    new = SmabBernoulli.cold_start(["a", "b", "c"], random_seed=1)

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(persistence.os, fail_at, crash)
    with pytest.raises(OSError, match="simulated crash"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == content
    assert _dir_listing(tmp_path) == ["model.npz"]  # no temporary file left behind
    assert SmabBernoulli.load(path).action_ids == ("a", "b")


def test_save_replaces_the_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "model.npz"
    SmabBernoulli.cold_start(["a"], random_seed=0).save(str(path))
    os.chmod(path, 0o640)
    SmabBernoulli.cold_start(["a", "b"], random_seed=0).save(path)
    assert SmabBernoulli.load(path).action_ids == ("a", "b")
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert _dir_listing(tmp_path) == ["model.npz"]


def test_file_is_plain_numeric_data_without_pickle(tmp_path):
    path = tmp_path / "model.npz"
    trained_cmab().save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[name].dtype.kind in "biuf" for name in archive.files)
        header = json.loads(archive["header"].tobytes())
    assert header["format_version"] == 2  # version 3 only for epsilon-greedy settings (test_controls)
    # version 4: soft rewards and forgetting (test_soft_rewards_decay); 5: Gaussian (test_gaussian)
    assert FORMAT_VERSION == 5
    assert header["library_version"] == __version__
    assert header["class"] == "CmabBernoulli"
    assert header["action_ids"] == ["a", "b", 3]
    assert header["config"]["hidden_dim_list"] == [4]
    assert header["strategy"] == {"class": "ClassicBandit", "fields": {}}
    assert len(header["counts"]["n_successes"]) == 3


def test_unsaveable_models_are_refused_before_writing(tmp_path):
    path = tmp_path / "model.npz"
    with pytest.raises(TypeError, match="action_ids"):
        SmabBernoulli.cold_start([("tuple", "id"), "b"], random_seed=0).save(path)
    with pytest.raises(TypeError, match="action_ids"):
        SmabBernoulli.cold_start([1.5, "b"], random_seed=0).get_state()

    class MyStrategy(ClassicBandit):
        pass

    with pytest.raises(TypeError, match="strategy"):
        SmabBernoulli.cold_start(["a"], strategy=MyStrategy(), random_seed=0).save(path)
    with pytest.raises(TypeError, match="path"):
        SmabBernoulli.cold_start(["a"], random_seed=0).save(42)
    assert _dir_listing(tmp_path) == []


# ---------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.npz"
    mab = trained_cmab()
    mab.save(path)
    return mab, path.read_bytes()


def test_truncated_files_are_refused(tmp_path, saved_bytes):
    mab, data = saved_bytes
    path = tmp_path / "cut.npz"
    for cut in [0, 1, 3, 10, 100, len(data) // 2, len(data) - 22, len(data) - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match="cannot load"):  # a ValueError
            CmabBernoulli.load(path)


def test_any_corrupted_byte_is_refused_or_harmless(tmp_path, saved_bytes):
    """Flipping a byte either raises ValueError or (zip metadata such as timestamps) loads the
    exact original; never a silently different model."""
    mab, data = saved_bytes
    path = tmp_path / "bad.npz"
    refused = 0
    for pos in range(0, len(data), max(1, len(data) // 300)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            copy = CmabBernoulli.load(path)
        except ValueError as err:
            assert "cannot load" in str(err)
            refused += 1
        else:
            assert_same_model(mab, copy)
    assert refused > 0


def _rewrite(data: bytes, edit) -> bytes:
    """The archive with its header edited by ``edit`` (checksum left as it was)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    header = json.loads(members["header"].tobytes())
    edit(header)
    members["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    out = io.BytesIO()
    np.savez(out, **members)
    return out.getvalue()


def test_wrong_class_is_refused(tmp_path, saved_bytes):
    mab, data = saved_bytes
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="holds a 'CmabBernoulli', not a 'SmabBernoulli'"):
        SmabBernoulli.load(path)
    with pytest.raises(ValueError, match="SmabBernoulli"):
        CmabBernoulli.from_state(SmabBernoulli.cold_start(["a"], random_seed=0).get_state()[1])
    with pytest.raises(ValueError, match="not a CmabBernoulli"):
        CmabBernoulli.from_state(("SmabBernoulli", mab.get_state()[1]))


def test_newer_format_version_is_refused(tmp_path, saved_bytes):
    mab, data = saved_bytes
    path = tmp_path / "future.npz"

    def future(header):
        header["format_version"] = FORMAT_VERSION + 1
        header["library_version"] = "99.0.0"

    path.write_bytes(_rewrite(data, future))
    with pytest.raises(ValueError, match=r"newer.*upgrade bandits_jax"):
        CmabBernoulli.load(path)
    header = json.loads(mab.get_state()[1])
    future(header)
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1} .*99.0.0"):
        CmabBernoulli.from_state(json.dumps(header))


def test_tampered_header_fails_the_checksum(tmp_path, saved_bytes):
    _, data = saved_bytes
    path = tmp_path / "model.npz"
    path.write_bytes(_rewrite(data, lambda h: h["config"].update(num_steps=7)))
    with pytest.raises(ValueError, match="checksum"):
        CmabBernoulli.load(path)


def test_pickled_members_are_refused(tmp_path, saved_bytes):
    _, data = saved_bytes
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    members["arr_0"] = np.array([{"evil": 1}], dtype=object)
    path = tmp_path / "pickle.npz"
    np.savez(path, **members)
    with pytest.raises(ValueError, match="cannot load"):
        CmabBernoulli.load(path)


def test_damaged_state_strings_are_refused(saved_bytes):
    mab, _ = saved_bytes
    text = mab.get_state()[1]
    header = json.loads(text)
    raw = bytearray(base64.b64decode(header["data"][0]))
    raw[0] ^= 1
    header["data"][0] = base64.b64encode(bytes(raw)).decode()
    for bad in [
        text[: len(text) // 2],
        json.dumps(header),
        text.replace('"counts":{"n_failures":[', '"counts":{"n_failures":[9'),
    ]:
        with pytest.raises(ValueError, match="cannot load state"):
            CmabBernoulli.from_state(bad)
    with pytest.raises(ValueError, match="not a bandits_jax model"):
        CmabBernoulli.from_state(json.dumps({"hello": 1}))
    with pytest.raises(TypeError, match="state"):
        CmabBernoulli.from_state(42)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        CmabBernoulli.load(tmp_path / "nothing.npz")


# ---------------------------------------------------------------------------------- forged content
def _index(header, name):
    return [spec["name"] for spec in header["arrays"]].index(name)


def _forge_file(data: bytes, edit, compression=zipfile.ZIP_STORED) -> bytes:
    """The archive after ``edit(header, arrays)``, re-signed with the module's own checksum."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        members = {name: archive[name].copy() for name in archive.files}
    header = json.loads(members["header"].tobytes())
    arrays = [members[f"arr_{i}"] for i in range(len(header["arrays"]))]
    edit(header, arrays)
    header["sha256"] = persistence._digest(header, arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        named = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
        named.update({f"arr_{i}": a for i, a in enumerate(arrays)})
        for name, a in named.items():
            with archive.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
    return out.getvalue()


def _forge_state(text: str, edit) -> str:
    """The state string after ``edit(header, arrays)``, re-signed with the module's own checksum."""
    header = json.loads(text)
    arrays = [
        np.frombuffer(base64.b64decode(d), np.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
        for spec, d in zip(header["arrays"], header.pop("data"))
    ]
    edit(header, arrays)
    header["sha256"] = persistence._digest(header, arrays)
    header["data"] = [base64.b64encode(np.ascontiguousarray(a).tobytes()).decode() for a in arrays]
    return json.dumps(header)


def _set(name, pos, value):
    def edit(header, arrays):
        arrays[_index(header, name)][pos] = value
        field = name.rsplit(".", 1)[-1]
        if field in ("n_successes", "n_failures"):  # keep the readable copy in the header in step
            header["counts"][field] = arrays[_index(header, name)].tolist()

    return edit


def _config(**fields):
    def edit(header, arrays):
        header["config"].update(fields)

    return edit


def _huge_manifest(header, arrays):
    """A config of 10**9 features and a manifest that agrees with it; the data stays small."""
    header["config"]["n_features"] = 10**9
    for spec in header["arrays"]:
        if spec["name"].endswith("layers[0].weight"):
            spec["shape"][1] = 10**9


def _key_shape(header, arrays):
    arrays[-1] = np.zeros(3, np.uint32)
    header["arrays"][-1]["shape"] = [3]


_FORGERIES = {
    "nan weight": (_set(".loc.layers[0].weight", (0, 0, 0), np.nan), r"\.loc\.layers\[0\]\.weight.*finite"),
    "inf bias": (_set(".loc.layers[1].bias", (1, 0), -np.inf), r"\.loc\.layers\[1\]\.bias.*finite"),
    "nan scale": (_set(".scale.layers[0].bias", (2, 1), np.nan), r"\.scale\.layers\[0\]\.bias.*finite"),
    "negative scale": (_set(".scale.layers[1].bias", (1, 0), -0.5), r"\.scale\.layers\[1\]\.bias.*> 0"),
    "zero scale": (_set(".scale.layers[0].weight", (0, 1, 2), 0.0), r"\.scale\.layers\[0\]\.weight.*> 0"),
    "negative count": (_set(".stats.n_failures", 2, -4), r"\.n_failures.*>= 1"),
    "zero count": (_set(".stats.n_successes", 0, 0), r"\.n_successes.*>= 1"),
    "action id of no saveable type": (lambda h, a: h["action_ids"].__setitem__(0, None), "action_ids"),
    "unknown key implementation": (lambda h, a: h.update(key_impl="nope"), "key_impl 'nope'"),
    "key data of the wrong shape": (_key_shape, r"key data is uint32\[3\]"),
    "shapes of another config": (_config(n_features=4), r"layers\[0\]\.weight.*config"),
    "config of 10**9 features": (_config(n_features=10**9), r"layers\[0\]\.weight.*config"),
    "manifest of 10**9 features": (_huge_manifest, r"\.loc\.layers\[0\]\.weight.*(manifest|base64)"),
}


@pytest.mark.parametrize("forgery", list(_FORGERIES))
def test_forged_content_with_a_recomputed_checksum_is_refused(tmp_path, saved_bytes, forgery):
    """A hand-edited file or state string with a valid checksum still loads nothing bad: values
    are finite, scales > 0, counts >= 1, shapes those of the config's model, the key valid."""
    edit, message = _FORGERIES[forgery]
    mab, data = saved_bytes
    path = tmp_path / "forged.npz"
    path.write_bytes(_forge_file(data, edit))
    start = time.perf_counter()
    with pytest.raises(ModelFormatError, match=message):
        CmabBernoulli.load(path)
    with pytest.raises(ModelFormatError, match=message):
        CmabBernoulli.from_state(_forge_state(mab.get_state()[1], edit))
    assert time.perf_counter() - start < 30  # nothing of the 10**9-feature model is allocated


def test_forged_smab_counts_are_refused(tmp_path):
    mab = SmabBernoulli.cold_start(["a", "b"], random_seed=0)
    mab.save(tmp_path / "model.npz")
    for value in (-1, 0):  # Beta(0, b) is undefined: its draws would be NaN
        edit = _set(".n_successes", 1, value)
        (tmp_path / "forged.npz").write_bytes(_forge_file((tmp_path / "model.npz").read_bytes(), edit))
        with pytest.raises(ModelFormatError, match=r"\.n_successes.*>= 1"):
            SmabBernoulli.load(tmp_path / "forged.npz")
        with pytest.raises(ModelFormatError, match=r"\.n_successes.*>= 1"):
            SmabBernoulli.from_state(_forge_state(mab.get_state()[1], edit))


def test_forgeries_are_built_correctly(tmp_path, saved_bytes):
    """The forging helpers themselves: without an edit they give a model that loads exactly."""
    mab, data = saved_bytes
    path = tmp_path / "same.npz"
    path.write_bytes(_forge_file(data, lambda h, a: None, compression=zipfile.ZIP_DEFLATED))
    assert_same_model(mab, CmabBernoulli.load(path))
    assert_same_model(mab, CmabBernoulli.from_state(_forge_state(mab.get_state()[1], lambda h, a: None)))


_BOMB_BYTES = 256 << 20


def _bomb(data: bytes, member: str) -> bytes:
    """The archive with ``member`` replaced by a deflated .npy of 256 MiB of zeros (about 250 kB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != f"{member}.npy":
                dst.writestr(info, src.read(info))
                continue
            dst.compression = zipfile.ZIP_DEFLATED
            with dst.open(info.filename, "w", force_zip64=True) as f:
                dtype = "|u1" if member == "header" else "<f4"
                n = _BOMB_BYTES // np.dtype(dtype).itemsize
                np.lib.format.write_array_header_1_0(
                    f, {"descr": dtype, "fortran_order": False, "shape": (n,)}
                )
                chunk = bytes(1 << 20)
                for _ in range(_BOMB_BYTES >> 20):
                    f.write(chunk)
            dst.compression = zipfile.ZIP_STORED
    return out.getvalue()


@pytest.mark.parametrize("member", ["arr_0", "header"])
def test_a_deflate_bomb_is_refused_before_inflating(tmp_path, saved_bytes, member):
    _, data = saved_bytes
    path = tmp_path / "bomb.npz"
    path.write_bytes(_bomb(data, member))
    assert path.stat().st_size < _BOMB_BYTES // 100
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(ModelFormatError, match=f"{member}.*bytes"):
            CmabBernoulli.load(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < _BOMB_BYTES // 20, f"{peak / 2**20:.0f} MiB allocated to refuse it"
    assert elapsed < 5


def test_an_oversized_base64_string_is_refused_before_decoding(saved_bytes):
    mab, _ = saved_bytes
    header = json.loads(mab.get_state()[1])
    header["data"][0] = "A" * (32 << 20)  # valid base64 of 24 MiB, for an array of 48 bytes
    text = json.dumps(header)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=r"\.loc\.layers\[0\]\.weight.*base64"):
            CmabBernoulli.from_state(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # parsing the JSON copies the string once; decoding it would add 24 MiB more
    assert peak < len(text) + (8 << 20), f"{peak / 2**20:.0f} MiB allocated to refuse it"


# ---------------------------------------------------------------------------------- temporaries
_TMP = ".bandits-jax-tmp"
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.Popen(
        cmd, cwd=_REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process any more
    return child.pid


def test_a_save_removes_the_temporaries_of_dead_writers_only(tmp_path):
    path = tmp_path / "model.npz"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = _dead_pid()
        stale = f".model.npz.{dead}.k3x_9q1z{_TMP}"
        kept = [
            f".model.npz.{sleeper.pid}.abcd1234{_TMP}",  # a live writer in another process
            f".model.npz.{os.getpid()}.abcd1234{_TMP}",  # a live writer in this one (another thread)
            f".other.npz.{dead}.abcd1234{_TMP}",  # another target's
            f".model.npz.7.{dead}.abcd1234{_TMP}",  # the target model.npz.7's
            f".model.npz.{dead}.abcd1234.tmp",  # not named by the scheme
            "notes.txt",
        ]
        for name in [stale, *kept]:
            (tmp_path / name).write_bytes(b"x" * 1000)
        SmabBernoulli.cold_start(["a"], random_seed=0).save(path)
        assert _dir_listing(tmp_path) == sorted(["model.npz", *kept])
        assert SmabBernoulli.load(path).action_ids == ("a",)
    finally:
        sleeper.kill()
        sleeper.wait()


_STOPPED_WRITER = """
import sys, time
from bandits_jax import persistence
from bandits_jax.smab import SmabBernoulli

def stop(tmp, path):  # the temporary is written and synced; the process dies before the rename
    print("written", flush=True)
    time.sleep(120)

persistence.os.replace = stop
SmabBernoulli.cold_start(list(range(100_000)), random_seed=0).save(sys.argv[1])
"""


def test_a_writer_killed_mid_save_leaves_nothing_after_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    SmabBernoulli.cold_start(["old"], random_seed=0).save(path)
    child = _python(_STOPPED_WRITER, path)
    try:
        assert child.stdout.readline() == "written\n", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
    leftovers = [name for name in _dir_listing(tmp_path) if name != "model.npz"]
    assert len(leftovers) == 1 and (tmp_path / leftovers[0]).stat().st_size > 100_000
    assert SmabBernoulli.load(path).action_ids == ("old",)
    SmabBernoulli.cold_start(["new"], random_seed=0).save(path)
    assert _dir_listing(tmp_path) == ["model.npz"]
    assert SmabBernoulli.load(path).action_ids == ("new",)


def test_saving_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    SmabBernoulli.cold_start(["old"], random_seed=0).save(real / "model.npz")
    os.chmod(real / "model.npz", 0o640)
    link = links / "current.npz"
    link.symlink_to(os.path.join("..", "real", "model.npz"))
    SmabBernoulli.cold_start(["a", "b"], random_seed=0).save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "real", "model.npz")
    assert SmabBernoulli.load(real / "model.npz").action_ids == ("a", "b")
    assert os.stat(real / "model.npz").st_mode & 0o777 == 0o640
    dangling = links / "next.npz"  # a link to a file not yet there: the file is made there
    dangling.symlink_to(real / "next.npz")
    SmabBernoulli.cold_start(["c"], random_seed=0).save(dangling)
    assert dangling.is_symlink() and SmabBernoulli.load(real / "next.npz").action_ids == ("c",)
    assert _dir_listing(real) == ["model.npz", "next.npz"]
    assert _dir_listing(links) == ["current.npz", "next.npz"]


_LOOP_WRITER = """
import sys
from bandits_jax.smab import SmabBernoulli

mab = SmabBernoulli.cold_start(list(range(20_000)), random_seed=1)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    mab.save(sys.argv[1])
"""


def test_concurrent_writers_to_one_path_all_succeed(tmp_path):
    """Two processes, one of them with two threads, save to one path at once: every save succeeds
    (none removes a live writer's temporary) and the file is always one whole model."""
    path = tmp_path / "model.npz"
    child = _python(_LOOP_WRITER, path, 40)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    errors = []

    def write(n_actions):
        mab = SmabBernoulli.cold_start(list(range(n_actions)), random_seed=0)
        try:
            for _ in range(20):
                mab.save(path)
                assert len(SmabBernoulli.load(path).action_ids) in (10_000, 20_000, 30_000)
        except BaseException as err:  # reported below, from the main thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in (10_000, 30_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert errors == []
    assert len(SmabBernoulli.load(path).action_ids) in (10_000, 20_000, 30_000)
    assert _dir_listing(tmp_path) == ["model.npz"]
