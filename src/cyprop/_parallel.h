/* A few worker threads that run the parts of one task beside the caller.
 *
 * The core's minibatch products take 60 to 130 microseconds each on W3, a
 * few thousand of them an epoch; starting threads for each, or waking
 * threads that sleep, would cost a noticeable part of that. The workers
 * here start once, on the first task that asks for them, and after each
 * part they wait a little while spinning (a millisecond), so that the next
 * product of the same step finds them awake; past that they sleep on a
 * condition variable and cost nothing.
 *
 * cyprop_run_parts(task, args, parts) calls task(args, part, parts) for
 * every part in [0, parts): part 0 on the calling thread, the others on
 * the workers, and returns when all have returned. It runs every part on
 * the caller, one after another, when another thread is using the workers
 * (two networks trained at once from two Python threads), when parts
 * exceeds CYPROP_MAX_PARTS, or when the threads cannot be started. The
 * parts must not depend on which thread runs them, so that the result is
 * the same either way.
 *
 * After fork(), the child has none of the parent's workers: it starts its
 * own when it first needs them. */
#ifndef CYPROP_PARALLEL_H
#define CYPROP_PARALLEL_H

#include <stddef.h>

#define CYPROP_MAX_PARTS 8

typedef void (*cyprop_part_t)(void* args, int part, int parts);

/* Every part on the calling thread, one after another. */
static void cyprop_run_parts_here(cyprop_part_t task, void* args, int parts)
{
    int part;
    for (part = 0; part < parts; part++)
        task(args, part, parts);
}

#if defined(__GNUC__) && (defined(__linux__) || defined(__APPLE__))
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CYPROP_RELAX() _mm_pause()
#else
#define CYPROP_RELAX() ((void)0)
#endif

/* Workers spin this long for the next task; a caller waiting for its
 * workers to finish spins this long before it yields the CPU between looks. */
#define CYPROP_SPIN_NANOSECONDS 1000000

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started;              /* workers running (guarded by start_lock) */
    int busy;                 /* a caller holds the workers */
    unsigned long generation; /* bumped for each task */
    int sleepers;             /* workers waiting on wake */
    int done;                 /* parts finished by the workers this task */
    int rest;                 /* spinning workers should sleep now */
    cyprop_part_t task;
    void* args;
    int parts;
} cyprop_pool_t;

static cyprop_pool_t cyprop_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                                    0, 0, 0, 0, 0, 0, 0, 0, 0};
static pthread_mutex_t cyprop_pool_start_lock = PTHREAD_MUTEX_INITIALIZER;
/* The generation each worker was started at: the task after it is its first. */
static unsigned long cyprop_pool_first_generation[CYPROP_MAX_PARTS];

static long long cyprop_nanoseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void* cyprop_worker(void* index_pointer)
{
    const int index = (int)(ptrdiff_t)index_pointer;
    unsigned long seen = cyprop_pool_first_generation[index];
    for (;;) {
        const long long give_up = cyprop_nanoseconds() + CYPROP_SPIN_NANOSECONDS;
        int spins = 0;
        while (__atomic_load_n(&cyprop_pool.generation, __ATOMIC_SEQ_CST) == seen) {
            CYPROP_RELAX();
            if (__atomic_load_n(&cyprop_pool.rest, __ATOMIC_RELAXED)
                || (++spins % 64 == 0 && cyprop_nanoseconds() > give_up)) {
                /* A caller that bumps the generation after this worker
                 * counts itself a sleeper takes the lock to wake it, and
                 * the generation is read again under the lock: no task is
                 * missed. */
                pthread_mutex_lock(&cyprop_pool.lock);
                __atomic_add_fetch(&cyprop_pool.sleepers, 1, __ATOMIC_SEQ_CST);
                while (__atomic_load_n(&cyprop_pool.generation, __ATOMIC_SEQ_CST) == seen)
                    pthread_cond_wait(&cyprop_pool.wake, &cyprop_pool.lock);
                __atomic_sub_fetch(&cyprop_pool.sleepers, 1, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&cyprop_pool.lock);
                break;
            }
        }
        seen = __atomic_load_n(&cyprop_pool.generation, __ATOMIC_SEQ_CST);
        if (index < cyprop_pool.parts)
            cyprop_pool.task(cyprop_pool.args, index, cyprop_pool.parts);
        __atomic_add_fetch(&cyprop_pool.done, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void cyprop_pool_after_fork(void)
{
    /* The child's only thread is the one that forked. */
    pthread_mutex_init(&cyprop_pool.lock, NULL);
    pthread_cond_init(&cyprop_pool.wake, NULL);
    pthread_mutex_init(&cyprop_pool_start_lock, NULL);
    __atomic_store_n(&cyprop_pool.started, 0, __ATOMIC_SEQ_CST);
    cyprop_pool.busy = 0;
    cyprop_pool.sleepers = 0;
}

/* Start workers up to `wanted`; returns how many run. */
static int cyprop_pool_start(int wanted)
{
    static int fork_handler = 0;
    pthread_attr_t attributes;
    pthread_t thread;
    sigset_t all_signals, old_signals;
    int started, created;
    pthread_mutex_lock(&cyprop_pool_start_lock);
    if (!fork_handler)
        fork_handler = pthread_atfork(NULL, NULL, cyprop_pool_after_fork) == 0 ? 1 : -1;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    /* Without the fork handler a child would wait on workers it lacks. */
    while (fork_handler == 1 && cyprop_pool.started < wanted) {
        /* Set before the thread starts; the caller holds the workers, so
         * the generation does not move until this returns. */
        cyprop_pool_first_generation[cyprop_pool.started + 1] = cyprop_pool.generation;
        /* Signals go to the threads Python runs, not to the workers. */
        sigfillset(&all_signals);
        pthread_sigmask(SIG_SETMASK, &all_signals, &old_signals);
        created = pthread_create(&thread, &attributes, cyprop_worker,
                                 (void*)(ptrdiff_t)(cyprop_pool.started + 1)) == 0;
        pthread_sigmask(SIG_SETMASK, &old_signals, NULL);
        if (!created)
            break;
        __atomic_store_n(&cyprop_pool.started, cyprop_pool.started + 1, __ATOMIC_SEQ_CST);
    }
    pthread_attr_destroy(&attributes);
    started = cyprop_pool.started;
    pthread_mutex_unlock(&cyprop_pool_start_lock);
    return started;
}

/* Send spinning workers to sleep at once: called before a product that the
 * BLAS may split between its own threads, which would otherwise share the
 * cores with workers waiting for nothing (a network whose 64-row products
 * alternated between the two took 1.8 times as long at two threads). */
static void cyprop_pool_rest(void)
{
    if (__atomic_load_n(&cyprop_pool.started, __ATOMIC_RELAXED) > 0
        && !__atomic_load_n(&cyprop_pool.rest, __ATOMIC_RELAXED))
        __atomic_store_n(&cyprop_pool.rest, 1, __ATOMIC_SEQ_CST);
}

/* How many CPUs this process may run on, asked once: more threads than that
 * would wait for each other. */
static int cyprop_pool_cpus(void)
{
    static int cpus = 0;
    if (cpus == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
#if defined(__linux__) && defined(CPU_COUNT)
        cpu_set_t allowed;
        if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 0)
            online = CPU_COUNT(&allowed);
#endif
        cpus = online > 0 ? (int)online : 1;
    }
    return cpus;
}

/* How many workers have started in this process. */
static int cyprop_pool_workers(void)
{
    return __atomic_load_n(&cyprop_pool.started, __ATOMIC_SEQ_CST);
}

/* Runs every part at once, part 0 on the caller and the others on the
 * workers, and returns 1 when they have all returned; returns 0 without
 * running any when that cannot be (see cyprop_run_parts). */
static int cyprop_run_parts_at_once(cyprop_part_t task, void* args, int parts)
{
    int workers = parts - 1, expected = 0, spins = 0;
    long long give_up;
    if (parts > 1 && parts <= CYPROP_MAX_PARTS
        && __atomic_compare_exchange_n(&cyprop_pool.busy, &expected, 1, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST)) {
        if (__atomic_load_n(&cyprop_pool.started, __ATOMIC_SEQ_CST) >= workers
            || cyprop_pool_start(workers) >= workers) {
            cyprop_pool.task = task;
            cyprop_pool.args = args;
            cyprop_pool.parts = parts;
            __atomic_store_n(&cyprop_pool.done, 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&cyprop_pool.rest, 0, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&cyprop_pool.generation, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&cyprop_pool.sleepers, __ATOMIC_SEQ_CST) > 0) {
                pthread_mutex_lock(&cyprop_pool.lock);
                pthread_cond_broadcast(&cyprop_pool.wake);
                pthread_mutex_unlock(&cyprop_pool.lock);
            }
            task(args, 0, parts);
            /* Every started worker counts itself done, with a part or without. */
            give_up = cyprop_nanoseconds() + CYPROP_SPIN_NANOSECONDS;
            while (__atomic_load_n(&cyprop_pool.done, __ATOMIC_SEQ_CST) < cyprop_pool.started) {
                CYPROP_RELAX();
                /* a worker that lost its CPU gets it back sooner */
                if (++spins % 64 == 0 && cyprop_nanoseconds() > give_up)
                    sched_yield();
            }
            __atomic_store_n(&cyprop_pool.busy, 0, __ATOMIC_SEQ_CST);
            return 1;
        }
        __atomic_store_n(&cyprop_pool.busy, 0, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static void cyprop_run_parts(cyprop_part_t task, void* args, int parts)
{
    if (!cyprop_run_parts_at_once(task, args, parts))
        cyprop_run_parts_here(task, args, parts);
}

/* The parts of one task, all running at once (cyprop_run_parts_at_once),
 * wait in cyprop_barrier_wait until every part has arrived there. The
 * waiting spins, as the workers do between tasks, and yields the CPU
 * between looks after CYPROP_SPIN_NANOSECONDS, so that a part whose thread
 * lost its CPU gets it back. */
typedef struct {
    int parts;
    int arrived;
    unsigned long passed; /* barriers completed */
} cyprop_barrier_t;

static void cyprop_barrier_init(cyprop_barrier_t* barrier, int parts)
{
    barrier->parts = parts;
    barrier->arrived = 0;
    barrier->passed = 0;
}

static void cyprop_barrier_wait(cyprop_barrier_t* barrier)
{
    unsigned long passed;
    long long give_up;
    int spins = 0;
    if (barrier->parts < 2)
        return;
    /* Read before arriving: the last to arrive bumps it only after this
     * part has counted itself. */
    passed = __atomic_load_n(&barrier->passed, __ATOMIC_SEQ_CST);
    if (__atomic_add_fetch(&barrier->arrived, 1, __ATOMIC_SEQ_CST) == barrier->parts) {
        __atomic_store_n(&barrier->arrived, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&barrier->passed, passed + 1, __ATOMIC_SEQ_CST);
        return;
    }
    give_up = cyprop_nanoseconds() + CYPROP_SPIN_NANOSECONDS;
    while (__atomic_load_n(&barrier->passed, __ATOMIC_SEQ_CST) == passed) {
        CYPROP_RELAX();
        if (++spins % 64 == 0 && cyprop_nanoseconds() > give_up)
            sched_yield();
    }
}
#else
static int cyprop_pool_cpus(void) { return 1; }
static void cyprop_pool_rest(void) {}
static int cyprop_pool_workers(void) { return 0; }

static int cyprop_run_parts_at_once(cyprop_part_t task, void* args, int parts)
{
    (void)task; (void)args; (void)parts;
    return 0;
}

static void cyprop_run_parts(cyprop_part_t task, void* args, int parts)
{
    cyprop_run_parts_here(task, args, parts);
}

/* Only one part ever runs at a time here: nothing to wait for. */
typedef struct {
    int parts;
} cyprop_barrier_t;

static void cyprop_barrier_init(cyprop_barrier_t* barrier, int parts) { barrier->parts = parts; }
static void cyprop_barrier_wait(cyprop_barrier_t* barrier) { (void)barrier; }
#endif

/* A part's share of a task in blocks, which another part may take once its
 * own are done. On a virtual machine one core can run at half speed or less
 * for tens of milliseconds while the other runs at full speed (host load
 * beyond the guest), and parts of fixed size then wait at each barrier for
 * the slower core. Each part first takes its own blocks from the front; a
 * part that has none left takes another's from the back. With cores that
 * run alike nothing moves, and the blocks are the parts' fixed shares.
 *
 * The front and the end of the blocks not yet taken share one 32-bit word,
 * 16 bits each (the core's split has at most 2^14 hidden units, 683 blocks
 * of doubles): 32-bit platforms then need no 64-bit atomics, which some of
 * them take from libatomic. It changes by compare-and-swap and is padded to
 * two cache lines, so that two parts' words never share one. The owner sets
 * its count between two barriers at which no part takes blocks. */
typedef struct {
    unsigned int range; /* front << 16 | end */
    char padding[128 - sizeof(unsigned int)];
} cyprop_blocks_t;

/* Blocks taken from another part's share in this process, for tests and
 * benchmarks: how often the cores ran unevenly enough for it. */
static unsigned long cyprop_blocks_moved = 0;

/* With gcc and clang, the word changes by atomic operations. Elsewhere (MSVC)
 * cyprop_run_parts_at_once never runs parts at once: one part at a time
 * takes blocks, and plain reads and writes do. */
#if defined(__GNUC__)
#define CYPROP_BLOCKS_LOAD(at) __atomic_load_n(at, __ATOMIC_SEQ_CST)
#define CYPROP_BLOCKS_STORE(at, value) __atomic_store_n(at, value, __ATOMIC_SEQ_CST)
#define CYPROP_BLOCKS_SWAP(at, expected, value)                                                 \
    __atomic_compare_exchange_n(at, expected, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#define CYPROP_BLOCKS_COUNT_MOVE() __atomic_add_fetch(&cyprop_blocks_moved, 1, __ATOMIC_RELAXED)
#else
#define CYPROP_BLOCKS_LOAD(at) (*(at))
#define CYPROP_BLOCKS_STORE(at, value) (*(at) = (value))
#define CYPROP_BLOCKS_SWAP(at, expected, value) (*(at) = (value), 1)
#define CYPROP_BLOCKS_COUNT_MOVE() (++cyprop_blocks_moved)
#endif

static unsigned long cyprop_blocks_moved_count(void)
{
    return CYPROP_BLOCKS_LOAD(&cyprop_blocks_moved);
}

/* count at most 65,535 */
static void cyprop_blocks_reset(cyprop_blocks_t* blocks, int count)
{
    CYPROP_BLOCKS_STORE(&blocks->range, (unsigned int)count);
}

/* The index of the block taken, from the front or from the back; -1 when
 * every block has been taken. */
static int cyprop_blocks_take(cyprop_blocks_t* blocks, int from_back)
{
    unsigned int range = CYPROP_BLOCKS_LOAD(&blocks->range), left, front, end;
    do {
        front = range >> 16;
        end = range & 0xffffu;
        if (front >= end)
            return -1;
        left = from_back ? (front << 16 | (end - 1)) : ((front + 1) << 16 | end);
    } while (!CYPROP_BLOCKS_SWAP(&blocks->range, &range, left));
    if (!from_back)
        return (int)front;
    CYPROP_BLOCKS_COUNT_MOVE();
    return (int)(end - 1);
}

#endif /* CYPROP_PARALLEL_H */
