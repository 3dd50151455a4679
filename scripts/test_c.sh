#!/usr/bin/env bash
# Runs the C test programs built by `make c-tests` (build/tests/{preload,linked,static}/)
# in every configuration, and prints one line per run and a closing
# "N passed, M failed".
#
#   preload  plain executables run with LD_PRELOAD=target/release/libbinmalloc.so
#   linked   executables linked with -lbinmalloc (rpath to target/release)
#   static   test_abi linked with target/release/libbinmalloc.a
#
# test_abi also runs under BINMALLOC_FIT=first, best and worst; test_big with
# the default cutoff, with BINMALLOC_MMAP_THRESHOLD=131072 and with huge pages
# (BINMALLOC_HUGEPAGES=1); test_stress_mt
# also with every thread on one arena (BINMALLOC_ARENAS=1); test_abi and
# test_stress_mt also without the per-thread caches (BINMALLOC_TCACHE=0).
#
# Usage: scripts/test_c.sh            the normal matrix
#        scripts/test_c.sh --stress   only the stress tests, with STRESS_SCALE
#                                     (default 10) and longer time limits
# Logs: build/tests/logs/
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/report.sh
source "$ROOT/scripts/report.sh"
LIBDIR="$ROOT/target/release"
LIB="$LIBDIR/libbinmalloc.so"
BIN="$ROOT/build/tests"
LOGS="$BIN/logs"
mkdir -p "$LOGS"
ulimit -c 0

stress=0
if [[ "${1:-}" == "--stress" ]]; then
    stress=1
    export STRESS_SCALE="${STRESS_SCALE:-10}"
fi

if [[ ! -f "$LIB" ]]; then
    echo "test_c: $LIB not found (run make)" >&2
    exit 1
fi

passed=0
failed=0
failures=()

# run MODE NAME TIMEOUT [VAR=value...]
run() {
    local mode="$1" name="$2" limit="$3"
    shift 3
    local bin="$BIN/$mode/$name"
    local label="$name ($mode${*:+, $*})"
    local log="$LOGS/$name.$mode${*:+.$(echo "$*" | tr ' =/' '_-_')}.log"
    if [[ ! -x "$bin" ]]; then
        echo "FAIL $label: $bin not built"
        failed=$((failed + 1))
        failures+=("$label")
        return
    fi
    local envs=("$@")
    [[ $mode == preload ]] && envs+=("LD_PRELOAD=$LIB")
    local start end rc
    start=$(date +%s.%N)
    { env "${envs[@]}" timeout -s KILL "$limit" "$bin" >"$log" 2>&1; } 2>/dev/null
    rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    local last
    last="$(grep -E ': [0-9]+ checks passed$' "$log" | tail -n 1)"
    if [[ $rc -eq 0 && -n $last ]]; then
        echo "ok   $label ${secs}s: $last"
        passed=$((passed + 1))
    else
        local why="exit status $rc"
        [[ $rc -eq 137 ]] && why="killed after ${limit}s (hang?)"
        [[ $rc -gt 128 && $rc -ne 137 ]] && why="killed by signal $((rc - 128))"
        [[ $rc -eq 0 ]] && why="exit 0 but no closing 'checks passed' line"
        echo "FAIL $label ${secs}s: $why"
        tail -n 8 "$log" | sed 's/^/       /'
        echo "       repro: ${envs[*]:+${envs[*]} }$bin"
        failed=$((failed + 1))
        failures+=("$label")
    fi
}

if [[ $stress -eq 1 ]]; then
    for mode in preload linked; do
        run "$mode" test_stress_mt 1200
        run "$mode" test_fork 1200
        run "$mode" test_thread_churn 1200
    done
else
    for mode in preload linked; do
        run "$mode" test_abi 120
        for fit in first best worst; do
            run "$mode" test_abi 120 "BINMALLOC_FIT=$fit"
        done
        run "$mode" test_stress_mt 180
        if [[ $mode == preload ]]; then
            run "$mode" test_stress_mt 180 BINMALLOC_ARENAS=1
            run "$mode" test_stress_mt 180 BINMALLOC_TCACHE=0
            run "$mode" test_abi 120 BINMALLOC_TCACHE=0
        fi
        run "$mode" test_fork 180
        run "$mode" test_thread_churn 180
        run "$mode" test_big 120
        run "$mode" test_big 120 BINMALLOC_MMAP_THRESHOLD=131072
        run "$mode" test_big 120 BINMALLOC_HUGEPAGES=1
        run "$mode" test_rlimit 60
    done
    run linked test_header 30
    run linked test_heaps 60
    run static test_abi 120
fi

echo
finish_runs
