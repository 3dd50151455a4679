/*
 * test_fork.c - fork() while other threads are inside the allocator.
 *
 * Four worker threads allocate, verify and free continuously (small and big
 * blocks, so every lock is busy); the main thread forks 200 times. Each child
 * must be able to use the allocator at once: it frees blocks the parent
 * allocated before the fork (and blocks the workers published), mallocs,
 * reallocs and callocs several sizes, sometimes starts threads of its own,
 * runs the heap checker and exits 0. A deadlock in a child or the parent is
 * turned into a failure by alarm().
 *
 * STRESS_SCALE=n multiplies the number of forks.
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define NWORKERS 4
#define BASE_FORKS 200
#define PUB 64
#define MAIN_BLOCKS 32

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t key;
} desc;

static volatile int stop_workers;
static desc *published[PUB]; /* exchanged atomically */
static desc main_blocks[MAIN_BLOCKS];

static size_t worker_size(bm_rng *r)
{
    uint64_t x = bm_rng_next(r) % 100;
    if (x < 80)
        return bm_rng_range(r, 1, 512);
    if (x < 99)
        return bm_rng_range(r, 513, 32 * 1024);
    return bm_rng_range(r, 200 * 1024, 1024 * 1024);
}

static void verify_desc(const desc *d, const char *who)
{
    size_t bad = bm_verify(d->p, d->size, d->key);
    CHECK(bad == (size_t)-1, "%s: block %p size %zu corrupted at byte %zu", who, (void *)d->p,
          d->size, bad);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    bm_rng r;
    bm_rng_seed(&r, 77 + (uint64_t)id);
    desc local[64];
    memset(local, 0, sizeof local);
    uint64_t n = 0;
    while (!__atomic_load_n(&stop_workers, __ATOMIC_RELAXED)) {
        n++;
        desc *s = &local[bm_rng_next(&r) % 64];
        if (s->p) {
            verify_desc(s, "worker");
            if (bm_rng_next(&r) % 8 == 0) {
                size_t nn = worker_size(&r);
                unsigned char *q = realloc(s->p, nn);
                CHECK(q != NULL, "worker realloc(%zu)", nn);
                size_t keep = nn < s->size ? nn : s->size;
                CHECK(bm_verify(q, keep, s->key) == (size_t)-1, "worker realloc lost content");
                s->p = q;
                s->size = nn;
                s->key = bm_pattern_key(q, nn, n);
                bm_fill(q, nn, s->key);
            } else {
                free(s->p);
                s->p = NULL;
            }
            continue;
        }
        s->size = worker_size(&r);
        s->p = malloc(s->size);
        CHECK(s->p != NULL, "worker malloc(%zu)", s->size);
        s->key = bm_pattern_key(s->p, s->size, n);
        bm_fill(s->p, s->size, s->key);

        if (bm_rng_next(&r) % 16 == 0) {
            /* publish a block (with a malloc'd descriptor) for children */
            desc *d = malloc(sizeof *d);
            CHECK(d != NULL, "malloc(desc)");
            *d = *s;
            s->p = NULL;
            desc *old = __atomic_exchange_n(&published[bm_rng_next(&r) % PUB], d, __ATOMIC_ACQ_REL);
            if (old) {
                verify_desc(old, "worker (published)");
                free(old->p);
                free(old);
            }
        }
    }
    for (int i = 0; i < 64; i++)
        if (local[i].p) {
            verify_desc(&local[i], "worker final");
            free(local[i].p);
        }
    return NULL;
}

static void *child_thread(void *arg)
{
    bm_rng r;
    bm_rng_seed(&r, (uint64_t)(intptr_t)arg);
    for (int i = 0; i < 2000; i++) {
        size_t n = worker_size(&r);
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "child thread malloc(%zu)", n);
        bm_fill(p, n, (uint64_t)i);
        CHECK(bm_verify(p, n, (uint64_t)i) == (size_t)-1, "child thread block");
        free(p);
    }
    return NULL;
}

/* Runs in the child: exits 0 on success, 1 on a failed CHECK (bm_fail). */
static void child_main(int iter)
{
    alarm(30);

    /* blocks the parent's main thread allocated before fork */
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        verify_desc(&main_blocks[i], "child (parent block)");
        CHECK(bm_owns(main_blocks[i].p) == 1, "inherited block not owned");
        if (i % 2)
            free(main_blocks[i].p);
    }
    /* blocks published by the parent's worker threads */
    for (int i = 0; i < PUB; i++) {
        desc *d = __atomic_exchange_n(&published[i], NULL, __ATOMIC_ACQ_REL);
        if (d) {
            verify_desc(d, "child (worker block)");
            free(d->p);
            free(d);
        }
    }

    static const size_t sizes[] = {1, 16, 100, 1000, 5000, 70000, 300000, 2 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        CHECK(p != NULL && bm_is_aligned(p, 16), "child malloc(%zu)", n);
        bm_fill(p, n, n);
        unsigned char *q = realloc(p, n * 2 + 1);
        CHECK(q != NULL && bm_verify(q, n, n) == (size_t)-1, "child realloc grow(%zu)", n);
        p = realloc(q, n / 2 + 1);
        CHECK(p != NULL && bm_verify(p, n / 2 + 1, n) == (size_t)-1, "child realloc shrink(%zu)", n);
        unsigned char *z = calloc(n, 1);
        CHECK(z != NULL && bm_all_zero(z, n), "child calloc(%zu)", n);
        void *m = NULL;
        CHECK(posix_memalign(&m, 4096, n) == 0 && bm_is_aligned(m, 4096), "child posix_memalign");
        free(m);
        free(z);
        free(p);
    }

    if (iter % 10 == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            CHECK(pthread_create(&t[i], NULL, child_thread, (void *)(intptr_t)(iter * 2 + i)) == 0,
                  "child pthread_create");
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
    }

    size_t errs = bm_check_heap_errors();
    if (errs != 0) {
        char buf[128];
        int len = snprintf(buf, sizeof buf, "child %d: binmalloc_check_heap() = %zu\n", iter, errs);
        ssize_t w = write(2, buf, (size_t)len);
        (void)w;
        _exit(2);
    }
    _exit(0);
}

int main(void)
{
    bm_require_served();
    alarm(240); /* parent watchdog: a deadlock fails the test */
    int nforks = (int)(BASE_FORKS * bm_scale());

    bm_rng r;
    bm_rng_seed(&r, 5);
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        main_blocks[i].size = worker_size(&r);
        main_blocks[i].p = malloc(main_blocks[i].size);
        CHECK(main_blocks[i].p != NULL, "malloc");
        main_blocks[i].key = bm_pattern_key(main_blocks[i].p, main_blocks[i].size, 9);
        bm_fill(main_blocks[i].p, main_blocks[i].size, main_blocks[i].key);
    }

    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0, "pthread_create");

    int failures = 0;
    for (int i = 0; i < nforks; i++) {
        /* some allocator traffic on the main thread between forks too */
        void *tmp = malloc(bm_rng_range(&r, 1, 100000));
        CHECK(tmp != NULL, "malloc");
        pid_t pid = fork();
        CHECK(pid >= 0, "fork failed: %s", strerror(errno));
        if (pid == 0)
            child_main(i);
        free(tmp);
        int status = 0;
        pid_t w;
        do
            w = waitpid(pid, &status, 0);
        while (w < 0 && errno == EINTR);
        CHECK(w == pid, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failures++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "test_fork: child %d killed by signal %d (%s)\n", i, WTERMSIG(status),
                        WTERMSIG(status) == SIGALRM ? "deadlock watchdog" : strsignal(WTERMSIG(status)));
            else
                fprintf(stderr, "test_fork: child %d exited with status %d\n", i, WEXITSTATUS(status));
        }
        CHECK(1, "child checked");
    }
    __atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);
    CHECK(failures == 0, "%d of %d children failed", failures, nforks);

    for (int i = 0; i < PUB; i++)
        if (published[i]) {
            verify_desc(published[i], "parent (published)");
            free(published[i]->p);
            free(published[i]);
        }
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        verify_desc(&main_blocks[i], "parent (own block)");
        free(main_blocks[i].p);
    }
    check_heap();
    printf("test_fork: %d forks with %d busy threads, all children exited 0\n", nforks, NWORKERS);
    return bm_finish("test_fork");
}
