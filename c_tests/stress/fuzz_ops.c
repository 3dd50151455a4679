/*
 * fuzz_ops.c - a libFuzzer-style harness: the input bytes are a program of
 * allocation calls, run against binmalloc with a shadow table.
 *
 * Each op is an opcode byte followed by argument bytes (missing bytes read
 * as 0). Ops: malloc, calloc (zeroed), realloc (grow, shrink, to 0, from
 * NULL), reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc,
 * pvalloc, malloc_usable_size, rewrite a block, malloc_trim, the heap
 * checker, and a first-class heap (alloc, calloc, realloc, free, reset).
 * Sizes run from 0 to 64 MiB (live bytes are capped at 256 MiB), alignments
 * up to 2 MiB. Every block carries a pattern (whole, or its first and last
 * 16 KiB when larger) checked before every free and realloc and at the end
 * of the input; alignment, binmalloc_owns and malloc_usable_size are checked
 * on every result. At the end of each input everything is freed and
 * binmalloc_check_heap() must find nothing. Any violation prints what and
 * where and calls abort(), which libFuzzer reports as a crash.
 *
 * Builds:
 *   clang -fsanitize=fuzzer -DBM_LIBFUZZER ... -lbinmalloc     a real fuzzer
 *       (no AddressSanitizer: it would replace malloc)
 *   cc ... (no BM_LIBFUZZER)    a standalone driver: fuzz_ops [N [SEED]]
 *       feeds N (default 3000) seeded random inputs of 1..1024 bytes; fuzz_ops FILE... replays
 *       inputs (crash files from libFuzzer).
 * Run it linked with -lbinmalloc or with LD_PRELOAD=libbinmalloc.so.
 */
#include "../common.h"
#include "../../include/binmalloc.h"

#include <malloc.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define SLOTS 64
#define HSLOTS 32
#define LIVE_CAP (256 * MiB)
#define EDGE (16 * KiB)

typedef struct {
    unsigned char *p;
    size_t n;
    uint64_t key;
    int kind; /* 0 malloc family, 1 first-class heap */
} slot;

static slot slots[SLOTS];
static slot hslots[HSLOTS];
static size_t live_bytes;
static uint64_t op_counter;

typedef binmalloc_heap *(*heap_new_fn)(const binmalloc_heap_config *);
typedef void *(*heap_alloc_fn)(binmalloc_heap *, size_t);
typedef void *(*heap_calloc_fn)(binmalloc_heap *, size_t, size_t);
typedef void *(*heap_realloc_fn)(binmalloc_heap *, void *, size_t);
typedef void (*heap_free_fn)(binmalloc_heap *, void *);
typedef void (*heap_reset_fn)(binmalloc_heap *);
typedef void (*heap_destroy_fn)(binmalloc_heap *);
typedef size_t (*heap_check_fn)(binmalloc_heap *);
static heap_new_fn heap_new;
static heap_alloc_fn heap_alloc;
static heap_calloc_fn heap_calloc;
static heap_realloc_fn heap_realloc;
static heap_free_fn heap_free;
static heap_reset_fn heap_reset;
static heap_destroy_fn heap_destroy;
static heap_check_fn heap_check;

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, "fuzz_ops: ", 10);
    w = write(2, buf, (size_t)n);
    (void)w;
    abort();
}

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    bm_resolve();
    void *p = malloc(16);
    if (!p || bm_owns(p) != 1)
        die("binmalloc does not serve malloc in this process");
    free(p);
    heap_new = (heap_new_fn)bm_sym("binmalloc_heap_new");
    heap_alloc = (heap_alloc_fn)bm_sym("binmalloc_heap_alloc");
    heap_calloc = (heap_calloc_fn)bm_sym("binmalloc_heap_calloc");
    heap_realloc = (heap_realloc_fn)bm_sym("binmalloc_heap_realloc");
    heap_free = (heap_free_fn)bm_sym("binmalloc_heap_free");
    heap_reset = (heap_reset_fn)bm_sym("binmalloc_heap_reset");
    heap_destroy = (heap_destroy_fn)bm_sym("binmalloc_heap_destroy");
    heap_check = (heap_check_fn)bm_sym("binmalloc_heap_check");
}

/* ---------------------------------------------------------- patterns */

static inline unsigned char pat(uint64_t key, size_t i)
{
    return (unsigned char)((key ^ ((uint64_t)(i >> 3) * 0x9E3779B97F4A7C15ull)) >> ((i & 7) * 8));
}

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t key)
{
    for (size_t i = from; i < to; i++)
        p[i] = pat(key, i);
}

static void fill(slot *s)
{
    if (s->n <= 2 * EDGE) {
        fill_range(s->p, 0, s->n, s->key);
    } else {
        fill_range(s->p, 0, EDGE, s->key);
        fill_range(s->p, s->n - EDGE, s->n, s->key);
    }
}

/* first differing offset below limit, or (size_t)-1 */
static size_t verify_upto(const unsigned char *p, size_t n, uint64_t key, size_t limit)
{
    size_t lim = n < limit ? n : limit;
    if (n <= 2 * EDGE) {
        for (size_t i = 0; i < lim; i++)
            if (p[i] != pat(key, i))
                return i;
        return (size_t)-1;
    }
    for (size_t i = 0; i < lim && i < EDGE; i++)
        if (p[i] != pat(key, i))
            return i;
    for (size_t i = n - EDGE; i < lim; i++)
        if (p[i] != pat(key, i))
            return i;
    return (size_t)-1;
}

static void verify(const slot *s, const char *when)
{
    size_t bad = verify_upto(s->p, s->n, s->key, SIZE_MAX);
    if (bad != (size_t)-1)
        die("%s: block %p (%zu bytes) damaged at offset %zu", when, (void *)s->p, s->n, bad);
}

static int zeroed(const unsigned char *p, size_t n)
{
    if (n <= 2 * EDGE)
        return bm_all_zero(p, n);
    return bm_all_zero(p, EDGE) && bm_all_zero(p + n - EDGE, EDGE);
}

/* ------------------------------------------------------------ input */

typedef struct {
    const uint8_t *d;
    size_t n, i;
} reader;

static uint8_t rd(reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }

static size_t rd_size(reader *r)
{
    uint8_t a = rd(r), b = rd(r);
    switch (a & 7) {
    case 0: case 1: case 2: case 3: /* tiny, including 0 */
        return b;
    case 4: case 5: /* up to 16 KiB */
        return ((size_t)b << 6) | (a >> 3);
    case 6: /* up to 1 MiB, around the cutoff too */
        return ((size_t)b << 12) + ((size_t)(a >> 3) << 4) - 64;
    default: /* up to 4 MiB, rarely up to 64 MiB (above the highest dynamic cutoff) */
        if ((a >> 3) == 31)
            return ((size_t)b << 18) + 4096;
        return ((size_t)b << 14) + ((size_t)(a >> 3) << 10);
    }
}

static size_t rd_align(reader *r) { return (size_t)16 << (rd(r) % 18); } /* 16 B .. 2 MiB */

static size_t fix_size(size_t n) { return n > 64 * MiB ? n & (64 * MiB - 1) : n; }

static void check_new(const slot *s, size_t align, const char *call)
{
    if (!bm_is_aligned(s->p, align))
        die("%s(%zu): %p not aligned to %zu", call, s->n, (void *)s->p, align);
    if (s->kind == 0) {
        if (bm_owns(s->p) != 1)
            die("%s(%zu): binmalloc_owns(%p) != 1", call, s->n, (void *)s->p);
        if (malloc_usable_size(s->p) < s->n)
            die("%s(%zu): usable size %zu", call, s->n, malloc_usable_size(s->p));
    }
}

static void release(slot *s, binmalloc_heap *h)
{
    if (!s->p)
        return;
    verify(s, "free");
    if (s->kind)
        heap_free(h, s->p);
    else
        free(s->p);
    live_bytes -= s->n;
    s->p = NULL;
}

static void place(slot *s, void *p, size_t n, size_t align, int kind, const char *call)
{
    if (!p) {
        if (n < 1024 * MiB)
            die("%s(%zu) returned NULL (errno %d)", call, n, errno);
        return;
    }
    s->p = p;
    s->n = n;
    s->kind = kind;
    s->key = bm_mix(++op_counter);
    live_bytes += n;
    check_new(s, align, call);
    fill(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    reader r = {data, size, 0};
    binmalloc_heap *h = NULL;
    while (r.i < r.n) {
        uint8_t op = rd(&r);
        slot *s = &slots[rd(&r) % SLOTS];
        switch (op % 20) {
        case 0:
        case 1: { /* malloc */
            size_t n = fix_size(rd_size(&r));
            release(s, h);
            if (live_bytes + n > LIVE_CAP)
                break;
            place(s, malloc(n), n, 16, 0, "malloc");
            break;
        }
        case 2: { /* calloc */
            size_t n = fix_size(rd_size(&r));
            size_t m = 1 + rd(&r) % 4;
            release(s, h);
            if (live_bytes + n * m > LIVE_CAP)
                break;
            unsigned char *p = calloc(n, m);
            if (p && !zeroed(p, n * m))
                die("calloc(%zu, %zu): %p not zeroed", n, m, (void *)p);
            place(s, p, n * m, 16, 0, "calloc");
            break;
        }
        case 3:
        case 4: { /* realloc */
            size_t n = fix_size(rd_size(&r));
            if (s->p && s->kind)
                break;
            if (s->p && live_bytes - s->n + n > LIVE_CAP)
                break;
            if (!s->p && live_bytes + n > LIVE_CAP)
                break;
            if (s->p)
                verify(s, "realloc");
            unsigned char *q = realloc(s->p, n);
            if (n == 0 && s->p) { /* realloc(p, 0) frees p */
                if (q)
                    die("realloc(%p, 0) returned %p, not NULL", (void *)s->p, (void *)q);
                live_bytes -= s->n;
                s->p = NULL;
                break;
            }
            if (!q)
                die("realloc(%p, %zu) returned NULL", (void *)s->p, n);
            if (s->p) {
                size_t bad = verify_upto(q, s->n, s->key, n);
                if (bad != (size_t)-1)
                    die("realloc %p -> %p (%zu -> %zu) lost contents at %zu", (void *)s->p, (void *)q,
                        s->n, n, bad);
                live_bytes -= s->n;
                s->p = NULL;
            }
            place(s, q, n, 16, 0, "realloc");
            break;
        }
        case 5: { /* reallocarray */
            size_t n = fix_size(rd_size(&r)) / 8, m = 8;
            if (s->p && s->kind)
                break;
            release(s, h);
            if (live_bytes + n * m > LIVE_CAP)
                break;
            place(s, reallocarray(NULL, n, m), n * m, 16, 0, "reallocarray");
            break;
        }
        case 6:
        case 7: /* free */
            release(s, h);
            break;
        case 8: { /* posix_memalign */
            size_t a = rd_align(&r), n = fix_size(rd_size(&r));
            release(s, h);
            if (live_bytes + n > LIVE_CAP)
                break;
            void *p = NULL;
            int rc = posix_memalign(&p, a, n);
            if (rc)
                die("posix_memalign(%zu, %zu) = %d", a, n, rc);
            place(s, p, n, a, 0, "posix_memalign");
            break;
        }
        case 9: { /* aligned_alloc */
            size_t a = rd_align(&r), n = fix_size(rd_size(&r));
            n = (n + a - 1) & ~(a - 1);
            release(s, h);
            if (live_bytes + n > LIVE_CAP)
                break;
            place(s, aligned_alloc(a, n), n, a, 0, "aligned_alloc");
            break;
        }
        case 10: { /* memalign */
            size_t a = rd_align(&r), n = fix_size(rd_size(&r));
            release(s, h);
            if (live_bytes + n > LIVE_CAP)
                break;
            place(s, memalign(a, n), n, a, 0, "memalign");
            break;
        }
        case 11: { /* valloc / pvalloc */
            size_t n = fix_size(rd_size(&r));
            int pv = rd(&r) & 1;
            release(s, h);
            if (live_bytes + n + 4096 > LIVE_CAP)
                break;
            void *p = pv ? pvalloc(n) : valloc(n);
            if (pv)
                n = n ? (n + 4095) & ~(size_t)4095 : 4096;
            place(s, p, n, 4096, 0, pv ? "pvalloc" : "valloc");
            break;
        }
        case 12: /* malloc_usable_size, ownership */
            if (s->p && !s->kind) {
                if (malloc_usable_size(s->p) < s->n)
                    die("malloc_usable_size(%p) = %zu < %zu", (void *)s->p, malloc_usable_size(s->p), s->n);
                if (bm_owns(s->p) != 1)
                    die("binmalloc_owns(%p) != 1 for a live block", (void *)s->p);
            }
            break;
        case 13: /* rewrite a block with a new pattern */
            if (s->p) {
                verify(s, "rewrite");
                s->key = bm_mix(++op_counter);
                fill(s);
            }
            break;
        case 14:
            if (rd(&r) < 16)
                malloc_trim(0);
            break;
        case 15:
            if (rd(&r) < 32) {
                size_t e = bm_check_heap_errors();
                if (e)
                    die("binmalloc_check_heap() found %zu problems mid-input", e);
            }
            break;
        case 16: /* first-class heap: alloc / calloc */
        case 17: {
            slot *t = &hslots[rd(&r) % HSLOTS];
            size_t n = fix_size(rd_size(&r)) & (4 * MiB - 1);
            if (!h && !(h = heap_new(NULL)))
                die("binmalloc_heap_new failed");
            if (t->p) {
                verify(t, "heap free");
                heap_free(h, t->p);
                live_bytes -= t->n;
                t->p = NULL;
            }
            void *p = op % 20 == 16 ? heap_alloc(h, n) : heap_calloc(h, n, 1);
            if (p && op % 20 == 17 && !zeroed(p, n))
                die("binmalloc_heap_calloc(%zu): not zeroed", n);
            place(t, p, n, 16, 1, "binmalloc_heap_alloc");
            break;
        }
        case 18: { /* first-class heap: realloc */
            slot *t = &hslots[rd(&r) % HSLOTS];
            size_t n = 1 + (fix_size(rd_size(&r)) & (4 * MiB - 1));
            if (!h || !t->p)
                break;
            verify(t, "heap realloc");
            void *q = heap_realloc(h, t->p, n);
            if (!q)
                die("binmalloc_heap_realloc(%zu) returned NULL", n);
            size_t bad = verify_upto(q, t->n, t->key, n);
            if (bad != (size_t)-1)
                die("binmalloc_heap_realloc lost contents at %zu", bad);
            live_bytes -= t->n;
            t->p = NULL;
            place(t, q, n, 16, 1, "binmalloc_heap_realloc");
            break;
        }
        case 19: /* first-class heap: reset (frees all its blocks at once) */
            if (h && rd(&r) < 64) {
                if (heap_check(h) != 0)
                    die("binmalloc_heap_check found problems before reset");
                for (int i = 0; i < HSLOTS; i++)
                    if (hslots[i].p) {
                        verify(&hslots[i], "heap reset");
                        live_bytes -= hslots[i].n;
                        hslots[i].p = NULL;
                    }
                heap_reset(h);
            }
            break;
        }
    }
    /* end of input: everything verified and freed, the heap sound */
    for (int i = 0; i < SLOTS; i++)
        release(&slots[i], h);
    if (h) {
        if (heap_check(h) != 0)
            die("binmalloc_heap_check found problems at the end of the input");
        for (int i = 0; i < HSLOTS; i++)
            if (hslots[i].p) {
                verify(&hslots[i], "end");
                live_bytes -= hslots[i].n;
                hslots[i].p = NULL;
            }
        heap_destroy(h);
    }
    if (live_bytes != 0)
        die("shadow table bookkeeping: %zu bytes left", live_bytes);
    size_t e = bm_check_heap_errors();
    if (e)
        die("binmalloc_check_heap() found %zu problems at the end of the input", e);
    return 0;
}

#ifndef BM_LIBFUZZER
static int replay(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    printf("replayed %s (%zu bytes): ok\n", path, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (argv[1][0] < '0' || argv[1][0] > '9')) {
        int rc = 0;
        for (int i = 1; i < argc; i++)
            rc |= replay(argv[i]);
        printf("%d passed, %d failed\n", rc ? 0 : argc - 1, rc ? 1 : 0);
        return rc;
    }
    unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    static uint8_t buf[1024];
    bm_rng r;
    bm_rng_seed(&r, seed);
    size_t total = 0;
    for (unsigned long k = 0; k < count; k++) {
        size_t n = bm_rng_range(&r, 1, sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)bm_rng_next(&r);
        LLVMFuzzerTestOneInput(buf, n);
        total += n;
    }
    printf("fuzz_ops: %lu random inputs (seed %llu, %zu bytes of ops), every one clean\n", count,
           (unsigned long long)seed, total);
    printf("1 passed, 0 failed\n");
    return 0;
}
#endif
