"""The poll loop of one printer: read it, derive events, report a status, and do what the
lease state machine (``schedule.py``) decides, under the connection's turn.

Per cycle: read (on the held link, or a fresh connection), feed the reading to ``events.py``
(the Belief and its events are written to the journal before they are sent), emit one
Status (``report.py``), and move the lease (``schedule.after_reading``: keep the link or
let it go). A failed read moves it with ``schedule.after_failure`` instead: retry quietly,
or report the failure as a state. ``schedule.next_look`` says when the next cycle runs.
A probe (a cycle that opened the connection) also listens before letting go, and what the
link heard unasked moves the sharing state machine (``sharing.py``): another client's
replies, or a connection turned away, make the printer held; while it is, sharing paces
the probes instead.
Commands (``executor.py``) take the same turn between cycles and wake the loop so the next
status shows their effect. A
cycle that fails in a way nobody foresaw (a bug, a full disk under the journal) drops the
link and is retried with a growing pause by a LoopGuard: one printer's surprise never stops
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.config import LimitsSection, PrinterSection
from gateway.errors import (
    PrinterIOError,
    PrinterProtocolError,
    PrinterRefusedError,
    PrinterTurnedAwayError,
    poll_error_reason,
)
from gateway.health import PrinterHealth, Problems, write_printer
from gateway.ids import RecordIds
from gateway.layout import Layout
from gateway.loops import LoopGuard
from gateway.messages import Event, Job, PrinterState, Record, utc_now, utc_text
from services.poller.connection import PrinterConnection
from services.poller.events import Belief, Happening, on_failure, on_reading
from services.poller.executor import CommandExecutor
from services.poller.job_follow import FollowUp, JobFollower, record_maker, tag
from services.poller.job_state import JobState
from services.poller.jobs import Moment
from services.poller.jobs_log import append_jobs
from services.poller.journal import Journal, read_checkpoint, write_checkpoint
from services.poller.link import PrinterLink
from services.poller.observe import observe
from services.poller.protocol import Activity, Observation
from services.poller.report import (
    REPORTED_STATE,
    FailureKind,
    failure_kind,
    printer_info,
    status_of_reading,
    status_without_reading,
)
from services.poller.schedule import (
    LeaseState,
    Look,
    Timing,
    Tuning,
    after_failure,
    after_reading,
    next_look,
)
from services.poller.sharing import SharingState, heard, lost, turned_away
from services.poller.sharing import next_look as sharing_look

logger = logging.getLogger(__name__)
FAILURE_LOG_GAP_S = 300.0
T = TypeVar("T")


class PrinterWatcher:
    """One printer's poll loop; its commands go to ``commands`` (a CommandExecutor)."""

    def __init__(
        self,
        printer: PrinterSection,
        limits: LimitsSection,
        gateway_id: str,
        journal: Journal,
        emit: Callable[[Record], object],
        tuning: Tuning | None = None,
        layout: Layout | None = None,
        problems: Problems | None = None,
    ) -> None:
        self.printer = printer
        self.journal = journal
        self.tuning = tuning = tuning or Tuning()
        self.timing = Timing(printer.poll_interval_s, printer.probe_interval_s, tuning)
        self.connection = PrinterConnection(
            printer, tuning.connect_timeout_s, tuning.request_timeout_s
        )
        self._wake = asyncio.Event()
        self.commands = CommandExecutor(
            self.connection,
            journal,
            limits,
            verify_within_s=tuning.verify_within_s,
            after_each=self._wake.set,
        )
        self._emit = emit
        self._ids = RecordIds(gateway_id, printer.id)
        saved = journal.state
        self._jobs = JobFollower(
            JobState(
                job=saved.job,
                estimator=saved.estimator,
                boot_id=saved.boot_id,
                history=saved.history,
            ),
            boot_id(),
            _moment(),
            read_checkpoint(layout.job_checkpoint(printer.id)) if layout is not None else None,
        )
        self._make_record = record_maker(self._ids.next, printer.id, utc_now)
        self._checkpoint_failing = False
        self.lease = LeaseState()
        self.sharing = SharingState()
        self._logged_failure: tuple[type | None, float] = (None, 0.0)
        self._unreachable_since: float | None = None
        self._last_percent = 0.0
        self.state: PrinterState | None = None
        self.last_contact: str | None = None
        self.detail: str | None = None  # why the printer could not be read, while it cannot
        self.poll_errors: dict[str, int] = {}  # failed reads by reason, for the metrics
        self.layout = layout
        self._guard = LoopGuard(
            f"printer {printer.id} polling",
            problems or Problems(None, "poller"),
            cap_s=max(1.0, printer.probe_interval_s),
        )

    @property
    def lease_held(self) -> bool:
        """Whether the printer's connection is open right now."""
        return self.connection.held

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop`; the link is closed on the way out."""
        for event in self.journal.state.pending:  # derived before a restart, not yet acked
            self._emit(event)
        try:
            while not stop.is_set():
                try:
                    async with self.connection.turn:
                        look = await _unless_stopped(self._cycle(), stop)
                    if look is None:
                        break
                    delay = look.next_delay_s()
                    self._publish_health()
                except Exception as err:  # noqa: BLE001 - one printer's surprise, not the process's
                    await self.connection.close()
                    delay = self._guard.failed(err)
                else:
                    self._guard.succeeded()
                self._wake.clear()
                await _sleep_until(delay, stop, self._wake)
        finally:
            self._guard.ended(stop.is_set())
            async with self.connection.turn:
                await self.connection.close()
            await self.settle_acks_at_exit()

    async def settle_acks_at_exit(self) -> None:
        """Write the acknowledgements noted since the last cycle (a failure only means the
        uplink gets those events once more, and dedupes them)."""
        try:
            await self.journal.settle_acks()
        except OSError as err:
            logger.warning("printer %s: acks not written at exit: %s", self.printer.id, err)

    def acknowledged(self, ids: set[str]) -> None:
        """The uplink made these records durable."""
        self.journal.acknowledge(ids)

    # ------------------------------------------------------------------ one cycle

    async def _cycle(self) -> Look:
        """One look at the printer; when to look again."""
        await self.journal.settle_acks()
        try:
            probe = not self.connection.held
            link = await self.connection.open()
            observation = await observe(link, self.tuning.request_timeout_s)
            if probe:
                await self._listen(link)
        except (PrinterIOError, PrinterProtocolError) as err:
            foreign, _ = self.connection.hearing()  # what it heard before it failed counts
            await self.connection.close()
            if foreign > 0 and not self.sharing.held:
                # Another client's replies were in the way: held, paced by sharing, never
                # the quick retries of a printer that merely glitched.
                self.sharing = heard(self.sharing, foreign, 0.0, self.tuning.listening)
            await self._after_failure(err)
        else:
            foreign, covered = self.connection.hearing()
            self.sharing = heard(self.sharing, foreign, covered, self.tuning.listening)
            await self._after_reading(observation)
            if not self.lease.hold_link:
                await self.connection.close()
        job_active = self.journal.state.belief.job_phase != "none"
        if not self.lease.hold_link:
            held_look = sharing_look(self.sharing, self.timing.probe_interval_s)
            if held_look is not None:
                return held_look
        return next_look(self.lease, job_active, self.timing)

    async def _listen(self, link: PrinterLink) -> None:
        """Keep a probe's connection for the rest of its listening time, to hear another
        client's replies leaking in (the cost is in docs/protocol.md, "Another client")."""
        budget = self.sharing.listen_s(self.tuning.listening)
        if self.sharing.held:  # the whole of it, after the reads: quiet is what ends HELD
            await link.listen(budget)
            return
        # Free: the rest of the budget since the connect, but never less than a minimum,
        # so a slow printer's reads do not leave no listening at all.
        left = budget - (time.monotonic() - link.opened_at)
        await link.listen(max(left, self.tuning.listening.least_listen_s))

    async def _after_reading(self, observation: Observation) -> None:
        self._unreachable_since = None
        self.last_contact = utc_text()  # it answered, held by another client or not
        held = self.sharing.held
        self.detail = (  # the reason of an `error` or held state, for `status`
            f"unknown MachineStatus {observation.machine.machine_status!r}"
            if observation.activity is Activity.UNKNOWN
            else "another client's replies leak into ours (it polls the printer)"
            if held
            else None
        )
        follow = self._jobs.reading(observation, _moment(), self._make_record)
        belief, happenings = on_reading(
            self.journal.state.belief, observation, self._last_percent, utc_text(), held
        )
        try:
            await self._record_events(belief, tag(happenings, follow), follow)
        except BaseException:
            self._jobs.undo(follow)
            raise
        job_active = belief.job_phase != "none"
        self._last_percent = observation.progress.percent if job_active else 0.0
        status = status_of_reading(
            record_id=self._ids.next(),
            printer_id=self.printer.id,
            ts=utc_now(),
            observation=observation,
            job_active=job_active,
            info=printer_info(self.printer.name, self.connection.info),
            held=held,
        )
        if follow.progress is not None:
            status = msgspec.structs.replace(status, job=follow.progress)
        self._set_state(status.state)
        self._emit(status)
        self.lease = after_reading(observation.activity, job_active)

    async def _after_failure(self, err: Exception) -> None:
        now = time.monotonic()
        reason = poll_error_reason(err)
        self.poll_errors[reason] = self.poll_errors.get(reason, 0) + 1
        if self._another_client(err):
            await self._turned_away(err, now)
            return
        self.sharing = lost()
        self.lease = after_failure(self.lease, self.timing)
        if self._unreachable_since is None:
            self._unreachable_since = now
        if self.lease.failures == 1 and self._worth_logging(err, now):
            logger.info("printer %s: read failed (%s), retrying", self.printer.id, err)
        if self.lease.report:
            await self._report_failure(err, failure_kind(err), now)

    def _another_client(self, err: Exception) -> bool:
        """Refused or turned away; or, while already held, any failure of that kind (a
        reset, a starved reply): paced by sharing, never retried quickly."""
        if isinstance(err, PrinterRefusedError | PrinterTurnedAwayError):
            return True
        return self.sharing.held and failure_kind(err) == "held"

    async def _turned_away(self, err: Exception, now: float) -> None:
        self.sharing = turned_away(self.sharing)
        self.lease = LeaseState()  # no link, no quick retries: sharing paces the looks
        if self._unreachable_since is None:
            self._unreachable_since = now
        if self.sharing.held:
            await self._report_failure(err, "held", now)
        elif self._worth_logging(err, now):
            logger.info(
                "printer %s: turned away (%s); looking again in %g s",
                self.printer.id,
                err,
                self.timing.probe_interval_s,
            )

    async def _report_failure(self, err: Exception, kind: FailureKind, now: float) -> None:
        """The printer could not be read and that is now news: its state, any event, and
        an open job goes dark (only now: one quick retry's failure is not the printer gone,
        and must not turn a cancel seen a moment later into an interrupted print)."""
        self.detail = str(err)
        follow = self._jobs.failure(_moment())
        belief, happenings = self.journal.state.belief, list[Happening]()
        if kind != "error":  # an `error` printer answers: reachable, so no connectivity event
            belief, happenings = on_failure(
                self.journal.state.belief,
                kind,
                now - (self._unreachable_since or now),
                self.tuning.lost_grace_s,
            )
        try:
            await self._record_events(belief, tag(happenings, follow), follow)
        except BaseException:
            self._jobs.undo(follow)
            raise
        state = REPORTED_STATE[kind]
        if state != self.state:
            logger.warning("printer %s: %s (%s)", self.printer.id, state, err)
        self._set_state(state)
        self._emit(
            status_without_reading(
                record_id=self._ids.next(),
                printer_id=self.printer.id,
                ts=utc_now(),
                state=state,
                info=printer_info(self.printer.name, self.connection.info),
            )
        )

    def _worth_logging(self, err: Exception, now: float) -> bool:
        """A streak's first failure is logged, but a printer that alternates good and bad
        replies starts a streak every few seconds: the same kind of failure is logged again
        only after FAILURE_LOG_GAP_S."""
        kind = type(err)
        if kind is self._logged_failure[0] and now - self._logged_failure[1] < FAILURE_LOG_GAP_S:
            return False
        self._logged_failure = (kind, now)
        return True

    def _set_state(self, state: PrinterState) -> None:
        if state != self.state:
            logger.info("printer %s: %s -> %s", self.printer.id, self.state or "start", state)
            self.state = state
        if state not in ("offline", "held_by_other_client"):
            self.last_contact = utc_text()

    def _publish_health(self) -> None:
        """Leave the printer's state, lease and last contact for ``printer-gateway status``."""
        if self.layout is not None and self.state is not None:
            health = PrinterHealth(
                self.printer.id,
                self.state,
                self.lease_held,
                self.last_contact,
                self.detail,
                sharing=self.sharing.sharing.value,
                connects_last_minute=self.connection.attempts_last_minute(),
                poll_errors=dict(self.poll_errors),
            )
            write_printer(self.layout, health)

    async def _record_events(
        self, belief: Belief, happenings: list[Happening], follow: FollowUp | None = None
    ) -> None:
        """Make the events (and the job records and job state of `follow`) durable in one
        journal write, then send them; nothing is written when nothing changed."""
        records: list[Job] = follow.records if follow is not None else []
        job_state = follow.state if follow is not None else None
        if (
            not happenings
            and not records
            and job_state is None
            and belief == self.journal.state.belief
        ):
            return
        ts = utc_now()
        events: list[Event | Job] = [
            Event(
                id=self._ids.next(),
                printer_id=self.printer.id,
                ts=ts,
                event=happening.event,
                file=happening.file,
                detail=happening.detail,
            )
            for happening in happenings
        ]
        events += records  # after the print's end event
        checkpoint_only = not events and belief == self.journal.state.belief
        if checkpoint_only and follow is not None and follow.checkpoint and job_state:
            self._checkpoint(job_state)  # tmpfs: a minute's times, no SD card write
            return
        # Durable before anyone hears of them, with the job as it stands after them.
        try:
            await self.journal.record_events(belief, events, job_state)
        except OSError as err:
            if not checkpoint_only:
                raise  # events not durable: the cycle fails, the next reading derives them
            # Only the job's state: right in memory, written again at its next change. A
            # full disk must not stop a printing printer's statuses.
            if not self._checkpoint_failing:
                logger.warning("printer %s: job state not written: %s", self.printer.id, err)
            self._checkpoint_failing = True
            return
        self._checkpoint_failing = False
        if follow is not None:
            follow.written = True
        if records and self.layout is not None:
            append_jobs(self.layout.jobs_log(self.printer.id), records)
        for record in events:
            if isinstance(record, Event):
                logger.info(
                    "printer %s: event %s%s",
                    self.printer.id,
                    record.event,
                    f" ({record.file})" if record.file else "",
                )
            else:
                logger.info(
                    "printer %s: print %s %s after %.0f s printing",
                    self.printer.id,
                    record.file or "",
                    record.outcome,
                    record.print_s,
                )
            self._emit(record)

    def _checkpoint(self, state: JobState) -> None:
        """The job's periodic checkpoint (see ``journal.write_checkpoint``); a failure is
        logged once and costs at most a minute of a print's times after a restart."""
        if self.layout is None:
            return
        try:
            write_checkpoint(self.layout.job_checkpoint(self.printer.id), state)
        except OSError as err:
            if not self._checkpoint_failing:
                logger.warning("printer %s: job checkpoint not written: %s", self.printer.id, err)
            self._checkpoint_failing = True
        else:
            self._checkpoint_failing = False


def boot_id() -> str:
    """This boot's id (a job's monotonic times belong to one boot); "" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _moment() -> Moment:
    return Moment(time.monotonic(), time.time())


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Run work to its end, or cancel it when stop is set first (a hung printer must not
    hold up shutdown); None when it was cancelled."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _sleep_until(delay_s: float, stop: asyncio.Event, wake: asyncio.Event) -> None:
    """Sleep delay_s, or less if stop or wake is set."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
