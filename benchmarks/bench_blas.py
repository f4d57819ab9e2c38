"""The BLAS libraries side by side on the products cyprop's W3 and W4 training makes.

    python benchmarks/bench_blas.py [--threads 1] [--rounds 9]

Times float32 sgemm through scipy's BLAS and through cyprop's (see
``cyprop.blas_library()``), and numpy's ``@`` on numpy's own BLAS, on the
shapes of W3's and W4's forward products, fused SGD updates
(``W += -lr * A.T @ delta``) and ``delta @ W.T``, and on a square. The
libraries take turns within each round; the table gives each one's median
rate in GFLOP/s, and its best in brackets.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

# (name, m, n, k, transpose a, transpose b, beta) for C = op(A) @ op(B) + beta C, row-major.
SHAPES = [
    ("W3 forward", 64, 256, 784, False, False, 0.0),
    ("W3 update", 784, 256, 64, True, False, 1.0),
    ("W4 forward", 256, 1024, 1024, False, False, 0.0),
    ("W4 update", 1024, 1024, 256, True, False, 1.0),
    ("W4 delta @ W.T", 256, 1024, 1024, False, True, 0.0),
    ("square", 1024, 1024, 1024, False, False, 0.0),
]


def contenders(A, B, C, transpose_a, transpose_b, beta):
    """Functions computing C = op(A) @ op(B) + beta C in place, one per library."""
    from machine import sgemm_functions

    # Row-major C = op(A) @ op(B) is column-major C.T = op(B).T @ op(A).T.
    functions = {
        f"{name}'s BLAS": (lambda sgemm=sgemm: sgemm(1.0, B.T, A.T, C.T, beta=beta,
                                                     trans_a=transpose_b,
                                                     trans_b=transpose_a))
        for name, sgemm in sgemm_functions().items()
    }
    left, right = (A.T if transpose_a else A), (B.T if transpose_b else B)
    if beta == 0.0:
        functions["numpy @"] = lambda: np.matmul(left, right, out=C)
    else:
        functions["numpy @"] = lambda: np.add(C, np.matmul(left, right), out=C)
    return functions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    from machine import describe, limit_threads, load_mkl

    load_mkl()  # MKL's rows too, when the mkl wheel is installed
    print("\n".join(describe()))
    rng = np.random.default_rng(0)
    with limit_threads(args.threads):
        print(f"{args.threads} BLAS thread(s); GFLOP/s, median of {args.rounds} rounds "
              "(best); numpy @ with beta 1 adds its product in a second pass")
        for name, m, n, k, transpose_a, transpose_b, beta in SHAPES:
            A = rng.standard_normal((k, m) if transpose_a else (m, k), dtype=np.float32)
            B = rng.standard_normal((n, k) if transpose_b else (k, n), dtype=np.float32)
            C = np.zeros((m, n), dtype=np.float32)
            functions = contenders(A, B, C, transpose_a, transpose_b, beta)
            calls = max(3, int(1e10 / (2 * m * n * k)))
            times = {label: [] for label in functions}
            for _ in range(args.rounds):
                for label, function in functions.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        function()
                    times[label].append((time.perf_counter() - start) / calls)
            flops = 2 * m * n * k
            cells = "  ".join(
                f"{label} {flops / statistics.median(t) / 1e9:5.1f} ({flops / min(t) / 1e9:5.1f})"
                for label, t in times.items()
            )
            print(f"{name:15} {m:>5} x {n:>4} x {k:>4}  {cells}")


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
