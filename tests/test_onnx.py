"""The ONNX export, run by onnxruntime, matches predict."""

import numpy as np
import pytest

from cyprop import Network

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

TOLERANCE = {"float64": 1e-6, "float32": 1e-5}


def run_onnx(path, X):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["Y"], {"X": X})[0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("output", ["sigmoid", "tanh", "relu", "leaky_relu", "identity",
                                    "softmax"])
def test_export_matches_predict(tmp_path, dtype, hidden, output):
    net = Network([6, 9, 7, 4], activation=hidden, output_activation=output, dtype=dtype,
                  seed=3)
    for b in net.biases:  # non-zero biases, so that Add is exercised
        b[...] = np.linspace(-0.5, 0.5, b.size)
    X = np.random.default_rng(0).standard_normal((33, 6)).astype(dtype) * 2
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    got = run_onnx(path, X)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, net.predict(X), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_leaky_relu_slope_is_the_networks_own(tmp_path, dtype):
    """ONNX's LeakyRelu holds its slope in float32: a float64 export must not use it,
    or every negative pre-activation is scaled by 0.0099999998 instead of 0.01."""
    net = Network([4, 8, 3], activation="leaky_relu", output_activation="leaky_relu",
                  dtype=dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((500, 4)).astype(dtype) * 1e3
    path = tmp_path / "leaky.onnx"
    net.to_onnx(path)
    expected = net.predict(X)
    assert (expected < 0).any()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(run_onnx(path, X), expected, rtol=0,
                               atol=scale * (1e-12 if dtype == "float64" else 1e-5))


def test_exported_model_is_valid_and_takes_any_batch(tmp_path):
    net = Network([3, 4, 2], activation="tanh", output_activation="softmax", seed=0)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for batch in (1, 7, 100):
        X = np.random.default_rng(batch).standard_normal((batch, 3))
        np.testing.assert_allclose(run_onnx(path, X), net.predict(X), rtol=1e-6, atol=1e-6)


def test_trained_lesson_network_exports(tmp_path):
    from cyprop.lesson import X, run_lesson

    net = run_lesson().network
    net.to_onnx(tmp_path / "lesson.onnx")
    got = run_onnx(tmp_path / "lesson.onnx", X.astype(np.float64))
    np.testing.assert_allclose(got, net.predict(X), rtol=1e-6)
