"""Model: how much of the all-orderings work remains when orderings that reach the same
chosen set share the rest (float64, exact sums). Usage: python merge_model.py N [K]
with N rows of ../shared/data/fortunes/emb.npy and K random starts (default: all N), run
from the repository root."""
import numpy as np, sys, time
E = np.load('../shared/data/fortunes/emb.npy').astype(np.float64)
E /= np.linalg.norm(E, axis=1, keepdims=True)
n = int(sys.argv[1]); E = E[:n]; S = E @ E.T
rng = np.random.default_rng(1)
H = rng.integers(0, 2**62, size=n, dtype=np.int64).astype(np.uint64)
def ordering(start):
    f = S[start].copy(); chosen = np.zeros(n, bool); chosen[start] = True; seq = [start]
    for t in range(1, n):
        g = np.where(chosen, np.inf, f); j = int(np.argmin(g))
        seq.append(j); chosen[j] = True; f += S[j]
    return np.array(seq)
t0 = time.time()
k = int(sys.argv[2]) if len(sys.argv) > 2 else n
starts = np.arange(n) if k == n else rng.choice(n, k, replace=False)
hashes = np.stack([np.cumsum(H[ordering(s)]) for s in starts])  # k x n, wrapping uint64 sums
print("orderings", time.time() - t0, "s")
cost = (n - np.arange(n)).astype(float)    # a step's work ~ candidates left
total = k * cost.sum()
distinct = 0.0
for t in range(n):
    distinct += len(np.unique(hashes[:, t])) * cost[t]
print("k", k, "work with merged identical sets / without: %.3f" % (distinct / total))
for t in [n//100, n//20, n//10, n//4, n//2]:
    print(" step", t, "distinct sets", len(np.unique(hashes[:, t])), "of", k)
