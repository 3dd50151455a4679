#!/usr/bin/env bash
# Out-of-memory handling by fault injection: builds c_tests/stress/test_faults.c
# twice (plain, run with LD_PRELOAD=target/release/libbinmalloc.so; and linked
# with -lbinmalloc) and runs it in several configurations. See the comment at
# the top of test_faults.c for what each run asserts.
#
#   preload, linked                 the default configuration
#   BINMALLOC_MMAP_THRESHOLD=1m     fixed cutoff: every request above 1 MiB maps
#   BINMALLOC_TCACHE=0              no thread cache: small sizes go to the arena
#   BINMALLOC_CHECK=2000            the heap checker also runs inside the calls
#   BINMALLOC_FAULT_MMAP=n          --env-workload with the start-up thread's
#                                   n-th mapping failing (n = 1..12)
#
# Prints one line per run, the number of faults injected, and a closing
# "N passed, M failed" (runs). Default mode takes about a minute on 2 cores.
#
# Environment: STRESS=1   longer sweeps inside each run, more configurations
#                         and n = 1..40 for BINMALLOC_FAULT_MMAP
#              CC         compiler (default gcc)
# Logs: build/stress/logs/
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/report.sh
source "$ROOT/scripts/report.sh"
LIBDIR="$ROOT/target/release"
LIB="$LIBDIR/libbinmalloc.so"
OUT="$ROOT/build/stress"
LOGS="$OUT/logs"
CC="${CC:-gcc}"
STRESS="${STRESS:-0}"
export STRESS
mkdir -p "$OUT/preload" "$OUT/linked" "$LOGS"
ulimit -c 0

if [[ ! -f "$LIB" ]]; then
    echo "test_faults: $LIB not found; building" >&2
    cargo build --release >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi

CFLAGS=(-std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread)
SRC=c_tests/stress/test_faults.c
if ! "$CC" "${CFLAGS[@]}" "$SRC" -o "$OUT/preload/test_faults" -ldl ||
   ! "$CC" "${CFLAGS[@]}" -Iinclude "$SRC" -o "$OUT/linked/test_faults" -L"$LIBDIR" \
        -Wl,--no-as-needed -lbinmalloc -Wl,-rpath,"$LIBDIR" -ldl; then
    echo "test_faults: build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
faults=0
failures=()

# run MODE LIMIT ARGS... -- [VAR=value...]
run() {
    local mode="$1" limit="$2"
    shift 2
    local args=()
    while [[ $# -gt 0 && $1 != -- ]]; do args+=("$1"); shift; done
    [[ ${1:-} == -- ]] && shift
    local envs=("$@")
    [[ $mode == preload ]] && envs+=("LD_PRELOAD=$LIB")
    local bin="$OUT/$mode/test_faults"
    local label="test_faults ${args[*]:+${args[*]} }($mode${*:+, $*})"
    local log
    log="$LOGS/faults.$mode$(printf '.%s' "${args[@]}" "$@" | tr ' =/' '_-_').log"
    local start=$SECONDS rc
    { env "${envs[@]}" timeout -s KILL "$limit" "$bin" "${args[@]}" >"$log" 2>&1; } 2>/dev/null
    rc=$?
    local secs=$((SECONDS - start))
    local closing n
    closing="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    n="$(sed -nE 's/^faults injected in all: ([0-9]+)$/\1/p; s/.*faults injected ([0-9]+)$/\1/p' "$log" | tail -n 1)"
    faults=$((faults + ${n:-0}))
    if [[ $rc -eq 0 && -n $closing && $closing == *" 0 failed" ]]; then
        echo "ok   $label ${secs}s: $closing, ${n:-0} faults injected"
        passed=$((passed + 1))
    else
        local why="exit status $rc"
        [[ $rc -eq 137 ]] && why="killed after ${limit}s (hang?)"
        [[ $rc -gt 128 && $rc -ne 137 ]] && why="killed by signal $((rc - 128))"
        echo "FAIL $label ${secs}s: $why${closing:+ ($closing)}"
        grep -E '^FAIL|expected|workload|binmalloc:' "$log" | head -n 12 | sed 's/^/       /'
        echo "       repro: ${envs[*]:+${envs[*]} }$bin ${args[*]}   (log: $log)"
        failed=$((failed + 1))
        failures+=("$label")
    fi
}

limit=300
[[ $STRESS != 0 ]] && limit=1500
run preload $limit
run linked $limit
run preload $limit -- BINMALLOC_MMAP_THRESHOLD=1m
run linked $limit -- BINMALLOC_TCACHE=0
run preload $limit -- BINMALLOC_CHECK=2000
if [[ $STRESS != 0 ]]; then
    run linked $limit -- BINMALLOC_ARENAS=1
    run preload $limit -- BINMALLOC_FIT=first
    run linked $limit -- BINMALLOC_FIT=worst BINMALLOC_MMAP_THRESHOLD=128k
    run preload $limit -- BINMALLOC_PURGE_DELAY=0
fi

maxn=12
[[ $STRESS != 0 ]] && maxn=40
for mode in preload linked; do
    for ((n = 1; n <= maxn; n++)); do
        run "$mode" 60 --env-workload -- "BINMALLOC_FAULT_MMAP=$n"
    done
done

echo
echo "faults injected: $faults"
finish_runs
