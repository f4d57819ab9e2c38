"""The public Network API."""

import copy
import subprocess
import sys

import numpy as np
import pytest

import cyprop.network as network_module
from cyprop import Network

from . import reference
from .reference import random_network_arrays

DTYPES = ["float32", "float64"]
RTOL = {"float32": 1e-5, "float64": 1e-12}


def random_net(layer_sizes, dtype="float64", seed=0, **options):
    weights, biases = random_network_arrays(np.random.default_rng(seed), layer_sizes)
    return Network.from_weights(weights, biases, dtype=dtype, **options)


def random_data(n_samples, layer_sizes, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_samples, layer_sizes[0])),
            rng.uniform(0, 1, (n_samples, layer_sizes[-1])))


# --- construction and parameters -------------------------------------------

def test_constructor_configuration():
    net = Network([3, 5, 4, 2], activation="tanh", output_activation="identity",
                  dtype="float32", seed=0)
    assert net.layer_sizes == (3, 5, 4, 2)
    assert net.activations == ("tanh", "tanh", "identity")
    assert net.dtype == np.float32
    assert [W.shape for W in net.weights] == [(3, 5), (5, 4), (4, 2)]
    assert [b.shape for b in net.biases] == [(5,), (4,), (2,)]
    assert net.n_parameters == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2
    assert all(W.dtype == np.float32 for W in net.weights + net.biases)
    assert "Network([3, 5, 4, 2]" in repr(net)


def test_output_activation_defaults_to_activation():
    assert Network([2, 3, 1], activation="relu").activations == ("relu", "relu")


def test_activation_per_hidden_layer():
    net = Network([2, 3, 3, 1], activation=["relu", "tanh"], output_activation="sigmoid")
    assert net.activations == ("relu", "tanh", "sigmoid")


@pytest.mark.parametrize("init", ["glorot", "he", "lesson"])
def test_initialisation_is_seeded(init):
    first = Network([4, 8, 3], seed=5, init=init)
    again = Network([4, 8, 3], seed=5, init=init)
    other = Network([4, 8, 3], seed=6, init=init)
    for a, b in zip(first.weights + first.biases, again.weights + again.biases):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_initialisation_scales():
    glorot = Network([400, 300, 1], seed=0, init="glorot")
    bound = np.sqrt(6 / 700)
    assert np.abs(glorot.weights[0]).max() <= bound
    assert np.abs(glorot.weights[0]).max() > 0.95 * bound
    assert np.abs(glorot.biases[0]).max() <= bound and glorot.biases[0].std() > 0.5 * bound
    assert not Network([400, 300, 1], seed=0, init="he").biases[0].any()
    he = Network([400, 300, 1], seed=0, init="he")
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    lesson = Network([400, 300, 1], seed=0, init="lesson")
    assert 0 <= lesson.weights[0].min() and lesson.weights[0].max() < 1
    assert lesson.biases[0].min() > 0


def test_weights_are_live_views():
    net = Network([2, 2, 1], activation="identity", seed=0)
    X = np.array([[1.0, 2.0]])
    net.weights[0][...] = np.eye(2)
    net.biases[0][...] = 0
    net.weights[1][...] = [[1.0], [1.0]]
    net.biases[1][...] = 0.5
    np.testing.assert_allclose(net.predict(X), [[3.5]])
    net.weights[1] *= 2
    np.testing.assert_allclose(net.predict(X), [[6.5]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[3, 3, 1], [6, 6, 2], [40, 40, 3]])
def test_training_on_views_of_the_networks_own_parameters_trains_on_their_values(dtype, sizes):
    """Training writes the parameters while it reads X, y and the sample weights:
    data that is a view of them is copied first, so it trains as a copy would."""
    viewed, copied = (Network(sizes, seed=0, dtype=dtype) for _ in range(2))
    for net in (viewed, copied):
        np.abs(net.biases[0], out=net.biases[0])  # sample weights must not be negative
    # A square first layer's weights as X, the second layer's as y, the first
    # layer's biases as the sample weights: one per sample, as the shapes need.
    viewed.fit(viewed.weights[0], viewed.weights[1], sample_weight=viewed.biases[0],
               epochs=20, batch_size=2, learning_rate=0.01)
    copied.fit(copied.weights[0].copy(), copied.weights[1].copy(),
               sample_weight=copied.biases[0].copy(), epochs=20, batch_size=2,
               learning_rate=0.01)
    for got, want in zip(viewed.weights + viewed.biases, copied.weights + copied.biases):
        np.testing.assert_array_equal(got, want)


def test_replacing_a_list_entry_does_not_detach_parameters():
    net = Network([2, 2], activation="identity", seed=0)
    weights = net.weights
    weights[0] = np.zeros((2, 2))
    assert net.weights[0].any()


@pytest.mark.parametrize("bias_shape", ["flat", "row"])
def test_from_weights_copies_and_accepts_both_bias_shapes(bias_shape):
    W1, W2 = np.arange(6.0).reshape(2, 3), np.ones((3, 1))
    b1, b2 = np.zeros(3), np.ones(1)
    if bias_shape == "row":
        b1, b2 = b1.reshape(1, -1), b2.reshape(1, -1)
    net = Network.from_weights([W1, W2], [b1, b2], activation="identity")
    assert net.layer_sizes == (2, 3, 1)
    W1 += 100
    np.testing.assert_array_equal(net.weights[0], np.arange(6.0).reshape(2, 3))
    assert net.biases[1].shape == (1,)
    np.testing.assert_allclose(net.predict([[1, 1]]), [[3 + 5 + 7 + 1]])


def test_from_weights_dtype():
    W, b = [np.ones((2, 2), np.float32)], [np.zeros(2, np.float32)]
    assert Network.from_weights(W, b).dtype == np.float32
    assert Network.from_weights(W, b, dtype="float64").dtype == np.float64
    assert Network.from_weights([np.ones((2, 2), int)], [np.zeros(2)]).dtype == np.float64


# --- inference ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
def test_forward_and_predict_match_numpy(dtype, activation):
    layer_sizes = [5, 7, 6, 3]
    net = random_net(layer_sizes, dtype, activation=activation)
    X, _ = random_data(11, layer_sizes)
    layers = net.forward(X)
    expected = reference.forward(X.astype(dtype), net.weights, net.biases,
                                 [activation] * 3)
    assert len(layers) == 3
    for got, want in zip(layers, expected):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_array_equal(net.predict(X), layers[-1])


@pytest.mark.parametrize("chunk_activations", [None, 3000])
def test_predict_loss_and_gradients_in_chunks_match_a_single_pass(monkeypatch,
                                                                  chunk_activations):
    """With chunks of 9 rows (3000 activations of 304 per row), 100 rows take 12
    chunks, the last smaller; and 9,000 rows at the real chunk size."""
    layer_sizes = [8, 300, 4]
    n_rows = 9000
    if chunk_activations is not None:
        monkeypatch.setattr(network_module, "_CHUNK_ACTIVATIONS", chunk_activations)
        n_rows = 100
    net = random_net(layer_sizes, activation="tanh")
    X, y = random_data(n_rows, layer_sizes)
    args = (X, y, net.weights, net.biases, ["tanh", "tanh"], "sum")
    expected = reference.forward(X, net.weights, net.biases, ["tanh", "tanh"])[-1]
    np.testing.assert_allclose(net.predict(X), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.loss(X, y), reference.loss(*args), rtol=1e-12)
    dW, db = net.gradients(X, y)
    want_dW, want_db = reference.gradients(*args)
    for got, want in zip(dW + db, want_dW + want_db):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_predict_accepts_lists_and_integers():
    net = random_net([3, 4, 1])
    np.testing.assert_array_equal(net.predict([[0, 1, 1]]), net.predict(np.array([[0.0, 1, 1]])))


# --- loss, gradients and a training step -------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_and_gradients_match_numpy(dtype, reduction):
    layer_sizes = [4, 6, 2]
    net = random_net(layer_sizes, dtype, activation="sigmoid", reduction=reduction)
    X, y = random_data(9, layer_sizes)
    X, y = X.astype(dtype), y.astype(dtype)
    args = (X, y, net.weights, net.biases, ["sigmoid"] * 2, reduction)
    np.testing.assert_allclose(net.loss(X, y), reference.loss(*args), rtol=RTOL[dtype])
    dW, db = net.gradients(X, y)
    ref_dW, ref_db = reference.gradients(*args)
    for got, want in zip(dW + db, ref_dW + ref_db):
        assert got.shape == want.shape and got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


def test_one_dimensional_targets_for_one_output():
    net = random_net([3, 4, 1])
    X, y = random_data(6, [3, 4, 1])
    assert net.loss(X, y.ravel()) == net.loss(X, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_fit_step_is_one_numpy_sgd_step(dtype):
    layer_sizes = [3, 5, 2]
    net = random_net(layer_sizes, dtype, activation="tanh")
    X, y = random_data(10, layer_sizes)
    weights = [W.copy() for W in net.weights]
    biases = [b.copy() for b in net.biases]
    X32, y32 = X.astype(dtype), y.astype(dtype)
    expected_loss = reference.sgd_epoch(X32, y32, weights, biases, ["tanh", "tanh"], 0.05, 10)
    history = net.fit(X, y, epochs=1, learning_rate=0.05)
    np.testing.assert_allclose(history, [expected_loss], rtol=RTOL[dtype])
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


@pytest.mark.parametrize("batch_size", [1, 4])
def test_minibatches_in_order_match_numpy(batch_size):
    layer_sizes = [3, 5, 2]
    net = random_net(layer_sizes, activation="sigmoid", reduction="mean")
    X, y = random_data(10, layer_sizes)
    weights = [W.copy() for W in net.weights]
    biases = [b.copy() for b in net.biases]
    expected = [reference.sgd_epoch(X, y, weights, biases, ["sigmoid"] * 2, 0.3, batch_size,
                                    reduction="mean") for _ in range(3)]
    history = net.fit(X, y, epochs=3, learning_rate=0.3, batch_size=batch_size, shuffle=False)
    np.testing.assert_allclose(history, expected, rtol=1e-12)
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_learns_a_smooth_function(dtype):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2))
    y = np.sin(2 * X[:, :1]) * X[:, 1:]
    net = Network([2, 16, 1], activation="tanh", output_activation="identity",
                  reduction="mean", dtype=dtype, seed=0)
    history = net.fit(X, y, epochs=300, learning_rate=0.1, batch_size=16)
    assert len(history) == 300
    assert history.loss.dtype == np.float64
    assert history.val_loss is None and not history.stopped_early
    assert history[-1] < 0.05 * history[0]
    assert net.loss(X, y) < 0.002


def test_fit_continues_from_the_current_weights():
    X, y = random_data(20, [3, 4, 1])
    once = Network([3, 4, 1], seed=3)
    twice = copy.deepcopy(once)
    once.fit(X, y, epochs=6, learning_rate=0.1, batch_size=5)
    twice.fit(X, y, epochs=2, learning_rate=0.1, batch_size=5)
    twice.fit(X, y, epochs=4, learning_rate=0.1, batch_size=5)
    for a, b in zip(once.weights + once.biases, twice.weights + twice.biases):
        np.testing.assert_array_equal(a, b)


def test_shuffling_is_seeded_and_does_not_depend_on_reporting(capsys):
    X, y = random_data(30, [3, 4, 1])
    runs = []
    for seed, verbose in [(1, False), (1, 2), (2, False)]:
        net = Network([3, 4, 1], seed=seed, init="lesson")
        net.fit(X, y, epochs=6, learning_rate=0.1, batch_size=4, verbose=verbose)
        runs.append(net.weights[0].copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out] == ["2/6", "4/6", "6/6"]
    # Different seed, different order (the lesson init ignores nothing but the seed).
    assert not np.array_equal(runs[0], runs[2])
    unshuffled = Network([3, 4, 1], seed=1, init="lesson")
    unshuffled.fit(X, y, epochs=6, learning_rate=0.1, batch_size=4, shuffle=False)
    assert not np.array_equal(runs[0], unshuffled.weights[0])


def test_full_batch_ignores_shuffle():
    X, y = random_data(12, [3, 4, 1])
    a, b = Network([3, 4, 1], seed=0), Network([3, 4, 1], seed=0)
    a.fit(X, y, epochs=5, shuffle=True)
    b.fit(X, y, epochs=5, shuffle=False)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])


def test_divergence_raises_and_leaves_finite_weights():
    X, y = random_data(16, [3, 8, 1])
    X *= 10
    net = Network([3, 8, 1], activation="identity", seed=0)
    with pytest.raises(FloatingPointError, match=r"diverged in epoch \d+ of 1000"):
        net.fit(X, y, epochs=1000, learning_rate=0.5, batch_size=2)
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    assert np.isfinite(net.loss(X, y))


def test_blas_is_warmed_up_once_for_networks_that_reach_it():
    """A network small enough for the core's own loops never calls BLAS; a larger one
    runs the one warm-up product first (in a fresh process, where none has run)."""
    code = (
        "import numpy as np\n"
        "from cyprop import Network, _blas_warmup\n"
        "Network([3, 4, 1], seed=0).fit(np.ones((4, 3)), np.ones((4, 1)), epochs=2)\n"
        "print(_blas_warmup.blas_is_warm())\n"
        "Network([100, 50, 1], seed=0).predict(np.ones((2, 100)))\n"
        "print(_blas_warmup.blas_is_warm())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "True"]
