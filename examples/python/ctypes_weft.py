"""libweft.so from Python with ctypes: numpy arrays in, numpy arrays out, no extension
module to build. The "Python as glue" exercise, done right: argtypes and restypes declared
for every function (so a wrong call is a TypeError, not a crash), buffers owned by numpy
and passed as pointers, status codes turned into exceptions with libweft's message, and
the GIL released by ctypes for the duration of every call (weft runs on all cores).

    cargo build --release -p weft-ffi
    /usr/bin/python3 examples/python/ctypes_weft.py        # numpy from python3-numpy

The `weft` Python package (python/) is the full binding; this file shows the C ABI.
"""

import ctypes as C
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
u32p = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")


class Options(C.Structure):
    """weft_options (include/weft.h)."""

    _fields_ = [("threads", C.c_size_t), ("budget", C.c_uint64)]


PROGRESS = C.CFUNCTYPE(None, C.c_size_t, C.c_size_t, C.c_void_p)


class CacheOptions(C.Structure):
    """weft_cache_options."""

    _fields_ = [
        ("resume", C.c_int),
        ("force", C.c_int),
        ("threads", C.c_size_t),
        ("budget", C.c_uint64),
        ("progress", PROGRESS),
        ("user", C.c_void_p),
        ("cancel", C.c_void_p),
    ]


class CacheState(C.Structure):
    """weft_cache_state."""

    _fields_ = [
        ("n", C.c_size_t),
        ("d", C.c_size_t),
        ("id_width", C.c_size_t),
        ("done", C.c_size_t),
        ("complete", C.c_int),
        ("hash", C.c_uint8 * 32),
    ]


WEFT_ERR_CANCELLED = 10


class WeftError(Exception):
    """A libweft failure: `code` is its weft_status, the message its weft_last_error()."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def load(path=None):
    """Loads libweft.so ($WEFT_LIB, target/release/ of this repository, or the system's)
    and declares the functions used here."""
    path = path or os.environ.get("WEFT_LIB")
    if not path:
        built = os.path.join(ROOT, "target", "release", "libweft.so")
        path = built if os.path.exists(built) else "libweft.so"
    lib = C.CDLL(path)
    sz, i = C.c_size_t, C.c_int
    decl = {
        "weft_version": ([], C.c_char_p),
        "weft_last_error": ([], C.c_char_p),
        "weft_similarity": ([f32p, sz, sz, C.POINTER(Options), f32p, sz], i),
        "weft_topk": ([f32p, sz, sz, sz, C.POINTER(Options), u32p, f32p, sz], i),
        "weft_diversity": ([f32p, sz, sz, u32p, sz, sz, C.POINTER(Options), u32p, sz], i),
        "weft_cancel_new": ([], C.c_void_p),
        "weft_cancel_set": ([C.c_void_p], None),
        "weft_cancel_free": ([C.c_void_p], None),
        "weft_diversity_cache": (
            [f32p, sz, sz, C.c_char_p, C.POINTER(CacheOptions), C.POINTER(CacheState)],
            i,
        ),
        "weft_cache_open": ([C.c_char_p, C.POINTER(C.c_void_p)], i),
        "weft_cache_info": ([C.c_void_p, C.POINTER(CacheState)], i),
        "weft_cache_get": ([C.c_void_p, sz, u32p, sz], i),
        "weft_cache_close": ([C.c_void_p], None),
    }
    for name, (args, res) in decl.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


class Weft:
    """numpy in, numpy out; ids 0-based. Embeddings: any 2-D float array (converted once to
    C-contiguous float32 when it is not already)."""

    def __init__(self, lib=None, threads=0, budget=0):
        self.lib = lib or load()
        self.opts = Options(threads, budget)

    def _check(self, rc):
        if rc != 0:
            raise WeftError(rc, self.lib.weft_last_error().decode())

    @staticmethod
    def _emb(E):
        E = np.ascontiguousarray(E, dtype=np.float32)
        if E.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (rows × dims), got {E.ndim}-D")
        return E

    def version(self):
        return self.lib.weft_version().decode()

    def similarity(self, E):
        """(N, N) float32 cosine similarities."""
        E = self._emb(E)
        n, d = E.shape
        out = np.empty((n, n), np.float32)
        self._check(self.lib.weft_similarity(E, n, d, self.opts, out, out.size))
        return out

    def topk(self, E, k):
        """(ids (N, k) uint32, scores (N, k) float32), best first."""
        E = self._emb(E)
        n, d = E.shape
        ids = np.empty((n, k), np.uint32)
        scores = np.empty((n, k), np.float32)
        self._check(self.lib.weft_topk(E, n, d, k, self.opts, ids, scores, ids.size))
        return ids, scores

    def diversity(self, E, starts, length=0):
        """(len(starts), length or N) uint32: one diversity ordering per start."""
        E = self._emb(E)
        n, d = E.shape
        starts = np.ascontiguousarray(starts, dtype=np.uint32).reshape(-1)
        L = min(length, n) if length else n
        out = np.empty((len(starts), L), np.uint32)
        self._check(
            self.lib.weft_diversity(E, n, d, starts, len(starts), L, self.opts, out, out.size)
        )
        return out

    def diversity_cache(self, E, path, resume=False, force=False, progress=None, stop_at=None):
        """Every ordering into the cache file `path`; `progress(done, total)` after each
        batch. `stop_at`: cancel once that many orderings are done (to show resuming).
        Returns (complete, CacheState)."""
        E = self._emb(E)
        n, d = E.shape
        token = self.lib.weft_cancel_new()
        failure = []

        def report(done, total, _user):
            # An exception must not unwind into C: keep it, cancel, raise after the call.
            try:
                if progress:
                    progress(done, total)
                if stop_at is not None and done >= stop_at:
                    self.lib.weft_cancel_set(token)
            except BaseException as e:  # noqa: BLE001 (re-raised below)
                failure.append(e)
                self.lib.weft_cancel_set(token)

        cb = PROGRESS(report)
        co = CacheOptions(int(resume), int(force), self.opts.threads, self.opts.budget, cb, None, token)
        state = CacheState()
        try:
            rc = self.lib.weft_diversity_cache(E, n, d, os.fsencode(path), co, state)
            message = self.lib.weft_last_error().decode()
        finally:
            self.lib.weft_cancel_free(token)
        if failure:
            raise failure[0]
        if rc not in (0, WEFT_ERR_CANCELLED):
            raise WeftError(rc, message)
        return rc == 0, state

    def cache_get(self, path, start):
        """The ordering from `start` stored in the cache file `path` (uint32, 0-based)."""
        h = C.c_void_p()
        self._check(self.lib.weft_cache_open(os.fsencode(path), C.byref(h)))
        try:
            state = CacheState()
            self._check(self.lib.weft_cache_info(h, state))
            out = np.empty(state.n, np.uint32)
            self._check(self.lib.weft_cache_get(h, start, out, out.size))
            return out
        finally:
            self.lib.weft_cache_close(h)


def main():
    E = np.load(os.path.join(ROOT, "examples", "data", "emb.npy"))
    with open(os.path.join(ROOT, "examples", "data", "fortunes.txt"), encoding="utf-8") as f:
        texts = f.read().split("\n%\n")
    w = Weft()
    print(f"libweft {w.version()}: {E.shape[0]} embeddings of {E.shape[1]}")
    S = w.similarity(E)
    ids, scores = w.topk(E, 3)
    assert ids[0, 0] == np.argmax(np.where(np.arange(len(E)) == 0, -2, S[0]))
    print(f"nearest to 0: {ids[0].tolist()} ({', '.join(f'{s:.3f}' for s in scores[0])})")
    seqs = w.diversity(E, [0, 1], length=5)
    for line in seqs:
        print("five most different:", line.tolist())
        for i in line[:3]:
            print("   ", texts[i].strip().splitlines()[0][:70])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fortunes.cache")
        done, state = w.diversity_cache(E, path, stop_at=len(E) // 4)
        print(f"stopped at {state.done} of {state.n}; resuming", file=sys.stderr)
        done, state = w.diversity_cache(E, path, resume=True)
        assert done and state.complete and state.done == len(E)
        assert (w.cache_get(path, 1) == w.diversity(E, [1])[0]).all()
        print(f"cache complete: {state.done} orderings, {state.id_width}-byte ids")
    try:
        w.topk(E, len(E))
    except WeftError as e:
        print("as expected:", e)
    print("ok")


if __name__ == "__main__":
    main()
