/*
 * test_thread_churn.c - thousands of short-lived threads.
 *
 * 10000 threads, at most 8 alive at a time, each doing ~100 allocations of
 * random sizes: most are freed by the thread itself, a few are handed to the
 * main thread, which verifies them and frees them later (after the thread
 * that allocated them has exited). Per-thread state must be recycled when a
 * thread exits: resident memory after all 10000 threads must be within 32 MiB
 * of what it was after the first 500.
 *
 * STRESS_SCALE=n multiplies the number of threads.
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>

#define BATCH 8
#define BASE_THREADS 10000
#define HANDOFF 3   /* blocks each thread hands to main */
#define KEEP 1024   /* handed-off blocks main keeps alive at once */
#define MAX_GROWTH (32L * 1024 * 1024)

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t key;
} blk;

typedef struct {
    int index;
    blk handoff[HANDOFF];
} job;

static size_t churn_size(bm_rng *r)
{
    uint64_t x = bm_rng_next(r) % 100;
    if (x < 90)
        return bm_rng_range(r, 1, 1024);
    if (x < 99)
        return bm_rng_range(r, 1025, 16384);
    return bm_rng_range(r, 16385, 400 * 1024);
}

static void *thread_body(void *arg)
{
    job *j = arg;
    bm_rng r;
    bm_rng_seed(&r, 31337 + (uint64_t)j->index);
    blk mine[100];
    int n = 90 + (int)(bm_rng_next(&r) % 21); /* ~100 allocations */
    if (n > 100)
        n = 100;
    for (int i = 0; i < n; i++) {
        mine[i].size = churn_size(&r);
        mine[i].p = malloc(mine[i].size);
        CHECK(mine[i].p != NULL, "malloc(%zu) in thread %d", mine[i].size, j->index);
        CHECK(bm_is_aligned(mine[i].p, 16), "misaligned");
        mine[i].key = bm_pattern_key(mine[i].p, mine[i].size, (uint64_t)j->index);
        bm_fill(mine[i].p, mine[i].size, mine[i].key);
        /* free some early so the thread's free blocks are reused */
        if (i >= 10 && bm_rng_next(&r) % 3 == 0) {
            int k = (int)(bm_rng_next(&r) % (uint64_t)i);
            if (mine[k].p) {
                CHECK(bm_verify(mine[k].p, mine[k].size, mine[k].key) == (size_t)-1,
                      "thread %d: block overwritten", j->index);
                free(mine[k].p);
                mine[k].p = NULL;
            }
        }
    }
    int handed = 0;
    for (int i = 0; i < n; i++) {
        if (!mine[i].p)
            continue;
        CHECK(bm_verify(mine[i].p, mine[i].size, mine[i].key) == (size_t)-1,
              "thread %d: block overwritten", j->index);
        if (handed < HANDOFF) {
            j->handoff[handed++] = mine[i];
        } else {
            free(mine[i].p);
        }
    }
    return NULL;
}

int main(void)
{
    bm_require_served();
    alarm(300);
    int total = (int)(BASE_THREADS * bm_scale());
    static blk kept[KEEP];
    size_t kept_next = 0;
    long rss_500 = -1;
    job jobs[BATCH];

    for (int started = 0; started < total;) {
        pthread_t th[BATCH];
        int nb = 0;
        for (; nb < BATCH && started < total; nb++, started++) {
            memset(&jobs[nb], 0, sizeof jobs[nb]);
            jobs[nb].index = started;
            int rc = pthread_create(&th[nb], NULL, thread_body, &jobs[nb]);
            CHECK(rc == 0, "pthread_create #%d: %s", started, strerror(rc));
        }
        for (int i = 0; i < nb; i++) {
            CHECK(pthread_join(th[i], NULL) == 0, "pthread_join");
            /* take the handed-off blocks; free the oldest kept ones */
            for (int h = 0; h < HANDOFF; h++) {
                blk b = jobs[i].handoff[h];
                if (!b.p)
                    continue;
                CHECK(bm_verify(b.p, b.size, b.key) == (size_t)-1,
                      "block handed off by thread %d corrupted", jobs[i].index);
                CHECK(bm_owns(b.p) == 1, "handed-off block not owned");
                blk *slot = &kept[kept_next++ % KEEP];
                if (slot->p) {
                    CHECK(bm_verify(slot->p, slot->size, slot->key) == (size_t)-1,
                          "kept block corrupted");
                    free(slot->p);
                }
                *slot = b;
            }
        }
        if (rss_500 < 0 && started >= 500)
            rss_500 = bm_statm_rss_bytes();
    }
    long rss_end = bm_statm_rss_bytes();
    CHECK(rss_500 > 0 && rss_end > 0, "reading /proc/self/statm");
    printf("test_thread_churn: %d threads; RSS after 500 threads %ld KiB, at end %ld KiB (growth %ld KiB)\n",
           total, rss_500 / 1024, rss_end / 1024, (rss_end - rss_500) / 1024);
    CHECK(rss_end - rss_500 <= MAX_GROWTH,
          "RSS grew by %ld KiB between thread 500 and thread %d (limit %ld KiB): per-thread state leaks",
          (rss_end - rss_500) / 1024, total, MAX_GROWTH / 1024);

    for (int i = 0; i < KEEP; i++)
        if (kept[i].p) {
            CHECK(bm_verify(kept[i].p, kept[i].size, kept[i].key) == (size_t)-1, "kept block corrupted");
            free(kept[i].p);
        }
    check_heap();
    return bm_finish("test_thread_churn");
}
