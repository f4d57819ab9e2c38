"""save/load and pickle bring a network back exactly; damaged files are refused."""

import os
import pickle
import stat
import sys

import numpy as np
import pytest

from cyprop import ModelFileError, Network

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
    with pytest.raises(ModelFileError, match="holds .* bytes of parameters"):
        Network.load(tmp_path / "bad")
    header["activations"] = ["tanh", "gelu", "relu"]
    _persistence.write_model(tmp_path / "bad", header, net._params)
    with pytest.raises(ModelFileError, match="invalid header.*gelu"):
        Network.load(tmp_path / "bad")


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
