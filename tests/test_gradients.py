"""Backpropagation against central finite differences of the loss."""

import numpy as np
import pytest

from cyprop import Network

from .reference import random_network_arrays

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]


def _away_from_kinks(net, X, margin=1e-3):
    """True when no pre-activation lies within `margin` of relu's kink at 0, and
    no layer is wholly inactive (its gradients would all be exactly zero)."""
    A = np.asarray(X, dtype=np.float64)
    for W, b, layer in zip(net.weights, net.biases, net.forward(X)):
        Z = A @ W.astype(np.float64) + b
        if np.abs(Z).min() < margin or not (Z > 0).any():
            return False
        A = layer.astype(np.float64)
    return True


def _random_case(seed, layer_sizes, batch_size, **options):
    """A float64 network with random weights, and data, away from relu's kink."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        weights, biases = random_network_arrays(rng, layer_sizes)
        net = Network.from_weights(weights, biases, **options)
        X = rng.standard_normal((batch_size, layer_sizes[0]))
        y = rng.uniform(-1, 1, (batch_size, layer_sizes[-1]))
        if "relu" not in net.activations or _away_from_kinks(net, X):
            return net, X, y
    raise AssertionError("no sample away from relu's kink")


def partial_derivative(net, X, y, flat, index, h=1e-5):
    """d net.loss / d flat[index] by the fourth-order central difference."""
    saved = flat[index]
    values = []
    for step in (2, 1, -1, -2):
        flat[index] = saved + step * h
        values.append(net.loss(X, y))
    flat[index] = saved
    upper2, upper1, lower1, lower2 = values
    return (-upper2 + 8 * upper1 - 8 * lower1 + lower2) / (12 * h)


def finite_differences(net, X, y):
    """Central differences of net.loss over every weight and bias, in float64."""
    result = []
    for arrays in (net.weights, net.biases):
        grads = []
        for array in arrays:
            flat = array.reshape(-1)
            grads.append(np.array([
                partial_derivative(net, X, y, flat, index) for index in range(flat.size)
            ]).reshape(array.shape))
        result.append(grads)
    return result


def relative_error(analytic, numeric):
    """Norm-wise relative error of one gradient array."""
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-12)
    return np.linalg.norm(np.asarray(analytic, dtype=np.float64) - numeric) / scale


ARCHITECTURES = {
    1: [3, 5, 2],
    2: [4, 6, 3, 2],
    3: [2, 5, 4, 3, 1],
    4: [5, 4, 6, 3, 4, 2],
}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_hidden", sorted(ARCHITECTURES))
@pytest.mark.parametrize("batch_size", [1, 7])
def test_gradients_match_finite_differences_float64(activation, n_hidden, batch_size):
    net, X, y = _random_case(n_hidden * 10 + batch_size, ARCHITECTURES[n_hidden],
                             batch_size, activation=activation)
    dW, db = net.gradients(X, y)
    fd_W, fd_b = finite_differences(net, X, y)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert analytic.shape == numeric.shape
        assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch_size", [1, 7])
def test_gradients_match_finite_differences_float32(activation, batch_size):
    """float32 backpropagation against differences of the same network in float64."""
    net64, X, y = _random_case(batch_size, ARCHITECTURES[2], batch_size,
                                activation=activation)
    net32 = Network.from_weights(net64.weights, net64.biases, activation=activation,
                                 dtype="float32")
    dW, db = net32.gradients(X, y)
    assert all(g.dtype == np.float32 for g in dW + db)
    fd_W, fd_b = finite_differences(net64, X, y)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert relative_error(analytic, numeric) < 1e-4


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-6), ("float32", 1e-4)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_of_blas_sized_layers(dtype, activation, tolerance):
    """Layers big enough for the matrix-matrix (BLAS) path, checked on a subset of entries."""
    net64, X, y = _random_case(99, [24, 32, 20, 3], 40, activation=activation)
    net = Network.from_weights(net64.weights, net64.biases, activation=activation, dtype=dtype)
    dW, db = net.gradients(X, y)
    rng = np.random.default_rng(0)
    for analytic, array in zip(dW + db, net64.weights + net64.biases):
        flat = array.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 25), replace=False)
        numeric = np.array([partial_derivative(net64, X, y, flat, index) for index in picks])
        assert relative_error(analytic.reshape(-1)[picks], numeric) < tolerance


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_with_mixed_activations_and_reduction(reduction):
    net, X, y = _random_case(5, [3, 6, 5, 2], 9, activation=["tanh", "sigmoid"],
                             output_activation="identity", reduction=reduction)
    assert net.activations == ("tanh", "sigmoid", "identity")
    dW, db = net.gradients(X, y)
    fd_W, fd_b = finite_differences(net, X, y)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert relative_error(analytic, numeric) < 1e-6


def test_mean_reduction_divides_loss_and_gradients_by_n_samples():
    net, X, y = _random_case(3, [3, 4, 2], 6, activation="tanh")
    mean_net = Network.from_weights(net.weights, net.biases, activation="tanh",
                                    reduction="mean")
    np.testing.assert_allclose(mean_net.loss(X, y), net.loss(X, y) / 6, rtol=1e-14)
    for total, mean in zip(sum(net.gradients(X, y), []), sum(mean_net.gradients(X, y), [])):
        np.testing.assert_allclose(mean, total / 6, rtol=1e-12, atol=1e-15)
