/*
 * hm_big.c - blocks of a page or more: ceil(n / 4096) pages of their own (n = request + 8),
 * mapped by hmalloc and unmapped by hfree; hrealloc between the small and big sides.
 *
 * Derivation (the program starts with no heap):
 *   hmalloc(4088):    n = 4096    -> 1 page                 mapped 1
 *   hmalloc(4089):    n = 4097    -> 2 pages                mapped 3
 *   hmalloc(8184):    n = 8192    -> 2 pages                mapped 5
 *   hmalloc(8185):    n = 8193    -> 3 pages                mapped 8
 *   hmalloc(1 MiB):   n = 1048584 -> 256 + 1 = 257 pages    mapped 265
 *   hmalloc(40952):   n = 40960   -> 10 pages               mapped 275
 *   No cell was made: freelen 0.  Stats: 275, 0, 6, 0, 0.
 *   hfree(4088) -> unmapped 1; hfree(1 MiB) -> 258; hfree of the other four -> 275.
 *   Stats: 275, 275, 6, 6, 0.
 *   100 x { hmalloc(1 MiB), fill, hfree }: +257 mapped and +257 unmapped each time
 *   (the run under RLIMIT_AS = 16 MiB only passes because each one really is unmapped).
 *   Stats: 25975, 25975, 106, 106, 0.
 *   q  = hmalloc(100):      cell 112, maps a page (25976), rest 3984 kept: freelen 1, allocs 107
 *   q2 = hrealloc(q, 5000): hmalloc(5000): n = 5008 -> 2 pages (25978), allocs 108; copies the
 *                           104 bytes q can hold; hfree(q): frees 107, q merges with the rest:
 *                           the page is one free cell, freelen 1
 *   q3 = hrealloc(q2, 200): hmalloc(200): cell 208 from that page, rest 3888 kept (freelen 1),
 *                           allocs 109; copies 200 bytes; hfree(q2): 2 pages unmapped (25977),
 *                           frees 108
 *   hrealloc(q3, 0):        hfree(q3) (frees 109, page whole again), returns NULL
 *   r = hrealloc(NULL, 24): hmalloc(24), cell 32 (allocs 110); hfree(r) (frees 110)
 *   hfree(NULL):            ignored, not counted
 *   Final: mapped 25978, unmapped 25977, allocs 110, frees 110, freelen 1.
 */
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

static void fill(char *p, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(seed + i * 7);
}

static void verify(const char *p, size_t n, int seed, const char *what)
{
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (char)(seed + i * 7), "%s: byte %zu", what, i);
}

int main(void)
{
    static const size_t sizes[] = {4088, 4089, 8184, 8185, 1 << 20, 40952};
    static const long pages[] = {1, 2, 2, 3, 257, 10};
    char *big[6];
    long mapped = 0;
    for (int i = 0; i < 6; i++) {
        big[i] = hmalloc(sizes[i]);
        CHECK(big[i] != NULL, "hmalloc(%zu)", sizes[i]);
        CHECK_EQ((uintptr_t)big[i] % 4096, 8);
        fill(big[i], sizes[i], i);
        mapped += pages[i];
        CHECK_STATS(mapped, 0, i + 1, 0, 0);
    }
    CHECK_STATS(275, 0, 6, 0, 0);
    for (int i = 0; i < 6; i++)
        verify(big[i], sizes[i], i, "big block");

    hfree(big[0]);
    CHECK_STATS(275, 1, 6, 1, 0);
    hfree(big[4]);
    CHECK_STATS(275, 258, 6, 2, 0);
    hfree(big[1]);
    hfree(big[2]);
    hfree(big[3]);
    hfree(big[5]);
    CHECK_STATS(275, 275, 6, 6, 0);

    for (int i = 0; i < 100; i++) {
        char *p = hmalloc(1 << 20);
        CHECK(p != NULL, "churn %d: hmalloc(1 MiB) (a previous one not unmapped?)", i);
        memset(p, i, 1 << 20);
        hfree(p);
    }
    CHECK_STATS(25975, 25975, 106, 106, 0);

    char *q = hmalloc(100);
    CHECK(q != NULL, "q");
    fill(q, 100, 42);
    CHECK_STATS(25976, 25975, 107, 106, 1);

    char *q2 = hrealloc(q, 5000);
    CHECK(q2 != NULL, "q2");
    CHECK_EQ((uintptr_t)q2 % 4096, 8);
    verify(q2, 100, 42, "q2 after growing");
    CHECK_STATS(25978, 25975, 108, 107, 1);
    fill(q2, 5000, 43);

    char *q3 = hrealloc(q2, 200);
    CHECK(q3 == q, "q3 reuses the start of the small page");
    verify(q3, 200, 43, "q3 after shrinking");
    CHECK_STATS(25978, 25977, 109, 108, 1);

    CHECK(hrealloc(q3, 0) == NULL, "hrealloc(p, 0) returns NULL");
    CHECK_STATS(25978, 25977, 109, 109, 1);

    char *r = hrealloc(NULL, 24);
    CHECK(r == q, "hrealloc(NULL, 24) is hmalloc(24)");
    CHECK_STATS(25978, 25977, 110, 109, 1);
    hfree(r);
    hfree(NULL);
    CHECK_STATS(25978, 25977, 110, 110, 1);

    puts("hm_big: ok");
    return 0;
}
