"""The whole SGD step of a tiny network on AVX2 registers with fused multiply-adds
(_tiny_step.h), in one fused type: backpropagate_and_step's results to rounding."""

from cython cimport floating


cdef extern from "_tiny_step.h" nogil:
    bint tiny_step_double "cyprop_tiny_step_d"(
        const double* X, const double* Y, Py_ssize_t n_rows, const Py_ssize_t* sizes,
        double* params, double scale, double rate, double* loss_out)
    bint tiny_step_float "cyprop_tiny_step_f"(
        const float* X, const float* Y, Py_ssize_t n_rows, const Py_ssize_t* sizes,
        float* params, double scale, float rate, double* loss_out)


cdef inline bint tiny_step(const floating* X, const floating* Y, Py_ssize_t n_rows,
                           const Py_ssize_t* sizes, floating* params, double scale,
                           floating rate, double* loss_out) noexcept nogil:
    """One plain SGD step of a 2-layer sigmoid network trained on the squared
    error, every size and n_rows at most 4, with the batch's loss in loss_out;
    False, with nothing touched, when the CPU lacks AVX2 or FMA and the caller
    must take the step."""
    if floating is float:
        return tiny_step_float(X, Y, n_rows, sizes, params, scale, rate, loss_out)
    else:
        return tiny_step_double(X, Y, n_rows, sizes, params, scale, rate, loss_out)


cdef extern from "_tiny_step.h" nogil:
    bint tiny_epochs_double "cyprop_tiny_epochs_d"(
        const double* X, const double* Y, Py_ssize_t n_rows, const Py_ssize_t* sizes,
        double* params, double* rows, double scale, bint mean, const double* rates,
        Py_ssize_t n_epochs, double* losses, Py_ssize_t* completed, int* status)
    bint tiny_epochs_float "cyprop_tiny_epochs_f"(
        const float* X, const float* Y, Py_ssize_t n_rows, const Py_ssize_t* sizes,
        float* params, float* rows, double scale, bint mean, const double* rates,
        Py_ssize_t n_epochs, double* losses, Py_ssize_t* completed, int* status)


cdef inline bint tiny_epochs(const floating* X, const floating* Y, Py_ssize_t n_rows,
                             const Py_ssize_t* sizes, floating* params, floating* rows,
                             double scale, bint mean, const double* rates, Py_ssize_t n_epochs,
                             double* losses, Py_ssize_t* completed, int* status) noexcept nogil:
    """Up to n_epochs epochs of full-batch plain SGD on the network tiny_step takes,
    each one step on all n_rows rows (cyprop_tiny_epochs_d in _tiny_step.h says how
    rows, completed and status are used); False, with nothing touched, when the CPU
    lacks AVX2 or FMA."""
    if floating is float:
        return tiny_epochs_float(X, Y, n_rows, sizes, params, rows, scale, mean, rates,
                                 n_epochs, losses, completed, status)
    else:
        return tiny_epochs_double(X, Y, n_rows, sizes, params, rows, scale, mean, rates,
                                  n_epochs, losses, completed, status)


cdef extern from "_tiny_step.h" nogil:
    bint tiny_sigmoid_double "cyprop_tiny_sigmoid_d"(double* Z, Py_ssize_t n)
    bint tiny_sigmoid_float "cyprop_tiny_sigmoid_f"(float* Z, Py_ssize_t n)


cdef inline bint tiny_sigmoid(floating* Z, Py_ssize_t n) noexcept nogil:
    """Z = the tiny step's sigmoid of Z, in place; False, with Z untouched, when the
    CPU lacks AVX2 or FMA."""
    if floating is float:
        return tiny_sigmoid_float(Z, n)
    else:
        return tiny_sigmoid_double(Z, n)
