"""Ctrl-C during a long fit stops it promptly and leaves a usable network."""

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, signal, threading, time
    import numpy as np
    from cyprop import Network

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 128))
    y = rng.standard_normal((4000, 8))
    net = Network([128, 256, 256, 8], activation="{activation}", output_activation="identity",
                  reduction="mean", seed=0)
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.perf_counter()
    try:
        net.fit(X, y, epochs=100_000, learning_rate=0.01, batch_size={batch_size})
    except KeyboardInterrupt:
        elapsed = time.perf_counter() - start
        assert all(np.isfinite(p).all() for p in net.weights + net.biases)
        assert np.isfinite(net.predict(X[:5])).all()
        net.fit(X[:50], y[:50], epochs=1, learning_rate=0.01)
        print(f"interrupted after {{elapsed:.3f}} s")
    else:
        print("fit finished without interruption")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT from os.kill is POSIX")
@pytest.mark.parametrize("activation, batch_size", [("tanh", 32), ("relu", 4000)])
def test_ctrl_c_stops_fit(activation, batch_size):
    # 100,000 epochs would take hours; the run must end right after the signal.
    child = CHILD.format(activation=activation, batch_size=batch_size)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("interrupted after "), result.stdout + result.stderr
    assert float(result.stdout.split()[2]) < 30
