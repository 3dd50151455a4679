#!/usr/bin/env bash
# Memory freed for good leaves the resident set: builds
# c_tests/stress/test_memory_return.c (plain, run with LD_PRELOAD; and linked
# with -lbinmalloc) and runs each case in a process of its own:
#
#   --case trim          1 GiB allocated and freed by 3 threads, malloc_trim(0):
#                        VmRSS back within 8 MiB of the start
#   --case purge         the same without malloc_trim: sleep 300 ms (past the
#                        200 ms purge delay), one malloc(32)/free pair on each
#                        allocating thread: VmRSS back within 16 MiB
#   --case purge-arena   as purge, with a malloc(256 KiB)/free pair (a size the
#                        thread cache does not serve, so it reaches the arena)
#
# Prints the VmRSS figures (start, peak, after) of every run and a closing
# "N passed, M failed" (runs). About 10 s. STRESS=1 adds 1 and 8 threads and
# 4 GiB runs.
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
mkdir -p "$OUT/preload" "$OUT/linked" "$LOGS"
ulimit -c 0

if [[ ! -f "$LIB" ]]; then
    echo "test_memory_return: $LIB not found; building" >&2
    cargo build --release >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi

CFLAGS=(-std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread)
SRC=c_tests/stress/test_memory_return.c
if ! "$CC" "${CFLAGS[@]}" "$SRC" -o "$OUT/preload/test_memory_return" -ldl -lm ||
   ! "$CC" "${CFLAGS[@]}" -Iinclude "$SRC" -o "$OUT/linked/test_memory_return" -L"$LIBDIR" \
        -Wl,--no-as-needed -lbinmalloc -Wl,-rpath,"$LIBDIR" -ldl -lm; then
    echo "test_memory_return: build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
failures=()

# run MODE ARGS...
run() {
    local mode="$1"
    shift
    local envs=()
    [[ $mode == preload ]] && envs+=("LD_PRELOAD=$LIB")
    local bin="$OUT/$mode/test_memory_return"
    local label="test_memory_return $* ($mode)"
    local log
    log="$LOGS/memory_return.$mode$(printf '.%s' "$@" | tr ' =/-' '_-__').log"
    local start=$SECONDS rc
    { env "${envs[@]}" timeout -s KILL 300 "$bin" "$@" >"$log" 2>&1; } 2>/dev/null
    rc=$?
    local secs=$((SECONDS - start))
    local figures closing
    figures="$(grep -E '^VmRSS' "$log" | sed -E 's/ \(limit.*//')"
    closing="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    if [[ $rc -eq 0 && $closing == *" 0 failed" ]]; then
        echo "ok   $label ${secs}s: $figures"
        passed=$((passed + 1))
    else
        echo "FAIL $label ${secs}s: exit status $rc${closing:+ ($closing)}"
        sed 's/^/       /' "$log" | head -n 30
        echo "       repro: ${envs[*]:+${envs[*]} }$bin $*"
        failed=$((failed + 1))
        failures+=("$label")
    fi
}

for mode in preload linked; do
    for c in trim purge purge-arena; do
        run "$mode" --case "$c"
    done
done
if [[ $STRESS != 0 ]]; then
    for c in trim purge purge-arena; do
        run preload --case "$c" --threads 1
        run linked --case "$c" --threads 8
        run preload --case "$c" --threads 2 --mib 4096
    done
fi

echo
finish_runs
