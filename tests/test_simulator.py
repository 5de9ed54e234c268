"""The simulator over real TCP: every command, every fault switch, two connections at once."""

from __future__ import annotations

import socket
import time

import msgspec
import pytest

from gateway.errors import MalformedReplyError
from services.poller.protocol import (
    Activity,
    ReplyBuffer,
    encode_command,
    parse_ack,
    parse_m23,
    parse_m27,
    parse_m105,
    parse_m114,
    parse_m115,
    parse_m119,
    parse_m601,
    parse_m602,
)
from simulator import PrintJob, SimulatorThread
from tests.support.printers import Client
from tests.support.waiting import wait_for


def read_reply(sock: socket.socket, buffer: ReplyBuffer) -> None:
    """Feed the buffer from the socket until its reply is complete."""
    while not buffer.complete:
        buffer.feed(sock.recv(4096))


def start(sim: SimulatorThread, duration_s: float = 60.0, file: str = "benchy.gx") -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file=file, duration_s=duration_s)))


def status(client: Client) -> Activity:
    return parse_m119(client.send("M119").lines).activity


def test_identity_temperatures_position_and_idle_state(sim: SimulatorThread) -> None:
    with Client(sim.port) as client:
        info = parse_m115(client.send("M115").lines)
        assert (info.machine_type, info.name, info.firmware) == (
            "FlashForge Adventurer III",
            "REX II Sim",
            "v2.2.1",
        )
        assert b"\n\r\nok\r\n" in client.received  # the REX's stray LF after the MAC line
        temps = parse_m105(client.send("M105").lines)
        assert temps.nozzles[0].target == 0
        assert temps.bed is not None
        assert parse_m114(client.send("M114").lines).x == pytest.approx(79.9981)
        assert parse_m27(client.send("M27").lines).percent == 0.0
        m119 = parse_m119(client.send("M119").lines)
        assert (m119.activity, m119.current_file) == (Activity.READY, None)
        assert parse_ack(client.send("M650").lines) == ("X: 1.0 Y: 0.5",)
        assert parse_ack(client.send("G28").lines) == ()
        assert client.received.count(b"\r\n") >= 20  # CRLF framing throughout


def test_print_lifecycle_heats_progresses_and_completes(sim: SimulatorThread) -> None:
    start(sim, duration_s=0.6)
    with Client(sim.port) as client:
        m119 = parse_m119(client.send("M119").lines)
        assert (m119.activity, m119.current_file) == (Activity.PRINTING, "benchy.gx")
        assert parse_m105(client.send("M105").lines).nozzles[0].target == 210
        wait_for(lambda: 0 < parse_m27(client.send("M27").lines).done < 100, 5, every_s=0.01)
        wait_for(lambda: status(client) is Activity.COMPLETED, 5, every_s=0.01)
        assert parse_m27(client.send("M27").lines).percent == 100.0
        assert parse_m105(client.send("M105").lines).nozzles[0].target == 0
        wait_for(
            lambda: status(client) is Activity.READY, 5, every_s=0.01
        )  # completed_hold_s = 0.5 in the fixture


def test_heating_curve_rises_towards_target(sim: SimulatorThread) -> None:
    sim.call(lambda: setattr(sim.sim.model.nozzle, "tau_s", 0.5))
    start(sim)
    with Client(sim.port) as client:
        first = parse_m105(client.send("M105").lines).nozzles[0].current
        wait_for(
            lambda: parse_m105(client.send("M105").lines).nozzles[0].current > first + 20,
            5,
            every_s=0.01,
        )


@pytest.mark.parametrize(
    ("style", "machine_status"), [("machine_status", "PAUSED"), ("move_mode", "BUILDING_FROM_SD")]
)
def test_pause_resume_in_both_reported_forms(
    sim: SimulatorThread, style: str, machine_status: str
) -> None:
    sim.call(lambda: setattr(sim.sim.model, "pause_style", style))
    start(sim)
    with Client(sim.port) as client:
        assert parse_m601(client.send("M601", "S1").lines).granted
        parse_ack(client.send("M25").lines)
        m119 = parse_m119(client.send("M119").lines)
        assert (m119.machine_status, m119.move_mode, m119.activity) == (
            machine_status,
            "PAUSED",
            Activity.PAUSED,
        )
        done = parse_m27(client.send("M27").lines).done
        time.sleep(0.05)
        assert parse_m27(client.send("M27").lines).done == done  # no progress while paused
        parse_ack(client.send("M24").lines)
        assert status(client) is Activity.PRINTING
        parse_m602(client.send("M602").lines)


def test_cancel_returns_to_ready_and_keeps_the_counter(sim: SimulatorThread) -> None:
    start(sim, duration_s=1.0)
    with Client(sim.port) as client:
        wait_for(lambda: parse_m27(client.send("M27").lines).done > 10, 5, every_s=0.01)
        parse_ack(client.send("M26").lines)
        assert status(client) is Activity.READY
        assert parse_m27(client.send("M27").lines).done > 10
        assert parse_m105(client.send("M105").lines).nozzles[0].target == 0


def test_temperatures_light_and_m23(sim: SimulatorThread) -> None:
    with Client(sim.port) as client:
        parse_ack(client.send("M104", "S200", "T0").lines)
        parse_ack(client.send("M140", "S55").lines)
        parse_ack(client.send("M104", "S199.5").lines)  # whole degrees only: ignored
        temps = parse_m105(client.send("M105").lines)
        assert (temps.nozzles[0].target, temps.bed and temps.bed.target) == (200, 55)
        parse_ack(client.send("M146", "r0", "g0", "b0", "F0").lines)
        assert parse_m119(client.send("M119").lines).led is False
        parse_ack(client.send("M146", "r255", "g255", "b255", "F0").lines)
        assert parse_m119(client.send("M119").lines).led is True
        selected = parse_m23(client.send("M23", "0:/user/cube.gx").lines)
        assert selected.name == "cube.gx"
        assert parse_m119(client.send("M119").lines).current_file == "cube.gx"


def test_second_controller_is_refused_until_release(sim: SimulatorThread) -> None:
    start(sim)
    with Client(sim.port) as first, Client(sim.port) as second:
        assert parse_m601(first.send("M601", "S1").lines).granted
        assert not parse_m601(second.send("M601", "S1").lines).granted
        parse_ack(second.send("M25").lines)  # bare command while another holds control: no effect
        assert status(second) is Activity.PRINTING
        assert (
            parse_m119(second.send("M119").lines).machine_status == "BUILDING_FROM_SD"
        )  # reads still work
        parse_m602(first.send("M602").lines)
        assert parse_m601(second.send("M601", "S1").lines).granted
    wait_for(
        lambda: sim.truth()["controller"] is None, 5, every_s=0.01
    )  # closing the socket released control


def test_bare_command_works_when_nobody_holds_control(sim: SimulatorThread) -> None:
    start(sim)
    with Client(sim.port) as client:
        parse_ack(client.send("M25").lines)
        assert status(client) is Activity.PAUSED


def test_control_required_ignores_bare_commands(sim: SimulatorThread) -> None:
    sim.call(lambda: setattr(sim.sim.model, "control_required", True))
    start(sim)
    with Client(sim.port) as client:
        parse_ack(client.send("M25").lines)
        assert status(client) is Activity.PRINTING


def test_foreign_control_refuses_everyone(sim: SimulatorThread) -> None:
    sim.call(lambda: setattr(sim.sim.model, "foreign_control", True))
    start(sim)
    with Client(sim.port) as client:
        assert parse_m601(client.send("M601", "S1").lines).granted is False
        parse_ack(client.send("M25").lines)
        assert status(client) is Activity.PRINTING


def test_split_bytes_fault(sim: SimulatorThread) -> None:
    sim.set_faults(split_bytes=True)
    with Client(sim.port) as client:
        client.sock.sendall(encode_command("M27"))
        buffer, reads = ReplyBuffer("M27"), 0
        while not buffer.complete:
            buffer.feed(client.sock.recv(4096))
            reads += 1
        assert reads > 5  # arrived in many pieces
        assert parse_m27(buffer.next_reply().lines).total == 100  # type: ignore[union-attr]


def test_reply_delay_fault(sim: SimulatorThread) -> None:
    sim.set_faults(reply_delay_s=0.3)
    with Client(sim.port) as client:
        began = time.monotonic()
        client.send("M119")
        assert time.monotonic() - began >= 0.3


def test_garbage_lines_fault_is_dropped_by_the_framer(sim: SimulatorThread) -> None:
    sim.set_faults(garbage_lines=True)
    with Client(sim.port) as client:
        assert parse_m119(client.send("M119").lines).activity is Activity.READY
        assert b"\x00\xff" in client.received
        assert b"\r\nok\r\nN0001 ok." in client.received


@pytest.mark.parametrize("mode", ["before_reply", "mid_reply"])
def test_drop_fault_closes_the_connection(sim: SimulatorThread, mode: str) -> None:
    sim.set_faults(drop=mode)
    with Client(sim.port) as client, pytest.raises(ConnectionError):
        client.send("M119")
    sim.set_faults(drop="never")
    with Client(sim.port) as client:
        assert status(client) is Activity.READY


def test_cross_talk_fault_leaks_replies_to_other_connections(sim: SimulatorThread) -> None:
    sim.set_faults(cross_talk=True)
    with Client(sim.port) as asker, Client(sim.port) as bystander:
        bystander.send("M115")  # make sure both connections are registered
        asker.send("M105")
        bystander.sock.settimeout(2)
        leaked = b""
        while b"CMD M105 Received." not in leaked:
            leaked += bystander.sock.recv(4096)
        # The bystander's own M27 still frames correctly despite the leaked M105 reply.
        assert parse_m27(bystander.send("M27").lines).total == 100


def test_cross_talk_inside_a_reply_is_detected(sim: SimulatorThread) -> None:
    # The slow M115 reply dribbles out byte by byte; the leaked M105 reply lands inside it.
    sim.set_faults(cross_talk=True, split_bytes=True)
    with Client(sim.port) as slow, Client(sim.port) as fast:
        fast.send("M27")
        slow.sock.sendall(encode_command("M115"))
        slow.sock.settimeout(3)
        buffer, received = ReplyBuffer("M115"), b""
        while not received.endswith(b"CMD M115 Received.\r\n"):
            received += slow.sock.recv(1)
        buffer.feed(received)
        fast.send("M105")
        with pytest.raises(MalformedReplyError):
            read_reply(slow.sock, buffer)


def test_foreign_poller_leaks_its_replies_and_holds_control_until_switched_off(
    sim: SimulatorThread,
) -> None:
    sim.set_faults(foreign_poll_hz=10.0)
    with Client(sim.port) as client:
        client.sock.settimeout(2)
        leaked = b""
        while leaked.count(b"CMD M114 Received.") < 2:  # unasked, at the foreign client's pace
            leaked += client.sock.recv(4096)
        assert b"CMD M119 Received.\r\nEndstop" in leaked
        assert parse_m601(client.send("M601", "S1").lines).granted is False  # it has control
        assert status(client) is Activity.READY  # our own reply is found among the leaks
        sim.set_faults(foreign_poll_hz=0.0)
        assert parse_m601(client.send("M601", "S1").lines).granted is True


def test_one_connection_resets_every_new_connection_and_the_wire_log_counts_them(
    sim: SimulatorThread,
) -> None:
    def ask() -> None:
        with Client(sim.port) as client:  # the reset may even beat connect() returning
            client.send("M119")

    since = time.monotonic()
    sim.set_faults(one_connection=True)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            ask()
    assert sim.connection_attempts(since) == 3
    sim.set_faults(one_connection=False)
    with Client(sim.port) as client:
        assert status(client) is Activity.READY
    assert sim.connection_attempts(since) == 4


def test_hang_fault_never_answers(sim: SimulatorThread) -> None:
    sim.set_faults(hang=True)
    with Client(sim.port, timeout=0.3) as client, pytest.raises(TimeoutError):
        client.send("M119")
    assert any(entry.what == "in" and entry.text == "~M119" for entry in sim.wire())


def test_power_off_cuts_connections_and_connects_time_out(sim: SimulatorThread) -> None:
    with Client(sim.port) as client:
        client.send("M119")
        sim.power_off()
        with pytest.raises(ConnectionError):
            client.send("M119")
    with pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=0.5)
    sim.power_on()
    with Client(sim.port) as client:
        assert status(client) is Activity.READY


def test_power_off_refusing_then_power_on(sim: SimulatorThread) -> None:
    sim.power_off(refuse=True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1)
    sim.power_on()
    with Client(sim.port) as client:
        assert status(client) is Activity.READY


def test_bad_fault_values_are_refused(sim: SimulatorThread) -> None:
    with pytest.raises(msgspec.ValidationError):
        sim.set_faults(drop="sometimes")
    with pytest.raises(msgspec.ValidationError):
        sim.set_faults(no_such_fault=True)


def test_two_connections_at_once_share_one_printer(sim: SimulatorThread) -> None:
    start(sim)
    with Client(sim.port) as first, Client(sim.port) as second:
        wait_for(lambda: sim.open_connections() == 2, 5, every_s=0.01)
        assert status(first) is status(second) is Activity.PRINTING
        parse_ack(first.send("M25").lines)
        assert status(second) is Activity.PAUSED
    wait_for(lambda: sim.open_connections() == 0, 5, every_s=0.01)


def test_wire_log_records_opens_requests_and_closes(sim: SimulatorThread) -> None:
    with Client(sim.port) as client:
        client.send("M601", "S1")
        client.send("M602")
    wait_for(lambda: any(entry.what == "close" for entry in sim.wire()), 5, every_s=0.01)
    kinds = [(entry.what, entry.text) for entry in sim.wire() if entry.what != "out"]
    assert kinds[0][0] == "open"
    assert kinds[1:] == [
        ("in", "~M601 S1"),
        ("in", "~M602"),
        ("close", ""),
    ]


def test_lines_without_tilde_are_ignored(sim: SimulatorThread) -> None:
    with Client(sim.port) as client:
        client.sock.sendall(b"M119\r\n")
        assert status(client) is Activity.READY
        assert client.received.count(b"CMD M119 Received.") == 1
