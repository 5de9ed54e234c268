"""Properties at the trust boundaries: whatever a printer or an API sends, the result is a
typed value within bounds or a typed error, never an exception of another kind, never a
record that the next process cannot encode or decode."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.commands import Action
from gateway.errors import PrinterProtocolError, UnexpectedPayloadError
from gateway.messages import (
    PrinterInfo,
    json_encoder,
    msgpack_encoder,
    record_json_decoder,
    record_msgpack_decoder,
    utc_now,
)
from services.control.service import check
from services.control.source import FetchError, parse_command_list
from services.poller.protocol import (
    Observation,
    ReplyBuffer,
    parse_ack,
    parse_m23,
    parse_m27,
    parse_m105,
    parse_m114,
    parse_m115,
    parse_m119,
    parse_m601,
    parse_m602,
)
from services.poller.report import status_of_reading
from tests.support.configs import make_config

PARSERS: list[Callable[[Sequence[str]], object]] = [
    parse_m115,
    parse_m105,
    parse_m27,
    parse_m119,
    parse_m114,
    parse_m23,
    parse_m601,
    parse_m602,
    parse_ack,
]

numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(1, 500).map(lambda n: "9" * n),
    st.integers(1, 50).map(lambda n: "9" * n + "." + "9" * n),
    st.sampled_from(["-0", "0", "00", "-1", "1e400", "nan", "inf", ""]),
)
keys = st.sampled_from(
    [
        "T0:",
        "T1:",
        "T99999999999999999999:",
        "B:",
        "SD printing byte ",
        "Layer: ",
        "Tool Count: ",
        "X: ",
        "X:",
        "MachineStatus: ",
        "MoveMode: ",
        "LED: ",
        "CurrentFile: ",
        "Machine Type: ",
        "File opened: ",
        "Endstop: X-max:",
        "Status: S:",
    ]
)
templated = st.builds(
    lambda key, a, b, c: f"{key}{a}/{b} {c}",
    keys,
    numbers,
    numbers,
    st.text(max_size=20),
)
lines_strategy = st.lists(
    st.one_of(templated, st.text(max_size=300), keys.map(lambda k: k + "READY")), max_size=8
)


@settings(max_examples=400, deadline=None)
@given(lines=lines_strategy)
def test_parsers_return_a_value_or_raise_unexpected_payload(lines: list[str]) -> None:
    for parser in PARSERS:
        try:
            parser(lines)
        except UnexpectedPayloadError:
            pass


def _with(line: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """Random lines around one that the parser needs (so many examples parse at all)."""
    return st.tuples(lines_strategy, line, lines_strategy).map(lambda t: [*t[0], t[1], *t[2]])


m119_lines = _with(
    st.builds(
        lambda status, file: f"MachineStatus: {status}\nCurrentFile: {file}",
        st.sampled_from(["READY", "BUILDING_FROM_SD", "PAUSED", "BUSY", "WHAT"]),
        st.text(max_size=400),
    ).map(str)
).map(lambda lines: [part for line in lines for part in line.split("\n")])
m105_lines = _with(st.builds(lambda a, b: f"T0:{a}/{b} B:{b}/{a}", numbers, numbers))
m27_lines = _with(
    st.builds(
        lambda a, b, c: f"SD printing byte {a}/{b}\nLayer: {c}/{a}", numbers, numbers, numbers
    )
).map(lambda lines: [part for line in lines for part in line.split("\n")])


@settings(max_examples=300, deadline=None)
@given(m119=m119_lines, m105=m105_lines, m27=m27_lines, job=st.booleans())
def test_whatever_parses_makes_a_record_every_process_can_carry(
    m119: list[str], m105: list[str], m27: list[str], job: bool
) -> None:
    try:
        observation = Observation(parse_m119(m119), parse_m105(m105), parse_m27(m27))
    except UnexpectedPayloadError:
        return
    status = status_of_reading(
        record_id="gw:p:1:1",
        printer_id="p",
        ts=utc_now(),
        observation=observation,
        job_active=job,
        info=PrinterInfo(name="p"),
    )
    assert record_msgpack_decoder.decode(msgpack_encoder.encode(status)) == status
    assert record_json_decoder.decode(json_encoder.encode(status)) == status


@settings(max_examples=300, deadline=None)
@given(lines=lines_strategy, noise=st.binary(max_size=300))
def test_framed_hostile_bytes_end_in_protocol_errors_only(lines: list[str], noise: bytes) -> None:
    wire = noise + b"\r\nCMD M105 Received.\r\n" + "\r\n".join(lines).encode() + b"\r\nok\r\n"
    buffer = ReplyBuffer("M105")
    try:
        buffer.feed(wire)
        reply = buffer.next_reply()
        if reply is not None:
            parse_m105(reply.lines)
    except PrinterProtocolError:
        pass


CONFIG = make_config(Path("/tmp"), {"rex1": 1}, limits={"max_nozzle_c": 240})
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.text(max_size=200), json_values, st.just("c\n\x1b[31mforged")),
    "printer_id": st.one_of(st.just("rex1"), st.text(max_size=80), json_values),
    "type": st.one_of(
        st.sampled_from(
            ["pause", "resume", "cancel", "set_nozzle_temperature", "set_bed_temperature", "light"]
        ),
        json_values,
    ),
    "params": st.one_of(
        st.fixed_dictionaries({"celsius": st.one_of(st.integers(-(2**70), 2**70), json_values)}),
        st.fixed_dictionaries({"on": json_values}),
        json_values,
    ),
    "created_at": st.one_of(st.just("2026-11-23T20:31:00Z"), json_values),
    "expires_at": st.one_of(
        st.none(), st.just("tomorrow"), st.just("2026-11-23T20:31:00Z"), json_values
    ),
}
near_commands = st.fixed_dictionaries(
    {}, optional={name: strategy for name, strategy in field_values.items()}
)


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(st.one_of(near_commands, json_values), max_size=8))
def test_any_command_list_gives_commands_or_rejections_never_a_crash(entries: list[Any]) -> None:
    body = json.dumps({"commands": entries}).encode()
    parsed = parse_command_list(body)
    answered = [c.id for c in parsed.commands] + [c.id for c in parsed.invalid]
    assert len(answered) + len(parsed.unidentified) == len(entries)  # each entry, once
    for command in parsed.commands:
        verdict = check(command, CONFIG)
        assert isinstance(verdict, (str, *get_args(Action)))
    for item in parsed.invalid:
        assert item.reason
        assert "\n" not in item.reason


@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_a_body_that_is_not_a_command_list_is_a_fetch_error(body: bytes) -> None:
    try:
        parse_command_list(body)
    except FetchError:
        pass


# One printer's reply is parsed on the loop every printer shares: a pattern that backtracks
# quadratically over a long line (an unbounded [\w-]* took 16 s on 60,000 letters) would
# freeze them all. Linear parsing of these takes milliseconds; the bound is generous.
LONG = 60_000
ADVERSARIAL = [
    "Status: S:1 " + "a" * LONG,
    "a" * LONG + ":",
    "File opened: x" + " " * LONG + "y",
    "File opened: " + " Size:" * (LONG // 6),
    "T0:" + "9" * LONG,
    "T0" + " " * LONG + "x",
    "SD printing byte 1" + " " * LONG,
    "X: 1" + " " * LONG + "Y",
    "a1:" * (LONG // 3),
    "ab: " * (LONG // 4),
    "CMD M" + "1" * LONG,
]


def test_no_printer_reply_costs_more_than_linear_time() -> None:
    context = ["MachineStatus: READY", "Machine Type: x", "T0:1/1", "SD printing byte 1/2"]
    began = time.process_time()
    for line in ADVERSARIAL:
        for parser in PARSERS:
            try:
                parser([*context, "X:1 Y:1 Z:1", line])
            except UnexpectedPayloadError:
                pass
        buffer = ReplyBuffer("M119")
        try:
            buffer.feed(f"CMD M119 Received.\r\n{line}\r\nok\r\n".encode())
        except PrinterProtocolError:
            pass
    assert time.process_time() - began < 2.0
