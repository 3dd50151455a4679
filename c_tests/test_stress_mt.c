/*
 * test_stress_mt.c - 8 threads hammer the allocator with random sizes.
 *
 * Every block is filled with a pattern derived from (pointer, size, seed)
 * and verified before it is freed or reallocated, so overlapping blocks,
 * blocks handed out twice, or headers written into user data are caught.
 * Thread i also hands blocks to thread i+1 through a mutex-protected ring,
 * which verifies them and frees (or reallocs) them: cross-thread frees.
 * At the end the whole-heap checker must report no errors.
 *
 * STRESS_SCALE=n multiplies the number of operations.
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#define NTHREADS 8
#define SLOTS 512
#define RING 1024
#define BASE_OPS 200000

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t key;
} blk;

typedef struct {
    pthread_mutex_t lock;
    blk items[RING];
    size_t head, tail; /* pop at head, push at tail */
    unsigned long pushed, popped;
} ring;

static ring rings[NTHREADS];
static unsigned long ops_per_thread;

static size_t pick_size(bm_rng *r)
{
    uint64_t x = bm_rng_next(r) % 1000;
    if (x < 900)
        return bm_rng_range(r, 8, 1024);
    if (x < 995)
        return bm_rng_range(r, 1025, 64 * 1024);
    return bm_rng_range(r, 64 * 1024 + 1, 1024 * 1024);
}

static void verify_blk(const blk *b, const char *when)
{
    size_t bad = bm_verify(b->p, b->size, b->key);
    CHECK(bad == (size_t)-1, "%s: block %p size %zu corrupted at byte %zu", when, (void *)b->p,
          b->size, bad);
}

static void fill_blk(blk *b, uint64_t seed)
{
    b->key = bm_pattern_key(b->p, b->size, seed);
    bm_fill(b->p, b->size, b->key);
}

static int ring_push(ring *q, const blk *b)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->tail - q->head < RING) {
        q->items[q->tail % RING] = *b;
        q->tail++;
        q->pushed++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static int ring_pop(ring *q, blk *out)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->head != q->tail) {
        *out = q->items[q->head % RING];
        q->head++;
        q->popped++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static void alloc_blk(bm_rng *r, blk *b, uint64_t seed)
{
    size_t n = pick_size(r);
    uint64_t how = bm_rng_next(r) % 100;
    unsigned char *p;
    if (how < 85) {
        p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
    } else if (how < 95) {
        p = calloc(1, n);
        CHECK(p != NULL, "calloc(1, %zu) returned NULL", n);
        CHECK(bm_all_zero(p, n), "calloc(1, %zu) = %p not zeroed", n, (void *)p);
    } else {
        size_t al = (size_t)32 << (bm_rng_next(r) % 8); /* 32 .. 4096 */
        void *m = NULL;
        int rc = posix_memalign(&m, al, n);
        CHECK(rc == 0 && m != NULL, "posix_memalign(%zu, %zu) = %d", al, n, rc);
        CHECK(bm_is_aligned(m, al), "posix_memalign(%zu) = %p misaligned", al, m);
        p = m;
    }
    CHECK(bm_is_aligned(p, 16), "block %p not 16-byte aligned", (void *)p);
    CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
    b->p = p;
    b->size = n;
    fill_blk(b, seed);
}

static void realloc_blk(bm_rng *r, blk *b, uint64_t seed, const char *who)
{
    size_t n = pick_size(r);
    if (bm_rng_next(r) % 2)
        n = b->size / 2 + 1; /* shrink sometimes */
    unsigned char *q = realloc(b->p, n);
    CHECK(q != NULL, "realloc(%p, %zu) returned NULL", (void *)b->p, n);
    CHECK(bm_is_aligned(q, 16), "realloc result %p misaligned", (void *)q);
    size_t keep = b->size < n ? b->size : n;
    size_t bad = bm_verify(q, keep, b->key);
    CHECK(bad == (size_t)-1, "%s realloc %zu -> %zu lost content at byte %zu", who, b->size, n, bad);
    b->p = q;
    b->size = n;
    fill_blk(b, seed);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    bm_rng r;
    bm_rng_seed(&r, 1000 + (uint64_t)id);
    blk slots[SLOTS];
    memset(slots, 0, sizeof slots);
    ring *mine = &rings[id];
    ring *from = &rings[(id + NTHREADS - 1) % NTHREADS];

    for (unsigned long op = 0; op < ops_per_thread; op++) {
        uint64_t seed = ((uint64_t)id << 40) | op;
        uint64_t x = bm_rng_next(&r) % 100;
        if (x < 6) {
            blk b;
            if (ring_pop(from, &b)) {
                verify_blk(&b, "popped from another thread");
                if (bm_rng_next(&r) % 4 == 0) {
                    realloc_blk(&r, &b, seed, "cross-thread");
                    verify_blk(&b, "after cross-thread realloc");
                }
                free(b.p);
            }
            continue;
        }
        blk *s = &slots[bm_rng_next(&r) % SLOTS];
        if (!s->p) {
            alloc_blk(&r, s, seed);
            if ((op & 4095) == 0)
                CHECK(bm_owns(s->p) == 1, "binmalloc_owns(%p) != 1 for a live block", (void *)s->p);
            continue;
        }
        verify_blk(s, "own block");
        uint64_t act = bm_rng_next(&r) % 100;
        if (act < 65) {
            free(s->p);
            s->p = NULL;
        } else if (act < 82) {
            realloc_blk(&r, s, seed, "own");
        } else {
            if (!ring_push(mine, s))
                free(s->p);
            s->p = NULL;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            verify_blk(&slots[i], "final");
            free(slots[i].p);
        }
    return NULL;
}

int main(void)
{
    bm_require_served();
    alarm(300); /* a deadlock fails the test instead of hanging it */
    ops_per_thread = BASE_OPS * bm_scale();
    for (int i = 0; i < NTHREADS; i++)
        pthread_mutex_init(&rings[i].lock, NULL);

    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "pthread_join");

    /* blocks still in the rings were allocated by other (now exited)
     * threads: verify and free them from the main thread */
    unsigned long pushed = 0, popped = 0, drained = 0;
    for (int i = 0; i < NTHREADS; i++) {
        blk b;
        while (ring_pop(&rings[i], &b)) {
            verify_blk(&b, "drained by main");
            free(b.p);
            drained++;
        }
        pushed += rings[i].pushed;
        popped += rings[i].popped;
    }
    CHECK(pushed == popped, "ring accounting");
    CHECK(pushed > 1000, "too few cross-thread handoffs (%lu)", pushed);
    check_heap();

    /* the heap still works after all that */
    void *p = malloc(100);
    CHECK(p != NULL && bm_owns(p) == 1, "malloc after stress");
    free(p);
    check_heap();
    printf("test_stress_mt: %d threads x %lu ops, %lu cross-thread handoffs (%lu freed by main)\n",
           NTHREADS, ops_per_thread, pushed, drained);
    return bm_finish("test_stress_mt");
}
