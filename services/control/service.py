"""``printer-gateway run control``: commands from the API to the pollers, exactly once.

Flow per command id (ledger states in brackets): fetched and admitted once [received];
checked (known printer, known type and params, within ``[limits]``) or ``rejected``; past
its deadline before it could be handed on -> ``expired``; else handed to the printer's
poller [handed] with the seconds it has left, asked again with the same id until the
poller answers (the poller refuses to *start* it past that deadline) [answered]; the one
``command_result`` record (id ``ids.result_id``) goes to the uplink's
durable queue and is re-sent until acknowledged [reported].

Fetching runs in a daemon thread (``requests`` blocks for the whole long poll), so SIGTERM
ends the process promptly even in the middle of one. Ledger writes run on their own worker
thread (``LedgerThread``), in order, so a commit's fsync never stalls the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
import zmq.asyncio

from gateway import runner
from gateway.bus import (
    IDLE_POLL_S,
    IDLE_WAIT_S,
    Execute,
    InjectReceiver,
    RecordSender,
    request_command,
    wake_on,
)
from gateway.clock import boot_seconds
from gateway.commands import Action, Answer, limit_violation, parse_action, result_record
from gateway.config import Config, Token
from gateway.health import REPORT_AFTER_S, Problems
from gateway.http import AUTH_RETRY_S
from gateway.ids import command_of_result
from gateway.layout import Layout
from gateway.loops import Backoff, LoopGuard, doubling, guarded_loop, guarded_thread_loop
from gateway.messages import Command, utc_now
from gateway.redaction import safe
from services.control.ledger import Entry, Ledger, LedgerThread
from services.control.source import (
    AuthRefused,
    CommandSource,
    Fetched,
    FetchError,
    InvalidCommand,
    seconds_until,
)

logger = logging.getLogger(__name__)
WAIT_S = 25.0
ANSWER_TIMEOUT_S = 15.0  # a command's read-back takes up to ~5 s on the poller
EMPTY_POLL_GAP_S = 1.0
SILENT_POLLER_S = 60.0
ROUTES_PER_PRINTER = 4


def check(command: Command, config: Config) -> Action | str:
    """The command's action, or why it is rejected (nothing rejected ever reaches a printer)."""
    if command.printer_id not in {printer.id for printer in config.printers}:
        return f"unknown printer {command.printer_id!r}"
    try:
        action = parse_action(command)
    except msgspec.ValidationError as err:
        return f"invalid {command.type!r} command: {err}"
    return limit_violation(action, config.limits) or action


class LatestAnswer:
    """The newest command list, handed from the fetch thread to the event loop.

    The API lists every command until its result arrives, so a newer answer supersedes an
    older one: only the latest is kept (memory is one answer, however far the loop is
    behind), and the loop admits what it has not seen in the answer it took before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._answer: Fetched | None = None
        self.ready = asyncio.Event()

    def put(self, answer: Fetched) -> None:
        """From the fetch thread: replace the answer and wake the loop."""
        with self._lock:
            self._answer = answer
        with contextlib.suppress(RuntimeError):  # the loop is gone: we are stopping
            self._loop.call_soon_threadsafe(self.ready.set)

    def take(self) -> Fetched | None:
        """From the loop: the newest answer not taken yet."""
        self.ready.clear()
        with self._lock:
            answer, self._answer = self._answer, None
        return answer


class FetchThread(threading.Thread):
    """Long-polls the API and hands each answer to the event loop."""

    def __init__(
        self, source: CommandSource, latest: LatestAnswer, problems: Problems | None = None
    ) -> None:
        super().__init__(name="control-fetch", daemon=True)
        self.source, self.latest = source, latest
        self.problems = problems or Problems(None, "control")
        self.stopping = threading.Event()
        self.backoff = Backoff(base_s=1.0, cap_s=60.0)
        self.guard = LoopGuard("command fetching", self.problems)
        self._failing_since: float | None = None
        self._previous: frozenset[str] = frozenset()
        self._idle_answers = 0

    def run(self) -> None:
        """Fetch until stopped; failures back off, a bug is logged and retried, never fatal."""
        guarded_thread_loop(self.guard, self._fetch_once, self.stopping)

    def _fetch_once(self) -> float:
        """One long poll; the pause before the next one."""
        began = boot_seconds()
        try:
            fetched = self.source.fetch()
        except AuthRefused as err:
            self._failed(err)
            self.problems.report("api auth", f"the API refuses the token ({err})")
            return min(self.backoff.next_delay(), AUTH_RETRY_S)
        except FetchError as err:
            self._failed(err)
            self.problems.clear("api auth")  # the latest failure was not a refused token
            return self.backoff.next_delay()
        if self._failing_since is not None:
            logger.info("fetching commands works again")
            self._failing_since = None
        self.problems.clear("api auth")
        self.problems.clear("commands")
        self.backoff.reset()
        self.latest.put(fetched)
        nothing_new = fetched.ids <= self._previous  # commands only left the list, or none
        self._previous = fetched.ids
        if fetched.capped:
            return EMPTY_POLL_GAP_S  # a backlog of thousands: a second more costs nothing
        if nothing_new and boot_seconds() - began < self.source.wait_s / 2:
            # Nothing new came back at once: a server that ignores `wait`, or commands we
            # hold already, listed until their results arrive. Do not spin on the API:
            # wait a little, longer each time (a new command is still picked up fast).
            self._idle_answers += 1
            return doubling(0.05, self._idle_answers - 1, EMPTY_POLL_GAP_S)
        self._idle_answers = 0
        return 0.0

    def _failed(self, err: FetchError) -> None:
        now = boot_seconds()
        if self._failing_since is None:
            self._failing_since = now
            logger.warning("fetching commands failed (%s): retrying with backoff", err)
        elif now - self._failing_since >= REPORT_AFTER_S:
            self.problems.report("commands", f"commands cannot be fetched: {err}")


class Control:
    """Admits, checks, routes and reports commands."""

    def __init__(
        self,
        config: Config,
        token: Token,
        ctx: zmq.asyncio.Context,
        problems: Problems | None = None,
    ) -> None:
        self.config = config
        self.layout = Layout.of(config)
        self.ctx = ctx
        self.problems = problems or Problems(None, "control")
        self.ledger = Ledger(self.layout.ledger_db)
        self.db = LedgerThread(self.ledger)  # every ledger write, off the event loop
        self.source = CommandSource(config.api.url, token.secret, config.gateway.id, WAIT_S)
        self.sender = RecordSender(ctx, self.layout.records_endpoint, self._acknowledged)
        self.injected = InjectReceiver(ctx, self.layout.control_endpoint)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._taken: frozenset[str] = frozenset()  # ids in the answer admitted last
        self._slots: dict[str, asyncio.Semaphore] = {}  # per configured printer

    async def run(self, stop: asyncio.Event) -> None:
        """Resume what a previous run left, then fetch and serve until stop."""
        self._stop = stop
        for entry in await self.db(self.ledger.in_state, "answered"):
            self._report(entry)
        for entry in await self.db(self.ledger.in_state, "received", "handed"):
            self._start(entry)
        latest = LatestAnswer(asyncio.get_running_loop())
        waker = asyncio.create_task(wake_on(stop, latest.ready))  # a stop ends the idle wait
        fetcher = FetchThread(self.source, latest, self.problems)
        if self.config.api.flavor == "v1":  # the legacy API has no command list: 418s only
            fetcher.start()
        sending = asyncio.create_task(self.sender.run(stop, self.problems))
        injected = asyncio.create_task(
            guarded_loop(LoopGuard("injected commands", self.problems), self._take_injected, stop)
        )
        try:
            await guarded_loop(
                LoopGuard("command admission", self.problems),
                lambda: self._take_latest(latest),
                stop,
            )
        finally:
            waker.cancel()
            fetcher.stopping.set()
            self.source.close()
            await injected
            self.injected.close()
            if self._tasks:
                await asyncio.wait(self._tasks.values(), timeout=5)
            # A command still waiting on a silent poller stays `handed` in the ledger and is
            # asked again by the next run; its task ends now, closing its socket (a socket
            # left open would keep the ZeroMQ context from terminating).
            leftover = list(self._tasks.values())
            for task in leftover:
                task.cancel()
            await asyncio.gather(*leftover, return_exceptions=True)
            await sending
            await self.sender.flush(1.0)
            self.sender.close()
            await asyncio.to_thread(self.db.close)

    async def _take_latest(self, latest: LatestAnswer) -> None:
        """Admit what the newest command list holds that the one before did not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(latest.ready.wait(), IDLE_WAIT_S)
        answer = latest.take()
        if answer is None:
            return
        admissions: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            *((c.id, functools.partial(self._admit, c, answer)) for c in answer.commands),
            *((c.id, functools.partial(self._admit_invalid, c)) for c in answer.invalid),
        ]
        failed: set[str] = set()
        for command_id, admit in admissions:
            if command_id in self._taken:
                continue
            try:
                await admit()
            except Exception:  # one command's trouble (a ledger write) must not stop the rest
                logger.exception(
                    "command %s: could not be admitted, next answer retries", command_id
                )
                failed.add(command_id)
        self._taken = answer.ids - failed

    async def _take_injected(self) -> None:
        """Commands other services hand in (the legacy flavor's 418 -> pause)."""
        command = await self.injected.receive(IDLE_POLL_S)
        if command is not None:
            await self._admit(command, Fetched((command,), None))

    async def _admit_invalid(self, item: InvalidCommand) -> None:
        """A listed command that cannot be read: admitted once, answered ``rejected``."""
        placeholder = Command(id=item.id, printer_id=item.printer_id or "-", type=item.type or "-")
        entry, new = await self.db(self.ledger.admit, placeholder, self.ledger.deadline_after(0))
        if new:
            await self._answer(Answer(item.id, "rejected", item.reason))
        elif entry.state == "answered":
            self._report(entry)

    async def _admit(self, command: Command, fetched: Fetched) -> None:
        left = seconds_until(
            command.expires_at, fetched.server_time, self.config.control.command_ttl_s
        )
        entry, new = await self.db(self.ledger.admit, command, self.ledger.deadline_after(left))
        if new:
            logger.info("command %s: %s for %s", command.id, command.type, command.printer_id)
            self._start(entry)
        elif entry.state == "answered":
            self._report(entry)  # the API lists it until the result arrives: make sure it goes

    def _start(self, entry: Entry) -> None:
        if entry.command.id not in self._tasks:
            task = asyncio.create_task(self._settle(entry))
            self._tasks[entry.command.id] = task
            task.add_done_callback(lambda _: self._tasks.pop(entry.command.id, None))

    async def _settle(self, entry: Entry) -> None:
        try:
            await self._settle_checked(entry)
        except Exception as err:
            logger.exception("command %s: unexpected error", entry.command.id)
            await self._answer(
                Answer(entry.command.id, "failed", f"internal error in control: {err}")
            )

    async def _settle_checked(self, entry: Entry) -> None:
        checked = check(entry.command, self.config)
        if isinstance(checked, str):
            await self._answer(Answer(entry.command.id, "rejected", checked))
            return
        # A few commands per printer in flight (its poller runs them one at a time anyway):
        # thousands of open commands wait here, not as thousands of sockets.
        slot = self._slots.setdefault(
            entry.command.printer_id, asyncio.Semaphore(ROUTES_PER_PRINTER)
        )
        async with slot:
            if entry.state == "received" and self.ledger.expired(entry):
                await self._answer(
                    Answer(
                        entry.command.id,
                        "expired",
                        "not executed: its time to live ran out before it could be sent",
                    )
                )
                return
            answer = await self._route(entry, checked)
        if answer is not None:
            await self._answer(answer)

    async def _route(self, entry: Entry, action: Action) -> Answer | None:
        """Ask the poller (same id every time) until it answers; None when stopping first.

        Never delivered and past the deadline: ``expired`` (it cannot have run). Delivered
        (or possibly, before a restart) and unanswered: keep asking; the poller answers from
        its journal, or ``expired`` if it never started it. Only a poller silent for
        ``SILENT_POLLER_S`` past the deadline ends in ``failed``.
        """
        endpoint = self.layout.poller_endpoint(entry.command.printer_id)
        maybe_delivered = entry.state == "handed"
        if not maybe_delivered:
            await self.db(self.ledger.handed, entry.command.id)
        while not self._stop.is_set():
            request = Execute(entry.command.id, action, ttl_s=self.ledger.seconds_left(entry))
            reply = await request_command(
                self.ctx, endpoint, request, timeout_s=ANSWER_TIMEOUT_S, attempts=1
            )
            if reply.answer is not None:
                return reply.answer
            maybe_delivered = maybe_delivered or reply.sent
            command_id = entry.command.id
            if self.ledger.expired(entry) and not maybe_delivered:
                return Answer(
                    command_id,
                    "expired",
                    "not executed: no poller took it before its time to live ran out",
                )
            if maybe_delivered and self.ledger.overdue(entry, SILENT_POLLER_S):
                return Answer(command_id, "failed", "handed to the poller, which never answered")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
        return None

    async def _answer(self, answer: Answer) -> None:
        # The detail may quote the API's command or a printer's reply.
        answer = msgspec.structs.replace(answer, detail=safe(answer.detail, 500))
        await self.db(self.ledger.answer, answer, utc_now().isoformat())
        logger.info("command %s: %s (%s)", answer.command_id, answer.outcome, answer.detail)
        answered = await self.db(self.ledger.get, answer.command_id)
        if answered is not None:
            self._report(answered)

    def _report(self, entry: Entry) -> None:
        if entry.answer is None:
            return
        printer_id = entry.command.printer_id
        known = printer_id in {printer.id for printer in self.config.printers}
        at = datetime.fromisoformat(entry.answered_at) if entry.answered_at else utc_now()
        self.sender.submit(
            result_record(
                self.config.gateway.id,
                printer_id if known else None,
                entry.answer,
                at,
                entry.command.type,
            )
        )

    def _acknowledged(self, ids: set[str]) -> None:
        for record_id in ids:
            command_id = command_of_result(self.config.gateway.id, record_id)
            if command_id is not None:
                self.db.later(self.ledger.reported, command_id)


def service(config: Config, token: Token) -> runner.Service:
    """Control, to be run by ``runner.run`` until SIGTERM or SIGINT."""

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        control = Control(config, token, ctx, problems)
        logger.info("control started: commands from %s", safe(config.api.url))
        await control.run(stop)

    return runner.Service("control", body)
