"""The core's kernels, called directly, against the numpy oracle, in both dtypes."""

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from cyprop import _core

from . import reference
from .reference import random_network_arrays

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
NO_WEIGHTS = {np.float32: np.empty(0, np.float32), np.float64: np.empty(0)}
# (layer sizes, batch): the first runs in plain loops, the others reach BLAS, the
# last three through its matrix-vector products (one row, one column of output).
SHAPES = [([3, 4, 2], 4), ([20, 33, 17, 5], 50), ([70, 80, 3], 1), ([200, 30, 1], 200),
          ([1, 4100, 2], 2)]
# Output activation and loss pairings the network allows.
PAIRINGS = [("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse"), ("leaky_relu", "mse"),
            ("identity", "mse"), ("softmax", "mse"), ("sigmoid", "binary_cross_entropy"),
            ("softmax", "cross_entropy")]
HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
SGD = {"kind": _core.OPTIMIZERS["sgd"], "momentum": 0.0, "beta1": 0.0, "beta2": 0.0,
       "epsilon": 0.0, "increase": 1.0, "decrease": 1.0, "min_step": 0.0, "max_step": 0.0,
       "weight_decay": 0.0}


def flatten(weights, biases, dtype):
    """The core's flat parameter layout: W then b, layer by layer."""
    return np.concatenate(
        [np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(weights, biases)]
    ).astype(dtype)


def make_case(layer_sizes, n_rows, activations, dtype, loss="mse", seed=0):
    rng = np.random.default_rng(seed)
    weights, biases = random_network_arrays(rng, layer_sizes, dtype)
    X = rng.standard_normal((n_rows, layer_sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(layer_sizes[-1], dtype=dtype)[rng.integers(0, layer_sizes[-1], n_rows)]
    elif loss == "binary_cross_entropy":
        Y = rng.uniform(0, 1, (n_rows, layer_sizes[-1])).astype(dtype)
    else:
        Y = rng.uniform(-1, 1, (n_rows, layer_sizes[-1])).astype(dtype)
    codes = np.array([_core.ACTIVATIONS[a] for a in activations], dtype=np.intc)
    sizes = np.array(layer_sizes, dtype=np.intp)
    return weights, biases, X, Y, sizes, codes


def activation_buffer(layer_sizes, n_rows, dtype):
    return np.empty(n_rows * sum(layer_sizes[1:]), dtype=dtype)


def activations_for(layer_sizes, hidden, output):
    return [hidden] * (len(layer_sizes) - 2) + [output]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output", ["sigmoid", "identity", "softmax"])
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
def test_forward(dtype, hidden, output, layer_sizes, n_rows):
    activations = activations_for(layer_sizes, hidden, output)
    weights, biases, X, _, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    _core.forward(X, flatten(weights, biases, dtype), sizes, codes, A)
    expected = reference.forward(X, weights, biases, activations)
    offset = 0
    for layer in expected:
        assert layer.dtype == dtype
        np.testing.assert_allclose(A[offset : offset + layer.size].reshape(layer.shape),
                                   layer, rtol=RTOL[dtype], atol=RTOL[dtype])
        offset += layer.size


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", PAIRINGS)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_sum(dtype, output, loss, layer_sizes, n_rows, weighted):
    activations = activations_for(layer_sizes, "tanh", output)
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype, loss)
    w = np.random.default_rng(2).uniform(0, 2, n_rows).astype(dtype) if weighted else None
    A = activation_buffer(layer_sizes, n_rows, dtype)
    Z = np.empty(n_rows * layer_sizes[-1], dtype)
    total = _core.loss_sum(X, Y, NO_WEIGHTS[dtype] if w is None else w,
                           flatten(weights, biases, dtype), sizes, codes,
                           _core.LOSSES[loss], A, Z)
    expected = reference.loss(X, Y, weights, biases, activations, "sum", loss, w)
    np.testing.assert_allclose(total, expected, rtol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", PAIRINGS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("layer_sizes, n_rows", SHAPES)
@pytest.mark.parametrize("scale, weighted", [(1.0, False), (0.25, True)])
def test_loss_gradient(dtype, output, loss, hidden, layer_sizes, n_rows, scale, weighted):
    activations = activations_for(layer_sizes, hidden, output)
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype, loss)
    w = np.random.default_rng(2).uniform(0, 2, n_rows).astype(dtype) if weighted else None
    A = activation_buffer(layer_sizes, n_rows, dtype)
    delta = np.empty_like(A)
    params = flatten(weights, biases, dtype)
    grads = np.full_like(params, np.nan)  # every entry must be written
    total = _core.loss_gradient(X, Y, NO_WEIGHTS[dtype] if w is None else w, params, sizes,
                                codes, _core.LOSSES[loss], scale, A, delta, grads)
    np.testing.assert_allclose(
        total, reference.loss(X, Y, weights, biases, activations, "sum", loss, w),
        rtol=RTOL[dtype] * 10)
    dW, db = reference.gradients(X, Y, weights, biases, activations, "sum", loss, w)
    expected = flatten([g * scale for g in dW], [g * scale for g in db], dtype)
    np.testing.assert_allclose(grads, expected, rtol=RTOL[dtype] * 10,
                               atol=RTOL[dtype] * 10 * np.abs(expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("layer_sizes, n_rows", [([3, 4, 1], 4), ([5, 7, 3], 6),
                                                 ([60, 90, 12], 5)])
@pytest.mark.parametrize("scale, weighted", [(1.0, False), (0.25, True), (1 / 3, False)])
def test_mse_loss_with_gradients_is_the_loss_without(dtype, output, layer_sizes, n_rows,
                                                     scale, weighted):
    """mse's loss is computed in two places, alone and beside the output delta:
    the same sums in the same order, so the same bits."""
    activations = activations_for(layer_sizes, "tanh", output)
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype,
                                                    "mse")
    w = (np.random.default_rng(5).uniform(0, 2, n_rows).astype(dtype) if weighted
         else NO_WEIGHTS[dtype])
    params = flatten(weights, biases, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    alone = _core.loss_sum(X, Y, w, params, sizes, codes, _core.LOSSES["mse"], A,
                           np.empty(n_rows * layer_sizes[-1], dtype))
    with_gradients = _core.loss_gradient(X, Y, w, params, sizes, codes, _core.LOSSES["mse"],
                                         scale, A, np.empty_like(A), np.empty_like(params))
    assert with_gradients == alone


def in_order_dot(a, b, dtype):
    """sum_p a[p] b[p] in dtype, one rounding after each operation, p in order from 0."""
    total = dtype(0)
    for x, y in zip(a, b):
        total = dtype(total + dtype(x * y))
    return total


def mse_gradient_case(layer_sizes, n_rows, activations, dtype):
    """loss_gradient under mse on make_case's data: the case's weights, biases,
    X and Y, then the activation, delta and gradient buffers it filled."""
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype)
    A = activation_buffer(layer_sizes, n_rows, dtype)
    delta = np.empty_like(A)
    params = flatten(weights, biases, dtype)
    grads = np.empty_like(params)
    _core.loss_gradient(X, Y, NO_WEIGHTS[dtype], params, sizes, codes, _core.LOSSES["mse"],
                        1.0, A, delta, grads)
    return weights, biases, X, Y, A, delta, grads


def check_products_sum_each_entry_in_order(layer_sizes, n_rows, dtype):
    """Every entry of every product of loss_gradient (forward, the delta below,
    the gradients) is summed in order from 0, one rounding per operation."""
    n_in, n_hidden, n_out = layer_sizes
    weights, biases, X, Y, A, _, grads = mse_gradient_case(
        layer_sizes, n_rows, ["identity", "identity"], dtype)
    (W1, W2), (b1, b2) = weights, biases
    H = np.array([[dtype(in_order_dot(x, W1[:, j], dtype) + b1[j]) for j in range(n_hidden)]
                  for x in X])
    out = np.array([[dtype(in_order_dot(h, W2[:, j], dtype) + b2[j]) for j in range(n_out)]
                    for h in H])
    np.testing.assert_array_equal(A[: n_rows * n_hidden], H.ravel())
    np.testing.assert_array_equal(A[n_rows * n_hidden:], out.ravel())
    d_out = (out - Y).astype(dtype)  # identity: the delta is a - y
    d_hidden = np.array([[in_order_dot(d, W2[p], dtype) for p in range(n_hidden)]
                         for d in d_out])
    expected = []
    for A_prev, d, fan_in, fan_out in ((X, d_hidden, n_in, n_hidden),
                                       (H, d_out, n_hidden, n_out)):
        dW = [[in_order_dot(A_prev[:, p], d[:, j], dtype) for j in range(fan_out)]
              for p in range(fan_in)]
        db = [in_order_dot(np.ones(n_rows, dtype), d[:, j], dtype) for j in range(fan_out)]
        expected.append(np.concatenate([np.ravel(dW), db]).astype(dtype))
    np.testing.assert_array_equal(grads, np.concatenate(expected),
                                  err_msg=f"sizes {layer_sizes}, {n_rows} rows")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows", [1, 2, 3, 4, 5])
def test_small_products_sum_each_entry_in_order(dtype, n_rows):
    """Below BLAS's threshold the products give the bits the docstrings promise,
    whatever the sizes: 1 to 4 run with their sizes fixed, 5 without."""
    for n_in in range(1, 6):
        for n_hidden in range(1, 6):
            for n_out in range(1, 6):
                check_products_sum_each_entry_in_order([n_in, n_hidden, n_out], n_rows, dtype)


# Rows of 1 to 37 entries with a size above 4: on AVX2, groups of four
# vectors (16 doubles or 32 floats), single vectors and masked tails of every
# length for both dtypes, inner sizes from 1 to 37 (the copies fixed at 1 to 4
# included), each product below BLAS's threshold.
WIDE_SMALL_SHAPES = [([6, 17, 35], 3), ([35, 9, 5], 7), ([16, 33, 8], 7), ([5, 37, 1], 2),
                     ([37, 12, 20], 1), ([7, 11, 13], 5), ([3, 32, 16], 6), ([1, 6, 31], 9),
                     ([4, 10, 26], 4), ([2, 18, 34], 4)]
# Batch sizes for training on them: the update's inner size is the batch.
WIDE_SMALL_BATCHES = (1, 2, 3, 4, 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_sizes, n_rows", WIDE_SMALL_SHAPES)
def test_wider_small_products_sum_each_entry_in_order(dtype, layer_sizes, n_rows):
    """Layers wider than 4, several entries of a row at a time on AVX2: still
    each entry's own sum, in order."""
    check_products_sum_each_entry_in_order(layer_sizes, n_rows, dtype)


def products_and_training_bytes():
    """loss_gradient's buffers and a few epochs of training on WIDE_SMALL_SHAPES
    (WIDE_SMALL_BATCHES, plain SGD), then training of every tiny network on the
    general path (TINY_SHAPES, TINY_BATCHES, momentum 0; converging, diverging,
    and on data that makes zeros of both signs), in both dtypes, as one hex
    string per case."""
    lines = []
    for dtype in DTYPES:
        for layer_sizes, n_rows in WIDE_SMALL_SHAPES:
            *_, A, delta, grads = mse_gradient_case(layer_sizes, n_rows,
                                                    ["sigmoid", "sigmoid"], dtype)
            lines.append((A.tobytes() + delta.tobytes() + grads.tobytes()).hex())
            for batch_size in WIDE_SMALL_BATCHES:
                _, trained, losses, _ = run_training(
                    dtype, layer_sizes, 9, batch_size, np.empty((2, 0), dtype=np.intp))
                lines.append((trained.tobytes() + losses.tobytes()).hex())
    lines += tiny_trainings(MOMENTUM_ZERO)
    for dtype in DTYPES:
        for layer_sizes in TINY_SHAPES:
            for batch_size in TINY_BATCHES:
                runs = [tiny_diverging_training(dtype, layer_sizes, batch_size, MOMENTUM_ZERO)]
                runs += [tiny_epochs(dtype, layer_sizes, batch_size, [0.5, 2.0, 0.25],
                                     tiny_signed_zero_data(layer_sizes, seed),
                                     settings=MOMENTUM_ZERO)
                         for seed in range(3)]
                for result, trained, losses in runs:
                    lines.append(repr(result).replace(" ", "")
                                 + (trained.tobytes() + losses.tobytes()).hex())
    return lines


# Every network whose plain SGD steps the core takes whole on AVX2 with FMA
# (tiny_step, _tiny_step.h): one sigmoid hidden layer, a sigmoid output with
# mse, each size and the batch at most 4; and the batch sizes, on 7 rows (the
# last batch short).
TINY_SHAPES = [list(sizes) for sizes in itertools.product(range(1, 5), repeat=3)]
TINY_BATCHES = (1, 2, 3, 4)
TINY_ROWS = 7


def tiny_training(dtype, layer_sizes, batch_size, mean, settings=None, shuffled=False):
    """run_training for two epochs of a sigmoid/sigmoid network on TINY_ROWS rows."""
    rng = np.random.default_rng(batch_size)
    if shuffled:
        orders = np.stack([rng.permutation(TINY_ROWS) for _ in range(2)]).astype(np.intp)
    else:
        orders = np.empty((2, 0), dtype=np.intp)
    return run_training(dtype, layer_sizes, TINY_ROWS, batch_size, orders, mean, rate=0.5,
                        output="sigmoid", settings=settings, hidden="sigmoid")


def tiny_epochs(dtype, layer_sizes, batch_size, learning_rates, data=None, settings=SGD,
                n_rows=TINY_ROWS, mean=False, gathered=False, signal_interval=1000):
    """len(learning_rates) epochs of tiny_training's network on n_rows rows in
    storage order (gathered through an identity order when gathered is set), on
    its data or on data = (params, X, Y): (what train_epochs returns, the
    parameters, the losses)."""
    if data is None:
        weights, biases, X, Y, *_ = make_case(layer_sizes, n_rows, ["sigmoid", "sigmoid"],
                                              dtype, seed=3)
        params = flatten(weights, biases, dtype)
    else:
        params, X, Y = (np.array(values, dtype=dtype) for values in data)
    sizes = np.array(layer_sizes, dtype=np.intp)
    codes = np.full(2, _core.ACTIVATIONS["sigmoid"], dtype=np.intc)
    n_epochs = len(learning_rates)
    orders = np.empty((n_epochs, 0), np.intp)
    if gathered:
        orders = np.tile(np.arange(X.shape[0], dtype=np.intp), (n_epochs, 1))
    result, losses = call_train_epochs(
        X, Y, params, sizes, codes, "mse", orders, batch_size, learning_rates, mean=mean,
        settings=settings, signal_interval=signal_interval)
    return result, params, losses


def tiny_diverging_training(dtype, layer_sizes, batch_size, settings=SGD):
    """Four epochs of tiny_training's network, the third at an infinite learning rate."""
    return tiny_epochs(dtype, layer_sizes, batch_size, [0.5, 0.5, np.inf, 0.5],
                       settings=settings)


def tiny_signed_zero_data(layer_sizes, seed):
    """(params, X, Y) drawn from values that make exact zeros of both signs in the
    products and sums (0, -0, +-1, +-0.5) and sigmoids that saturate to 0 or 1
    (weights of +-800), for tiny_epochs."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = layer_sizes
    n_params = n_in * n_hidden + n_hidden + n_hidden * n_out + n_out
    params = rng.choice([0.0, -0.0, 1.0, -1.0, 0.5, -800.0, 800.0], n_params)
    X = rng.choice([0.0, -0.0, 1.0, -1.0, 0.5], (TINY_ROWS, n_in))
    Y = rng.choice([0.0, -0.0, 1.0, 0.5], (TINY_ROWS, n_out))
    return params, X, Y


# momentum 0 takes the general path: the gradient, then the update.
MOMENTUM_ZERO = {**SGD, "kind": _core.OPTIMIZERS["momentum"]}


def assert_equal_to_rounding(got, want, dtype, err_msg=""):
    """Values that plain SGD and the general path (momentum 0) compute from the same
    start, for a tiny network. Where this process takes the tiny step (fused
    multiply-adds), equal to within 100 units of dtype's last place, relative to
    each value and at least to 1 (two to seven steps of every tiny size came to
    56 at most), NaN where the other is NaN; elsewhere both take the general
    path, and they are equal."""
    if not cpu_runs_tiny_step():
        np.testing.assert_array_equal(got, want, err_msg=err_msg)
        return
    tolerance = 100 * np.finfo(dtype).eps
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=err_msg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", TINY_BATCHES)
def test_tiny_networks_train_as_the_general_path(dtype, batch_size):
    """Plain SGD on a tiny network (whole steps with fused multiply-adds where
    the CPU has AVX2 and FMA) gives the general path's parameters and losses to
    rounding, for every size and batch, either reduction, in storage and
    shuffled order, and when it diverges: in the same epoch, with the same
    report."""
    for layer_sizes in TINY_SHAPES:
        for mean, shuffled in itertools.product((False, True), repeat=2):
            runs = [tiny_training(dtype, layer_sizes, batch_size, mean, settings, shuffled)
                    for settings in (SGD, MOMENTUM_ZERO)]
            (_, fused, fused_losses, _), (_, general, general_losses, _) = runs
            assert_equal_to_rounding(fused, general, dtype, str(layer_sizes))
            assert_equal_to_rounding(fused_losses, general_losses, dtype, str(layer_sizes))
        fused_run, general_run = (tiny_diverging_training(dtype, layer_sizes, batch_size,
                                                          settings)
                                  for settings in (SGD, MOMENTUM_ZERO))
        assert fused_run[0][:2] == (2, _core.STATUS["diverged"])
        assert fused_run[0] == general_run[0]
        assert_equal_to_rounding(fused_run[1], general_run[1], dtype, str(layer_sizes))
        assert_equal_to_rounding(fused_run[2], general_run[2], dtype, str(layer_sizes))


def assert_same_training(run, expected, same_bits=True):
    """Two tiny_epochs runs agree: what train_epochs returned, and the parameters
    and the losses as bytes (zeros' signs and all), or to rounding
    (assert_equal_to_rounding)."""
    assert run[0] == expected[0]
    for got, want in zip(run[1:], expected[1:]):
        if same_bits:
            assert got.tobytes() == want.tobytes()
        else:
            assert_equal_to_rounding(got, want, run[1].dtype)


def full_batch_runs(dtype, layer_sizes, rates, data=None, n_rows=None, **options):
    """tiny_epochs with one batch of all the rows an epoch, taken three ways: the
    rows in storage order, where the loop of epochs is _tiny_step.h's; the same
    steps one at a time, the rows gathered through an identity order; the
    general path (momentum 0)."""
    if data is not None:
        n_rows = np.shape(data[1])[0]
    return [tiny_epochs(dtype, layer_sizes, n_rows, rates, data=data, n_rows=n_rows,
                        gathered=gathered, settings=settings, **options)
            for gathered, settings in [(False, SGD), (True, SGD), (False, MOMENTUM_ZERO)]]


# Epoch counts that leave the loop's three sets of parameters in each of their
# turns, with signal checks that split the loop into calls of 1 to 3 epochs.
FULL_BATCH_EPOCHS = [(1, 1000), (2, 1000), (3, 1000), (4, 1), (5, 2), (7, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows", TINY_BATCHES)
def test_tiny_full_batch_epochs_give_the_single_steps_bits(dtype, n_rows):
    """Full-batch training of a tiny network gives the bits of the same steps
    taken one at a time, and the general path's values to rounding, for every size, both
    reductions, any number of epochs and of signal checks, on random data and on
    data that makes signed zeros and saturated sigmoids."""
    for layer_sizes in TINY_SHAPES:
        signed_zeros = tiny_signed_zero_data(layer_sizes, seed=sum(layer_sizes) + n_rows)
        for data, mean in itertools.product(
                [None, (signed_zeros[0], *(values[:n_rows] for values in signed_zeros[1:]))],
                (False, True)):
            for n_epochs, signal_interval in FULL_BATCH_EPOCHS:
                rates = np.linspace(0.5, 0.2, n_epochs)
                whole, stepwise, general = full_batch_runs(
                    dtype, layer_sizes, rates, data, n_rows, mean=mean,
                    signal_interval=signal_interval)
                assert whole[0] == (n_epochs, _core.STATUS["completed"], n_epochs,
                                    n_epochs - 1)
                assert_same_training(whole, stepwise)
                assert_same_training(whole, general, same_bits=False)


# Data on which a full batch's loss becomes NaN in the second epoch while the
# parameters stay finite (the first step's products overflow with opposite
# signs); in float32 its inputs are infinite, and the first loss is NaN.
NAN_LOSS_AFTER_ONE_STEP = (
    [4, 1, 2],
    [0.5, -1.0, -1.0, -1.0, 0.5, -2.0, -1.0, 1.0, -1.0],
    [[1.0, -1e200, 1e200, 1.0], [-1.0, 1e200, 1e200, -1e200], [1e200, -1.0, 1.0, 1.0],
     [-1e200, -1e200, 1e200, -1e200]],
    [[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("signal_interval", [1, 2, 1000])
def test_tiny_full_batch_epochs_diverge_as_the_single_steps(dtype, signal_interval):
    """When full-batch training of a tiny network diverges, in the loss or in the
    parameters, in any epoch, it stops in the same epoch as the single steps and
    the general path, restoring the same parameters and reporting the same."""
    diverged = _core.STATUS["diverged"]
    for layer_sizes in [[1, 1, 1], [3, 4, 1], [4, 4, 4]]:
        for n_rows, bad_epoch in itertools.product(TINY_BATCHES, range(4)):
            # an infinite rate makes parameters infinite or NaN: diverged in the
            # update, after a finite loss, so bad_epoch counts as a step
            rates = [0.5] * 5
            rates[bad_epoch] = np.inf
            whole, stepwise, general = full_batch_runs(
                dtype, layer_sizes, rates, n_rows=n_rows, signal_interval=signal_interval)
            assert whole[0] == (bad_epoch, diverged, bad_epoch + 1, bad_epoch)
            assert np.isnan(whole[2][bad_epoch])
            assert_same_training(whole, stepwise)
            assert_same_training(whole, general, same_bits=False)
        # a NaN input: the first loss is NaN, the parameters on entry come back
        weights, biases, X, Y, *_ = make_case(layer_sizes, 3, ["sigmoid", "sigmoid"], dtype)
        X[1, 0] = np.nan
        data = (flatten(weights, biases, dtype), X, Y)
        whole, stepwise, general = full_batch_runs(dtype, layer_sizes, [0.5] * 3, data,
                                                   signal_interval=signal_interval)
        assert whole[0] == (0, diverged, 0, -1)
        assert whole[1].tobytes() == data[0].tobytes()
        assert_same_training(whole, stepwise)
        assert_same_training(whole, general, same_bits=False)
    layer_sizes, *data = NAN_LOSS_AFTER_ONE_STEP
    with np.errstate(over="ignore"):  # in float32, 1e200 rounds to infinity
        data = [np.array(values, dtype=dtype) for values in data]
    whole, stepwise, general = full_batch_runs(dtype, layer_sizes, [1.0] * 4, data,
                                               signal_interval=signal_interval)
    completed = 1 if dtype is np.float64 else 0
    assert whole[0] == (completed, diverged, completed, completed - 1)
    assert np.isfinite(whole[1]).all()
    assert_same_training(whole, stepwise)
    if completed == 0 or not cpu_runs_tiny_step():
        # both restored the parameters on entry (float32), or both are the general path
        assert_same_training(whole, general, same_bits=False)
    else:
        # Terms of +-1e200 cancel in these sums, and what is left of the small
        # ones depends on the order of the additions, which the tiny step (pairs)
        # and the general path (in turn) do not share: their parameters after the
        # first step differ by more than rounding, their report does not.
        assert whole[0] == general[0]
        assert np.isfinite(general[1]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_sizes", [[1, 1, 1], [3, 4, 1], [2, 3, 4], [4, 4, 4]])
@pytest.mark.parametrize("batch_size", TINY_BATCHES)
@pytest.mark.parametrize("mean", [False, True])
def test_tiny_networks_match_the_reference(dtype, layer_sizes, batch_size, mean):
    """Tiny networks' training against the numpy reference, shuffled."""
    _, params, losses, (weights, biases, X, Y, activations) = tiny_training(
        dtype, layer_sizes, batch_size, mean, shuffled=True)
    rng = np.random.default_rng(batch_size)
    orders = [rng.permutation(TINY_ROWS) for _ in range(2)]
    expected_losses = [
        reference.sgd_epoch(X, Y, weights, biases, activations, 0.5, batch_size,
                            order=order, reduction="mean" if mean else "sum")
        for order in orders
    ]
    expected_params = flatten(weights, biases, dtype)
    rtol = 1e-10 if dtype is np.float64 else 1e-4
    np.testing.assert_allclose(losses, expected_losses, rtol=rtol)
    np.testing.assert_allclose(params, expected_params, rtol=rtol,
                               atol=rtol * np.abs(expected_params).max())


def test_tiny_sgd_step_is_taken_exactly_where_it_applies():
    """The tiny network's step runs for every network and batch it covers when
    the CPU has AVX2 and FMA, and for nothing else; where it runs, it is one
    epoch of the general path's training, to rounding."""
    taken = cpu_runs_tiny_step()
    sigmoid, tanh = _core.ACTIVATIONS["sigmoid"], _core.ACTIVATIONS["tanh"]
    for dtype in DTYPES:
        for layer_sizes in TINY_SHAPES:
            for n_rows in TINY_BATCHES:
                weights, biases, X, Y, sizes, codes = make_case(
                    layer_sizes, n_rows, ["sigmoid", "sigmoid"], dtype, seed=n_rows)
                params = flatten(weights, biases, dtype)
                loss = _core.tiny_sgd_step(X, Y, params, sizes, codes, _core.LOSSES["mse"],
                                           1.0, 0.5)
                (_, general, general_losses, _) = run_training(
                    dtype, layer_sizes, n_rows, n_rows, np.empty((1, 0), np.intp), rate=0.5,
                    output="sigmoid", settings=MOMENTUM_ZERO, hidden="sigmoid",
                    seed=n_rows)
                if taken:
                    assert_equal_to_rounding(loss, general_losses[0], dtype)
                    assert_equal_to_rounding(params, general, dtype)
                else:
                    assert loss is None
                    np.testing.assert_array_equal(params, flatten(weights, biases, dtype))
        # Outside what it covers: too many rows, inputs, hidden units or outputs,
        # another activation or loss, another depth.
        mse = _core.LOSSES["mse"]
        for layer_sizes, n_rows, codes, loss in [
            ([3, 4, 1], 5, [sigmoid, sigmoid], mse), ([5, 4, 1], 4, [sigmoid, sigmoid], mse),
            ([3, 5, 1], 4, [sigmoid, sigmoid], mse), ([3, 4, 5], 4, [sigmoid, sigmoid], mse),
            ([3, 4, 1], 4, [tanh, sigmoid], mse), ([3, 4, 1], 4, [sigmoid, tanh], mse),
            ([3, 4, 2], 4, [sigmoid, sigmoid], _core.LOSSES["binary_cross_entropy"]),
            ([3, 4, 4, 1], 4, [sigmoid, sigmoid, sigmoid], mse),
        ]:
            activations = [next(a for a, c in _core.ACTIVATIONS.items() if c == code)
                           for code in codes]
            weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations,
                                                            dtype)
            params = flatten(weights, biases, dtype)
            assert _core.tiny_sgd_step(X, Y, params, sizes, codes, loss, 1.0, 0.5) is None
            np.testing.assert_array_equal(params, flatten(weights, biases, dtype))


def cpu_has(feature):
    """Whether this CPU has feature ("AVX2", "AVX512F"): numpy's CPU dispatch
    reads the same CPUID bits as the core's."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get(feature))


def assert_child_gives_the_same_lines(names, **environment):
    """The functions of this module named in names each return lines (hex of
    results); a child process with environment added must return the same
    lines, in order, as this one."""
    here = [line for name in names for line in globals()[name]()]
    script = ("import sys\n"
              f"from tests.test_core import {', '.join(names)}\n"
              f"functions = [{', '.join(names)}]\n"
              "lines = [line for function in functions for line in function()]\n"
              "sys.stdout.write(chr(10).join(lines))\n")
    there = child_output(script, **environment).split()
    assert len(there) == len(here)
    for case, (line_here, line_there) in enumerate(zip(here, there)):
        assert line_here == line_there, f"case {case}"


def cpu_runs_avx2_code():
    """Whether this process takes the core's AVX2 code."""
    return cpu_has("AVX2") and os.environ.get("CYPROP_DISABLE_AVX2", "") != "1"


def cpu_runs_tiny_step():
    """Whether this process takes the tiny network's step (AVX2 with FMA)."""
    return cpu_runs_avx2_code() and cpu_has("FMA3")


def child_output(script, **environment):
    """What script prints, run by this interpreter in a child process from the
    project's root with environment added; AssertionError with its stderr if
    the child fails."""
    root = pathlib.Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=root, env={**os.environ, **environment})
    assert result.returncode == 0, result.stderr or result.stdout
    return result.stdout


@pytest.mark.skipif(not cpu_runs_avx2_code(),
                    reason="this process runs the plain loops already: nothing to compare")
def test_products_without_avx2_give_the_same_bits():
    """CYPROP_DISABLE_AVX2=1 keeps every product in the plain loops: the same bits
    as the vector code, for the products and for the general path's training."""
    assert_child_gives_the_same_lines(["products_and_training_bytes"],
                                      CYPROP_DISABLE_AVX2="1")


def tiny_trainings(settings=None):
    """tiny_training of every tiny network (TINY_SHAPES, TINY_BATCHES, both
    reductions) in both dtypes, each as "params:losses" in hex."""
    lines = []
    for dtype in DTYPES:
        for layer_sizes in TINY_SHAPES:
            for batch_size, mean in itertools.product(TINY_BATCHES, (False, True)):
                _, params, losses, _ = tiny_training(dtype, layer_sizes, batch_size, mean,
                                                     settings)
                lines.append(params.tobytes().hex() + ":" + losses.tobytes().hex())
    return lines


@pytest.mark.skipif(not cpu_runs_tiny_step(),
                    reason="this process takes the general step already: nothing to compare")
def test_tiny_networks_without_avx2_take_the_general_step():
    """CYPROP_DISABLE_AVX2=1 also leaves tiny networks to the general step, whose
    sums round each operation on its own: plain SGD there gives momentum 0's
    values here, for every tiny network, and this process's tiny step agrees
    with both to rounding."""
    script = ("import sys\n"
              "import numpy as np\n"
              "from cyprop import _core\n"
              "from tests.test_core import DTYPES, tiny_trainings\n"
              "for dtype in DTYPES:\n"
              "    assert not _core.tiny_step_sigmoid(np.zeros(4, dtype))\n"
              "sys.stdout.write(chr(10).join(tiny_trainings()))\n")
    there = child_output(script, CYPROP_DISABLE_AVX2="1").split()
    general, fused = tiny_trainings(MOMENTUM_ZERO), tiny_trainings()
    assert len(there) == len(general) == len(fused)
    dtypes = [dtype for dtype in DTYPES for _ in range(len(there) // len(DTYPES))]
    for dtype, line_there, line_general, line_fused in zip(dtypes, there, general, fused):
        (params, losses), (want_params, want_losses), (fused_params, fused_losses) = (
            (np.frombuffer(bytes.fromhex(part), kind) for part, kind in
             zip(line.split(":"), (dtype, np.float64)))
            for line in (line_there, line_general, line_fused))
        np.testing.assert_array_equal(params, want_params)
        np.testing.assert_array_equal(losses, want_losses)
        assert_equal_to_rounding(fused_params, want_params, dtype)
        assert_equal_to_rounding(fused_losses, want_losses, dtype)


def tiny_full_batch_trainings():
    """Three full-batch epochs (tiny_epochs) of every tiny network on 1 to 4 rows,
    in both dtypes, on random data and on tiny_signed_zero_data (whose sums
    reach thousands, beyond the sigmoid's short path), as "params:losses" in hex."""
    lines = []
    for dtype in DTYPES:
        for layer_sizes in TINY_SHAPES:
            for n_rows in TINY_BATCHES:
                params, X, Y = tiny_signed_zero_data(layer_sizes, seed=sum(layer_sizes) + n_rows)
                for data in [None, (params, X[:n_rows], Y[:n_rows])]:
                    _, trained, losses = tiny_epochs(dtype, layer_sizes, n_rows,
                                                     np.array([0.5, 0.3, 0.2]), data,
                                                     n_rows=n_rows)
                    lines.append(trained.tobytes().hex() + ":" + losses.tobytes().hex())
    return lines


def tiny_step_sigmoids():
    """The tiny step's sigmoid of sigmoid_arguments, in both dtypes, in hex."""
    return [tiny_step_sigmoid(sigmoid_arguments(dtype), dtype).tobytes().hex()
            for dtype in DTYPES]


@pytest.mark.skipif(
    not (cpu_runs_tiny_step() and cpu_has("AVX512F") and cpu_has("AVX512VL")
         and os.environ.get("CYPROP_DISABLE_AVX512", "") != "1"),
    reason="this process takes no AVX-512VL copy of the tiny step: nothing to compare")
def test_tiny_step_gives_the_same_bits_without_avx512():
    """CYPROP_DISABLE_AVX512=1 leaves tiny networks to the AVX2 copy of their
    step, which must give this process's bits: the same operations, only
    encoded differently. Minibatches, full batches and the sigmoid alone."""
    assert_child_gives_the_same_lines(
        ["tiny_trainings", "tiny_full_batch_trainings", "tiny_step_sigmoids"],
        CYPROP_DISABLE_AVX512="1")


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_stay_finite(dtype):
    """Pre-activations of +-1000 give exact saturation, finite losses and no warnings."""
    for output, loss in [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"),
                         ("sigmoid", "mse"), ("tanh", "mse")]:
        sizes = np.array([2, 3], dtype=np.intp)
        codes = np.array([_core.ACTIVATIONS[output]], dtype=np.intc)
        params = np.array([1, -1, 1, 0, 0, 0, 0, 0, 0], dtype=dtype)
        X = np.array([[1000, 0], [-1000, 0], [0, 1000]], dtype=dtype)
        Y = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=dtype)
        A = np.empty(9, dtype)
        delta = np.empty(9, dtype)
        grads = np.empty_like(params)
        total = _core.loss_gradient(X, Y, NO_WEIGHTS[dtype], params, sizes, codes,
                                    _core.LOSSES[loss], 1.0, A, delta, grads)
        assert np.isfinite(total) and np.isfinite(grads).all() and np.isfinite(A).all()
        if loss == "cross_entropy":
            # Logits (1000, -1000, 1000) with target 1: l = 2000 + log 2; then 0 and log 3.
            assert total == pytest.approx(2000 + np.log(2) + np.log(3), rel=1e-6)


def core_sigmoid(z, dtype):
    """The core's sigmoid of each entry of z: a 1-1 sigmoid layer with W = 1, b = 0."""
    X = np.ascontiguousarray(z, dtype=dtype).reshape(-1, 1)
    A = np.empty(X.shape[0], dtype)
    _core.forward(X, np.array([1, 0], dtype), np.array([1, 1], np.intp),
                  np.array([_core.ACTIVATIONS["sigmoid"]], np.intc), A)
    return A


def tiny_step_sigmoid(z, dtype):
    """The sigmoid of the tiny network's step (fused multiply-adds) of each entry of
    z; skips the test where the CPU does not take that step."""
    values = np.array(z, dtype=dtype)
    if not _core.tiny_step_sigmoid(values):
        pytest.skip("this process does not take the tiny network's step (AVX2 with FMA)")
    return values


SIGMOIDS = [pytest.param(core_sigmoid, id="general"),
            pytest.param(tiny_step_sigmoid, id="tiny_step")]


def sigmoid_arguments(dtype):
    """Arguments across the whole range, the edges of exp's range, and non-finite ones."""
    rng = np.random.default_rng(5)
    edges = [0.0, -0.0, 1e-300, 36.7, 37.0, 709.78, 709.79, 745.1, 745.2, 746.0, 88.72,
             88.73, 103.9, 104.0, 17.0, 16.6, 1e6, np.finfo(dtype).max]
    z = np.concatenate([np.linspace(-800, 800, 160_001), rng.standard_normal(20_000) * 20,
                        edges, np.negative(edges), [np.inf, -np.inf, np.nan]])
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_sigmoid_is_within_three_units_in_the_last_place(dtype, sigmoid):
    z = sigmoid_arguments(dtype)
    got = sigmoid(z, dtype)
    # A more precise reference: long double where the platform has it.
    with np.errstate(over="ignore"):
        exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    finite = np.isfinite(z)
    tiny = np.finfo(dtype).tiny
    normal = finite & (exact >= tiny)
    # 1 / (1 + np.exp(-z)) with glibc's exp is off by up to 2.35 units here.
    units = np.abs(got[normal] - exact[normal]) / np.spacing(exact[normal].astype(dtype))
    assert units.max() <= 3
    # Results below the normal range lose precision, not accuracy.
    assert np.abs(got[finite & ~normal] - exact[finite & ~normal]).max() <= 2 * tiny
    saturated = 40 if dtype == np.float64 else 18
    assert (got[z >= saturated] == 1).all()
    assert (got[z < (-746 if dtype == np.float64 else -104)] == 0).all()
    assert np.isnan(got[np.isnan(z)]).all()
    assert got[z == np.inf][0] == 1 and got[z == -np.inf][0] == 0
    assert ((got >= 0) & (got <= 1))[~np.isnan(z)].all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_gives_the_same_bits_wherever_a_value_sits(dtype):
    """Vectors of 2, 4 or 8 values, with a padded tail: no position is special."""
    z = np.random.default_rng(6).uniform(-30, 30, 41).astype(dtype)
    whole = core_sigmoid(z, dtype)
    for start in range(9):
        for n in range(1, 18):
            part = core_sigmoid(z[start : start + n], dtype)
            np.testing.assert_array_equal(part, whole[start : start + n])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_sigmoid_takes_its_short_path_to_the_same_bits(dtype, sigmoid):
    """A vector whose values all lie well inside exp's range takes a shorter path
    (no clamps, 2^k in one piece); a value beyond that range sends its whole
    vector down the full path. Each value next to 1000 must come out as alone."""
    z = sigmoid_arguments(dtype)
    z = z[np.abs(z) <= (700 if dtype == np.float64 else 80)]
    paired = np.empty(2 * z.size, dtype)
    paired[0::2], paired[1::2] = z, 1000
    bits = np.uint64 if dtype == np.float64 else np.uint32
    alone, beside_far = sigmoid(z, dtype), sigmoid(paired, dtype)[0::2]
    np.testing.assert_array_equal(alone.view(bits), beside_far.view(bits))
    # the shape's edges: 2^k at the ends of the normal range, where the path changes
    edge = 709.0 if dtype == np.float64 else 88.0
    near = np.concatenate([np.linspace(-edge - 2, -edge + 2, 4001),
                           np.linspace(edge - 3, edge + 1, 4001)]).astype(dtype)
    paired = np.empty(2 * near.size, dtype)
    paired[0::2], paired[1::2] = near, 1000
    np.testing.assert_array_equal(sigmoid(paired, dtype)[0::2].view(bits),
                                  sigmoid(near, dtype).view(bits))


def sigmoid_outputs(dtype):
    """Outputs of a sigmoid for the backward pass: spread over [0, 1], its ends,
    the values next to them, and the smallest ones."""
    info = np.finfo(dtype)
    edges = [0.0, 1.0, 0.5, 1 - info.epsneg, info.eps, info.tiny, info.smallest_subnormal]
    rng = np.random.default_rng(8)
    return np.concatenate([rng.random(10_001), np.linspace(0, 1, 1001), edges]).astype(dtype)


def core_sigmoid_backward(A, dtype):
    """The core's delta * A (1 - A) for a seeded delta, over A and its first
    0 to 39 values (every tail of the vector loops), end to end."""
    delta = np.random.default_rng(9).standard_normal(A.size).astype(dtype)
    results = []
    for n in [*range(40), A.size]:
        part = delta[:n].copy()
        _core.activation_backward(A[:n], part, _core.ACTIVATIONS["sigmoid"])
        results.append(part)
    return np.concatenate(results)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_backward_multiplies_the_delta_by_a_times_one_minus_a(dtype):
    """For floats, a (1 - a) is taken in double and rounded once, then the
    product in float: those exact bits on every path."""
    A = sigmoid_outputs(dtype)
    delta = np.random.default_rng(9).standard_normal(A.size).astype(dtype)
    wide = A.astype(np.float64)
    full = delta * (wide * (1.0 - wide)).astype(dtype)
    expected = np.concatenate([full[:n] for n in [*range(40), A.size]])
    bits = np.uint64 if dtype == np.float64 else np.uint32
    np.testing.assert_array_equal(core_sigmoid_backward(A, dtype).view(bits),
                                  expected.view(bits))


@pytest.mark.parametrize("variable", ["CYPROP_DISABLE_AVX2", "CYPROP_DISABLE_AVX512"])
def test_sigmoid_gives_the_same_bits_on_every_instruction_set(variable):
    """CYPROP_DISABLE_AVX2=1 selects the SSE2 code (or the scalar code off x86),
    CYPROP_DISABLE_AVX512=1 the AVX2 code: the sigmoid and its backward pass
    give every CPU the same results."""
    def outputs(dtype):
        return [core_sigmoid(sigmoid_arguments(dtype), dtype),
                core_sigmoid_backward(sigmoid_outputs(dtype), dtype)]

    here = [array for dtype in DTYPES for array in outputs(dtype)]
    script = (
        "import sys, numpy as np\n"
        "from tests.test_core import (core_sigmoid, core_sigmoid_backward, sigmoid_arguments,\n"
        "                             sigmoid_outputs, DTYPES)\n"
        "for dtype in DTYPES:\n"
        "    for array in [core_sigmoid(sigmoid_arguments(dtype), dtype),\n"
        "                  core_sigmoid_backward(sigmoid_outputs(dtype), dtype)]:\n"
        "        sys.stdout.write(array.tobytes().hex())\n"
        "        sys.stdout.write(chr(10))\n"
    )
    lines = child_output(script, **{variable: "1"}).split()
    assert len(lines) == len(here)
    for line, array in zip(lines, here):
        np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(line), array.dtype), array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_values(dtype):
    info = np.finfo(dtype)
    finite = np.array([0.0, -0.0, 1.0, -2.5, info.max, -info.max, info.tiny,
                       info.smallest_subnormal, -info.smallest_subnormal], dtype)
    quiet_nan_with_sign = np.array([-np.nan], dtype)
    for n in [0, 1, 2, 3, 5, 8, 9, 17, 33]:
        values = np.resize(finite, n)
        assert _core.all_finite_values(values) is True
        for position in range(n):
            for bad in [np.nan, np.inf, -np.inf, quiet_nan_with_sign[0]]:
                spoiled = values.copy()
                spoiled[position] = bad
                assert _core.all_finite_values(spoiled) is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_values_of_a_long_array(dtype):
    """Long arrays take a vector loop with several sums and a tail: a bad value
    anywhere in either is found, and the largest finite values are finite."""
    info = np.finfo(dtype)
    for n in [255, 256, 257, 300, 511, 512, 1000, 4099]:
        values = np.linspace(-1, 1, n).astype(dtype) * info.max
        values[n // 3] = -0.0
        values[n // 2] = info.smallest_subnormal
        assert _core.all_finite_values(values) is True
        for position in sorted({*range(0, 40, 4), 63, 64, 127, 128, 200, n - 33, n - 2, n - 1}):
            for bad in [np.nan, np.inf, -np.inf]:
                spoiled = values.copy()
                spoiled[position] = bad
                assert _core.all_finite_values(spoiled) is False, (n, position, bad)


def optimizer_settings(kind, **values):
    return {**SGD, "kind": _core.OPTIMIZERS[kind], **values}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam", "irprop-"])
def test_optimizer_steps_match_numpy(dtype, kind):
    rng = np.random.default_rng(1)
    n = 41
    params = rng.standard_normal(n).astype(dtype)
    expected = params.astype(np.float64)
    settings = optimizer_settings(kind, momentum=0.8, beta1=0.9, beta2=0.99, epsilon=1e-7,
                                  increase=1.2, decrease=0.5, min_step=1e-6, max_step=0.3)
    n_buffers = _core.OPTIMIZER_STATE_BUFFERS[settings["kind"]]
    state = np.zeros(n_buffers * n, dtype)
    ref_state = [np.zeros(n) for _ in range(n_buffers)]
    if kind == "irprop-":
        state[n:] = 0.05
        ref_state[1][:] = 0.05
    for step in range(1, 6):
        grads = rng.standard_normal(n).astype(dtype)
        grads[::7] = 0  # zero gradients leave irprop's parameters alone
        _core.optimizer_step(settings, params, grads, state, 0.05, step)
        g = grads.astype(np.float64)
        if kind == "sgd":
            expected -= 0.05 * g
        elif kind in ("momentum", "nesterov"):
            reference.momentum_step(expected, g, ref_state[0], 0.05, 0.8, kind == "nesterov")
        elif kind == "adam":
            reference.adam_step(expected, g, *ref_state, 0.05, 0.9, 0.99, 1e-7, step)
        else:
            reference.irprop_minus_step(expected, g, *ref_state, 1.2, 0.5, 1e-6, 0.3)
    assert params.dtype == dtype
    rtol = 1e-5 if dtype is np.float32 else 1e-13
    np.testing.assert_allclose(params, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_decay_penalises_weights_not_biases(dtype):
    layer_sizes = [3, 4, 2]
    weights, biases, *_ = make_case(layer_sizes, 1, ["tanh", "identity"], dtype)
    params = flatten(weights, biases, dtype)
    sizes = np.array(layer_sizes, dtype=np.intp)
    expected = 0.5 * 0.3 * sum(np.sum(W.astype(float) ** 2) for W in weights)
    assert _core.penalty(params, sizes, 0.3) == pytest.approx(expected, rel=1e-6)
    grads = np.zeros_like(params)
    _core.add_penalty_gradient(params, grads, sizes, 0.3)
    expected_grads = flatten([0.3 * W for W in weights], [0 * b for b in biases], dtype)
    np.testing.assert_allclose(grads, expected_grads, rtol=1e-6)


def call_train_epochs(X, Y, params, sizes, codes, loss, orders, batch_size, learning_rates,
                      mean=False, settings=SGD, sample_weight=None, backup=None,
                      signal_interval=1000, check_inputs=False, resume=False):
    """_core.train_epochs with every buffer it needs allocated here; params are
    trained in place. Returns what it returns and the epochs' losses."""
    dtype = params.dtype
    gather = orders.shape[1] > 0
    weighted = sample_weight is not None
    layer_sizes = list(sizes)
    losses = np.zeros(orders.shape[0])
    n_buffers = _core.OPTIMIZER_STATE_BUFFERS[settings["kind"]]
    result = _core.train_epochs(
        X, Y, sample_weight if weighted else NO_WEIGHTS[dtype.type], orders, batch_size,
        params, sizes, codes, _core.LOSSES[loss], mean, settings,
        np.asarray(learning_rates, np.float64), 0, np.zeros(n_buffers * params.size, dtype),
        np.empty((batch_size if gather else 0, X.shape[1]), dtype),
        np.empty((batch_size if gather else 0, Y.shape[1]), dtype),
        np.empty(batch_size if gather and weighted else 0, dtype),
        activation_buffer(layer_sizes, batch_size, dtype),
        activation_buffer(layer_sizes, batch_size, dtype), np.empty_like(params),
        np.empty((2, params.size), dtype) if backup is None else backup, losses,
        signal_interval, check_inputs, resume_known_good=resume,
    )
    return result, losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_sizes, n_rows, batch_size", [
    ([3, 4, 1], 8, 8),  # the tiny network's native loop
    ([3, 4, 1], 8, 2),
    ([20, 33, 17, 5], 50, 10),
    ([200, 30, 1], 60, 20),
])
@pytest.mark.parametrize("shuffled", [False, True])
def test_train_epochs_checks_each_batch_of_the_first_epoch(dtype, layer_sizes, n_rows,
                                                           batch_size, shuffled):
    """With check_inputs, a batch holding NaN or infinity stops the loop before it
    is used: the batches before it are trained, as a run over them alone trains
    them. Without, or with the bad row, the training is the same as ever."""
    weights, biases, X, Y, sizes, codes = make_case(
        layer_sizes, n_rows, activations_for(layer_sizes, "sigmoid", "sigmoid"), dtype)
    rng = np.random.default_rng(8)
    n_epochs = 2
    order = (rng.permutation(n_rows) if shuffled else np.arange(n_rows)).astype(np.intp)
    orders = np.tile(order, (n_epochs, 1)) if shuffled else np.empty((n_epochs, 0), np.intp)
    rates = np.full(n_epochs, 0.1)
    clean = flatten(weights, biases, dtype)
    clean_result, clean_losses = call_train_epochs(X, Y, clean, sizes, codes, "mse", orders,
                                                   batch_size, rates, check_inputs=True)
    plain = flatten(weights, biases, dtype)
    plain_result, plain_losses = call_train_epochs(X, Y, plain, sizes, codes, "mse", orders,
                                                   batch_size, rates)
    assert clean_result == plain_result
    assert clean_result[:2] == (n_epochs, _core.STATUS["completed"])
    np.testing.assert_array_equal(clean, plain)
    np.testing.assert_array_equal(clean_losses, plain_losses)
    for bad_batch in sorted({0, n_rows // batch_size - 1, 1 % (n_rows // batch_size)}):
        for bad in [np.nan, np.inf, -np.inf]:
            spoiled = X.copy()
            spoiled[order[bad_batch * batch_size + batch_size // 2], -1] = bad
            params = flatten(weights, biases, dtype)
            (completed, status, step, _), _ = call_train_epochs(
                spoiled, Y, params, sizes, codes, "mse", orders, batch_size, rates,
                check_inputs=True)
            assert (completed, status, step) == (0, _core.STATUS["input_not_finite"],
                                                 bad_batch)
            # the batches before the bad one, and nothing else
            rows = order[: bad_batch * batch_size]
            expected = flatten(weights, biases, dtype)
            if rows.size:
                call_train_epochs(X[rows], Y[rows], expected, sizes, codes, "mse",
                                  np.empty((1, 0), np.intp), batch_size, rates[:1])
            np.testing.assert_array_equal(params, expected)


def run_training(dtype, layer_sizes, n_rows, batch_size, orders, mean=False, rate=0.05,
                 loss="mse", output="tanh", sample_weight=None, settings=None, hidden="tanh",
                 seed=3):
    """Run the core's training loop; return what it returns and the data it used."""
    activations = activations_for(layer_sizes, hidden, output)
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype,
                                                    loss, seed=seed)
    params = flatten(weights, biases, dtype)
    (completed, status, step, _), losses = call_train_epochs(
        X, Y, params, sizes, codes, loss, orders, batch_size, np.full(orders.shape[0], rate),
        mean, SGD if settings is None else settings, sample_weight)
    assert status == _core.STATUS["completed"]
    assert step == completed * -(-n_rows // batch_size)
    return completed, params, losses, (weights, biases, X, Y, activations)


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
    completed, params, losses, (weights, biases, X, Y, activations) = run_training(
        dtype, layer_sizes, n_rows, batch_size, orders, mean)
    expected_losses = [
        reference.sgd_epoch(X, Y, weights, biases, activations, 0.05, batch_size,
                            order=orders[e] if shuffled else None,
                            reduction="mean" if mean else "sum")
        for e in range(n_epochs)
    ]
    expected_params = flatten(weights, biases, dtype)
    assert completed == n_epochs
    rtol = 1e-10 if dtype is np.float64 else 1e-4
    np.testing.assert_allclose(losses, expected_losses, rtol=rtol)
    np.testing.assert_allclose(params, expected_params, rtol=rtol,
                               atol=rtol * np.abs(expected_params).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_weights_act_as_repeated_samples(dtype):
    """A weight of 2 counts a sample twice, in one full-batch step under either reduction."""
    layer_sizes, n_rows = [3, 5, 3], 6
    counts = np.array([1, 2, 0, 3, 1, 1])
    for mean in (False, True):
        no_order = np.empty((1, 0), dtype=np.intp)
        weighted = run_training(dtype, layer_sizes, n_rows, n_rows, no_order, mean,
                                loss="cross_entropy", output="softmax",
                                sample_weight=counts.astype(dtype))
        weights, biases, X, Y, activations = weighted[3]
        repeated = np.repeat(np.arange(n_rows), counts)
        params = flatten(weights, biases, dtype)
        # One step on the repeated data, by the oracle.
        dW, db = reference.gradients(X[repeated], Y[repeated], weights, biases, activations,
                                     "mean" if mean else "sum", "cross_entropy")
        expected = params - 0.05 * flatten(dW, db, np.float64)
        rtol = 1e-10 if dtype is np.float64 else 1e-4
        np.testing.assert_allclose(weighted[1], expected, rtol=rtol, atol=rtol)


def train_in_calls(X, Y, params, sizes, codes, batch_size, learning_rates, calls,
                   settings=SGD):
    """train_epochs over len(learning_rates) epochs in calls of calls[i] epochs, each
    after the first handed the backup rows of the one before with
    resume_known_good, as fit does. Returns the parameters' fate as
    (epochs completed, status, the restored epoch counted over all calls or -1)."""
    backup = np.empty((2, params.size), params.dtype)
    done = 0
    for index, count in enumerate(calls):
        rates = learning_rates[done:done + count]
        (completed, status, _, good_epoch), _ = call_train_epochs(
            X, Y, params, sizes, codes, "mse", np.empty((count, 0), np.intp), batch_size,
            rates, settings=settings, backup=backup, signal_interval=1, resume=index > 0)
        if status != _core.STATUS["completed"]:
            return done + completed, status, done + good_epoch
        done += completed
    return done, _core.STATUS["completed"], done - 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("network", ["general", "tiny"])
@pytest.mark.parametrize("calls", ["of one epoch", "of three epochs"])
def test_calls_that_carry_the_known_good_restore_as_one_call(dtype, network, calls):
    """A full batch whose loss is not finite means the parameters that began its
    epoch are bad: the restored parameters are the start of the epoch before,
    whether that epoch ran in the same call or in the caller's previous one."""
    if network == "general":
        layer_sizes, n_rows = [3, 4, 2], 8
        weights, biases, X, Y, sizes, codes = make_case(
            layer_sizes, n_rows, ["identity", "identity"], dtype)
        initial = flatten(weights, biases, dtype)
        learning_rates = np.full(40, 0.2)
    else:
        layer_sizes, params, X, Y = NAN_LOSS_AFTER_ONE_STEP
        with np.errstate(over="ignore"):  # in float32, 1e200 rounds to infinity
            initial, X, Y = (np.array(values, dtype=dtype) for values in (params, X, Y))
        sizes = np.array(layer_sizes, dtype=np.intp)
        codes = np.full(2, _core.ACTIVATIONS["sigmoid"], dtype=np.intc)
        learning_rates = np.full(40, 1.0)
    n_rows = X.shape[0]
    one_call = initial.copy()
    whole = train_in_calls(X, Y, one_call, sizes, codes, n_rows, learning_rates, [40])
    split = initial.copy()
    per_call = 1 if calls == "of one epoch" else 3
    parts = train_in_calls(X, Y, split, sizes, codes, n_rows, learning_rates,
                           [per_call] * (40 // per_call + 1))
    assert whole[1] == _core.STATUS["diverged"]
    assert parts == whole
    assert split.tobytes() == one_call.tobytes()
    if network == "general" or dtype is np.float64:
        # a loss that failed in a later epoch: the restored epoch is the one before
        assert whole[2] == whole[0] - 1 >= 0
    replayed = initial.copy()
    if whole[2] > 0:
        train_in_calls(X, Y, replayed, sizes, codes, n_rows, learning_rates[:whole[2]],
                       [whole[2]])
    np.testing.assert_array_equal(split, replayed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [2, 8])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
@pytest.mark.parametrize("rates", ["too large", "infinite in epoch 3"])
def test_train_epochs_stops_on_divergence_and_restores_parameters(dtype, batch_size,
                                                                   optimizer, rates):
    """Too large a rate blows up the loss of some batch; an infinite one, in an
    epoch of one batch (batch_size 8), leaves that batch's loss finite and
    makes the parameters infinite, which only the end-of-epoch check sees."""
    layer_sizes, n_rows = [3, 4, 2], 8
    n_epochs = 50
    activations = ["identity", "identity"]
    weights, biases, X, Y, sizes, codes = make_case(layer_sizes, n_rows, activations, dtype)
    initial = flatten(weights, biases, dtype)
    settings = SGD if optimizer == "sgd" else {**SGD, "kind": _core.OPTIMIZERS[optimizer],
                                                "momentum": 0.5}
    if rates == "too large":
        learning_rates = np.full(n_epochs, 0.2)
    else:
        learning_rates = np.full(n_epochs, 0.001)
        learning_rates[3] = np.inf

    def train(params, epochs):
        backup = np.empty((2, params.size), dtype)
        result, losses = call_train_epochs(
            X, Y, params, sizes, codes, "mse", np.empty((epochs, 0), np.intp), batch_size,
            learning_rates[:epochs], settings=settings, backup=backup, signal_interval=1)
        return result, losses, backup

    params = initial.copy()
    (completed, status, _, good_epoch), losses, backup = train(params, n_epochs)
    assert status == _core.STATUS["diverged"]
    assert 0 < completed < n_epochs
    if rates != "too large":
        assert completed == 3
    assert np.isfinite(losses[:completed]).all()
    assert np.isnan(losses[completed])
    assert np.isfinite(params).all()
    assert any((params == row).all() for row in backup)  # one of the two rows
    assert 0 <= good_epoch <= completed
    # Exactly the parameters the epoch good_epoch started from.
    replayed = initial.copy()
    if good_epoch > 0:
        train(replayed, good_epoch)
    np.testing.assert_array_equal(params, replayed)
    # They gave a finite loss.
    A = activation_buffer(layer_sizes, n_rows, dtype)
    Z = np.empty(n_rows * 2, dtype)
    assert np.isfinite(_core.loss_sum(X, Y, NO_WEIGHTS[dtype], params, sizes, codes, 0, A, Z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_sizes, batch_size, exact", [
    ([5, 7, 4, 3], 1, True), ([60, 90, 70, 2], 1, True),
    ([5, 7, 4, 3], 5, True), ([60, 90, 70, 2], 5, False),
    ([3, 4, 1], 4, True), ([2, 3, 2], 3, True),
])
def test_fused_sgd_steps_match_the_general_path(dtype, layer_sizes, batch_size, exact):
    """Plain SGD updates each layer inside the backward pass; momentum 0 takes the
    general path (gradient, then update). In plain loops the two agree bit for bit;
    where the fused update goes to BLAS it may round the last bit differently."""
    results = []
    for settings in (SGD, MOMENTUM_ZERO):
        completed, params, losses, _ = run_training(
            dtype, layer_sizes, 12, batch_size, np.empty((3, 0), dtype=np.intp),
            settings=settings)
        assert completed == 3
        results.append((params, losses))
    if exact:
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])
    else:
        rtol = 1e-5 if dtype is np.float32 else 1e-13
        np.testing.assert_allclose(results[0][0], results[1][0], rtol=rtol,
                                   atol=rtol * np.abs(results[1][0]).max())
        np.testing.assert_allclose(results[0][1], results[1][1], rtol=rtol)
