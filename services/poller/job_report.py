"""What the API hears of a job (architecture §4.3): the ``job`` block of a status, the
``job`` record of a finished print, and the name and detail of each ``print_*`` event,
built from the job tracker's and the estimator's outputs (shapes in ``gateway/messages.py``).
Pure: the caller passes ids and times.

End events: ``print_cancelled`` for a cancelled job; ``print_finished`` for every other end,
with ``detail.outcome`` saying completed, failed or interrupted (§4.3 has no failed or
interrupted event, and a notification of a print that ended badly should still say it
ended, with the outcome in its text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, assert_never

from gateway.messages import MAX_SECONDS, EventName, Job, JobProgress
from services.poller.estimate import Estimate, Estimator, errors_after
from services.poller.jobs import (
    Change,
    Ended,
    JobSummary,
    Moment,
    OpenJob,
    Paused,
    Resumed,
    Started,
    times,
)


def _moment(wall: float) -> datetime:
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _seconds(value: float) -> float:
    return round(min(max(value, 0.0), MAX_SECONDS), 1)


def progress_of(job: OpenJob, estimate: Estimate, at: Moment) -> JobProgress:
    """The ``job`` block of a status read at ``at``."""
    remaining = None if estimate.remaining_s is None else _seconds(estimate.remaining_s)
    return JobProgress(
        id=job.id,
        started_at=_moment(job.started_wall),
        elapsed_s=_seconds(times(job, at).print_s),
        remaining_s=remaining,
        eta=None if remaining is None else _moment(at.wall + remaining),
        estimate_origin=estimate.origin if remaining is not None else "none",
    )


def estimate_errors_of(summary: JobSummary, estimator: Estimator) -> dict[str, float | None]:
    """The estimate's error at each mark it reached, keyed "10", "25", "50", "75": |predicted
    - actual| / actual remaining print time, null where it showed no number. Empty unless the
    print completed (the real print time of any other end is not the print's)."""
    if summary.outcome != "completed":
        return {}
    return {
        f"{e.percent:g}": None if e.error is None else round(e.error, 4)
        for e in errors_after(estimator, summary.print_s)
    }


def record_of(
    summary: JobSummary, estimator: Estimator, *, record_id: str, printer_id: str, ts: datetime
) -> Job:
    """The ``job`` record of a finished print."""
    return Job(
        id=record_id,
        printer_id=printer_id,
        ts=ts,
        job_id=summary.job_id,
        file=summary.file,
        outcome=summary.outcome,
        started_at=_moment(summary.started_wall),
        ended_at=_moment(summary.ended_wall),
        print_s=_seconds(summary.print_s),
        warmup_s=_seconds(summary.warmup_s),
        paused_s=_seconds(summary.paused_s),
        pause_count=summary.pause_count,
        max_progress_percent=min(100.0, max(0.0, summary.max_progress_percent)),
        estimate_at_start_s=(
            None if estimator.at_start_s is None else _seconds(estimator.at_start_s)
        ),
        estimate_origin=estimator.origin_at_start,
    )


def event_of(
    change: Change, estimator: Estimator | None = None
) -> tuple[EventName, dict[str, Any]]:
    """The ``print_*`` event of a change and its detail (always with ``job_id``); the end
    of a completed print, given the job's estimator, carries ``estimate_errors`` (the ``job``
    record has no field for them)."""
    match change:
        case Started(job_id=job_id, started_wall=wall):
            return "print_started", {"job_id": job_id, "started_at": _text(wall)}
        case Paused(job_id=job_id):
            return "print_paused", {"job_id": job_id}
        case Ended(summary=summary):
            name: EventName = (
                "print_cancelled" if summary.outcome == "cancelled" else "print_finished"
            )
            detail: dict[str, Any] = {
                "job_id": summary.job_id,
                "outcome": summary.outcome,
                "started_at": _text(summary.started_wall),
                "print_s": _seconds(summary.print_s),
            }
            errors = estimate_errors_of(summary, estimator) if estimator is not None else {}
            if errors:
                detail["estimate_errors"] = errors
            return name, detail
        case Resumed(job_id=job_id):
            return "print_resumed", {"job_id": job_id}
        case _:
            assert_never(change)


def _text(wall: float) -> str:
    return _moment(wall).isoformat().replace("+00:00", "Z")
