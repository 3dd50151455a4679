#!/usr/bin/env bash
# The Rust tests of the heap core under Miri, which checks every access the unsafe block, bin,
# region and heap code makes (out of bounds, use after unmap, misaligned or uninitialised
# reads, aliasing violations, unmaps that do not name a whole mapping):
#
#   cargo +nightly miri test --lib   (the tests selected below, in target/miri)
#
# Mappings come from Miri's allocator instead of mmap (src/os.rs, `mod sys` under cfg(miri)),
# and the model test runs short sequences and checks sampled bytes (src/tests/heap_model.rs).
# Left out, because Miri cannot run them, not because they fail:
#   tests that call mincore              found in src/tests/*.rs (a test whose body calls
#                                        resident_pages or mincore), so new ones are skipped too
#   big_blocks_honour_large_alignments   alignments above 1 MiB, which the Miri mappings refuse
#   tests::threads, tests::user_heaps    the thread cache reads its TLS with inline assembly,
#                                        and start-up calls getauxval
#   every_small_size_maps_into_its_bin_range, cache_classes_round_trip
#                                        exhaustive loops over safe arithmetic (minutes under
#                                        Miri; test-rust runs them)
# Flags: -Zmiri-ignore-leaks (the tests leak their arenas on purpose, so that regions can
# point at them), -Zmiri-permissive-provenance (addresses become pointers, as in any
# allocator), -Zmiri-disable-weak-memory-emulation (Miri's store-buffer emulation panics
# internally, "cannot have empty store buffer when previous write was atomic", on block header
# words, which are written atomically and later overwritten as plain data).
#
# Miri needs the nightly toolchain with the miri and rust-src components. When they are not
# installed, `rustup component add` is tried; if that fails the stage is skipped, saying why.
# Closing line: "N passed, M failed" (", 1 skipped" when skipped).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/report.sh
source "$ROOT/scripts/report.sh"

skip() {
    echo "test_miri: skipped: $1"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
}

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "test_miri: installing the miri and rust-src components of the nightly toolchain" >&2
    if ! err="$(rustup component add miri rust-src --toolchain nightly 2>&1)"; then
        skip "Miri is not installed and could not be: $(tail -n 1 <<<"$err")"
    fi
    cargo +nightly miri --version >/dev/null 2>&1 || skip "cargo +nightly miri does not run"
fi
echo "$(cargo +nightly miri --version)"

# tests whose body calls mincore (directly or through the resident_pages helper)
skips=()
while read -r name; do
    skips+=(--skip "$name")
done < <(awk '/^#\[test\]/ { t = 1; next }
    /^(pub(\([a-z]+\))? )?fn [a-z_0-9]+/ {
        if (t) { match($0, /fn [a-z_0-9]+/); name = substr($0, RSTART + 3, RLENGTH - 3) } else name = ""
        t = 0; next
    }
    name != "" && /resident_pages\(|mincore\(/ { print name; name = "" }' src/tests/*.rs)
echo "skipped (mincore): $(printf '%s ' "${skips[@]}" | sed 's/--skip //g')"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
RUSTC_ICE=0 CARGO_TARGET_DIR="$ROOT/target/miri" \
MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-ignore-leaks -Zmiri-permissive-provenance -Zmiri-disable-weak-memory-emulation" \
    cargo +nightly miri test --lib -- \
        tests::checker tests::faults tests::handed_back tests::heap_cases tests::large_blocks tests::heap_model tests::size_classes \
        "${skips[@]}" --skip big_blocks_honour_large_alignments \
        --skip every_small_size_maps_into_its_bin_range --skip cache_classes_round_trip \
    2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

cargo_test_counts "$out" "$rc"
echo
case $count_note in
    # Miri reports undefined behaviour by stopping the test binary, not as a failed test.
    stopped) echo "test_miri: Miri stopped the tests (undefined behaviour or an unsupported operation; see above)" ;;
    "none ran") echo "test_miri: no test ran" ;;
esac
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
