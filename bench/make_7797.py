"""Builds the 7,797-row embedding set the cache benchmarks time (issue 15's N) from the
7,090 fortunes: the 7,090 rows as they are, then 707 rows that are normalised sums of two
distinct random fortunes (numpy's default_rng, seed 7797), all float32.

    /usr/bin/python3 bench/make_7797.py ../shared/data/fortunes/emb.npy /tmp/emb7797.npy

(any python3 with numpy; the file's md5 on 2026-12-03: 95218beebf1ae0ed6b77f53dc27ea8e7).
"""
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_7797.py EMB.npy OUT.npy")
    e = np.load(sys.argv[1]).astype(np.float32)
    if e.ndim != 2 or e.shape[0] < 2:
        sys.exit(f"{sys.argv[1]}: expected a 2-D array of at least 2 rows, got {e.shape}")
    extra = 7797 - e.shape[0]
    if extra < 0:
        sys.exit(f"{sys.argv[1]}: has {e.shape[0]} rows, more than 7797")
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    rng = np.random.default_rng(7797)
    i = rng.integers(0, e.shape[0], extra)
    j = (i + rng.integers(1, e.shape[0], extra)) % e.shape[0]  # j != i
    pairs = unit[i] + unit[j]
    pairs /= np.linalg.norm(pairs, axis=1, keepdims=True)
    out = np.concatenate([e, pairs.astype(np.float32)])
    np.save(sys.argv[2], out)
    print(f"{sys.argv[2]}: {out.shape[0]} x {out.shape[1]} float32")


if __name__ == "__main__":
    main()
