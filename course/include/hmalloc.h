/* hmalloc.h - the textbook allocator of libbinmalloc_course, with the statistics that
 * coursework harnesses grade.
 *
 * Policy (the statistics follow it exactly):
 *  - every block has a header of sizeof(size_t) bytes: a request of r bytes needs n = r + 8;
 *  - n < 4096: first fit from one free list sorted by address; a cell is max(n, 16) bytes
 *    rounded up to a multiple of 8; a free cell is split when the rest can hold a free cell
 *    (16 bytes: size and next pointer); when nothing fits, one page is mapped and its rest is
 *    kept as a free cell when it is 16 bytes or more; freed cells merge with their free
 *    neighbours in the same page; pages of cells are never unmapped;
 *  - n >= 4096: ceil(n / 4096) pages are mapped for the block and unmapped when it is freed.
 *
 * Pointers are 8-byte aligned. Calls are serialised by one lock. The memory comes from mmap,
 * never from malloc. */
#ifndef BINMALLOC_COURSE_HMALLOC_H
#define BINMALLOC_COURSE_HMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hm_stats {
    long pages_mapped;     /* 4096-byte pages mapped so far */
    long pages_unmapped;   /* 4096-byte pages unmapped so far */
    long chunks_allocated; /* successful hmalloc calls (hrealloc counts one) */
    long chunks_freed;     /* hfree calls with a non-NULL pointer (hrealloc counts one) */
    long free_length;      /* cells on the free list, counted when the stats are asked for */
} hm_stats;

/* Allocates size bytes; NULL when out of memory. */
void* hmalloc(size_t size);
/* Frees a block from hmalloc/hrealloc; NULL is ignored. */
void hfree(void* item);
/* hmalloc(size), copy, hfree(prev); hrealloc(NULL, n) == hmalloc(n); hrealloc(p, 0) frees p and
 * returns NULL. */
void* hrealloc(void* prev, size_t size);
/* The statistics, free_length counted now; the struct is overwritten by the next call. */
hm_stats* hgetstats(void);
/* Writes the statistics to stderr: a header line, then Mapped:, Unmapped:, Allocs:, Frees:,
 * Freelen: each followed by its number. */
void hprintstats(void);

#ifdef __cplusplus
}
#endif

#endif
