"""``printer-gateway discover [--timeout S] [--to HOST[:PORT]]``: find FlashForge-protocol
printers (the REX family among them) and print a table and ``[[printers]]`` blocks to paste.

Without ``--to`` the legacy probe goes to the multicast group and the newer one is broadcast
(docs/discovery.md); with ``--to`` both go to that one address. Exit 0 when a printer
answered, 1 when none did (with what to check), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NamedTuple

from console import discover_net as net
from console import discover_report as report
from gateway import discovery
from gateway.errors import DiscoveryError

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the discover verb's options."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"how long to wait for replies (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--to",
        metavar="HOST[:PORT]",
        help=f"probe one address only (default port {discovery.UNICAST_PORT})",
    )


def host_and_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST[:PORT]`` -> (host, port), `default_port` when none is given; ValueError
    naming the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, ""
    if not host:
        raise ValueError("no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be 1..65535")
    return host, int(port_text)


def split_target(text: str) -> tuple[str, int]:
    """``--to HOST[:PORT]`` -> (host, port); ValueError naming the option and the problem."""
    try:
        return host_and_port(text, discovery.UNICAST_PORT)
    except ValueError as err:
        raise ValueError(f"--to {text!r}: {err}") from None


def run(args: argparse.Namespace) -> int:
    """Probe, print what answered; see the module docstring for exit codes."""
    if not 0 < args.timeout <= 60:
        return _usage("--timeout must be more than 0 and at most 60 seconds")
    try:
        target = split_target(args.to) if args.to else None
        address = net.resolve(target[0]) if target else None
    except ValueError as err:
        return _usage(str(err))
    except OSError as err:
        return _usage(f"cannot resolve {args.to!r}: {err.strerror or err}")
    try:
        search = find(target, address, args.timeout)
    except SearchFailed as err:
        _err(str(err))
        return 1
    result, probes = search.exchange, search.probes
    for failure in result.failures:
        _err(f"could not send to {failure.probe.address}:{failure.probe.port}: {failure.reason}")
    found = search.found
    if not found:
        targets = sorted({f"{probe.address}:{probe.port}" for probe in probes})
        if result.refused:
            _err(f"{args.to}: the host answered that nothing listens on that UDP port")
        _err(report.nothing_found(targets, unicast=target is not None))
        return 1
    _out(report.table(found))
    _out("")
    _out("Paste into your config (gateway.toml):")
    _out("")
    _out(report.printers_block(found))
    return 0


class SearchFailed(Exception):
    """The probes could not be sent or their replies not received; the message says why."""


class Search(NamedTuple):
    """One round of probes: what was sent, what came back, and the printers that parse."""

    probes: list[discovery.Probe]
    exchange: net.Exchange
    found: list[report.Found]


def find(target: tuple[str, int] | None, address: str | None, timeout_s: float) -> Search:
    """Probe the LAN, or only `address` (resolved from `target`), for `timeout_s`;
    SearchFailed when no socket can be opened or receiving fails."""
    try:
        sock = net.open_socket()
    except OSError as err:
        raise SearchFailed(f"cannot open a UDP socket: {err.strerror or err}") from err
    with sock:
        reply_port = int(sock.getsockname()[1])
        if target and address:
            probes = discovery.unicast_probes(address, target[1], reply_port)
        else:
            probes = discovery.lan_probes(reply_port)
        try:
            result = net.exchange(
                sock,
                probes,
                timeout_s,
                len(probes) if target else None,
                only_from=address if target else None,
            )
        except OSError as err:  # the interface went away under us, say; nothing to retry
            raise SearchFailed(f"receiving replies failed: {err.strerror or err}") from err
    return Search(probes, result, _parse(result.datagrams))


def _parse(datagrams: list[net.Datagram]) -> list[report.Found]:
    """The replies that parse; each one that does not is named on stderr, never dropped."""
    found = []
    for datagram in datagrams:
        try:
            found.append(report.Found(datagram.address, discovery.parse_reply(datagram.data)))
        except DiscoveryError as err:
            _err(f"ignored a datagram from {datagram.address}: {err}")
            logger.debug("unreadable discovery datagram: %r", err.raw)
    return report.merge(found)


def _usage(message: str) -> int:
    _err(message)
    return 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"printer-gateway discover: {text}\n")
