"""Allocation-heavy Python workload for the binmalloc benchmark.

Run with PYTHONMALLOC=malloc so that every object allocation goes through
the C allocator under test.  Prints a checksum that depends only on the
computed data (never on addresses or hash seeds).

usage: python3 py_alloc.py [scale]      default scale 1.0
"""
import hashlib
import sys


def records(n):
    # Many small dicts, tuples and strings.
    out = []
    for i in range(n):
        key = "user%07d" % ((i * 7919) % n)
        out.append({"id": i, "key": key, "tags": (key[-3:], i % 17, str(i % 101)),
                    "score": (i * 2654435761) % 1000003})
    return out


def group(recs):
    # A dict of lists that grow one element at a time.
    groups = {}
    for r in recs:
        groups.setdefault(r["tags"][1], []).append(r["key"] + ":" + r["tags"][2])
    return groups


def tree(depth, seed):
    # Deep recursive structures of short-lived tuples and lists.
    if depth == 0:
        return [seed % 251, str(seed)]
    return (tree(depth - 1, seed * 3 + 1), tree(depth - 1, seed * 5 + 2), depth)


def walk(t):
    if isinstance(t, list):
        return t[0] + len(t[1])
    return walk(t[0]) + walk(t[1]) + t[2]


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    h = hashlib.sha256()
    n = int(150000 * scale)
    for rnd in range(3):
        recs = records(n)
        recs.sort(key=lambda r: (r["score"], r["key"]))
        h.update(repr([r["id"] for r in recs[:: max(1, n // 1000)]]).encode())
        groups = group(recs)
        for k in sorted(groups):
            v = groups[k]
            v.sort()
            h.update(("%d:%d:%s" % (k, len(v), v[len(v) // 2])).encode())
        # Drop every other record and rebuild the strings of the rest.
        del recs[::2]
        joined = ",".join(r["key"].upper() for r in recs)
        h.update(str(len(joined)).encode())
        words = {}
        for part in joined.split(","):
            words[part[:6]] = words.get(part[:6], 0) + 1
        h.update(repr(sorted(words.items())).encode())
        del recs, groups, joined, words
    for s in range(int(12 * scale) + 1):
        h.update(str(walk(tree(14, s))).encode())
    print("python checksum=%s" % h.hexdigest()[:16])


main()
