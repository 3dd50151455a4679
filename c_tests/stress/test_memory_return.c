/*
 * test_memory_return.c - memory freed for good leaves the resident set.
 *
 * Worker threads (3 by default) together allocate 1 GiB in mixed sizes,
 * log-uniform from 16 B to 2 MiB, writing every page. Then everything is
 * freed (each thread frees its own blocks, except every fourth block, which
 * its neighbour frees: cross-thread frees). VmRSS (read from
 * /proc/self/status with open/read, so that measuring does not allocate) is
 * printed at the start, at the peak and at the end.
 *
 *   --case trim    the workers exit, then malloc_trim(0): VmRSS must be back
 *                  within TRIM_SLACK (8 MiB) of the start.
 *   --case purge   no malloc_trim: the workers stay alive; after sleeping past
 *                  the purge delay (300 ms > the default 200 ms) each worker
 *                  makes 64 small malloc/free pairs (a thread served by its
 *                  cache alone looks for due purges every 64th free): VmRSS
 *                  must be back
 *                  within PURGE_SLACK (16 MiB) of the start.
 *   --case purge-arena   as purge, but the pair is malloc(256 KiB)/free, a
 *                  size above the thread cache, so it reaches the arena.
 *
 * On failure the statistics and the non-empty bins are printed (what holds
 * the memory). Options: --threads N, --mib N (total, default 1024).
 * Closing line: "N passed, M failed".
 */
#include "../common.h"
#include "../../include/binmalloc.h"

#include <fcntl.h>
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define TRIM_SLACK (8 * MiB)
#define PURGE_SLACK (16 * MiB)
#define MAX_THREADS 16

typedef int (*stats_fn)(struct binmalloc_stats *);
static stats_fn get_stats;

/* Output without stdio (whose buffer is itself a malloc). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    if (n > 0) {
        ssize_t w = write(1, buf, (size_t)n);
        (void)w;
    }
}

/* VmRSS in bytes, read without allocating. */
static size_t rss(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strstr(buf, "\nVmRSS:");
    return p ? (size_t)strtoul(p + 7, NULL, 10) * 1024 : 0;
}

static double mib(size_t b) { return (double)b / (double)MiB; }

static void *os_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        _exit(2);
    }
    return p;
}

typedef struct {
    int id;
    size_t target;
    void **blocks;
    size_t *sizes;
    size_t count;
    size_t bytes;
    int failed;
} worker_t;

static worker_t workers[MAX_THREADS];
static int nthreads = 3;
static pthread_barrier_t barrier;
static int pair_size = 32;  /* the malloc/free pair of the purge cases */
static int do_pair;         /* purge cases: phase 3 exists */
#define MAX_BLOCKS (256 * 1024)

/* log-uniform in [16, 2 MiB] */
static size_t pick_size(bm_rng *r)
{
    double u = (double)(bm_rng_next(r) >> 11) / 9007199254740992.0;
    double lo = log(16.0), hi = log(2.0 * 1024 * 1024);
    size_t n = (size_t)exp(lo + u * (hi - lo));
    return n < 16 ? 16 : n;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    bm_rng r;
    bm_rng_seed(&r, 1234 + (uint64_t)w->id);
    pthread_barrier_wait(&barrier); /* 0: start measured */

    /* phase 1: allocate, writing every page */
    while (w->bytes < w->target && w->count < MAX_BLOCKS) {
        size_t n = pick_size(&r);
        if (n > w->target - w->bytes)
            n = w->target - w->bytes < 16 ? 16 : w->target - w->bytes;
        unsigned char *p = malloc(n);
        if (!p) {
            say("thread %d: malloc(%zu) failed\n", w->id, n);
            w->failed = 1;
            break;
        }
        memset(p, (int)(w->count & 0xff) | 1, n);
        w->blocks[w->count] = p;
        w->sizes[w->count] = n;
        w->count++;
        w->bytes += n;
    }
    pthread_barrier_wait(&barrier); /* 1: peak measured */
    pthread_barrier_wait(&barrier);

    /* phase 2: free own blocks, and every fourth of the neighbour's */
    worker_t *nb = &workers[(w->id + 1) % nthreads];
    for (size_t i = 0; i < w->count; i++)
        if (i % 4 != 0 || nthreads == 1) {
            unsigned char *p = w->blocks[i];
            if (p[0] != ((i & 0xff) | 1) || p[w->sizes[i] - 1] != ((i & 0xff) | 1))
                w->failed = 2;
            free(p);
        }
    if (nthreads > 1)
        for (size_t i = 0; i < nb->count; i += 4)
            free(nb->blocks[i]);
    pthread_barrier_wait(&barrier); /* 2: after-free measured */

    if (do_pair) {
        pthread_barrier_wait(&barrier); /* 3: main slept past the delay */
        /* A thread served by its cache alone looks for due purges every 64th free. */
        for (int k = 0; k < 64; k++) {
            void *volatile p = malloc((size_t)pair_size);
            if (!p)
                w->failed = 3;
            free(p);
        }
        pthread_barrier_wait(&barrier); /* 4: after-purge measured */
        pthread_barrier_wait(&barrier); /* 5: main done, exit */
    }
    return NULL;
}

static void print_holders(void)
{
    static struct binmalloc_stats s;
    get_stats(&s);
    say("    binmalloc: mapped %.1f MiB, in use %.1f MiB (incl. thread caches), free on bins %.1f "
        "MiB in %zu blocks, big live %zu (%.1f MiB), regions mapped/returned %llu/%llu\n",
        mib(s.mapped_bytes), mib(s.in_use_bytes), mib(s.free_bytes), s.free_blocks,
        s.big_live_blocks, mib(s.big_live_bytes), (unsigned long long)s.regions_mapped,
        (unsigned long long)s.regions_returned);
}

static void print_bins(void)
{
    static struct binmalloc_stats s;
    get_stats(&s);
    say("    (no block is live now: bytes in use are blocks held in thread caches, and every\n"
        "     region holding one stays mapped; free bytes on bins stay resident until purged)\n");
    say("    bins holding 16 MiB or more:\n");
    for (int i = 0; i < BINMALLOC_BIN_COUNT; i++)
        if (s.bins[i].free_blocks && s.bins[i].free_bytes >= 16 * MiB)
            say("    bin [%zu, %zu): %zu free blocks, %.2f MiB\n", s.bins[i].lower, s.bins[i].upper,
                s.bins[i].free_blocks, mib(s.bins[i].free_bytes));
}

int main(int argc, char **argv)
{
    const char *mode = "trim";
    size_t total = 1024 * MiB;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--case") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            total = (size_t)atol(argv[++i]) * MiB;
        else {
            say("usage: %s [--case trim|purge|purge-arena] [--threads N] [--mib N]\n", argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS)
        nthreads = 3;
    int trim = !strcmp(mode, "trim");
    if (!strcmp(mode, "purge-arena"))
        pair_size = 256 * 1024;
    else if (strcmp(mode, "purge") != 0 && !trim) {
        say("unknown case %s\n", mode);
        return 2;
    }
    do_pair = !trim;

    bm_require_served();
    get_stats = (stats_fn)bm_sym("binmalloc_stats");
    for (int t = 0; t < nthreads; t++) {
        workers[t].id = t;
        workers[t].target = total / (size_t)nthreads;
        workers[t].blocks = os_alloc(MAX_BLOCKS * sizeof(void *));
        workers[t].sizes = os_alloc(MAX_BLOCKS * sizeof(size_t));
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1);
    pthread_t th[MAX_THREADS];
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, worker, &workers[t]) != 0) {
            say("pthread_create failed\n");
            return 1;
        }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t start = rss();
    pthread_barrier_wait(&barrier); /* 0 */
    pthread_barrier_wait(&barrier); /* 1 */
    size_t peak = rss();
    size_t allocated = 0, blocks = 0;
    for (int t = 0; t < nthreads; t++)
        allocated += workers[t].bytes, blocks += workers[t].count;
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier); /* 2 */
    size_t after_free = rss();
    size_t after;
    const char *how;
    if (trim) {
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        size_t joined = rss();
        int r = malloc_trim(0);
        after = rss();
        say("threads joined: %.1f MiB; malloc_trim(0) returned %d\n", mib(joined), r);
        how = "after malloc_trim(0)";
    } else {
        struct timespec d = {0, 300 * 1000 * 1000};
        nanosleep(&d, NULL);
        size_t slept = rss();
        say("after sleeping 300 ms: %.1f MiB\n", mib(slept));
        pthread_barrier_wait(&barrier); /* 3 */
        pthread_barrier_wait(&barrier); /* 4 */
        after = rss();
        how = pair_size > 1024 ? "after 64 malloc(256 KiB)/free pairs per thread"
                               : "after 64 malloc(32)/free pairs per thread";
    }
    size_t slack = trim ? TRIM_SLACK : PURGE_SLACK;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int failed_workers = 0;
    for (int t = 0; t < nthreads; t++)
        failed_workers |= workers[t].failed;

    say("case %s: %d threads, %zu blocks, %.1f MiB allocated\n", mode, nthreads, blocks, mib(allocated));
    say("VmRSS start %.1f MiB, peak %.1f MiB, after free %.1f MiB, %s %.1f MiB (limit start + "
        "%.0f MiB), %.2f s\n",
        mib(start), mib(peak), mib(after_free), how, mib(after), mib(slack),
        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    print_holders();

    int passed = 0, failed = 0;
    if (failed_workers) {
        say("FAIL a worker failed (code %d)\n", failed_workers);
        failed++;
    } else
        passed++;
    if (peak < start + allocated / 2) {
        say("FAIL the peak (%.1f MiB) does not show the allocation: pages not touched?\n", mib(peak));
        failed++;
    } else
        passed++;
    if (after > start + slack) {
        say("FAIL VmRSS %.1f MiB above the start: %.1f MiB still resident\n", mib(after - start),
            mib(after - start));
        print_bins();
        failed++;
    } else {
        say("ok   VmRSS back within %.1f MiB of the start\n", mib(after > start ? after - start : 0));
        passed++;
    }
    size_t errs = bm_check_heap_errors();
    if (errs) {
        say("FAIL binmalloc_check_heap() found %zu problems\n", errs);
        failed++;
    } else
        passed++;
    if (do_pair) {
        pthread_barrier_wait(&barrier); /* 5 */
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
    }
    say("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
