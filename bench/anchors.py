"""What weft's Python-side benchmarks share: timing, the normalisation weft applies, and the
plain-numpy anchors (top-10 of every row, one diversity ordering) that bench/compute_anchor.py
and bench/python.py both compare weft against. Imported from the bench/ folder; not a package."""
import statistics
import time

import numpy as np


def median_time(fn, runs):
    """Median wall-clock seconds of `runs` calls of fn()."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def normalised(raw):
    """Rows scaled to unit length, the norm taken in float64 as weft does, stored float32."""
    e = raw.astype(np.float32)
    e /= np.linalg.norm(raw.astype(np.float64), axis=1, keepdims=True).astype(np.float32)
    return np.ascontiguousarray(e)


def numpy_topk(e, k=10, block=1024):
    """Top-k of every row of E·Eᵀ, self excluded: argpartition over blocks of rows, then sort."""
    n = len(e)
    ids = np.empty((n, k), np.int64)
    for i0 in range(0, n, block):
        s = e[i0:i0 + block] @ e.T
        r = np.arange(s.shape[0])
        s[r, i0 + r] = -np.inf
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        ids[i0:i0 + block] = np.take_along_axis(part, order, 1)
    return ids


def numpy_ordering(s, start=0):
    """One diversity ordering over S with f32 running sums, the fastest plain-numpy form: a
    chosen item's sum is set to +inf and stays there."""
    n = len(s)
    sums = np.zeros(n, np.float32)
    seq = [start]
    j = start
    for _ in range(1, n):
        np.add(sums, s[j], out=sums)
        sums[j] = np.inf
        j = int(np.argmin(sums))
        seq.append(j)
    return seq
