"""The core releases the GIL; networks train side by side without interfering."""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from cyprop import Network


def make_data(seed, n_samples=300):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 20))
    return X, np.tanh(X[:, :3] @ rng.standard_normal((3, 4)))


def train(seed, dtype="float64"):
    X, y = make_data(seed)
    net = Network([20, 64, 4], activation="tanh", output_activation="identity",
                  reduction="mean", dtype=dtype, seed=seed)
    net.fit(X, y, epochs=15, batch_size=16, optimizer="adam")
    return np.concatenate([p.ravel() for p in net.weights + net.biases])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_train_as_if_one_after_another(dtype):
    seeds = [1, 2, 3, 4]
    sequential = [train(seed, dtype) for seed in seeds]
    results = [None] * len(seeds)

    def work(index):
        results[index] = train(seeds[index], dtype)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(seeds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for alone, together in zip(sequential, results):
        assert alone.tobytes() == together.tobytes()


def test_predict_from_many_threads():
    X, y = make_data(0, 2000)
    net = Network([20, 128, 4], activation="relu", seed=0)
    expected = net.predict(X)
    outputs = []

    def work():
        for _ in range(20):
            outputs.append(net.predict(X))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 80
    for output in outputs:
        assert output.tobytes() == expected.tobytes()


def test_core_releases_the_gil():
    """A Python thread keeps running while another thread sits in the training loop."""
    X, y = make_data(0, 4000)
    net = Network([20, 256, 4], activation="tanh", seed=0)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(1)
            done.wait(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        before = len(ticks)
        # One call of the training loop: many batches without returning to Python.
        net.fit(X, y, epochs=3, learning_rate=1e-4, batch_size=8)
        during = len(ticks) - before
    finally:
        done.set()
        thread.join()
    assert during > 10


def test_fitting_one_network_from_two_threads_is_refused():
    X, y = make_data(0, 4000)
    net = Network([20, 256, 4], activation="tanh", seed=0)
    errors = []
    started = threading.Event()

    def long_fit():
        net.fit(X, y, epochs=40, learning_rate=1e-4, batch_size=8,
                callbacks=[lambda net, logs: started.set()])

    thread = threading.Thread(target=long_fit)
    thread.start()
    started.wait()
    # The first fit holds the network; keep trying until this one is refused.
    while thread.is_alive() and not errors:
        try:
            net.fit(X[:10], y[:10], epochs=1, learning_rate=1e-4)
        except RuntimeError as error:
            errors.append(str(error))
    thread.join()
    assert errors and "already being trained (in another thread" in errors[0]
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)


def test_a_callback_that_trains_its_own_network_is_refused():
    X, y = np.zeros((8, 3)), np.zeros((8, 1))
    net = Network([3, 2, 1], seed=0)

    def train_again(network, logs):
        network.partial_fit(X, y)

    with pytest.raises(RuntimeError, match="by the fit or partial_fit whose callback"):
        net.fit(X, y, epochs=2, callbacks=[train_again])
    net.fit(X, y, epochs=1)


def test_a_fit_that_raises_lets_the_network_train_again():
    X, y = make_data(0, 40)
    net = Network([20, 8, 4], activation="tanh", output_activation="identity", seed=0)
    with pytest.raises(FloatingPointError):
        net.fit(X, y * 1e150, epochs=5, learning_rate=10.0)

    def stop(net, logs):
        raise KeyError("from a callback")

    with pytest.raises(KeyError):
        net.fit(X, y, epochs=2, learning_rate=0.01, callbacks=[stop])
    assert not net._fit_lock.locked()
    history = net.fit(X, y, epochs=3, learning_rate=0.01)
    assert len(history) == 3


def _train_large(dtype, n_threads, threadpoolctl, optimizer):
    X, y = make_data(5, 512)
    with threadpoolctl.threadpool_limits(limits=n_threads):
        net = Network([20, 256, 256, 4], activation="relu", reduction="mean",
                      dtype=dtype, seed=3)
        net.fit(X, y, epochs=2, batch_size=128, optimizer=optimizer,
                learning_rate=0.01 if optimizer == "sgd" else None)
        return np.concatenate([net.predict(X).ravel()] + [p.ravel() for p in net.weights])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_same_blas_thread_count_same_bits(dtype, optimizer):
    """Layers large enough for BLAS: bit-identical at a fixed thread count, and
    equal up to rounding across thread counts (BLAS may then pick other kernels).
    Plain SGD takes the fused path, whose update is itself a BLAS product."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    one = [_train_large(dtype, 1, threadpoolctl, optimizer) for _ in range(2)]
    two = [_train_large(dtype, 2, threadpoolctl, optimizer) for _ in range(2)]
    assert one[0].tobytes() == one[1].tobytes()
    assert two[0].tobytes() == two[1].tobytes()
    np.testing.assert_allclose(one[0], two[0], rtol=1e-3 if dtype == "float32" else 1e-9,
                               atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("sizes", "batch_size", "optimizer"), [
    ([5, 7, 3], 8, "sgd"),
    ([5, 7, 3], 8, "adam"),
    ([3, 4, 1], 4, "momentum"),         # the lesson's network
    ([16, 16, 16, 2], 15, "nesterov"),  # 15 * 16 * 16 = 3,840, just below the threshold
])
def test_small_networks_train_identically_at_any_blas_thread_count(sizes, batch_size,
                                                                   optimizer, dtype):
    """Products below BLAS_MIN_PRODUCT run in cyprop's own loops, never in BLAS."""
    from threadpoolctl import threadpool_limits

    from cyprop import _core

    largest = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    assert batch_size * largest < _core.BLAS_MIN_PRODUCT
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5 * batch_size, sizes[0]))
    y = rng.uniform(0, 1, (5 * batch_size, sizes[-1]))
    results = {}
    for threads in (1, 2):
        with threadpool_limits(threads):
            net = Network(sizes, activation="tanh", output_activation="sigmoid",
                          dtype=dtype, seed=3)
            losses = net.fit(X, y, epochs=20, batch_size=batch_size, optimizer=optimizer)
            outputs = np.concatenate([net.predict(X[i:i + batch_size])
                                      for i in range(0, len(X), batch_size)])
        params = np.concatenate([p.ravel() for p in net.weights + net.biases])
        results[threads] = (params.tobytes(), np.asarray(losses).tobytes(), outputs.tobytes())
    assert results[1] == results[2]


SMALL_STACK = textwrap.dedent("""
    import threading
    import numpy as np
    from threadpoolctl import threadpool_limits
    from cyprop import Network, _core

    threadpool_limits({threads})
    if not _core.takes_avx512_product(64, 256, 784, np.dtype("{dtype}").itemsize):
        print("no AVX-512 kernel here")
        raise SystemExit
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 784)).astype("{dtype}")
    y = np.eye(10, dtype="{dtype}")[rng.integers(0, 10, 64)]

    def work(results):
        net = Network([784, 256, 10], activation="sigmoid", output_activation="softmax",
                      loss="cross_entropy", dtype="{dtype}", seed=0)
        results.append(net.predict(X))
        net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.01)
        results.append(net.predict(X))

    here = []
    work(here)
    threading.stack_size(48 * 1024)  # numpy's own products run in such a thread
    there = []
    thread = threading.Thread(target=work, args=(there,))
    thread.start()
    thread.join()
    print(len(there) == 2 and all(np.array_equal(a, b) for a, b in zip(here, there)))
""")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_thread_with_a_small_stack_gets_the_same_results(dtype, threads):
    """The products' copy of the weights is no longer on the calling thread's
    stack, whose 48 KB it overflowed."""
    child = SMALL_STACK.format(dtype=dtype, threads=threads)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    if result.stdout == "no AVX-512 kernel here\n":
        pytest.skip("the products here do not run on the AVX-512 kernel")
    assert result.stdout == "True\n"
