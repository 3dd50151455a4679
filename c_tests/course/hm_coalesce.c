/*
 * hm_coalesce.c - three adjacent free cells merge into one whatever order they are freed in,
 * and the merged cell then serves a request none of them could serve alone.
 *
 * Policy (course/include/hmalloc.h): n = r + 8; cell = max(n, 16) rounded up to 8; first fit
 * from one address-sorted list; a freed cell merges with the free cells right before and after
 * it in the same page.
 *
 * Part 1, run for each of the 6 orders of freeing A, B, C. Offsets from the page P:
 *   A = hmalloc(1352): n = 1360, cell 1360.   B = C = hmalloc(1360): n = 1368, cell 1368.
 *   1360 + 1368 + 1368 = 4096: the three fill P exactly.
 *   First round: the list is empty, A maps P (mapped 1) at [0,1360), rest 2736 kept; B splits
 *   it at [1360,2728), rest 1368; C takes that rest whole (1368 - 1368 = 0 < 16). freelen 0.
 *   Freeing: after the first free freelen = 1. After the second: 1 if the two are neighbours
 *   (A,B or B,C), 2 if they are A and C (B between them is in use). After the third: 1, the
 *   cell [0,4096).
 *   X = hmalloc(4000): n = 4008, cell 4008 <= 4096, so it fits the merged cell (and no single
 *   one of A, B, C): returns A, rest 88 >= 16 kept, freelen 1, still mapped 1.
 *   hfree(X): merges with the 88-byte rest, freelen 1: P is one free cell again, so the next
 *   round starts exactly like the first but without mapping (first fit finds P).
 *   Per round: 4 allocs, 4 frees. After part 1: mapped 1, unmapped 0, allocs 24, frees 24,
 *   freelen 1.
 *
 * Part 2, three adjacent cells between two cells in use, in P (free as [0,4096)):
 *   g1 = hmalloc(8): cell 16 at [0,16).  A, B, C = hmalloc(100): cells 112 at [16,128),
 *   [128,240), [240,352).  g2 = hmalloc(8): [352,368).  Rest [368,4096): freelen 1.
 *   hfree(C): [240,352) + rest -> freelen 2.  hfree(A): [16,128) -> freelen 3.
 *   hfree(B): merges with A and C into [16,352) (336 bytes) -> freelen 2.
 *   Y = hmalloc(300): n = 308, cell 312 <= 336: returns A, rest [328,352) = 24 kept, freelen 2.
 *   Z = hmalloc(16): n = 24, cell 24: the rest [328,352) exactly: returns A + 312, freelen 1.
 *   Then hfree g1 -> [0,16) freelen 2; hfree Y -> [0,328) freelen 2; hfree Z -> [0,352)
 *   freelen 2; hfree g2 -> merges both sides into [0,4096) freelen 1.
 *   Part 2: 7 allocs (g1 A B C g2 Y Z), 7 frees.
 *
 * Final: mapped 1, unmapped 0, allocs 31, frees 31, freelen 1.
 */
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

int main(void)
{
    static const int orders[6][3] = {
        {0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0},
    };
    long allocs = 0, frees = 0;
    char *first_a = NULL;

    for (int round = 0; round < 6; round++) {
        char *cell[3];
        cell[0] = hmalloc(1352);
        cell[1] = hmalloc(1360);
        cell[2] = hmalloc(1360);
        allocs += 3;
        CHECK(cell[0] && cell[1] && cell[2], "round %d: hmalloc failed", round);
        CHECK_EQ((uintptr_t)cell[0] % 4096, 8);
        CHECK_EQ(DIST(cell[0], cell[1]), 1360);
        CHECK_EQ(DIST(cell[1], cell[2]), 1368);
        if (round == 0)
            first_a = cell[0];
        CHECK(cell[0] == first_a, "round %d: page P is reused", round);
        CHECK_STATS(1, 0, allocs, frees, 0);

        const int *order = orders[round];
        hfree(cell[order[0]]);
        frees++;
        CHECK_FREELEN(1);
        hfree(cell[order[1]]);
        frees++;
        int neighbours = order[0] + order[1] != 2; /* {0,2} are the only non-neighbours */
        CHECK_FREELEN(neighbours ? 1 : 2);
        hfree(cell[order[2]]);
        frees++;
        CHECK_STATS(1, 0, allocs, frees, 1);

        char *x = hmalloc(4000);
        allocs++;
        CHECK(x == cell[0], "round %d: 4000 bytes fit the merged cell", round);
        memset(x, 0x5a, 4000);
        CHECK_STATS(1, 0, allocs, frees, 1);
        hfree(x);
        frees++;
        CHECK_STATS(1, 0, allocs, frees, 1);
    }
    CHECK_STATS(1, 0, 24, 24, 1);

    char *g1 = hmalloc(8);
    char *a = hmalloc(100), *b = hmalloc(100), *c = hmalloc(100);
    char *g2 = hmalloc(8);
    CHECK(g1 == first_a, "g1 at the page start");
    CHECK_EQ(DIST(g1, a), 16);
    CHECK_EQ(DIST(a, b), 112);
    CHECK_EQ(DIST(b, c), 112);
    CHECK_EQ(DIST(c, g2), 112);
    CHECK_STATS(1, 0, 29, 24, 1);

    hfree(c);
    CHECK_FREELEN(2);
    hfree(a);
    CHECK_FREELEN(3);
    hfree(b);
    CHECK_STATS(1, 0, 29, 27, 2);

    char *y = hmalloc(300);
    CHECK(y == a, "Y fits the merged [16,352) cell");
    CHECK_FREELEN(2);
    char *z = hmalloc(16);
    CHECK(z == a + 312, "Z takes the 24-byte rest whole");
    CHECK_STATS(1, 0, 31, 27, 1);

    hfree(g1);
    CHECK_FREELEN(2);
    hfree(y);
    CHECK_FREELEN(2);
    hfree(z);
    CHECK_FREELEN(2);
    hfree(g2);
    CHECK_STATS(1, 0, 31, 31, 1);

    puts("hm_coalesce: ok");
    return 0;
}
