"""The socket side of ``discover``: send the probes gateway.discovery computed from one UDP
socket, then collect whatever datagrams come back until the deadline.

One IPv4 socket on an ephemeral port sends every probe, so every reply comes back to it;
multicast TTL 1 keeps the legacy probe on the local link, as the printers are. A probe the OS
will not send (no multicast route, broadcast refused: common on VPNs and in containers) is
reported and the others still go out; only a socket that cannot be made at all is fatal.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from gateway.discovery import Probe

# Larger than any reply format, so an oversized datagram arrives whole and is rejected by
# the parser for its size instead of being silently cut to a plausible one.
RECEIVE_BYTES = 2048
MAX_DATAGRAMS = 512  # a LAN has a handful of printers: past this, a flood, not an answer


class DatagramSocket(Protocol):
    """The part of a UDP socket `exchange` uses (tests give it one that records instead)."""

    def sendto(self, data: bytes, address: tuple[str, int], /) -> int: ...

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, tuple[str, int]]: ...

    def settimeout(self, value: float | None, /) -> None: ...


class Datagram(NamedTuple):
    """Bytes received, and the source address they came from."""

    data: bytes
    address: str


class SendFailure(NamedTuple):
    """A probe the OS refused to send, and why."""

    probe: Probe
    reason: str


class Exchange(NamedTuple):
    """What came of one round of probes."""

    datagrams: list[Datagram]
    failures: list[SendFailure]
    refused: int  # ICMP "port unreachable" answers: a host is there, nothing on that port


def resolve(host: str) -> str:
    """An IPv4 address for `host` (a name or a literal); OSError when it has none."""
    infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    return str(infos[0][4][0])


def open_socket() -> socket.socket:
    """A UDP socket on an ephemeral port, allowed to broadcast and multicast on the link."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.bind(("0.0.0.0", 0))
    except OSError:
        sock.close()
        raise
    return sock


def exchange(
    sock: DatagramSocket,
    probes: Sequence[Probe],
    timeout_s: float,
    enough: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    only_from: str | None = None,
) -> Exchange:
    """Send `probes`, then receive until `timeout_s` has passed (or `enough` datagrams came:
    a unicast probe has one possible answerer, and with `only_from` a datagram from any
    other address is not its answer), at most MAX_DATAGRAMS."""
    failures = []
    refused = 0
    for probe in probes:
        try:
            sock.sendto(probe.payload, (probe.address, probe.port))
        except OSError as err:
            failures.append(SendFailure(probe, err.strerror or str(err)))
    received: list[Datagram] = []
    deadline = clock() + timeout_s
    while (enough is None or len(received) + refused < enough) and len(received) < MAX_DATAGRAMS:
        left = deadline - clock()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(RECEIVE_BYTES)
        except TimeoutError:
            break
        except ConnectionRefusedError:
            # A unicast probe to a port nobody listens on comes back as ICMP "port
            # unreachable", which Linux reports on the next receive: counted, and we keep
            # listening, since the other probe may still be answered.
            refused += 1
            continue
        if only_from is not None and str(source[0]) != only_from:
            continue
        received.append(Datagram(data, str(source[0])))
    return Exchange(received, failures, refused)
