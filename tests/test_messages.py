"""Record structs: the exact JSON shapes of architecture §4.3, round trips, schema, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.schema import render
from gateway.commands import (
    Cancel,
    Light,
    Pause,
    SetBedTemperature,
    SetNozzleTemperature,
    parse_action,
)
from gateway.messages import (
    MAX_CELSIUS,
    MIN_CELSIUS,
    Command,
    CommandList,
    CommandResult,
    Event,
    Job,
    Layer,
    PrinterInfo,
    Progress,
    Record,
    RecordBatch,
    Status,
    Temperature,
    batch_json_decoder,
    command_list_json_decoder,
    json_encoder,
    msgpack_encoder,
    record_json_decoder,
    record_msgpack_decoder,
    utc_now,
)

TS = datetime(2026, 11, 23, 20, 31, 5, 123000, tzinfo=UTC)

# The body of architecture §4.3, verbatim apart from the "..." placeholders (made real ids).
DOCUMENTED_BATCH = b"""{"gateway_id": "workshop-pi",
 "records": [
  {"kind": "status", "id": "workshop-pi:rex1:1732390000:42", "printer_id": "rex1", "seq": null,
   "ts": "2026-11-23T20:31:05.123Z", "state": "printing",
   "nozzle": {"current": 209.5, "target": 210.0}, "bed": {"current": 59.8, "target": 60.0},
   "extra_nozzles": [], "progress_percent": 42.0, "progress": {"done": 42, "total": 100},
   "layer": null, "file": "benchy.gx",
   "printer": {"name": "REX #1", "model": "FlashForge Adventurer III", "firmware": "v2.2.1",
               "serial": "SN0001"},
   "job": {"id": "0193a4c2-7f3a", "started_at": "2026-11-23T19:40:11Z", "elapsed_s": 3054.0,
           "remaining_s": 4210.0, "eta": "2026-11-23T21:41:15Z", "estimate_origin": "linear"}},
  {"kind": "event", "id": "e-1", "printer_id": "rex1", "seq": 43, "ts": "2026-11-23T20:31:06Z",
   "event": "print_finished", "file": "benchy.gx", "detail": {"job_id": "0193a4c2-7f3a"}},
  {"kind": "job", "id": "j-1", "printer_id": "rex1", "seq": 44, "ts": "2026-11-23T21:41:02Z",
   "job_id": "0193a4c2-7f3a", "file": "benchy.gx", "outcome": "completed",
   "started_at": "2026-11-23T19:40:11Z", "ended_at": "2026-11-23T21:41:02Z",
   "print_s": 6950.0, "warmup_s": 171.0, "paused_s": 0.0, "pause_count": 0,
   "max_progress_percent": 100.0, "estimate_at_start_s": null, "estimate_origin": "none"},
  {"kind": "command_result", "id": "r-1", "printer_id": "rex1", "seq": 45, "ts": "2026-11-23T20:31:07Z",
   "command_id": "c-77", "outcome": "done", "detail": "state is paused"}]}"""


def test_documented_batch_decodes_and_reencodes_to_the_same_json() -> None:
    batch = batch_json_decoder.decode(DOCUMENTED_BATCH)
    status, event, job, result = batch.records
    assert isinstance(status, Status)
    assert status.job is not None
    assert (status.job.remaining_s, status.job.estimate_origin) == (4210.0, "linear")
    assert isinstance(job, Job)
    assert (job.outcome, job.print_s, job.estimate_at_start_s) == ("completed", 6950.0, None)
    assert status.nozzle == Temperature(209.5, 210.0)
    assert status.progress == Progress(42, 100)
    assert status.printer.serial == "SN0001"
    assert isinstance(event, Event)
    assert event.event == "print_finished"
    assert isinstance(result, CommandResult)
    assert result.outcome == "done"
    again = msgspec.json.decode(json_encoder.encode(batch))
    original = msgspec.json.decode(DOCUMENTED_BATCH)
    for ours, theirs in zip(again["records"], original["records"], strict=True):
        if ours["kind"] == "command_result":  # an addition to §4.3 (docs/architecture.md)
            assert ours.pop("command_type") is None
        assert list(ours) == list(theirs)  # same keys in the same order
        assert datetime.fromisoformat(ours.pop("ts")) == datetime.fromisoformat(theirs.pop("ts"))
        assert ours == theirs


def test_status_json_field_order_and_nulls() -> None:
    record = Status(id="g:p:1:1", printer_id="p", ts=TS, state="offline")
    assert msgspec.json.decode(json_encoder.encode(record)) == {
        "kind": "status",
        "id": "g:p:1:1",
        "printer_id": "p",
        "seq": None,
        "ts": "2026-11-23T20:31:05.123000Z",
        "state": "offline",
        "nozzle": None,
        "bed": None,
        "extra_nozzles": [],
        "progress_percent": None,
        "progress": None,
        "layer": None,
        "file": None,
        "printer": {"name": None, "model": None, "firmware": None, "serial": None},
        "job": None,
    }


def test_unknown_fields_from_a_newer_peer_are_ignored() -> None:
    raw = b'{"kind":"event","id":"x","printer_id":"p","ts":"2026-11-23T20:31:05Z","event":"printer_online","new":1}'
    assert isinstance(record_json_decoder.decode(raw), Event)


def test_naive_timestamps_are_refused() -> None:
    raw = b'{"kind":"event","id":"x","printer_id":"p","ts":"2026-11-23T20:31:05","event":"printer_online"}'
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        record_json_decoder.decode(raw)


def test_unknown_state_is_refused() -> None:
    raw = (
        b'{"kind":"status","id":"x","printer_id":"p","ts":"2026-11-23T20:31:05Z","state":"melting"}'
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.state"):
        record_json_decoder.decode(raw)


def test_utc_now_is_aware_and_millisecond_precise() -> None:
    now = utc_now()
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0


def test_command_list_shape() -> None:
    raw = b"""{"commands": [{"id": "c-77", "printer_id": "rex1", "type": "pause", "params": {},
               "created_at": "2026-11-23T20:31:00Z", "expires_at": null}]}"""
    listing = command_list_json_decoder.decode(raw)
    assert listing == CommandList(
        (
            Command(
                id="c-77",
                printer_id="rex1",
                type="pause",
                created_at=TS.replace(second=0, microsecond=0),
            ),
        )
    )


@pytest.mark.parametrize(
    ("type_", "params", "expected"),
    [
        ("pause", {}, Pause()),
        ("cancel", {}, Cancel()),
        ("set_nozzle_temperature", {"celsius": 200}, SetNozzleTemperature(200)),
        ("set_bed_temperature", {"celsius": 60}, SetBedTemperature(60)),
        ("light", {"on": True}, Light(True)),
    ],
)
def test_parse_action(type_: str, params: dict[str, Any], expected: object) -> None:
    assert parse_action(Command(id="c", printer_id="p", type=type_, params=params)) == expected


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("explode", {}),
        ("pause", {"now": True}),
        ("pause", {"type": "cancel"}),
        ("set_nozzle_temperature", {}),
        ("set_nozzle_temperature", {"celsius": 200.5}),
        ("set_nozzle_temperature", {"celsius": "200"}),
        ("set_bed_temperature", {"celsius": True}),
        ("light", {"on": 1}),
    ],
)
def test_parse_action_refuses(type_: str, params: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        parse_action(Command(id="c", printer_id="p", type=type_, params=params))


def test_schema_document_is_current() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "records.schema.json"
    assert path.read_bytes() == render(), "docs/records.schema.json is stale: run `make schema`"


# ------------------------------------------------------------------ property tests

text = st.text(max_size=20)
some_text = st.text(min_size=1, max_size=20)  # ids: never empty
printable = st.text(  # a command id: no control, format or separator characters
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1, max_size=20
)
celsius = st.floats(MIN_CELSIUS, MAX_CELSIUS)  # the documented bounds of a reading
temperatures = st.builds(Temperature, celsius, celsius)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))]
    ),
)
common = {
    "id": some_text,
    "printer_id": st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"),
    "seq": st.none() | st.integers(0, 2**62),
    "ts": timestamps,
}
statuses = st.builds(
    Status,
    state=st.sampled_from(
        ["offline", "held_by_other_client", "idle", "printing", "paused", "completed", "error"]
    ),
    nozzle=st.none() | temperatures,
    bed=st.none() | temperatures,
    extra_nozzles=st.lists(temperatures, max_size=2).map(tuple),
    progress_percent=st.none() | st.floats(0.0, 100.0),
    progress=st.none() | st.builds(Progress, st.integers(-5, 2**40), st.integers(-5, 2**40)),
    layer=st.none() | st.builds(Layer, st.integers(0, 10**6), st.integers(0, 10**6)),
    file=st.none() | text,
    printer=st.builds(PrinterInfo, name=st.none() | text, model=st.none() | text),
    **{**common, "seq": st.none()},  # the live lane: never a seq
)
events = st.builds(
    Event,
    event=st.sampled_from(["print_started", "print_finished", "printer_lost_while_printing"]),
    file=st.none() | text,
    # what msgpack can carry; the sender refuses anything else alone (tests/test_bus.py)
    detail=st.dictionaries(
        text, st.none() | st.integers(-(2**63), 2**64 - 1) | text | st.booleans(), max_size=3
    ),
    **common,
)
results = st.builds(
    CommandResult,
    command_id=printable,
    outcome=st.sampled_from(["done", "rejected", "failed", "expired"]),
    detail=text,
    **common,
)
records: st.SearchStrategy[Record] = statuses | events | results


@given(records)
def test_records_round_trip_through_json(record: Record) -> None:
    assert record_json_decoder.decode(json_encoder.encode(record)) == record


@given(records)
def test_records_round_trip_through_msgpack(record: Record) -> None:
    assert record_msgpack_decoder.decode(msgpack_encoder.encode(record)) == record


@given(st.lists(records, max_size=5))
def test_batches_round_trip_through_json(items: list[Record]) -> None:
    batch = RecordBatch("gw", tuple(items))
    assert batch_json_decoder.decode(json_encoder.encode(batch)) == batch


def test_a_status_never_carries_a_seq() -> None:
    """Statuses are the live lane's: the API orders them by ts; a seq is refused."""
    raw = b'{"kind":"status","id":"x","printer_id":"p","seq":3,"ts":"2026-11-23T20:31:05Z","state":"idle"}'
    with pytest.raises(msgspec.ValidationError, match="Expected `null`"):
        record_json_decoder.decode(raw)
