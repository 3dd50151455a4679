/*
 * test_install.c - the smallest program built against an installed binmalloc
 * (with `pkg-config --cflags --libs binmalloc`, or the installed .a): it
 * includes the installed header, calls binmalloc's own API directly, and its
 * malloc is binmalloc's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <binmalloc.h>

int main(void)
{
    char *p = malloc(1000);
    if (!p) {
        fprintf(stderr, "test_install: malloc failed\n");
        return 1;
    }
    memset(p, 'x', 1000);
    if (binmalloc_owns(p) != 1) {
        fprintf(stderr, "test_install: malloc is not served by binmalloc\n");
        return 1;
    }
    free(p);
    if (binmalloc_check_heap() != 0) {
        fprintf(stderr, "test_install: binmalloc_check_heap reported errors\n");
        return 1;
    }
    printf("test_install: 2 checks passed\n");
    return 0;
}
