/* The logistic sigmoid over an array, several values per instruction, and
 * a finiteness check over an array.
 *
 * sigmoid(z) = 1 / (1 + exp(-z)). Calling libm's exp once per value leaves
 * each sigmoid waiting on its own call and division: on the lesson's
 * 3-4-1 network that wait was the largest single cost of a training step
 * (benchmarks/README.md). Here exp is computed inline, on vector registers:
 * SSE2 on every x86-64 CPU (two doubles or four floats at a time), AVX2
 * where the CPU has it (four doubles or eight floats), chosen once at run
 * time, with the same operations in the same order, so the results are the
 * same bit for bit on every x86-64 CPU (no fused multiply-adds). Other
 * CPUs run the same steps one value at a time. The tiny network's step
 * (_tiny_step.h) has a copy of its own that fuses each multiply with the
 * add that takes it (D4F and F4F below), on CPUs with AVX2 and FMA.
 *
 * exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 (|r| <= ln 2 / 2):
 *  - k is rounded by adding 1.5 * 2^52 (2^23 for float), which leaves it
 *    in the low bits of the sum, where integer arithmetic can read it;
 *  - ln 2 is split in two parts, the first with enough trailing zero bits
 *    that k times it is exact (Cody and Waite);
 *  - exp(r) is a ratio N / D of two polynomials (below), so that
 *    sigmoid(z) = 1 / (1 + 2^k N / D) = D / (D + 2^k N), one division;
 *  - 2^k is built from exponent bits, in two halves so that results in the
 *    subnormal range and overflow to infinity come out right.
 * x = -z is first clamped to [-746, 709.8] ([-104, 88.8] for float), beyond
 * which exp is 0 or infinite anyway, keeping k in range; NaN passes the
 * clamps and gives NaN. Where 2^k is a normal number, as it is for almost
 * every argument a network sees, the sigmoid reaches the same bits by a
 * shorter path (NAME_vec below).
 *
 * Accuracy, against a long-double reference on 2.5e7 arguments for each
 * dtype: within 2.6 units in the last place (double) and 2.5 (float), where
 * 1 / (1 + exp(-z)) with glibc's exp is within 2.4; the same for the copy
 * with the multiply-adds fused (2.56 and 2.45 units, the same worst cases:
 * the two differ on about 1 argument in 2,000 in double, 1 in 3,000 in
 * float). tests/test_core.py allows 3. */
#ifndef CYPROP_VECTOR_MATH_H
#define CYPROP_VECTOR_MATH_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define CYPROP_INLINE __inline
#else
#define CYPROP_INLINE inline
#endif

#define CYPROP_SHIFT_D 6755399441055744.0 /* 1.5 * 2^52 */
#define CYPROP_SHIFT_F 12582912.0f        /* 1.5 * 2^23 */
#define CYPROP_LOG2E 1.4426950408889634
#define CYPROP_LN2_HI_D 6.93147180369123816490e-01
#define CYPROP_LN2_LO_D 1.90821492927058770002e-10
#define CYPROP_LN2_HI_F 0.693145751953125f
#define CYPROP_LN2_LO_F 1.428606765330187045e-06f

/* exp(r) = P(r) / P(-r), the Pade approximant of degree (6, 6) (double) or
 * (3, 3) (float), whose own error for |r| <= ln 2 / 2 is below a
 * hundredth of a unit in the last place. P(r) = E(r^2) + r O(r^2): one even
 * part ("even") and one odd part r O ("odd") give both P(r) and P(-r), and
 * for u = -r the odd part comes out negated, with the same roundings. The
 * Taylor polynomial of the same accuracy, degree 13 for double, made the
 * sigmoid's chain of dependent steps (which bounds a tiny network's
 * training step) about a seventh longer, with a second division. Each part
 * is a few independent products summed in pairs; the odd part multiplies
 * by r first, off the chain's longest path. */
#define CYPROP_EXP_PADE_D(VEC, MUL, MULADD, SET, r, even, odd)                   \
    do {                                                                         \
        const VEC r2 = MUL(r, r), r4 = MUL(r2, r2);                              \
        even = MULADD(r4, MULADD(SET(1.0 / 665280.0), r2, SET(1.0 / 792.0)),     \
                      MULADD(SET(5.0 / 44.0), r2, SET(1.0)));                    \
        odd = MULADD(MUL(SET(1.0 / 15840.0), r), r4,                             \
                     MULADD(MUL(SET(1.0 / 66.0), r), r2, MUL(SET(1.0 / 2.0), r))); \
    } while (0)

#define CYPROP_EXP_PADE_F(VEC, MUL, MULADD, SET, r, even, odd)                   \
    do {                                                                         \
        const VEC r2 = MUL(r, r);                                                \
        even = MULADD(SET(1.0f / 10.0f), r2, SET(1.0f));                         \
        odd = MULADD(MUL(SET(1.0f / 120.0f), r), r2, MUL(SET(1.0f / 2.0f), r));  \
    } while (0)

/* Each instruction set below names the same operations; CYPROP_DEFINE_SIGMOID
 * writes the sigmoid once in their terms. MULADD(a, b, c) is a b + c and
 * NMULADD(a, b, c) is c - a b, each rounded twice; the sigmoid takes them from
 * a set of its own (M), so that one set can fuse them (D4F, F4F below). */

static CYPROP_INLINE uint64_t cyprop_bits_d(double x) { uint64_t b; memcpy(&b, &x, 8); return b; }
static CYPROP_INLINE double cyprop_from_bits_d(uint64_t b) { double x; memcpy(&x, &b, 8); return x; }
static CYPROP_INLINE uint32_t cyprop_bits_f(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static CYPROP_INLINE float cyprop_from_bits_f(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

/* MAX(bound, x) and MIN(bound, x) give x when x is NaN, as maxpd and minpd
 * do with their second operand. */
#define SD_WIDTH 1
#define SD_T double
#define SD_VEC double
#define SD_IVEC uint64_t
#define SD_LOAD(p) (*(p))
#define SD_STORE(p, v) (*(p) = (v))
#define SD_SET(a) ((double)(a))
#define SD_ADD(a, b) ((a) + (b))
#define SD_SUB(a, b) ((a) - (b))
#define SD_MUL(a, b) ((a) * (b))
#define SD_DIV(a, b) ((a) / (b))
#define SD_MULADD(a, b, c) SD_ADD(SD_MUL(a, b), c)
#define SD_NMULADD(a, b, c) SD_SUB(c, SD_MUL(a, b))
#define SD_MAX(bound, x) ((x) < (bound) ? (bound) : (x))
#define SD_MIN(bound, x) ((x) > (bound) ? (bound) : (x))
#define SD_BITS(v) cyprop_bits_d(v)
#define SD_FROM_BITS(b) cyprop_from_bits_d(b)
#define SD_ISET(a) ((uint64_t)(a))
#define SD_IADD(a, b) ((a) + (b))
#define SD_ISUB(a, b) ((a) - (b))
#define SD_ISHL(a, n) ((a) << (n))
#define SD_IT uint64_t
#define SD_ALL_WITHIN(z, low, high) ((z) >= (low) && (z) <= (high))

#define SF_WIDTH 1
#define SF_T float
#define SF_VEC float
#define SF_IVEC uint32_t
#define SF_LOAD(p) (*(p))
#define SF_STORE(p, v) (*(p) = (v))
#define SF_SET(a) ((float)(a))
#define SF_ADD SD_ADD
#define SF_SUB SD_SUB
#define SF_MUL SD_MUL
#define SF_DIV SD_DIV
#define SF_MULADD(a, b, c) SF_ADD(SF_MUL(a, b), c)
#define SF_NMULADD(a, b, c) SF_SUB(c, SF_MUL(a, b))
#define SF_MAX SD_MAX
#define SF_MIN SD_MIN
#define SF_BITS(v) cyprop_bits_f(v)
#define SF_FROM_BITS(b) cyprop_from_bits_f(b)
#define SF_ISET(a) ((uint32_t)(a))
#define SF_IADD SD_IADD
#define SF_ISUB SD_ISUB
#define SF_ISHL SD_ISHL
#define SF_IT uint32_t
#define SF_ALL_WITHIN SD_ALL_WITHIN

/* Per dtype: the rounding shift, the clamps, ln 2 in two parts, the
 * exponent's bias and position, the polynomial, and the range of z over which
 * the sigmoid takes its short path (NAME_vec). */
#define CYPROP_D_CONSTANTS CYPROP_SHIFT_D, -746.0, 709.8, CYPROP_LN2_HI_D, CYPROP_LN2_LO_D, \
    1023, 52, CYPROP_EXP_PADE_D, -709.0, 708.0
#define CYPROP_F_CONSTANTS CYPROP_SHIFT_F, -104.0f, 88.8f, CYPROP_LN2_HI_F, CYPROP_LN2_LO_F, \
    127, 23, CYPROP_EXP_PADE_F, -88.0f, 87.0f

/* The outer macro expands its arguments (the instruction set's name, the
 * constants' list) before the inner one pastes and splits them; CYPROP_EXPAND
 * makes MSVC's traditional preprocessor split __VA_ARGS__ too. */
#define CYPROP_EXPAND(x) x
#define CYPROP_DEFINE_SIGMOID(...) CYPROP_EXPAND(CYPROP_DEFINE_SIGMOID_(__VA_ARGS__))
#define CYPROP_DEFINE_SIGMOID_(NAME, ATTRIBUTES, P, M, SHIFT, LOW, HIGH, LN2_HI, LN2_LO,                 \
                               BIAS, MANTISSA, RATIONAL, SHORT_LOW, SHORT_HIGH)                          \
    /* 1 / (1 + exp(-z)) for any z: x = -z, clamped; 2^k in two halves. D = P(-r), and                   \
     * N = P(r) is made from D, so that their roundings, which the ratio carries,                        \
     * partly cancel (worst case 2.6 units against 2.7 for N = E + r O). */                              \
    static ATTRIBUTES CYPROP_INLINE P##_VEC NAME##_full(P##_VEC z)                                       \
    {                                                                                                    \
        const P##_VEC shift = P##_SET(SHIFT);                                                            \
        const P##_IVEC shift_bits = P##_BITS(shift);                                                     \
        P##_VEC x, t, k, r, even, odd, numerator, denominator, half;                                     \
        P##_IVEC k1, k2;                                                                                 \
        x = P##_MAX(P##_SET(LOW), P##_SUB(P##_SET(0.0), z));                                             \
        x = P##_MIN(P##_SET(HIGH), x);                                                                   \
        t = M##_MULADD(x, P##_SET(CYPROP_LOG2E), shift);                                                 \
        k = P##_SUB(t, shift);                                                                           \
        r = M##_NMULADD(k, P##_SET(LN2_HI), x);                                                          \
        r = M##_NMULADD(k, P##_SET(LN2_LO), r);                                                          \
        RATIONAL(P##_VEC, P##_MUL, M##_MULADD, P##_SET, r, even, odd);                                   \
        denominator = P##_SUB(even, odd);                                                                \
        numerator = P##_ADD(denominator, P##_ADD(odd, odd));                                             \
        half = M##_MULADD(k, P##_SET(0.5), shift);                                                       \
        k1 = P##_ISUB(P##_BITS(half), shift_bits);                                                       \
        k2 = P##_ISUB(P##_ISUB(P##_BITS(t), shift_bits), k1);                                            \
        numerator = P##_MUL(numerator, P##_FROM_BITS(P##_ISHL(P##_IADD(k1, P##_ISET(BIAS)), MANTISSA))); \
        return P##_DIV(denominator,                                                                      \
                       M##_MULADD(numerator,                                                             \
                                  P##_FROM_BITS(P##_ISHL(P##_IADD(k2, P##_ISET(BIAS)), MANTISSA)),       \
                                  denominator));                                                         \
    }                                                                                                    \
    /* The same, when every lane of z is within [SHORT_LOW, SHORT_HIGH], as almost                       \
     * always, from fewer dependent steps: no clamps; x = -z folded into the signs                       \
     * (u = -r, so the odd part's sign turns, with the same roundings); and 2^k, a                       \
     * normal number there, built in one piece from t's low bits (the shift's own low                    \
     * bits are zero) and applied in one exact multiplication, where the two halves                      \
     * round once, at the same place. */                                                                 \
    static ATTRIBUTES CYPROP_INLINE P##_VEC NAME##_vec(P##_VEC z)                                        \
    {                                                                                                    \
        const P##_VEC shift = P##_SET(SHIFT);                                                            \
        P##_VEC t, k, u, even, odd, numerator, denominator;                                              \
        if (!P##_ALL_WITHIN(z, SHORT_LOW, SHORT_HIGH))                                                   \
            return NAME##_full(z);                                                                       \
        t = M##_NMULADD(z, P##_SET(CYPROP_LOG2E), shift);                                                \
        k = P##_SUB(t, shift);                                                                           \
        u = M##_MULADD(k, P##_SET(LN2_HI), z);                                                           \
        u = M##_MULADD(k, P##_SET(LN2_LO), u);                                                           \
        RATIONAL(P##_VEC, P##_MUL, M##_MULADD, P##_SET, u, even, odd);                                   \
        denominator = P##_ADD(even, odd);                                                                \
        numerator = P##_SUB(denominator, P##_ADD(odd, odd));                                             \
        return P##_DIV(denominator,                                                                      \
                       M##_MULADD(numerator,                                                             \
                                  P##_FROM_BITS(P##_IADD(P##_ISHL(P##_BITS(t), MANTISSA),                \
                                                         P##_ISET((P##_IT)BIAS << MANTISSA))),           \
                                  denominator));                                                         \
    }

/* NAME over an array, with NAME_vec: the last n % width values go through the
 * same code from a padded copy. */
#define CYPROP_DEFINE_SIGMOID_ARRAY(...) CYPROP_EXPAND(CYPROP_DEFINE_SIGMOID_ARRAY_(__VA_ARGS__))
#define CYPROP_DEFINE_SIGMOID_ARRAY_(NAME, ATTRIBUTES, P)                                \
    static ATTRIBUTES void NAME(P##_T* Z, ptrdiff_t n)                                   \
    {                                                                                    \
        P##_T tail[P##_WIDTH];                                                           \
        ptrdiff_t i = 0, j;                                                              \
        for (; i + P##_WIDTH <= n; i += P##_WIDTH)                                       \
            P##_STORE(Z + i, NAME##_vec(P##_LOAD(Z + i)));                               \
        if (i < n) {                                                                     \
            for (j = 0; j < P##_WIDTH; j++)                                              \
                tail[j] = i + j < n ? Z[i + j] : 0;                                      \
            P##_STORE(tail, NAME##_vec(P##_LOAD(tail)));                                 \
            for (j = 0; i + j < n; j++)                                                  \
                Z[i + j] = tail[j];                                                      \
        }                                                                                \
    }

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define CYPROP_BASE_D D2
#define CYPROP_BASE_F F4

#define D2_WIDTH 2
#define D2_T double
#define D2_VEC __m128d
#define D2_IVEC __m128i
#define D2_LOAD _mm_loadu_pd
#define D2_STORE _mm_storeu_pd
#define D2_SET _mm_set1_pd
#define D2_ADD _mm_add_pd
#define D2_SUB _mm_sub_pd
#define D2_MUL _mm_mul_pd
#define D2_DIV _mm_div_pd
#define D2_MULADD(a, b, c) D2_ADD(D2_MUL(a, b), c)
#define D2_NMULADD(a, b, c) D2_SUB(c, D2_MUL(a, b))
#define D2_MAX _mm_max_pd
#define D2_MIN _mm_min_pd
#define D2_BITS _mm_castpd_si128
#define D2_FROM_BITS _mm_castsi128_pd
#define D2_ISET _mm_set1_epi64x
#define D2_IADD _mm_add_epi64
#define D2_ISUB _mm_sub_epi64
#define D2_ISHL _mm_slli_epi64
#define D2_IT uint64_t
#define D2_ALL_WITHIN(z, low, high) \
    (_mm_movemask_pd(_mm_and_pd(_mm_cmpge_pd(z, _mm_set1_pd(low)), _mm_cmple_pd(z, _mm_set1_pd(high)))) == 3)

#define F4_WIDTH 4
#define F4_T float
#define F4_VEC __m128
#define F4_IVEC __m128i
#define F4_LOAD _mm_loadu_ps
#define F4_STORE _mm_storeu_ps
#define F4_SET _mm_set1_ps
#define F4_ADD _mm_add_ps
#define F4_SUB _mm_sub_ps
#define F4_MUL _mm_mul_ps
#define F4_DIV _mm_div_ps
#define F4_MULADD(a, b, c) F4_ADD(F4_MUL(a, b), c)
#define F4_NMULADD(a, b, c) F4_SUB(c, F4_MUL(a, b))
#define F4_MAX _mm_max_ps
#define F4_MIN _mm_min_ps
#define F4_BITS _mm_castps_si128
#define F4_FROM_BITS _mm_castsi128_ps
#define F4_ISET _mm_set1_epi32
#define F4_IADD _mm_add_epi32
#define F4_ISUB _mm_sub_epi32
#define F4_ISHL _mm_slli_epi32
#define F4_IT uint32_t
#define F4_ALL_WITHIN(z, low, high) \
    (_mm_movemask_ps(_mm_and_ps(_mm_cmpge_ps(z, _mm_set1_ps(low)), _mm_cmple_ps(z, _mm_set1_ps(high)))) == 15)
#else
#define CYPROP_BASE_D SD
#define CYPROP_BASE_F SF
#endif

CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d_base, , CYPROP_BASE_D, CYPROP_BASE_D, CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_f_base, , CYPROP_BASE_F, CYPROP_BASE_F, CYPROP_F_CONSTANTS)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_d_base, , CYPROP_BASE_D)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_f_base, , CYPROP_BASE_F)

/* AVX2 through gcc's and clang's target attribute: compiled beside the base
 * code and taken only when the CPU reports AVX2 (and the OS saves its
 * registers), so the wheel still runs on every x86-64 CPU. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__SSE2__)
#include <immintrin.h>
#define CYPROP_AVX2 __attribute__((target("avx2")))

#define D4_WIDTH 4
#define D4_T double
#define D4_VEC __m256d
#define D4_IVEC __m256i
#define D4_LOAD _mm256_loadu_pd
#define D4_STORE _mm256_storeu_pd
#define D4_SET _mm256_set1_pd
#define D4_ADD _mm256_add_pd
#define D4_SUB _mm256_sub_pd
#define D4_MUL _mm256_mul_pd
#define D4_DIV _mm256_div_pd
#define D4_MULADD(a, b, c) D4_ADD(D4_MUL(a, b), c)
#define D4_NMULADD(a, b, c) D4_SUB(c, D4_MUL(a, b))
#define D4_MAX _mm256_max_pd
#define D4_MIN _mm256_min_pd
#define D4_BITS _mm256_castpd_si256
#define D4_FROM_BITS _mm256_castsi256_pd
#define D4_ISET _mm256_set1_epi64x
#define D4_IADD _mm256_add_epi64
#define D4_ISUB _mm256_sub_epi64
#define D4_ISHL _mm256_slli_epi64
#define D4_IT uint64_t
#define D4_ALL_WITHIN(z, low, high)                                         \
    (_mm256_movemask_pd(_mm256_and_pd(_mm256_cmp_pd(z, _mm256_set1_pd(low), _CMP_GE_OQ), \
                                      _mm256_cmp_pd(z, _mm256_set1_pd(high), _CMP_LE_OQ))) == 15)

#define F8_WIDTH 8
#define F8_T float
#define F8_VEC __m256
#define F8_IVEC __m256i
#define F8_LOAD _mm256_loadu_ps
#define F8_STORE _mm256_storeu_ps
#define F8_SET _mm256_set1_ps
#define F8_ADD _mm256_add_ps
#define F8_SUB _mm256_sub_ps
#define F8_MUL _mm256_mul_ps
#define F8_DIV _mm256_div_ps
#define F8_MULADD(a, b, c) F8_ADD(F8_MUL(a, b), c)
#define F8_NMULADD(a, b, c) F8_SUB(c, F8_MUL(a, b))
#define F8_MAX _mm256_max_ps
#define F8_MIN _mm256_min_ps
#define F8_BITS _mm256_castps_si256
#define F8_FROM_BITS _mm256_castsi256_ps
#define F8_ISET _mm256_set1_epi32
#define F8_IADD _mm256_add_epi32
#define F8_ISUB _mm256_sub_epi32
#define F8_ISHL _mm256_slli_epi32
#define F8_IT uint32_t
#define F8_ALL_WITHIN(z, low, high)                                         \
    (_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(z, _mm256_set1_ps(low), _CMP_GE_OQ), \
                                      _mm256_cmp_ps(z, _mm256_set1_ps(high), _CMP_LE_OQ))) == 255)

CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d_avx2, CYPROP_AVX2, D4, D4, CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_f_avx2, CYPROP_AVX2, F8, F8, CYPROP_F_CONSTANTS)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_d_avx2, CYPROP_AVX2, D4)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_f_avx2, CYPROP_AVX2, F8)

/* The same sigmoid with its multiply-adds fused (one rounding each), for the
 * tiny network's step (_tiny_step.h) on CPUs with AVX2 and FMA: D4F and F4F
 * name the fused operations of D4 and F4. */
#define CYPROP_AVX2_FMA __attribute__((target("avx2,fma")))
#define D4F_MULADD _mm256_fmadd_pd
#define D4F_NMULADD _mm256_fnmadd_pd
#define F4F_MULADD _mm_fmadd_ps
#define F4F_NMULADD _mm_fnmadd_ps
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d_fma, CYPROP_AVX2_FMA, D4, D4F, CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_f_fma, CYPROP_AVX2_FMA, F4, F4F, CYPROP_F_CONSTANTS)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_d_fma, CYPROP_AVX2_FMA, D4)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_f_fma, CYPROP_AVX2_FMA, F4)

/* Whether the environment variable (CYPROP_DISABLE_AVX2 or
 * CYPROP_DISABLE_AVX512) leaves that instruction set on: it is off when the
 * variable starts with 1. */
static CYPROP_INLINE int cyprop_cpu_not_disabled(const char* variable)
{
    const char* disable = getenv(variable);
    return !(disable && disable[0] == '1');
}

/* CYPROP_DISABLE_AVX2=1 in the environment keeps the SSE2 code, which the
 * tests use to check that both give the same bits. */
static CYPROP_INLINE int cyprop_cpu_has_avx2(void)
{
    /* Asked once; a race only writes the same answer twice. */
    static int has_avx2 = -1;
    if (has_avx2 < 0) {
        __builtin_cpu_init();
        has_avx2 = __builtin_cpu_supports("avx2")
                   && cyprop_cpu_not_disabled("CYPROP_DISABLE_AVX2");
    }
    return has_avx2;
}
/* Whether the tiny network's fused step runs (_tiny_step.h): AVX2, as above
 * (so CYPROP_DISABLE_AVX2=1 turns it off too), and FMA. */
static CYPROP_INLINE int cyprop_cpu_has_fma(void)
{
    static int has_fma = -1;
    if (has_fma < 0)
        has_fma = cyprop_cpu_has_avx2() && __builtin_cpu_supports("fma");
    return has_fma;
}

/* The same sigmoid on AVX-512F, 16 floats or 8 doubles a vector, where its
 * operations are those of the narrower sets, lane by lane, and so are its
 * bits. On a Zen 5 EPYC, whose vector units are 512 bits wide, it took half
 * the time of the AVX2 code on a batch of W3's hidden layer (64 x 256
 * floats). CYPROP_AVX512_CODE marks where the core has AVX-512 code at all
 * (here and in _gemm_avx512.h): not on Windows, where gcc does not align the
 * stack beyond 16 bytes for 64-byte vectors and buffers (gcc bug 54412), nor
 * on x32. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(_WIN32) && !defined(__CYGWIN__) \
    && !defined(__ILP32__)
#define CYPROP_AVX512_CODE 1
#define CYPROP_AVX512 __attribute__((target("avx512f")))

/* AVX-512F here, and CYPROP_DISABLE_AVX512=1 not set; the kernels of
 * _gemm_avx512.h ask the same. Asked once; a race only writes the same
 * answer twice. */
static CYPROP_INLINE int cyprop_cpu_has_avx512(void)
{
    static int has_avx512 = -1;
    if (has_avx512 < 0) {
        __builtin_cpu_init();
        has_avx512 = __builtin_cpu_supports("avx512f")
                     && cyprop_cpu_not_disabled("CYPROP_DISABLE_AVX512");
    }
    return has_avx512;
}

#define Z8_WIDTH 8
#define Z8_T double
#define Z8_VEC __m512d
#define Z8_IVEC __m512i
#define Z8_LOAD _mm512_loadu_pd
#define Z8_STORE _mm512_storeu_pd
#define Z8_SET _mm512_set1_pd
#define Z8_ADD _mm512_add_pd
#define Z8_SUB _mm512_sub_pd
#define Z8_MUL _mm512_mul_pd
#define Z8_DIV _mm512_div_pd
#define Z8_MULADD(a, b, c) Z8_ADD(Z8_MUL(a, b), c)
#define Z8_NMULADD(a, b, c) Z8_SUB(c, Z8_MUL(a, b))
#define Z8_MAX _mm512_max_pd
#define Z8_MIN _mm512_min_pd
#define Z8_BITS _mm512_castpd_si512
#define Z8_FROM_BITS _mm512_castsi512_pd
#define Z8_ISET _mm512_set1_epi64
#define Z8_IADD _mm512_add_epi64
#define Z8_ISUB _mm512_sub_epi64
#define Z8_ISHL _mm512_slli_epi64
#define Z8_IT uint64_t
#define Z8_ALL_WITHIN(z, low, high)                                                  \
    ((__mmask8)(_mm512_cmp_pd_mask(z, _mm512_set1_pd(low), _CMP_GE_OQ)               \
                & _mm512_cmp_pd_mask(z, _mm512_set1_pd(high), _CMP_LE_OQ)) == 0xFF)

#define Z16_WIDTH 16
#define Z16_T float
#define Z16_VEC __m512
#define Z16_IVEC __m512i
#define Z16_LOAD _mm512_loadu_ps
#define Z16_STORE _mm512_storeu_ps
#define Z16_SET _mm512_set1_ps
#define Z16_ADD _mm512_add_ps
#define Z16_SUB _mm512_sub_ps
#define Z16_MUL _mm512_mul_ps
#define Z16_DIV _mm512_div_ps
#define Z16_MULADD(a, b, c) Z16_ADD(Z16_MUL(a, b), c)
#define Z16_NMULADD(a, b, c) Z16_SUB(c, Z16_MUL(a, b))
#define Z16_MAX _mm512_max_ps
#define Z16_MIN _mm512_min_ps
#define Z16_BITS _mm512_castps_si512
#define Z16_FROM_BITS _mm512_castsi512_ps
#define Z16_ISET _mm512_set1_epi32
#define Z16_IADD _mm512_add_epi32
#define Z16_ISUB _mm512_sub_epi32
#define Z16_ISHL _mm512_slli_epi32
#define Z16_IT uint32_t
#define Z16_ALL_WITHIN(z, low, high)                                                 \
    ((__mmask16)(_mm512_cmp_ps_mask(z, _mm512_set1_ps(low), _CMP_GE_OQ)              \
                 & _mm512_cmp_ps_mask(z, _mm512_set1_ps(high), _CMP_LE_OQ)) == 0xFFFF)

/* The fused sigmoid of the tiny network's step again, for its AVX-512VL
 * copy (_tiny_step.h): with AVX-512's encodings, on 4 doubles or floats
 * (D4, F4), and on 8 doubles (Z8F names Z8's fused operations), which
 * takes a hidden layer's units two at a time. The same operations lane by
 * lane, so the same bits. The arrays, the tests' view of that code, go 8
 * doubles or 4 floats at a time. */
#define CYPROP_AVX512VL_FMA __attribute__((target("avx2,fma,avx512f,avx512vl")))
#define Z8F_MULADD _mm512_fmadd_pd
#define Z8F_NMULADD _mm512_fnmadd_pd
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d4_fma_avx512, CYPROP_AVX512VL_FMA, D4, D4F,
                      CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d_fma_avx512, CYPROP_AVX512VL_FMA, Z8, Z8F,
                      CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_f_fma_avx512, CYPROP_AVX512VL_FMA, F4, F4F,
                      CYPROP_F_CONSTANTS)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_d_fma_avx512, CYPROP_AVX512VL_FMA, Z8)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_f_fma_avx512, CYPROP_AVX512VL_FMA, F4)

/* Whether the tiny network's AVX-512VL step runs: the fused step's AVX2 and
 * FMA, AVX-512F as above (so CYPROP_DISABLE_AVX512=1 turns it off), and VL. */
static CYPROP_INLINE int cyprop_cpu_has_avx512vl_fma(void)
{
    static int has_avx512vl_fma = -1;
    if (has_avx512vl_fma < 0)
        has_avx512vl_fma = cyprop_cpu_has_fma() && cyprop_cpu_has_avx512()
                           && __builtin_cpu_supports("avx512vl");
    return has_avx512vl_fma;
}

CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_d_avx512, CYPROP_AVX512, Z8, Z8, CYPROP_D_CONSTANTS)
CYPROP_DEFINE_SIGMOID(cyprop_sigmoid_f_avx512, CYPROP_AVX512, Z16, Z16, CYPROP_F_CONSTANTS)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_d_avx512, CYPROP_AVX512, Z8)
CYPROP_DEFINE_SIGMOID_ARRAY(cyprop_sigmoid_f_avx512, CYPROP_AVX512, Z16)
#define CYPROP_WIDEST_SIGMOID(NAME, Z, n) \
    (cyprop_cpu_has_avx512() ? NAME##_avx512(Z, n) : NAME##_avx2(Z, n))
#else
#define CYPROP_WIDEST_SIGMOID(NAME, Z, n) NAME##_avx2(Z, n)
#endif

/* CYPROP_DISABLE_AVX2=1 keeps the SSE2 code, AVX-512 included. */
#define CYPROP_DISPATCH(NAME, Z, n)              \
    do {                                         \
        if (cyprop_cpu_has_avx2())               \
            CYPROP_WIDEST_SIGMOID(NAME, Z, n);   \
        else                                     \
            NAME##_base(Z, n);                   \
    } while (0)
#else
#define CYPROP_DISPATCH(NAME, Z, n) NAME##_base(Z, n)
#endif

/* 1 when none of the n values is NaN or infinite, else 0. A value is not
 * finite when its exponent bits are all ones; adding one unit of the
 * exponent field then carries into the sign bit, and OR-ing those sums
 * keeps any such carry. Integer operations only, which the compiler
 * vectorizes (a loop of isfinite tests with an early exit does not).
 * copy_out, when not NULL, receives a copy of the values from the same pass
 * (the training loop's copy of the parameters at the start of an epoch: for
 * a small network the separate memcpy cost about as much as the check). */
/* Each type's exponent field and the unit of its lowest bit. */
#define CYPROP_EXPONENT_D 0x7ff0000000000000u
#define CYPROP_EXPONENT_UNIT_D ((uint64_t)1 << 52)
#define CYPROP_EXPONENT_F 0x7f800000u
#define CYPROP_EXPONENT_UNIT_F ((uint32_t)1 << 23)
#define CYPROP_DEFINE_ALL_FINITE(NAME, T, UINT, EXPONENT, UNIT, BITS)                    \
    static CYPROP_INLINE int NAME##_base(const T* values, T* copy_out, ptrdiff_t n)      \
    {                                                                                    \
        const UINT exponent = EXPONENT, unit = UNIT;                                     \
        UINT carries = 0;                                                                \
        ptrdiff_t i;                                                                     \
        for (i = 0; i < n; i++) {                                                        \
            /* loop-invariant: the compiler makes a loop for each case */                \
            if (copy_out != NULL)                                                        \
                copy_out[i] = values[i];                                                 \
            carries |= (BITS(values[i]) & exponent) + unit;                              \
        }                                                                                \
        return (carries >> (8 * sizeof(UINT) - 1)) == 0;                                 \
    }
CYPROP_DEFINE_ALL_FINITE(cyprop_all_finite_d, double, uint64_t, CYPROP_EXPONENT_D,
                         CYPROP_EXPONENT_UNIT_D, cyprop_bits_d)
CYPROP_DEFINE_ALL_FINITE(cyprop_all_finite_f, float, uint32_t, CYPROP_EXPONENT_F,
                         CYPROP_EXPONENT_UNIT_F, cyprop_bits_f)

/* The same test on AVX2, for the check of a whole data set before training
 * or inference: the loop above, as gcc vectorizes it for SSE2, reads 60,000
 * x 784 floats in about 20 ms, where memory allows about 15 (benchmarks/
 * README.md); 32 bytes a load, with four independent sums, come close. */
#if defined(CYPROP_AVX2)
#define CYPROP_DEFINE_ALL_FINITE_AVX2(NAME, T, SET1, ADD, SIGNS, EXPONENT, UNIT)           \
    static CYPROP_AVX2 int NAME##_avx2(const T* values, ptrdiff_t n)                       \
    {                                                                                      \
        const ptrdiff_t step = 4 * 32 / (ptrdiff_t)sizeof(T);                              \
        const __m256i exponent = SET1(EXPONENT), unit = SET1(UNIT);                        \
        __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;                    \
        ptrdiff_t i = 0;                                                                   \
        for (; i + step <= n; i += step) {                                                 \
            const __m256i* v = (const __m256i*)(values + i);                               \
            c0 = _mm256_or_si256(c0, ADD(_mm256_and_si256(_mm256_loadu_si256(v), exponent), unit)); \
            c1 = _mm256_or_si256(c1, ADD(_mm256_and_si256(_mm256_loadu_si256(v + 1), exponent), unit)); \
            c2 = _mm256_or_si256(c2, ADD(_mm256_and_si256(_mm256_loadu_si256(v + 2), exponent), unit)); \
            c3 = _mm256_or_si256(c3, ADD(_mm256_and_si256(_mm256_loadu_si256(v + 3), exponent), unit)); \
        }                                                                                  \
        c0 = _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3));            \
        return SIGNS(c0) == 0 && NAME##_base(values + i, NULL, n - i);                     \
    }
#define CYPROP_SIGNS_D(v) _mm256_movemask_pd(_mm256_castsi256_pd(v))
#define CYPROP_SIGNS_F(v) _mm256_movemask_ps(_mm256_castsi256_ps(v))
CYPROP_DEFINE_ALL_FINITE_AVX2(cyprop_all_finite_d, double, _mm256_set1_epi64x, _mm256_add_epi64,
                              CYPROP_SIGNS_D, (long long)CYPROP_EXPONENT_D,
                              (long long)CYPROP_EXPONENT_UNIT_D)
CYPROP_DEFINE_ALL_FINITE_AVX2(cyprop_all_finite_f, float, _mm256_set1_epi32, _mm256_add_epi32,
                              CYPROP_SIGNS_F, (int)CYPROP_EXPONENT_F, (int)CYPROP_EXPONENT_UNIT_F)
#define CYPROP_ALL_FINITE(NAME, values, copy_out, n)                                       \
    (copy_out == NULL && n >= 256 && cyprop_cpu_has_avx2() ? NAME##_avx2(values, n)        \
                                                           : NAME##_base(values, copy_out, n))
#else
#define CYPROP_ALL_FINITE(NAME, values, copy_out, n) NAME##_base(values, copy_out, n)
#endif

static CYPROP_INLINE int cyprop_all_finite_d(const double* values, double* copy_out,
                                             ptrdiff_t n)
{
    return CYPROP_ALL_FINITE(cyprop_all_finite_d, values, copy_out, n);
}

static CYPROP_INLINE int cyprop_all_finite_f(const float* values, float* copy_out, ptrdiff_t n)
{
    return CYPROP_ALL_FINITE(cyprop_all_finite_f, values, copy_out, n);
}

/* delta = delta * a (1 - a) over n values, the sigmoid's derivative from its
 * output a. For floats, a (1 - a) is computed in double and rounded to float
 * once, then multiplied in float, as the core has always done it. The
 * AVX-512 loops do the same operations lane by lane, so every path gives the
 * same bits. Compiled for SSE2, the loop with its conversions to double and
 * back took a third of the time that W3's training spent in its hidden
 * layer outside the products (benchmarks/README.md). */
static CYPROP_INLINE void cyprop_sigmoid_backward_d_base(const double* A, double* delta,
                                                         ptrdiff_t n)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++)
        delta[i] = delta[i] * (A[i] * (1.0 - A[i]));
}

static CYPROP_INLINE void cyprop_sigmoid_backward_f_base(const float* A, float* delta,
                                                         ptrdiff_t n)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++)
        delta[i] = delta[i] * (float)((double)A[i] * (1.0 - (double)A[i]));
}

#if defined(CYPROP_AVX512_CODE)
static CYPROP_AVX512 void cyprop_sigmoid_backward_d_avx512(const double* A, double* delta,
                                                          ptrdiff_t n)
{
    const __m512d one = _mm512_set1_pd(1.0);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512d a = _mm512_loadu_pd(A + i);
        _mm512_storeu_pd(delta + i, _mm512_mul_pd(_mm512_loadu_pd(delta + i),
                                                  _mm512_mul_pd(a, _mm512_sub_pd(one, a))));
    }
    cyprop_sigmoid_backward_d_base(A + i, delta + i, n - i);
}

static CYPROP_AVX512 void cyprop_sigmoid_backward_f_avx512(const float* A, float* delta,
                                                          ptrdiff_t n)
{
    const __m512d one = _mm512_set1_pd(1.0);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(A + i));
        const __m256 derivative = _mm512_cvtpd_ps(_mm512_mul_pd(a, _mm512_sub_pd(one, a)));
        _mm256_storeu_ps(delta + i, _mm256_mul_ps(_mm256_loadu_ps(delta + i), derivative));
    }
    cyprop_sigmoid_backward_f_base(A + i, delta + i, n - i);
}
#define CYPROP_SIGMOID_BACKWARD(NAME, A, delta, n)   \
    do {                                              \
        if (cyprop_cpu_has_avx512())                  \
            NAME##_avx512(A, delta, n);               \
        else                                          \
            NAME##_base(A, delta, n);                 \
    } while (0)
#else
#define CYPROP_SIGMOID_BACKWARD(NAME, A, delta, n) NAME##_base(A, delta, n)
#endif

static CYPROP_INLINE void cyprop_sigmoid_backward_d(const double* A, double* delta, ptrdiff_t n)
{
    CYPROP_SIGMOID_BACKWARD(cyprop_sigmoid_backward_d, A, delta, n);
}

static CYPROP_INLINE void cyprop_sigmoid_backward_f(const float* A, float* delta, ptrdiff_t n)
{
    CYPROP_SIGMOID_BACKWARD(cyprop_sigmoid_backward_f, A, delta, n);
}

/* Z = 1 / (1 + exp(-Z)), in place, over n values. */
static CYPROP_INLINE void cyprop_sigmoid_d(double* Z, ptrdiff_t n) { CYPROP_DISPATCH(cyprop_sigmoid_d, Z, n); }
static CYPROP_INLINE void cyprop_sigmoid_f(float* Z, ptrdiff_t n) { CYPROP_DISPATCH(cyprop_sigmoid_f, Z, n); }

#endif /* CYPROP_VECTOR_MATH_H */
