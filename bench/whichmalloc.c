/*
 * Prints the path of the shared object that provides malloc() in this
 * process.  The benchmark runner uses it to check that an LD_PRELOAD really
 * replaced the allocator (the dynamic linker only warns if it cannot preload
 * a library, and then carries on with glibc's malloc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *(*volatile malloc_ptr)(size_t) = malloc;

int main(void) {
    Dl_info info;
    void *p = malloc_ptr(64);
    free(p);
    if (!dladdr((void *)malloc_ptr, &info) || !info.dli_fname) {
        fprintf(stderr, "dladdr failed for malloc\n");
        return 1;
    }
    puts(info.dli_fname);
    return 0;
}
