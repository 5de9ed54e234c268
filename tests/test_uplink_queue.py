"""The durable queue on real SQLite files: seq, dedupe, cap, claims, dead letters, damage."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest

from gateway.bus import InvalidRecord
from gateway.messages import CommandResult, Event, Record, Status, record_json_decoder, utc_now
from services.uplink.queue import DurableQueue, QueueFullError


def status(n: int, printer: str = "p1") -> Status:
    return Status(id=f"s-{printer}-{n}", printer_id=printer, ts=utc_now(), state="idle")


def event(n: int, printer: str | None = "p1") -> Event:
    return Event(id=f"e-{printer}-{n}", printer_id=printer, ts=utc_now(), event="printer_online")


def decoded(bodies: tuple[bytes, ...] | list[bytes]) -> list[Record]:
    return [record_json_decoder.decode(body) for body in bodies]


def open_queue(tmp_path: Path, max_bytes: int = 10**8) -> DurableQueue:
    return DurableQueue(tmp_path / "uplink" / "queue.db", max_bytes)


def test_seq_per_scope_over_the_reliable_lane_without_gaps_across_reopen(tmp_path: Path) -> None:
    """Events and results count per scope; a status (spilled by the live lane) has no seq."""
    queue = open_queue(tmp_path)
    assert queue.accept([status(1), event(1), status(1, "p2"), event(2, None)]) == 4
    queue.close()
    queue = open_queue(tmp_path)
    assert queue.accept([status(2), event(3, None), event(4)]) == 3
    batch = queue.claim(100, 10**6)
    assert batch is not None
    seqs = [(r.printer_id, r.seq) for r in decoded(batch.bodies)]
    assert seqs == [
        ("p1", None),
        ("p1", 1),
        ("p2", None),
        (None, 1),
        ("p1", None),
        (None, 2),
        ("p1", 2),
    ]


def test_known_id_is_stored_once_even_after_delivery(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    assert queue.accept([event(1), event(1)]) == 1
    batch = queue.claim(10, 10**6)
    assert batch is not None
    queue.delivered(batch)
    assert queue.accept([event(1)]) == 0  # a late re-send: acknowledged, not stored, no new seq
    assert queue.accept([event(2)]) == 1
    again = queue.claim(10, 10**6)
    assert again is not None
    assert [r.seq for r in decoded(again.bodies)] == [2]


def test_claims_are_byte_bounded_and_released_on_reopen(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([status(n) for n in range(50)])
    ten = sum(len(body) for body in queue.peek(10))
    batch = queue.claim(100, ten)
    assert batch is not None
    assert len(batch.bodies) == 10
    queue.close()
    queue = open_queue(tmp_path)
    assert queue.release_stale_claims() == 10
    batch = queue.claim(100, 10**6)
    assert batch is not None
    assert len(batch.bodies) == 50


def test_fresh_records_ride_along_with_the_backlog(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([event(n) for n in range(1000)])
    queue.accept([event(1, "p2")])
    batch = queue.claim(100, 10**7)
    assert batch is not None
    records = decoded(batch.bodies)
    assert records[-1].id == "e-p2-1"  # the newest record is in the first batch
    p1 = [r.seq or 0 for r in records if r.printer_id == "p1"]
    assert p1 == sorted(p1)  # in seq order per printer


def test_spilled_statuses_leave_oldest_first_while_fresh_events_ride_along(
    tmp_path: Path,
) -> None:
    queue = open_queue(tmp_path)
    queue.accept([status(n) for n in range(300)])  # an outage's spilled statuses
    queue.accept([event(1)])
    queue.accept([status(n) for n in range(300, 310)])
    delivered: list[str] = []
    while (batch := queue.claim(100, 10**7)) is not None:
        delivered += [r.id for r in decoded(batch.bodies)]
        queue.delivered(batch)
    assert delivered.index("e-p1-1") < 100  # the event came with the first batch
    statuses = [i for i in delivered if i.startswith("s-")]
    assert statuses == [f"s-p1-{n}" for n in range(310)]  # oldest first, none newest first


def test_cap_drops_oldest_status_never_events(tmp_path: Path) -> None:
    probe = open_queue(tmp_path / "probe")
    probe.accept([status(0)])
    size = len(probe.peek(1)[0])
    queue = open_queue(tmp_path, max_bytes=size * 10)
    queue.accept([event(n) for n in range(3)])
    queue.accept([status(n) for n in range(20)])
    stats = queue.stats()
    assert stats.dropped_status > 0
    assert stats.depth_by_kind["event"] == 3
    assert stats.bytes <= size * 10 + 50
    remaining = [r.id for r in decoded(queue.peek(100)) if isinstance(r, Status)]
    assert remaining[-1] == "s-p1-19"  # the newest statuses survive
    queue.accept([event(n) for n in range(3, 30)])  # events alone past the cap: all kept
    assert queue.stats().depth_by_kind["event"] == 30


def test_dead_letters_are_kept_counted_and_retried_with_their_seq(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([event(1), event(2)])
    batch = queue.claim(10, 10**6)
    assert batch is not None
    queue.dead_letter(batch, "HTTP 400: bad record")
    assert queue.stats().dead == 2
    assert queue.claim(10, 10**6) is None
    assert queue.dead_letters(10)[0][0] == "HTTP 400: bad record"
    assert queue.retry_dead() == 2
    again = queue.claim(10, 10**6)
    assert again is not None
    assert [r.seq for r in decoded(again.bodies)] == [1, 2]


def test_stats_and_purge(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept(
        [
            status(1),
            event(1),
            CommandResult(id="r1", printer_id="p1", ts=utc_now(), command_id="c", outcome="done"),
        ]
    )
    stats = queue.stats()
    assert stats.depth_by_kind == {"status": 1, "event": 1, "command_result": 1}
    assert stats.oldest_age_s is not None
    assert stats.last_delivery is None
    queue.note_error("HTTP 503")
    assert "HTTP 503" in (queue.stats().last_error or "")
    assert queue.purge() == 3
    assert queue.stats().depth_by_kind == {}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_file_is_set_aside_and_counted(tmp_path: Path, damage: str) -> None:
    queue = open_queue(tmp_path)
    queue.accept([status(n) for n in range(200)])
    queue.close()
    path = tmp_path / "uplink" / "queue.db"
    for side in ("queue.db-wal", "queue.db-shm"):
        (tmp_path / "uplink" / side).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(
        b"this is not a database" * 100 if damage == "garbage" else data[: len(data) // 2]
    )
    queue = open_queue(tmp_path)
    stats = queue.stats()
    assert stats.set_aside == 1
    assert stats.depth_by_kind == {}
    assert (tmp_path / "uplink" / "queue.db.corrupt-1").exists()
    assert queue.accept([event(1)]) == 1  # and it goes on


def test_full_database_raises_queue_full_and_stores_nothing(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([status(0)])
    pages = queue._conn.execute("PRAGMA page_count").fetchone()[0]
    queue._conn.execute(f"PRAGMA max_page_count = {pages}")  # the filesystem is now "full"
    with pytest.raises(QueueFullError):
        queue.accept([event(n) for n in range(500)])
    queue._conn.execute("PRAGMA max_page_count = 1073741823")
    assert queue.accept([event(1)]) == 1  # space again: the same records are accepted
    # seq 1 went to the status; the failed transaction consumed none
    assert [r.seq for r in decoded(queue.peek(10)) if isinstance(r, Event)] == [1]


def test_files_are_not_world_readable(tmp_path: Path) -> None:
    open_queue(tmp_path).accept([status(1)])
    assert oct((tmp_path / "uplink").stat().st_mode & 0o777) == "0o700"


def test_json_bodies_are_the_v1_shape(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([status(1), event(1)])
    spilled, reliable = (msgspec.json.decode(body) for body in queue.peek(2))
    assert list(spilled)[:5] == list(reliable)[:5] == ["kind", "id", "printer_id", "seq", "ts"]
    assert (spilled["seq"], reliable["seq"]) == (None, 1)  # a status is on the live lane
    assert sqlite3.sqlite_version_info >= (3, 35)


def test_undecodable_records_are_dead_lettered_once_beside_good_ones(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    bad = InvalidRecord("e-bad", "event", "p1", b'{"kind":"event","id":"e-bad"}', "no ts")
    assert len(queue.accept_new([event(1)], [bad])) == 1
    assert len(queue.accept_new([event(2)], [bad])) == 1  # a re-send is not stored again
    stats = queue.stats()
    assert (stats.dead, stats.depth_by_kind) == (1, {"event": 2})
    assert queue.dead_letters(5) == [("no ts", b'{"kind":"event","id":"e-bad"}')]
    assert [r.seq for r in decoded(queue.peek(5))] == [1, 2]  # the bad one took no seq
    assert queue.retry_dead() == 1  # moved back without colliding with a record's position
    assert len(queue.peek(5)) == 3


def test_split_keeps_order_and_gives_each_half_its_own_key(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([event(n) for n in range(5)])
    batch = queue.claim(10, 10**6)
    assert batch is not None
    first, second = queue.split(batch)
    assert len({batch.batch_id, first.batch_id, second.batch_id}) == 3
    assert [r.id for r in decoded([*first.bodies, *second.bodies])] == [
        r.id for r in decoded(batch.bodies)
    ]
    queue.delivered(first)
    left = queue.dead_letter_some(second, [0], "refused")
    queue.delivered(left)
    assert queue.stats().depth_by_kind == {}
    assert queue.stats().dead == 1


def test_a_failed_write_leaves_no_transaction_open(tmp_path: Path) -> None:
    queue = open_queue(tmp_path)
    queue.accept([event(n) for n in range(4)])
    batch = queue.claim(10, 10**6)
    assert batch is not None
    queue._conn.execute("PRAGMA query_only = ON")  # every write now fails, as on a broken disk
    with pytest.raises(sqlite3.OperationalError):
        queue.split(batch)
    assert not queue._conn.in_transaction
    queue._conn.execute("PRAGMA query_only = OFF")
    first, second = queue.split(batch)  # the connection is usable again
    assert len(first.bodies) + len(second.bodies) == 4


def test_statuses_queued_before_the_two_lanes_lose_their_seq(tmp_path: Path) -> None:
    """An upgrade: a status queued with a seq by the previous version is sent without it."""
    queue = open_queue(tmp_path)
    queue.accept([status(1), event(1)])
    queue._conn.execute(  # as the previous version stored it
        "UPDATE records SET seq = 7, body = CAST(json_set(CAST(body AS TEXT), '$.seq', 7) "
        "AS BLOB) WHERE kind = 'status'"
    )
    queue.close()
    queue = open_queue(tmp_path)
    spilled, reliable = decoded(queue.peek(2))
    assert (spilled.seq, reliable.seq) == (None, 1)
    assert isinstance(queue.peek(1)[0], bytes)


def test_a_status_body_the_upgrade_cannot_read_never_costs_the_queue(tmp_path: Path) -> None:
    """The upgrade's clean-up skips a body that is not JSON; the queue is not set aside and
    the events beside it stay."""
    queue = open_queue(tmp_path)
    queue.accept([status(1), event(1)])
    queue._conn.execute("UPDATE records SET seq = 7, body = x'7b2273' WHERE kind = 'status'")
    queue.close()
    queue = open_queue(tmp_path)
    assert queue.stats().set_aside == 0
    assert [r.id for r in decoded(queue.peek(10)[1:])] == ["e-p1-1"]


def test_connections_opening_a_new_queue_at_once_never_take_a_lock_for_damage(
    tmp_path: Path,
) -> None:
    """The uplink, its delivery thread and its notification thread each open the file; on a
    fresh one they race to set WAL mode and the schema. A lock is waited for, never taken
    for damage (which once moved a good queue aside)."""
    for attempt in range(5):
        path = tmp_path / str(attempt) / "queue.db"
        opened: list[DurableQueue] = []
        errors: list[BaseException] = []

        def open_one(
            path: Path = path,
            opened: list[DurableQueue] = opened,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                opened.append(DurableQueue(path, 10**8))
            except BaseException as err:  # noqa: BLE001 - collected for the assertion
                errors.append(err)

        threads = [threading.Thread(target=open_one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert all(queue.stats().set_aside == 0 for queue in opened)
        assert list(path.parent.glob("*.corrupt*")) == []
        for queue in opened:
            queue.close()
