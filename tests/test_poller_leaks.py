"""Counting another client's reply frames: what counts, what never does, in any chunking."""

from __future__ import annotations

import pytest

from services.poller.leaks import MAX_LINE_BYTES, LeakScanner

FOREIGN = b"CMD M650 Received.\r\nX: 1.0 Y: 0.5\r\nok\r\n"
OURS = b"CMD M119 Received.\r\nMachineStatus: READY\r\nok\r\n"
GARBAGE = b"\x00\xff\xfe\x1b[garbage]\r\nok\r\nN0001 ok.\r\nok.\r\n"


def count(*chunks: tuple[bytes, bool], one_byte_at_a_time: bool = False) -> int:
    scanner = LeakScanner()
    for data, quiet in chunks:
        pieces = [data[i : i + 1] for i in range(len(data))] if one_byte_at_a_time else [data]
        for piece in pieces:
            scanner.feed(piece, quiet=quiet)
    return scanner.foreign


@pytest.mark.parametrize("bytewise", [False, True])
@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (((FOREIGN, True),), 1),  # a reply nobody on this connection asked for
        (((FOREIGN * 3, True),), 3),
        (((OURS, True),), 1),  # a leaked reply to a code we also send is foreign too
        (((FOREIGN + OURS, False),), 0),  # in front of our reply: indistinguishable from junk
        (((OURS, False), (FOREIGN, True)), 1),  # after our ok
        (((GARBAGE, True),), 0),  # garbage, a bare ok, an upload ack: no frame
        (((GARBAGE * 50, True),), 0),
        (((b"N0001 ok.\r\nN0002 ok.\r\n", True),), 0),  # another client's upload
        (((b"CMD M650 Received.\r\nX: 1.0\r\n", True),), 0),  # never closed by ok
        (((b"N0003 ok.CMD M24 Received.\r\nok\r\n", True),), 1),  # header glued to an ack
        (((b"CMD M650 Received.\r\n", True), (b"ok\r\n", False)), 1),  # began quiet
        (((b"CMD M650 Received.\r\n", False), (b"ok\r\n", True)), 0),  # began asked
        (((b"CMD M650 Received.\r\nCMD M27 Received.\r\nok\r\n", True),), 1),  # restarted
    ],
)
def test_what_counts_as_another_client(
    chunks: tuple[tuple[bytes, bool], ...], expected: int, bytewise: bool
) -> None:
    assert count(*chunks, one_byte_at_a_time=bytewise) == expected


def test_an_endless_line_is_dropped_and_the_scanner_stays_bounded() -> None:
    scanner = LeakScanner()
    scanner.feed(b"CMD M650 Received.\r\n" + b"x" * (MAX_LINE_BYTES + 10), quiet=True)
    scanner.feed(b"\r\nok\r\n", quiet=True)  # the frame was abandoned with the long line
    assert scanner.foreign == 0
    scanner.feed(FOREIGN, quiet=True)
    assert scanner.foreign == 1
    assert scanner.last_foreign_code == "M650"
