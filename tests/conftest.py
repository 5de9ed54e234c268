"""Shared test fixtures: a simulator on a background loop and a minimal framed TCP client."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.poller.protocol import Reply, ReplyBuffer, encode_command
from simulator import PrinterModel, PrinterSimulator, SimulatorThread

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRINTER_GATEWAY_SHARED", REPO.parent / "shared"))


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator on 127.0.0.1:<free port> with a fast-heating model."""
    model = PrinterModel(completed_hold_s=0.5)
    model.nozzle.tau_s = model.bed.tau_s = 0.05
    with SimulatorThread(PrinterSimulator(model)) as thread:
        yield thread


class Client:
    """One TCP connection to a printer, one command at a time, replies framed by ReplyBuffer."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.received = bytearray()

    def send(self, code: str, *args: str) -> Reply:
        """Send one command and read until its reply is complete."""
        self.sock.sendall(encode_command(code, *args))
        buffer = ReplyBuffer(code)
        while (reply := buffer.next_reply()) is None:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("printer closed the connection")
            self.received += chunk
            buffer.feed(chunk)
        return reply

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
