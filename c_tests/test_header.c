/*
 * test_header.c - the generated include/binmalloc.h is usable: it compiles
 * next to <stdlib.h> and <malloc.h> (as C and as C++), declares the project
 * functions with the documented types, and a program that calls them
 * directly links against -lbinmalloc and works.
 * (Built only in the linked configuration.)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <binmalloc.h>

static int checks;

#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                         \
        }                                                                     \
        checks++;                                                             \
    } while (0)

int main(void)
{
    /* the declared types are the documented ones */
    int (*owns)(const void *) = binmalloc_owns;
    size_t (*check)(void) = binmalloc_check_heap;
    void (*print_stats)(int) = binmalloc_print_stats;

    char *p = (char *)calloc(1, 100);
    EXPECT(p != NULL);
    EXPECT(owns(p) == 1);
    EXPECT(binmalloc_owns(p + 16) == 0);
    strcpy(p, "hello");
    /* keep the compiler's use-after-free analysis out of the check below */
    void *volatile freed = p;
    free(p);
    EXPECT(binmalloc_owns(freed) == 0);
    EXPECT(check() == 0);
    EXPECT(binmalloc_check_heap() == 0);
    int fds[2];
    EXPECT(pipe(fds) == 0);
    print_stats(fds[1]);
    close(fds[1]);
    char buf[64];
    EXPECT(read(fds[0], buf, sizeof buf) > 0);
    close(fds[0]);
    printf("test_header: %d checks passed\n", checks);
    return 0;
}
