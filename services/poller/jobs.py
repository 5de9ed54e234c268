"""What a print *job* is: where it starts, where it ends and how its time is spent, as pure
decisions over one printer's readings (architecture §4.3, issue 13 point 1).

Theory of operation
-------------------
The caller feeds every reading of a printer (``observe``) and every failed look
(``unreachable``) with the time it happened (``Moment``: monotonic and wall clock). The
answer is a ``Step``: the job after it (``OpenJob`` or None), what changed (``Started``,
``Paused``, ``Resumed``, ``Ended``) and whether the job must be written to the journal now.

* **Start.** A job starts at the first reading that shows a print: PRINTING, or PAUSED with
  a file or some progress (a paused printer with neither is not showing a print). Its id is a
  UUIDv7 made then, once; everything after refers to that id.
* **Phases.** ``warmup`` (printing reported, no progress seen yet and a heater still below
  its target), ``printing`` and ``paused``. Each phase's time is measured on the monotonic
  clock between the readings that showed the change; warm-up happens at most once, before the
  first progress. BUSY (homing, filament moves) inside a job keeps the phase it interrupts.
* **End.** COMPLETED ends ``completed``; READY ends ``completed`` when the progress reached
  100 %, else ``failed`` when the printer reported an error during the job (an unknown
  MachineStatus, state ``error``), else ``cancelled``. Another file printing ends the old job
  (as READY would) and starts a new one.
* **Dark time.** While the printer cannot be read (offline, held by another client) or the
  gateway was not running, nothing is known. The job stays open and is *dark*. The first
  reading after decides: the same print still going (active, same file, progress not gone
  backwards) continues the same job and the dark time counts in the phase it was in
  (the printer kept doing what it did); COMPLETED ends it ``completed`` now (the end fell in
  the dark, counted as printing: an overcount bounded by the dark time); anything else means
  the print was not seen to end: it ends ``interrupted`` at the last reading that showed it
  (``seen_*``), and the dark time is not counted. Progress at 100 % then READY is
  ``completed`` either way.
* **Restart.** ``OpenJob`` is a msgspec struct; ``persist`` says when to write it (a change of
  start, phase, end, error or dark, and a checkpoint every ``CHECKPOINT_S`` while a job is
  open, so an unseen end loses at most that much printing time). ``restore`` keeps its
  monotonic fields after a process restart, re-anchors them on the wall clock after a
  reboot (the monotonic clock restarts with the machine), and makes the job dark: after
  SIGKILL or a reboot the first reading continues the same job, with the same id and its
  times, and no second ``Started``.

Invariants: at most one job is open; every ``Started`` is followed by exactly one ``Ended``
with the same id; accumulated times never decrease and are never negative (a wall clock
that went backwards across a restart counts as no time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from gateway.uuid7 import uuid7
from services.poller.protocol import Activity, Observation

Phase = Literal["warmup", "printing", "paused"]
JobOutcome = Literal["completed", "cancelled", "failed", "interrupted"]
CHECKPOINT_S = 60.0
# A heater this close to its target is warm (the simulator and FlashForge firmware start
# extruding within about 2 °C).
WARM_MARGIN_C = 2.0
_ACTIVE = (Activity.PRINTING, Activity.PAUSED, Activity.BUSY)


class Moment(msgspec.Struct, frozen=True):
    """When something was seen: ``time.monotonic()`` and Unix wall-clock seconds."""

    mono: float
    wall: float


class Sighting(msgspec.Struct, frozen=True, kw_only=True):
    """What the job tracker needs from one reading."""

    activity: Activity
    file: str | None = None
    percent: float = 0.0
    heating: bool = False


def sighting_of(observation: Observation) -> Sighting:
    """The Sighting of a reading: heating while any heater with a target is below it."""
    temps = observation.temperatures
    heaters = [*temps.nozzles, *([temps.bed] if temps.bed is not None else [])]
    return Sighting(
        activity=observation.activity,
        file=observation.machine.current_file or None,
        percent=observation.progress.percent,
        heating=any(h.target > 0 and h.current < h.target - WARM_MARGIN_C for h in heaters),
    )


class OpenJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job in progress: what the journal keeps. Times before ``phase_since`` are summed in
    the ``*_s`` fields; the running phase's time is ``now - phase_since``."""

    id: str
    file: str | None
    started_wall: float
    phase: Phase
    phase_since_mono: float
    phase_since_wall: float
    warmup_s: float = 0.0
    print_s: float = 0.0
    paused_s: float = 0.0
    pause_count: int = 0
    max_percent: float = 0.0
    last_percent: float = 0.0
    seen_mono: float
    seen_wall: float
    saved_mono: float
    errored: bool = False
    dark: bool = False


class JobTimes(msgspec.Struct, frozen=True):
    """Accumulated times of a job at one moment, in seconds."""

    warmup_s: float
    print_s: float
    paused_s: float


class JobSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A finished job: the fields of its ``job`` record that the tracker knows."""

    job_id: str
    file: str | None
    outcome: JobOutcome
    started_wall: float
    ended_wall: float
    print_s: float
    warmup_s: float
    paused_s: float
    pause_count: int
    max_progress_percent: float


class Started(msgspec.Struct, frozen=True):
    """A job began (event ``print_started``)."""

    job_id: str
    file: str | None
    started_wall: float


class Paused(msgspec.Struct, frozen=True):
    """The job paused (event ``print_paused``)."""

    job_id: str


class Resumed(msgspec.Struct, frozen=True):
    """The job resumed (event ``print_resumed``)."""

    job_id: str


class Ended(msgspec.Struct, frozen=True):
    """The job ended (events ``print_finished``/``print_cancelled``, and its ``job`` record)."""

    summary: JobSummary


Change = Started | Paused | Resumed | Ended


class Step(msgspec.Struct, frozen=True):
    """The job after one input, what changed, and whether to write the job to the journal."""

    job: OpenJob | None
    changes: tuple[Change, ...] = ()
    persist: bool = False
    # Only the periodic checkpoint is due (nothing changed that a reboot must not lose): the
    # caller may keep it where a process restart finds it (tmpfs) instead of the SD card.
    checkpoint: bool = False


def times(job: OpenJob, at: Moment) -> JobTimes:
    """The job's accumulated times at ``at``, the running phase included."""
    running = max(0.0, at.mono - job.phase_since_mono)
    return JobTimes(
        job.warmup_s + (running if job.phase == "warmup" else 0.0),
        job.print_s + (running if job.phase == "printing" else 0.0),
        job.paused_s + (running if job.phase == "paused" else 0.0),
    )


def observe(
    job: OpenJob | None,
    sighting: Sighting,
    at: Moment,
    make_id: Callable[[float], str] = uuid7,
) -> Step:
    """The job after a successful reading."""
    changes: list[Change] = []
    persist = False
    if job is not None and job.dark:
        job, ended = _after_dark(job, sighting, at)
        changes += ended
        # Only an end is worth a write: the same print going on changes nothing durable
        # (a restart makes the job dark anyway), and a printer that alternates failed looks
        # and readings must not cost a journal write per look.
        persist = bool(ended)
    if job is not None and _other_file(job, sighting):
        changes.append(_end(job, _ready_outcome(job), at))
        job = None
    if job is None:
        if not _shows_print(sighting):
            return Step(None, tuple(changes), persist)
        job = _start(sighting, at, make_id)
        changes.append(Started(job.id, job.file, job.started_wall))
        if job.phase == "paused":  # first seen paused: both events, as events.py sends them
            changes.append(Paused(job.id))
    before = job
    job, more = _follow(job, sighting, at)
    changes += more
    checkpoint = False
    if job is not None:
        durable = persist or _durably_different(before, job) or bool(changes)
        checkpoint = not durable and at.mono - job.saved_mono >= CHECKPOINT_S
        persist = durable or checkpoint
        if persist:
            job = msgspec.structs.replace(job, saved_mono=at.mono)
    return Step(job, tuple(changes), persist or bool(changes), checkpoint and not changes)


def unreachable(job: OpenJob | None, at: Moment) -> Step:
    """The job after a failed look (offline, held by another client, unreadable replies)."""
    del at  # dark time is measured from the last reading, whenever the printer returns
    if job is None or job.dark:
        return Step(job)
    return Step(msgspec.structs.replace(job, dark=True), persist=True)


def restore(job: OpenJob | None, at: Moment, *, same_boot: bool = False) -> OpenJob | None:
    """A job read back from the journal after a restart, dark until the next reading.

    After a reboot (``same_boot`` False) its monotonic anchors are moved onto this boot's
    clock by their wall-clock age. Within one boot (the caller compares a boot id, e.g.
    ``/proc/sys/kernel/random/boot_id``, journaled next to the job) they are kept as they
    are: ``time.monotonic()`` goes on across processes, and a wall clock stepped by NTP in
    between (a Pi without a real-time clock) must not become hours of printing."""
    if job is None:
        return None
    if same_boot:
        return msgspec.structs.replace(job, saved_mono=at.mono, dark=True)

    def anchored(wall: float) -> float:
        return at.mono - max(0.0, at.wall - wall)

    return msgspec.structs.replace(
        job,
        phase_since_mono=anchored(job.phase_since_wall),
        seen_mono=anchored(job.seen_wall),
        saved_mono=at.mono,
        dark=True,
    )


# ---------------------------------------------------------------------- the steps


def _shows_print(sighting: Sighting) -> bool:
    if sighting.activity is Activity.PRINTING:
        return True
    return sighting.activity is Activity.PAUSED and (
        sighting.file is not None or sighting.percent > 0.0
    )


def _other_file(job: OpenJob, sighting: Sighting) -> bool:
    return (
        sighting.activity in (Activity.PRINTING, Activity.PAUSED)
        and sighting.file is not None
        and job.file is not None
        and sighting.file != job.file
    )


def _start(sighting: Sighting, at: Moment, make_id: Callable[[float], str]) -> OpenJob:
    phase: Phase = "printing"
    if sighting.activity is Activity.PAUSED:
        phase = "paused"
    elif sighting.percent <= 0.0 and sighting.heating:
        phase = "warmup"
    return OpenJob(
        id=make_id(at.wall),
        file=sighting.file,
        started_wall=at.wall,
        phase=phase,
        phase_since_mono=at.mono,
        phase_since_wall=at.wall,
        pause_count=1 if phase == "paused" else 0,
        max_percent=sighting.percent,
        last_percent=sighting.percent,
        seen_mono=at.mono,
        seen_wall=at.wall,
        saved_mono=at.mono,
    )


def _follow(job: OpenJob, sighting: Sighting, at: Moment) -> tuple[OpenJob | None, list[Change]]:
    """One reading of an open, lit job: its phase, progress, error mark, or its end."""
    activity = sighting.activity
    if activity is Activity.COMPLETED:
        job = msgspec.structs.replace(job, max_percent=max(job.max_percent, sighting.percent))
        return None, [_end(job, "completed", at)]
    if activity is Activity.READY:
        return None, [_end(job, _ready_outcome(job, sighting.percent), at)]
    changes: list[Change] = []
    if activity is Activity.PAUSED and job.phase != "paused":
        job = _switch(job, "paused", at)
        job = msgspec.structs.replace(job, pause_count=job.pause_count + 1)
        changes.append(Paused(job.id))
    elif activity is Activity.PRINTING:
        if job.phase == "paused":
            job = _switch(job, _running_phase(job, sighting), at)
            changes.append(Resumed(job.id))
        elif job.phase == "warmup" and _running_phase(job, sighting) == "printing":
            job = _switch(job, "printing", at)
    errored = activity is Activity.UNKNOWN or (job.errored and activity is not Activity.PRINTING)
    return (
        msgspec.structs.replace(
            job,
            file=job.file or (sighting.file if activity in _ACTIVE else None),
            max_percent=max(job.max_percent, sighting.percent),
            last_percent=sighting.percent if activity in _ACTIVE else job.last_percent,
            seen_mono=at.mono,
            seen_wall=at.wall,
            errored=errored,
        ),
        changes,
    )


def _running_phase(job: OpenJob, sighting: Sighting) -> Phase:
    """Warm-up only before any progress, and only while still heating."""
    warming = job.max_percent <= 0.0 and sighting.percent <= 0.0 and sighting.heating
    return "warmup" if warming and job.print_s == 0.0 else "printing"


def _after_dark(
    job: OpenJob, sighting: Sighting, at: Moment
) -> tuple[OpenJob | None, list[Change]]:
    """The first reading after dark time: the same print goes on, or it ended unseen."""
    same_print = (
        sighting.activity in _ACTIVE
        and not _other_file(job, sighting)
        and sighting.percent >= job.last_percent
    )
    if same_print:
        return msgspec.structs.replace(job, dark=False), []
    if sighting.activity is Activity.COMPLETED:  # it did finish: all of it was printed
        return None, [_end(msgspec.structs.replace(job, max_percent=100.0), "completed", at)]
    # Not seen to end: close it where it was last seen; what happened in the dark is unknown
    # (a print at 100 % then ready did finish, whenever it did).
    seen = Moment(job.seen_mono, job.seen_wall)
    reached = max(job.max_percent, sighting.percent)
    outcome: JobOutcome = "completed" if reached >= 100.0 else "interrupted"
    return None, [_end(msgspec.structs.replace(job, max_percent=reached), outcome, seen)]


def _ready_outcome(job: OpenJob, percent: float = 0.0) -> JobOutcome:
    if max(job.max_percent, percent) >= 100.0:
        return "completed"
    return "failed" if job.errored else "cancelled"


def _switch(job: OpenJob, phase: Phase, at: Moment) -> OpenJob:
    """Close the running phase at ``at`` and open ``phase``."""
    spent = times(job, at)
    return msgspec.structs.replace(
        job,
        phase=phase,
        phase_since_mono=max(at.mono, job.phase_since_mono),
        phase_since_wall=at.wall,
        warmup_s=spent.warmup_s,
        print_s=spent.print_s,
        paused_s=spent.paused_s,
    )


def _end(job: OpenJob, outcome: JobOutcome, at: Moment) -> Ended:
    spent = times(job, at)
    return Ended(
        JobSummary(
            job_id=job.id,
            file=job.file,
            outcome=outcome,
            started_wall=job.started_wall,
            ended_wall=max(at.wall, job.started_wall),
            print_s=spent.print_s,
            warmup_s=spent.warmup_s,
            paused_s=spent.paused_s,
            pause_count=job.pause_count,
            max_progress_percent=job.max_percent,
        )
    )


def _durably_different(before: OpenJob, after: OpenJob) -> bool:
    """Whether the journal's copy would be wrong in a way that matters after a restart."""
    return (before.phase, before.errored, before.dark, before.pause_count, before.file) != (
        after.phase,
        after.errored,
        after.dark,
        after.pause_count,
        after.file,
    )
