/*
 * test_big.c - the big-allocation path and its cutoff.
 *
 * Blocks just below, at and above the cutoff (BINMALLOC_MMAP_THRESHOLD when
 * set, otherwise every place the default may sit) are written and read back
 * in full. Then three loops of 100 rounds each allocate 64 MiB, touch its
 * pages, and free it:
 *   1. one 64 MiB block: after free, VmRSS and VmSize are back near the start
 *      (the block went straight back to the kernel with munmap);
 *   2. 64 MiB of blocks just above the cutoff: after free, VmRSS is back
 *      near the start (plus the empty regions a heap keeps, when the dynamic
 *      cutoff has made them heap blocks);
 *   3. 64 MiB of blocks just below the cutoff (heap blocks): RSS does not
 *      grow from round to round.
 * With the default cutoff it first checks the dynamic rule: once a big block
 * is freed, requests up to twice its size come from regions; and that a region
 * of 16 MiB or more asks for transparent huge pages (its mapping shows the "hg"
 * flag in /proc/self/smaps) with BINMALLOC_HUGEPAGES=1, and only then.
 * With a fixed cutoff, a heap block grown past it by realloc becomes a mapping with room to
 * spare. Run it with the default cutoff and with BINMALLOC_MMAP_THRESHOLD=131072.
 */
#include "common.h"
#include "../include/binmalloc.h"

#include <sys/wait.h>

#include <malloc.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define ROUNDS 100
#define SLACK_KB (8L * 1024) /* "near the start": within 8 MiB */

static size_t page;

/* Write one byte per page (every page in the first and last rounds, every
 * 16th page in between to keep the run short) and the last byte. */
static int full_touch = 1;
static void touch_pages(unsigned char *p, size_t n, unsigned char v)
{
    size_t step = full_touch ? page : 16 * page;
    for (size_t i = 0; i < n; i += step)
        p[i] = v;
    if (n)
        p[n - 1] = v;
}

static void check_full(size_t n)
{
    unsigned char *p = malloc(n);
    CHECK(p != NULL && bm_is_aligned(p, 16), "malloc(%zu) = %p", n, (void *)p);
    CHECK(bm_owns(p) == 1, "malloc(%zu) block not owned", n);
    size_t us = malloc_usable_size(p);
    CHECK(us >= n, "malloc(%zu): usable %zu", n, us);
    uint64_t key = bm_pattern_key(p, us, 11);
    bm_fill(p, us, key);
    CHECK(bm_verify(p, us, key) == (size_t)-1, "malloc(%zu): usable area did not read back", n);
    /* a neighbour allocated while p is live must not overlap it */
    unsigned char *q = malloc(n);
    CHECK(q != NULL, "second malloc(%zu)", n);
    CHECK((uintptr_t)q + n <= (uintptr_t)p || (uintptr_t)p + us <= (uintptr_t)q,
          "blocks %p and %p of size %zu overlap", (void *)p, (void *)q, n);
    memset(q, 0x5A, n);
    CHECK(bm_verify(p, us, key) == (size_t)-1, "writing block %p clobbered %p", (void *)q, (void *)p);
    /* realloc across the cutoff both ways keeps content */
    unsigned char *r = realloc(q, n * 2);
    CHECK(r != NULL && r[0] == 0x5A && r[n - 1] == 0x5A, "realloc(%zu -> %zu)", n, n * 2);
    q = realloc(r, n / 2 + 1);
    CHECK(q != NULL && q[0] == 0x5A && q[n / 2] == 0x5A, "realloc(%zu -> %zu)", n * 2, n / 2 + 1);
    free(q);
    free(p);
    CHECK(bm_owns(p) == 0, "freed block still owned");
}

/* Big mappings made so far. */
static uint64_t big_mappings(void)
{
    static int (*get_stats)(struct binmalloc_stats *);
    static struct binmalloc_stats stats;
    if (!get_stats)
        get_stats = (int (*)(struct binmalloc_stats *))bm_sym("binmalloc_stats");
    CHECK(get_stats(&stats) == 0, "binmalloc_stats failed");
    return stats.big_mappings;
}

/* Allocates n bytes, writes them, reports whether that made a big mapping, keeps the block. */
static int maps_big(size_t n, unsigned char **kept)
{
    uint64_t before = big_mappings();
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    touch_pages(p, n, 7);
    *kept = p;
    return big_mappings() != before;
}

/* The dynamic cutoff, in a process that has not freed a big block yet (it starts at 1 MiB). */
static void check_dynamic_cutoff(void)
{
    unsigned char *a, *b, *c;
    CHECK(maps_big(3 * MiB, &a), "3 MiB (above the starting cutoff) was not a big mapping");
    free(a);
    CHECK(!maps_big(5 * MiB, &b), "5 MiB after a 3 MiB big block was freed: still a big mapping");
    CHECK(maps_big(7 * MiB, &c), "7 MiB (above twice the freed 3 MiB) was not a big mapping");
    CHECK(bm_owns(b) == 1 && bm_owns(c) == 1, "blocks not owned");
    free(b);
    free(c);
    printf("test_big: dynamic cutoff: a freed 3 MiB big block moves 5 MiB requests to regions, not 7 MiB\n");
}

/* The VmFlags of the mapping that holds p, from /proc/self/smaps ("" if not found). */
static void vm_flags_of(const void *p, char *flags, size_t n)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    CHECK(f != NULL, "open /proc/self/smaps");
    char line[512];
    int inside = 0;
    flags[0] = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && !strncmp(line, "VmFlags:", 8)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(flags, n, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

/* A heap region of 16 MiB or more asks for huge pages. Runs in a child process (it lifts the
 * cutoff to its ceiling and leaves a large empty region, which the checks below must not see). */
static void check_huge_pages_in_child(void)
{
    const char *env = getenv("BINMALLOC_HUGEPAGES");
    int wanted = env && !strcmp(env, "1");
    int thp = access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
    unsigned char *big, *p;
    /* a freed 20 MiB big block lifts the cutoff to its 32 MiB ceiling */
    CHECK(maps_big(20 * MiB, &big), "20 MiB was not a big mapping");
    free(big);
    CHECK(!maps_big(17 * MiB, &p), "17 MiB after a 20 MiB big block was freed: still a big mapping");
    char flags[256];
    vm_flags_of(p, flags, sizeof flags);
    CHECK(flags[0] != 0, "no VmFlags for the region holding %p", (void *)p);
    int advised = strstr(flags, " hg") != NULL;
    if (thp)
        CHECK(advised == wanted, "17 MiB region: VmFlags%s(BINMALLOC_HUGEPAGES=%s)", flags, env ? env : "unset");
    else
        CHECK(!advised, "huge-page advice without kernel support: VmFlags%s", flags);
    free(p);
    printf("test_big: a 17 MiB region %s huge pages%s\n", advised ? "asks for" : "does not ask for",
           thp ? "" : " (this kernel has no transparent huge pages)");
}

static void check_huge_pages(void)
{
    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        check_huge_pages_in_child();
        fflush(stdout);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the huge-page check failed (status %d)", status);
}

/* A heap block that realloc grows past the cutoff becomes a mapping with an eighth to spare,
 * so that growing it on a page at a time stays in place (no remap) until that room is used. */
static void check_growth_past_cutoff(size_t cut)
{
    unsigned char *p = malloc(cut - 4096);
    CHECK(p != NULL, "malloc(%zu)", cut - 4096);
    size_t cap = malloc_usable_size(p);
    uint64_t key = bm_pattern_key(p, cap, 13);
    bm_fill(p, cap, key);
    size_t n = cap + 4096;
    unsigned char *q = realloc(p, n);
    CHECK(q != NULL, "realloc(%zu -> %zu)", cap, n);
    size_t room = malloc_usable_size(q);
    CHECK(room >= cap + cap / 8, "realloc(%zu -> %zu) past the cutoff: usable %zu, want %zu", cap, n, room,
          cap + cap / 8);
    size_t steps = 0;
    for (size_t m = n + 4096; m <= room; m += 4096, steps++) {
        unsigned char *r = realloc(q, m);
        CHECK(r == q, "realloc(%zu -> %zu) within its usable size moved the block", m - 4096, m);
    }
    CHECK(bm_verify(q, cap, key) == (size_t)-1, "growth past the cutoff lost content");
    free(q);
    printf("test_big: a %zu-byte block grown past the cutoff has %zu bytes usable; %zu page-sized "
           "steps after it stayed in place\n", cap, room, steps);
}

static void around(size_t cut)
{
    static const long d[] = {-4096, -64, -17, -16, -1, 0, 1, 16, 17, 64, 4096};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        check_full(cut + (size_t)d[i]);
}

int main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    bm_require_served();
    const char *env = getenv("BINMALLOC_MMAP_THRESHOLD");
    size_t cut = env && *env ? strtoul(env, NULL, 10) : 0;
    printf("test_big: BINMALLOC_MMAP_THRESHOLD=%s\n", cut ? env : "(default)");

    if (!cut) {
        check_dynamic_cutoff();
        check_huge_pages();
    }
    if (cut) {
        around(cut);
        check_growth_past_cutoff(cut);
    } else {
        around(256 * KiB);
        around(512 * KiB);
        around(1 * MiB);
    }
    around(2 * MiB);
    check_heap();

    /* above: surely served by the big path; below: surely a heap block */
    size_t above = cut ? cut + 1 : 2 * MiB + 1;
    size_t below = cut ? cut - 4096 : 128 * KiB - 4096;

    long rss0 = bm_proc_status_kb("VmRSS");
    long vm0 = bm_proc_status_kb("VmSize");
    CHECK(rss0 > 0 && vm0 > 0, "reading /proc/self/status");

    /* 1. one 64 MiB block */
    long rss_peak = 0, rss_after = 0, vm_after = 0;
    for (int round = 0; round < ROUNDS; round++) {
        full_touch = round == 0 || round == ROUNDS - 1;
        unsigned char *p = malloc(64 * MiB);
        CHECK(p != NULL, "malloc(64 MiB) round %d", round);
        touch_pages(p, 64 * MiB, (unsigned char)round);
        long r = bm_proc_status_kb("VmRSS");
        if (r > rss_peak)
            rss_peak = r;
        free(p);
        rss_after = bm_proc_status_kb("VmRSS");
        vm_after = bm_proc_status_kb("VmSize");
        CHECK(rss_after <= rss0 + SLACK_KB,
              "round %d: VmRSS %ld kB after freeing a 64 MiB block (start %ld kB)", round, rss_after, rss0);
        CHECK(vm_after <= vm0 + SLACK_KB,
              "round %d: VmSize %ld kB after freeing a 64 MiB block (start %ld kB): not unmapped", round,
              vm_after, vm0);
    }
    CHECK(rss_peak >= rss0 + 60 * 1024, "peak VmRSS %ld kB never showed the 64 MiB block", rss_peak);
    printf("test_big: 64 MiB block x%d: VmRSS start %ld kB, peak %ld kB, after free %ld kB\n", ROUNDS,
           rss0, rss_peak, rss_after);

    /* 2. 64 MiB of blocks just above the cutoff. Under the default cutoff, the dynamic rule has
     * lifted it past 2 MiB by now (a 7 MiB big block was freed above), so these are heap blocks:
     * freed, their regions are unmapped except the EMPTY_REGIONS_KEPT (4) wholly free ones a
     * heap keeps for its next large requests, each resident with the one block it held. */
    enum { MAXB = 1024, EMPTY_REGIONS_KEPT = 4 };
    static unsigned char *blocks[MAXB];
    size_t nabove = 64 * MiB / above;
    CHECK(nabove > 0 && nabove <= MAXB, "block count %zu", nabove);
    rss_peak = 0;
    long kept_kb = 0;
    uint64_t mapped_before = big_mappings();
    for (int round = 0; round < ROUNDS; round++) {
        full_touch = round == 0 || round == ROUNDS - 1;
        for (size_t i = 0; i < nabove; i++) {
            blocks[i] = malloc(above);
            CHECK(blocks[i] != NULL, "malloc(%zu)", above);
            touch_pages(blocks[i], above, (unsigned char)i);
        }
        if (round == 0 && big_mappings() == mapped_before)
            kept_kb = EMPTY_REGIONS_KEPT * (long)((above + page) / KiB);
        for (size_t i = 0; i < nabove; i++)
            CHECK(blocks[i][0] == (unsigned char)i && blocks[i][above - 1] == (unsigned char)i,
                  "block %zu of size %zu overwritten", i, above);
        long r = bm_proc_status_kb("VmRSS");
        if (r > rss_peak)
            rss_peak = r;
        for (size_t i = 0; i < nabove; i++)
            free(blocks[i]);
        rss_after = bm_proc_status_kb("VmRSS");
        CHECK(rss_after <= rss0 + kept_kb + SLACK_KB,
              "round %d: VmRSS %ld kB after freeing %zu blocks of %zu bytes (start %ld kB, %ld kB in "
              "kept empty regions)", round, rss_after, nabove, above, rss0, kept_kb);
    }
    printf("test_big: %zu x %zu bytes x%d (%s): VmRSS peak %ld kB, after free %ld kB\n", nabove, above,
           ROUNDS, kept_kb ? "heap blocks" : "big blocks", rss_peak, rss_after);
    check_heap();

    /* 3. 64 MiB of blocks just below the cutoff */
    size_t nbelow = 64 * MiB / below;
    CHECK(nbelow > 0 && nbelow <= MAXB, "block count %zu", nbelow);
    long rss_first = -1;
    rss_peak = 0;
    for (int round = 0; round < ROUNDS; round++) {
        full_touch = round == 0 || round == ROUNDS - 1;
        for (size_t i = 0; i < nbelow; i++) {
            blocks[i] = malloc(below);
            CHECK(blocks[i] != NULL, "malloc(%zu)", below);
            touch_pages(blocks[i], below, (unsigned char)i);
        }
        for (size_t i = 0; i < nbelow; i++)
            CHECK(blocks[i][0] == (unsigned char)i && blocks[i][below - 1] == (unsigned char)i,
                  "block %zu of size %zu overwritten", i, below);
        long r = bm_proc_status_kb("VmRSS");
        if (r > rss_peak)
            rss_peak = r;
        /* free in an order that is not the allocation order */
        for (size_t i = 0; i < nbelow; i += 2)
            free(blocks[i]);
        for (size_t i = 1; i < nbelow; i += 2)
            free(blocks[i]);
        rss_after = bm_proc_status_kb("VmRSS");
        if (rss_first < 0)
            rss_first = rss_after;
        CHECK(rss_after <= rss_first + SLACK_KB,
              "round %d: VmRSS %ld kB after freeing heap blocks, %ld kB after round 0: grows per round",
              round, rss_after, rss_first);
    }
    CHECK(rss_peak <= rss0 + 2 * 64 * 1024 + SLACK_KB,
          "64 MiB of %zu-byte blocks peaked at VmRSS %ld kB (start %ld kB)", below, rss_peak, rss0);
    printf("test_big: %zu x %zu bytes x%d: VmRSS peak %ld kB, after free %ld kB (start %ld kB)\n", nbelow,
           below, ROUNDS, rss_peak, rss_after, rss0);
    check_heap();
    return bm_finish("test_big");
}
