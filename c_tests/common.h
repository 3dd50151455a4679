/*
 * common.h - helpers shared by the binmalloc C test programs.
 *
 * Every test program is built twice from the same source:
 *   - "preload": plain gcc, run with LD_PRELOAD=target/release/libbinmalloc.so
 *   - "linked":  -lbinmalloc (and, for some, statically against libbinmalloc.a)
 * so project functions (binmalloc_owns, binmalloc_check_heap, ...) are never
 * called directly: they are looked up with dlsym(RTLD_DEFAULT, ...).
 *
 * Environment read by the helpers:
 *   STRESS_SCALE=<n>   multiplies the op counts of the stress tests (default 1)
 */
#ifndef BINMALLOC_TEST_COMMON_H
#define BINMALLOC_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

static unsigned long bm_checks_passed;

__attribute__((noreturn, unused, format(printf, 4, 5))) static void
bm_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s:%d: CHECK failed: %s: ", file, line, cond);
    if (n < 0 || n >= (int)sizeof buf)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    /* write(2) rather than stdio: the allocator under test may be broken,
     * and another thread may hold a stdio lock. */
    fflush(stdout);
    ssize_t w = write(2, buf, len);
    (void)w;
    _exit(1);
}

/* CHECK(cond, "printf format", args...) - counts a passed check, or prints
 * file:line and the message and exits 1. Safe to use from any thread. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (__builtin_expect(!(cond), 0))                                  \
            bm_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);               \
        __atomic_fetch_add(&bm_checks_passed, 1, __ATOMIC_RELAXED);        \
    } while (0)

/* Print the closing line "NAME: N checks passed" and return 0 (for main). */
static __attribute__((unused)) int bm_finish(const char *name)
{
    printf("%s: %lu checks passed\n",
           name, __atomic_load_n(&bm_checks_passed, __ATOMIC_RELAXED));
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ */
/* PRNG: xorshift64* (deterministic per seed, one state per thread)    */
/* ------------------------------------------------------------------ */

typedef struct {
    uint64_t s;
} bm_rng;

static inline void bm_rng_seed(bm_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (r->s == 0)
        r->s = 1;
}

static inline uint64_t bm_rng_next(bm_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [lo, hi] */
static inline size_t bm_rng_range(bm_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(bm_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------------ */
/* Fill patterns: derived from (pointer, size, seed), checked before free */
/* ------------------------------------------------------------------ */

static inline uint64_t bm_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t bm_pattern_key(const void *p, size_t size, uint64_t seed)
{
    return bm_mix((uint64_t)(uintptr_t)p ^ bm_mix(size ^ (seed << 1)));
}

/* Fill n bytes at p with the pattern of key. */
static __attribute__((unused)) void bm_fill(void *p, size_t n, uint64_t key)
{
    unsigned char *b = p;
    size_t words = n / 8;
    uint64_t *w = p;
    for (size_t i = 0; i < words; i++)
        w[i] = key ^ (i * 0x9E3779B97F4A7C15ull);
    uint64_t tail = key ^ (words * 0x9E3779B97F4A7C15ull);
    for (size_t i = words * 8; i < n; i++)
        b[i] = (unsigned char)(tail >> ((i % 8) * 8));
}

/* Return the offset of the first byte that differs from the pattern, or
 * (size_t)-1 when all n bytes match. */
static __attribute__((unused)) size_t bm_verify(const void *p, size_t n, uint64_t key)
{
    const unsigned char *b = p;
    size_t words = n / 8;
    const uint64_t *w = p;
    for (size_t i = 0; i < words; i++)
        if (w[i] != (key ^ (i * 0x9E3779B97F4A7C15ull)))
            return i * 8;
    uint64_t tail = key ^ (words * 0x9E3779B97F4A7C15ull);
    for (size_t i = words * 8; i < n; i++)
        if (b[i] != (unsigned char)(tail >> ((i % 8) * 8)))
            return i;
    return (size_t)-1;
}

static __attribute__((unused)) int bm_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Project functions, resolved at run time                             */
/* ------------------------------------------------------------------ */

typedef int (*bm_owns_fn)(const void *);
typedef size_t (*bm_check_heap_fn)(void);
typedef void (*bm_print_stats_fn)(int);

static __attribute__((unused)) void *bm_sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f)
        bm_fail(__FILE__, __LINE__, "dlsym", "symbol %s not found: is binmalloc loaded?", name);
    return f;
}

static bm_owns_fn bm_owns_ptr;
static bm_check_heap_fn bm_check_heap_ptr;
static bm_print_stats_fn bm_print_stats_ptr;

/* Resolve the project functions. Call once from main before starting threads
 * (dlsym may allocate; doing it early keeps it out of tight spots). */
static __attribute__((unused)) void bm_resolve(void)
{
    if (!bm_owns_ptr)
        bm_owns_ptr = (bm_owns_fn)bm_sym("binmalloc_owns");
    if (!bm_check_heap_ptr)
        bm_check_heap_ptr = (bm_check_heap_fn)bm_sym("binmalloc_check_heap");
    if (!bm_print_stats_ptr)
        bm_print_stats_ptr = (bm_print_stats_fn)bm_sym("binmalloc_print_stats");
}

static __attribute__((unused)) int bm_owns(const void *p)
{
    if (!bm_owns_ptr)
        bm_resolve();
    return bm_owns_ptr(p);
}

static __attribute__((unused)) size_t bm_check_heap_errors(void)
{
    if (!bm_check_heap_ptr)
        bm_resolve();
    return bm_check_heap_ptr();
}

/* Run the whole-heap invariant checker and fail when it reports errors. */
#define check_heap()                                                           \
    do {                                                                       \
        size_t bm_errs_ = bm_check_heap_errors();                              \
        CHECK(bm_errs_ == 0, "binmalloc_check_heap() found %zu errors", bm_errs_); \
    } while (0)

/* Fail unless malloc in this process is binmalloc's:
 *  - malloc (as the process resolves it) and binmalloc_owns live in the same
 *    object, and that object is libbinmalloc (unless the test was linked
 *    statically against libbinmalloc.a, BM_STATIC_LINK, where it is the
 *    executable itself);
 *  - binmalloc_owns(malloc(16)) == 1. */
static __attribute__((unused)) void bm_require_served(void)
{
    bm_resolve();

    void *(*volatile direct)(size_t) = malloc;
    void *addrs[2] = {(void *)direct, dlsym(RTLD_DEFAULT, "malloc")};
    Dl_info owns_info;
    CHECK(dladdr((void *)bm_owns_ptr, &owns_info) != 0, "dladdr(binmalloc_owns) failed");
    for (int i = 0; i < 2; i++) {
        Dl_info info;
        CHECK(addrs[i] != NULL, "malloc address %d is NULL", i);
        CHECK(dladdr(addrs[i], &info) != 0, "dladdr(malloc) failed");
        CHECK(info.dli_fname != NULL, "dladdr(malloc) gave no file name");
#ifdef BM_STATIC_LINK
        CHECK(info.dli_fbase == owns_info.dli_fbase,
              "malloc comes from %s, binmalloc_owns from %s", info.dli_fname,
              owns_info.dli_fname);
#else
        CHECK(strstr(info.dli_fname, "libbinmalloc") != NULL,
              "malloc is served by %s, not libbinmalloc", info.dli_fname);
        CHECK(info.dli_fbase == owns_info.dli_fbase,
              "malloc comes from %s, binmalloc_owns from %s", info.dli_fname,
              owns_info.dli_fname);
#endif
    }
    void *p = malloc(16);
    CHECK(p != NULL, "malloc(16) returned NULL");
    CHECK(bm_owns(p) == 1, "binmalloc_owns(malloc(16)) != 1: malloc is not binmalloc's");
    free(p);
}

/* ------------------------------------------------------------------ */
/* Misc                                                                */
/* ------------------------------------------------------------------ */

/* STRESS_SCALE from the environment (>= 1). */
static __attribute__((unused)) unsigned long bm_scale(void)
{
    const char *s = getenv("STRESS_SCALE");
    if (!s || !*s)
        return 1;
    unsigned long v = strtoul(s, NULL, 10);
    return v ? v : 1;
}

static __attribute__((unused)) int bm_is_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* Value in KiB of a "Name:   123 kB" line of /proc/self/status, or -1. */
static __attribute__((unused)) long bm_proc_status_kb(const char *name)
{
    char buf[8192];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t nl = strlen(name);
    for (char *line = buf; line && *line;) {
        if (strncmp(line, name, nl) == 0 && line[nl] == ':')
            return strtol(line + nl + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

/* Resident set size in bytes from /proc/self/statm. */
static __attribute__((unused)) long bm_statm_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size = 0, rss = -1;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

#endif
