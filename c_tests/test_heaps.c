/* First-class heaps through the public header: allocation, calloc, realloc across the heap's
 * own cutoff, free, per-heap checking, reset and destroy returning memory, several heaps at
 * once from several threads, and heap blocks kept apart from the process allocator. */
#include "common.h"

#include <binmalloc.h>
#include <pthread.h>
#include <string.h>

#define HEAPS 4

static void exercise(binmalloc_heap *h, uint64_t seed)
{
    enum { LIVE = 3000 };
    static __thread struct { unsigned char *p; size_t n; unsigned char v; } live[LIVE];
    bm_rng r;
    bm_rng_seed(&r, seed);
    for (int i = 0; i < LIVE; i++) {
        size_t n = bm_rng_range(&r, 1, 3000);
        if (i % 101 == 0)
            n += 300000; /* above the heap's cutoff below: a big block of the heap */
        live[i].p = binmalloc_heap_alloc(h, n);
        CHECK(live[i].p != NULL, "heap alloc %zu", n);
        CHECK(((uintptr_t)live[i].p & 15) == 0, "alignment");
        live[i].n = n;
        live[i].v = (unsigned char)i;
        memset(live[i].p, live[i].v, n);
    }
    for (int i = 0; i < LIVE; i += 3) {
        size_t n = live[i].n * 2 + 1;
        unsigned char *q = binmalloc_heap_realloc(h, live[i].p, n);
        CHECK(q != NULL, "heap realloc");
        CHECK(q[live[i].n - 1] == live[i].v && q[0] == live[i].v, "realloc kept the contents");
        memset(q, live[i].v, n);
        live[i].p = q;
        live[i].n = n;
    }
    unsigned char *z = binmalloc_heap_calloc(h, 1000, 7);
    CHECK(z != NULL, "heap calloc");
    for (int i = 0; i < 7000; i++)
        CHECK(z[i] == 0, "calloc zeroes");
    binmalloc_heap_free(h, z);
    for (int i = 0; i < LIVE; i++) {
        CHECK(live[i].p[0] == live[i].v && live[i].p[live[i].n - 1] == live[i].v, "contents kept");
        if (i % 2)
            binmalloc_heap_free(h, live[i].p);
    }
    CHECK(binmalloc_heap_check(h) == 0, "heap sound");
    CHECK(binmalloc_heap_realloc(h, live[0].p, 0) == NULL, "realloc to 0 frees");
}

static void *worker(void *arg)
{
    binmalloc_heap *h = arg;
    exercise(h, (uintptr_t)arg);
    return NULL;
}

static size_t mapped(void)
{
    struct binmalloc_stats s;
    CHECK(binmalloc_stats(&s) == 0, "stats");
    return s.mapped_bytes;
}

int main(void)
{
    bm_require_served();
    struct binmalloc_heap_config config = {.fit = 1, .region_size = 2 << 20, .mmap_threshold = 256 << 10};
    binmalloc_heap *heaps[HEAPS];
    pthread_t threads[HEAPS];
    size_t before = mapped();
    for (int i = 0; i < HEAPS; i++) {
        config.fit = i % 3;
        heaps[i] = binmalloc_heap_new(i == 0 ? NULL : &config);
        CHECK(heaps[i] != NULL, "heap_new");
        CHECK(pthread_create(&threads[i], NULL, worker, heaps[i]) == 0, "thread");
    }
    for (int i = 0; i < HEAPS; i++)
        pthread_join(threads[i], NULL);
    size_t full = mapped();
    CHECK(full > before, "heaps map memory (%zu > %zu)", full, before);

    /* A heap's blocks are not the process allocator's. */
    void *p = binmalloc_heap_alloc(heaps[0], 100);
    CHECK(binmalloc_owns(p) == 1, "heap block is binmalloc's");
    binmalloc_heap_free(heaps[0], p);

    binmalloc_heap_reset(heaps[1]);
    CHECK(binmalloc_heap_check(heaps[1]) == 0, "sound after reset");
    void *again = binmalloc_heap_alloc(heaps[1], 5000);
    CHECK(again != NULL, "usable after reset");
    for (int i = 0; i < HEAPS; i++)
        binmalloc_heap_destroy(heaps[i]);
    size_t after = mapped();
    CHECK(after < full && after <= before + (1 << 20), "destroy returns the memory (%zu, full %zu, before %zu)",
          after, full, before);
    CHECK(binmalloc_check_heap() == 0, "process heap sound");
    return bm_finish("test_heaps");
}
