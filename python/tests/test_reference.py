"""Property tests (hypothesis) against the float64 reference of docs/design.md: similarity
exact on exact data and within float32 rounding otherwise; top-k ties exact, and on random
data equal to the reference except swaps of near-ties (< 1e-6); orderings equal to the
reference on exact data and within 1e-7 of the f64 minimum at every pick otherwise."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import weft
from reference import exact_set, ordering64, replay_excess, sim64, topk64

settings.register_profile("weft", max_examples=60, deadline=None)
settings.load_profile("weft")


@st.composite
def random_sets(draw):
    n = draw(st.integers(2, 60))
    d = draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, d)).astype(np.float32)
    # some rows far from unit length, some duplicated: normalisation and ties both matter
    if draw(st.booleans()):
        e *= rng.uniform(1e-3, 1e3, size=(n, 1)).astype(np.float32)
    if n > 3 and draw(st.booleans()):
        e[1] = e[0]
    return e


@st.composite
def exact_sets(draw):
    n = draw(st.integers(5, 50))
    d = draw(st.integers(4, 12))
    return exact_set(n, d, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))


@given(exact_sets())
def test_similarity_is_exact_on_exact_data(e):
    s = weft.similarity(e)
    assert s.dtype == np.float32 and s.shape == (len(e), len(e))
    np.testing.assert_array_equal(s.astype(np.float64), sim64(e))


@given(random_sets())
def test_similarity_matches_f64_within_f32_rounding(e):
    s = weft.similarity(e, threads=2)
    np.testing.assert_allclose(s, sim64(e), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(s, s.T)


@given(exact_sets(), st.data())
def test_topk_ties_exact(e, data):
    n = len(e)
    k = data.draw(st.integers(1, n - 1))
    ids, scores = weft.topk(e, k)
    assert ids.dtype == np.uint32 and scores.dtype == np.float32
    assert ids.shape == scores.shape == (n, k)
    s = sim64(e)
    for q in range(n):
        assert ids[q].tolist() == topk64(s, q, k)
        np.testing.assert_array_equal(scores[q].astype(np.float64), s[q, ids[q]])


@given(random_sets(), st.data())
def test_topk_exact_except_near_ties(e, data):
    n = len(e)
    k = data.draw(st.integers(1, n - 1))
    ids, scores = weft.topk(e, k, threads=data.draw(st.sampled_from([None, 1, 3])))
    s = sim64(e)
    for q in range(n):
        got = ids[q].tolist()
        assert q not in got and len(set(got)) == k
        for g, w in zip(got, topk64(s, q, k)):
            if g != w:
                assert abs(s[q, g] - s[q, w]) < 1e-6, (q, g, w)
        np.testing.assert_allclose(scores[q], s[q, got], rtol=0, atol=1e-6)


@given(exact_sets(), st.data())
def test_orderings_equal_reference_on_exact_data(e, data):
    n = len(e)
    starts = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    seqs = weft.diversity(e, starts)
    assert seqs.dtype == np.uint32 and seqs.shape == (len(starts), n)
    s = sim64(e)
    for start, seq in zip(starts, seqs):
        assert seq.tolist() == ordering64(s, start)


@given(random_sets(), st.data())
def test_orderings_within_1e7_of_f64_minimum(e, data):
    n = len(e)
    starts = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    length = data.draw(st.one_of(st.none(), st.integers(1, n + 3)))
    seqs = weft.diversity(e, starts, length=length)
    want_len = n if length is None else min(length, n)
    assert seqs.shape == (len(starts), want_len)
    s = sim64(e)
    full = weft.diversity(e, starts)
    for start, seq, whole in zip(starts, seqs, full):
        assert seq[0] == start
        assert replay_excess(s, whole) <= 1e-7
        assert sorted(whole.tolist()) == list(range(n))
        # a prefix is exactly the beginning of the whole ordering
        assert seq.tolist() == whole[:want_len].tolist()


def test_single_start_gives_one_row():
    e = exact_set(20, 6, np.random.default_rng(1))
    one = weft.diversity(e, 3)
    assert one.shape == (20,)
    assert one.tolist() == weft.diversity(e, [3])[0].tolist() == ordering64(sim64(e), 3)
    # the antipodal pair: from 3 the first pick is its opposite, 4
    assert one[1] == 4
