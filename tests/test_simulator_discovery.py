"""The simulator answers discovery (architecture §6): the reply format follows the probe, the
fields follow the model; over loopback only."""

from __future__ import annotations

import asyncio

from console import discover_net as net
from gateway.discovery import NEWER_PROBE, legacy_probe, parse_reply, unicast_probes
from simulator.discovery import reply_for, start_responder
from simulator.model import PrinterModel, PrintJob
from simulator.server import SimulatorThread


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_reply_format_follows_the_probe_and_the_state_follows_the_model() -> None:
    model = PrinterModel(name="Sim REX", serial="SN42", clock=_Clock())
    legacy = reply_for(model, legacy_probe(40000), command_port=8899)
    newer = reply_for(model, NEWER_PROBE, command_port=8899)
    assert (len(legacy), len(newer)) == (140, 276)
    assert parse_reply(legacy).name == parse_reply(newer).name == "Sim REX"
    assert parse_reply(newer).serial == "SN42"
    assert parse_reply(newer).command_port == 8899
    assert parse_reply(legacy).state == "ready"
    model.start_print(PrintJob())
    assert parse_reply(reply_for(model, b"", 8899)).state == "busy"
    model.pause()
    assert parse_reply(reply_for(model, b"", 8899)).state == "busy"
    model.cancel()
    assert parse_reply(reply_for(model, NEWER_PROBE, 8899)).state == "ready"


def _probe_both(port: int) -> list[tuple[str, int, str, str]]:
    """Both probes to 127.0.0.1:port; (format, size, state, source) of each reply."""
    with net.open_socket() as sock:
        probes = unicast_probes("127.0.0.1", port, sock.getsockname()[1])
        result = net.exchange(sock, probes, timeout_s=5, enough=len(probes))
    assert result.failures == []
    replies = []
    for datagram in result.datagrams:
        reply = parse_reply(datagram.data)
        replies.append((reply.format, len(datagram.data), reply.state, datagram.address))
    return sorted(replies)


def test_the_responder_answers_both_formats_over_loopback() -> None:
    with SimulatorThread() as thread:
        transport, port = thread.run(
            start_responder(thread.sim.model, "127.0.0.1", 0, lambda: thread.sim.port)
        )
        try:
            assert port != 0
            assert _probe_both(port) == [
                ("legacy", 140, "ready", "127.0.0.1"),
                ("newer", 276, "ready", "127.0.0.1"),
            ]
            thread.call(lambda: thread.sim.model.start_print(PrintJob()))
            assert [state for _, _, state, _ in _probe_both(port)] == ["busy", "busy"]
        finally:
            thread.call(transport.close)


def test_the_reply_names_the_simulators_tcp_port() -> None:
    async def scenario() -> int:
        model = PrinterModel(clock=_Clock())
        transport, port = await start_responder(model, "127.0.0.1", 0, lambda: 12345)
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
                received.set_result(data)

        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        try:
            client.sendto(NEWER_PROBE)
            return parse_reply(await asyncio.wait_for(received, 5)).command_port
        finally:
            client.close()
            transport.close()

    assert asyncio.run(scenario()) == 12345
