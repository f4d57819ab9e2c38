"""Small matrix products on AVX2 vector registers (_vector_product.h), in one
fused type: the same bits as small_product's plain loops, several entries at
a time."""

from cython cimport floating


cdef extern from "_vector_product.h" nogil:
    bint vector_product_double "cyprop_vector_product_d"(
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, Py_ssize_t a_row,
        Py_ssize_t a_col, const double* B, Py_ssize_t b_row, double* C, const double* bias,
        bint subtract, double rate, bint sum_row)
    bint vector_product_float "cyprop_vector_product_f"(
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, Py_ssize_t a_row,
        Py_ssize_t a_col, const float* B, Py_ssize_t b_row, float* C, const float* bias,
        bint subtract, float rate, bint sum_row)


cdef inline bint vector_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* A,
                                Py_ssize_t a_row, Py_ssize_t a_col, const floating* B,
                                Py_ssize_t b_row, floating* C, const floating* bias,
                                bint subtract, floating rate, bint sum_row) noexcept nogil:
    """P = A @ B into C, as small_product does, for B with contiguous rows; False,
    with C untouched, when the CPU lacks AVX2 and the caller must compute it."""
    if floating is float:
        return vector_product_float(m, n, k, A, a_row, a_col, B, b_row, C, bias, subtract,
                                    rate, sum_row)
    else:
        return vector_product_double(m, n, k, A, a_row, a_col, B, b_row, C, bias, subtract,
                                     rate, sum_row)
