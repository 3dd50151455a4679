#!/usr/bin/env bash
# Real programs' own test suites under binmalloc. Each suite runs twice, under
# glibc's malloc and with LD_PRELOAD=target/release/libbinmalloc.so, each run
# writing a JUnit XML file; the two must agree test case by test case: a test
# that fails or errors in one run and not in the other, or that is missing
# from one run, fails the suite, whatever the direction. (Passed against
# skipped is shown but allowed: tests skip on things such as which file
# descriptors happen to be free.)
#
#   python    CPython's regression tests (python3 -m test -j2) for a set of
#             allocation-heavy modules: containers, strings, bytes, json, re,
#             pickle, decimal, and the C libraries Python wraps (sqlite3, zlib,
#             bz2, lzma, expat, hashlib), with PYTHONMALLOC=malloc so that
#             every object goes through malloc (no pymalloc arenas).
#   numpy     numpy's own pytest suite (a fast subset), from PyPI into a venv
#             under build/suites/venv (created on first use); skipped with a
#             message if PyPI cannot be reached.
#
# Before a suite runs, the same interpreter under the same environment must
# show that binmalloc serves it: binmalloc_owns(malloc(100)) == 1 through
# ctypes. Default mode takes about 2 minutes on 2 cores; STRESS=1 runs more
# modules (python: ~110, numpy: the slow files too).
#
# Environment: PYTHON (default: the real interpreter behind python3),
#              SUITES (default "python numpy": which to run),
#              STRESS=1, KEEP_TMP=1 keeps the work directory.
# Logs and XML: build/suites/logs/. Closing line: "N passed, M failed"
# (suites; a skipped suite is neither).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIB="$ROOT/target/release/libbinmalloc.so"
OUT="$ROOT/build/suites"
LOGS="$OUT/logs"
STRESS="${STRESS:-0}"
SUITES=" ${SUITES:-python numpy} "
mkdir -p "$LOGS"
ulimit -c 0
export LC_ALL=C.UTF-8 TZ=UTC PYTHONHASHSEED=0

if [[ ! -f "$LIB" ]]; then
    echo "test_suites: $LIB not found; building" >&2
    cargo build --release >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi

PY="${PYTHON:-}"
if [[ -z $PY ]] && command -v python3 >/dev/null 2>&1; then
    PY="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
fi
if [[ -z $PY || ! -x $PY ]]; then
    echo "test_suites: no python3"
    echo "0 passed, 1 failed"
    exit 1
fi

WORK="$(mktemp -d /tmp/binmalloc-suites.XXXXXX)"
cleanup() { [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

passed=0
failed=0
skipped=0
failures=()

# served PYTHON [ENV...]: binmalloc serves this interpreter under LD_PRELOAD
served() {
    local py="$1"
    shift
    local out
    out="$(cd "$WORK" && env "$@" LD_PRELOAD="$LIB" "$py" -c '
import ctypes
lib = ctypes.CDLL(None)
lib.malloc.restype = ctypes.c_void_p
lib.malloc.argtypes = [ctypes.c_size_t]
lib.binmalloc_owns.argtypes = [ctypes.c_void_p]
lib.free.argtypes = [ctypes.c_void_p]
p = lib.malloc(100)
print("served" if lib.binmalloc_owns(p) == 1 else "NOT served")
lib.free(p)' 2>&1)"
    [[ $out == served ]]
}

# compare NAME GLIBC_XML BINMALLOC_XML: prints the verdict line; returns 0 if identical
compare() {
    "$PY" - "$@" <<'EOF'
import sys
import xml.etree.ElementTree as ET

name, a_path, b_path = sys.argv[1:4]

def outcomes(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return None, str(e)
    res = {}
    for tc in root.iter("testcase"):
        cls = tc.get("classname")
        key = f"{cls}::{tc.get('name')}" if cls else tc.get("name")
        kinds = [c.tag for c in tc]
        if "error" in kinds:
            out = "error"
        elif "failure" in kinds:
            out = "failed"
        elif "skipped" in kinds:
            out = "skipped"
        else:
            out = "passed"
        # a test id seen twice (parametrised duplicates): keep the worst
        prev = res.get(key)
        res[key] = out if prev in (None, "passed", "skipped") else prev
    return res, None

a, err_a = outcomes(a_path)
b, err_b = outcomes(b_path)
if a is None or b is None:
    print(f"FAIL {name}: no results ({'glibc: ' + err_a if a is None else ''}"
          f"{' binmalloc: ' + err_b if b is None else ''})")
    sys.exit(1)

def tally(r):
    t = {}
    for v in r.values():
        t[v] = t.get(v, 0) + 1
    return ", ".join(f"{t[k]} {k}" for k in ("passed", "failed", "error", "skipped") if k in t) or "nothing"

# passed and skipped both count as "not failed" (a test may skip on something
# unrelated to the allocator, such as the file descriptors it finds free);
# failed/error against passed/skipped, or a test missing from one run, is a
# difference
def verdict(o):
    return {"passed": "ok", "skipped": "ok"}.get(o, o)

diff = sorted(k for k in set(a) | set(b) if verdict(a.get(k, "absent")) != verdict(b.get(k, "absent")))
skips = sorted(k for k in set(a) & set(b) if a[k] != b[k] and verdict(a[k]) == verdict(b[k]))
if not a:
    print(f"FAIL {name}: the glibc run produced no test cases")
    sys.exit(1)
if diff:
    print(f"FAIL {name}: {len(diff)} test cases differ; glibc: {tally(a)}; binmalloc: {tally(b)}")
    for k in diff[:25]:
        print(f"       {k}: glibc {a.get(k, 'absent')}, binmalloc {b.get(k, 'absent')}")
    sys.exit(1)
note = ""
if skips:
    note = f"; skipped in one run only: " + ", ".join(f"{k} (glibc {a[k]}, binmalloc {b[k]})" for k in skips[:5])
print(f"ok   {name}: {len(a)} test cases, the same pass/fail result for each under glibc and "
      f"binmalloc ({tally(a)}){note}")
EOF
}

# suite NAME TIMEOUT MODE CMD... (CMD gets XML=... in its environment; it must
# write JUnit XML to $XML). MODE "side-by-side" runs the glibc and binmalloc
# runs at once (for a suite that runs in one process, on a 2-core machine it
# halves the wait); "one-after-the-other" for a suite that uses every core.
suite() {
    local name="$1" limit="$2" mode="$3"
    shift 3
    local start=$SECONDS rcs=() pids=() runners=(glibc binmalloc) runner i status
    for runner in "${runners[@]}"; do
        local xml="$LOGS/$name.$runner.xml" log="$LOGS/$name.$runner.log"
        rm -f "$xml"
        local envs=("XML=$xml")
        [[ $runner == binmalloc ]] && envs+=("LD_PRELOAD=$LIB")
        # each run in its own directory: nothing one leaves (a hypothesis database) reaches the other
        mkdir -p "$WORK/$runner"
        (cd "$WORK/$runner" && env "${envs[@]}" timeout -s KILL "$limit" "$@" >"$log" 2>&1) &
        pids+=($!)
        [[ $mode == side-by-side ]] || wait $!
    done
    # `wait PID` gives a run's exit status, also for one already waited for above
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        status=$?
        rcs+=("${runners[$i]} exit $status")
    done
    local verdict
    verdict="$(compare "$name" "$LOGS/$name.glibc.xml" "$LOGS/$name.binmalloc.xml")"
    local rc=$?
    echo "$verdict ($((SECONDS - start))s; ${rcs[0]}, ${rcs[1]})"
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
    else
        echo "       logs: $LOGS/$name.{glibc,binmalloc}.log"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# ------------------------------------------------------------------ python
PY_TESTS=(test_dict test_list test_set test_unicode test_json test_re test_collections
    test_deque test_bytes test_string test_heapq test_sort test_sqlite3 test_zlib test_bz2
    test_lzma test_decimal test_pickle test_struct test_array test_itertools test_functools
    test_xml_etree_c test_hashlib test_tuple test_long test_float test_userdict
    test_ordered_dict test_weakref test_gc test_mmap test_memoryview test_bisect test_csv
    test_textwrap test_difflib test_statistics test_fractions)
if [[ $STRESS != 0 ]]; then
    PY_TESTS+=(test_builtin test_types test_class test_descr test_format test_fstring
        test_grammar test_compile test_ast test_tokenize test_codecs test_codeccallbacks
        test_unicodedata test_bigmem test_binascii test_base64 test_io test_fileio
        test_memoryio test_tempfile test_shutil test_glob test_os test_posix test_pathlib
        test_zipfile test_tarfile test_gzip test_email test_html test_htmlparser
        test_xml_dom_minidom test_minidom test_pyexpat test_sax test_plistlib test_configparser
        test_argparse test_logging test_enum test_dataclasses test_typing test_copy
        test_copyreg test_shelve test_dbm test_marshal test_random test_math test_cmath
        test_complex test_int test_bool test_range test_slice test_iter test_generators
        test_coroutines test_asyncgen test_contextlib test_exceptions test_traceback
        test_threading test_queue test_thread
        test_subprocess test_select test_selectors test_socket test_ctypes test_capi
        test_datetime test_time test_calendar test_locale test_operator test_richcmp)
fi
# keep the modules this CPython has (names differ between versions; packages
# split into several tests are left out)
mapfile -t PY_TESTS < <("$PY" - "${PY_TESTS[@]}" <<'EOF'
import os, sys, test
try:
    from test.libregrtest.findtests import SPLITTESTDIRS
except ImportError:
    SPLITTESTDIRS = set()
d = os.path.dirname(test.__file__)
for name in sys.argv[1:]:
    is_dir = os.path.isfile(os.path.join(d, name, "__init__.py"))
    is_file = os.path.isfile(os.path.join(d, name + ".py"))
    if name in SPLITTESTDIRS and not is_dir:
        # regrtest would look for a package of that name and stop
        print(f"test_suites: {name} is not a package here; left out", file=sys.stderr)
    elif is_dir or is_file:
        print(name)
    else:
        print(f"test_suites: {name} is not a test of this Python; left out", file=sys.stderr)
EOF
)
if [[ $SUITES != *" python "* ]]; then
    :
elif "$PY" -m test --help >/dev/null 2>&1; then
    if served "$PY" PYTHONMALLOC=malloc; then
        suite python 1200 one-after-the-other env PYTHONMALLOC=malloc sh -c \
            'exec "$0" -m test -j2 --junit-xml "$XML" "$@"' "$PY" "${PY_TESTS[@]}"
    else
        echo "FAIL python: binmalloc_owns(malloc(100)) != 1 under LD_PRELOAD: binmalloc does not serve $PY"
        failed=$((failed + 1))
        failures+=("python (not served)")
    fi
else
    echo "skip python: '$PY -m test' is not available (no test package)"
    skipped=$((skipped + 1))
fi

# ------------------------------------------------------------------- numpy
VENV="$OUT/venv"
NP_TESTS=(numpy._core.tests.test_numeric numpy._core.tests.test_umath numpy._core.tests.test_indexing
    numpy.lib.tests.test_function_base numpy._core.tests.test_stringdtype numpy._core.tests.test_regression
    numpy.lib.tests.test_arraysetops numpy._core.tests.test_ufunc numpy._core.tests.test_item_selection
    numpy._core.tests.test_records)
if [[ $STRESS != 0 ]]; then
    NP_TESTS+=(numpy._core.tests.test_multiarray numpy._core.tests.test_dtype numpy._core.tests.test_einsum
        numpy._core.tests.test_nditer numpy._core.tests.test_strings numpy._core.tests.test_shape_base
        numpy.lib.tests.test_io)
fi
if [[ $SUITES == *" numpy "* ]] &&
   { [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import numpy, pytest, hypothesis' 2>/dev/null; }; then
    echo "test_suites: installing numpy, pytest and hypothesis into $VENV" >&2
    rm -rf "$VENV"
    if ! { "$PY" -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check numpy pytest hypothesis; } \
            >"$LOGS/venv.log" 2>&1; then
        rm -rf "$VENV"
    fi
fi
if [[ $SUITES != *" numpy "* ]]; then
    :
elif [[ -x $VENV/bin/python ]]; then
    if served "$VENV/bin/python"; then
        suite numpy 1200 side-by-side sh -c 'exec "$0" -m pytest -q -p no:cacheprovider --hypothesis-seed=0 \
            --junit-xml="$XML" --pyargs "$@"' "$VENV/bin/python" "${NP_TESTS[@]}"
    else
        echo "FAIL numpy: binmalloc does not serve $VENV/bin/python under LD_PRELOAD"
        failed=$((failed + 1))
        failures+=("numpy (not served)")
    fi
else
    echo "skip numpy: could not install numpy/pytest/hypothesis from PyPI (log: $LOGS/venv.log)"
    skipped=$((skipped + 1))
fi

echo
if [[ $failed -gt 0 ]]; then
    printf 'failed suites:\n'
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed${skipped:+, $skipped skipped}"
[[ $failed -eq 0 ]]
