/* Minibatch matrix products on AVX-512 vector registers, row-major:
 * C = alpha op(A) @ op(B) + beta C, with op(A) = A (m, k) or A.T for A
 * (k, m), op(B) = B (k, n) or B.T for B (n, k), and C (m, n). These are a
 * layer's forward product (A @ W), its weights' step (W -= rate * A_prev.T
 * @ delta) and its delta times its weights (delta @ W.T) on a minibatch.
 *
 * BLAS copies ("packs") both operands into its own layout before every
 * product, and the weights change after every minibatch, so on W3 (64 rows
 * a batch) OpenBLAS's copies took about a tenth of the training time
 * (benchmarks/README.md). Here the kernel holds a block of 8 rows and 3
 * vectors (48 floats or 24 doubles) of C in 24 of the 32 vector registers
 * and adds, for each p, op(A)[i, p] (broadcast) times row p of B. Only B is
 * copied, a block of 256 rows by 3 vectors at a time, into a buffer of the
 * thread's own, where it stays in the caches while every 8 rows of op(A)
 * pass. Each entry of C is one sum over p, in order from 0, of fused
 * multiply-adds: the same bits on every call, thread and CPU with AVX-512F
 * (BLAS sums long products in blocks, which rounds the last bits
 * differently).
 *
 * The core takes a product here only on CPUs with AVX-512F, when it knows
 * the thread count of the BLAS in use (that many threads share a large
 * enough product, as BLAS would split it), and for the shapes where it was
 * faster than OpenBLAS's AVX-512 kernels, or for every shape where BLAS runs
 * narrower kernels (cyprop_gemm_fits); CYPROP_DISABLE_AVX512=1 in the
 * environment leaves every product to BLAS. */
#ifndef CYPROP_GEMM_AVX512_H
#define CYPROP_GEMM_AVX512_H

#include <stddef.h>
#include <stdlib.h>

#include "_parallel.h"
#include "_vector_math.h"

/* The BLAS's thread count, from the library the products run on (cyprop's
 * OpenBLAS); NULL where it is not known, which leaves every product to BLAS. */
typedef int (*cyprop_threads_t)(void);
static cyprop_threads_t cyprop_blas_threads = 0;
static void cyprop_set_blas_threads(void* function) { cyprop_blas_threads = (cyprop_threads_t)function; }

/* The kernel's sizes, defined on every platform for the core's eligibility
 * tests, which then fail on cyprop_gemm_available() where there is no
 * kernel: rows of A per tile; the most rows a weights' step or gradient
 * sums over here (within one depth block, measured up to 128 rows); and the
 * most entries of C such a step writes. */
#define CYPROP_GEMM_ROWS 8
#define CYPROP_GEMM_MAX_STEP_ROWS 128
#define CYPROP_GEMM_MAX_STEP (1 << 18)

/* Where the core has AVX-512 code at all (_vector_math.h says why not
 * elsewhere): the copy of B is 64-byte aligned, and so are spilled vectors. */
#if defined(CYPROP_AVX512_CODE)
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>

#define CYPROP_GEMM_MAX_ROWS_FLOAT 256
#define CYPROP_GEMM_MAX_ROWS_DOUBLE 128
/* A @ B into C at most this many columns wide runs here over any number of
 * rows (cyprop_gemm_fits). */
#define CYPROP_GEMM_NARROW 256
#define CYPROP_GEMM_UNROLL _Pragma("GCC unroll 8")

/* Per type: the vector and its mask, lanes per vector, and the operations. */
#define S16_T float
#define S16_VEC __m512
#define S16_MASK __mmask16
#define S16_WIDTH 16
#define S16_SET1 _mm512_set1_ps
#define S16_ZERO _mm512_setzero_ps
#define S16_LOAD _mm512_maskz_loadu_ps
#define S16_STORE _mm512_mask_storeu_ps
#define S16_LOADU _mm512_loadu_ps
#define S16_STOREU _mm512_storeu_ps
#define S16_FMADD _mm512_fmadd_ps
#define S16_MUL _mm512_mul_ps

#define D8_T double
#define D8_VEC __m512d
#define D8_MASK __mmask8
#define D8_WIDTH 8
#define D8_SET1 _mm512_set1_pd
#define D8_ZERO _mm512_setzero_pd
#define D8_LOAD _mm512_maskz_loadu_pd
#define D8_STORE _mm512_mask_storeu_pd
#define D8_LOADU _mm512_loadu_pd
#define D8_STOREU _mm512_storeu_pd
#define D8_FMADD _mm512_fmadd_pd
#define D8_MUL _mm512_mul_pd

/* Rows of B taken at a time: the copy of a block of B, CYPROP_GEMM_DEPTH rows
 * of 3 vectors (48 KB), stays in the L1 and L2 caches while every 8 rows of
 * op(A) use it. With 256 rows rather than 128 each tile of C leaves the
 * registers half as often: on a Zen 4 EPYC, W4's forward product (256 x
 * 1,024 by 1,024 x 1,024) ran 3% faster in a C loop and W4's training 1.2%
 * faster; W3's forward product (64 x 784 by 784 x 256) 1% slower in the C
 * loop, and W3's training the same (benchmarks/README.md). */
#define CYPROP_GEMM_DEPTH 256

/* The copy of B is as many bytes in either type: 256 rows of 3 vectors of
 * 64 bytes. Each thread that runs the kernel gets its own copy buffer on
 * its first product, kept until the thread ends. On the stack, those 48 KB
 * overflowed threads started with small stacks (threading.stack_size(48 KB)
 * still runs numpy's products), and musl gives threads 128 KB. */
#define CYPROP_GEMM_COPY_BYTES (CYPROP_GEMM_DEPTH * 3 * 64)
static pthread_key_t cyprop_gemm_copy_key;
static pthread_once_t cyprop_gemm_copy_once = PTHREAD_ONCE_INIT;
static int cyprop_gemm_copy_keyed = 0;
static __thread void* cyprop_gemm_copy = NULL;

/* The key's destructor, when a thread ends. Should a later destructor of
 * that thread still run a product, it allocates a new buffer, which the
 * key frees in turn, rather than writing into this freed one. */
static void cyprop_gemm_free_copy(void* buffer)
{
    cyprop_gemm_copy = NULL;
    free(buffer);
}

static void cyprop_gemm_make_copy_key(void)
{
    cyprop_gemm_copy_keyed =
        pthread_key_create(&cyprop_gemm_copy_key, cyprop_gemm_free_copy) == 0;
}

/* This thread's copy buffer, 64-byte aligned; NULL if it cannot be had. */
static void* cyprop_gemm_copy_buffer(void)
{
    void* buffer = cyprop_gemm_copy;
    if (buffer != NULL)
        return buffer;
    pthread_once(&cyprop_gemm_copy_once, cyprop_gemm_make_copy_key);
    if (!cyprop_gemm_copy_keyed || posix_memalign(&buffer, 64, CYPROP_GEMM_COPY_BYTES) != 0)
        return NULL;
    if (pthread_setspecific(cyprop_gemm_copy_key, buffer) != 0) {
        free(buffer);
        return NULL;
    }
    cyprop_gemm_copy = buffer;
    return buffer;
}

/* A vector of C, in the lanes of mask when masked (masked-off lanes are
 * neither read nor written) or in all of them. */
#define CYPROP_GEMM_LOAD_C(P, masked, mask, at) ((masked) ? P##_LOAD(mask, at) : P##_LOADU(at))
#define CYPROP_GEMM_STORE_C(P, masked, mask, at, value)                                         \
    do {                                                                                      \
        if (masked)                                                                           \
            P##_STORE(at, mask, value);                                                       \
        else                                                                                  \
            P##_STOREU(at, value);                                                            \
    } while (0)

/* The sum of one vector of C leaves the registers: stored as it is between
 * depth blocks, or as alpha sum + beta C after the last (with beta 0, C is
 * not read, as in BLAS: it may hold anything). */
#define CYPROP_GEMM_FINISH(P, masked, mask, at, sum)                                            \
    do {                                                                                      \
        P##_VEC value_ = (sum);                                                               \
        if (last && alpha != 1)                                                               \
            value_ = P##_MUL(P##_SET1(alpha), value_);                                        \
        if (last && beta != 0)                                                                \
            value_ = P##_FMADD(P##_SET1(beta), CYPROP_GEMM_LOAD_C(P, masked, mask, at),       \
                               value_);                                                       \
        CYPROP_GEMM_STORE_C(P, masked, mask, at, value_);                                     \
    } while (0)

/* NAME_tile_ROWS_VECS_MASKED: for the block of C at C of ROWS rows and VECS
 * vectors (1 to 3) of columns, the last of them in the lanes of mask when
 * MASKED (n's tail), adds the next depth terms of each sum: op(A)[r, p] is
 * A[r * a_row + p * a_col], times row p of the copy of B at B_copy (3
 * vectors a row, zero past n). With first set, the sums start from 0, else
 * from C, where the previous depth block left them, so that the blocks
 * round as one sum over p would; with last set, C receives alpha sum + beta
 * C. ROWS, VECS and MASKED are constants, so that the loops over the rows
 * unroll and every sum stays in a register (indexed by a variable anywhere,
 * gcc keeps them all in memory), and whole blocks load without a mask
 * (with masks, 2.5 times as slow here). Always inlined: left to itself,
 * gcc called the tiles once the copy of B came from a pointer rather than
 * an array on the stack, and W3 took 1-2% longer. */
#define CYPROP_DEFINE_GEMM_TILE(NAME, P, ROWS, VECS, MASKED)                                    \
    static CYPROP_AVX512 inline __attribute__((always_inline)) void                           \
    NAME##_tile_##ROWS##_##VECS##_##MASKED(                                                   \
        ptrdiff_t depth, P##_T alpha, const P##_T* A, ptrdiff_t a_row, ptrdiff_t a_col,       \
        const P##_T* B_copy, P##_T beta, P##_T* C, ptrdiff_t ldc, P##_MASK mask, int first,   \
        int last)                                                                             \
    {                                                                                         \
        P##_VEC sums[ROWS][3], b0, b1 = P##_ZERO(), b2 = P##_ZERO(), a;                       \
        ptrdiff_t p, r;                                                                       \
        CYPROP_GEMM_UNROLL                                                                    \
        for (r = 0; r < ROWS; r++) {                                                          \
            const P##_T* C_row = C + r * ldc;                                                 \
            sums[r][0] = sums[r][1] = sums[r][2] = P##_ZERO();                                \
            if (first)                                                                        \
                continue;                                                                     \
            sums[r][0] = CYPROP_GEMM_LOAD_C(P, MASKED && VECS == 1, mask, C_row);             \
            if (VECS > 1)                                                                     \
                sums[r][1] = CYPROP_GEMM_LOAD_C(P, MASKED && VECS == 2, mask,                 \
                                                C_row + P##_WIDTH);                           \
            if (VECS > 2)                                                                     \
                sums[r][2] = CYPROP_GEMM_LOAD_C(P, MASKED, mask, C_row + 2 * P##_WIDTH);      \
        }                                                                                     \
        for (p = 0; p < depth; p++) {                                                         \
            const P##_T* B_row = B_copy + p * 3 * P##_WIDTH;                                  \
            const P##_T* A_column = A + p * a_col;                                            \
            b0 = P##_LOADU(B_row);                                                            \
            if (VECS > 1)                                                                     \
                b1 = P##_LOADU(B_row + P##_WIDTH);                                            \
            if (VECS > 2)                                                                     \
                b2 = P##_LOADU(B_row + 2 * P##_WIDTH);                                        \
            CYPROP_GEMM_UNROLL                                                                \
            for (r = 0; r < ROWS; r++) {                                                      \
                a = P##_SET1(A_column[r * a_row]);                                            \
                sums[r][0] = P##_FMADD(a, b0, sums[r][0]);                                    \
                if (VECS > 1)                                                                 \
                    sums[r][1] = P##_FMADD(a, b1, sums[r][1]);                                \
                if (VECS > 2)                                                                 \
                    sums[r][2] = P##_FMADD(a, b2, sums[r][2]);                                \
            }                                                                                 \
        }                                                                                     \
        CYPROP_GEMM_UNROLL                                                                    \
        for (r = 0; r < ROWS; r++) {                                                          \
            P##_T* C_row = C + r * ldc;                                                       \
            CYPROP_GEMM_FINISH(P, MASKED && VECS == 1, mask, C_row, sums[r][0]);              \
            if (VECS > 1)                                                                     \
                CYPROP_GEMM_FINISH(P, MASKED && VECS == 2, mask, C_row + P##_WIDTH,           \
                                   sums[r][1]);                                               \
            if (VECS > 2)                                                                     \
                CYPROP_GEMM_FINISH(P, MASKED, mask, C_row + 2 * P##_WIDTH, sums[r][2]);       \
        }                                                                                     \
    }

/* The first count lanes of a mask, count from 1 to the width. */
#define CYPROP_LANES(P, count)                                                                  \
    ((count) >= P##_WIDTH ? (P##_MASK)~(P##_MASK)0 : (P##_MASK)((1u << (count)) - 1u))

/* The rows of C from i0 to rows_end for one block of B, 8 at a time and the
 * rest 4, 2 and 1 at a time, with the tiles NAME_tile_*_VECS_MASKED. */
#define CYPROP_GEMM_TILE_AT(NAME, ROWS, VECS, MASKED)                                           \
    NAME##_tile_##ROWS##_##VECS##_##MASKED(depth, alpha, A + i * a_row + p0 * a_col, a_row,   \
                                           a_col, B_copy, beta, C + i * ldc + j, ldc, mask,   \
                                           p0 == 0, p0 + depth == k)
#define CYPROP_GEMM_ROWS_OF(NAME, VECS, MASKED)                                                 \
    do {                                                                                      \
        for (i = i0; i + 8 <= rows_end; i += 8)                                               \
            CYPROP_GEMM_TILE_AT(NAME, 8, VECS, MASKED);                                       \
        if (rows_end - i >= 4) {                                                              \
            CYPROP_GEMM_TILE_AT(NAME, 4, VECS, MASKED);                                       \
            i += 4;                                                                           \
        }                                                                                     \
        if (rows_end - i >= 2) {                                                              \
            CYPROP_GEMM_TILE_AT(NAME, 2, VECS, MASKED);                                       \
            i += 2;                                                                           \
        }                                                                                     \
        if (rows_end - i >= 1)                                                                \
            CYPROP_GEMM_TILE_AT(NAME, 1, VECS, MASKED);                                       \
    } while (0)

#define CYPROP_DEFINE_GEMM_TILES(NAME, P, VECS, MASKED)                                         \
    CYPROP_DEFINE_GEMM_TILE(NAME, P, 8, VECS, MASKED)                                         \
    CYPROP_DEFINE_GEMM_TILE(NAME, P, 4, VECS, MASKED)                                         \
    CYPROP_DEFINE_GEMM_TILE(NAME, P, 2, VECS, MASKED)                                         \
    CYPROP_DEFINE_GEMM_TILE(NAME, P, 1, VECS, MASKED)

/* The last step of a transpose: rows q, STEP + q, 2 STEP + q and 3 STEP + q
 * of the result gather quarters 0, 1, 2 and 3 of in[q], in[STEP + q],
 * in[2 STEP + q] and in[3 STEP + q], in that order, through SHUFFLE (a
 * shuffle of 128-bit quarters: 0x88 takes quarters 0 and 2 of each operand,
 * 0xDD quarters 1 and 3). */
#define CYPROP_GEMM_MOVE_QUARTERS(SHUFFLE, in, rows, STEP, q)                                   \
    do {                                                                                      \
        const __typeof__(in[0]) even_low_ = SHUFFLE(in[q], in[(STEP) + q], 0x88);            \
        const __typeof__(in[0]) odd_low_ = SHUFFLE(in[q], in[(STEP) + q], 0xDD);              \
        const __typeof__(in[0]) even_high_ = SHUFFLE(in[2 * (STEP) + q], in[3 * (STEP) + q],  \
                                                     0x88);                                   \
        const __typeof__(in[0]) odd_high_ = SHUFFLE(in[2 * (STEP) + q], in[3 * (STEP) + q],   \
                                                    0xDD);                                    \
        rows[q] = SHUFFLE(even_low_, even_high_, 0x88);                                       \
        rows[2 * (STEP) + q] = SHUFFLE(even_low_, even_high_, 0xDD);                          \
        rows[(STEP) + q] = SHUFFLE(odd_low_, odd_high_, 0x88);                                \
        rows[3 * (STEP) + q] = SHUFFLE(odd_low_, odd_high_, 0xDD);                            \
    } while (0)

/* The square of WIDTH rows by WIDTH lanes in rows[] transposed in place: lane
 * c of rows[r] moves to lane r of rows[c]. First neighbouring rows are
 * interleaved a lane at a time within each 128-bit quarter (for floats,
 * then two lanes at a time), then whole quarters move in two shuffles. */
static CYPROP_AVX512 inline __attribute__((always_inline)) void cyprop_gemm_transpose_S16(
    __m512 rows[16])
{
    __m512 pairs[16], fours[16];
    int i, q;
    _Pragma("GCC unroll 8")
    for (i = 0; i < 8; i++) {
        pairs[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
        pairs[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
    }
    /* fours[4 i + q], quarter L: lane 4 L + q of rows 4 i to 4 i + 3 */
    _Pragma("GCC unroll 4")
    for (i = 0; i < 4; i++) {
        const __m512d lo = _mm512_castps_pd(pairs[4 * i]), hi = _mm512_castps_pd(pairs[4 * i + 1]);
        const __m512d lo2 = _mm512_castps_pd(pairs[4 * i + 2]);
        const __m512d hi2 = _mm512_castps_pd(pairs[4 * i + 3]);
        fours[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
        fours[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
        fours[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
        fours[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
    }
    /* row 4 L + q of the result: quarter L of fours[q], [4 + q], [8 + q], [12 + q] */
    _Pragma("GCC unroll 4")
    for (q = 0; q < 4; q++)
        CYPROP_GEMM_MOVE_QUARTERS(_mm512_shuffle_f32x4, fours, rows, 4, q);
}

static CYPROP_AVX512 inline __attribute__((always_inline)) void cyprop_gemm_transpose_D8(
    __m512d rows[8])
{
    __m512d pairs[8];
    int i, q;
    /* pairs[2 i + q], quarter L: lane 2 L + q of rows 2 i and 2 i + 1 */
    _Pragma("GCC unroll 4")
    for (i = 0; i < 4; i++) {
        pairs[2 * i] = _mm512_unpacklo_pd(rows[2 * i], rows[2 * i + 1]);
        pairs[2 * i + 1] = _mm512_unpackhi_pd(rows[2 * i], rows[2 * i + 1]);
    }
    /* row 2 L + q of the result: quarter L of pairs[q], [2 + q], [4 + q], [6 + q] */
    _Pragma("GCC unroll 2")
    for (q = 0; q < 2; q++)
        CYPROP_GEMM_MOVE_QUARTERS(_mm512_shuffle_f64x2, pairs, rows, 2, q);
}

/* NAME_copy_transposed: for a product with B = Bt.T, Bt (n, k) row-major (a
 * layer's delta times its weights transposed), the block of B at rows p0 to
 * p0 + depth and columns j to j + width into the copy buffer, as the
 * untransposed copy lays it out: column c of the block is row j + c of Bt.
 * A square of WIDTH rows of Bt by WIDTH of their entries at a time is
 * loaded, transposed in registers and stored as WIDTH rows of the copy;
 * rows past n load as zeros, entries past the depth are not stored. */
#define CYPROP_DEFINE_GEMM_COPY_TRANSPOSED(NAME, P)                                             \
    static CYPROP_AVX512 __attribute__((noinline)) void NAME##_copy_transposed(               \
        const P##_T* Bt, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t depth, ptrdiff_t j,           \
        ptrdiff_t width, P##_T* __restrict__ B_copy)                                          \
    {                                                                                         \
        P##_VEC rows[P##_WIDTH];                                                              \
        ptrdiff_t v, p, q, valid_rows, valid_lanes;                                           \
        for (v = 0; v < 3; v++) {                                                             \
            valid_rows = width - v * P##_WIDTH;                                               \
            for (p = 0; p < depth; p += P##_WIDTH) {                                          \
                valid_lanes = depth - p < P##_WIDTH ? depth - p : P##_WIDTH;                  \
                _Pragma("GCC unroll 16")                                                      \
                for (q = 0; q < P##_WIDTH; q++)                                               \
                    rows[q] = q < valid_rows                                                  \
                                  ? P##_LOAD(CYPROP_LANES(P, valid_lanes),                    \
                                             Bt + (j + v * P##_WIDTH + q) * ldb + p0 + p)     \
                                  : P##_ZERO();                                               \
                cyprop_gemm_transpose_##P(rows);                                              \
                _Pragma("GCC unroll 16")                                                      \
                for (q = 0; q < P##_WIDTH; q++)                                               \
                    if (q < valid_lanes)                                                      \
                        P##_STOREU(B_copy + (p + q) * 3 * P##_WIDTH + v * P##_WIDTH, rows[q]); \
            }                                                                                 \
        }                                                                                     \
    }

/* NAME_row: one row of C, c (n) = a @ B, for a of k entries a_step apart and
 * B (k, n), with alpha 1 and beta 0: a matrix-vector product, such as a
 * layer's forward product for one sample. B is read in place, row after row
 * (copying it would cost as much as the product), four rows at a time into
 * the sums that wait in c: each is still one sum over p in order from 0 of
 * fused multiply-adds, the bits of the tiles. */
#define CYPROP_GEMM_ROW_STEP(P, masked, mask, at, count)                                         \
    do {                                                                                      \
        P##_VEC sum_ = p == 0 ? P##_ZERO() : CYPROP_GEMM_LOAD_C(P, masked, mask, c + (at));  \
        sum_ = P##_FMADD(a0, CYPROP_GEMM_LOAD_C(P, masked, mask, B_rows + (at)), sum_);       \
        if ((count) > 1)                                                                      \
            sum_ = P##_FMADD(a1, CYPROP_GEMM_LOAD_C(P, masked, mask, B_rows + ldb + (at)),    \
                             sum_);                                                           \
        if ((count) > 2)                                                                      \
            sum_ = P##_FMADD(a2, CYPROP_GEMM_LOAD_C(P, masked, mask, B_rows + 2 * ldb + (at)), \
                             sum_);                                                           \
        if ((count) > 3)                                                                      \
            sum_ = P##_FMADD(a3, CYPROP_GEMM_LOAD_C(P, masked, mask, B_rows + 3 * ldb + (at)), \
                             sum_);                                                           \
        CYPROP_GEMM_STORE_C(P, masked, mask, c + (at), sum_);                                 \
    } while (0)
#define CYPROP_GEMM_ROW_PASS(P, count)                                                          \
    do {                                                                                      \
        for (j = 0; j < whole; j += P##_WIDTH)                                                \
            CYPROP_GEMM_ROW_STEP(P, 0, tail, j, count);                                       \
        if (whole < n)                                                                        \
            CYPROP_GEMM_ROW_STEP(P, 1, tail, whole, count);                                   \
    } while (0)
#define CYPROP_DEFINE_GEMM_ROW(NAME, P)                                                         \
    static CYPROP_AVX512 __attribute__((noinline)) void NAME##_row(                           \
        ptrdiff_t n, ptrdiff_t k, const P##_T* a, ptrdiff_t a_step, const P##_T* B,           \
        ptrdiff_t ldb, P##_T* c)                                                              \
    {                                                                                         \
        const ptrdiff_t whole = n / P##_WIDTH * P##_WIDTH;                                    \
        const P##_MASK tail = CYPROP_LANES(P, n - whole > 0 ? n - whole : 1);                 \
        P##_VEC a0, a1, a2, a3;                                                               \
        const P##_T* B_rows;                                                                  \
        ptrdiff_t p, j;                                                                       \
        if (n <= P##_WIDTH) {                                                                 \
            /* one vector: its sum stays in a register */                                     \
            const P##_MASK lanes = CYPROP_LANES(P, n);                                        \
            P##_VEC sum = P##_ZERO();                                                         \
            for (p = 0; p < k; p++)                                                           \
                sum = P##_FMADD(P##_SET1(a[p * a_step]), P##_LOAD(lanes, B + p * ldb), sum);  \
            P##_STORE(c, lanes, sum);                                                         \
            return;                                                                           \
        }                                                                                     \
        for (p = 0; p + 4 <= k; p += 4) {                                                     \
            a0 = P##_SET1(a[p * a_step]);                                                     \
            a1 = P##_SET1(a[(p + 1) * a_step]);                                               \
            a2 = P##_SET1(a[(p + 2) * a_step]);                                               \
            a3 = P##_SET1(a[(p + 3) * a_step]);                                               \
            B_rows = B + p * ldb;                                                             \
            CYPROP_GEMM_ROW_PASS(P, 4);                                                       \
        }                                                                                     \
        a1 = a2 = a3 = P##_ZERO();                                                            \
        for (; p < k; p++) {                                                                  \
            a0 = P##_SET1(a[p * a_step]);                                                     \
            B_rows = B + p * ldb;                                                             \
            CYPROP_GEMM_ROW_PASS(P, 1);                                                       \
        }                                                                                     \
    }

/* NAME_avx512: the whole product. Rows of C a block at a time, as many as
 * keep their part of op(A) within 1 MB (half the L2 cache), 8 at least;
 * within it, blocks of 3 vectors of columns (the last one 1 to 3 vectors,
 * the last of them masked), and within that, depth blocks of B, each first
 * copied, contiguous and padded with zeros, into the thread's copy buffer.
 * Read in place, rows of B whose distance is near a multiple of 4 KB (as
 * with 1,024 floats a row) fall into the same few cache sets and evict each
 * other: 55-78 GFLOP/s on 64 x 1024 by 1024 x 1024 before the copy,
 * against 145-169 on 64 x 784 by 784 x 256. A product with more than one
 * depth block keeps its partial sums in C between them, so alpha is 1 and
 * beta 0 there (cyprop_gemm_fits). */
#define CYPROP_DEFINE_GEMM(NAME, P)                                                             \
    CYPROP_DEFINE_GEMM_COPY_TRANSPOSED(NAME, P)                                               \
    CYPROP_DEFINE_GEMM_ROW(NAME, P)                                                           \
    CYPROP_DEFINE_GEMM_TILES(NAME, P, 3, 0)                                                   \
    CYPROP_DEFINE_GEMM_TILES(NAME, P, 3, 1)                                                   \
    CYPROP_DEFINE_GEMM_TILES(NAME, P, 2, 1)                                                   \
    CYPROP_DEFINE_GEMM_TILES(NAME, P, 1, 1)                                                   \
    static CYPROP_AVX512 inline __attribute__((always_inline)) void NAME##_avx512(            \
        int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, P##_T alpha, \
        const P##_T* A, ptrdiff_t lda, const P##_T* B, ptrdiff_t ldb, P##_T beta, P##_T* C,   \
        ptrdiff_t ldc, P##_T* __restrict__ B_copy)                                            \
    {                                                                                         \
        const ptrdiff_t block = 3 * P##_WIDTH;                                                \
        const ptrdiff_t a_row = transpose_a ? 1 : lda, a_col = transpose_a ? lda : 1;         \
        const ptrdiff_t row_bytes = k * (ptrdiff_t)sizeof(P##_T);                             \
        const ptrdiff_t row_block = row_bytes * 8 <= (1 << 20) ? (1 << 20) / row_bytes / 8 * 8 \
                                                               : 8;                           \
        ptrdiff_t i, i0, j, p, p0, v, depth, left, width, rows_end;                           \
        P##_MASK mask, copy_masks[3];                                                         \
        for (i0 = 0; i0 < m; i0 += row_block) {                                               \
            rows_end = m - i0 < row_block ? m : i0 + row_block;                               \
            for (j = 0; j < n; j += block) {                                                  \
                left = n - j;                                                                 \
                width = left < block ? left : block;                                          \
                mask = CYPROP_LANES(P, width - (width - 1) / P##_WIDTH * P##_WIDTH);          \
                for (v = 0; v < 3; v++)                                                       \
                    copy_masks[v] = width <= v * P##_WIDTH                                    \
                                        ? (P##_MASK)0                                         \
                                        : CYPROP_LANES(P, width - v * P##_WIDTH);             \
                for (p0 = 0; p0 < k; p0 += CYPROP_GEMM_DEPTH) {                               \
                    depth = k - p0 < CYPROP_GEMM_DEPTH ? k - p0 : CYPROP_GEMM_DEPTH;          \
                    if (transpose_b)                                                          \
                        NAME##_copy_transposed(B, ldb, p0, depth, j, width, B_copy);          \
                    else                                                                      \
                        for (p = 0; p < depth; p++)                                           \
                            for (v = 0; v < 3; v++)                                           \
                                P##_STOREU(B_copy + p * block + v * P##_WIDTH,                \
                                           P##_LOAD(copy_masks[v],                            \
                                                    B + (p0 + p) * ldb + j + v * P##_WIDTH)); \
                    if (width == block)                                                       \
                        CYPROP_GEMM_ROWS_OF(NAME, 3, 0);                                      \
                    else if (width > 2 * P##_WIDTH)                                           \
                        CYPROP_GEMM_ROWS_OF(NAME, 3, 1);                                      \
                    else if (width > P##_WIDTH)                                               \
                        CYPROP_GEMM_ROWS_OF(NAME, 2, 1);                                      \
                    else                                                                      \
                        CYPROP_GEMM_ROWS_OF(NAME, 1, 1);                                      \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

/* The columns [j0, j1) of C (n wide) that part `part` of `parts` computes: a
 * whole number of vectors of width lanes each, but for n's tail. */
static void cyprop_gemm_part_columns(ptrdiff_t n, ptrdiff_t width, int part, int parts,
                                     ptrdiff_t* j0, ptrdiff_t* j1)
{
    const ptrdiff_t vectors = (n + width - 1) / width;
    *j0 = vectors * part / parts * width;
    *j1 = vectors * (part + 1) / parts * width;
    if (*j1 > n)
        *j1 = n;
    if (*j0 > n)
        *j0 = n;
}

/* With more than one BLAS thread, the columns of C are split between the
 * threads (_parallel.h), a whole number of vectors each: every entry is the
 * same sum as on one thread, so the bits do not depend on the thread count.
 * NAME_part computes part `part` of `parts` of the product in NAME_args_t. */
#define CYPROP_DEFINE_GEMM_PARTS(NAME, P)                                                       \
    typedef struct {                                                                          \
        int transpose_a, transpose_b;                                                         \
        ptrdiff_t m, n, k, lda, ldb, ldc;                                                     \
        P##_T alpha, beta;                                                                    \
        const P##_T* A;                                                                       \
        const P##_T* B;                                                                       \
        P##_T* C;                                                                             \
    } NAME##_args_t;                                                                          \
    /* Each call of the kernel here has op(A) fixed, so that it is compiled  \
     * (inlined) once for each, its strides through op(A) constants: called   \
     * with them variable, W3's products ran a third slower. Not inlined      \
     * itself: one copy of the kernel, whichever buffer it is given. */       \
    static CYPROP_AVX512 __attribute__((noinline)) void NAME##_columns(                       \
        const NAME##_args_t* product, ptrdiff_t j0, ptrdiff_t j1, P##_T* B_copy)              \
    {                                                                                         \
        /* column j0 of B: row j0 of B.T when B is given transposed */                        \
        const P##_T* B = product->B + (product->transpose_b ? j0 * product->ldb : j0);        \
        if (product->transpose_a)                                                             \
            NAME##_avx512(1, product->transpose_b, product->m, j1 - j0, product->k,           \
                          product->alpha, product->A, product->lda, B, product->ldb,          \
                          product->beta, product->C + j0, product->ldc, B_copy);              \
        else                                                                                  \
            NAME##_avx512(0, product->transpose_b, product->m, j1 - j0, product->k,           \
                          product->alpha, product->A, product->lda, B, product->ldb,          \
                          product->beta, product->C + j0, product->ldc, B_copy);              \
    }                                                                                         \
    /* Only when the thread's buffer cannot be allocated: the copy on the    \
     * stack, in a frame of its own that other calls never make. */          \
    static CYPROP_AVX512 __attribute__((noinline)) void NAME##_columns_on_stack(             \
        const NAME##_args_t* product, ptrdiff_t j0, ptrdiff_t j1)                             \
    {                                                                                         \
        P##_T B_copy[CYPROP_GEMM_COPY_BYTES / sizeof(P##_T)] __attribute__((aligned(64)));   \
        NAME##_columns(product, j0, j1, B_copy);                                              \
    }                                                                                         \
    static CYPROP_AVX512 void NAME##_part(void* args, int part, int parts)                    \
    {                                                                                         \
        const NAME##_args_t* product = (const NAME##_args_t*)args;                            \
        P##_T* B_copy;                                                                        \
        ptrdiff_t j0, j1;                                                                     \
        cyprop_gemm_part_columns(product->n, P##_WIDTH, part, parts, &j0, &j1);               \
        if (j1 <= j0)                                                                         \
            return;                                                                           \
        if (product->m == 1 && !product->transpose_b && product->alpha == 1                   \
            && product->beta == 0) {                                                          \
            NAME##_row(j1 - j0, product->k, product->A,                                       \
                       product->transpose_a ? product->lda : 1, product->B + j0,              \
                       product->ldb, product->C + j0);                                        \
            return;                                                                           \
        }                                                                                     \
        B_copy = (P##_T*)cyprop_gemm_copy_buffer();                                           \
        if (B_copy != NULL)                                                                   \
            NAME##_columns(product, j0, j1, B_copy);                                          \
        else                                                                                  \
            NAME##_columns_on_stack(product, j0, j1);                                         \
    }

CYPROP_DEFINE_GEMM(cyprop_gemm_s, S16)
CYPROP_DEFINE_GEMM(cyprop_gemm_d, D8)
CYPROP_DEFINE_GEMM_PARTS(cyprop_gemm_s, S16)
CYPROP_DEFINE_GEMM_PARTS(cyprop_gemm_d, D8)

/* NAME_alone: the whole product on the calling thread, for any shape with
 * op(A) over at most one depth block unless alpha is 1 and beta 0; only
 * where cyprop_gemm_available. For the parts of a task that splits a
 * layer's work between threads itself (_one_hidden_layer in _core.pyx). */
#define CYPROP_DEFINE_GEMM_ALONE(NAME, P)                                                       \
    static void NAME##_alone(int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n,      \
                             ptrdiff_t k, P##_T alpha, const P##_T* A, ptrdiff_t lda,         \
                             const P##_T* B, ptrdiff_t ldb, P##_T beta, P##_T* C,             \
                             ptrdiff_t ldc)                                                   \
    {                                                                                         \
        NAME##_args_t product = {transpose_a, transpose_b, m, n, k, lda, ldb, ldc,            \
                                 alpha, beta, A, B, C};                                       \
        NAME##_part(&product, 0, 1);                                                          \
    }

CYPROP_DEFINE_GEMM_ALONE(cyprop_gemm_s, S16)
CYPROP_DEFINE_GEMM_ALONE(cyprop_gemm_d, D8)

/* Whether the kernel runs here at all: AVX-512F, not disabled, and a BLAS
 * whose thread count is known. */
static int cyprop_gemm_available(void)
{
    return cyprop_cpu_has_avx512() && cyprop_blas_threads != 0;
}

/* Products of fewer multiply-adds stay on one thread: waking a worker and
 * waiting for it cost a few microseconds, about what a quarter of such a
 * product takes. */
#define CYPROP_GEMM_PARALLEL_MIN (1 << 20)

/* How many threads share this product: the BLAS's thread count, at most one
 * per 3 vectors of columns, one per CPU the process may use and
 * CYPROP_MAX_PARTS, and 1 below CYPROP_GEMM_PARALLEL_MIN. */
static int cyprop_gemm_parts(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t width)
{
    const ptrdiff_t most = (n + width - 1) / width / 3;
    int threads;
    if (!cyprop_blas_threads || most < 2 || m * n * k < CYPROP_GEMM_PARALLEL_MIN)
        return 1;
    threads = cyprop_blas_threads();
    if (threads < 2)
        return 1;
    if (threads > most)
        threads = (int)most;
    if (threads > cyprop_pool_cpus())
        threads = cyprop_pool_cpus();
    return threads > CYPROP_MAX_PARTS ? CYPROP_MAX_PARTS : threads;
}

/* Set by the core when the BLAS in use runs kernels on vectors narrower than
 * 512 bits (OpenBLAS under OPENBLAS_CORETYPE=Haswell, say, or a build that
 * predates the CPU) on a CPU whose 512-bit multiply-adds run at twice the
 * 256-bit rate (cyprop_cpu_has_full_width_avx512). The kernel then computes
 * minibatch products about twice as fast as BLAS, and takes every one it
 * can (cyprop_gemm_fits): on a Zen 5 EPYC under OpenBLAS's Haswell kernels,
 * W4's 1,024-wide forward products, weights' steps and delta @ W.T ran at
 * 236-245 GFLOP/s at one thread against OpenBLAS's 126-130, and its 10-wide
 * products in 40-64 us against 69-94 (benchmarks/README.md, item 34). A
 * single row (NAME_row) waits on memory as gemv does, and is about as fast;
 * it runs here so that BLAS's threads stay asleep (item 35). */
static int cyprop_gemm_all_products = 0;
static void cyprop_gemm_set_all_products(int all) { cyprop_gemm_all_products = all; }

/* AMD from family 26 (Zen 5; measured on an EPYC, model 2). Zen 4 runs
 * 512-bit operations as two halves, at the 256-bit rate, and so are said to
 * do the Zen 5 cores of some laptop parts of the same family, where the
 * kernel would be about as fast as BLAS's 256-bit kernels rather than
 * twice; Intel's AVX-512 CPUs have one or two 512-bit units by model, and
 * none was measured under narrower BLAS kernels. */
static int cyprop_cpu_has_full_width_avx512(void)
{
    static int full_width = -1;
    if (full_width < 0) {
        unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0, family;
        int amd;
        /* "AuthenticAMD" in ebx, edx, ecx */
        amd = __get_cpuid(0, &eax, &ebx, &ecx, &edx) && ebx == 0x68747541u
              && edx == 0x69746e65u && ecx == 0x444d4163u;
        full_width = 0;
        if (amd && cyprop_cpu_has_avx512() && __get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
            family = (eax >> 8) & 0xf;
            if (family == 0xf)
                family += (eax >> 20) & 0xff;
            full_width = family >= 26;
        }
    }
    return full_width;
}

/* Whether the kernel takes every product it can compute right now. */
static int cyprop_gemm_takes_all(void)
{
    return cyprop_gemm_all_products && cyprop_gemm_available();
}

/* Whether this product is taken here rather than by BLAS. Always: at least
 * one term a sum; alpha not 0; over one depth block unless alpha is 1 and
 * beta 0 (the partial sums wait in C); AVX-512F, and a BLAS whose thread
 * count is known: at more than one, that many threads share the product
 * (cyprop_gemm_parts), unless the network's other products keep BLAS's
 * threads busy (cyprop_gemm_blas_splits). Where the kernel takes every
 * product (cyprop_gemm_all_products), nothing more; otherwise, from
 * measurements against OpenBLAS's AVX-512 kernels (benchmarks/README.md):
 *  - C at least a tile's rows high and three vectors wide (narrower products
 *    waste lanes), and B not transposed;
 *  - a forward product, A @ B, over at most 256 rows of floats or 128 of
 *    doubles (a minibatch), where BLAS's copies of the operands cost the
 *    most beside the product: 1.1 to 1.4 times OpenBLAS's speed at 64 rows;
 *    at 256 rows of floats (W4's forward products) 1.05 to 1.15 times on a
 *    Zen 4 EPYC and 0.96 to 1.00 times on an AVX-512 Xeon, from 512 rows no
 *    faster; doubles from 256 rows slower on both (0.85 to 0.9 times on the
 *    EPYC);
 *  - or over any number of rows into C at most CYPROP_GEMM_NARROW columns
 *    wide, where OpenBLAS's copies of A still cost more than the kernel's
 *    of B: on the Zen 4 EPYC, over 1,024 rows into 256 columns, 1.00 to
 *    1.04 times OpenBLAS's speed in floats (784 to 2,048 deep; 1.04 to 1.09
 *    64 and 256 deep), 1.07 to 1.24 in doubles, and 1.06 to 1.07 over 4,096
 *    rows of floats; into 500 and 512 columns 0.97 to 1.03, into 1,024
 *    0.94 to 0.98 (doubles 0.91 to 0.92);
 *  - a weights' step or gradient, A.T @ B, summed over at most 128 rows of A
 *    (one depth block, so alpha and beta may be anything), into a C of at
 *    most 2^18 entries: 1.03 to 1.12 times OpenBLAS's speed on 784 x 256
 *    over 64 or 128 rows, 0.76 to 0.91 on 1,000 x 1,000 and 1,024 x 1,024,
 *    where C no longer stays in the L2 cache. */
/* Set by the core, for the calling thread, around the products of a network
 * that hands BLAS some products large enough for BLAS to split between its
 * threads: then, at more than one thread, BLAS takes all of them. Its
 * threads and the kernel's workers, each waiting for their next product by
 * spinning, would otherwise share the cores: 64-row batches on 1,024-wide
 * layers, whose weights' steps stay on BLAS, trained 1.1 to 1.8 times
 * slower at two threads with both than with BLAS alone. */
static __thread int cyprop_gemm_blas_splits = 0;
static void cyprop_gemm_set_blas_splits(int splits) { cyprop_gemm_blas_splits = splits; }

static int cyprop_gemm_fits(int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n,
                            ptrdiff_t k, double alpha, double beta, ptrdiff_t width)
{
    const int one_block = k <= CYPROP_GEMM_DEPTH;
    /* alpha 0: BLAS gives beta C without reading A or B (0 times an infinity
     * in them would be NaN here) */
    if (k < 1 || m < 1 || n < 1 || alpha == 0)
        return 0;
    if (!one_block && (alpha != 1 || beta != 0))
        return 0;
    if (!cyprop_gemm_all_products
        && (transpose_b || m < CYPROP_GEMM_ROWS || n < 3 * width
            || (transpose_a ? k > CYPROP_GEMM_MAX_STEP_ROWS || m * n > CYPROP_GEMM_MAX_STEP
                            : m > (width == 16 ? CYPROP_GEMM_MAX_ROWS_FLOAT
                                               : CYPROP_GEMM_MAX_ROWS_DOUBLE)
                                  && n > CYPROP_GEMM_NARROW)))
        return 0;
    return cyprop_cpu_has_avx512() && cyprop_blas_threads != 0
           && (!cyprop_gemm_blas_splits || cyprop_blas_threads() == 1);
}
#define CYPROP_TRY_AVX512(NAME, WIDTH, transpose_a, transpose_b, m, n, k, alpha, A, lda, B, ldb, \
                          beta, C, ldc)                                                          \
    if (cyprop_gemm_fits(transpose_a, transpose_b, m, n, k, alpha, beta, WIDTH)) {               \
        NAME##_args_t product = {transpose_a, transpose_b, m, n, k, lda, ldb, ldc,               \
                                 alpha, beta, A, B, C};                                         \
        cyprop_run_parts(NAME##_part, &product, cyprop_gemm_parts(m, n, k, WIDTH));              \
        return 1;                                                                                \
    }
#else
static int cyprop_gemm_fits(int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n,
                            ptrdiff_t k, double alpha, double beta, ptrdiff_t width)
{
    (void)transpose_a; (void)transpose_b; (void)m; (void)n; (void)k; (void)alpha; (void)beta;
    (void)width;
    return 0;
}
static int cyprop_gemm_parts(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t width)
{
    (void)m; (void)n; (void)k; (void)width;
    return 1;
}
static void cyprop_gemm_set_blas_splits(int splits) { (void)splits; }
static void cyprop_gemm_set_all_products(int all) { (void)all; }
static int cyprop_cpu_has_full_width_avx512(void) { return 0; }
static int cyprop_gemm_takes_all(void) { return 0; }
static int cyprop_gemm_available(void) { return 0; }
static void cyprop_gemm_part_columns(ptrdiff_t n, ptrdiff_t width, int part, int parts,
                                     ptrdiff_t* j0, ptrdiff_t* j1)
{
    (void)width; (void)parts;
    *j0 = part == 0 ? 0 : n;
    *j1 = n;
}
/* Never called where cyprop_gemm_available is 0. */
#define CYPROP_DEFINE_GEMM_ALONE_STUB(NAME, T)                                                  \
    static void NAME##_alone(int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n,      \
                             ptrdiff_t k, T alpha, const T* A, ptrdiff_t lda, const T* B,     \
                             ptrdiff_t ldb, T beta, T* C, ptrdiff_t ldc)                      \
    {                                                                                         \
        (void)transpose_a; (void)transpose_b; (void)m; (void)n; (void)k; (void)alpha;        \
        (void)A; (void)lda;                                                                   \
        (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;                                   \
        abort();                                                                              \
    }
CYPROP_DEFINE_GEMM_ALONE_STUB(cyprop_gemm_s, float)
CYPROP_DEFINE_GEMM_ALONE_STUB(cyprop_gemm_d, double)
#define CYPROP_TRY_AVX512(NAME, WIDTH, transpose_a, transpose_b, m, n, k, alpha, A, lda, B, ldb, \
                          beta, C, ldc)
#endif

/* NAME, for T: 1 when C = alpha op(A) @ op(B) + beta C was computed here, 0,
 * with C untouched, when the caller must hand it to BLAS. op(B) is B (k, n),
 * or B.T for B (n, k) with transpose_b. */
#define CYPROP_DEFINE_GEMM_ENTRY(NAME, T, WIDTH)                                                \
    static int NAME(int transpose_a, int transpose_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,  \
                    T alpha, const T* A, ptrdiff_t lda, const T* B, ptrdiff_t ldb, T beta,    \
                    T* C, ptrdiff_t ldc)                                                      \
    {                                                                                         \
        CYPROP_TRY_AVX512(NAME, WIDTH, transpose_a, transpose_b, m, n, k, alpha, A, lda, B,   \
                          ldb, beta, C, ldc)                                                  \
        (void)transpose_a; (void)transpose_b; (void)m; (void)n; (void)k; (void)alpha;        \
        (void)A; (void)lda;                                                                   \
        (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;                                   \
        return 0;                                                                             \
    }

CYPROP_DEFINE_GEMM_ENTRY(cyprop_gemm_s, float, 16)
CYPROP_DEFINE_GEMM_ENTRY(cyprop_gemm_d, double, 8)

#endif /* CYPROP_GEMM_AVX512_H */
