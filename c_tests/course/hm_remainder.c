/*
 * hm_remainder.c - what happens to the rest of a page (or of a free cell) after a split: kept
 * as a free cell when it can hold one (16 bytes: size word + next pointer), handed out with the
 * block otherwise; and whole-page cells stay on the free list when freed (never unmapped).
 *
 * Policy (course/include/hmalloc.h): n = r + 8; n < 4096 -> cell max(n, 16) rounded up to 8;
 * a new page is mapped only when no free cell fits; n >= 4096 -> ceil(n/4096) own pages.
 * Cells never merge across a page boundary, so nothing below depends on where the kernel puts
 * the pages. Pk is the k-th page mapped.
 *
 *  1. hmalloc(4080): n = 4088, cell 4088. List empty: map P1. Rest 8 < 16: the block gets the
 *     whole page.                                              mapped 1, allocs 1, freelen 0
 *  2. hmalloc(4072): n = 4080, cell 4080. Map P2, rest 16 >= 16 kept.   mapped 2, a 2, fl 1
 *  3. hmalloc(8): n = 16, cell 16: the 16-byte rest of P2, exactly: returns P2 + 4080 + 8.
 *                                                              mapped 2, allocs 3, freelen 0
 *  4. hmalloc(4087): n = 4095 < 4096 (still a cell), rounded up to 4096: map P3, whole.
 *                                                              mapped 3, allocs 4, freelen 0
 *  5. hmalloc(2000): n = 2008, cell 2008: map P4, rest 2088 kept. mapped 4, allocs 5, fl 1
 *  6. hmalloc(2072): n = 2080, cell 2080 <= 2088, but 2088 - 2080 = 8 < 16: the whole rest is
 *     taken: returns P4 + 2008 + 8.                            mapped 4, allocs 6, freelen 0
 *  7. hmalloc(1): n = 9 -> cell 16: map P5, rest 4080 kept.      mapped 5, allocs 7, fl 1
 *     Stats: mapped 5, unmapped 0, allocs 7, frees 0, freelen 1.
 *  Frees:
 *     (1) P1 whole page -> list, not unmapped                              freelen 2
 *     (4) P3 whole page -> list                                            freelen 3
 *     (3) [P2+4080, P2+4096): its left neighbour (2) is in use; a cell right after it would
 *         start a page, so no merge                                         freelen 4
 *     (2) [P2, P2+4080) merges with (3): P2 whole                           freelen 4
 *     (5) [P4, P4+2008), (6) still in use                                   freelen 5
 *     (6) merges with (5): P4 whole                                         freelen 5
 *     (7) merges with the rest of P5: P5 whole                              freelen 5
 *     Stats: mapped 5, unmapped 0, allocs 7, frees 7, freelen 5.
 *  8. hmalloc(4087): cell 4096: first fit takes a whole free page exactly: no mapping.
 *                                                              mapped 5, allocs 8, freelen 4
 *  9. hmalloc(4088): n = 4096: a big block of 1 page.          mapped 6, allocs 9, freelen 4
 *  hfree(9): unmapped 1.  hfree(8): back on the list, freelen 5.
 *  Final: mapped 6, unmapped 1, allocs 9, frees 9, freelen 5.
 */
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

int main(void)
{
    char *b1 = hmalloc(4080);
    CHECK(b1 != NULL, "1");
    CHECK_EQ((uintptr_t)b1 % 4096, 8);
    memset(b1, 1, 4080);
    CHECK_STATS(1, 0, 1, 0, 0);

    char *b2 = hmalloc(4072);
    CHECK(b2 != NULL, "2");
    CHECK_EQ((uintptr_t)b2 % 4096, 8);
    memset(b2, 2, 4072);
    CHECK_STATS(2, 0, 2, 0, 1);

    char *b3 = hmalloc(8);
    CHECK(b3 == b2 + 4080, "3: the 16-byte rest of page 2");
    memset(b3, 3, 8);
    CHECK_STATS(2, 0, 3, 0, 0);

    char *b4 = hmalloc(4087);
    CHECK(b4 != NULL, "4");
    CHECK_EQ((uintptr_t)b4 % 4096, 8);
    memset(b4, 4, 4087);
    CHECK_STATS(3, 0, 4, 0, 0);

    char *b5 = hmalloc(2000);
    CHECK(b5 != NULL, "5");
    CHECK_EQ((uintptr_t)b5 % 4096, 8);
    memset(b5, 5, 2000);
    CHECK_STATS(4, 0, 5, 0, 1);

    char *b6 = hmalloc(2072);
    CHECK(b6 == b5 + 2008, "6: the whole 2088-byte rest");
    memset(b6, 6, 2072);
    CHECK_STATS(4, 0, 6, 0, 0);

    char *b7 = hmalloc(1);
    CHECK(b7 != NULL, "7");
    CHECK_EQ((uintptr_t)b7 % 4096, 8);
    CHECK_STATS(5, 0, 7, 0, 1);

    /* Nothing overlapped: every block still holds its own bytes. */
    for (int i = 0; i < 4080; i++) CHECK(b1[i] == 1, "b1[%d]", i);
    for (int i = 0; i < 4072; i++) CHECK(b2[i] == 2, "b2[%d]", i);
    for (int i = 0; i < 8; i++) CHECK(b3[i] == 3, "b3[%d]", i);
    for (int i = 0; i < 4087; i++) CHECK(b4[i] == 4, "b4[%d]", i);
    for (int i = 0; i < 2000; i++) CHECK(b5[i] == 5, "b5[%d]", i);
    for (int i = 0; i < 2072; i++) CHECK(b6[i] == 6, "b6[%d]", i);

    hfree(b1);
    CHECK_STATS(5, 0, 7, 1, 2);
    hfree(b4);
    CHECK_STATS(5, 0, 7, 2, 3);
    hfree(b3);
    CHECK_STATS(5, 0, 7, 3, 4);
    hfree(b2);
    CHECK_STATS(5, 0, 7, 4, 4);
    hfree(b5);
    CHECK_STATS(5, 0, 7, 5, 5);
    hfree(b6);
    CHECK_STATS(5, 0, 7, 6, 5);
    hfree(b7);
    CHECK_STATS(5, 0, 7, 7, 5);

    char *b8 = hmalloc(4087);
    CHECK(b8 != NULL, "8");
    CHECK_EQ((uintptr_t)b8 % 4096, 8);
    memset(b8, 8, 4087);
    CHECK_STATS(5, 0, 8, 7, 4);

    char *b9 = hmalloc(4088);
    CHECK(b9 != NULL, "9");
    CHECK_EQ((uintptr_t)b9 % 4096, 8);
    memset(b9, 9, 4088);
    CHECK_STATS(6, 0, 9, 7, 4);

    hfree(b9);
    CHECK_STATS(6, 1, 9, 8, 4);
    hfree(b8);
    CHECK_STATS(6, 1, 9, 9, 5);

    puts("hm_remainder: ok");
    return 0;
}
