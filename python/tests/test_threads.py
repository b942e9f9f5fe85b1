"""The GIL is released while weft computes: two Python threads calling weft at once are
both inside their calls at the same time.

The evidence is an order of events, not a timing ratio: the switch interval is raised so
that a thread holding the GIL keeps it until it blocks or releases it itself. A call that
held the GIL would run start to end before the other thread could even record its start;
a call that releases it lets the other thread start its own call meanwhile."""

import sys
import threading

import numpy as np

import weft


def events_of_two_threads(job):
    """Runs `job(i)` in two threads released together; returns the ("start"/"end", i)
    events in the order they happened (list.append is atomic under the GIL)."""
    events = []
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        events.append(("start", i))
        job(i)
        events.append(("end", i))

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return events


def overlapped(events):
    """Whether both threads had started before either ended."""
    return [kind for kind, _ in events[:2]] == ["start", "start"]


def test_two_threads_are_inside_topk_at_once():
    rng = np.random.default_rng(0)
    # ~0.2 s a call: the other thread has that long to be scheduled and start its own
    jobs = [rng.standard_normal((5000, 128)).astype(np.float32) for _ in range(2)]
    results = [None, None]

    def job(i):
        results[i] = weft.topk(jobs[i], 10, threads=1)

    # A call holding the GIL can never overlap; one releasing it overlaps unless the other
    # thread is not scheduled for a whole call, so a few tries make a busy machine harmless.
    tries = [events_of_two_threads(job) for _ in range(3)]
    assert any(overlapped(events) for events in tries), tries
    # and each thread got its own job's answer
    for i in range(2):
        np.testing.assert_array_equal(results[i][0], weft.topk(jobs[i], 10)[0])


def test_the_evidence_tells_a_gil_holding_call_apart():
    # The same harness on a call that holds the GIL throughout: no overlap.
    def job(i):
        sum(range(3_000_000))

    assert not any(overlapped(events_of_two_threads(job)) for _ in range(3))
