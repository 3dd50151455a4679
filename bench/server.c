/*
 * Workload "server": a server-like mix.  Several worker threads each own a
 * table of slots and repeatedly replace a random slot with a new block of
 * 10..1000 bytes.  One replaced block in 8 is not freed by its owner but
 * handed to the next worker's inbox (a lock-free list), and that worker
 * frees it later, so a steady share of frees is cross-thread.
 *
 * A worker that is done keeps emptying its inbox until every worker is done:
 * blocks left waiting there would be the program's memory, not the
 * allocator's, and how many pile up depends on how far apart the threads
 * finish (the peak RSS of one allocator swung from 52 to 128 MiB between
 * runs when finished workers stopped draining).
 *
 * usage: server [ops-per-thread] [threads] [slots-per-thread]
 *        defaults: 2500000 4 20000
 */
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>

#include "common.h"

typedef struct node {
    struct node *next;
} node_t;

typedef struct {
    unsigned char *p;
    uint32_t size;
    uint64_t tag;
} slot_t;

typedef struct {
    _Alignas(64) _Atomic(node_t *) inbox;
    int id;
    uint64_t sum;
    uint64_t received;
    pthread_t thread;
} worker_t;

static worker_t *workers;
static int n_threads;
static uint64_t ops_per_thread;
static uint64_t slots_per_thread;
static atomic_int finished;

static void push(worker_t *w, void *block) {
    node_t *n = block;
    node_t *old = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    do {
        n->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&w->inbox, &old, n, memory_order_release,
                                                    memory_order_relaxed));
}

static uint64_t drain(worker_t *w) {
    node_t *n = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    uint64_t count = 0;
    while (n) {
        node_t *next = n->next;
        free(n);
        n = next;
        count++;
    }
    return count;
}

static void *run(void *arg) {
    worker_t *w = arg;
    worker_t *peer = &workers[(w->id + 1) % n_threads];
    rng_t r = {1000 + (uint64_t)w->id};
    slot_t *slots = xmalloc(slots_per_thread * sizeof *slots);
    uint64_t sum = 0, received = 0;
    /* Tags are unique across threads: thread id in the top bits. */
    uint64_t tag = (uint64_t)w->id << 48;

    for (uint64_t i = 0; i < slots_per_thread; i++) {
        size_t sz = rng_range(&r, 10, 1000);
        slots[i] = (slot_t){xmalloc(sz), (uint32_t)sz, ++tag};
        stamp(slots[i].p, sz, tag);
    }
    for (uint64_t i = 0; i < ops_per_thread; i++) {
        slot_t *s = &slots[rng_below(&r, slots_per_thread)];
        sum += unstamp(s->p, s->size, s->tag);
        if ((rng_next(&r) & 7) == 0 && n_threads > 1)
            push(peer, s->p); /* the peer frees it */
        else
            free(s->p);
        size_t sz = rng_range(&r, 10, 1000);
        *s = (slot_t){xmalloc(sz), (uint32_t)sz, ++tag};
        stamp(s->p, sz, tag);
        if ((i & 255) == 0) received += drain(w);
    }
    for (uint64_t i = 0; i < slots_per_thread; i++) {
        sum += unstamp(slots[i].p, slots[i].size, slots[i].tag);
        free(slots[i].p);
    }
    free(slots);
    /* Keep freeing what the peer sends until every worker is done; nobody
       pushes after that. */
    atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&finished, memory_order_acquire) < n_threads) {
        received += drain(w);
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    received += drain(w);
    w->sum = sum;
    w->received = received;
    return NULL;
}

int main(int argc, char **argv) {
    ops_per_thread = arg_u64(argc, argv, 1, 2500000);
    n_threads = (int)arg_u64(argc, argv, 2, 4);
    slots_per_thread = arg_u64(argc, argv, 3, 20000);
    workers = aligned_alloc(64, sizeof *workers * (size_t)n_threads);
    if (!workers) abort();
    memset(workers, 0, sizeof *workers * (size_t)n_threads);
    /* initialise every inbox before any worker can push to it */
    for (int i = 0; i < n_threads; i++) {
        workers[i].id = i;
        atomic_init(&workers[i].inbox, NULL);
    }
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&workers[i].thread, NULL, run, &workers[i])) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    uint64_t sum = 0, received = 0;
    for (int i = 0; i < n_threads; i++) {
        pthread_join(workers[i].thread, NULL);
        sum += workers[i].sum;
        received += workers[i].received;
    }
    free(workers);
    /* `received` depends only on the per-thread random streams, not timing. */
    printf("server threads=%d ops=%llu cross_frees=%llu checksum=%016llx\n", n_threads,
           (unsigned long long)ops_per_thread, (unsigned long long)received,
           (unsigned long long)sum);
    return 0;
}
