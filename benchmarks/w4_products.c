/* W4's epoch of matrix products in training order, straight from C on cyprop's OpenBLAS.
 *
 *     LIB=$(.venv/bin/python -c "import scipy_openblas32; print(scipy_openblas32.get_lib_dir())")
 *     gcc -O3 -march=native benchmarks/w4_products.c -o /tmp/w4_products -L$LIB -lscipy_openblas -Wl,-rpath,$LIB
 *     /tmp/w4_products [threads=2] [epochs=6]
 *
 * Each batch of 256 rows runs the products a plain SGD step of W4 (1024-1024-1024-10,
 * relu) hands to BLAS, in the order and with the transposes and beta of cyprop's core
 * (backpropagate_and_step in _core.pyx): three forward products, then from the top
 * layer down, delta @ W.T from the old W and the fused step W += -rate A_prev.T @ delta.
 * Between them only the relu and its derivative run; no bias, loss or softmax. The
 * time of an epoch is then what a library that calls this BLAS for W4 would take if
 * all of its own work were free, with no Python in between (bench_overhead.py's
 * replay calls BLAS from Python). The program also measures the 2048^2 sgemm peak at
 * the same thread count, as bench_peers.py does, and prints each epoch as a fraction
 * of W4's limit, and the time of each product per batch in the fastest epoch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void scipy_sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                         const int* k, const float* alpha, const float* A, const int* lda,
                         const float* B, const int* ldb, const float* beta, float* C,
                         const int* ldc);
extern void scipy_openblas_set_num_threads(int threads);

enum { SAMPLES = 16384, BATCH = 256, WIDE = 1024, CLASSES = 10, PRODUCTS = 8 };

static const char* product_names[PRODUCTS] = {
    "X @ W1", "H1 @ W2", "H2 @ W3", "d3 @ W3.T", "W3 step", "d2 @ W2.T", "W2 step", "W1 step",
};

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec * 1e-9;
}

/* Row-major C (m, n) = alpha op(A) @ op(B) + beta C, as the column-major product
 * C.T = op(B).T @ op(A).T: the operands trade places and nothing is copied. */
static void product(int transpose_a, int transpose_b, int m, int n, int k, float alpha,
                    const float* A, int lda, const float* B, int ldb, float beta, float* C,
                    int ldc)
{
    const char trans_a = transpose_a ? 'T' : 'N', trans_b = transpose_b ? 'T' : 'N';
    scipy_sgemm_(&trans_b, &trans_a, &n, &m, &k, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
}

static float* filled(long count, float scale)
{
    float* values = aligned_alloc(64, sizeof(float) * count);
    long i;
    if (!values) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (i = 0; i < count; i++)
        values[i] = (rand() / (float)RAND_MAX - 0.5f) * scale;
    return values;
}

static void relu(float* values, long count)
{
    long i;
    for (i = 0; i < count; i++)
        values[i] = values[i] > 0 ? values[i] : 0;
}

/* delta = delta where the activation is positive, else 0 */
static void relu_backward(float* delta, const float* activation, long count)
{
    long i;
    for (i = 0; i < count; i++)
        delta[i] = activation[i] > 0 ? delta[i] : 0;
}

static double peak_rate(void)
{
    const int n = 2048;
    const float one = 1, zero = 0;
    float *A = filled((long)n * n, 1), *B = filled((long)n * n, 1), *C = filled((long)n * n, 1);
    double best = 1e30;
    int round;
    for (round = 0; round < 8; round++) {
        const double start = seconds();
        double elapsed;
        scipy_sgemm_("N", "N", &n, &n, &n, &one, A, &n, B, &n, &zero, C, &n);
        elapsed = seconds() - start;
        if (elapsed < best)
            best = elapsed;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * n * n * n / best;
}

static int by_value(const void* a, const void* b)
{
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2, epochs = argc > 2 ? atoi(argv[2]) : 6;
    const float rate = 0.01f / BATCH;
    /* flops of each product in product_names, per batch */
    const double wide = 2.0 * BATCH * WIDE * WIDE, narrow = 2.0 * BATCH * WIDE * CLASSES;
    const double product_flops[PRODUCTS] = {wide, wide, narrow, narrow, narrow, wide, wide, wide};
    double flops = 0;
    float *X, *W1, *W2, *W3, *H1, *H2, *Z3, *d1, *d2, *d3;
    double batch_times[PRODUCTS], best_times[PRODUCTS], epoch_times[64], peak, limit;
    double fastest = 0;
    int epoch, i;
    long start;

    for (i = 0; i < PRODUCTS; i++)
        flops += product_flops[i] * (SAMPLES / BATCH);
    if (threads < 1 || epochs < 1 || epochs > 64) {
        fprintf(stderr, "usage: %s [threads >= 1] [epochs 1-64]\n", argv[0]);
        return 2;
    }
    scipy_openblas_set_num_threads(threads);
    srand(4);
    X = filled((long)SAMPLES * WIDE, 2);
    W1 = filled((long)WIDE * WIDE, 0.08f);
    W2 = filled((long)WIDE * WIDE, 0.08f);
    W3 = filled((long)WIDE * CLASSES, 0.08f);
    H1 = filled((long)BATCH * WIDE, 0);
    H2 = filled((long)BATCH * WIDE, 0);
    Z3 = filled((long)BATCH * CLASSES, 0);
    d1 = filled((long)BATCH * WIDE, 0);
    d2 = filled((long)BATCH * WIDE, 0);
    d3 = filled((long)BATCH * CLASSES, 0);

    peak = peak_rate();
    limit = flops / peak;
    printf("%d thread(s); sgemm 2048^2 peak %.1f GFLOP/s; W4's %.4g flops take %.0f ms at it "
           "(the limit)\n", threads, peak / 1e9, flops, limit * 1e3);
    for (epoch = 0; epoch < epochs; epoch++) {
        const double epoch_start = seconds();
        for (i = 0; i < PRODUCTS; i++)
            batch_times[i] = 0;
        for (start = 0; start + BATCH <= SAMPLES; start += BATCH) {
            const float* rows = X + start * WIDE;
            double t;
#define TIMED(index, call)                                                                    \
    t = seconds();                                                                            \
    call;                                                                                     \
    batch_times[index] += seconds() - t
            TIMED(0, product(0, 0, BATCH, WIDE, WIDE, 1, rows, WIDE, W1, WIDE, 0, H1, WIDE));
            relu(H1, (long)BATCH * WIDE);
            TIMED(1, product(0, 0, BATCH, WIDE, WIDE, 1, H1, WIDE, W2, WIDE, 0, H2, WIDE));
            relu(H2, (long)BATCH * WIDE);
            TIMED(2, product(0, 0, BATCH, CLASSES, WIDE, 1, H2, WIDE, W3, CLASSES, 0, Z3,
                             CLASSES));
            /* a stand-in for softmax minus the targets: small, and the same every run */
            for (i = 0; i < BATCH * CLASSES; i++)
                d3[i] = Z3[i] * 1e-3f;
            TIMED(3, product(0, 1, BATCH, WIDE, CLASSES, 1, d3, CLASSES, W3, CLASSES, 0, d2,
                             WIDE));
            TIMED(4, product(1, 0, WIDE, CLASSES, BATCH, -rate, H2, WIDE, d3, CLASSES, 1, W3,
                             CLASSES));
            relu_backward(d2, H2, (long)BATCH * WIDE);
            TIMED(5, product(0, 1, BATCH, WIDE, WIDE, 1, d2, WIDE, W2, WIDE, 0, d1, WIDE));
            TIMED(6, product(1, 0, WIDE, WIDE, BATCH, -rate, H1, WIDE, d2, WIDE, 1, W2, WIDE));
            relu_backward(d1, H1, (long)BATCH * WIDE);
            TIMED(7, product(1, 0, WIDE, WIDE, BATCH, -rate, rows, WIDE, d1, WIDE, 1, W1, WIDE));
#undef TIMED
        }
        epoch_times[epoch] = seconds() - epoch_start;
        if (epoch == 0 || epoch_times[epoch] < fastest) {
            fastest = epoch_times[epoch];
            for (i = 0; i < PRODUCTS; i++)
                best_times[i] = batch_times[i];
        }
        printf("epoch %d: %.1f ms, %.0f%% of the limit\n", epoch, epoch_times[epoch] * 1e3,
               100 * limit / epoch_times[epoch]);
    }
    qsort(epoch_times, epochs, sizeof(double), by_value);
    printf("median epoch %.1f ms (%.0f%% of the limit), fastest %.1f ms (%.0f%%)\n",
           epoch_times[epochs / 2] * 1e3, 100 * limit / epoch_times[epochs / 2],
           epoch_times[0] * 1e3, 100 * limit / epoch_times[0]);
    printf("per batch in the fastest epoch:\n");
    for (i = 0; i < PRODUCTS; i++) {
        const double each = best_times[i] / (SAMPLES / BATCH);
        printf("  %-10s %7.1f us %7.1f GFLOP/s\n", product_names[i], each * 1e6,
               product_flops[i] / each / 1e9);
    }
    return 0;
}
