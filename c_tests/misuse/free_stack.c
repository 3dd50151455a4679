/* free() of a stack address: must abort with "not allocated by binmalloc". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char buf[128];
    memset(buf, 0, sizeof buf);
    char *volatile p = buf + 32;
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse */
    fprintf(stderr, "free of a stack address was not detected\n");
    return 3;
}
