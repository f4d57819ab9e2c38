/* One plain SGD step of a tiny network, whole, on AVX2 vector registers with
 * fused multiply-adds (FMA): one sigmoid hidden layer, a sigmoid output with
 * the squared error, and at most four inputs, hidden units, outputs and rows
 * in the batch (the lesson's 3-4-1 network on its four XOR samples is one
 * such).
 *
 * The general step (backpropagate_and_step in _core.pyx) goes layer by
 * layer through products, activations and deltas, each a call over arrays
 * of a few values, so that on the lesson's network the calls and loops cost
 * more than the arithmetic. Here a vector holds one unit's values for all
 * the rows of the batch, so each unit's sum is a few vector multiplies and
 * adds, and the whole step stays in registers. The gradient of a parameter
 * is a sum over the rows, across a vector's lanes: four such vectors are
 * transposed so that the sums run down the rows, and four parameters take
 * their step at once.
 *
 * A step is one chain of dependent operations (two sigmoid layers, one after
 * the other, then the deltas and the update that the next step reads), and
 * its length is what bounds the lesson's training. So, unlike the rest of the
 * core, this step fuses most multiplies with the add that takes them (one
 * rounding instead of two): in the forward sums, the hidden deltas, the first
 * layer's gradient, every update, the sigmoid's derivative and the sigmoid
 * itself (_vector_math.h's, built with the fused operations); the second
 * layer's gradient products and the loss are rounded as before. Sums over the
 * rows and the forward sums run as two chains added at the end. A step takes
 * 16% less time (float: 20%) than the same step rounding each operation on
 * its own (benchmarks/README.md). Its results therefore agree with the
 * general step's to rounding, not bit for bit; tests/test_core.py checks
 * both. The step is the same on every CPU with AVX2 and FMA, given that the
 * compiler fuses nothing else (setup.py's -ffp-contract=off), and the loop
 * of epochs gives the bits of the same steps taken one at a time. A
 * non-finite loss or parameter restores the last good parameters, so no NaN
 * leaves the training loop. Sizes and n_rows are from 1 to 4
 * (takes_tiny_step in _core.pyx). */
#ifndef CYPROP_TINY_STEP_H
#define CYPROP_TINY_STEP_H

#include <math.h>
#include <string.h>

#include "_vector_product.h"

#if defined(CYPROP_AVX2)

#define CYPROP_ALWAYS_INLINE __attribute__((always_inline)) inline
#define CYPROP_UNROLL(n) _Pragma(CYPROP_STRING(GCC unroll n))
#define CYPROP_STRING(x) #x

static CYPROP_AVX2_FMA CYPROP_INLINE __m128i cyprop_lanes_f4(ptrdiff_t count)
{
    return _mm_cmpgt_epi32(_mm_set1_epi32((int)count), _mm_set_epi32(3, 2, 1, 0));
}

/* Four lanes of each type: a mask of the first count lanes, conversion to
 * and from four doubles, and a 4 x 4 transpose in place. */
#define D4_MASK __m256i
#define D4_FOUR_LANES cyprop_lanes_d
#define D4_TO_DOUBLE(v) (v)
#define D4_FROM_DOUBLE(v) (v)
#define D4_TRANSPOSE(r0, r1, r2, r3)                                       \
    do {                                                                   \
        const __m256d t0_ = _mm256_unpacklo_pd(r0, r1);                    \
        const __m256d t1_ = _mm256_unpackhi_pd(r0, r1);                    \
        const __m256d t2_ = _mm256_unpacklo_pd(r2, r3);                    \
        const __m256d t3_ = _mm256_unpackhi_pd(r2, r3);                    \
        r0 = _mm256_permute2f128_pd(t0_, t2_, 0x20);                       \
        r1 = _mm256_permute2f128_pd(t1_, t3_, 0x20);                       \
        r2 = _mm256_permute2f128_pd(t0_, t2_, 0x31);                       \
        r3 = _mm256_permute2f128_pd(t1_, t3_, 0x31);                       \
    } while (0)

/* a - a a, the sigmoid's derivative from its output a, in one rounding */
#define D4_SIGMOID_DERIVATIVE(a) D4F_NMULADD(a, a, a)
#define F4_SIGMOID_DERIVATIVE(a) F4F_NMULADD(a, a, a)

#define F4_MASK __m128i
#define F4_FOUR_LANES cyprop_lanes_f4
#define F4_MASKLOAD _mm_maskload_ps
#define F4_ZERO _mm_setzero_ps
#define F4_TO_DOUBLE _mm256_cvtps_pd
#define F4_FROM_DOUBLE _mm256_cvtpd_ps
#define F4_TRANSPOSE _MM_TRANSPOSE4_PS

/* whether no lane of v is NaN */
#define D4_ALL_ORDERED(v) (_mm256_movemask_pd(_mm256_cmp_pd(v, v, _CMP_ORD_Q)) == 15)
#define F4_ALL_ORDERED(v) (_mm_movemask_ps(_mm_cmpord_ps(v, v)) == 15)

/* NAME, one step, and EPOCHS, full-batch epochs, for the four-lane type P,
 * whose fused operations are those of PF (_vector_math.h), compiled for the
 * instruction sets that ATTRIBUTES names. A layer's sigmoid is SIGMOID(t)
 * on each unit's sum t as it is made, and then SIGMOIDS(v, n) on the first
 * n vectors of the layer's v (n from 1 to 4; v has 4, zero past n): a copy
 * takes it in one of the two, the other doing nothing (for the AVX2 copies,
 * taking each unit's sigmoid at once was the faster). Lanes are the rows
 * of the batch; lanes past n_rows hold values computed from zero rows,
 * which no sum reads. */
#define CYPROP_DEFINE_TINY_STEP(NAME, EPOCHS, P, SIGMOID, SIGMOIDS, ATTRIBUTES)             \
    /* columns[c] = M[:, c] for M (n_rows, n_cols), row-major */                            \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_columns(                             \
        const P##_T* M, ptrdiff_t n_rows, ptrdiff_t n_cols, P##_VEC* columns)               \
    {                                                                                       \
        const P##_MASK mask = P##_FOUR_LANES(n_cols);                                       \
        P##_VEC r0 = P##_MASKLOAD(M, mask);                                                 \
        P##_VEC r1 = n_rows > 1 ? P##_MASKLOAD(M + n_cols, mask) : P##_ZERO();              \
        P##_VEC r2 = n_rows > 2 ? P##_MASKLOAD(M + 2 * n_cols, mask) : P##_ZERO();          \
        P##_VEC r3 = n_rows > 3 ? P##_MASKLOAD(M + 3 * n_cols, mask) : P##_ZERO();          \
        P##_TRANSPOSE(r0, r1, r2, r3);                                                      \
        columns[0] = r0;                                                                    \
        columns[1] = r1;                                                                    \
        columns[2] = r2;                                                                    \
        columns[3] = r3;                                                                    \
    }                                                                                       \
    /* rows[4 i + c] = M[i, c] in every lane, for M (n_rows, n_cols), row-major; zero past  \
     * M's rows and columns */                                                              \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_rows(                                \
        const P##_T* M, ptrdiff_t n_rows, ptrdiff_t n_cols, P##_VEC* rows)                  \
    {                                                                                       \
        ptrdiff_t i, c;                                                                     \
        for (i = 0; i < 4; i++)                                                             \
            for (c = 0; c < 4; c++)                                                         \
                rows[4 * i + c] = i < n_rows && c < n_cols ? P##_SET(M[i * n_cols + c])     \
                                                           : P##_ZERO();                    \
    }                                                                                       \
    /* The sum of the first n_rows of r0, r1, r2, r3: (r0 + r1) + (r2 + r3), two short      \
     * chains instead of one long one */                                                    \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE P##_VEC NAME##_row_sum(                          \
        P##_VEC r0, P##_VEC r1, P##_VEC r2, P##_VEC r3, ptrdiff_t n_rows)                   \
    {                                                                                       \
        P##_VEC total = r0, other = r2;                                                     \
        if (n_rows > 1)                                                                     \
            total = P##_ADD(total, r1);                                                     \
        if (n_rows > 3)                                                                     \
            other = P##_ADD(other, r3);                                                     \
        return n_rows > 2 ? P##_ADD(total, other) : total;                                  \
    }                                                                                       \
    /* sum_i a_i d_i over the first n_rows of the pairs (a0, d0) .. (a3, d3), as in         \
     * NAME_row_sum, each product fused with the addition that takes it */                  \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE P##_VEC NAME##_row_dot(                          \
        P##_VEC a0, P##_VEC a1, P##_VEC a2, P##_VEC a3, P##_VEC d0, P##_VEC d1, P##_VEC d2, \
        P##_VEC d3, ptrdiff_t n_rows)                                                       \
    {                                                                                       \
        P##_VEC total = P##_MUL(a0, d0), other = P##_MUL(a2, d2);                           \
        if (n_rows > 1)                                                                     \
            total = P##F_MULADD(a1, d1, total);                                             \
        if (n_rows > 3)                                                                     \
            other = P##F_MULADD(a3, d3, other);                                             \
        return n_rows > 2 ? P##_ADD(total, other) : total;                                  \
    }                                                                                       \
    /* dst[0 .. count) = src[0 .. count) - rate * total[0 .. count), fused. check           \
     * accumulates v - v over the new values v: it stays zero while they are all finite. */ \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_subtract(                            \
        P##_VEC total, ptrdiff_t count, P##_T rate, const P##_T* src, P##_T* dst,           \
        P##_VEC* check)                                                                     \
    {                                                                                       \
        P##_VEC updated;                                                                    \
        P##_T values[4];                                                                    \
        ptrdiff_t c;                                                                        \
        /* lanes past count: 0 - rate * 0 */                                                \
        updated = P##F_NMULADD(P##_SET(rate), total,                                        \
                               count == 4 ? P##_LOAD(src)                                   \
                                          : P##_MASKLOAD(src, P##_FOUR_LANES(count)));      \
        *check = P##_ADD(*check, P##_SUB(updated, updated));                                \
        if (count == 4) {                                                                   \
            P##_STORE(dst, updated);                                                        \
            return;                                                                         \
        }                                                                                   \
        /* stored one by one: a masked store is slow on some CPUs */                        \
        P##_STORE(values, updated);                                                         \
        for (c = 0; c < count; c++)                                                         \
            dst[c] = values[c];                                                             \
    }                                                                                       \
    /* NAME_subtract of the sums over the first n_rows lanes of each of the first count     \
     * vectors g0 .. g3 (NAME_row_sum, after a transpose) */                                \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_subtract_sums(                       \
        P##_VEC g0, P##_VEC g1, P##_VEC g2, P##_VEC g3, ptrdiff_t count, ptrdiff_t n_rows,  \
        P##_T rate, const P##_T* src, P##_T* dst, P##_VEC* check)                           \
    {                                                                                       \
        P##_TRANSPOSE(g0, g1, g2, g3);                                                      \
        NAME##_subtract(NAME##_row_sum(g0, g1, g2, g3, n_rows), count, rate, src, dst,      \
                        check);                                                             \
    }                                                                                       \
    /* The first layer's step, W (fan_in, fan_out) followed by b, from src to dst, with     \
     * x_rows the batch's inputs (NAME_rows): the deltas are transposed once, so that a     \
     * vector holds one row's deltas for every unit, and row p of dW is                     \
     * sum_i X[i, p] deltas_row[i] (NAME_row_dot): one transpose in all instead of one      \
     * for every four entries, as NAME_layer_step would take. */                            \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_input_layer_step(                    \
        const P##_VEC* x_rows, const P##_VEC* deltas, ptrdiff_t fan_in, ptrdiff_t fan_out,  \
        ptrdiff_t n_rows, P##_T rate, const P##_T* src, P##_T* dst, P##_VEC* check)         \
    {                                                                                       \
        P##_VEC d0 = deltas[0], d1 = deltas[1], d2 = deltas[2], d3 = deltas[3];             \
        const ptrdiff_t b = fan_in * fan_out;                                               \
        ptrdiff_t p;                                                                        \
        P##_TRANSPOSE(d0, d1, d2, d3);                                                      \
        CYPROP_UNROLL(4)                                                                    \
        for (p = 0; p < 4; p++)                                                             \
            if (p < fan_in)                                                                 \
                NAME##_subtract(                                                            \
                    NAME##_row_dot(x_rows[p], x_rows[4 + p], x_rows[8 + p], x_rows[12 + p], \
                                   d0, d1, d2, d3, n_rows),                                 \
                    fan_out, rate, src + p * fan_out, dst + p * fan_out, check);            \
        NAME##_subtract(NAME##_row_sum(d0, d1, d2, d3, n_rows), fan_out, rate, src + b,     \
                        dst + b, check);                                                    \
    }                                                                                       \
    /* One layer's step, W (fan_in, fan_out) followed by b (fan_out), from src to dst:      \
     * dW[p, k] = sum_i inputs[p][i] deltas[k][i] and db[k] = sum_i deltas[k][i],           \
     * four entries of the parameters at a time in their order. Inlined with fan_out        \
     * fixed, where the loops unroll and each entry's place in its four is known. */        \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_layer_step(                          \
        const P##_VEC* inputs, const P##_VEC* deltas, ptrdiff_t fan_in, ptrdiff_t fan_out,  \
        ptrdiff_t n_rows, P##_T rate, const P##_T* src, P##_T* dst, P##_VEC* check)         \
    {                                                                                       \
        /* lanes past count come out of the sums but are never stored. The empty asm        \
         * hides that they start at zero, which gcc used to shorten the float               \
         * transpose with a vmovq that valgrind 3.19 cannot decode. */                      \
        P##_VEC g[4] = {P##_ZERO(), P##_ZERO(), P##_ZERO(), P##_ZERO()};                    \
        __asm__("" : "+x"(g[0]), "+x"(g[1]), "+x"(g[2]), "+x"(g[3]));                       \
        ptrdiff_t p, k, count = 0, done = 0;                                                \
        /* p == fan_in is the bias, whose input is 1 */                                     \
        CYPROP_UNROLL(5)                                                                    \
        for (p = 0; p <= 4; p++) {                                                          \
            if (p > fan_in)                                                                 \
                break;                                                                      \
            CYPROP_UNROLL(4)                                                                \
            for (k = 0; k < fan_out; k++) {                                                 \
                g[count++] = p < fan_in ? P##_MUL(inputs[p], deltas[k]) : deltas[k];        \
                if (count == 4) {                                                           \
                    NAME##_subtract_sums(g[0], g[1], g[2], g[3], 4, n_rows, rate,           \
                                         src + done, dst + done, check);                    \
                    done += 4;                                                              \
                    count = 0;                                                              \
                }                                                                           \
            }                                                                               \
            if (p == fan_in && count > 0)                                                   \
                NAME##_subtract_sums(g[0], g[1], g[2], g[3], count, n_rows, rate,           \
                                     src + done, dst + done, check);                        \
        }                                                                                   \
    }                                                                                       \
    /* NAME_layer_step with fan_out, from 1 to 4, fixed */                                  \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_layer_step_fixed(                    \
        const P##_VEC* inputs, const P##_VEC* deltas, ptrdiff_t fan_in, ptrdiff_t fan_out,  \
        ptrdiff_t n_rows, P##_T rate, const P##_T* src, P##_T* dst, P##_VEC* check)         \
    {                                                                                       \
        switch (fan_out) {                                                                  \
        case 1:                                                                             \
            NAME##_layer_step(inputs, deltas, fan_in, 1, n_rows, rate, src, dst, check);    \
            break;                                                                          \
        case 2:                                                                             \
            NAME##_layer_step(inputs, deltas, fan_in, 2, n_rows, rate, src, dst, check);    \
            break;                                                                          \
        case 3:                                                                             \
            NAME##_layer_step(inputs, deltas, fan_in, 3, n_rows, rate, src, dst, check);    \
            break;                                                                          \
        default:                                                                            \
            NAME##_layer_step(inputs, deltas, fan_in, 4, n_rows, rate, src, dst, check);    \
        }                                                                                   \
    }                                                                                       \
    /* outputs[k] = sigmoid(sum_p inputs[p] W[p, k] + b[k]) for W (fan_in, fan_out)         \
     * followed by b in params: (b[k] + the even terms) + the odd terms, each product       \
     * fused with the addition that takes it. */                                            \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_sigmoid_layer(                       \
        const P##_VEC* inputs, const P##_T* params, ptrdiff_t fan_in, ptrdiff_t fan_out,    \
        P##_VEC* outputs)                                                                   \
    {                                                                                       \
        const P##_T* b = params + fan_in * fan_out;                                         \
        ptrdiff_t k;                                                                        \
        CYPROP_UNROLL(4)                                                                    \
        for (k = 0; k < 4; k++) {                                                           \
            if (k < fan_out) {                                                              \
                P##_VEC t = P##F_MULADD(inputs[0], P##_SET(params[k]), P##_SET(b[k]));      \
                if (fan_in > 1) {                                                           \
                    P##_VEC t1 = P##_MUL(inputs[1], P##_SET(params[fan_out + k]));          \
                    if (fan_in > 2)                                                         \
                        t = P##F_MULADD(inputs[2], P##_SET(params[2 * fan_out + k]), t);    \
                    if (fan_in > 3)                                                         \
                        t1 = P##F_MULADD(inputs[3], P##_SET(params[3 * fan_out + k]), t1);  \
                    t = P##_ADD(t, t1);                                                     \
                }                                                                           \
                outputs[k] = SIGMOID(t);                                                    \
            }                                                                               \
        }                                                                                   \
        SIGMOIDS(outputs, fan_out);                                                         \
    }                                                                                       \
    /* The step from the parameters src to dst, which are the same array or two that do     \
     * not overlap, on the batch whose columns are x and y (NAME_columns) and whose rows    \
     * are x_rows (NAME_rows). loss_out receives the batch's loss before the step,          \
     * sum_i 0.5 |a_i - y_i|^2 (unscaled: scale multiplies the deltas only, as in           \
     * output_delta); check, as in NAME_subtract. The loops run to 4, each pass             \
     * taken while within its size, so that they unroll and the vectors stay in             \
     * registers. */                                                                        \
    static ATTRIBUTES CYPROP_ALWAYS_INLINE void NAME##_step(                                \
        const P##_VEC* x, const P##_VEC* x_rows, const P##_VEC* y, ptrdiff_t n_rows,        \
        const ptrdiff_t* sizes, const P##_T* src, P##_T* dst, double scale, P##_T rate,     \
        double* loss_out, P##_VEC* check)                                                   \
    {                                                                                       \
        const ptrdiff_t n_in = sizes[0], n_hidden = sizes[1], n_out = sizes[2];             \
        const ptrdiff_t layer_2 = n_in * n_hidden + n_hidden;                               \
        const P##_T* W1 = src;                                                              \
        const P##_T* W2 = src + layer_2;                                                    \
        const P##_VEC zero = P##_ZERO();                                                    \
        /* hidden has a fifth vector, which the pass of layer_step's unrolled loop that     \
         * takes the bias names but never reads; all start at zero, so that no vector       \
         * read only under a test that its size holds is uninitialized. */                  \
        P##_VEC hidden[5] = {zero, zero, zero, zero, zero};                                 \
        P##_VEC out[4] = {zero, zero, zero, zero}, delta[4] = {zero, zero, zero, zero};     \
        P##_VEC delta_hidden[4] = {zero, zero, zero, zero}, t;                              \
        __m256d squares = _mm256_setzero_pd();                                              \
        double losses[4], total = 0.0;                                                      \
        ptrdiff_t i, j, k;                                                                  \
        /* hidden = sigmoid(X @ W1 + b1), out = sigmoid(hidden @ W2 + b2) */                \
        NAME##_sigmoid_layer(x, W1, n_in, n_hidden, hidden);                                \
        NAME##_sigmoid_layer(hidden, W2, n_hidden, n_out, out);                             \
        /* each row's loss, in double; delta = scale (out - y) out (1 - out) */             \
        CYPROP_UNROLL(4)                                                                    \
        for (k = 0; k < 4; k++) {                                                           \
            if (k < n_out) {                                                                \
                const __m256d error = _mm256_sub_pd(P##_TO_DOUBLE(out[k]),                  \
                                                    P##_TO_DOUBLE(y[k]));                   \
                squares = _mm256_add_pd(squares, _mm256_mul_pd(error, error));              \
                delta[k] = P##_MUL(P##_SUB(out[k], y[k]), P##_SIGMOID_DERIVATIVE(out[k]));  \
                if (scale != 1.0)                                                           \
                    delta[k] = P##_FROM_DOUBLE(_mm256_mul_pd(P##_TO_DOUBLE(delta[k]),       \
                                                             _mm256_set1_pd(scale)));       \
            }                                                                               \
        }                                                                                   \
        _mm256_storeu_pd(losses, _mm256_mul_pd(_mm256_set1_pd(0.5), squares));              \
        for (i = 0; i < n_rows; i++)                                                        \
            total += losses[i];                                                             \
        /* delta_hidden = (delta @ W2.T) hidden (1 - hidden), from W2 before its step */    \
        CYPROP_UNROLL(4)                                                                    \
        for (j = 0; j < 4; j++) {                                                           \
            if (j < n_hidden) {                                                             \
                t = P##_MUL(delta[0], P##_SET(W2[j * n_out]));                              \
                CYPROP_UNROLL(3)                                                            \
                for (k = 1; k < 4; k++)                                                     \
                    if (k < n_out)                                                          \
                        t = P##F_MULADD(delta[k], P##_SET(W2[j * n_out + k]), t);           \
                delta_hidden[j] = P##_MUL(t, P##_SIGMOID_DERIVATIVE(hidden[j]));            \
            }                                                                               \
        }                                                                                   \
        NAME##_layer_step_fixed(hidden, delta, n_hidden, n_out, n_rows, rate, W2,           \
                                dst + layer_2, check);                                      \
        NAME##_input_layer_step(x_rows, delta_hidden, n_in, n_hidden, n_rows, rate, W1,     \
                                dst, check);                                                \
        *loss_out = total;                                                                  \
    }                                                                                       \
    /* One step, params updated in place */                                                 \
    static ATTRIBUTES void NAME(                                                            \
        const P##_T* X, const P##_T* Y, ptrdiff_t n_rows, const ptrdiff_t* sizes,           \
        P##_T* params, double scale, P##_T rate, double* loss_out)                          \
    {                                                                                       \
        const P##_VEC zero = P##_ZERO();                                                    \
        P##_VEC x[4], x_rows[16], y[4], check = zero;                                       \
        NAME##_columns(X, n_rows, sizes[0], x);                                             \
        NAME##_rows(X, n_rows, sizes[0], x_rows);                                           \
        NAME##_columns(Y, n_rows, sizes[2], y);                                             \
        NAME##_step(x, x_rows, y, n_rows, sizes, params, params, scale, rate, loss_out,     \
                    &check);                                                                \
    }                                                                                       \
    /* Full-batch training, train_epochs' loop for one batch an epoch: epoch i is one       \
     * step on all n_rows rows at the rate rates[i], and losses[i] is its loss, divided     \
     * by n_rows when mean is set. rows holds two more sets of parameters, the second of    \
     * which, on entry, holds the last known good: those to restore should the first        \
     * epoch's loss not be finite. The three sets take turns, each step reading one and     \
     * writing the next, so that the parameters at the start of the last two epochs are     \
     * at hand without copies. Stops after n_epochs, or at the first epoch whose loss or    \
     * new parameters are not finite: *status is then 1 (loss), with params restored to     \
     * the last known good, or 2 (parameters), with params restored to those at the         \
     * epoch's start; else 0. *completed receives the number of epochs completed, and the   \
     * second set in rows the last known good on return. */                                 \
    static ATTRIBUTES void EPOCHS(                                                          \
        const P##_T* X, const P##_T* Y, ptrdiff_t n_rows, const ptrdiff_t* sizes,           \
        P##_T* params, P##_T* rows, double scale, int mean, const double* rates,            \
        ptrdiff_t n_epochs, double* losses, ptrdiff_t* completed, int* status)              \
    {                                                                                       \
        const ptrdiff_t n_params = sizes[0] * sizes[1] + sizes[1] + sizes[1] * sizes[2]     \
                                   + sizes[2];                                              \
        const P##_VEC zero = P##_ZERO();                                                    \
        P##_VEC x[4], x_rows[16], y[4], check;                                              \
        P##_T *known_good = rows + n_params, *src = params, *dst = rows, *spare;            \
        double loss;                                                                        \
        ptrdiff_t i;                                                                        \
        *status = 0;                                                                        \
        NAME##_columns(X, n_rows, sizes[0], x);                                             \
        NAME##_rows(X, n_rows, sizes[0], x_rows);                                           \
        NAME##_columns(Y, n_rows, sizes[2], y);                                             \
        for (i = 0; i < n_epochs; i++) {                                                    \
            check = zero;                                                                   \
            NAME##_step(x, x_rows, y, n_rows, sizes, src, dst, scale, (P##_T)rates[i],      \
                        &loss, &check);                                                     \
            if (!isfinite(loss)) {                                                          \
                *status = 1;                                                                \
                break;                                                                      \
            }                                                                               \
            if (!P##_ALL_ORDERED(check)) {                                                  \
                *status = 2;                                                                \
                known_good = src;                                                           \
                break;                                                                      \
            }                                                                               \
            losses[i] = mean ? loss / (double)n_rows : loss;                                \
            spare = known_good;                                                             \
            known_good = src;                                                               \
            src = dst;                                                                      \
            dst = spare;                                                                    \
        }                                                                                   \
        *completed = i;                                                                     \
        if (*status != 0)                                                                   \
            src = known_good;                                                               \
        /* params <- src and rows' second set <- known_good, with dst free */               \
        if (src != params && known_good == params) {                                        \
            memcpy(dst, known_good, n_params * sizeof(P##_T));                              \
            known_good = dst;                                                               \
        }                                                                                   \
        if (src != params)                                                                  \
            memcpy(params, src, n_params * sizeof(P##_T));                                  \
        if (*status == 0 && known_good != rows + n_params)                                  \
            memcpy(rows + n_params, known_good, n_params * sizeof(P##_T));                  \
    }

/* SIGMOID or SIGMOIDS, for CYPROP_DEFINE_TINY_STEP, that does nothing */
#define CYPROP_TINY_AS_IT_IS(...) __VA_ARGS__
#define CYPROP_TINY_NOTHING(v, n) ((void)(v), (void)(n))

CYPROP_DEFINE_TINY_STEP(cyprop_tiny_step_d_fma, cyprop_tiny_epochs_d_fma, D4,
                        cyprop_sigmoid_d_fma_vec, CYPROP_TINY_NOTHING, CYPROP_AVX2_FMA)
CYPROP_DEFINE_TINY_STEP(cyprop_tiny_step_f_fma, cyprop_tiny_epochs_f_fma, F4,
                        cyprop_sigmoid_f_fma_vec, CYPROP_TINY_NOTHING, CYPROP_AVX2_FMA)

/* The same step again where the CPU has AVX-512VL: the same operations,
 * lane by lane, so the same bits, compiled with AVX-512's encodings. With
 * them gcc folds a third of the broadcasts into the multiply-adds as
 * operands and has 32 registers (4% fewer instructions); and in double a
 * layer's sigmoids go two units to a 512-bit vector, half the instructions
 * for the longest part of the step. In a C loop on a Zen 5 EPYC the
 * lesson's step took 44-45 ns instead of 51-52 on the AVX2 copy (the
 * encodings alone: 48-50), and in float 40-41 instead of 44
 * (benchmarks/README.md). */
#if defined(CYPROP_AVX512_CODE)
/* SIGMOIDS for the double copy: a layer's units two at a time, in 8 lanes,
 * through the 512-bit sigmoid; a single one at its own width. For floats,
 * all four units in 16 lanes were no faster than one at a time. */
static CYPROP_AVX512VL_FMA CYPROP_ALWAYS_INLINE void cyprop_tiny_sigmoids_d_fma_avx512(
    __m256d* v, ptrdiff_t n)
{
    __m512d first, second;
    if (n == 1) {
        v[0] = cyprop_sigmoid_d4_fma_avx512_vec(v[0]);
        return;
    }
    first = cyprop_sigmoid_d_fma_avx512_vec(
        _mm512_insertf64x4(_mm512_castpd256_pd512(v[0]), v[1], 1));
    if (n > 2) {
        second = cyprop_sigmoid_d_fma_avx512_vec(
            _mm512_insertf64x4(_mm512_castpd256_pd512(v[2]), v[3], 1));
        v[2] = _mm512_castpd512_pd256(second);
        if (n > 3)
            v[3] = _mm512_extractf64x4_pd(second, 1);
    }
    v[0] = _mm512_castpd512_pd256(first);
    v[1] = _mm512_extractf64x4_pd(first, 1);
}

CYPROP_DEFINE_TINY_STEP(cyprop_tiny_step_d_fma_avx512, cyprop_tiny_epochs_d_fma_avx512, D4,
                        CYPROP_TINY_AS_IT_IS, cyprop_tiny_sigmoids_d_fma_avx512,
                        CYPROP_AVX512VL_FMA)
CYPROP_DEFINE_TINY_STEP(cyprop_tiny_step_f_fma_avx512, cyprop_tiny_epochs_f_fma_avx512, F4,
                        cyprop_sigmoid_f_fma_avx512_vec, CYPROP_TINY_NOTHING,
                        CYPROP_AVX512VL_FMA)
#endif
#endif

/* NAME_fma_avx512 where the CPU has AVX-512VL (and CYPROP_DISABLE_AVX512=1
 * is not set), else NAME_fma where it has AVX2 and FMA (and CYPROP_DISABLE_AVX2=1
 * is not set), and 1 from the entry point */
#if defined(CYPROP_AVX2) && defined(CYPROP_AVX512_CODE)
#define CYPROP_TRY_FMA(NAME, ...)                                                   \
    CYPROP_TRY_WHERE(cyprop_cpu_has_avx512vl_fma, NAME##_fma_avx512, __VA_ARGS__)  \
    CYPROP_TRY_WHERE(cyprop_cpu_has_fma, NAME##_fma, __VA_ARGS__)
#elif defined(CYPROP_AVX2)
#define CYPROP_TRY_FMA(NAME, ...) CYPROP_TRY_WHERE(cyprop_cpu_has_fma, NAME##_fma, __VA_ARGS__)
#else
#define CYPROP_TRY_FMA(NAME, ...)
#endif

/* NAME, for T: 1, with the batch's loss in loss_out, when the step was taken
 * here; 0, with nothing touched, when the CPU lacks AVX2 or FMA (or
 * CYPROP_DISABLE_AVX2=1 is set) and the caller must take it. */
#define CYPROP_DEFINE_TINY_STEP_ENTRY(NAME, T)                                              \
    static CYPROP_NOINLINE int NAME(const T* X, const T* Y, ptrdiff_t n_rows,               \
                                    const ptrdiff_t* sizes, T* params, double scale,        \
                                    T rate, double* loss_out)                               \
    {                                                                                       \
        CYPROP_TRY_FMA(NAME, X, Y, n_rows, sizes, params, scale, rate, loss_out)            \
        (void)X; (void)Y; (void)n_rows; (void)sizes; (void)params; (void)scale;             \
        (void)rate; (void)loss_out;                                                         \
        return 0;                                                                           \
    }

/* The same for the epochs' loop. */
#define CYPROP_DEFINE_TINY_EPOCHS_ENTRY(NAME, T)                                           \
    static CYPROP_NOINLINE int NAME(const T* X, const T* Y, ptrdiff_t n_rows,              \
                                    const ptrdiff_t* sizes, T* params, T* rows,            \
                                    double scale, int mean, const double* rates,           \
                                    ptrdiff_t n_epochs, double* losses,                    \
                                    ptrdiff_t* completed, int* status)                     \
    {                                                                                      \
        CYPROP_TRY_FMA(NAME, X, Y, n_rows, sizes, params, rows, scale, mean, rates,        \
                       n_epochs, losses, completed, status)                                \
        (void)X; (void)Y; (void)n_rows; (void)sizes; (void)params; (void)rows;             \
        (void)scale; (void)mean; (void)rates; (void)n_epochs; (void)losses;                \
        (void)completed; (void)status;                                                     \
        return 0;                                                                          \
    }

CYPROP_DEFINE_TINY_STEP_ENTRY(cyprop_tiny_step_d, double)
CYPROP_DEFINE_TINY_STEP_ENTRY(cyprop_tiny_step_f, float)
CYPROP_DEFINE_TINY_EPOCHS_ENTRY(cyprop_tiny_epochs_d, double)
CYPROP_DEFINE_TINY_EPOCHS_ENTRY(cyprop_tiny_epochs_f, float)

/* Z = the tiny step's sigmoid of Z, in place, and 1; 0, with Z untouched,
 * where the CPU does not take the step. For the tests of its accuracy. */
#define CYPROP_DEFINE_TINY_SIGMOID_ENTRY(NAME, SIGMOID, T)                                 \
    static CYPROP_NOINLINE int NAME(T* Z, ptrdiff_t n)                                     \
    {                                                                                      \
        CYPROP_TRY_FMA(SIGMOID, Z, n)                                                      \
        (void)Z; (void)n;                                                                  \
        return 0;                                                                          \
    }

CYPROP_DEFINE_TINY_SIGMOID_ENTRY(cyprop_tiny_sigmoid_d, cyprop_sigmoid_d, double)
CYPROP_DEFINE_TINY_SIGMOID_ENTRY(cyprop_tiny_sigmoid_f, cyprop_sigmoid_f, float)

#endif /* CYPROP_TINY_STEP_H */
