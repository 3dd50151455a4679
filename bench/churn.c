/*
 * Workload "churn": single-threaded small-object churn around a steady live
 * set.  A table of LIVE slots holds objects of 16..256 bytes; each operation
 * frees a random slot (checking its contents) and refills it with a new
 * object of a random size.
 *
 * usage: churn [ops] [live]        defaults: 6000000 100000
 */
#include "common.h"

typedef struct {
    unsigned char *p;
    uint32_t size;
    uint64_t tag;
} slot_t;

int main(int argc, char **argv) {
    uint64_t ops = arg_u64(argc, argv, 1, 6000000);
    uint64_t live = arg_u64(argc, argv, 2, 100000);
    rng_t r = {1};
    slot_t *slots = xmalloc(live * sizeof *slots);
    uint64_t sum = 0, tag = 0;

    for (uint64_t i = 0; i < live; i++) {
        size_t sz = rng_range(&r, 16, 256);
        slots[i].p = xmalloc(sz);
        slots[i].size = (uint32_t)sz;
        slots[i].tag = ++tag;
        stamp(slots[i].p, sz, tag);
    }
    for (uint64_t i = 0; i < ops; i++) {
        slot_t *s = &slots[rng_below(&r, live)];
        sum += unstamp(s->p, s->size, s->tag);
        free(s->p);
        size_t sz = rng_range(&r, 16, 256);
        s->p = xmalloc(sz);
        s->size = (uint32_t)sz;
        s->tag = ++tag;
        stamp(s->p, sz, tag);
    }
    for (uint64_t i = 0; i < live; i++) {
        sum += unstamp(slots[i].p, slots[i].size, slots[i].tag);
        free(slots[i].p);
    }
    free(slots);
    printf("churn ops=%llu live=%llu checksum=%016llx\n", (unsigned long long)ops,
           (unsigned long long)live, (unsigned long long)sum);
    return 0;
}
