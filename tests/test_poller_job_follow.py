"""job_follow: which saved copy of a job a restart takes, and when a write may go to tmpfs."""

from __future__ import annotations

import msgspec

from services.poller.estimate import Estimator
from services.poller.job_follow import JobFollower
from services.poller.job_state import JobState
from services.poller.jobs import CHECKPOINT_S, Moment, Sighting, observe
from services.poller.protocol import Activity

PRINTING = Sighting(activity=Activity.PRINTING, file="a.gx", percent=10.0)


def _state(print_s: float, saved_mono: float, boot: str = "boot-1") -> JobState:
    step = observe(None, PRINTING, Moment(0.0, 1_000.0), make_id=lambda _: "job-1")
    assert step.job is not None
    job = msgspec.structs.replace(step.job, print_s=print_s, saved_mono=saved_mono)
    return JobState(job=job, estimator=Estimator(), boot_id=boot, history=())


def test_a_newer_checkpoint_of_the_same_job_and_boot_wins_over_the_journal() -> None:
    journal, checkpoint = _state(60.0, 100.0), _state(300.0, 340.0)
    follower = JobFollower(journal, "boot-1", Moment(400.0, 1_400.0), checkpoint)
    assert follower.job is not None
    assert follower.job.print_s == 300.0
    older = JobFollower(checkpoint, "boot-1", Moment(400.0, 1_400.0), journal)
    assert older.job is not None
    assert older.job.print_s == 300.0  # the journal's copy was the newer one there


def test_a_checkpoint_of_another_boot_is_ignored() -> None:
    journal, checkpoint = _state(60.0, 100.0), _state(300.0, 340.0, boot="boot-0")
    follower = JobFollower(journal, "boot-1", Moment(400.0, 1_400.0), checkpoint)
    assert follower.job is not None
    assert follower.job.print_s == 60.0


def test_only_the_periodic_checkpoint_may_go_to_tmpfs() -> None:
    at = Moment(0.0, 1_000.0)
    started = observe(None, PRINTING, at, make_id=lambda _: "job-1")
    assert started.persist
    assert not started.checkpoint  # a start is journaled
    steady = observe(started.job, PRINTING, Moment(5.0, 1_005.0))
    assert not steady.persist  # a poll writes nothing
    due = observe(steady.job, PRINTING, Moment(CHECKPOINT_S + 1, 1_000.0 + CHECKPOINT_S + 1))
    assert (due.persist, due.checkpoint) == (True, True)
    paused = Sighting(activity=Activity.PAUSED, file="a.gx", percent=10.0)
    change = observe(due.job, paused, Moment(CHECKPOINT_S * 3, 1_000.0 + CHECKPOINT_S * 3))
    assert change.persist
    assert not change.checkpoint  # a pause is journaled, even when a checkpoint is due too
