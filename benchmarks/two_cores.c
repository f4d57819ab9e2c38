/* How steadily each core runs arithmetic while the others do too: no library, no memory.
 *
 *     gcc -O2 -march=native benchmarks/two_cores.c -o /tmp/two_cores -lpthread
 *     /tmp/two_cores [threads=2] [seconds=3]
 *
 * Each thread repeats the same chunk of fused multiply-adds on registers (about a tenth
 * of a millisecond) and notes when each chunk ends. The program then counts, for every
 * window of 20 ms, how many chunks each thread finished, and compares that with full
 * speed: the most any thread finished in any window (nothing runs the chunks faster, so
 * one undisturbed window sets it). A thread below 85% of it in a window ran slow there;
 * a split product or a barrier waits for the slowest thread, so windows where only one
 * thread ran slow are what a fixed split of the work between threads loses to one that
 * moves work to the faster thread. Run it on an otherwise idle machine.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { MOST_THREADS = 16, WINDOW_MS = 20, MOST_CHUNKS = 1 << 20 };

typedef float vector __attribute__((vector_size(64)));

static volatile int chunk_length = 24000; /* volatile: computed at run time */
static volatile int started = 0;
static double start_time, run_seconds;
static double* chunk_ends[MOST_THREADS];
static long chunk_counts[MOST_THREADS];

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec * 1e-9;
}

/* Eight independent chains of multiply-adds, so that the units stay busy. */
static float chunk(void)
{
    vector sums[8], scale, shift;
    float total = 0;
    int i, k, lane;
    for (i = 0; i < 8; i++)
        for (lane = 0; lane < 16; lane++)
            sums[i][lane] = 1.0f + i * 1e-7f;
    for (lane = 0; lane < 16; lane++) {
        scale[lane] = 0.9999999f;
        shift[lane] = 1e-8f;
    }
    for (k = 0; k < chunk_length; k++)
        for (i = 0; i < 8; i++)
            sums[i] = sums[i] * scale + shift;
    for (i = 0; i < 8; i++)
        for (lane = 0; lane < 16; lane++)
            total += sums[i][lane];
    return total;
}

static void* run(void* argument)
{
    const long thread = (long)argument;
    float total = 0;
    long count = 0;
    while (!started)
        ;
    while (count < MOST_CHUNKS) {
        double now;
        total += chunk();
        now = seconds() - start_time;
        chunk_ends[thread][count++] = now;
        if (now > run_seconds)
            break;
    }
    chunk_counts[thread] = count;
    return total == 12345.0f ? argument : NULL; /* keeps the arithmetic */
}

int main(int argc, char** argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    pthread_t workers[MOST_THREADS];
    long windows, window, *counts, full, chunk_index;
    long slow_one = 0, slow_all = 0, slow_some = 0, steady = 0;
    int thread;
    run_seconds = argc > 2 ? atof(argv[2]) : 3.0;
    if (threads < 1 || threads > MOST_THREADS || run_seconds <= 0.1) {
        fprintf(stderr, "usage: %s [threads 1-%d] [seconds > 0.1]\n", argv[0], MOST_THREADS);
        return 2;
    }
    windows = (long)(run_seconds * 1000 / WINDOW_MS);
    counts = calloc((size_t)(threads * windows), sizeof(long));
    for (thread = 0; thread < threads; thread++) {
        chunk_ends[thread] = malloc(sizeof(double) * MOST_CHUNKS);
        if (!chunk_ends[thread] || !counts) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
    }
    for (thread = 0; thread < threads; thread++)
        pthread_create(&workers[thread], NULL, run, (void*)(long)thread);
    start_time = seconds();
    started = 1;
    for (thread = 0; thread < threads; thread++)
        pthread_join(workers[thread], NULL);

    for (thread = 0; thread < threads; thread++)
        for (chunk_index = 0; chunk_index < chunk_counts[thread]; chunk_index++) {
            window = (long)(chunk_ends[thread][chunk_index] * 1000 / WINDOW_MS);
            if (window < windows)
                counts[thread * windows + window]++;
        }
    full = 1;
    for (window = 0; window < threads * windows; window++)
        if (counts[window] > full)
            full = counts[window];
    printf("%d thread(s), %.1f s: full speed is %ld chunks in %d ms (%.1f us a chunk)\n",
           threads, run_seconds, full, WINDOW_MS, WINDOW_MS * 1000.0 / full);
    for (thread = 0; thread < threads; thread++) {
        long done = 0;
        for (window = 0; window < windows; window++)
            done += counts[thread * windows + window];
        printf("thread %d: %.0f%% of full speed over the run\n", thread,
               100.0 * done / (full * windows));
    }
    for (window = 0; window < windows; window++) {
        int slow = 0;
        for (thread = 0; thread < threads; thread++)
            slow += counts[thread * windows + window] * 100 < full * 85;
        steady += slow == 0;
        slow_one += slow == 1 && threads > 1;
        slow_some += slow > 1 && slow < threads;
        slow_all += slow == threads;
    }
    printf("%ld windows of %d ms: all threads at 85%% of full speed or more in %ld, one "
           "below in %ld", windows, WINDOW_MS, steady, threads > 1 ? slow_one : 0);
    if (threads > 2)
        printf(", some but not all below in %ld", slow_some);
    printf(", every thread below in %ld\n", slow_all);
    return 0;
}
