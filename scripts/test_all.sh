#!/usr/bin/env bash
# `make test`: builds, then runs every test stage in order - even after one
# fails, so that one run shows everything - and closes with a summary table
# and a total "N passed, M failed" over all stages' individual tests.
#
# Stages: test-rust, check-header, check-library, test-c, test-misuse, test-real, test-loom,
# test-miri, test-course, test-faults, test-memory-return, test-heapmap,
# test-valgrind, test-suites, test-fuzz, check-install (see the
# Makefile). Logs: build/test-logs/<stage>.log
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOGS=build/test-logs
mkdir -p "$LOGS"
MAKE="${MAKE:-make}"

stages=(test-rust check-header check-library test-c test-misuse test-real)
# suites with scripts of their own, run when present
for extra in loom miri course faults memory_return heapmap valgrind suites fuzz; do
    [[ -f scripts/test_$extra.sh ]] && stages+=("test-${extra//_/-}")
done
stages+=(check-install)
total_passed=0
total_failed=0
table=()
overall=0
t0=$SECONDS

echo "== dependencies"
bash scripts/test_deps.sh

echo "== build"
if ! "$MAKE" --no-print-directory build 2>&1 | tee "$LOGS/build.log"; then
    echo "build failed; no tests run"
    echo "0 passed, 1 failed"
    exit 1
fi

for stage in "${stages[@]}"; do
    echo
    echo "== $stage"
    start=$SECONDS
    "$MAKE" --no-print-directory "$stage" 2>&1 | tee "$LOGS/$stage.log"
    rc=${PIPESTATUS[0]}
    secs=$((SECONDS - start))
    # count the stage's own tests
    if [[ $stage == test-rust ]]; then
        p=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$LOGS/$stage.log" |
            awk '{p += $4; f += $6} END {print p + 0}')
        f=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$LOGS/$stage.log" |
            awk '{p += $4; f += $6} END {print f + 0}')
    else
        line="$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOGS/$stage.log" | tail -n 1)"
        p=$(sed -nE 's/.*\b([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$line")
        f=$(sed -nE 's/.*\b([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$line")
        p=${p:-0}
        f=${f:-0}
    fi
    # a stage that failed without counting a failure (build error, crash) counts as one
    if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    if [[ $rc -eq 0 ]]; then
        table+=("$(printf 'ok    %-20s %5d passed %4d failed  %4ds' "$stage" "$p" "$f" "$secs")")
    else
        table+=("$(printf 'FAIL  %-20s %5d passed %4d failed  %4ds  (log: %s)' "$stage" "$p" "$f" "$secs" "$LOGS/$stage.log")")
        overall=1
    fi
done

echo
echo "== summary ($((SECONDS - t0)) s)"
printf '%s\n' "${table[@]}"
echo
echo "$total_passed passed, $total_failed failed"
exit $overall
