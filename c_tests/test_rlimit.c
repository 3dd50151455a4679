/*
 * test_rlimit.c - a tight address-space limit (RLIMIT_AS = VmSize + 32 MiB).
 *
 * The allocator must not reserve large ranges up front, must fit ~8 MiB of
 * small blocks plus a 9 MiB block under the limit (twice, freeing in
 * between), and when memory does run out it must return NULL with errno
 * ENOMEM - not crash - and work again once memory is freed. A realloc that
 * fits under the limit only without the room binmalloc adds for growth still
 * succeeds.
 */
#include "common.h"

#include <malloc.h>
#include <sys/resource.h>

#define MiB ((size_t)1024 * 1024)
#define HEADROOM (32 * MiB)

/* Allocated blocks are chained through their first word. */
struct node {
    struct node *next;
    size_t size;
    uint64_t key;
};

static struct node *push(struct node *head, size_t size, uint64_t seed)
{
    struct node *n = malloc(size);
    if (!n)
        return NULL;
    n->next = head;
    n->size = size;
    n->key = bm_pattern_key(n, size, seed);
    bm_fill((unsigned char *)n + sizeof *n, size - sizeof *n, n->key);
    return n;
}

static size_t free_list(struct node *head)
{
    size_t count = 0;
    while (head) {
        struct node *next = head->next;
        size_t bad = bm_verify((unsigned char *)head + sizeof *head, head->size - sizeof *head, head->key);
        CHECK(bad == (size_t)-1, "block %p size %zu corrupted at byte %zu", (void *)head, head->size, bad);
        free(head);
        head = next;
        count++;
    }
    return count;
}

/* Allocate `size`-byte blocks until malloc fails; return the list, count in *n. */
static struct node *exhaust(size_t size, size_t *n)
{
    struct node *head = NULL;
    *n = 0;
    for (;;) {
        errno = 0;
        struct node *nn = push(head, size, *n);
        if (!nn) {
            CHECK(errno == ENOMEM, "malloc(%zu) failed with errno %d, want ENOMEM", size, errno);
            break;
        }
        head = nn;
        (*n)++;
        CHECK(*n < 10 * 1000 * 1000, "malloc never failed under RLIMIT_AS");
    }
    return head;
}

int main(void)
{
    long vmsize_kb = bm_proc_status_kb("VmSize");
    CHECK(vmsize_kb > 0, "reading VmSize");
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)vmsize_kb * 1024 + HEADROOM;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));

    bm_require_served();
    printf("test_rlimit: RLIMIT_AS = VmSize %ld KiB + %zu MiB\n", vmsize_kb, HEADROOM / MiB);
    fflush(stdout);

    bm_rng r;
    bm_rng_seed(&r, 99);
    for (int round = 0; round < 2; round++) {
        struct node *head = NULL;
        size_t total = 0, count = 0;
        while (total < 8 * MiB) {
            size_t sz = bm_rng_range(&r, sizeof(struct node), 512);
            struct node *nn = push(head, sz, count);
            CHECK(nn != NULL, "round %d: malloc(%zu) failed after %zu bytes in %zu blocks", round, sz,
                  total, count);
            head = nn;
            total += sz;
            count++;
        }
        struct node *big = push(NULL, 9 * MiB, 1234);
        CHECK(big != NULL, "round %d: malloc(9 MiB) failed with 8 MiB of small blocks live", round);
        CHECK(free_list(big) == 1, "big block");
        CHECK(free_list(head) == count, "block count");
        check_heap();
    }

    /* run out of memory with 1 KiB blocks */
    size_t n1 = 0, n2 = 0;
    struct node *head = exhaust(1024, &n1);
    CHECK(n1 * 1024 >= 16 * MiB,
          "only %zu KiB of 1 KiB blocks fit under a %zu MiB headroom", n1, HEADROOM / MiB);
    /* other calls fail cleanly too at this point */
    errno = 0;
    void *c = calloc(1, 4 * MiB);
    CHECK(c == NULL && errno == ENOMEM, "calloc(4 MiB) at the limit = %p errno %d", c, errno);
    errno = 0;
    c = malloc(16 * MiB);
    CHECK(c == NULL && errno == ENOMEM, "malloc(16 MiB) at the limit = %p errno %d", c, errno);
    void *m = NULL;
    int rc = posix_memalign(&m, 4096, 8 * MiB);
    CHECK(rc == ENOMEM, "posix_memalign(8 MiB) at the limit returned %d", rc);
    CHECK(free_list(head) == n1, "free all");
    check_heap();

    /* memory is usable again */
    struct node *big = push(NULL, 9 * MiB, 4321);
    CHECK(big != NULL, "malloc(9 MiB) after freeing everything failed");
    CHECK(free_list(big) == 1, "big");
    head = exhaust(1024, &n2);
    CHECK(n2 * 10 >= n1 * 9, "second exhaustion fit %zu blocks, first %zu: freed memory not reused", n2, n1);
    CHECK(free_list(head) == n2, "free all");
    head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *nn = push(head, 1024, (uint64_t)i);
        CHECK(nn != NULL, "malloc(1 KiB) #%d after freeing everything failed", i);
        head = nn;
    }
    free_list(head);
    check_heap();
    printf("test_rlimit: %zu then %zu 1 KiB blocks before ENOMEM\n", n1, n2);

    /* A big block that realloc grows is given an eighth to spare, but not at the price of
     * failing: when only the request itself fits under the limit, realloc still serves it. */
    CHECK(mallopt(M_MMAP_THRESHOLD, (int)MiB) == 1, "mallopt(M_MMAP_THRESHOLD)");
    size_t avail = (size_t)((long)(rl.rlim_cur / 1024) - bm_proc_status_kb("VmSize")) * 1024;
    size_t before = avail / 16 * 15, after = before + avail / 32;
    unsigned char *b = malloc(before);
    CHECK(b != NULL, "malloc(%zu) with %zu bytes left under the limit", before, avail);
    uint64_t key = bm_pattern_key(b, before, 77);
    bm_fill(b, before, key);
    errno = 0;
    unsigned char *g = realloc(b, after);
    CHECK(g != NULL, "realloc(%zu -> %zu) with room for it but not for an eighth more: errno %d",
          before, after, errno);
    CHECK(bm_verify(g, before, key) == (size_t)-1, "realloc near the limit lost content");
    free(g);
    printf("test_rlimit: a %zu-byte block grew to %zu bytes with %zu bytes left under the limit\n",
           before, after, avail);
    return bm_finish("test_rlimit");
}
