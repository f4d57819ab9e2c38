"""Numeric kernels of cyprop: numbers in, numbers out, over preallocated buffers.

In the order of the algorithm:

1. activations and their derivatives, written from the activation's output;
2. losses and the output layer's delta;
3. the forward pass;
4. the backward pass;
5. optimizer updates and weight decay;
6. the minibatch gather;
7. one hidden layer's batches, split between threads;
8. the training loop, whole epochs in one call.

Every kernel trusts its arguments: ``cyprop.network`` checked shapes, dtypes,
finiteness, sizes and the pairing of output activation and loss before
calling. Nothing here raises for user input or allocates in a loop.

Memory layout, shared with ``cyprop.network``:

- ``sizes`` holds the layer sizes, input first: ``(n_features, ..., n_outputs)``.
  Layer ``l`` maps ``sizes[l]`` (fan_in) to ``sizes[l + 1]`` (fan_out).
- ``params`` is one flat buffer: for each layer in turn, ``W`` (fan_in x
  fan_out, row-major) then ``b`` (fan_out). Gradients and optimizer state
  use the same layout.
- An activation buffer for a batch of ``n_rows`` holds each layer's output
  ``A`` (n_rows x fan_out, row-major), layer after layer; deltas likewise.
"""

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv
from cpython.ref cimport PyObject, Py_XDECREF
from libc.math cimport NAN, exp, fabs, isfinite, log1p, sqrt, tanh
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset


cdef extern from "Python.h":
    int PyErr_CheckSignals()
    void PyErr_Fetch(PyObject** kind, PyObject** value, PyObject** traceback)
    void PyErr_NormalizeException(PyObject** kind, PyObject** value, PyObject** traceback)
    int PyException_SetTraceback(PyObject* exception, PyObject* traceback)

from cyprop._blas cimport (BLAS_GEMV_SPLITS_FROM, BLAS_SPLITS_FROM, GEMM_MAX_STEP,
                           GEMM_MAX_STEP_ROWS, GEMM_ROWS, MAX_PARTS, barrier_init, barrier_t,
                           barrier_wait, blas_dgemm, blas_dgemv, blas_sgemm, blas_sgemv,
                           blas_threads, blocks_moved_count, blocks_reset, blocks_t, blocks_take,
                           cpu_has_full_width_avx512, gemm, gemm_alone, gemm_available, gemm_fits,
                           gemm_part_columns, gemm_parts, gemm_takes_all, matrix_vector,
                           pool_workers, run_parts_at_once, set_all_products, set_blas,
                           set_blas_splits, set_blas_threads)
from cyprop._libm cimport all_finite, exp_, sigmoid_backward, sigmoid_in_place, tanh_
from cyprop._tiny_step cimport tiny_epochs, tiny_sigmoid, tiny_step
from cyprop._vector_product cimport vector_product


cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5

cdef enum:
    MSE = 0
    BINARY_CROSS_ENTROPY = 1
    CROSS_ENTROPY = 2

cdef enum:
    COMPLETED = 0
    DIVERGED = 1
    INTERRUPTED = 2
    INPUT_NOT_FINITE = 3

cdef enum:
    SGD = 0
    MOMENTUM = 1
    NESTEROV = 2
    ADAM = 3
    IRPROP_MINUS = 4

ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU,
               "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX}
LOSSES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
          "cross_entropy": CROSS_ENTROPY}
STATUS = {"completed": COMPLETED, "diverged": DIVERGED, "interrupted": INTERRUPTED,
          "input_not_finite": INPUT_NOT_FINITE}
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM,
              "irprop-": IRPROP_MINUS}
#: Buffers of optimizer state, each the size of the parameters.
OPTIMIZER_STATE_BUFFERS = {SGD: 0, MOMENTUM: 1, NESTEROV: 1, ADAM: 2, IRPROP_MINUS: 2}

cdef double LEAKY_SLOPE = 0.01
LEAKY_RELU_SLOPE = LEAKY_SLOPE

# Below this many multiply-adds a product runs in plain loops: the BLAS call
# costs more than the arithmetic for layers as small as the lesson's 3-4-1.
cdef enum:
    BLAS_MIN_MULTIPLY_ADDS = 4096
BLAS_MIN_PRODUCT = BLAS_MIN_MULTIPLY_ADDS


def use_blas(size_t sgemm_address=0, size_t dgemm_address=0, size_t sgemv_address=0,
             size_t dgemv_address=0, size_t threads_address=0):
    """Send the core's matrix products to the BLAS functions at these addresses
    (sgemm, dgemm, sgemv and dgemv with the Fortran interface and 32-bit
    integers, as in scipy.linalg.cython_blas), or back to scipy's when all
    are 0. threads_address, when not 0, is that library's function of no
    arguments returning its thread count as an int (OpenBLAS's
    openblas_get_num_threads): with it, the AVX-512 kernel takes the
    minibatch products it is faster at (forward products, weights' steps
    and gradients; _gemm_avx512.h), split between that many threads, and
    none while threads_address is 0.
    cyprop._blas_library calls it once, at import, before any product: a
    training running meanwhile in another thread could see some pointers
    switched and others not.
    """
    cdef size_t n_set = ((sgemm_address != 0) + (dgemm_address != 0) + (sgemv_address != 0)
                         + (dgemv_address != 0))
    if n_set == 0 and threads_address != 0:
        raise ValueError("use_blas takes a thread-count function only with the four "
                         "addresses of the library it belongs to")
    if n_set == 0:
        set_blas(<void*>sgemm, <void*>dgemm, <void*>sgemv, <void*>dgemv)
    elif n_set == 4:
        set_blas(<void*>sgemm_address, <void*>dgemm_address, <void*>sgemv_address,
                 <void*>dgemv_address)
    else:
        raise ValueError("use_blas takes four addresses, or none")
    set_blas_threads(<void*>threads_address)


use_blas()


def take_every_product(bint every):
    """With every set, the AVX-512 kernel takes every minibatch product it can
    compute, of any shape (at more than one thread, unless the network hands
    BLAS products its threads split: hands_blas_splittable_products);
    otherwise only the shapes it was measured to run faster than OpenBLAS's
    own AVX-512 kernels (_gemm_avx512.h). cyprop._blas_library sets it for each library it points
    the core at: where the library's kernels use narrower vectors on a CPU
    whose 512-bit multiply-adds run at twice their rate
    (full_width_avx512)."""
    set_all_products(every)


def kernel_takes_every_product():
    """Whether the AVX-512 kernel now takes every minibatch product it can
    compute (take_every_product, where the kernel runs at all)."""
    return bool(gemm_takes_all())


def full_width_avx512():
    """Whether this CPU has AVX-512 (not turned off with CYPROP_DISABLE_AVX512)
    on units that run 512-bit multiply-adds at twice the 256-bit rate, as
    far as the core knows: AMD's from family 26 (Zen 5)."""
    return bool(cpu_has_full_width_avx512())


def blas_in_use():
    """The addresses of the sgemm, dgemm, sgemv and dgemv that the core calls."""
    return (<size_t>blas_sgemm, <size_t>blas_dgemm, <size_t>blas_sgemv, <size_t>blas_dgemv)


def blas_threads_function():
    """The address of the function use_blas was given for the BLAS's thread count (0: none)."""
    return <size_t>blas_threads


cdef Py_ssize_t vector_width(Py_ssize_t itemsize) except -1:
    """The kernel's lanes a vector for floats (itemsize 4) or doubles (8)."""
    if itemsize != 4 and itemsize != 8:
        raise ValueError(f"itemsize must be 4 or 8, got {itemsize}")
    return 16 if itemsize == 4 else 8


def takes_avx512_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t itemsize,
                         bint transpose_a=False, double alpha=1.0, double beta=0.0,
                         bint transpose_b=False):
    """Whether the core computes C = alpha op(A) @ op(B) + beta C for C (m, n),
    op(A) (m, k) and op(B) (k, n), of floats (itemsize 4) or doubles (8),
    with its AVX-512 kernel (_gemm_avx512.h) right now rather than BLAS: it
    depends on the shapes, the CPU, CYPROP_DISABLE_AVX512, the BLAS's thread
    count and take_every_product."""
    cdef Py_ssize_t width = vector_width(itemsize)
    if itemsize == 4:
        # as the core's gemm hands them on for floats
        alpha, beta = <float>alpha, <float>beta
    return bool(not matrix_vector(transpose_b, m, n)
                and gemm_fits(transpose_a, transpose_b, m, n, k, alpha, beta, width))


def avx512_product_threads(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t itemsize):
    """How many threads share such a product when the AVX-512 kernel takes it
    (takes_avx512_product): the BLAS's thread count, at most one per three
    vectors of columns of C, and 1 below a million multiply-adds."""
    return gemm_parts(m, n, k, vector_width(itemsize))


def hands_blas_splittable_products(Py_ssize_t n_rows, const Py_ssize_t[::1] sizes,
                                   Py_ssize_t itemsize, bint backward=True,
                                   double step_alpha=1.0, double step_beta=0.0):
    """Whether a pass over n_rows rows through layers of these sizes hands
    BLAS a product that BLAS may split between its threads; while such a
    network trains or predicts, the AVX-512 kernel takes no product at more
    than one BLAS thread (_gemm_avx512.h). step_alpha and step_beta are the
    weights' steps' (-learning_rate and 1 for plain SGD, 1 and 0 for
    gradients)."""
    vector_width(itemsize)
    if sizes.shape[0] < 2:
        raise ValueError("sizes must name at least two layers")
    return bool(blas_splits_products(n_rows, &sizes[0], sizes.shape[0] - 1, backward,
                                     step_alpha, step_beta, itemsize))


def product_workers():
    """How many worker threads the kernel's split products have started in
    this process (_parallel.h); they start at the first split product."""
    return pool_workers()


def blocks_moved():
    """How many blocks of a split epoch's work one thread has taken from
    another's share in this process, because the other fell behind
    (_parallel.h)."""
    return blocks_moved_count()


def matrix_product(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
                   double alpha=1.0, double beta=0.0, bint transpose_a=False,
                   bint transpose_b=False):
    """C = alpha op(A) @ op(B) + beta C through the core's product, as training
    calls it (BLAS, or the AVX-512 kernel where takes_avx512_product); op(A)
    is A, or A.T with transpose_a, and op(B) B, or B.T with transpose_b."""
    cdef Py_ssize_t m = A.shape[1] if transpose_a else A.shape[0]
    cdef Py_ssize_t k = A.shape[0] if transpose_a else A.shape[1]
    cdef Py_ssize_t n = B.shape[0] if transpose_b else B.shape[1]
    if k != (B.shape[1] if transpose_b else B.shape[0]) or C.shape[0] != m or C.shape[1] != n:
        raise ValueError("matrix_product: shapes do not match")
    if m == 0 or k == 0 or n == 0:
        raise ValueError("matrix_product: every size must be at least 1")
    with nogil:
        gemm(transpose_a, transpose_b, <int>m, <int>n, <int>k, alpha, &A[0, 0],
             <int>A.shape[1], &B[0, 0], <int>B.shape[1], beta, &C[0, 0], <int>C.shape[1])


cdef struct Optimizer:
    # Hyperparameters of one update rule; unused fields are ignored.
    int kind
    double momentum
    double beta1
    double beta2
    double epsilon
    double increase
    double decrease
    double min_step
    double max_step
    double weight_decay


# --- 1. Activations, each followed by its derivative from the output ------

# sigmoid(z) = 1 / (1 + exp(-z)), computed in activate() by sigmoid_in_place
# (_libm.pxd); exp(-z) overflows to inf for z < -709.78, which gives exactly 0.
# Its derivative from the output, a (1 - a) (the lesson's sigmoid_derivative),
# multiplies the delta in sigmoid_backward (_libm.pxd).

cdef inline floating tanh_derivative(floating a) noexcept nogil:
    """1 - a^2."""
    return 1 - a * a

cdef inline floating relu(floating z) noexcept nogil:
    """max(z, 0)."""
    return z if z > 0 else 0

cdef inline floating relu_backward(floating delta, floating a) noexcept nogil:
    """delta * relu'(a), relu' being 1 where a > 0, else 0; written as a select,
    which gcc vectorizes (the product with a converted comparison compiled to a
    scalar loop with a branch, 3.6% of W4's time; benchmarks/README.md)."""
    return delta if a > 0 else 0

cdef inline floating leaky_relu(floating z) noexcept nogil:
    """z where z > 0, else 0.01 z."""
    return z if z > 0 else <floating>LEAKY_SLOPE * z

cdef inline floating leaky_relu_derivative(floating a) noexcept nogil:
    """1 where a > 0, else 0.01: the sign of a is the sign of z."""
    return 1 if a > 0 else <floating>LEAKY_SLOPE


cdef void softmax_row(floating* row, Py_ssize_t n) noexcept nogil:
    """row = exp(row - max) / sum(exp(row - max)), in place; never overflows."""
    cdef Py_ssize_t j
    cdef floating largest = row[0]
    cdef double total = 0.0
    for j in range(1, n):
        if row[j] > largest:
            largest = row[j]
    for j in range(n):
        row[j] = exp_(row[j] - largest)
        total += row[j]
    for j in range(n):
        row[j] = row[j] / total


cdef void activate(floating* Z, Py_ssize_t n_rows, Py_ssize_t fan_out,
                   int activation) noexcept nogil:
    """A = f(Z), in place over the rows of Z."""
    cdef Py_ssize_t i, n = n_rows * fan_out
    if activation == SIGMOID:
        sigmoid_in_place(Z, n)
    elif activation == TANH:
        for i in range(n):
            Z[i] = tanh_(Z[i])
    elif activation == RELU:
        for i in range(n):
            Z[i] = relu(Z[i])
    elif activation == LEAKY_RELU:
        for i in range(n):
            Z[i] = leaky_relu(Z[i])
    elif activation == SOFTMAX:
        for i in range(n_rows):
            softmax_row(Z + i * fan_out, fan_out)


cdef inline void multiply_by_derivative(const floating* A, floating* delta,
                                        Py_ssize_t n_rows, Py_ssize_t n_cols,
                                        int activation) noexcept nogil:
    """delta = delta * f'(A), with f' written from the activation's output A.

    For softmax, whose Jacobian is not diagonal, each row becomes
    a * (delta - sum(delta * a)).
    """
    cdef Py_ssize_t i, j, n = n_rows * n_cols
    cdef double dot
    if activation == SIGMOID:
        sigmoid_backward(A, delta, n)
    elif activation == TANH:
        for i in range(n):
            delta[i] = delta[i] * tanh_derivative(A[i])
    elif activation == RELU:
        for i in range(n):
            delta[i] = relu_backward(delta[i], A[i])
    elif activation == LEAKY_RELU:
        for i in range(n):
            delta[i] = delta[i] * leaky_relu_derivative(A[i])
    elif activation == SOFTMAX:
        for i in range(n_rows):
            dot = 0.0
            for j in range(n_cols):
                dot += delta[i * n_cols + j] * A[i * n_cols + j]
            for j in range(n_cols):
                delta[i * n_cols + j] = A[i * n_cols + j] * (delta[i * n_cols + j] - dot)


# --- 2. Losses and the output delta ----------------------------------------

cdef inline double squared_error(const floating* a, const floating* y,
                                 Py_ssize_t n) noexcept nogil:
    """mse's loss of one sample: 1/2 sum (a - y)^2."""
    cdef Py_ssize_t k
    cdef double total = 0.0, error
    for k in range(n):
        error = <double>a[k] - y[k]
        total += error * error
    return 0.5 * total


cdef inline double row_loss(const floating* a, const floating* z, const floating* y,
                            Py_ssize_t n, int loss) noexcept nogil:
    """The loss l of one sample, from its outputs a, pre-activations z and targets y.

    mse: 1/2 sum (a - y)^2. binary_cross_entropy (sigmoid outputs):
    sum max(z, 0) - z y + log(1 + exp(-|z|)), which is -y log a - (1 - y) log(1 - a)
    without ever taking log 0. cross_entropy (softmax outputs):
    sum y (logsumexp(z) - z), which is -sum y log a, likewise.
    """
    cdef Py_ssize_t k, top = 0
    cdef double total = 0.0, others = 0.0, log_sum
    if loss == MSE:
        return squared_error(a, y, n)
    if loss == BINARY_CROSS_ENTROPY:
        for k in range(n):
            total += (z[k] if z[k] > 0 else 0.0) - <double>z[k] * y[k] + log1p(exp(-fabs(z[k])))
        return total
    for k in range(1, n):
        if z[k] > z[top]:
            top = k
    # logsumexp(z) - z[k] as (z[top] - z[k]) + log1p(others): for a confident
    # right answer both terms are small, and each is accurate to its own
    # size, where adding z[top] and then taking z[k] away again would leave
    # an error of an ulp of z[top], whatever the loss (and a loss of 0 once
    # z[top] is large enough).
    for k in range(n):
        if k != top:
            others += exp(<double>z[k] - z[top])
    log_sum = log1p(others)
    for k in range(n):
        if y[k] != 0:
            total += y[k] * ((<double>z[top] - z[k]) + log_sum)
    return total


cdef double weighted_loss(const floating* A, const floating* Z, const floating* Y,
                          const floating* weights, Py_ssize_t n_rows,
                          Py_ssize_t n_outputs, int loss) noexcept nogil:
    """sum_i w_i l_i over a batch, without gradients."""
    cdef Py_ssize_t i
    cdef double total = 0.0, sample_loss
    if loss == MSE:
        # In a loop of its own: for a network with one output (the lesson's),
        # choosing the loss per sample cost more than computing it.
        for i in range(n_rows):
            sample_loss = squared_error(A + i * n_outputs, Y + i * n_outputs, n_outputs)
            total += sample_loss if weights == NULL else weights[i] * sample_loss
        return total
    for i in range(n_rows):
        sample_loss = row_loss(A + i * n_outputs, Z + i * n_outputs, Y + i * n_outputs,
                               n_outputs, loss)
        total += sample_loss if weights == NULL else weights[i] * sample_loss
    return total


cdef double output_delta(const floating* A, const floating* Y, const floating* weights,
                         floating* Z_delta, Py_ssize_t n_rows, Py_ssize_t n_outputs,
                         int activation, int loss, double scale) noexcept nogil:
    """Replace the output pre-activations Z_delta with delta = scale * w * dl/dZ.
    (mse reads no pre-activations: Z_delta may hold anything on entry.)

    Returns sum_i w_i l_i over the batch (w_i = 1 when weights is NULL).

    With sigmoid + binary_cross_entropy and softmax + cross_entropy, dl/dZ
    fuses to a - y (times sum(y) for softmax, which is 1 for one-hot or
    probability targets); these are the only pairings of those losses that
    cyprop.network allows. mse goes through the activation's derivative.
    """
    cdef Py_ssize_t i, k, n = n_rows * n_outputs
    cdef double row_scale, target_sum, error, sample_loss, total = 0.0
    cdef const floating* a
    cdef const floating* y
    cdef floating* z
    if loss == MSE:
        # The loss and a - y in one pass: a separate pass for the loss cost
        # more than its arithmetic on the lesson's four samples of one output.
        for i in range(n_rows):
            a = A + i * n_outputs
            y = Y + i * n_outputs
            z = Z_delta + i * n_outputs
            sample_loss = 0.0
            for k in range(n_outputs):
                error = <double>a[k] - y[k]
                sample_loss += error * error
                z[k] = a[k] - y[k]
            sample_loss = 0.5 * sample_loss
            total += sample_loss if weights == NULL else weights[i] * sample_loss
        multiply_by_derivative(A, Z_delta, n_rows, n_outputs, activation)
    else:
        # The losses need the pre-activations, so they come first.
        total = weighted_loss(A, Z_delta, Y, weights, n_rows, n_outputs, loss)
    if loss == CROSS_ENTROPY:
        for i in range(n_rows):
            a = A + i * n_outputs
            y = Y + i * n_outputs
            z = Z_delta + i * n_outputs
            row_scale = scale if weights == NULL else scale * weights[i]
            target_sum = 0.0
            for k in range(n_outputs):
                target_sum += y[k]
            for k in range(n_outputs):
                z[k] = <floating>(row_scale * (a[k] * target_sum - y[k]))
        return total
    if loss == BINARY_CROSS_ENTROPY:
        for i in range(n):
            Z_delta[i] = A[i] - Y[i]
    if scale != 1.0 or weights != NULL:
        for i in range(n_rows):
            row_scale = scale if weights == NULL else scale * weights[i]
            if row_scale != 1.0:
                z = Z_delta + i * n_outputs
                for k in range(n_outputs):
                    z[k] = <floating>(z[k] * row_scale)
    return total


# --- 3. Forward ----------------------------------------------------------

cdef inline void store_entry(floating* C_entry, floating total, const floating* bias,
                             bint subtract, floating rate) noexcept nogil:
    """One entry of small_product's result: see there."""
    if subtract:
        C_entry[0] -= rate * total
    elif bias != NULL:
        C_entry[0] = total + bias[0]
    else:
        C_entry[0] = total


cdef inline void product_loops(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                               const floating* A, Py_ssize_t a_row, Py_ssize_t a_col,
                               const floating* B, Py_ssize_t b_row, Py_ssize_t b_col,
                               floating* C, const floating* bias, bint subtract,
                               floating rate, bint sum_row) noexcept nogil:
    """small_product's loops: P = A @ B for strided A (m, k) and B (k, n), into
    C (m, n), row-major: C = P + bias (bias may be NULL), or C -= rate * P when
    subtract is set.

    A[i, p] is A[i * a_row + p * a_col] and B[p, j] is B[p * b_row + j * b_col],
    so transposed operands cost nothing. With sum_row set, C has a row m
    more, which receives B's column sums, as the product of a row of ones
    with B (exact: the same bits as column_sums), stored or subtracted as
    the other rows are but without bias: a bias gradient or update, stored
    right after its W, comes out of the same loops.

    Each entry is summed over p in order, starting from 0, in a register.
    Four entries of a row are summed at once: each A[i, p] is loaded once for
    four products, and the loop overhead is shared (layers too small for BLAS
    spend most of their instructions on it; profile_core.py on W1).
    """
    cdef Py_ssize_t i, p, j, a_step = a_col
    cdef floating a, t0, t1, t2, t3
    cdef floating one = 1
    cdef const floating* A_row
    cdef const floating* B_p
    cdef floating* C_row
    # Products with a size above 4 go four or eight entries of a row at a time
    # on AVX2, with the same sums. The test folds away in the copies with n and
    # k fixed at 4 or less (small_product), which stay as small as they were.
    if (n > 4 or k > 4) and b_col == 1 and vector_product(m, n, k, A, a_row, a_col, B, b_row,
                                                          C, bias, subtract, rate, sum_row):
        return
    for i in range(m + 1 if sum_row else m):
        A_row = A + i * a_row
        C_row = C + i * n
        if i == m:
            # The row of ones: one value, read at every p
            A_row = &one
            a_step = 0
            bias = NULL
        j = 0
        while j + 4 <= n:
            t0 = 0
            t1 = 0
            t2 = 0
            t3 = 0
            B_p = B + j * b_col
            for p in range(k):
                a = A_row[p * a_step]
                t0 += a * B_p[0]
                t1 += a * B_p[b_col]
                t2 += a * B_p[2 * b_col]
                t3 += a * B_p[3 * b_col]
                B_p += b_row
            store_entry(C_row + j, t0, bias + j if bias != NULL else NULL, subtract, rate)
            store_entry(C_row + j + 1, t1, bias + j + 1 if bias != NULL else NULL, subtract, rate)
            store_entry(C_row + j + 2, t2, bias + j + 2 if bias != NULL else NULL, subtract, rate)
            store_entry(C_row + j + 3, t3, bias + j + 3 if bias != NULL else NULL, subtract, rate)
            j += 4
        while j < n:
            t0 = 0
            B_p = B + j * b_col
            for p in range(k):
                t0 += A_row[p * a_step] * B_p[0]
                B_p += b_row
            store_entry(C_row + j, t0, bias + j if bias != NULL else NULL, subtract, rate)
            j += 1


cdef void small_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        const floating* A, Py_ssize_t a_row, Py_ssize_t a_col,
                        const floating* B, Py_ssize_t b_row, Py_ssize_t b_col,
                        floating* C, const floating* bias, bint subtract,
                        floating rate, bint sum_row) noexcept nogil:
    """P = A @ B for strided A (m, k) and B (k, n), into C (m, n), row-major:
    C = P + bias (bias may be NULL), or C -= rate * P when subtract is set;
    with sum_row, B's column sums go to row m of C the same way, without
    bias (product_loops).

    With n and k both at most 4 (the lesson's 3-4-1 network, and any layer
    or batch that small), the loops run with n and k fixed: the compiler
    unrolls them completely, which leaves only the arithmetic. The sums are
    the same, in the same order. (The sixteen calls are spelled out: nested
    behind a helper that fixes k alone, gcc kept n variable, and W1 cost
    2,967 instructions a step instead of 2,431 at the time. Every copy
    counts against gcc's inline-unit-growth limit, past which it stops
    inlining them: benchmarks/README.md, items 10 and 11.)
    """
    if n > 4 or k > 4:
        product_loops(m, n, k, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                      sum_row)
    elif n == 4:
        if k == 4:
            product_loops(m, 4, 4, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 3:
            product_loops(m, 4, 3, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 2:
            product_loops(m, 4, 2, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        else:
            product_loops(m, 4, 1, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
    elif n == 3:
        if k == 4:
            product_loops(m, 3, 4, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 3:
            product_loops(m, 3, 3, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 2:
            product_loops(m, 3, 2, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        else:
            product_loops(m, 3, 1, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
    elif n == 2:
        if k == 4:
            product_loops(m, 2, 4, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 3:
            product_loops(m, 2, 3, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 2:
            product_loops(m, 2, 2, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        else:
            product_loops(m, 2, 1, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
    else:
        if k == 4:
            product_loops(m, 1, 4, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 3:
            product_loops(m, 1, 3, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        elif k == 2:
            product_loops(m, 1, 2, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)
        else:
            product_loops(m, 1, 1, A, a_row, a_col, B, b_row, b_col, C, bias, subtract, rate,
                          sum_row)


cdef inline void add_bias(floating* Z, const floating* b, Py_ssize_t n_rows,
                          Py_ssize_t n_cols) noexcept nogil:
    """Z[i, :] += b for each of the n_rows rows of Z (n_rows, n_cols), row-major."""
    cdef Py_ssize_t i, j
    cdef floating* Z_row
    for i in range(n_rows):
        Z_row = Z + i * n_cols
        for j in range(n_cols):
            Z_row[j] = Z_row[j] + b[j]


cdef void affine(const floating* A, const floating* W, const floating* b, floating* Z,
                 Py_ssize_t n_rows, Py_ssize_t fan_in, Py_ssize_t fan_out) noexcept nogil:
    """Z = A @ W + b, with A (n_rows, fan_in), W (fan_in, fan_out), row-major."""
    if n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS:
        # Z = A @ W
        gemm(False, False, <int>n_rows, <int>fan_out, <int>fan_in, 1.0, A, <int>fan_in,
             W, <int>fan_out, 0.0, Z, <int>fan_out)
        add_bias(Z, b, n_rows, fan_out)
        return
    small_product(n_rows, fan_out, fan_in, A, fan_in, 1, W, fan_out, 1, Z, b, False, 0, False)


cdef void forward_pass(const floating* X, Py_ssize_t n_rows, const floating* params,
                       const Py_ssize_t* sizes, const int* activations,
                       Py_ssize_t n_layers, floating* A, floating* Z_out) noexcept nogil:
    """Every layer's activations for the rows of X, written layer after layer into A.

    When Z_out is not NULL it receives the output layer's pre-activations
    Z = A_prev @ W + b, which the cross-entropy losses need.
    """
    cdef Py_ssize_t l, fan_in, fan_out
    cdef const floating* A_prev = X
    cdef const floating* b
    for l in range(n_layers):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        b = params + fan_in * fan_out
        affine(A_prev, params, b, A, n_rows, fan_in, fan_out)
        if Z_out != NULL and l == n_layers - 1:
            memcpy(Z_out, A, n_rows * fan_out * sizeof(floating))
        activate(A, n_rows, fan_out, activations[l])
        params = b + fan_out
        A_prev = A
        A += n_rows * fan_out


# --- 4. Backward ---------------------------------------------------------

cdef void delta_times_weights(const floating* delta, const floating* W, floating* delta_prev,
                              Py_ssize_t n_rows, Py_ssize_t fan_in,
                              Py_ssize_t fan_out) noexcept nogil:
    """delta_prev = delta @ W.T: the layer below's delta, before its activation derivative."""
    if n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS:
        gemm(False, True, <int>n_rows, <int>fan_in, <int>fan_out, 1.0,
             delta, <int>fan_out, W, <int>fan_out, 0.0, delta_prev, <int>fan_in)
        return
    # W.T[j, p] is W[p, j]
    small_product(n_rows, fan_in, fan_out, delta, fan_out, 1, W, 1, fan_out, delta_prev,
                  NULL, False, 0, False)


cdef void column_sums(const floating* delta, Py_ssize_t n_rows, Py_ssize_t n_cols,
                      floating* sums_out) noexcept nogil:
    """sums_out = delta.sum(axis=0), each column summed row after row from 0.

    Wide rows are read row by row, contiguous and vectorizable (summing down
    each column strides through memory a row at a time); rows of a few
    columns are summed down the columns in registers, which saves the
    passes over sums_out that cost more than the additions there.
    """
    cdef Py_ssize_t i, j
    cdef const floating* delta_row
    cdef floating total
    if n_cols <= 4:
        for j in range(n_cols):
            total = 0
            for i in range(n_rows):
                total += delta[i * n_cols + j]
            sums_out[j] = total
        return
    memset(sums_out, 0, n_cols * sizeof(floating))
    for i in range(n_rows):
        delta_row = delta + i * n_cols
        for j in range(n_cols):
            sums_out[j] += delta_row[j]


cdef void dense_backward(const floating* A_prev, const floating* W, const floating* delta,
                         floating* dW, floating* delta_prev, Py_ssize_t n_rows,
                         Py_ssize_t fan_in, Py_ssize_t fan_out) noexcept nogil:
    """Gradients of one layer from its delta, dW (fan_in, fan_out) followed by db
    (fan_out) as in the parameter vector, and the delta before its activation
    derivative for the layer below (skipped when delta_prev is NULL)."""
    cdef floating* db = dW + fan_in * fan_out
    if n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS:
        # dW = A_prev.T @ delta
        gemm(True, False, <int>fan_in, <int>fan_out, <int>n_rows, 1.0,
             A_prev, <int>fan_in, delta, <int>fan_out, 0.0, dW, <int>fan_out)
        # db = delta.sum(axis=0)
        column_sums(delta, n_rows, fan_out, db)
    else:
        # dW = A_prev.T @ delta and db = delta.sum(axis=0), in one set of
        # loops (A_prev.T[p, i] is A_prev[i, p])
        small_product(fan_in, fan_out, n_rows, A_prev, 1, fan_in, delta, fan_out, 1, dW,
                      NULL, False, 0, True)
    if delta_prev != NULL:
        delta_times_weights(delta, W, delta_prev, n_rows, fan_in, fan_out)


cdef double backpropagate(const floating* X, const floating* Y, const floating* weights,
                          Py_ssize_t n_rows, const floating* params,
                          const Py_ssize_t* sizes, const int* activations,
                          Py_ssize_t n_layers, int loss, double scale, floating* A,
                          floating* delta, floating* grads) noexcept nogil:
    """Forward and backward over one batch: grads = scale * d(sum_i w_i l_i)/d(params).

    Returns sum_i w_i l_i over the batch, unscaled.
    """
    cdef Py_ssize_t l, fan_in, fan_out, n_params = 0, n_units = 0, unit_offset, w_offset
    cdef double loss_sum
    cdef const floating* A_prev
    cdef floating* delta_out
    cdef floating* delta_prev
    for l in range(n_layers):
        n_params += sizes[l] * sizes[l + 1] + sizes[l + 1]
        n_units += sizes[l + 1]

    fan_out = sizes[n_layers]
    unit_offset = n_units - fan_out
    delta_out = delta + n_rows * unit_offset
    # The output pre-activations land where the output delta will be written
    # (mse, which needs only the outputs, skips the copy).
    forward_pass(X, n_rows, params, sizes, activations, n_layers, A,
                 delta_out if loss != MSE else NULL)
    loss_sum = output_delta(A + n_rows * unit_offset, Y, weights, delta_out, n_rows, fan_out,
                            activations[n_layers - 1], loss, scale)

    w_offset = n_params
    for l in range(n_layers - 1, -1, -1):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        w_offset -= fan_in * fan_out + fan_out
        if l > 0:
            unit_offset -= fan_in
            A_prev = A + n_rows * unit_offset
            delta_prev = delta + n_rows * unit_offset
        else:
            A_prev = X
            delta_prev = NULL
        dense_backward(A_prev, params + w_offset, delta_out, grads + w_offset, delta_prev,
                       n_rows, fan_in, fan_out)
        if l > 0:
            multiply_by_derivative(A_prev, delta_prev, n_rows, fan_in, activations[l - 1])
        delta_out = delta_prev
    return loss_sum


cdef double backpropagate_and_step(const floating* X, const floating* Y,
                                   const floating* weights, Py_ssize_t n_rows,
                                   floating* params, const Py_ssize_t* sizes,
                                   const int* activations, Py_ssize_t n_layers, int loss,
                                   double scale, double learning_rate, floating* A,
                                   floating* delta, floating* sums) noexcept nogil:
    """One batch's plain SGD step, each layer updated as soon as its delta is known.

    Takes the step of backpropagate followed by update, without writing the
    gradient and reading it back: a layer's update waits until the delta
    below it has been taken from its old W. In the plain loops (one sample,
    or products below BLAS_MIN_MULTIPLY_ADDS) each gradient entry is summed
    in the same order as in dense_backward, so the step is the same bit for
    bit; larger batches fold the update into BLAS (W += -lr * A_prev.T @ delta),
    which may round the last bit differently. Saving the pass over the
    gradient is a third of the work of online SGD on a 64-32-10 network
    (benchmarks/README.md, profile_core.py on W2). Returns the batch's loss,
    unscaled. sums is scratch for the bias gradient, as long as the widest layer.
    """
    cdef Py_ssize_t l, p, j, fan_in, fan_out, n_params = 0, n_units = 0
    cdef Py_ssize_t unit_offset, w_offset
    cdef double loss_sum
    cdef floating rate = <floating>learning_rate, a
    cdef const floating* A_prev
    cdef floating* W
    cdef floating* b
    cdef floating* W_row
    cdef floating* delta_out
    cdef floating* delta_prev
    for l in range(n_layers):
        n_params += sizes[l] * sizes[l + 1] + sizes[l + 1]
        n_units += sizes[l + 1]

    fan_out = sizes[n_layers]
    unit_offset = n_units - fan_out
    delta_out = delta + n_rows * unit_offset
    forward_pass(X, n_rows, params, sizes, activations, n_layers, A,
                 delta_out if loss != MSE else NULL)
    loss_sum = output_delta(A + n_rows * unit_offset, Y, weights, delta_out, n_rows, fan_out,
                            activations[n_layers - 1], loss, scale)

    w_offset = n_params
    for l in range(n_layers - 1, -1, -1):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        w_offset -= fan_in * fan_out + fan_out
        W = params + w_offset
        b = W + fan_in * fan_out
        if l > 0:
            unit_offset -= fan_in
            A_prev = A + n_rows * unit_offset
            delta_prev = delta + n_rows * unit_offset
            # delta_prev = delta @ W.T, from W before its update
            delta_times_weights(delta_out, W, delta_prev, n_rows, fan_in, fan_out)
        else:
            A_prev = X
            delta_prev = NULL
        if n_rows == 1:
            # W -= learning_rate * outer(A_prev, delta)
            for p in range(fan_in):
                a = A_prev[p]
                W_row = W + p * fan_out
                for j in range(fan_out):
                    W_row[j] -= rate * (a * delta_out[j])
            # b -= learning_rate * delta
            for j in range(fan_out):
                b[j] -= rate * delta_out[j]
        elif n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS:
            # W = W - learning_rate * A_prev.T @ delta
            gemm(True, False, <int>fan_in, <int>fan_out, <int>n_rows, -learning_rate,
                 A_prev, <int>fan_in, delta_out, <int>fan_out, 1.0, W, <int>fan_out)
            # b -= learning_rate * delta.sum(axis=0)
            column_sums(delta_out, n_rows, fan_out, sums)
            for j in range(fan_out):
                b[j] -= rate * sums[j]
        else:
            # W -= learning_rate * A_prev.T @ delta and b -= learning_rate *
            # delta.sum(axis=0), in one set of loops (b follows W)
            small_product(fan_in, fan_out, n_rows, A_prev, 1, fan_in, delta_out, fan_out, 1,
                          W, NULL, True, rate, True)
        if l > 0:
            multiply_by_derivative(A_prev, delta_prev, n_rows, fan_in, activations[l - 1])
        delta_out = delta_prev
    return loss_sum


cdef inline bint blas_splits_product(bint transpose_a, bint transpose_b, Py_ssize_t m,
                                     Py_ssize_t n, Py_ssize_t k, double alpha, double beta,
                                     Py_ssize_t width) noexcept nogil:
    """Whether gemm hands this product to BLAS at a size BLAS splits between
    its threads: a matrix-vector product (a single row or column of C) from
    BLAS_GEMV_SPLITS_FROM entries of its matrix, any other from
    BLAS_SPLITS_FROM multiply-adds."""
    if not matrix_vector(transpose_b, m, n) and gemm_fits(transpose_a, transpose_b, m, n, k,
                                                          alpha, beta, width):
        return False
    if m == 1 or n == 1:
        return m * n * k >= BLAS_GEMV_SPLITS_FROM
    return m * n * k >= BLAS_SPLITS_FROM


cdef bint blas_splits_products(Py_ssize_t n_rows, const Py_ssize_t* sizes,
                               Py_ssize_t n_layers, bint backward, double step_alpha,
                               double step_beta, Py_ssize_t itemsize) noexcept nogil:
    """Whether a pass over n_rows rows (forward, and backward when set) hands
    BLAS a product it may split between its threads (blas_splits_product).
    The weights' steps are alpha A_prev.T @ delta + beta W with step_alpha
    and step_beta. Then the kernel leaves every product to BLAS at more than
    one thread (cyprop_gemm_blas_splits in _gemm_avx512.h)."""
    cdef Py_ssize_t l, fan_in, fan_out
    cdef Py_ssize_t width = 16 if itemsize == 4 else 8
    # gemm_fits reads the flag: answer for the network alone
    set_blas_splits(False)
    for l in range(n_layers):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        if n_rows * fan_in * fan_out < BLAS_MIN_MULTIPLY_ADDS:
            # the core's own loops
            continue
        if blas_splits_product(False, False, n_rows, fan_out, fan_in, 1.0, 0.0, width):
            return True
        if backward and blas_splits_product(True, False, fan_in, fan_out, n_rows, step_alpha,
                                            step_beta, width):
            return True
        # delta @ W.T, for every layer above the first
        if backward and l > 0 and blas_splits_product(False, True, n_rows, fan_in, fan_out,
                                                      1.0, 0.0, width):
            return True
    return False


cdef inline bint takes_tiny_step(Py_ssize_t n_rows, const Py_ssize_t* sizes,
                                 const int* activations, Py_ssize_t n_layers,
                                 int loss) noexcept nogil:
    """Whether plain SGD steps (without sample weights) on batches of up to
    n_rows rows fit tiny_step (_tiny_step.h): one sigmoid hidden layer, a
    sigmoid output with mse, at most 4 rows, inputs, hidden units and outputs.
    The lesson's 3-4-1 network spent most of a general step on the calls and
    loops around its few operations (benchmarks/README.md)."""
    return (n_layers == 2 and loss == MSE and activations[0] == SIGMOID
            and activations[1] == SIGMOID and 1 <= n_rows <= 4 and 1 <= sizes[0] <= 4
            and 1 <= sizes[1] <= 4 and 1 <= sizes[2] <= 4)


# --- 5. Optimizer updates and weight decay ---------------------------------

cdef double weight_penalty(const floating* params, const Py_ssize_t* sizes,
                           Py_ssize_t n_layers, double weight_decay) noexcept nogil:
    """weight_decay / 2 * sum of squared weights (biases are not decayed)."""
    cdef Py_ssize_t l, i, n_weights
    cdef double total = 0.0
    if weight_decay == 0.0:
        return 0.0
    for l in range(n_layers):
        n_weights = sizes[l] * sizes[l + 1]
        for i in range(n_weights):
            total += <double>params[i] * params[i]
        params += n_weights + sizes[l + 1]
    return 0.5 * weight_decay * total


cdef void add_weight_decay(const floating* params, floating* grads, const Py_ssize_t* sizes,
                           Py_ssize_t n_layers, double weight_decay) noexcept nogil:
    """dW += weight_decay * W for every layer; biases untouched."""
    cdef Py_ssize_t l, i, n_weights
    cdef floating decay = <floating>weight_decay
    if weight_decay == 0.0:
        return
    for l in range(n_layers):
        n_weights = sizes[l] * sizes[l + 1]
        for i in range(n_weights):
            grads[i] += decay * params[i]
        params += n_weights + sizes[l + 1]
        grads += n_weights + sizes[l + 1]


cdef void update(const Optimizer* optimizer, floating* params, const floating* grads,
                 floating* state, Py_ssize_t n, double learning_rate,
                 Py_ssize_t step) noexcept nogil:
    """One step of the optimizer over the flat buffers; step counts from 1.

    sgd:       p -= lr g
    momentum:  v = mu v - lr g;  p += v
    nesterov:  v = mu v - lr g;  p += mu v - lr g
    adam:      m = b1 m + (1 - b1) g;  s = b2 s + (1 - b2) g^2;
               p -= lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
    irprop-:   per-parameter steps d grow by `increase` while g keeps its sign,
               shrink by `decrease` when it flips (and that g is then
               forgotten), clipped to [min_step, max_step]; p -= sign(g) d
    """
    cdef Py_ssize_t i
    cdef floating rate = <floating>learning_rate
    cdef floating mu = <floating>optimizer.momentum
    cdef floating b1 = <floating>optimizer.beta1, b2 = <floating>optimizer.beta2
    cdef floating eps = <floating>optimizer.epsilon
    cdef floating g, product, size
    cdef floating* first = state
    cdef floating* second = state + n
    cdef double correction1, correction2
    if optimizer.kind == SGD:
        for i in range(n):
            params[i] -= rate * grads[i]
    elif optimizer.kind == MOMENTUM:
        for i in range(n):
            first[i] = mu * first[i] - rate * grads[i]
            params[i] += first[i]
    elif optimizer.kind == NESTEROV:
        for i in range(n):
            first[i] = mu * first[i] - rate * grads[i]
            params[i] += mu * first[i] - rate * grads[i]
    elif optimizer.kind == ADAM:
        correction1 = 1.0 - optimizer.beta1 ** step
        correction2 = 1.0 - optimizer.beta2 ** step
        for i in range(n):
            g = grads[i]
            first[i] = b1 * first[i] + (1 - b1) * g
            second[i] = b2 * second[i] + (1 - b2) * g * g
            params[i] -= <floating>(learning_rate * (first[i] / correction1)
                                    / (sqrt(second[i] / correction2) + eps))
    elif optimizer.kind == IRPROP_MINUS:
        # first: the previous gradient; second: the step sizes.
        for i in range(n):
            g = grads[i]
            product = g * first[i]
            size = second[i]
            if product > 0:
                size = min(size * <floating>optimizer.increase, <floating>optimizer.max_step)
            elif product < 0:
                size = max(size * <floating>optimizer.decrease, <floating>optimizer.min_step)
                g = 0
            second[i] = size
            first[i] = g
            if g > 0:
                params[i] -= size
            elif g < 0:
                params[i] += size


# --- 6. Minibatch gather -------------------------------------------------

cdef void gather_rows(const floating* source, const Py_ssize_t* rows, Py_ssize_t n_rows,
                      Py_ssize_t n_columns, floating* out) noexcept nogil:
    """out[r] = source[rows[r]] for r < n_rows."""
    cdef Py_ssize_t r
    for r in range(n_rows):
        memcpy(out + r * n_columns, source + rows[r] * n_columns,
               n_columns * sizeof(floating))


# --- 7. One hidden layer, split between threads --------------------------
#
# Plain SGD on a network of one hidden layer, for minibatches on the AVX-512
# kernel. Splitting only the first layer's two products between the threads
# (as every other network's products are split) leaves the rest of each
# batch to the calling thread while the others wait: the output layer, the
# loss, the activation and its derivative, the bias steps and the check of
# the inputs. On W3 at two threads that was about 40 of each 330 us batch;
# leaving it out altogether (an experiment, wrong results) trained 12%
# faster (benchmarks/README.md). Here every thread runs the whole batch loop
# for its own columns of the hidden layer: its share of the forward product,
# the activation, the delta, the steps of its rows of the output layer's
# weights and of its columns of the first layer's; each entry is the same
# sum as on one thread. The threads meet twice a batch: once the hidden
# layer is complete, and once each has computed the output layer, the loss
# and the delta for its share of the rows (the output layer is at most a
# sixteenth of the first layer's work). Between the two each also gathers
# and checks its share of the next batch's rows, into the other half of a
# double buffer. After the second, each takes the step of its columns of the
# first layer and the next batch's forward product through them a block of
# columns at a time, while the block is still in the caches. A thread that
# has done its own blocks takes those left of another's, from the last:
# on a virtual machine one core can run at half speed for a while, and the
# other would wait for it at every meeting (blocks_t in _parallel.h).

cdef struct HiddenLayerRun:
    # the epoch: rows of X, Y and the weights in `order` (NULL: storage order)
    const void* X
    const void* Y
    const void* sample_weight
    const Py_ssize_t* order
    Py_ssize_t n_samples, n_features, n_hidden, n_outputs, batch_size, itemsize
    void* params
    int hidden_activation, output_activation, loss
    bint mean_reduction, weighted, check_inputs
    double learning_rate
    Py_ssize_t signal_interval
    # two batches of gathered rows each (with an order), the layers'
    # activations and deltas, and the bias sums
    void* X_batches[2]
    void* Y_batches[2]
    void* weight_batches[2]
    void* A_work
    void* delta_work
    void* sums
    # each row's loss, summed in order as output_delta sums them
    double row_losses[GEMM_MAX_STEP_ROWS]
    # shared by the parts
    barrier_t barrier
    # each part's blocks of hidden columns after the second meeting
    blocks_t blocks[MAX_PARTS]
    int inputs_finite[MAX_PARTS]
    bint stop
    # written by part 0 for the caller: batches stepped, their losses and
    # weights, and how the epoch ended
    Py_ssize_t batches, until_signal_check
    double epoch_sum, epoch_weight
    bint first_batch_finite, losses_finite
    int status
    # the exception a signal handler raised (signal_handler_raised)
    PyObject* raised


cdef inline bint splits_hidden_layer(Py_ssize_t n_rows, const Py_ssize_t* sizes,
                                     const int* activations, Py_ssize_t n_layers,
                                     Py_ssize_t itemsize) noexcept nogil:
    """Whether plain SGD on batches of up to n_rows rows runs through
    hidden_layer_task: one hidden layer of an elementwise activation, an
    output layer at most a sixteenth as wide as the input, and the first
    layer's products where the kernel takes them (a weights' step over at
    most CYPROP_GEMM_MAX_STEP_ROWS rows into at most CYPROP_GEMM_MAX_STEP
    entries, and C at least three vectors wide)."""
    cdef Py_ssize_t width = 16 if itemsize == 4 else 8
    return (n_layers == 2 and activations[0] != SOFTMAX and GEMM_ROWS <= n_rows
            and n_rows <= GEMM_MAX_STEP_ROWS and sizes[1] >= 3 * width
            and sizes[0] * sizes[1] <= GEMM_MAX_STEP and 16 * sizes[2] <= sizes[0]
            and gemm_available())


cdef inline bint fuses_sgd_step(const Optimizer* optimizer) noexcept nogil:
    """Whether train_epochs steps the weights inside the products, with the
    learning rate as alpha (plain SGD without weight decay), rather than
    computing the gradient first."""
    return optimizer.kind == SGD and optimizer.weight_decay == 0.0


cdef inline Py_ssize_t hidden_layer_scratch_values(Py_ssize_t batch_rows, const Py_ssize_t* sizes,
                                                   bint gather, bint weighted) noexcept nogil:
    """How much scratch hidden_layer_task's run takes: room for the sums of
    both layers' deltas (the biases' steps), and one batch of X, Y and the
    weights when batches are gathered (shuffled epochs)."""
    cdef Py_ssize_t F = sizes[0], H = sizes[1], O = sizes[2]
    return H + O + (batch_rows * (F + O + weighted) if gather else 0)


cdef inline bint takes_hidden_layer_split(const Optimizer* optimizer, Py_ssize_t batch_rows,
                                          const Py_ssize_t* sizes, const int* activations,
                                          Py_ssize_t n_layers, Py_ssize_t itemsize) noexcept nogil:
    """Whether train_epochs trains through hidden_layer_task, given the
    scratch: the fused plain SGD step on a network splits_hidden_layer takes."""
    return (batch_rows > 0 and fuses_sgd_step(optimizer)
            and splits_hidden_layer(batch_rows, sizes, activations, n_layers, itemsize))


def hidden_layer_scratch_size(Optimizer optimizer, Py_ssize_t batch_rows,
                              const Py_ssize_t[::1] sizes, const int[::1] activations,
                              Py_ssize_t itemsize, bint gather, bint weighted):
    """How many values of scratch train_epochs needs to split this network's
    one hidden layer between threads (section 7), training with optimizer on
    batches of up to batch_rows rows of floats (itemsize 4) or doubles (8),
    gathered (shuffled epochs) or not, with sample weights or not; 0 where
    train_epochs does not take that split (splits_hidden_layer, and plain
    SGD only), whatever scratch it is given."""
    vector_width(itemsize)
    if activations.shape[0] < 1 or sizes.shape[0] != activations.shape[0] + 1:
        raise ValueError("sizes must name one more layer than activations, at least two")
    if not takes_hidden_layer_split(&optimizer, batch_rows, &sizes[0], &activations[0],
                                    activations.shape[0], itemsize):
        return 0
    return hidden_layer_scratch_values(batch_rows, &sizes[0], gather, weighted)


cdef void set_up_hidden_layer_run(HiddenLayerRun* run, const floating[:, ::1] X,
                                  const floating[:, ::1] Y,
                                  const floating[::1] sample_weight, Py_ssize_t batch_size,
                                  floating[::1] params, const Py_ssize_t[::1] sizes,
                                  const int[::1] activations, int loss, bint mean_reduction,
                                  floating[:, ::1] X_batch, floating[:, ::1] Y_batch,
                                  floating[::1] weight_batch, floating[::1] A_work,
                                  floating[::1] delta_work, floating[::1] scratch,
                                  Py_ssize_t signal_interval) noexcept:
    """Fill in everything of run but what changes with the epoch; scratch is
    as long as hidden_layer_scratch_size asks."""
    cdef Py_ssize_t F = sizes[0], H = sizes[1], O = sizes[2]
    cdef Py_ssize_t rows = min(batch_size, X.shape[0])
    cdef floating* free = &scratch[0]
    run.X = &X[0, 0]
    run.Y = &Y[0, 0]
    run.weighted = sample_weight.shape[0] > 0
    run.sample_weight = &sample_weight[0] if run.weighted else NULL
    run.n_samples = X.shape[0]
    run.n_features = F
    run.n_hidden = H
    run.n_outputs = O
    run.batch_size = rows
    run.itemsize = sizeof(floating)
    run.params = &params[0]
    run.hidden_activation = activations[0]
    run.output_activation = activations[1]
    run.loss = loss
    run.mean_reduction = mean_reduction
    run.signal_interval = signal_interval
    run.raised = NULL
    run.A_work = &A_work[0]
    run.delta_work = &delta_work[0]
    run.sums = free
    free += H + O
    run.X_batches[0] = run.X_batches[1] = NULL
    run.Y_batches[0] = run.Y_batches[1] = NULL
    run.weight_batches[0] = run.weight_batches[1] = NULL
    if X_batch.shape[0] > 0:
        run.X_batches[0] = &X_batch[0, 0]
        run.Y_batches[0] = &Y_batch[0, 0]
        run.X_batches[1] = free
        free += rows * F
        run.Y_batches[1] = free
        free += rows * O
        if run.weighted:
            run.weight_batches[0] = &weight_batch[0]
            run.weight_batches[1] = free


cdef inline bint part_inputs_finite(const HiddenLayerRun* run, int parts) noexcept nogil:
    cdef int part
    for part in range(parts):
        if not run.inputs_finite[part]:
            return False
    return True


cdef void prepare_batch(HiddenLayerRun* run, floating* kind, int part, int parts,
                        Py_ssize_t start, Py_ssize_t n_rows, int buffer,
                        const floating** X_rows, const floating** Y_rows,
                        const floating** w_rows) noexcept nogil:
    """Point at the batch of n_rows rows from start, gathering this part's
    share of its rows into the given buffer first (with an order), and
    check that share of X when asked."""
    cdef Py_ssize_t r0 = n_rows * part // parts, r1 = n_rows * (part + 1) // parts
    cdef Py_ssize_t F = run.n_features, O = run.n_outputs
    cdef const floating* X = <const floating*>run.X
    cdef const floating* Y = <const floating*>run.Y
    cdef const floating* w = <const floating*>run.sample_weight
    if run.order != NULL:
        gather_rows(X, run.order + start + r0, r1 - r0, F,
                    <floating*>run.X_batches[buffer] + r0 * F)
        gather_rows(Y, run.order + start + r0, r1 - r0, O,
                    <floating*>run.Y_batches[buffer] + r0 * O)
        X_rows[0] = <const floating*>run.X_batches[buffer]
        Y_rows[0] = <const floating*>run.Y_batches[buffer]
        w_rows[0] = NULL
        if run.weighted:
            gather_rows(w, run.order + start + r0, r1 - r0, 1,
                        <floating*>run.weight_batches[buffer] + r0)
            w_rows[0] = <const floating*>run.weight_batches[buffer]
    else:
        X_rows[0] = X + start * F
        Y_rows[0] = Y + start * O
        w_rows[0] = w + start if run.weighted else NULL
    run.inputs_finite[part] = (not run.check_inputs
                               or all_finite(X_rows[0] + r0 * F, NULL, (r1 - r0) * F))


cdef inline void hidden_forward(const floating* X_rows, Py_ssize_t n_rows, Py_ssize_t F,
                                Py_ssize_t H, const floating* W1, floating* A1,
                                Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns [j0, j1) of the hidden layer's product X @ W1, into A1;
    hidden_activate finishes A1."""
    gemm_alone(False, False, n_rows, j1 - j0, F, <floating>1, X_rows, F, W1 + j0, H,
               <floating>0, A1 + j0, H)


cdef inline void hidden_activate(Py_ssize_t H, const floating* b1, floating* A1,
                                 Py_ssize_t r0, Py_ssize_t r1, int activation) noexcept nogil:
    """Rows [r0, r1) of the hidden layer: A1 = f(A1 + b1), once every column's
    product is in. Whole rows in one call, rather than each block of columns
    after its product, one call for each of the block's rows (they are not
    contiguous): W3 trained about 1% faster at one thread, 2-4% at two
    (benchmarks/README.md)."""
    add_bias(A1 + r0 * H, b1, r1 - r0, H)
    activate(A1 + r0 * H, r1 - r0, H, activation)


cdef inline void hidden_step(const floating* X_rows, Py_ssize_t n_rows, Py_ssize_t F,
                             Py_ssize_t H, floating* W1, floating* b1, const floating* D1,
                             floating* sums, Py_ssize_t j0, Py_ssize_t j1,
                             floating rate) noexcept nogil:
    """Columns [j0, j1) of W1 -= rate * X.T @ D1, and of b1 -= rate * D1.sum(axis=0)."""
    cdef Py_ssize_t r, j
    cdef const floating* row
    gemm_alone(True, False, F, j1 - j0, n_rows, -rate, X_rows, F, D1 + j0, H, <floating>1,
               W1 + j0, H)
    for j in range(j0, j1):
        sums[j] = 0
    for r in range(n_rows):
        row = D1 + r * H
        for j in range(j0, j1):
            sums[j] += row[j]
    for j in range(j0, j1):
        b1[j] -= rate * sums[j]


cdef inline void hidden_delta(Py_ssize_t n_rows, Py_ssize_t H, Py_ssize_t O, floating* W2,
                              const floating* A1, floating* D1, const floating* D2,
                              Py_ssize_t j0, Py_ssize_t j1, floating rate,
                              int activation) noexcept nogil:
    """Columns [j0, j1) of the hidden delta D1, and the step of the rows
    [j0, j1) of W2."""
    cdef Py_ssize_t r
    # D1 = D2 @ W2.T from these rows of W2 before their step
    gemm_alone(False, True, n_rows, j1 - j0, O, <floating>1, D2, O, W2 + j0 * O, O,
               <floating>0, D1 + j0, H)
    # these rows of W2 -= rate * A1.T @ D2
    gemm_alone(True, False, j1 - j0, O, n_rows, -rate, A1 + j0, H, D2, O, <floating>1,
               W2 + j0 * O, O)
    if j1 - j0 == H:
        # every column: the rows are contiguous, one call
        multiply_by_derivative(A1, D1, n_rows, H, activation)
        return
    for r in range(n_rows):
        multiply_by_derivative(A1 + r * H + j0, D1 + r * H + j0, 1, j1 - j0, activation)


cdef void hidden_layer_epoch(HiddenLayerRun* run, floating* kind, int part,
                             int parts) noexcept nogil:
    """Part `part` of `parts` of one epoch of hidden_layer_task."""
    cdef Py_ssize_t F = run.n_features, H = run.n_hidden, O = run.n_outputs
    cdef Py_ssize_t n_samples = run.n_samples, batch_size = run.batch_size
    cdef floating* W1 = <floating*>run.params
    cdef floating* b1 = W1 + F * H
    cdef floating* W2 = b1 + H
    cdef floating* b2 = W2 + H * O
    cdef floating* A1 = <floating*>run.A_work
    cdef floating* D1 = <floating*>run.delta_work
    cdef floating* A2 = A1 + batch_size * H
    cdef floating* D2 = D1 + batch_size * H
    cdef floating* sums = <floating*>run.sums
    cdef floating rate = <floating>run.learning_rate
    cdef int hidden_activation = run.hidden_activation
    cdef Py_ssize_t j0, j1, r0, r1, start = 0, next_start, n_rows, next_rows, r, k
    cdef Py_ssize_t block, block_end
    cdef Py_ssize_t width = 16 if floating is float else 8, block_columns = 3 * width
    cdef int owner, taken, own_blocks
    cdef bint forward
    cdef int buffer = 0
    cdef double batch_sum, batch_weight, scale
    cdef const floating* X_rows
    cdef const floating* Y_rows
    cdef const floating* w_rows
    cdef const floating* X_next
    cdef const floating* Y_next
    cdef const floating* w_next
    gemm_part_columns(H, width, part, parts, &j0, &j1)
    own_blocks = <int>((j1 - j0 + block_columns - 1) // block_columns)

    n_rows = min(batch_size, n_samples)
    prepare_batch(run, kind, part, parts, 0, n_rows, buffer, &X_rows, &Y_rows, &w_rows)
    barrier_wait(&run.barrier)
    if not part_inputs_finite(run, parts):
        if part == 0:
            run.status = INPUT_NOT_FINITE
        return
    if j1 > j0:
        hidden_forward(X_rows, n_rows, F, H, W1, A1, j0, j1)
    while True:
        barrier_wait(&run.barrier)
        if run.stop:
            return
        # no part takes blocks again before the next meeting
        blocks_reset(&run.blocks[part], own_blocks)
        r0 = n_rows * part // parts
        r1 = n_rows * (part + 1) // parts
        if r1 > r0:
            hidden_activate(H, b1, A1, r0, r1, hidden_activation)

        # this part's rows of the output layer, their losses and their delta
        batch_weight = n_rows
        if run.weighted:
            batch_weight = 0.0
            for r in range(n_rows):
                batch_weight += w_rows[r]
        scale = 1.0
        if run.mean_reduction:
            scale = 1.0 / batch_weight if batch_weight > 0 else 0.0
        if r1 > r0:
            gemm_alone(False, False, r1 - r0, O, H, <floating>1, A1 + r0 * H, H, W2, O,
                       <floating>0, A2 + r0 * O, O)
            add_bias(A2 + r0 * O, b2, r1 - r0, O)
            if run.loss != MSE:
                memcpy(D2 + r0 * O, A2 + r0 * O, (r1 - r0) * O * sizeof(floating))
            activate(A2 + r0 * O, r1 - r0, O, run.output_activation)
            for r in range(r0, r1):
                run.row_losses[r] = output_delta(
                    A2 + r * O, Y_rows + r * O, w_rows + r if run.weighted else NULL,
                    D2 + r * O, 1, O, run.output_activation, run.loss, scale)

        next_start = start + n_rows
        if next_start < n_samples:
            prepare_batch(run, kind, part, parts, next_start,
                          min(batch_size, n_samples - next_start), 1 - buffer, &X_next,
                          &Y_next, &w_next)
        # the output layer is complete, and every part has read W2 and b2
        barrier_wait(&run.barrier)
        batch_sum = 0.0
        for r in range(n_rows):
            batch_sum += run.row_losses[r]
        if not isfinite(batch_sum):
            if part == 0:
                run.losses_finite = False
            return

        # This part's blocks of hidden columns, then any left of the others'
        # (blocks_t); a block's work is the same whichever thread does it.
        # Alone, the delta of every column in one pass first: in blocks, its
        # small products took W3 0.5-1% longer at one thread.
        forward = next_start < n_samples and part_inputs_finite(run, parts)
        next_rows = min(batch_size, n_samples - next_start)
        if parts == 1 and j1 > j0:
            hidden_delta(n_rows, H, O, W2, A1, D1, D2, j0, j1, rate, hidden_activation)
        owner = part
        while True:
            taken = blocks_take(&run.blocks[owner], owner != part)
            if taken < 0:
                owner = (owner + 1) % parts
                if owner == part:
                    break
                continue
            gemm_part_columns(H, width, owner, parts, &block, &block_end)
            block += taken * block_columns
            block_end = min(block + block_columns, block_end)
            if parts > 1:
                hidden_delta(n_rows, H, O, W2, A1, D1, D2, block, block_end, rate,
                             hidden_activation)
            hidden_step(X_rows, n_rows, F, H, W1, b1, D1, sums, block, block_end, rate)
            # the next batch's forward product through the block, still in
            # the caches from its step
            if forward:
                hidden_forward(X_next, next_rows, F, H, W1, A1, block, block_end)

        if part == 0:
            column_sums(D2, n_rows, O, sums + H)
            for k in range(O):
                b2[k] -= rate * sums[H + k]
            if start == 0:
                run.first_batch_finite = True
            run.epoch_sum += batch_sum
            run.epoch_weight += batch_weight
            run.batches += 1
            run.until_signal_check -= 1
            if run.until_signal_check == 0:
                run.until_signal_check = run.signal_interval
                if signal_handler_raised(&run.raised):
                    run.status = INTERRUPTED
                    run.stop = True
        if next_start >= n_samples:
            return
        if not part_inputs_finite(run, parts):
            # a signal, seen above, ends the loop first
            if part == 0 and run.status != INTERRUPTED:
                run.status = INPUT_NOT_FINITE
            return
        start = next_start
        n_rows = min(batch_size, n_samples - start)
        buffer = 1 - buffer
        X_rows = X_next
        Y_rows = Y_next
        w_rows = w_next


cdef void hidden_layer_task(void* args, int part, int parts) noexcept nogil:
    """One epoch of plain SGD on a network of one hidden layer, part `part` of
    `parts`, all of them running at once (run_parts_at_once)."""
    cdef HiddenLayerRun* run = <HiddenLayerRun*>args
    if run.itemsize == 4:
        hidden_layer_epoch(run, <float*>NULL, part, parts)
    else:
        hidden_layer_epoch(run, <double*>NULL, part, parts)


# --- Entry points --------------------------------------------------------

def forward(const floating[:, ::1] X, const floating[::1] params,
            const Py_ssize_t[::1] sizes, const int[::1] activations,
            floating[::1] A_out):
    """Write every layer's activations for the rows of X into A_out, layer after layer."""
    with nogil:
        set_blas_splits(blas_splits_products(X.shape[0], &sizes[0], activations.shape[0],
                                             False, 1.0, 0.0, sizeof(floating)))
        forward_pass(&X[0, 0], X.shape[0], &params[0], &sizes[0], &activations[0],
                     activations.shape[0], &A_out[0], NULL)
        set_blas_splits(False)


def loss_sum(const floating[:, ::1] X, const floating[:, ::1] Y,
             const floating[::1] sample_weight, const floating[::1] params,
             const Py_ssize_t[::1] sizes, const int[::1] activations, int loss,
             floating[::1] A_work, floating[::1] Z_work):
    """sum_i w_i l_i over the rows of X; sample_weight may be empty (all ones).

    Z_work holds the output layer's pre-activations (n_rows x n_outputs).
    """
    cdef Py_ssize_t n_layers = activations.shape[0], n_rows = X.shape[0]
    cdef Py_ssize_t n_outputs = Y.shape[1], output_offset = 0, l
    cdef const floating* weights = NULL
    cdef double total
    for l in range(1, n_layers):
        output_offset += n_rows * sizes[l]
    if sample_weight.shape[0] > 0:
        weights = &sample_weight[0]
    with nogil:
        set_blas_splits(blas_splits_products(n_rows, &sizes[0], n_layers, False, 1.0, 0.0,
                                             sizeof(floating)))
        forward_pass(&X[0, 0], n_rows, &params[0], &sizes[0], &activations[0],
                     n_layers, &A_work[0], &Z_work[0])
        set_blas_splits(False)
        total = weighted_loss(&A_work[output_offset], &Z_work[0], &Y[0, 0], weights,
                              n_rows, n_outputs, loss)
    return total


def loss_gradient(const floating[:, ::1] X, const floating[:, ::1] Y,
                  const floating[::1] sample_weight, const floating[::1] params,
                  const Py_ssize_t[::1] sizes, const int[::1] activations, int loss,
                  double scale, floating[::1] A_work, floating[::1] delta_work,
                  floating[::1] grads_out):
    """grads_out = scale * gradient of sum_i w_i l_i over the rows of X; returns that sum."""
    cdef const floating* weights = NULL
    cdef double total
    if sample_weight.shape[0] > 0:
        weights = &sample_weight[0]
    with nogil:
        set_blas_splits(blas_splits_products(X.shape[0], &sizes[0], activations.shape[0],
                                             True, 1.0, 0.0, sizeof(floating)))
        total = backpropagate(&X[0, 0], &Y[0, 0], weights, X.shape[0], &params[0],
                              &sizes[0], &activations[0], activations.shape[0], loss,
                              scale, &A_work[0], &delta_work[0], &grads_out[0])
        set_blas_splits(False)
    return total


def all_finite_values(const floating[::1] values):
    """True when no entry of values is NaN or infinite."""
    cdef bint finite = True
    if values.shape[0] > 0:
        with nogil:
            finite = all_finite(&values[0], NULL, values.shape[0])
    return finite


def penalty(const floating[::1] params, const Py_ssize_t[::1] sizes, double weight_decay):
    """weight_decay / 2 * sum of squared weights."""
    return weight_penalty(&params[0], &sizes[0], sizes.shape[0] - 1, weight_decay)


def add_penalty_gradient(const floating[::1] params, floating[::1] grads,
                         const Py_ssize_t[::1] sizes, double weight_decay):
    """grads += weight_decay * W for every layer's weights, in place."""
    add_weight_decay(&params[0], &grads[0], &sizes[0], sizes.shape[0] - 1, weight_decay)


def optimizer_step(Optimizer optimizer, floating[::1] params, const floating[::1] grads,
                   floating[::1] state, double learning_rate, Py_ssize_t step):
    """One optimizer update of params in place; state holds its buffers back to back."""
    cdef floating* state_ptr = NULL
    if state.shape[0] > 0:
        state_ptr = &state[0]
    with nogil:
        update(&optimizer, &params[0], &grads[0], state_ptr, params.shape[0],
               learning_rate, step)


def tiny_sgd_step(const floating[:, ::1] X, const floating[:, ::1] Y, floating[::1] params,
                  const Py_ssize_t[::1] sizes, const int[::1] activations, int loss,
                  double scale, double learning_rate):
    """One plain SGD step on the rows of X, updating params in place, through the
    tiny network's whole step (_tiny_step.h) as train_epochs takes it; returns the
    batch's loss, or None, with params untouched, where the network, the batch or
    the CPU does not take that step (takes_tiny_step)."""
    cdef double total = 0.0
    cdef bint taken = False
    with nogil:
        if takes_tiny_step(X.shape[0], &sizes[0], &activations[0], activations.shape[0],
                           loss):
            taken = tiny_step(&X[0, 0], &Y[0, 0], X.shape[0], &sizes[0], &params[0], scale,
                              <floating>learning_rate, &total)
    return total if taken else None


def activation_backward(const floating[::1] A, floating[::1] delta, int activation):
    """delta = delta * f'(A) in place, f' written from the activation's output
    A, as backpropagation takes it (multiply_by_derivative), over one row of
    A.shape[0] values (softmax: one row). A and delta are as long."""
    if delta.shape[0] != A.shape[0]:
        raise ValueError("A and delta must be as long")
    if A.shape[0] == 0:
        return
    with nogil:
        multiply_by_derivative(&A[0], &delta[0], 1, A.shape[0], activation)


def tiny_step_sigmoid(floating[::1] Z):
    """Z = the sigmoid that the tiny network's step (_tiny_step.h) computes, with
    its multiply-adds fused, in place; returns whether it did: False, with Z
    untouched, where the CPU does not take that step."""
    cdef bint taken
    cdef floating* values = &Z[0] if Z.shape[0] > 0 else NULL
    with nogil:
        taken = tiny_sigmoid(values, Z.shape[0])
    return taken


# --- 8. The training loop ------------------------------------------------

cdef bint signal_handler_raised(PyObject** raised) noexcept nogil:
    """Run the Python handlers of any signals that arrived; True when one
    raised. The training loop then stops after its current batch and returns
    normally, so the exception is taken out of the thread's error state and
    kept in raised (the first of a call), for the caller to raise in Python:
    KeyboardInterrupt for Ctrl-C, or whatever another handler raised."""
    cdef PyObject* kind = NULL
    cdef PyObject* value = NULL
    cdef PyObject* traceback = NULL
    cdef bint handler_raised = False
    with gil:
        if PyErr_CheckSignals() != 0:
            handler_raised = True
            PyErr_Fetch(&kind, &value, &traceback)
            PyErr_NormalizeException(&kind, &value, &traceback)
            if value != NULL and traceback != NULL:
                PyException_SetTraceback(value, traceback)
            Py_XDECREF(kind)
            Py_XDECREF(traceback)
            if raised[0] == NULL:
                raised[0] = value
            else:
                Py_XDECREF(value)
    return handler_raised


cdef void hand_over(PyObject* raised, list signal_exceptions):
    """Give the exception signal_handler_raised kept to signal_exceptions (when
    the caller passed a list) and drop the loop's reference to it."""
    if raised == NULL:
        return
    if signal_exceptions is not None:
        signal_exceptions.append(<object>raised)
    Py_XDECREF(raised)


cdef bint train_tiny_epochs(const floating* X, const floating* Y, Py_ssize_t n_rows,
                            const Py_ssize_t* sizes, floating* params, floating* rows,
                            bint mean_reduction, const double* learning_rates,
                            Py_ssize_t n_epochs, double* losses_out, Py_ssize_t signal_interval,
                            Py_ssize_t* completed, int* status, Py_ssize_t* good_epoch,
                            bint resume_known_good, PyObject** raised) noexcept nogil:
    """train_epochs for a network that tiny_step takes, trained on one batch of all
    n_rows rows an epoch in storage order, with the same steps, losses, restoring
    and results; rows is params_backup. The loop stays in _tiny_step.h, which
    keeps the batch in registers and needs no copy of the parameters an epoch.
    It looks for signals after every signal_interval epochs and stops after the
    epoch it has finished. False, with nothing touched, when the CPU lacks AVX2 or
    FMA (or CYPROP_DISABLE_AVX2=1 is set)."""
    cdef Py_ssize_t n_params = (sizes[0] * sizes[1] + sizes[1] + sizes[1] * sizes[2]
                                + sizes[2])
    cdef Py_ssize_t done = 0, count, chunk_done = 0
    cdef int chunk_status = 0
    cdef double scale = 1.0 / n_rows if mean_reduction else 1.0
    status[0] = COMPLETED
    # The second row holds the last known good parameters: on entry, these,
    # unless the caller carries them over from its previous call.
    if not resume_known_good:
        memcpy(rows + n_params, params, n_params * sizeof(floating))
    while done < n_epochs:
        count = min(signal_interval, n_epochs - done)
        if not tiny_epochs(X, Y, n_rows, sizes, params, rows, scale, mean_reduction,
                           &learning_rates[done], count, &losses_out[done], &chunk_done,
                           &chunk_status):
            return False
        done += chunk_done
        if chunk_status != 0:
            losses_out[done] = NAN
            status[0] = DIVERGED
            break
        if count == signal_interval and signal_handler_raised(raised):
            status[0] = INTERRUPTED
            break
    completed[0] = done
    # After a diverged parameter update, the epoch's loss was finite: its start
    # is the last known good.
    good_epoch[0] = done - 1 + (chunk_status == 2)
    return True


def train_epochs(const floating[:, ::1] X, const floating[:, ::1] Y,
                 const floating[::1] sample_weight, const Py_ssize_t[:, ::1] orders,
                 Py_ssize_t batch_size, floating[::1] params, const Py_ssize_t[::1] sizes,
                 const int[::1] activations, int loss, bint mean_reduction,
                 Optimizer optimizer, const double[::1] learning_rates,
                 Py_ssize_t first_step, floating[::1] state, floating[:, ::1] X_batch,
                 floating[:, ::1] Y_batch, floating[::1] weight_batch,
                 floating[::1] A_work, floating[::1] delta_work, floating[::1] grads,
                 floating[:, ::1] params_backup, double[::1] losses_out,
                 Py_ssize_t signal_interval, bint check_inputs=False,
                 floating[::1] scratch=None, bint resume_known_good=False,
                 list signal_exceptions=None):
    """Minibatch training for len(losses_out) epochs, updating params in place.

    Epoch e visits the rows of X in the order orders[e], or in storage order
    when orders has no columns, with learning rate learning_rates[e]. Each
    batch's objective is sum_i w_i l_i (divided by sum_i w_i under mean
    reduction) plus the weight penalty; the optimizer's step counter starts at
    first_step. losses_out[e] is the sum of the batches' objectives (under mean
    reduction, their average weighted by each batch's total sample weight),
    each measured before its update.

    Every signal_interval batches the loop takes the GIL for a moment to let
    Python see pending signals (Ctrl-C): it then stops after the batch it
    has finished, so params are those of a completed update.

    params_backup is scratch of two rows, which hold, in either order, the
    parameters at the start of the current epoch and the last parameters
    known good, that is, whose first batch of an epoch gave a finite loss
    (or the parameters on entry, before any). After a divergence, one row
    may hold non-finite values. On a return with status "completed" or
    "interrupted", the second row holds the last known good. With resume_known_good set, the caller
    hands that row back unchanged from its previous call, and it stands for
    the parameters on entry, whose loss no epoch has measured yet: a first
    batch that fails then goes back to the start of the previous call's
    last epoch instead of to parameters known only to be its end.

    Returns (epochs completed, status, optimizer steps taken so far, epoch
    whose starting parameters were restored or -1 for the known good on
    entry).
    With check_inputs set, the first epoch checks each batch's rows of X for
    NaN and infinity before it uses them, where the batch is read anyway,
    instead of a separate pass over all of X beforehand (which, on data
    larger than the caches, costs a few percent of an epoch). Status
    "input_not_finite" means a batch held such a value: the loop stops
    before that batch, the earlier batches' updates made, and the caller
    restores what it saved and reports the input.
    Status "diverged" means the next epoch produced a non-finite loss or
    parameter: it is abandoned and params go back to the last known good.
    Status "interrupted" means a signal's Python handler raised during the
    next epoch; a tiny network trained full batch (one native loop over the
    epochs, one batch each) looks after every signal_interval epochs, and
    counts the epochs it finished before looking as completed. The handler's
    exception is appended to signal_exceptions when that is a list.

    Plain SGD on a network of one hidden layer that splits_hidden_layer
    takes runs through hidden_layer_task when scratch holds
    hidden_layer_scratch_size(...) values: each thread trains its share of
    the hidden layer (same bits at every thread count).
    """
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_outputs = Y.shape[1], n_layers = activations.shape[0]
    cdef Py_ssize_t n_params = params.shape[0], n_epochs = losses_out.shape[0]
    cdef Py_ssize_t epoch, start, n_rows, r, completed = 0, step = first_step
    cdef Py_ssize_t until_signal_check = signal_interval, good_epoch = -1
    cdef int status = COMPLETED
    cdef floating* epoch_start = &params_backup[0, 0]
    cdef floating* known_good = &params_backup[1, 0]
    cdef floating* swap
    cdef bint gather = orders.shape[1] > 0, finite = True
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef bint fused_sgd = fuses_sgd_step(&optimizer)
    cdef bint tiny = fused_sgd and not weighted and takes_tiny_step(
        min(batch_size, n_samples), &sizes[0], &activations[0], n_layers, loss)
    cdef double scale, batch_sum, batch_weight, epoch_sum, epoch_weight, batch_penalty
    cdef const floating* X_rows
    cdef const floating* Y_rows
    cdef const floating* w_rows = NULL
    cdef floating* state_ptr = NULL
    # On the heap: should this thread end inside Python while the other parts
    # wait for it (a daemon thread at interpreter exit), they wait on memory
    # that stays theirs, not on a stack that is gone.
    cdef HiddenLayerRun* run = NULL
    cdef PyObject* raised = NULL
    cdef bint split_hidden = False
    cdef int parts = 1
    cdef Py_ssize_t batch_rows = min(batch_size, n_samples)
    if state.shape[0] > 0:
        state_ptr = &state[0]
    if tiny and not gather and batch_size >= n_samples and n_epochs > 0:
        if check_inputs and not all_finite(&X[0, 0], NULL, n_samples * n_features):
            return 0, INPUT_NOT_FINITE, first_step, -1
        with nogil:
            tiny = train_tiny_epochs(&X[0, 0], &Y[0, 0], n_samples, &sizes[0], &params[0],
                                     &params_backup[0, 0], mean_reduction, &learning_rates[0],
                                     n_epochs, &losses_out[0], signal_interval, &completed,
                                     &status, &good_epoch, resume_known_good, &raised)
        if tiny:
            hand_over(raised, signal_exceptions)
            # an update that diverged in parameters counts as a step, as below
            return completed, status, first_step + good_epoch + 1, good_epoch
    if (not tiny and scratch is not None
            and takes_hidden_layer_split(&optimizer, batch_rows, &sizes[0], &activations[0],
                                         n_layers, sizeof(floating))
            and scratch.shape[0] >= hidden_layer_scratch_values(batch_rows, &sizes[0], gather,
                                                                weighted)):
        run = <HiddenLayerRun*>malloc(sizeof(HiddenLayerRun))
        split_hidden = run != NULL
    if split_hidden:
        set_up_hidden_layer_run(run, X, Y, sample_weight, batch_size, params, sizes,
                                activations, loss, mean_reduction, X_batch, Y_batch,
                                weight_batch, A_work, delta_work, scratch, signal_interval)
        parts = gemm_parts(batch_rows, sizes[1], sizes[0], 16 if floating is float else 8)
    with nogil:
        # the fused step's weights' update, or the gradient
        set_blas_splits(blas_splits_products(
            min(batch_size, n_samples), &sizes[0], n_layers, True,
            -learning_rates[0] if fused_sgd and n_epochs > 0 else 1.0,
            1.0 if fused_sgd else 0.0, sizeof(floating)))
        if not resume_known_good:
            memcpy(known_good, &params[0], n_params * sizeof(floating))
        memcpy(epoch_start, &params[0], n_params * sizeof(floating))
        for epoch in range(n_epochs):
            epoch_sum = 0.0
            epoch_weight = 0.0
            start = 0
            if split_hidden:
                run.order = &orders[epoch, 0] if gather else NULL
                run.check_inputs = check_inputs and epoch == 0
                run.learning_rate = learning_rates[epoch]
                run.until_signal_check = until_signal_check
                run.stop = False
                run.batches = 0
                run.epoch_sum = 0.0
                run.epoch_weight = 0.0
                run.first_batch_finite = False
                run.losses_finite = True
                run.status = COMPLETED
                barrier_init(&run.barrier, parts)
                if parts < 2 or not run_parts_at_once(hidden_layer_task, run, parts):
                    # the same bits from one part as from several
                    barrier_init(&run.barrier, 1)
                    hidden_layer_task(run, 0, 1)
                if run.first_batch_finite:
                    swap = known_good
                    known_good = epoch_start
                    epoch_start = swap
                    good_epoch = epoch
                epoch_sum = run.epoch_sum
                epoch_weight = run.epoch_weight
                step += run.batches
                until_signal_check = run.until_signal_check
                finite = run.losses_finite
                status = run.status
                # every batch done, or the loop below skipped
                start = n_samples
            while start < n_samples:
                n_rows = min(batch_size, n_samples - start)
                if gather:
                    gather_rows(&X[0, 0], &orders[epoch, start], n_rows, n_features,
                                &X_batch[0, 0])
                    gather_rows(&Y[0, 0], &orders[epoch, start], n_rows, n_outputs,
                                &Y_batch[0, 0])
                    X_rows = &X_batch[0, 0]
                    Y_rows = &Y_batch[0, 0]
                    if weighted:
                        gather_rows(&sample_weight[0], &orders[epoch, start], n_rows, 1,
                                    &weight_batch[0])
                        w_rows = &weight_batch[0]
                else:
                    X_rows = &X[start, 0]
                    Y_rows = &Y[start, 0]
                    if weighted:
                        w_rows = &sample_weight[start]
                if check_inputs and epoch == 0 and not all_finite(X_rows, NULL,
                                                                  n_rows * n_features):
                    status = INPUT_NOT_FINITE
                    break
                batch_weight = n_rows
                if weighted:
                    batch_weight = 0.0
                    for r in range(n_rows):
                        batch_weight += w_rows[r]
                scale = 1.0
                if mean_reduction:
                    scale = 1.0 / batch_weight if batch_weight > 0 else 0.0
                if fused_sgd:
                    # The step is taken here already; a non-finite loss below
                    # still restores the last known good parameters.
                    if not (tiny and tiny_step(X_rows, Y_rows, n_rows, &sizes[0], &params[0],
                                               scale, <floating>learning_rates[epoch],
                                               &batch_sum)):
                        batch_sum = backpropagate_and_step(
                            X_rows, Y_rows, w_rows, n_rows, &params[0], &sizes[0],
                            &activations[0], n_layers, loss, scale, learning_rates[epoch],
                            &A_work[0], &delta_work[0], &grads[0])
                    batch_penalty = 0.0
                else:
                    batch_sum = backpropagate(X_rows, Y_rows, w_rows, n_rows, &params[0],
                                              &sizes[0], &activations[0], n_layers, loss,
                                              scale, &A_work[0], &delta_work[0], &grads[0])
                    batch_penalty = weight_penalty(&params[0], &sizes[0], n_layers,
                                                   optimizer.weight_decay)
                finite = isfinite(batch_sum) and isfinite(batch_penalty)
                if not finite:
                    break
                if start == 0:
                    # These parameters just gave a finite loss: the two rows
                    # trade roles, and the next epoch's start overwrites the
                    # old known good.
                    swap = known_good
                    known_good = epoch_start
                    epoch_start = swap
                    good_epoch = epoch
                if mean_reduction:
                    epoch_sum += batch_sum + batch_weight * batch_penalty
                else:
                    epoch_sum += batch_sum + batch_penalty
                epoch_weight += batch_weight
                step += 1
                if not fused_sgd:
                    add_weight_decay(&params[0], &grads[0], &sizes[0], n_layers,
                                     optimizer.weight_decay)
                    update(&optimizer, &params[0], &grads[0], state_ptr, n_params,
                           learning_rates[epoch], step)
                start += n_rows
                until_signal_check -= 1
                if until_signal_check == 0:
                    until_signal_check = signal_interval
                    if signal_handler_raised(&raised):
                        status = INTERRUPTED
                        break
            if status == INTERRUPTED or status == INPUT_NOT_FINITE:
                break
            # The check also copies the parameters to where the next epoch
            # keeps its start: after this epoch's first batch, that row is
            # the old known good, no longer needed. When the check fails,
            # the copy (not finite) is never read: params go back to known
            # good.
            finite = finite and all_finite(&params[0], epoch_start, n_params)
            if not finite:
                memcpy(&params[0], known_good, n_params * sizeof(floating))
                losses_out[epoch] = NAN
                status = DIVERGED
                break
            if mean_reduction:
                losses_out[epoch] = epoch_sum / epoch_weight if epoch_weight > 0 else 0.0
            else:
                losses_out[epoch] = epoch_sum
            completed = epoch + 1
        if status != DIVERGED and known_good != &params_backup[1, 0]:
            memcpy(&params_backup[1, 0], known_good, n_params * sizeof(floating))
        set_blas_splits(False)
    if run != NULL:
        if run.raised != NULL:
            raised = run.raised
        free(run)
    hand_over(raised, signal_exceptions)
    return completed, status, step, good_epoch
