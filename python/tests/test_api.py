"""The Python surface: input conversion, shapes and dtypes, docstrings, and every bad input
as a Python exception with a clear one-line message."""

import doctest
import pydoc

import numpy as np
import pytest

import weft
from reference import exact_set, sim64


@pytest.fixture
def e():
    return np.random.default_rng(7).standard_normal((30, 8)).astype(np.float32)


def test_any_float_array_like_gives_the_same_result(e):
    want = weft.topk(e, 5)
    for other in (
        e.astype(np.float64),
        e.tolist(),
        np.asfortranarray(e),
        np.repeat(e, 2, axis=1)[:, ::2],  # strided view
    ):
        got = weft.topk(other, 5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    ints = np.arange(1, 31 * 3 + 1).reshape(31, 3)
    assert weft.similarity(ints).shape == (31, 31)


def test_input_is_not_modified(e):
    before = e.copy()
    weft.similarity(e)
    weft.diversity(e, [0, 1])
    np.testing.assert_array_equal(e, before)


def test_docstrings_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    tried = 0
    for f in (weft.similarity, weft.topk, weft.diversity):
        for test in finder.find(f.__doc__, f.__name__, globs={}):
            result = runner.run(test)
            assert result.failed == 0, f.__name__
            tried += result.attempted
    assert tried >= 8


def test_help_topk_shows_an_example():
    text = pydoc.render_doc(weft.topk, renderer=pydoc.plaintext)
    assert "topk(embeddings, k, *, threads=None)" in text
    assert ">>> ids, scores = weft.topk(E, 1)" in text
    assert "k nearest neighbours" in weft.topk.__doc__
    assert "progress=True" in weft.diversity_cache.__text_signature__


@pytest.mark.parametrize(
    "bad, problem",
    [(np.nan, "contains NaN"), (np.inf, "contains Inf"), (-np.inf, "contains Inf")],
)
@pytest.mark.parametrize("call", ["similarity", "topk", "diversity"])
def test_bad_row_is_named(e, bad, problem, call):
    e[17, 3] = bad
    args = {"similarity": (), "topk": (3,), "diversity": ([0],)}[call]
    with pytest.raises(ValueError) as err:
        getattr(weft, call)(e, *args)
    assert str(err.value) == f"weft.{call}: embeddings: row 17 {problem}"


def test_zero_row_is_named(e):
    e[4] = 0
    with pytest.raises(ValueError, match=r"^weft.topk: embeddings: row 4 is all zeros$"):
        weft.topk(e, 2)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float64_overflow_is_named(e):
    e64 = e.astype(np.float64)
    e64[9, 0] = 1e300
    with pytest.raises(ValueError, match=r"^weft.similarity: embeddings: row 9: a value overflows float32"):
        weft.similarity(e64)


@pytest.mark.parametrize(
    "value, exc, match",
    [
        (np.zeros(5, dtype=np.float32), ValueError, r"must be a 2-D array .*got shape \(5,\)"),
        (np.zeros((2, 3, 4)), ValueError, r"must be a 2-D array .*got shape \(2, 3, 4\)"),
        ([[1.0, 2.0], [3.0]], ValueError, r"must be a 2-D array of floats"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, r"must be floats, got dtype <U1"),
        (np.ones((3, 2), dtype=bool), TypeError, r"must be floats, got dtype bool"),
        (np.zeros((0, 4), dtype=np.float32), ValueError, r"need at least 1 row, got 0"),
        (np.zeros((3, 0), dtype=np.float32), ValueError, r"do not form a 3×0 matrix"),
    ],
)
def test_shape_and_type_errors(value, exc, match):
    with pytest.raises(exc, match=match):
        weft.similarity(value)


@pytest.mark.parametrize("k", [0, -1, 30, 31])
def test_k_out_of_range(e, k):
    with pytest.raises(ValueError, match=rf"^weft.topk: k must be an integer in 1..N-1 \(N = 30\), got {k}$"):
        weft.topk(e, k)


def test_k_must_be_an_integer(e):
    with pytest.raises(TypeError):
        weft.topk(e, 2.5)


@pytest.mark.parametrize("starts, shown", [([0, 30], 30), ([-1], -1), (99, 99)])
def test_start_out_of_range(e, starts, shown):
    with pytest.raises(ValueError, match=rf"^weft.diversity: start {shown} is out of range 0..30$"):
        weft.diversity(e, starts)


def test_starts_type_and_length(e):
    with pytest.raises(TypeError, match="starts must be an int or a sequence of ints"):
        weft.diversity(e, "0")
    with pytest.raises(ValueError, match="length must be a positive integer or None, got 0"):
        weft.diversity(e, [0], length=0)
    assert weft.diversity(e, np.array([2, 5]), length=3).shape == (2, 3)
    assert weft.diversity(e, [], length=3).shape == (0, 3)


@pytest.mark.parametrize("threads", [0, -2])
def test_threads_must_be_positive(e, threads):
    with pytest.raises(ValueError, match=f"threads must be a positive integer or None, got {threads}"):
        weft.topk(e, 2, threads=threads)


def test_threads_do_not_change_results():
    e = exact_set(200, 16, np.random.default_rng(3))
    one = weft.topk(e, 7, threads=1)
    many = weft.topk(e, 7, threads=4)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(weft.similarity(e, threads=1), weft.similarity(e, threads=3))
    np.testing.assert_array_equal(weft.similarity(e), sim64(e).astype(np.float32))


def test_stubs_match_the_module():
    """weft.pyi (shipped with py.typed) names what the module exports, with the same
    parameters (names, kinds, defaults) as the runtime signatures."""
    import ast
    import inspect
    import os

    stub_path = os.path.join(os.path.dirname(weft.__file__), "__init__.pyi")
    assert os.path.exists(os.path.join(os.path.dirname(weft.__file__), "py.typed"))
    tree = ast.parse(open(stub_path).read())
    stub_all = next(
        ast.literal_eval(n.value) for n in tree.body
        if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"
    )
    assert sorted(stub_all) == sorted(weft.__all__)
    defs = {}
    for n in tree.body:
        if isinstance(n, ast.FunctionDef):
            defs[n.name] = n  # the last one: the implementation after any overloads
    for name in ("similarity", "topk", "diversity", "diversity_cache", "open_cache"):
        args = defs[name].args
        stub = [a.arg for a in args.posonlyargs + args.args] + ["*"] * bool(args.kwonlyargs)
        stub += [a.arg for a in args.kwonlyargs]
        stub_defaults = [ast.literal_eval(d) for d in args.kw_defaults if d is not None]
        sig = inspect.signature(getattr(weft, name))
        runtime, runtime_defaults, star = [], [], False
        for p in sig.parameters.values():
            if p.kind is p.KEYWORD_ONLY and not star:
                runtime.append("*")
                star = True
            runtime.append(p.name)
            if p.kind is p.KEYWORD_ONLY:
                runtime_defaults.append(p.default)
        assert stub == runtime, name
        assert stub_defaults == runtime_defaults, name


def test_c_contiguous_float32_is_not_copied():
    """numpy reports its allocations to tracemalloc (weft's own, in Rust, are not): a
    C-contiguous float32 input allocates no numpy array during the call, anything else one
    float32 copy of the input."""
    import tracemalloc

    e = np.random.default_rng(2).standard_normal((2000, 64)).astype(np.float32)
    copy_bytes = e.nbytes  # 512,000

    def peak(x):
        tracemalloc.start()
        try:
            weft.topk(x, 3, threads=1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(e) < copy_bytes // 10
    assert peak(e.astype(np.float64)) >= copy_bytes
    assert peak(np.asfortranarray(e)) >= copy_bytes
