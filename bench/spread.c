/*
 * Workload "spread": sizes spread log-uniformly over 8 B .. 64 KiB around a
 * steady live set.  Like "churn" but exercising every size class, including
 * the large end where allocators switch strategy.
 *
 * usage: spread [ops] [live]       defaults: 3000000 20000
 */
#include "common.h"

static size_t object_size(rng_t *r) { return rng_log_uniform(r, 8, 65536); }

int main(int argc, char **argv) {
    uint64_t ops = arg_u64(argc, argv, 1, 3000000);
    uint64_t live = arg_u64(argc, argv, 2, 20000);
    uint64_t sum = replace_randomly(ops, live, 2, object_size);
    printf("spread ops=%llu live=%llu checksum=%016llx\n", (unsigned long long)ops,
           (unsigned long long)live, (unsigned long long)sum);
    return 0;
}
