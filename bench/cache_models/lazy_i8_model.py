"""Model: exact scores per step when i8 codes (scale 127 / 31 / 7) carry a lower bound per
candidate that each exact score resets. Usage: python lazy_i8_model.py N SCALE... (rows of
../shared/data/fortunes/emb.npy)."""
import numpy as np, sys, time
E = np.load('../shared/data/fortunes/emb.npy').astype(np.float64)
E /= np.linalg.norm(E, axis=1, keepdims=True)
n = int(sys.argv[1]); E = E[:n]; S = E @ E.T
def run(start, scale):
    err = 0.5/scale; Q = np.round(S*scale)/scale
    chosen = np.zeros(n, bool); chosen[start] = True
    a = Q[start].copy(); r = np.zeros(n); c = E[start].copy(); scored = 0
    for t in range(1, n):
        lb = a - (t - r)*err; lb[chosen] = np.inf
        order = np.argsort(lb); best = None
        for j in order:
            if best is not None and lb[j] > best[0]: break
            f = c @ E[j]; scored += 1; a[j] = f; r[j] = t
            if best is None or f < best[0] or (f == best[0] and j < best[1]): best = (f, j)
        j = best[1]; chosen[j] = True; c += E[j]; a += Q[j]
    return scored/(n-1)
for scale in [float(x) for x in sys.argv[2:]]:
    print("scale", scale, "scores/step %.2f" % np.mean([run(s, scale) for s in (0, n//2)]), flush=True)
