/* A block waiting on its arena's hand-back stack, whose first word (its link
 * on the stack) the program overwrites: the refill must diagnose the broken
 * link, not follow it. */
#include "handed_back.h"

int main(void) { return write_after_remote_free(STACKED_SIZE, 8); }
