#!/usr/bin/env bash
# Fuzzing binmalloc with programs of allocation calls checked against a shadow
# table (contents, alignment, ownership, usable size, the heap checker).
#
#   smoke     c_tests/stress/fuzz_ops.c built with gcc as a standalone driver:
#             1500 seeded random inputs, preloaded and linked
#   libfuzzer the same harness built with clang -fsanitize=fuzzer (no
#             AddressSanitizer: it would replace malloc) against a copy of
#             libbinmalloc.so built with sanitizer-coverage instrumentation
#             (build/fuzz/target), so libFuzzer is guided by binmalloc's own
#             branches; runs FUZZ_SECONDS on build/fuzz/corpus-c. clang and
#             libclang-rt-14-dev are installed from Debian if missing.
#   cargo-fuzz  fuzz/fuzz_targets/alloc_ops.rs (binmalloc's C ABI called from
#             Rust, plus injected mapping failures) with `cargo fuzz run -s none`
#             for FUZZ_SECONDS on fuzz/corpus/alloc_ops. Uses the nightly
#             toolchain when there is one, otherwise the default toolchain with
#             RUSTC_BOOTSTRAP=1; installs cargo-fuzz from crates.io if missing.
#
# A part whose tools cannot be had is reported as skipped. A crash prints the
# reproducer (the input file and the command that replays it).
#
# Environment: FUZZ_SECONDS (default 30; 300 with STRESS=1) per fuzzer,
#              SMOKE_INPUTS (default 1500; 20000 with STRESS=1).
# Closing line: "N passed, M failed, K skipped". About 2 minutes when the
# builds are cached (the first run compiles cargo-fuzz and the targets).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIBDIR="$ROOT/target/release"
OUT="$ROOT/build/fuzz"
LOGS="$OUT/logs"
STRESS="${STRESS:-0}"
if [[ $STRESS != 0 ]]; then
    FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
    SMOKE_INPUTS="${SMOKE_INPUTS:-20000}"
else
    FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
    SMOKE_INPUTS="${SMOKE_INPUTS:-1500}"
fi
mkdir -p "$OUT" "$LOGS"
ulimit -c 0

if [[ ! -f $LIBDIR/libbinmalloc.so ]]; then
    echo "test_fuzz: building the library" >&2
    cargo build --release >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi

passed=0
failed=0
skipped=0
failures=()
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); failures+=("${1%%:*}"); }
skip() { echo "skip $1"; skipped=$((skipped + 1)); }

CFLAGS=(-std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread)
SRC=c_tests/stress/fuzz_ops.c

# ------------------------------------------------------------------- smoke
if gcc "${CFLAGS[@]}" "$SRC" -o "$OUT/fuzz_ops.preload" -ldl &&
   gcc "${CFLAGS[@]}" -Iinclude "$SRC" -o "$OUT/fuzz_ops.linked" -L"$LIBDIR" -Wl,--no-as-needed \
       -lbinmalloc -Wl,-rpath,"$LIBDIR" -ldl; then
    for mode in preload linked; do
        envs=()
        [[ $mode == preload ]] && envs=("LD_PRELOAD=$LIBDIR/libbinmalloc.so")
        log="$LOGS/smoke.$mode.log"
        start=$SECONDS
        { env "${envs[@]}" timeout -s KILL 600 "$OUT/fuzz_ops.$mode" "$SMOKE_INPUTS" 1 >"$log" 2>&1; } 2>/dev/null
        rc=$?
        if [[ $rc -eq 0 ]] && grep -q '^1 passed, 0 failed$' "$log"; then
            pass "smoke ($mode) $((SECONDS - start))s: $(grep '^fuzz_ops:' "$log")"
        else
            fail "smoke ($mode) $((SECONDS - start))s: exit status $rc: $(grep 'fuzz_ops:' "$log" | tail -n 1)"
            echo "       repro: ${envs[*]:+${envs[*]} }$OUT/fuzz_ops.$mode $SMOKE_INPUTS 1   (log: $log)"
        fi
    done
else
    fail "smoke: build failed"
fi

# ------------------------------------------------------- libFuzzer, from C
have_libfuzzer() {
    command -v clang >/dev/null 2>&1 &&
        printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
            >"$OUT/probe.c" &&
        clang -fsanitize=fuzzer "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1
}
if ! have_libfuzzer; then
    echo "test_fuzz: installing clang and libclang-rt-14-dev from Debian" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev; }; } \
        >"$LOGS/apt.log" 2>&1
fi
if have_libfuzzer; then
    # binmalloc with sanitizer coverage (stable -C flags); --target keeps the
    # flags off build scripts
    SANCOV="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
    SANCOV+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
    SANCOV+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
    TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
    FLIB="$OUT/target/$TRIPLE/release"
    if RUSTFLAGS="$SANCOV" cargo build --release --lib --target "$TRIPLE" --target-dir "$OUT/target" \
            >"$LOGS/sancov-build.log" 2>&1 &&
       clang -O2 -g -fsanitize=fuzzer -DBM_LIBFUZZER -fno-builtin -pthread -Iinclude "$SRC" \
            -o "$OUT/fuzz_ops.libfuzzer" -rdynamic -L"$FLIB" -Wl,--no-as-needed -lbinmalloc \
            -Wl,-rpath,"$FLIB" -ldl >"$LOGS/libfuzzer-build.log" 2>&1; then
        mkdir -p "$OUT/corpus-c" "$OUT/artifacts-c"
        log="$LOGS/libfuzzer.log"
        start=$SECONDS
        { timeout -s KILL $((FUZZ_SECONDS + 120)) "$OUT/fuzz_ops.libfuzzer" -max_total_time="$FUZZ_SECONDS" \
            -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/artifacts-c/" \
            "$OUT/corpus-c" >"$log" 2>&1; } 2>/dev/null
        rc=$?
        runs="$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")"
        cov="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')"
        if [[ $rc -eq 0 ]]; then
            pass "libfuzzer (C harness, binmalloc instrumented) $((SECONDS - start))s: ${runs:-?} inputs, ${cov:-?}"
        else
            fail "libfuzzer (C harness) $((SECONDS - start))s: exit status $rc"
            grep -E 'fuzz_ops:|ERROR|Test unit written' "$log" | head -n 5 | sed 's/^/       /'
            crash="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)"
            [[ -n $crash ]] && echo "       repro: $OUT/fuzz_ops.linked $crash   (or $OUT/fuzz_ops.libfuzzer $crash)"
            echo "       log: $log"
        fi
    else
        fail "libfuzzer: build failed (logs: $LOGS/sancov-build.log, $LOGS/libfuzzer-build.log)"
    fi
else
    skip "libfuzzer: clang -fsanitize=fuzzer is not available (log: $LOGS/apt.log)"
fi

# -------------------------------------------------------------- cargo fuzz
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "test_fuzz: installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz >"$LOGS/cargo-fuzz-install.log" 2>&1 ||
        cargo install cargo-fuzz >>"$LOGS/cargo-fuzz-install.log" 2>&1
fi
if cargo fuzz --version >/dev/null 2>&1; then
    if cargo +nightly --version >/dev/null 2>&1; then
        TOOL=(cargo +nightly)
        how="nightly"
    else
        TOOL=(env RUSTC_BOOTSTRAP=1 cargo)
        how="$(rustc --version | cut -d' ' -f2) with RUSTC_BOOTSTRAP=1"
    fi
    log="$LOGS/cargo-fuzz.log"
    start=$SECONDS
    if (cd fuzz && "${TOOL[@]}" fuzz build -s none alloc_ops) >"$LOGS/cargo-fuzz-build.log" 2>&1; then
        { (cd fuzz && timeout -s KILL $((FUZZ_SECONDS + 120)) "${TOOL[@]}" fuzz run -s none alloc_ops -- \
            -max_total_time="$FUZZ_SECONDS" -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1) \
            >"$log" 2>&1; } 2>/dev/null
        rc=$?
        runs="$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")"
        cov="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')"
        if [[ $rc -eq 0 ]]; then
            pass "cargo-fuzz alloc_ops ($how) $((SECONDS - start))s: ${runs:-?} inputs, ${cov:-?}"
        else
            fail "cargo-fuzz alloc_ops ($how) $((SECONDS - start))s: exit status $rc"
            grep -E "panicked|^[a-z].*(damaged|returned|found|lost)|Test unit written|^Error" "$log" | head -n 6 |
                sed 's/^/       /'
            crash="$(grep -oE 'artifacts/alloc_ops/[a-z]+-[0-9a-f]+' "$log" | tail -n 1)"
            [[ -n $crash ]] && echo "       repro: (cd fuzz && ${TOOL[*]} fuzz run -s none alloc_ops $crash)"
            echo "       log: $log"
        fi
    else
        fail "cargo-fuzz: build failed ($how; log: $LOGS/cargo-fuzz-build.log)"
    fi
else
    skip "cargo-fuzz: not installed and could not be installed (log: $LOGS/cargo-fuzz-install.log)"
fi

echo
if [[ $failed -gt 0 ]]; then
    printf 'failed:\n'
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
