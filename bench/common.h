/*
 * Shared helpers for the binmalloc benchmark workloads.
 *
 * Every workload is deterministic: it draws from a seeded PRNG, writes a
 * known pattern into each block it allocates, checks that pattern when the
 * block is freed, and folds what it read into a checksum that it prints on
 * stdout.  The checksum never depends on addresses, timing or thread
 * interleaving (per-block values are combined with a commutative sum), so it
 * must be identical under every allocator.  A mismatch means an allocator
 * corrupted memory or the benchmark lost work.
 */
#ifndef BINMALLOC_BENCH_COMMON_H
#define BINMALLOC_BENCH_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep the compiler from eliding a malloc/free pair or a store. */
#define OPAQUE(p) __asm__ volatile("" : : "r"(p) : "memory")

typedef struct {
    uint64_t s;
} rng_t;

/* splitmix64: tiny, fast, good enough for picking sizes and slots. */
static inline uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform integer in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi) {
    return lo + (size_t)rng_below(r, (uint64_t)(hi - lo + 1));
}

/* Log-uniform integer in [lo, hi]: every power of two is equally likely. */
static inline size_t rng_log_uniform(rng_t *r, size_t lo, size_t hi) {
    double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    double v = exp(log((double)lo) + u * (log((double)hi + 1.0) - log((double)lo)));
    size_t s = (size_t)v;
    if (s < lo) s = lo;
    if (s > hi) s = hi;
    return s;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/*
 * Stamp a block of `size` bytes (size >= 8) with a tag: the tag goes into the
 * first 8 bytes and, when the block is longer than that, its low byte also
 * goes into the last byte (so both ends of the block are checked).  Blocks
 * spanning several pages get one byte written per 4 KiB as well, so that the
 * whole block is resident, as it would be in a program that uses its memory,
 * and peak RSS reflects the allocator's real footprint.
 */
static inline void stamp(void *p, size_t size, uint64_t tag) {
    memcpy(p, &tag, sizeof tag);
    for (size_t off = 4096; off < size; off += 4096) ((unsigned char *)p)[off] = (unsigned char)tag;
    if (size > sizeof tag) ((unsigned char *)p)[size - 1] = (unsigned char)tag;
}

/* Read a stamp back; abort loudly if the block was corrupted. */
static inline uint64_t unstamp(const void *p, size_t size, uint64_t expect) {
    uint64_t tag;
    memcpy(&tag, p, sizeof tag);
    if (tag != expect ||
        (size > sizeof tag && ((const unsigned char *)p)[size - 1] != (unsigned char)expect)) {
        fprintf(stderr, "CORRUPTION: block of %zu bytes: tag %016llx, expected %016llx\n",
                size, (unsigned long long)tag, (unsigned long long)expect);
        abort();
    }
    return mix64(tag ^ size);
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) returned NULL\n", n);
        abort();
    }
    return p;
}

/* Parse argv[i] as an unsigned count, or return a default. */
static inline uint64_t arg_u64(int argc, char **argv, int i, uint64_t dflt) {
    if (argc > i) return strtoull(argv[i], NULL, 10);
    return dflt;
}

/* The steady-live-set workloads (churn, spread): LIVE slots are filled with objects of sizes
 * from `size_of`; each of OPS operations frees a random slot (checking its contents) and fills
 * it again; at the end everything is checked and freed. Returns the checksum. */
typedef struct {
    unsigned char *p;
    uint32_t size;
    uint64_t tag;
} live_slot_t;

static inline uint64_t replace_randomly(uint64_t ops, uint64_t live, uint64_t seed,
                                        size_t (*size_of)(rng_t *)) {
    rng_t r = {seed};
    live_slot_t *slots = xmalloc(live * sizeof *slots);
    uint64_t sum = 0, tag = 0;

    for (uint64_t i = 0; i < live; i++) {
        size_t sz = size_of(&r);
        slots[i].p = xmalloc(sz);
        slots[i].size = (uint32_t)sz;
        slots[i].tag = ++tag;
        stamp(slots[i].p, sz, tag);
    }
    for (uint64_t i = 0; i < ops; i++) {
        live_slot_t *s = &slots[rng_below(&r, live)];
        sum += unstamp(s->p, s->size, s->tag);
        free(s->p);
        size_t sz = size_of(&r);
        s->p = xmalloc(sz);
        s->size = (uint32_t)sz;
        s->tag = ++tag;
        stamp(s->p, sz, tag);
    }
    for (uint64_t i = 0; i < live; i++) {
        sum += unstamp(slots[i].p, slots[i].size, slots[i].tag);
        free(slots[i].p);
    }
    free(slots);
    return sum;
}

#endif
