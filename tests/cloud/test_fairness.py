"""Every device's fair share: token buckets per device, a bounded table of them, and the
round-robin frame queue."""

from __future__ import annotations

import threading

from edgelens.cloud.fairness import Allowance, DeviceBudgets, FairQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budgets(clock: Clock, *, devices: int = 10) -> DeviceBudgets:
    return DeviceBudgets(
        messages=Allowance(per_s=2.0, burst=4.0),
        size=Allowance(per_s=1000.0, burst=3000.0),
        devices=devices,
        clock=clock,
    )


def test_a_device_gets_its_burst_then_its_rate():
    clock = Clock()
    budget = budgets(clock)
    assert [budget.admit("cam", 10) for _ in range(5)] == [True] * 4 + [False]
    clock.now += 0.5  # one message's worth at 2 a second
    assert budget.admit("cam", 10) and not budget.admit("cam", 10)
    clock.now += 60  # a long pause refills to the burst, not beyond
    assert sum(budget.admit("cam", 10) for _ in range(10)) == 4


def test_bytes_are_budgeted_too_and_a_refusal_costs_nothing():
    clock = Clock()
    budget = budgets(clock)
    assert budget.admit("cam", 2500)
    assert not budget.admit("cam", 1000), "500 bytes left"
    assert budget.admit("cam", 500), "the refused message took no tokens"
    clock.now += 1.0
    assert budget.admit("cam", 1000) and not budget.admit("cam", 1)


def test_one_device_over_budget_leaves_the_others_theirs():
    clock = Clock()
    budget = budgets(clock)
    while budget.admit("flood", 10):
        pass
    assert all(budget.admit(f"cam-{i}", 10) for i in range(5))


def test_the_table_of_devices_is_bounded_least_recently_seen_first():
    clock = Clock()
    budget = budgets(clock, devices=3)
    while budget.admit("flood", 10):
        pass
    for made_up in ("x1", "x2"):
        budget.admit(made_up, 10)
    assert not budget.admit("flood", 10), "seen again just now: still remembered"
    for made_up in ("y1", "y2", "y3"):
        budget.admit(made_up, 10)
    assert len(budget) == 3
    assert budget.admit("flood", 10), "forgotten, so it starts again with a full bucket"


def test_a_clock_going_backwards_adds_no_tokens():
    clock = Clock()
    budget = budgets(clock)
    while budget.admit("cam", 10):
        pass
    clock.now -= 50
    assert not budget.admit("cam", 10)


def test_frames_are_taken_round_robin_across_devices():
    frames: FairQueue[str] = FairQueue(capacity=64, per_device=4)
    for i in range(4):
        frames.put("flood", f"flood-{i}")
    frames.put("quiet", "quiet-0")
    taken = [frames.take(timeout=0) for _ in range(5)]
    assert taken[:2] == ["flood-0", "quiet-0"], "the quiet frame waits for one flood frame"
    assert taken[2:] == ["flood-1", "flood-2", "flood-3"]
    assert frames.take(timeout=0) is None and len(frames) == 0


def test_a_device_keeps_its_newest_frames_only():
    frames: FairQueue[int] = FairQueue(capacity=64, per_device=3)
    dropped = sum(frames.put("cam", i) for i in range(10))
    assert dropped == 7 and len(frames) == 3
    assert [frames.take(timeout=0) for _ in range(3)] == [7, 8, 9]


def test_when_full_the_longest_backlog_loses_its_oldest():
    frames: FairQueue[str] = FairQueue(capacity=4, per_device=4)
    for i in range(3):
        frames.put("flood", f"flood-{i}")
    frames.put("a", "a-0")
    assert frames.put("b", "b-0") == 1
    assert len(frames) == 4
    assert sorted(frames.take(timeout=0) for _ in range(4)) == ["a-0", "b-0", "flood-1", "flood-2"]
    frames = FairQueue(capacity=2, per_device=4)
    for device in ("a", "b", "c"):
        frames.put(device, device)
    assert [frames.take(timeout=0) for _ in range(3)] == ["b", "c", None]


def test_take_waits_for_a_frame():
    frames: FairQueue[str] = FairQueue(capacity=4, per_device=2)
    threading.Timer(0.05, frames.put, ("cam", "late")).start()
    assert frames.take(timeout=5) == "late"
