"""The legacy flavor: the original connector's message shape, the offline message, 418 -> pause."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec

from gateway.config import Secret, Token
from gateway.layout import Layout
from gateway.messages import Event, PrinterInfo, PrinterState, Status, Temperature, utc_now
from services.uplink.legacy import legacy_message
from services.uplink.queue import DurableQueue
from services.uplink.service import DeliveryThread
from tests.support.configs import make_config
from tests.support.http import Script, scripted_api
from tests.support.waiting import wait_for


def status(n: int, state: PrinterState, percent: float | None = None) -> Status:
    return Status(
        id=f"s{n}",
        printer_id="rex1",
        ts=utc_now(),
        state=state,
        nozzle=Temperature(209.4, 210.0) if state != "offline" else None,
        bed=Temperature(59.6, 60.0) if state != "offline" else None,
        progress_percent=percent,
        printer=PrinterInfo(name="REX #1"),
    )


def test_printing_message_has_the_original_shape_with_strings() -> None:
    assert legacy_message(status(1, "printing", 42.7), was_active=False) == {
        "printer_id": "rex1",
        "printer_name": "REX #1",
        "printer_status": "printing",
        "printer_progress": "42",
        "temperature": {
            "t0": {"actual": "209", "set": "210"},
            "bed": {"actual": "60", "set": "60"},
        },
    }


def test_offline_message_only_after_a_print() -> None:
    assert legacy_message(status(1, "idle"), was_active=False) is None
    assert legacy_message(status(1, "idle"), was_active=True) == {
        "printer_id": "rex1",
        "printer_name": "REX #1",
        "printer_status": "inactive",
        "printer_progress": "0",
        "temperature": {"t0": {"actual": "-", "set": "-"}, "bed": {"actual": "-", "set": "-"}},
    }


def _run(
    tmp_path: Path, script: Script, expected_posts: int, pauses: list[tuple[str, int]]
) -> None:
    with scripted_api(script) as url:
        config = make_config(
            tmp_path,
            {"rex1": 1},
            api_url=url + "/printer",
            api={"flavor": "legacy", "timeout_s": 2.0},
        )
        thread = DeliveryThread(
            config,
            Token(Secret("legacy-key"), "test"),
            threading.Event(),
            lambda printer, n: pauses.append((printer, n)),
        )
        thread.start()
        wait_for(lambda: len(script.requests) >= expected_posts, every_s=0.05)
        thread.stopping.wait(0.3)  # nothing more may come
        thread.stopping.set()
        thread.join(10)


def test_delivery_sends_prints_one_offline_message_and_turns_418_into_pause(tmp_path: Path) -> None:
    queue = DurableQueue(Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db, 10**8)
    queue.accept(
        [
            status(1, "idle"),
            status(2, "printing", 10),
            Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started"),
            status(3, "printing", 20),
            status(4, "paused", 20),
            status(5, "idle"),
            status(6, "idle"),
        ]
    )
    queue.close()
    script = Script(answers=[(200, {}), (418, {}), (200, {})])
    pauses: list[tuple[str, int]] = []
    _run(tmp_path, script, 4, pauses)
    bodies = [msgspec.json.decode(body) for _, body in script.requests]
    assert [b["printer_status"] for b in bodies] == ["printing", "printing", "paused", "inactive"]
    assert [b["printer_progress"] for b in bodies] == ["10", "20", "20", "0"]
    headers = script.requests[0][0]
    assert headers["key"] == "legacy-key"
    assert "Authorization" not in headers
    assert pauses == [("rex1", 1)]  # the first print of rex1 since tracking began
    queue = DurableQueue(Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db, 10**8)
    assert queue.stats().depth_by_kind == {}


def test_offline_message_survives_a_restart(tmp_path: Path) -> None:
    path = Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db
    queue = DurableQueue(path, 10**8)
    queue.accept([status(1, "printing", 10)])
    queue.close()
    _run(tmp_path, Script(), 1, [])
    queue = DurableQueue(path, 10**8)
    queue.accept([status(2, "idle")])  # after the restart the print is over
    queue.close()
    script = Script()
    _run(tmp_path, script, 1, [])
    assert [msgspec.json.decode(body)["printer_status"] for _, body in script.requests] == [
        "inactive"
    ]


def test_an_unreadable_queued_record_is_set_aside_and_delivery_goes_on(tmp_path: Path) -> None:
    path = Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db
    queue = DurableQueue(path, 10**8)
    queue.accept([status(1, "printing", 10), status(2, "printing", 20)])
    with sqlite3.connect(path) as conn:  # a body this version cannot read (e.g. a newer one's)
        conn.execute("UPDATE records SET body = ? WHERE id = 's1'", (b'{"kind": "status", "x"',))
    queue.close()
    script = Script()
    _run(tmp_path, script, 1, [])
    assert [msgspec.json.decode(body)["printer_progress"] for _, body in script.requests] == ["20"]
    queue = DurableQueue(path, 10**8)
    assert queue.stats().depth_by_kind == {}
    reasons = [reason for reason, _ in queue.dead_letters(10)]
    assert reasons == ["the queued record cannot be read"]


def test_a_message_refused_for_good_is_skipped_alone(tmp_path: Path) -> None:
    queue = DurableQueue(Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db, 10**8)
    queue.accept([status(1, "printing", 10), status(2, "printing", 20)])
    queue.close()
    script = Script(answers=[(422, {}), (200, {})])
    _run(tmp_path, script, 2, [])
    queue = DurableQueue(Layout.of(make_config(tmp_path, {"rex1": 1})).queue_db, 10**8)
    assert queue.stats().depth_by_kind == {}  # the second went out; the first is not retried
    assert len(script.requests) == 2
