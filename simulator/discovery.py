"""The simulator's UDP discovery responder (architecture §6): answers every probe on the port
it is given, in the format the probe asks for (gateway.discovery.probe_kind: the newer
"www.usr" probe gets the 276-byte reply, anything else the 140-byte legacy one), with the
model's name and serial, its TCP port, and ready/busy from its state at that moment.

It binds a unicast address only (loopback by default): it answers probes sent to it, never
joins the multicast group, and sends only to the probe's source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from gateway.discovery import DiscoveryReply, encode_reply, probe_kind
from simulator.model import PrinterModel

logger = logging.getLogger(__name__)

# Not a capture: the REX is an Adventurer 3, whose product id ff-5mp-api-py gives as 0x0008;
# the vendor id is the one the Parallel-7 wiki gives for FlashForge printers.
SIM_PRODUCT_ID = 0x0008
SIM_VENDOR_ID = 0x2B71
_BUSY_STATES = frozenset({"BUILDING_FROM_SD", "PAUSED"})


def reply_for(model: PrinterModel, payload: bytes, command_port: int) -> bytes:
    """The datagram the simulated printer sends back for one probe."""
    model.advance()
    reply = DiscoveryReply(
        format=probe_kind(payload),
        name=model.name,
        serial=model.serial,
        command_port=command_port,
        vendor_id=SIM_VENDOR_ID,
        product_id=SIM_PRODUCT_ID,
        status_code=1 if model.status in _BUSY_STATES else 0,
    )
    return encode_reply(reply)


class DiscoveryResponder(asyncio.DatagramProtocol):
    """Answers each datagram with `reply_for`; counts what it answered (for tests)."""

    def __init__(self, model: PrinterModel, command_port: Callable[[], int]) -> None:
        self.model = model
        self.command_port = command_port
        self.answered = 0
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if self._transport is None:
            return
        self._transport.sendto(reply_for(self.model, data, self.command_port()), addr)
        self.answered += 1
        logger.debug("discovery: answered %s (%d bytes in)", addr, len(data))

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier reply (the prober has gone): nothing to retry.
        logger.info("discovery: %s", exc)


async def start_responder(
    model: PrinterModel, host: str, port: int, command_port: Callable[[], int]
) -> tuple[asyncio.DatagramTransport, int]:
    """Bind `host`:`port` (0 picks one) and answer probes; returns the transport (close it
    to stop) and the bound port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DiscoveryResponder(model, command_port), local_addr=(host, port)
    )
    bound = int(transport.get_extra_info("sockname")[1])
    return transport, bound
