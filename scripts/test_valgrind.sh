#!/usr/bin/env bash
# binmalloc under valgrind. Builds c_tests/stress/vg_workload.c linked with
# -lbinmalloc and runs it:
#
#   memcheck, 1 thread and 3 threads, and 150 inputs of the fuzz harness
#       c_tests/stress/fuzz_ops.c (aligned calls, pvalloc, first-class heaps,
#       malloc_trim, sizes to 64 MiB)   must pass: the program's own checks
#       pass (binmalloc served malloc and libc's strdup, contents intact, heap
#       checker clean), valgrind's allocator served nothing ("total heap
#       usage: 0 allocs"), and memcheck reports no error (--error-exitcode=99):
#       no uninitialised value steering binmalloc, no access outside its
#       mappings, no bad system-call argument.
#   helgrind, drd, 2 threads            must pass: the program's own checks
#       pass and the tool reports no error in binmalloc's code or the
#       program's. They see binmalloc's futex lock through the client requests
#       in src/valgrind.rs (happens-before on unlock, happens-after on lock),
#       so every access a lock protects is checked; c_tests/stress/threads.supp
#       excuses accesses made through Rust atomics, which these tools cannot
#       tell from plain ones (that file says which). Each error is attributed
#       by the objects on its stack: binmalloc (a frame in libbinmalloc.so),
#       the program (a frame in vg_workload), or neither, i.e. inside libc or
#       the dynamic loader, whose own synchronisation valgrind's default
#       suppressions cover; those are listed but do not fail the run, since
#       they say nothing about binmalloc. Logs: the program's output and
#       valgrind's XML (valgrind.TOOL.xml), summarised in the log.
#
# Why --soname-synonyms=somalloc=nouserintercepts: since 3.12, valgrind
# replaces the allocation functions of every object that defines them, not
# only libc's (libbinmalloc.so's SONAME does not change that), so by default
# it redirects some of binmalloc's entry points (malloc, free, calloc) to its
# own allocator and not others: the two allocators get each other's blocks
# ("Invalid free"). nouserintercepts keeps valgrind's replacement in libc
# only, so that binmalloc serves everything, as in a normal run.
#
# Environment: BINMALLOC_LIBDIR   directory of the libbinmalloc.so to test
#                                 (default target/release)
#              STRESS=1           more operations and threads
# Logs: build/stress/logs/valgrind.*.log (and .xml). Closing line: "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/report.sh
source "$ROOT/scripts/report.sh"
LIBDIR="${BINMALLOC_LIBDIR:-$ROOT/target/release}"
LIBDIR="$(cd "$LIBDIR" && pwd)"
OUT="$ROOT/build/stress"
LOGS="$OUT/logs"
CC="${CC:-gcc}"
STRESS="${STRESS:-0}"
mkdir -p "$OUT/linked" "$LOGS"
ulimit -c 0

if [[ ! -f "$LIBDIR/libbinmalloc.so" ]]; then
    if [[ -z "${BINMALLOC_LIBDIR:-}" ]]; then
        echo "test_valgrind: building the library" >&2
        cargo build --release >&2 || { echo "0 passed, 1 failed"; exit 1; }
    else
        echo "test_valgrind: $LIBDIR/libbinmalloc.so not found"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "test_valgrind: installing valgrind" >&2
    if ! { apt-get install -y -qq valgrind >/dev/null 2>&1 ||
           { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq valgrind >/dev/null 2>&1; }; }; then
        echo "test_valgrind: valgrind is missing and could not be installed"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
echo "$(valgrind --version), library $LIBDIR/libbinmalloc.so"

BIN="$OUT/linked/vg_workload"
if ! "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread -Iinclude \
        c_tests/stress/vg_workload.c -o "$BIN" -L"$LIBDIR" -Wl,--no-as-needed -lbinmalloc \
        -Wl,-rpath,"$LIBDIR" -ldl; then
    echo "test_valgrind: build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

VG=(valgrind --soname-synonyms=somalloc=nouserintercepts --error-exitcode=99)
ops=20000
[[ $STRESS != 0 ]] && ops=200000

passed=0
failed=0
failures=()

# Summarise a valgrind log: "count  what @ first frame in binmalloc's source".
summarise() {
    awk '
    function out() { if (frame == "") frame = "(no binmalloc frame)"; n[kind " @ " frame]++; kind = ""; frame = "" }
    /^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Possible data race|Conflicting (load|store)|Process terminating|Access not within|Lock at|Thread #[0-9]+ unlocked|Thread #[0-9]+.s call to)/ {
        if (kind != "") out()
        kind = $0; sub(/^==[0-9]+== /, "", kind); sub(/ at 0x[0-9a-fA-F]+.*/, "", kind)
        sub(/ by thread.*/, "", kind); sub(/ size [0-9]+/, "", kind); sub(/ of size [0-9]+/, "", kind)
        frame = ""; next
    }
    kind != "" && frame == "" && /\([a-z_]+\.rs:[0-9]+\)/ && !/library\/|\/rustc\// {
        f = $0; sub(/.*: /, "", f); frame = f
    }
    /^==[0-9]+== $/ { if (kind != "" && frame != "") out() }
    END { if (kind != "") out(); for (k in n) printf "%6d  %s\n", n[k], k }' "$1" | sort -rn
}

# memcheck LABEL BINARY ARGS...
memcheck() {
    local label="memcheck $1" BIN="$2"
    shift 2
    local log="$LOGS/valgrind.memcheck.$(basename "$BIN")$(printf '.%s' "$@" | tr -d ' -').log"
    local start=$SECONDS rc
    { timeout -s KILL 900 "${VG[@]}" "$BIN" "$@" >"$log" 2>&1; } 2>/dev/null
    rc=$?
    local secs=$((SECONDS - start))
    local errors heap
    errors="$(sed -nE 's/^==[0-9]+== ERROR SUMMARY: ([0-9]+) errors.*/\1/p' "$log" | tail -n 1)"
    heap="$(sed -nE 's/^==[0-9]+== +total heap usage: ([0-9,]+) allocs.*/\1/p' "$log" | tail -n 1)"
    local why=()
    [[ $rc -ne 0 ]] && why+=("exit status $rc")
    [[ ${errors:-x} != 0 ]] && why+=("${errors:-no} memcheck errors")
    [[ ${heap:-x} != 0 ]] && why+=("valgrind's allocator served ${heap:-?} allocations")
    # fuzz_ops aborts by itself if binmalloc does not serve malloc
    [[ $BIN != */vg_workload ]] || grep -q '^binmalloc serves malloc: yes, libc.s strdup: yes$' "$log" ||
        why+=("no line saying binmalloc served malloc and strdup")
    grep -qE '^[0-9]+ passed, 0 failed$' "$log" || why+=("the program's own checks failed")
    if [[ ${#why[@]} -eq 0 ]]; then
        echo "ok   $label ${secs}s: 0 errors, binmalloc served every call, $(grep -E '^(vg_workload|fuzz_ops):' "$log")"
        passed=$((passed + 1))
    else
        echo "FAIL $label ${secs}s: $(printf '%s; ' "${why[@]}" | sed 's/; $//')"
        summarise "$log" | head -n 15 | sed 's/^/       /'
        echo "       first report:"
        awk '/^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Process terminating|Mismatched)/ { on = 1 }
             on { print; if (/^==[0-9]+== $/ && ++blank == 1 && seen) exit; seen = 1 }' "$log" |
            head -n 40 | sed 's/^/       /'
        echo "       repro: ${VG[*]} $BIN $*   (log: $log)"
        failed=$((failed + 1))
        failures+=("$label")
    fi
}

# Attributes the errors in a helgrind/drd XML log; prints "binmalloc N program N other N", then
# a summary: "count  kind: what @ first binmalloc or program frame", and the first stacks in full.
classify() {
    python3 - "$1" "$2" <<'EOF'
import sys
import xml.etree.ElementTree as ET

xml_path, program = sys.argv[1], sys.argv[2]
try:
    root = ET.parse(xml_path).getroot()
except (ET.ParseError, OSError) as e:
    print("binmalloc ? program ? other ?")
    print(f"unreadable XML log: {e}")
    sys.exit(0)
counts = {p.findtext("unique"): int(p.findtext("count")) for p in root.iter("pair") if p.find("unique") is not None}
totals = {"binmalloc": 0, "program": 0, "other": 0}
summary, examples = {}, []

def where(frame):
    fn = frame.findtext("fn") or "?"
    f = frame.findtext("file")
    return f"{fn} ({f}:{frame.findtext('line')})" if f else f"{fn} ({frame.findtext('obj')})"

for e in root.iter("error"):
    frames = [f for s in e.findall("stack") for f in s.findall("frame")]
    primary = e.find("stack")
    objs = [f.findtext("obj") or "" for f in frames]
    if any(o.endswith("/libbinmalloc.so") for o in objs):
        owner, mark = "binmalloc", "/libbinmalloc.so"
    elif any(o.endswith("/" + program) for o in objs):
        owner, mark = "program", "/" + program
    else:
        owner, mark = "other", None
    n = counts.get(e.findtext("unique"), 1)
    totals[owner] += n
    what = e.findtext("what") or e.findtext("xwhat/text") or ""
    what = what.split(" at 0x")[0].split(" by thread")[0]
    first = next((where(f) for f in frames if mark and (f.findtext("obj") or "").endswith(mark)
                  and "/rustc/" not in (f.findtext("dir") or "")), "(no binmalloc or program frame)")
    key = f"{owner}: {e.findtext('kind')}: {what} @ {first}"
    summary[key] = summary.get(key, 0) + n
    if len(examples) < 3 and primary is not None:
        examples.append([e.findtext("what") or ""] + ["    " + where(f) for f in primary.findall("frame")[:12]])

print(f"binmalloc {totals['binmalloc']} program {totals['program']} other {totals['other']}")
for key, n in sorted(summary.items(), key=lambda kv: -kv[1])[:15]:
    print(f"{n:6d}  {key}")
for lines in examples:
    print("first report:" if lines is examples[0] else "next report:")
    print("\n".join("    " + l for l in lines))
EOF
}

# threadcheck TOOL ARGS...: the program passes its own checks, and TOOL finds no error in
# binmalloc or the program (see the header)
threadcheck() {
    local tool="$1"
    shift
    local label="$tool 2 threads"
    local log="$LOGS/valgrind.$tool.log" xml="$LOGS/valgrind.$tool.xml"
    local start=$SECONDS rc
    rm -f "$xml"
    { timeout -s KILL 900 valgrind --tool="$tool" --soname-synonyms=somalloc=nouserintercepts \
        --suppressions="$ROOT/c_tests/stress/threads.supp" --xml=yes --xml-file="$xml" "$BIN" "$@" \
        >"$log" 2>&1; } 2>/dev/null
    rc=$?
    local secs=$((SECONDS - start))
    local report counts ours theirs other
    report="$(classify "$xml" "$(basename "$BIN")")"
    printf '%s\n' "$report" >>"$log"
    counts="$(head -n 1 <<<"$report")"
    read -r _ ours _ theirs _ other <<<"$counts"
    local why=()
    [[ $rc -ne 0 ]] && why+=("exit status $rc")
    grep -qE '^[0-9]+ passed, 0 failed$' "$log" || why+=("the program's own checks failed")
    [[ $ours != 0 ]] && why+=("$ours errors in binmalloc")
    [[ $theirs != 0 ]] && why+=("$theirs errors in the program")
    if [[ ${#why[@]} -eq 0 ]]; then
        echo "ok   $label ${secs}s: the program passed; $tool: 0 errors in binmalloc or the program ($other elsewhere)"
        passed=$((passed + 1))
    else
        echo "FAIL $label ${secs}s: $(printf '%s; ' "${why[@]}" | sed 's/; $//')"
        failed=$((failed + 1))
        failures+=("$label")
    fi
    if [[ "$counts" != "binmalloc 0 program 0 other 0" ]]; then
        echo "       reports (owner: kind: what @ first binmalloc or program frame; log: $log):"
        tail -n +2 <<<"$report" | head -n 60 | sed 's/^/       /'
    fi
}

memcheck "1 thread" "$BIN" --ops "$ops"
memcheck "3 threads" "$BIN" --threads 3 --ops "$ops"
if "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -pthread -Iinclude c_tests/stress/fuzz_ops.c \
        -o "$OUT/linked/fuzz_ops" -L"$LIBDIR" -Wl,--no-as-needed -lbinmalloc -Wl,-rpath,"$LIBDIR" -ldl; then
    memcheck "fuzz_ops inputs" "$OUT/linked/fuzz_ops" $([[ $STRESS != 0 ]] && echo 2000 || echo 150) 3
else
    echo "FAIL memcheck fuzz_ops: build failed"
    failed=$((failed + 1))
    failures+=("memcheck fuzz_ops (build)")
fi
tops=5000
[[ $STRESS != 0 ]] && tops=20000
threadcheck helgrind --threads 2 --ops "$tops"
threadcheck drd --threads 2 --ops "$tops"

echo
finish_runs
