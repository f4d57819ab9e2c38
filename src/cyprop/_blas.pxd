"""Row-major matrix products on BLAS, the one place that chooses float or double.

BLAS is column-major. A row-major matrix M is the column-major matrix M.T, so
the row-major product C = op(A) @ op(B) is computed as the column-major
product C.T = op(B).T @ op(A).T: the operands trade places and nothing is
copied.

The products go through four function pointers, which start at scipy's BLAS
(scipy.linalg.cython_blas) and which cyprop._blas_library may point at
another BLAS with the same Fortran interface when the package is imported:
a newer OpenBLAS ran some of the core's sgemm shapes a fifth or more
faster than scipy's own (benchmarks/README.md, item 12).
"""

from cython cimport floating

ctypedef void (*sgemm_t)(char* transa, char* transb, int* m, int* n, int* k, float* alpha,
                         float* a, int* lda, float* b, int* ldb, float* beta, float* c,
                         int* ldc) noexcept nogil
ctypedef void (*dgemm_t)(char* transa, char* transb, int* m, int* n, int* k, double* alpha,
                         double* a, int* lda, double* b, int* ldb, double* beta, double* c,
                         int* ldc) noexcept nogil
ctypedef void (*sgemv_t)(char* trans, int* m, int* n, float* alpha, float* a, int* lda,
                         float* x, int* incx, float* beta, float* y, int* incy) noexcept nogil
ctypedef void (*dgemv_t)(char* trans, int* m, int* n, double* alpha, double* a, int* lda,
                         double* x, int* incx, double* beta, double* y, int* incy) noexcept nogil

# A standalone .pxd cannot define variables: these are C statics of the one
# module that cimports this file (_core), set when it is imported. Another
# module cimporting it would get its own copies, NULL until it set them.
cdef extern from *:
    """
    static void *cyprop_blas_sgemm = 0, *cyprop_blas_dgemm = 0;
    static void *cyprop_blas_sgemv = 0, *cyprop_blas_dgemv = 0;
    static void cyprop_set_blas(void *sgemm, void *dgemm, void *sgemv, void *dgemv) {
        cyprop_blas_sgemm = sgemm;
        cyprop_blas_dgemm = dgemm;
        cyprop_blas_sgemv = sgemv;
        cyprop_blas_dgemv = dgemv;
    }
    """
    void set_blas "cyprop_set_blas"(void* sgemm, void* dgemm, void* sgemv,
                                    void* dgemv) noexcept nogil
    void* blas_sgemm "cyprop_blas_sgemm"
    void* blas_dgemm "cyprop_blas_dgemm"
    void* blas_sgemv "cyprop_blas_sgemv"
    void* blas_dgemv "cyprop_blas_dgemv"


cdef extern from "_gemm_avx512.h" nogil:
    bint gemm_avx512_float "cyprop_gemm_s"(
        bint transpose_a, bint transpose_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
        float alpha, const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
        float beta, float* C, Py_ssize_t ldc)
    bint gemm_avx512_double "cyprop_gemm_d"(
        bint transpose_a, bint transpose_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
        double alpha, const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
        double beta, double* C, Py_ssize_t ldc)
    bint gemm_fits "cyprop_gemm_fits"(bint transpose_a, bint transpose_b, Py_ssize_t m,
                                      Py_ssize_t n, Py_ssize_t k, double alpha, double beta,
                                      Py_ssize_t width)
    int gemm_parts "cyprop_gemm_parts"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                       Py_ssize_t width)
    void gemm_alone_float "cyprop_gemm_s_alone"(
        bint transpose_a, bint transpose_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
        float alpha, const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
        float beta, float* C, Py_ssize_t ldc)
    void gemm_alone_double "cyprop_gemm_d_alone"(
        bint transpose_a, bint transpose_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
        double alpha, const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
        double beta, double* C, Py_ssize_t ldc)
    bint gemm_available "cyprop_gemm_available"()
    void gemm_part_columns "cyprop_gemm_part_columns"(Py_ssize_t n, Py_ssize_t width, int part,
                                                      int parts, Py_ssize_t* j0,
                                                      Py_ssize_t* j1)
    enum:
        GEMM_ROWS "CYPROP_GEMM_ROWS"
        GEMM_MAX_STEP_ROWS "CYPROP_GEMM_MAX_STEP_ROWS"
        GEMM_MAX_STEP "CYPROP_GEMM_MAX_STEP"
    void set_blas_splits "cyprop_gemm_set_blas_splits"(bint splits)
    void set_all_products "cyprop_gemm_set_all_products"(bint all_products)
    bint gemm_takes_all "cyprop_gemm_takes_all"()
    bint cpu_has_full_width_avx512 "cyprop_cpu_has_full_width_avx512"()
    void set_blas_threads "cyprop_set_blas_threads"(void* function)
    void* blas_threads "cyprop_blas_threads"


cdef extern from "_parallel.h" nogil:
    int pool_workers "cyprop_pool_workers"()
    void pool_rest "cyprop_pool_rest"()
    enum:
        MAX_PARTS "CYPROP_MAX_PARTS"
    ctypedef void (*part_task "cyprop_part_t")(void* args, int part, int parts) noexcept nogil
    bint run_parts_at_once "cyprop_run_parts_at_once"(part_task task, void* args, int parts)
    ctypedef struct barrier_t "cyprop_barrier_t":
        pass
    void barrier_init "cyprop_barrier_init"(barrier_t* barrier, int parts)
    void barrier_wait "cyprop_barrier_wait"(barrier_t* barrier)
    ctypedef struct blocks_t "cyprop_blocks_t":
        pass
    void blocks_reset "cyprop_blocks_reset"(blocks_t* blocks, int count)
    int blocks_take "cyprop_blocks_take"(blocks_t* blocks, bint from_back)
    unsigned long blocks_moved_count "cyprop_blocks_moved_count"()


cdef inline void gemm_alone(bint transpose_a, bint transpose_b, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, floating alpha, const floating* A, Py_ssize_t lda,
                            const floating* B, Py_ssize_t ldb, floating beta, floating* C,
                            Py_ssize_t ldc) noexcept nogil:
    """C = alpha op(A) @ op(B) + beta C on the AVX-512 kernel, on the calling
    thread alone, whatever the shapes; only where gemm_available()."""
    if floating is float:
        gemm_alone_float(transpose_a, transpose_b, m, n, k, alpha, A, lda, B, ldb, beta, C,
                         ldc)
    else:
        gemm_alone_double(transpose_a, transpose_b, m, n, k, alpha, A, lda, B, ldb, beta, C,
                          ldc)


# OpenBLAS runs a gemm on one thread below 4 * 65,536 multiply-adds
# (GEMM_MULTITHREAD_THRESHOLD times SMP_THRESHOLD_MIN in its interface/gemm.c),
# and a gemv below 4 * 2,304 entries of its matrix (interface/gemv.c).
cdef enum:
    BLAS_SPLITS_FROM = 262144
    BLAS_GEMV_SPLITS_FROM = 9216


cdef inline void gemv(bint transpose, int m, int n, double alpha, const floating* A, int lda,
                      const floating* x, int incx, double beta, floating* y,
                      int incy) noexcept nogil:
    """y = alpha * op(A) @ x + beta * y, with A column-major (m, n): BLAS's own order."""
    cdef char trans = b'T' if transpose else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    # as before gemm, below
    if <Py_ssize_t>m * n >= BLAS_GEMV_SPLITS_FROM:
        pool_rest()
    if floating is float:
        (<sgemv_t>blas_sgemv)(&trans, &m, &n, &alpha_f, <float*>A, &lda, <float*>x, &incx,
                              &beta_f, y, &incy)
    else:
        (<dgemv_t>blas_dgemv)(&trans, &m, &n, &alpha, <double*>A, &lda, <double*>x, &incx,
                              &beta, y, &incy)


cdef inline bint matrix_vector(bint transpose_b, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Whether gemm hands a product with C (m, n) straight to gemv: a single
    column of C, or a single row but for a @ B where the AVX-512 kernel takes
    every product; the kernel then takes it from its own threads, rather
    than waking BLAS's, which would spin on the cores the kernel's next
    products need."""
    return n == 1 or (m == 1 and (transpose_b or not gemm_takes_all()))


cdef inline void gemm(bint transpose_a, bint transpose_b, int m, int n, int k,
                      double alpha, const floating* A, int lda,
                      const floating* B, int ldb, double beta,
                      floating* C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, row-major; op(A) is (m, k), op(B) is (k, n).

    A single row or column of C is a matrix-vector product: gemv, which
    OpenBLAS runs several times faster than gemm on such shapes (one sample
    through a 1024-wide layer: benchmarks/README.md, inference), unless the
    kernel takes it (matrix_vector says which it may).
    """
    cdef char trans_a = b'T' if transpose_a else b'N'
    cdef char trans_b = b'T' if transpose_b else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    # A minibatch's forward product or weights' step (or, where the kernel takes
    # every product, a delta times the weights transposed, or a single row):
    # the AVX-512 kernel where it takes it (_gemm_avx512.h).
    if not matrix_vector(transpose_b, m, n):
        if floating is float:
            if gemm_avx512_float(transpose_a, transpose_b, m, n, k, alpha_f, A, lda, B, ldb,
                                 beta_f, C, ldc):
                return
        else:
            if gemm_avx512_double(transpose_a, transpose_b, m, n, k, alpha, A, lda, B, ldb,
                                  beta, C, ldc):
                return
    if m == 1:
        # c = a @ op(B); a is a row of A (stride 1) or a column of A.T (stride
        # lda). Row-major B (k, n) is column-major (n, k): c = B_col @ a, or
        # B_col.T @ a.
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
    # BLAS may split this product between its threads: the kernel's workers
    # stop spinning for their next part and leave it the cores.
    if <Py_ssize_t>m * n * k >= BLAS_SPLITS_FROM:
        pool_rest()
    if floating is float:
        (<sgemm_t>blas_sgemm)(&trans_b, &trans_a, &n, &m, &k, &alpha_f, <float*>B, &ldb,
                              <float*>A, &lda, &beta_f, C, &ldc)
    else:
        (<dgemm_t>blas_dgemm)(&trans_b, &trans_a, &n, &m, &k, &alpha, <double*>B, &ldb,
                              <double*>A, &lda, &beta, C, &ldc)
