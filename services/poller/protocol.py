"""FlashForge port-8899 protocol, sans I/O: encode commands, frame replies, parse payloads.

Theory of operation
-------------------
A request is ``~<code> [args]\\r\\n``. A reply is a header line ``CMD <code> Received.``, zero
or more payload lines, and a line that *equals* ``ok`` (``ok.`` on older firmware). Real
printers do not keep replies apart per connection (another client's reply can leak into
ours), pad M115 with a stray LF and a blank line, and may send anything before the header.
So a ReplyBuffer is made for one command and:

* drops every line before the header of *that* command (leaks, garbage, stale bytes);
* completes only at an ``ok``/``ok.`` line after that header, never on "ok" inside text
  (``Notebook.gx`` contains "ok");
* treats another ``CMD ... Received.`` header inside the payload as an interleaved reply
  and raises MalformedReplyError (the caller retries; the payload cannot be trusted);
* raises ReplyTooLargeError when the reply is not complete within ``max_bytes`` bytes.

The outcome depends only on the byte stream, never on how it was chunked. Parsers take the
payload lines and return typed structs with numbers as numbers, or raise
UnexpectedPayloadError; they never return sentinels.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence

import msgspec

from gateway.errors import (
    MalformedReplyError,
    PrinterProtocolError,
    ReplyTooLargeError,
    UnexpectedPayloadError,
)
from gateway.messages import (
    MAX_CELSIUS,
    MAX_COUNTER,
    MAX_LAYER,
    MAX_TEXT,
    MIN_CELSIUS,
    Layer,
    Temperature,
)

MAX_REPLY_BYTES = 64 * 1024
# Plausible ranges (those of the records, gateway.messages): a value outside them is not a
# reading but garbage or a hostile peer, and becomes UnexpectedPayloadError here, at the
# boundary, before it can reach a record.
TEMPERATURE_C = (MIN_CELSIUS, MAX_CELSIUS)
MAX_TOOLS = 16
_CODE = re.compile(r"^[MG]\d{1,4}$", re.ASCII)
_ANY_HEADER = re.compile(r"CMD [MG]\d+ Received\.$", re.ASCII)
# Another client's file-upload acknowledgements ("N0001 ok.") leak across connections
# (Chris112358/3D_printer_observer); they are never part of a reply we asked for.
_UPLOAD_ACK = re.compile(r"^N\d+ ok\.?$", re.ASCII)
_NUMBER = r"-?\d+(?:\.\d+)?"  # with re.ASCII (every pattern here): digits 0-9 only
_INTEGER = re.compile(r"-?[0-9]+\Z")
_DECIMAL = re.compile(rf"{_NUMBER}\Z", re.ASCII)


def encode_command(code: str, *args: str) -> bytes:
    """The bytes of one request, e.g. ``encode_command("M601", "S1") == b"~M601 S1\\r\\n"``."""
    if not _CODE.match(code):
        raise ValueError(f"not a G/M code: {code!r}")
    for arg in args:
        if not arg or not arg.isascii() or any(c in arg for c in "\r\n~"):
            raise ValueError(f"argument not sendable: {arg!r}")
    return ("~" + " ".join((code, *args)) + "\r\n").encode("ascii")


class Reply(msgspec.Struct, frozen=True):
    """A complete reply: its code and the non-blank payload lines, whitespace stripped."""

    code: str
    lines: tuple[str, ...]


class ReplyBuffer:
    """Frames the reply to one command from bytes fed in any chunking."""

    def __init__(self, code: str, max_bytes: int = MAX_REPLY_BYTES) -> None:
        if not _CODE.match(code):
            raise ValueError(f"not a G/M code: {code!r}")
        self.code = code
        self.max_bytes = max_bytes
        self._header = f"CMD {code} Received."
        self._partial = bytearray()
        self._position = 0  # bytes consumed into complete lines, before completion
        self._in_reply = False
        self._lines: list[str] = []
        self._reply: Reply | None = None
        self.discarded_lines = 0
        self.trailing = bytearray()

    @property
    def complete(self) -> bool:
        """Whether the ``ok`` of this command's reply has been seen."""
        return self._reply is not None

    def feed(self, data: bytes) -> None:
        """Add received bytes; raises a PrinterProtocolError subclass on a bad reply."""
        if self._reply is not None:
            self.trailing += data
            return
        self._partial += data
        while self._reply is None:
            end = self._partial.find(b"\n")
            if end < 0:
                break
            line = bytes(self._partial[: end + 1])
            del self._partial[: end + 1]
            self._position += len(line)
            if self._position > self.max_bytes:
                raise ReplyTooLargeError(self._too_large(), bytes(line))
            self._take_line(line)
        if self._reply is not None:
            self.trailing += self._partial
            self._partial.clear()
        elif self._position + len(self._partial) > self.max_bytes:
            raise ReplyTooLargeError(self._too_large(), bytes(self._partial[-256:]))

    def next_reply(self) -> Reply | None:
        """The complete reply, or None while more bytes are needed."""
        return self._reply

    def _too_large(self) -> str:
        return f"reply to {self.code} not complete within {self.max_bytes} bytes"

    def _take_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not self._in_reply:
            # A header glued to leaked bytes without a newline still counts.
            if text.endswith(self._header):
                self._in_reply = True
            else:
                self.discarded_lines += 1
            return
        if text in ("ok", "ok."):
            self._reply = Reply(self.code, tuple(self._lines))
        elif _ANY_HEADER.search(text):
            raise MalformedReplyError(
                f"reply to {self.code} interleaved with another reply: {text!r}", raw
            )
        elif text and not _UPLOAD_ACK.match(text):
            self._lines.append(text)


def frame_reply(code: str, data: bytes, max_bytes: int = MAX_REPLY_BYTES) -> Reply:
    """Frame a reply from a whole byte string; raises if it is incomplete or bad."""
    buffer = ReplyBuffer(code, max_bytes)
    buffer.feed(data)
    reply = buffer.next_reply()
    if reply is None:
        raise PrinterProtocolError(f"reply to {code} incomplete", data[-256:])
    return reply


# ---------------------------------------------------------------- payload parsers


def _payload_error(what: str, lines: Sequence[str]) -> UnexpectedPayloadError:
    return UnexpectedPayloadError(f"{what}: {list(lines)!r}"[:400], "\n".join(lines).encode())


def _key_values(lines: Sequence[str]) -> dict[str, str]:
    """``Key: value`` lines by key (first colon splits; later duplicates are ignored)."""
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            values.setdefault(key.strip(), value.strip())
    return values


def _int(text: str, low: int, high: int, what: str, lines: Sequence[str]) -> int:
    """A decimal integer within [low, high], else UnexpectedPayloadError (never a huge int
    that no encoder downstream can carry)."""
    if len(text) > 20 or not _INTEGER.match(text):  # before int(): 10,000 digits cost CPU
        raise _payload_error(f"{what} is not a plausible number", lines)
    value = int(text)
    if not low <= value <= high:
        raise _payload_error(f"{what} {value} outside {low}..{high}", lines)
    return value


def _float(text: str, low: float, high: float, what: str, lines: Sequence[str]) -> float:
    """A finite decimal number within [low, high], else UnexpectedPayloadError."""
    value = float(text) if len(text) <= 40 and _DECIMAL.match(text) else math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise _payload_error(f"{what} {text[:40]!r} outside {low:g}..{high:g}", lines)
    return value


def _text(value: str, what: str, lines: Sequence[str]) -> str:
    """A line a person could read; longer is garbage, not a name."""
    if len(value) > MAX_TEXT:
        raise _payload_error(f"{what} longer than {MAX_TEXT} characters", lines)
    return value


def _optional_text(value: str | None, what: str, lines: Sequence[str]) -> str | None:
    """Like _text; None when absent or empty."""
    return _text(value, what, lines) if value else None


class MachineInfo(msgspec.Struct, frozen=True, kw_only=True):
    """M115: identity and build volume."""

    machine_type: str | None
    name: str | None
    firmware: str | None
    serial: str | None
    tool_count: int | None
    build_volume: tuple[float, float, float] | None
    mac: str | None


_VOLUME = re.compile(rf"^X:\s*({_NUMBER})\s+Y:\s*({_NUMBER})\s+Z:\s*({_NUMBER})$", re.ASCII)


def parse_m115(lines: Sequence[str]) -> MachineInfo:
    """Parse the M115 payload (every key optional; at least one identity key required)."""
    values = _key_values(lines)
    volume = None
    for line in lines:
        match = _VOLUME.match(line)
        if match:
            x, y, z = (
                _float(match[i], 0.0, 10_000.0, "M115 build volume", lines) for i in (1, 2, 3)
            )
            volume = (x, y, z)
    tools = values.get("Tool Count")
    info = MachineInfo(
        machine_type=_optional_text(values.get("Machine Type"), "M115 Machine Type", lines),
        name=_optional_text(values.get("Machine Name"), "M115 Machine Name", lines),
        firmware=_optional_text(values.get("Firmware"), "M115 Firmware", lines),
        # "SN:" in every capture; "Serial Number:" in a public A3 client's fixtures
        # (GhostTypes/ff-5mp-api-py tests/test_a3_client.py): take either, SN first.
        serial=_optional_text(
            values.get("SN") or values.get("Serial Number"), "M115 serial number", lines
        ),
        tool_count=None if tools is None else _int(tools, 0, MAX_TOOLS, "M115 Tool Count", lines),
        build_volume=volume,
        mac=_optional_text(values.get("Mac Address"), "M115 Mac Address", lines),
    )
    if info.machine_type is None and info.name is None and info.firmware is None:
        raise _payload_error("M115 without machine type, name or firmware", lines)
    return info


class Temperatures(msgspec.Struct, frozen=True):
    """M105: every nozzle in tool order, and the bed when reported."""

    nozzles: tuple[Temperature, ...]
    bed: Temperature | None


_HEATER = re.compile(rf"(?<![A-Za-z0-9])(T\d*|B)\s*:\s*({_NUMBER})\s*/\s*({_NUMBER})", re.ASCII)


def parse_m105(lines: Sequence[str]) -> Temperatures:
    """Parse ``T0:27 /0 B:20/0``, ``T0:104.5/225.0 T1:0.0/0.0 B:51.3/50.0`` and kin."""
    nozzles: dict[int, Temperature] = {}
    bed = None
    for match in _HEATER.finditer(" ".join(lines)):
        reading = Temperature(
            current=_float(match[2], *TEMPERATURE_C, f"M105 {match[1]} temperature", lines),
            target=_float(match[3], *TEMPERATURE_C, f"M105 {match[1]} target", lines),
        )
        if match[1] == "B":
            bed = bed or reading
        else:
            tool = _int(match[1][1:] or "0", 0, MAX_TOOLS - 1, "M105 tool number", lines)
            nozzles.setdefault(tool, reading)
    if not nozzles:
        raise _payload_error("M105 without a nozzle temperature", lines)
    return Temperatures(tuple(nozzles[index] for index in sorted(nozzles)), bed)


class PrintProgress(msgspec.Struct, frozen=True):
    """M27: the printer's own counter (totals 100, 1000 or bytes) and layer if reported."""

    done: int
    total: int
    layer: Layer | None = None

    @property
    def percent(self) -> float:
        """0-100; a zero total is 0, a negative count 0, a count past the total 100."""
        if self.total <= 0:
            return 0.0
        return 100.0 * min(max(self.done, 0), self.total) / self.total


_SD_BYTE = re.compile(r"SD printing byte\s*(-?\d+)\s*/\s*(-?\d+)", re.ASCII)
_LAYER = re.compile(r"^Layer:\s*(\d+)\s*/\s*(\d+)$", re.ASCII)


def parse_m27(lines: Sequence[str]) -> PrintProgress:
    """Parse ``SD printing byte 42/100`` (plus ``Layer: 44/419`` where present)."""
    progress = None
    layer = None
    for line in lines:
        if (match := _SD_BYTE.search(line)) is not None:
            progress = (
                _int(match[1], -MAX_COUNTER, MAX_COUNTER, "M27 byte count", lines),
                _int(match[2], -MAX_COUNTER, MAX_COUNTER, "M27 byte total", lines),
            )
        elif (match := _LAYER.match(line)) is not None:
            layer = Layer(
                current=_int(match[1], 0, MAX_LAYER, "M27 layer", lines),
                total=_int(match[2], 0, MAX_LAYER, "M27 layer total", lines),
            )
        elif line.lower().startswith("not sd printing"):
            progress = progress or (0, 0)
    if progress is None:
        raise _payload_error("M27 without 'SD printing byte'", lines)
    return PrintProgress(progress[0], progress[1], layer)


class Activity(enum.Enum):
    """What M119 says the machine is doing, both pause forms folded into PAUSED."""

    READY = "ready"
    PRINTING = "printing"
    PAUSED = "paused"
    COMPLETED = "completed"
    BUSY = "busy"
    UNKNOWN = "unknown"


_MACHINE_STATUS = {
    "READY": Activity.READY,
    "BUILDING_FROM_SD": Activity.PRINTING,
    "BUILDING": Activity.PRINTING,
    "PAUSED": Activity.PAUSED,
    "BUILDING_COMPLETED": Activity.COMPLETED,
    "BUSY": Activity.BUSY,
}
# Bounded: an unbounded [\w-]* backtracks quadratically over a long word (60,000 letters
# took 16 s), and one printer's reply must never cost the others their polls.
_FLAG = re.compile(r"([A-Za-z][\w-]{0,31}):\s{0,8}(-?\d{1,20})", re.ASCII)


class MachineStatus(msgspec.Struct, frozen=True, kw_only=True):
    """M119, parsed by key: the line set differs between firmwares."""

    machine_status: str
    move_mode: str | None
    endstops: dict[str, int]
    flags: dict[str, int]
    led: bool | None
    current_file: str | None

    @property
    def activity(self) -> Activity:
        """PAUSED for ``MachineStatus: PAUSED`` and for ``MoveMode: PAUSED`` alike."""
        if self.move_mode == "PAUSED":
            return Activity.PAUSED
        return _MACHINE_STATUS.get(self.machine_status, Activity.UNKNOWN)


def parse_m119(lines: Sequence[str]) -> MachineStatus:
    """Parse the M119 payload; ``MachineStatus`` is required, every other key optional."""
    values = _key_values(lines)
    machine_status = values.get("MachineStatus")
    if not machine_status:
        raise _payload_error("M119 without MachineStatus", lines)
    led = values.get("LED")
    if led is not None and led not in ("0", "1"):
        raise _payload_error("M119 LED is not 0 or 1", lines)
    return MachineStatus(
        machine_status=_text(machine_status, "M119 MachineStatus", lines),
        move_mode=_optional_text(values.get("MoveMode"), "M119 MoveMode", lines),
        endstops=_flags(values.get("Endstop", ""), lines),
        flags=_flags(values.get("Status", ""), lines),
        led=None if led is None else led == "1",
        current_file=_optional_text(values.get("CurrentFile"), "M119 CurrentFile", lines),
    )


def _flags(text: str, lines: Sequence[str]) -> dict[str, int]:
    return {k: _int(v, -(2**31), 2**31 - 1, "M119 flag", lines) for k, v in _FLAG.findall(text)}


class Position(msgspec.Struct, frozen=True):
    """M114: head position in mm (A/B are extruder axes, not always present)."""

    x: float
    y: float
    z: float
    a: float | None = None
    b: float | None = None


_AXIS = re.compile(rf"(?<![A-Za-z])([XYZAB]):\s*({_NUMBER})", re.ASCII)


def parse_m114(lines: Sequence[str]) -> Position:
    """Parse ``X:79.9981 Y:50.0002 Z:77.9001 A:0 B:0``."""
    axes: dict[str, float] = {}
    for line in lines:
        for axis, value in _AXIS.findall(line):
            axes.setdefault(axis, _float(value, -100_000.0, 100_000.0, f"M114 {axis}", lines))
    if not {"X", "Y", "Z"} <= axes.keys():
        raise _payload_error("M114 without X, Y and Z", lines)
    return Position(axes["X"], axes["Y"], axes["Z"], axes.get("A"), axes.get("B"))


class ControlGrant(msgspec.Struct, frozen=True):
    """M601: whether control was granted, and the firmware's exact words; `lingering`: the
    printer says this client is already connected (``Error: have been connected``)."""

    granted: bool
    text: str
    lingering: bool = False


def parse_m601(lines: Sequence[str]) -> ControlGrant:
    """``Control Success.`` / ``Control Success V2.1.`` grant; ``Control failed.`` refuses;
    ``Error: have been connected`` (A3 firmware, per public clients) is our own earlier
    session still open on the printer: control is ours, the read-back confirms it."""
    for line in lines:
        lowered = line.lower()
        if lowered.startswith("control success"):
            return ControlGrant(True, line)
        if lowered.startswith("control failed"):
            return ControlGrant(False, line)
        if lowered.startswith("error: have been connected"):
            return ControlGrant(True, line, lingering=True)
    raise _payload_error(
        "M601 without 'Control Success', 'Control failed' or 'have been connected'", lines
    )


def parse_m602(lines: Sequence[str]) -> None:
    """``Control Release.``; an empty payload is accepted as a release too."""
    if lines and not lines[0].lower().startswith("control release"):
        raise _payload_error("M602 reply is not 'Control Release.'", lines)


class FileSelected(msgspec.Struct, frozen=True):
    """M23: the file the printer opened (and, on A3-family firmware, started)."""

    name: str
    size: int | None


def parse_m23(lines: Sequence[str]) -> FileSelected:
    """Parse ``File opened: 20mm_Box.gx Size: 154674`` / ``File selected``."""
    for line in lines:
        if not line.startswith("File opened:"):
            continue
        rest = line.removeprefix("File opened:").strip()
        # rpartition, not a lazy regex: (.+?)(\s+Size...)?$ is quadratic on a line of spaces
        name, sep, tail = rest.rpartition(" Size:")
        size = None
        if sep and tail.strip().isascii() and tail.strip().isdigit():
            size = _int(tail.strip(), 0, MAX_COUNTER, "M23 size", lines)
            rest = name.rstrip()
        if rest:
            return FileSelected(_text(rest, "M23 file name", lines), size)
    raise _payload_error("M23 without 'File opened'", lines)


_REFUSAL = re.compile(r"\b(error|fail(ed)?|invalid|unknown)\b", re.IGNORECASE | re.ASCII)


def parse_ack(lines: Sequence[str]) -> tuple[str, ...]:
    """A plain acknowledgement (M24/M25/M26/M104/M140/M146...): any payload but a refusal."""
    for line in lines:
        if _REFUSAL.search(line):
            raise _payload_error("printer refused the command", lines)
    return tuple(lines)


class Observation(msgspec.Struct, frozen=True):
    """One complete reading of a printer."""

    machine: MachineStatus
    temperatures: Temperatures
    progress: PrintProgress

    @property
    def activity(self) -> Activity:
        """What the printer is doing (both pause forms are PAUSED)."""
        return self.machine.activity
