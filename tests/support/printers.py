"""The printer side: a fast simulated printer and a minimal framed TCP client for it."""

from __future__ import annotations

import socket

from services.poller.protocol import Reply, ReplyBuffer, encode_command
from simulator import PrinterModel


def fast_model() -> PrinterModel:
    """A printer model whose heaters settle in a blink and whose completed state lasts 0.5 s."""
    model = PrinterModel(completed_hold_s=0.5)
    model.nozzle.tau_s = model.bed.tau_s = 0.05
    return model


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
