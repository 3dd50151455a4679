/* A block waiting in its arena's batch slot, whose first two words (where it
 * keeps its hand-back mark) the program overwrites. */
#include "handed_back.h"

int main(void) { return write_after_remote_free(SLOTTED_SIZE, 16); }
