"""The math functions in one fused type: float32 kernels call the float
functions (expf, ...), which cost about half of the double ones they would
otherwise be promoted to, and lose nothing at float32's precision. The
sigmoid over an array has its own vectorized exp, and the finiteness check
over an array is vectorized too (_vector_math.h)."""

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf


cdef inline floating exp_(floating x) noexcept nogil:
    """e ** x."""
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating tanh_(floating x) noexcept nogil:
    """tanh(x)."""
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef extern from "_vector_math.h" nogil:
    void sigmoid_double "cyprop_sigmoid_d"(double* Z, Py_ssize_t n)
    void sigmoid_float "cyprop_sigmoid_f"(float* Z, Py_ssize_t n)
    bint all_finite_double "cyprop_all_finite_d"(const double* values, double* copy_out,
                                                 Py_ssize_t n)
    bint all_finite_float "cyprop_all_finite_f"(const float* values, float* copy_out,
                                                Py_ssize_t n)
    void sigmoid_backward_double "cyprop_sigmoid_backward_d"(const double* A, double* delta,
                                                            Py_ssize_t n)
    void sigmoid_backward_float "cyprop_sigmoid_backward_f"(const float* A, float* delta,
                                                           Py_ssize_t n)


cdef inline void sigmoid_in_place(floating* Z, Py_ssize_t n) noexcept nogil:
    """Z = 1 / (1 + exp(-Z)) over n values, vectorized (_vector_math.h)."""
    if floating is float:
        sigmoid_float(Z, n)
    else:
        sigmoid_double(Z, n)


cdef inline bint all_finite(const floating* values, floating* copy_out,
                            Py_ssize_t n) noexcept nogil:
    """True when no value is NaN or infinite; copy_out, unless NULL, receives the
    values from the same pass (_vector_math.h)."""
    if floating is float:
        return all_finite_float(values, copy_out, n)
    else:
        return all_finite_double(values, copy_out, n)


cdef inline void sigmoid_backward(const floating* A, floating* delta,
                                  Py_ssize_t n) noexcept nogil:
    """delta = delta * A (1 - A) over n values, vectorized (_vector_math.h)."""
    if floating is float:
        sigmoid_backward_float(A, delta, n)
    else:
        sigmoid_backward_double(A, delta, n)
