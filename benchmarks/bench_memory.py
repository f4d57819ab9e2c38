"""Peak memory of training, against what training needs: the data, the parameters, one batch.

    python benchmarks/bench_memory.py [--workload W3,W4] [--dtype float32]

Each workload trains in a fresh interpreter (so nothing else in the process
blurs the count) and reports two peaks measured around ``Network.fit``:

- ``traced``: the most bytes that numpy arrays and Python objects held at
  once during ``fit`` beyond what was held before it, from ``tracemalloc``
  (numpy reports its array buffers to it);
- ``resident``: the growth of the process's peak resident set during
  ``fit`` (``ru_maxrss``), which counts everything, BLAS's own buffers
  included.

Beside them, the budget that the design promises: the training data (held
before ``fit`` starts, so not in the growth) plus a few copies of the
parameters (the gradient, two backups for divergence, optimizer state) plus
one batch of activations and deltas. ``fit`` converts no data that is
already C-contiguous in the network's dtype, so the traced growth should be
the parameter copies and the batch buffers alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, resource, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import numpy as np
import workloads
from machine import limit_threads
from cyprop import Network

workload = workloads.TRAINING[sys.argv[2]]()
dtype = sys.argv[3]
X, Y = workload.data(dtype)
del workload.X, workload.Y
extra = ({"output_activation": "softmax", "loss": "cross_entropy"}
         if workload.output == "softmax_ce"
         else {"output_activation": "sigmoid", "loss": "mse"})
net = Network.from_weights(workload.weights, workload.biases, activation=workload.hidden,
                           reduction=workload.reduction, dtype=dtype, **extra)
with limit_threads(1):
    # One short fit first, so that imports and BLAS's first-call buffers are
    # not counted as training's.
    net.fit(X[:workload.batch_size], Y[:workload.batch_size], epochs=1,
            learning_rate=workload.learning_rate, batch_size=workload.batch_size, shuffle=False)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    held_before = tracemalloc.get_traced_memory()[0]
    net.fit(X, Y, epochs=workload.epochs, learning_rate=workload.learning_rate,
            batch_size=workload.batch_size, shuffle=True)
    held_after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
item = np.dtype(dtype).itemsize
n_params = sum(a * b + b for a, b in zip(workload.layer_sizes[:-1], workload.layer_sizes[1:]))
n_units = sum(workload.layer_sizes[1:])
print(json.dumps({
    "data": X.nbytes + Y.nbytes, "params": n_params * item,
    "batch": 2 * workload.batch_size * n_units * item
             + workload.batch_size * (X.shape[1] + Y.shape[1]) * item,
    "traced_peak": peak - held_before, "traced_kept": held_after - held_before,
    "rss_peak_growth": max(0, rss_after - rss_before), "rss_peak": rss_after,
}))
"""


def measure(workload, dtype):
    result = subprocess.run([sys.executable, "-c", CHILD, HERE, workload, dtype],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def megabytes(n_bytes):
    return f"{n_bytes / 2**20:9.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W3,W4")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from machine import describe

    print("\n".join(describe()))
    print("MB = 2**20 bytes; 'params' is one copy of the parameters; 'batch' is one batch of"
          " activations and deltas plus the gathered batch of X and Y (shuffled epochs)")
    print(f"{'workload':9} {'data':>9} {'params':>9} {'batch':>9} {'traced peak':>12} "
          f"{'= params x':>10} {'kept':>9} {'RSS growth':>11} {'RSS peak':>9}")
    for workload in args.workload.split(","):
        m = measure(workload, args.dtype)
        copies = (m["traced_peak"] - m["batch"]) / m["params"]
        print(f"{workload + ' ' + args.dtype:9} {megabytes(m['data'])} {megabytes(m['params'])} "
              f"{megabytes(m['batch'])} {megabytes(m['traced_peak']):>12} "
              f"{copies:>8.2f} +b {megabytes(m['traced_kept'])} "
              f"{megabytes(m['rss_peak_growth']):>11} {megabytes(m['rss_peak'])}")


if __name__ == "__main__":
    main()
