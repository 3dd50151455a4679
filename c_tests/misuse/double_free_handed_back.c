/* A block freed by a thread other than the one that allocated it, and then
 * freed again: the first free hands it back to its arena (still in use to the
 * heap), so the second must be recognised by its hand-back mark. Must abort
 * with "double free". */
#include <stdio.h>

#include "handed_back.h"

#define BLOCKS 64

int main(void)
{
    static char *blocks[BLOCKS];
    if (hand_back(blocks, BLOCKS, 100))
        return 2;
    fprintf(stderr, "misuse: free(%p)\n", (void *)blocks[0]);
    free(blocks[0]); /* misuse */
    fprintf(stderr, "double free was not detected\n");
    return 3;
}
