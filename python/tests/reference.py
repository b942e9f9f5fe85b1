"""The float64 reference the package is checked against: docs/design.md's exact contract, in
numpy (the same definitions as crates/weft-compute/tests/reference/mod.rs)."""

import numpy as np


def normalize64(e):
    """Rows of the float32 input scaled to unit length in float64 (not rounded to f32)."""
    e = np.asarray(e, dtype=np.float32).astype(np.float64)
    return e / np.sqrt((e * e).sum(axis=1, keepdims=True))


def sim64(e):
    u = normalize64(e)
    return u @ u.T


def topk64(s, q, k):
    """Top-k of row q of S (q excluded), score descending, ties to the lower id."""
    ids = [j for j in range(s.shape[0]) if j != q]
    ids.sort(key=lambda j: (-s[q, j], j))
    return ids[:k]


def ordering64(s, start, length=None):
    """The diversity ordering in float64: running sums of S, argmin over the unchosen,
    ties to the lowest index."""
    n = s.shape[0]
    length = n if length is None else length
    sums = np.zeros(n)
    chosen = np.zeros(n, dtype=bool)
    seq = [start]
    chosen[start] = True
    while len(seq) < length:
        sums += s[seq[-1]]
        cand = np.where(chosen, np.inf, sums)
        j = int(np.argmin(cand))  # argmin returns the first (lowest) index of the minimum
        chosen[j] = True
        seq.append(j)
    return seq


def replay_excess(s, seq):
    """Replays `seq` (a prefix or a whole ordering) in float64: the worst excess of a
    pick's mean similarity to the chosen set over the minimum among the candidates."""
    n = s.shape[0]
    seq = [int(x) for x in seq]
    assert len(set(seq)) == len(seq), "an item appears twice"
    sums = np.zeros(n)
    chosen = np.zeros(n, dtype=bool)
    chosen[seq[0]] = True
    worst = 0.0
    for t in range(1, len(seq)):
        sums += s[seq[t - 1]]
        lo = np.where(chosen, np.inf, sums).min()
        worst = max(worst, (sums[seq[t]] - lo) / t)
        chosen[seq[t]] = True
    return worst


def exact_set(n, d, rng):
    """Rows of four ±0.5 entries (unit length exactly): every dot product and running sum
    is exact in float32, and the few values make many exact ties. Row 4 is the opposite of
    row 3 and rows 10.. repeat row 9 when there are that many."""
    e = np.zeros((n, d), dtype=np.float32)
    for i in range(n):
        cols = rng.choice(d, size=4, replace=False)
        e[i, cols] = rng.choice([-0.5, 0.5], size=4)
    if n > 4:
        e[4] = -e[3]
    if n > 12:
        e[10:13] = e[9]
    return e
