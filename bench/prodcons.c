/*
 * Workload "prodcons": producer/consumer with cross-thread frees.  One thread
 * allocates messages of 16..512 bytes and hands them, in batches of 64,
 * through a mutex-protected ring to a second thread, which checks and frees
 * them.  Every block is freed by a thread other than the one that allocated
 * it, while that thread keeps allocating.
 *
 * Both sides sleep on condition variables rather than spin when the ring is
 * full or empty: on a machine with few cores, spinning makes the timing
 * depend on the scheduler more than on the allocator.
 *
 * usage: prodcons [messages] [ring]   defaults: 10000000 4096
 */
#include <pthread.h>

#include "common.h"

#define BATCH 64

typedef struct {
    void *p;
    uint32_t size;
    uint64_t tag;
} msg_t;

static msg_t *ring;
static uint64_t ring_size;
static uint64_t head; /* messages put in the ring so far */
static uint64_t tail; /* messages taken out so far */
static uint64_t n_msgs;
static uint64_t consumer_sum;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    (void)arg;
    rng_t r = {3};
    msg_t batch[BATCH];
    uint64_t i = 1;
    while (i <= n_msgs) {
        int n = 0;
        for (; n < BATCH && i <= n_msgs; n++, i++) {
            size_t sz = rng_range(&r, 16, 512);
            void *p = xmalloc(sz);
            stamp(p, sz, i);
            batch[n] = (msg_t){p, (uint32_t)sz, i};
        }
        pthread_mutex_lock(&lock);
        while (head - tail + (uint64_t)n > ring_size) pthread_cond_wait(&not_full, &lock);
        for (int k = 0; k < n; k++) ring[(head + (uint64_t)k) % ring_size] = batch[k];
        head += (uint64_t)n;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    msg_t *local = xmalloc(ring_size * sizeof *local);
    uint64_t done = 0, sum = 0;
    while (done < n_msgs) {
        pthread_mutex_lock(&lock);
        while (head == tail) pthread_cond_wait(&not_empty, &lock);
        uint64_t n = head - tail;
        for (uint64_t k = 0; k < n; k++) local[k] = ring[(tail + k) % ring_size];
        tail += n;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
        for (uint64_t k = 0; k < n; k++) {
            sum += unstamp(local[k].p, local[k].size, local[k].tag);
            free(local[k].p);
        }
        done += n;
    }
    free(local);
    consumer_sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    n_msgs = arg_u64(argc, argv, 1, 10000000);
    ring_size = arg_u64(argc, argv, 2, 4096);
    if (ring_size < BATCH) {
        fprintf(stderr, "ring size must be at least %d\n", BATCH);
        return 2;
    }
    ring = xmalloc(ring_size * sizeof *ring);
    pthread_t tp, tc;
    if (pthread_create(&tc, NULL, consumer, NULL) || pthread_create(&tp, NULL, producer, NULL)) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    free(ring);
    printf("prodcons messages=%llu checksum=%016llx\n", (unsigned long long)n_msgs,
           (unsigned long long)consumer_sum);
    return 0;
}
