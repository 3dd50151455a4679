/*
 * Workload "realloc": strings grown by realloc.  A table of live strings is
 * appended to in small chunks (1..16 characters); every append reallocs the
 * string to exactly its new length + 1, so growth policy is left entirely to
 * the allocator.  A string that reaches its target length (log-uniform,
 * 16 B .. 64 KiB) is checked and freed, and a new empty one takes its place.
 *
 * usage: realloc [appends] [live]   defaults: 5000000 2000
 */
#include "common.h"

typedef struct {
    char *s;
    uint32_t len;
    uint32_t target;
    uint64_t id;
} str_t;

/* Character at position i of string id: reproducible, so it can be checked. */
static inline char ch(uint64_t id, uint64_t i) { return (char)('a' + (id * 7 + i) % 26); }

static uint64_t finish(const str_t *s) {
    /* Check the string at a few positions and fold its length into the sum. */
    uint64_t probes[4] = {0, s->len / 3, (s->len * 2) / 3, s->len - 1};
    for (int k = 0; k < 4; k++) {
        uint64_t i = probes[k];
        if (s->s[i] != ch(s->id, i)) {
            fprintf(stderr, "CORRUPTION: string %llu, len %u, position %llu: '%c', expected '%c'\n",
                    (unsigned long long)s->id, s->len, (unsigned long long)i, s->s[i],
                    ch(s->id, i));
            abort();
        }
    }
    if (s->s[s->len] != '\0') {
        fprintf(stderr, "CORRUPTION: string %llu lost its terminator\n", (unsigned long long)s->id);
        abort();
    }
    return mix64(s->id ^ ((uint64_t)s->len << 32)) + (unsigned char)s->s[s->len / 2];
}

static void start(str_t *s, rng_t *r, uint64_t id) {
    s->s = NULL;
    s->len = 0;
    s->target = (uint32_t)rng_log_uniform(r, 16, 65536);
    s->id = id;
}

int main(int argc, char **argv) {
    uint64_t appends = arg_u64(argc, argv, 1, 5000000);
    uint64_t live = arg_u64(argc, argv, 2, 2000);
    rng_t r = {4};
    str_t *strs = xmalloc(live * sizeof *strs);
    uint64_t sum = 0, id = 0, done = 0;

    for (uint64_t i = 0; i < live; i++) start(&strs[i], &r, ++id);
    for (uint64_t n = 0; n < appends; n++) {
        str_t *s = &strs[rng_below(&r, live)];
        uint32_t k = (uint32_t)rng_range(&r, 1, 16);
        if (s->len + k > s->target) k = s->target - s->len;
        char *q = realloc(s->s, (size_t)s->len + k + 1);
        if (!q) {
            fprintf(stderr, "realloc(%u) returned NULL\n", s->len + k + 1);
            abort();
        }
        s->s = q;
        for (uint32_t j = 0; j < k; j++) q[s->len + j] = ch(s->id, s->len + j);
        s->len += k;
        q[s->len] = '\0';
        if (s->len >= s->target) {
            sum += finish(s);
            free(s->s);
            done++;
            start(s, &r, ++id);
        }
    }
    for (uint64_t i = 0; i < live; i++) {
        if (strs[i].s) sum += finish(&strs[i]);
        free(strs[i].s);
    }
    free(strs);
    printf("realloc appends=%llu live=%llu completed=%llu checksum=%016llx\n",
           (unsigned long long)appends, (unsigned long long)live, (unsigned long long)done,
           (unsigned long long)sum);
    return 0;
}
