"""FlashForge UDP discovery on the wire, without I/O: the probes to send, and replies parsed
into a typed struct (or a DiscoveryError). The byte layouts and their public sources are in
docs/discovery.md; the socket side is console/discover_net.py, the simulator's answering side
simulator/discovery.py.

Two generations answer discovery:

* legacy (Adventurer 3 class, which the REX and REX II are): a probe to the multicast group
  225.0.0.9 on UDP 19000 or 8899, answered with a 140-byte datagram;
* newer (Adventurer 5M class): a probe broadcast to UDP 48899, answered with 276 bytes.

Every field of a reply is printer-supplied and untrusted: text is decoded without failing
(bad UTF-8 becomes U+FFFD) but not cleaned here; whoever shows it cleans it for its medium.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from gateway.errors import DatagramTooLargeError, DatagramTooShortError, MalformedDatagramError

ReplyFormat = Literal["legacy", "newer"]
PrinterState = Literal["ready", "busy", "error", "unknown"]

MULTICAST_GROUP = "225.0.0.9"
BROADCAST = "255.255.255.255"
LEGACY_PORTS = (19000, 8899)
NEWER_PORT = 48899
UNICAST_PORT = 19000  # --to without a port: the one port both generations listen on

LEGACY_SIZE = 140
NEWER_SIZE = 276
# OrcaSlicer (and ff-5mp-api-py before 2026) read name and a 32-byte serial from any reply of
# at least 0xC4 bytes, so some firmware may send a shorter newer reply; serial is cut there.
NEWER_MIN_SIZE = 0xC4

# The newer probe, byte for byte as OrcaSlicer and ff-5mp-api-py send it ("www.usr" + 13).
NEWER_PROBE = b'www.usr"e6\xc0' + bytes(9)
_NEWER_MAGIC = b"www.usr"

_NAME = slice(0x00, 0x80)
_COMMAND_PORT = 0x84
_VENDOR_ID = 0x86
_PRODUCT_ID = 0x88
_STATUS = 0x8A
_PRODUCT_TYPE = 0x8C
_EVENT_PORT = 0x8E
_SERIAL_AT = 0x92
_SERIAL_END = 0x112
_STATES: dict[int, PrinterState] = {0: "ready", 1: "busy", 2: "error"}

# USB product ids (offset 0x88) -> model, as GhostTypes/ff-5mp-api-py maps them.
PRODUCT_NAMES: dict[int, str] = {
    0x0008: "Adventurer 3",
    0x0016: "Adventurer 4 Lite",
    0x001E: "Adventurer 4 Pro",
    0x0023: "Adventurer 5M",
    0x0024: "Adventurer 5M Pro",
    0x0026: "AD5X",
    0x0028: "Creator 5",
    0x0029: "Creator 5 Pro",
}


class Probe(NamedTuple):
    """One datagram to send: where, and what."""

    address: str
    port: int
    payload: bytes
    kind: ReplyFormat


class DiscoveryReply(msgspec.Struct, frozen=True, kw_only=True):
    """What one printer said about itself. Numbers the format lacks are 0; `serial` is ""
    in the legacy format, which has none."""

    format: ReplyFormat
    name: str
    serial: str = ""
    command_port: int = 0
    vendor_id: int = 0
    product_id: int = 0
    status_code: int = 0
    product_type: int = 0
    event_port: int = 0

    @property
    def state(self) -> PrinterState:
        """The ready/busy field read as a state; a code no source names is "unknown"."""
        return _STATES.get(self.status_code, "unknown")

    @property
    def model(self) -> str:
        """The model the product id names, else the id in hex (never the untrusted name)."""
        known = PRODUCT_NAMES.get(self.product_id)
        return f"{known} (0x{self.product_id:04x})" if known else f"0x{self.product_id:04x}"


def legacy_probe(reply_port: int) -> bytes:
    """The legacy probe in the shape clients copy from FlashPrint: an IPv4 address, a UDP port
    and two zero bytes.

    Printers answer the datagram's source whatever the payload says (Slugger2k's client sends
    a fixed address as ASCII text and is answered; ff-5mp-api-py sends an empty datagram), so
    the address stays 0.0.0.0 and only the port we listen on is filled in."""
    return bytes(4) + reply_port.to_bytes(2, "big") + bytes(2)


def lan_probes(reply_port: int) -> list[Probe]:
    """The probes for a whole LAN: legacy to the multicast group, newer to broadcast."""
    legacy = legacy_probe(reply_port)
    return [
        *(Probe(MULTICAST_GROUP, port, legacy, "legacy") for port in LEGACY_PORTS),
        Probe(BROADCAST, NEWER_PORT, NEWER_PROBE, "newer"),
    ]


def unicast_probes(address: str, port: int, reply_port: int) -> list[Probe]:
    """``--to``: both probes to one address and port, so either generation answers."""
    return [
        Probe(address, port, legacy_probe(reply_port), "legacy"),
        Probe(address, port, NEWER_PROBE, "newer"),
    ]


def probe_kind(payload: bytes) -> ReplyFormat:
    """Which reply a probe asks for: newer for the "www.usr" probe, legacy for anything else
    (legacy printers ignore the payload)."""
    return "newer" if payload.startswith(_NEWER_MAGIC) else "legacy"


def parse_reply(datagram: bytes) -> DiscoveryReply:
    """Read a 140-byte legacy or 276-byte newer reply; any other datagram is a DiscoveryError
    (too short, too large, or malformed) carrying the bytes."""
    size = len(datagram)
    if size < LEGACY_SIZE:
        raise DatagramTooShortError(f"{size} bytes, a reply has at least {LEGACY_SIZE}", datagram)
    if size > NEWER_SIZE:
        raise DatagramTooLargeError(f"{size} bytes, a reply has at most {NEWER_SIZE}", datagram)
    if LEGACY_SIZE < size < NEWER_MIN_SIZE:
        raise MalformedDatagramError(
            f"{size} bytes: neither {LEGACY_SIZE} (legacy) nor {NEWER_MIN_SIZE}..{NEWER_SIZE}",
            datagram,
        )
    newer = size >= NEWER_MIN_SIZE
    reply = DiscoveryReply(
        format="newer" if newer else "legacy",
        name=_text(datagram[_NAME]),
        serial=_text(datagram[_SERIAL_AT:_SERIAL_END]) if newer else "",
        command_port=_u16(datagram, _COMMAND_PORT),
        vendor_id=_u16(datagram, _VENDOR_ID),
        product_id=_u16(datagram, _PRODUCT_ID),
        status_code=_u16(datagram, _STATUS),
        product_type=_u16(datagram, _PRODUCT_TYPE) if newer else 0,
        event_port=_u16(datagram, _EVENT_PORT) if newer else 0,
    )
    if not reply.name.strip() and not reply.serial.strip():
        raise MalformedDatagramError("neither a name nor a serial number", datagram)
    return reply


def encode_reply(reply: DiscoveryReply) -> bytes:
    """The datagram a printer sends for `reply` (the simulator's answer; tests' fixtures).
    Text is cut to its field on a character boundary and always leaves a terminating NUL."""
    newer = reply.format == "newer"
    out = bytearray(NEWER_SIZE if newer else LEGACY_SIZE)
    name = _field_bytes(reply.name, _NAME.stop - _NAME.start)
    out[: len(name)] = name
    for offset, value in (
        (_COMMAND_PORT, reply.command_port),
        (_VENDOR_ID, reply.vendor_id),
        (_PRODUCT_ID, reply.product_id),
        (_STATUS, reply.status_code),
    ):
        out[offset : offset + 2] = value.to_bytes(2, "big")
    if newer:
        out[_PRODUCT_TYPE : _PRODUCT_TYPE + 2] = reply.product_type.to_bytes(2, "big")
        out[_EVENT_PORT : _EVENT_PORT + 2] = reply.event_port.to_bytes(2, "big")
        serial = _field_bytes(reply.serial, _SERIAL_END - _SERIAL_AT)
        out[_SERIAL_AT : _SERIAL_AT + len(serial)] = serial
    return bytes(out)


def _u16(datagram: bytes, offset: int) -> int:
    return int.from_bytes(datagram[offset : offset + 2], "big")


def _text(field: bytes) -> str:
    """A NUL-terminated field (a full field has no NUL). Bad UTF-8 becomes U+FFFD rather than
    an error: a printer named in Latin-1 is still a printer worth listing."""
    return field.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _field_bytes(text: str, width: int) -> bytes:
    encoded = text.encode("utf-8")[: width - 1]
    return encoded.decode("utf-8", errors="ignore").encode("utf-8")
