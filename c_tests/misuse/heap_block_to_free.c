/* free() of a block that belongs to a first-class heap: must abort naming the wrong heap.
 * The heap API is looked up with dlsym so the program also runs preloaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    void *(*heap_new)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT, "binmalloc_heap_new");
    void *(*heap_alloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "binmalloc_heap_alloc");
    if (!heap_new || !heap_alloc)
        return 2;
    void *heap = heap_new(NULL);
    char *p = heap_alloc(heap, 64);
    if (!p)
        return 2;
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse: belongs to the heap */
    fprintf(stderr, "free of a heap block was not detected\n");
    return 3;
}
