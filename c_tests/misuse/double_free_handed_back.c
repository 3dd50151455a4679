/* A block freed by a thread other than the one that allocated it, and then
 * freed again: the first free hands it back to its arena (still in use to the
 * heap), so the second must be recognised by its hand-back mark. Must abort
 * with "double free". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 64

static char *blocks[BLOCKS];

static void *free_them(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    return NULL;
}

int main(void)
{
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(100);
        if (!blocks[i])
            return 2;
        memset(blocks[i], i, 100);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, free_them, NULL) || pthread_join(t, NULL))
        return 2;
    fprintf(stderr, "misuse: free(%p)\n", (void *)blocks[0]);
    free(blocks[0]); /* misuse */
    fprintf(stderr, "double free was not detected\n");
    return 3;
}
