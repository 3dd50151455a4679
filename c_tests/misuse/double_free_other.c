/* A double free with other allocator traffic in between, which is how it
 * shows up in real programs: must abort with "double free". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *keep[16];
    /* guards on both sides, so the freed block cannot merge with a
     * neighbour and be handed out again as the start of a bigger block */
    char *g1 = malloc(200);
    char *p = malloc(200);
    char *g2 = malloc(200);
    if (!g1 || !p || !g2)
        return 2;
    memset(p, 'x', 200);
    free(p);
    for (int i = 0; i < 16; i++) {
        keep[i] = malloc(1000 + (size_t)i * 100);
        if (!keep[i])
            return 2;
        memset(keep[i], i, 1000);
    }
    fprintf(stderr, "misuse: free(%p)\n", (void *)p);
    free(p); /* misuse */
    fprintf(stderr, "double free was not detected\n");
    for (int i = 0; i < 16; i++)
        free(keep[i]);
    free(g1);
    free(g2);
    return 3;
}
