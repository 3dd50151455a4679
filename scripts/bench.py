#!/usr/bin/env python3
"""Benchmark runner: binmalloc against glibc, jemalloc, mimalloc and tcmalloc.

Normally started by scripts/bench.sh (`make bench`), which installs the
allocators, builds the workload programs into build/bench/ and builds
binmalloc first.  Only the Python standard library is used.

For every workload the allocators are run interleaved (A B C D E A B C ...),
one warm-up round and then BENCH_ROUNDS timed rounds.  Each run is a child
process started with LD_PRELOAD set to the allocator under test (glibc runs
with no preload); its wall time is taken around spawn/wait and its peak RSS
is the ru_maxrss that wait4() reports for it (which covers its waited-for
children too, e.g. cc1 under gcc).  Every workload prints a checksum, which
must be the same under every allocator; a difference, a crash or a timeout
is reported loudly and makes the runner exit non-zero (after writing the
results).

Options (command line or environment):
  --quick              smoke run: 1 round, no warm-up, small sizes; results go
                       to build/bench/quick-results/ unless --out is given
  --rounds N           timed rounds (BENCH_ROUNDS, default 9)
  --only a,b           only these workloads (BENCH_ONLY); "micro" selects the
                       micro-benchmark, "none" (or an empty list) selects no workload
  --allocators a,b     only these allocators (BENCH_ALLOCATORS); glibc is
                       always included, as the baseline
  --out DIR            results directory (BENCH_OUT, default bench/results)
  --timeout S          per-run time limit in seconds (BENCH_TIMEOUT, default 180)
"""

import argparse
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.path.join(ROOT, "build", "bench")
BINMALLOC_SO = os.path.join(ROOT, "target", "release", "libbinmalloc.so")

ALLOCATOR_ORDER = ["glibc", "binmalloc", "jemalloc", "mimalloc", "tcmalloc"]
# Shared object to preload, looked up in the dynamic linker cache.
SONAMES = {
    "jemalloc": "libjemalloc.so.2",
    "mimalloc": "libmimalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
}
DEBIAN_PACKAGES = {
    "jemalloc": "libjemalloc2",
    "mimalloc": "libmimalloc2.0",
    "tcmalloc": "libtcmalloc-minimal4",
}
COLORS = {
    "binmalloc": "#c0392b",
    "jemalloc": "#2e86c1",
    "mimalloc": "#27ae60",
    "tcmalloc": "#e69f00",
    "glibc": "#555555",
}


# --------------------------------------------------------------------------
# workloads


class Workload:
    def __init__(self, name, summary, argv, quick_argv, env=None, output_file=None):
        self.name = name
        self.summary = summary
        self.full_argv = argv
        self.quick_argv = quick_argv
        self.env = env or {}
        # If set, the checksum is the SHA-256 of this file (e.g. gcc's object
        # file) rather than the program's standard output.
        self.output_file = output_file

    def argv(self, quick):
        return self.quick_argv if quick else self.full_argv


def find_python():
    # The distribution's interpreter, not a version-manager shim (a shell
    # script that would itself run under the preloaded allocator).
    for cand in ("/usr/bin/python3", sys.executable):
        if cand and os.access(cand, os.X_OK):
            return os.path.realpath(cand)
    return shutil.which("python3")


def workloads():
    b = lambda prog: os.path.join(BUILD, prog)  # noqa: E731
    py = find_python()
    perl = shutil.which("perl") or "/usr/bin/perl"
    gcc = shutil.which("gcc") or "/usr/bin/gcc"
    gcc_obj = os.path.join(BUILD, "gcc_out.o")
    return [
        Workload("churn", "1 thread; live set of 100k objects of 16-256 B, 6M random replacements",
                 [b("churn"), "6000000", "100000"], [b("churn"), "300000", "20000"]),
        Workload("spread", "1 thread; live set of 20k objects, sizes log-uniform 8 B-64 KiB, 3M replacements",
                 [b("spread"), "3000000", "20000"], [b("spread"), "150000", "5000"]),
        Workload("prodcons", "2 threads; producer allocates 16-512 B, consumer frees (10M messages, batches of 64 via a mutex ring)",
                 [b("prodcons"), "10000000"], [b("prodcons"), "200000"]),
        Workload("realloc", "1 thread; 2000 live strings grown 1-16 chars at a time by exact-size realloc up to 16 B-64 KiB",
                 [b("realloc"), "5000000", "2000"], [b("realloc"), "300000", "500"]),
        Workload("bigbuf", "1 thread; 8 live buffers of 64 KiB-16 MiB (log-uniform), 4000 replacements, every page touched",
                 [b("bigbuf"), "4000", "8"], [b("bigbuf"), "200", "8"]),
        Workload("server", "4 threads; 20k slots each, 2.5M replacements each of 10-1000 B, 1/8 of frees by another thread",
                 [b("server"), "2500000", "4", "20000"], [b("server"), "150000", "4", "5000"]),
        Workload("threads", "15000 short-lived threads, 4 at a time, each allocating and freeing ~800 blocks of 16 B-4 KiB",
                 [b("threads"), "15000", "4", "200"], [b("threads"), "1000", "4", "100"]),
        Workload("python", "python3 with PYTHONMALLOC=malloc: dicts, tuples, strings, sorting (bench/py_alloc.py)",
                 [py, os.path.join(BENCH, "py_alloc.py"), "0.3"],
                 [py, os.path.join(BENCH, "py_alloc.py"), "0.03"],
                 env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}),
        Workload("perl", "perl: build a 100k-key hash of arrays, sort it, delete and re-add keys (bench/perl_hash.pl)",
                 [perl, os.path.join(BENCH, "perl_hash.pl"), "100000"],
                 [perl, os.path.join(BENCH, "perl_hash.pl"), "10000"],
                 env={"PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0"}),
        Workload("gcc", "gcc -O2 -c on a generated 200-function C file (bench/gen_big_c.py)",
                 [gcc, "-O2", "-c", "-o", gcc_obj, os.path.join(BUILD, "big.c")],
                 [gcc, "-O2", "-c", "-o", gcc_obj, os.path.join(BUILD, "big_quick.c")],
                 output_file=gcc_obj),
    ]


GCC_FUNCS = {"big.c": 200, "big_quick.c": 30}

MICRO_SIZES = [16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536]


# --------------------------------------------------------------------------
# allocators


def ldconfig_paths():
    paths = {}
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, check=True).stdout
            break
        except (OSError, subprocess.CalledProcessError):
            continue
    else:
        return paths
    machine = platform.machine()
    for line in out.splitlines():
        line = line.strip()
        if "=>" not in line:
            continue
        left, path = line.split("=>", 1)
        soname = left.split()[0]
        # prefer the native-architecture entry
        if soname not in paths or ("x86-64" in left and machine == "x86_64"):
            paths[soname] = path.strip()
    return paths


def find_allocators(wanted):
    """Return ({name: preload path or None}, {name: reason it is unavailable})."""
    cache = ldconfig_paths()
    found, missing = {}, {}
    for name in wanted:
        if name == "glibc":
            found[name] = None
        elif name == "binmalloc":
            if os.path.exists(BINMALLOC_SO):
                found[name] = BINMALLOC_SO
            else:
                missing[name] = "%s not found (run `cargo build --release`)" % BINMALLOC_SO
        elif name in SONAMES:
            soname = SONAMES[name]
            path = cache.get(soname)
            if not path:
                for pat in ("/usr/lib/*-linux-gnu/" + soname, "/lib/*-linux-gnu/" + soname,
                            "/usr/lib/" + soname, "/usr/local/lib/" + soname):
                    hits = sorted(glob.glob(pat))
                    if hits:
                        path = hits[0]
                        break
            if path and os.path.exists(path):
                found[name] = path
            else:
                missing[name] = "%s not found (Debian package %s)" % (soname, DEBIAN_PACKAGES[name])
        else:
            missing[name] = "unknown allocator (known: %s)" % ", ".join(ALLOCATOR_ORDER)
    return found, missing


def base_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "MALLOC_CONF", "MIMALLOC_VERBOSE", "PYTHONMALLOC"):
        env.pop(k, None)
    env["LC_ALL"] = "C"
    return env


def alloc_env(preload, extra=None):
    env = base_env()
    if preload:
        env["LD_PRELOAD"] = preload
    if extra:
        env.update(extra)
    return env


def check_preloads(allocs):
    """Make sure each preload really replaces malloc (ld.so only warns if it
    cannot preload a library and then carries on with glibc's malloc)."""
    probe = os.path.join(BUILD, "whichmalloc")
    problems = {}
    if not os.path.exists(probe):
        return problems
    for name, preload in allocs.items():
        try:
            r = subprocess.run([probe], env=alloc_env(preload), capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            problems[name] = "probe timed out"
            continue
        where = r.stdout.strip()
        if r.returncode != 0:
            problems[name] = "probe exited with status %d: %s" % (r.returncode, r.stderr.strip()[-300:])
        elif preload is None:
            if "libc.so" not in where:
                problems[name] = "malloc without preload comes from %r, expected libc" % where
        elif os.path.realpath(where) != os.path.realpath(preload) and \
                os.path.basename(preload) not in where:
            problems[name] = "malloc comes from %r, not %s (%s)" % (where, preload,
                                                                    r.stderr.strip()[-300:])
    return problems


# --------------------------------------------------------------------------
# running


class Result:
    __slots__ = ("wall", "maxrss_kib", "user", "sys", "status", "checksum", "error", "stderr_tail")

    def __init__(self):
        self.wall = self.user = self.sys = 0.0
        self.maxrss_kib = 0
        self.status = 0
        self.checksum = None
        self.error = None
        self.stderr_tail = ""


def describe_status(status):
    if status < 0:
        try:
            return "killed by %s" % signal.Signals(-status).name
        except ValueError:
            return "killed by signal %d" % -status
    return "exit status %d" % status


LAUNCH = os.path.join(BUILD, "launch")


def run_once(argv, env, timeout, output_file=None):
    """Run one sample through the launcher (see bench/launch.c), which takes
    the wall time and rusage of the program itself."""
    os.makedirs(os.path.join(BUILD, "tmp"), exist_ok=True)
    out_path = os.path.join(BUILD, "tmp", "stdout")
    err_path = os.path.join(BUILD, "tmp", "stderr")
    res_path = os.path.join(BUILD, "tmp", "rusage")
    for p in (res_path, output_file):
        if p and os.path.exists(p):
            os.unlink(p)
    env = dict(env)
    if "LD_PRELOAD" in env:
        env["LAUNCH_LD_PRELOAD"] = env.pop("LD_PRELOAD")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out_path, flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err_path, flags, 0o644),
    ]
    res = Result()
    timed_out = []
    launch_argv = [LAUNCH, res_path] + list(argv)
    pid = os.posix_spawn(LAUNCH, launch_argv, env, file_actions=actions, setpgroup=0)

    def kill():
        timed_out.append(True)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    _, status, _ = os.wait4(pid, 0)
    timer.cancel()

    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    res.stderr_tail = stderr[-2000:]
    fields = {}
    try:
        with open(res_path) as f:
            fields = dict(kv.split("=", 1) for kv in f.read().split())
    except OSError:
        pass
    if timed_out:
        res.error = "TIMEOUT after %g s" % timeout
        res.status = -9
        return res
    if os.waitstatus_to_exitcode(status) != 0 or "status" not in fields:
        res.error = "LAUNCHER FAILED (%s): %s" % (describe_status(os.waitstatus_to_exitcode(status)),
                                                  stderr.strip()[-300:])
        res.status = os.waitstatus_to_exitcode(status)
        return res
    res.status = int(fields["status"])
    res.wall = int(fields["wall_ns"]) / 1e9
    res.maxrss_kib = int(fields["maxrss_kib"])
    res.user = int(fields["utime_us"]) / 1e6
    res.sys = int(fields["stime_us"]) / 1e6
    if res.status != 0:
        res.error = "CRASH: %s" % describe_status(res.status)
    elif "cannot be preloaded" in stderr:
        res.error = "PRELOAD FAILED: %s" % stderr.strip()[-300:]
    elif output_file:
        try:
            with open(output_file, "rb") as f:
                res.checksum = "sha256:" + hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError as e:
            res.error = "NO OUTPUT: %s" % e
    else:
        res.checksum = stdout.strip()
        if not res.checksum:
            res.error = "NO OUTPUT on stdout"
    return res


def shell_quote(s):
    if s and all(c.isalnum() or c in "/._-=:," for c in s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"


def repro_command(w, preload, quick):
    parts = []
    if preload:
        parts.append("LD_PRELOAD=" + preload)
    for k, v in sorted(w.env.items()):
        parts.append("%s=%s" % (k, v))
    parts.append("/usr/bin/time -f '%e s %M KiB'")
    argv = [os.path.relpath(a, ROOT) if a.startswith(ROOT + "/") else a for a in w.argv(quick)]
    return "cd %s && " % shell_quote(ROOT) + " ".join(parts + [shell_quote(a) for a in argv])


def log(msg=""):
    print(msg, file=sys.stderr, flush=True)


def run_workloads(ws, allocs, rounds, warmup, timeout, quick, raw, failures):
    """Returns {workload: {allocator: {"wall": [...], "rss": [...]}}}."""
    results = {}
    names = list(allocs)
    for w in ws:
        log("== %s: %s" % (w.name, w.summary))
        per = {a: {"wall": [], "rss": [], "user": [], "sys": []} for a in names}
        reference = None
        broken = {}
        for rnd in range(warmup + rounds):
            is_warm = rnd < warmup
            line = []
            for a in names:
                if a in broken:
                    continue
                r = run_once(w.argv(quick), alloc_env(allocs[a], w.env), timeout, w.output_file)
                if r.error is None:
                    if reference is None:
                        reference = (a, r.checksum)
                    if r.checksum != reference[1]:
                        r.error = "WRONG CHECKSUM: %r, but %s gave %r" % (r.checksum, reference[0],
                                                                          reference[1])
                raw.append({
                    "kind": "workload", "workload": w.name, "allocator": a, "round": rnd,
                    "warmup": is_warm, "wall_s": round(r.wall, 6), "maxrss_kib": r.maxrss_kib,
                    "user_s": round(r.user, 6), "sys_s": round(r.sys, 6), "status": r.status,
                    "checksum": r.checksum, "error": r.error, "loadavg_1min": round(os.getloadavg()[0], 2),
                })
                if r.error:
                    broken[a] = r.error
                    failures.append({
                        "workload": w.name, "allocator": a, "round": rnd, "error": r.error,
                        "stderr": r.stderr_tail.strip(),
                        "command": repro_command(w, allocs[a], quick),
                    })
                    log("!! %s / %s: %s" % (w.name, a, r.error))
                    if r.stderr_tail.strip():
                        log("   stderr: " + r.stderr_tail.strip().replace("\n", "\n           ")[-1200:])
                    log("   reproduce: " + repro_command(w, allocs[a], quick))
                    line.append("%s=FAIL" % a)
                    continue
                line.append("%s=%.2fs/%.0fM" % (a, r.wall, r.maxrss_kib / 1024))
                if not is_warm:
                    per[a]["wall"].append(r.wall)
                    per[a]["rss"].append(r.maxrss_kib)
                    per[a]["user"].append(r.user)
                    per[a]["sys"].append(r.sys)
            log("   %s %s" % ("warm-up" if is_warm else "round %d" % (rnd - warmup + 1), " ".join(line)))
        results[w.name] = {"samples": per, "broken": broken, "checksum": reference[1] if reference else None}
    return results


def parse_micro(text):
    cells, checksum = {}, None
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        if "ns_per_pair" in fields:
            cells[(int(fields["threads"]), int(fields["size"]))] = float(fields["ns_per_pair"])
        elif "checksum" in fields:
            checksum = fields["checksum"]
    return cells, checksum


def run_micro(allocs, rounds, warmup, timeout, quick, raw, failures):
    log("== micro: ns per malloc+free pair, 1 and 2 threads")
    names = list(allocs)
    argv = [os.path.join(BUILD, "micro"), "0.05" if quick else "1"]
    micro_w = Workload("micro", "", argv, argv)
    cells = {a: {} for a in names}
    broken = {}
    reference = None
    for rnd in range(warmup + rounds):
        is_warm = rnd < warmup
        for a in names:
            if a in broken:
                continue
            r = run_once(argv, alloc_env(allocs[a]), timeout)
            parsed, checksum = ({}, None)
            if r.error is None:
                parsed, checksum = parse_micro(r.checksum)
                if reference is None:
                    reference = (a, checksum)
                if checksum is None or checksum != reference[1] or len(parsed) != 2 * len(MICRO_SIZES):
                    r.error = "WRONG CHECKSUM/OUTPUT: %r, but %s gave %r" % (checksum, reference[0],
                                                                             reference[1])
            raw.append({"kind": "micro", "allocator": a, "round": rnd, "warmup": is_warm,
                        "wall_s": round(r.wall, 6), "maxrss_kib": r.maxrss_kib, "status": r.status,
                        "checksum": checksum, "error": r.error, "loadavg_1min": round(os.getloadavg()[0], 2),
                        "ns_per_pair": {"%dT/%d" % k: v for k, v in sorted(parsed.items())}})
            if r.error:
                broken[a] = r.error
                failures.append({"workload": "micro", "allocator": a, "round": rnd, "error": r.error,
                                 "stderr": r.stderr_tail.strip(),
                                 "command": repro_command(micro_w, allocs[a], quick)})
                log("!! micro / %s: %s" % (a, r.error))
                log("   reproduce: " + repro_command(micro_w, allocs[a], quick))
                continue
            if not is_warm:
                for k, v in parsed.items():
                    cells[a].setdefault(k, []).append(v)
        log("   %s done" % ("warm-up" if is_warm else "round %d" % (rnd - warmup + 1)))
    return {"cells": cells, "broken": broken}


# --------------------------------------------------------------------------
# reporting


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def summarize(results, names):
    """{workload: {alloc: {"time": median s, "rss": median KiB, "spread": ...}}}"""
    summary = {}
    for wname, res in results.items():
        row = {}
        for a in names:
            s = res["samples"][a]
            if a in res["broken"] or not s["wall"]:
                row[a] = {"error": res["broken"].get(a, "no samples")}
                continue
            med = statistics.median(s["wall"])
            row[a] = {
                "time": med,
                "rss": statistics.median(s["rss"]),
                "spread": (max(s["wall"]) - min(s["wall"])) / med if med > 0 else 0.0,
                "n": len(s["wall"]),
            }
        summary[wname] = row
    return summary


def short_error(err):
    if err.startswith("CRASH: killed by "):
        return "CRASH (%s)" % err[len("CRASH: killed by "):]
    if err.startswith("CRASH: "):
        return "CRASH (%s)" % err[len("CRASH: "):]
    if err.startswith("WRONG CHECKSUM"):
        return "WRONG CHECKSUM"
    if err.startswith("TIMEOUT"):
        return "TIMEOUT"
    return err.split(":")[0]


def fmt_ratio(r):
    return "%.2f×" % r


def ratio_table(summary, names, key, fmt_abs, unit_title, caption):
    others = [a for a in names if a != "glibc"]
    lines = ["| workload | glibc (%s) | %s |" % (unit_title, " | ".join(others)),
             "|---|---:|" + "---:|" * len(others)]
    ratios = {a: [] for a in others}
    for wname, row in summary.items():
        g = row.get("glibc", {})
        if "error" in g:
            lines.append("| %s | %s | %s |" % (wname, short_error(g["error"]),
                                               " | ".join("–" for _ in others)))
            continue
        cells = []
        vals = {a: row[a][key] / g[key] for a in others if "error" not in row[a] and g[key] > 0}
        best = min(list(vals.values()) + [1.0]) if vals else None
        for a in others:
            if "error" in row[a]:
                cells.append("**%s**" % short_error(row[a]["error"]))
                continue
            v = vals[a]
            ratios[a].append(v)
            text = fmt_ratio(v)
            if best is not None and abs(v - best) < 1e-12 and v < 1.0:
                text = "**%s**" % text
            cells.append(text)
        glibc_cell = fmt_abs(g[key])
        if vals and min(vals.values()) > 1.0:
            glibc_cell = "**%s**" % glibc_cell  # glibc itself is the best
        lines.append("| %s | %s | %s |" % (wname, glibc_cell, " | ".join(cells)))
    n = len(summary)
    gm_cells = []
    for a in others:
        gm = geomean(ratios[a])
        if gm is None:
            gm_cells.append("–")
        elif len(ratios[a]) < n:
            gm_cells.append("%s (%d of %d)" % (fmt_ratio(gm), len(ratios[a]), n))
        else:
            gm_cells.append(fmt_ratio(gm))
    lines.append("| **geomean** | 1.00× | %s |" % " | ".join("**%s**" % c for c in gm_cells))
    return caption + "\n\n" + "\n".join(lines) + "\n", {a: geomean(ratios[a]) for a in others}


def absolute_table(summary, names):
    lines = ["| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for wname, row in summary.items():
        cells = []
        for a in names:
            c = row[a]
            if "error" in c:
                cells.append(short_error(c["error"]))
            else:
                cells.append("%.3f s ±%.0f%% · %.1f MiB" % (c["time"], 50 * c["spread"], c["rss"] / 1024))
        lines.append("| %s | %s |" % (wname, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def micro_tables(micro, names):
    out = []
    cells = micro["cells"]
    for threads in (1, 2):
        title = "1 thread" if threads == 1 else "2 threads (ns per pair per thread)"
        lines = ["**%s**" % title, "",
                 "| size | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
        for size in MICRO_SIZES:
            row = []
            vals = {}
            for a in names:
                samples = cells.get(a, {}).get((threads, size))
                if a in micro["broken"] or not samples:
                    row.append(short_error(micro["broken"].get(a, "no data")))
                    continue
                vals[a] = statistics.median(samples)
            best = min(vals.values()) if vals else None
            row = []
            for a in names:
                if a not in vals:
                    row.append("**%s**" % short_error(micro["broken"].get(a, "no data")))
                    continue
                text = "%.1f" % vals[a]
                if a == best or vals[a] == best:
                    text = "**%s**" % text
                row.append(text)
            label = "%d KiB" % (size // 1024) if size >= 1024 else "%d B" % size
            lines.append("| %s | %s |" % (label, " | ".join(row)))
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def svg_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def ratio_svg(summary, names, key, gmeans, title, ylabel):
    """Grouped bar chart (log2 axis) of each allocator's ratio to glibc."""
    others = [a for a in names if a != "glibc"]
    groups = list(summary) + ["geomean"]
    values = {}  # (group, alloc) -> ratio or error string
    for wname, row in summary.items():
        g = row.get("glibc", {})
        for a in others:
            if "error" in g:
                values[(wname, a)] = "glibc " + short_error(g["error"]).lower()
            elif "error" in row[a]:
                err = short_error(row[a]["error"])
                values[(wname, a)] = "wrong sum" if err.startswith("WRONG") else err.split(" ")[0].lower()
            else:
                values[(wname, a)] = row[a][key] / g[key] if g[key] > 0 else None
    for a in others:
        values[("geomean", a)] = gmeans.get(a)
    nums = [v for v in values.values() if isinstance(v, float) and v > 0]
    lo_exp = math.floor(math.log2(min(nums + [0.5])))
    hi_exp = math.ceil(math.log2(max(nums + [2.0])))
    # leave room above/below the longest bars for their value labels
    if math.log2(max(nums + [2.0])) > hi_exp - 0.5:
        hi_exp += 1
    if math.log2(min(nums + [0.5])) < lo_exp + 0.5:
        lo_exp -= 1
    lo_exp, hi_exp = max(lo_exp, -6), min(hi_exp, 6)
    if hi_exp - lo_exp < 2:
        hi_exp = lo_exp + 2

    bar_w, gap = 15, 22
    group_w = bar_w * max(1, len(others)) + gap
    left, right, top, bottom = 78, 20, 70, 62
    plot_h = 330
    width = left + right + group_w * len(groups) + 14
    height = top + plot_h + bottom

    def y(v):
        e = min(max(math.log2(v), lo_exp), hi_exp)
        return top + plot_h * (hi_exp - e) / (hi_exp - lo_exp)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>' % (left, svg_escape(title))]
    # legend
    lx = left
    for a in others:
        out.append('<rect x="%d" y="36" width="12" height="12" fill="%s"/>' % (lx, COLORS.get(a, "#888")))
        out.append('<text x="%d" y="46" font-size="12">%s</text>' % (lx + 16, svg_escape(a)))
        lx += 24 + 8 * len(a)
    out.append('<line x1="%d" y1="42" x2="%d" y2="42" stroke="black" stroke-width="2"/>' % (lx + 4, lx + 24))
    out.append('<text x="%d" y="46" font-size="12">glibc = 1.0</text>' % (lx + 28))
    # grid and y ticks
    for e in range(lo_exp, hi_exp + 1):
        v = 2.0 ** e
        yy = y(v)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/>' % (left, yy, width - right, yy))
        label = ("%g" % v) if v >= 1 else ("1/%d" % round(1 / v))
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>' % (left - 6, yy + 4, label))
    # axes
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, top, left, top + plot_h))
    out.append('<text transform="translate(20,%d) rotate(-90)" font-size="12" text-anchor="middle">%s</text>'
               % (top + plot_h // 2, svg_escape(ylabel)))
    # bars
    for gi, gname in enumerate(groups):
        gx = left + 10 + gi * group_w
        if gname == "geomean":
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999" stroke-dasharray="4 3"/>'
                       % (gx - gap / 2 + 2, top, gx - gap / 2 + 2, top + plot_h))
        for ai, a in enumerate(others):
            x = gx + ai * bar_w
            v = values.get((gname, a))
            if isinstance(v, float) and v > 0:
                y0, y1 = y(1.0), y(v)
                ytop, h = min(y0, y1), max(abs(y1 - y0), 1.0)
                clipped = math.log2(v) > hi_exp or math.log2(v) < lo_exp
                out.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"%s>'
                           '<title>%s, %s: %.2f× glibc</title></rect>'
                           % (x, ytop, bar_w - 2, h, COLORS.get(a, "#888"),
                              ' stroke="black" stroke-dasharray="2 2"' if clipped else "",
                              svg_escape(gname), svg_escape(a), v))
                # value label just beyond the end of the bar, written vertically
                ly = (y1 - 4) if v >= 1 else (y1 + 4)
                anchor = "start" if v >= 1 else "end"
                out.append('<text transform="translate(%.1f,%.1f) rotate(-90)" font-size="9" '
                           'text-anchor="%s" fill="#333333">%.2f</text>'
                           % (x + bar_w / 2 + 2, ly, anchor, v))
            elif isinstance(v, str):
                out.append('<text transform="translate(%.1f,%.1f) rotate(-90)" font-size="10" '
                           'font-weight="bold" text-anchor="start" fill="#c00000">%s</text>'
                           % (x + bar_w / 2 + 3, y(1.0) - 4, svg_escape(v)))
        out.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle"%s>%s</text>'
                   % (gx + bar_w * len(others) / 2 - 1, top + plot_h + 18,
                      ' font-weight="bold"' if gname == "geomean" else "", svg_escape(gname)))
    # reference line at 1.0, drawn last so it is on top
    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black" stroke-width="2"/>'
               % (left, y(1.0), width - right, y(1.0)))
    out.append('<text x="%d" y="%d" font-size="12" text-anchor="middle">workload</text>'
               % (left + (width - left - right) // 2, top + plot_h + 40))
    out.append('<text x="%d" y="%d" font-size="10" fill="#555555">log scale; bars start at 1.0 (glibc); '
               'above the line = %s than glibc</text>'
               % (left, top + plot_h + 56, "slower" if "time" in ylabel else "bigger"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cpu_seconds():
    """(CPU-seconds the whole machine has been busy, CPU-seconds used by this
    runner and all the processes it has waited for)."""
    busy = None
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cmd_output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(allocs):
    lines = []
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    lines.append("date:      %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))
    lines.append("cpu:       %s" % (model or platform.processor() or "unknown"))
    lines.append("cores:     %d online" % (os.cpu_count() or 0))
    lines.append("memory:    %s" % mem)
    lines.append("kernel:    %s %s" % (platform.system(), platform.release()))
    lines.append("os:        %s" % cmd_output(["sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""]))
    lines.append("glibc:     %s" % (cmd_output(["ldd", "--version"]).splitlines() or ["?"])[0])
    lines.append("gcc:       %s" % (cmd_output(["gcc", "--version"]).splitlines() or ["?"])[0])
    lines.append("python:    %s (%s)" % (cmd_output([find_python(), "--version"]), find_python()))
    perl_v = cmd_output(["perl", "-e", "print $^V"])
    lines.append("perl:      %s" % perl_v)
    for name, pkg in DEBIAN_PACKAGES.items():
        ver = cmd_output(["dpkg-query", "-W", "-f", "${Version}", pkg]) or "not installed"
        lines.append("%-10s %s %s -> %s" % (name + ":", pkg, ver, allocs.get(name, "unavailable")))
    if os.path.exists(BINMALLOC_SO):
        st = os.stat(BINMALLOC_SO)
        commit = cmd_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "no commit"
        dirty = cmd_output(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml"])
        lines.append("binmalloc: %s, built %s, git %s%s" % (
            BINMALLOC_SO, datetime.datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M:%S"),
            commit, " (uncommitted changes in src/)" if dirty else ""))
    else:
        lines.append("binmalloc: not built")
    try:
        with open("/proc/loadavg") as f:
            lines.append("loadavg:   %s (at start of run)" % " ".join(f.read().split()[:3]))
    except OSError:
        pass
    return "\n".join(lines) + "\n"


def round_label(rnd, warmup):
    return "warm-up round" if rnd < warmup else "timed round %d" % (rnd - warmup + 1)


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def write_report(out_dir, opts, names, missing, summary, micro, failures, started, finished, ws, machine,
                 other=None):
    time_md, time_gm = ratio_table(
        summary, names, "time", lambda v: "%.3f s" % v, "s",
        "### Wall time\n\nglibc: median wall time. Others: median wall time ÷ glibc's "
        "(below 1.00× is faster). The best allocator in each row is in bold.")
    rss_md, rss_gm = ratio_table(
        summary, names, "rss", lambda v: "%.1f MiB" % (v / 1024), "MiB",
        "### Peak RSS\n\nglibc: median peak resident set size. Others: median peak RSS ÷ glibc's "
        "(below 1.00× uses less memory). The best allocator in each row is in bold.")
    md = ["# binmalloc benchmark results", ""]
    md.append("Generated by `make bench` (`scripts/bench.sh` → `scripts/bench.py`) on %s, in %.1f minutes. "
              "%s; allocators run interleaved, %s. Machine details: [machine.txt](machine.txt); every sample: "
              "[raw.json](raw.json)." % (
                  started.strftime("%Y-%m-%d %H:%M"), (finished - started).total_seconds() / 60,
                  "**Quick smoke run** (small sizes, not for comparison)" if opts.quick else "Full run",
                  "%d timed round%s%s, medians reported" % (
                      opts.rounds, "" if opts.rounds == 1 else "s",
                      " after %d warm-up round" % opts.warmup if opts.warmup else "")))
    md.append("")
    first_line = machine.splitlines()
    md.append("Machine: " + "; ".join(l.split(":", 1)[1].strip().replace(" online", " cores")
                                       for l in first_line
                                       if l.split(":", 1)[0] in ("cpu", "cores", "memory", "kernel", "glibc")))
    md.append("")
    if other is not None:
        note = "Other processes used %.1f CPU-seconds during the run, %.1f%% of the machine's CPU time" % (
            other["cpu_seconds"], 100 * other["share"])
        if other["share"] > 0.05:
            md.append("**WARNING: the machine was not idle.** %s, so the timings are disturbed." % note)
        else:
            md.append(note + ".")
        md.append("")
    if missing:
        md.append("**Not benchmarked:** " + "; ".join("%s — %s" % (a, why) for a, why in missing.items()))
        md.append("")
    if failures:
        md.append("**FAILURES (%d)** — see [Failures](#failures) below. Failed cells are excluded from the "
                  "ratios and geometric means." % len(failures))
        md.append("")
    if summary:
        md.append("## Workloads")
        md.append("")
        md.append(time_md)
        md.append("![time ratio to glibc](time_ratio.svg)")
        md.append("")
        md.append(rss_md)
        md.append("![peak RSS ratio to glibc](rss_ratio.svg)")
        md.append("")
        md.append("### Absolute medians")
        md.append("")
        md.append("Median wall time ±half the min–max spread of the timed rounds · median peak RSS.")
        md.append("")
        md.append(absolute_table(summary, names))
    if micro:
        md.append("## Micro-benchmark: ns per malloc+free pair")
        md.append("")
        md.append("`bench/micro.c`: each pair frees the block allocated 8 pairs earlier and allocates a new "
                  "one of the same size, writing its first and last byte. Median over rounds; lower is "
                  "better; fastest in bold. With 2 threads each thread does its own pairs at the same time.")
        md.append("")
        md.append(micro_tables(micro, names))
    md.append("## What the workloads do")
    md.append("")
    md.append("| workload | description |")
    md.append("|---|---|")
    for w in ws:
        md.append("| %s | %s |" % (w.name, w.summary))
    md.append("")
    if opts.quick:
        md.append("(This quick run used reduced sizes; the exact command lines are in raw.json.)")
        md.append("")
    md.append("Every workload checks the contents of each block before freeing it and prints a checksum; "
              "the runner requires the same checksum under every allocator. Peak RSS is the child's "
              "`ru_maxrss` from `wait4()` (for gcc this includes cc1).")
    md.append("")
    if failures:
        md.append("## Failures")
        md.append("")
        for f in failures:
            md.append("- **%s / %s** (%s): %s" % (f["workload"], f["allocator"], round_label(f["round"], opts.warmup),
                                                f["error"]))
            md.append("")
            md.append("  reproduce: `%s`" % f["command"])
            if f["stderr"]:
                md.append("")
                md.append("  ```")
                for l in f["stderr"].splitlines()[-8:]:
                    md.append("  " + l)
                md.append("  ```")
            md.append("")
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write("\n".join(md))
    if summary:
        with open(os.path.join(out_dir, "time_ratio.svg"), "w") as fh:
            fh.write(ratio_svg(summary, names, "time", time_gm,
                               "Wall time relative to glibc (median of %s; lower is better)" % plural(opts.rounds, "round"),
                               "wall time ÷ glibc wall time"))
        with open(os.path.join(out_dir, "rss_ratio.svg"), "w") as fh:
            fh.write(ratio_svg(summary, names, "rss", rss_gm,
                               "Peak RSS relative to glibc (median of %s; lower is better)" % plural(opts.rounds, "round"),
                               "peak RSS ÷ glibc peak RSS"))
    return time_md, rss_md


# --------------------------------------------------------------------------
# main


def split_list(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def ensure_gcc_inputs():
    for name, n in GCC_FUNCS.items():
        path = os.path.join(BUILD, name)
        gen = os.path.join(BENCH, "gen_big_c.py")
        if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(gen):
            subprocess.run([sys.executable, gen, path, str(n)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    ap.add_argument("--allocators", default=os.environ.get("BENCH_ALLOCATORS", ""))
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT", ""))
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("BENCH_TIMEOUT", "180")))
    opts = ap.parse_args()

    if opts.rounds is None:
        opts.rounds = 1 if opts.quick else int(os.environ.get("BENCH_ROUNDS", "9"))
    if opts.rounds < 1:
        sys.exit("bench: rounds must be at least 1")
    opts.warmup = 0 if opts.quick else 1
    out_dir = opts.out or (os.path.join(BUILD, "quick-results") if opts.quick else os.path.join(BENCH, "results"))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    all_ws = workloads()
    known = [w.name for w in all_ws] + ["micro"]
    if opts.only.strip():
        only = split_list(opts.only)
        if only == ["none"]:
            only = []
        unknown = [x for x in only if x not in known and x != "none"]
        if unknown:
            sys.exit("bench: unknown workload(s) %s; known: %s" % (", ".join(unknown), ", ".join(known)))
    else:
        only = known
    ws = [w for w in all_ws if w.name in only]
    do_micro = "micro" in only

    wanted = split_list(opts.allocators) or list(ALLOCATOR_ORDER)
    if "glibc" not in wanted:
        log("bench: note: glibc is always run, as the baseline for checksums and ratios")
        wanted = ["glibc"] + wanted
    wanted = sorted(dict.fromkeys(wanted), key=lambda a: ALLOCATOR_ORDER.index(a) if a in ALLOCATOR_ORDER else 99)
    allocs, missing = find_allocators(wanted)
    for a, why in missing.items():
        log("bench: NOTE: skipping %s: %s" % (a, why))
    problems = check_preloads(allocs)
    for a, why in problems.items():
        log("bench: NOTE: skipping %s: preload check failed: %s" % (a, why))
        missing[a] = "preload check failed: " + why
        allocs.pop(a, None)
    if "glibc" not in allocs:
        sys.exit("bench: glibc baseline unusable: %s" % missing.get("glibc"))
    names = list(allocs)

    for w in ws + [Workload("launch", "", [LAUNCH], [LAUNCH])]:
        exe = w.argv(opts.quick)[0]
        if not os.access(exe, os.X_OK):
            sys.exit("bench: %s not found or not executable: run scripts/bench.sh to build the workloads" % exe)
    if any(w.name == "gcc" for w in ws):
        ensure_gcc_inputs()

    machine = machine_info(allocs)
    with open(os.path.join(out_dir, "machine.txt"), "w") as fh:
        fh.write(machine)
    load1 = os.getloadavg()[0]
    log("bench: allocators: %s" % ", ".join("%s (%s)" % (a, p or "no preload") for a, p in allocs.items()))
    log("bench: %d workload(s)%s, %d round(s) + %d warm-up; results -> %s"
        % (len(ws), " + micro" if do_micro else "", opts.rounds, opts.warmup, out_dir))
    if load1 > 0.7:
        log("bench: WARNING: load average is %.2f; other processes will disturb the timings" % load1)

    started = datetime.datetime.now()
    busy0, ours0 = cpu_seconds()
    raw, failures = [], []
    results = run_workloads(ws, allocs, opts.rounds, opts.warmup, opts.timeout, opts.quick, raw, failures)
    micro = run_micro(allocs, opts.rounds, opts.warmup, opts.timeout, opts.quick, raw, failures) if do_micro else None
    finished = datetime.datetime.now()
    busy1, ours1 = cpu_seconds()
    # CPU time that processes other than the benchmark's used during the run
    elapsed = (finished - started).total_seconds()
    other = None
    if busy0 is not None and busy1 is not None and elapsed > 0:
        secs = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        other = {"cpu_seconds": round(secs, 1), "share": secs / (elapsed * (os.cpu_count() or 1))}
        log("bench: other processes used %.1f CPU-seconds during the run (%.0f%% of the machine)"
            % (secs, 100 * other["share"]))
        if other["share"] > 0.05:
            log("bench: WARNING: the machine was not idle; timings are disturbed")

    summary = summarize(results, names)
    with open(os.path.join(out_dir, "raw.json"), "w") as fh:
        json.dump({
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "quick": opts.quick, "rounds": opts.rounds, "warmup_rounds": opts.warmup,
            "allocators": allocs, "unavailable": missing,
            "loadavg_start": load1, "loadavg_end": os.getloadavg()[0], "other_processes": other,
            "workloads": {w.name: {"summary": w.summary, "argv": w.argv(opts.quick), "env": w.env,
                                   "checksum": results[w.name]["checksum"]} for w in ws},
            "summary": summary,
            "failures": failures,
            "samples": raw,
        }, fh, indent=1)
        fh.write("\n")
    with open(os.path.join(out_dir, "machine.txt"), "a") as fh:
        fh.write("loadavg:   %.2f (at end of run)\n" % os.getloadavg()[0])
    time_md, rss_md = write_report(out_dir, opts, names, missing, summary, micro, failures, started, finished,
                                   ws, machine, other)

    if summary:
        print(time_md)
        print(rss_md)
    print("results: %s" % os.path.join(out_dir, "results.md"))
    if failures:
        log("")
        log("bench: %d FAILURE(S):" % len(failures))
        for f in failures:
            log("  %s / %s: %s" % (f["workload"], f["allocator"], f["error"]))
            log("    reproduce: %s" % f["command"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
