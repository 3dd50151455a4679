/* A heap buffer overflow that runs over the next block's header, then free
 * of that next block (and, if that passed, of the overflowed block): must
 * abort with "corrupted block header".
 *
 * Of several 24-byte blocks, take the two closest neighbours a < b and
 * fill a with 'A' from its start up to b - the bytes past a's usable size,
 * whatever the layout puts there (a's footer, b's header), are overwritten,
 * as a real off-the-end write would do. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { N = 16 };
    char *blk[N];
    for (int i = 0; i < N; i++) {
        blk[i] = malloc(24);
        if (!blk[i])
            return 2;
        memset(blk[i], 'a' + i, 24);
    }
    char *a = NULL, *b = NULL;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (blk[j] > blk[i] && (!a || (uintptr_t)(blk[j] - blk[i]) < (uintptr_t)(b - a))) {
                a = blk[i];
                b = blk[j];
            }
    if (!a || b - a > 256) {
        fprintf(stderr, "no two 24-byte blocks within 256 bytes of each other\n");
        return 4;
    }
    size_t span = (size_t)(b - a);
    if (span <= malloc_usable_size(a)) {
        fprintf(stderr, "usable size of a reaches b: layout error\n");
        return 4;
    }
    memset(a, 'A', span); /* misuse: overflow up to b */
    fprintf(stderr, "misuse: free(%p)\n", (void *)b);
    free(b);
    fprintf(stderr, "misuse: free(%p)\n", (void *)a);
    free(a);
    fprintf(stderr, "overwritten block header was not detected\n");
    return 3;
}
