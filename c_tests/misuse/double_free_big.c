/* free() of the same big (mmap'd) block twice: must abort (not SIGSEGV)
 * with "double free" or "not allocated by binmalloc" - after the first free
 * the block's pages may be gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    volatile size_t n = 8 << 20;
    char *p = malloc(n);
    if (!p)
        return 2;
    memset(p, 1, n);
    free(p);
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse */
    fprintf(stderr, "double free of a big block was not detected\n");
    return 3;
}
