#!/usr/bin/env python3
"""The GIL lesson: two Python threads calling weft use two cores, because weft releases the
GIL while it computes; two threads running a pure-Python loop do not, because only the
thread holding the GIL runs Python code.

Each job runs once alone, then twice: one after the other, and in two threads at once.
The speedup is (two jobs one after the other) / (two jobs in two threads): about 2 on a
machine with two free cores for weft, about 1 (or less) for the pure-Python loop.

    python examples/python/threads.py [--quick]
"""
import statistics
import sys
import threading
import time

import numpy as np

import weft

QUICK = "--quick" in sys.argv
RUNS = 1 if QUICK else 5


def two_ways(job):
    """Median seconds for job(0); job(1) one after the other, and in two threads."""
    serial, parallel = [], []
    for _ in range(RUNS):
        t = time.perf_counter()
        job(0)
        job(1)
        serial.append(time.perf_counter() - t)
        threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        parallel.append(time.perf_counter() - t)
    return statistics.median(serial), statistics.median(parallel)


def main():
    n = 2000 if QUICK else 7000
    rng = np.random.default_rng(0)
    jobs = [rng.standard_normal((n, 384)).astype(np.float32) for _ in range(2)]

    def weft_job(i):
        weft.topk(jobs[i], 10, threads=1)  # one core each: the threads supply the parallelism

    def python_job(i):
        total = 0
        for x in range(300_000 if QUICK else 3_000_000):
            total += x * x % 7
        return total

    print(f"two independent jobs, one after the other vs two Python threads ({n} x 384 top-10)")
    for name, job in (("weft.topk(threads=1)", weft_job), ("pure-Python loop", python_job)):
        serial, parallel = two_ways(job)
        print(f"  {name:<22} serial {serial:7.3f} s   threads {parallel:7.3f} s   "
              f"speedup {serial / parallel:4.2f}x")


if __name__ == "__main__":
    main()
