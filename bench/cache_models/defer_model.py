"""Model: lines of 32 candidates far above the minimum stop taking rows, kept out by a
lower bound per line (each row's least entry in that line); a line coming within reach is
caught up. Prints the bytes relative to today. Usage: python defer_model.py N D... (D: the
gap, in similarity, beyond which a line is deferred)."""
import numpy as np, sys
E = np.load('../shared/data/fortunes/emb.npy').astype(np.float64)
E /= np.linalg.norm(E, axis=1, keepdims=True)
n = int(sys.argv[1]); E = E[:n]; S = E @ E.T
LINE = 32
def ordering(start):
    f = S[start].copy(); chosen = np.zeros(n, bool); chosen[start] = True; seq = [start]
    for t in range(1, n):
        g = np.where(chosen, np.inf, f); j = int(np.argmin(g))
        seq.append(j); chosen[j] = True; f += S[j]
    return seq
# learned order: mean position over 4 orderings
pos = np.zeros(n)
for s in range(4):
    seq = ordering(s * n // 4); pos[np.array(seq)] += np.arange(n)
perm = np.argsort(pos, kind='stable')
P = S[np.ix_(perm, perm)]
L = (n + LINE - 1) // LINE
pad = L * LINE - n
Pp = np.pad(P, ((0, 0), (0, pad)), constant_values=np.inf)
M = Pp.reshape(n, L, LINE).min(axis=2)         # least entry of row j in line l
SCORE_LINES = 22                              # one exact score ~ 22 row-line reads
def run(start, D):
    f = P[start].copy()                          # exact sums (for truth)
    chosen = np.zeros(n + pad, bool); chosen[start] = True; chosen[n:] = True
    active = np.ones(L, bool); lb = np.zeros(L); since = np.zeros(L, int)
    cost_lines = cost_min = cost_catch = 0; steps = 0; base = 0
    last = start; seqlen = 1
    fp = np.concatenate([f, np.full(pad, np.inf)])
    for t in range(1, n):
        live = ~chosen.reshape(L, LINE).all(axis=1)
        base += live.sum()
        # add row `last`: active lines read it, deferred lines only its line minima
        cost_lines += (live & active).sum(); cost_min += (live & ~active).sum()
        lb[~active] += M[last][~active]; since[~active] += 1
        g = np.where(chosen, np.inf, fp).reshape(L, LINE)
        lmin = g.min(axis=1)
        m = lmin[active & live].min() if (active & live).any() else np.inf
        while True:
            wake = live & ~active & (lb <= m)
            if not wake.any(): break
            for l in np.nonzero(wake)[0]:
                cost_catch += min(since[l], LINE * SCORE_LINES)
                active[l] = True; since[l] = 0
                assert lb[l] <= lmin[l] + 1e-9
            m = min(m, lmin[wake].min())
        j = int(np.argmin(g)); assert active[j // LINE]
        # defer lines far above the minimum
        far = live & active & (lmin > m + D)
        active[far] = False; lb[far] = lmin[far]; since[far] = 0
        chosen[j] = True; fp += np.concatenate([P[j], np.full(pad, 0.0)]); last = j
    tot = cost_lines + cost_min * 2 / 64 + cost_catch
    return base, cost_lines, cost_min, cost_catch, tot / base
for D in [float(x) for x in sys.argv[2:]]:
    r = [run(s, D) for s in (1, n // 3)]
    print("D", D, "baseline lines", sum(x[0] for x in r), "active", sum(x[1] for x in r), "deferred", sum(x[2] for x in r), "catch-up", sum(x[3] for x in r), "ratio %.3f" % np.mean([x[4] for x in r]), flush=True)
