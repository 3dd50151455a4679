/* realloc() of a block that was already freed: must abort with
 * "block already freed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(64);
    if (!p)
        return 2;
    strcpy(p, "soon freed");
    free(p);
    fprintf(stderr, "misuse: realloc(%p)\n", (void *)p);
    char *q = realloc(p, 128); /* misuse */
    fprintf(stderr, "realloc of a freed block was not detected (%p)\n", (void *)q);
    return 3;
}
