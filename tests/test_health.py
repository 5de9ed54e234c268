"""What services tell `status`: the problems board, the loop guard, and the status report."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec
import pytest

from console.deploy import format_report, prepare_dirs, status_report
from gateway.errors import (
    MalformedReplyError,
    PrinterDisconnectedError,
    PrinterRefusedError,
    PrinterTimeoutError,
    PrinterTurnedAwayError,
    PrinterUnreachableError,
    ReplyTooLargeError,
    UnexpectedPayloadError,
    poll_error_reason,
)
from gateway.health import (
    PrinterHealth,
    Problems,
    ServiceProblems,
    read_printers,
    read_problems,
    write_printer,
)
from gateway.layout import Layout
from gateway.loops import Backoff, LoopGuard, doubling, guarded_loop
from tests.support.configs import make_config


def test_problems_are_mirrored_on_change_and_cleared(tmp_path: Path) -> None:
    board = Problems(Layout(tmp_path, tmp_path), "uplink")
    path = tmp_path / "problems" / "uplink.json"
    assert msgspec.json.decode(path.read_bytes(), type=ServiceProblems).problems == ()
    board.report("api auth", "the API refuses the token (HTTP 401: Bearer abcdef123)")
    written = path.stat().st_mtime_ns
    board.report("api auth", "the API refuses the token (HTTP 401: Bearer abcdef123)")
    assert path.stat().st_mtime_ns == written  # unchanged: not rewritten
    (problem,) = read_problems(Layout(tmp_path, tmp_path))[0].problems
    assert "abcdef123" not in problem.reason  # reasons are made safe
    board.clear("api auth")
    assert read_problems(Layout(tmp_path, tmp_path))[0].problems == ()


def test_a_dead_services_problems_are_not_reported(tmp_path: Path) -> None:
    Problems(Layout(tmp_path, tmp_path), "poller").report("loop x", "failing")
    path = tmp_path / "problems" / "poller.json"
    report = msgspec.json.decode(path.read_bytes(), type=ServiceProblems)
    dead = msgspec.structs.replace(report, pid=2**22 + 12345)  # above any pid_max: no process
    path.write_bytes(msgspec.json.encode(dead))
    assert read_problems(Layout(tmp_path, tmp_path)) == []


def test_status_reports_problems_and_dead_letters_as_unhealthy(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"rex1": 1})
    board = Problems(Layout.of(config), "control")
    board.report("commands", "commands cannot be fetched: HTTP 500")
    report, healthy = status_report(config)
    assert not healthy
    assert any(p.startswith("control: commands cannot be fetched") for p in report["problems"])
    assert "control: commands cannot be fetched" in format_report(report)


def test_a_failing_loop_backs_off_is_reported_and_recovers(tmp_path: Path) -> None:
    board = Problems(Layout(tmp_path, tmp_path), "poller")
    guard = LoopGuard("demo loop", board, base_s=0.01, cap_s=0.04)
    calls = []

    async def step() -> None:
        calls.append(1)
        if len(calls) <= 4:
            raise ValueError(f"bad value {len(calls)}")
        if len(calls) == 6:
            stop.set()

    stop = asyncio.Event()
    delays = [guard.failed(ValueError("x")) for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    guard.succeeded()
    asyncio.run(guarded_loop(guard, step, stop))
    assert len(calls) == 6
    assert board.current() == ()


def test_up_leaves_a_shared_directory_alone_and_says_so(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    config = make_config(tmp_path, {"rex1": 1})
    gateway = msgspec.structs.replace(config.gateway, runtime_dir=str(shared))
    warnings = prepare_dirs(msgspec.structs.replace(config, gateway=gateway))
    assert shared.stat().st_mode & 0o7777 == 0o1777
    assert [w for w in warnings if str(shared) in w]
    assert (Path(config.gateway.data_dir).stat().st_mode & 0o777) == 0o700  # created: private


def test_delays_never_overflow_however_long_a_failure_lasts(tmp_path: Path) -> None:
    guard = LoopGuard("forever", Problems(None, "x"), base_s=0.5, cap_s=30)
    guard.failures = 10**6  # a year of failures at a few a minute
    assert guard.failed(RuntimeError("still")) == 30.0
    backoff = Backoff(base_s=1, cap_s=60)
    backoff.failures = 10**6
    assert 0 <= backoff.next_delay() <= 60
    assert doubling(0.05, 10**9, 1.0) == 1.0


def test_a_problems_file_that_cannot_be_written_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "problems").write_text("a file where the folder should be")  # as if broken
    board = Problems(Layout(tmp_path, tmp_path), "uplink")
    board.report("loop x", "failing")  # must not raise into the loop that reports
    assert [p.key for p in board.current()] == ["loop x"]


def test_status_shows_each_printers_connection_attempts_of_the_last_minute(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, {"rex1": 1})
    health = PrinterHealth(
        "rex1", "held_by_other_client", False, None, sharing="held", connects_last_minute=2
    )
    write_printer(Layout.of(config), health)
    report, _ = status_report(config)
    assert report["printers"][0]["connects_last_minute"] == 2
    assert report["printers"][0]["sharing"] == "held"
    assert "2 connection attempts in the last minute" in format_report(report)


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (PrinterUnreachableError("no route"), "unreachable"),
        (PrinterRefusedError("refused"), "refused"),
        (PrinterTimeoutError("slow"), "timeout"),
        (PrinterTurnedAwayError("reset at once"), "turned_away"),
        (PrinterDisconnectedError("reset"), "disconnected"),
        (ReplyTooLargeError("huge", b"x"), "reply_too_large"),
        (MalformedReplyError("garbled", b"x"), "malformed_reply"),
        (UnexpectedPayloadError("odd", b"x"), "unexpected_payload"),
        (ValueError("surprise"), "other"),
    ],
)
def test_a_failed_read_has_a_reason_from_a_fixed_set(err: Exception, reason: str) -> None:
    assert poll_error_reason(err) == reason


def test_poll_errors_in_a_printer_file_and_an_older_file_without_them(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path)
    write_printer(layout, PrinterHealth("rex1", "offline", False, None, poll_errors={"timeout": 3}))
    assert read_printers(layout)[0].poll_errors == {"timeout": 3}
    old = b'{"printer_id":"rex1","state":"idle","lease_held":false,"last_contact":null}'
    (layout.printers_dir / "rex1.json").write_bytes(old)
    assert read_printers(layout)[0].poll_errors == {}
