/* free() of a pointer into the middle of a block (p + 16 of malloc(64)):
 * must abort with "not the start of a block". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(64);
    if (!p)
        return 2;
    memset(p, 'x', 64);
    char *volatile q = p + 16;
    fprintf(stderr, "misuse: free(%p)\n", (void *)q);
    free(q); /* misuse */
    fprintf(stderr, "free of an interior pointer was not detected\n");
    return 3;
}
