#!/usr/bin/env python3
"""The anchors for weft's compute benchmarks: numpy/OpenBLAS and faiss-cpu on the same data.

Times, as medians of several runs, on the embeddings weft's bench_compute uses:
  - numpy E @ E.T (the full similarity matrix), fresh and into a preallocated `out`
  - numpy top-10 of every row (argpartition on blocks of S, then sort)
  - faiss-cpu IndexFlatIP top-10 of every row (k = 11, self removed)
  - one numpy diversity ordering, f32 running sum (S already built), and all N orderings
    extrapolated from it

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy faiss-cpu
    /tmp/venv/bin/python bench/compute_anchor.py [EMB.npy] [--threads N]

Not needed by `make test`.
"""
import argparse
import os


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "shared", "data", "fortunes", "emb.npy")
    ap = argparse.ArgumentParser()
    ap.add_argument("emb", nargs="?", default=default)
    ap.add_argument("--threads", type=int, default=None, help="OMP/OpenBLAS threads")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if a.threads:
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[v] = str(a.threads)
    import numpy as np  # after the thread variables are set
    from anchors import median_time, normalised, numpy_ordering, numpy_topk

    e = normalised(np.load(a.emb))
    n, d = e.shape
    print(f"data: {a.emb} ({n} x {d}); numpy {np.__version__}; threads {a.threads or 'default'}")

    def row(name, secs, extra=""):
        print(f"{name:<44} {secs:>9.4f} s  {extra}")

    row("numpy E @ E.T", median_time(lambda: e @ e.T, a.runs))
    out = np.empty((n, n), np.float32)
    row("numpy E @ E.T into out (buffer reused)", median_time(lambda: np.matmul(e, e.T, out=out), a.runs))
    del out

    row("numpy top-10 (argpartition)", median_time(lambda: numpy_topk(e), a.runs))

    try:
        import faiss
        if a.threads:
            faiss.omp_set_num_threads(a.threads)

        def faiss_topk(k=10):
            index = faiss.IndexFlatIP(d)
            index.add(e)
            return index.search(e, k + 1)

        row("faiss-cpu IndexFlatIP top-10", median_time(faiss_topk, a.runs), f"faiss {faiss.__version__}")
    except ImportError:
        print("faiss-cpu not installed: skipped")

    s = e @ e.T

    one = median_time(lambda: numpy_ordering(s), a.runs)
    row("numpy one diversity ordering (f32 sums)", one, f"{n * n * 4 / one / 1e9:.1f} GB/s of S rows")
    row("numpy all orderings (extrapolated)", one * n, f"= {one * n / 60:.1f} min")


if __name__ == "__main__":
    main()
