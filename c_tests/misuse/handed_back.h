/* Shared by the misuse programs about blocks handed back to their arena:
 * blocks allocated in one thread and freed by another wait, still in use to
 * the heap, for their arena's next refill. A thread hands them back 32 at a
 * time (or when it exits): a batch of small blocks goes into one of the
 * arena's batch slots, a batch of many bytes (32 blocks of 2000 B) onto its
 * stack, linked through each block's first word. */
#ifndef HANDED_BACK_H
#define HANDED_BACK_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDED_BACK_BLOCKS 64
/* Block sizes whose batches take a slot, and go on the stack. */
#define SLOTTED_SIZE 100
#define STACKED_SIZE 2000

struct hand_back_job {
    char **blocks;
    int n;
};

static void *hand_back_free_all(void *arg)
{
    struct hand_back_job *job = arg;
    for (int i = 0; i < job->n; i++)
        free(job->blocks[i]);
    return NULL;
}

/* Allocates `n` blocks of `size` bytes in the calling thread and frees them
 * all from another thread. Returns 0, or 2 if the set-up itself failed. */
static int hand_back(char **blocks, int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        blocks[i] = malloc(size);
        if (!blocks[i])
            return 2;
        memset(blocks[i], i, size);
    }
    struct hand_back_job job = {blocks, n};
    pthread_t t;
    if (pthread_create(&t, NULL, hand_back_free_all, &job) || pthread_join(t, NULL))
        return 2;
    return 0;
}

/* Frees a handed-back block of `size` bytes again. Must abort with "double
 * free": the block is recognised by its hand-back mark and found where it
 * waits. */
static inline int double_free_handed_back(size_t size)
{
    static char *blocks[HANDED_BACK_BLOCKS];
    if (hand_back(blocks, HANDED_BACK_BLOCKS, size))
        return 2;
    fprintf(stderr, "misuse: free(%p)\n", (void *)blocks[0]);
    free(blocks[0]); /* misuse */
    fprintf(stderr, "double free was not detected\n");
    return 3;
}

/* Writes `junk_bytes` bytes into a handed-back block of `size` bytes (a use
 * after free), then makes the thread refill from the arena, which takes the
 * handed-back blocks. Must abort with "written to after it was freed": the
 * refill checks every block before it uses it. */
static inline int write_after_remote_free(size_t size, size_t junk_bytes)
{
    static char *blocks[HANDED_BACK_BLOCKS];
    if (hand_back(blocks, HANDED_BACK_BLOCKS, size))
        return 2;
    fprintf(stderr, "misuse: malloc(%p)\n", (void *)blocks[10]);
    memset(blocks[10], 0x41, junk_bytes); /* misuse: write after free */
    /* A size this thread has not used yet: its list is empty. */
    void *q = malloc(5000);
    fprintf(stderr, "the write after free was not detected (%p)\n", q);
    return 3;
}

#endif
