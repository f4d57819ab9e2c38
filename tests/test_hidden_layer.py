"""Plain SGD on one hidden layer, split between threads by the hidden layer's
columns (section 7 of _core.pyx): the gradient it steps along, its agreement
with the reference and with the core's general loop, the same bits at one
and two threads, and how it stops."""

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyprop import Network, _core
from cyprop.optimizers import SGD as SGDOptimizer
from cyprop.optimizers import Adam

from . import reference
from .test_core import SGD, activation_buffer
from .test_gemm import needs_kernel
from .test_gradients import partial_derivative, relative_error

CODES = _core.ACTIVATIONS

# (layer sizes, hidden activation, output activation, loss, batch size, rows):
# W3's shape, columns that split unevenly or end in a partial vector, one
# output, and last batches of 1 and of 37 rows.
CASES = [
    ([784, 256, 10], "sigmoid", "softmax", "cross_entropy", 64, 300),
    ([300, 100, 7], "tanh", "identity", "mse", 50, 301),
    ([200, 130, 1], "leaky_relu", "sigmoid", "binary_cross_entropy", 128, 293),
    ([160, 97, 10], "relu", "sigmoid", "mse", 33, 199),
    ([64, 48, 4], "identity", "softmax", "cross_entropy", 8, 81),
]


def scratch_size(sizes, activations, batch_size, dtype, optimizer=SGD, gather=False,
                 weighted=False):
    return _core.hidden_layer_scratch_size(
        optimizer, batch_size, np.array(sizes, np.intp),
        np.array([CODES[a] for a in activations], np.intc), np.dtype(dtype).itemsize, gather,
        weighted)


def split_taken(sizes, activations, batch_size, dtype, optimizer=SGD):
    return scratch_size(sizes, activations, batch_size, dtype, optimizer) > 0


def data(sizes, n_rows, loss, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n_rows)]
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n_rows, sizes[-1]))
    else:
        y = rng.uniform(-1, 1, (n_rows, sizes[-1]))
    return X, y.astype(dtype), rng.uniform(0.5, 2.0, n_rows)


def skip_unless_split_at_two_threads(case, dtype):
    """Skip where two BLAS threads would not split case's hidden layer."""
    sizes, _, _, _, batch_size, _ = case
    with threadpool_limits(2):
        if _core.avx512_product_threads(batch_size, sizes[1], sizes[0],
                                        np.dtype(dtype).itemsize) < 2:
            pytest.skip("one thread here, or too little work to split")


def fit(case, dtype, threads, epochs=2, shuffle=True, weighted=False, reduction="sum",
        learning_rate=0.01, X=None):
    """Train case's network with Network.fit; returns its parameters, flat, and
    the losses of its epochs."""
    sizes, hidden, output, loss, batch_size, n_rows = case
    X_data, y, weights = data(sizes, n_rows, loss, dtype)
    X = X_data if X is None else X
    net = Network(sizes, activation=hidden, output_activation=output, loss=loss,
                  reduction=reduction, dtype=dtype, seed=4)
    with threadpool_limits(threads):
        history = net.fit(X, y, epochs=epochs, learning_rate=learning_rate,
                          batch_size=batch_size, shuffle=shuffle,
                          sample_weight=weights if weighted else None)
    flat = np.concatenate([p.ravel() for p in net.weights + net.biases])
    return flat, np.asarray(history.loss)


def test_which_networks_are_split():
    """One hidden layer of an elementwise activation, batches of 8 to 128 rows,
    an output at most a sixteenth as wide as the input; never more layers."""
    if not split_taken([784, 256, 10], ["sigmoid", "softmax"], 64, np.float32):
        pytest.skip("the kernel does not run here")
    for dtype in (np.float32, np.float64):
        assert split_taken([784, 256, 10], ["relu", "softmax"], 128, dtype)
        assert split_taken([784, 256, 10], ["tanh", "identity"], 8, dtype)
        assert not split_taken([784, 256, 10], ["sigmoid", "softmax"], 129, dtype)
        assert not split_taken([784, 256, 10], ["sigmoid", "softmax"], 7, dtype)
        assert not split_taken([784, 256, 64], ["sigmoid", "softmax"], 64, dtype)
        assert not split_taken([784, 256, 10], ["softmax", "softmax"], 64, dtype)
        assert not split_taken([784, 256, 256, 10], ["sigmoid"] * 2 + ["softmax"], 64, dtype)
        assert not split_taken([1024, 1024, 10], ["sigmoid", "softmax"], 64, dtype)
    assert not split_taken([784, 40, 10], ["sigmoid", "softmax"], 64, np.float32)
    assert split_taken([784, 40, 10], ["sigmoid", "softmax"], 64, np.float64)
    with pytest.raises(ValueError, match="one more layer"):
        _core.hidden_layer_scratch_size(SGD, 64, np.array([3, 4], np.intp),
                                        np.array([1, 1], np.intc), 8, False, False)


@needs_kernel
@pytest.mark.parametrize("changes", [
    {"kind": _core.OPTIMIZERS["momentum"], "momentum": 0.9},
    {"kind": _core.OPTIMIZERS["nesterov"], "momentum": 0.9},
    {"kind": _core.OPTIMIZERS["adam"], "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    {"weight_decay": 1e-4},
])
def test_only_plain_sgd_is_split(changes):
    """The split steps the weights inside its products, as only plain SGD
    without weight decay can: every other optimizer asks for no scratch."""
    optimizer = {**SGD, **changes}
    for dtype in (np.float32, np.float64):
        assert scratch_size([784, 256, 10], ["sigmoid", "softmax"], 64, dtype, optimizer,
                            gather=True) == 0


@needs_kernel
def test_split_scratch_size():
    """Room for the sums of both layers' deltas, and a second batch of X, Y
    and sample weights when batches are gathered."""
    own = 256 + 10
    assert scratch_size([784, 256, 10], ["sigmoid", "softmax"], 64, np.float32) == own
    assert scratch_size([784, 256, 10], ["sigmoid", "softmax"], 64, np.float32,
                        gather=True) == own + 64 * (784 + 10)
    assert scratch_size([784, 256, 10], ["sigmoid", "softmax"], 64, np.float64,
                        gather=True, weighted=True) == own + 64 * (784 + 10 + 1)


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_split_training_is_the_same_at_one_and_two_threads(case, dtype):
    """Shuffled and in storage order, weighted or not, sum and mean: the same
    bits from one thread as from two, and from each twice."""
    sizes, hidden, output, _, batch_size, _ = case
    assert split_taken(sizes, [hidden, output], batch_size, dtype)
    skip_unless_split_at_two_threads(case, dtype)
    for shuffle, weighted, reduction in [(True, False, "sum"), (False, True, "mean")]:
        options = dict(shuffle=shuffle, weighted=weighted, reduction=reduction)
        one = fit(case, dtype, 1, **options)
        two = fit(case, dtype, 2, **options)
        again = fit(case, dtype, 2, **options)
        for result in (two, again):
            assert result[0].tobytes() == one[0].tobytes()
            assert result[1].tobytes() == one[1].tobytes()


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_thread_that_falls_behind_leaves_its_blocks_to_the_other(dtype):
    """With every CPU also running a busy process, the threads lose their
    CPUs at different moments; the one still running takes blocks of hidden
    columns from the other's share, and the parameters are still the same
    bits as from one thread."""
    case = ([784, 256, 10], "sigmoid", "softmax", "cross_entropy", 64, 3200)
    skip_unless_split_at_two_threads(case, dtype)
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    if cpus > 16:
        pytest.skip("more CPUs than this test keeps busy")
    one = fit(case, dtype, 1)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(cpus)]
    try:
        moved = _core.blocks_moved()
        for _ in range(20):
            two = fit(case, dtype, 2)
            assert two[0].tobytes() == one[0].tobytes()
            assert two[1].tobytes() == one[1].tobytes()
            if _core.blocks_moved() > moved:
                break
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert _core.blocks_moved() > moved


@needs_kernel
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-11)])
@pytest.mark.parametrize("case", CASES)
def test_split_training_matches_the_reference(case, dtype, rtol):
    """Two epochs in storage order against the numpy reference's minibatch SGD."""
    sizes, hidden, output, loss, batch_size, n_rows = case
    X, y, _ = data(sizes, n_rows, loss, dtype)
    net = Network(sizes, activation=hidden, output_activation=output, loss=loss,
                  dtype=dtype, seed=4)
    weights = [W.astype(np.float64) for W in net.weights]
    biases = [b.astype(np.float64) for b in net.biases]
    expected = [reference.sgd_epoch(X.astype(np.float64), y.astype(np.float64), weights,
                                    biases, net.activations, 0.01, batch_size, loss=loss)
                for _ in range(2)]
    with threadpool_limits(2):
        history = net.fit(X, y, epochs=2, learning_rate=0.01, batch_size=batch_size,
                          shuffle=False)
    np.testing.assert_allclose(history.loss, expected, rtol=rtol)
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


class ScratchWatcher:
    """Stands in for a network's kernels, recording the size of the scratch
    that fit hands each call of train_epochs. With ``split``, fills that
    scratch with NaN and records, for each call, whether the split wrote its
    transposed copy of the output layer's weights (the first hidden x outputs
    values); without, hands train_epochs no scratch, so that fit trains
    through the core's general loop."""

    def __init__(self, kernels, n_transposed, split=True):
        self.kernels = kernels
        self.n_transposed = n_transposed
        self.split = split
        self.scratch_sizes = []
        self.wrote = []

    def __getattr__(self, name):
        return getattr(self.kernels, name)

    def train_epochs(self, *args, **kwargs):
        scratch = args[-1]
        self.scratch_sizes.append(scratch.size)
        if not self.split:
            return self.kernels.train_epochs(*args[:-1], scratch[:0], **kwargs)
        scratch[...] = np.nan
        result = self.kernels.train_epochs(*args, **kwargs)
        self.wrote.append(bool(np.isfinite(scratch[:self.n_transposed]).all()))
        return result


@needs_kernel
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-11)])
@pytest.mark.parametrize("case", CASES)
def test_fit_takes_the_split_and_agrees_with_the_general_loop(case, dtype, rtol):
    """Shuffled, weighted, mean-reduced epochs through fit (gathered rows in
    the double buffer): the split runs in every call into the core and ends
    where the general loop ends, to rounding."""
    sizes, hidden, output, loss, batch_size, n_rows = case
    X, y, weights = data(sizes, n_rows, loss, dtype)
    results = []
    for split in (True, False):
        net = Network(sizes, activation=hidden, output_activation=output, loss=loss,
                      reduction="mean", dtype=dtype, seed=4)
        net._kernels = watcher = ScratchWatcher(net._kernels, sizes[1] * sizes[2], split)
        with threadpool_limits(2):
            history = net.fit(X, y, epochs=3, learning_rate=0.05, batch_size=batch_size,
                              sample_weight=weights)
        if split:
            assert watcher.wrote and all(watcher.wrote)
        results.append((np.concatenate([p.ravel() for p in net.weights + net.biases]),
                        np.asarray(history.loss)))
    (split_params, split_losses), (general_params, general_losses) = results
    np.testing.assert_allclose(split_losses, general_losses, rtol=rtol)
    np.testing.assert_allclose(split_params, general_params, rtol=rtol, atol=rtol)


@needs_kernel
@pytest.mark.parametrize("optimizer, batch_size, splits", [
    (SGDOptimizer(learning_rate=0.01), 64, True),
    (SGDOptimizer(learning_rate=0.01, momentum=0.9), 64, False),
    (SGDOptimizer(learning_rate=0.01, weight_decay=1e-4), 64, False),
    (Adam(), 64, False),
    (SGDOptimizer(learning_rate=0.01), 129, False),
])
def test_fit_allocates_the_split_scratch_only_where_the_split_runs(optimizer, batch_size,
                                                                    splits):
    """The transposed weights and the second gathered batch cost memory only
    where the core will use them: plain SGD on batches of up to 128 rows."""
    sizes = CASES[0][0]
    X, y, _ = data(sizes, 300, "cross_entropy", "float32")
    net = Network(sizes, output_activation="softmax", loss="cross_entropy",
                  dtype="float32", seed=4)
    net._kernels = watcher = ScratchWatcher(net._kernels, sizes[1] * sizes[2])
    net.fit(X, y, epochs=1, batch_size=batch_size, optimizer=optimizer)
    expected = scratch_size(sizes, ["sigmoid", "softmax"], batch_size, "float32",
                            gather=True) if splits else 0
    assert watcher.scratch_sizes and set(watcher.scratch_sizes) == {expected}
    if splits:
        assert all(watcher.wrote)


def core_training(case, dtype, split, X=None, rows=None, learning_rate=0.01, epochs=2,
                  check_inputs=False, learning_rates=None):
    """train_epochs on case's data (its first rows, or all) in storage order,
    with the scratch that the split needs or without (the core's general
    loop); returns what it returns, the parameters and the epochs' losses."""
    sizes, hidden, output, loss, batch_size, n_rows = case
    X_data, Y, _ = data(sizes, n_rows, loss, dtype)
    X = X_data if X is None else X
    X, Y = X[:rows], Y[:rows]
    net = Network(sizes, activation=hidden, output_activation=output, loss=loss,
                  dtype=dtype, seed=4)
    params = np.concatenate([np.concatenate([W.ravel(), b])
                             for W, b in zip(net.weights, net.biases)])
    size_array = np.array(sizes, np.intp)
    codes = np.array([CODES[a] for a in net.activations], np.intc)
    scratch = np.empty(scratch_size(sizes, net.activations, batch_size, dtype), dtype)
    losses = np.zeros(epochs)
    rates = (np.full(epochs, learning_rate) if learning_rates is None
             else np.array(learning_rates, np.float64))
    result = _core.train_epochs(
        X, Y, np.empty(0, dtype), np.empty((epochs, 0), np.intp), batch_size, params,
        size_array, codes, _core.LOSSES[loss], False, SGD, rates, 0, np.empty(0, dtype),
        np.empty((0, X.shape[1]), dtype), np.empty((0, Y.shape[1]), dtype), np.empty(0, dtype),
        activation_buffer(sizes, batch_size, dtype), activation_buffer(sizes, batch_size, dtype),
        np.empty_like(params), np.empty((2, params.size), dtype), losses, 1000, check_inputs,
        scratch if split else None)
    return result, params, losses


@needs_kernel
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-12)])
@pytest.mark.parametrize("case", CASES)
def test_split_training_matches_the_general_loop(case, dtype, rtol):
    with threadpool_limits(2):
        split = core_training(case, dtype, True)
        general = core_training(case, dtype, False)
    assert split[0] == general[0]
    np.testing.assert_allclose(split[1], general[1], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(split[2], general[2], rtol=rtol)


@needs_kernel
def test_the_split_step_follows_the_gradient():
    """One batch, one step: (params before - after) / learning rate is the
    gradient of the batch's summed loss, by finite differences."""
    sizes, rows = [64, 48, 4], 16
    case = (sizes, "tanh", "softmax", "cross_entropy", rows, rows)
    assert split_taken(sizes, ["tanh", "softmax"], rows, np.float64)
    X, y, _ = data(sizes, rows, "cross_entropy", np.float64)
    net = Network(sizes, activation="tanh", output_activation="softmax",
                  loss="cross_entropy", dtype="float64", seed=4)
    before = [p.copy() for p in net.weights + net.biases]
    with threadpool_limits(2):
        _, after, _ = core_training(case, "float64", True, learning_rate=1e-3, epochs=1)
    step = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in
                           zip(net.weights, net.biases)]) - after
    rng = np.random.default_rng(3)
    offset = 0
    for layer, (W, b) in enumerate(zip(net.weights, net.biases)):
        for array in (W, b):
            flat = array.reshape(-1)
            picks = rng.choice(flat.size, size=min(flat.size, 25), replace=False)
            numeric = np.array([partial_derivative(net, X, y, flat, index) for index in picks])
            analytic = step[offset + picks] / 1e-3
            assert relative_error(analytic, numeric) < 1e-6, (layer, array.shape)
            offset += flat.size
    assert offset == step.size
    assert all(np.array_equal(p, q) for p, q in zip(before, net.weights + net.biases))


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad_row", [0, 100, 299])
def test_a_non_finite_input_stops_before_its_batch(threads, bad_row):
    """The first epoch checks each batch's rows: the batches before the bad
    one are taken, as by training on them alone, and the loop reports it."""
    case = CASES[0]
    batch_size = case[4]
    X, _, _ = data(case[0], case[5], case[3], np.float32)
    X[bad_row, 7] = np.nan
    taken = bad_row // batch_size
    with threadpool_limits(threads):
        result, params, _ = core_training(case, np.float32, True, X=X, check_inputs=True)
        general, general_params, _ = core_training(case, np.float32, False, X=X,
                                                   check_inputs=True)
        if taken:
            _, expected, _ = core_training(case, np.float32, True, rows=taken * batch_size,
                                           epochs=1)
    completed, status = result[0], result[1]
    assert (completed, status) == (0, _core.STATUS["input_not_finite"])
    assert result == general
    assert result[2] == taken
    if taken:
        assert params.tobytes() == expected.tobytes()
    np.testing.assert_allclose(params, general_params, rtol=1e-4, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_a_diverging_epoch_is_undone(threads):
    """A learning rate that overflows the loss in the second epoch: the loop
    reports divergence and leaves the parameters of the end of the first."""
    case = ([784, 256, 10], "relu", "identity", "mse", 64, 300)
    rates = [0.001, 1e30]
    with threadpool_limits(threads):
        result, params, losses = core_training(case, np.float32, True, learning_rates=rates)
        general, _, _ = core_training(case, np.float32, False, learning_rates=rates)
        _, first_epoch, _ = core_training(case, np.float32, True, learning_rates=rates[:1],
                                          epochs=1)
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    assert result[:2] == (1, _core.STATUS["diverged"]) == general[:2]
    assert params.tobytes() == first_epoch.tobytes()


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_a_last_step_that_overflows_the_parameters_is_undone(threads):
    """One batch an epoch, and a second epoch's rate that overflows float32 in
    the step: its loss was finite, so only the check of the parameters at the
    end of the epoch sees it, as in the general loop."""
    case = ([784, 256, 10], "relu", "identity", "mse", 64, 64)
    rates = [1e-3, 1e39]
    with threadpool_limits(threads):
        result, params, losses = core_training(case, np.float32, True, learning_rates=rates)
        general, _, general_losses = core_training(case, np.float32, False,
                                                   learning_rates=rates)
        _, first_epoch, _ = core_training(case, np.float32, True, learning_rates=rates[:1],
                                          epochs=1)
    assert result == general
    assert result[:2] == (1, _core.STATUS["diverged"])
    # To rounding: the general loop hands the output layer's product to BLAS,
    # whose order of summation depends on the kernel it picks for the CPU.
    np.testing.assert_allclose(losses, general_losses, rtol=2e-4)
    assert params.tobytes() == first_epoch.tobytes()


@needs_kernel
def test_networks_trained_from_two_python_threads_get_their_own_bits():
    """While one fit holds the workers, the other runs its split on its own
    thread: each ends as when trained alone."""
    import threading

    case = ([256, 128, 8], "sigmoid", "softmax", "cross_entropy", 64, 640)
    with threadpool_limits(2):
        alone = fit(case, "float32", 2, epochs=3)[0]
        results = [None] * 3

        def work(index):
            results[index] = fit(case, "float32", 2, epochs=3)[0]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for result in results:
        assert result.tobytes() == alone.tobytes()
