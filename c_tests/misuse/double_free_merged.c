/* Double free of a block that was merged into its free neighbour on the first
 * free (a and b adjacent; free(a), free(b) coalesces b into a; free(b) again):
 * the stale header left inside the merged block must not pass for a live
 * block. Must abort with "double free" (or report an invalid pointer), never
 * corrupt the heap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    /* sizes above what per-thread caches usually keep */
    volatile size_t n = 200000;
    char *a = malloc(n);
    char *b = malloc(n);
    char *guard = malloc(n);
    if (!a || !b || !guard)
        return 2;
    memset(a, 'a', n);
    memset(b, 'b', n);
    free(a);
    free(b);
    fprintf(stderr, "misuse: free(%p)\n", (void *)b);
    free(b); /* misuse */
    /* if that went unnoticed, the heap is now damaged: show it */
    char *c = malloc(n);
    char *d = malloc(n);
    fprintf(stderr, "double free of a merged block was not detected (c=%p d=%p)\n", (void *)c, (void *)d);
    free(guard);
    return 3;
}
