/*
 * launch: run one benchmark command and report its wall time and rusage.
 *
 * usage: launch RESULT-FILE PROGRAM [ARGS...]
 *
 * Forks, execs PROGRAM with the environment it was given, waits for it
 * with wait4() and writes one line to RESULT-FILE:
 *
 *     wall_ns=N maxrss_kib=N utime_us=N stime_us=N status=S
 *
 * where S is the exit code, or -SIGNAL if the program was killed.
 *
 * The allocator to preload is passed as LAUNCH_LD_PRELOAD and becomes
 * LD_PRELOAD in the child only, so the launcher itself never runs under it.
 *
 * Why not time the child from the Python runner directly: a child's
 * ru_maxrss also covers the memory of the process it was forked from, up to
 * the exec, so children of a 20 MiB Python process could never report less
 * than 20 MiB.  Forked from this small static launcher, that floor is well
 * under 1 MiB.  The launcher exits with status 0 whenever it managed to run
 * the program (the program's own status is in the result file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: launch RESULT-FILE PROGRAM [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 2;
    }
    if (pid == 0) {
        const char *preload = getenv("LAUNCH_LD_PRELOAD");
        if (preload) {
            setenv("LD_PRELOAD", preload, 1);
            unsetenv("LAUNCH_LD_PRELOAD");
        }
        execv(argv[2], argv + 2);
        fprintf(stderr, "launch: cannot execute %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("launch: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -999;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("launch: result file");
        return 2;
    }
    fprintf(f, "wall_ns=%lld maxrss_kib=%ld utime_us=%lld stime_us=%lld status=%d\n", wall, ru.ru_maxrss,
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, code);
    fclose(f);
    return 0;
}
