/*
 * Workload "churn": single-threaded small-object churn around a steady live
 * set.  A table of LIVE slots holds objects of 16..256 bytes; each operation
 * frees a random slot (checking its contents) and refills it with a new
 * object of a random size.
 *
 * usage: churn [ops] [live]        defaults: 6000000 100000
 */
#include "common.h"

static size_t object_size(rng_t *r) { return rng_range(r, 16, 256); }

int main(int argc, char **argv) {
    uint64_t ops = arg_u64(argc, argv, 1, 6000000);
    uint64_t live = arg_u64(argc, argv, 2, 100000);
    uint64_t sum = replace_randomly(ops, live, 1, object_size);
    printf("churn ops=%llu live=%llu checksum=%016llx\n", (unsigned long long)ops,
           (unsigned long long)live, (unsigned long long)sum);
    return 0;
}
