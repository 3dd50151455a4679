/* A block freed by a thread other than the one that allocated it, and then
 * freed again while it waits in its arena's batch slot. */
#include "handed_back.h"

int main(void) { return double_free_handed_back(SLOTTED_SIZE); }
