/*
 * test_faults.c - out-of-memory handling at every allocation entry point, by
 * fault injection (binmalloc_inject_mmap_failure).
 *
 * Part 1, one case per path: the calling thread's next request for memory
 * from the OS is made to fail (binmalloc_inject_mmap_failure(1)) and the call
 * is made. Sizes served from free space need no OS memory, so the call is
 * repeated (re-armed each time, blocks kept) until the heap has to map: then
 * the call must return NULL with errno ENOMEM (posix_memalign: return ENOMEM,
 * *memptr untouched), exactly one fault must have been consumed, a failed
 * realloc must have left the old block intact (contents verified), and
 * binmalloc_check_heap() must find nothing. The same call is then made again
 * without a fault and must succeed. Paths: small sizes served through the
 * thread cache (48 B, 1000 B, 24 KiB, 100 KiB), sizes straight from an arena
 * (200 KiB, 900 KiB: a new region), big blocks (8, 40, 64 MiB), every
 * aligned entry point (posix_memalign, aligned_alloc, memalign, valloc,
 * pvalloc, alignments up to 2 MiB), realloc of a big block (mremap), of a
 * small block to big and to a size needing a new region, reallocarray, and
 * calloc small and big.
 *
 * Part 2, sweep: for n = 1, 2, ... the n-th mapping request from now fails,
 * and a fixed mixed workload (~2000 ops: malloc, calloc, realloc, free,
 * aligned allocations, 1 B .. 48 MiB) runs. NULLs are tolerated only with
 * ENOMEM, at most one per run (one fault can fail one call) and only when a
 * fault was consumed; a failed realloc must keep its block. After each run
 * every live block's contents are verified and the heap checker must find
 * nothing. The sweep ends after 3 consecutive runs in which the fault was
 * not reached (n past the workload's mapping requests). The same again with
 * two threads, each arming its own fault.
 *
 * Modes:  test_faults                 parts 1 and 2
 *         test_faults --env-workload  the workload once, under whatever
 *                                     BINMALLOC_FAULT_MMAP the caller set
 * Env:    STRESS=1  longer workload and sweep
 *
 * Closing line: "N passed, M failed" (cases); exit status 1 on any failure.
 */
#include "../common.h"
#include "../../include/binmalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

typedef uint64_t (*inject_fn)(uint64_t);
typedef int (*stats_fn)(struct binmalloc_stats *);
static inject_fn inject;
static stats_fn get_stats;
static int stress;

/* ------------------------------------------------------------ soft checks */

static __thread int case_failures;
static unsigned cases_passed, cases_failed;

static void report(int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(int line, const char *cond, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "    test_faults.c:%d: expected %s: %s\n", line, cond, buf);
    fflush(stderr);
}

#define EXPECT(cond, ...)                                  \
    do {                                                   \
        if (!(cond)) {                                     \
            case_failures++;                               \
            report(__LINE__, #cond, __VA_ARGS__);          \
        }                                                  \
    } while (0)

static void case_end(const char *name, const char *detail)
{
    if (case_failures == 0) {
        cases_passed++;
        printf("ok   %s: %s\n", name, detail);
    } else {
        cases_failed++;
        printf("FAIL %s: %s (%d failed expectations above)\n", name, detail, case_failures);
    }
    fflush(stdout);
    case_failures = 0;
}

static size_t heap_errors(void) { return bm_check_heap_errors(); }

/* bookkeeping memory that does not come from the allocator under test */
static void *os_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        _exit(2);
    }
    return p;
}

/* ------------------------------------------------------------- patterns */
/* Blocks up to 2*EDGE bytes are filled whole; larger ones in their first
 * and last EDGE bytes (pages in between stay untouched: the sweep maps
 * hundreds of MiB). Byte i of a block with key k is byte i%8 of
 * k ^ (i/8 * golden), so the same offsets hold the same bytes after a move. */
#define EDGE (64 * KiB)

static inline uint64_t word_at(uint64_t key, size_t i) { return key ^ ((uint64_t)(i >> 3) * 0x9E3779B97F4A7C15ull); }

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t key)
{
    size_t i = from;
    for (; i < to && (i & 7); i++)
        p[i] = (unsigned char)(word_at(key, i) >> ((i & 7) * 8));
    for (; i + 8 <= to; i += 8) {
        uint64_t w = word_at(key, i);
        memcpy(p + i, &w, 8);
    }
    for (; i < to; i++)
        p[i] = (unsigned char)(word_at(key, i) >> ((i & 7) * 8));
}

/* offset of the first wrong byte in [from, to), or (size_t)-1 */
static size_t check_range(const unsigned char *p, size_t from, size_t to, uint64_t key)
{
    size_t i = from;
    for (; i < to && (i & 7); i++)
        if (p[i] != (unsigned char)(word_at(key, i) >> ((i & 7) * 8)))
            return i;
    for (; i + 8 <= to; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != word_at(key, i)) {
            for (size_t j = i;; j++)
                if (p[j] != (unsigned char)(word_at(key, j) >> ((j & 7) * 8)))
                    return j;
        }
    }
    for (; i < to; i++)
        if (p[i] != (unsigned char)(word_at(key, i) >> ((i & 7) * 8)))
            return i;
    return (size_t)-1;
}

static void fill_block(void *p, size_t n, uint64_t key)
{
    if (n <= 2 * EDGE) {
        fill_range(p, 0, n, key);
    } else {
        fill_range(p, 0, EDGE, key);
        fill_range(p, n - EDGE, n, key);
    }
}

/* Verify the bytes fill_block(p, n, key) wrote, restricted to offsets < limit. */
static size_t verify_block(const void *p, size_t n, uint64_t key, size_t limit)
{
    size_t r;
    size_t lim = n < limit ? n : limit;
    if (n <= 2 * EDGE)
        return check_range(p, 0, lim, key);
    if ((r = check_range(p, 0, lim < EDGE ? lim : EDGE, key)) != (size_t)-1)
        return r;
    if (lim > n - EDGE)
        return check_range(p, n - EDGE, lim, key);
    return (size_t)-1;
}

static int zero_where_filled(const unsigned char *p, size_t n)
{
    if (n <= 2 * EDGE)
        return bm_all_zero(p, n);
    return bm_all_zero(p, EDGE) && bm_all_zero(p + n - EDGE, EDGE);
}

/* ================================================================ part 1 */

enum kind {
    K_MALLOC,
    K_CALLOC,
    K_POSIX_MEMALIGN,
    K_ALIGNED_ALLOC,
    K_MEMALIGN,
    K_VALLOC,
    K_PVALLOC,
    K_REALLOC,
    K_REALLOCARRAY,
};

typedef struct {
    const char *name;
    enum kind kind;
    size_t size;     /* requested size (new size for realloc) */
    size_t align;    /* aligned kinds */
    size_t old_size; /* realloc kinds: size of the block being resized */
} path_t;

typedef struct {
    void *p;
    size_t n;
    uint64_t key;
} held_t;

#define HELD_MAX (4u << 20)
static held_t *held;
static size_t nheld;

static void hold(void *p, size_t n, uint64_t key)
{
    if (nheld == HELD_MAX) {
        fprintf(stderr, "test_faults: held table full\n");
        _exit(2);
    }
    held[nheld++] = (held_t){p, n, key};
}

static void release_held(const char *name)
{
    for (size_t i = 0; i < nheld; i++) {
        size_t bad = verify_block(held[i].p, held[i].n, held[i].key, SIZE_MAX);
        EXPECT(bad == (size_t)-1, "%s: kept block %p (%zu bytes) damaged at offset %zu", name,
               held[i].p, held[i].n, bad);
        free(held[i].p);
    }
    nheld = 0;
}

static size_t path_align(const path_t *t)
{
    switch (t->kind) {
    case K_POSIX_MEMALIGN:
    case K_ALIGNED_ALLOC:
    case K_MEMALIGN:
        return t->align;
    case K_VALLOC:
    case K_PVALLOC:
        return (size_t)sysconf(_SC_PAGESIZE);
    default:
        return 16;
    }
}

static int is_realloc(const path_t *t) { return t->kind == K_REALLOC || t->kind == K_REALLOCARRAY; }

/* Makes the call; *err gets errno (or posix_memalign's result). */
static void *do_call(const path_t *t, void *old, int *err)
{
    void *p = NULL;
    errno = 0;
    switch (t->kind) {
    case K_MALLOC:
        p = malloc(t->size);
        break;
    case K_CALLOC:
        p = calloc(t->size / 16, 16);
        break;
    case K_POSIX_MEMALIGN: {
        void *sentinel = (void *)&p;
        void *out = sentinel;
        int rc = posix_memalign(&out, t->align, t->size);
        if (rc != 0) {
            EXPECT(out == sentinel, "%s: failed posix_memalign wrote %p to *memptr", t->name, out);
            *err = rc;
            return NULL;
        }
        *err = 0;
        return out;
    }
    case K_ALIGNED_ALLOC:
        p = aligned_alloc(t->align, t->size);
        break;
    case K_MEMALIGN:
        p = memalign(t->align, t->size);
        break;
    case K_VALLOC:
        p = valloc(t->size);
        break;
    case K_PVALLOC:
        p = pvalloc(t->size);
        break;
    case K_REALLOC:
        p = realloc(old, t->size);
        break;
    case K_REALLOCARRAY:
        p = reallocarray(old, t->size / 16, 16);
        break;
    }
    *err = errno;
    return p;
}

static uint64_t key_counter = 1;
static uint64_t next_key(void) { return bm_mix(key_counter++); }

/* A fresh (unarmed) block of old_size bytes for a realloc path. */
static void *prepare_old(const path_t *t, uint64_t *key)
{
    void *old = malloc(t->old_size);
    if (!old) {
        EXPECT(old != NULL, "%s: unarmed malloc(%zu) for the old block failed", t->name, t->old_size);
        return NULL;
    }
    *key = next_key();
    fill_block(old, t->old_size, *key);
    return old;
}

/* Checks a successful result and keeps it (filled with a new pattern). */
static void accept_result(const path_t *t, void *p, void *old, uint64_t old_key)
{
    size_t n = t->size;
    if (t->kind == K_PVALLOC) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        n = (n + pg - 1) & ~(pg - 1);
    }
    EXPECT(bm_is_aligned(p, path_align(t)), "%s: %p not aligned to %zu", t->name, p, path_align(t));
    EXPECT(bm_owns(p) == 1, "%s: binmalloc_owns(%p) != 1", t->name, p);
    EXPECT(malloc_usable_size(p) >= n, "%s: usable size %zu < %zu", t->name, malloc_usable_size(p), n);
    if (t->kind == K_CALLOC)
        EXPECT(zero_where_filled(p, n), "%s: calloc block %p not zeroed", t->name, p);
    if (is_realloc(t)) {
        size_t bad = verify_block(p, t->old_size, old_key, n);
        EXPECT(bad == (size_t)-1, "%s: realloc %p -> %p lost contents at offset %zu", t->name, old, p, bad);
    }
    uint64_t key = next_key();
    fill_block(p, n, key);
    hold(p, n, key);
}

typedef struct {
    uint64_t big_mappings, regions_mapped;
} counters_t;

static counters_t counters(void)
{
    static struct binmalloc_stats s;
    get_stats(&s);
    return (counters_t){s.big_mappings, s.regions_mapped};
}

static uint64_t total_faults;

static void run_path(const path_t *t)
{
    const size_t max_calls = 2000000;
    const size_t max_bytes = 2048 * MiB;
    uint64_t faults_before = inject(0);
    size_t calls = 0, bytes = 0, recovered = 0;
    int got_null = 0;
    void *old = NULL;
    uint64_t old_key = 0;
    while (calls < max_calls && bytes < max_bytes) {
        if (is_realloc(t) && !(old = prepare_old(t, &old_key)))
            break;
        int err = 0;
        uint64_t c0 = inject(1);
        void *p = do_call(t, old, &err);
        uint64_t c1 = inject(0);
        calls++;
        if (p == NULL) {
            got_null = 1;
            EXPECT(c1 == c0 + 1, "%s: NULL on call %zu but %llu faults were consumed (a real "
                   "out-of-memory, or a second mapping request failed?)", t->name, calls,
                   (unsigned long long)(c1 - c0));
            EXPECT(err == ENOMEM, "%s: failure reported errno/result %d (%s), not ENOMEM", t->name,
                   err, strerror(err));
            if (is_realloc(t)) {
                EXPECT(bm_owns(old) == 1, "%s: failed realloc freed the old block %p", t->name, old);
                size_t bad = verify_block(old, t->old_size, old_key, SIZE_MAX);
                EXPECT(bad == (size_t)-1, "%s: failed realloc damaged the old block at offset %zu",
                       t->name, bad);
            }
            break;
        }
        if (c1 != c0)
            recovered++; /* a mapping failed but binmalloc found room elsewhere */
        accept_result(t, p, old, old_key);
        old = NULL;
        bytes += t->size;
    }
    EXPECT(got_null, "%s: no call failed in %zu calls (%zu bytes kept): the fault never "
           "reached this path", t->name, calls, bytes);
    size_t errs = heap_errors();
    EXPECT(errs == 0, "%s: binmalloc_check_heap() found %zu problems after the failure", t->name, errs);

    /* the same call without a fault must now succeed */
    counters_t before = counters();
    int err = 0;
    void *p = do_call(t, old, &err);
    counters_t after = counters();
    EXPECT(p != NULL, "%s: the call failed again without a fault (errno %d)", t->name, err);
    if (p)
        accept_result(t, p, old, old_key);
    else if (old)
        free(old);
    const char *where = after.big_mappings > before.big_mappings ? "big mapping"
                        : after.regions_mapped > before.regions_mapped ? "new region"
                                                                          : "no new mapping";
    release_held(t->name);
    errs = heap_errors();
    EXPECT(errs == 0, "%s: binmalloc_check_heap() found %zu problems after freeing", t->name, errs);
    uint64_t faults = inject(0) - faults_before;
    total_faults += faults;
    char detail[256];
    snprintf(detail, sizeof detail,
             "NULL/ENOMEM on call %zu, %llu fault(s) injected, %zu call(s) recovered from a failed "
             "mapping; retry served from %s",
             calls, (unsigned long long)faults, recovered, where);
    case_end(t->name, detail);
}

static const path_t paths[] = {
    /* small: thread-cache classes (a refill batch), then arena sizes */
    {"small malloc(48)", K_MALLOC, 48, 0, 0},
    {"small malloc(1000)", K_MALLOC, 1000, 0, 0},
    {"medium malloc(24 KiB)", K_MALLOC, 24 * KiB, 0, 0},
    {"medium malloc(100 KiB)", K_MALLOC, 100 * KiB, 0, 0},
    {"medium malloc(200 KiB)", K_MALLOC, 200 * KiB, 0, 0},
    {"small-cutoff malloc(900 KiB)", K_MALLOC, 900 * KiB, 0, 0},
    /* big: above the cutoff (8 MiB may sit below a risen dynamic cutoff) */
    {"big malloc(8 MiB)", K_MALLOC, 8 * MiB, 0, 0},
    {"big malloc(40 MiB)", K_MALLOC, 40 * MiB, 0, 0},
    {"big malloc(64 MiB)", K_MALLOC, 64 * MiB, 0, 0},
    /* aligned */
    {"aligned posix_memalign(64, 200 KiB)", K_POSIX_MEMALIGN, 200 * KiB, 64, 0},
    {"aligned posix_memalign(2 MiB, 8 MiB)", K_POSIX_MEMALIGN, 8 * MiB, 2 * MiB, 0},
    {"aligned posix_memalign(4096, 64 MiB)", K_POSIX_MEMALIGN, 64 * MiB, 4096, 0},
    {"aligned aligned_alloc(1 MiB, 4 MiB)", K_ALIGNED_ALLOC, 4 * MiB, 1 * MiB, 0},
    {"aligned aligned_alloc(2 MiB, 2 MiB)", K_ALIGNED_ALLOC, 2 * MiB, 2 * MiB, 0},
    {"aligned memalign(256, 900 KiB)", K_MEMALIGN, 900 * KiB, 256, 0},
    {"aligned memalign(64 KiB, 512 KiB)", K_MEMALIGN, 512 * KiB, 64 * KiB, 0},
    {"aligned memalign(2 MiB, 64 MiB)", K_MEMALIGN, 64 * MiB, 2 * MiB, 0},
    {"aligned valloc(8 MiB)", K_VALLOC, 8 * MiB, 0, 0},
    {"aligned pvalloc(3 MiB + 1)", K_PVALLOC, 3 * MiB + 1, 0, 0},
    /* realloc */
    {"realloc big 64 MiB -> 128 MiB (mremap)", K_REALLOC, 128 * MiB, 0, 64 * MiB},
    {"realloc big 40 MiB -> 48 MiB (mremap)", K_REALLOC, 48 * MiB, 0, 40 * MiB},
    {"realloc 8 MiB -> 24 MiB", K_REALLOC, 24 * MiB, 0, 8 * MiB},
    {"realloc small 1000 B -> 64 MiB", K_REALLOC, 64 * MiB, 0, 1000},
    {"realloc small 1000 B -> 900 KiB", K_REALLOC, 900 * KiB, 0, 1000},
    {"realloc 200 KiB -> 700 KiB", K_REALLOC, 700 * KiB, 0, 200 * KiB},
    {"reallocarray small 64 B -> 64 MiB", K_REALLOCARRAY, 64 * MiB, 0, 64},
    /* calloc */
    {"calloc small 100 x 16", K_CALLOC, 1600, 0, 0},
    {"calloc 900 KiB", K_CALLOC, 900 * KiB, 0, 0},
    {"calloc big 8 MiB", K_CALLOC, 8 * MiB, 0, 0},
    {"calloc big 64 MiB", K_CALLOC, 64 * MiB, 0, 0},
};

/* ================================================================ part 2 */

#define SLOTS 384
#define NO_ARM UINT64_MAX /* leave whatever fault is armed as it is */

typedef struct {
    void *p;
    size_t n;
    uint64_t key;
} slot_t;

typedef struct {
    uint64_t seed;
    size_t ops;
    uint64_t arm; /* fault the arm-th mapping request of this run (0: none) */
    /* results */
    unsigned nulls;
    unsigned ops_done;
    int consumed; /* 1 if this thread's fault fired (single-threaded runs only) */
    int failures;
    slot_t *slots;
} workload_t;

static size_t pick_size(bm_rng *r)
{
    unsigned c = (unsigned)(bm_rng_next(r) % 1000);
    if (c < 550)
        return bm_rng_range(r, 0, 1024);
    if (c < 800)
        return bm_rng_range(r, 1025, 128 * KiB);
    if (c < 930)
        return bm_rng_range(r, 128 * KiB, 1 * MiB);
    if (c < 990)
        return bm_rng_range(r, 1 * MiB, 8 * MiB);
    return bm_rng_range(r, 8 * MiB, 48 * MiB);
}

/* Runs w->ops operations on w->slots; the blocks stay live for the caller
 * to free. */
static void run_workload(workload_t *w)
{
    bm_rng r;
    bm_rng_seed(&r, w->seed);
    slot_t *s = w->slots;
    memset(s, 0, SLOTS * sizeof *s);
    uint64_t c0 = w->arm == NO_ARM ? 0 : inject(w->arm);
    w->nulls = 0;
    for (size_t op = 0; op < w->ops; op++) {
        slot_t *sl = &s[bm_rng_next(&r) % SLOTS];
        unsigned what = (unsigned)(bm_rng_next(&r) % 100);
        if (sl->p == NULL) {
            size_t n = pick_size(&r);
            void *p = NULL;
            int err = 0;
            size_t align = 16;
            errno = 0;
            if (what < 60) {
                p = malloc(n);
                err = errno;
            } else if (what < 75) {
                p = calloc(1, n);
                err = errno;
            } else {
                align = (size_t)1 << bm_rng_range(&r, 5, n > 4 * MiB ? 21 : 16);
                unsigned f = what % 3;
                if (f == 0) {
                    err = posix_memalign(&p, align, n);
                    if (err)
                        p = NULL;
                } else if (f == 1) {
                    p = aligned_alloc(align, (n + align - 1) & ~(align - 1));
                    err = errno;
                } else {
                    p = memalign(align, n);
                    err = errno;
                }
            }
            if (p == NULL) {
                w->nulls++;
                if (err != ENOMEM) {
                    w->failures++;
                    fprintf(stderr, "    workload op %zu: allocation of %zu failed with %d (%s), not "
                            "ENOMEM\n", op, n, err, strerror(err));
                }
                continue;
            }
            if (!bm_is_aligned(p, align) || (what >= 60 && what < 75 && !zero_where_filled(p, n))) {
                w->failures++;
                fprintf(stderr, "    workload op %zu: block %p of %zu: misaligned (want %zu) or "
                        "calloc not zeroed\n", op, p, n, align);
            }
            sl->p = p;
            sl->n = n;
            sl->key = bm_mix(w->seed ^ (op << 20));
            fill_block(p, n, sl->key);
        } else if (what < 50) {
            size_t bad = verify_block(sl->p, sl->n, sl->key, SIZE_MAX);
            if (bad != (size_t)-1) {
                w->failures++;
                fprintf(stderr, "    workload op %zu: block %p (%zu) damaged at %zu before free\n",
                        op, sl->p, sl->n, bad);
            }
            free(sl->p);
            sl->p = NULL;
        } else if (what < 90) {
            size_t n = bm_rng_next(&r) % 2 ? pick_size(&r) : sl->n * 2 + 1;
            if (n == 0)
                n = 1;
            errno = 0;
            void *q = realloc(sl->p, n);
            int err = errno;
            if (q == NULL) {
                w->nulls++;
                if (err != ENOMEM) {
                    w->failures++;
                    fprintf(stderr, "    workload op %zu: realloc to %zu failed with %d, not ENOMEM\n",
                            op, n, err);
                }
                size_t bad = verify_block(sl->p, sl->n, sl->key, SIZE_MAX);
                if (bad != (size_t)-1 || bm_owns(sl->p) != 1) {
                    w->failures++;
                    fprintf(stderr, "    workload op %zu: failed realloc damaged or freed %p (offset "
                            "%zu)\n", op, sl->p, bad);
                }
                continue;
            }
            size_t bad = verify_block(q, sl->n, sl->key, n);
            if (bad != (size_t)-1) {
                w->failures++;
                fprintf(stderr, "    workload op %zu: realloc %p -> %p (%zu -> %zu) lost contents "
                        "at %zu\n", op, sl->p, q, sl->n, n, bad);
            }
            sl->p = q;
            sl->n = n;
            fill_block(q, n, sl->key);
        } else {
            size_t bad = verify_block(sl->p, sl->n, sl->key, SIZE_MAX);
            if (bad != (size_t)-1) {
                w->failures++;
                fprintf(stderr, "    workload op %zu: block %p damaged at %zu\n", op, sl->p, bad);
            }
        }
    }
    if (w->arm != NO_ARM)
        w->consumed = inject(0) != c0;
    /* every live block must still hold its pattern */
    for (int i = 0; i < SLOTS; i++) {
        if (!s[i].p)
            continue;
        size_t bad = verify_block(s[i].p, s[i].n, s[i].key, SIZE_MAX);
        if (bad != (size_t)-1 || bm_owns(s[i].p) != 1) {
            w->failures++;
            fprintf(stderr, "    workload end: block %p (%zu) damaged at %zu or not owned\n",
                    s[i].p, s[i].n, bad);
        }
    }
    w->ops_done = (unsigned)w->ops;
}

static void free_slots(slot_t *s)
{
    for (int i = 0; i < SLOTS; i++) {
        free(s[i].p);
        s[i].p = NULL;
    }
}

static void sweep_single(size_t ops, unsigned cap)
{
    workload_t w = {0};
    w.slots = os_alloc(SLOTS * sizeof(slot_t));
    w.ops = ops;
    uint64_t f0 = inject(0);
    unsigned runs = 0, fired = 0, nulls = 0, recovered = 0, idle = 0;
    uint64_t n;
    for (n = 1; n <= cap && idle < 3; n++) {
        w.seed = 1000 + n % 7;
        w.arm = n;
        w.failures = 0;
        run_workload(&w);
        runs++;
        EXPECT(w.failures == 0, "sweep n=%llu: %d workload failures (above)", (unsigned long long)n,
               w.failures);
        EXPECT(w.nulls <= 1, "sweep n=%llu: %u NULLs from one injected fault", (unsigned long long)n,
               w.nulls);
        EXPECT(w.nulls == 0 || w.consumed, "sweep n=%llu: NULL without the fault firing",
               (unsigned long long)n);
        size_t errs = heap_errors();
        EXPECT(errs == 0, "sweep n=%llu: binmalloc_check_heap() found %zu problems",
               (unsigned long long)n, errs);
        free_slots(w.slots);
        malloc_trim(0); /* unmap the free regions: the next run maps afresh */
        errs = heap_errors();
        EXPECT(errs == 0, "sweep n=%llu: binmalloc_check_heap() found %zu problems after freeing",
               (unsigned long long)n, errs);
        fired += w.consumed;
        nulls += w.nulls;
        recovered += w.consumed && w.nulls == 0;
        idle = w.consumed ? 0 : idle + 1;
        if (case_failures)
            break;
    }
    uint64_t faults = inject(0) - f0;
    total_faults += faults;
    EXPECT(idle >= 3, "sweep reached the cap of %u runs with the fault still firing", cap);
    EXPECT(fired > 0, "the fault never fired in the sweep");
    char detail[256];
    snprintf(detail, sizeof detail,
             "%u runs of %zu ops (n = 1..%llu), fault fired in %u, %u calls returned NULL/ENOMEM, "
             "%u runs absorbed the fault; %llu faults injected",
             runs, ops, (unsigned long long)(n - 1), fired, nulls, recovered,
             (unsigned long long)faults);
    case_end("sweep, one thread", detail);
    munmap(w.slots, SLOTS * sizeof(slot_t));
}

static void *thread_workload(void *arg)
{
    run_workload(arg);
    return NULL;
}

static void sweep_threads(size_t ops, unsigned cap)
{
    workload_t w[2] = {{0}, {0}};
    for (int t = 0; t < 2; t++)
        w[t].slots = os_alloc(SLOTS * sizeof(slot_t));
    uint64_t f0 = inject(0);
    unsigned runs = 0, nulls = 0;
    int any_fired = 0;
    for (unsigned n = 1; n <= cap; n++) {
        uint64_t fr0 = inject(0);
        pthread_t th[2];
        for (int t = 0; t < 2; t++) {
            w[t].seed = 77 + 13 * (uint64_t)t + n % 5;
            w[t].ops = ops;
            w[t].arm = n + (uint64_t)t; /* different points in the two threads */
            w[t].failures = 0;
            int rc = pthread_create(&th[t], NULL, thread_workload, &w[t]);
            EXPECT(rc == 0, "pthread_create: %d", rc);
            if (rc)
                _exit(1);
        }
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        uint64_t fired = inject(0) - fr0;
        any_fired |= fired > 0;
        runs++;
        for (int t = 0; t < 2; t++) {
            EXPECT(w[t].failures == 0, "threads n=%u, thread %d: %d workload failures (above)", n, t,
                   w[t].failures);
            EXPECT(w[t].nulls <= 1, "threads n=%u, thread %d: %u NULLs", n, t, w[t].nulls);
            nulls += w[t].nulls;
        }
        EXPECT(w[0].nulls + w[1].nulls <= fired, "threads n=%u: %u NULLs but %llu faults", n,
               w[0].nulls + w[1].nulls, (unsigned long long)fired);
        size_t errs = heap_errors();
        EXPECT(errs == 0, "threads n=%u: binmalloc_check_heap() found %zu problems", n, errs);
        for (int t = 0; t < 2; t++)
            free_slots(w[t].slots);
        errs = heap_errors();
        EXPECT(errs == 0, "threads n=%u: binmalloc_check_heap() found %zu problems after freeing", n,
               errs);
        if (case_failures)
            break;
    }
    uint64_t faults = inject(0) - f0;
    total_faults += faults;
    EXPECT(any_fired, "no fault fired in the threaded sweep");
    char detail[200];
    snprintf(detail, sizeof detail,
             "%u runs, 2 threads x %zu ops, %u calls returned NULL/ENOMEM; %llu faults injected",
             runs, ops, nulls, (unsigned long long)faults);
    case_end("sweep, two threads", detail);
    for (int t = 0; t < 2; t++)
        munmap(w[t].slots, SLOTS * sizeof(slot_t));
}

/* ================================================================== main */

static int env_workload(void)
{
    /* BINMALLOC_FAULT_MMAP=N, set by the caller, armed the start-up thread:
     * run the workload without re-arming (NO_ARM), then read the count. */
    workload_t w = {0};
    w.slots = os_alloc(SLOTS * sizeof(slot_t));
    w.ops = 2000;
    w.seed = 4242;
    w.arm = NO_ARM;
    run_workload(&w);
    size_t errs = heap_errors();
    free_slots(w.slots);
    size_t errs2 = heap_errors();
    uint64_t faults = inject(0);
    printf("env workload: %u NULLs, %d failures, heap problems %zu/%zu, faults injected %llu\n",
           w.nulls, w.failures, errs, errs2, (unsigned long long)faults);
    int ok = w.nulls <= faults && w.nulls <= 1 && w.failures == 0 && errs == 0 && errs2 == 0;
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    bm_resolve();
    inject = (inject_fn)bm_sym("binmalloc_inject_mmap_failure");
    get_stats = (stats_fn)bm_sym("binmalloc_stats");
    const char *st = getenv("STRESS");
    stress = st && *st && strcmp(st, "0") != 0;
    if (argc > 1 && strcmp(argv[1], "--env-workload") == 0)
        return env_workload();

    bm_require_served();
    held = os_alloc(HELD_MAX * sizeof(held_t));

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        run_path(&paths[i]);
    /* a second round: the dynamic cutoff has risen and regions are warm */
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (paths[i].size >= 8 * MiB && paths[i].size <= 32 * MiB)
            run_path(&paths[i]);

    sweep_single(stress ? 10000 : 2000, stress ? 600 : 300);
    sweep_threads(stress ? 5000 : 1500, stress ? 40 : 10);

    printf("faults injected in all: %llu\n", (unsigned long long)total_faults);
    printf("%u passed, %u failed\n", cases_passed, cases_failed);
    return cases_failed ? 1 : 0;
}
