#!/usr/bin/env bash
# A real program running on binmalloc: python3 (told to use malloc for every
# object with PYTHONMALLOC=malloc) builds and sorts a few hundred thousand
# objects, with binmalloc preloaded and its statistics printed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIB="$ROOT/target/release/libbinmalloc.so"
if [[ ! -f "$LIB" ]]; then
    cargo build --release
fi
PY="$(command -v python3 || true)"
if [[ -z "$PY" ]]; then
    echo "demo: python3 is not installed" >&2
    exit 1
fi
# the interpreter itself, not a version manager's wrapper script
PY="$("$PY" -c 'import sys; print(sys.executable)')"

cat <<EOF
Running: BINMALLOC_STATS=1 PYTHONMALLOC=malloc LD_PRELOAD=$LIB $PY - <<script>

EOF
BINMALLOC_STATS=1 PYTHONMALLOC=malloc LD_PRELOAD="$LIB" "$PY" - <<'EOF'
import json, time
t = time.perf_counter()
people = [{"id": i, "name": f"person-{i:06d}", "tags": [f"t{j}" for j in range(i % 5)]}
          for i in range(200_000)]
people.sort(key=lambda p: (len(p["tags"]), p["name"][::-1]))
text = json.dumps(people)
back = json.loads(text)
words = {}
for p in back:
    for tag in p["tags"]:
        words[tag] = words.get(tag, 0) + 1
print(f"{len(back)} records, {len(text) / 1e6:.1f} MB of JSON, tag counts {sorted(words.items())}")
print(f"done in {time.perf_counter() - t:.2f} s; binmalloc's summary follows on stderr:")
EOF
