#!/usr/bin/env bash
# Benchmark binmalloc against glibc, jemalloc, mimalloc and tcmalloc.
#
#   scripts/bench.sh            full run (about 10-15 minutes on 2 cores)
#   scripts/bench.sh --quick    smoke run: 1 round, small sizes (about a minute);
#                               results go to build/bench/quick-results/
#
# Environment: BENCH_ROUNDS (default 9), BENCH_ONLY=churn,micro,...,
# BENCH_ALLOCATORS=binmalloc,mimalloc,... (glibc is always the baseline),
# BENCH_OUT=dir, BENCH_TIMEOUT=seconds per run.  Other arguments are passed
# on to scripts/bench.py (see `python3 scripts/bench.py --help`).
#
# Steps: install the allocators compared against (Debian packages) if they
# are missing, build the workload programs into build/bench/, build
# binmalloc if target/release/libbinmalloc.so is missing, run the runner.
# Results: bench/results/{results.md,time_ratio.svg,rss_ratio.svg,machine.txt,raw.json}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build/bench"
SO="$ROOT/target/release/libbinmalloc.so"

say() { printf 'bench: %s\n' "$*" >&2; }

# Is an allocator selected by BENCH_ALLOCATORS (empty = all)?
wanted() {
    [ -z "${BENCH_ALLOCATORS:-}" ] && return 0
    case ",${BENCH_ALLOCATORS// /}," in *",$1,"*) return 0 ;; esac
    return 1
}

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1" || ls /usr/lib/*-linux-gnu/"$1" /lib/*-linux-gnu/"$1" >/dev/null 2>&1; }

# --- 1. tools and allocators to compare against -----------------------------
pkgs=()
wanted jemalloc && ! have_lib libjemalloc.so.2 && pkgs+=(libjemalloc2)
wanted mimalloc && ! have_lib libmimalloc.so.2 && pkgs+=(libmimalloc2.0)
wanted tcmalloc && ! have_lib libtcmalloc_minimal.so.4 && pkgs+=(libtcmalloc-minimal4)
[ -x /usr/bin/time ] || pkgs+=(time)
command -v gcc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
command -v perl >/dev/null 2>&1 || pkgs+=(perl)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
if [ ${#pkgs[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    fi
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
        say "installing ${pkgs[*]}"
        if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}"; } >&2; then
            say "WARNING: apt-get install failed; missing allocators will be skipped (see results.md)"
        fi
    else
        say "WARNING: not root and no sudo: cannot install ${pkgs[*]}; missing allocators will be skipped"
    fi
fi
command -v gcc >/dev/null 2>&1 || { say "ERROR: gcc is required"; exit 1; }
PY="$(command -v python3 || echo /usr/bin/python3)"

# --- 2. workload programs ----------------------------------------------------
mkdir -p "$BUILD"
for src in bench/*.c; do
    name="$(basename "$src" .c)"
    prog="$BUILD/$name"
    if [ ! -x "$prog" ] || [ "$src" -nt "$prog" ] || [ bench/common.h -nt "$prog" ]; then
        say "building $prog"
        if [ "$name" = launch ]; then
            # static, so that LD_PRELOAD applies only to the program it runs
            gcc -O2 -Wall -Wextra -static -o "$prog" "$src" 2>/dev/null || {
                say "WARNING: static link failed (no libc.a?); the launcher runs under the preloaded allocator"
                gcc -O2 -Wall -Wextra -o "$prog" "$src"
            }
        else
            gcc -O2 -g -Wall -Wextra -pthread -o "$prog" "$src" -lm -ldl
        fi
    fi
done

# --- 3. binmalloc ------------------------------------------------------------
if wanted binmalloc; then
    if [ ! -f "$SO" ]; then
        say "building binmalloc (cargo build --release)"
        cargo build --release >&2 || { say "ERROR: cargo build --release failed"; exit 1; }
    elif [ -n "$(find src Cargo.toml build.rs -newer "$SO" 2>/dev/null | head -n 1)" ]; then
        say "WARNING: $SO is older than the sources; run 'cargo build --release' to benchmark the current code"
    fi
fi

# --- 4. run ------------------------------------------------------------------
exec "$PY" "$ROOT/scripts/bench.py" "$@"
