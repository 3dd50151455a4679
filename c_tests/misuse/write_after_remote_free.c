/* Blocks freed by another thread wait for their arena's next refill, linked
 * through their first word. A program that writes into one of them after the
 * free (a use after free) breaks that link: the refill must diagnose it, not
 * follow it. Must abort with "written to after it was freed". */
#include <stdint.h>
#include <stdio.h>

#include "handed_back.h"

#define BLOCKS 64

int main(void)
{
    static char *blocks[BLOCKS];
    if (hand_back(blocks, BLOCKS, 100))
        return 2;
    uint64_t junk = 0x4141414141414141ULL;
    fprintf(stderr, "misuse: malloc(%p)\n", (void *)blocks[10]);
    memcpy(blocks[10], &junk, sizeof junk); /* misuse: write after free */
    /* A size this thread has not used yet: its list is empty, so this refills
     * from the arena and takes the blocks the other thread handed back. */
    void *q = malloc(5000);
    fprintf(stderr, "the overwritten link was not detected (%p)\n", q);
    return 3;
}
