#!/usr/bin/env bash
# Real programs under binmalloc: each case runs once as is and once with
# LD_PRELOAD=target/release/libbinmalloc.so (and BINMALLOC_STATS=1); stdout
# and the exit code must be identical, and the preloaded run's stderr must
# carry binmalloc's exit summary with a nonzero allocation count - proof that
# binmalloc, not glibc, served the program.
#
# Cases: python3 (PYTHONMALLOC=malloc), perl, git, gcc, bash, sort, tar+gzip.
# A case whose program is missing is skipped.
#
# Environment: BINMALLOC_LIB (default target/release/libbinmalloc.so),
#              KEEP_TMP=1 keeps the work directory for inspection.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="${BINMALLOC_LIB:-$ROOT/target/release/libbinmalloc.so}"
if [[ ! -f "$LIB" ]]; then
    echo "test_real_programs: $LIB not found (run cargo build --release)" >&2
    exit 1
fi
LIB="$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")"

WORK="$(mktemp -d /tmp/binmalloc-real.XXXXXX)"
cleanup() { [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

export LC_ALL=C
export TZ=UTC
export PYTHONHASHSEED=0
ulimit -c 0

passed=0
failed=0
skipped=0

# The real interpreter, not a version-manager shim, so the summary comes
# from the one process under test.
PY=""
if command -v python3 >/dev/null 2>&1; then
    PY="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
fi

# ---------------------------------------------------------------- inputs ---
setup_inputs() {
    mkdir -p "$WORK/in"
    # 200k lines: word, number, word (generated without the allocator under test)
    awk 'BEGIN { srand(12345);
                 for (i = 0; i < 200000; i++) {
                     printf "%08x %d %s\n", int(rand() * 4294967295), int(rand() * 1000000) - 500000,
                            substr("abcdefghijklmnopqrstuvwxyz", int(rand() * 26) + 1, int(rand() * 10) + 1)
                 } }' >"$WORK/in/lines.txt"

    cat >"$WORK/in/alloc_heavy.py" <<'EOF'
import hashlib, json, sys

def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]

n = 300_000
# dict of strings -> lists
d = {f"key{i:07d}": [i, str(i * 7), i % 97] for i in range(n)}
print("dict", len(d), digest(sorted(d.items())[:1000]))
# list of strings, sorted several ways
words = [f"{(i * 2654435761) % 1000003:07d}-{'x' * (i % 13)}" for i in range(n)]
words.sort()
print("sorted", words[0], words[-1], digest(words[::997]))
words.sort(key=lambda w: (len(w), w[::-1]))
print("resorted", words[0], words[-1], digest(words[::991]))
# string building
s = "".join(chr(65 + (i % 26)) for i in range(n))
parts = [s[i:i + 100] for i in range(0, len(s), 100)]
print("join", len(s), len(parts), digest(parts[-3:]))
# json round trips of nested data
data = {"items": [{"id": i, "name": f"n{i}", "tags": [str(t) for t in range(i % 7)],
                   "nested": {"a": i * 1.5, "b": [i] * (i % 5)}} for i in range(50_000)]}
text = json.dumps(data, sort_keys=True)
back = json.loads(text)
print("json", len(text), back == data, hashlib.sha256(text.encode()).hexdigest()[:16])
# many small objects created and dropped
total = 0
for round_ in range(10):
    tmp = [bytearray(i % 300) for i in range(50_000)]
    total += sum(len(b) for b in tmp)
    del tmp
print("churn", total)
# big buffers
big = [bytes(1 << 20) for _ in range(64)]
print("big", sum(len(b) for b in big))
sets = {frozenset(range(i % 50)) for i in range(30_000)}
print("sets", len(sets), sum(len(x) for x in sets))
EOF

    cat >"$WORK/in/hash.pl" <<'EOF'
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
my %h;
for my $i (0 .. 150_000) {
    my $k = sprintf("k%07d-%s", ($i * 7919) % 1_000_003, "z" x ($i % 11));
    $h{$k} = [$i, "v" . ($i * 3), { n => $i % 17 }];
}
my @keys = sort keys %h;
print scalar(@keys), " keys, first $keys[0], last $keys[-1]\n";
my @byval = sort { $h{$a}[0] <=> $h{$b}[0] } keys %h;
print "by value: $byval[0] $byval[-1]\n";
my $ctx = Digest::MD5->new;
$ctx->add($_, $h{$_}[1], $h{$_}[2]{n}) for @keys;
print "md5 ", $ctx->hexdigest, "\n";
my $s = join(",", map { $_ * 2 } 1 .. 300_000);
print "joined length ", length($s), " md5 ", md5_hex($s), "\n";
my @split = split /,/, $s;
print "split ", scalar(@split), "\n";
delete $h{$_} for @keys[0 .. 74_999];
print "left ", scalar(keys %h), "\n";
EOF

    cat >"$WORK/in/loop.sh" <<'EOF'
declare -a arr
declare -A assoc
s=""
for ((i = 0; i < 30000; i++)); do
    arr+=("item$i")
    assoc["k$((i * 7 % 1009))"]+="$i,"
    s+="${i: -1}"
done
echo "arr ${#arr[@]} ${arr[0]} ${arr[-1]}"
echo "assoc ${#assoc[@]} ${#assoc[k0]}"
echo "s ${#s} ${s:0:20}"
joined="$(IFS=:; echo "${arr[*]}")"
echo "joined ${#joined}"
unset 'arr[5]' 'arr[100]'
echo "after unset ${#arr[@]}"
out=""
for w in $(seq 1 5000); do out="$out $w"; done
echo "words $(wc -w <<<"$out")"
for k in "${!assoc[@]}"; do echo "$k ${assoc[$k]}"; done | sort | md5sum
EOF

    # a generated C program: many functions, tables and a computation
    {
        echo '#include <stdio.h>'
        echo '#include <stdlib.h>'
        echo '#include <string.h>'
        for i in $(seq 0 149); do
            echo "static const int table$i[] = {$(seq -s, $i $((i + 40)))};"
            echo "static long f$i(long x) { long s = 0; for (int j = 0; j < 41; j++) s += table$i[j] * (x ^ j); return s % 1000003 + $i; }"
        done
        echo 'int main(void) {'
        echo '    long acc = 0;'
        echo '    char *buf = malloc(1 << 20);'
        echo '    memset(buf, 0, 1 << 20);'
        for i in $(seq 0 149); do
            echo "    acc = (acc * 31 + f$i(acc + $i)) % 1000000007; buf[$i * 97] = (char)acc;"
        done
        echo '    long sum = 0; for (int i = 0; i < (1 << 20); i++) sum += buf[i];'
        echo '    printf("acc=%ld sum=%ld\n", acc, sum);'
        echo '    free(buf);'
        echo '    return 0;'
        echo '}'
    } >"$WORK/in/gen.c"

    mkdir -p "$WORK/in/tree"
    for i in $(seq 1 200); do
        seq 1 $((i * 50)) | sed "s/^/file $i line /" >"$WORK/in/tree/f$i.txt"
    done
}

# ----------------------------------------------------------------- cases ---
# Each case function runs in a fresh directory ($1) and writes to stdout.

case_python() {
    PYTHONMALLOC=malloc "$PY" "$WORK/in/alloc_heavy.py"
}

case_perl() {
    perl "$WORK/in/hash.pl"
}

case_git() {
    local dir="$1"
    export HOME="$dir" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
    export GIT_AUTHOR_NAME="Test Author" GIT_AUTHOR_EMAIL="author@example.com"
    export GIT_COMMITTER_NAME="Test Committer" GIT_COMMITTER_EMAIL="committer@example.com"
    export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
    git init -q -b main "$dir/repo" || return 1
    cd "$dir/repo" || return 1
    cp "$WORK"/in/tree/*.txt . || return 1
    git add . || return 1
    git commit -q -m "first: 200 files" || return 1
    for i in $(seq 1 50); do echo "change $i" >>"f$i.txt"; done
    git rm -q f200.txt f199.txt || return 1
    git mv f1.txt renamed.txt || return 1
    export GIT_AUTHOR_DATE="2024-01-02T00:00:00Z" GIT_COMMITTER_DATE="2024-01-02T00:00:00Z"
    git commit -q -a -m "second: edits, removals, a rename" || return 1
    git log --stat --format='%H %an %ad %s'
    git gc -q || return 1
    git fsck --no-progress --strict || return 1
    git rev-parse HEAD HEAD~1 'HEAD^{tree}'
    git diff --stat HEAD~1 HEAD | tail -n 1
    git show HEAD:f2.txt | tail -n 2
    git cat-file -p HEAD
    git ls-tree -r HEAD | md5sum
}

case_gcc() {
    local dir="$1"
    cd "$dir" || return 1
    gcc -O2 -o gen "$WORK/in/gen.c" || return 1
    ./gen || return 1
    gcc -O2 -S -o gen.s "$WORK/in/gen.c" || return 1
    md5sum <gen.s
}

case_bash() {
    bash "$WORK/in/loop.sh"
}

case_sort() {
    cd "$1" || return 1
    sort "$WORK/in/lines.txt" | md5sum
    sort -t' ' -k2,2n -k1,1 "$WORK/in/lines.txt" | md5sum
    sort -u -t' ' -k3,3 "$WORK/in/lines.txt" | wc -l
    sort -S 1M -r "$WORK/in/lines.txt" -o reversed.txt || return 1
    head -n 3 reversed.txt
}

case_tar() {
    local dir="$1"
    cd "$dir" || return 1
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$WORK/in" tree |
        gzip -9n >t.tgz || return 1
    md5sum <t.tgz
    tar -xzf t.tgz || return 1
    cat tree/*.txt | md5sum
    awk '{ c[$2]++ } END { n = 0; for (k in c) n += c[k]; print n, length(c) }' tree/*.txt
}

# ---------------------------------------------------------------- runner ---
run_case() {
    local name="$1" need="$2"
    if ! command -v "$need" >/dev/null 2>&1; then
        echo "skip $name: $need not installed"
        skipped=$((skipped + 1))
        return
    fi
    local d="$WORK/$name"
    mkdir -p "$d/plain" "$d/preload"
    local start=$SECONDS
    (cd "$d/plain" && "case_$name" "$d/plain") >"$d/plain.out" 2>"$d/plain.err"
    local rc_plain=$?
    (cd "$d/preload" && BINMALLOC_STATS=1 BINMALLOC_DUMP="$d/dump.json" LD_PRELOAD="$LIB" \
        "case_$name" "$d/preload") >"$d/preload.out" 2>"$d/preload.err"
    local rc_pre=$?

    local problems=()
    if [[ $rc_plain -ne 0 ]]; then
        problems+=("fails even without binmalloc (exit $rc_plain): $(tail -n 2 "$d/plain.err" | tr '\n' ' ')")
    fi
    if [[ $rc_pre -ne $rc_plain ]]; then
        problems+=("exit code $rc_pre under binmalloc, $rc_plain without")
    fi
    if ! cmp -s "$d/plain.out" "$d/preload.out"; then
        problems+=("stdout differs under binmalloc")
    fi
    # Proof that binmalloc served the program: the BINMALLOC_STATS summary on
    # stderr, or - for programs that close stderr before exit, as coreutils
    # do - the BINMALLOC_DUMP file written at exit.
    local served=""
    if grep -Eq '^binmalloc:.*[1-9][0-9]* allocations' "$d/preload.err"; then
        served=stats
    elif [[ -f "$d/dump.json" ]] && grep -Eq '"allocations": *[1-9]' "$d/dump.json"; then
        served=dump
    else
        problems+=("no 'binmalloc: ... N allocations' summary with N > 0 on stderr (nor a BINMALLOC_DUMP file): binmalloc did not serve it")
    fi
    if grep -Eq '^binmalloc: [a-z_0-9]+\(0x[0-9a-f]+\): ' "$d/preload.err"; then
        problems+=("binmalloc reported misuse: $(grep -E '^binmalloc: [a-z_0-9]+\(0x' "$d/preload.err" | head -n 1)")
    fi
    local summary
    summary="$(grep -E '^binmalloc:.* allocations' "$d/preload.err" | head -n 1)"
    if [[ $served == dump ]]; then
        summary="(no summary on stderr: the program closed it; dump: $(grep -Eo '"allocations": *[0-9]+' "$d/dump.json" | head -n 1))"
    fi
    if [[ ${#problems[@]} -eq 0 ]]; then
        echo "ok   $name ($((SECONDS - start)) s) $summary"
        passed=$((passed + 1))
    else
        echo "FAIL $name:"
        for p in "${problems[@]}"; do echo "       $p"; done
        if ! cmp -s "$d/plain.out" "$d/preload.out"; then
            diff "$d/plain.out" "$d/preload.out" | head -n 10 | sed 's/^/       diff: /'
        fi
        grep -v '^binmalloc: \(OS memory\|in use\|calls\)' "$d/preload.err" | tail -n 5 | sed 's/^/       stderr: /'
        echo "       repro: KEEP_TMP=1 $0   (then look in $d)"
        failed=$((failed + 1))
    fi
}

setup_inputs
if [[ -n "$PY" ]]; then run_case python "$PY"; else echo "skip python: python3 not installed"; skipped=$((skipped + 1)); fi
run_case perl perl
run_case git git
run_case gcc gcc
run_case bash bash
run_case sort sort
run_case tar tar

echo
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
