"""A job as the API hears it (services/poller/job_report.py, shapes in gateway/messages.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from gateway.messages import Job, JobProgress, Record, record_json_decoder
from services.poller.estimate import Estimate, Estimator, Mark
from services.poller.job_report import estimate_errors_of, event_of, progress_of, record_of
from services.poller.jobs import (
    Ended,
    JobOutcome,
    JobSummary,
    Moment,
    Paused,
    Resumed,
    Sighting,
    Started,
    observe,
)
from services.poller.protocol import Activity

WALL0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z
JOB_ID = "019a8d4c-5b00-7000-8000-000000000001"


def summary(outcome: JobOutcome) -> JobSummary:
    return JobSummary(
        job_id=JOB_ID,
        file="benchy.gx",
        outcome=outcome,
        started_wall=WALL0,
        ended_wall=WALL0 + 7300.25,
        print_s=6950.04,
        warmup_s=171.0,
        paused_s=179.2,
        pause_count=1,
        max_progress_percent=100.0,
    )


ESTIMATOR = Estimator(
    at_start_s=7000.0,
    origin_at_start="history",
    started=True,
    marks=(Mark(10.0, 695.0, 6255.0, "history"), Mark(25.0, 1737.5, None, "none")),
)


def test_the_job_record_of_a_completed_print_round_trips() -> None:
    ts = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    record = record_of(
        summary("completed"), ESTIMATOR, record_id="gw:rex1:b:7", printer_id="rex1", ts=ts
    )
    wire = msgspec.json.decode(msgspec.json.encode(record))
    assert wire == {
        "kind": "job",
        "id": "gw:rex1:b:7",
        "printer_id": "rex1",
        "seq": None,
        "ts": "2026-11-18T12:00:00Z",
        "job_id": JOB_ID,
        "file": "benchy.gx",
        "outcome": "completed",
        "started_at": "2026-11-18T11:06:40Z",
        "ended_at": "2026-11-18T13:08:20.250000Z",
        "print_s": 6950.0,
        "warmup_s": 171.0,
        "paused_s": 179.2,
        "pause_count": 1,
        "max_progress_percent": 100.0,
        "estimate_at_start_s": 7000.0,
        "estimate_origin": "history",
    }
    decoded: Record = record_json_decoder.decode(msgspec.json.encode(record))
    assert decoded == record


def test_the_estimate_errors_of_a_completed_print_go_with_its_end_event() -> None:
    # marks: at 10 % (695 s) 6255 s were predicted, exactly what was left; nothing at 25 %
    errors = {"10": pytest.approx(0.0, abs=1e-4), "25": None}
    assert estimate_errors_of(summary("completed"), ESTIMATOR) == errors
    _, detail = event_of(Ended(summary("completed")), ESTIMATOR)
    assert detail["estimate_errors"] == errors


@pytest.mark.parametrize("outcome", ["cancelled", "failed", "interrupted"])
def test_no_estimate_errors_when_the_print_did_not_complete(outcome: JobOutcome) -> None:
    assert estimate_errors_of(summary(outcome), ESTIMATOR) == {}
    _, detail = event_of(Ended(summary(outcome)), ESTIMATOR)
    assert "estimate_errors" not in detail


def test_the_job_block_of_a_status() -> None:
    step = observe(
        None,
        Sighting(activity=Activity.PRINTING, percent=1.0),
        Moment(10.0, WALL0),
        make_id=lambda _: JOB_ID,
    )
    assert step.job is not None
    at = Moment(70.0, WALL0 + 60.0)
    block = progress_of(step.job, Estimate(3600.0, "linear"), at)
    assert block == JobProgress(
        id=JOB_ID,
        started_at=datetime.fromtimestamp(WALL0, UTC),
        elapsed_s=60.0,
        remaining_s=3600.0,
        eta=datetime.fromtimestamp(WALL0 + 3660.0, UTC),
        estimate_origin="linear",
    )
    unknown = progress_of(step.job, Estimate(None, "none"), at)
    assert (unknown.remaining_s, unknown.eta, unknown.estimate_origin) == (None, None, "none")


@pytest.mark.parametrize(
    ("change", "event", "detail"),
    [
        (
            Started(JOB_ID, "a.gx", WALL0),
            "print_started",
            {"job_id": JOB_ID, "started_at": "2026-11-18T11:06:40Z"},
        ),
        (Paused(JOB_ID), "print_paused", {"job_id": JOB_ID}),
        (Resumed(JOB_ID), "print_resumed", {"job_id": JOB_ID}),
        (Ended(summary("completed")), "print_finished", {"outcome": "completed"}),
        (Ended(summary("failed")), "print_finished", {"outcome": "failed"}),
        (Ended(summary("interrupted")), "print_finished", {"outcome": "interrupted"}),
        (
            Ended(summary("cancelled")),
            "print_cancelled",
            {"outcome": "cancelled", "print_s": 6950.0},
        ),
    ],
)
def test_print_events_carry_the_job_id(
    change: Started | Paused | Resumed | Ended, event: str, detail: dict[str, object]
) -> None:
    name, got = event_of(change)
    assert name == event
    assert got["job_id"] == JOB_ID
    assert detail.items() <= got.items()


@pytest.mark.parametrize(
    "bad",
    [
        {"print_s": -1.0},
        {"outcome": "exploded"},
        {"job_id": "a b"},
        {"max_progress_percent": 101.0},
    ],
)
def test_a_job_record_out_of_bounds_is_refused(bad: dict[str, object]) -> None:
    good = msgspec.to_builtins(
        record_of(
            summary("completed"), ESTIMATOR, record_id="r", printer_id="rex1", ts=datetime.now(UTC)
        )
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**good, **bad}, Job)
