"""save/load and pickle bring a network back exactly; damaged files are refused."""

import functools
import hashlib
import json
import os
import pickle
import stat
import struct
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyprop import ModelFileError, Network
from cyprop._persistence import MAGIC

X = np.random.default_rng(0).standard_normal((20, 3))
Y = np.random.default_rng(1).uniform(size=(20, 2))


def trained(dtype="float64", **options):
    net = Network([3, 5, 4, 2], activation=["tanh", "relu"], output_activation="sigmoid",
                  dtype=dtype, seed=4, **options)
    net.fit(X, Y, epochs=3, learning_rate=0.1, batch_size=6)
    return net


def assert_identical(a, b):
    assert type(b) is Network
    assert (a.layer_sizes, a.activations, a.loss_name, a.reduction, a.dtype) == (
        b.layer_sizes, b.activations, b.loss_name, b.reduction, b.dtype)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p, q)
    # The shuffling generator comes back too: continued training is identical.
    a.fit(X, Y, epochs=2, learning_rate=0.1, batch_size=6)
    b.fit(X, Y, epochs=2, learning_rate=0.1, batch_size=6)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_save_and_load_round_trip(tmp_path, dtype, reduction):
    net = trained(dtype, reduction=reduction)
    path = tmp_path / "model.cyprop"
    net.save(path)
    loaded = Network.load(str(path))
    assert_identical(net, loaded)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pickle_round_trip(dtype):
    net = trained(dtype)
    clone = pickle.loads(pickle.dumps(net))
    assert_identical(net, clone)
    # The views still point into the clone's own parameters.
    clone.weights[0][0, 0] = 123.0
    assert clone.predict(X[:1]).tobytes() != net.predict(X[:1]).tobytes()


def test_a_pickle_carries_the_optimizer_state_and_a_model_file_does_not(tmp_path):
    net = Network([3, 5, 2], activation="tanh", output_activation="identity", seed=2)
    net.fit(X, Y, epochs=3, batch_size=6, optimizer="adam")
    clone = pickle.loads(pickle.dumps(net))
    net.save(tmp_path / "m")
    loaded = Network.load(tmp_path / "m")
    for network in (net, clone, loaded):
        network.fit(X, Y, epochs=2, batch_size=6, optimizer="adam")
    np.testing.assert_array_equal(clone.weights[0], net.weights[0])
    # Adam's moments start from zero again after load: a different step.
    assert not np.allclose(loaded.weights[0], net.weights[0], rtol=1e-6, atol=0)


def test_loaded_weights_are_live_views(tmp_path):
    net = trained()
    net.save(tmp_path / "m")
    loaded = Network.load(tmp_path / "m")
    loaded.biases[-1][...] = -50
    assert loaded.predict(X).max() < 1e-10


def test_save_replaces_an_existing_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model"
    trained().save(path)
    other = Network([2, 1], seed=0)
    other.save(path)
    assert Network.load(path).layer_sizes == (2, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model"
    trained().save(path)
    return path


def test_bit_flip_is_refused(saved):
    content = bytearray(saved.read_bytes())
    for position in (10, len(content) // 2, len(content) - 40, len(content) - 1):
        damaged = bytearray(content)
        damaged[position] ^= 0x10
        saved.write_bytes(bytes(damaged))
        with pytest.raises(ModelFileError, match="damaged|not a cyprop"):
            Network.load(saved)


def test_truncation_is_refused(saved):
    content = saved.read_bytes()
    for length in (0, 5, 20, len(content) // 2, len(content) - 1):
        saved.write_bytes(content[:length])
        with pytest.raises(ModelFileError):
            Network.load(saved)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="not a cyprop model file"):
        Network.load(path)


def test_newer_format_version_is_refused(tmp_path, monkeypatch):
    from cyprop import _persistence

    monkeypatch.setattr(_persistence, "FORMAT_VERSION", 99)
    trained().save(tmp_path / "future")
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="version 99; this cyprop reads version 1"):
        Network.load(tmp_path / "future")


def test_inconsistent_header_is_refused(tmp_path, monkeypatch):
    from cyprop import _persistence

    net = trained()
    header = {**net._config(), "layer_sizes": [3, 5, 4, 3], "n_parameters": net.n_parameters,
              "rng_state": net._rng.bit_generator.state}
    _persistence.write_model(tmp_path / "bad", header, net._params)
    with pytest.raises(ModelFileError, match=r"its layer sizes \[3, 5, 4, 3\] need 59 parameters "
                       r"\(472 bytes\), but it holds 54 \(432 bytes of parameters\)"):
        Network.load(tmp_path / "bad")
    header["activations"] = ["tanh", "gelu", "relu"]
    _persistence.write_model(tmp_path / "bad", header, net._params)
    with pytest.raises(ModelFileError, match="invalid header.*gelu"):
        Network.load(tmp_path / "bad")


def test_more_parameters_than_the_layers_need_are_not_read_into_memory(tmp_path,
                                                                        monkeypatch):
    from cyprop import _persistence

    net = Network([2, 3, 1], seed=0)
    header = {**net._config(), "n_parameters": 100_000,
              "rng_state": net._rng.bit_generator.state}
    _persistence.write_model(tmp_path / "bad", header, np.zeros(100_000))
    hash_rest = _persistence._hash_rest
    kept = []

    def recording(stream, hasher, limit, keep):
        kept.append(keep)
        return hash_rest(stream, hasher, limit, keep)

    monkeypatch.setattr(_persistence, "_hash_rest", recording)
    with pytest.raises(ModelFileError, match=r"invalid header: its layer sizes \[2, 3, 1\] "
                       r"need 13 parameters, but it gives n_parameters as 100,000"):
        Network.load(tmp_path / "bad")
    assert kept == [False]


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        Network.load("/nonexistent/model.cyprop")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_has_the_permissions_of_an_ordinary_file(tmp_path):
    path = tmp_path / "model"
    trained().save(path)
    (tmp_path / "other").write_bytes(b"")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "other").st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saving_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "model"
    trained().save(path)
    os.chmod(path, 0o600)
    Network([2, 1], seed=0).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Network.load(path).layer_sizes == (2, 1)


@pytest.mark.skipif(not hasattr(os, "chown"), reason="POSIX owners")
def test_saving_over_a_file_keeps_its_owner_where_it_may(tmp_path):
    path = tmp_path / "model"
    trained().save(path)
    try:
        os.chown(path, 4321, 4321)
    except PermissionError:
        pytest.skip("giving a file to another owner needs root")
    Network([2, 1], seed=0).save(path)
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (4321, 4321)


def test_saving_over_a_file_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    # os.access stands in for a file without write permission, which root could
    # still write; os.replace would take its place regardless.
    path = tmp_path / "model"
    trained().save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "access", lambda target, mode: False)
    with pytest.raises(PermissionError) as caught:
        Network([2, 1], seed=0).save(path)
    assert caught.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges")
def test_saving_to_a_symbolic_link_replaces_the_file_it_names(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1"
    trained().save(target)
    link = tmp_path / "current"
    link.symlink_to(target)
    Network([2, 1], seed=0).save(link)
    assert link.is_symlink()
    assert Network.load(target).layer_sizes == (2, 1)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["v1"]


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_network_with_a_non_finite_parameter_is_not_saved(tmp_path, value):
    net = Network([2, 3, 1], seed=0)
    net.biases[0][1] = value
    with pytest.raises(ValueError, match="parameter 7 of the network is NaN or infinite"):
        net.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


# --- crafted files: the checksum is unkeyed, so anyone can write a valid one ---


def craft(path, header=None, payload=None, raw_header=None):
    """Write a model file with a valid checksum around any header and payload."""
    net = Network([2, 3, 1], seed=0)
    if header is None:
        header = {"format_version": 1, **net._config(), "n_parameters": net.n_parameters,
                  "rng_state": net._rng.bit_generator.state}
    header_bytes = raw_header if raw_header is not None else json.dumps(header).encode()
    if payload is None:
        payload = net._params.astype("<f8").tobytes()
    body = MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + payload
    path.write_bytes(body + hashlib.sha256(body).digest())
    return path


def good_header(**changes):
    net = Network([2, 3, 1], seed=0)
    return {"format_version": 1, **net._config(), "n_parameters": net.n_parameters,
            "rng_state": net._rng.bit_generator.state, **changes}


def test_a_crafted_file_with_the_defaults_loads(tmp_path):
    # The helper itself writes what save writes.
    assert Network.load(craft(tmp_path / "m")).layer_sizes == (2, 3, 1)


def test_deeply_nested_header_is_refused(tmp_path):
    path = craft(tmp_path / "m", raw_header=b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ModelFileError, match="header: it is not JSON .*nested too deeply"):
        Network.load(path)


def test_header_with_too_many_digits_is_refused(tmp_path):
    path = craft(tmp_path / "m", raw_header=b'{"n_parameters": ' + b"9" * 5000 + b"}")
    with pytest.raises(ModelFileError, match="invalid header: it is not JSON"):
        Network.load(path)


@pytest.mark.parametrize(("sizes", "n_parameters", "message"), [
    # 15 GiB of float64 parameters asked for by a file of a few hundred bytes.
    ([50_000, 40_000, 1], 13, r"its layer sizes \[50000, 40000, 1\] need 2,000,080,001 parameters "
     r"\(16,000,640,008 bytes\), but it holds 13 \(104 bytes of parameters\)"),
    ([40_000, 40_000, 1], 1_600_080_001, r"header gives 1,600,080,001 float64 parameters "
     r"\(12,800,640,008 bytes, 12,800,640,040 with the checksum\), but 136 bytes follow"),
    ([100_000] * 3, 20_000_200_000, r"n_parameters is 20,000,200,000; a network has between 1 "
     r"and 2,147,483,647 parameters"),
    ([100_000] * 3, 13, r"layer_sizes \[100000, 100000, 100000\] need 20,000,200,000 weights"),
])
def test_huge_layer_sizes_are_refused_before_allocating(tmp_path, monkeypatch, sizes,
                                                        n_parameters, message):
    def no_allocation(self, *args):
        raise AssertionError("load allocated parameters")

    path = craft(tmp_path / "m", good_header(layer_sizes=sizes, activations=["sigmoid"] * 2,
                                             n_parameters=n_parameters))
    monkeypatch.setattr(Network, "_configure", no_allocation)
    assert path.stat().st_size < 1000
    with pytest.raises(ModelFileError, match=message):
        Network.load(path)


@pytest.mark.parametrize("state, extra", [
    ({"state": 2**200, "inc": 1}, {}),
    ({"state": -1, "inc": 1}, {}),
    ({"state": 1, "inc": 2**128}, {}),
    ({"state": 1, "inc": -3}, {}),
    ({"state": 1.5, "inc": 1}, {}),
    ({"state": 1, "inc": 1}, {"has_uint32": 2}),
    ({"state": 1, "inc": 1}, {"uinteger": -1}),
    ({"state": 1, "inc": 1}, {"uinteger": 2**32}),
])
def test_out_of_range_generator_state_is_refused(tmp_path, state, extra):
    """Refused by cyprop itself: numpy 1.x wraps negative integers with only a warning."""
    rng_state = {"bit_generator": "PCG64", "state": state, "has_uint32": 0, "uinteger": 0,
                 **extra}
    path = craft(tmp_path / "m", good_header(rng_state=rng_state))
    with pytest.raises(ModelFileError, match="invalid generator state"):
        Network.load(path)


def test_out_of_range_integers_in_the_header_are_refused(tmp_path):
    rng_state = {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1},
                 "has_uint32": 2**70, "uinteger": 0}
    with pytest.raises(ModelFileError, match="invalid generator state"):
        Network.load(craft(tmp_path / "m", good_header(rng_state=rng_state)))
    with pytest.raises(ModelFileError, match="layer_sizes"):
        Network.load(craft(tmp_path / "m", good_header(layer_sizes=[2, 2**64, 1])))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused(tmp_path, value):
    params = Network([2, 3, 1], seed=0)._params.copy()
    params[4] = value
    path = craft(tmp_path / "m", payload=params.astype("<f8").tobytes())
    with pytest.raises(ModelFileError, match="parameter 4 is NaN or infinite"):
        Network.load(path)


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_format_version_must_be_the_integer_1(tmp_path, version):
    path = craft(tmp_path / "m", good_header(format_version=version))
    with pytest.raises(ModelFileError, match=f"format version {version!r}; this cyprop reads"):
        Network.load(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"n_parameters": True}, "n_parameters must be an integer, got True"),
    ({"n_parameters": 0}, "n_parameters is 0"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64', got 'float16'"),
    ({"loss": 3}, "loss must be a string"),
])
def test_invalid_header_values_are_refused(tmp_path, changes, message):
    with pytest.raises(ModelFileError, match=f"invalid header: {message}"):
        Network.load(craft(tmp_path / "m", good_header(**changes)))


@pytest.mark.parametrize("key", ["layer_sizes", "activations", "loss", "rng_state"])
def test_missing_header_keys_are_named(tmp_path, key):
    header = good_header()
    del header[key]
    with pytest.raises(ModelFileError, match=f"invalid header: it has no '{key}'"):
        Network.load(craft(tmp_path / "m", header))


def test_header_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="invalid header: it is not a mapping"):
        Network.load(craft(tmp_path / "m", raw_header=b"[1, 2]"))


def test_data_after_the_parameters_is_refused(tmp_path):
    path = craft(tmp_path / "m", payload=bytes(13 * 8 + 5000))
    with pytest.raises(ModelFileError, match="but more than 136 bytes follow the header"):
        Network.load(path)


def test_magic_is_checked_before_reading_on(tmp_path, monkeypatch):
    from cyprop import _persistence

    reads = []
    original = _persistence._read_at_most

    def counting(stream, size):
        reads.append(size)
        return original(stream, size)

    monkeypatch.setattr(_persistence, "_read_at_most", counting)
    path = tmp_path / "big"
    path.write_bytes(b"x" * 5_000_000)
    with pytest.raises(ModelFileError, match="not a cyprop model file"):
        Network.load(path)
    assert reads == [12]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_file_is_refused():
    with pytest.raises(ModelFileError, match="/dev/zero is not a cyprop model file"):
        Network.load("/dev/zero")


def test_huge_header_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(MAGIC + struct.pack("<I", 2**32 - 1) + b"{}")
    with pytest.raises(ModelFileError, match="its header would take 4,294,967,295 bytes"):
        Network.load(path)


@pytest.mark.parametrize("path", [123, 3.5, None, ["model"]])
def test_load_save_and_export_need_a_path(path):
    with pytest.raises(TypeError, match="path must be a file path"):
        Network.load(path)
    with pytest.raises(TypeError, match="path must be a file path"):
        Network([2, 1]).save(path)
    with pytest.raises(TypeError, match="path must be a file path"):
        Network([2, 1]).to_onnx(path)


def test_export_refuses_a_file_descriptor(tmp_path):
    with open(tmp_path / "other.txt", "w+") as other:
        other.write("kept\n")
        other.flush()
        with pytest.raises(TypeError, match="path must be a file path"):
            Network([2, 1]).to_onnx(other.fileno())
        other.seek(0)
        assert other.read() == "kept\n"


def test_failed_save_names_the_given_path(tmp_path):
    path = tmp_path / "no" / "such" / "folder" / "model"
    with pytest.raises(FileNotFoundError) as caught:
        Network([2, 1]).save(path)
    assert caught.value.filename == str(path)
    assert ".tmp" not in str(caught.value)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(OSError) as caught:
        Network([2, 1]).save(folder)
    assert caught.value.filename == str(folder)
    assert list(tmp_path.iterdir()) == [folder]


@functools.cache
def saved_bytes():
    """The bytes of a saved float32 network, written once."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "m")
        trained("float32").save(path)
        with open(path, "rb") as stream:
            return stream.read()


@st.composite
def damaged(draw):
    content = bytearray(saved_bytes())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        position = draw(st.integers(0, max(len(content) - 1, 0)))
        if kind == "truncate":
            del content[position:]
        elif kind == "flip" and content:
            content[position] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            content[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif content:
            del content[position:position + draw(st.integers(1, 8))]
    return bytes(content)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=damaged())
def test_damaged_files_raise_model_file_error_or_load_exactly(tmp_path, content):
    original = Network.load(_write(tmp_path / "original", saved_bytes()))
    path = _write(tmp_path / "damaged", content)
    try:
        loaded = Network.load(path)
    except ModelFileError:
        return
    for p, q in zip(original.weights + original.biases, loaded.weights + loaded.biases):
        assert p.dtype == q.dtype and p.tobytes() == q.tobytes()


def _write(path, content):
    path.write_bytes(content)
    return path
