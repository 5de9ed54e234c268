"""The live lane on its own, with time given by hand: what waits, what spills, what is kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from gateway.messages import PrinterState, Status
from services.uplink.live import LAG_S, LiveLane

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def status(n: int, printer: str = "p1", state: PrinterState = "printing") -> Status:
    return Status(
        id=f"{printer}-{n}", printer_id=printer, ts=T0 + timedelta(seconds=n), state=state
    )


def lane(interval_s: float = 10.0, max_waiting: int = 10_000) -> LiveLane:
    return LiveLane(interval_s, threading.Event(), max_waiting)


def test_the_happy_path_delivers_from_memory_and_acknowledges_after() -> None:
    live = lane()
    live.add(b"poller", [status(1), status(2)], now=0.0)
    assert live.wake.is_set()  # the delivery thread is woken
    taken = live.take(100)
    assert [e.status.id for e in taken] == ["p1-1", "p1-2"]
    assert live.take(100) == []  # taken once
    assert live.acks() == {}  # nothing acknowledged before the API has it
    assert live.due_to_spill(now=60.0) == []  # in flight: never spilled behind delivery's back
    live.delivered(taken, "2026-11-30T12:00:02Z")
    assert live.acks() == {b"poller": ["p1-1", "p1-2"]}
    assert live.acks() == {}  # each ack is owed once
    assert (live.stats.delivered, live.stats.waiting, live.stats.spilled) == (2, 0, 0)


def test_a_status_waiting_longer_than_the_lag_spills() -> None:
    live = lane()
    live.add(b"p", [status(1)], now=0.0)
    assert live.due_to_spill(now=LAG_S) == []
    due = live.due_to_spill(now=LAG_S + 0.1)
    assert [e.status.id for e in due] == ["p1-1"]
    live.spilled(due, live.spill_worthy(due))
    assert live.acks() == {b"p": ["p1-1"]}  # kept on disk: acknowledged
    assert live.take(10) == []


def test_a_failed_post_spills_at_once() -> None:
    live = lane()
    live.add(b"p", [status(1)], now=0.0)
    taken = live.take(10)
    live.failed(taken)
    assert [e.status.id for e in live.due_to_spill(now=0.1)] == ["p1-1"]


def test_nothing_spills_past_a_post_in_flight_so_the_spill_keeps_arrival_order() -> None:
    live = lane(interval_s=0.0)  # keep every status: the order is what is looked at
    live.add(b"p", [status(1), status(2)], now=0.0)
    in_flight = live.take(10)  # a slow post of 1 and 2
    live.add(b"p", [status(3), status(4)], now=1.0)
    assert live.due_to_spill(now=10.0) == []  # 3 and 4 are late, but 1 and 2 are still out
    live.failed(in_flight)
    due = live.due_to_spill(now=10.0)
    assert [e.status.id for e in due] == ["p1-1", "p1-2", "p1-3", "p1-4"]


def test_past_max_waiting_the_oldest_not_in_flight_spill_anyway() -> None:
    live = lane(interval_s=0.0, max_waiting=2)
    live.add(b"p", [status(1)], now=0.0)
    live.take(10)
    live.add(b"p", [status(2), status(3)], now=0.0)
    assert [e.status.id for e in live.due_to_spill(now=0.0)] == ["p1-2"]


def test_downsampling_keeps_one_per_interval_and_every_change_of_state() -> None:
    live = lane(interval_s=10.0)
    printing: list[PrinterState] = ["printing"]
    paused: list[PrinterState] = ["paused"]
    states = printing * 25 + paused * 3 + printing * 12  # one status a second
    for n, state in enumerate(states):
        live.add(b"p", [status(n, state=state)], now=float(n))
    due = live.due_to_spill(now=100.0)
    choice = live.spill_worthy(due)
    kept = [s.id for s in choice.kept]
    # the first (a change from nothing), every 10 s, the pause, the resume, 10 s after that
    assert kept == ["p1-0", "p1-10", "p1-20", "p1-25", "p1-28", "p1-38"]
    live.spilled(due, choice)
    assert (live.stats.spilled, live.stats.dropped_by_downsampling) == (6, 34)
    assert sorted(live.acks()[b"p"]) == sorted(f"p1-{n}" for n in range(40))  # all judged


def test_downsampling_is_per_printer() -> None:
    live = lane(interval_s=10.0)
    for n in range(5):
        live.add(b"p", [status(n, "a"), status(n, "b")], now=float(n))
    kept = live.spill_worthy(live.due_to_spill(now=100.0)).kept
    assert [s.id for s in kept] == ["a-0", "b-0"]


def test_the_interval_counts_from_the_last_delivery() -> None:
    """An outage right after a delivery keeps its first status one interval later."""
    live = lane(interval_s=10.0)
    live.add(b"p", [status(0)], now=0.0)
    live.delivered(live.take(10), "t")
    for n in range(1, 15):
        live.add(b"p", [status(n)], now=float(n))
    kept = live.spill_worthy(live.due_to_spill(now=100.0)).kept
    assert [s.id for s in kept] == ["p1-10"]


def test_a_resent_status_is_not_taken_twice() -> None:
    live = lane()
    live.add(b"p", [status(1)], now=0.0)
    live.add(b"p", [status(1)], now=1.0)  # the sender re-sent it: still waiting
    taken = live.take(10)
    assert len(taken) == 1
    live.delivered(taken, "t")
    live.acks()
    live.add(b"p", [status(1)], now=2.0)  # re-sent after delivery: acknowledged, not posted
    assert live.take(10) == []
    assert live.acks() == {b"p": ["p1-1"]}


def test_memory_is_bounded_by_spilling_the_oldest() -> None:
    live = lane(max_waiting=3)
    live.add(b"p", [status(n) for n in range(5)], now=0.0)
    assert [e.status.id for e in live.due_to_spill(now=0.0)] == ["p1-0", "p1-1"]
    assert live.stats.waiting == 3


def test_a_spill_the_disk_refused_waits_again_unacknowledged() -> None:
    live = lane()
    live.add(b"p", [status(1)], now=0.0)
    due = live.due_to_spill(now=LAG_S + 1)
    live.put_back(due)
    assert live.acks() == {}
    assert [e.status.id for e in live.due_to_spill(now=LAG_S + 2)] == ["p1-1"]


def test_with_the_disk_full_and_the_api_down_memory_stays_bounded() -> None:
    live = lane(max_waiting=3)
    for n in range(10):
        live.add(b"p", [status(n)], now=float(n))
        live.put_back(live.due_to_spill(now=n + LAG_S + 1))  # every store fails
    assert live.stats.waiting == 3
    assert [e.status.id for e in live.due_to_spill(now=100.0)] == ["p1-7", "p1-8", "p1-9"]
    assert live.stats.dropped_no_room == 7
    assert live.acks() == {b"p": [f"p1-{n}" for n in range(7)]}  # given up, not re-sent


def test_the_snapshot_shows_counters_and_the_oldest_waiting() -> None:
    live = lane()
    live.add(b"p", [status(n) for n in range(150)], now=0.0)
    snapshot = live.snapshot()
    assert snapshot.stats.waiting == 150
    assert [s.id for s in snapshot.waiting] == [f"p1-{n}" for n in range(100)]


def test_a_spill_the_disk_refused_is_judged_again_the_same_way() -> None:
    live = lane(interval_s=10.0)
    for n in range(25):
        live.add(b"p", [status(n)], now=float(n))
    due = live.due_to_spill(now=100.0)
    first = [s.id for s in live.spill_worthy(due).kept]
    live.put_back(due)  # the store failed: nothing moved
    again = live.due_to_spill(now=101.0)
    assert [s.id for s in live.spill_worthy(again).kept] == first == ["p1-0", "p1-10", "p1-20"]


def test_a_batch_the_api_refused_is_kept_whole() -> None:
    """A 400 or 413 is not an outage: every status of the batch goes to the queue, whose
    path splits it and dead-letters only the refused one."""
    live = lane(interval_s=10.0)
    live.add(b"p", [status(n) for n in range(5)], now=0.0)
    taken = live.take(10)
    live.failed(taken, keep_all=True)
    due = live.due_to_spill(now=0.1)
    assert len(live.spill_worthy(due).kept) == 5


def test_for_an_api_of_the_current_state_only_nothing_is_kept() -> None:
    """The legacy flavor: an outage's statuses are judged and acknowledged, never replayed
    after newer ones."""
    live = lane(interval_s=1.0)
    live.add(b"p", [status(0, state="printing"), status(1, state="idle")], now=0.0)
    live.failed(live.take(10), keep_none=True)
    due = live.due_to_spill(now=0.1)
    choice = live.spill_worthy(due)
    assert choice.kept == []
    live.spilled(due, choice)
    assert sorted(live.acks()[b"p"]) == ["p1-0", "p1-1"]
