"""The pieces of every worker stage: the newest-per-key queue and a stage's threads."""

from __future__ import annotations

import threading

from edgelens.cloud.stages import NewestPerKey, Outcomes, StageThreads

OUTCOMES = Outcomes("queued", "replaced", "dropped")


def test_a_newer_item_replaces_its_keys_and_goes_last():
    waiting: NewestPerKey[str] = NewestPerKey(4, outcomes=OUTCOMES)
    assert [waiting.put("a", "a1"), waiting.put("b", "b1"), waiting.put("a", "a2")] == [
        "queued",
        "queued",
        "replaced",
    ]
    assert len(waiting) == 2
    assert [waiting.take(timeout=0), waiting.take(timeout=0), waiting.take(timeout=0)] == [
        "b1",
        "a2",
        None,
    ]


def test_the_oldest_goes_when_full_and_take_all_empties_it():
    waiting: NewestPerKey[int] = NewestPerKey(2, outcomes=OUTCOMES)
    assert [waiting.put(key, i) for i, key in enumerate("abc")] == ["queued", "queued", "dropped"]
    assert waiting.take_all(timeout=0) == [1, 2]
    assert waiting.take_all(timeout=0) == [] and len(waiting) == 0


def test_a_waiting_taker_wakes_on_put():
    waiting: NewestPerKey[str] = NewestPerKey(2, outcomes=OUTCOMES)
    threading.Timer(0.05, waiting.put, ("a", "a1")).start()
    assert waiting.take(timeout=5) == "a1"


def test_a_stage_runs_its_threads_and_skips_joining_ones_never_started():
    ran = threading.Event()
    stage = StageThreads(("test-stage", ran.set))
    stage.join()  # never started: nothing to wait for
    stage.start()
    stage.join()
    assert ran.is_set() and not stage.alive()
