/*
 * xm_threads.c - the parallel-challenge shape: four threads build linked lists and growing
 * arrays with xmalloc/xrealloc and hand them to the next thread through a mutex-protected
 * queue; the receiving thread verifies every value, grows and shrinks the array it received
 * with xrealloc (a block another thread allocated), and frees everything with xfree. The sum
 * of everything received must equal the sum main() computes from the same formulas.
 *
 * Thread t sends round r's package to thread (t + 1) % 4, then takes round r's package from
 * thread (t + 3) % 4. Sending never blocks, so no thread can wait on one that waits on it.
 */
#include <pthread.h>
#include <stdint.h>

#include "xmalloc.h"
#include "course_check.h"

#define THREADS 4
#define ROUNDS 300
#define LIST_LEN 400

typedef struct lnode {
    struct lnode *next;
    uint64_t value;
} lnode;

typedef struct package {
    struct package *next; /* in the queue */
    int from, round;
    lnode *list;
    uint64_t *array;
    size_t len;
} package;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    package *head, *tail;
} queue;

static queue queues[THREADS];
static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t total;

static uint64_t list_value(int t, int r, size_t i) { return (uint64_t)t * 1000003u + (uint64_t)r * 1009u + i * 7u; }
static uint64_t array_value(int t, int r, size_t i) { return ((uint64_t)t << 40) ^ ((uint64_t)r << 20) ^ (i * 3u + 1u); }

/* Array length of round r: mostly small, every 50th round past the big-block cutoff (1 MiB). */
static size_t array_len(int r) { return r % 50 == 49 ? 300000 : 100 + (size_t)(r * 37) % 2000; }

static void push(queue *q, package *p)
{
    p->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

static package *pop(queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (!q->head)
        pthread_cond_wait(&q->ready, &q->lock);
    package *p = q->head;
    q->head = p->next;
    if (!q->head)
        q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return p;
}

static package *build(int t, int r)
{
    package *p = xmalloc(sizeof *p);
    CHECK(p != NULL, "xmalloc(package)");
    CHECK_EQ((uintptr_t)p % 16, 0);
    p->from = t;
    p->round = r;
    p->list = NULL;
    for (size_t i = LIST_LEN; i-- > 0;) { /* built from the back: the list reads 0, 1, ... */
        lnode *n = xmalloc(sizeof *n);
        CHECK(n != NULL, "xmalloc(node)");
        n->value = list_value(t, r, i);
        n->next = p->list;
        p->list = n;
    }
    /* Grown like a vector: one element at a time while small, then by half. */
    size_t len = array_len(r), cap = 0;
    uint64_t *a = NULL;
    for (size_t i = 0; i < len; i++) {
        if (i == cap) {
            cap = cap < 64 ? cap + 1 : cap + cap / 2;
            a = xrealloc(a, cap * sizeof *a);
            CHECK(a != NULL, "xrealloc to %zu elements", cap);
            CHECK_EQ((uintptr_t)a % 16, 0);
        }
        a[i] = array_value(t, r, i);
    }
    p->array = a;
    p->len = len;
    return p;
}

static uint64_t consume(package *p)
{
    int t = p->from, r = p->round;
    uint64_t sum = 0;
    size_t i = 0;
    for (lnode *n = p->list, *next; n; n = next, i++) {
        CHECK(n->value == list_value(t, r, i), "list %d/%d node %zu", t, r, i);
        sum += n->value;
        next = n->next;
        xfree(n);
    }
    CHECK_EQ(i, LIST_LEN);
    for (i = 0; i < p->len; i++) {
        CHECK(p->array[i] == array_value(t, r, i), "array %d/%d element %zu", t, r, i);
        sum += p->array[i];
    }
    /* Resize a block allocated by another thread, both ways, keeping its contents. */
    uint64_t *a = xrealloc(p->array, 2 * p->len * sizeof *a);
    CHECK(a != NULL, "xrealloc grow");
    for (i = 0; i < p->len; i++)
        CHECK(a[i] == array_value(t, r, i), "grown array %d/%d element %zu", t, r, i);
    for (; i < 2 * p->len; i++)
        a[i] = ~(uint64_t)i;
    a = xrealloc(a, p->len / 2 * sizeof *a);
    CHECK(a != NULL, "xrealloc shrink");
    for (i = 0; i < p->len / 2; i++)
        CHECK(a[i] == array_value(t, r, i), "shrunk array %d/%d element %zu", t, r, i);
    if (r % 2)
        xfree(a);
    else
        CHECK(xrealloc(a, 0) == NULL, "xrealloc(p, 0) frees and returns NULL");
    xfree(p);
    return sum;
}

static void *worker(void *arg)
{
    int t = (int)(uintptr_t)arg;
    uint64_t sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        push(&queues[(t + 1) % THREADS], build(t, r));
        package *p = pop(&queues[t]);
        CHECK_EQ(p->from, (t + THREADS - 1) % THREADS);
        CHECK_EQ(p->round, r);
        sum += consume(p);
    }
    pthread_mutex_lock(&total_lock);
    total += sum;
    pthread_mutex_unlock(&total_lock);
    return NULL;
}

int main(void)
{
    for (int i = 0; i < THREADS; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        pthread_cond_init(&queues[i].ready, NULL);
    }
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    uint64_t expected = 0;
    for (int t = 0; t < THREADS; t++)
        for (int r = 0; r < ROUNDS; r++) {
            for (size_t i = 0; i < LIST_LEN; i++)
                expected += list_value(t, r, i);
            for (size_t i = 0; i < array_len(r); i++)
                expected += array_value(t, r, i);
        }
    CHECK(total == expected, "checksum %llu, expected %llu", (unsigned long long)total,
          (unsigned long long)expected);
    for (int i = 0; i < THREADS; i++)
        CHECK(queues[i].head == NULL, "queue %d not empty", i);

    printf("xm_threads: ok (checksum %llu)\n", (unsigned long long)total);
    return 0;
}
