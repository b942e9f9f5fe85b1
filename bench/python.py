#!/usr/bin/env python3
"""weft from Python (the weft-embed package) against numpy and faiss-cpu on the same data,
the Python call's overhead over the same Rust kernels, and two Python threads against one.

Sections, medians of --runs repetitions each, ratios against baselines of the same run:
  1. weft.similarity / weft.topk / weft.diversity against numpy (E @ E.T, argpartition
     top-10, the f32 running-sum ordering of bench/compute_anchor.py) and faiss-cpu
     IndexFlatIP (when installed).
  2. Overhead: weft.similarity and weft.topk from Python against weft-compute's own
     timings of normalize + the same kernel (target/release/examples/bench_compute, built
     by `cargo build --release -p weft-compute --example bench_compute`), interleaved in
     --rounds rounds so that both see the same machine; the median round is reported.
  3. Threads: two independent weft.topk(threads=1) jobs one after the other, then in two
     Python threads; the ratio is the speed-up (target ≥ 1.8×). A pure-Python loop in the
     same harness shows what the GIL does to Python code.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install ./python faiss-cpu
    /tmp/venv/bin/python bench/python.py [EMB.npy] [--runs 5] [--rounds 3]

Not needed by `make test`.
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

import weft
from anchors import median_time, normalised, numpy_ordering, numpy_topk

HERE = os.path.dirname(os.path.abspath(__file__))


def row(name, secs, extra=""):
    print(f"  {name:<52} {secs:>9.4f} s  {extra}")


def against_numpy(raw, e, runs):
    n, d = e.shape
    print("\n1. weft from Python against numpy and faiss-cpu (default threads)")
    w = median_time(lambda: weft.similarity(raw), runs)
    npy = median_time(lambda: e @ e.T, runs)
    row("weft.similarity(E)", w, f"{w / npy:.2f}x numpy")
    row("numpy E @ E.T (rows normalised beforehand)", npy)

    w = median_time(lambda: weft.topk(raw, 10), runs)
    npy = median_time(lambda: numpy_topk(e), runs)
    row("weft.topk(E, 10)", w, f"{w / npy:.2f}x numpy")
    row("numpy top-10 (argpartition)", npy)
    try:
        import faiss

        def faiss_topk():
            index = faiss.IndexFlatIP(d)
            index.add(e)
            return index.search(e, 11)

        f = median_time(faiss_topk, runs)
        row("faiss-cpu IndexFlatIP top-10 (k = 11, self included)", f,
            f"weft {w / f:.2f}x faiss; faiss {faiss.__version__}")
    except ImportError:
        print("  faiss-cpu not installed: skipped")

    w1 = median_time(lambda: weft.diversity(raw, 0), runs)
    s_time = median_time(lambda: e @ e.T, runs)
    s = e @ e.T
    one = median_time(lambda: numpy_ordering(s), runs)
    row("weft.diversity(E, 0): S + one ordering", w1, f"{w1 / (s_time + one):.2f}x numpy")
    row("numpy E @ E.T + one f32 running-sum ordering", s_time + one,
        f"(ordering alone {one:.4f} s)")
    starts = list(range(0, n, n // 16))[:16]
    w16 = median_time(lambda: weft.diversity(raw, starts), max(1, runs // 2))
    np16 = s_time + 16 * one
    row("weft.diversity(E, 16 starts)", w16, f"{w16 / np16:.2f}x numpy")
    row("numpy E @ E.T + 16 orderings (one measured x 16)", np16)


def rust_timings(bench, emb):
    """weft-compute's own medians: {(name, threads): secs}."""
    out = {}
    for only in ("normalize", "similarity", "topk"):
        text = subprocess.run([bench, emb, "--only", only], check=True,
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            m = re.match(r"(\S.*?)\s+threads=(\d+)\s+([0-9.]+) s", line)
            if m:
                out[(m.group(1).strip(), int(m.group(2)))] = float(m.group(3))
    return out


def overhead(raw, emb, bench, rounds, runs):
    print("\n2. The Python call against weft-compute's own timing of the same work "
          "(normalize + kernel)")
    if not os.path.exists(bench):
        print(f"  {bench} not built: skipped (cargo build --release -p weft-compute "
              "--example bench_compute)")
        return
    rows = {}
    for r in range(rounds):
        rust = rust_timings(bench, emb)
        for t in (1, 2):
            for name, kernel, call in (
                ("similarity", "similarity", lambda: weft.similarity(raw, threads=t)),
                ("topk k=10", "topk k=10", lambda: weft.topk(raw, 10, threads=t)),
            ):
                py = median_time(call, runs)
                base = rust[("normalize", 1)] + rust[(kernel, t)]
                rows.setdefault((name, t), []).append((py, base))
    # The wrapper's own cost does not depend on N: argument checks, the borrow of the
    # array, releasing and retaking the GIL, wrapping the result. Timed on a 4-row input
    # (kernel included, so an upper bound), it is the overhead without the machine's noise.
    tiny = np.ascontiguousarray(raw[:4])
    for name, call in (("similarity", lambda: weft.similarity(tiny, threads=1)),
                       ("topk k=1", lambda: weft.topk(tiny, 1, threads=1))):
        fixed = median_time(call, 2001)
        full = median_time(lambda: weft.similarity(raw) if name == "similarity" else weft.topk(raw, 10), runs)
        print(f"  {name:<12} fixed cost of a call (4 rows, kernel included): {fixed * 1e6:.1f} us "
              f"= {100 * fixed / full:.4f} % of the N = {len(raw)} call ({full:.4f} s)")
    for (name, t), vals in rows.items():
        ratios = [py / base for py, base in vals]
        mid = sorted(range(len(vals)), key=lambda i: ratios[i])[len(vals) // 2]
        py, base = vals[mid]
        print(f"  {name:<12} threads={t}: Python {py:.4f} s, Rust {base:.4f} s -> "
              f"overhead {100 * (py / base - 1):+.1f} % (median of {len(vals)} rounds; "
              f"all: {', '.join(f'{100 * (x - 1):+.1f}' for x in ratios)} %)")


def two_threads(job, runs):
    serial, parallel = [], []
    for _ in range(runs):
        t = time.perf_counter()
        job(0)
        job(1)
        serial.append(time.perf_counter() - t)
        ths = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        t = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        parallel.append(time.perf_counter() - t)
    return statistics.median(serial), statistics.median(parallel), serial, parallel


def threads_section(raw, emb, runs):
    print("\n3. Two Python threads against one, two independent top-10 jobs, threads=1 each")
    jobs = [raw, np.ascontiguousarray(raw[::-1])]

    def weft_job(i):
        weft.topk(jobs[i], 10, threads=1)

    def python_job(i):
        total = 0
        for x in range(2_000_000):
            total += x * x % 7
        return total

    def process_job(i):
        # the same job in a process of its own: no GIL shared at all, so this is what
        # the machine's cores give two such jobs at these moments
        subprocess.run([sys.executable, "-c", PROCESS_JOB, emb, str(i)], check=True)

    for name, job in (
        ("weft.topk(E, 10, threads=1)", weft_job),
        ("pure-Python loop", python_job),
        ("weft.topk, two processes (hardware)", process_job),
    ):
        s, p, ss, ps = two_threads(job, runs)
        print(f"  {name:<36} one after the other {s:.3f} s, two at once {p:.3f} s -> "
              f"{s / p:.2f}x  (ratios per run: "
              f"{', '.join(f'{a / b:.2f}' for a, b in zip(ss, ps))})")


# The hardware baseline: each process starts Python, imports numpy and weft and loads E
# (included on both sides of its ratio, so it dilutes it a little), then runs the same
# call three times.
PROCESS_JOB = """
import sys, numpy as np, weft
raw = np.load(sys.argv[1])
e = raw if sys.argv[2] == "0" else np.ascontiguousarray(raw[::-1])
for _ in range(3):
    weft.topk(e, 10, threads=1)
"""


def main():
    default = os.path.join(HERE, "..", "..", "shared", "data", "fortunes", "emb.npy")
    ap = argparse.ArgumentParser()
    ap.add_argument("emb", nargs="?", default=default)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["numpy", "overhead", "threads"])
    ap.add_argument("--bench-compute",
                    default=os.path.join(HERE, "..", "target", "release", "examples", "bench_compute"))
    a = ap.parse_args()
    raw = np.load(a.emb)  # float32, C-contiguous: weft reads it in place
    assert raw.dtype == np.float32 and raw.flags["C_CONTIGUOUS"]
    e = normalised(raw)
    n, d = raw.shape
    print(f"data: {a.emb} ({n} x {d}); weft {weft.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}; {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if a.only in (None, "numpy"):
        against_numpy(raw, e, a.runs)
    if a.only in (None, "overhead"):
        overhead(raw, a.emb, a.bench_compute, a.rounds, a.runs)
    if a.only in (None, "threads"):
        threads_section(raw, a.emb, a.runs)


if __name__ == "__main__":
    main()
