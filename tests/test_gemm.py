"""The AVX-512 kernel for minibatch products (_gemm_avx512.h): when the core
takes it, that its products are right in both dtypes, every tail of rows,
columns and depth included, and that networks trained through it are."""

import contextlib
import os
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyprop import Network, _core

from .test_core import child_output, cpu_has
from .test_gradients import _random_case, assert_sampled_gradients

DTYPES = [np.float32, np.float64]
EPSILON = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def kernel_runs():
    """Whether this process can take the kernel at one BLAS thread."""
    return (cpu_has("AVX512F") and os.environ.get("CYPROP_DISABLE_AVX512", "") != "1"
            and _core.blas_threads_function() != 0)


needs_kernel = pytest.mark.skipif(
    not kernel_runs(), reason="no AVX-512F here, CYPROP_DISABLE_AVX512=1, or a BLAS "
                              "whose thread count the core does not know")


@contextlib.contextmanager
def every_product(every):
    """The kernel taking every product it can compute (every), or only the
    shapes it was measured to run faster than OpenBLAS's AVX-512 kernels,
    rather than whichever the library in use made it take."""
    before = _core.kernel_takes_every_product()
    _core.take_every_product(every)
    try:
        yield
    finally:
        _core.take_every_product(before)


@pytest.fixture
def measured_shapes():
    """The kernel takes only the shapes it beats OpenBLAS's AVX-512 kernels at."""
    with every_product(False):
        yield


def product(A, B, C, alpha=1.0, beta=0.0, transpose_a=False, transpose_b=False):
    """matrix_product on copies; returns the result and whether the kernel took it."""
    m = A.shape[1] if transpose_a else A.shape[0]
    n, k = B.shape if transpose_b else B.shape[::-1]
    taken = _core.takes_avx512_product(m, n, k, A.itemsize, transpose_a, alpha, beta,
                                       transpose_b)
    out = C.copy()
    _core.matrix_product(A, B, out, alpha, beta, transpose_a, transpose_b)
    return out, taken


def check_against_exact(A, B, C0, out, alpha, beta, transpose_a, transpose_b=False):
    """out within the error bound of a sum of k products in out's precision."""
    op_A = (A.T if transpose_a else A).astype(np.longdouble)
    op_B = (B.T if transpose_b else B).astype(np.longdouble)
    exact = alpha * (op_A @ op_B) + beta * C0.astype(np.longdouble)
    scale = abs(alpha) * (np.abs(op_A) @ np.abs(op_B)) + abs(beta) * np.abs(C0)
    k = op_B.shape[0]
    bound = (k + 2) * EPSILON[A.dtype.type] * scale
    assert np.all(np.abs(out.astype(np.longdouble) - exact) <= bound)


# (m, k, n): rows of C from 8 (one tile) through every remainder of 8, columns
# from three vectors of either dtype through every remainder of a block of
# three, depths across the 256-row blocks of B, forward products of more
# than 128 rows, and of more than 256 rows into C of at most 256 columns
# (600 rows of 1,030 span several of the kernel's row blocks) or wider.
SHAPES = [(8, 1, 48), (9, 7, 49), (10, 5, 63), (11, 3, 64), (12, 2, 65), (13, 4, 79),
          (14, 6, 80), (15, 9, 95), (16, 16, 96), (17, 127, 97), (64, 128, 256),
          (23, 129, 50), (31, 300, 111), (128, 784, 24), (40, 257, 33), (129, 33, 49),
          (256, 130, 48), (16, 530, 48), (257, 270, 256), (1001, 20, 100),
          (600, 1030, 48), (300, 40, 257), (130, 10, 300)]


def kernel_takes_forward(m, n, itemsize):
    """Whether the kernel takes A @ B for C (m, n), at one BLAS thread: over
    any number of rows into C at most 256 columns wide, else over at most
    256 rows of floats or 128 of doubles."""
    return n >= 3 * 64 // itemsize and (n <= 256 or m <= (256 if itemsize == 4 else 128))


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.usefixtures("measured_shapes")
def test_forward_products_are_right(dtype, m, k, n):
    rng = np.random.default_rng([m, k, n])
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    # beta 0: whatever C held is not read, NaN included, as in BLAS
    C0 = np.full((m, n), np.nan, dtype=dtype)
    with threadpool_limits(1):
        out, taken = product(A, B, C0)
    assert taken == kernel_takes_forward(m, n, A.itemsize)
    check_against_exact(A, B, np.zeros_like(C0), out, 1.0, 0.0, False)


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [shape for shape in SHAPES if shape[1] <= 128])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.1, 1.0), (0.5, 2.0)])
@pytest.mark.usefixtures("measured_shapes")
def test_weight_steps_are_right(dtype, m, k, n, alpha, beta):
    """A.T @ B summed over at most 128 rows, with any alpha and beta: a weights'
    step (alpha = -rate, beta = 1) and a gradient (alpha 1, beta 0)."""
    rng = np.random.default_rng([m, k, n, 1])
    A = rng.standard_normal((k, m)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    with threadpool_limits(1):
        out, taken = product(A, B, C0, alpha, beta, transpose_a=True)
    assert taken == (n >= 3 * 64 // A.itemsize)
    check_against_exact(A, B, C0, out, alpha, beta, True)


def in_order_fused_sums(A, B, C0, alpha, beta, transpose_a):
    """float32 C = alpha op(A) @ B + beta C as the kernel promises to compute it:
    each sum over p in order from 0, one fused multiply-add a step (emulated in
    long double, where a product of two floats is exact), then alpha times the
    sum, then beta C added in one more fused step."""
    op_A = (A.T if transpose_a else A).astype(np.longdouble)
    B_long = B.astype(np.longdouble)
    sums = np.zeros(C0.shape, dtype=np.float32)
    for p in range(B.shape[0]):
        sums = (sums.astype(np.longdouble) + op_A[:, p:p + 1] * B_long[p]).astype(np.float32)
    # alpha and beta as the core hands them on for floats
    alpha, beta = np.longdouble(np.float32(alpha)), np.longdouble(np.float32(beta))
    if alpha != 1:
        sums = (alpha * sums.astype(np.longdouble)).astype(np.float32)
    if beta != 0:
        sums = (beta * C0.astype(np.longdouble)
                + sums.astype(np.longdouble)).astype(np.float32)
    return sums


needs_long_double = pytest.mark.skipif(
    np.finfo(np.longdouble).nmant < 63, reason="long double too short to emulate fused "
                                               "multiply-adds of floats exactly")


@needs_kernel
@needs_long_double
@pytest.mark.parametrize("m, k, n, alpha, beta, transpose_a", [
    (64, 784, 256, 1.0, 0.0, False), (13, 300, 49, 1.0, 0.0, False),
    (100, 3000, 48, 1.0, 0.0, False), (9, 129, 95, 1.0, 0.0, False),
    (256, 300, 60, 1.0, 0.0, False), (200, 1100, 48, 1.0, 0.0, False),
    (20, 200, 48, 0.5, 2.0, False),
    (784, 64, 256, -0.1, 1.0, True), (3000, 100, 48, 0.5, 2.0, True),
    (11, 128, 65, 1.0, 0.0, True)])
def test_float32_products_are_the_kernels_in_order_sums(m, k, n, alpha, beta, transpose_a):
    """The same bits as sums in order of fused multiply-adds, which BLAS's
    blocked sums are not: the kernel, not BLAS, computed them. (100, 3000) and
    (3000, 100) pass through several blocks of rows."""
    rng = np.random.default_rng([m, k, n, 2])
    A = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    B = rng.standard_normal((k, n)).astype(np.float32)
    C0 = rng.standard_normal((m, n)).astype(np.float32)
    with threadpool_limits(1):
        out, taken = product(A, B, C0, alpha, beta, transpose_a)
    assert taken
    assert out.tobytes() == in_order_fused_sums(A, B, C0, alpha, beta, transpose_a).tobytes()


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kernel_and_blas_round_differently(dtype):
    """W3's forward product through the kernel, twice, and through OpenBLAS,
    whose sums over 784 terms run in blocks: the kernel repeats its bits, and
    they differ from OpenBLAS's, so the kernel ran."""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((64, 784)).astype(dtype)
    B = rng.standard_normal((784, 256)).astype(dtype)
    C = np.zeros((64, 256), dtype=dtype)
    with threadpool_limits(1):
        kernel, taken = product(A, B, C)
        again, _ = product(A, B, C)
        blas = without_kernel(lambda: product(A, B, C)[0])
    assert taken
    assert kernel.tobytes() == again.tobytes()
    assert kernel.tobytes() != blas.tobytes()
    np.testing.assert_allclose(kernel, blas, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


GUARDED_READS = """
import ctypes, mmap, sys
import numpy as np
from threadpoolctl import threadpool_limits
from cyprop import _core

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
keep = []


def against_a_guard_page(values):
    # values copied so that they end where an unreadable page starts
    size = values.nbytes
    pages = -(-size // PAGE) + 1
    buffer = mmap.mmap(-1, (pages + 1) * PAGE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    if libc.mprotect(address + pages * PAGE, PAGE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
    keep.append(buffer)
    guarded = np.frombuffer(buffer, dtype=values.dtype, count=values.size,
                            offset=pages * PAGE - size).reshape(values.shape)
    guarded[...] = values
    return guarded


rng = np.random.default_rng(8)
with threadpool_limits(1):
    for dtype in (np.float32, np.float64):
        for m, k, n, transpose_a in [(13, 70, 49, False), (9, 130, 65, False),
                                     (8, 3, 95, False), (50, 64, 33, True),
                                     (13, 127, 49, True)]:
            A = against_a_guard_page(
                rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype))
            B = against_a_guard_page(rng.standard_normal((k, n)).astype(dtype))
            C = against_a_guard_page(np.zeros((m, n), dtype=dtype))
            taken = _core.takes_avx512_product(m, n, k, A.itemsize, transpose_a)
            if n >= 3 * 64 // A.itemsize and not taken:
                sys.exit(f"not taken: {m, k, n, transpose_a}")
            _core.matrix_product(A, B, C, 1.0, 0.0, transpose_a)
            reference = (A.T if transpose_a else A).astype(np.float64) @ B.astype(np.float64)
            if not np.allclose(C, reference, rtol=1e-4, atol=1e-4):
                sys.exit(f"wrong: {m, k, n, transpose_a}")
    # B given transposed, its rows loaded in squares; C narrow and short
    _core.take_every_product(True)
    for dtype in (np.float32, np.float64):
        for m, k, n, transpose_b in [(13, 70, 49, True), (9, 5, 3, True), (4, 17, 33, True),
                                     (3, 130, 2, True), (5, 9, 10, False), (2, 300, 7, False),
                                     (1, 300, 7, False), (1, 5, 33, False), (1, 9, 16, False)]:
            A = against_a_guard_page(rng.standard_normal((m, k)).astype(dtype))
            B = against_a_guard_page(
                rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype))
            C = against_a_guard_page(np.zeros((m, n), dtype=dtype))
            if not _core.takes_avx512_product(m, n, k, A.itemsize, transpose_b=transpose_b):
                sys.exit(f"not taken: {m, k, n, transpose_b}")
            _core.matrix_product(A, B, C, transpose_b=transpose_b)
            reference = A.astype(np.float64) @ (B.T if transpose_b else B).astype(np.float64)
            if not np.allclose(C, reference, rtol=1e-4, atol=1e-4):
                sys.exit(f"wrong: {m, k, n, transpose_b}")
print("ok")
"""


@needs_kernel
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through libc")
def test_the_kernel_reads_nothing_past_its_operands():
    """A, B and C each end where an unreadable page starts: a read past any of
    them (a masked tail one lane too wide, say) kills the child process."""
    assert child_output(GUARDED_READS).strip() == "ok"


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kernel_writes_nothing_outside_C(dtype):
    """Masked tails: the elements right after C keep their values."""
    rng = np.random.default_rng(3)
    for m, k, n in [(13, 70, 49), (9, 130, 65), (8, 3, 95)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        buffer = np.full(m * n + 64, 7.0, dtype=dtype)
        C = buffer[: m * n].reshape(m, n)
        with threadpool_limits(1):
            assert _core.takes_avx512_product(m, n, k, A.itemsize)
            _core.matrix_product(A, B, C)
        assert np.all(buffer[m * n:] == 7.0)
        check_against_exact(A, B, np.zeros_like(C), C, 1.0, 0.0, False)


@needs_kernel
@pytest.mark.usefixtures("measured_shapes")
def test_which_products_the_kernel_takes():
    with threadpool_limits(1):
        # a minibatch's forward product and weights' step, in both dtypes
        assert _core.takes_avx512_product(64, 256, 784, 4)
        assert _core.takes_avx512_product(64, 256, 784, 8)
        assert _core.takes_avx512_product(784, 256, 64, 4, True, -0.1, 1.0)
        # narrower than three vectors, shorter than a tile, more than 256 rows of
        # floats or 128 of doubles into C wider than 256 columns
        assert not _core.takes_avx512_product(64, 47, 784, 4)
        assert _core.takes_avx512_product(64, 24, 784, 8)
        assert not _core.takes_avx512_product(64, 23, 784, 8)
        assert not _core.takes_avx512_product(7, 256, 784, 4)
        assert _core.takes_avx512_product(256, 1024, 1024, 4)
        assert not _core.takes_avx512_product(257, 1024, 1024, 4)
        assert not _core.takes_avx512_product(257, 257, 784, 4)
        assert _core.takes_avx512_product(128, 1024, 784, 8)
        assert not _core.takes_avx512_product(129, 257, 784, 8)
        # any number of rows into C at most 256 columns wide
        assert _core.takes_avx512_product(1024, 256, 784, 4)
        assert _core.takes_avx512_product(60000, 100, 784, 8)
        # a step over more than 128 rows
        assert not _core.takes_avx512_product(784, 256, 129, 4, True, -0.1, 1.0)
        # a step into a C beyond the L2 cache
        assert _core.takes_avx512_product(1024, 256, 64, 4, True, -0.1, 1.0)
        assert not _core.takes_avx512_product(1024, 257, 64, 4, True, -0.1, 1.0)
        # several depth blocks of 256 rows only with alpha 1, beta 0
        assert _core.takes_avx512_product(64, 256, 256, 4, False, 2.0, 0.0)
        assert not _core.takes_avx512_product(64, 256, 257, 4, False, 2.0, 0.0)
        assert not _core.takes_avx512_product(64, 256, 784, 4, False, 2.0, 0.0)
        # alpha 0 (BLAS gives beta C without reading A or B), no terms at all
        assert not _core.takes_avx512_product(64, 256, 784, 4, False, 0.0, 1.0)
        assert not _core.takes_avx512_product(64, 256, 0, 4)
        # alpha as the product sees it: rounded to a float for floats
        assert _core.takes_avx512_product(64, 256, 784, 4, False, 1 + 1e-9, 0.0)
        assert not _core.takes_avx512_product(64, 256, 784, 8, False, 1 + 1e-9, 0.0)
        with pytest.raises(ValueError, match="itemsize"):
            _core.takes_avx512_product(64, 256, 784, 2)
    with threadpool_limits(1):
        assert _core.avx512_product_threads(64, 256, 784, 4) == 1
    with threadpool_limits(2):
        if _core.avx512_product_threads(64, 256, 784, 4) < 2:
            pytest.skip("the BLAS does not run two threads here")
        # the same products, now split between the BLAS's threads
        assert _core.takes_avx512_product(64, 256, 784, 4)
        assert _core.takes_avx512_product(784, 256, 64, 8, True, -0.1, 1.0)
        assert _core.avx512_product_threads(784, 256, 64, 8) == 2
        # below a million multiply-adds, or too narrow for a block of three
        # vectors each, a product stays on one thread
        assert _core.avx512_product_threads(64, 256, 63, 4) == 1
        assert _core.avx512_product_threads(128, 80, 784, 4) == 1
        assert _core.avx512_product_threads(128, 81, 784, 4) == 2
        assert _core.avx512_product_threads(128, 40, 784, 8) == 1
        assert _core.avx512_product_threads(128, 41, 784, 8) == 2
        assert _core.avx512_product_threads(128, 32, 784, 4) == 1
        # without the BLAS's thread count, nothing is split
        assert without_kernel(lambda: _core.avx512_product_threads(64, 256, 784, 4)) == 1
        with pytest.raises(ValueError, match="itemsize"):
            _core.avx512_product_threads(64, 256, 784, 2)


@pytest.mark.skipif(not cpu_has("AVX512F"), reason="no AVX-512F here: nothing to turn off")
def test_cyprop_disable_avx512_leaves_every_product_to_blas():
    script = ("from threadpoolctl import threadpool_limits\n"
              "from cyprop import _core\n"
              "with threadpool_limits(1):\n"
              "    print(_core.takes_avx512_product(64, 256, 784, 4))\n")
    assert child_output(script, CYPROP_DISABLE_AVX512="1").strip() == "False"


def test_matrix_product_refuses_shapes_that_do_not_match():
    A = np.zeros((3, 4))
    with pytest.raises(ValueError, match="do not match"):
        _core.matrix_product(A, np.zeros((5, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 1"):
        _core.matrix_product(np.zeros((3, 0)), np.zeros((0, 2)), np.zeros((3, 2)))


def softmax_training(layers, X, y, dtype, seed, activation="sigmoid", **fit):
    """A function that trains a new softmax network of these layer sizes on X
    and y and returns its weights and biases, flat."""
    def train():
        net = Network(layers, activation=activation, output_activation="softmax",
                      loss="cross_entropy", dtype=dtype, seed=seed)
        net.fit(X, y, **fit)
        return np.concatenate([w.ravel() for w in net.weights + net.biases])
    return train


def without_kernel(function):
    """function() with every product on BLAS (the kernel's thread count hidden)."""
    addresses, threads = _core.blas_in_use(), _core.blas_threads_function()
    _core.use_blas(*addresses, 0)
    try:
        return function()
    finally:
        _core.use_blas(*addresses, threads)


@needs_kernel
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-6), ("float32", 1e-3)])
def test_gradients_through_the_kernel_match_finite_differences(dtype, tolerance):
    """Layers whose forward products and gradients the kernel takes at one thread."""
    net64, X, y = _random_case(7, [50, 48, 30], 32, activation="tanh")
    net = Network.from_weights(net64.weights, net64.biases, activation="tanh", dtype=dtype)
    with threadpool_limits(1):
        itemsize = np.dtype(dtype).itemsize
        assert _core.takes_avx512_product(32, 48, 50, itemsize)
        assert _core.takes_avx512_product(50, 48, 32, itemsize, True)
        dW, db = net.gradients(X, y)
    assert_sampled_gradients(net64, X, y, dW, db, tolerance, count=30, seed=0)


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_through_the_kernel_repeats_and_agrees_with_blas(dtype, optimizer):
    """Minibatch training at one thread: the same bits twice, and the same
    network as with BLAS's products to rounding (OpenBLAS's kernels also sum
    in order with fused multiply-adds, so here the bits may even agree)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((256, 60))
    y = np.eye(4)[rng.integers(0, 4, 256)]

    train = softmax_training([60, 64, 4], X, y, dtype, 2, epochs=3, batch_size=32,
                             learning_rate=0.05, optimizer=optimizer)

    with threadpool_limits(1):
        assert _core.takes_avx512_product(32, 64, 60, np.dtype(dtype).itemsize)
        first, second = train(), train()
        on_blas = without_kernel(train)
    assert first.tobytes() == second.tobytes()
    rtol = 1e-3 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(first, on_blas, rtol=rtol, atol=rtol)


# (m, k, n, alpha, beta, transpose_a), each at least a million multiply-adds:
# W3's two products, columns that split unevenly or end in a partial vector,
# and several depth blocks.
SPLIT_SHAPES = [(64, 784, 256, 1.0, 0.0, False), (784, 64, 256, -0.1, 1.0, True),
                (128, 129, 97, 1.0, 0.0, False), (100, 300, 150, 1.0, 0.0, False),
                (1000, 100, 100, 0.5, -2.0, True), (37, 1000, 200, 1.0, 0.0, False)]


def two_threads_split(m, n, k, itemsize):
    """Whether two BLAS threads split this product; skips the test where the
    BLAS cannot run two threads."""
    with threadpool_limits(2):
        parts = _core.avx512_product_threads(m, n, k, itemsize)
    if parts < 2 and _core.avx512_product_threads(64, 256, 784, 4) < 2:
        pytest.skip("the BLAS does not run two threads here")
    return parts == 2


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n, alpha, beta, transpose_a", SPLIT_SHAPES)
def test_split_products_give_the_one_thread_bits(dtype, m, k, n, alpha, beta, transpose_a):
    """Two threads split the columns of C; every entry is the same sum as on one."""
    rng = np.random.default_rng(m * n + k)
    A = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    assert two_threads_split(m, n, k, A.itemsize)
    with threadpool_limits(2):
        split, taken = product(A, B, C, alpha, beta, transpose_a)
    assert taken
    assert _core.product_workers() >= 1
    with threadpool_limits(1):
        whole, taken = product(A, B, C, alpha, beta, transpose_a)
    assert taken
    assert split.tobytes() == whole.tobytes()
    check_against_exact(A, B, C, split, alpha, beta, transpose_a)


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_with_split_products_repeats_the_one_thread_bits(dtype):
    """A network whose first layer's products are split at two threads trains
    to the same bits as at one (its output layer's products are BLAS's, too
    small for BLAS's threads)."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((320, 200))
    y = np.eye(10)[rng.integers(0, 10, 320)]

    train = softmax_training([200, 256, 10], X, y, dtype, 4, epochs=2, batch_size=64,
                             learning_rate=0.1)

    itemsize = np.dtype(dtype).itemsize
    assert two_threads_split(64, 256, 200, itemsize)
    assert two_threads_split(200, 256, 64, itemsize)
    with threadpool_limits(2):
        assert not _core.hands_blas_splittable_products(64, sizes(200, 256, 10), itemsize,
                                                        True, -0.1, 1.0)
        first, second = train(), train()
    with threadpool_limits(1):
        one_thread = train()
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() == one_thread.tobytes()


@needs_kernel
def test_products_from_several_threads_at_once_are_right():
    """Python threads that all split products at once: one holds the workers,
    the others compute their parts one after another; every result is right."""
    import threading

    rng = np.random.default_rng(3)
    cases = []
    for index in range(4):
        A = rng.standard_normal((64, 784)).astype(np.float32)
        B = rng.standard_normal((784, 256 + 16 * index)).astype(np.float32)
        with threadpool_limits(1):
            expected, _ = product(A, B, np.zeros((64, B.shape[1]), np.float32))
        cases.append((A, B, expected))
    assert two_threads_split(64, 256, 784, 4)
    failures = []

    def work(A, B, expected):
        for _ in range(30):
            out = np.zeros_like(expected)
            _core.matrix_product(A, B, out)
            if out.tobytes() != expected.tobytes():
                failures.append(B.shape)
                return

    with threadpool_limits(2):
        threads = [threading.Thread(target=work, args=case) for case in cases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


@needs_kernel
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_splits_products_with_workers_of_its_own():
    """The parent's workers do not exist in a child made by fork(): the child
    starts its own and gets the same result, rather than waiting forever."""
    if not two_threads_split(64, 256, 784, 4):
        pytest.skip("the BLAS does not split this product here")
    script = (
        "import os, time\n"
        "import numpy as np\n"
        "from threadpoolctl import threadpool_limits\n"
        "from cyprop import _core\n"
        "rng = np.random.default_rng(0)\n"
        "A = rng.standard_normal((64, 784)).astype(np.float32)\n"
        "B = rng.standard_normal((784, 256)).astype(np.float32)\n"
        "def run():\n"
        "    C = np.zeros((64, 256), np.float32)\n"
        "    with threadpool_limits(2):\n"
        "        _core.matrix_product(A, B, C)\n"
        "    return C.tobytes()\n"
        "here = run()\n"
        "print('workers', _core.product_workers())\n"
        "read_end, write_end = os.pipe()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.close(read_end)\n"
        "    same = run() == here\n"
        "    os.write(write_end, b'same %d workers %d' % (same, _core.product_workers()))\n"
        "    os._exit(0)\n"
        "os.close(write_end)\n"
        "deadline = time.monotonic() + 60\n"
        "while os.waitpid(child, os.WNOHANG) == (0, 0):\n"
        "    if time.monotonic() > deadline:\n"
        "        os.kill(child, 9)\n"
        "        print('child hung')\n"
        "        break\n"
        "    time.sleep(0.01)\n"
        "print(os.read(read_end, 100).decode())\n"
    )
    lines = child_output(script).split("\n")
    assert lines[0] == "workers 1"
    assert lines[1] == "same 1 workers 1"


def sizes(*layers):
    return np.array(layers, dtype=np.intp)


@needs_kernel
@pytest.mark.usefixtures("measured_shapes")
def test_networks_that_keep_blas_threads_busy_leave_it_every_product():
    """Products the kernel does not take, large enough for BLAS's threads, make
    the network's every product BLAS's at more than one thread."""
    with threadpool_limits(2):
        # W3: the output layer's products are below BLAS's threading size
        assert not _core.hands_blas_splittable_products(64, sizes(784, 256, 10), 4, True, -0.1,
                                                        1.0)
        # 64 rows through 1,024-wide layers: delta @ W.T and the weights' steps
        assert _core.hands_blas_splittable_products(64, sizes(1024, 1024, 1024, 10), 4)
        # a step into a C beyond the L2 cache
        assert _core.hands_blas_splittable_products(64, sizes(1024, 1024), 4)
        # forward only, every product the kernel's; not with 10 outputs (too
        # narrow for the kernel, 655,360 multiply-adds)
        assert not _core.hands_blas_splittable_products(64, sizes(1024, 1024, 1024, 48), 4,
                                                        False)
        assert _core.hands_blas_splittable_products(64, sizes(1024, 1024, 1024, 10), 4, False)
        # forward products of more than 256 rows of floats, or 128 of doubles, are
        # BLAS's when C is wider than 256 columns
        assert not _core.hands_blas_splittable_products(256, sizes(784, 1024), 4, False)
        assert _core.hands_blas_splittable_products(257, sizes(784, 1024), 4, False)
        assert _core.hands_blas_splittable_products(129, sizes(784, 1024), 8, False)
        assert not _core.hands_blas_splittable_products(4096, sizes(784, 256), 4, False)
        assert not _core.hands_blas_splittable_products(4096, sizes(784, 256), 8, False)
        # one row: matrix-vector products, which BLAS splits from 9,216 entries
        assert _core.hands_blas_splittable_products(1, sizes(1024, 1024, 1024), 4)
        assert not _core.hands_blas_splittable_products(1, sizes(64, 100, 10), 4)
        # delta @ W.T alone is BLAS's
        assert _core.hands_blas_splittable_products(64, sizes(784, 256, 256), 4, True, -0.1,
                                                    1.0)
        assert not _core.hands_blas_splittable_products(64, sizes(784, 256, 256), 4, False)
        # one output: its products are matrix-vector products, which BLAS
        # splits from 9,216 entries
        assert _core.hands_blas_splittable_products(64, sizes(784, 1024, 1), 4)
        assert not _core.hands_blas_splittable_products(64, sizes(784, 256, 143, 1), 4,
                                                        False)
        # several depth blocks of a plain SGD step are BLAS's
        assert not _core.hands_blas_splittable_products(128, sizes(784, 256), 8, True, -0.1,
                                                        1.0)
        assert _core.hands_blas_splittable_products(129, sizes(784, 256), 8, True, -0.1, 1.0)
    with pytest.raises(ValueError, match="itemsize"):
        _core.hands_blas_splittable_products(64, sizes(784, 256), 2)
    with pytest.raises(ValueError, match="two layers"):
        _core.hands_blas_splittable_products(64, sizes(784), 4)


@needs_kernel
@pytest.mark.usefixtures("measured_shapes")
def test_a_network_that_keeps_blas_threads_busy_trains_on_blas_at_two_threads():
    """The same bits as with the kernel hidden, at two threads: BLAS took every
    product, the forward ones the kernel would take alone included."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((256, 512)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]

    # two hidden layers: one alone would train through the core's split of
    # it, which hands BLAS nothing
    train = softmax_training([512, 512, 32, 10], X, y, "float32", 1, activation="relu",
                             epochs=1, batch_size=64, learning_rate=0.01, shuffle=False)

    layers = sizes(512, 512, 32, 10)
    with threadpool_limits(2):
        assert _core.takes_avx512_product(64, 512, 512, 4)
        assert _core.hands_blas_splittable_products(64, layers, 4, True, -0.01, 1.0)
        with_kernel = train()
        on_blas = without_kernel(train)
    with threadpool_limits(1):
        one_thread = train()
    assert with_kernel.tobytes() == on_blas.tobytes()
    # at one thread the kernel takes the forward products: rounding apart
    assert with_kernel.tobytes() != one_thread.tobytes()
    np.testing.assert_allclose(with_kernel, one_thread, rtol=1e-4, atol=1e-5)


@needs_kernel
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_a_product_takes_no_more_threads_than_cpus():
    """More BLAS threads than CPUs (or than 8) would only wait for each other."""
    cpus = len(os.sched_getaffinity(0))
    with threadpool_limits(16):
        threads = _core.avx512_product_threads(64, 1024, 784, 4)
    if threads == 1 and cpus > 1:
        pytest.skip("the BLAS does not run more than one thread here")
    assert threads == min(cpus, 8)


# --- The kernel taking every product it can ---------------------------------

# (m, k, n): C a tile's rows high and less, one partly used vector wide and
# every width to beyond a block of three; depths below one transposed square
# (16 floats, 8 doubles), across several, and across the 256-row blocks; more
# rows than a minibatch, and columns split into row blocks; a single row
# (a @ B reads B in place).
EVERY_SHAPES = [(2, 1, 2), (3, 5, 10), (7, 17, 23), (8, 16, 16), (9, 33, 47), (256, 10, 10),
                (13, 300, 5), (64, 1024, 10), (5, 257, 100), (1030, 20, 70), (20, 70, 1030),
                (300, 600, 300), (1, 300, 70), (1, 1024, 10), (1, 7, 1030), (1, 258, 16),
                (1, 3, 40)]
# op(A) and op(B), with alpha and beta: forward products, a layer's delta times
# its weights transposed (also with alpha and beta, within one depth block),
# weights' steps (over several depth blocks only as gradients, alpha 1 and
# beta 0)
EVERY_FORMS = [(False, False, 1.0, 0.0), (False, True, 1.0, 0.0), (False, True, 0.5, 2.0),
               (True, False, -0.1, 1.0), (True, False, 1.0, 0.0)]


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n, transpose_a, transpose_b, alpha, beta", [
    shape + form for shape in EVERY_SHAPES for form in EVERY_FORMS
    if shape[1] <= 256 or form[2:] == (1.0, 0.0)])
def test_products_of_any_shape_are_right_when_the_kernel_takes_every_one(
        dtype, m, k, n, transpose_a, transpose_b, alpha, beta):
    rng = np.random.default_rng([m, k, n, transpose_a, transpose_b])
    A = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    with every_product(True), threadpool_limits(1):
        out, taken = product(A, B, C0, alpha, beta, transpose_a, transpose_b)
    # a single row times B transposed is a matrix-vector product, BLAS's
    assert taken == (m > 1 or not transpose_b)
    check_against_exact(A, B, C0, out, alpha, beta, transpose_a, transpose_b)


@needs_kernel
@needs_long_double
@pytest.mark.parametrize("m, k, n, alpha, beta, transpose_a, transpose_b", [
    (37, 300, 70, 1.0, 0.0, False, True), (256, 10, 1024, 1.0, 0.0, False, True),
    (9, 17, 33, 0.5, 2.0, False, True), (64, 1024, 10, 1.0, 0.0, False, False),
    (1024, 256, 200, -0.1, 1.0, True, False), (3, 40, 5, 1.0, 0.0, False, False),
    (1, 300, 70, 1.0, 0.0, False, False), (1, 1023, 10, 1.0, 0.0, False, False),
    (1, 40, 5, 0.5, 2.0, False, False), (300, 1, 33, 1.0, 0.0, True, False)])
def test_float32_products_of_any_shape_are_the_kernels_in_order_sums(
        m, k, n, alpha, beta, transpose_a, transpose_b):
    """Transposed, narrow and short products, single rows, and a step over 256
    rows into a C of 1,024 rows: the kernel's bits, not BLAS's."""
    rng = np.random.default_rng([m, k, n, 7])
    A = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    B = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    C0 = rng.standard_normal((m, n)).astype(np.float32)
    with every_product(True), threadpool_limits(1):
        out, taken = product(A, B, C0, alpha, beta, transpose_a, transpose_b)
    assert taken
    op_B = np.ascontiguousarray(B.T) if transpose_b else B
    assert out.tobytes() == in_order_fused_sums(A, op_B, C0, alpha, beta,
                                                transpose_a).tobytes()


@needs_kernel
def test_which_products_the_kernel_takes_when_it_takes_every_one():
    with every_product(True), threadpool_limits(1):
        assert _core.kernel_takes_every_product()
        # any shape, beyond the measured ones too
        assert _core.takes_avx512_product(2, 2, 1, 4)
        assert _core.takes_avx512_product(64, 10, 1024, 4)
        assert _core.takes_avx512_product(1024, 1024, 1024, 4)
        assert _core.takes_avx512_product(4096, 1024, 784, 8)
        assert _core.takes_avx512_product(256, 1024, 1024, 4, transpose_b=True)
        assert _core.takes_avx512_product(256, 1024, 10, 8, False, 0.5, 2.0, True)
        assert _core.takes_avx512_product(1024, 1024, 256, 4, True, -0.1, 1.0)
        assert _core.takes_avx512_product(1024, 10, 256, 8, True, -0.1, 1.0)
        # a single row times B (a sample's forward product), but a single row times
        # B transposed, and a single column, are gemv's
        assert _core.takes_avx512_product(1, 1024, 1024, 4)
        assert _core.takes_avx512_product(1, 2, 1024, 8)
        assert not _core.takes_avx512_product(1, 1024, 1024, 4, transpose_b=True)
        assert not _core.takes_avx512_product(64, 1, 1024, 4)
        assert not _core.takes_avx512_product(1, 1, 1024, 4)
        # several depth blocks only with alpha 1 and beta 0; alpha 0; no terms
        assert not _core.takes_avx512_product(1024, 1024, 257, 4, True, -0.1, 1.0)
        assert _core.takes_avx512_product(1024, 1024, 257, 4, True)
        assert not _core.takes_avx512_product(64, 1024, 300, 4, False, 0.5, 2.0, True)
        assert not _core.takes_avx512_product(64, 256, 784, 4, False, 0.0, 1.0)
        assert not _core.takes_avx512_product(64, 256, 0, 4)
        # nothing without the BLAS's thread count
        assert not without_kernel(_core.kernel_takes_every_product)
        assert not without_kernel(lambda: _core.takes_avx512_product(64, 10, 1024, 4))
    with every_product(False), threadpool_limits(1):
        assert not _core.kernel_takes_every_product()
        assert not _core.takes_avx512_product(256, 1024, 1024, 4, transpose_b=True)
        assert not _core.takes_avx512_product(64, 10, 1024, 4)
        assert not _core.takes_avx512_product(1, 1024, 1024, 4)


@needs_kernel
def test_networks_leave_blas_nothing_to_split_when_the_kernel_takes_every_product():
    with every_product(True), threadpool_limits(2):
        # W4's batches, and 64 rows through the same layers: every product the kernel's
        assert not _core.hands_blas_splittable_products(256, sizes(1024, 1024, 1024, 10), 4,
                                                        True, -0.1, 1.0)
        assert not _core.hands_blas_splittable_products(64, sizes(1024, 1024, 1024, 10), 8)
        assert not _core.hands_blas_splittable_products(4096, sizes(1024, 1024, 10), 4, False)
        # one output: matrix-vector products, BLAS's
        assert _core.hands_blas_splittable_products(64, sizes(784, 1024, 1), 4)
        # a plain SGD step over more than 256 rows, as a gradient the kernel's
        assert _core.hands_blas_splittable_products(257, sizes(1024, 1024), 4, True, -0.1, 1.0)
        assert not _core.hands_blas_splittable_products(257, sizes(1024, 1024), 4, True)
        # one row: forward the kernel's; backward, delta @ W.T is a matrix-vector
        # product, BLAS's
        assert not _core.hands_blas_splittable_products(1, sizes(1024, 1024, 1024, 10), 4,
                                                        False)
        assert _core.hands_blas_splittable_products(1, sizes(1024, 1024, 1024, 10), 4, True,
                                                    -0.1, 1.0)
        # a hidden layer of one unit: its delta @ W.T is a single column, BLAS's
        assert not _core.hands_blas_splittable_products(256, sizes(2, 1, 1024), 4, False)
        assert _core.hands_blas_splittable_products(256, sizes(2, 1, 1024), 4, True, -0.1,
                                                    1.0)


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n, transpose_a, transpose_b, alpha, beta", [
    (64, 300, 200, False, True, 1.0, 0.0), (128, 10, 1000, False, True, 0.5, 2.0),
    (300, 256, 300, True, False, -0.1, 1.0), (256, 1024, 100, False, False, 1.0, 0.0),
    (1, 1024, 1030, False, False, 1.0, 0.0)])
def test_split_products_of_any_shape_give_the_one_thread_bits(dtype, m, k, n, transpose_a,
                                                             transpose_b, alpha, beta):
    rng = np.random.default_rng([m, n, k, 2])
    A = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    with every_product(True):
        assert two_threads_split(m, n, k, A.itemsize)
        with threadpool_limits(2):
            split, taken = product(A, B, C, alpha, beta, transpose_a, transpose_b)
        assert taken
        with threadpool_limits(1):
            whole, taken = product(A, B, C, alpha, beta, transpose_a, transpose_b)
        assert taken
    assert split.tobytes() == whole.tobytes()
    check_against_exact(A, B, C, split, alpha, beta, transpose_a, transpose_b)


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kernel_writes_nothing_outside_narrow_or_transposed_products(dtype):
    rng = np.random.default_rng(4)
    for m, k, n, transpose_b in [(13, 70, 10, False), (3, 20, 5, True), (9, 17, 33, True),
                                 (5, 300, 2, False), (2, 9, 47, True), (1, 70, 33, False),
                                 (1, 9, 5, False)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
        buffer = np.full(m * n + 64, 7.0, dtype=dtype)
        C = buffer[: m * n].reshape(m, n)
        with every_product(True), threadpool_limits(1):
            assert _core.takes_avx512_product(m, n, k, A.itemsize, transpose_b=transpose_b)
            _core.matrix_product(A, B, C, transpose_b=transpose_b)
        assert np.all(buffer[m * n:] == 7.0)
        check_against_exact(A, B, np.zeros_like(C), C, 1.0, 0.0, False, transpose_b)


@needs_kernel
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-6), ("float32", 1e-3)])
def test_gradients_match_finite_differences_when_the_kernel_takes_every_product(dtype,
                                                                                tolerance):
    """Every product of the gradients the kernel's, delta @ W.T and the narrow
    output layer's included."""
    net64, X, y = _random_case(11, [40, 30, 20, 7], 24, activation="tanh")
    net = Network.from_weights(net64.weights, net64.biases, activation="tanh", dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    with every_product(True), threadpool_limits(1):
        assert _core.takes_avx512_product(24, 20, 30, itemsize, transpose_b=True)
        assert _core.takes_avx512_product(30, 20, 24, itemsize, True)
        assert _core.takes_avx512_product(24, 7, 20, itemsize)
        dW, db = net.gradients(X, y)
    assert_sampled_gradients(net64, X, y, dW, db, tolerance, count=30, seed=1)


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_when_the_kernel_takes_every_product_gives_the_same_bits_at_two_threads(
        dtype):
    """Two hidden layers and ten outputs (W4's form): every product is the
    kernel's, split by columns at two threads, so the bits are those of one
    thread, and the network is BLAS's to rounding."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((256, 300))
    y = np.eye(10)[rng.integers(0, 10, 256)]
    train = softmax_training([300, 200, 100, 10], X, y, dtype, 3, activation="relu",
                             epochs=2, batch_size=64, learning_rate=0.05)
    itemsize = np.dtype(dtype).itemsize
    with every_product(True):
        assert two_threads_split(64, 200, 300, itemsize)
        with threadpool_limits(2):
            assert not _core.hands_blas_splittable_products(64, sizes(300, 200, 100, 10),
                                                            itemsize, True, -0.05, 1.0)
            first, second = train(), train()
        with threadpool_limits(1):
            one_thread = train()
            on_blas = without_kernel(train)
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() == one_thread.tobytes()
    rtol = 1e-3 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(first, on_blas, rtol=rtol, atol=rtol)


@pytest.mark.skipif(not os.path.isfile("/proc/cpuinfo"), reason="no /proc/cpuinfo here")
def test_full_width_avx512_means_amd_from_family_26():
    with open("/proc/cpuinfo") as file:
        first = file.read().split("\n\n")[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    expected = (fields.get("vendor_id") == "AuthenticAMD"
                and int(fields.get("cpu family", "0")) >= 26
                and "avx512f" in fields.get("flags", "").split()
                and os.environ.get("CYPROP_DISABLE_AVX512", "") != "1")
    assert _core.full_width_avx512() == expected


@pytest.mark.skipif(not cpu_has("AVX512F"), reason="no AVX-512F here: nothing to turn off")
def test_cyprop_disable_avx512_leaves_no_product_to_take():
    script = ("from cyprop import _core\n"
              "_core.take_every_product(True)\n"
              "print(_core.full_width_avx512(), _core.kernel_takes_every_product())\n")
    assert child_output(script, CYPROP_DISABLE_AVX512="1").strip() == "False False"


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_row_predicts_the_bits_of_its_batch_when_the_kernel_takes_every_product(dtype):
    """A sample alone goes through the kernel's row loop, in a batch through
    its tiles: the same sums in the same order. (Layers of fewer than 4,096
    multiply-adds for one sample run in the core's own loops instead.)"""
    rng = np.random.default_rng(12)
    net = Network([300, 200, 30], activation="relu", output_activation="softmax",
                  loss="cross_entropy", dtype=dtype, seed=5)
    X = rng.standard_normal((40, 300)).astype(dtype)
    with every_product(True):
        for threads in (1, 2):
            with threadpool_limits(threads):
                assert _core.takes_avx512_product(1, 200, 300, X.itemsize)
                assert _core.takes_avx512_product(1, 30, 200, X.itemsize)
                batch = net.predict(X)
                rows = np.concatenate([net.predict(X[i:i + 1]) for i in range(40)])
            assert rows.tobytes() == batch.tobytes()


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_single_row_the_kernel_refuses_is_right(dtype):
    """Over several depth blocks with alpha and beta, a single row falls back
    to BLAS's matrix-vector product."""
    rng = np.random.default_rng(13)
    A = rng.standard_normal((1, 300)).astype(dtype)
    B = rng.standard_normal((300, 70)).astype(dtype)
    C0 = rng.standard_normal((1, 70)).astype(dtype)
    with every_product(True), threadpool_limits(1):
        out, taken = product(A, B, C0, 0.5, 2.0)
    assert not taken
    check_against_exact(A, B, C0, out, 0.5, 2.0, False)
