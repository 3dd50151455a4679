/* free() of a pointer into static data: must abort with
 * "not allocated by binmalloc". */
#include <stdio.h>
#include <stdlib.h>

static char data[256] = "static data";

int main(void)
{
    char *volatile p = data + 64;
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse */
    fprintf(stderr, "free of static data was not detected\n");
    return 3;
}
