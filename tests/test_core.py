"""The core's kernels, called directly, against the numpy oracle, in both dtypes."""

import numpy as np
import pytest

from cyprop import _core

from . import reference
from .reference import random_network_arrays

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ACTIVATIONS = list(reference.ACTIVATIONS)
# (layer sizes, batch): the first runs in plain loops, the second reaches BLAS.
SHAPES = [([3, 4, 1], 4), ([20, 33, 17, 5], 50)]


def flatten(weights, biases, dtype):
    """The core's flat parameter layout: W then b, layer by layer."""
    return np.concatenate(
        [np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(weights, biases)]
    ).astype(dtype)


def unflatten(flat, layer_sizes):
    weights, biases, offset = [], [], 0
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        weights.append(flat[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out))
        offset += fan_in * fan_out
        biases.append(flat[offset : offset + fan_out])
        offset += fan_out
    return weights, biases


def make_case(layer_sizes, n_rows, activation, dtype, seed=0):
    rng = np.random.default_rng(seed)
    weights, biases = random_network_arrays(rng, layer_sizes, dtype)
    X = rng.standard_normal((n_rows, layer_sizes[0])).astype(dtype)
    Y = rng.uniform(-1, 1, (n_rows, layer_sizes[-1])).astype(dtype)
    codes = np.full(len(layer_sizes) - 1, _core.ACTIVATIONS[activation], dtype=np.intc)
    sizes = np.array(layer_sizes, dtype=np.intp)
    return weights, biases, X, Y, sizes, codes


def activation_buffer(layer_sizes, n_rows, dtype):
    return np.empty(n_rows * sum(layer_sizes[1:]), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
def test_forward(dtype, activation, layer_sizes, n_rows):
    weights, biases, X, _, sizes, codes = make_case(layer_sizes, n_rows, activation, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    _core.forward(X, flatten(weights, biases, dtype), sizes, codes, A)
    expected = reference.forward(X, weights, biases, [activation] * len(weights))
    offset = 0
    for layer in expected:
        assert layer.dtype == dtype
        np.testing.assert_allclose(A[offset : offset + layer.size].reshape(layer.shape),
                                   layer, rtol=RTOL[dtype], atol=RTOL[dtype])
        offset += layer.size


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
def test_loss_sum(dtype, activation, layer_sizes, n_rows):
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activation, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    total = _core.loss_sum(X, Y, flatten(weights, biases, dtype), sizes, codes,
                           _core.LOSSES["mse"], A)
    expected = reference.loss(X, Y, weights, biases, [activation] * len(weights))
    np.testing.assert_allclose(total, expected, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_loss_gradient(dtype, activation, layer_sizes, n_rows, scale):
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activation, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    delta = np.empty_like(A)
    params = flatten(weights, biases, dtype)
    grads = np.full_like(params, np.nan)  # every entry must be written
    total = _core.loss_gradient(X, Y, params, sizes, codes, _core.LOSSES["mse"], scale,
                                A, delta, grads)
    activations = [activation] * len(weights)
    np.testing.assert_allclose(total, reference.loss(X, Y, weights, biases, activations),
                               rtol=RTOL[dtype])
    dW, db = reference.gradients(X, Y, weights, biases, activations)
    expected = flatten([g * scale for g in dW], [g * scale for g in db], dtype)
    np.testing.assert_allclose(grads, expected, rtol=RTOL[dtype] * 10,
                               atol=RTOL[dtype] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step(dtype):
    rng = np.random.default_rng(1)
    params = rng.standard_normal(37).astype(dtype)
    grads = rng.standard_normal(37).astype(dtype)
    expected = params - dtype(0.3) * grads
    _core.sgd_step(params, grads, 0.3)
    assert params.dtype == dtype
    np.testing.assert_array_equal(params, expected)


def train_case(dtype, layer_sizes, n_rows, batch_size, orders, mean=False, rate=0.05):
    """Run the core's training loop and the reference on the same problem."""
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, "tanh", dtype, seed=3)
    params = flatten(weights, biases, dtype)
    gather = orders.shape[1] > 0
    losses = np.empty(orders.shape[0])
    completed = _core.train_epochs(
        X, Y, orders, batch_size, params, sizes, codes, _core.LOSSES["mse"], mean, rate,
        np.empty((batch_size if gather else 0, X.shape[1]), dtype),
        np.empty((batch_size if gather else 0, Y.shape[1]), dtype),
        activation_buffer(layer_sizes, batch_size, dtype),
        activation_buffer(layer_sizes, batch_size, dtype),
        np.empty_like(params), np.empty_like(params), losses,
    )
    expected_losses = [
        reference.sgd_epoch(X, Y, weights, biases, ["tanh"] * len(weights), rate, batch_size,
                            order=orders[e] if gather else None,
                            reduction="mean" if mean else "sum")
        for e in range(orders.shape[0])
    ]
    return completed, params, losses, flatten(weights, biases, dtype), expected_losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
@pytest.mark.parametrize("batch_size", [1, 3, None])
@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("mean", [False, True])
def test_train_epochs_matches_reference(dtype, layer_sizes, n_rows, batch_size, shuffled, mean):
    batch_size = n_rows if batch_size is None else batch_size
    rng = np.random.default_rng(7)
    n_epochs = 3
    if shuffled:
        orders = np.stack([rng.permutation(n_rows) for _ in range(n_epochs)]).astype(np.intp)
    else:
        orders = np.empty((n_epochs, 0), dtype=np.intp)
    completed, params, losses, expected_params, expected_losses = train_case(
        dtype, layer_sizes, n_rows, batch_size, orders, mean)
    assert completed == n_epochs
    rtol = 1e-10 if dtype is np.float64 else 1e-4
    np.testing.assert_allclose(losses, expected_losses, rtol=rtol)
    np.testing.assert_allclose(params, expected_params, rtol=rtol,
                               atol=rtol * np.abs(expected_params).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_epochs_stops_on_divergence_and_restores_parameters(dtype):
    layer_sizes, n_rows = [3, 4, 2], 8
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, "identity", dtype)
    params = flatten(weights, biases, dtype)
    losses = np.zeros(50)
    backup = np.empty_like(params)
    completed = _core.train_epochs(
        X, Y, np.empty((50, 0), np.intp), 2, params, sizes, codes, _core.LOSSES["mse"],
        False, 0.2, np.empty((0, 3), dtype), np.empty((0, 2), dtype),
        activation_buffer(layer_sizes, 2, dtype), activation_buffer(layer_sizes, 2, dtype),
        np.empty_like(params), backup, losses,
    )
    assert 0 < completed < 50
    assert np.isfinite(losses[:completed]).all()
    assert np.isnan(losses[completed])
    assert np.isfinite(params).all()
    np.testing.assert_array_equal(params, backup)  # the start of the failed epoch
