#!/usr/bin/env bash
# Checks the public header include/binmalloc.h:
#   1. it is current: identical to target/binmalloc.h.generated, which the
#      release build writes from the Rust sources;
#   2. it compiles on its own and next to <stdlib.h>/<malloc.h>, as C (c99,
#      c11, gnu17) and as C++, with -Wall -Wextra -Werror -pedantic;
#   3. every name it adds to a program is binmalloc's: macros start with
#      BINMALLOC_, functions/types/enum constants with binmalloc_ or
#      BINMALLOC_ (a public header must not define PAGE_SIZE, ALIGNMENT, ...);
#   4. every macro it defines expands to something that compiles.
# Prints "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HEADER=include/binmalloc.h
GENERATED=target/binmalloc.h.generated
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
TMP="$(mktemp -d /tmp/binmalloc-header.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# 1. current
if [[ ! -f $HEADER ]]; then
    fail "header: $HEADER missing"
elif [[ ! -f $GENERATED ]]; then
    fail "header: $GENERATED missing (the release build writes it)"
elif cmp -s "$HEADER" "$GENERATED"; then
    ok "header: $HEADER matches the generated header"
else
    fail "header: $HEADER is stale; the build generated a different one:"
    diff -u "$HEADER" "$GENERATED" | head -n 20 | sed 's/^/       /'
fi

# 2. compiles
printf '#include <binmalloc.h>\n#include <binmalloc.h>\nint main(void) { return binmalloc_owns(0); }\n' >"$TMP/alone.c"
printf '#include <stdlib.h>\n#include <malloc.h>\n#include <binmalloc.h>\nint main(void) { void *p = calloc(1, 1); int r = binmalloc_owns(p); free(p); return r != 1; }\n' >"$TMP/mixed.c"
for std in c99 c11 gnu17; do
    for src in alone mixed; do
        if out="$("$CC" -std=$std -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only "$TMP/$src.c" 2>&1)"; then
            ok "header: compiles as $std ($src)"
        else
            fail "header: does not compile as $std ($src)"
            head -n 6 <<<"$out" | sed 's/^/       /'
        fi
    done
done
if command -v "$CXX" >/dev/null 2>&1; then
    cp "$TMP/mixed.c" "$TMP/mixed.cc"
    if out="$("$CXX" -std=c++17 -Wall -Wextra -Werror -Iinclude "$TMP/mixed.cc" -o "$TMP/mixed-cxx" \
            -Ltarget/release -lbinmalloc -Wl,-rpath,"$ROOT/target/release" 2>&1)" && "$TMP/mixed-cxx"; then
        ok "header: usable from C++ (compiles, links, runs)"
    else
        fail "header: not usable from C++ (missing extern \"C\"?)"
        head -n 6 <<<"$out" | sed 's/^/       /'
    fi
fi

# 3. names
# macros the header defines beyond those of the system headers it includes
sys_includes="$(grep -E '^#include <' "$HEADER")"
"$CC" -dM -E -x c - <<<"$sys_includes" 2>/dev/null | awk '{print $2}' | sed 's/(.*//' | sort -u >"$TMP/sys.macros"
"$CC" -dM -E -Iinclude -x c - <<<"#include <binmalloc.h>" | awk '{print $2}' | sed 's/(.*//' | sort -u >"$TMP/all.macros"
comm -13 "$TMP/sys.macros" "$TMP/all.macros" >"$TMP/own.macros"
bad_macros="$(grep -Ev '^BINMALLOC_' "$TMP/own.macros" | tr '\n' ' ')"
# functions, types, struct/enum tags and enum constants (comments stripped)
"$CC" -fpreprocessed -dD -E -P -x c "$HEADER" 2>/dev/null | grep -v '^#' >"$TMP/code.h"
names="$(
    {
        # function declarations: NAME(
        grep -Eo '\b[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(' "$TMP/code.h" | sed 's/[[:space:](]//g'
        # struct/enum/union tags
        grep -Eo '\b(struct|enum|union)[[:space:]]+[A-Za-z_][A-Za-z0-9_]*' "$TMP/code.h" | awk '{print $2}'
        # typedef names: "typedef ... NAME;"
        grep -Eo 'typedef[^;]*\b[A-Za-z_][A-Za-z0-9_]*[[:space:]]*;' "$TMP/code.h" | sed -E 's/.*\b([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*;/\1/'
        # enum constants: lines "  NAME = value," or "  NAME," inside enum bodies
        awk '/\benum\b/ {inenum = 1} inenum && /^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*(=|,|$)/ {print $1} /}/ {inenum = 0}' \
            "$TMP/code.h" | sed 's/[=,]//g'
    } | sort -u
)"
keywords=' int size_t void char const unsigned signed long short uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t uintptr_t intptr_t bool enum struct union typedef if while for return sizeof double float '
bad_names=""
for n in $names; do
    [[ $keywords == *" $n "* ]] && continue
    [[ $n == binmalloc_* || $n == BINMALLOC_* ]] && continue
    bad_names+="$n "
done
if [[ -z $bad_macros ]]; then
    ok "header: every macro it defines starts with BINMALLOC_"
else
    fail "header: defines macros outside the BINMALLOC_ namespace: $bad_macros"
fi
if [[ -z $bad_names ]]; then
    ok "header: every function, type and constant starts with binmalloc_/BINMALLOC_"
else
    fail "header: declares names outside the binmalloc_ namespace: $bad_names"
fi

# 4. every object-like macro expands to something that compiles
{
    echo '#include <binmalloc.h>'
    n=0
    while read -r m; do
        [[ -z $m || $m == BINMALLOC_H ]] && continue
        if grep -Eq "^#define $m\\(" <("$CC" -dM -E -Iinclude -x c - <<<"#include <binmalloc.h>"); then continue; fi
        if grep -Eq "^#define $m[[:space:]]*$" <("$CC" -dM -E -Iinclude -x c - <<<"#include <binmalloc.h>"); then continue; fi
        echo "static const unsigned long long m$n = (unsigned long long)($m);"
        n=$((n + 1))
    done <"$TMP/own.macros"
    echo 'int main(void) { return 0; }'
} >"$TMP/macros.c"
if out="$("$CC" -std=gnu17 -Iinclude -Wno-unused-const-variable -fsyntax-only "$TMP/macros.c" 2>&1)"; then
    ok "header: every macro expands to a valid constant"
else
    fail "header: macros that do not compile when used:"
    grep -E 'error' <<<"$out" | head -n 8 | sed 's/^/       /'
fi

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
