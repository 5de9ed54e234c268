"""Job boundaries and times (services/poller/jobs.py) as tables of readings, and UUIDv7."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.messages import Temperature
from gateway.uuid7 import uuid7, uuid7_from
from services.poller.jobs import (
    CHECKPOINT_S,
    Change,
    Ended,
    JobSummary,
    Moment,
    OpenJob,
    Paused,
    Resumed,
    Sighting,
    Started,
    observe,
    restore,
    sighting_of,
    times,
    unreachable,
)
from services.poller.protocol import (
    Activity,
    MachineStatus,
    Observation,
    PrintProgress,
    Temperatures,
)

WALL0 = 1_800_000_000.0
A = Activity


def seen(
    activity: Activity, percent: float = 0.0, file: str | None = "a.gx", *, heating: bool = False
) -> Sighting:
    return Sighting(activity=activity, file=file, percent=percent, heating=heating)


HEATING = seen(A.PRINTING, heating=True)
OFF = None  # a failed look: the printer is offline or held
Script = Sequence[tuple[float, Sighting | None]]


@dataclass
class Run:
    """What a script of readings produced."""

    job: OpenJob | None = None
    changes: list[Change] = field(default_factory=list)
    ids: Iterator[str] = field(default_factory=lambda: (f"job-{n}" for n in range(1, 100)))

    def feed(self, script: Script, mono0: float = 0.0, wall0: float = WALL0) -> Run:
        for t, sighting in script:
            at = Moment(mono0 + t, wall0 + t)
            if sighting is None:
                step = unreachable(self.job, at)
            else:
                step = observe(self.job, sighting, at, make_id=lambda _: next(self.ids))
            self.job = step.job
            self.changes += step.changes
        return self

    def names(self) -> list[str]:
        return [type(c).__name__ for c in self.changes]

    def summaries(self) -> list[JobSummary]:
        return [c.summary for c in self.changes if isinstance(c, Ended)]


def printing(start: float, end: float, p0: float, p1: float, every: float = 10.0) -> Script:
    """Readings every `every` s from start to end, progress rising linearly p0 -> p1."""
    n = int((end - start) / every)
    return [
        (start + i * every, seen(A.PRINTING, float(int(p0 + (p1 - p0) * i / max(n, 1)))))
        for i in range(n + 1)
    ]


# ---------------------------------------------------------------------- boundaries


def test_a_completed_print_with_warm_up() -> None:
    run = Run().feed(
        [
            (0, seen(A.READY)),
            (5, HEATING),
            (50, HEATING),
            (125, seen(A.PRINTING, 0.0)),
            *printing(130, 1130, 1, 99),
            (1135, seen(A.COMPLETED, 100.0)),
            (1145, seen(A.COMPLETED, 100.0)),
            (1200, seen(A.READY, 0.0)),
        ]
    )
    assert run.names() == ["Started", "Ended"]
    (summary,) = run.summaries()
    assert summary.outcome == "completed"
    assert summary.job_id == "job-1"
    # warm-up ends at the first reading that is no longer heating (t=125)
    assert summary.warmup_s == pytest.approx(120.0)
    assert summary.print_s == pytest.approx(1135.0 - 125.0)
    assert summary.paused_s == 0.0
    assert summary.max_progress_percent == 100.0
    assert summary.started_wall == WALL0 + 5
    assert summary.ended_wall == WALL0 + 1135
    assert run.job is None


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [
        ([(500, seen(A.READY, 40.0))], "cancelled"),
        ([(500, seen(A.UNKNOWN, 40.0)), (510, seen(A.READY, 0.0))], "failed"),
        (
            [(500, seen(A.UNKNOWN, 40.0)), (510, seen(A.UNKNOWN, 40.0)), (520, seen(A.READY))],
            "failed",
        ),
        ([(500, seen(A.PRINTING, 100.0)), (510, seen(A.READY, 0.0))], "completed"),
        ([(500, seen(A.READY, 100.0))], "completed"),
        ([(500, seen(A.COMPLETED, 40.0))], "completed"),
        ([(500, OFF), (900, OFF), (1000, seen(A.READY, 0.0))], "interrupted"),
        ([(500, OFF), (1000, seen(A.COMPLETED, 100.0))], "completed"),
        # the error was transient: printing again clears it
        (
            [(500, seen(A.UNKNOWN, 40.0)), (510, seen(A.PRINTING, 41.0)), (520, seen(A.READY))],
            "cancelled",
        ),
    ],
)
def test_how_a_print_ends(ending: Script, outcome: str) -> None:
    run = Run().feed([(0, seen(A.PRINTING, 10.0)), (400, seen(A.PRINTING, 40.0)), *ending])
    assert run.names() == ["Started", "Ended"]
    assert run.summaries()[0].outcome == outcome
    assert run.job is None


def test_pause_and_resume_count_paused_time_apart() -> None:
    run = Run().feed(
        [
            (0, seen(A.PRINTING, 1.0)),
            (100, seen(A.PAUSED, 20.0)),
            (150, seen(A.BUSY, 20.0)),  # filament change inside the pause: still paused
            (400, seen(A.PRINTING, 20.0)),
            (500, seen(A.PAUSED, 30.0)),
            (600, seen(A.PRINTING, 30.0)),
            (700, seen(A.COMPLETED, 100.0)),
        ]
    )
    assert run.names() == ["Started", "Paused", "Resumed", "Paused", "Resumed", "Ended"]
    assert {c.job_id for c in run.changes if isinstance(c, Paused | Resumed | Started)} == {"job-1"}
    (summary,) = run.summaries()
    assert (summary.pause_count, summary.paused_s, summary.print_s) == (2, 400.0, 300.0)


def test_first_seen_paused_starts_and_pauses() -> None:
    run = Run().feed([(0, seen(A.PAUSED, 12.0)), (10, seen(A.PRINTING, 12.0))])
    assert run.names() == ["Started", "Paused", "Resumed"]


@pytest.mark.parametrize(
    "sighting",
    [
        seen(A.READY, 0.0),
        seen(A.COMPLETED, 100.0),
        seen(A.BUSY, 0.0),
        seen(A.UNKNOWN, 0.0),
        seen(A.PAUSED, 0.0, None),  # paused with neither file nor progress shows no print
    ],
)
def test_no_job_without_a_print(sighting: Sighting) -> None:
    run = Run().feed([(0, sighting), (10, OFF), (20, sighting)])
    assert (run.changes, run.job) == ([], None)


def test_another_file_ends_the_old_job_and_starts_a_new_one() -> None:
    run = Run().feed(
        [
            (0, seen(A.PRINTING, 5.0)),
            (100, seen(A.PRINTING, 50.0)),
            (110, seen(A.PRINTING, 1.0, "b.gx")),
        ]
    )
    assert run.names() == ["Started", "Ended", "Started"]
    assert run.summaries()[0].outcome == "cancelled"
    assert run.job is not None
    assert (run.job.id, run.job.file) == ("job-2", "b.gx")


def test_a_file_name_seen_late_is_the_job_s() -> None:
    run = Run().feed(
        [
            (0, seen(A.PRINTING, 5.0, None)),
            (10, seen(A.PRINTING, 6.0)),
            (20, seen(A.READY, 0.0, "b.gx")),
        ]
    )
    assert run.names() == ["Started", "Ended"]
    assert run.summaries()[0].file == "a.gx"


def test_busy_inside_a_job_keeps_its_phase() -> None:
    run = Run().feed(
        [(0, seen(A.PRINTING, 5.0)), (10, seen(A.BUSY, 5.0)), (20, seen(A.PRINTING, 6.0))]
    )
    assert run.names() == ["Started"]
    assert run.job is not None
    assert times(run.job, Moment(20, WALL0 + 20)).print_s == 20.0


# ---------------------------------------------------------------------- dark time


def test_offline_mid_print_then_printing_again_is_the_same_job() -> None:
    run = Run().feed(
        [(0, seen(A.PRINTING, 5.0)), (100, OFF), (400, OFF), (500, seen(A.PRINTING, 30.0))]
    )
    assert run.names() == ["Started"]
    assert run.job is not None
    assert not run.job.dark
    # the printer kept printing while it could not be read
    assert times(run.job, Moment(500, WALL0 + 500)).print_s == 500.0


def test_offline_mid_print_then_idle_ends_interrupted_where_last_seen() -> None:
    run = Run().feed(
        [
            (0, HEATING),
            (60, seen(A.PRINTING, 1.0)),
            (300, seen(A.PRINTING, 20.0)),
            (310, OFF),
            (900, seen(A.READY)),
        ]
    )
    (summary,) = run.summaries()
    assert summary.outcome == "interrupted"
    assert (summary.warmup_s, summary.print_s) == (60.0, 240.0)
    assert summary.ended_wall == WALL0 + 300


@pytest.mark.parametrize(
    "back",
    [seen(A.PRINTING, 10.0), seen(A.PRINTING, 50.0, "b.gx")],
    ids=["progress went backwards", "another file"],
)
def test_after_dark_a_different_print_is_a_new_job(back: Sighting) -> None:
    run = Run().feed(
        [(0, seen(A.PRINTING, 5.0)), (100, seen(A.PRINTING, 30.0)), (110, OFF), (900, back)]
    )
    assert run.names() == ["Started", "Ended", "Started"]
    assert run.summaries()[0].outcome == "interrupted"
    assert run.job is not None
    assert run.job.id == "job-2"


# ---------------------------------------------------------------------- restart

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(OpenJob | None)


def restarted(job: OpenJob | None, at: Moment, *, same_boot: bool = False) -> Run:
    """A new process at ``at``: the job as the journal had it, restored (ids it would make
    itself are new ones)."""
    fresh = Run(ids=(f"after-restart-{n}" for n in range(1, 100)))
    fresh.job = restore(_decoder.decode(_encoder.encode(job)), at, same_boot=same_boot)
    return fresh


def _journaled(script: Script) -> tuple[Run, OpenJob | None]:
    """Feed a script, keeping the job as the journal would: only when a step says persist."""
    run, kept = Run(), None
    for t, sighting in script:
        at = Moment(t, WALL0 + t)
        step = (
            unreachable(run.job, at)
            if sighting is None
            else observe(run.job, sighting, at, make_id=lambda _: next(run.ids))
        )
        run.job = step.job
        run.changes += step.changes
        if step.persist:
            kept = step.job
    return run, kept


@pytest.mark.parametrize(
    ("mono0", "wall_step", "same_boot"),
    [
        (0.0, 0.0, True),
        (0.0, 0.0, False),
        (-1e6, 0.0, False),
        (5e6, 0.0, False),
        (0.0, 2 * 86400.0, True),  # NTP stepped the clock by two days in between
    ],
    ids=["process restart", "restart, boot unknown", "reboot", "later boot", "clock stepped"],
)
def test_restart_mid_print_continues_the_same_job(
    mono0: float, wall_step: float, same_boot: bool
) -> None:
    before, kept = _journaled(
        [(0, HEATING), (90, seen(A.PRINTING, 0.0)), *printing(100, 1000, 1, 40)]
    )
    assert kept is not None
    # killed at t=1005, back at t=1030 on a clock that may have restarted
    after = restarted(kept, Moment(mono0 + 1030, WALL0 + wall_step + 1030), same_boot=same_boot)
    after.feed(
        [*printing(1030, 2000, 41, 99), (2000, seen(A.COMPLETED, 100.0))],
        mono0=mono0,
        wall0=WALL0 + wall_step,
    )
    assert before.names() == ["Started"]
    assert after.names() == ["Ended"]  # no second start
    (summary,) = after.summaries()
    assert summary.job_id == "job-1"
    assert summary.outcome == "completed"
    assert summary.warmup_s == pytest.approx(90.0)
    assert summary.print_s == pytest.approx(2000.0 - 90.0)  # the restart counted as printing
    assert summary.started_wall == WALL0


@pytest.mark.parametrize(
    ("back", "outcome"),
    [(seen(A.READY, 0.0), "interrupted"), (seen(A.COMPLETED, 100.0), "completed")],
)
def test_restart_finding_the_print_over(back: Sighting, outcome: str) -> None:
    before, kept = _journaled(printing(0, 200, 1, 40))
    assert before.names() == ["Started"]
    after = restarted(kept, Moment(300, WALL0 + 300))
    after.feed([(300, back)])
    (summary,) = after.summaries()
    assert (summary.job_id, summary.outcome) == ("job-1", outcome)


def test_restore_with_a_clock_gone_backwards_counts_no_time() -> None:
    _, kept = _journaled(printing(0, 100, 1, 10))
    assert kept is not None
    job = restore(kept, Moment(5.0, WALL0 - 3600))  # the Pi booted with a wrong clock
    assert job is not None
    assert times(job, Moment(5.0, WALL0 - 3600)).print_s == pytest.approx(kept.print_s + 0.0)
    assert restore(None, Moment(0, 0)) is None


def test_persist_on_changes_and_at_checkpoints_only() -> None:
    job = None
    flags = []
    for t, sighting in [
        (0, seen(A.PRINTING, 1.0)),
        (10, seen(A.PRINTING, 2.0)),
        (CHECKPOINT_S + 1, seen(A.PRINTING, 3.0)),
        (CHECKPOINT_S + 2, seen(A.PAUSED, 3.0)),
        (CHECKPOINT_S + 3, seen(A.PAUSED, 3.0)),
    ]:
        step = observe(job, sighting, Moment(t, WALL0 + t), make_id=lambda _: "j")
        job = step.job
        flags.append(step.persist)
    assert flags == [True, False, True, True, False]
    assert unreachable(job, Moment(100, WALL0 + 100)).persist


def test_sighting_of_a_reading_sees_heating() -> None:
    def reading(nozzle: Temperature, bed: Temperature | None) -> Observation:
        machine = MachineStatus(
            machine_status="BUILDING_FROM_SD",
            move_mode="MOVING",
            endstops={},
            flags={},
            led=None,
            current_file="a.gx",
        )
        return Observation(machine, Temperatures((nozzle,), bed), PrintProgress(0, 100))

    assert sighting_of(reading(Temperature(150, 210), Temperature(60, 60))).heating
    assert sighting_of(reading(Temperature(209, 210), Temperature(40, 60))).heating
    assert not sighting_of(reading(Temperature(209, 210), Temperature(59, 60))).heating
    assert not sighting_of(reading(Temperature(25, 0), None)).heating
    assert sighting_of(reading(Temperature(25, 0), None)) == Sighting(
        activity=A.PRINTING, file="a.gx"
    )


# ---------------------------------------------------------------------- properties

readings = st.one_of(
    st.none(),
    st.builds(
        Sighting,
        activity=st.sampled_from(list(Activity)),
        file=st.sampled_from([None, "a.gx", "b.gx"]),
        percent=st.sampled_from([0.0, 1.0, 50.0, 99.0, 100.0]),
        heating=st.booleans(),
    ),
)


@given(st.lists(st.tuples(st.floats(0.0, 1000.0), readings), max_size=40), st.integers(0, 40))
def test_every_start_ends_once_and_times_only_grow(
    steps: list[tuple[float, Sighting | None]], kill_at: int
) -> None:
    job: OpenJob | None = None
    t, changes = 0.0, list[Change]()
    counter = iter(range(10_000))
    last_total = 0.0
    for i, (dt, sighting) in enumerate(steps):
        t += dt
        at = Moment(t, WALL0 + t)
        if i == kill_at:  # a restart: the job goes through JSON and restore
            job = restore(_decoder.decode(_encoder.encode(job)), at)
        step = (
            unreachable(job, at)
            if sighting is None
            else observe(job, sighting, at, make_id=lambda _: f"j{next(counter)}")
        )
        if step.job is not None and job is not None and step.job.id == job.id:
            spent = times(step.job, at)
            assert min(spent.warmup_s, spent.print_s, spent.paused_s) >= 0.0
            total = spent.warmup_s + spent.print_s + spent.paused_s
            # A restore re-anchors through wall-clock seconds near 1.8e9, which carry about
            # 2e-7 s of float precision: "only grows" up to that, not to the last bit.
            assert total >= last_total - 1e-6
            last_total = total
        else:
            last_total = 0.0
        job = step.job
        changes += step.changes
    starts = [c.job_id for c in changes if isinstance(c, Started)]
    ends = [c.summary.job_id for c in changes if isinstance(c, Ended)]
    assert ends == starts[: len(ends)]
    assert len(starts) - len(ends) == (1 if job is not None else 0)
    assert len(set(starts)) == len(starts)
    for summary in (c.summary for c in changes if isinstance(c, Ended)):
        assert min(summary.print_s, summary.warmup_s, summary.paused_s) >= 0.0
        assert summary.ended_wall >= summary.started_wall


# ---------------------------------------------------------------------- uuid7


def test_uuid7_layout() -> None:
    made = uuid7_from(0x0123_4567_89AB, bytes(range(10)))
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert made.int >> 80 == 0x0123_4567_89AB
    with pytest.raises(ValueError, match="10 random bytes"):
        uuid7_from(0, b"short")


def test_uuid7_sorts_by_time_and_differs_within_a_millisecond() -> None:
    early, late = uuid7(WALL0), uuid7(WALL0 + 0.002)
    assert early < late
    assert uuid7(WALL0) != uuid7(WALL0)
    assert uuid.UUID(early).int >> 80 == int(WALL0 * 1000)
