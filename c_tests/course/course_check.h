/*
 * course_check.h - checks shared by the libbinmalloc_course test programs.
 *
 * A failed check prints file, line and condition with write(2) and exits 1, so that a broken
 * allocator cannot hide the message in a stdio buffer.
 */
#ifndef BINMALLOC_COURSE_CHECK_H
#define BINMALLOC_COURSE_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noreturn, unused, format(printf, 4, 5))) static void
course_fail(const char *file, int line, const char *cond, const char *fmt, ...)
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
    ssize_t w = write(2, buf, len);
    (void)w;
    _exit(1);
}

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond))                                                       \
            course_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);           \
    } while (0)

#define CHECK_EQ(actual, expected)                                         \
    do {                                                                   \
        long long a_ = (long long)(actual), e_ = (long long)(expected);    \
        if (a_ != e_)                                                      \
            course_fail(__FILE__, __LINE__, #actual " == " #expected,      \
                        "got %lld, expected %lld", a_, e_);                \
    } while (0)

#ifdef BINMALLOC_COURSE_HMALLOC_H
/* Checks all five counters of hgetstats() at once. */
#define CHECK_STATS(mapped, unmapped, allocs, frees, freelen)              \
    do {                                                                   \
        hm_stats *s_ = hgetstats();                                        \
        CHECK(s_ != NULL, "hgetstats returned NULL");                      \
        CHECK_EQ(s_->pages_mapped, mapped);                                \
        CHECK_EQ(s_->pages_unmapped, unmapped);                            \
        CHECK_EQ(s_->chunks_allocated, allocs);                            \
        CHECK_EQ(s_->chunks_freed, frees);                                 \
        CHECK_EQ(s_->free_length, freelen);                                \
    } while (0)

#define CHECK_FREELEN(freelen) CHECK_EQ(hgetstats()->free_length, freelen)
#endif

/* Byte distance from a to b. */
#define DIST(a, b) ((long long)((uintptr_t)(b) - (uintptr_t)(a)))

#endif
