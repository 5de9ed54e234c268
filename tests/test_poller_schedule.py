"""The lease state machine as tables: every transition, and when each state looks again."""

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
from services.poller.report import REPORTED_STATE, failure_kind
from services.poller.schedule import (
    Lease,
    LeaseState,
    Look,
    Timing,
    Tuning,
    after_failure,
    after_reading,
    next_look,
)

TUNING = Tuning(retry_attempts=3, retry_backoff_s=0.25, retry_backoff_cap_s=2.0, active_recheck_s=5)
TIMING = Timing(poll_interval_s=1.0, probe_interval_s=30.0, tuning=TUNING)
PROBING, WATCHING = LeaseState(Lease.PROBING), LeaseState(Lease.WATCHING)


@pytest.mark.parametrize(
    ("activity", "job_active", "expected"),
    [
        (Activity.READY, False, PROBING),
        (Activity.READY, True, PROBING),  # the job's end is being settled: no link kept
        (Activity.PRINTING, False, WATCHING),  # a print we had not seen start
        (Activity.PRINTING, True, WATCHING),
        (Activity.PAUSED, True, WATCHING),  # a paused print is watched at the same cadence
        (Activity.PAUSED, False, WATCHING),
        (Activity.BUSY, True, WATCHING),  # homing, filament inside a job
        (Activity.BUSY, False, PROBING),  # the same moves outside a job are not a print
        (Activity.COMPLETED, True, PROBING),
        (Activity.COMPLETED, False, PROBING),
        (Activity.UNKNOWN, False, PROBING),
        (Activity.UNKNOWN, True, PROBING),
    ],
)
def test_a_reading_moves_any_state(
    activity: Activity, job_active: bool, expected: LeaseState
) -> None:
    assert after_reading(activity, job_active) == expected  # failures start again at 0
    assert expected.hold_link is (expected.lease is Lease.WATCHING)
    assert not expected.report


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (PROBING, LeaseState(Lease.RETRYING, 1)),  # a probe failed: retried quietly
        (WATCHING, LeaseState(Lease.RETRYING, 1)),  # a dropped link mid-print: the same
        (LeaseState(Lease.RETRYING, 1), LeaseState(Lease.RETRYING, 2)),
        (LeaseState(Lease.RETRYING, 2), LeaseState(Lease.TROUBLE, 3)),  # now reported
        (LeaseState(Lease.TROUBLE, 3), LeaseState(Lease.TROUBLE, 4)),  # reported each look
    ],
)
def test_a_failure_counts_and_is_reported_from_the_third(
    before: LeaseState, after: LeaseState
) -> None:
    moved = after_failure(before, TIMING)
    assert moved == after
    assert moved.report is (after.lease is Lease.TROUBLE)
    assert not moved.hold_link


@pytest.mark.parametrize(
    ("state", "job_active", "look"),
    [
        (WATCHING, True, Look(1.0)),
        (WATCHING, False, Look(1.0)),
        (PROBING, False, Look(30.0, jitter=True)),  # idle: a probe now and then, spread
        (PROBING, True, Look(1.0)),  # a job is still open: look at the poll cadence
        (LeaseState(Lease.RETRYING, 1), False, Look(0.25, jitter=True)),
        (LeaseState(Lease.RETRYING, 2), True, Look(0.5, jitter=True)),  # doubling
        (LeaseState(Lease.TROUBLE, 3), False, Look(30.0, jitter=True)),
        (LeaseState(Lease.TROUBLE, 3), True, Look(5.0, jitter=True)),  # a job: sooner
        (LeaseState(Lease.TROUBLE, 50), False, Look(30.0, jitter=True)),
    ],
)
def test_when_each_state_looks_again(state: LeaseState, job_active: bool, look: Look) -> None:
    assert next_look(state, job_active, TIMING) == look


def test_retries_are_capped_and_an_active_recheck_never_exceeds_the_probe() -> None:
    many = Timing(poll_interval_s=1, probe_interval_s=2, tuning=Tuning(retry_attempts=100))
    assert next_look(LeaseState(Lease.RETRYING, 60), False, many).delay_s == 2.0  # the cap
    assert next_look(LeaseState(Lease.TROUBLE, 100), True, many).delay_s == 2.0  # the probe


def test_jitter_spreads_between_half_and_all() -> None:
    delays = {Look(30.0, jitter=True).next_delay_s() for _ in range(200)}
    assert all(15.0 <= d <= 30.0 for d in delays)
    assert len(delays) > 100
    assert Look(1.0).next_delay_s() == 1.0


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
