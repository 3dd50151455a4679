/* xmalloc.h - binmalloc's full-speed allocator under course names (libbinmalloc_course).
 *
 * Per-thread caches and several arenas; a block may be freed or resized by any thread.
 * Linking this library does not replace the process malloc. */
#ifndef BINMALLOC_COURSE_XMALLOC_H
#define BINMALLOC_COURSE_XMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocates size bytes aligned to 16; NULL with errno = ENOMEM when out of memory. */
void* xmalloc(size_t size);
/* Frees a block from xmalloc/xrealloc, allocated by any thread; NULL is ignored. */
void xfree(void* ptr);
/* Like realloc: xrealloc(NULL, n) == xmalloc(n); xrealloc(p, 0) frees p and returns NULL; on
 * failure returns NULL (errno = ENOMEM) and leaves p as it was. */
void* xrealloc(void* prev, size_t size);

#ifdef __cplusplus
}
#endif

#endif
