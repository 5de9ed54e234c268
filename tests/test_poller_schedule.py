"""The lease state machine as a table: every decision the watcher can be given."""

from __future__ import annotations

import pytest

from gateway.errors import (
    MalformedReplyError,
    PrinterDisconnectedError,
    PrinterRefusedError,
    PrinterTimeoutError,
    PrinterUnreachableError,
    ReplyTooLargeError,
    UnexpectedPayloadError,
)
from services.poller.protocol import Activity
from services.poller.schedule import (
    REPORTED_STATE,
    Decision,
    Lease,
    Timing,
    Tuning,
    after_failure,
    after_reading,
    failure_kind,
)

TUNING = Tuning(retry_attempts=3, retry_backoff_s=0.25, retry_backoff_cap_s=2.0, active_recheck_s=5)
TIMING = Timing(poll_interval_s=1.0, probe_interval_s=30.0, tuning=TUNING)
WATCH = Decision(Lease.WATCHING, 1.0)
PROBE = Decision(Lease.PROBING, 30.0, jitter=True)
PROBE_FAST = Decision(Lease.PROBING, 1.0)  # a job is open but the printer is between states


@pytest.mark.parametrize(
    ("activity", "job_active", "expected"),
    [
        (Activity.READY, False, PROBE),
        (Activity.READY, True, PROBE_FAST),  # the job's end is being settled
        (Activity.PRINTING, False, WATCH),  # a print we had not seen start
        (Activity.PRINTING, True, WATCH),
        (Activity.PAUSED, True, WATCH),  # a paused print is watched at the same cadence
        (Activity.PAUSED, False, WATCH),
        (Activity.BUSY, True, WATCH),  # homing, filament inside a job
        (Activity.BUSY, False, PROBE),  # the same moves outside a job are not a print
        (Activity.COMPLETED, True, PROBE_FAST),
        (Activity.COMPLETED, False, PROBE),
        (Activity.UNKNOWN, False, PROBE),
        (Activity.UNKNOWN, True, PROBE_FAST),
    ],
)
def test_after_reading(activity: Activity, job_active: bool, expected: Decision) -> None:
    decision = after_reading(activity, job_active, TIMING)
    assert decision == expected
    assert decision.hold_link is (expected.lease is Lease.WATCHING)
    assert not decision.report


@pytest.mark.parametrize(
    ("failures", "job_active", "expected"),
    [
        (1, False, Decision(Lease.RETRYING, 0.25, jitter=True)),  # quiet, quick retry
        (2, False, Decision(Lease.RETRYING, 0.5, jitter=True)),  # doubling
        (2, True, Decision(Lease.RETRYING, 0.5, jitter=True)),
        (3, False, Decision(Lease.TROUBLE, 30.0, jitter=True)),  # reported, then probed
        (3, True, Decision(Lease.TROUBLE, 5.0, jitter=True)),  # a job: re-checked sooner
        (50, False, Decision(Lease.TROUBLE, 30.0, jitter=True)),  # reported each time
    ],
)
def test_after_failure(failures: int, job_active: bool, expected: Decision) -> None:
    decision = after_failure(failures, job_active, TIMING)
    assert decision == expected
    assert decision.report is (expected.lease is Lease.TROUBLE)
    assert not decision.hold_link


def test_retries_are_capped_and_an_active_recheck_never_exceeds_the_probe() -> None:
    many = Timing(poll_interval_s=1, probe_interval_s=2, tuning=Tuning(retry_attempts=100))
    assert after_failure(60, False, many).delay_s == 2.0  # the backoff cap
    assert after_failure(100, True, many).delay_s == 2.0  # min(active recheck, probe)


def test_jitter_spreads_between_half_and_all() -> None:
    delays = {PROBE.next_delay_s() for _ in range(200)}
    assert all(15.0 <= d <= 30.0 for d in delays)
    assert len(delays) > 100
    assert WATCH.next_delay_s() == 1.0


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (PrinterUnreachableError("no route"), "offline"),
        (PrinterRefusedError("refused"), "held_by_other_client"),
        (PrinterTimeoutError("starved"), "held_by_other_client"),
        (PrinterDisconnectedError("reset"), "held_by_other_client"),
        (MalformedReplyError("interleaved"), "held_by_other_client"),
        (UnexpectedPayloadError("nozzle 9e99", b""), "error"),
        (ReplyTooLargeError("endless"), "error"),
    ],
)
def test_failure_kinds(error: Exception, state: str) -> None:
    assert REPORTED_STATE[failure_kind(error)] == state
