"""Numeric kernels of cyprop: numbers in, numbers out, over preallocated buffers.

In the order of the algorithm:

1. activations and their derivatives, written from the activation's output;
2. the loss and the output layer's delta;
3. the forward pass;
4. the backward pass;
5. the SGD update;
6. the minibatch gather;
7. the training loop, whole epochs in one call.

Every kernel trusts its arguments: ``cyprop.network`` checked shapes, dtypes,
finiteness and sizes before calling. Nothing here raises for user input or
allocates in a loop.

Memory layout, shared with ``cyprop.network``:

- ``sizes`` holds the layer sizes, input first: ``(n_features, ..., n_outputs)``.
  Layer ``l`` maps ``sizes[l]`` (fan_in) to ``sizes[l + 1]`` (fan_out).
- ``params`` is one flat buffer: for each layer in turn, ``W`` (fan_in x
  fan_out, row-major) then ``b`` (fan_out). Gradients use the same layout.
- An activation buffer for a batch of ``n_rows`` holds each layer's output
  ``A`` (n_rows x fan_out, row-major), layer after layer; deltas likewise.
"""

from cython cimport floating
from libc.math cimport NAN, exp, isfinite, tanh
from libc.string cimport memcpy, memset

from cyprop._blas cimport gemm


cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3

cdef enum:
    MSE = 0

ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}
LOSSES = {"mse": MSE}

# Below this many multiply-adds a product runs in plain loops: the BLAS call
# costs more than the arithmetic for layers as small as the lesson's 3-4-1.
cdef enum:
    BLAS_MIN_MULTIPLY_ADDS = 4096


# --- 1. Activations, each followed by its derivative from the output ------

cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)); exp overflows to inf for z < -709, giving exactly 0."""
    return 1.0 / (1.0 + exp(-z))

cdef inline floating sigmoid_derivative(floating a) noexcept nogil:
    """a (1 - a), the lesson's sigmoid_derivative."""
    return a * (1 - a)

cdef inline floating tanh_derivative(floating a) noexcept nogil:
    """1 - a^2."""
    return 1 - a * a

cdef inline floating relu(floating z) noexcept nogil:
    """max(z, 0)."""
    return z if z > 0 else 0

cdef inline floating relu_derivative(floating a) noexcept nogil:
    """1 where a > 0, else 0."""
    return 1 if a > 0 else 0


cdef void add_bias_and_activate(floating* Z, const floating* b, Py_ssize_t n_rows,
                                Py_ssize_t fan_out, int activation) noexcept nogil:
    """A = f(Z + b), in place over the rows of Z."""
    cdef Py_ssize_t i, j
    cdef floating* row
    for i in range(n_rows):
        row = Z + i * fan_out
        if activation == SIGMOID:
            for j in range(fan_out):
                row[j] = sigmoid(row[j] + b[j])
        elif activation == TANH:
            for j in range(fan_out):
                row[j] = tanh(row[j] + b[j])
        elif activation == RELU:
            for j in range(fan_out):
                row[j] = relu(row[j] + b[j])
        else:
            for j in range(fan_out):
                row[j] = row[j] + b[j]


cdef void multiply_by_derivative(const floating* A, floating* delta, Py_ssize_t n,
                                 int activation) noexcept nogil:
    """delta *= f'(A), with f' written from the activation's output A."""
    cdef Py_ssize_t i
    if activation == SIGMOID:
        for i in range(n):
            delta[i] = delta[i] * sigmoid_derivative(A[i])
    elif activation == TANH:
        for i in range(n):
            delta[i] = delta[i] * tanh_derivative(A[i])
    elif activation == RELU:
        for i in range(n):
            delta[i] = delta[i] * relu_derivative(A[i])


# --- 2. The loss and the output delta --------------------------------------

cdef double output_delta(const floating* A, const floating* Y, floating* delta,
                         Py_ssize_t n, int activation, int loss,
                         double scale) noexcept nogil:
    """delta = scale * dl/dZ for the output layer; returns sum over samples of l.

    For mse, l = 1/2 sum_k (a_k - y_k)^2 per sample, so dl/dZ = (A - Y) f'(A),
    the lesson's output_layer_gradient when scale is 1.
    """
    cdef Py_ssize_t i
    cdef double total = 0.0
    cdef floating error, scale_f = <floating>scale
    for i in range(n):
        error = A[i] - Y[i]
        total += <double>error * error
        delta[i] = error
    multiply_by_derivative(A, delta, n, activation)
    if scale != 1.0:
        for i in range(n):
            delta[i] = delta[i] * scale_f
    return 0.5 * total


cdef double batch_loss(const floating* A, const floating* Y, Py_ssize_t n,
                       int loss) noexcept nogil:
    """Sum over samples of the per-sample loss l, for outputs A and targets Y."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    cdef floating error
    for i in range(n):
        error = A[i] - Y[i]
        total += <double>error * error
    return 0.5 * total


# --- 3. Forward ----------------------------------------------------------

cdef void dense_forward(const floating* A_prev, const floating* W, const floating* b,
                        floating* A, Py_ssize_t n_rows, Py_ssize_t fan_in,
                        Py_ssize_t fan_out, int activation) noexcept nogil:
    """A = f(A_prev @ W + b); A_prev is (n_rows, fan_in), W is (fan_in, fan_out)."""
    cdef Py_ssize_t i, p, j
    cdef floating a
    cdef floating* row
    # Z = A_prev @ W
    if n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS:
        gemm(False, False, <int>n_rows, <int>fan_out, <int>fan_in, 1.0,
             A_prev, <int>fan_in, W, <int>fan_out, 0.0, A, <int>fan_out)
    else:
        memset(A, 0, n_rows * fan_out * sizeof(floating))
        for i in range(n_rows):
            row = A + i * fan_out
            for p in range(fan_in):
                a = A_prev[i * fan_in + p]
                for j in range(fan_out):
                    row[j] += a * W[p * fan_out + j]
    add_bias_and_activate(A, b, n_rows, fan_out, activation)


cdef void forward_pass(const floating* X, Py_ssize_t n_rows, const floating* params,
                       const Py_ssize_t* sizes, const int* activations,
                       Py_ssize_t n_layers, floating* A) noexcept nogil:
    """Every layer's activations for the rows of X, written layer after layer into A."""
    cdef Py_ssize_t l, fan_in, fan_out
    cdef const floating* A_prev = X
    for l in range(n_layers):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        dense_forward(A_prev, params, params + fan_in * fan_out, A,
                      n_rows, fan_in, fan_out, activations[l])
        params += fan_in * fan_out + fan_out
        A_prev = A
        A += n_rows * fan_out


# --- 4. Backward ---------------------------------------------------------

cdef void dense_backward(const floating* A_prev, const floating* W, const floating* delta,
                         floating* dW, floating* db, floating* delta_prev,
                         Py_ssize_t n_rows, Py_ssize_t fan_in,
                         Py_ssize_t fan_out) noexcept nogil:
    """Gradients of one layer from its delta, and the delta before its activation
    derivative for the layer below (skipped when delta_prev is NULL)."""
    cdef Py_ssize_t i, p, j
    cdef floating a, s
    cdef floating* dW_row
    cdef const floating* delta_row
    cdef bint large = n_rows * fan_in * fan_out >= BLAS_MIN_MULTIPLY_ADDS
    # dW = A_prev.T @ delta
    if large:
        gemm(True, False, <int>fan_in, <int>fan_out, <int>n_rows, 1.0,
             A_prev, <int>fan_in, delta, <int>fan_out, 0.0, dW, <int>fan_out)
    else:
        memset(dW, 0, fan_in * fan_out * sizeof(floating))
        for i in range(n_rows):
            delta_row = delta + i * fan_out
            for p in range(fan_in):
                a = A_prev[i * fan_in + p]
                dW_row = dW + p * fan_out
                for j in range(fan_out):
                    dW_row[j] += a * delta_row[j]
    # db = delta.sum(axis=0)
    memset(db, 0, fan_out * sizeof(floating))
    for i in range(n_rows):
        delta_row = delta + i * fan_out
        for j in range(fan_out):
            db[j] += delta_row[j]
    if delta_prev == NULL:
        return
    # delta_prev = delta @ W.T
    if large:
        gemm(False, True, <int>n_rows, <int>fan_in, <int>fan_out, 1.0,
             delta, <int>fan_out, W, <int>fan_out, 0.0, delta_prev, <int>fan_in)
    else:
        for i in range(n_rows):
            delta_row = delta + i * fan_out
            for p in range(fan_in):
                s = 0
                for j in range(fan_out):
                    s += delta_row[j] * W[p * fan_out + j]
                delta_prev[i * fan_in + p] = s


cdef double backpropagate(const floating* X, const floating* Y, Py_ssize_t n_rows,
                          const floating* params, const Py_ssize_t* sizes,
                          const int* activations, Py_ssize_t n_layers, int loss,
                          double scale, floating* A, floating* delta,
                          floating* grads) noexcept nogil:
    """Forward and backward over one batch: grads = scale * d(sum of l)/d(params).

    Returns the batch's sum of per-sample losses, unscaled.
    """
    cdef Py_ssize_t l, fan_in, fan_out, n_params = 0, n_units = 0, unit_offset, w_offset
    cdef double loss_sum
    cdef const floating* A_prev
    cdef floating* delta_out
    cdef floating* delta_prev
    for l in range(n_layers):
        n_params += sizes[l] * sizes[l + 1] + sizes[l + 1]
        n_units += sizes[l + 1]

    forward_pass(X, n_rows, params, sizes, activations, n_layers, A)

    fan_out = sizes[n_layers]
    unit_offset = n_units - fan_out
    delta_out = delta + n_rows * unit_offset
    loss_sum = output_delta(A + n_rows * unit_offset, Y, delta_out, n_rows * fan_out,
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
        dense_backward(A_prev, params + w_offset, delta_out, grads + w_offset,
                       grads + w_offset + fan_in * fan_out, delta_prev,
                       n_rows, fan_in, fan_out)
        if l > 0:
            multiply_by_derivative(A_prev, delta_prev, n_rows * fan_in, activations[l - 1])
        delta_out = delta_prev
    return loss_sum


# --- 5. Update -----------------------------------------------------------

cdef void sgd_update(floating* params, const floating* grads, Py_ssize_t n,
                     double learning_rate) noexcept nogil:
    """params -= learning_rate * grads."""
    cdef Py_ssize_t i
    cdef floating rate = <floating>learning_rate
    for i in range(n):
        params[i] -= rate * grads[i]


cdef bint all_finite(const floating* values, Py_ssize_t n) noexcept nogil:
    """True when no value is NaN or infinite."""
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(values[i]):
            return False
    return True


# --- 6. Minibatch gather -------------------------------------------------

cdef void gather_rows(const floating* source, const Py_ssize_t* rows, Py_ssize_t n_rows,
                      Py_ssize_t n_columns, floating* out) noexcept nogil:
    """out[r] = source[rows[r]] for r < n_rows."""
    cdef Py_ssize_t r
    for r in range(n_rows):
        memcpy(out + r * n_columns, source + rows[r] * n_columns,
               n_columns * sizeof(floating))


# --- Entry points --------------------------------------------------------

def forward(const floating[:, ::1] X, const floating[::1] params,
            const Py_ssize_t[::1] sizes, const int[::1] activations,
            floating[::1] A_out):
    """Write every layer's activations for the rows of X into A_out, layer after layer."""
    with nogil:
        forward_pass(&X[0, 0], X.shape[0], &params[0], &sizes[0], &activations[0],
                     activations.shape[0], &A_out[0])


def loss_sum(const floating[:, ::1] X, const floating[:, ::1] Y,
             const floating[::1] params, const Py_ssize_t[::1] sizes,
             const int[::1] activations, int loss, floating[::1] A_work):
    """Sum over the rows of X of the per-sample loss."""
    cdef Py_ssize_t l, n_layers = activations.shape[0], n_hidden_units = 0
    cdef double total
    for l in range(1, n_layers):
        n_hidden_units += sizes[l]
    with nogil:
        forward_pass(&X[0, 0], X.shape[0], &params[0], &sizes[0], &activations[0],
                     n_layers, &A_work[0])
        total = batch_loss(&A_work[X.shape[0] * n_hidden_units], &Y[0, 0],
                           Y.shape[0] * Y.shape[1], loss)
    return total


def loss_gradient(const floating[:, ::1] X, const floating[:, ::1] Y,
                  const floating[::1] params, const Py_ssize_t[::1] sizes,
                  const int[::1] activations, int loss, double scale,
                  floating[::1] A_work, floating[::1] delta_work,
                  floating[::1] grads_out):
    """grads_out = scale * gradient of the summed loss over the rows of X; returns that sum."""
    cdef double total
    with nogil:
        total = backpropagate(&X[0, 0], &Y[0, 0], X.shape[0], &params[0], &sizes[0],
                              &activations[0], activations.shape[0], loss, scale,
                              &A_work[0], &delta_work[0], &grads_out[0])
    return total


def sgd_step(floating[::1] params, const floating[::1] grads, double learning_rate):
    """params -= learning_rate * grads, in place."""
    with nogil:
        sgd_update(&params[0], &grads[0], params.shape[0], learning_rate)


# --- 7. The training loop ------------------------------------------------

def train_epochs(const floating[:, ::1] X, const floating[:, ::1] Y,
                 const Py_ssize_t[:, ::1] orders, Py_ssize_t batch_size,
                 floating[::1] params, const Py_ssize_t[::1] sizes,
                 const int[::1] activations, int loss, bint mean_reduction,
                 double learning_rate, floating[:, ::1] X_batch,
                 floating[:, ::1] Y_batch, floating[::1] A_work,
                 floating[::1] delta_work, floating[::1] grads,
                 floating[::1] params_backup, double[::1] losses_out):
    """Minibatch SGD for len(losses_out) epochs, updating params in place.

    Epoch e visits the rows of X in the order orders[e], or in storage order
    when orders has no columns. losses_out[e] is the epoch's summed loss
    (divided by the number of samples under mean reduction), each batch
    measured before its update.

    Returns the number of epochs completed. Fewer than requested means the
    next epoch produced a non-finite loss or parameter: it is abandoned and
    params hold their values from its start, which are finite.
    """
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_outputs = Y.shape[1], n_layers = activations.shape[0]
    cdef Py_ssize_t n_params = params.shape[0], n_epochs = losses_out.shape[0]
    cdef Py_ssize_t epoch, start, n_rows, completed = 0
    cdef bint gather = orders.shape[1] > 0, finite = True
    cdef double scale, batch_sum, epoch_sum
    cdef const floating* X_rows
    cdef const floating* Y_rows
    cdef floating* X_gathered = NULL
    cdef floating* Y_gathered = NULL
    if gather:
        X_gathered = &X_batch[0, 0]
        Y_gathered = &Y_batch[0, 0]
    with nogil:
        for epoch in range(n_epochs):
            memcpy(&params_backup[0], &params[0], n_params * sizeof(floating))
            epoch_sum = 0.0
            start = 0
            while start < n_samples:
                n_rows = min(batch_size, n_samples - start)
                if gather:
                    gather_rows(&X[0, 0], &orders[epoch, start], n_rows, n_features,
                                X_gathered)
                    gather_rows(&Y[0, 0], &orders[epoch, start], n_rows, n_outputs,
                                Y_gathered)
                    X_rows = X_gathered
                    Y_rows = Y_gathered
                else:
                    X_rows = &X[start, 0]
                    Y_rows = &Y[start, 0]
                scale = 1.0 / n_rows if mean_reduction else 1.0
                batch_sum = backpropagate(X_rows, Y_rows, n_rows, &params[0], &sizes[0],
                                          &activations[0], n_layers, loss, scale,
                                          &A_work[0], &delta_work[0], &grads[0])
                finite = isfinite(batch_sum)
                if not finite:
                    break
                epoch_sum += batch_sum
                sgd_update(&params[0], &grads[0], n_params, learning_rate)
                start += n_rows
            finite = finite and all_finite(&params[0], n_params)
            if not finite:
                memcpy(&params[0], &params_backup[0], n_params * sizeof(floating))
                losses_out[epoch] = NAN
                break
            losses_out[epoch] = epoch_sum / n_samples if mean_reduction else epoch_sum
            completed = epoch + 1
    return completed
