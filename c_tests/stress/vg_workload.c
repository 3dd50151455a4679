/*
 * vg_workload.c - a realistic mixed allocation workload to run under
 * valgrind (memcheck, helgrind, drd) with binmalloc linked in.
 *
 * Linked with -lbinmalloc, the program's malloc and libc's own calls to it
 * (strdup, fopen, qsort's buffer, ...) resolve to binmalloc: memcheck only
 * replaces the allocator inside libc, so binmalloc really runs, and memcheck
 * watches binmalloc's own code (uninitialised values in its decisions,
 * accesses outside its mappings, bad system-call arguments). The program
 * checks that binmalloc served its calls (binmalloc_owns through dlsym).
 *
 * Ops: malloc, calloc, realloc (grow, shrink, across the 1 MiB cutoff),
 * free, posix_memalign, aligned_alloc, memalign, valloc, reallocarray,
 * strdup, a linked list and a hash table built and torn down, stdio,
 * malloc_usable_size, malloc_trim, mallinfo2, a first-class heap, and the
 * heap checker. Contents are verified before every free. With threads,
 * blocks also pass between threads (freed by another thread than their
 * allocator's).
 *
 * Usage: vg_workload [--threads N] [--ops N]   (defaults: 1 thread, 20000 ops)
 * Closing line: "N passed, M failed".
 */
#include "../common.h"
#include "../../include/binmalloc.h"

#include <malloc.h>
#include <pthread.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t nops = 20000;
static int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, const void *p)
{
    pthread_mutex_lock(&fail_lock);
    failures++;
    fprintf(stderr, "vg_workload: %s (%p)\n", what, p);
    pthread_mutex_unlock(&fail_lock);
}

typedef struct node {
    struct node *next;
    char *name;
    size_t len;
} node;

static size_t pick(bm_rng *r)
{
    unsigned c = (unsigned)(bm_rng_next(r) % 1000);
    if (c < 600)
        return bm_rng_range(r, 1, 256);
    if (c < 900)
        return bm_rng_range(r, 257, 16 * KiB);
    if (c < 985)
        return bm_rng_range(r, 16 * KiB, 512 * KiB);
    return bm_rng_range(r, 512 * KiB, 3 * MiB);
}

#define SLOTS 512

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char v;
} slot;

/* Blocks handed between threads (freed or resized by a thread other than
 * the one that allocated them), under a pthread mutex so that the handing
 * over itself is ordered for the thread checkers. */
#define MAILBOX 64
static slot mailbox[MAILBOX];
static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static int nthreads = 1;

static void check_slot(slot *s)
{
    if (!s->p)
        return;
    if (s->p[0] != s->v || s->p[s->n - 1] != s->v || s->p[s->n / 2] != s->v)
        fail("block contents changed", s->p);
}

static void *workload(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    bm_rng r;
    bm_rng_seed(&r, seed);
    slot *slots = calloc(SLOTS, sizeof *slots);
    if (!slots) {
        fail("calloc(slots)", NULL);
        return NULL;
    }
    if (bm_owns(slots) != 1)
        fail("binmalloc does not own a calloc block", slots);
    for (size_t op = 0; op < nops; op++) {
        slot *s = &slots[bm_rng_next(&r) % SLOTS];
        unsigned what = (unsigned)(bm_rng_next(&r) % 100);
        if (!s->p) {
            size_t n = pick(&r);
            unsigned char *p = NULL;
            if (what < 55) {
                p = malloc(n);
            } else if (what < 70) {
                p = calloc(n, 1);
                if (p && (p[0] || p[n - 1]))
                    fail("calloc block not zeroed", p);
            } else if (what < 80) {
                void *q = NULL;
                if (posix_memalign(&q, (size_t)64 << (what % 6), n) == 0)
                    p = q;
            } else if (what < 85) {
                size_t a = (size_t)4096 << (what % 3);
                n = (n + a - 1) & ~(a - 1);
                p = aligned_alloc(a, n);
            } else if (what < 90) {
                p = memalign(32, n);
            } else if (what < 93) {
                p = valloc(n);
            } else {
                p = reallocarray(NULL, n, 1);
            }
            if (!p) {
                fail("allocation failed", NULL);
                continue;
            }
            s->p = p;
            s->n = n;
            s->v = (unsigned char)(op | 1);
            memset(p, s->v, n);
        } else if (what < 45) {
            check_slot(s);
            if (nthreads > 1 && what < 10) {
                /* swap with the mailbox: another thread's block comes back */
                pthread_mutex_lock(&mailbox_lock);
                slot *m = &mailbox[bm_rng_next(&r) % MAILBOX];
                slot t = *m;
                *m = *s;
                *s = t;
                pthread_mutex_unlock(&mailbox_lock);
                check_slot(s);
                continue;
            }
            free(s->p);
            s->p = NULL;
        } else if (what < 85) {
            check_slot(s);
            size_t n = what < 65 ? pick(&r) : s->n + s->n / 2 + 1;
            unsigned char *q = realloc(s->p, n);
            if (!q) {
                fail("realloc failed", s->p);
                continue;
            }
            size_t keep = n < s->n ? n : s->n;
            if (q[0] != s->v || q[keep - 1] != s->v)
                fail("realloc lost contents", q);
            s->p = q;
            s->n = n;
            memset(q, s->v, n);
        } else if (what < 90) {
            if (malloc_usable_size(s->p) < s->n)
                fail("malloc_usable_size too small", s->p);
        } else {
            check_slot(s);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        check_slot(&slots[i]);
        free(slots[i].p);
    }
    free(slots);

    /* a linked list of strdup'd names, through libc */
    node *head = NULL;
    for (int i = 0; i < 2000; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "node-%d-%llu", i, (unsigned long long)bm_rng_next(&r));
        node *nd = malloc(sizeof *nd);
        if (!nd)
            break;
        nd->name = strdup(buf);
        nd->len = strlen(buf);
        nd->next = head;
        head = nd;
    }
    while (head) {
        node *nx = head->next;
        if (!head->name || strlen(head->name) != head->len)
            fail("list node damaged", head);
        free(head->name);
        free(head);
        head = nx;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ops"))
            nops = strtoul(argv[i + 1], NULL, 10);
    }
    if (threads < 1 || threads > 64)
        threads = 1;
    bm_resolve();

    /* binmalloc must be the allocator of this process */
    void *probe = malloc(24);
    char *dup = strdup("served by binmalloc?"); /* libc's own call to malloc */
    int served = bm_owns(probe) == 1 && bm_owns(dup) == 1;
    printf("binmalloc serves malloc: %s, libc's strdup: %s\n", bm_owns(probe) == 1 ? "yes" : "NO",
           bm_owns(dup) == 1 ? "yes" : "NO");
    free(probe);
    free(dup);

    if (threads == 1) {
        workload((void *)(uintptr_t)1);
    } else {
        nthreads = threads;
        pthread_t th[64];
        for (int t = 0; t < threads; t++)
            if (pthread_create(&th[t], NULL, workload, (void *)(uintptr_t)(t + 1)) != 0)
                fail("pthread_create", NULL);
        for (int t = 0; t < threads; t++)
            pthread_join(th[t], NULL);
        for (int i = 0; i < MAILBOX; i++) {
            check_slot(&mailbox[i]);
            free(mailbox[i].p);
        }
    }

    /* libc users of malloc: stdio and qsort's temporary buffer */
    FILE *f = tmpfile();
    if (f) {
        for (int i = 0; i < 1000; i++)
            fprintf(f, "%d %s\n", i, "line of text for the stdio buffer");
        fclose(f);
    }
    size_t n = 200000;
    uint64_t *arr = malloc(n * sizeof *arr);
    bm_rng r;
    bm_rng_seed(&r, 9);
    for (size_t i = 0; i < n; i++)
        arr[i] = bm_rng_next(&r);
    qsort(arr, n, sizeof *arr, cmp);
    for (size_t i = 1; i < n; i++)
        if (arr[i - 1] > arr[i]) {
            fail("qsort", arr);
            break;
        }
    free(arr);

    /* a first-class heap */
    binmalloc_heap *(*heap_new)(const binmalloc_heap_config *) = bm_sym("binmalloc_heap_new");
    void *(*heap_alloc)(binmalloc_heap *, size_t) = bm_sym("binmalloc_heap_alloc");
    void (*heap_free)(binmalloc_heap *, void *) = bm_sym("binmalloc_heap_free");
    void (*heap_reset)(binmalloc_heap *) = bm_sym("binmalloc_heap_reset");
    void (*heap_destroy)(binmalloc_heap *) = bm_sym("binmalloc_heap_destroy");
    size_t (*heap_check)(binmalloc_heap *) = bm_sym("binmalloc_heap_check");
    binmalloc_heap *h = heap_new(NULL);
    if (h) {
        for (int round = 0; round < 3; round++) {
            void *keep = NULL;
            for (int i = 0; i < 3000; i++) {
                void *p = heap_alloc(h, bm_rng_range(&r, 1, 4096));
                if (!p) {
                    fail("binmalloc_heap_alloc", NULL);
                    break;
                }
                memset(p, 7, 1);
                if (i % 3 == 0)
                    heap_free(h, p);
                else
                    keep = p;
            }
            (void)keep;
            if (heap_check(h) != 0)
                fail("binmalloc_heap_check", h);
            heap_reset(h);
        }
        heap_destroy(h);
    } else {
        fail("binmalloc_heap_new", NULL);
    }

    struct mallinfo2 mi = mallinfo2();
    (void)mi;
    malloc_trim(0);
    size_t errs = bm_check_heap_errors();
    if (errs)
        fail("binmalloc_check_heap found problems", NULL);
    int passed = served + (failures == 0) + (errs == 0);
    int failed = 3 - passed;
    printf("vg_workload: %d thread(s), %zu ops each, %d failures\n", threads, nops, failures);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
