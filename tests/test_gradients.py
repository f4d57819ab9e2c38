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


def assert_sampled_gradients(net64, X, y, dW, db, tolerance, count, seed):
    """dW and db within tolerance (relative) of finite differences of net64's
    loss, at count entries of each array, picked with seed."""
    rng = np.random.default_rng(seed)
    for analytic, array in zip(dW + db, net64.weights + net64.biases):
        flat = array.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, count), replace=False)
        numeric = np.array([partial_derivative(net64, X, y, flat, index) for index in picks])
        assert relative_error(analytic.reshape(-1)[picks], numeric) < tolerance


def partial_derivative(net, X, y, flat, index, h=1e-5, loss=None):
    """d loss / d flat[index] by the fourth-order central difference (loss: net.loss)."""
    loss = net.loss if loss is None else loss
    saved = flat[index]
    values = []
    for step in (2, 1, -1, -2):
        flat[index] = saved + step * h
        values.append(loss(X, y))
    flat[index] = saved
    upper2, upper1, lower1, lower2 = values
    return (-upper2 + 8 * upper1 - 8 * lower1 + lower2) / (12 * h)


def finite_differences(net, X, y, loss=None):
    """Central differences of `loss` (net.loss) over every weight and bias, in float64."""
    result = []
    for arrays in (net.weights, net.biases):
        grads = []
        for array in arrays:
            flat = array.reshape(-1)
            grads.append(np.array([
                partial_derivative(net, X, y, flat, index, loss=loss)
                for index in range(flat.size)
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
    assert_sampled_gradients(net64, X, y, dW, db, tolerance, count=25, seed=0)


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


PAIRINGS = [
    ("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse"), ("leaky_relu", "mse"),
    ("identity", "mse"), ("softmax", "mse"), ("sigmoid", "binary_cross_entropy"),
    ("softmax", "cross_entropy"),
]


def _targets_for(loss, y):
    if loss == "cross_entropy":
        return np.eye(y.shape[1])[np.argmax(y, axis=1)]
    if loss == "binary_cross_entropy":
        return (y + 1) / 2
    return y


@pytest.mark.parametrize("output, loss", PAIRINGS)
@pytest.mark.parametrize("hidden", ACTIVATIONS + ["leaky_relu"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_every_activation_and_loss_pairing(output, loss, hidden, reduction):
    net, X, y = _random_case(17, [4, 5, 4, 3], 6, activation=hidden,
                             output_activation=output, loss=loss, reduction=reduction)
    y = _targets_for(loss, y)
    dW, db = net.gradients(X, y)
    fd_W, fd_b = finite_differences(net, X, y)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_pairings_in_float32(output, loss):
    net64, X, y = _random_case(23, [4, 6, 3], 5, activation="tanh",
                               output_activation=output, loss=loss)
    y = _targets_for(loss, y)
    net32 = Network.from_weights(net64.weights, net64.biases, activation="tanh",
                                 output_activation=output, loss=loss, dtype="float32")
    dW, db = net32.gradients(X, y)
    fd_W, fd_b = finite_differences(net64, X, y)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert analytic.dtype == np.float32
        assert relative_error(analytic, numeric) < 1e-4


def test_sample_weights_and_weight_decay():
    net, X, y = _random_case(29, [3, 5, 2], 7, activation="tanh", output_activation="softmax",
                             loss="cross_entropy", reduction="mean")
    y = _targets_for("cross_entropy", y)
    weights = np.random.default_rng(0).uniform(0, 3, 7)

    def weighted_loss(X, y):
        return net.loss(X, y, sample_weight=weights, weight_decay=0.05)

    dW, db = net.gradients(X, y, sample_weight=weights, weight_decay=0.05)
    fd_W, fd_b = finite_differences(net, X, y, loss=weighted_loss)
    for analytic, numeric in zip(dW + db, fd_W + fd_b):
        assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_check_gradients_is_small_for_correct_gradients(output, loss):
    net, X, y = _random_case(31, [3, 4, 3], 5, activation="sigmoid",
                             output_activation=output, loss=loss)
    result = net.check_gradients(X, _targets_for(loss, y), weight_decay=0.01)
    assert len(result.weights) == len(result.biases) == 2
    assert result.worst < 1e-6


def test_check_gradients_reports_a_wrong_gradient(monkeypatch):
    net, X, y = _random_case(37, [3, 4, 2], 5, activation="tanh")
    evaluate = Network._evaluate

    def wrong_bias_gradient(self, *args):
        objective = evaluate(self, *args)
        grads = args[4] if len(args) > 4 else None
        if grads is not None:
            grads[-1] *= 1.01  # the last bias entry, off by 1%
        return objective

    monkeypatch.setattr(Network, "_evaluate", wrong_bias_gradient)
    result = net.check_gradients(X, y)
    assert result.weights[0] < 1e-6 and result.weights[1] < 1e-6 and result.biases[0] < 1e-6
    assert 0.005 < result.biases[1] < 0.02


def test_check_gradients_of_a_float32_network_runs_in_float64():
    net64, X, y = _random_case(41, [3, 4, 2], 4, activation="tanh")
    net32 = Network.from_weights(net64.weights, net64.biases, activation="tanh",
                                 dtype="float32")
    assert net32.check_gradients(X, y, max_per_layer=3).worst < 1e-6
