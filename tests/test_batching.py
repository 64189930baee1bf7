"""zoo.serve.batching.Coalescer: concurrent requests share calls, each gets its own results, a bad one fails alone."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from zoo.serve.batching import Coalescer


def run_threads(target, args_list) -> None:
    threads = [threading.Thread(target=target, args=(a,)) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)


def test_alone_a_request_runs_at_once():
    c = Coalescer(lambda items: [x + 1 for x in items])
    assert c.submit([1, 2, 3]) == ([2, 3, 4], 3) and c.calls == 1


def test_concurrent_requests_are_coalesced_and_each_gets_its_own_results():
    runners = Counter()

    def run(items):
        runners[threading.get_ident()] += 1
        time.sleep(0.02)  # a forward pass: others arrive meanwhile
        return [x * 10 for x in items]

    c = Coalescer(run, max_items=16)
    got, errors = {}, []

    users = set()

    def user(k):
        users.add(threading.get_ident())
        try:
            for j in range(5):
                items = [k * 100 + j, k * 100 + j + 50]
                results, rows = c.submit(items)
                assert results == [x * 10 for x in items] and 2 <= rows <= 16
                got[(k, j)] = results
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    run_threads(user, range(12))
    assert not errors and len(got) == 60
    assert c.calls < 60, "requests that arrived together shared a call"
    assert len(runners) == 1 and sum(runners.values()) == c.calls, \
        "every call runs on the coalescer's one worker thread (one OpenMP team, one malloc arena)"
    assert next(iter(runners)) not in users, "not on a requesting thread"


def test_a_failing_request_fails_alone():
    def run(items):
        time.sleep(0.01)
        if "bad" in items:
            raise ValueError("bad item")
        return [s.upper() for s in items]

    c = Coalescer(run)
    out, errors = {}, {}

    def user(text):
        try:
            out[text] = c.submit([text])[0]
        except ValueError as e:
            errors[text] = str(e)

    run_threads(user, ["a", "bad", "b", "c", "d", "e"])
    assert errors == {"bad": "bad item"}
    assert out == {t: [t.upper()] for t in "abcde"}
    with pytest.raises(ValueError):
        c.submit(["bad"])
    assert c.submit(["z"]) == (["Z"], 1), "it keeps serving"
