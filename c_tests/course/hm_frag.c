/*
 * hm_frag.c - the fragmentation workload coursework runs under a small RLIMIT_AS: many small
 * nodes, every other one freed and refilled, everything freed, then an array grown by doubling
 * with hrealloc up to 1 MiB. Checks contents throughout and the exact counters after each phase.
 *
 * Policy (course/include/hmalloc.h): n = r + 8; n < 4096 -> cell max(n, 16) rounded up to 8,
 * first fit from one address-sorted list, split when the rest is >= 16, one page mapped when
 * nothing fits, free cells merge with neighbours in the same page (never across pages);
 * n >= 4096 -> ceil(n/4096) own pages, unmapped on free.
 *
 * Phase 1: N = 20060 x hmalloc(16): n = 24, cell 24. A page holds 170 cells (4080 bytes) and a
 *   16-byte rest, which is kept (>= 16) but fits no 24-byte cell, so the 171st call maps the next
 *   page. 20060 = 170 * 118: 118 pages, each full with its 16-byte rest on the list.
 *   Stats: mapped 118, unmapped 0, allocs 20060, frees 0, freelen 118.
 * Phase 2: free the nodes with an even index. Node i is slot i % 170 of page i / 170, and 170 is
 *   even, so each page frees slots 0, 2, ..., 168: 85 cells whose neighbours are all in use
 *   (slot 169 sits between slot 168 and the 16-byte rest): no merge.
 *   Stats: 118, 0, 20060, 10030, freelen 118 + 118 * 85 = 10148.
 * Phase 3: 10030 x hmalloc(16): the only free cells of 24 bytes or more are the 10030 freed
 *   ones, whatever the order of the pages in memory; each is an exact fit (taken whole).
 *   Stats: 118, 0, 30090, 10030, freelen 118.
 * Phase 4: free all 20060 nodes: every page merges into one free cell of 4096.
 *   Stats: 118, 0, 30090, 30090, freelen 118.
 * Phase 5: v = hrealloc(v, 8 * cap) for cap = 4, 8, ..., 2^17 longs (v = NULL first): 16 calls,
 *   each hmalloc + copy + hfree (except the first, which only allocates). Call P1 < P2 the two
 *   lowest free pages (all 118 are whole):
 *     32 B  -> cell 40   at P1[0,40)                                  freelen 118
 *     64 B  -> cell 72   at P1[40,112);   frees [0,40)               freelen 119
 *     128 B -> cell 136  at P1[112,248);  frees [40,112) -> [0,112)  freelen 119
 *     256 B -> cell 264  at P1[248,512);  [0,248)                    freelen 119
 *     512 B -> cell 520  at P1[512,1032); [0,512)                    freelen 119
 *     1 KiB -> cell 1032 at P1[1032,2064); [0,1032), rest [2064,4096) is 2032 bytes
 *                                                                    freelen 119
 *     2 KiB -> cell 2056: nothing in P1 fits, P2[0,2056), rest 2040; freeing P1[1032,2064)
 *              merges both sides: P1 whole again                     freelen 118
 *     4 KiB -> n = 4104: 2 pages; freeing P2[0,2056) makes P2 whole  freelen 118
 *     then 2^k bytes (k = 13..20) -> 2^(k-12) + 1 pages: 3, 5, 9, 17, 33, 65, 129, 257;
 *     each frees the previous big block.
 *   Big pages mapped: 2+3+5+9+17+33+65+129+257 = 520; unmapped during growth: 520 - 257 = 263.
 *   Stats: mapped 638, unmapped 263, allocs 30106, frees 30105, freelen 118.
 *   hfree(v): Final: mapped 638, unmapped 520, allocs 30106, frees 30106, freelen 118.
 */
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

#define N 20060

typedef struct node {
    long value;
    long check;
} node;

static node *nodes[N];

static void set(long i, long round)
{
    nodes[i]->value = i * 31 + round;
    nodes[i]->check = ~(i * 31 + round);
}

static void verify(long i, long round)
{
    CHECK(nodes[i]->value == i * 31 + round && nodes[i]->check == ~(i * 31 + round),
          "node %ld (round %ld) corrupted", i, round);
}

int main(void)
{
    for (long i = 0; i < N; i++) {
        nodes[i] = hmalloc(sizeof(node));
        CHECK(nodes[i] != NULL, "phase 1: node %ld", i);
        set(i, 0);
    }
    CHECK_STATS(118, 0, 20060, 0, 118);

    for (long i = 0; i < N; i += 2)
        hfree(nodes[i]);
    for (long i = 1; i < N; i += 2)
        verify(i, 0);
    CHECK_STATS(118, 0, 20060, 10030, 10148);

    for (long i = 0; i < N; i += 2) {
        nodes[i] = hmalloc(sizeof(node));
        CHECK(nodes[i] != NULL, "phase 3: node %ld", i);
        set(i, 1);
    }
    for (long i = 0; i < N; i++)
        verify(i, i % 2 == 0 ? 1 : 0);
    CHECK_STATS(118, 0, 30090, 10030, 118);

    for (long i = 0; i < N; i++)
        hfree(nodes[i]);
    CHECK_STATS(118, 0, 30090, 30090, 118);

    long *v = NULL;
    size_t len = 0;
    for (size_t cap = 4; cap <= (1u << 17); cap *= 2) {
        v = hrealloc(v, cap * sizeof(long));
        CHECK(v != NULL, "phase 5: hrealloc to %zu longs", cap);
        for (size_t i = 0; i < len; i++)
            CHECK(v[i] == (long)(i * 3 + 1), "phase 5: v[%zu] lost at cap %zu", i, cap);
        for (; len < cap; len++)
            v[len] = (long)(len * 3 + 1);
        if (cap == 512) /* 4 KiB: the first big block; the 2 KiB cell left P2 whole */
            CHECK_FREELEN(118);
    }
    CHECK_STATS(638, 263, 30106, 30105, 118);
    hfree(v);
    CHECK_STATS(638, 520, 30106, 30106, 118);

    puts("hm_frag: ok");
    return 0;
}
