"""``printer-gateway discover``: the sending path checked with a socket that records instead
of sending (no test sends to a multicast or broadcast address), and real round trips over
loopback against the simulator and against UDP peers that stay silent or answer garbage."""

from __future__ import annotations

import errno
import re
import socket
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from console import discover_net as net
from console.cli import main
from console.discover import split_target
from gateway.config import Config, parse_config
from gateway.discovery import DiscoveryReply, Probe, encode_reply, lan_probes
from tests.support.cli import Cli, discoverable_sim

ESC = "\x1b"


class RecordingSocket:
    """Records what is sent; hands out scripted receives (a datagram, or an exception)."""

    def __init__(
        self, incoming: list[tuple[bytes, tuple[str, int]] | OSError] | None = None
    ) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.refuse: dict[str, OSError] = {}
        self.incoming: deque[tuple[bytes, tuple[str, int]] | OSError] = deque(incoming or [])
        self.timeouts: list[float | None] = []

    def sendto(self, data: bytes, address: tuple[str, int], /) -> int:
        if address[0] in self.refuse:
            raise self.refuse[address[0]]
        self.sent.append((data, address))
        return len(data)

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, tuple[str, int]]:
        if not self.incoming:
            raise TimeoutError
        item = self.incoming.popleft()
        if isinstance(item, OSError):
            raise item
        return item

    def settimeout(self, value: float | None, /) -> None:
        self.timeouts.append(value)

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", 40000)

    def __enter__(self) -> RecordingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _legacy(name: str, status: int = 0) -> bytes:
    return encode_reply(
        DiscoveryReply(
            format="legacy", name=name, command_port=8899, product_id=8, status_code=status
        )
    )


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.5", ("192.0.2.5", 19000)),
        ("192.0.2.5:48899", ("192.0.2.5", 48899)),
        ("printer.lan:8899", ("printer.lan", 8899)),
        ("printer.lan:", ("printer.lan", 19000)),
    ],
)
def test_a_target_is_host_and_optional_port(text: str, expected: tuple[str, int]) -> None:
    assert split_target(text) == expected


@pytest.mark.parametrize("text", [":19000", "host:0", "host:65536", "host:x1"])
def test_a_bad_target_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--to"):
        split_target(text)


@pytest.mark.parametrize(
    "args", [["--to", ":19000"], ["--to", "h:99999"], ["--timeout", "0"], ["--timeout", "61"]]
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", *args]) == 2
    assert "printer-gateway discover:" in capsys.readouterr().err


# ------------------------------------------------------------------ the sending path, recorded


def test_every_lan_probe_is_sent_and_the_replies_collected_until_the_deadline() -> None:
    sock = RecordingSocket([(_legacy("A"), ("192.0.2.5", 19000))])
    result = net.exchange(sock, lan_probes(40000), timeout_s=0.2)
    assert [(address, data) for data, address in sock.sent] == [
        ((p.address, p.port), p.payload) for p in lan_probes(40000)
    ]
    assert result.datagrams == [net.Datagram(_legacy("A"), "192.0.2.5")]
    assert result.failures == []


def test_a_probe_the_os_refuses_is_reported_and_the_others_still_go() -> None:
    sock = RecordingSocket()
    sock.refuse["225.0.0.9"] = OSError(errno.ENETUNREACH, "Network is unreachable")
    result = net.exchange(sock, lan_probes(40000), timeout_s=0.05)
    assert [address for _, address in sock.sent] == [("255.255.255.255", 48899)]
    assert [(f.probe.port, f.reason) for f in result.failures] == [
        (19000, "Network is unreachable"),
        (8899, "Network is unreachable"),
    ]


def test_receiving_stops_once_enough_answers_came() -> None:
    probe = Probe("192.0.2.5", 19000, b"", "legacy")
    sock = RecordingSocket([(_legacy("A"), ("192.0.2.5", 19000))] * 3)
    result = net.exchange(sock, [probe], timeout_s=5, enough=1)
    assert len(result.datagrams) == 1
    assert len(sock.incoming) == 2


def test_a_port_unreachable_answer_is_counted_and_listening_goes_on() -> None:
    probes = [Probe("192.0.2.5", 19000, b"", "legacy"), Probe("192.0.2.5", 19000, b"x", "newer")]
    sock = RecordingSocket([ConnectionRefusedError(), (_legacy("A"), ("192.0.2.5", 19000))])
    result = net.exchange(sock, probes, timeout_s=5, enough=2)
    assert (len(result.datagrams), result.refused) == (1, 1)


def test_the_deadline_bounds_the_wait() -> None:
    sock = RecordingSocket()
    net.exchange(sock, [], timeout_s=2.5, clock=lambda: 100.0)
    assert sock.timeouts == [2.5]


def test_discover_without_to_probes_the_lan_and_prints_what_answered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = RecordingSocket(
        [
            (_legacy(f"{ESC}[2JREX", status=1), ("192.0.2.5", 19000)),
            (b"short", ("192.0.2.9", 19000)),
        ]
    )
    monkeypatch.setattr(net, "open_socket", lambda: sock)
    assert main(["discover", "--timeout", "0.2"]) == 0
    out, err = capsys.readouterr()
    assert [address for _, address in sock.sent] == [(p.address, p.port) for p in lan_probes(40000)]
    assert ESC not in out
    assert re.search(
        r"^\?\[2JREX\s+192\.0\.2\.5\s+Adventurer 3 \(0x0008\)\s+-\s+busy\s+legacy$", out, re.M
    )
    assert "ignored a datagram from 192.0.2.9: 5 bytes" in err


def test_discover_without_to_says_what_to_check_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(net, "open_socket", lambda: RecordingSocket())
    assert main(["discover", "--timeout", "0.1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "No printer answered" in err
    assert "225.0.0.9:19000" in err
    assert "--to ADDRESS" in err


def test_a_socket_failing_while_receiving_is_reported_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = RecordingSocket([OSError(errno.ENETDOWN, "Network is down")])
    monkeypatch.setattr(net, "open_socket", lambda: sock)
    assert main(["discover", "--timeout", "0.1"]) == 1
    assert "receiving replies failed: Network is down" in capsys.readouterr().err


# ------------------------------------------------------------------ real loopback round trips


@pytest.fixture
def simulator(request: pytest.FixtureRequest, cli: Cli) -> Iterator[tuple[int, int]]:
    """``printer-gateway sim --port 0 --discovery-port 0 [--name NAME]``: (tcp, udp) ports."""
    name: str = getattr(request, "param", "REX II Sim")
    with discoverable_sim(cli.argv("sim", "--name", name)) as ports:
        yield ports


def _config_from(output: str) -> Config:
    block = output.split("Paste into your config (gateway.toml):", 1)[1]
    toml = f'[api]\nurl = "http://127.0.0.1:9"\n{block}'
    return parse_config(toml.encode(), Path("."))


def test_discover_to_the_simulator_prints_a_table_and_a_block_the_loader_accepts(
    simulator: tuple[int, int], cli: Cli
) -> None:
    tcp, udp = simulator
    result = cli.run("discover", "--to", f"127.0.0.1:{udp}", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ADDRESS", "MODEL", "SERIAL", "STATE", "REPLY"]
    assert re.match(
        r"REX II Sim\s+127\.0\.0\.1\s+Adventurer 3 \(0x0008\)\s+SNSIM0000001\s+ready\s+newer$",
        row,
    )
    config = _config_from(result.stdout)
    printer = config.printers[0]
    assert (printer.id, printer.name, printer.host, printer.port) == (
        "rex-ii-sim",
        "REX II Sim",
        "127.0.0.1",
        tcp,  # the simulator's own TCP port: the block points at the printer that answered
    )


@pytest.mark.parametrize(
    "simulator", [f'{ESC}]0;owned\x07Evil" = 1\n[api]\t\u202eX'], indirect=True
)
def test_a_hostile_name_from_the_simulator_is_shown_and_pasted_safely(
    simulator: tuple[int, int], cli: Cli
) -> None:
    _, udp = simulator
    result = cli.run("discover", "--to", f"127.0.0.1:{udp}", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert not re.search(f"[{ESC}\x07\u202e]", result.stdout)
    name = _config_from(result.stdout).printers[0].name
    assert name == '?]0;owned?Evil" = 1?[api]??X'


@pytest.fixture
def udp_peer() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A UDP socket on 127.0.0.1 that answers the n-th datagram with `answers[n % len]`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    answers: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.05)
        count = 0
        while not stop.is_set():
            try:
                _, source = sock.recvfrom(2048)
            except TimeoutError:
                continue
            if answers:
                sock.sendto(answers[count % len(answers)], source)
            count += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock, answers
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_a_silent_address_gets_the_checklist_and_exit_1(
    udp_peer: tuple[socket.socket, list[bytes]], cli: Cli
) -> None:
    sock, _ = udp_peer
    port = sock.getsockname()[1]
    result = cli.run("discover", "--to", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"No printer answered the discovery probe (127.0.0.1:{port})" in result.stderr
    assert "without --to" in result.stderr


def test_garbage_answers_are_named_and_never_crash(
    udp_peer: tuple[socket.socket, list[bytes]], cli: Cli
) -> None:
    sock, answers = udp_peer
    answers.extend([b"\x1b[2J" * 3, bytes(400)])  # one answer per probe
    port = sock.getsockname()[1]
    result = cli.run("discover", "--to", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 1
    for problem in ("12 bytes, a reply has at least 140", "400 bytes, a reply has at most 276"):
        assert f"ignored a datagram from 127.0.0.1: {problem}" in result.stderr
    assert "Traceback" not in result.stderr
