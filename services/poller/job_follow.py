"""The poller's print jobs: ``jobs.py`` (where a job starts and ends, its times) and
``estimate.py`` (time left) fed one reading at a time, without I/O.

Theory of operation
-------------------
The watcher hands every reading (``reading``) and every failed look (``failure``) to one
JobFollower per printer, with the moment it happened. The follower moves the open job
(``jobs.observe``/``unreachable``) and its estimator, and answers with a ``FollowUp``:

* the ``job`` block of the status being built (``progress``), while a job is open;
* the ``job`` records of the prints that ended at this reading (``records``; each made when
  its ``Ended`` is seen, with the estimator of that job, which is then reset);
* the job state to write to the journal (``state``), when ``jobs`` says it must be (a
  change, or the one-a-minute checkpoint) or a record was made: the watcher writes it in
  the same journal write as the events and records of the reading, before any is sent.

``events.py`` still derives the ``print_*`` events (its rules are tested against the
contract and the simulator); ``tag`` gives them the job they belong to: ``detail.job_id``,
and on the end of a job its outcome, printing time (a notification says "finished in
1 h 5 min") and, for a completed print, the time-left estimate's error at 10/25/50/75 %
(``detail.estimate_errors``: |predicted - actual| / actual remaining, null where there
was no number). The two can disagree about an end that fell while the printer could not be
read: events.py says ``print_cancelled`` (the progress counter did not reach its end), the
job record says ``interrupted``; the event's ``detail.outcome`` carries the job's word.

Completed prints feed ``history`` (the last HISTORY_PER_FILE printing times of each of the
last HISTORY_FILES files): the estimate of the next print of the same file starts from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.messages import Job, JobProgress
from services.poller.estimate import Estimator, estimate
from services.poller.events import Happening
from services.poller.job_report import estimate_errors_of, progress_of, record_of
from services.poller.job_state import FileHistory, JobState
from services.poller.jobs import (
    Ended,
    JobSummary,
    Moment,
    OpenJob,
    observe,
    restore,
    sighting_of,
    times,
    unreachable,
)
from services.poller.protocol import Observation

HISTORY_FILES = 50
HISTORY_PER_FILE = 5
_END_EVENTS = ("print_finished", "print_cancelled")
_JOB_EVENTS = (*_END_EVENTS, "print_started", "print_paused", "print_resumed")


@dataclass
class FollowUp:
    """What one reading or failure means for the job (see the module's docstring)."""

    progress: JobProgress | None = None
    records: list[Job] = field(default_factory=list)
    ended: list[JobSummary] = field(default_factory=list)
    errors: list[dict[str, float | None]] = field(default_factory=list)  # per ended job
    job_id: str | None = None  # the job open after this input
    previous_id: str | None = None  # the job open before it
    state: JobState | None = None
    undo: JobState | None = None  # the follower before this input (``JobFollower.undo``)
    written: bool = False  # the watcher wrote it to the journal
    checkpoint: bool = False  # ``state`` is only the periodic checkpoint (``jobs.Step``)


class JobFollower:
    """One printer's open job, estimator and history between readings."""

    def __init__(
        self, saved: JobState, boot_id: str, at: Moment, checkpoint: JobState | None = None
    ) -> None:
        # A checkpoint of this boot (kept on tmpfs between the journal's writes) of the same
        # job is newer than the journal's copy when its job was saved later.
        if (
            checkpoint is not None
            and checkpoint.boot_id == boot_id
            and checkpoint.job is not None
            and saved.job is not None
            and checkpoint.job.id == saved.job.id
            and checkpoint.job.saved_mono > saved.job.saved_mono
        ):
            saved = checkpoint
        same_boot = bool(boot_id) and saved.boot_id == boot_id
        self.job: OpenJob | None = restore(saved.job, at, same_boot=same_boot)
        self.estimator = saved.estimator
        self.boot_id = boot_id
        self.history: dict[str, tuple[float, ...]] = {h.file: h.print_s for h in saved.history}

    def reading(
        self,
        observation: Observation,
        at: Moment,
        record: Callable[[JobSummary, Estimator], Job],
    ) -> FollowUp:
        """A successful reading at `at`; `record` makes the job record of an ended print."""
        before = self.job.id if self.job is not None else None
        sighting = sighting_of(observation)
        step = observe(self.job, sighting, at)
        follow = FollowUp(previous_id=before, undo=self.state())
        for change in step.changes:
            if isinstance(change, Ended):
                follow.ended.append(change.summary)
                follow.errors.append(estimate_errors_of(change.summary, self.estimator))
                follow.records.append(record(change.summary, self.estimator))
                self._learn(change.summary)
                self.estimator = Estimator()
        self.job = step.job
        if self.job is not None:
            file_history = self.history.get(self.job.file or "", ())
            self.estimator, result = estimate(
                self.estimator, sighting.percent, times(self.job, at).print_s, file_history
            )
            follow.progress = progress_of(self.job, result, at)
            follow.job_id = self.job.id
        if step.persist or follow.records:
            follow.state = self.state()
            follow.checkpoint = step.checkpoint and not follow.records
        return follow

    def failure(self, at: Moment) -> FollowUp:
        """A look that failed at `at` (the job, if any, goes dark)."""
        before = self.job.id if self.job is not None else None
        follow = FollowUp(job_id=before, previous_id=before, undo=self.state())
        step = unreachable(self.job, at)
        self.job = step.job
        if step.persist:
            follow.state = self.state()
        return follow

    def undo(self, follow: FollowUp) -> None:
        """The journal did not take this input's write: back to before it, so the next
        reading derives the same changes (and the same job record) again."""
        if follow.undo is not None and not follow.written:
            self.job = follow.undo.job
            self.estimator = follow.undo.estimator
            self.history = {h.file: h.print_s for h in follow.undo.history}

    def state(self) -> JobState:
        """What the journal keeps of the job."""
        return JobState(
            job=self.job,
            estimator=self.estimator,
            boot_id=self.boot_id,
            history=tuple(FileHistory(f, s) for f, s in self.history.items()),
        )

    def _learn(self, summary: JobSummary) -> None:
        if summary.outcome != "completed" or not summary.file or summary.print_s <= 0:
            return
        earlier = self.history.pop(summary.file, ())
        self.history[summary.file] = (*earlier, summary.print_s)[-HISTORY_PER_FILE:]
        while len(self.history) > HISTORY_FILES:  # the oldest file learned goes first
            del self.history[next(iter(self.history))]


def tag(happenings: list[Happening], follow: FollowUp) -> list[Happening]:
    """The ``print_*`` events with the job they belong to (see the module's docstring)."""
    ended = list(zip(follow.ended, follow.errors, strict=True))
    tagged = []
    for happening in happenings:
        detail = dict(happening.detail)
        if happening.event in _END_EVENTS and ended:
            summary, errors = ended.pop(0)
            detail |= {
                "job_id": summary.job_id,
                "outcome": summary.outcome,
                "print_s": round(summary.print_s, 1),
            }
            if errors:  # how far off the time left was at 10/25/50/75 % (completed prints)
                detail["estimate_errors"] = errors
        elif happening.event in _END_EVENTS and follow.previous_id:
            detail["job_id"] = follow.previous_id
        elif happening.event in _JOB_EVENTS or happening.event == "printer_lost_while_printing":
            job_id = follow.job_id or follow.previous_id
            if job_id:
                detail["job_id"] = job_id
        tagged.append(Happening(happening.event, happening.file, detail))
    return tagged


def record_maker(
    record_id: Callable[[], str], printer_id: str, now: Callable[[], datetime]
) -> Callable[[JobSummary, Estimator], Job]:
    """How the watcher makes a job record: its own record ids and clock."""

    def make(summary: JobSummary, estimator: Estimator) -> Job:
        return record_of(summary, estimator, record_id=record_id(), printer_id=printer_id, ts=now())

    return make
