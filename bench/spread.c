/*
 * Workload "spread": sizes spread log-uniformly over 8 B .. 64 KiB around a
 * steady live set.  Like "churn" but exercising every size class, including
 * the large end where allocators switch strategy.
 *
 * usage: spread [ops] [live]       defaults: 3000000 20000
 */
#include "common.h"

typedef struct {
    unsigned char *p;
    uint32_t size;
    uint64_t tag;
} slot_t;

int main(int argc, char **argv) {
    uint64_t ops = arg_u64(argc, argv, 1, 3000000);
    uint64_t live = arg_u64(argc, argv, 2, 20000);
    rng_t r = {2};
    slot_t *slots = xmalloc(live * sizeof *slots);
    uint64_t sum = 0, tag = 0;

    for (uint64_t i = 0; i < live; i++) {
        size_t sz = rng_log_uniform(&r, 8, 65536);
        slots[i].p = xmalloc(sz);
        slots[i].size = (uint32_t)sz;
        slots[i].tag = ++tag;
        stamp(slots[i].p, sz, tag);
    }
    for (uint64_t i = 0; i < ops; i++) {
        slot_t *s = &slots[rng_below(&r, live)];
        sum += unstamp(s->p, s->size, s->tag);
        free(s->p);
        size_t sz = rng_log_uniform(&r, 8, 65536);
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
    printf("spread ops=%llu live=%llu checksum=%016llx\n", (unsigned long long)ops,
           (unsigned long long)live, (unsigned long long)sum);
    return 0;
}
