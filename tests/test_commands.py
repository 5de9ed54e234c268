"""Commands as both sides see them: one limit check, one answer shape, record ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.commands import Answer, Pause, parse_action, result_record
from gateway.config import LimitsSection
from gateway.ids import command_of_result, legacy_pause_id, result_id
from gateway.messages import Command
from services.control.service import check
from services.poller.actions import not_applicable
from services.poller.protocol import Activity
from tests.support.configs import make_config

LIMITS = LimitsSection(max_nozzle_c=250, max_bed_c=100)


@pytest.mark.parametrize(
    ("command_type", "params", "reason"),
    [
        ("set_nozzle_temperature", {"celsius": 251}, "nozzle 251 °C outside 0..250 °C"),
        ("set_nozzle_temperature", {"celsius": -1}, "nozzle -1 °C outside 0..250 °C"),
        ("set_nozzle_temperature", {"celsius": 250}, None),
        ("set_bed_temperature", {"celsius": 101}, "bed 101 °C outside 0..100 °C"),
        ("set_bed_temperature", {"celsius": 0}, None),
        ("light", {"on": True}, None),
    ],
)
def test_control_and_poller_apply_the_same_limits(
    tmp_path: Path, command_type: str, params: dict[str, Any], reason: str | None
) -> None:
    """Control's check and the poller's second fence give the same verdict, word for word."""
    config = msgspec.structs.replace(make_config(tmp_path, {"rex1": 1}), limits=LIMITS)
    command = Command(id="c", printer_id="rex1", type=command_type, params=params)
    action = parse_action(command)
    checked = check(command, config)
    assert checked == (reason if reason is not None else action)
    assert not_applicable(action, Activity.PRINTING, LIMITS) == reason


def test_the_poller_also_refuses_what_the_printer_state_does_not_allow() -> None:
    assert not_applicable(Pause(), Activity.READY, LIMITS) == "nothing to pause: printer is ready"
    assert not_applicable(Pause(), Activity.PRINTING, LIMITS) is None


def test_a_result_record_carries_the_answer_under_its_one_id() -> None:
    answer = Answer("cmd-1", "done", "M25 sent under control; effect verified")
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    record = result_record("gw", "rex1", answer, at)
    assert (record.id, record.command_id, record.outcome, record.detail, record.ts) == (
        "gw:result:cmd-1",
        "cmd-1",
        "done",
        answer.detail,
        at,
    )
    assert result_record("gw", "rex1", answer, at).id == record.id  # same on every re-send
    assert record.command_type is None  # not given: unknown
    assert result_record("gw", "rex1", answer, at, "pause").command_type == "pause"


@pytest.mark.parametrize(
    ("record_id", "command_id"),
    [
        (result_id("gw", "cmd-1"), "cmd-1"),
        (result_id("gw", "a:result:b"), "a:result:b"),  # ids may hold the separator
        ("gw:rex1:ab12cd:7", None),  # an event or status id
        (result_id("other", "cmd-1"), None),  # another gateway's
    ],
)
def test_result_ids_round_trip(record_id: str, command_id: str | None) -> None:
    assert command_of_result("gw", record_id) == command_id


def test_one_legacy_pause_id_per_print() -> None:
    assert legacy_pause_id("rex1", 3) == legacy_pause_id("rex1", 3) != legacy_pause_id("rex1", 4)
