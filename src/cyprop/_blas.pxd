"""Row-major matrix products on BLAS, the one place that chooses float or double.

BLAS is column-major. A row-major matrix M is the column-major matrix M.T, so
the row-major product C = op(A) @ op(B) is computed as the column-major
product C.T = op(B).T @ op(A).T: the operands trade places and nothing is
copied.
"""

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv


cdef inline void gemv(bint transpose, int m, int n, double alpha, const floating* A, int lda,
                      const floating* x, int incx, double beta, floating* y,
                      int incy) noexcept nogil:
    """y = alpha * op(A) @ x + beta * y, with A column-major (m, n): BLAS's own order."""
    cdef char trans = b'T' if transpose else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    if floating is float:
        sgemv(&trans, &m, &n, &alpha_f, <float*>A, &lda, <float*>x, &incx, &beta_f, y, &incy)
    else:
        dgemv(&trans, &m, &n, &alpha, <double*>A, &lda, <double*>x, &incx, &beta, y, &incy)


cdef inline void gemm(bint transpose_a, bint transpose_b, int m, int n, int k,
                      double alpha, const floating* A, int lda,
                      const floating* B, int ldb, double beta,
                      floating* C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, row-major; op(A) is (m, k), op(B) is (k, n).

    A single row or column of C is a matrix-vector product: gemv, which
    OpenBLAS runs several times faster than gemm on such shapes (one sample
    through a 1024-wide layer: benchmarks/README.md, inference).
    """
    cdef char trans_a = b'T' if transpose_a else b'N'
    cdef char trans_b = b'T' if transpose_b else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    if m == 1:
        # c = a @ op(B); a is a row of A (stride 1) or a column of A.T (stride lda).
        # Row-major B (k, n) is column-major (n, k): c = B_col @ a, or B_col.T @ a.
        if transpose_b:
            gemv(True, k, n, alpha, B, ldb, A, lda if transpose_a else 1, beta, C, 1)
        else:
            gemv(False, n, k, alpha, B, ldb, A, lda if transpose_a else 1, beta, C, 1)
        return
    if n == 1:
        # c = op(A) @ b, written down column c of C (stride ldc).
        if transpose_a:
            gemv(False, m, k, alpha, A, lda, B, 1 if transpose_b else ldb, beta, C, ldc)
        else:
            gemv(True, k, m, alpha, A, lda, B, 1 if transpose_b else ldb, beta, C, ldc)
        return
    if floating is float:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &alpha_f, <float*>B, &ldb,
              <float*>A, &lda, &beta_f, C, &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <double*>B, &ldb,
              <double*>A, &lda, &beta, C, &ldc)
