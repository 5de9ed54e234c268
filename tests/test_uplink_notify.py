"""Notifications through Apprise, against a real HTTP receiver (Apprise's json:// target)."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.messages import Event, Status, utc_now
from services.uplink.notify import Notifier, apprise_for
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
