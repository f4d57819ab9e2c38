"""Ctrl-C during a long fit stops it promptly and leaves a usable network."""

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, signal, threading, time
    import numpy as np
    from cyprop import Network

    {setup}
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.perf_counter()
    try:
        net.fit(X, y, epochs={epochs}, learning_rate=0.01, batch_size={batch_size})
    except KeyboardInterrupt:
        elapsed = time.perf_counter() - start
        assert all(np.isfinite(p).all() for p in net.weights + net.biases)
        assert np.isfinite(net.predict(X[:5])).all()
        net.fit(X[:50], y[:50], epochs=1, learning_rate=0.01, batch_size={batch_size})
        print(f"interrupted after {{elapsed:.3f}} s")
    else:
        print("fit finished without interruption")
""")


WIDE = textwrap.dedent("""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 128))
    y = rng.standard_normal((4000, 8))
    net = Network([128, 256, 256, 8], activation="{activation}", output_activation="identity",
                  reduction="mean", seed=0)
""").strip()

# One hidden layer, whose threads share each batch (split in _core.pyx).
ONE_HIDDEN = textwrap.dedent("""
    from threadpoolctl import threadpool_limits
    threadpool_limits(2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 256)).astype(np.float32)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 4000)]
    net = Network([256, 128, 8], output_activation="softmax", loss="cross_entropy",
                  dtype="float32", seed=0)
""").strip()

# The lesson's network trained full batch runs its epochs in one native loop.
LESSON = textwrap.dedent("""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
    y = np.array([[0], [1], [1], [0]], dtype=float)
    net = Network([3, 4, 1], seed=0)
""").strip()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT from os.kill is POSIX")
@pytest.mark.parametrize("setup, epochs, batch_size", [
    (WIDE.format(activation="tanh"), 100_000, 32),
    (WIDE.format(activation="relu"), 100_000, 4000),
    (ONE_HIDDEN, 100_000, 64),
    (LESSON, 2_000_000_000, 4),
])
def test_ctrl_c_stops_fit(setup, epochs, batch_size):
    # Each run would take minutes or hours; it must end right after the signal.
    child = CHILD.format(setup=setup, epochs=epochs, batch_size=batch_size)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("interrupted after "), result.stdout + result.stderr
    assert float(result.stdout.split()[2]) < 30


HANDLER_CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    import numpy as np
    from cyprop import Network

    class Deadline(Exception):
        pass

    def on_alarm(signum, frame):
        raise Deadline("out of time")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
    {setup}
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIG{signal})).start()
    try:
        net.fit(X, y, epochs={epochs}, learning_rate=0.01, batch_size={batch_size})
    except Deadline as error:
        assert all(np.isfinite(p).all() for p in net.weights + net.biases)
        net.fit(X[:50], y[:50], epochs=1, learning_rate=0.01, batch_size={batch_size})
        print(f"Deadline: {{error}}")
    else:
        print("fit finished without interruption")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGALRM and SIGTERM are POSIX")
@pytest.mark.parametrize("setup, epochs, batch_size", [
    (WIDE.format(activation="tanh"), 100_000, 32),
    (ONE_HIDDEN, 100_000, 64),
    (LESSON, 2_000_000_000, 4),
])
def test_a_signal_handlers_exception_leaves_fit_as_it_was_raised(setup, epochs, batch_size):
    """Only Ctrl-C becomes KeyboardInterrupt: another handler's exception, or its
    sys.exit, comes out of fit unchanged."""
    options = dict(setup=setup, epochs=epochs, batch_size=batch_size)
    result = subprocess.run([sys.executable, "-c", HANDLER_CHILD.format(signal="ALRM", **options)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Deadline: out of time\n", result.stdout + result.stderr
    result = subprocess.run([sys.executable, "-c", HANDLER_CHILD.format(signal="TERM", **options)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "KeyboardInterrupt" not in result.stderr


DAEMONS_AT_EXIT = textwrap.dedent("""
    import threading, time
    import numpy as np
    from threadpoolctl import threadpool_limits
    from cyprop import Network

    threadpool_limits(2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2048)]

    def train(seed):
        net = Network([784, 256, 10], activation="relu", output_activation="softmax",
                      loss="cross_entropy", dtype="float32", seed=seed)
        net.fit(X, y, epochs=100_000, batch_size=64, learning_rate=0.01)

    for seed in range(6):
        threading.Thread(target=train, args=(seed,), daemon=True).start()
    time.sleep(0.7)
    print("exiting")
""")


def test_interpreter_exit_while_daemon_threads_train():
    """Python ends a daemon thread that asks for the GIL during its exit, here
    the thread of a hidden layer split between threads, while that split's
    other parts wait for it: they must not be left waiting on the ended
    thread's stack (this crashed six runs in eight when they were)."""
    for _ in range(4):
        result = subprocess.run([sys.executable, "-c", DAEMONS_AT_EXIT], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout == "exiting\n"
