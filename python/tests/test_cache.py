"""The diversity cache from Python: interrupted (SIGKILL, SIGINT) and resumed
byte-identical to an uninterrupted run, read back with open_cache, and its errors."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import weft

HERE = os.path.dirname(os.path.abspath(__file__))


def embeddings(n, d=16, seed=5):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def child(code, *args):
    """A Python process running `code` (with weft and the embeddings helper imported)."""
    prelude = "import sys, os, json, signal, time\nimport numpy as np\nimport weft\n"
    prelude += f"sys.path.insert(0, {HERE!r})\nfrom test_cache import embeddings\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The bytes of an uninterrupted cache of 200 items, and its path."""
    path = tmp_path_factory.mktemp("whole") / "whole.cache"
    info = weft.diversity_cache(embeddings(200), path, progress=False)
    assert info["complete"] and info["done"] == 200 and info["n"] == 200
    return path.read_bytes(), path


def test_killed_with_sigkill_then_resumed_is_byte_identical(tmp_path, whole):
    path = tmp_path / "killed.cache"
    # The child reports the first committed batch, then waits in its progress function
    # to be killed: the kill lands between batches with some but not all saved.
    p = child(
        """
        def report(done, total):
            print(done, total, flush=True)
            time.sleep(600)
        weft.diversity_cache(embeddings(200), sys.argv[1], progress=report)
        """,
        path,
    )
    line = p.stdout.readline().split()
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    done = int(line[0])
    assert 0 < done < 200 and int(line[1]) == 200
    with weft.open_cache(path) as c:
        assert c.info()["done"] == done and not c.info()["complete"]
    with pytest.raises(OSError, match="is an unfinished cache"):
        weft.diversity_cache(embeddings(200), path, progress=False)
    info = weft.diversity_cache(embeddings(200), path, resume=True, progress=False)
    assert info["complete"] and info["done"] == 200
    assert path.read_bytes() == whole[0]


def test_sigint_raises_keyboard_interrupt_after_the_batch_then_resumes(tmp_path, whole):
    path = tmp_path / "sigint.cache"
    # Ctrl-C as the terminal sends it, while the engine computes without the GIL and no
    # progress function runs Python code: weft notices it after the batch in flight.
    # The child installs Python's own SIGINT handler first: a shell starts background
    # jobs with SIGINT ignored, Python keeps an inherited "ignore", and so a run of
    # `make test` launched with `&` saw the child finish (found on 2026-12-04).
    p = child(
        """
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            weft.diversity_cache(embeddings(2000, 32), sys.argv[1], progress=False)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(0)
        print("finished", flush=True)
        """,
        path,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with weft.open_cache(path) as c:
                if c.info()["done"] > 0:
                    break
        except OSError:
            pass
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert out.strip() == "KeyboardInterrupt", (out, err)
    with weft.open_cache(path) as c:
        info = c.info()
    assert 0 < info["done"] < 2000 and not info["complete"]
    # resumed in a child too, and compared with an uninterrupted run
    whole2000 = tmp_path / "whole2000.cache"
    weft.diversity_cache(embeddings(2000, 32), whole2000, progress=False)
    info = weft.diversity_cache(embeddings(2000, 32), path, resume=True, progress=False)
    assert info["complete"]
    assert path.read_bytes() == whole2000.read_bytes()


def test_progress_function_exception_stops_and_resumes(tmp_path, whole):
    path = tmp_path / "stopped.cache"
    calls = []

    def report(done, total):
        calls.append((done, total))
        if len(calls) == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        weft.diversity_cache(embeddings(200), path, progress=report)
    assert [t for _, t in calls] == [200, 200]
    assert 0 < calls[0][0] < calls[1][0] < 200
    with weft.open_cache(path) as c:
        assert c.info()["done"] == calls[1][0]
    weft.diversity_cache(embeddings(200), path, resume=True, progress=False)
    assert path.read_bytes() == whole[0]


def test_open_cache_reads_what_diversity_computes(whole):
    e = embeddings(200)
    with weft.open_cache(whole[1]) as c:
        assert len(c) == 200
        info = c.info()
        assert info["n"] == 200 and info["d"] == 16 and info["id_width"] == 2
        assert info["complete"] and len(info["hash"]) == 64
        for start in (0, 17, 199):
            seq = c[start]
            assert seq.dtype == np.uint32
            assert seq.tolist() == weft.diversity(e, start).tolist()
        assert c[-1].tolist() == c[199].tolist()
        with pytest.raises(IndexError, match=r"start 200 is out of range 0..200"):
            c[200]
        with pytest.raises(IndexError, match=r"start -201 is out of range 0..200"):
            c[-201]
        assert not c.closed
    assert c.closed
    with pytest.raises(ValueError, match="the cache is closed"):
        c[0]


def test_missing_orderings_and_file_errors(tmp_path, whole):
    path = tmp_path / "partial.cache"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weft.diversity_cache(embeddings(200), path, progress=stop)
    with weft.open_cache(path) as c:
        missing = next(s for s in range(200) if not c.is_done(s))
        with pytest.raises(LookupError, match=f"the ordering from start {missing} is not in the cache yet"):
            c[missing]
    with pytest.raises(FileNotFoundError, match=r"weft.open_cache: .*nope.cache: No such file"):
        weft.open_cache(tmp_path / "nope.cache")
    junk = tmp_path / "junk.cache"
    junk.write_bytes(b"not a cache at all")
    with pytest.raises(OSError, match=r"weft.open_cache: .*junk.cache: "):
        weft.open_cache(junk)
    with pytest.raises(OSError, match="is a finished cache; refusing to overwrite it"):
        weft.diversity_cache(embeddings(200), whole[1], progress=False)
    with pytest.raises(ValueError, match="resume and force cannot be used together"):
        weft.diversity_cache(embeddings(200), path, resume=True, force=True)
    with pytest.raises(OSError, match="written for other embeddings"):
        weft.diversity_cache(embeddings(200, seed=6), path, resume=True, progress=False)
    info = weft.diversity_cache(embeddings(200), path, force=True, progress=False)
    assert info["complete"] and path.read_bytes() == whole[0]


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, capfd):
    weft.diversity_cache(embeddings(100), tmp_path / "quiet.cache")
    assert capfd.readouterr().err == ""


def test_the_mapped_source_file_is_never_overwritten(tmp_path):
    src = tmp_path / "emb.npy"
    np.save(src, embeddings(50))
    before = src.read_bytes()
    e = np.load(src, mmap_mode="r")
    with pytest.raises(ValueError, match="is the file the embeddings are mapped from"):
        weft.diversity_cache(e, src, force=True, progress=False)
    assert src.read_bytes() == before
    # read in place from the mapping, the cache elsewhere is fine
    info = weft.diversity_cache(e, tmp_path / "ok.cache", progress=False)
    assert info["complete"] and info["n"] == 50


def test_bar_on_a_terminal(tmp_path):
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {HERE!r}); import weft; from test_cache import embeddings; "
         f"weft.diversity_cache(embeddings(100), {str(tmp_path / 'bar.cache')!r})"],
        stderr=slave, stdout=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait() == 0
    text = b"".join(chunks).decode()
    assert "diversity cache [" in text and "100/100 (100%)" in text, text
