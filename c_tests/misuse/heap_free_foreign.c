/* binmalloc_heap_free() of a block from malloc: must abort naming the wrong heap. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    void *(*heap_new)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT, "binmalloc_heap_new");
    void (*heap_free)(void *, void *) = (void (*)(void *, void *))dlsym(RTLD_DEFAULT, "binmalloc_heap_free");
    if (!heap_new || !heap_free)
        return 2;
    void *heap = heap_new(NULL);
    char *p = malloc(64);
    if (!p)
        return 2;
    fprintf(stderr, "misuse: binmalloc_heap_free(%p)\n", (void *)p);
    heap_free(heap, p); /* misuse: not the heap's */
    fprintf(stderr, "foreign pointer given to a heap was not detected\n");
    return 3;
}
