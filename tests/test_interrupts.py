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
