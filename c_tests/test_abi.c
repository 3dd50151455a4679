/*
 * test_abi.c - the whole C allocation ABI against glibc's documented
 * behaviour: alignment, usable sizes, errno, overflow checks, realloc
 * content preservation, the aligned allocation family, the malloc.h extras,
 * and binmalloc_owns / binmalloc_check_heap.
 *
 * Run it under each placement policy: BINMALLOC_FIT=first|best|worst.
 */
#include "common.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t page;

/* Values the compiler cannot see through (keeps -Walloc-size-larger-than
 * quiet and stops constant folding of the failure cases). */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_ptrdiff_max_plus_1 = (size_t)PTRDIFF_MAX + 1;

/* A fresh block from any allocation call: not NULL, aligned to 16 (and to
 * `align`), ours, usable size >= n, and the whole usable size can be written
 * and read back. */
static void *check_block(void *p, size_t n, size_t align, const char *what)
{
    CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
    CHECK(bm_is_aligned(p, 16), "%s(%zu) = %p not 16-byte aligned", what, n, p);
    if (align > 16)
        CHECK(bm_is_aligned(p, align), "%s(%zu) = %p not %zu-byte aligned", what, n, p, align);
    CHECK(bm_owns(p) == 1, "binmalloc_owns(%s(%zu) = %p) != 1", what, n, p);
    size_t us = malloc_usable_size(p);
    CHECK(us >= n, "%s(%zu): malloc_usable_size = %zu < requested", what, n, us);
    uint64_t key = bm_pattern_key(p, us, 1);
    bm_fill(p, us, key);
    size_t bad = bm_verify(p, us, key);
    CHECK(bad == (size_t)-1, "%s(%zu) = %p: byte %zu of usable %zu did not read back", what, n, p,
          bad, us);
    return p;
}

static void test_alignment_small(void)
{
    enum { N = 4097 };
    static void *blocks[N];
    static size_t usable[N];
    for (size_t n = 0; n < N; n++) {
        blocks[n] = check_block(malloc(n), n, 16, "malloc");
        usable[n] = malloc_usable_size(blocks[n]);
        bm_fill(blocks[n], usable[n], bm_pattern_key(blocks[n], n, 2));
    }
    /* Every block still holds its own pattern once all are live: no
     * block's usable area overlaps another's or a header. */
    for (size_t n = 0; n < N; n++) {
        size_t bad = bm_verify(blocks[n], usable[n], bm_pattern_key(blocks[n], n, 2));
        CHECK(bad == (size_t)-1, "malloc(%zu) = %p: byte %zu overwritten while other blocks were live",
              n, blocks[n], bad);
    }
    check_heap();
    for (size_t n = 0; n < N; n++)
        free(blocks[n]);
    check_heap();
}

static void test_alignment_powers(void)
{
    static const long deltas[] = {-17, -16, -1, 0, 1, 16, 17};
    for (int k = 0; k <= 26; k++) {
        for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
            long n = (1L << k) + deltas[d];
            if (n < 0)
                continue;
            void *p = check_block(malloc((size_t)n), (size_t)n, 16, "malloc");
            free(p);
        }
    }
    check_heap();
}

/* Sizes just around every place the big-allocation cutoff may sit. */
static void test_around_cutoffs(void)
{
    static const size_t cutoffs[] = {128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB, 2 * MiB};
    for (size_t c = 0; c < sizeof cutoffs / sizeof cutoffs[0]; c++) {
        size_t cut = cutoffs[c];
        for (long d = -80; d <= 80; d++) {
            size_t n = cut + (size_t)d;
            void *p = check_block(malloc(n), n, 16, "malloc");
            free(p);
        }
        for (long d = -8192; d <= 8192; d += 512) {
            size_t n = cut + (size_t)d;
            void *p = check_block(malloc(n), n, 16, "malloc");
            /* keep a neighbour live so both paths see a non-empty heap */
            void *q = check_block(malloc(n / 2), n / 2, 16, "malloc");
            free(p);
            free(q);
        }
    }
    check_heap();
}

/* Many random blocks live at once: sorted by address, no two usable ranges
 * overlap, and each keeps its pattern. */
static void test_no_overlap(void)
{
    enum { N = 20000 };
    static void *p[N];
    static size_t us[N];
    bm_rng r;
    bm_rng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        size_t n;
        uint64_t x = bm_rng_next(&r) % 1000;
        if (x < 900)
            n = bm_rng_range(&r, 1, 512);
        else if (x < 995)
            n = bm_rng_range(&r, 513, 32 * KiB);
        else
            n = bm_rng_range(&r, 32 * KiB, 600 * KiB);
        p[i] = malloc(n);
        CHECK(p[i] != NULL && bm_is_aligned(p[i], 16), "malloc(%zu) = %p", n, p[i]);
        us[i] = malloc_usable_size(p[i]);
        CHECK(us[i] >= n, "usable %zu < %zu", us[i], n);
        bm_fill(p[i], us[i], bm_pattern_key(p[i], us[i], 3));
        /* free a random earlier block now and then, so holes get reused */
        if (i > 0 && bm_rng_next(&r) % 4 == 0) {
            int j = (int)(bm_rng_next(&r) % (uint64_t)i);
            if (p[j]) {
                CHECK(bm_verify(p[j], us[j], bm_pattern_key(p[j], us[j], 3)) == (size_t)-1,
                      "block %p (usable %zu) was overwritten", p[j], us[j]);
                free(p[j]);
                p[j] = NULL;
            }
        }
    }
    /* sort live blocks by address (insertion into a compacted array) */
    static uintptr_t lo[N], hi[N];
    int live = 0;
    for (int i = 0; i < N; i++) {
        if (!p[i])
            continue;
        CHECK(bm_verify(p[i], us[i], bm_pattern_key(p[i], us[i], 3)) == (size_t)-1,
              "block %p (usable %zu) was overwritten", p[i], us[i]);
        lo[live] = (uintptr_t)p[i];
        hi[live] = (uintptr_t)p[i] + us[i];
        live++;
    }
    /* shell sort on lo, carrying hi */
    for (int gap = live / 2; gap > 0; gap /= 2)
        for (int i = gap; i < live; i++) {
            uintptr_t l = lo[i], h = hi[i];
            int j = i;
            for (; j >= gap && lo[j - gap] > l; j -= gap) {
                lo[j] = lo[j - gap];
                hi[j] = hi[j - gap];
            }
            lo[j] = l;
            hi[j] = h;
        }
    for (int i = 1; i < live; i++)
        CHECK(hi[i - 1] <= lo[i], "blocks overlap: [%#lx,%#lx) and [%#lx,%#lx)",
              (unsigned long)lo[i - 1], (unsigned long)hi[i - 1], (unsigned long)lo[i],
              (unsigned long)hi[i]);
    check_heap();
    for (int i = 0; i < N; i++)
        free(p[i]);
    check_heap();
}

static void test_malloc_zero_and_free_null(void)
{
    enum { N = 200 };
    void *z[N];
    for (int i = 0; i < N; i++) {
        z[i] = malloc(0);
        check_block(z[i], 0, 16, "malloc");
        for (int j = 0; j < i; j++)
            CHECK(z[i] != z[j], "malloc(0) returned %p twice", z[i]);
    }
    for (int i = 0; i < N; i++)
        free(z[i]);
    errno = 0;
    free(NULL);
    CHECK(errno == 0, "free(NULL) changed errno to %d", errno);
    check_heap();
}

static void test_calloc(void)
{
    static const size_t sizes[] = {0,    1,       7,        16,        24,       100,
                                   1000, 4096,    10000,    65536,     200000,   300 * KiB,
                                   1 * MiB, 3 * MiB, 8 * MiB + 5, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* fresh */
        unsigned char *p = calloc(1, n);
        CHECK(p != NULL && bm_is_aligned(p, 16), "calloc(1, %zu) = %p", n, (void *)p);
        CHECK(bm_all_zero(p, n), "calloc(1, %zu) not zeroed", n);
        CHECK(bm_owns(p) == 1, "calloc block %p not owned", (void *)p);
        free(p);
        /* dirty memory reused: fill, free, calloc the same size again (several
         * times, so that a recycled block is very likely handed back) */
        for (int rep = 0; rep < 4; rep++) {
            unsigned char *d = malloc(n);
            CHECK(d != NULL, "malloc(%zu) NULL", n);
            memset(d, 0xA5, malloc_usable_size(d));
            free(d);
            p = calloc(n, 1);
            CHECK(p != NULL, "calloc(%zu, 1) NULL", n);
            CHECK(bm_all_zero(p, n), "calloc(%zu, 1) after free of dirty block %p: not zeroed (got %p)",
                  n, (void *)d, (void *)p);
            free(p);
        }
    }
    /* n * size as a real product */
    unsigned char *p = calloc(1000, 24);
    CHECK(p && bm_all_zero(p, 24000), "calloc(1000, 24)");
    free(p);
    p = calloc(0, 100);
    CHECK(p != NULL, "calloc(0, 100) returned NULL");
    free(p);
    p = calloc(100, 0);
    CHECK(p != NULL, "calloc(100, 0) returned NULL");
    free(p);

    /* overflow of n * size */
    static const size_t ovf[][2] = {
        {SIZE_MAX / 2 + 1, 2},
        {2, SIZE_MAX / 2 + 1},
        {(size_t)1 << 33, (size_t)1 << 33},
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX / 16 + 1, 16},
        {((size_t)1 << 63) + 1, 2},  /* product wraps to 2 */
        {(size_t)1 << 32, ((size_t)1 << 32) + 1}, /* wraps to 4 GiB */
    };
    for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
        volatile size_t a = ovf[i][0], b = ovf[i][1];
        errno = 0;
        void *q = calloc(a, b);
        CHECK(q == NULL, "calloc(%zu, %zu) overflow returned %p", (size_t)a, (size_t)b, q);
        CHECK(errno == ENOMEM, "calloc(%zu, %zu) overflow: errno %d, want ENOMEM", (size_t)a,
              (size_t)b, errno);
    }
    check_heap();
}

static void test_huge_requests(void)
{
    size_t huge[] = {v_size_max, v_size_max - 1, v_size_max - 15, v_size_max - 4096,
                     v_ptrdiff_max_plus_1, v_ptrdiff_max_plus_1 + 4096, v_size_max / 2 + 16};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = malloc(huge[i]);
        CHECK(p == NULL, "malloc(%zu) returned %p", huge[i], p);
        CHECK(errno == ENOMEM, "malloc(%zu): errno %d, want ENOMEM", huge[i], errno);

        errno = 0;
        p = calloc(1, huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "calloc(1, %zu) = %p errno %d", huge[i], p, errno);

        errno = 0;
        p = aligned_alloc(64, huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(64, %zu) = %p errno %d", huge[i], p, errno);

        errno = 0;
        p = memalign(4096, huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "memalign(4096, %zu) = %p errno %d", huge[i], p, errno);

        errno = 0;
        p = valloc(huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "valloc(%zu) = %p errno %d", huge[i], p, errno);

        errno = 0;
        p = pvalloc(huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "pvalloc(%zu) = %p errno %d", huge[i], p, errno);

        void *m = (void *)0x1;
        int rc = posix_memalign(&m, 64, huge[i]);
        CHECK(rc == ENOMEM, "posix_memalign(64, %zu) returned %d, want ENOMEM", huge[i], rc);

        /* a failed realloc leaves the old block alone */
        unsigned char *old = malloc(100);
        CHECK(old != NULL, "malloc(100)");
        bm_fill(old, 100, 77);
        errno = 0;
        p = realloc(old, huge[i]);
        CHECK(p == NULL, "realloc(p, %zu) returned %p", huge[i], p);
        CHECK(errno == ENOMEM, "realloc(p, %zu): errno %d, want ENOMEM", huge[i], errno);
        CHECK(bm_owns(old) == 1, "failed realloc freed the old block");
        CHECK(bm_verify(old, 100, 77) == (size_t)-1, "failed realloc changed the old block");
        free(old);
    }

    /* reallocarray */
    unsigned char *a = reallocarray(NULL, 10, 10);
    check_block(a, 100, 16, "reallocarray");
    bm_fill(a, 100, 5);
    volatile size_t big_n = SIZE_MAX / 8 + 1;
    errno = 0;
    void *r = reallocarray(a, big_n, 8);
    CHECK(r == NULL && errno == ENOMEM, "reallocarray overflow = %p errno %d", r, errno);
    CHECK(bm_verify(a, 100, 5) == (size_t)-1, "failed reallocarray changed the block");
    errno = 0;
    r = reallocarray(NULL, big_n, 16);
    CHECK(r == NULL && errno == ENOMEM, "reallocarray(NULL) overflow = %p errno %d", r, errno);
    a = reallocarray(a, 1000, 24);
    CHECK(a != NULL && bm_verify(a, 100, 5) == (size_t)-1, "reallocarray grow lost content");
    check_block(a, 24000, 16, "reallocarray");
    free(a);
    check_heap();
}

static void test_realloc(void)
{
    /* small -> big -> small, content preserved up to the smaller size */
    static const size_t steps[] = {1,        10,      24,      100,      1000,    4096,
                                   65536,    200000,  300000,  600000,   1100000, 2 * MiB + 3,
                                   8 * MiB,  64 * MiB, 3 * MiB, 1 * MiB,  500000,  250000,
                                   120000,   5000,    100,     24,       1,       70000,
                                   2 * MiB,  16,      8 * MiB, 8 * MiB + 1, 8 * MiB - 1, 40};
    size_t cur = 0;
    unsigned char *p = NULL;
    uint64_t key = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL && bm_is_aligned(q, 16), "realloc(%p, %zu) = %p", (void *)p, n, (void *)q);
        CHECK(malloc_usable_size(q) >= n, "realloc(%zu): usable %zu", n, malloc_usable_size(q));
        CHECK(bm_owns(q) == 1, "realloc result not owned");
        if (p && q != p)
            CHECK(bm_owns(p) == 0, "realloc moved %p -> %p but the old block is still live",
                  (void *)p, (void *)q);
        size_t keep = cur < n ? cur : n;
        if (keep) {
            size_t bad = bm_verify(q, keep, key);
            CHECK(bad == (size_t)-1, "realloc %zu -> %zu lost content at byte %zu", cur, n, bad);
        }
        key = bm_mix(key + n + 1);
        bm_fill(q, n, key);
        p = q;
        cur = n;
        /* keep the heap non-trivial between steps */
        void *noise = malloc(n / 3 + 1);
        free(noise);
    }
    free(p);
    check_heap();

    /* realloc(NULL, n) is malloc(n) */
    p = realloc(NULL, 123);
    check_block(p, 123, 16, "realloc(NULL)");
    /* same size */
    bm_fill(p, 123, 9);
    unsigned char *q = realloc(p, 123);
    CHECK(q && bm_verify(q, 123, 9) == (size_t)-1, "realloc to the same size lost content");
    /* realloc(p, 0): glibc frees p and returns NULL */
    void *z = realloc(q, 0);
    CHECK(z == NULL, "realloc(p, 0) returned %p, glibc returns NULL", z);
    CHECK(bm_owns(q) == 0, "realloc(p, 0) did not free p");
    /* also for a big block */
    p = malloc(4 * MiB);
    CHECK(p != NULL, "malloc(4 MiB)");
    z = realloc(p, 0);
    CHECK(z == NULL, "realloc(big, 0) returned %p", z);
    CHECK(bm_owns(p) == 0, "realloc(big, 0) did not free the block");
    /* realloc(NULL, 0) is malloc(0): a unique freeable pointer */
    z = realloc(NULL, 0);
    CHECK(z != NULL, "realloc(NULL, 0) returned NULL");
    free(z);

    /* growing a block whose neighbour was freed, many times: content kept */
    for (int i = 0; i < 200; i++) {
        size_t n = 16 + (size_t)i * 8;
        unsigned char *a = malloc(n);
        unsigned char *b = malloc(n);
        CHECK(a && b, "malloc");
        bm_fill(a, n, (uint64_t)i);
        free(b);
        unsigned char *a2 = realloc(a, n * 3);
        CHECK(a2 && bm_verify(a2, n, (uint64_t)i) == (size_t)-1, "realloc grow %zu lost content", n);
        a = realloc(a2, n / 2 + 1);
        CHECK(a && bm_verify(a, n / 2 + 1, (uint64_t)i) == (size_t)-1, "realloc shrink lost content");
        free(a);
    }

    /* realloc of blocks from the aligned family */
    for (size_t al = 32; al <= 1 * MiB; al <<= 3) {
        unsigned char *m = memalign(al, 300);
        CHECK(m && bm_is_aligned(m, al), "memalign(%zu, 300)", al);
        bm_fill(m, 300, al);
        unsigned char *m2 = realloc(m, 5000);
        CHECK(m2 && bm_verify(m2, 300, al) == (size_t)-1, "realloc of memalign(%zu) block lost content", al);
        m = realloc(m2, 100);
        CHECK(m && bm_verify(m, 100, al) == (size_t)-1, "realloc shrink of aligned block lost content");
        free(m);
    }
    check_heap();
}

static void test_posix_memalign(void)
{
    static const size_t sizes[] = {1, 24, 100, 4000, 70000, 300000, 3 * MiB};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *blocks[32][NS];
    int na = 0;
    for (size_t al = 8; al <= 2 * MiB; al <<= 1, na++) {
        for (size_t s = 0; s < NS; s++) {
            void *p = (void *)0x1;
            errno = 4321;
            int rc = posix_memalign(&p, al, sizes[s]);
            CHECK(rc == 0, "posix_memalign(%zu, %zu) returned %d", al, sizes[s], rc);
            CHECK(errno == 4321, "posix_memalign success changed errno to %d", errno);
            check_block(p, sizes[s], al, "posix_memalign");
            bm_fill(p, sizes[s], bm_pattern_key(p, al, s));
            blocks[na][s] = p;
        }
    }
    for (int a = 0; a < na; a++)
        for (size_t s = 0; s < NS; s++) {
            size_t al = (size_t)8 << a;
            CHECK(bm_verify(blocks[a][s], sizes[s], bm_pattern_key(blocks[a][s], al, s)) == (size_t)-1,
                  "posix_memalign(%zu, %zu) block overwritten", al, sizes[s]);
        }
    check_heap();
    for (int a = 0; a < na; a++)
        for (size_t s = 0; s < NS; s++)
            free(blocks[a][s]);
    check_heap();

    /* size 0 */
    void *p = NULL;
    CHECK(posix_memalign(&p, 64, 0) == 0, "posix_memalign(64, 0)");
    CHECK(p == NULL || bm_is_aligned(p, 64), "posix_memalign(64, 0) = %p", p);
    free(p);

    /* bad alignments: EINVAL returned, errno untouched, nothing allocated */
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, (size_t)1 << 63 | 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *m = NULL;
        errno = 1234;
        int rc = posix_memalign(&m, bad[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(%zu, 64) returned %d, want EINVAL", bad[i], rc);
        CHECK(errno == 1234, "posix_memalign(%zu, 64) changed errno to %d", bad[i], errno);
    }
}

static void test_aligned_alloc_memalign(void)
{
    for (size_t al = 1; al <= 1 * MiB; al <<= 1) {
        size_t sizes[] = {1, al, 3 * al + 5, 100};
        for (size_t s = 0; s < 4; s++) {
            void *p = aligned_alloc(al, sizes[s]);
            check_block(p, sizes[s], al, "aligned_alloc");
            free(p);
        }
    }
    errno = 0;
    void *p = aligned_alloc(3, 9);
    CHECK(p == NULL && errno == EINVAL, "aligned_alloc(3, 9) = %p errno %d, want NULL/EINVAL", p, errno);
    errno = 0;
    p = aligned_alloc(24, 48);
    CHECK(p == NULL && errno == EINVAL, "aligned_alloc(24, 48) = %p errno %d, want NULL/EINVAL", p, errno);

    /* memalign: power-of-two alignments */
    for (size_t al = 1; al <= 2 * MiB; al <<= 1) {
        p = memalign(al, 1000);
        check_block(p, 1000, al, "memalign");
        free(p);
    }
    /* memalign: glibc rounds a non-power-of-two alignment up */
    static const size_t odd[][2] = {{0, 1}, {3, 4}, {5, 8}, {24, 32}, {48, 64}, {100, 128},
                                    {1000, 1024}, {4097, 8192}, {65537, 131072}, {3 * MiB, 4 * MiB}};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        p = memalign(odd[i][0], 77);
        CHECK(p != NULL, "memalign(%zu, 77) returned NULL", odd[i][0]);
        check_block(p, 77, odd[i][1], "memalign(non-power-of-two)");
        free(p);
    }

    /* valloc: page aligned */
    static const size_t vs[] = {0, 1, 100, 4096, 5000, 300000, 1 * MiB + 3};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        p = valloc(vs[i]);
        check_block(p, vs[i], page, "valloc");
        free(p);
    }
    /* pvalloc: page aligned, usable >= size rounded up to a page, and a
     * whole page for size 0 */
    static const size_t pvs[] = {0, 1, 100, 4095, 4096, 4097, 300000, 1 * MiB + 1};
    for (size_t i = 0; i < sizeof pvs / sizeof pvs[0]; i++) {
        size_t want = (pvs[i] + page - 1) / page * page;
        if (want == 0)
            want = page;
        p = pvalloc(pvs[i]);
        check_block(p, want, page, "pvalloc");
        free(p);
    }
    check_heap();
}

static void test_usable_errno_cfree(void)
{
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));

    /* free preserves errno, on every path */
    static const size_t sizes[] = {1, 16, 100, 2000, 40000, 200000, 600000, 3 * MiB, 20 * MiB};
    for (int round = 0; round < 3; round++) {
        void *ps[64 * 9];
        int n = 0;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            for (int k = 0; k < 64; k++) {
                ps[n] = malloc(sizes[i]);
                CHECK(ps[n] != NULL, "malloc(%zu)", sizes[i]);
                n++;
            }
        for (int i = 0; i < n; i++) {
            int e = 1234 + i;
            errno = e;
            free(ps[i]);
            CHECK(errno == e, "free() changed errno from %d to %d", e, errno);
        }
    }
    void *al = memalign(65536, 100);
    errno = 1234;
    free(al);
    CHECK(errno == 1234, "free(memalign block) changed errno to %d", errno);

    /* cfree: old glibc name for free; resolve it at run time (modern glibc
     * exports it only as a compat symbol, so it cannot be linked directly) */
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(cfree_fn != NULL, "cfree not found");
    Dl_info ci, mi;
    CHECK(dladdr((void *)cfree_fn, &ci) && dladdr((void *)bm_owns_ptr, &mi), "dladdr");
    CHECK(ci.dli_fbase == mi.dli_fbase, "cfree resolves to %s, not binmalloc's", ci.dli_fname);
    void *c = malloc(50);
    CHECK(c != NULL, "malloc(50)");
    cfree_fn(c);
    CHECK(bm_owns(c) == 0, "cfree did not free the block");
    void *big = malloc(4 * MiB);
    cfree_fn(big);
    CHECK(bm_owns(big) == 0, "cfree did not free the big block");
    cfree_fn(NULL);

    /* freed blocks are no longer owned */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        CHECK(bm_owns(p) == 1, "live block not owned");
        free(p);
        CHECK(bm_owns(p) == 0, "binmalloc_owns(%p) == 1 after free (size %zu)", p, sizes[i]);
    }
    /* pointers binmalloc never returned */
    int local;
    CHECK(bm_owns(NULL) == 0, "binmalloc_owns(NULL) != 0");
    CHECK(bm_owns(&local) == 0, "binmalloc_owns(stack) != 0");
    CHECK(bm_owns((void *)test_usable_errno_cfree) == 0, "binmalloc_owns(code) != 0");
    static char data_buf[64];
    CHECK(bm_owns(data_buf + 16) == 0, "binmalloc_owns(static data) != 0");
    unsigned char *in = malloc(256);
    CHECK(bm_owns(in + 16) == 0, "binmalloc_owns(interior pointer) != 0");
    CHECK(bm_owns(in + 1) == 0, "binmalloc_owns(interior pointer + 1) != 0");
    free(in);
    unsigned char *bigin = malloc(8 * MiB);
    CHECK(bm_owns(bigin + 4096) == 0, "binmalloc_owns(interior of big block) != 0");
    CHECK(bm_owns(bigin + 16) == 0, "binmalloc_owns(interior of big block + 16) != 0");
    free(bigin);
    check_heap();
}

static long fd_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    return (long)st.st_size;
}

static void test_malloc_h_extras(void)
{
    /* mallinfo2: live bytes go up by at least what we hold */
    struct mallinfo2 before = mallinfo2();
    enum { N = 64 };
    void *blocks[N];
    size_t held = 0;
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(64 * KiB);
        CHECK(blocks[i] != NULL, "malloc(64 KiB)");
        memset(blocks[i], 1, 64 * KiB);
        held += 64 * KiB;
    }
    void *bigb = malloc(16 * MiB);
    CHECK(bigb != NULL, "malloc(16 MiB)");
    memset(bigb, 1, 16 * MiB);
    held += 16 * MiB;
    struct mallinfo2 during = mallinfo2();
    size_t used_before = before.uordblks + before.hblkhd;
    size_t used_during = during.uordblks + during.hblkhd;
    CHECK(used_during >= used_before + held,
          "mallinfo2: uordblks+hblkhd went %zu -> %zu while %zu more bytes are held", used_before,
          used_during, held);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    free(bigb);
    struct mallinfo2 after = mallinfo2();
    size_t used_after = after.uordblks + after.hblkhd;
    CHECK(used_after + held / 2 <= used_during,
          "mallinfo2: uordblks+hblkhd %zu after freeing %zu bytes (was %zu)", used_after, held,
          used_during);

    /* malloc_trim: returns 0 or 1, does not break anything */
    int t = malloc_trim(0);
    CHECK(t == 0 || t == 1, "malloc_trim(0) returned %d", t);
    t = malloc_trim(1 * MiB);
    CHECK(t == 0 || t == 1, "malloc_trim(1 MiB) returned %d", t);

    /* mallopt: accepted or ignored, never a crash */
    int mo = mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    CHECK(mo == 0 || mo == 1, "mallopt returned %d", mo);
    mo = mallopt(-12345, 1);
    CHECK(mo == 0 || mo == 1, "mallopt(unknown) returned %d", mo);

    /* malloc_stats writes something to stderr; binmalloc_print_stats to fd */
    char tmpl[] = "/tmp/binmalloc-test-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "mkstemp");
    unlink(tmpl);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0 && dup2(fd, 2) == 2, "dup2");
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n1 = fd_size(fd);
    CHECK(n1 > 0, "malloc_stats() wrote nothing to stderr");
    bm_print_stats_ptr(fd);
    long n2 = fd_size(fd);
    CHECK(n2 > n1, "binmalloc_print_stats(fd) wrote nothing");
    close(fd);

    /* still working afterwards */
    void *p = malloc(1000);
    check_block(p, 1000, 16, "malloc");
    free(p);
    check_heap();
}

int main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    bm_require_served();
    const char *fit = getenv("BINMALLOC_FIT");
    printf("test_abi: BINMALLOC_FIT=%s\n", fit ? fit : "(default)");

    test_alignment_small();
    test_alignment_powers();
    test_around_cutoffs();
    test_no_overlap();
    test_malloc_zero_and_free_null();
    test_calloc();
    test_huge_requests();
    test_realloc();
    test_posix_memalign();
    test_aligned_alloc_memalign();
    test_usable_errno_cfree();
    test_malloc_h_extras();
    check_heap();
    return bm_finish("test_abi");
}
