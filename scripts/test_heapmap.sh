#!/usr/bin/env bash
# scripts/heapmap end to end: run a real program under binmalloc with
# BINMALLOC_DUMP set, draw the dump, and check the picture against the dump.
#
# The program is python3 (PYTHONMALLOC=malloc, so every object comes from
# binmalloc) running a small workload: two threads fill dicts with strings of
# many sizes, delete bands of them (holes) and refill some with bigger objects;
# a few multi-MiB buffers become big blocks.  What it keeps is pinned with an
# extra reference so it is still allocated when the exit dump is written.  The
# workload also writes a mid-run dump through binmalloc_dump_json(fd).
#
# Checks: the dumps are valid JSON; heapmap renders them; the SVG parses as
# XML with an svg root; it holds one class="region" group per region of the
# dump, ordered by arena then address, with each region's free bytes and
# largest free block as computed from the blocks; every legend number
# (data-stat) equals the dump's stats and is shown formatted; the bin
# histogram has one bar per non-empty bin and the big-block list one entry per
# big block; --max-regions keeps the largest regions and says how many were
# omitted; malformed dumps fail with a one-line "heapmap:" message (exit 2,
# no traceback); a synthetic region of 400,000 blocks renders quickly into a
# small file.
#
# Usage: scripts/test_heapmap.sh [--update-example]
#   --update-example  also write the picture of the real run to docs/heap.svg
# Environment: BINMALLOC_LIB (default target/release/libbinmalloc.so),
#              HEAPMAP (default scripts/heapmap): the script under test,
#              KEEP_TMP=1 keeps the work directory for inspection.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEAPMAP="${HEAPMAP:-$ROOT/scripts/heapmap}"
UPDATE_EXAMPLE=0
for arg in "$@"; do
    case "$arg" in
        --update-example) UPDATE_EXAMPLE=1 ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test_heapmap: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

LIB="${BINMALLOC_LIB:-$ROOT/target/release/libbinmalloc.so}"
if [[ ! -f "$LIB" ]]; then
    echo "test_heapmap: $LIB not found; running cargo build --release" >&2
    (cd "$ROOT" && cargo build --release) || { echo "test_heapmap: build failed" >&2; exit 1; }
fi
LIB="$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")"

# The real interpreter, not a version-manager shim that would run it in a child.
PY="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
if [[ -z "$PY" || ! -x "$PY" ]]; then
    echo "test_heapmap: python3 not found" >&2
    exit 1
fi

WORK="$(mktemp -d /tmp/heapmap-test.XXXXXX)"
cleanup() { [[ "${KEEP_TMP:-0}" == 1 ]] && echo "work directory kept: $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
export LC_ALL=C PYTHONHASHSEED=0
ulimit -c 0

passed=0
failed=0
ok()   { echo "ok   - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; failed=$((failed + 1)); }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# Runs a validator that prints "ok - ..." / "FAIL - ..." lines; counts them.
tally() {
    local line
    while IFS= read -r line; do
        case "$line" in
            "ok - "*) ok "${line#ok - }" ;;
            "FAIL - "*) fail "${line#FAIL - }" ;;
            *) echo "       $line" ;;
        esac
    done
}
# Checks a picture against its dump with validate.py (below): DUMP SVG [MAX_REGIONS].
validate() {
    local out rc
    out="$("$PY" "$WORK/validate.py" "$@" 2>&1)"
    rc=$?
    tally <<<"$out"
    [[ $rc -eq 0 ]] || fail "validate.py crashed on $(basename "$2") (exit $rc)"
}

# ---------------------------------------------------------------- workload ---
cat >"$WORK/workload.py" <<'EOF'
import ctypes, os, random, sys, threading

pin = ctypes.pythonapi.Py_IncRef          # an extra reference: kept past interpreter shutdown
pin.argtypes = [ctypes.py_object]

def work(seed, n):
    rnd = random.Random(seed)
    table = {}
    for i in range(n):
        table[i] = "x" * rnd.choice((10, 30, 60, 120, 250, 700, 3000))
    for i in range(n // 4, n // 2):       # a band of holes
        del table[i]
    for i in range(0, n, 3):              # and scattered ones
        table.pop(i, None)
    for i in range(n // 4, n // 3):       # bigger objects into the band
        table[i] = bytes(rnd.choice((5000, 20000, 60000)))
    pin(table)

t = threading.Thread(target=work, args=(2, 8000))
t.start()
work(1, 16000)
t.join()
big = [bytearray(n << 20) for n in (2, 3, 6)]
pin(big)

dump = getattr(ctypes.CDLL(None), "binmalloc_dump_json", None)
if dump is not None:
    dump.argtypes = [ctypes.c_int]
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    dump(fd)
    os.close(fd)
print("done")
EOF

echo "# real run: $PY under $LIB"
out="$(cd "$WORK" && LD_PRELOAD="$LIB" BINMALLOC_DUMP="$WORK/dump.json" PYTHONMALLOC=malloc \
       "$PY" "$WORK/workload.py" "$WORK/middump.json" 2>"$WORK/workload.err")"
rc=$?
check "workload runs under binmalloc (exit $rc)" test "$rc" -eq 0 -a "$out" = done
[[ -s "$WORK/workload.err" ]] && sed 's/^/       stderr: /' "$WORK/workload.err" | head -5

# ------------------------------------------------------------- validator ---
cat >"$WORK/validate.py" <<'EOF'
"""validate.py DUMP SVG [max_regions]: check a heapmap picture against its dump."""
import json, sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
STAT_KEYS = ("mapped_bytes", "peak_mapped_bytes", "in_use_bytes", "peak_in_use_bytes",
             "allocations", "frees", "regions_mapped", "regions_returned",
             "big_mappings", "big_unmappings", "arenas")
BYTE_KEYS = {"mapped_bytes", "peak_mapped_bytes", "in_use_bytes", "peak_in_use_bytes",
             "free_in_regions", "largest_free"}

def size_text(n):
    if n < 1024:
        return f"{n} B"
    v = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        v /= 1024
        if v < 1024 or unit == "PiB":
            return f"{v:.1f} {unit}"

def report(ok, name, detail=""):
    print(("ok - " if ok else "FAIL - ") + name + ("" if ok or not detail else f": {detail}"))

dump_path, svg_path = sys.argv[1], sys.argv[2]
max_regions = int(sys.argv[3]) if len(sys.argv) > 3 else None
tag = svg_path.rsplit("/", 1)[-1]
d = json.load(open(dump_path))
try:
    root = ET.parse(svg_path).getroot()
except ET.ParseError as e:
    report(False, f"{tag}: parses as XML", str(e))
    sys.exit(0)
report(True, f"{tag}: parses as XML")
report(root.tag == NS + "svg" and root.get("width", "").isdigit() and root.get("height", "").isdigit(),
       f"{tag}: root is <svg> in the SVG namespace with a pixel size", root.tag)

def cls(e):
    return (e.get("class") or "").split()

# Regions: per block, what the picture should say.
expect = []
for r in d["regions"]:
    free = [s for _, s, u in r["blocks"] if u == 0]
    expect.append({"arena": r["arena"], "base": int(r["base"], 16), "size": r["size"],
                   "free": sum(free), "largest": max(free, default=0)})
ordered = sorted(expect, key=lambda r: (r["arena"], r["base"]))
if max_regions is not None and len(ordered) > max_regions:
    keep = sorted(ordered, key=lambda r: (-r["size"], r["arena"], r["base"]))[:max_regions]
    shown = [r for r in ordered if r in keep]
else:
    shown = ordered
groups = [g for g in root.iter(NS + "g") if "region" in cls(g)]
report(len(groups) == len(shown), f"{tag}: {len(shown)} region bars (class=region)",
       f"found {len(groups)}")
drawn = [{"arena": int(g.get("data-arena")), "base": int(g.get("data-base"), 16),
          "size": int(g.get("data-size")), "free": int(g.get("data-free")),
          "largest": int(g.get("data-largest-free"))} for g in groups]
report(drawn == shown, f"{tag}: region bars ordered by arena then address, with the dump's "
       "sizes, free bytes and largest free blocks")
report(all(g.find(f"{NS}g[@class='bar']") is not None for g in groups),
       f"{tag}: every region group holds a bar")

omitted = [e for e in root.iter(NS + "tspan") if "omitted" in cls(e)]
if len(shown) < len(ordered):
    n = len(ordered) - len(shown)
    report(len(omitted) == 1 and omitted[0].get("data-value") == str(n)
           and (omitted[0].text or "").startswith(f"{n} smaller region"),
           f"{tag}: says {n} regions were omitted")
else:
    report(not omitted, f"{tag}: no omitted-regions note when all regions are drawn")

# Legend numbers.
stats = d["stats"]
derived = {"regions": len(d["regions"]), "big": len(d["big"]),
           "free_in_regions": sum(e["free"] for e in expect),
           "largest_free": max((e["largest"] for e in expect), default=0)}
legend = {}
for e in root.iter(NS + "tspan"):
    if e.get("data-stat"):
        legend.setdefault(e.get("data-stat"), []).append(e)
bad = []
for key, want in [(k, stats[k]) for k in STAT_KEYS] + list(derived.items()):
    found = legend.get(key, [])
    if len(found) != 1:
        bad.append(f"{key}: {len(found)} legend entries")
        continue
    e = found[0]
    shown_text = size_text(want) if key in BYTE_KEYS else f"{want:,}"
    if e.get("data-value") != str(want) or e.text != shown_text:
        bad.append(f"{key}: legend {e.get('data-value')!r}/{e.text!r}, dump {want} ({shown_text!r})")
report(not bad, f"{tag}: legend numbers match the dump ({len(STAT_KEYS) + len(derived)} values)",
       "; ".join(bad))
frag = legend.get("fragmentation", [])
free_total = derived["free_in_regions"]
want_frag = 0.0 if free_total == 0 else 1 - sum(e["largest"] for e in expect) / free_total
report(len(frag) == 1 and abs(float(frag[0].get("data-value")) - want_frag) < 1e-3,
       f"{tag}: overall fragmentation = 1 - sum(largest free) / sum(free) = {want_frag:.4f}")

# Bins and big blocks.
bars = [e for e in root.iter(NS + "rect") if "bin" in cls(e)]
want_bins = sorted({b["bin"] for b in d["bins"]})
report(sorted(int(e.get("data-bin")) for e in bars) == want_bins,
       f"{tag}: one histogram bar per non-empty bin ({len(want_bins)})", f"found {len(bars)}")
bigs = [g for g in root.iter(NS + "g") if "big" in cls(g)]
want_big = sorted(d["big"], key=lambda b: (-b["size"], int(b["ptr"], 16)))[:24]
report(sorted((int(g.get("data-ptr"), 16), int(g.get("data-size"))) for g in bigs)
       == sorted((int(b["ptr"], 16), b["size"]) for b in want_big),
       f"{tag}: big blocks drawn ({len(want_big)} of {len(d['big'])})", f"found {len(bigs)}")
EOF

# ------------------------------------------------------------ real dumps ---
if [[ -s "$WORK/dump.json" ]] && "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1 and d["regions"] and d["big"]' "$WORK/dump.json" 2>/dev/null; then
    ok "BINMALLOC_DUMP wrote a version 1 dump with regions and big blocks ($(wc -c <"$WORK/dump.json") bytes)"
    have_dump=1
else
    fail "BINMALLOC_DUMP wrote a version 1 dump with regions and big blocks"
    have_dump=0
fi

if [[ $have_dump == 1 ]]; then
    start=$(now)
    "$HEAPMAP" "$WORK/dump.json" -o "$WORK/heap.svg" --max-regions 100000 2>"$WORK/heapmap.err"
    rc=$?
    secs=$(since "$start")
    check "heapmap renders the exit dump (exit $rc, ${secs}s)" test "$rc" -eq 0 -a -s "$WORK/heap.svg"
    # Real dumps tile every region with blocks, so heapmap has nothing to warn about.
    check "no warnings on the real dump" test ! -s "$WORK/heapmap.err"
    [[ -s "$WORK/heapmap.err" ]] && sed 's/^/       stderr: /' "$WORK/heapmap.err" | head -5
    [[ -s "$WORK/heap.svg" ]] && validate "$WORK/dump.json" "$WORK/heap.svg"

    nreg=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["regions"]))' "$WORK/dump.json")
    few=$(( nreg > 3 ? 3 : 1 ))
    "$HEAPMAP" "$WORK/dump.json" -o "$WORK/heap-few.svg" --max-regions "$few" --width 800
    rc=$?
    check "heapmap --max-regions $few --width 800 (exit $rc)" test "$rc" -eq 0
    [[ -s "$WORK/heap-few.svg" ]] && validate "$WORK/dump.json" "$WORK/heap-few.svg" "$few"
fi

if [[ -s "$WORK/middump.json" ]]; then
    "$HEAPMAP" "$WORK/middump.json" -o "$WORK/middump.svg" --max-regions 100000
    rc=$?
    check "heapmap renders the binmalloc_dump_json(fd) mid-run dump (exit $rc)" test "$rc" -eq 0
    [[ -s "$WORK/middump.svg" ]] && validate "$WORK/middump.json" "$WORK/middump.svg"
else
    fail "binmalloc_dump_json(fd) wrote a mid-run dump"
fi

# -------------------------------------------------------- malformed dumps ---
expect_error() {   # name, file, words the message must contain
    local name="$1" file="$2" want="$3" err rc msg
    err="$("$HEAPMAP" "$file" -o "$WORK/bad.svg" 2>&1 >/dev/null)"
    rc=$?
    msg="${err#"heapmap: $file: "}"
    if [[ $rc -eq 2 && "$err" == heapmap:* && "$err" != *Traceback* && "$msg" == *"$want"* \
          && $(printf '%s\n' "$err" | wc -l) -eq 1 && ! -e "$WORK/bad.svg" ]]; then
        ok "malformed: $name -> exit 2, \"${msg:0:100}\""
    else
        fail "malformed: $name (exit $rc): ${err:0:300}"
    fi
}
printf 'this is not json\n' >"$WORK/notjson.json"
expect_error "not JSON" "$WORK/notjson.json" "not valid JSON"
if [[ $have_dump == 1 ]]; then
    head -c $(( $(wc -c <"$WORK/dump.json") / 2 )) "$WORK/dump.json" >"$WORK/truncated.json"
    expect_error "truncated dump" "$WORK/truncated.json" "truncated"
fi
: >"$WORK/empty.json"
expect_error "empty file" "$WORK/empty.json" "empty"
expect_error "missing file" "$WORK/does-not-exist.json" "cannot read"
S='"stats":{"mapped_bytes":1048576,"peak_mapped_bytes":1048576,"in_use_bytes":48,"peak_in_use_bytes":48,"allocations":1,"frees":0,"regions_mapped":1,"regions_returned":0,"big_mappings":0,"big_unmappings":0,"arenas":1}'
R='"base":"0x7f0000000000","size":1048576,"first_block_offset":56'
printf '{"version":2,%s,"regions":[],"bins":[],"big":[]}' "$S" >"$WORK/v2.json"
expect_error "unknown version" "$WORK/v2.json" "version"
printf '{"version":1,%s,"bins":[],"big":[]}' "$S" >"$WORK/noregions.json"
expect_error "no regions key" "$WORK/noregions.json" '"regions"'
printf '{"version":1,%s,"regions":[{"arena":0,%s,"blocks":[[56,64,1],[100,64,0]]}],"bins":[],"big":[]}' "$S" "$R" >"$WORK/overlap.json"
expect_error "overlapping blocks" "$WORK/overlap.json" "regions[0].blocks[1]"
printf '{"version":1,%s,"regions":[{"arena":0,%s,"blocks":[[56,"64",1]]}],"bins":[],"big":[]}' "$S" "$R" >"$WORK/badblock.json"
expect_error "block size not a number" "$WORK/badblock.json" "regions[0].blocks[0]"
printf '{"version":1,%s,"regions":[{"arena":0,%s,"blocks":[[56,2097152,1]]}],"bins":[],"big":[]}' "$S" "$R" >"$WORK/pastend.json"
expect_error "block past the region end" "$WORK/pastend.json" "past the end"
printf '{"version":1,%s,"regions":[{"arena":0,"base":"7f00","size":1048576,"blocks":[]}],"bins":[],"big":[]}' "$S" >"$WORK/badbase.json"
expect_error "base not a hex address" "$WORK/badbase.json" "regions[0].base"
printf '{"version":1,%s,"regions":[],"bins":[],"big":[{"ptr":"0x1000"}]}' "$S" >"$WORK/bigsize.json"
expect_error "big block without size" "$WORK/bigsize.json" "big[0].size"

# -------------------------------------------------------------- edge cases ---
# Synthetic dumps: a region used to >99% (a "<"/">" in the labels must be escaped), one entirely
# free, one whose blocks stop short of the end (a damaged heap stops the walk), regions listed out
# of address order in a sparse arena number, 30 big blocks (24 are drawn), and an empty heap.
"$PY" - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
st = {k: 0 for k in ("mapped_bytes", "peak_mapped_bytes", "in_use_bytes", "peak_in_use_bytes",
                     "allocations", "frees", "regions_mapped", "regions_returned",
                     "big_mappings", "big_unmappings", "arenas")}
json.dump({"version": 1, "config": {}, "stats": st, "regions": [], "bins": [], "big": []},
          open(f"{work}/empty-heap.json", "w"))
M = 1 << 20
regions = [
    {"arena": 2, "base": "0x7f0000300000", "size": M, "first_block_offset": 56,
     "blocks": [[56, M - 64 - 32, 1], [M - 8 - 32, 32, 0]]},
    {"arena": 2, "base": "0x7f0000100000", "size": M, "first_block_offset": 56,
     "blocks": [[56, M - 64, 0]]},
    {"arena": 0, "base": "0x7f0000200000", "size": 2 * M, "first_block_offset": 56,
     "blocks": [[56, 4096, 1], [4152, 8192, 0], [12344, 100000, 1]]},
]
big = [{"ptr": hex(0x7e0000000000 + i * 0x1000000), "size": (2 + i) * M} for i in range(30)]
st.update(mapped_bytes=4 * M + sum(b["size"] for b in big), peak_mapped_bytes=6 << 30,
          in_use_bytes=M + 104096, peak_in_use_bytes=3 << 40, allocations=123456789,
          frees=123456000, regions_mapped=3, big_mappings=31, big_unmappings=1, arenas=3)
st["in_use_bytes"] += sum(b["size"] for b in big)
bins = [{"arena": 2, "bin": 0, "lower": 32, "upper": 48, "count": 1, "bytes": 32},
        {"arena": 0, "bin": 75, "lower": 8192, "upper": 10240, "count": 1, "bytes": 8192},
        {"arena": 2, "bin": 99, "lower": 786432, "upper": 917504, "count": 1, "bytes": M - 64}]
json.dump({"version": 1, "config": {"fit": "first", "mmap_threshold": M, "arenas": 3,
                                    "thread_cache": 0},
           "stats": st, "regions": regions, "bins": bins, "big": big},
          open(f"{work}/edges.json", "w"))
EOF
for name in edges empty-heap; do
    "$HEAPMAP" "$WORK/$name.json" -o "$WORK/$name.svg" 2>"$WORK/$name.err"
    rc=$?
    check "heapmap renders the synthetic $name dump (exit $rc)" test "$rc" -eq 0
    [[ -s "$WORK/$name.svg" ]] && validate "$WORK/$name.json" "$WORK/$name.svg"
done
check "a region whose blocks stop short is reported on stderr" \
    grep -q "^heapmap: warning: regions\[2\] (arena 0, 0x7f0000200000): the blocks cover" "$WORK/edges.err"
check "only that region is reported" test "$(wc -l <"$WORK/edges.err")" -eq 1

# ------------------------------------------------------------ large region ---
# 64 MiB region of 400,000 blocks (alternating runs, a few wide holes): must stay fast and small.
"$PY" - "$WORK/large.json" <<'EOF'
import json, random, sys
rnd = random.Random(5)
size = 64 << 20
blocks, off, n = [], 56, 0
while n < 400000:
    s = rnd.choice((32, 48, 64, 96, 128, 160))
    used = 0 if rnd.random() < 0.25 else 1
    if n % 50000 == 49999:
        s, used = 1 << 20, 0
    if blocks and used == 0 and blocks[-1][2] == 0:
        used = 1                      # free blocks never touch: the allocator coalesces them
    blocks.append([off, s, used]); off += s; n += 1
blocks.append([off, size - 8 - off, 0 if blocks[-1][2] else 1])
st = {k: 0 for k in ("mapped_bytes", "peak_mapped_bytes", "in_use_bytes", "peak_in_use_bytes",
                     "allocations", "frees", "regions_mapped", "regions_returned",
                     "big_mappings", "big_unmappings", "arenas")}
st.update(mapped_bytes=size, peak_mapped_bytes=size, regions_mapped=1, arenas=1,
          in_use_bytes=sum(b[1] for b in blocks if b[2]))
st["peak_in_use_bytes"] = st["in_use_bytes"]
json.dump({"version": 1, "config": {"fit": "best"}, "stats": st,
           "regions": [{"arena": 0, "base": "0x7f0000000000", "size": size,
                        "first_block_offset": 56, "blocks": blocks}],
           "bins": [], "big": []}, open(sys.argv[1], "w"))
EOF
start=$(now)
"$HEAPMAP" "$WORK/large.json" -o "$WORK/large.svg"
rc=$?
secs=$(since "$start")
bytes=$(wc -c <"$WORK/large.svg" 2>/dev/null || echo 0)
check "400,000-block region: exit $rc in ${secs}s (< 15s), $bytes bytes (< 1 MB)" \
    awk -v rc="$rc" -v s="$secs" -v b="$bytes" 'BEGIN { exit !(rc == 0 && s < 15 && b > 0 && b < 1000000) }'
[[ -s "$WORK/large.svg" ]] && validate "$WORK/large.json" "$WORK/large.svg"

# ----------------------------------------------------------------- example ---
if [[ $UPDATE_EXAMPLE == 1 ]]; then
    if [[ $failed -eq 0 && -s "$WORK/heap.svg" ]]; then
        mkdir -p "$ROOT/docs"
        "$HEAPMAP" "$WORK/dump.json" -o "$ROOT/docs/heap.svg" && echo "wrote docs/heap.svg"
    else
        echo "docs/heap.svg not updated: checks failed"
    fi
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
