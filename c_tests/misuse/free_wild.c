/* free() of a wild pointer nobody allocated: must abort with
 * "not allocated by binmalloc" (and not crash with SIGSEGV). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    void *volatile p = (void *)0x12345670;
    fprintf(stderr, "misuse: free(%p)\n", p);
    free(p); /* misuse */
    fprintf(stderr, "free of a wild pointer was not detected\n");
    return 3;
}
