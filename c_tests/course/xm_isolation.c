/*
 * xm_isolation.c - xmalloc memory comes from libbinmalloc_course, and the process malloc is
 * untouched: the C library's malloc is still the one that resolves, and glibc's own counters
 * (mallinfo2) do not move while thousands of blocks are allocated, resized and freed through
 * xmalloc/xrealloc/xfree (or hmalloc/hfree). Also the realloc-like edge cases of xrealloc.
 *
 * Built twice by scripts/test_course.sh: against the shared library, and statically against the
 * .a with -DCOURSE_LINK_STATIC (then xmalloc lives in the executable itself).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#include "hmalloc.h"
#include "xmalloc.h"
#include "course_check.h"

#define BLOCKS 20000

static void *blocks[BLOCKS];

static const char *object_of(const void *addr)
{
    Dl_info info;
    CHECK(dladdr(addr, &info) != 0, "dladdr(%p)", addr);
    return info.dli_fname ? info.dli_fname : "";
}

static int same_glibc_counters(const struct mallinfo2 *a, const struct mallinfo2 *b)
{
    return a->arena == b->arena && a->ordblks == b->ordblks && a->hblks == b->hblks &&
           a->hblkhd == b->hblkhd && a->uordblks == b->uordblks && a->fordblks == b->fordblks;
}

int main(void)
{
    /* Where the names resolve. */
    void *libc_malloc = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(libc_malloc != NULL, "dlsym(malloc)");
    const char *malloc_from = object_of(libc_malloc);
    CHECK(strstr(malloc_from, "libc.so") != NULL, "malloc resolves to %s, not the C library",
          malloc_from);
    const char *xmalloc_from = object_of((void *)xmalloc);
#ifdef COURSE_LINK_STATIC
    CHECK(strcmp(xmalloc_from, object_of((void *)main)) == 0,
          "static build: xmalloc should be in the executable, found in %s", xmalloc_from);
#else
    CHECK(strstr(xmalloc_from, "libbinmalloc_course.so") != NULL,
          "xmalloc resolves to %s", xmalloc_from);
#endif
    CHECK(dlsym(RTLD_DEFAULT, "binmalloc_stats") == NULL, "binmalloc's own C API is not exported");

    /* A live glibc block through the whole test: it must survive untouched. */
    char *mine = malloc(1000);
    CHECK(mine != NULL, "malloc");
    memset(mine, 0x6b, 1000);

    /* Warm up both allocators (start-up may register fork and thread-exit handlers, which the
     * C library is free to malloc for), then take glibc's counters. */
    xfree(xmalloc(1));
    hfree(hmalloc(1));
    struct mallinfo2 before = mallinfo2();

    uint64_t rng = 88172645463325252ull;
    for (int i = 0; i < BLOCKS; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        size_t size = i % 1000 == 0 ? (size_t)(2 << 20) : (size_t)(rng % 5000);
        blocks[i] = xmalloc(size);
        CHECK(blocks[i] != NULL, "xmalloc(%zu)", size);
        CHECK_EQ((uintptr_t)blocks[i] % 16, 0);
        memset(blocks[i], (int)i, size < 64 ? size : 64);
    }
    for (int i = 0; i < BLOCKS; i += 3) {
        blocks[i] = xrealloc(blocks[i], 7000);
        CHECK(blocks[i] != NULL, "xrealloc");
    }
    void *h[1000];
    for (int i = 0; i < 1000; i++) {
        h[i] = hmalloc((size_t)i * 13);
        CHECK(h[i] != NULL, "hmalloc");
    }
    struct mallinfo2 during = mallinfo2();
    CHECK(same_glibc_counters(&before, &during),
          "glibc's counters moved: in use %zu -> %zu bytes, %zu -> %zu mmapped",
          before.uordblks, during.uordblks, before.hblkhd, during.hblkhd);

    for (int i = 0; i < BLOCKS; i++)
        xfree(blocks[i]);
    for (int i = 0; i < 1000; i++)
        hfree(h[i]);
    struct mallinfo2 after = mallinfo2();
    CHECK(same_glibc_counters(&before, &after), "glibc's counters moved after freeing");
    for (int i = 0; i < 1000; i++)
        CHECK(mine[i] == 0x6b, "the glibc block changed at %d", i);
    free(mine);

    /* realloc-like edge cases. */
    void *z = xmalloc(0);
    CHECK(z != NULL, "xmalloc(0) returns a block");
    xfree(z);
    xfree(NULL);
    char *p = xrealloc(NULL, 100);
    CHECK(p != NULL, "xrealloc(NULL, 100) is xmalloc(100)");
    for (int i = 0; i < 100; i++)
        p[i] = (char)i;
    errno = 0;
    CHECK(xmalloc(SIZE_MAX / 2) == NULL && errno == ENOMEM, "an impossible xmalloc: NULL, ENOMEM");
    errno = 0;
    CHECK(xrealloc(p, SIZE_MAX / 2) == NULL && errno == ENOMEM, "an impossible xrealloc");
    for (int i = 0; i < 100; i++)
        CHECK(p[i] == (char)i, "a failed xrealloc left the block as it was (byte %d)", i);
    p = xrealloc(p, 100000);
    CHECK(p != NULL, "xrealloc grow");
    for (int i = 0; i < 100; i++)
        CHECK(p[i] == (char)i, "xrealloc kept byte %d", i);
    CHECK(xrealloc(p, 0) == NULL, "xrealloc(p, 0) frees and returns NULL");

    puts("xm_isolation: ok");
    return 0;
}
