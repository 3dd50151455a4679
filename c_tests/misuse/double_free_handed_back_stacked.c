/* A block freed by a thread other than the one that allocated it, and then
 * freed again while it waits on its arena's hand-back stack. */
#include "handed_back.h"

int main(void) { return double_free_handed_back(STACKED_SIZE); }
