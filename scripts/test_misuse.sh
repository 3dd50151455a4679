#!/usr/bin/env bash
# Misuse detection: every program in c_tests/misuse/ commits one detectable
# heap misuse (double free, free of a pointer binmalloc never returned, free of
# an interior pointer, realloc of a freed block, an overwritten block header).
# binmalloc must print ONE line of the form
#     binmalloc: <call>(<pointer>): <problem>
# naming the pointer the program passed, and abort() - exit by SIGABRT, which
# a shell reports as status 134.
#
# Each program runs twice: preloaded (LD_PRELOAD=libbinmalloc.so) and linked
# with -lbinmalloc.
#
# Environment: BINMALLOC_LIBDIR (default target/release), CC (default gcc),
#              BUILD_DIR (default build/tests/misuse).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIBDIR="$(cd "${BINMALLOC_LIBDIR:-target/release}" 2>/dev/null && pwd)" || {
    echo "test_misuse: no library directory ${BINMALLOC_LIBDIR:-target/release}" >&2
    exit 1
}
LIB="$LIBDIR/libbinmalloc.so"
CC="${CC:-gcc}"
BUILD="${BUILD_DIR:-build/tests/misuse}"
if [[ ! -f "$LIB" ]]; then
    echo "test_misuse: $LIB not found (run cargo build --release)" >&2
    exit 1
fi

# program -> the problem its message must name (an extended regex)
declare -A EXPECT=(
    [double_free]='double free'
    [double_free_other]='double free'
    [double_free_handed_back]='double free'
    [double_free_handed_back_stacked]='double free'
    [write_after_remote_free]='written to after it was freed'
    [write_after_remote_free_stacked]='written to after it was freed'
    [double_free_merged]='double free|not the start of a block|not allocated by binmalloc'
    [double_free_big]='double free|not allocated by binmalloc'
    [free_stack]='not allocated by binmalloc'
    [free_static]='not allocated by binmalloc'
    [free_wild]='not allocated by binmalloc'
    [free_interior]='not the start of a block'
    [free_interior_big]='not the start of a block'
    [realloc_freed]='already freed'
    [header_overflow]='corrupted block header'
    [heap_block_to_free]='does not belong to this heap'
    [heap_free_foreign]='does not belong to this heap'
)

# The programs misuse the heap on purpose: silence the warnings that say so.
CFLAGS=(-O2 -g -Wall -Wextra -Werror -fno-builtin -Wno-free-nonheap-object
        -Wno-use-after-free -Wno-alloc-size-larger-than -Wno-array-bounds
        -Wno-stringop-overflow -Wno-mismatched-dealloc)

mkdir -p "$BUILD/preload" "$BUILD/linked"
ulimit -c 0 # no core files from the expected aborts

passed=0
failed=0
failures=()

for src in c_tests/misuse/*.c; do
    name="$(basename "$src" .c)"
    if [[ -z "${EXPECT[$name]+x}" ]]; then
        echo "FAIL $name: no expected message listed in $0"
        failed=$((failed + 1))
        failures+=("$name")
        continue
    fi
    "$CC" "${CFLAGS[@]}" "$src" -o "$BUILD/preload/$name" || {
        echo "FAIL $name: does not compile"; failed=$((failed + 1)); failures+=("$name"); continue; }
    "$CC" "${CFLAGS[@]}" "$src" -o "$BUILD/linked/$name" \
        -L"$LIBDIR" -Wl,--no-as-needed -lbinmalloc -Wl,-rpath,"$LIBDIR" || {
        echo "FAIL $name (linked): does not link"; failed=$((failed + 1)); failures+=("$name/linked"); continue; }

    for mode in preload linked; do
        bin="$BUILD/$mode/$name"
        err="$BUILD/$mode/$name.stderr"
        # (the braces keep bash's own "Aborted" notice out of the output)
        if [[ $mode == preload ]]; then
            { LD_PRELOAD="$LIB" timeout -s KILL 30 "$bin" >/dev/null 2>"$err"; } 2>/dev/null
        else
            { timeout -s KILL 30 "$bin" >/dev/null 2>"$err"; } 2>/dev/null
        fi
        rc=$?
        want="${EXPECT[$name]}"
        problems=()
        if [[ $rc -ne 134 ]]; then
            case $rc in
                137) problems+=("hung (killed after 30 s)") ;;
                139) problems+=("crashed with SIGSEGV (status 139) instead of abort()") ;;
                3) problems+=("misuse not detected (program ran on, status 3)") ;;
                *) problems+=("exit status $rc, want 134 (SIGABRT)") ;;
            esac
        fi
        bm_lines="$(grep -c '^binmalloc:' "$err")"
        msg="$(grep -E '^binmalloc: [a-z_]+\(0x[0-9a-fA-F]+\): ' "$err" | head -n 1)"
        if [[ -z $msg ]]; then
            problems+=("no 'binmalloc: <call>(0x...): <problem>' line on stderr")
        else
            if ! grep -Eq -- "$want" <<<"$msg"; then
                problems+=("message does not say '$want'")
            fi
            if [[ $bm_lines -ne 1 ]]; then
                problems+=("$bm_lines binmalloc: lines on stderr, want exactly 1")
            fi
            # the pointer in the message is one the program announced
            got_ptr="$(sed -E 's/^binmalloc: [a-z_]+\((0x[0-9a-fA-F]+)\).*/\1/' <<<"$msg")"
            ok_ptr=0
            while read -r announced; do
                [[ -n $announced ]] || continue
                if (( 16#${got_ptr#0x} == 16#${announced#0x} )); then ok_ptr=1; fi
            done < <(sed -nE 's/^misuse: [a-z_]+\((0x[0-9a-fA-F]+)\)$/\1/p' "$err")
            if [[ $ok_ptr -ne 1 ]]; then
                problems+=("message names pointer $got_ptr, not the one passed")
            fi
        fi
        if [[ ${#problems[@]} -eq 0 ]]; then
            echo "ok   $name ($mode): $msg"
            passed=$((passed + 1))
        else
            echo "FAIL $name ($mode): $(IFS='; '; echo "${problems[*]}")"
            sed 's/^/       stderr: /' "$err" | head -n 5
            echo "       repro: $( [[ $mode == preload ]] && echo "LD_PRELOAD=$LIB " )$bin"
            failed=$((failed + 1))
            failures+=("$name/$mode")
        fi
    done
done

echo
if [[ $failed -gt 0 ]]; then
    echo "misuse failures: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
