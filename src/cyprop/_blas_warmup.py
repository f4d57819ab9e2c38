"""One product through OpenBLAS, once per process, before cyprop's first.

OpenBLAS packs the operands of a matrix product into a work buffer that it
allocates once, and its sgemm and dgemm kernels prefetch ahead in that
buffer, beyond the part a small product writes. Where a prefetch into a
never-written page is slow (as on the 2-core virtual machine of
benchmarks/README.md), it stalls every later small product until a larger
one has written those pages: there a 64 x 784 x 256 sgemm, the first layer
of the MNIST-shaped benchmark (W3), ran at 12 GFLOP/s before and at 37
after, and W3 trained 1.8 times faster. A 512 x 512 x 512 product writes
them; it costs 15 ms at one thread and 28 ms at two there, once per process,
and only networks large enough to call BLAS pay it.
"""

from __future__ import annotations

import threading

from cyprop._blas_library import warm_up_product

_lock = threading.Lock()
_done = False


def blas_is_warm() -> bool:
    """True once the warm-up product has run in this process."""
    return _done


def warm_up_blas() -> None:
    """Run one 512 x 512 x 512 product through the BLAS the core calls, once."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        warm_up_product()
        _done = True
