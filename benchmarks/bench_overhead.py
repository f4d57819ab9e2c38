"""How much of cyprop's training time is BLAS: W3 and W4 against their matrix products alone.

    python benchmarks/bench_overhead.py [--workload W3,W4] [--rounds 5] [--threads 1]

For each workload the script times, in rounds, cyprop's ``fit`` and a replay
of exactly the matrix products that ``fit`` hands to BLAS, called in the
same order, with the same shapes, transposes and ``beta`` (the fused SGD
update ``W += -lr * A_prev.T @ delta``), through the same library
(``cyprop.blas_library()`` names it; ``machine.sgemm_functions``). The replay
skips everything else: activations, their derivatives, the loss, the bias
sums. Its time is what cyprop would take if all of its own work were free;
the ratio says how close cyprop is to that, and the 'of limit' columns say
how close both are to the machine's peak matmul rate (the best ``sgemm`` on
2048 x 2048 at the same thread count, of scipy's BLAS and of cyprop's,
measured each round).

The replay leaves out a last, partial batch (32 of W3's 60,000 samples) and
calls BLAS from Python, a few microseconds per call (5 calls per
batch), which counts against the replay, not against cyprop.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import numpy as np


def replay_products(workload, X):
    """A function that runs one epoch of the workload's products on X (float32)."""
    from cyprop import _blas_library
    from machine import sgemm_functions

    functions = sgemm_functions()
    sgemm = functions[_blas_library._in_use]

    sizes = workload.layer_sizes
    batch = workload.batch_size
    rate = np.float32(workload.learning_rate / batch)  # mean reduction folds 1/batch in
    # Column-major views of row-major arrays: M.T of a C-ordered M is F-ordered.
    weights = [np.ascontiguousarray(W, dtype=np.float32) for W in workload.weights]
    activations = [np.zeros((batch, n), dtype=np.float32) for n in sizes[1:]]
    deltas = [np.full((batch, n), 1e-3, dtype=np.float32) for n in sizes[1:]]
    n_layers = len(weights)

    def epoch():
        for start in range(0, X.shape[0] - batch + 1, batch):
            rows = X[start:start + batch]
            below = rows
            for layer in range(n_layers):
                # Z = A_prev @ W, i.e. Z.T = W.T @ A_prev.T
                sgemm(1.0, weights[layer].T, below.T, activations[layer].T)
                below = activations[layer]
            for layer in range(n_layers - 1, -1, -1):
                below = rows if layer == 0 else activations[layer - 1]
                if layer > 0:
                    # delta_prev = delta @ W.T, i.e. delta_prev.T = W @ delta.T
                    sgemm(1.0, weights[layer].T, deltas[layer].T, deltas[layer - 1].T, trans_a=1)
                # W += -rate * A_prev.T @ delta, i.e. W.T += -rate * delta.T @ A_prev
                sgemm(-rate, deltas[layer].T, below.T, weights[layer].T, beta=1.0, trans_b=1)

    return epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W3,W4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import workloads
    from machine import describe, limit_threads, sgemm_functions
    from peers.cyprop_net import Run

    print("\n".join(describe()))
    # Fortran order: scipy would otherwise copy the operands on every call.
    square = np.asfortranarray(np.random.default_rng(0).random((2048, 2048), dtype=np.float32))
    product = np.asfortranarray(np.empty_like(square))

    def peak_rate():
        best = min(_seconds(functools.partial(sgemm, 1.0, square, square, product))
                   for sgemm in sgemm_functions().values() for _ in range(3))
        return 2 * 2048**3 / best

    with limit_threads(args.threads):
        print(f"{args.threads} BLAS thread(s); median of {args.rounds} rounds, best in brackets")
        print(f"{'workload':8} {'products alone ms':>20} {'of limit':>9} {'cyprop fit ms':>16} "
              f"{'of limit':>9} {'cyprop / products':>18}")
        for name in args.workload.split(","):
            workload = workloads.TRAINING[name]()
            X, _ = workload.data("float32")
            flops = workload.training_flops()
            replay = replay_products(workload, X)
            replay_times, fit_times, limits = [], [], []
            for _ in range(args.rounds):
                limits.append(flops / peak_rate())
                replay_times.append(_seconds(replay))
                run = Run(workload, "float32")
                fit_times.append(_seconds(run.train))
            limit = min(limits)
            r, f = statistics.median(replay_times), statistics.median(fit_times)
            print(f"{name:8} {r * 1e3:11.0f} ({min(replay_times) * 1e3:5.0f}) {limit / r:9.0%} "
                  f"{f * 1e3:7.0f} ({min(fit_times) * 1e3:5.0f}) {limit / f:9.0%} "
                  f"{f / r:18.3f}")


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
