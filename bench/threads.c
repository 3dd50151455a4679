/*
 * Workload "threads": thread churn.  Thousands of short-lived threads are
 * created and joined in small batches; each allocates a few hundred blocks
 * of 16 B .. 4 KiB, frees some, allocates more and frees everything before
 * it exits.  This exercises per-thread cache set-up and tear-down.  Each
 * thread also leaves one block behind for main to free after the join
 * (a free from a thread other than the one, now gone, that allocated it).
 *
 * usage: threads [threads] [batch] [blocks-per-thread]
 *        defaults: 15000 4 200
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    uint64_t id;
    uint64_t blocks;
    uint64_t sum;
    unsigned char *leftover;
    size_t leftover_size;
    pthread_t thread;
} job_t;

static void *run(void *arg) {
    job_t *j = arg;
    rng_t r = {j->id * 0x1234567ULL + 6};
    unsigned char *p[1024];
    size_t sz[1024];
    uint64_t n = j->blocks > 1024 ? 1024 : j->blocks, sum = 0;
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < n; i++) {
            sz[i] = rng_log_uniform(&r, 16, 4096);
            p[i] = xmalloc(sz[i]);
            stamp(p[i], sz[i], j->id * 4096 + i);
        }
        /* free every other block, then refill those slots */
        for (uint64_t i = 0; i < n; i += 2) {
            sum += unstamp(p[i], sz[i], j->id * 4096 + i);
            free(p[i]);
            sz[i] = rng_log_uniform(&r, 16, 4096);
            p[i] = xmalloc(sz[i]);
            stamp(p[i], sz[i], j->id * 4096 + i);
        }
        for (uint64_t i = 0; i < n; i++) {
            sum += unstamp(p[i], sz[i], j->id * 4096 + i);
            free(p[i]);
        }
    }
    j->leftover_size = rng_range(&r, 16, 256);
    j->leftover = xmalloc(j->leftover_size);
    stamp(j->leftover, j->leftover_size, j->id);
    j->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t n_threads = arg_u64(argc, argv, 1, 15000);
    uint64_t batch = arg_u64(argc, argv, 2, 4);
    uint64_t blocks = arg_u64(argc, argv, 3, 200);
    job_t *jobs = xmalloc(batch * sizeof *jobs);
    uint64_t sum = 0, next = 0;
    while (next < n_threads) {
        uint64_t k = 0;
        for (; k < batch && next < n_threads; k++, next++) {
            jobs[k] = (job_t){.id = next + 1, .blocks = blocks};
            if (pthread_create(&jobs[k].thread, NULL, run, &jobs[k])) {
                fprintf(stderr, "pthread_create failed\n");
                return 1;
            }
        }
        for (uint64_t i = 0; i < k; i++) {
            pthread_join(jobs[i].thread, NULL);
            sum += jobs[i].sum;
            sum += unstamp(jobs[i].leftover, jobs[i].leftover_size, jobs[i].id);
            free(jobs[i].leftover);
        }
    }
    free(jobs);
    printf("threads threads=%llu batch=%llu blocks=%llu checksum=%016llx\n",
           (unsigned long long)n_threads, (unsigned long long)batch,
           (unsigned long long)blocks, (unsigned long long)sum);
    return 0;
}
