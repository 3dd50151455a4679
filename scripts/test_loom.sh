#!/usr/bin/env bash
# The futex lock's algorithm under loom (src/tests/loom_lock.rs): the lock code of src/lock.rs,
# run on loom's model-checked atomic and an emulated futex, under every interleaving of two and
# three threads up to a preemption bound. Each test fails on a race on the data the lock
# protects, a lost increment, a thread left asleep (deadlock) or a livelock.
#
#   RUSTFLAGS="--cfg loom" cargo test --release --lib loom
#
# built in target/loom, so that the different flags do not rebuild target/release. Needs only
# crates (loom and its dependencies, fetched by cargo the first time).
#
# Environment: STRESS=1 raises the preemption bound to 3 (about 20 s more);
#              LOOM_MAX_PREEMPTIONS sets it outright.
# Log: the cargo output, with the interleavings each test explored. Closing line:
# "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/report.sh
source "$ROOT/scripts/report.sh"
if [[ ${STRESS:-0} != 0 && -z ${LOOM_MAX_PREEMPTIONS:-} ]]; then
    export LOOM_MAX_PREEMPTIONS=3
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
RUSTFLAGS="${RUSTFLAGS:-} --cfg loom" CARGO_TARGET_DIR="$ROOT/target/loom" \
    cargo test --release --lib loom -- --nocapture --test-threads=1 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

cargo_test_counts "$out" "$rc"
echo
case $count_note in
    stopped) echo "test_loom: cargo failed before any test ran" ;;
    "none ran") echo "test_loom: no loom test ran" ;;
esac
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
