/*
 * Workload "bigbuf": big buffers of 64 KiB .. 16 MiB (log-uniform).  A small
 * live set of buffers is kept; each operation frees a random one and
 * allocates a replacement, touching one byte per 4 KiB page of it so that
 * the memory really is faulted in.  This measures how the allocator deals
 * with the operating system (mmap/munmap, trimming, page reuse).
 *
 * usage: bigbuf [ops] [live]       defaults: 4000 8
 */
#include "common.h"

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} buf_t;

static void touch(unsigned char *p, size_t size, uint64_t tag) {
    for (size_t off = 0; off < size; off += 4096) p[off] = (unsigned char)(tag + off / 4096);
    stamp(p, size, tag);
}

static uint64_t check(const buf_t *b) {
    /* Page bytes (other than page 0, which holds the tag) are verified on a sample. */
    for (size_t off = 4096; off < b->size; off += 4096 * 61) {
        if (b->p[off] != (unsigned char)b->tag) {
            fprintf(stderr, "CORRUPTION: buffer %llu of %zu bytes at offset %zu\n",
                    (unsigned long long)b->tag, b->size, off);
            abort();
        }
    }
    return unstamp(b->p, b->size, b->tag);
}

int main(int argc, char **argv) {
    uint64_t ops = arg_u64(argc, argv, 1, 4000);
    uint64_t live = arg_u64(argc, argv, 2, 8);
    rng_t r = {5};
    buf_t *bufs = xmalloc(live * sizeof *bufs);
    uint64_t sum = 0, tag = 0;

    for (uint64_t i = 0; i < live; i++) {
        bufs[i].size = rng_log_uniform(&r, 65536, 16 << 20);
        bufs[i].p = xmalloc(bufs[i].size);
        bufs[i].tag = ++tag;
        touch(bufs[i].p, bufs[i].size, tag);
    }
    for (uint64_t i = 0; i < ops; i++) {
        buf_t *b = &bufs[rng_below(&r, live)];
        sum += check(b);
        free(b->p);
        b->size = rng_log_uniform(&r, 65536, 16 << 20);
        b->p = xmalloc(b->size);
        b->tag = ++tag;
        touch(b->p, b->size, tag);
    }
    for (uint64_t i = 0; i < live; i++) {
        sum += check(&bufs[i]);
        free(bufs[i].p);
    }
    free(bufs);
    printf("bigbuf ops=%llu live=%llu checksum=%016llx\n", (unsigned long long)ops,
           (unsigned long long)live, (unsigned long long)sum);
    return 0;
}
