"""libweft.so through Python's ctypes (the binding of examples/python/ctypes_weft.py):
results against numpy float64 references, errors as exceptions with libweft's messages,
and the cache stopped and resumed byte-identical to one uninterrupted run.

    /usr/bin/python3 -m unittest crates/weft-ffi/tests/python/test_ctypes.py
"""

import filecmp
import os
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
import ctypes_weft as cw  # noqa: E402

W = cw.Weft(threads=2)


def data(n=70, d=9, seed=3):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def unit(E):
    """Rows normalised as weft does: the norm in float64, values rounded to float32."""
    E64 = E.astype(np.float64)
    return (E64 / np.sqrt((E64 * E64).sum(axis=1, keepdims=True))).astype(np.float32)


def naive_ordering(U, start):
    """The diversity ordering by its definition (docs/design.md), in float64."""
    n = len(U)
    U64 = U.astype(np.float64)
    c = np.zeros(U.shape[1])
    taken = np.zeros(n, bool)
    seq, pick = [], start
    for _ in range(n):
        seq.append(pick)
        taken[pick] = True
        c += U64[pick]
        if len(seq) == n:
            break
        s = U64 @ c
        s[taken] = np.inf
        pick = int(np.argmin(s))  # first minimum: ties to the lowest id
    return np.array(seq, np.uint32)


class CtypesTest(unittest.TestCase):
    def test_similarity_matches_float64(self):
        E = data()
        U = unit(E).astype(np.float64)
        S = W.similarity(E)
        self.assertEqual(S.dtype, np.float32)
        self.assertLess(np.abs(S - U @ U.T).max(), 1e-5)
        self.assertTrue((S == S.T).all())

    def test_topk_is_the_row_ranking_of_s(self):
        E = data()
        S = W.similarity(E)
        ids, scores = W.topk(E, 6)
        for i in range(len(E)):
            row = S[i].astype(np.float64)
            row[i] = -np.inf
            order = np.lexsort((np.arange(len(E)), -row))[:6]  # larger first, then lower id
            self.assertEqual(ids[i].tolist(), order.tolist())
            self.assertTrue((scores[i] == S[i, order]).all())

    def test_diversity_matches_the_definition(self):
        E = data()
        U = unit(E)
        starts = [0, 33, 69]
        seqs = W.diversity(E, starts)
        for r, s in enumerate(starts):
            self.assertEqual(seqs[r].tolist(), naive_ordering(U, s).tolist())
        prefix = W.diversity(E, starts, length=7)
        self.assertTrue((prefix == seqs[:, :7]).all())

    def test_errors_are_exceptions_with_the_message(self):
        E = data()
        E[4, :] = 0
        with self.assertRaises(cw.WeftError) as c:
            W.similarity(E)
        self.assertEqual(c.exception.code, 3)
        self.assertEqual(str(c.exception), "weft_similarity: embeddings: row 4 is all zeros")
        E = data()
        with self.assertRaises(cw.WeftError) as c:
            W.diversity(E, [70])
        self.assertEqual(str(c.exception), "weft_diversity: diversity: start 70 is out of range 0..70")
        with self.assertRaises(cw.WeftError) as c:
            W.topk(E, 0)
        self.assertEqual(c.exception.code, 4)
        # a buffer shorter than the result is refused, never overrun
        out = np.empty(10, np.float32)
        rc = W.lib.weft_similarity(E, 70, 9, W.opts, out, out.size)
        self.assertEqual(rc, 2)
        self.assertIn("out holds 10 elements", W.lib.weft_last_error().decode())

    def test_cache_stopped_and_resumed_is_byte_identical(self):
        E = data(n=150)
        with tempfile.TemporaryDirectory() as tmp:
            one, two = os.path.join(tmp, "one.cache"), os.path.join(tmp, "two.cache")
            done, state = W.diversity_cache(E, one)
            self.assertTrue(done and state.complete)
            seen = []
            done, state = W.diversity_cache(E, two, progress=lambda d, t: seen.append((d, t)), stop_at=1)
            self.assertFalse(done)
            self.assertEqual((state.done, seen), (32, [(32, 150)]))
            with self.assertRaises(cw.WeftError) as c:
                W.diversity_cache(E, two)
            self.assertIn("is an unfinished cache (32 of 150 orderings)", str(c.exception))

            def fail(done, total):
                raise KeyError("from the callback")

            with self.assertRaises(KeyError):
                W.diversity_cache(E, two, resume=True, progress=fail)
            done, state = W.diversity_cache(E, two, resume=True)
            self.assertTrue(done and state.done == 150)
            self.assertTrue(filecmp.cmp(one, two, shallow=False))
            U = unit(E)
            self.assertEqual(W.cache_get(two, 149).tolist(), naive_ordering(U, 149).tolist())


if __name__ == "__main__":
    unittest.main()
