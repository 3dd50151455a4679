/*
 * hm_basic.c - small hmalloc requests that share one page: first fit from the address-sorted
 * free list, splitting, exact fits, and the counters after each step.
 *
 * Policy (course/include/hmalloc.h): a request of r bytes needs n = r + 8 (the size header);
 * n < 4096 is a cell of max(n, 16) bytes rounded up to a multiple of 8, taken first fit and
 * split when the rest is >= 16 bytes; when nothing fits one page is mapped.
 *
 * Derivation, offsets from the start of the one page P (the program starts with no heap):
 *
 *  A. 10 x hmalloc(100): n = 108 -> cell 112. The first call finds an empty list: map P
 *     (mapped 1), cell [0,112), rest [112,4096) = 3984 >= 16 kept. The next nine split the
 *     rest: cells at 112*i, payloads at P + 112*i + 8, rest [1120,4096) = 2976.
 *     Stats: mapped 1, unmapped 0, allocs 10, frees 0, freelen 1.
 *  B. hfree(p[1]), hfree(p[3]), hfree(p[5]): cells [112,224), [336,448), [560,672), none
 *     adjacent to another free cell -> list = those three + [1120,4096).
 *     Stats: 1, 0, 10, 3, freelen 4.
 *  C. hmalloc(50): n = 58 -> cell 64. First fit = [112,224) (112 >= 64), rest 48 >= 16 kept:
 *     returns p[1], list [176,224) [336,448) [560,672) [1120,4096). freelen 4, allocs 11.
 *  D. hmalloc(40): n = 48 -> cell 48. First fit = [176,224), exactly 48: taken whole, returns
 *     p[1] + 64. freelen 3, allocs 12.
 *  E. hmalloc(100): cell 112. First fit = [336,448), whole: returns p[3]. freelen 2, allocs 13.
 *  F. hmalloc(0): n = 8 -> cell 16 (the smallest cell). First fit = [560,672): split, rest
 *     [576,672) = 96: returns p[5]. freelen 2, allocs 14.
 *  G. hmalloc(100): cell 112. [576,672) is 96 < 112, so first fit = [1120,4096): returns
 *     p[9] + 112, rest [1232,4096). freelen 2, allocs 15.
 *  Final: mapped 1, unmapped 0, allocs 15, frees 3, freelen 2.
 *  H. Free everything (p[0], p[2], p[4], p[6..9], C, D, E, F, G = 15 - 3 = 12 calls): every
 *     cell merges back, the page is one free cell [0,4096) and is kept.
 *     Final: mapped 1, unmapped 0, allocs 15, frees 15, freelen 1.
 */
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

int main(void)
{
    CHECK_STATS(0, 0, 0, 0, 0);

    char *p[10];
    for (int i = 0; i < 10; i++) {
        p[i] = hmalloc(100);
        CHECK(p[i] != NULL, "hmalloc(100) #%d", i);
        memset(p[i], 'a' + i, 100);
    }
    CHECK_EQ((uintptr_t)p[0] % 4096, 8);
    for (int i = 1; i < 10; i++)
        CHECK_EQ(DIST(p[i - 1], p[i]), 112);
    CHECK_STATS(1, 0, 10, 0, 1);

    hfree(p[1]);
    hfree(p[3]);
    hfree(p[5]);
    CHECK_STATS(1, 0, 10, 3, 4);

    char *c = hmalloc(50);
    CHECK(c == p[1], "C: first fit should reuse p[1]");
    CHECK_STATS(1, 0, 11, 3, 4);

    char *d = hmalloc(40);
    CHECK(d == p[1] + 64, "D: exact fit in the 48-byte rest");
    CHECK_STATS(1, 0, 12, 3, 3);

    char *e = hmalloc(100);
    CHECK(e == p[3], "E: whole 112-byte cell");
    CHECK_STATS(1, 0, 13, 3, 2);

    char *f = hmalloc(0);
    CHECK(f == p[5], "F: hmalloc(0) gets a 16-byte cell");
    CHECK_STATS(1, 0, 14, 3, 2);

    char *g = hmalloc(100);
    CHECK(g == p[9] + 112, "G: the 96-byte rest is too small, page rest used");
    CHECK_STATS(1, 0, 15, 3, 2);

    /* The untouched blocks kept their contents. */
    for (int i = 0; i < 10; i++) {
        if (i == 1 || i == 3 || i == 5)
            continue;
        for (int k = 0; k < 100; k++)
            CHECK(p[i][k] == 'a' + i, "p[%d][%d] changed", i, k);
    }

    int order[] = {0, 2, 4, 6, 7, 8, 9};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        hfree(p[order[i]]);
    hfree(c);
    hfree(d);
    hfree(e);
    hfree(f);
    hfree(g);
    hfree(NULL); /* ignored, not counted */
    CHECK_STATS(1, 0, 15, 15, 1);

    puts("hm_basic: ok");
    return 0;
}
