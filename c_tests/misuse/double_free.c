/* free() of the same block twice: must abort with "double free". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(64);
    if (!p)
        return 2;
    strcpy(p, "double free");
    free(p);
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse */
    fprintf(stderr, "double free was not detected\n");
    return 3;
}
