"""The lease state machine of one printer: when to hold its TCP connection, what to report.

Theory of operation
-------------------
The printer serves one controlling client well, and the vendor slicer needs the connection
too, so the gateway *leases* it:

* **idle** (no link): every ``probe_interval_s`` connect (short timeout), read M115, M119,
  M105, M27 and close again at once. Read-only, so no ``~M601``. A probe holds the socket
  for a few round trips only.
* **watching** (link held): the printer is printing or paused (or busy inside a job). Keep
  the one connection and read M119, M105, M27 every ``poll_interval_s``. A paused print is
  watched at the same cadence. When the job ends (completed, cancelled, back to ready) the
  end event is emitted and the link is closed in the same cycle.
* **trouble**: a failed read closes the link and is retried quickly with a jittered backoff,
  without a status. Only after ``retry_attempts`` consecutive failures is the printer
  reported: connect timeouts / no route mean **offline** (temperatures and progress null,
  never stale); refused connections, starved replies, resets and garbled or interleaved
  replies mean another client has the printer: **held_by_other_client**; framed replies
  whose content cannot be read (a value outside its plausible range, a reply that never
  ends) mean the printer answers but not sensibly: **error**, with the reason in the
  printer's health file, and no connectivity event (it is reachable). Then the watcher
  backs off to the probe interval (a job in progress is re-checked faster, so the printer's
  return and ``printer_lost_while_printing`` after ``lost_grace_s`` are seen in time).
  Every state change is logged once; retries are not.

Commands run between cycles under the same lock, on the held link or on a short lease of
their own, and wake the loop so the next status shows their effect. Events come from
``events.py`` and are written to the journal before they are sent. A cycle that fails in a
way nobody foresaw (a bug, a full disk under the journal) drops the link and is retried
with a growing pause by a LoopGuard: one printer's surprise never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from gateway.config import LimitsSection, PrinterSection
from gateway.errors import (
    PrinterIOError,
    PrinterProtocolError,
    PrinterUnreachableError,
    ReplyTooLargeError,
    UnexpectedPayloadError,
)
from gateway.health import PrinterHealth, Problems, write_printer
from gateway.ids import RecordIds
from gateway.layout import Layout
from gateway.loops import LoopGuard, doubling
from gateway.messages import Action, Event, PrinterState, Record, utc_now, utc_text
from services.poller.commands import Verdict, execute_action, verify_only
from services.poller.events import Belief, Happening, on_failure, on_reading
from services.poller.journal import CommandOutcome, Journal
from services.poller.link import PrinterLink
from services.poller.observe import (
    Observation,
    observe,
    printer_info,
    printer_state,
    read_info,
    status_from_observation,
    status_without_reading,
)
from services.poller.protocol import Activity, MachineInfo

logger = logging.getLogger(__name__)
_KEEP_LEASE = (Activity.PRINTING, Activity.PAUSED)
FAILURE_LOG_GAP_S = 300.0


def jittered(base_s: float) -> float:
    """A delay between half and all of base_s, so retries of many printers spread out."""
    return base_s * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Tuning:
    """Timing knobs that are not in the config contract (tests shorten them)."""

    connect_timeout_s: float = 3.0
    retry_attempts: int = 3
    retry_backoff_s: float = 0.25
    retry_backoff_cap_s: float = 2.0
    lost_grace_s: float = 60.0
    active_recheck_s: float = 5.0
    verify_within_s: float = 5.0
    request_timeout_s: float = 5.0


class PrinterWatcher:
    """Owns one printer's lease: polls, reports statuses and events, runs commands."""

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
        self.limits = limits
        self.journal = journal
        self.tuning = tuning or Tuning()
        self._emit = emit
        self._ids = RecordIds(gateway_id, printer.id)
        self._link: PrinterLink | None = None
        self._info: MachineInfo | None = None
        self._busy = asyncio.Lock()
        self._wake = asyncio.Event()
        self._failures = 0
        self._logged_failure: tuple[type | None, float] = (None, 0.0)
        self._unreachable_since: float | None = None
        self._last_percent = 0.0
        self._commands: dict[str, asyncio.Task[Verdict]] = {}
        self.state: PrinterState | None = None
        self.last_contact: str | None = None
        self.detail: str | None = None  # why the printer could not be read, while it cannot
        self.layout = layout
        self._guard = LoopGuard(
            f"printer {printer.id} polling",
            problems or Problems(None, "poller"),
            cap_s=max(1.0, printer.probe_interval_s),
        )

    @property
    def lease_held(self) -> bool:
        """Whether the printer's connection is open right now."""
        return self._link is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop`; the link is closed on the way out."""
        for event in self.journal.state.pending:  # derived before a restart, not yet acked
            self._emit(event)
        try:
            while not stop.is_set():
                try:
                    async with self._busy:
                        delay = await _unless_stopped(self._cycle(), stop)
                    if delay is None:
                        break
                    self._publish_health()
                except Exception as err:  # noqa: BLE001 - one printer's surprise, not the process's
                    await self._drop_link()
                    delay = self._guard.failed(err)
                else:
                    self._guard.succeeded()
                self._wake.clear()
                await _sleep_until(delay, stop, self._wake)
        finally:
            self._guard.ended(stop.is_set())
            async with self._busy:
                await self._drop_link()

    def acknowledged(self, ids: set[str]) -> None:
        """The uplink made these records durable."""
        self.journal.acknowledge(ids)

    # ------------------------------------------------------------------ one cycle

    async def _cycle(self) -> float:
        try:
            observation = await self._read()
        except (PrinterIOError, PrinterProtocolError) as err:
            await self._drop_link()
            return self._after_failure(err)
        self._failures, self._unreachable_since = 0, None
        self.detail = (  # the reason of an `error` state, for `status`
            f"unknown MachineStatus {observation.machine.machine_status!r}"
            if observation.activity is Activity.UNKNOWN
            else None
        )
        belief, happenings = on_reading(
            self.journal.state.belief, observation, self._last_percent, utc_text()
        )
        self._record_events(belief, happenings)
        job_active = belief.job_phase != "none"
        self._last_percent = observation.progress.percent if job_active else 0.0
        state = printer_state(observation, job_active)
        self._set_state(state)
        self._emit(
            status_from_observation(
                record_id=self._ids.next(),
                printer_id=self.printer.id,
                ts=utc_now(),
                observation=observation,
                state=state,
                info=printer_info(self.printer.name, self._info),
                file=observation.machine.current_file
                if job_active or state == "completed"
                else None,
            )
        )
        if observation.activity in _KEEP_LEASE or (
            job_active and observation.activity is Activity.BUSY
        ):
            return self.printer.poll_interval_s
        await self._drop_link()
        return (
            jittered(self.printer.probe_interval_s)
            if not job_active
            else self.printer.poll_interval_s
        )

    async def _read(self) -> Observation:
        link = await self._ensure_link()
        return await observe(link, self.tuning.request_timeout_s)

    async def _ensure_link(self) -> PrinterLink:
        if self._link is None:
            link = await PrinterLink.open(
                self.printer.host, self.printer.port, self.tuning.connect_timeout_s
            )
            kept = False
            try:  # closed on every way out but success, cancellation included
                self._info = await read_info(link, self.tuning.request_timeout_s)
                kept = True
            finally:
                if not kept:
                    await link.close()
            self._link = link
        return self._link

    async def _drop_link(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            await link.close()

    def _after_failure(self, err: Exception) -> float:
        now = time.monotonic()
        self._failures += 1
        if self._unreachable_since is None:
            self._unreachable_since = now
        if self._failures == 1 and self._worth_logging(err, now):
            logger.info("printer %s: read failed (%s), retrying", self.printer.id, err)
        if self._failures < self.tuning.retry_attempts:
            tuning = self.tuning
            return jittered(
                doubling(tuning.retry_backoff_s, self._failures - 1, tuning.retry_backoff_cap_s)
            )
        self.detail = str(err)
        state: PrinterState
        if isinstance(err, UnexpectedPayloadError | ReplyTooLargeError):
            state = "error"  # it answers, but not sensibly: reachable, so no connectivity event
        else:
            verdict: Literal["offline", "held"] = (
                "offline" if isinstance(err, PrinterUnreachableError) else "held"
            )
            belief, happenings = on_failure(
                self.journal.state.belief,
                verdict,
                now - self._unreachable_since,
                self.tuning.lost_grace_s,
            )
            self._record_events(belief, happenings)
            state = "offline" if verdict == "offline" else "held_by_other_client"
        if state != self.state:
            logger.warning("printer %s: %s (%s)", self.printer.id, state, err)
        self._set_state(state)
        self._emit(
            status_without_reading(
                record_id=self._ids.next(),
                printer_id=self.printer.id,
                ts=utc_now(),
                state=state,
                info=printer_info(self.printer.name, self._info),
            )
        )
        if self.journal.state.belief.job_phase != "none":
            return jittered(min(self.tuning.active_recheck_s, self.printer.probe_interval_s))
        return jittered(self.printer.probe_interval_s)

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
                self.printer.id, self.state, self.lease_held, self.last_contact, self.detail
            )
            write_printer(self.layout, health)

    def _record_events(self, belief: Belief, happenings: list[Happening]) -> None:
        if not happenings and belief == self.journal.state.belief:
            return
        ts = utc_now()
        events = [
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
        self.journal.record_events(belief, events)  # durable before anyone hears of them
        for event in events:
            logger.info(
                "printer %s: event %s%s",
                self.printer.id,
                event.event,
                f" ({event.file})" if event.file else "",
            )
            self._emit(event)

    # ------------------------------------------------------------------ commands

    async def run_command(
        self, command_id: str, action: Action, deadline: float | None = None
    ) -> Verdict:
        """Run a command once per id: a repeated id gets the earlier verdict, untouched printer.
        A command that cannot start before `deadline` (monotonic) is answered ``expired``."""
        remembered = self.journal.outcome(command_id)
        if remembered is not None:
            return Verdict(remembered.outcome, remembered.detail)
        task = self._commands.get(command_id)
        if task is None:
            task = asyncio.create_task(self._run_once(command_id, action, deadline))
            self._commands[command_id] = task
            task.add_done_callback(lambda _: self._commands.pop(command_id, None))
        return await asyncio.shield(task)

    async def _run_once(self, command_id: str, action: Action, deadline: float | None) -> Verdict:
        async with self._busy:
            if deadline is not None and time.monotonic() >= deadline:
                verdict = Verdict(
                    "expired", "deadline passed before the command could start; not sent"
                )
                self.journal.remember(CommandOutcome(command_id, verdict.outcome, verdict.detail))
                return verdict
            short_lease = self._link is None
            try:
                link = await self._ensure_link()
            except (PrinterIOError, PrinterProtocolError) as err:
                verdict = Verdict("rejected", f"printer not reachable: {err}")
            else:
                try:
                    if self.journal.was_sending(command_id):
                        verdict = await verify_only(link, action)
                    else:
                        verdict = await execute_action(
                            link,
                            action,
                            self.limits,
                            verify_within_s=self.tuning.verify_within_s,
                            before_sending=lambda: self.journal.mark_sending(command_id),
                        )
                except (PrinterIOError, PrinterProtocolError) as err:
                    await self._drop_link()
                    verdict = Verdict(
                        "failed", f"printer connection failed during the command: {err}"
                    )
                if short_lease:
                    await self._drop_link()
        self.journal.remember(CommandOutcome(command_id, verdict.outcome, verdict.detail))
        logger.info(
            "printer %s: command %s -> %s (%s)",
            self.printer.id,
            command_id,
            verdict.outcome,
            verdict.detail,
        )
        self._wake.set()
        return verdict


async def _unless_stopped(work: Coroutine[Any, Any, float], stop: asyncio.Event) -> float | None:
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
