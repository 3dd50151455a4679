/*
 * Micro-benchmark: nanoseconds per malloc+free pair, for a range of sizes,
 * with 1 thread and with 2 threads (each thread does its own pairs; the
 * figure reported is per pair per thread).
 *
 * Each pair is malloc(size), a write to the first and last byte, free().  To
 * keep the measurement honest the loop also keeps a small ring of 8 live
 * blocks, so that the allocator cannot simply hand back the block it was just
 * given every time: pair i frees the block allocated by pair i-8.
 *
 * usage: micro [scale]     scale multiplies the iteration counts (default 1.0)
 * output: one line per (threads, size): "micro threads=T size=S ns_per_pair=X"
 *         and a final "micro checksum=..." line
 */
#include <pthread.h>
#include <time.h>

#include "common.h"

static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536};
#define N_SIZES (sizeof sizes / sizeof sizes[0])
#define RING 8

typedef struct {
    size_t size;
    uint64_t iters;
    double ns;
    uint64_t sum;
    pthread_barrier_t *barrier;
    pthread_t thread;
} job_t;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *run(void *arg) {
    job_t *j = arg;
    unsigned char *ring[RING];
    size_t size = j->size;
    uint64_t sum = 0;
    for (int k = 0; k < RING; k++) {
        ring[k] = xmalloc(size);
        ring[k][0] = ring[k][size - 1] = (unsigned char)k;
    }
    if (j->barrier) pthread_barrier_wait(j->barrier);
    double t0 = now_ns();
    for (uint64_t i = 0; i < j->iters; i++) {
        unsigned char *old = ring[i % RING];
        sum += old[0] + old[size - 1];
        free(old);
        unsigned char *p = malloc(size);
        if (!p) abort();
        p[0] = p[size - 1] = (unsigned char)i;
        OPAQUE(p);
        ring[i % RING] = p;
    }
    j->ns = (now_ns() - t0) / (double)j->iters;
    for (int k = 0; k < RING; k++) free(ring[k]);
    j->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    uint64_t checksum = 0;
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t s = 0; s < N_SIZES; s++) {
            /* fewer iterations for big blocks, which are slower per pair */
            uint64_t iters = (uint64_t)((sizes[s] >= 16384 ? 1000000 : 3000000) * scale);
            if (iters < 1000) iters = 1000;
            job_t jobs[2];
            pthread_barrier_t barrier;
            pthread_barrier_init(&barrier, NULL, (unsigned)threads);
            for (int t = 0; t < threads; t++) {
                jobs[t] = (job_t){.size = sizes[s], .iters = iters, .barrier = &barrier};
                if (pthread_create(&jobs[t].thread, NULL, run, &jobs[t])) abort();
            }
            double ns = 0;
            for (int t = 0; t < threads; t++) {
                pthread_join(jobs[t].thread, NULL);
                ns += jobs[t].ns;
                checksum = mix64(checksum + jobs[t].sum);
            }
            pthread_barrier_destroy(&barrier);
            printf("micro threads=%d size=%zu ns_per_pair=%.2f\n", threads, sizes[s],
                   ns / threads);
        }
    }
    printf("micro checksum=%016llx\n", (unsigned long long)checksum);
    return 0;
}
