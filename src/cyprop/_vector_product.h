/* Small matrix products on AVX2 vector registers, four doubles or eight floats
 * of a row of the result at a time.
 *
 * The core's products below BLAS size run in plain loops, one entry of the
 * result at a time (small_product in _core.pyx): on online SGD with a
 * 64-32-10 network (W2) the forward pass alone was 8,936 of a step's 23,884
 * instructions (benchmarks/README.md). Here each entry is still its own sum
 * over p, in order from 0, with a multiply and an add rounded separately, as
 * in the plain loops: only the entries of a row are computed side by side,
 * so the results are the same bit for bit (no fused multiply-adds, which
 * would round once). CPUs without AVX2, operands whose rows are not
 * contiguous, and products with both sizes at most 4 (the lesson's 3-4-1
 * network, whose fixed-size plain loops cost fewer instructions than these)
 * take the plain loops.
 *
 * P = A @ B for A (m, k) with strides (a_row, a_col), and B (k, n) with rows
 * b_row apart and contiguous within a row, into C (m, n), row-major:
 * C = P + bias (bias may be NULL), or C -= rate * P when subtract is set.
 * With sum_row set, C has a row m more, which receives B's column sums (the
 * product of a row of ones with B), stored or subtracted as the other rows
 * are but without bias. */
#ifndef CYPROP_VECTOR_PRODUCT_H
#define CYPROP_VECTOR_PRODUCT_H

#include "_vector_math.h"

#if defined(__GNUC__)
#define CYPROP_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define CYPROP_NOINLINE __declspec(noinline)
#else
#define CYPROP_NOINLINE
#endif

#if defined(CYPROP_AVX2)

/* A mask with the lanes below count on (count from 1 to the width). */
static CYPROP_AVX2 CYPROP_INLINE __m256i cyprop_lanes_d(ptrdiff_t count)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_set_epi64x(3, 2, 1, 0));
}
static CYPROP_AVX2 CYPROP_INLINE __m256i cyprop_lanes_f(ptrdiff_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}

#define D4_MASKLOAD _mm256_maskload_pd
#define D4_MASKSTORE _mm256_maskstore_pd
#define D4_ZERO _mm256_setzero_pd
#define D4_LANES cyprop_lanes_d
#define F8_MASKLOAD _mm256_maskload_ps
#define F8_MASKSTORE _mm256_maskstore_ps
#define F8_ZERO _mm256_setzero_ps
#define F8_LANES cyprop_lanes_f

/* One result vector t for C_row[j .. j + width): stored (plus bias[j ..],
 * unless bias is NULL) or subtracted, times rate. */
#define CYPROP_FINISH(P, C_row, j, t, bias, subtract, rate_vec)                           \
    do {                                                                                \
        if (subtract)                                                                   \
            P##_STORE((C_row) + (j), P##_SUB(P##_LOAD((C_row) + (j)),                   \
                                             P##_MUL(rate_vec, t)));                    \
        else if ((bias) != NULL)                                                        \
            P##_STORE((C_row) + (j), P##_ADD(t, P##_LOAD((bias) + (j))));               \
        else                                                                            \
            P##_STORE((C_row) + (j), t);                                                \
    } while (0)

/* The same for the lanes of mask only. */
#define CYPROP_FINISH_MASKED(P, C_row, j, t, bias, subtract, rate_vec, mask)              \
    do {                                                                                \
        if (subtract)                                                                   \
            P##_MASKSTORE((C_row) + (j), mask,                                          \
                          P##_SUB(P##_MASKLOAD((C_row) + (j), mask),                    \
                                  P##_MUL(rate_vec, t)));                               \
        else if ((bias) != NULL)                                                        \
            P##_MASKSTORE((C_row) + (j), mask,                                          \
                          P##_ADD(t, P##_MASKLOAD((bias) + (j), mask)));                \
        else                                                                            \
            P##_MASKSTORE((C_row) + (j), mask, t);                                      \
    } while (0)

/* Four vectors of a row at a time share each broadcast of A[i, p]; the
 * rest of the row goes one vector at a time, the last one masked. NAME_rows
 * is inlined into NAME once for each k up to 4, where the loop over p
 * unrolls completely (a layer of a few inputs, or the gradient of a batch
 * of a few samples: a loop of three or four passes costs more than its
 * arithmetic). C shares no memory with A, B or bias in any of the core's
 * products. */
#define CYPROP_DEFINE_PRODUCT(NAME, P)                                                      \
    static CYPROP_AVX2 __attribute__((always_inline)) inline void NAME##_rows(              \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const P##_T* A, ptrdiff_t a_row,             \
        ptrdiff_t a_col, const P##_T* B, ptrdiff_t b_row, P##_T* __restrict__ C,            \
        const P##_T* bias, int subtract, P##_T rate, int sum_row)                           \
    {                                                                                       \
        const P##_T one = 1;                                                                \
        const P##_VEC rate_vec = P##_SET(rate);                                             \
        const ptrdiff_t width = P##_WIDTH, n_rows = sum_row ? m + 1 : m;                    \
        const __m256i tail = P##_LANES(n % width);                                          \
        ptrdiff_t i, j, p, a_step = a_col;                                                  \
        for (i = 0; i < n_rows; i++) {                                                      \
            const P##_T* A_row = A + i * a_row;                                             \
            const P##_T* bias_row = bias;                                                   \
            P##_T* C_row = C + i * n;                                                       \
            if (i == m) {                                                                   \
                /* the row of ones: one value, read at every p */                           \
                A_row = &one;                                                               \
                a_step = 0;                                                                 \
                bias_row = NULL;                                                            \
            }                                                                               \
            for (j = 0; j + 4 * width <= n; j += 4 * width) {                               \
                P##_VEC t0 = P##_ZERO(), t1 = P##_ZERO(), t2 = P##_ZERO(), t3 = P##_ZERO(); \
                const P##_T* B_p = B + j;                                                   \
                for (p = 0; p < k; p++, B_p += b_row) {                                     \
                    const P##_VEC a = P##_SET(A_row[p * a_step]);                           \
                    t0 = P##_ADD(t0, P##_MUL(a, P##_LOAD(B_p)));                            \
                    t1 = P##_ADD(t1, P##_MUL(a, P##_LOAD(B_p + width)));                    \
                    t2 = P##_ADD(t2, P##_MUL(a, P##_LOAD(B_p + 2 * width)));                \
                    t3 = P##_ADD(t3, P##_MUL(a, P##_LOAD(B_p + 3 * width)));                \
                }                                                                           \
                CYPROP_FINISH(P, C_row, j, t0, bias_row, subtract, rate_vec);                \
                CYPROP_FINISH(P, C_row, j + width, t1, bias_row, subtract, rate_vec);        \
                CYPROP_FINISH(P, C_row, j + 2 * width, t2, bias_row, subtract, rate_vec);    \
                CYPROP_FINISH(P, C_row, j + 3 * width, t3, bias_row, subtract, rate_vec);    \
            }                                                                               \
            for (; j + width <= n; j += width) {                                            \
                P##_VEC t = P##_ZERO();                                                     \
                const P##_T* B_p = B + j;                                                   \
                for (p = 0; p < k; p++, B_p += b_row)                                       \
                    t = P##_ADD(t, P##_MUL(P##_SET(A_row[p * a_step]), P##_LOAD(B_p)));     \
                CYPROP_FINISH(P, C_row, j, t, bias_row, subtract, rate_vec);                 \
            }                                                                               \
            if (j < n) {                                                                    \
                P##_VEC t = P##_ZERO();                                                     \
                const P##_T* B_p = B + j;                                                   \
                for (p = 0; p < k; p++, B_p += b_row)                                       \
                    t = P##_ADD(t, P##_MUL(P##_SET(A_row[p * a_step]),                      \
                                           P##_MASKLOAD(B_p, tail)));                       \
                CYPROP_FINISH_MASKED(P, C_row, j, t, bias_row, subtract, rate_vec, tail);    \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    static CYPROP_AVX2 void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const P##_T* A,     \
                                 ptrdiff_t a_row, ptrdiff_t a_col, const P##_T* B,          \
                                 ptrdiff_t b_row, P##_T* C, const P##_T* bias,              \
                                 int subtract, P##_T rate, int sum_row)                     \
    {                                                                                       \
        switch (k) {                                                                        \
        case 1:                                                                             \
            NAME##_rows(m, n, 1, A, a_row, a_col, B, b_row, C, bias, subtract, rate,        \
                        sum_row);                                                           \
            break;                                                                          \
        case 2:                                                                             \
            NAME##_rows(m, n, 2, A, a_row, a_col, B, b_row, C, bias, subtract, rate,        \
                        sum_row);                                                           \
            break;                                                                          \
        case 3:                                                                             \
            NAME##_rows(m, n, 3, A, a_row, a_col, B, b_row, C, bias, subtract, rate,        \
                        sum_row);                                                           \
            break;                                                                          \
        case 4:                                                                             \
            NAME##_rows(m, n, 4, A, a_row, a_col, B, b_row, C, bias, subtract, rate,        \
                        sum_row);                                                           \
            break;                                                                          \
        default:                                                                            \
            NAME##_rows(m, n, k, A, a_row, a_col, B, b_row, C, bias, subtract, rate,        \
                        sum_row);                                                           \
        }                                                                                   \
    }

CYPROP_DEFINE_PRODUCT(cyprop_vector_product_d_avx2, D4)
CYPROP_DEFINE_PRODUCT(cyprop_vector_product_f_avx2, F8)
#endif

/* NAME, for T: 1 when the product was computed here, 0 when the CPU lacks
 * AVX2 (or CYPROP_DISABLE_AVX2=1 is set) and the caller must compute it.
 * Not inline: the call is smaller than the check, and every byte inlined
 * into the core's small products counts against the compiler's inlining
 * budget (benchmarks/README.md, items 10 and 11). CYPROP_TRY_WHERE calls
 * FUNCTION and returns 1 from the entry point where CPU_HAS() says the CPU
 * can run it; CYPROP_TRY_AVX2 does so for NAME_avx2 (_tiny_step.h's
 * CYPROP_TRY_FMA for its NAME_fma). */
#if defined(CYPROP_AVX2)
#define CYPROP_TRY_WHERE(CPU_HAS, FUNCTION, ...) \
    if (CPU_HAS()) {                             \
        FUNCTION(__VA_ARGS__);                   \
        return 1;                                \
    }
#define CYPROP_TRY_AVX2(NAME, ...) CYPROP_TRY_WHERE(cyprop_cpu_has_avx2, NAME##_avx2, __VA_ARGS__)
#else
#define CYPROP_TRY_AVX2(NAME, ...)
#endif
#define CYPROP_DEFINE_PRODUCT_ENTRY(NAME, T)                                                \
    static CYPROP_NOINLINE int NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* A,     \
                                    ptrdiff_t a_row, ptrdiff_t a_col, const T* B,          \
                                    ptrdiff_t b_row, T* C, const T* bias, int subtract,    \
                                    T rate, int sum_row)                                   \
    {                                                                                       \
        CYPROP_TRY_AVX2(NAME, m, n, k, A, a_row, a_col, B, b_row, C, bias, subtract, rate,  \
                        sum_row)                                                            \
        (void)m; (void)n; (void)k; (void)A; (void)a_row; (void)a_col; (void)B;             \
        (void)b_row; (void)C; (void)bias; (void)subtract; (void)rate; (void)sum_row;       \
        return 0;                                                                           \
    }

CYPROP_DEFINE_PRODUCT_ENTRY(cyprop_vector_product_d, double)
CYPROP_DEFINE_PRODUCT_ENTRY(cyprop_vector_product_f, float)

#endif /* CYPROP_VECTOR_PRODUCT_H */
