/* Shared by the misuse programs about blocks handed back to their arena:
 * allocates `n` blocks of `size` bytes in the calling thread and frees them
 * all from another thread, so that they wait on the arena's hand-back stack
 * (a batch goes back once a thread has held 32, or when it exits). Returns 0,
 * or 2 if the set-up itself failed. */
#ifndef HANDED_BACK_H
#define HANDED_BACK_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

#endif
