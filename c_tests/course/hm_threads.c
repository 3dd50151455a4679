/*
 * hm_threads.c - hmalloc is single-threaded in spirit but takes a lock, so four threads can use
 * it at once without corrupting the free list or the counters.
 *
 * Each thread keeps up to 64 live blocks, replaces a random one 20000 times (one hmalloc and,
 * when the slot was full, one hfree per step), mostly below a page and every 97th step a big
 * block of 5000..20000 bytes, checking every block's contents before freeing it; then frees
 * what is left.
 *
 * Expected, from the policy (course/include/hmalloc.h):
 *   chunks_allocated = chunks_freed = 4 * 20000 = 80000 (one hmalloc per step, each block freed
 *   exactly once);
 *   every big block's pages are unmapped when it is freed and pages of cells are never
 *   unmapped; once all cells are free each page of cells is one free cell (cells merge within a
 *   page, never across), so free_length = pages_mapped - pages_unmapped.
 * Stacks are 64 KiB so that the program also runs under RLIMIT_AS = 16 MiB.
 */
#include <pthread.h>
#include <stdint.h>

#include "hmalloc.h"
#include "course_check.h"

#define THREADS 4
#define STEPS 20000
#define SLOTS 64

typedef struct {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} slot;

static void *worker(void *arg)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    slot slots[SLOTS] = {{0}};
    for (int step = 0; step < STEPS; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        slot *s = &slots[rng % SLOTS];
        if (s->p) {
            for (size_t i = 0; i < s->size; i++)
                CHECK(s->p[i] == (unsigned char)(s->tag + i), "thread %lu: block corrupted",
                      (unsigned long)(uintptr_t)arg);
            hfree(s->p);
        }
        s->size = step % 97 == 0 ? 5000 + (rng >> 20) % 15001 : (rng >> 24) % 600;
        s->tag = (unsigned char)(rng >> 40);
        s->p = hmalloc(s->size);
        CHECK(s->p != NULL, "hmalloc(%zu)", s->size);
        for (size_t i = 0; i < s->size; i++)
            s->p[i] = (unsigned char)(s->tag + i);
    }
    for (int i = 0; i < SLOTS; i++)
        hfree(slots[i].p);
    return NULL;
}

int main(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], &attr, worker, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    hm_stats *s = hgetstats();
    CHECK_EQ(s->chunks_allocated, THREADS * STEPS);
    CHECK_EQ(s->chunks_freed, THREADS * STEPS);
    CHECK(s->pages_unmapped > 0, "big blocks were unmapped");
    CHECK_EQ(s->free_length, s->pages_mapped - s->pages_unmapped);

    puts("hm_threads: ok");
    return 0;
}
