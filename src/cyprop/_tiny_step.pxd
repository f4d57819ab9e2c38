"""The whole SGD step of a tiny network on AVX2 registers (_tiny_step.h), in one
fused type: the same bits as backpropagate_and_step."""

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
    False, with nothing touched, when the CPU lacks AVX2 and the caller must
    take the step."""
    if floating is float:
        return tiny_step_float(X, Y, n_rows, sizes, params, scale, rate, loss_out)
    else:
        return tiny_step_double(X, Y, n_rows, sizes, params, scale, rate, loss_out)
