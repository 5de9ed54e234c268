"""gateway.discovery: the probes and the two reply layouts (docs/discovery.md).

The fixtures are written out byte by byte from the public layouts (GhostTypes/ff-5mp-api-py
``flashforge/discovery/discovery.py``, the Parallel-7/flashforge-api-docs wiki "Discovery
Protocol", OrcaSlicer ``src/slic3r/Utils/Flashforge.cpp``), not produced by our encoder, so a
wrong offset in the encoder and the parser alike cannot pass.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.discovery import (
    NEWER_PROBE,
    DiscoveryReply,
    Probe,
    encode_reply,
    lan_probes,
    legacy_probe,
    parse_reply,
    probe_kind,
    unicast_probes,
)
from gateway.errors import (
    DatagramTooLargeError,
    DatagramTooShortError,
    DiscoveryError,
    GatewayError,
    MalformedDatagramError,
)


def _pad(data: bytes, size: int) -> bytes:
    assert len(data) <= size
    return data + bytes(size - len(data))


# 140 bytes: name (128) | 4 unread | port 8899 | vendor 0x2b71 | product 0x0008 | status 1 (busy)
LEGACY_REX_BUSY = (
    _pad(b"Bresser REX", 0x80)
    + bytes(4)
    + b"\x22\xc3"
    + b"\x2b\x71"
    + b"\x00\x08"
    + b"\x00\x01"
    + bytes(140 - 0x8C)
)
# 276 bytes: name (128) | 4 padding | port 8899 | vendor | product 0x0024 | status 0 (ready) |
# product type 0x5a02 | event port 8898 | LAN-mode flag 1 | reserved | serial (128) | 2 padding
NEWER_5M_PRO_READY = (
    _pad(b"Adventurer 5M Pro", 0x80)
    + bytes(4)
    + b"\x22\xc3"
    + b"\x2b\x71"
    + b"\x00\x24"
    + b"\x00\x00"
    + b"\x5a\x02"
    + b"\x22\xc2"
    + b"\x01\x00"
    + _pad(b"SNMOMC9900728", 128)
    + bytes(2)
)


def test_the_fixtures_have_the_documented_sizes() -> None:
    assert (len(LEGACY_REX_BUSY), len(NEWER_5M_PRO_READY)) == (140, 276)


def test_a_legacy_reply_parses_to_its_fields() -> None:
    reply = parse_reply(LEGACY_REX_BUSY)
    assert reply == DiscoveryReply(
        format="legacy",
        name="Bresser REX",
        command_port=8899,
        vendor_id=0x2B71,
        product_id=0x0008,
        status_code=1,
    )
    assert (reply.state, reply.model, reply.serial) == ("busy", "Adventurer 3 (0x0008)", "")


def test_a_newer_reply_parses_to_its_fields() -> None:
    reply = parse_reply(NEWER_5M_PRO_READY)
    assert reply == DiscoveryReply(
        format="newer",
        name="Adventurer 5M Pro",
        serial="SNMOMC9900728",
        command_port=8899,
        vendor_id=0x2B71,
        product_id=0x0024,
        status_code=0,
        product_type=0x5A02,
        event_port=8898,
    )
    assert (reply.state, reply.model) == ("ready", "Adventurer 5M Pro (0x0024)")


@pytest.mark.parametrize("datagram", [LEGACY_REX_BUSY, NEWER_5M_PRO_READY])
def test_encoding_a_parsed_reply_gives_the_same_bytes(datagram: bytes) -> None:
    # Bytes the layout leaves unread (the LAN-mode flag) are zero in what we encode.
    expected = datagram.replace(b"\x22\xc2\x01\x00", b"\x22\xc2\x00\x00")
    assert encode_reply(parse_reply(datagram)) == expected


@given(
    fmt=st.sampled_from(["legacy", "newer"]),
    name=st.text(min_size=1, max_size=40).filter(
        lambda s: "\0" not in s and s.strip() and len(s.encode()) < 128
    ),
    serial=st.text(max_size=40).filter(lambda s: "\0" not in s and len(s.encode()) < 128),
    numbers=st.lists(st.integers(0, 0xFFFF), min_size=6, max_size=6),
)
def test_parse_of_encode_is_the_reply(fmt: str, name: str, serial: str, numbers: list[int]) -> None:
    newer = fmt == "newer"
    reply = DiscoveryReply(
        format="newer" if newer else "legacy",
        name=name,
        serial=serial if newer else "",
        command_port=numbers[0],
        vendor_id=numbers[1],
        product_id=numbers[2],
        status_code=numbers[3],
        product_type=numbers[4] if newer else 0,
        event_port=numbers[5] if newer else 0,
    )
    assert parse_reply(encode_reply(reply)) == reply


@pytest.mark.parametrize(
    ("code", "state"), [(0, "ready"), (1, "busy"), (2, "error"), (7, "unknown")]
)
def test_the_status_field_reads_as_a_state(code: int, state: str) -> None:
    datagram = LEGACY_REX_BUSY[:0x8A] + code.to_bytes(2, "big") + LEGACY_REX_BUSY[0x8C:]
    assert parse_reply(datagram).state == state


@pytest.mark.parametrize("size", [0, 1, 20, 139])
def test_short_datagrams_are_rejected(size: int) -> None:
    with pytest.raises(DatagramTooShortError) as caught:
        parse_reply(NEWER_5M_PRO_READY[:size])
    assert caught.value.raw == NEWER_5M_PRO_READY[:size]


@pytest.mark.parametrize("size", [277, 512, 2048])
def test_oversized_datagrams_are_rejected(size: int) -> None:
    with pytest.raises(DatagramTooLargeError):
        parse_reply(_pad(NEWER_5M_PRO_READY, size))


@pytest.mark.parametrize("size", [141, 160, 195])
def test_sizes_between_the_formats_are_malformed(size: int) -> None:
    with pytest.raises(MalformedDatagramError):
        parse_reply(_pad(LEGACY_REX_BUSY, size))


def test_a_reply_with_neither_name_nor_serial_is_malformed() -> None:
    with pytest.raises(MalformedDatagramError):
        parse_reply(bytes(140))
    with pytest.raises(MalformedDatagramError):
        parse_reply(b"   " + bytes(273))


def test_a_newer_reply_with_only_a_serial_is_kept() -> None:
    datagram = bytes(0x92) + _pad(b"SN1", 276 - 0x92)
    assert parse_reply(datagram).serial == "SN1"


def test_a_196_byte_newer_reply_is_read_with_its_serial_cut_there() -> None:
    # OrcaSlicer reads replies of at least 0xC4 bytes: name at 0, a 32-byte serial at 0x92.
    datagram = _pad(b"Old 5M", 0x92) + b"S" * 50
    reply = parse_reply(datagram)
    assert (reply.format, reply.name, reply.serial) == ("newer", "Old 5M", "S" * 50)


def test_a_name_filling_its_field_has_no_terminator_and_is_read_whole() -> None:
    datagram = b"N" * 0x80 + LEGACY_REX_BUSY[0x80:]
    assert parse_reply(datagram).name == "N" * 128


def test_text_after_the_terminator_is_not_read() -> None:
    datagram = b"REX\0hidden" + LEGACY_REX_BUSY[10:]
    assert parse_reply(datagram).name == "REX"


def test_a_name_that_is_not_utf8_is_kept_with_replacement_characters() -> None:
    datagram = _pad(b"Dr\xfccker \xff\xfe", 0x80) + LEGACY_REX_BUSY[0x80:]
    assert parse_reply(datagram).name == "Dr\ufffdcker \ufffd\ufffd"


def test_control_characters_are_parsed_as_text_and_left_to_the_presenter() -> None:
    datagram = _pad(b"\x1b[2Jevil\r\n", 0x80) + LEGACY_REX_BUSY[0x80:]
    assert parse_reply(datagram).name == "\x1b[2Jevil\r\n"


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_a_discovery_error(data: bytes) -> None:
    outcome: DiscoveryReply | DiscoveryError
    try:
        outcome = parse_reply(data)
    except DiscoveryError as err:  # the only exception allowed out
        outcome = err
    if isinstance(outcome, DiscoveryError):
        assert outcome.raw == data
    else:
        assert outcome.format == ("legacy" if len(data) == 140 else "newer")


def test_discovery_errors_are_gateway_errors() -> None:
    assert issubclass(DiscoveryError, GatewayError)


def test_encoding_cuts_text_to_the_field_and_on_a_character_boundary() -> None:
    reply = DiscoveryReply(format="legacy", name="é" * 100)  # 200 bytes of UTF-8
    datagram = encode_reply(reply)
    assert len(datagram) == 140
    assert parse_reply(datagram).name == "é" * 63  # 126 bytes; 127 would split a character


def test_the_newer_probe_is_orcaslicers_twenty_bytes() -> None:
    assert NEWER_PROBE == bytes(
        [0x77, 0x77, 0x77, 0x2E, 0x75, 0x73, 0x72, 0x22, 0x65, 0x36, 0xC0] + [0] * 9
    )


def test_the_legacy_probe_carries_only_our_port() -> None:
    assert legacy_probe(18001) == b"\x00\x00\x00\x00\x46\x51\x00\x00"


def test_the_lan_probes_are_multicast_legacy_and_broadcast_newer() -> None:
    legacy = legacy_probe(40000)
    assert lan_probes(40000) == [
        Probe("225.0.0.9", 19000, legacy, "legacy"),
        Probe("225.0.0.9", 8899, legacy, "legacy"),
        Probe("255.255.255.255", 48899, NEWER_PROBE, "newer"),
    ]


def test_a_unicast_probe_sends_both_payloads_to_one_address_only() -> None:
    probes = unicast_probes("192.0.2.7", 19000, 40000)
    assert {(p.address, p.port) for p in probes} == {("192.0.2.7", 19000)}
    assert [p.kind for p in probes] == ["legacy", "newer"]
    assert [probe_kind(p.payload) for p in probes] == ["legacy", "newer"]


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(NEWER_PROBE, "newer"), (b"www.usr", "newer"), (b"", "legacy"), (b"Hello World!", "legacy")],
)
def test_the_probe_kind_follows_the_payload(payload: bytes, kind: str) -> None:
    assert probe_kind(payload) == kind
