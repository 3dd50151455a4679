#!/usr/bin/env bash
# The coursework library libbinmalloc_course (course/): hmalloc.h (the textbook allocator and
# its statistics) and xmalloc.h (binmalloc's full-speed allocator under course names).
#
#  1. builds it: cargo build --release -p binmalloc_course
#  2. checks that it never replaces the process allocator: neither the .so's dynamic symbols
#     nor the .a's defined symbols include malloc, free, calloc, realloc or any other C
#     allocation name; the .so exports the eight course functions
#  3. compiles every c_tests/course/*.c twice - linked against the shared library, and
#     statically against the .a - and runs each (each program checks its own expectations and
#     exits non-zero on the first failed check)
#  4. runs the hmalloc programs (hm_*) again under RLIMIT_AS = 16 MiB (ulimit -v 16384), as
#     coursework fragmentation tests do
#  5. greps hm_printstats' stderr for the labels classic harnesses look for
#
# Prints "N passed, M failed" and exits non-zero on any failure.
# Environment: CC (default gcc), CARGO_TARGET_DIR (default target), BUILD_DIR (default
# build/tests/course), TEST_TIMEOUT (seconds per run, default 120).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CC="${CC:-gcc}"
BUILD="${BUILD_DIR:-build/tests/course}"
TIMEOUT="${TEST_TIMEOUT:-120}"

passed=0
failed=0
failures=()
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() {
    echo "FAIL $1${2:+: $2}"
    failed=$((failed + 1))
    failures+=("$1")
}
summary() {
    echo
    if [[ $failed -gt 0 ]]; then
        echo "course failures: ${failures[*]}"
    fi
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

echo "== cargo build --release -p binmalloc_course"
if ! cargo build --release -p binmalloc_course; then
    fail build "cargo build failed"
    summary
    exit 1
fi
LIBDIR="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)"
SO="$LIBDIR/libbinmalloc_course.so"
AR="$LIBDIR/libbinmalloc_course.a"
for f in "$SO" "$AR"; do
    [[ -f $f ]] || { fail build "$f not built"; summary; exit 1; }
done

# --- 2. the library leaves the process allocator alone ------------------------------------
echo
echo "== exported symbols"
ALLOC_NAMES='malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|cfree'
if [[ -z "$(nm -D --defined-only "$SO" | grep -w malloc)" ]]; then
    pass "so-no-malloc (nm -D --defined-only libbinmalloc_course.so | grep -w malloc is empty)"
else
    fail so-no-malloc "libbinmalloc_course.so exports malloc"
fi
so_alloc="$(nm -D --defined-only "$SO" | awk '{print $NF}' | grep -wxE "$ALLOC_NAMES")"
if [[ -z $so_alloc ]]; then
    pass "so-no-alloc-names (none of ${ALLOC_NAMES//|/, } exported)"
else
    fail so-no-alloc-names "exports: $(echo $so_alloc)"
fi
ar_alloc="$(nm --defined-only "$AR" 2>/dev/null | awk '$2 ~ /^[TWVi]$/ {print $3}' | grep -wxE "$ALLOC_NAMES")"
if [[ -z $ar_alloc ]]; then
    pass "a-no-alloc-names (libbinmalloc_course.a defines none of them)"
else
    fail a-no-alloc-names "libbinmalloc_course.a defines: $(echo $ar_alloc)"
fi
want_exports="hfree hgetstats hmalloc hprintstats hrealloc xfree xmalloc xrealloc"
got_exports="$(nm -D --defined-only "$SO" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ' | sed 's/ $//')"
if [[ $got_exports == "$want_exports" ]]; then
    pass "so-exports ($want_exports)"
else
    fail so-exports "exports '$got_exports', want '$want_exports'"
fi

# --- 3-5. the test programs ----------------------------------------------------------------
CFLAGS=(-O2 -g -Wall -Wextra -Werror -Icourse/include -Ic_tests/course)
mkdir -p "$BUILD/shared" "$BUILD/static"

# run <label> <binary> <stderr file> [limit-KiB]: runs it (under ulimit -v when a limit is given)
run() {
    local label=$1 bin=$2 err=$3 limit=${4:-}
    local rc
    if [[ -n $limit ]]; then
        (ulimit -v "$limit" && exec timeout -s KILL "$TIMEOUT" "$bin") >"$err.out" 2>"$err"
    else
        timeout -s KILL "$TIMEOUT" "$bin" >"$err.out" 2>"$err"
    fi
    rc=$?
    if [[ $rc -eq 0 ]]; then
        pass "$label: $(tail -n 1 "$err.out")"
        return 0
    fi
    case $rc in
        137) fail "$label" "killed after ${TIMEOUT} s" ;;
        *) fail "$label" "exit status $rc" ;;
    esac
    sed 's/^/       stderr: /' "$err" | head -n 8
    echo "       repro: $( [[ -n $limit ]] && echo "(ulimit -v $limit; $bin)" || echo "$bin" )"
    return 1
}

echo
echo "== c_tests/course"
for src in c_tests/course/*.c; do
    name="$(basename "$src" .c)"
    rm -f "$BUILD/shared/$name" "$BUILD/static/$name"
    "$CC" "${CFLAGS[@]}" "$src" -o "$BUILD/shared/$name" \
        -L"$LIBDIR" -lbinmalloc_course -Wl,-rpath,"$LIBDIR" -lpthread -ldl ||
        fail "$name (shared)" "does not compile"
    "$CC" "${CFLAGS[@]}" -DCOURSE_LINK_STATIC "$src" -o "$BUILD/static/$name" \
        -L"$LIBDIR" -Wl,-Bstatic -lbinmalloc_course -Wl,-Bdynamic -lpthread -ldl -lm ||
        fail "$name (static)" "does not compile"

    for mode in shared static; do
        bin="$BUILD/$mode/$name"
        [[ -x $bin ]] || continue
        # the shared build must really load the library, the static one must not
        # (ldd's output is captured first: grep -q closing the pipe early would fail pipefail)
        deps="$(ldd "$bin" 2>&1)"
        if [[ $mode == shared && $deps != *"$SO"* ]]; then
            fail "$name ($mode)" "does not load $SO"
            continue
        fi
        if [[ $mode == static && $deps == *libbinmalloc_course* ]]; then
            fail "$name ($mode)" "loads libbinmalloc_course dynamically"
            continue
        fi
        run "$name ($mode)" "$bin" "$bin.stderr" || continue
        if [[ $name == hm_printstats ]]; then
            missing=()
            for label in 'Mapped:' 'Unmapped:' 'Allocs:' 'Frees:' 'Freelen:'; do
                grep -Eq "^$label +[0-9]+$" "$bin.stderr" || missing+=("$label")
            done
            if [[ ${#missing[@]} -eq 0 ]] && grep -q '^== hmalloc stats ==$' "$bin.stderr"; then
                pass "$name ($mode): hprintstats labels on stderr"
            else
                fail "$name ($mode)" "hprintstats output lacks: header ${missing[*]}"
                sed 's/^/       stderr: /' "$bin.stderr" | head -n 8
            fi
        fi
        if [[ $name == hm_* ]]; then
            run "$name ($mode, RLIMIT_AS 16 MiB)" "$bin" "$bin.limited.stderr" 16384
        fi
    done
done

summary
