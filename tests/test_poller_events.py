"""Event derivation (pure) and the journal that makes it restart-safe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from gateway.commands import Answer
from gateway.messages import Event, Temperature, utc_now
from services.poller.events import Belief, Happening, on_failure, on_reading
from services.poller.journal import Journal
from services.poller.protocol import MachineStatus, Observation, PrintProgress, Temperatures

NOW = "2026-11-23T20:00:00Z"


def reading(
    status: str, move: str = "MOVING", file: str | None = "a.gx", done: int = 10, total: int = 100
) -> Observation:
    machine = MachineStatus(
        machine_status=status, move_mode=move, endstops={}, flags={}, led=None, current_file=file
    )
    return Observation(
        machine, Temperatures((Temperature(200, 210),), None), PrintProgress(done, total)
    )


def names(happenings: Sequence[Happening]) -> list[str]:
    return [h.event for h in happenings]


def test_first_reading_is_online() -> None:
    belief, happenings = on_reading(Belief(), reading("READY", "READY", None, 0), 0.0, NOW)
    assert names(happenings) == ["printer_online"]
    assert belief.connectivity == "online"
    assert on_reading(belief, reading("READY", "READY", None, 0), 0.0, NOW)[1] == []


def test_start_pause_resume_finish() -> None:
    belief = Belief(connectivity="online")
    belief, happenings = on_reading(belief, reading("BUILDING_FROM_SD"), 0.0, NOW)
    assert names(happenings) == ["print_started"]
    assert (belief.job_phase, belief.file, belief.started_at) == ("printing", "a.gx", NOW)
    belief, happenings = on_reading(belief, reading("BUILDING_FROM_SD", "PAUSED"), 10.0, NOW)
    assert names(happenings) == ["print_paused"]
    belief, happenings = on_reading(belief, reading("PAUSED", "PAUSED"), 10.0, NOW)
    assert happenings == []
    belief, happenings = on_reading(belief, reading("BUILDING_FROM_SD"), 10.0, NOW)
    assert names(happenings) == ["print_resumed"]
    belief, happenings = on_reading(belief, reading("BUILDING_COMPLETED", "READY"), 99.0, NOW)
    assert names(happenings) == ["print_finished"]
    assert happenings[0].detail == {"started_at": NOW}
    assert belief.job_phase == "none"


@pytest.mark.parametrize(
    ("done", "total", "last_percent", "expected"),
    [
        (100, 100, 99.0, "print_finished"),
        (5, 100, 100.0, "print_finished"),
        (42, 100, 42.0, "print_cancelled"),
        (0, 0, 42.0, "print_cancelled"),
    ],
)
def test_back_to_ready_is_finished_only_at_the_end(
    done: int, total: int, last_percent: float, expected: str
) -> None:
    belief = Belief(connectivity="online", job_phase="printing", file="a.gx")
    _, happenings = on_reading(
        belief, reading("READY", "READY", None, done, total), last_percent, NOW
    )
    assert names(happenings) == [expected]


def test_print_seen_already_paused_starts_then_pauses() -> None:
    _, happenings = on_reading(Belief(connectivity="online"), reading("PAUSED", "PAUSED"), 0.0, NOW)
    assert names(happenings) == ["print_started", "print_paused"]


def test_another_file_ends_the_old_job_and_starts_a_new_one() -> None:
    belief = Belief(connectivity="online", job_phase="printing", file="old.gx")
    belief, happenings = on_reading(belief, reading("BUILDING_FROM_SD", file="new.gx"), 30.0, NOW)
    assert names(happenings) == ["print_cancelled", "print_started"]
    assert belief.file == "new.gx"


def test_busy_and_unknown_change_no_job() -> None:
    belief = Belief(connectivity="online", job_phase="printing", file="a.gx")
    assert on_reading(belief, reading("BUSY", "HOMING"), 10.0, NOW) == (belief, [])
    assert on_reading(belief, reading("WHATEVER"), 10.0, NOW) == (belief, [])


def test_offline_while_printing_is_lost_once_after_grace() -> None:
    belief = Belief(connectivity="online", job_phase="printing", file="a.gx")
    belief, happenings = on_failure(belief, "offline", 1.0, 60.0)
    assert names(happenings) == ["printer_offline"]
    belief, happenings = on_failure(belief, "offline", 61.0, 60.0)
    assert names(happenings) == ["printer_lost_while_printing"]
    assert happenings[0].detail == {"unreachable_s": 61.0}
    assert on_failure(belief, "offline", 120.0, 60.0)[1] == []
    belief, happenings = on_reading(belief, reading("BUILDING_FROM_SD"), 10.0, NOW)
    assert names(happenings) == ["printer_online"]  # same job continues: no new start
    assert belief.lost_reported is False


def test_held_is_reported_once_and_never_as_lost() -> None:
    belief = Belief(connectivity="online", job_phase="printing")
    belief, happenings = on_failure(belief, "held", 100.0, 60.0)
    assert names(happenings) == ["printer_held_by_other_client"]
    assert on_failure(belief, "held", 200.0, 60.0)[1] == []


def _event(event_id: str) -> Event:
    return Event(id=event_id, printer_id="p", ts=utc_now(), event="print_started", file="a.gx")


def test_journal_survives_reopen_and_acknowledge(tmp_path: Path) -> None:
    path = tmp_path / "poller" / "p.json"
    journal = Journal(path)
    belief = Belief(connectivity="online", job_phase="printing", file="a.gx")
    asyncio.run(journal.record_events(belief, [_event("e1"), _event("e2")]))
    asyncio.run(journal.remember(Answer("c1", "done", "ok")))
    again = Journal(path)
    assert again.state.belief == belief
    assert [e.id for e in again.state.pending] == ["e1", "e2"]
    assert again.outcome("c1") == Answer("c1", "done", "ok")
    again.acknowledge({"e1", "unknown"})
    assert [e.id for e in Journal(path).state.pending] == ["e1", "e2"]  # noted, not yet written
    asyncio.run(again.settle_acks())
    assert [e.id for e in Journal(path).state.pending] == ["e2"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b'{"belief": {"connectivity": "sideways"}}']
)
def test_unreadable_journal_is_set_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    journal = Journal(path)
    assert journal.state.belief == Belief()
    assert (tmp_path / "p.json.corrupt-1").read_bytes() == content
    asyncio.run(journal.record_events(Belief(connectivity="online"), []))
    assert msgspec.json.decode(path.read_bytes())["belief"]["connectivity"] == "online"


def test_a_stop_mid_write_never_lets_a_second_write_run_beside_it(tmp_path: Path) -> None:
    """A cancelled change still owns the journal until its thread is done (a slow SD card)."""
    journal = Journal(tmp_path / "p.json")
    running, overlaps = [0], [0]
    write = journal._write

    def slow_write(data: bytes) -> None:
        running[0] += 1
        overlaps[0] = max(overlaps[0], running[0])
        time.sleep(0.3)
        write(data)
        running[0] -= 1

    journal._write = slow_write  # type: ignore[method-assign]
    belief = Belief(connectivity="online", job_phase="printing", file="a.gx")

    async def scenario() -> None:
        first = asyncio.create_task(journal.record_events(belief, [_event("e1")]))
        await asyncio.sleep(0.05)
        first.cancel()  # as a stop cancels a cycle
        second = asyncio.create_task(journal.record_events(later, [_event("e2")]))
        with pytest.raises(asyncio.CancelledError):
            await first
        await second

    later = Belief(connectivity="online", job_phase="paused", file="a.gx")
    asyncio.run(scenario())
    assert overlaps[0] == 1
    reopened = Journal(tmp_path / "p.json")
    assert [e.id for e in reopened.state.pending] == ["e1", "e2"]  # the interrupted write
    assert reopened.state.belief == later  # counted, and the next change applied on top
