"""Reply framing: every fixture whole, byte by byte and with trailing bytes; faults; properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import MalformedReplyError, PrinterProtocolError, ReplyTooLargeError
from services.poller.protocol import ReplyBuffer, encode_command, frame_reply
from tests.fixtures.replies import FIXTURES, ReplyFixture, by_name

ids = [fixture.name for fixture in FIXTURES]


def _feed_all(code: str, chunks: list[bytes]) -> tuple[str, ...] | None:
    buffer = ReplyBuffer(code)
    for chunk in chunks:
        buffer.feed(chunk)
    reply = buffer.next_reply()
    return None if reply is None else reply.lines


@pytest.mark.parametrize("fixture", FIXTURES, ids=ids)
def test_fixture_whole(fixture: ReplyFixture) -> None:
    assert _feed_all(fixture.code, [fixture.wire]) == fixture.payload


@pytest.mark.parametrize("fixture", FIXTURES, ids=ids)
def test_fixture_one_byte_at_a_time(fixture: ReplyFixture) -> None:
    chunks = [fixture.wire[i : i + 1] for i in range(len(fixture.wire))]
    assert _feed_all(fixture.code, chunks) == fixture.payload


@pytest.mark.parametrize("fixture", FIXTURES, ids=ids)
def test_fixture_with_trailing_bytes(fixture: ReplyFixture) -> None:
    trailing = b"CMD M105 Received.\r\nT0:1 /0 B:1/0\r\nok\r\n\x00\xff"
    buffer = ReplyBuffer(fixture.code)
    if fixture.payload is None:  # a reply that never ends: what follows is an interleaved one
        with pytest.raises(MalformedReplyError):
            buffer.feed(fixture.wire + trailing)
        return
    buffer.feed(fixture.wire + trailing)
    reply = buffer.next_reply()
    assert (None if reply is None else reply.lines) == fixture.payload
    if fixture.payload is not None:
        assert bytes(buffer.trailing).endswith(trailing)


def test_leaked_reply_and_garbage_before_header_are_dropped() -> None:
    leak = (
        b"CMD M105 Received.\r\nT0:200 /210 B:60/60\r\nok\r\n\x00\xffnoise\r\nok\r\nN0001 ok.\r\n"
    )
    buffer = ReplyBuffer("M27")
    buffer.feed(leak + by_name("m27_a3_printing").wire)
    reply = buffer.next_reply()
    assert reply is not None
    assert reply.lines == ("SD printing byte 2/100",)
    assert buffer.discarded_lines == 6


def test_header_glued_to_leaked_bytes_still_counts() -> None:
    assert frame_reply("M24", b"N0003 ok.CMD M24 Received.\r\nok\r\n").lines == ()


def test_ok_inside_a_file_name_does_not_end_the_reply() -> None:
    wire = b"CMD M119 Received.\r\nMachineStatus: BUILDING_FROM_SD\r\nCurrentFile: Notebook.gx\r\nok\r\n"
    buffer = ReplyBuffer("M119")
    buffer.feed(wire[:-4])
    assert not buffer.complete
    buffer.feed(wire[-4:])
    assert buffer.complete


def test_ok_with_a_dot_ends_the_reply() -> None:
    assert frame_reply("M26", b"CMD M26 Received.\nok.\n").lines == ()


def test_upload_acks_inside_a_reply_are_dropped() -> None:
    wire = b"CMD M27 Received.\r\nN0007 ok.\r\nSD printing byte 9/100\r\nok\r\n"
    assert frame_reply("M27", wire).lines == ("SD printing byte 9/100",)


def test_another_header_inside_the_payload_is_malformed() -> None:
    wire = b"CMD M119 Received.\r\nMachineStatus: READY\r\nCMD M105 Received.\r\nT0:1 /0 B:1/0\r\nok\r\n"
    with pytest.raises(MalformedReplyError) as caught:
        ReplyBuffer("M119").feed(wire)
    assert b"CMD M105" in caught.value.raw


def test_reply_larger_than_the_bound_raises() -> None:
    buffer = ReplyBuffer("M119", max_bytes=1024)
    buffer.feed(b"CMD M119 Received.\r\n")
    with pytest.raises(ReplyTooLargeError):
        buffer.feed((b"x" * 64 + b"\r\n") * 100)


def test_endless_line_without_newline_raises() -> None:
    buffer = ReplyBuffer("M119", max_bytes=4096)
    with pytest.raises(ReplyTooLargeError):
        buffer.feed(b"y" * 5000)


def test_reply_ending_exactly_at_the_bound_is_accepted() -> None:
    wire = by_name("m119_rex_ready").wire
    assert frame_reply("M119", wire, max_bytes=len(wire)).lines
    with pytest.raises(ReplyTooLargeError):
        frame_reply("M119", wire, max_bytes=len(wire) - 1)


def test_incomplete_reply_is_a_protocol_error_for_frame_reply() -> None:
    with pytest.raises(PrinterProtocolError):
        frame_reply("M26", by_name("m26_abort_a4_no_ok").wire)


def test_encode_command() -> None:
    assert encode_command("M601", "S1") == b"~M601 S1\r\n"
    assert encode_command("M27") == b"~M27\r\n"
    assert encode_command("M146", "r255", "g255", "b255", "F0") == b"~M146 r255 g255 b255 F0\r\n"


@pytest.mark.parametrize(
    ("code", "args"),
    [
        ("X1", ()),
        ("M", ()),
        ("m105", ()),
        ("M104", ("S200\r\n~M26",)),
        ("M23", ("0:/user/é.gx",)),
        ("M104", ("",)),
    ],
)
def test_encode_command_refuses_unsendable_input(code: str, args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="not"):
        encode_command(code, *args)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _outcome(code: str, chunks: list[bytes], max_bytes: int = 512) -> object:
    buffer = ReplyBuffer(code, max_bytes=max_bytes)
    try:
        for chunk in chunks:
            buffer.feed(chunk)
    except PrinterProtocolError as err:
        return type(err)
    reply = buffer.next_reply()
    return None if reply is None else reply.lines


@given(
    fixture=st.sampled_from(FIXTURES),
    noise=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_chunking_never_changes_the_result(
    fixture: ReplyFixture, noise: bytes, cuts: list[int]
) -> None:
    data = noise + b"\r\n" + fixture.wire
    assert _outcome(fixture.code, _chunked(data, cuts)) == _outcome(fixture.code, [data])


@given(
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    whole = _outcome("M119", [data])
    assert _outcome("M119", _chunked(data, cuts)) == whole
    assert whole is None or isinstance(whole, tuple) or issubclass(whole, PrinterProtocolError)  # type: ignore[arg-type]


@given(
    lines=st.lists(
        st.sampled_from(
            [
                "CMD M119 Received.",
                "ok",
                "ok.",
                "",
                " ",
                "MachineStatus: READY",
                "CMD M105 Received.",
                "N0001 ok.",
                "\x00\xff",
                "LED: 1",
            ]
        ),
        max_size=30,
    ),
    newline=st.sampled_from(["\r\n", "\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20),
)
def test_protocol_shaped_streams_are_chunking_invariant(
    lines: list[str], newline: str, cuts: list[int]
) -> None:
    data = newline.join(lines).encode("utf-8", "surrogateescape")
    assert _outcome("M119", _chunked(data, cuts)) == _outcome("M119", [data])
