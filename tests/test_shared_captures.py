"""Every capture in ../shared/protocol/captures, read directly (skipped when ../shared is absent).

Line 1 of each capture names its source; the rest is the reply as recorded. Recording
artefacts are undone the way the protocol doc describes them: ``*_pipe_joined_log`` files
have their `` | `` joins split, transcripts without a final terminator get one, and
``*_payload_line`` files hold a bare payload line that is parsed without framing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from services.poller.protocol import (
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
from tests.conftest import SHARED

CAPTURES = SHARED / "protocol" / "captures"
PARSERS: dict[str, Callable[[Sequence[str]], object]] = {
    "M105": parse_m105,
    "M27": parse_m27,
    "M115": parse_m115,
    "M119": parse_m119,
    "M114": parse_m114,
    "M601": parse_m601,
    "M602": parse_m602,
    "M23": parse_m23,
}
_HEADER = re.compile(rb"^\s*CMD ([MG]\d+) Received\.\s*$")

captures = sorted(CAPTURES.glob("*.txt")) if CAPTURES.is_dir() else []
pytestmark = pytest.mark.skipif(not captures, reason=f"no captures at {CAPTURES}")


def _body(path: Path) -> bytes:
    raw = path.read_bytes()
    body = raw.split(b"\n", 1)[1] if raw.startswith(b"# source") else raw
    if path.stem.endswith("pipe_joined_log"):
        body = b"\n".join(part.strip() for part in body.split(b" | "))
    return body if body.endswith(b"\n") else body + b"\r\n"


def _expected(body: bytes) -> tuple[str | None, tuple[str, ...] | None]:
    """Framing worked out independently of ReplyBuffer: header, then lines up to an ok line."""
    lines = body.split(b"\n")
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            payload: list[str] = []
            for item in lines[index + 1 :]:
                text = item.decode("utf-8", "replace").strip()
                if text in ("ok", "ok."):
                    return header[1].decode(), tuple(payload)
                if text:
                    payload.append(text)
            return header[1].decode(), None
    return None, None


def _code_from_name(path: Path) -> str:
    return path.stem.split("_", 1)[0].upper()


@pytest.mark.parametrize("path", captures, ids=[p.stem for p in captures])
def test_capture_frames_and_parses(path: Path) -> None:
    body = _body(path)
    if path.stem.endswith("payload_line"):
        line = body.decode().strip()
        parsed = PARSERS[_code_from_name(path)]([line])
        assert parsed is not None
        return
    code, payload = _expected(body)
    buffer = ReplyBuffer(code or _code_from_name(path))
    for index in range(len(body)):  # one byte at a time: the hardest chunking
        buffer.feed(body[index : index + 1])
    reply = buffer.next_reply()
    assert (None if reply is None else reply.lines) == payload
    if reply is not None:
        parser = PARSERS.get(reply.code, parse_ack)
        parser(reply.lines)


def test_every_capture_family_has_a_project_fixture() -> None:
    from tests.fixtures.replies import FIXTURES

    families = {_code_from_name(path) for path in captures}
    assert families <= {fixture.code for fixture in FIXTURES}
