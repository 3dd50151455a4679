/* free() of a pointer into the middle of a big (mmap'd) block: must abort
 * with "not the start of a block" (and not unmap anything). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    volatile size_t n = 8 << 20;
    char *p = malloc(n);
    if (!p)
        return 2;
    memset(p, 'x', n);
    char *volatile q = p + 4096;
    fprintf(stderr, "misuse: free(%p)\n", (void *)q);
    free(q); /* misuse */
    fprintf(stderr, "free of an interior pointer of a big block was not detected\n");
    return 3;
}
