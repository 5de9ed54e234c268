"""Notifications through Apprise, against a real HTTP receiver (Apprise's json:// target)."""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.layout import Layout
from gateway.messages import Event, Record, Status, utc_now
from services.uplink import notify, snapshot
from services.uplink.notify import Notifier
from services.uplink.notify_child import apprise_for
from services.uplink.queue import DurableQueue
from simulator.camera import CameraThread
from tests.support.configs import Value, make_config
from tests.support.http import Script, scripted_api
from tests.support.waiting import wait_for


def config_with(tmp_path: Path, printer: dict[str, Value] | None = None, **notify: Value) -> Config:
    printer = {"name": "REX #1", "host": "h", "camera_url": "off", **(printer or {})}
    return make_config(tmp_path, {"rex1": printer}, notify=notify)


def store(config: Config, notifier: Notifier, records: list[Record]) -> list[Record]:
    """What the uplink does: store the records, owing their notifications in that commit."""
    queue = DurableQueue(Layout.of(config).queue_db, 10**8)
    try:
        new = queue.accept_new(records, (), notifier.wanted)
    finally:
        queue.close()
    notifier.offer(new)
    return new


def owed(config: Config) -> int:
    queue = DurableQueue(Layout.of(config).queue_db, 10**8)
    try:
        return queue.outbox_size()
    finally:
        queue.close()


def sink_url(url: str) -> str:
    return f"json://{url.removeprefix('http://')}/hook"


def test_chosen_events_are_sent_once_others_not(tmp_path: Path) -> None:
    script = Script()
    with scripted_api(script) as url:
        config = config_with(tmp_path, urls=[sink_url(url)], events=["print_finished"])
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        ts = utc_now()
        finished = Event(id="e2", printer_id="rex1", ts=ts, event="print_finished", file="a.gx")
        store(
            config,
            notifier,
            [
                Event(id="e1", printer_id="rex1", ts=ts, event="print_started", file="a.gx"),
                finished,
                Status(id="s1", printer_id="rex1", ts=ts, state="idle"),
            ],
        )
        store(config, notifier, [finished])  # re-sent by a poller: known, owes nothing more
        wait_for(lambda: notifier.sent >= 1, 10, every_s=0.05)
        time.sleep(0.3)
        notifier.stop()
    assert len(script.requests) == 1
    body = msgspec.json.decode(script.requests[0][1])
    assert body["title"] == "REX #1: print finished"
    assert "a.gx" in body["message"]
    assert owed(config) == 0


def test_a_failed_notification_is_retried_with_backoff_until_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "FIRST_BACKOFF_S", 1.0)
    script = Script(answers=[(500, {}), (503, {}), (200, {})])
    with scripted_api(script) as url:
        config = config_with(tmp_path, urls=[sink_url(url)])
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        store(
            config,
            notifier,
            [Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")],
        )
        wait_for(lambda: notifier.sent == 1, 20, every_s=0.05)
        notifier.stop()
    assert len(script.requests) == 3  # two failures, then sent: once
    gaps = [b - a for a, b in itertools.pairwise(script.times)]
    assert gaps[0] >= 1.0
    assert gaps[1] - gaps[0] >= 0.8  # the wait doubled: 1 s, then 2 s (plus each send's time)
    assert owed(config) == 0


def test_an_owed_notification_survives_the_uplink(tmp_path: Path) -> None:
    """Stored and acknowledged, then the uplink dies before sending: the next one sends it."""
    script = Script()
    with scripted_api(script) as url:
        config = config_with(tmp_path, urls=[sink_url(url)])
        dying = Notifier(config, Layout.of(config))  # never started: killed first
        store(
            config, dying, [Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_paused")]
        )
        assert owed(config) == 1
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        wait_for(lambda: notifier.sent == 1, 10, every_s=0.05)
        notifier.stop()
    assert "print paused" in msgspec.json.decode(script.requests[0][1])["title"]


def test_templates_fill_their_fields_and_a_bad_one_names_the_key(tmp_path: Path) -> None:
    script = Script()
    with scripted_api(script) as url:
        config = config_with(
            tmp_path,
            urls=[sink_url(url)],
            templates={"print_finished": "{printer}: {file} {state} after {duration} ({outcome})"},
        )
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        event = Event(
            id="e1",
            printer_id="rex1",
            ts=utc_now(),
            event="print_finished",
            file="<b>vase</b>.gx",
            detail={"job_id": "j1", "print_s": 3900.0, "outcome": "completed"},
        )
        store(config, notifier, [event])
        wait_for(lambda: notifier.sent == 1, 10, every_s=0.05)
        notifier.stop()
    body = msgspec.json.decode(script.requests[0][1])
    assert body["message"] == "REX #1: <b>vase</b>.gx print finished after 1 h 5 min (completed)"
    for bad, why in [
        ("{file.__class__}", "unknown field"),
        ("{nope}", "unknown field"),
        ("{file!r}", "no conversions"),
        ("{progress:.0f}", "does not fit text"),
        ("{file", "not a template"),
    ]:
        with pytest.raises(ConfigError) as caught:
            config_with(tmp_path, templates={"print_started": bad})
        assert caught.value.path == "notify.templates.print_started"
        assert why in caught.value.problem


def test_a_snapshot_from_the_camera_rides_along_and_a_dead_camera_costs_only_the_picture(
    tmp_path: Path,
) -> None:
    script = Script()
    with scripted_api(script) as url, CameraThread() as live, CameraThread(stall=True) as dead:
        config = config_with(tmp_path, {"camera_url": live.url}, urls=[sink_url(url)])
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        ts = utc_now()
        store(config, notifier, [Event(id="e1", printer_id="rex1", ts=ts, event="print_finished")])
        wait_for(lambda: notifier.sent == 1, 15, every_s=0.05)
        notifier.stop()
        first = msgspec.json.decode(script.requests[0][1])
        assert len(first["attachments"]) == 1
        picture = base64.b64decode(first["attachments"][0]["base64"])
        assert picture.startswith(b"\xff\xd8")
        assert picture.endswith(b"\xff\xd9")
        assert b"simulator frame" in picture  # the stream's frame, whole
        assert not list((Layout.of(config).runtime_dir / "snapshots").iterdir())  # cleaned up

        config = config_with(tmp_path / "dead", {"camera_url": dead.url}, urls=[sink_url(url)])
        notifier = Notifier(config, Layout.of(config))
        notifier.start()
        began = time.monotonic()
        store(config, notifier, [Event(id="e2", printer_id="rex1", ts=ts, event="print_paused")])
        wait_for(lambda: notifier.sent == 1, 20, every_s=0.05)
        took = time.monotonic() - began
        store(config, notifier, [Event(id="e3", printer_id="rex1", ts=ts, event="print_finished")])
        wait_for(lambda: notifier.sent == 2, 20, every_s=0.05)
        notifier.stop()
    later = [msgspec.json.decode(body) for _, body in script.requests[1:]]
    assert [b["title"] for b in later] == ["REX #1: print paused", "REX #1: print finished"]
    assert all(not b.get("attachments") for b in later)  # the text, without the picture
    assert took < snapshot.DEADLINE_S + 10  # the camera's wait is bounded, then the text
    assert notifier.pictures == 0


def test_an_url_apprise_does_not_understand_names_the_key(tmp_path: Path) -> None:
    config = config_with(tmp_path, urls=["json://ok.example/x", "nonsense-url"])
    with pytest.raises(ConfigError) as caught:
        apprise_for(config)
    assert caught.value.path == "notify.urls[1]"


def test_without_urls_nothing_is_owed(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    notifier = Notifier(config, Layout.of(config))
    notifier.start()
    store(
        config, notifier, [Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")]
    )
    assert owed(config) == 0
    notifier.stop()


def test_the_long_lived_services_never_load_apprise() -> None:
    """Apprise (about 28 MiB) runs in a child per notification, never in a service that
    lives for months: importing the services and their start path leaves it out."""
    code = (
        "import sys, console.cli, services.uplink.service, services.control.service, "
        "services.poller.service, services.uplink.notify_child; "  # what a send imports
        "print(sorted(m for m in sys.modules if m.startswith('apprise')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_bad_url_at_send_time_names_the_key_never_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A service started without `up` (which checks the URLs) still says what is wrong."""
    config = config_with(tmp_path, urls=["nonsense-with-secret-x9y8z7"])
    notifier = Notifier(config, Layout.of(config))
    notifier.start()
    store(
        config, notifier, [Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")]
    )
    wait_for(lambda: notifier.failed >= 1, 30, every_s=0.05)
    notifier.stop()
    assert "notify.urls[0]" in caplog.text
    assert "x9y8z7" not in caplog.text
