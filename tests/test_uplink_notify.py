"""Notifications through Apprise, against a real HTTP receiver (Apprise's json:// target)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.messages import Event, Status, utc_now
from services.uplink.notify import Notifier
from services.uplink.notify_child import apprise_for
from tests.support.configs import Value, make_config
from tests.support.http import Script, scripted_api
from tests.support.waiting import wait_for


def config_with(tmp_path: Path, **notify: Value) -> Config:
    return make_config(tmp_path, {"rex1": {"name": "REX #1", "host": "h"}}, notify=notify)


def test_chosen_events_are_sent_once_others_not(tmp_path: Path) -> None:
    script = Script()
    with scripted_api(script) as url:
        host = url.removeprefix("http://")
        config = config_with(tmp_path, urls=[f"json://{host}/hook"], events=["print_finished"])
        notifier = Notifier(config)
        notifier.start()
        ts = utc_now()
        notifier.offer(
            [
                Event(id="e1", printer_id="rex1", ts=ts, event="print_started", file="a.gx"),
                Event(id="e2", printer_id="rex1", ts=ts, event="print_finished", file="a.gx"),
                Status(id="s1", printer_id="rex1", ts=ts, state="idle"),
            ]
        )
        wait_for(lambda: notifier.sent >= 1, 10, every_s=0.05)
        time.sleep(0.3)
        notifier.stop()
    assert len(script.requests) == 1
    body = msgspec.json.decode(script.requests[0][1])
    assert body["title"] == "REX #1: print finished"
    assert "a.gx" in body["message"]


def test_failures_are_counted_not_raised(tmp_path: Path) -> None:
    with scripted_api(Script()) as url:
        host = url.removeprefix("http://")
    config = config_with(tmp_path, urls=[f"json://{host}/gone"])  # nobody listens now
    notifier = Notifier(config)
    notifier.start()
    notifier.offer([Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")])
    wait_for(lambda: notifier.failed >= 1, 15, every_s=0.05)
    notifier.stop()
    assert notifier.failed == 1


def test_an_url_apprise_does_not_understand_names_the_key(tmp_path: Path) -> None:
    config = config_with(tmp_path, urls=["json://ok.example/x", "nonsense-url"])
    with pytest.raises(ConfigError) as caught:
        apprise_for(config)
    assert caught.value.path == "notify.urls[1]"


def test_without_urls_nothing_runs(tmp_path: Path) -> None:
    notifier = Notifier(config_with(tmp_path))
    notifier.start()
    notifier.offer([Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")])
    assert notifier.backlog.empty()
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
    notifier = Notifier(config)
    notifier.start()
    notifier.offer([Event(id="e1", printer_id="rex1", ts=utc_now(), event="print_started")])
    wait_for(lambda: notifier.failed >= 1, 30, every_s=0.05)
    notifier.stop()
    assert "notify.urls[0]" in caplog.text
    assert "x9y8z7" not in caplog.text
