#!/usr/bin/env bash
# Checks what libbinmalloc.so brings into a process that preloads it:
#   1. it needs only the C library (no libgcc_s, no Rust runtime library);
#   2. it exports the C allocation ABI and binmalloc_* functions, nothing else
#      (no Rust symbols, no unwinding personality a Rust program could pick up);
#   3. on x86-64, it carries none of Rust's std (whose panic and backtrace code
#      would be most of its size), and its code stays small.
# Prints "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SO="${CARGO_TARGET_DIR:-target}/release/libbinmalloc.so"
# .text of the std-free x86-64 build is about 75 KB; with std it was 297 KB.
TEXT_MAX=150000

passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

if [[ ! -f $SO ]]; then
    fail "library: $SO not built (make build)"
    echo "$passed passed, $failed failed"
    exit 1
fi

# 1. dependencies
needed="$(readelf -d "$SO" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | sort | tr '\n' ' ' | sed 's/ $//')"
extra="$(tr ' ' '\n' <<<"$needed" | grep -vxE 'libc\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9]+' || true)"
if [[ -z $extra ]]; then
    pass "needed: only the C library ($needed)"
else
    fail "needed: $needed (not the C library: $(echo $extra))"
fi

# 2. exports
ABI='malloc|free|cfree|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|malloc_trim|mallopt|mallinfo|mallinfo2|malloc_stats'
exports="$(nm -D --defined-only "$SO" | awk '{print $NF}' | sort)"
missing="$(tr '|' '\n' <<<"$ABI" | grep -vxF -f <(echo "$exports") || true)"
foreign="$(grep -vxE "$ABI|binmalloc_[a-z0-9_]+" <<<"$exports" || true)"
if [[ -z $missing ]]; then
    pass "exports: every C allocation function ($(tr '|' ' ' <<<"$ABI" | wc -w))"
else
    fail "exports: missing $(echo $missing)"
fi
if [[ -z $foreign ]]; then
    pass "exports: nothing but the C ABI and binmalloc_* ($(wc -l <<<"$exports") symbols)"
else
    fail "exports: also $(echo $foreign | head -c 300)"
fi

# 3. no std on x86-64
if [[ $(uname -m) == x86_64 ]]; then
    std_symbols="$(nm -C "$SO" | grep -cE ' (std|gimli|addr2line|miniz_oxide)::' || true)"
    if [[ $std_symbols -eq 0 ]]; then
        pass "no std: no std, gimli, addr2line or miniz_oxide symbols"
    else
        fail "no std: $std_symbols symbols of Rust's std and its backtrace code"
    fi
    text="$(size -A "$SO" | awk '$1 == ".text" {print $2}')"
    if [[ -n $text && $text -le $TEXT_MAX ]]; then
        pass "code size: .text $text bytes (at most $TEXT_MAX)"
    else
        fail "code size: .text ${text:-?} bytes (more than $TEXT_MAX)"
    fi
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
