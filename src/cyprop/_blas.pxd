"""Row-major matrix products on BLAS, the one place that chooses float or double.

BLAS is column-major. A row-major matrix M is the column-major matrix M.T, so
the row-major product C = op(A) @ op(B) is computed as the column-major
product C.T = op(B).T @ op(A).T: the operands trade places and nothing is
copied.
"""

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm(bint transpose_a, bint transpose_b, int m, int n, int k,
                      double alpha, const floating* A, int lda,
                      const floating* B, int ldb, double beta,
                      floating* C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, row-major; op(A) is (m, k), op(B) is (k, n)."""
    cdef char trans_a = b'T' if transpose_a else b'N'
    cdef char trans_b = b'T' if transpose_b else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    if floating is float:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &alpha_f, <float*>B, &ldb,
              <float*>A, &lda, &beta_f, C, &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <double*>B, &ldb,
              <double*>A, &lda, &beta, C, &ldc)
